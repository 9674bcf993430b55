"""Token shards: a corpus's songs, encoded, on disk, and read back as training windows in bounded memory.

build_shards encodes the songs extract.py wrote (data/<source>.json) with the event encoding and stores
their token ids, every song end to end, in NumPy files of at most `shard_tokens` ids each (uint16, written
with allow_pickle=False), one series of files a source, and describes them in index.json:

    <folder>/index.json                     written last, atomically: the shards below are complete
    <folder>/<source>-<k>-<sha8>.npy        1-D uint16 token ids; no song is split across two files

    index.json: format, encoding (the spec models store), vocabulary (tokens, in id order), vocab_hash,
        dtype, diatonic (the scale-step variants stored for every song: -N..N), run (the 12-token runs
        that make a near-copy),
        sources {name: {licence, songs, events, tokens, files, near_copies}},
        shards [{file, source, tokens, sha256}],
        songs [{source, file, sha256 (of the MIDI file), events, shard (a number into shards),
                variants [[steps, offset, length], ...]}],
        near_copies [[source, file, source, file of the song it repeats]]

A shard's name holds its content's hash, so rebuilding never rewrites a file a running reader has mapped;
files the new index no longer names are removed once it is written.

Shards(folder) reads an index and memory-maps the shards (np.load(mmap_mode="r")): only the pages a window
touches are ever read. Shards.windows(...) cuts training windows exactly as encode.flat_windows does
(windows never cross songs, `window` pads before each song, the last window of each song always kept,
inputs ids[i:i+w], targets ids[i+1:i+w+1]), without an array of window starts: window k is found from
a cumulative count a sequence, and a seeded shuffle is a pseudo-random permutation computed index by
index (Permutation; both in vgmusic/windows.py), so memory grows with the number of songs, never with tokens or windows. Windows
feeds model.fit as a generator (batches) or as a keras.utils.PyDataset (keras_dataset).
"""
import hashlib
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

from .store import atomic_path, read_json, tokens_hash, write_json
from .windows import Permutation, Windows, keras_dataset  # noqa: F401  (the reader's windows, kept apart)

SHARD_FORMAT = 1
INDEX = "index.json"
SHARD_TOKENS = 1 << 24  # ids a shard file holds at most: 32 MB
DTYPE = np.uint16  # every vocabulary here has fewer than 65,536 tokens (the event encoding's: 235)
# Two songs are one when this share of the shorter one's runs of RUN tokens are in the other too (as
# train.distinct judges a game's songs); a run found in more than COMMON songs is a commonplace (a scale,
# a repeated note), no sign of a copy, and is not counted.
SAME_SONG, RUN, COMMON = 0.8, 12, 64
SHARD_NAME = re.compile(r".+-\d{5}-[0-9a-f]{8}\.npy")


def default_encoding():
    """The encoding models train with by default (config.TrainConfig: melody track, key-normalised,
    with the reserved control tokens)."""
    from .encode import RESERVED, Event
    return Event(parts="melody", key_normalize=True, reserved=RESERVED)


def _run_hashes(ids, run=RUN):
    """The distinct runs of `run` consecutive ids of a song, each as one 64-bit number."""
    if len(ids) < run:
        return np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        powers = np.uint64(1_000_003) ** np.arange(run, dtype=np.uint64)
        return np.unique(np.lib.stride_tricks.sliding_window_view(ids.astype(np.uint64), run) @ powers)


class NearCopies:
    """Which earlier song a song nearly repeats, from an inverted index of its runs (train.distinct
    compares every pair, which thousands of songs make millions)."""

    def __init__(self):
        self.postings, self.sizes, self.whole = {}, [], {}

    def twin(self, ids):
        """The number of the earlier song this one repeats, or None; then remembers it under the next number."""
        whole = hashlib.sha256(ids.tobytes()).digest()
        if whole in self.whole:
            return self.whole[whole]
        runs = _run_hashes(ids)
        shared = {}
        for h in runs.tolist():
            songs = self.postings.get(h)
            if songs is not None and len(songs) <= COMMON:
                for s in songs:
                    shared[s] = shared.get(s, 0) + 1
        for s, n in sorted(shared.items()):
            if n >= SAME_SONG * min(len(runs), self.sizes[s]):
                return s
        me = len(self.sizes)
        self.sizes.append(len(runs))
        self.whole[whole] = me
        for h in runs.tolist():
            songs = self.postings.setdefault(h, [])
            if len(songs) <= COMMON:
                songs.append(me)
        return None


