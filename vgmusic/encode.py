"""Songs -> token ids and back, the song-level split, and training windows.

An encoding turns one Song (vgmusic.song; extract.py reads them from MIDI) into a list of string tokens
and turns generated tokens back into Notes. Models store the encoding's spec and vocabulary, so sampling
decodes exactly as training encoded.
"""
import random
from pathlib import Path

import numpy as np

from .config import game_sources
from .song import Note, Song
from .store import read_json, tokens_hash
from .theory import diatonic_shift, key_shift

# The original's fixed step: every token lasted and advanced half a beat.
CLASSIC_STEP = 0.5


class Classic:
    """The original stream: pitch name ('E-4'), chord normal order ('0.4.7'), or 'Rest'."""
    name = "classic"
    key_normalize = False

    def spec(self):
        return {"name": self.name}

    def song_shift(self, song):
        return 0

    def song_tokens(self, song, transpose=0, steps=0, drop_outside=False):
        if transpose or steps:
            raise ValueError("the classic encoding cannot be transposed (its chords have no octave); "
                             "use --encoding event")
        return song.meta["classic"]

    def events(self, tokens):
        return len(tokens)  # one token per note, chord or rest

    def advance(self, token):
        """Grid steps a token moves time on: every classic token lasts half a beat."""
        return round(CLASSIC_STEP * GRID)

    def waits(self, steps):
        raise ValueError("the classic encoding has no wait tokens")

    def vocabulary(self, data_dir):
        return read_json(Path(data_dir) / "vocab.json", "vocabulary (run get_all_notes.py)")["classic"]

    def decode(self, tokens):
        """Notes (onset, duration in beats, pitch).

        Chords carry pitch classes only, so they are voiced from middle C as the original
        did; rests take their half beat instead of all landing at offset 0.
        """
        from music21 import pitch
        notes = []
        for i, tok in enumerate(tokens):
            t = i * CLASSIC_STEP
            if tok == "Rest":
                continue
            if tok[0].isdigit():
                notes += [Note(t, CLASSIC_STEP, 60 + int(pc)) for pc in tok.split(".")]
            else:
                notes.append(Note(t, CLASSIC_STEP, pitch.Pitch(tok).midi))
        return notes


# The event grid: 12 steps per quarter note holds sixteenths (3), triplet eighths (4) and
# triplet sixteenths (2) exactly.
GRID = 12
# Durations and waits a token can say, in grid steps: every step up to a beat, then the values
# songs use, up to two bars. Longer waits are chained; longer notes are cut at two bars.
TIME_STEPS = (list(range(1, 13)) + [15, 16, 18, 20, 21, 24, 27, 30, 32, 36, 42, 45, 48]
              + [54, 60, 66, 72, 84, 96])
MAX_STEP = TIME_STEPS[-1]
PAD = "<pad>"  # what comes before a song's first token, so models learn how songs open
# Control tokens a model's vocabulary holds after every note token, unused until a model is trained to
# read them (a game or style, a track or instrument, infill markers): reserving them now means those
# capabilities add no token and change no id; models trained before have none (their spec says 0).
RESERVED = 32
# Of those, 0 .. MAX_STYLES - 1 name styles (a model trained with --style: vgmusic/trainset.py), and
# ANY_STYLE is the one it learned all of them under, what composing without --style starts from.
MAX_STYLES = 16
ANY_STYLE = MAX_STYLES


def control(i):
    return f"<ctl{i}>"


# Which part of an event a token says, for the held-out loss split by kind and for the sampler.
TOKEN_KINDS = {"p": "pitch", "d": "duration", "w": "wait"}


def token_kind(token):
    if token == PAD:
        return "pad"
    if token.startswith("<"):
        return "control"
    return TOKEN_KINDS.get(token[0], "note") if token else "note"


def nearest_step(steps):
    return min(TIME_STEPS, key=lambda v: (abs(v - steps), v))


