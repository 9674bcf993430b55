"""MIDI files -> songs in data/: the original token stream plus timed notes per part.

Each file is parsed once with music21 and cached by the sha256 of its bytes, so a
re-run over unchanged songs reads JSON only (music21 is not even imported). What
is cached is richer than the original tokens: every pitched part's notes with
onset, duration and pitch, the instrument, and the key, so that encodings with
rhythm, octaves and transposition need no second parse.
"""
import hashlib
import json
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .store import write_json

# Bump when what parse_midi returns changes, so stale cache entries are re-parsed.
EXTRACT_VERSION = 2
MIDI_SUFFIXES = (".mid", ".midi")


class NoUsableSongs(ValueError):
    pass


def midi_files(folder):
    # dot files are temporaries of interrupted writes (store.atomic_path), never songs
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in MIDI_SUFFIXES and p.is_file() and not p.name.startswith("."))


def classic_token(element):
    """The original project's token: pitch name, chord normal order, or Rest."""
    from music21 import chord, note
    if isinstance(element, note.Note):
        return str(element.pitch)
    if isinstance(element, chord.Chord) and not element.isRest:
        return ".".join(str(n) for n in element.normalOrder)
    if isinstance(element, note.Rest):
        return "Rest"
    return None  # unpitched percussion and anything else the original ignored


def _has_pitched(stream):
    from music21 import chord, note
    return any(isinstance(n, (note.Note, chord.Chord)) for n in stream.recurse().notes)


def parse_midi(path):
    """Parse one file. Raises ValueError with the reason when it holds nothing usable."""
    import music21
    from music21 import chord, instrument, note
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = music21.converter.parse(str(path), format="midi")
    except Exception as e:  # music21 raises many kinds on corrupt input
        raise ValueError(f"not a readable MIDI file ({type(e).__name__}: {str(e)[:120]})") from None

    # Original behaviour: the first part after partitioning by instrument, flat notes as
    # fallback. Fixed: drum parts and empty parts no longer win just by coming first.
    try:
        parts = [p for p in instrument.partitionByInstrument(score).parts if _has_pitched(p)]
    except Exception:
        parts = []
    source = parts[0].recurse() if parts else score.flatten().notesAndRests
    classic = [t for t in (classic_token(e) for e in source) if t is not None]

    out_parts = []
    for part in score.parts:
        inst = part.getInstrument(returnDefault=True)
        notes = []
        for el in part.flatten().notes:
            if isinstance(el, note.Note):
                pitches = [el.pitch.midi]
            elif isinstance(el, chord.Chord):
                pitches = [p.midi for p in el.pitches]
            else:  # unpitched percussion
                continue
            dur = float(el.quarterLength)
            if dur <= 0:  # grace notes: no time of their own
                continue
            vel = el.volume.velocity or 80
            for p in pitches:
                notes.append([round(float(el.offset), 6), round(dur, 6), int(p), int(vel)])
        is_drum = isinstance(inst, instrument.UnpitchedPercussion) or (
            not notes and len(part.flatten().notes) > 0)
        if notes:
            notes.sort(key=lambda n: (n[0], n[2]))
            out_parts.append({"name": inst.instrumentName or inst.partName or "",
                              "program": inst.midiProgram if inst.midiProgram is not None else 0,
                              "drum": bool(is_drum), "notes": notes})

    if not out_parts or all(t == "Rest" for t in classic):
        raise ValueError("no pitched notes (empty, or drums only)")
    try:
        key = score.analyze("key")
        key = {"name": str(key), "tonic": key.tonic.pitchClass, "mode": key.mode}
    except Exception:  # too few pitches to analyse: leave the song where it is (C major: no shift)
        key = {"name": "C major", "tonic": 0, "mode": "major"}
    try:
        marks = score.metronomeMarkBoundaries()
        tempo = marks[0][2].getQuarterBPM() if marks else 120.0
    except Exception:
        tempo = 120.0
    return {"version": EXTRACT_VERSION, "classic": classic, "parts": out_parts, "key": key,
            "tempo": round(float(tempo or 120.0), 3)}


