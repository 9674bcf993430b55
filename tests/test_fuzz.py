"""Every kind of file the project reads, corrupted at random: one clean line or a working result, never a
traceback, and never a hang.

Each test takes real files (a Bach chorale written by music21, a song written by predict.py and, where
installed, an OpenTTD song; the extraction cache and data/<game>.json made from chorales; the shipped
Pokemon model's sidecar and weights; a song record written by predict.py; the downloader's manifest),
applies seeded random corruptions to each and feeds every corrupted copy to the project's own reader. Per
case, the reader either works or raises ValueError (FileNotFoundError where the API says so) whose message
is one line and names the file it was given; any other exception, a message of several lines (or of over
LONGEST characters), or a case slower than LIMIT seconds is a failure. A test lists all its failing cases
together, each with its seed, kind, number and what was done to the file; every case draws from its own
random.Random(f"{SEED}:{KIND}:{N}") (rng_of), so it is rebuilt alone, and FUZZ_SEED=N tries other seeds.

Readers that could crash the interpreter or hang (HDF5's C library on a damaged file; music21 through the
scripts) run in a child process with a timeout. A few cases run the real scripts as a user does.
"""
import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from conftest import ROOT, write_corpus_midi

SEED = int(os.environ.get("FUZZ_SEED", "20240613"))  # fixed; another seed explores other corruptions
LIMIT = 5.0  # seconds a case may take
LONGEST = 1000  # characters of one error line: a line that quotes a whole damaged value is no help
CASES = 100  # in-process cases per kind and source
MODEL = ROOT / "pokemon_red_blue_yellow" / "weights"
MANIFEST = ROOT / "midi_songs" / "manifest.json"
OPENTTD = Path("/usr/share/games/openttd/baseset/openmsx")
GAME = "fuzz_chorales"
CHORALES = ["bach/bwv66.6", "bach/bwv1.6"]


def rng_of(kind, n):
    return random.Random(f"{SEED}:{kind}:{n}")


def where(kind, n, what):
    return f"[seed {SEED}, {kind} case {n}: {'; '.join(what)}]"


# --- judging one case ----------------------------------------------------------------------------------

def attempt(fn):
    """(value, exception or None, seconds) of fn()."""
    start = time.perf_counter()
    try:
        value, error = fn(), None
    except Exception as e:  # noqa: BLE001 -- judged below, every kind
        value, error = None, e
    return value, error, time.perf_counter() - start


def problem(error, took, names=(), allowed=(ValueError,)):
    """What breaks the promise in one case's outcome, or None. `names`: one of them must be in the message."""
    if took > LIMIT:
        return f"took {took:.1f} s (limit {LIMIT:g} s)"
    if error is None:
        return None
    kind = type(error)
    own = kind.__module__.startswith("vgmusic") and isinstance(error, allowed)  # a ValueError of the project's
    if kind not in allowed and not own:
        frames = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                            for f in reversed(traceback.extract_tb(error.__traceback__)[-3:]))
        return f"{kind.__module__}.{kind.__name__} escaped ({str(error)[:200]!r}) at {frames}"
    message = str(error)
    if not message.strip():
        return f"{kind.__name__} with an empty message"
    if "\n" in message or "\r" in message:
        return f"a message of several lines: {message[:300]!r}"
    if len(message) > LONGEST:
        return f"a message of {len(message)} characters: {message[:200]!r}..."
    if names and not any(str(n) in message for n in names):
        return f"the message does not name the file: {message[:300]!r}"
    return None


def report(failures):
    """Fail listing every case that broke the promise."""
    assert not failures, f"{len(failures)} case(s) broke the promise:\n" + "\n".join(failures[:25])


# --- mutating JSON values ------------------------------------------------------------------------------

def nested(depth):
    out = []
    for _ in range(depth):
        out = [out]
    return out


