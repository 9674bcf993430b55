"""Songs -> token ids and back, the song-level split, and training windows.

An encoding turns one extracted song (see extract.py) into a list of string
tokens and turns generated tokens back into timed notes for render.py. Models
store the encoding's name and vocabulary, so sampling decodes exactly as
training encoded.
"""
import random
from pathlib import Path

import numpy as np

from .config import game_sources
from .store import read_json, tokens_hash

# The original's fixed step: every token lasted and advanced half a beat.
CLASSIC_STEP = 0.5


class Classic:
    """The original stream: pitch name ('E-4'), chord normal order ('0.4.7'), or 'Rest'."""
    name = "classic"

    def song_tokens(self, song):
        return song["classic"]

    def vocabulary(self, data_dir):
        return read_json(Path(data_dir) / "vocab.json", "vocabulary (run get_all_notes.py)")["classic"]

    def decode(self, tokens):
        """Timed notes [onset, duration, midi pitch] in quarter notes.

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
                notes += [[t, CLASSIC_STEP, 60 + int(pc)] for pc in tok.split(".")]
            else:
                notes.append([t, CLASSIC_STEP, pitch.Pitch(tok).midi])
        return notes


ENCODINGS = {"classic": Classic}


def get_encoding(name):
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; choose from {', '.join(ENCODINGS)}")
    return ENCODINGS[name]()


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
    """The extracted songs a game trains on, in a stable order."""
    songs = []
    for source in game_sources(game):
        data = read_json(Path(data_dir) / f"{source}.json",
                         f"extracted songs of '{source}' (run get_all_notes.py first)")
        songs += [dict(s, source=source) for s in data["songs"]]
    return songs


def split_songs(songs, val_fraction, val_songs=(), split_seed=0):
    """Hold out whole songs: windows from one song on both sides would flatter the held-out loss."""
    if len(songs) < 2:
        raise ValueError(f"need at least 2 songs to hold one out for validation, got {len(songs)}")
    if val_songs:
        names = {s["file"] for s in songs}
        unknown = [v for v in val_songs if v not in names]
        if unknown:
            raise ValueError(f"validation songs not among this game's songs: {', '.join(unknown)}")
        held = set(val_songs)
    else:
        order = sorted(s["file"] + "/" + s["source"] for s in songs)
        random.Random(split_seed).shuffle(order)
        n = min(len(songs) - 1, max(1, round(val_fraction * len(songs))))
        held = {k.rsplit("/", 1)[0] for k in order[:n]}
    train = [s for s in songs if s["file"] not in held]
    val = [s for s in songs if s["file"] in held]
    return train, val


def windows(id_lists, window):
    """Many-to-many windows: inputs ids[i:i+w], targets ids[i+1:i+w+1], never crossing songs."""
    xs, ys = [], []
    for ids in id_lists:
        n = len(ids) - window
        if n <= 0:
            continue
        idx = np.arange(n)[:, None] + np.arange(window)[None, :]
        xs.append(ids[idx])
        ys.append(ids[idx + 1])
    if not xs:
        return np.zeros((0, window), np.int32), np.zeros((0, window), np.int32)
    return np.concatenate(xs), np.concatenate(ys)