class Event:
    """Rhythm-aware tokens. One event is its pitches with octave, a duration and the wait to the next:

        p60 p64 p67 d12 w12     a C major triad held one beat, next event one beat later
        p72 d3 w6               a sixteenth, then a sixteenth of rest

    Rests are the gaps between a duration and its wait. A few small tokens per event keep the
    vocabulary fixed (every MIDI pitch, every grid value), so no data changes it, transposition
    never leaves it, and any chord in any octave is expressible.
    """
    name = "event"
    max_step = MAX_STEP  # the longest wait one token says

    def __init__(self, parts="melody", key_normalize=False, reserved=0):
        if parts not in ("melody", "all"):
            raise ValueError(f"parts must be 'melody' or 'all', got {parts!r}")
        if not isinstance(reserved, int) or isinstance(reserved, bool) or not 0 <= reserved <= 4096:
            raise ValueError(f"reserved must be a count of control tokens, got {reserved!r}")
        # parts: which tracks the encoding reads (the stored spec keeps the word, models carry it)
        self.parts, self.key_normalize, self.reserved = parts, bool(key_normalize), reserved

    def spec(self):
        spec = {"name": self.name, "parts": self.parts, "key_normalize": self.key_normalize, "grid": GRID}
        return dict(spec, reserved=self.reserved) if self.reserved else spec  # older models' spec, unchanged

    def events(self, tokens):
        # every event ends in one duration after its pitches; a sampled duration with no pitch is no event
        return sum(t[0] == "d" and p[0] == "p" for p, t in zip(tokens, tokens[1:]))

    def advance(self, token):
        """Grid steps a token moves time on: only waits do."""
        return int(token[1:]) if token[0] == "w" else 0

    def vocabulary(self, data_dir=None):
        return ([PAD] + [f"p{i}" for i in range(128)] + [f"d{v}" for v in TIME_STEPS]
                + [f"w{v}" for v in TIME_STEPS] + [control(i) for i in range(self.reserved)])

    def song_shift(self, song):
        return key_shift(song.key) if self.key_normalize and song.key is not None else 0

    def song_notes(self, song):
        """The notes this encoding reads: the melody track's, or every pitched track's. Notes without
        length (grace notes, which have no time of their own) are left out."""
        if self.parts == "melody":
            track = song.melody()
            notes = track.notes if track else []
        else:
            notes = sorted(n for t in song.pitched() for n in t.notes)
        return [n for n in notes if n.duration > 0]

    def song_tokens(self, song, transpose=0, steps=0, drop_outside=False):
        """Tokens of a song, shifted by its key normalisation plus `transpose` semitones, then moved by
        `steps` steps of the C major scale (which A minor shares).

        Returns None when the shift would push a note outside MIDI's 0-127 (a training song is then not
        used so moved); with `drop_outside` those notes are left out instead (a prime to continue).
        """
        shift = self.song_shift(song) + transpose
        notes = [(n[0], n[1], diatonic_shift(n[2] + shift, steps)) for n in self.song_notes(song)]
        if any(not 0 <= n[2] <= 127 for n in notes):
            if not drop_outside:
                return None
            notes = [n for n in notes if 0 <= n[2] <= 127]
        return self.encode_notes(notes)

    def encode_notes(self, notes):
        groups = {}
        for onset, dur, pitch, *_ in notes:
            key = (round(onset * GRID), nearest_step(dur * GRID))
            groups.setdefault(key, set()).add(int(pitch))
        events = sorted(groups.items(), key=lambda e: (e[0][0], -e[0][1]))
        # each event's wait is written when the next one starts: p.. d w.., and no w between
        # events that start together
        tokens, now = [], 0
        for (onset, dur), pitches in events:
            tokens += self.waits(onset - now)
            now = onset
            tokens += [f"p{p}" for p in sorted(pitches)] + [f"d{dur}"]
        if events:
            (onset, dur), _ = events[-1]
            tokens += self.waits(dur)
        return tokens

    @staticmethod
    def waits(steps):
        """Wait tokens summing to exactly `steps` (largest first), so onsets never drift."""
        out = []
        while steps > 0:
            v = max(t for t in TIME_STEPS if t <= steps)
            out.append(f"w{v}")
            steps -= v
        return out

    def decode(self, tokens):
        """Notes (onset, duration in beats, pitch). Tolerant of any token order a sampler makes: a wait or
        pitch without its event's duration gives the event the wait's length (or a beat); control tokens
        are no notes."""
        notes, now, pitches, dur = [], 0, [], None

        def flush(wait):
            length = dur if dur is not None else (wait or GRID)
            notes.extend(Note(now / GRID, length / GRID, p) for p in pitches)

        for tok in tokens:
            kind = tok[0]
            if tok[0] == "<":  # the pad and control tokens
                continue
            if kind == "p":
                if dur is not None:  # a pitch after a duration starts a new event at the same onset
                    flush(0)
                    pitches, dur = [], None
                pitches.append(int(tok[1:]))
            elif kind == "d":
                if pitches:
                    dur = int(tok[1:])
            elif kind == "w":
                wait = int(tok[1:])
                if pitches:
                    flush(wait)
                    pitches, dur = [], None
                now += wait
        if pitches:
            flush(0)
        return notes