def odd_value(rng, old):
    """A value of another type or an extreme of the same: what a damaged or hand-edited file may hold."""
    pool = [None, True, False, 0, -1, 1.5, 2 ** 63, 10 ** 400, -10 ** 400, 1e308, -1e308, 5e-324, math.nan,
            math.inf, -math.inf, "", "x", "\ud800", "\udcff", "0", "1e9", "a\nb", [], {}, nested(40), [None],
            {"x": 1}, [[0, 1], [2]], "p60" * 50]
    if isinstance(old, bool):
        pool += [int(old), str(old).lower()]
    elif isinstance(old, (int, float)):
        big = old * 10 ** 30 if isinstance(old, int) else old * 1e300 if abs(old) < 1e300 else -old
        pool += [str(old), [old], -old, big, float(old) + 0.5 if abs(old) < 1e300 else old]
    elif isinstance(old, str):
        pool += [old * 200, old + "\n", old.upper(), [old], len(old), old[::-1]]
    elif isinstance(old, list):
        pool += [old[:len(old) // 2], old + old, old[::-1], [old], {str(i): v for i, v in enumerate(old[:5])},
                 [odd_value(rng, None)] + old[1:], len(old)]
    elif isinstance(old, dict):
        pool += [list(old.values()), {**old, "unexpected": [1]}, {k: None for k in old}, list(old)]
    return copy.deepcopy(rng.choice(pool))


def children(node):
    return list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []


def mutate_json(rng, doc, ops=None):
    """`doc` (a JSON value) changed in 1-3 places: a key or element deleted, a value replaced by another type or
    an extreme, or (rarely) the whole document replaced. Returns (new doc, [what was done])."""
    doc, done = copy.deepcopy(doc), []
    for _ in range(ops or rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.04:
            doc = odd_value(rng, doc)
            done.append(f"document -> {json.dumps(doc)[:40]}")
            continue
        path, node, parent = [], doc, None
        while children(node) and not (path and rng.random() < 0.3):  # biased to shallow places, any depth
            key = rng.choice(children(node))
            path.append(key)
            parent, node = node, node[key]
        if parent is None:
            continue
        key = path[-1]
        if rng.random() < 0.3:
            del parent[key]
            done.append(f"delete {path}")
        else:
            parent[key] = odd_value(rng, node)
            done.append(f"{path} -> {json.dumps(parent[key])[:40]}")
    return doc, done


def mutate_text(rng, data):
    """The bytes of a JSON file damaged as disks, editors and encodings damage them."""
    op = rng.randrange(9)
    if op == 0:
        at = rng.randrange(len(data))
        return data[:at], [f"truncated at byte {at}"]
    if op == 1:
        out = bytearray(data)
        spots = [rng.randrange(len(out)) for _ in range(rng.randint(1, 6))]
        for i in spots:
            out[i] ^= rng.randrange(1, 256)
        return bytes(out), [f"bytes flipped at {spots}"]
    if op == 2:
        at = rng.randrange(len(data))
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"))
        return data[:at] + bad + data[at:], [f"invalid UTF-8 {bad!r} at {at}"]
    if op == 3:
        return rng.randbytes(rng.randrange(1, 300)), ["random bytes"]
    if op == 4:
        return rng.choice((b"", b" \n", b"\0" * 64, b"null", b"[]", b"42", b'"text"')), ["not a JSON object"]
    if op == 5:
        depth = rng.choice((1000, 100000))
        return b"[" * depth + b"]" * depth, [f"lists nested {depth} deep"]
    if op == 6:
        return b"\xef\xbb\xbf" + data, ["a UTF-8 byte-order mark"]
    if op == 7:
        return data.replace(b"1", b"9" * 5000, 1), ["a 5000-digit number"]
    return data.decode("utf-8").encode("utf-16"), ["UTF-16"]


def write_mutated_json(rng, path, doc, raw):
    """Write a JSON-level (2 in 3) or byte-level (1 in 3) corruption of `doc` (whose file bytes are `raw`)."""
    if rng.random() < 2 / 3:
        doc, done = mutate_json(rng, doc)
        path.write_text(json.dumps(doc))  # NaN and Infinity as json writes them, which json.loads accepts
    else:
        data, done = mutate_text(rng, raw)
        path.write_bytes(data)
    return done


# --- mutating MIDI bytes -------------------------------------------------------------------------------

def midi_chunks(data):
    """[(offset, tag, length)] of the chunks a file's bytes declare, as far as they go."""
    out, at = [], 0
    while at + 8 <= len(data):
        length = int.from_bytes(data[at + 4:at + 8], "big")
        out.append((at, data[at:at + 4], length))
        at += 8 + length
    return out


def mutate_midi(rng, data):
    """One to three of the corruptions a MIDI file meets: cut short, flipped bytes, wrong chunk lengths,
    huge delta times, odd header fields, broken tempo and metre events, chunks lost or repeated."""
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        chunks = midi_chunks(data)
        tracks = [c for c in chunks if c[1] == b"MTrk"]
        op = rng.randrange(11)
        if op == 0 and len(data) > 1:
            at = rng.randrange(len(data))
            data = data[:at]
            done.append(f"truncated at {at}")
        elif op == 1:
            out = bytearray(data)
            spots = [rng.randrange(len(out)) for _ in range(rng.randint(1, 8))] if out else []
            for i in spots:
                out[i] ^= rng.randrange(1, 256)
            data = bytes(out)
            done.append(f"flipped {spots}")
        elif op == 2 and chunks:
            at, tag, length = rng.choice(chunks)
            new = rng.choice((0, 1, 5, max(0, length - 1), length + 1, length * 2, 0x7FFFFFFF, 0xFFFFFFFF,
                              rng.randrange(2 ** 32))) & 0xFFFFFFFF
            data = data[:at + 4] + new.to_bytes(4, "big") + data[at + 8:]
            done.append(f"{tag!r} at {at} length {length} -> {new}")
        elif op == 3 and tracks:
            at, _, length = rng.choice(tracks)
            delta = rng.choice((b"\xff\xff\xff\x7f", b"\x8f\xff\xff\x7f", b"\xff\xff\xff\xff\x7f", b"\x81\x80\x80\x00"))
            event = (delta + b"\xff\x01\x00") * rng.randint(1, 3)  # empty text events after huge waits
            fix = rng.random() < 0.8
            new = length + len(event) if fix else length
            data = data[:at + 4] + (new & 0xFFFFFFFF).to_bytes(4, "big") + event + data[at + 8:]
            done.append(f"huge delta {delta.hex()} x{len(event) // (len(delta) + 3)} in track at {at}"
                        + ("" if fix else ", length unchanged"))
        elif op == 4 and len(data) >= 14:
            field = rng.choice(("format", "ntracks", "division"))
            at = {"format": 8, "ntracks": 10, "division": 12}[field]
            old = int.from_bytes(data[at:at + 2], "big")
            new = rng.choice({"format": (0, 1, 2, 3, 0xFFFF),
                              "ntracks": (0, 1, old + 1, max(0, old - 1), 0xFFFF),
                              "division": (0, 1, 3, 0x7FFF, 0x8000, 0xE250, 0xFFFF, rng.randrange(65536))}[field])
            data = data[:at] + (new & 0xFFFF).to_bytes(2, "big") + data[at + 2:]
            done.append(f"header {field} {old} -> {new}")
        elif op == 5:
            for marker, body in ((b"\xff\x51\x03", (b"\0\0\0", b"\0\0\1", b"\xff\xff\xff")),
                                 (b"\xff\x58\x04", (b"\0\x02\x18\x08", b"\x04\xff\x18\x08", b"\x04\x1f\x18\x08",
                                                    b"\x07\x00\x00\x00"))):
                at = data.find(marker)
                if at >= 0 and rng.random() < 0.7:
                    new = rng.choice(body)
                    data = data[:at + 3] + new + data[at + 3 + len(new):]
                    done.append(f"event {marker.hex()} at {at} -> {new.hex()}")
        elif op == 6 and tracks:
            at, _, length = rng.choice(tracks)
            data = data[:at] + data[at + 8 + length:]
            done.append(f"track at {at} removed")
        elif op == 7 and tracks:
            at, _, length = rng.choice(tracks)
            data = data + data[at:at + 8 + length] * rng.randint(1, 3)
            done.append(f"track at {at} repeated")
        elif op == 8 and len(data) > 16:
            at = rng.randrange(14, len(data))
            junk = bytes(rng.choice((0x80, 0x90, 0xF0, 0xF7, 0xFF, 0x00, 0x7F)) for _ in range(rng.randint(1, 12)))
            data = data[:at] + junk + data[at:]
            done.append(f"status bytes {junk.hex()} inserted at {at}")
        elif op == 9:
            size = rng.choice((len(data), len(data) + 100, 0xFFFFFFFF, 3))
            body = b"RMID" + b"data" + size.to_bytes(4, "little") + data
            data = b"RIFF" + len(body).to_bytes(4, "little") + body
            done.append(f"RIFF-wrapped, data length {size}")
        elif op == 10 and len(data) > 20:
            start = rng.randrange(len(data))
            end = min(len(data), start + rng.randint(1, 64))
            data = data[:start] + data[end:]
            done.append(f"bytes {start}..{end} removed")
    return data, done


# --- sources: real files -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    """Two chorales written by music21, extracted as get_all_notes.py does: (songs folder, data folder)."""
    base = tmp_path_factory.mktemp("fuzz_sources")
    write_corpus_midi(base / "songs" / GAME, CHORALES)
    from vgmusic.extract import extract
    extract(base / "songs", base / "data", progress=False)
    return base / "songs" / GAME, base / "data"


def midi_sources(chorales, record):
    songs, _ = chorales
    sources = [songs / "bach_bwv66.6.mid", record / "s.mid"]  # music21's writing, and the project's own
    openttd = sorted(OPENTTD.glob("*.mid")) if OPENTTD.is_dir() else []
    if openttd:
        # a fixed song where the usual one is installed, else the smallest (quick to read many times)
        named = OPENTTD / "5432gone_redfarn.mid"
        sources.append(named if named in openttd else min(openttd, key=lambda p: p.stat().st_size))
    return sources


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """A folder holding one real song written by predict.py: s.mid, s.png and its record s.song.json."""
    folder = tmp_path_factory.mktemp("fuzz_song")
    run = subprocess.run([sys.executable, str(ROOT / "pokemon_red_blue_yellow" / "predict.py"), "--out",
                          str(folder / "s.mid"), "--bars", "2", "--seed", "1", "--no-audio", "--no-page"],
                         capture_output=True, text=True, timeout=300, cwd=folder)
    assert run.returncode == 0, run.stderr
    return folder


# --- 1. MIDI --------------------------------------------------------------------------------------------

def test_midi(chorales, record, tmp_path):
    from vgmusic.midi import midi_to_song, parse_bytes, read_midi
    from vgmusic.song import Song
    failures = []
    for source in midi_sources(chorales, record):
        original = source.read_bytes()
        for n in range(CASES):
            rng = rng_of(f"midi:{source.name}", n)
            data, done = mutate_midi(rng, original)
            case = where(f"midi of {source.name}", n, done)
            path = tmp_path / f"{source.stem}-{n}.mid"
            path.write_bytes(data)
            song, error, took = attempt(lambda: read_midi(path))
            wrong = problem(error, took, names=(path,))
            if wrong is None and song is not None:
                # what the reader gives, extraction stores as JSON and reads back: the check must accept it
                again, error, took = attempt(lambda: Song.from_json(json.loads(json.dumps(song.to_json()))))
                if error is not None:
                    wrong = f"read, but its Song's JSON is refused: {type(error).__name__}: {error}"
                elif again.to_json() != song.to_json():
                    wrong = "read, but its Song's JSON does not read back the same"
            if wrong is None:  # the bytes API, without a path
                _, error, took = attempt(lambda: midi_to_song(parse_bytes(data)))
                wrong = problem(error, took)
                if wrong is None and (error is None) != (song is not None):
                    wrong = "read_midi and parse_bytes/midi_to_song disagree"
            if wrong:
                failures.append(f"{case} {wrong}")
            path.unlink()
    report(failures)


# --- 2. extraction cache entries, Songs, data/<game>.json -----------------------------------------------

def cache_entries(data):
    entries = [json.loads(p.read_text()) for p in sorted((data / "cache").glob("*.json"))]
    assert entries
    return entries + [{"version": 3, "error": "timed out after 60 s", "kind": "timeout", "timeout": 60,
                       "max_memory": 2048}]


def test_cache_entries(chorales, tmp_path):
    from vgmusic.song import Song
    from vgmusic.extract import _read_cache, _retry, cache_problem
    _, data = chorales
    failures = []
    entries = cache_entries(data)
    for n in range(CASES):
        rng = rng_of("cache entry", n)
        entry = entries[n % len(entries)]
        mutated, done = mutate_json(rng, entry)
        case = where("cache entry", n, done)
        said, error, took = attempt(lambda: cache_problem(mutated))
        wrong = problem(error, took, allowed=())
        if wrong is None and said is not None and (not isinstance(said, str) or not said or "\n" in said):
            wrong = f"cache_problem said {said!r}, not None or a one-line reason"
        if wrong is None and said is None:  # accepted: what extraction then does with it must work
            _, error, took = attempt(lambda: (_retry(mutated, 120, 4096), "error" in mutated and mutated["error"] + "",
                                              "error" in mutated or Song.from_json(mutated["song"])))
            wrong = problem(error, took, allowed=())
            wrong = wrong and f"cache_problem accepted it, then: {wrong}"
        if wrong is None:  # and the file as extraction reads it, byte-level damage too
            path = tmp_path / f"{n}.json"
            done += write_mutated_json(rng, path, mutated, json.dumps(entry, indent=1).encode())
            case = where("cache entry", n, done)
            reasons = []
            got, error, took = attempt(lambda: _read_cache(path, reasons.append))
            wrong = problem(error, took, allowed=())
            bad = [r for r in reasons if not isinstance(r, str) or not r or "\n" in r]
            if wrong is None and (bad or len(reasons) > 1 or got is not None and reasons):
                wrong = f"_read_cache warned {reasons!r} and returned {'an entry' if got else got}"
            path.unlink()
        if wrong:
            failures.append(f"{case} {wrong}")
    report(failures)


def test_song_from_json(chorales, record):
    from vgmusic.song import Song
    _, data = chorales
    songs = [e["song"] for e in cache_entries(data) if "song" in e]
    songs.append(json.loads((record / "s.song.json").read_text())["song"])
    failures = []
    for n in range(CASES):
        rng = rng_of("song", n)
        mutated, done = mutate_json(rng, songs[n % len(songs)])
        case = where("song", n, done)
        song, error, took = attempt(lambda: Song.from_json(mutated))
        wrong = problem(error, took)
        if wrong is None and song is not None:
            # a Song the check accepts is one every stage can use: its figures and its JSON round trip
            _, error, took = attempt(lambda: (song.duration, song.bars, song.melody(), song.notes(drums=True),
                                              Song.from_json(json.loads(json.dumps(song.to_json())))))
            wrong = problem(error, took, allowed=())
        if wrong:
            failures.append(f"{case} {wrong}")
    report(failures)


def test_data_json(chorales, tmp_path):
    from vgmusic.encode import load_songs
    _, data = chorales
    raw = (data / f"{GAME}.json").read_bytes()
    doc = json.loads(raw)
    failures = []
    for n in range(CASES):
        rng = rng_of("data json", n)
        folder = tmp_path / str(n)
        folder.mkdir()
        path = folder / f"{GAME}.json"
        done = write_mutated_json(rng, path, doc, raw)
        if rng.random() < 0.1:
            path.unlink()
            done = ["the file removed"]
        _, error, took = attempt(lambda: load_songs(folder, GAME))
        wrong = problem(error, took, names=(path,), allowed=(ValueError, FileNotFoundError))
        if wrong:
            failures.append(f"{where('data json', n, done)} {wrong}")
        shutil.rmtree(folder)
    report(failures)


# --- 3. model sidecars ----------------------------------------------------------------------------------

def test_sidecar(tmp_path):
    from vgmusic.checkpoint import read_sidecar
    from vgmusic.compose import load_model
    raw = (MODEL / "model.json").read_bytes()
    doc = json.loads(raw)
    failures = []
    for n in range(CASES):
        rng = rng_of("sidecar", n)
        folder = tmp_path / str(n)
        folder.mkdir()
        (folder / "best.weights.h5").symlink_to(MODEL / "best.weights.h5")
        path = folder / "model.json"
        done = write_mutated_json(rng, path, doc, raw)
        case = where("sidecar", n, done)
        meta, error, took = attempt(lambda: read_sidecar(folder))
        wrong = problem(error, took, names=(path, folder), allowed=(ValueError, FileNotFoundError))
        if wrong is None and meta is not None:  # accepted: loading the model must work or say why in one line
            _, error, took = attempt(lambda: load_model(folder))
            wrong = problem(error, took, names=(folder,), allowed=(ValueError, FileNotFoundError))
            wrong = wrong and f"read_sidecar accepted it, load_model: {wrong}"
        if wrong:
            failures.append(f"{case} {wrong}")
        shutil.rmtree(folder)
    report(failures)


# --- 4. weights -----------------------------------------------------------------------------------------

def model_shape():
    meta = json.loads((MODEL / "model.json").read_text())
    return meta["arch"], len(meta["vocab"]), meta["hparams"]


def edit_weights(rng, path):
    """Edit a copy of the weights through h5py: wrong shapes and dtypes, datasets or groups removed, NaN.
    Returns ([what was done], whether the reader must refuse it: None where either answer is right)."""
    import h5py
    import numpy as np
    with h5py.File(path, "r+") as f:
        found = []
        f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        groups = []
        f["layers"].visititems(lambda name, obj: groups.append(f"layers/{name}") if isinstance(obj, h5py.Group)
                               else None)
        name = rng.choice(found)
        old = f[name]
        shape, op = old.shape, rng.randrange(11)
        if op == 0:
            del f[name]
            return [f"{name} removed"], True
        if op == 1:
            new = tuple(max(1, d + rng.choice((-1, 1))) for d in shape) if rng.random() < 0.5 else shape[::-1] + (1,)
            del f[name]
            f[name] = np.zeros(new, "float32")
            return [f"{name} shape {shape} -> {new}"], True
        if op == 2:
            dtype = rng.choice(("int8", "int64", "float16", "float64", "complex64", "bool", "S4", "uint8"))
            values = old[()]
            del f[name]
            f[name] = values.astype(dtype) if dtype != "S4" else np.full(shape, b"ab", "S4")
            return [f"{name} dtype -> {dtype}"], not dtype.startswith("float")
        if op == 3:
            values = old[()]
            value = rng.choice((np.nan, np.inf, -np.inf, 3e38))
            values.flat[rng.randrange(values.size)] = value
            old[()] = values
            return [f"{name} holds {value}"], value != 3e38
        if op == 4:
            del f[name]
            f[name] = 1.0
            return [f"{name} -> a scalar"], True
        if op == 5:
            del f[name]
            f.create_group(name)
            return [f"{name} -> an empty group"], True
        if op == 6:
            group = rng.choice(groups)
            del f[group]
            return [f"{group} removed"], None
        if op == 7:
            group = rng.choice([g for g in groups if g.endswith("/vars")])
            f[group].attrs["name"] = rng.choice(("dense", "logits", "", "x" * 100, "lstm_0"))
            return [f"{group} name -> {f[group].attrs['name']!r}"], None
        if op == 10:  # a name damaged on disk: h5py gives one that is not UTF-8 as bytes
            group = rng.choice([g for g in groups if g.count("/") in (1, 2)])
            parent, _, leaf = group.rpartition("/")
            new = rng.choice((leaf.encode()[:2] + b"\xff" + leaf.encode()[3:], leaf[:2] + "\r\n" + leaf[2:]))
            f[parent].move(leaf, new)
            return [f"{group} renamed {new!r}"], None
        if op == 8:
            f.create_group("layers/dense_7/vars")["0"] = np.zeros((3, 3), "float32")
            return ["an extra dense layer"], True
        del f["layers"]
        f["layers"] = np.zeros(3)
        return ["layers -> a dataset"], True


def test_weights_edited(tmp_path):
    import numpy as np
    from vgmusic.infer import NumpyNet
    arch, vocab, hparams = model_shape()
    failures = []
    for n in range(40):
        rng = rng_of("weights edited", n)
        path = tmp_path / f"{n}.weights.h5"
        shutil.copyfile(MODEL / "best.weights.h5", path)
        done, refuse = edit_weights(rng, path)
        net, error, took = attempt(lambda: NumpyNet(arch, vocab, hparams, path))
        wrong = problem(error, took, names=(path,))
        if wrong is None and refuse and error is None:
            wrong = "read as if nothing were wrong"
        if wrong is None and net is not None:  # accepted: the network runs, or says in one line why not
            _, error, took = attempt(lambda: net.forward(np.zeros((2, net.window), np.int64)))
            wrong = problem(error, took)
            wrong = wrong and f"read, then forward: {wrong}"
        if wrong:
            failures.append(f"{where('weights edited', n, done)} {wrong}")
        path.unlink()
    report(failures)


def damage_bytes(rng, data):
    """A weights file cut short or with a few bytes flipped, most in the HDF5 structures (the first and last
    kilobytes and around the superblock), some anywhere."""
    op = rng.randrange(3)
    if op == 0:
        at = rng.choice((rng.randrange(64), rng.randrange(4096), rng.randrange(len(data))))
        return data[:at], [f"truncated at {at}"]
    out = bytearray(data)
    spots = []
    for _ in range(rng.randint(1, 4) if op == 1 else rng.randint(5, 40)):
        spots.append(rng.choice((rng.randrange(2048), rng.randrange(len(out) - 4096, len(out)),
                                 rng.randrange(len(out)))))
        out[spots[-1]] ^= rng.randrange(1, 256)
    return bytes(out), [f"flipped {sorted(spots)}"]


WORKER = """
import json, sys, time
sys.path.insert(0, {root!r})
from vgmusic.infer import NumpyNet
arch, vocab, hparams = json.loads({shape!r})
for path in sys.argv[1:]:
    print(json.dumps({{"start": path}}), flush=True)
    t = time.perf_counter()
    try:
        NumpyNet(arch, vocab, hparams, path)
        out = {{"error": None}}
    except Exception as e:
        kind = type(e)
        out = {{"error": kind.__module__ + "." + kind.__qualname__, "message": str(e)}}
    out.update(path=path, took=time.perf_counter() - t)
    print(json.dumps(out), flush=True)
"""


def test_weights_damaged(tmp_path):
    """Truncated or byte-flipped HDF5: read in a child process, as HDF5's C code might crash or hang on it."""
    builtin = {"builtins.ValueError": ValueError, "builtins.FileNotFoundError": FileNotFoundError}
    original = (MODEL / "best.weights.h5").read_bytes()
    cases = {}
    for n in range(40):
        data, done = damage_bytes(rng_of("weights damaged", n), original)
        path = tmp_path / f"{n}.weights.h5"
        path.write_bytes(data)
        cases[str(path)] = where("weights damaged", n, done)
    code = WORKER.format(root=str(ROOT), shape=json.dumps(model_shape()))
    todo, failures = list(cases), []
    while todo:
        try:
            run = subprocess.run([sys.executable, "-c", code, *todo], capture_output=True, text=True,
                                 timeout=LIMIT * len(todo) + 30)
            out, err, status = run.stdout, run.stderr, run.returncode
        except subprocess.TimeoutExpired as e:
            out, err, status = (e.stdout or b"").decode(), "", "timeout"
        lines = [json.loads(line) for line in out.splitlines()]
        finished = [r["path"] for r in lines if "path" in r]
        for r in lines:
            if "path" in r:
                if r["error"] and r["error"] not in builtin:
                    wrong = f"{r['error']} escaped: {r['message'][:300]!r}"
                else:
                    error = builtin[r["error"]](r["message"]) if r["error"] else None
                    wrong = problem(error, r["took"], names=(r["path"],), allowed=tuple(builtin.values()))
                if wrong:
                    failures.append(f"{cases[r['path']]} {wrong}")
        started = [r["start"] for r in lines if "start" in r]
        if len(finished) == len(todo):
            break
        stuck = started[-1] if len(started) > len(finished) else todo[len(finished)]
        failures.append(f"{cases[stuck]} the reader {'hung' if status == 'timeout' else f'crashed ({status})'}: "
                        f"{err.strip()[-300:]!r}")
        todo = todo[todo.index(stuck) + 1:]
    report(failures)


# --- 5. song records and the listening page -------------------------------------------------------------

def test_records_and_page(record, tmp_path, capsys):
    from vgmusic.page import write_page
    raw = (record / "s.song.json").read_bytes()
    doc = json.loads(raw)
    failures = []
    for n in range(50):
        rng = rng_of("record", n)
        folder = tmp_path / str(n)
        shutil.copytree(record, folder)
        done, bad = [], {}
        for i in range(3):
            shutil.copyfile(folder / "s.mid", folder / f"b{i}.mid")
            path = folder / f"b{i}{'.song.json'}"
            mine = dict(doc, midi=f"b{i}.mid", roll=None)
            done += [f"b{i}: " + ", ".join(write_mutated_json(rng, path, mine, json.dumps(mine).encode()))]
            try:
                bad[path] = not isinstance(json.loads(path.read_bytes().decode("utf-8")), dict)
            except (ValueError, RecursionError):
                bad[path] = True  # not JSON: it must be warned about
        case = where("record", n, done)
        page, error, took = attempt(lambda: write_page(folder, "fuzz"))
        said = capsys.readouterr()
        wrong = problem(error, took, allowed=())
        lines = said.err.splitlines()
        if wrong is None:
            html = (folder / "index.html").read_text(encoding="utf-8") if (folder / "index.html").is_file() else ""
            odd = [line for line in lines if not line.startswith("warning: ")
                   or sum(str(p) in line for p in bad) != 1]
            named = {p: sum(str(p) in line for line in lines) for p in bad}
            if said.out:
                wrong = f"printed on stdout: {said.out[:200]!r}"
            elif odd:
                wrong = f"stderr lines that are not one warning naming one record: {odd[:3]!r}"
            elif any(v > 1 for v in named.values()):
                wrong = f"a record warned about more than once: {lines!r}"
            elif any(bad[p] and not named[p] for p in bad):
                wrong = f"a record that is not a JSON object was not warned about: {lines!r}"
            elif 'id="s"' not in html:
                wrong = "the page lacks the good song"
        if wrong:
            failures.append(f"{case} {wrong}")
        shutil.rmtree(folder)
    report(failures)


# --- 6. the downloader's manifest -----------------------------------------------------------------------

def test_manifest(tmp_path):
    from vgmusic.fetch import load_manifest
    raw = MANIFEST.read_bytes()
    doc = json.loads(raw)
    failures = []
    path = tmp_path / "manifest.json"
    for n in range(CASES):
        rng = rng_of("manifest", n)
        done = write_mutated_json(rng, path, doc, raw)
        _, error, took = attempt(lambda: load_manifest(path))
        wrong = problem(error, took, names=(path,))
        if wrong:
            failures.append(f"{where('manifest', n, done)} {wrong}")
    report(failures)


# --- 7. the scripts, as a user runs them ----------------------------------------------------------------

def script(name, *args, cwd, timeout=120):
    run = subprocess.run([sys.executable, str(ROOT / name), *map(str, args)], cwd=cwd, capture_output=True,
                         text=True, timeout=timeout)
    return run.returncode, run.stdout, run.stderr


def error_line(case, code, err):
    """The failing command's stderr ends in one `error:` line; no traceback anywhere."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, f"{case}: {err[-2000:]}"
    assert code not in (0, None) and lines and lines[-1].startswith("error: "), f"{case}: exit {code}, {err[-1000:]}"
    return lines[-1]


def model_copy(folder, sidecar=None, weights=None):
    """A model folder: the shipped sidecar (or `sidecar`) beside the shipped weights (or `weights`, which the
    sidecar's recorded sha256, where it records one, then describes: the weights reader has to refuse them,
    not the check that they are the sidecar's own)."""
    import hashlib
    if sidecar is None:
        meta = json.loads((MODEL / "model.json").read_text())
        if weights is not None and "weights_sha256" in meta:
            meta["weights_sha256"] = {"best": hashlib.sha256(weights).hexdigest()}
        sidecar = json.dumps(meta).encode()
    folder.mkdir()
    (folder / "model.json").write_bytes(sidecar)
    if weights is None:
        (folder / "best.weights.h5").symlink_to(MODEL / "best.weights.h5")
    else:
        (folder / "best.weights.h5").write_bytes(weights)
    return folder


def edited_weights(tmp_path, edit):
    import h5py
    path = tmp_path / "edited.weights.h5"
    shutil.copyfile(MODEL / "best.weights.h5", path)
    with h5py.File(path, "r+") as f:
        edit(f)
    data = path.read_bytes()
    path.unlink()
    return data


def sidecar_with(**changes):
    meta = json.loads((MODEL / "model.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            meta[key] = dict(meta[key], **value)
        else:
            meta[key] = value
    return json.dumps(meta).encode()


def test_predict_with_a_damaged_model(tmp_path):
    import numpy as np
    raw = (MODEL / "model.json").read_bytes()
    weights = (MODEL / "best.weights.h5").read_bytes()

    def shape(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((255, 256), "float32")

    def nan(f):
        f["layers/lstm/cell/vars/2"][3] = np.nan

    cases = {
        "sidecar truncated": (raw[:len(raw) // 2], None, "model.json"),
        "sidecar hparams.dropout a string": (sidecar_with(hparams={"dropout": "0.3"}), None, "model.json"),
        "sidecar tempo 10**400": (sidecar_with(tempo=10 ** 400), None, "model.json"),
        "weights truncated": (None, weights[:len(weights) // 3], "best.weights.h5"),
        "weights with a dataset of the wrong shape": (None, edited_weights(tmp_path, shape), "best.weights.h5"),
        "weights holding a NaN": (None, edited_weights(tmp_path, nan), "best.weights.h5"),
    }
    for n, (what, (sidecar, data, named)) in enumerate(cases.items()):
        folder = model_copy(tmp_path / f"model{n}", sidecar, data)
        case = f"[predict --model-dir: {what}]"
        code, _, err = script("pokemon_red_blue_yellow/predict.py", "--model-dir", folder, "--bars", "1",
                              "--no-audio", "--no-roll", "--no-page", "--out", tmp_path / f"x{n}.mid", cwd=tmp_path)
        line = error_line(case, code, err)
        assert str(folder / named) in line and len([x for x in err.splitlines() if x.strip()]) == 1, f"{case}: {err}"
        assert not (tmp_path / f"x{n}.mid").exists(), case


def test_predict_with_a_damaged_prime(chorales, tmp_path):
    songs, _ = chorales
    good = (songs / "bach_bwv66.6.mid").read_bytes()
    cases = {"cut short": good[:len(good) // 2 + 3], "ticks per beat 0": good[:12] + b"\0\0" + good[14:],
             "track length past the end": good[:18] + b"\x7f\xff\xff\xff" + good[22:]}
    for n, (what, data) in enumerate(cases.items()):
        prime = tmp_path / f"prime {n}.mid"
        prime.write_bytes(data)
        case = f"[predict --prime: {what}]"
        code, _, err = script("pokemon_red_blue_yellow/predict.py", "--prime", prime, "--bars", "1", "--no-audio",
                              "--no-roll", "--no-page", "--out", tmp_path / f"x{n}.mid", cwd=tmp_path)
        line = error_line(case, code, err)
        assert str(prime) in line and len([x for x in err.splitlines() if x.strip()]) == 1, f"{case}: {err}"


def test_get_all_notes_skips_each_damaged_file(chorales, tmp_path):
    from vgmusic.midi import read_midi
    songs, _ = chorales
    good = (songs / "bach_bwv66.6.mid").read_bytes()
    game = tmp_path / "songs" / "game"
    game.mkdir(parents=True)
    (game / "good.mid").write_bytes(good)
    # the first five seeded corruptions the reader refuses (a corrupted file may still be a song)
    bad, n = {}, 0
    while len(bad) < 5:
        data, done = mutate_midi(rng_of("get_all_notes", n), good)
        path = game / f"bad {n}.mid"
        path.write_bytes(data)
        if attempt(lambda: read_midi(path))[1] is None:
            path.unlink()
        else:
            bad[path] = where("get_all_notes", n, done)
        n += 1
    # and a damaged cache entry for the good file: dropped with a warning, the file parsed again
    import hashlib
    cache = tmp_path / "data" / "cache"
    cache.mkdir(parents=True)
    (cache / f"{hashlib.sha256(good).hexdigest()}.json").write_text(
        json.dumps({"version": 3, "song": {"format": 1, "tracks": "x"}, "classic": ["C4"]}))
    code, out, err = script("get_all_notes.py", "--songs-dir", tmp_path / "songs", "--data-dir", tmp_path / "data",
                            "--workers", "2", "--timeout", "20", cwd=tmp_path, timeout=300)
    case = "[get_all_notes: " + " ".join(bad.values()) + "]"
    assert "Traceback" not in err and code == 1, f"{case}: exit {code}, {err[-2000:]}"
    lines = err.splitlines()
    for path, why in bad.items():
        said = [line for line in lines if line.startswith(f"warning: skipping {path}: ")]
        assert len(said) == 1, f"{why}: {err}"
    damaged = [line for line in lines if line.startswith(f"warning: damaged cache entry for {game / 'good.mid'} (")]
    assert len(damaged) == 1, err
    assert len(lines) == len(bad) + 2 and lines[-1].startswith("warning: 5 skipped"), err
    rows = json.loads((tmp_path / "data" / "game.json").read_text())["songs"]
    assert [r["file"] for r in rows] == ["good.mid"], case