def _parse_job(path):
    try:
        return str(path), parse_midi(path), None
    except Exception as e:
        return str(path), None, str(e) or type(e).__name__


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_cache(cache_file):
    try:
        entry = json.loads(cache_file.read_text())
        return entry if entry.get("version") == EXTRACT_VERSION else None
    except (OSError, ValueError):
        return None


def extract(songs_dir, data_dir, games=(), workers=0, progress=True):
    """Parse every game folder, write data/<game>.json and data/vocab.json; return the vocabulary."""
    songs_dir, data_dir = Path(songs_dir), Path(data_dir)
    if not songs_dir.is_dir():
        raise NoUsableSongs(f"{songs_dir}: songs folder not found (put one folder of .mid files per game there)")
    folders = [songs_dir / g for g in games] if games else sorted(p for p in songs_dir.iterdir() if p.is_dir())
    if not folders:
        raise NoUsableSongs(f"{songs_dir}: no game folders (expected {songs_dir}/<game>/*.mid)")
    cache_dir = data_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)

    files = {}
    for folder in folders:
        if not folder.is_dir():
            raise NoUsableSongs(f"{folder}: game folder not found")
        files[folder.name] = [(f, sha256_file(f)) for f in midi_files(folder)]
        if not files[folder.name]:
            raise NoUsableSongs(f"{folder}: no .mid or .midi files")

    parsed, failed = {}, {}
    todo = []
    for game_files in files.values():
        for path, digest in game_files:
            entry = _read_cache(cache_dir / f"{digest}.json")
            if entry is not None:
                parsed[digest] = entry
            elif digest not in failed and all(d != digest for _, d in todo):
                todo.append((path, digest))
    if todo:
        workers = workers or os.cpu_count() or 1
        digests = {str(p): d for p, d in todo}
        bar = tqdm(total=len(todo), desc="parsing MIDI", unit="song", disable=not progress, file=sys.stderr)
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            for path, entry, error in pool.map(_parse_job, [p for p, _ in todo]):
                bar.update(1)
                if error:
                    failed[digests[path]] = error
                else:
                    parsed[digests[path]] = entry
                    write_json(cache_dir / f"{digests[path]}.json", entry)
        bar.close()

    vocab = set()
    summary = {}
    for game, game_files in files.items():
        songs = []
        for path, digest in game_files:
            if digest in failed:
                print(f"warning: skipping {path}: {failed[digest]}", file=sys.stderr)
                continue
            entry = parsed[digest]
            if not entry["classic"]:
                print(f"warning: skipping {path}: no pitched notes in any part", file=sys.stderr)
                continue
            songs.append({"file": path.name, "sha256": digest, **{k: v for k, v in entry.items() if k != "version"}})
            vocab.update(entry["classic"])
        if not songs:
            raise NoUsableSongs(f"{songs_dir / game}: no usable song among {len(game_files)} file(s)")
        write_json(data_dir / f"{game}.json", {"game": game, "songs": songs})
        summary[game] = (len(songs), sum(len(s["classic"]) for s in songs))

    # The vocabulary spans every game in data/, not just those re-extracted now, so
    # extracting one game never silently re-numbers the tokens another game's model uses.
    for other in data_dir.glob("*.json"):
        if other.name != "vocab.json" and other.stem not in files:
            for song in json.loads(other.read_text()).get("songs", []):
                vocab.update(song["classic"])
    tokens = sorted(vocab)
    write_json(data_dir / "vocab.json", {"classic": tokens})
    return summary, tokens


def main(argv=None):
    from .config import ExtractConfig, build, parser_for
    parser = parser_for(ExtractConfig, "Parse every MIDI file under midi_songs/<game>/ into data/<game>.json "
                                       "and one global vocabulary in data/vocab.json.")
    cfg = build(ExtractConfig, parser.parse_args(argv))
    try:
        summary, tokens = extract(cfg.songs_dir, cfg.data_dir, cfg.games, cfg.workers)
    except NoUsableSongs as e:
        sys.exit(f"error: {e}")
    for game, (n, t) in summary.items():
        print(f"{game}: {n} songs, {t} tokens")
    print(f"vocabulary: {len(tokens)} tokens -> {Path(cfg.data_dir) / 'vocab.json'}")
