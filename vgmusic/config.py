"""Every setting, with its default and why; games override a few of them.

Command-line flags are generated from these dataclasses, so `--help` always lists
exactly what can be set, and a game folder's script is just a name in GAMES.
"""
import argparse
import dataclasses
import errno
import math
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import ROOT


def _opt(default, help, check=None, **kw):
    """A setting: its default, its --help text, and `check`, a (test, what it must be) pair that
    every value given on the command line must pass."""
    return field(default=default, metadata={"help": help, "check": check, **kw})


def at_least(low):
    return (lambda v: v >= low, f"at least {low}")


def between(low, high):
    return (lambda v: low <= v <= high, f"between {low} and {high}")


def one_of(*names):
    return (lambda v: v in names, "one of " + ", ".join(names))


POSITIVE = (lambda v: v > 0, "above 0")
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_key(text):
    """'D minor', 'Bb', 'f# min', 'Ebm' -> (tonic pitch class, 'major' or 'minor')."""
    m = re.fullmatch(r"\s*([A-Ga-g])\s*(#|b|♯|♭|sharp|flat)?\s*(major|maj|minor|min|m)?\s*", text, re.IGNORECASE)
    if not m or (m[2] and m[2][0] == "B"):  # 'B' alone is a note name, not a flat sign
        raise ValueError(f"{text!r} is not a key (e.g. 'D minor', 'Bb major', 'F#')")
    shift = {"#": 1, "♯": 1, "s": 1, "b": -1, "♭": -1, "f": -1}[m[2][0].lower()] if m[2] else 0
    return (PITCH_CLASSES[m[1].upper()] + shift) % 12, "minor" if m[3] and m[3].lower() != "major" and \
        m[3].lower() != "maj" else "major"


def gm_program(text):
    """General MIDI program of an instrument, by number or by (part of) its name: 'flute' -> 73."""
    if text.strip().isdigit():
        if int(text) > 127:
            raise ValueError(f"General MIDI programs are 0-127, got {text}")
        return int(text)
    from pretty_midi.constants import INSTRUMENT_MAP
    def words(name):
        return re.findall(r"[a-z0-9]+", name.lower())
    want = words(text)
    exact = [i for i, name in enumerate(INSTRUMENT_MAP) if words(name) == want]
    # else every word given, in any order: 'square lead' is 'Lead 1 (square)'
    found = exact or [i for i, name in enumerate(INSTRUMENT_MAP) if want and set(want) <= set(words(name))]
    if not found:
        raise ValueError(f"{text!r} is no General MIDI instrument (e.g. 'piano', 'flute', 'square lead', 0-127)")
    return found[0]  # the first General MIDI instrument of that name: 'guitar' is a nylon guitar


def _parses(parse, what):
    def ok(text):
        try:
            parse(text)
        except ValueError:
            return False
        return True
    return (lambda v: v == "" or ok(v), what)
FRACTION = (lambda v: 0 < v < 1, "between 0 and 1, exclusive")
SEED = (lambda v: -1 <= v < 2 ** 32, "-1 or from 0 to 2**32-1")


