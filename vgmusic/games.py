"""What differs per game: the songs it trains on and the few training settings it overrides, its sound,
its sampling, and where its model lives.

vgmusic/config.py holds the settings every command shares and names these too (config.GAMES, ...);
a game folder's script is just a name in GAMES.
"""
from pathlib import Path

from . import ROOT

# Each game's own sound when --ensemble is not given: the machine its music was written for
GAME_ENSEMBLES = {
    "pokemon_red_blue_yellow": "chip",  # the Game Boy: two pulse voices, a wave channel and noise
    "zelda_ocarina_of_time": "orchestra",  # the N64's sampled flutes, strings, harp and percussion
    "final_fantasy_7": "16bit",  # the PlayStation's synthesised band, in the line of the SNES scores
    "three_games_combined": "16bit",
}
# How likely a note is, against the network's word, to strike the melody's last pitch again
# (vgmusic.decode.discourage_repeats): the base corpus's fiddle tunes taught repeats the games lack
# (the shipped models alone: 19-26% of melodic intervals against Pokemon's 6.7%, Zelda's 16%, FF7's 1.3%,
# all three's 9%). Each game's factor is the one of 1, 0.5, 0.25, 0.1 (Zelda: 0.6) that brings its share
# nearest its songs' (bench/results/judge-final-repeats-R.md; the chosen ones judge-final.md); Zelda
# repeats most itself, so it is discouraged least. Any other folder, a user's too: DEFAULT_REPEAT_PENALTY.
# Zelda's, fine-tuned from the game-weighted base, is 0.7 of 0.3, 0.45, 0.6, 0.7, 0.8 (40 songs each,
# bench/results/judge-z-rpR-40.md): repeats 6.1, 10.3, 12.9, 14.3, 16.4% against its songs' 16.3%, window
# AUC 0.52, 0.58, 0.59, 0.58, 0.64; at 0.6 its songs used 21.4 distinct pitches (the evaluation's limit
# 20.3), at 0.7 17.4.
REPEAT_PENALTY = {"pokemon_red_blue_yellow": 0.25, "zelda_ocarina_of_time": 0.7, "final_fantasy_7": 0.1,
                  "three_games_combined": 0.5}
DEFAULT_REPEAT_PENALTY = 0.5