ENCODINGS = {"classic": Classic, "event": Event}


def get_encoding(spec):
    """An encoding from its name or the spec a checkpoint stored."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name")
    spec.pop("grid", None)
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; choose from {', '.join(ENCODINGS)}")
    return ENCODINGS[name](**spec)


class Vocab:
    def __init__(self, tokens):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.hash = tokens_hash(self.tokens)

    def __len__(self):
        return len(self.tokens)

    def ids(self, tokens, where="song"):
        missing = sorted({t for t in tokens if t not in self.index})
        if missing:
            raise ValueError(f"{where}: tokens not in the vocabulary: {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''} (re-run get_all_notes.py)")
        return np.array([self.index[t] for t in tokens], dtype=np.int32)


def load_songs(data_dir, game):
    """The extracted Songs a game trains on, in a stable order; each one's meta says where it came from
    (source folder, file, sha256) and holds the original's tokens ("classic")."""
    songs = []
    for source in game_sources(game):
        path = Path(data_dir) / f"{source}.json"
        data = read_json(path, f"extracted songs of '{source}' (run get_all_notes.py first)")
        rows = data.get("songs") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ValueError(f"{path}: not a game's extracted songs (re-run get_all_notes.py)")
        for row in rows:
            try:
                song = Song.from_json(row["song"])
                song.meta = {"source": source, "file": str(row["file"]), "sha256": str(row["sha256"]),
                             "classic": list(row["classic"])}
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: a damaged song ({e}); re-run get_all_notes.py") from None
            song.title = song.meta["file"]
            songs.append(song)
    return songs


def split_songs(songs, val_fraction, val_songs=(), split_seed=0):
    """Hold out whole songs: windows from one song on both sides would flatter the held-out loss."""
    if len(songs) < 2:
        raise ValueError(f"need at least 2 songs to hold one out for validation, got {len(songs)}")
    if val_songs:
        names = {s.meta["file"] for s in songs}
        unknown = [v for v in val_songs if v not in names]
        if unknown:
            raise ValueError(f"validation songs not among this game's songs: {', '.join(unknown)}")
        held = set(val_songs)
    else:
        order = sorted(s.meta["file"] + "/" + s.meta["source"] for s in songs)
        random.Random(split_seed).shuffle(order)
        n = min(len(songs) - 1, max(1, round(val_fraction * len(songs))))
        held = {k.rsplit("/", 1)[0] for k in order[:n]}
    train = [s for s in songs if s.meta["file"] not in held]
    val = [s for s in songs if s.meta["file"] in held]
    return train, val


def flat_windows(id_lists, window, stride=1, pad_id=None, counts=False):
    """All songs in one flat array, and where each training window (window + 1 tokens) starts (and,
    with `counts`, how many windows each song gave).

    Windows never cross songs. With a pad id, each song gets `window` pads in front so its opening
    tokens are targets too. The last window of each song is always kept, whatever the stride.
    """
    pieces, starts, offset, per_song = [], [], 0, []
    for ids in id_lists:
        seq = np.concatenate([np.full(window, pad_id, np.int32), ids]) if pad_id is not None else ids
        n = len(seq) - window
        if n > 0:
            starts.append(offset + np.unique(np.append(np.arange(0, n, stride), n - 1)))
        per_song.append(len(starts[-1]) if n > 0 else 0)
        pieces.append(np.asarray(seq, np.int32))
        offset += len(seq)
    flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    return (flat, starts, per_song) if counts else (flat, starts)


def windows(id_lists, window, stride=1, pad_id=None):
    """Many-to-many windows as arrays: inputs ids[i:i+w], targets ids[i+1:i+w+1]."""
    flat, starts = flat_windows(id_lists, window, stride, pad_id)
    cut = flat[starts[:, None] + np.arange(window + 1)[None]] if len(starts) else np.zeros((0, window + 1), np.int32)
    return cut[:, :-1], cut[:, 1:]
