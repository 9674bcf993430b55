"""Every setting, with its default and why; games override a few of them.

One dataclass per command (TrainConfig, PredictConfig, ExtractConfig, FetchConfig, EvaluateConfig,
CompareConfig, RetrainConfig): cli.py generates each command's flags from it, so `--help` always lists
exactly what can be set, with the default a run uses, and every value is checked against the field's range
before anything runs. What differs per game is in vgmusic/games.py.
"""
from dataclasses import dataclass, field

from . import ROOT
# the per-game settings (vgmusic/games.py), named here too: config is where a setting is looked up
from .games import (BASE_MODEL, CALIBRATED, STYLED, DEFAULT_REPEAT_PENALTY, FINE_TUNE, GAME_ENSEMBLES, GAMES, REPEAT_PENALTY,  # noqa: F401
                    RUNS, SHIPPED, default_model_dir, game_overrides, game_sources, train_dir)
from .ensembles import DEFAULT_ENSEMBLE, ENSEMBLES  # the ensembles' presets, plain data: --ensemble's names
from .nets import ARCHS  # the registry of the networks (imports NumPy, neither TensorFlow nor h5py)
from .theory import ROLES, gm_program, instrument_choice, parse_bars, parse_key  # the flags' checks

ENSEMBLE_NAMES = tuple(ENSEMBLES)


def _opt(default, help, check=None, **kw):
    """A setting: its default, its --help text, and `check`, a (test, what it must be) pair that
    every value given on the command line must pass."""
    return field(default=default, metadata={"help": help, "check": check, **kw})


def between(low, high):
    return (lambda v: low <= v <= high, f"between {low} and {high}")


def one_of(*names):
    return (lambda v: v in names, "one of " + ", ".join(names))


def _parses(parse, what):
    def ok(text):
        try:
            parse(text)
        except ValueError:
            return False
        return True
    return (lambda v: v == "" or ok(v), what)


# Every number a flag takes is bounded, so no value can overflow, sleep for ages or loop for ever;
# floats must also be finite (cli.checked refuses inf and nan).
MANY = 1_000_000  # the upper bound of counts with no natural one (epochs, steps)
FRACTION = (lambda v: 0 < v < 1, "between 0 and 1, exclusive")
SEED = (lambda v: -1 <= v < 2 ** 32, "-1 or from 0 to 2**32-1")