# The four game folders of the original layout. A game lists the song folders it
# trains on and overrides only what differs from TrainConfig's defaults.
# Each shipped game fine-tunes from the base model: started from it, held-out loss per event fell
# 27-65% below the models trained from scratch on the game alone; at Adam's 1e-3 fine-tuning overfits the
# few songs within 50 steps (every game's best epoch was its first, worse than the base model itself),
# at 3e-4 it improves on the base (bench/results/heldout.md).
# Kept: the last of a fixed number of epochs, about one pass over the game's training windows (4 x 50
# steps of 64 for a single game's 7,000-11,600, 9 for the combined 29,000), not the epoch of the lowest
# held-out loss. That epoch was always the first, the model nearest the base, whose fiddle tunes the
# window classifier heard in the songs (thirds, zigzag contours, few rests): at epochs 1, 2, 4, 7 its AUC
# went 0.71/0.70/0.71/0.67 on Pokemon, 0.76/0.68/0.56/0.71 on Zelda, 0.85/0.79/0.76/0.69 on all
# three (Final Fantasy VII 0.52 at 1, 0.49 at 4), while the held-out loss rose by 0.1-0.4 nats a token
# and nothing more was copied from the training songs (bench/results/judge-epochs.md).
FINE_TUNE = dict(init_from="base", learning_rate=3e-4, select="last", epochs=4)
GAMES = {
    "pokemon_red_blue_yellow": dict(
        sources=["pokemon_red_blue_yellow"],
        # the two songs the project's reference figures were measured on
        val_songs=["Bicycle Ride_edited.mid", "Pallet Town_edited.mid"], **FINE_TUNE),
    "zelda_ocarina_of_time": dict(sources=["zelda_ocarina_of_time"], **FINE_TUNE),
    "final_fantasy_7": dict(sources=["final_fantasy_7"], **FINE_TUNE),
    "three_games_combined": dict(
        sources=["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7"],
        # --style was measured and left off: fine-tuned with a style token first in every window, the
        # held-out songs were no likelier under their own game's token than under the others' (1.837 nats
        # per token each, bench/results/style.md) and the held-out loss rose (7.15 per event against 6.95);
        # with the token's embedding added at every position (vgmusic/nets/lstm.py) own 1.855, others 1.859,
        # the own style likeliest for 2 of 7 songs, held-out 1.861 per token against 1.796
        # (bench/results/style-embedding.md): these few songs tell the games apart in the notes themselves
        **dict(FINE_TUNE, epochs=9)),  # three games' songs: one pass over their windows takes 9 epochs
    # The base model (python -m vgmusic train --game base): every song we may use, from the token shards
    # get_all_notes.py --base writes; each game fine-tunes from it (--init-from base).
    "base": dict(sources=[], shards=str(ROOT / "data" / "base"),
                 val_fraction=0.05,  # of thousands of songs: hundreds held out, and most of the rest heard
                 max_steps=400,  # a checkpoint every 400 steps (25,600 windows): an epoch of the corpus is hours
                 patience=4,  # each "epoch" is a slice of new songs, not a pass over the same few
                 # the game music's 108 songs 8 times: 31% of the windows, not 5% (README, the base model)
                 game_weight=8),
    # Game music blended with a classical composer (the second seed project's idea); the
    # composer's folder comes from `python get_midi_songs.py --corpus mozart` (or bach_chorales).
    "games_and_mozart": dict(
        sources=["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "mozart"]),
    "games_and_bach": dict(
        sources=["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "bach_chorales"]),
}


# The shipped models whose rhythm is calibrated to their training songs (python -m vgmusic calibrate;
# retrain calibrates them again). Final Fantasy VII's model, fine-tuned from the base, drew 70% of its
# melody's inter-onset intervals as eighths and 9% as sixteenths (its songs: 54%, 27%); calibrated, 64%
# and 24%, the IOIs' overlap with the songs' 0.77 -> 0.87, window AUC 0.47 -> 0.58 against human halves'
# 0.49 +- 0.24 (40 songs; bench/results/judge-ff7-*cal40.md). On the other three the rounds did not
# settle (a rhythm's share swung by 10-20 points from round to round) and their rhythm came out further
# from their songs' (IOI overlap: Pokemon 0.87 -> 0.79, Zelda 0.87 -> 0.76, all three 0.86 either way;
# bench/results/judge-cal.md), which it was already within 10 points of: they ship without.
# Zelda's since: its 40-song AUC moved from 0.58 (seeds 1-40) to 0.72 (seeds 41-80) with the songs drawn, so
# everything was judged again at 80 songs. There the rhythm offsets took Zelda's AUC from 0.66 to 0.57, and with
# each song's repeats its own (calibrate also measures the characters, vgmusic/characters.py) to 0.49 (seed
# halves 0.50 / 0.51; bench/results/judge-char-zelda-80.md). Final Fantasy VII's characters took its AUC from
# 0.48 to 0.34 but its songs' leap share (the evaluation's) to 0.186, past issue 6's 0.15 (judge-char-pf-80.md),
# so it keeps its offsets alone. Pokemon's characters alone left it at 0.62 (0.61 without), the combined
# model's made it 0.71 (0.64 without; judge-char2-c-80.md): those two ship as before.
# Game -> songs composed per training song a calibration round for its characters (0: none).
CALIBRATED = {"final_fantasy_7": 0, "zelda_ocarina_of_time": 4}
# The models whose songs' sources each get a style prior (calibrate --style all), so --style chooses a game.
# In-network styles were tried first and did not choose one (a style token, a style embedding, a logit table
# learned with them, a model per style, a trigram tilt: the README), since each game's songs are a handful; a
# rhythm calibrated to one game's songs moved a 3-way window classifier trained on the games' own songs toward
# that game for all three (bench/results/style-priors.md).
STYLED = ("three_games_combined",)

# The models shipped in the four game folders (tracked in git), which `python -m vgmusic retrain` retrains;
# training those games elsewhere goes to RUNS/<game>, so an experiment never overwrites them.
SHIPPED = ("pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "three_games_combined")
RUNS = ROOT / "runs"  # git-ignored
BASE_MODEL = ROOT / "base" / "weights"  # the base model every game fine-tunes from (--init-from base)


def game_sources(game):
    """Song folders a game trains on; any other name is a user's own folder under midi_songs/."""
    return GAMES.get(game, {}).get("sources", [game])


def game_overrides(game):
    return {k: v for k, v in GAMES.get(game, {}).items() if k != "sources"}


def default_model_dir(game):
    return ROOT / game / "weights"


def train_dir(game, model_dir="", replace_shipped=False):
    """Where training goes: --model-dir, else <game>/weights, except for the shipped games: RUNS/<game> unless
    --replace-shipped. A --model-dir naming a shipped model's folder needs --replace-shipped too (ValueError)."""
    if model_dir:
        folder = Path(model_dir).expanduser()
        owner = next((g for g in SHIPPED if default_model_dir(g).resolve() == folder.resolve()), None)
        if owner and not replace_shipped:
            raise ValueError(f"{folder} holds the shipped {owner} model (tracked in git): add --replace-shipped to "
                             "train over it, or give another --model-dir")
        return folder
    return RUNS / game if game in SHIPPED and not replace_shipped else default_model_dir(game)
