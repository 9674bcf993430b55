"""Every setting, with its default and why; games override a few of them.

Command-line flags are generated from these dataclasses, so `--help` always lists
exactly what can be set, and a game folder's script is just a name in GAMES.
"""
import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from . import ROOT


def _opt(default, help, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    game: str = _opt("", "which game's songs to train on (a folder name under the songs dir, or a combined game)")
    songs_dir: str = _opt(str(ROOT / "midi_songs"), "folder holding one sub-folder of .mid files per game")
    data_dir: str = _opt(str(ROOT / "data"), "where get_all_notes.py wrote the extracted songs and vocabulary")
    model_dir: str = _opt("", "where weights and their sidecar go (default: <project>/<game>/weights)")
    encoding: str = _opt("event", "tokens: 'event' (pitches with octave, duration, wait: rhythm and rests) "
                                  "or 'classic' (the original pitch-name/chord/Rest stream, every note half a beat)")
    parts: str = _opt("melody", "event encoding: 'melody' reads the part carrying the tune, 'all' every pitched "
                                "part; drum parts never")
    key_normalize: bool = _opt(False, "event encoding: transpose every song to C major / A minor (music21's key "
                                      "analysis); a song continuing --prime is moved back to the prime's key")
    transpose: int = _opt(0, "event encoding: also train on each training song transposed by every shift "
                             "within +-N semitones (see ENCODING_DEFAULTS)")
    diatonic: int = _opt(0, "event encoding with --key-normalize: also train on each training song moved by every "
                            "number of scale steps within +-N, which keeps the key where --transpose breaks it")
    arch: str = _opt("lstm", "network: lstm (the original, state-carrying), bilstm (stacked bidirectional LSTMs "
                             "+ TimeDistributed dense), attention (bilstm + self-attention), transformer (causal)")
    window: int = _opt(25, "tokens of context per training window (the original used 25; see ENCODING_DEFAULTS)")
    stride: int = _opt(1, "tokens between the starts of training windows; many-to-many models see every "
                          "token at several positions even with a stride above 1")
    embed_dim: int = _opt(64, "token embedding size; replaces the original's id/vocab-size scalar input")
    units: int = _opt(256, "LSTM units per layer (per direction for bilstm); model width for the transformer")
    layers: int = _opt(2, "stacked LSTM or transformer layers")
    heads: int = _opt(4, "attention heads (attention and transformer)")
    dense: int = _opt(256, "width of the relu layer before the softmax; feed-forward width in the transformer")
    dropout: float = _opt(0.3, "dropout after each recurrent, attention and dense layer, as in the original")
    batch_size: int = _opt(64, "windows per gradient step")
    epochs: int = _opt(200, "upper bound on epochs; early stopping usually ends far sooner")
    select: str = _opt("pitch", "which held-out loss picks the best epoch and stops training: 'pitch' (the event "
                                "encoding's pitch tokens; the total hid that pitches went on improving) or 'total'")
    patience: int = _opt(8, "stop after this many epochs without a better held-out loss (the original overfits from epoch 2)")
    learning_rate: float = _opt(1e-3, "Adam learning rate")
    val_fraction: float = _opt(0.15, "share of songs held out whole for validation (at least one song)")
    val_songs: list = _opt((), "file names to hold out instead of a random share", nargs="*")
    split_seed: int = _opt(0, "seed of the song-level split, kept apart from --seed so runs stay comparable")
    max_steps: int = _opt(0, "gradient steps per epoch (0: one pass over all windows); for quick runs and "
                             "for comparable curves when augmentation multiplies the windows")
    budget: float = _opt(0.0, "stop training after this many seconds of wall-clock time (0: no limit)")
    seed: int = _opt(0, "seed for weights, shuffling and dropout: the same seed repeats a run")
    resume: bool = _opt(False, "continue from the last weights in the model dir instead of starting over")
    verbose: int = _opt(1, "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch")


@dataclass
class PredictConfig:
    game: str = _opt("", "which game's model to compose with")
    model_dir: str = _opt("", "folder of a trained model (default: <project>/<game>/weights, the shipped model "
                              "until you train your own)")
    data_dir: str = _opt(str(ROOT / "data"), "extracted songs, if present: the song is checked for copying them")
    which: str = _opt("best", "'best' (the epoch training selected: lowest held-out pitch loss for event models) "
                              "or 'last' weights")
    length: int = _opt(500, "events (notes or chords) to compose at least, as the original wrote 500 notes; "
                            "the song ends at the end of the phrase that reaches them")
    temperature: float = _opt(1.0, "sampling temperature; 0 is the original's argmax, which loops on one note")
    top_k: int = _opt(0, "sample only among the k likeliest tokens (0: all)")
    top_p: float = _opt(0.85, "sample only among the likeliest tokens whose probabilities add up to p (1: all); "
                              "0.85 keeps the network's rare wide leaps out: the setting that met the most targets "
                              "on the four games (docs/eval/sweep.md)")
    form: str = _opt("AA'BA'", "phrases in order: a letter seen before repeats that phrase, ' composes a new last "
                               "bar for it (the pattern repeats with new themes until the length is reached)")
    phrase_bars: int = _opt(4, "bars of 4/4 per phrase of the form")
    prime: str = _opt("", "continue the end of this MIDI file instead of starting a song from the beginning")
    tempo: float = _opt(0.0, "beats per minute of the written MIDI (0: the prime's, else the training songs' median)")
    program: int = _opt(0, "General MIDI program (instrument) of the written track; 0 is piano")
    out: str = _opt("", "output .mid path (default: <project>/<game>/generations/<timestamp>.mid)")
    roll: bool = _opt(False, "also draw a piano roll beside the MIDI file (<name>.png)")
    seed: int = _opt(-1, "random seed; -1 draws a fresh one, any other value repeats a song")


@dataclass
class ExtractConfig:
    songs_dir: str = _opt(str(ROOT / "midi_songs"), "folder holding one sub-folder of .mid files per game")
    data_dir: str = _opt(str(ROOT / "data"), "where the extracted songs, vocabulary and cache go")
    games: list = _opt((), "only these game folders (default: every folder under the songs dir)", nargs="*")
    workers: int = _opt(0, "parallel parsers (0: one per CPU core)")


# Defaults that depend on the encoding and the architecture, applied in this order before a
# game's overrides and the command-line flags.
ENCODING_DEFAULTS = {
    "classic": dict(window=25, stride=1),  # the original's windows
    # ~3.2 tokens per event on these songs: 75 tokens ~ the original's 25 notes of context.
    # Every song in C major / A minor, untransposed: the network then learns one scale instead of twelve.
    # Transposing by +-5 lowered the held-out loss (docs/compare/) yet left pitches at chance level
    # in the songs written (scale consistency 0.64, as random pitches); key normalisation lifted it to
    # 0.97, and moving each song by +-2 scale steps (5 times the data, same key) cut melody leaps
    # over a fifth from 42% to 12% of intervals on Pokemon (docs/eval/).
    # An epoch is a fixed 50 steps: on these songs the held-out loss bottoms out within a few hundred
    # steps, and checkpoints must be finer than that.
    "event": dict(window=75, stride=3, key_normalize=True, transpose=0, diatonic=2, max_steps=50),
}
ARCH_DEFAULTS = {
    "lstm": {},
    # the flattened window feeds the output layer, so keep the per-step width small
    "bilstm": dict(units=128, dense=32, stride=1),
    "attention": dict(units=128, dense=32, stride=1),
    # 512 tokens hold over 128 events; many-to-many targets make a coarse stride enough
    "transformer": dict(window=512, stride=32, units=128, layers=4, dense=512, dropout=0.1, batch_size=16),
}

# The four game folders of the original layout. A game lists the song folders it
# trains on and overrides only what differs from TrainConfig's defaults.
GAMES = {
    "pokemon_red_blue_yellow": dict(
        sources=["pokemon_red_blue_yellow"],
        # the two songs the project's reference figures were measured on
        val_songs=["Bicycle Ride_edited.mid", "Pallet Town_edited.mid"]),
    "zelda_ocarina_of_time": dict(sources=["zelda_ocarina_of_time"]),
    "final_fantasy_7": dict(sources=["final_fantasy_7"]),
    "three_games_combined": dict(
        sources=["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7"]),
    # Game music blended with a classical composer (the second seed project's idea); the
    # composer's folder comes from `python get_midi_songs.py --corpus mozart` (or bach_chorales).
    "games_and_mozart": dict(
        sources=["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "mozart"]),
    "games_and_bach": dict(
        sources=["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "bach_chorales"]),
}


def game_sources(game):
    """Song folders a game trains on; any other name is a user's own folder under midi_songs/."""
    return GAMES.get(game, {}).get("sources", [game])


def game_overrides(game):
    return {k: v for k, v in GAMES.get(game, {}).items() if k != "sources"}


def default_model_dir(game):
    return ROOT / game / "weights"


def add_flags(parser, cls, skip=()):
    """One flag per dataclass field, its help text from the field's comment."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help = f.metadata["help"] + (f" (default: {f.default!r})" if f.default not in ("", ()) else "")
        if f.type is bool:  # --x / --no-x, so a default of True can be turned off
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        elif "nargs" in f.metadata:
            parser.add_argument(flag, nargs=f.metadata["nargs"], default=None, metavar="NAME", help=help)
        else:
            parser.add_argument(flag, type=f.type, default=None, metavar=f.type.__name__.upper(), help=help)


def build(cls, args, **overrides):
    """Defaults, then the encoding's and architecture's, then the game's overrides, then the flags given."""
    values = {f.name: f.default for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if v is not None and k in values}
    if cls is TrainConfig:
        encoding = given.get("encoding", overrides.get("encoding", values["encoding"]))
        arch = given.get("arch", overrides.get("arch", values["arch"]))
        values.update(ENCODING_DEFAULTS.get(encoding, {}))
        values.update(ARCH_DEFAULTS.get(arch, {}))
    values.update({k: v for k, v in overrides.items() if k in values})
    values.update(given)
    return cls(**values)


def parser_for(cls, description, skip=()):
    p = argparse.ArgumentParser(description=description)
    add_flags(p, cls, skip)
    return p


def resolve_dir(path):
    return Path(path).expanduser().resolve()