@dataclass
class TrainConfig:
    game: str = _opt("", "which game's songs to train on (a folder name under midi_songs/, or a combined game)")
    data_dir: str = _opt(str(ROOT / "data"), "where get_all_notes.py wrote the extracted songs and vocabulary")
    model_dir: str = _opt("", "where weights and their sidecar go (default: <project>/<game>/weights)")
    encoding: str = _opt("event", "tokens: 'event' (pitches with octave, duration, wait: rhythm and rests) "
                                  "or 'classic' (the original pitch-name/chord/Rest stream, every note half a beat)",
                         one_of("event", "classic"))
    parts: str = _opt("melody", "event encoding: 'melody' reads the part carrying the tune, 'all' every pitched "
                                "part; drum parts never", one_of("melody", "all"))
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
                             "+ TimeDistributed dense), attention (bilstm + self-attention), transformer (causal)",
                     one_of("lstm", "bilstm", "attention", "transformer"))
    window: int = _opt(75, "tokens of context per training window (~3.2 tokens per event: 75 tokens ~ the "
                           "original's 25 notes)", between(2, 4096))
    stride: int = _opt(3, "tokens between the starts of training windows; many-to-many models see every "
                          "token at several positions even with a stride above 1", at_least(1))
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
    epochs: int = _opt(200, "upper bound on epochs; early stopping usually ends far sooner", at_least(1))
    select: str = _opt("pitch", "which held-out loss picks the best epoch and stops training: 'pitch' (the event "
                                "encoding's pitch tokens; the total hid that pitches went on improving) or 'total'",
                       one_of("pitch", "total"))
    patience: int = _opt(8, "stop after this many epochs without a better held-out loss (the original overfits "
                            "from epoch 2)", at_least(1))
    learning_rate: float = _opt(1e-3, "Adam learning rate", (lambda v: 0 < v <= 10, "above 0 and at most 10"))
    val_fraction: float = _opt(0.15, "share of songs held out whole for validation (at least one song)", FRACTION)
    val_songs: list = _opt((), "file names to hold out instead of a random share", nargs="*")
    split_seed: int = _opt(0, "seed of the song-level split, kept apart from --seed so runs stay comparable",
                           between(0, 2 ** 32 - 1))
    max_steps: int = _opt(50, "gradient steps per epoch (0: one pass over all windows); 50 makes checkpoints "
                              "finer than the few hundred steps after which the held-out loss bottoms out",
                          at_least(0))
    budget: float = _opt(0.0, "stop training after this many seconds of wall-clock time (0: no limit)",
                         (lambda v: 0 <= v < 1e9, "0 or more seconds"))
    seed: int = _opt(0, "seed for weights, shuffling and dropout: the same seed repeats a run",
                     between(0, 2 ** 32 - 1))
    resume: bool = _opt(False, "continue from the last weights in the model dir instead of starting over")
    verbose: int = _opt(1, "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch", between(0, 2))


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
                      at_least(0))
    top_p: float = _opt(0.85, "sample only among the likeliest tokens whose probabilities add up to p (1: all); "
                              "0.85 keeps the network's rare wide leaps out: the setting that met the most targets "
                              "on the four games (docs/eval/sweep.md)", (lambda v: 0 < v <= 1, "above 0, at most 1"))
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
    bpm: float = _opt(0.0, "tempo of the written song in beats per minute (0: the prime's, else the training "
                           "songs' median)", (lambda v: v == 0 or BPM_RANGE[0] <= v <= BPM_RANGE[1],
                                              f"0 or from {BPM_RANGE[0]:g} to {BPM_RANGE[1]:g}"))
    instrument: str = _opt("piano", "General MIDI instrument by name ('flute', 'acoustic guitar (nylon)', part of "
                                    "a name) or program number 0-127",
                         _parses(gm_program, "a General MIDI instrument name (e.g. 'flute') or 0-127"))
    key: str = _opt("", "transpose the song to this key, e.g. 'D minor', 'Bb major', 'F#' (default: as composed; "
                        "key-normalised models compose in C major / A minor)",
                  _parses(parse_key, "a key such as 'D minor', 'Bb major' or 'F#'"))
    out: str = _opt("", "output .mid path; with --num N, N files <name>-1.mid ... (default: "
                        "<project>/<game>/generations/<timestamp>.mid)")
    audio: bool = _opt(True, "also render a WAV with the General MIDI SoundFont (TimGM6mb, from pretty_midi)")
    roll: bool = _opt(True, "also draw a piano roll (<name>.png)")
    page: bool = _opt(True, "rewrite the listening page index.html in the output folder")
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


def _other_defaults(name):
    """'; classic: 25; transformer: 512' for settings that the encoding or architecture changes."""
    return "".join(f"; {k}: {v[name]!r}" for table in (ENCODING_DEFAULTS, ARCH_DEFAULTS) for k, v in table.items()
                   if name in v and v[name] != getattr(TrainConfig, name))


def checked(kind, check):
    """argparse type: parse the value and test it, so a bad value is refused before anything runs."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an' if kind is int else 'a'} {kind.__name__}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if check and not check[0](value):
            raise argparse.ArgumentTypeError(f"must be {check[1]}, got {text!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_flags(parser, cls, skip=()):
    """One flag per dataclass field, its help text from the field's comment."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = "" if f.default in ("", ()) else f" (default: {f.default!r}"
        if default and cls is TrainConfig:
            default += _other_defaults(f.name)
        help = f.metadata["help"] + (default + ")" if default else "")
        if f.type is bool:  # --x / --no-x, so a default of True can be turned off
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        elif "nargs" in f.metadata:
            parser.add_argument(flag, nargs=f.metadata["nargs"], default=None, metavar="NAME", help=help)
        else:
            parser.add_argument(flag, type=checked(f.type, f.metadata["check"]), default=None,
                                metavar=f.type.__name__.upper(), help=help)


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


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: the usage is one --help away."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser_for(cls, description, skip=()):
    p = Parser(description=description)
    add_flags(p, cls, skip)
    return p


def writable_file(path, what="output file"):
    """Refuse, before any work, an output path that is a folder or lies where nothing can be written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name for the {what}")
    folder = path.parent
    while not folder.exists():  # created on writing: the first folder that exists must take it
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: folder {folder} is not writable")
    return path


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs; exits 143 instead of 130."""
    code = 143

    @classmethod
    def handler(cls, signum, frame):
        raise cls()


def os_error(e):
    """'PATH: No space left on device (ENOSPC)': what failed, where, and the errno to search for."""
    name = errno.errorcode.get(e.errno, "") if e.errno else ""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}" + (f" ({name})" if name else "")


def run_command(body, kept=lambda: "nothing half-written is left"):
    """Run a command the same way everywhere: a clear line and an exit status, never a traceback.
    `kept()` says, after Ctrl-C or SIGTERM, what was kept."""
    before = signal.getsignal(signal.SIGTERM)
    if before is not signal.SIG_IGN:  # nohup and friends ignore it on purpose
        signal.signal(signal.SIGTERM, Terminated.handler)
    try:
        return body()
    except KeyboardInterrupt as e:
        print(f"\ninterrupted: {kept()}", file=sys.stderr)
        sys.exit(getattr(e, "code", 130))
    except OSError as e:
        sys.exit(f"error: {os_error(e)}")
    except (ValueError, MemoryError) as e:
        sys.exit(f"error: {e}" if str(e) else f"error: {type(e).__name__}")
    finally:
        signal.signal(signal.SIGTERM, before)