class _Writer:
    """One source's shard files: ids appended song by song, a file written whenever the next song would
    pass `limit` ids."""

    def __init__(self, folder, source, limit, index):
        self.folder, self.source, self.limit, self.index = folder, source, limit, index
        self.parts, self.size, self.files = [], 0, []

    def add(self, arrays):
        """Append a song's arrays; returns (shard number, offset of the first)."""
        total = sum(len(a) for a in arrays)
        if self.parts and self.size + total > self.limit:
            self.flush()
        at = self.size
        self.parts += arrays
        self.size += total
        return len(self.index["shards"]), at

    def flush(self):
        if not self.parts:
            return
        ids = np.concatenate(self.parts).astype(DTYPE)
        digest = hashlib.sha256(ids.tobytes()).hexdigest()
        name = f"{self.source}-{len(self.files):05d}-{digest[:8]}.npy"
        path = self.folder / name
        if not (path.is_file() and _sha256_npy(path) == digest):
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, ids, allow_pickle=False)
        self.index["shards"].append({"file": name, "source": self.source, "tokens": int(len(ids)), "sha256": digest})
        self.files.append(name)
        self.parts, self.size = [], 0


def _sha256_npy(path):
    try:
        return hashlib.sha256(np.load(path, mmap_mode="r", allow_pickle=False).tobytes()).hexdigest()
    except (OSError, ValueError):
        return None