@dataclass
class TrainConfig:
    game: str = _opt("", "which game's songs to train on (a folder name under midi_songs/, or a combined game)")
    data_dir: str = _opt(str(ROOT / "data"), "where get_all_notes.py wrote the extracted songs and vocabulary")
    model_dir: str = _opt("", "where weights and their sidecar go: <project>/<game>/weights, except for a game "
                              "with a shipped model: <project>/runs/<game> unless --replace-shipped")
    encoding: str = _opt("event", "tokens: 'event' (pitches with octave, duration, wait: rhythm and rests) "
                                  "or 'classic' (the original pitch-name/chord/Rest stream, every note half a beat)",
                         one_of("event", "classic"))
    # "tracks", not "parts": a part of the form is a section; the stored encoding spec keeps its word "parts"
    tracks: str = _opt("melody", "event encoding: 'melody' reads the track carrying the tune, 'all' every "
                                 "pitched track; drum tracks never", one_of("melody", "all"))
    # The defaults below are the event encoding's; ENCODING_DEFAULTS and ARCH_DEFAULTS hold the others
    # and --help shows them.
    key_normalize: bool = _opt(True, "event encoding: transpose every song to C major / A minor (music21's key "
                                     "analysis); a song continuing --prime is moved back to the prime's key")
    transpose: int = _opt(0, "event encoding: also train on each training song transposed by every shift "
                             "within +-N semitones (breaks the key, so off by default)", between(0, 11))
    diatonic: int = _opt(2, "event encoding with --key-normalize: also train on each training song moved by every "
                            "number of scale steps within +-N, which keeps the key where --transpose breaks it",
                         between(0, 6))
    arch: str = _opt("lstm", "network: lstm (the original, state-carrying), bilstm (stacked bidirectional LSTMs "
                             "+ TimeDistributed dense), attention (bilstm + self-attention), transformer (causal), rotary "
                             "(causal, relative positions, a key/value cache: composes at 1.5 x the LSTM's time)",
                     one_of(*ARCHS))
    window: int = _opt(75, "tokens of context per training window (~3.2 tokens per event: 75 tokens ~ the "
                           "original's 25 notes)", between(2, 4096))
    stride: int = _opt(3, "tokens between the starts of training windows; many-to-many models see every "
                          "token at several positions even with a stride above 1", between(1, 4096))
    embed_dim: int = _opt(64, "token embedding size; replaces the original's id/vocab-size scalar input",
                          between(1, 4096))
    units: int = _opt(256, "LSTM units per layer (per direction for bilstm); model width for the transformer",
                      between(1, 8192))
    layers: int = _opt(2, "stacked LSTM or transformer layers", between(1, 64))
    heads: int = _opt(4, "attention heads (attention and transformer)", between(1, 64))
    dense: int = _opt(256, "width of the relu layer before the softmax; feed-forward width in the transformer",
                      between(1, 16384))
    dropout: float = _opt(0.3, "dropout after each recurrent, attention and dense layer, as in the original",
                          (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"))
    batch_size: int = _opt(64, "windows per gradient step", between(1, 65536))
    epochs: int = _opt(200, "upper bound on epochs; early stopping usually ends far sooner", between(1, MANY))
    select: str = _opt("pitch", "which held-out loss picks the best epoch and stops training: 'pitch' (the event "
                                "encoding's pitch tokens; the total hid that pitches went on improving) or 'total'; "
                                "or 'last': the last of --epochs, no early stopping (the shipped games' fine-tuning)",
                       one_of("pitch", "total", "last"))
    patience: int = _opt(8, "stop after this many epochs without a better held-out loss (the original overfits "
                            "from epoch 2)", between(1, MANY))
    learning_rate: float = _opt(1e-3, "Adam learning rate", (lambda v: 0 < v <= 10, "above 0 and at most 10"))
    val_fraction: float = _opt(0.15, "share of songs held out whole for validation (at least one song); given, it "
                                     "wins over the songs a game holds out itself (Pokemon: two named songs)",
                               FRACTION)
    val_songs: list = _opt((), "file names to hold out instead of a random share (not with --val-fraction)",
                           nargs="*")
    split_seed: int = _opt(0, "seed of the song-level split, kept apart from --seed so runs stay comparable",
                           between(0, 2 ** 32 - 1))
    max_steps: int = _opt(50, "gradient steps per epoch (0: one pass over all windows); 50 makes checkpoints "
                              "finer than the few hundred steps after which the held-out loss bottoms out",
                          between(0, MANY))
    budget: float = _opt(0.0, "stop training after this many seconds of wall-clock time (0: no limit)",
                         (lambda v: 0 <= v < 1e9, "from 0 up to 1e9 seconds"))
    seed: int = _opt(0, "seed for weights, shuffling and dropout: the same seed repeats a run",
                     between(0, 2 ** 32 - 1))
    resume: bool = _opt(False, "continue from the last weights in the model dir instead of starting over")
    # a few dozen songs are too few to learn melody from scratch (LakhNES: pretraining cut held-out
    # perplexity from 3.50 to 2.46): start from a model that has heard thousands
    init_from: str = _opt("", "fine-tune: start from this model folder's best weights (same architecture, "
                              "vocabulary and sizes), or 'base' for the base model pretrained on every song we may "
                              "use (base/weights); '' trains from scratch")
    shards: str = _opt("", "train on these token shards (get_all_notes.py --base writes them to data/base) instead of "
                           "a game's extracted songs; the songs the shipped models are judged on stay out: how the "
                           "base model is pretrained (python -m vgmusic train --game base)")
    # 108 game songs of 4,573 in the base corpus (5% of its events): the rest are fiddle tunes, airs and
    # chorales, whose thirds and zigzags the fine-tuned games still echoed (README, the base model)
    game_weight: int = _opt(1, "with --shards: each song of game music (every source that is not one of "
                               "music21's collections: the original songs, the Debian games, your folders) "
                               "counts this many times in the shuffled training windows", between(1, 1000))
    style: bool = _opt(False, "start every training window with its song's source (a control token), so "
                              "predict.py --style composes in one game's way (measured on three_games_combined and "
                              "left off, vgmusic/games.py: its styles are calibrated, python -m vgmusic calibrate "
                              "--style all)")
    replace_shipped: bool = _opt(False, "train into <game>/weights even where it holds a shipped model (the four "
                                        "games of the original), replacing it; without it those games train into "
                                        "<project>/runs/<game>/ and a --model-dir naming a shipped folder is refused")
    verbose: int = _opt(1, "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch; 1 is 2 when the "
                           "output is not a terminal (a log file gets lines, not progress-bar redraws)",
                        between(0, 2))


# MIDI stores a tempo as microseconds per beat in 24 bits: 3.58 bpm is its slowest; 1000 bpm is
# already 16th notes at 4 kHz, so nothing beyond is music.
BPM_RANGE = (4.0, 1000.0)


@dataclass
class PredictConfig:
    game: str = _opt("", "which game's model to compose with")
    model_dir: str = _opt("", "folder of a trained model (default: <project>/<game>/weights, the shipped model "
                              "until you train your own)")
    data_dir: str = _opt(str(ROOT / "data"), "extracted songs, if present: the song is checked for copying them")
    which: str = _opt("best", "'best' (the epoch training selected: lowest held-out pitch loss for event models) "
                              "or 'last' weights", one_of("best", "last"))
    length: int = _opt(500, "events (notes or chords) to compose at least, as the original wrote 500 notes; "
                            "the song ends on the bar line of the phrase that reaches them", between(1, 100000))
    bars: int = _opt(0, "compose exactly this many bars of 4/4 instead (0: --length decides)", between(0, 10000))
    seconds: float = _opt(0.0, "compose this long a song instead, rounded to whole bars at the tempo (0: --length "
                               "or --bars decides)", (lambda v: 0 <= v <= 36000, "from 0 to 36000"))
    num: int = _opt(1, "songs to compose, as one batch (cheaper than separate runs); each gets its own files",
                    between(1, 256))
    temperature: float = _opt(1.0, "sampling temperature; 0 is the original's argmax, which loops on one note",
                              (lambda v: 0 <= v <= 100, "from 0 to 100"))
    top_k: int = _opt(0, "sample only among the k likeliest tokens (0, or k at or above the vocabulary: all)",
                      between(0, MANY))
    top_p: float = _opt(0.85, "sample only among the likeliest tokens whose probabilities add up to p (1: all); "
                              "0.85 keeps the network's rare wide leaps out: the setting that met the most targets "
                              "on the four games (docs/eval/sweep.md)", (lambda v: 0 < v <= 1, "above 0, at most 1"))
    # One cut over every token removed the rarer rhythms with the wide leaps: 74% of Pokemon's intervals
    # were eighths against 47% in its songs, and no Zelda triplet survived. Cut apart (1: none for the
    # rhythm), eighths fell to 49%, 73%, 69% and 41% (songs: 47, 46, 47, 47) and the window classifier's
    # AUC from 0.95 to 0.86 on Pokemon and 0.81 to 0.70 on Zelda (docs/eval/sweep.md)
    rhythm_top_p: float = _opt(1.0, "durations and waits get a nucleus of their own, each kind (pitch, duration, "
                                    "wait) cut apart keeping its share; 1 keeps every rhythm the network offers "
                                    "(0: one --top-p cut over all tokens, as before)", (lambda v: 0 <= v <= 1, "from 0 to 1"))
    rhythm_temperature: float = _opt(0.0, "sampling temperature of durations and waits (0: --temperature's)",
                                     (lambda v: v == 0 or 0.01 <= v <= 100, "0 or from 0.01 to 100"))
    repeat_penalty: float = _opt(0.0, "how likely a note is to strike the melody's last pitch again, against the "
                                      "network's word (1: as it says; 0: each song one training song's, where "
                                      "the model was calibrated with characters (vgmusic/characters.py), else "
                                      f"the game's own, REPEAT_PENALTY in vgmusic/games.py, else {DEFAULT_REPEAT_PENALTY})",
                                 (lambda v: v == 0 or 0.01 <= v <= 10, "0 or from 0.01 to 10"))
    # A model fine-tuned from the base kept the base corpus's even eighths (Final Fantasy VII: 68% of its
    # intervals eighths, 12% sixteenths; its songs 54% and 27%): vgmusic/calibrate.py measures each
    # duration and wait token against the training songs and offsets its logit
    rhythm_prior: float = _opt(1.0, "how much of the model's rhythm calibration to apply (python -m vgmusic "
                                    "calibrate): 1 as measured, 0 none (a model without one: no effect)",
                               (lambda v: 0 <= v <= 10, "from 0 to 10"))
    form: str = _opt("AA'BA'", "phrases in order: a letter seen before repeats that phrase, ' composes a new last "
                               "bar for it (the pattern repeats with new themes until the length is reached)")
    phrase_bars: int = _opt(4, "bars of 4/4 per phrase of the form", between(1, 64))
    loop: bool = _opt(False, "write a seamless loop: its last bar leads back into its first, by the model's own "
                             "loss (both figures printed); the song is whole bars and the audio wraps around")
    loop_tries: int = _opt(4, "with --loop: songs to compose per loop asked for until one's seam passes",
                           between(1, 100))
    loop_candidates: int = _opt(16, "with --loop: last bars tried per song, the one leading best into bar 1 kept",
                                between(1, 256))
    prime: str = _opt("", "continue the end of this MIDI file instead of starting a song from the beginning")
    style: str = _opt("", "a model with styles (three_games_combined: each game's calibrated rhythm): compose in "
                          "this source's style, e.g. zelda_ocarina_of_time (a unique prefix will do); '': all it "
                          "learned at once")
    # read as extraction reads a song (get_all_notes.py --timeout): a broken file is refused, not waited on
    prime_timeout: float = _opt(60.0, "seconds reading the --prime file may take before it is refused",
                                (lambda v: 0 < v <= 86400, "above 0, at most 86400"))
    bpm: float = _opt(0.0, "tempo of the written song in beats per minute (0: the prime's, else the training "
                           "songs' median)", (lambda v: v == 0 or BPM_RANGE[0] <= v <= BPM_RANGE[1],
                                              f"0 or from {BPM_RANGE[0]:g} to {BPM_RANGE[1]:g}"))
    # An arrangement by default: the game music a developer puts in a level is melody, harmony, bass and
    # drums (Debian's 108 game songs: 5-8 instruments each, drums in 104); 'melody' alone is the single line
    # of earlier versions
    tracks: list = _opt((), "the parts to write, each its own MIDI track, channel and stem: melody, harmony, bass, "
                            "drums (melody alone: the single line; default: the ensemble's, all four but piano's "
                            "two hands: melody harmony)", nargs="+", choices=ROLES, metavar="TRACK")
    ensemble: str = _opt("", "the instruments, registers and voice limits: " + ", ".join(ENSEMBLE_NAMES)
                             + f" (a game's own: GAME_ENSEMBLES in vgmusic/games.py; others {DEFAULT_ENSEMBLE})",
                         (lambda v: v in ("",) + ENSEMBLE_NAMES, "one of " + ", ".join(ENSEMBLE_NAMES)))
    instrument: list = _opt((), "TRACK=NAME gives one track another General MIDI instrument, by name ('bass=fretless "
                                "bass', part of a name will do) or program 0-127; a NAME alone is the melody's "
                                "(default: the ensemble's)", _parses(instrument_choice, "a General MIDI instrument name "
                                "(e.g. 'flute') or 0-127, or TRACK=NAME with TRACK one of melody, harmony, bass"),
                         nargs="+", metavar="[TRACK=]NAME")
    melody: str = _opt("", "arrange the tune of this MIDI file (its highest busy track) instead of composing one")
    edit: str = _opt("", "a song this tool wrote (SONG.mid, with its record SONG.song.json beside it): compose "
                         "--track of it anew and keep every other track note for note, into a new file")
    track: str = _opt("", "with --edit: the track to compose anew (harmony, bass or drums)",
                      (lambda v: v in ("", "harmony", "bass", "drums"), "harmony, bass or drums"))
    edit_bars: str = _opt("", "with --edit: only these bars of the track, e.g. 5-8 or 9 (default: all)",
                          _parses(parse_bars, "bars FIRST-LAST or one bar, counted from 1"))
    key: str = _opt("", "transpose the song to this key, e.g. 'D minor', 'Bb major', 'F#' (default: as composed; "
                        "key-normalised models compose in C major / A minor)",
                  _parses(parse_key, "a key such as 'D minor', 'Bb major' or 'F#'"))
    out: str = _opt("", "output .mid path; with --num N, N files <name>-1.mid ... (default: "
                        "<project>/<game>/generations/<timestamp>.mid)")
    audio: bool = _opt(True, "also render a WAV with the General MIDI SoundFont (TimGM6mb, from pretty_midi)")
    roll: bool = _opt(True, "also draw a piano roll (<name>.png)")
    page: bool = _opt(True, "rewrite the listening page index.html in the output folder")
    # The files a game plays (vgmusic/export.py; the README's "Using a loop in a game"): engines loop an Ogg
    # by its LOOPSTART/LOOPLENGTH comments (RPG Maker) or a WAV by its smpl chunk (Godot's importer)
    export: str = _opt("", "also write the game files: 'ogg', 'wav' or 'ogg,wav': the mix and each track's stem "
                           "with the loop points inside (NAME.mix.ogg, NAME.stem-bass.wav ...), loudness-"
                           "normalised, and a cue sheet NAME.cue.json ('': none)",
                       (lambda v: all(x.strip().lower() in ("ogg", "wav") for x in v.split(",")) or not v.strip(),
                        "ogg, wav or ogg,wav"))
    intro: int = _opt(0, "compose this many bars of intro that lead into the song, which then loops after them "
                         "(implies --loop; --bars and --length count the loop body)", between(0, 64))
    split: bool = _opt(False, "with --export and --intro: also write the intro and the loop body as two files "
                              "(NAME.intro.*, NAME.body.*) that play back to back (Unity, Godot 4)")
    stems: bool = _opt(True, "a loop of several tracks (and any song with --export): each track also on its own, "
                             "NAME.stem-TRACK.wav, at the mix's gain, so the stems sum to the mix (layering)")
    # Sony's ASWG-R001 asks -18 LUFS of portable and -24 of console games; PC and mobile stores ask
    # nothing, and -16 to -14 is what players' other audio runs at. A game's music plays under effects and
    # voice, and solo instruments here peak 12-17 dB over their loudness: at -18 the -1 dBTP ceiling
    # rarely holds a song back (bench/results/export.md), and a console build turns it down by 6 dB
    loudness: float = _opt(-18.0, "with --export: the integrated loudness (LUFS, ITU-R BS.1770) the mix is "
                                  "brought to by one gain, the stems with it", between(-70, 0))
    peak: float = _opt(-1.0, "with --export: the true-peak ceiling (dBTP); a song that would pass it at "
                             "--loudness stays quieter instead (no limiter)", between(-30, 0))
    seed: int = _opt(-1, "random seed; -1 draws a fresh one (printed), any other value repeats a run", SEED)


@dataclass
class ExtractConfig:
    songs_dir: str = _opt(str(ROOT / "midi_songs"), "folder holding one sub-folder of .mid files per game")
    data_dir: str = _opt(str(ROOT / "data"), "where the extracted songs, vocabulary and cache go")
    games: list = _opt((), "only these game folders (default: every folder under the songs dir)", nargs="*")
    workers: int = _opt(0, "parallel parsers (0: one per CPU core)", between(0, 256))
    # The 46 songs parse in 0.3-3 s and under 300 MB each; a file far past both is broken (one maximal
    # delta time made music21 fill memory for hours).
    timeout: float = _opt(60.0, "seconds one file may take to parse before it is skipped",
                          (lambda v: 0 < v <= 86400, "above 0, at most 86400"))
    max_memory: int = _opt(2048, "megabytes of memory one file's parser may use before it is skipped",
                           between(64, 1 << 20))


# Defaults that depend on the encoding and the architecture, applied in this order before a
# game's overrides and the command-line flags.
ENCODING_DEFAULTS = {
    "classic": dict(window=25, stride=1, key_normalize=False, diatonic=0, max_steps=0),  # the original's
    # The dataclass defaults are the event encoding's, repeated here so the two stay a pair.
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
    # rotary (vgmusic/nets/rotary.py): the transformer's sizes, so that the two compare on what rotary
    # changes (relative positions, banded attention, a cache), and the LSTM meets the same size of network
    "rotary": dict(
        window=512,  # over 128 events; each of the 4 blocks attends to 128 positions and together they
                     # reach the 512, so a composing step reads 128 cached keys per block, not 512
        stride=32,  # many-to-many: every token is still a target at 16 positions of different windows
        units=128, heads=4,  # 32 values per head, which RoPE turns as 16 pairs (it needs an even width)
        layers=4,  # depth is what lets bands of 128 reach the whole window
        dense=512,  # the feed-forward's usual 4 x the width
        dropout=0.1,  # the transformer's (nanoGPT's for small data); the LSTM's 0.3 is the original project's
        batch_size=16),  # 16 windows of 512 tokens: 8,192 targets a step (the LSTM's 64 of 75: 4,800)
}

@dataclass
class RetrainConfig:
    games: list = _opt(SHIPPED, "which of the shipped models to retrain", nargs="+", choices=SHIPPED,
                       metavar="GAME")
    data_dir: str = _opt(str(ROOT / "data"), "where get_all_notes.py wrote the extracted songs and vocabulary")
    seed: int = _opt(0, "seed for weights, shuffling and dropout: the same seed repeats a run",
                     between(0, 2 ** 32 - 1))


@dataclass
class FetchConfig:
    songs_dir: str = _opt(str(ROOT / "midi_songs"), "where game folders go", metavar="DIR")
    manifest: str = _opt(str(ROOT / "midi_songs" / "manifest.json"), "songs to get", metavar="FILE")
    games: list = _opt((), "only these games of the manifest (default: all)", nargs="*", metavar="GAME")
    retries: int = _opt(4, "download attempts per file: raw-file hosts drop the odd request under load",
                        between(1, 100), metavar="N")
    timeout: float = _opt(30.0, "seconds one download attempt may take, from connecting to the last byte",
                          (lambda v: 0 < v <= 3600, "above 0, at most 3600"), metavar="S")
    backoff: float = _opt(1.0, "seconds before the 2nd attempt, doubled before each later one, and no wait longer "
                               "than 60 s", between(0, 60), metavar="S")
    base_url: str = _opt("", "download from a mirror laid out the same way: URL replaces the manifest's base_url "
                             "in every url", metavar="URL")
    source: str = _opt("", "import from a local folder or .zip instead of downloading (files found by name, "
                           "under <game>/ or anywhere), checked by the same sha256", flag="--from", metavar="DIR|ZIP")
    corpus: list = _opt((), "instead, export these offline corpora into <songs-dir>/<name>/ (listed below)",
                        nargs="+")
    limit: int = _opt(50, "pieces per corpus, 0 for all (50 is about as many as the three games' songs)",
                      between(0, MANY), metavar="N")
    progress: bool = _opt(True, "progress bars, on a terminal only (the per-file lines print either way)")


@dataclass
class EvaluateConfig:
    game: str = _opt("", "game whose songs are the reference (e.g. pokemon_red_blue_yellow)", required=True)
    generated: list = _opt((), "folder of generated .mid files; one set per folder, repeatable (default: none, "
                               "which reports the held-out against the training songs)", nargs="+",
                           action="extend", metavar="DIR")
    label: list = _opt((), "a name per --generated folder, in the same order (default: the folder's name)",
                       nargs="+", action="extend")
    data_dir: str = _opt(str(ROOT / "data"), "extracted songs from get_all_notes.py")
    model_dir: str = _opt("", "model folder whose model.json names the training and held-out songs (default: "
                              "<project>/<game>/weights; without one there, the game's default split)")
    out: str = _opt("", "writes PREFIX.json, PREFIX.md, PREFIX.png (default: <project>/runs/eval/<game>; the "
                        "reports in docs/eval/ are bench/quality.py's)", metavar="PREFIX")
    beats_per_bar: int = _opt(4, "beats per bar for bar-level figures (the songs' 4/4)", between(1, 64))
    ngram: int = _opt(8, "notes per run when counting runs copied from the training songs (metrics.NGRAM)",
                      between(2, 1000))


@dataclass
class CompareConfig:
    game: list = _opt(("pokemon_red_blue_yellow", "three_games_combined"), "games to compare on", nargs="+",
                      metavar="GAME")
    archs: list = _opt(tuple(ARCHS), "architectures", nargs="+", choices=tuple(ARCHS),
                       metavar="ARCH")
    transpose: int = _opt(5, "the augmented runs transpose each training song by every shift within +-N (0: "
                             "skip them; event encoding only)", between(0, 11), metavar="N")
    budget: float = _opt(120.0, "seconds of training per model", between(1, 1e6), metavar="SECONDS")
    steps: int = _opt(25, "gradient steps per epoch, equal for every model", between(1, 100000))
    encoding: str = _opt("event", "token encoding for every run: event or classic", one_of("event", "classic"))
    data_dir: str = _opt(str(ROOT / "data"), "extracted songs (get_all_notes.py)")
    out: str = _opt(str(ROOT / "docs" / "compare"), "where the tables and figures go", metavar="DIR")
    runs_dir: str = _opt(str(RUNS), "where each run's model folder goes")


@dataclass
class CalibrateConfig:
    # defaults with reasons: vgmusic/calibrate.py
    game: str = _opt("", "the game whose model to calibrate", required=True)
    model_dir: str = _opt("", "the model folder (default: <project>/<game>/weights)")
    data_dir: str = _opt(str(ROOT / "data"), "extracted songs (get_all_notes.py): the model's training songs")
    songs: int = _opt(20, "songs composed a round: about 10,000 events, so a rhythm used once in a hundred is "
                          "counted 100 times", between(1, 1000))
    rounds: int = _opt(4, "correcting rounds (an offset changes what follows it, so one round is not exact)",
                       between(1, 20))
    seed: int = _opt(0, "the seed every round composes its songs with", between(0, 2 ** 31))
    rhythm: bool = _opt(True, "measure the rhythm offsets (--no-rhythm: only the characters, composed without "
                              "offsets, and any offsets the sidecar held are removed)")
    characters: int = _opt(4, "songs composed per training song a round to measure each song's repeat penalty, "
                              "its character (vgmusic/characters.py); 0: none (ignored with --style)", between(0, 100))
    style: str = _opt("", "calibrate one source's style instead: its training songs are the target and the "
                          "offsets go to the sidecar's style priors, which predict.py --style NAME composes with "
                          "(a unique prefix will do; 'all': each source; '': the model's own rhythm)")