def build_shards(folder, sources, data_dir, licences=None, encoding=None, diatonic=2, shard_tokens=SHARD_TOKENS,
                 distinct=True, progress=False):
    """Encode the songs of data_dir/<source>.json for each source into token shards in `folder`; return
    the index (also written to folder/index.json).

    Every song is stored as it is and moved by each number of scale steps in -diatonic..diatonic (a move
    that would leave MIDI's range is left out), its variants side by side in one shard. With `distinct`, a
    song that nearly repeats one stored before it (80% of its 12-token runs), in any source, is left out
    and listed in the index's near_copies: the same tune in two collections would otherwise sit on both
    sides of a held-out split. `licences` maps a source to the terms it is used under."""
    from tqdm import tqdm

    from .encode import Vocab
    from .song import Song
    enc = encoding or default_encoding()
    vocab = Vocab(enc.vocabulary())
    if len(vocab) > np.iinfo(DTYPE).max + 1:
        raise ValueError(f"a vocabulary of {len(vocab)} tokens does not fit uint16 ids")
    folder, data_dir = Path(folder), Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    steps_list = sorted(range(-diatonic, diatonic + 1), key=lambda s: (abs(s), s))  # 0 first
    index = {"format": SHARD_FORMAT, "encoding": enc.spec(), "vocabulary": vocab.tokens, "vocab_hash": vocab.hash,
             "dtype": np.dtype(DTYPE).name, "diatonic": diatonic, "run": RUN, "sources": {}, "shards": [],
             "songs": [], "near_copies": []}
    copies, stored = NearCopies(), []  # stored: (source, file) of each song NearCopies numbered
    for source in sources:
        path = data_dir / f"{source}.json"
        data = read_json(path, f"extracted songs of '{source}' (run get_all_notes.py first)")
        rows = data.get("songs") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ValueError(f"{path}: not a game's extracted songs (re-run get_all_notes.py)")
        writer = _Writer(folder, source, shard_tokens, index)
        info = {"licence": (licences or {}).get(source, ""), "songs": 0, "events": 0, "tokens": 0,
                "near_copies": 0}
        for row in tqdm(rows, desc=f"shards {source}", unit="song", file=sys.stderr,
                        disable=None if progress else True):
            try:
                song = Song.from_json(row["song"])
                name, digest = str(row["file"]), str(row["sha256"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: a damaged song ({e}); re-run get_all_notes.py") from None
            variants = []
            for steps in steps_list:
                tokens = enc.song_tokens(song, 0, steps)
                if tokens:
                    variants.append((steps, vocab.ids(tokens, f"{path}: {name}").astype(DTYPE), tokens))
            if not variants or variants[0][0] != 0:
                continue  # no note in the melody (or none it can be read in)
            if distinct:
                twin = copies.twin(variants[0][1])
                if twin is not None:
                    index["near_copies"].append([source, name, *stored[twin]])
                    info["near_copies"] += 1
                    continue
                stored.append((source, name))
            shard, at = writer.add([v[1] for v in variants])
            offsets = np.cumsum([0] + [len(v[1]) for v in variants[:-1]]) + at
            events = enc.events(variants[0][2])
            index["songs"].append({"source": source, "file": name, "sha256": digest, "events": events,
                                   "shard": shard, "variants": [[s, int(o), len(ids)] for (s, ids, _), o
                                                                in zip(variants, offsets)]})
            info["songs"] += 1
            info["events"] += events
            info["tokens"] += int(sum(len(v[1]) for v in variants))
        writer.flush()
        info["files"] = writer.files
        index["sources"][source] = info
    write_json(folder / INDEX, index)
    named = {s["file"] for s in index["shards"]}
    for p in folder.iterdir():  # shards of an earlier build the new index no longer names
        if SHARD_NAME.fullmatch(p.name) and p.name not in named:
            p.unlink(missing_ok=True)
    return index


class Shards:
    """A shard folder, read: its index, and each shard memory-mapped on first use."""

    def __init__(self, folder):
        self.folder = Path(folder)
        index = read_json(self.folder / INDEX, "token shards (run get_all_notes.py --base)")
        where = self.folder / INDEX
        if not isinstance(index, dict) or index.get("format") != SHARD_FORMAT:
            raise ValueError(f"{where}: not token shards of format {SHARD_FORMAT} (rebuild them)")
        try:
            self.tokens = [str(t) for t in index["vocabulary"]]
            self.vocab_hash, self.spec = index["vocab_hash"], dict(index["encoding"])
            self.sources, self.songs, self.files = index["sources"], index["songs"], index["shards"]
            rows = [(i, v[0], s["shard"], v[1], v[2]) for i, s in enumerate(self.songs) for v in s["variants"]]
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(f"{where}: a damaged index ({type(e).__name__}: {e})") from None
        if tokens_hash(self.tokens) != self.vocab_hash:
            raise ValueError(f"{where}: the vocabulary does not match its hash")
        if index.get("dtype") != np.dtype(DTYPE).name:
            raise ValueError(f"{where}: ids of type {index.get('dtype')!r}, not {np.dtype(DTYPE).name}")
        self.index = index
        # one row a stored sequence: song, steps, shard, offset, length (numbers, not Python lists)
        self.table = np.array(rows, np.int64).reshape(-1, 5)
        sizes = np.array([f["tokens"] for f in self.files], np.int64)
        t = self.table
        within = lambda: (t[:, 3] + t[:, 4] > sizes[np.clip(t[:, 2], 0, len(sizes) - 1)]).any()  # noqa: E731
        if len(t) and ((t[:, 2] < 0).any() or (t[:, 2] >= len(sizes)).any() or (t[:, 3] < 0).any()
                       or (t[:, 4] <= 0).any() or within()):
            raise ValueError(f"{where}: a song lies outside its shard")
        self._maps = {}

    def __len__(self):
        return len(self.songs)

    @property
    def pad_id(self):
        from .encode import PAD
        return self.tokens.index(PAD) if PAD in self.tokens else None

    def shard(self, k):
        """Shard k, memory-mapped: nothing is read until a window touches it."""
        if k not in self._maps:
            info = self.files[k]
            path = self.folder / info["file"]
            try:
                ids = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: cannot read this shard ({getattr(e, 'strerror', None) or e}); "
                                 "rebuild with get_all_notes.py --base") from None
            if ids.dtype != DTYPE or ids.ndim != 1 or len(ids) != info["tokens"]:
                raise ValueError(f"{path}: {ids.dtype} ids of shape {ids.shape}, the index says {info['tokens']} "
                                 f"{np.dtype(DTYPE).name}; rebuild with get_all_notes.py --base")
            self._maps[k] = ids
        return self._maps[k]

    def verify(self):
        """Read every shard whole and compare it with the sha256 the index records; ValueError on the first
        that differs."""
        for k, info in enumerate(self.files):
            if hashlib.sha256(self.shard(k).tobytes()).hexdigest() != info["sha256"]:
                raise ValueError(f"{self.folder / info['file']}: not the shard the index describes (sha256 differs)")

    def ids(self, song, steps=0):
        """A song's ids (moved by `steps` scale steps), memory-mapped; KeyError when not stored so moved."""
        rows = self.table[(self.table[:, 0] == song) & (self.table[:, 1] == steps)]
        if not len(rows):
            raise KeyError(f"song {song} has no variant moved by {steps} steps")
        _, _, k, at, n = rows[0]
        return self.shard(int(k))[at:at + n]

    def split(self, val_fraction=0.15, seed=0, sources=None, held_out=()):
        """Song numbers (train, held out): whole songs held out, a seeded `val_fraction` of each source's
        (at least one of a source of two or more), so every source is represented on both sides.

        `held_out`, (source, file) pairs, are held out whatever the draw, and count towards their source's
        share: give the songs a fine-tuned game model is judged on, so the base model never trains on them."""
        forced = {(str(a), str(b)) for a, b in held_out}
        train, val = [], []
        for source in sources or self.sources:
            mine = sorted((s["file"], i) for i, s in enumerate(self.songs) if s["source"] == source)
            fixed = [i for f, i in mine if (source, f) in forced]
            free = [(f, i) for f, i in mine if (source, f) not in forced]
            random.Random(f"{seed}/{source}").shuffle(free)
            n = min(len(mine) - 1, max(1, round(val_fraction * len(mine)))) if len(mine) > 1 else 0
            n = max(0, n - len(fixed))
            val += fixed + [i for _, i in free[:n]]
            train += [i for _, i in free[n:]]
        return np.array(sorted(train), np.int64), np.array(sorted(val), np.int64)

    def windows(self, window, stride=1, songs=None, steps=None, pad=True, shuffle=False, seed=0, weights=None):
        """Training windows of `window` + 1 tokens over the chosen songs (numbers; default all) and variants
        (scale steps; default every one stored), as encode.flat_windows cuts them: see Windows.

        `weights` {source: n}: each song of that source counts n times (its windows are n times as likely
        in a shuffled epoch); a source not named counts once. Only rows repeat, so memory still grows with
        songs, not tokens."""
        t = self.table
        keep = np.ones(len(t), bool)
        if songs is not None:
            keep &= np.isin(t[:, 0], np.asarray(songs, np.int64))
        if steps is not None:
            keep &= np.isin(t[:, 1], np.asarray(list(steps), np.int64))
        rows = t[keep]
        if weights:
            bad = {k: v for k, v in weights.items() if not isinstance(v, int) or v < 1}
            if bad:
                raise ValueError(f"{self.folder}: a source's weight must be a whole number from 1, got {bad}")
            per_song = np.array([weights.get(s["source"], 1) for s in self.songs], np.int64)
            rows = np.repeat(rows, per_song[rows[:, 0]], axis=0)
        return Windows(self, rows, window, stride, self.pad_id if pad else None, shuffle, seed)


def describe(folder):
    """index.json without the per-song rows: what a model's sidecar could record of its corpus."""
    index = json.loads((Path(folder) / INDEX).read_text())
    return {k: v for k, v in index.items() if k not in ("songs", "near_copies")}
