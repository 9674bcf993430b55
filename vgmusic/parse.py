"""One MIDI file read into what extraction caches: the Song, the key, the original project's tokens.

The notes, every track with drums and velocities, come from the project's one MIDI reader (vgmusic.midi);
music21 adds what only it gives, the key analysis and the original's token stream. parse_bounded and
parse_file run the parse in child processes bounded in time and memory (vgmusic.bounded), which is how
vgmusic.extract and predict.py --melody read a file.
"""
import hashlib
import warnings
from pathlib import Path

from .bounded import run_bounded
from .config import ExtractConfig
from .midi import midi_to_song, parse_bytes, unwrap_riff
from .song import Key

# Bump when what parse_midi returns changes, so stale cache entries are re-parsed.
EXTRACT_VERSION = 3


def unreadable(e):
    return f"cannot be read ({e.strerror or e})"


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


def _read(path):
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(unreadable(e)) from None


def parse_midi(path):
    """Parse one file in this process, unbounded (parse_file bounds it). Raises ValueError with the reason
    when it holds nothing usable."""
    return parse_data(_read(path))


def music21_reading(data):
    """What only music21 gives: the original project's token stream and the key analysis, or ValueError."""
    import music21
    from music21 import instrument
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # from the bytes, not the path: music21 would also load and store pickles of the file
            score = music21.converter.parseData(data, format="midi")
    except MemoryError:
        raise
    except Exception as e:  # music21 raises many kinds on corrupt input
        raise ValueError(f"not a readable MIDI file ({type(e).__name__}: {str(e)[:120]})") from None
    # The original's tokens: the first part after partitioning by instrument, flat notes as fallback.
    # Fixed: drum parts and empty parts no longer win just by coming first.
    try:
        parts = [p for p in instrument.partitionByInstrument(score).parts if _has_pitched(p)]
    except Exception:
        parts = []
    source = parts[0].recurse() if parts else score.flatten().notesAndRests
    classic = [t for t in (classic_token(e) for e in source) if t is not None]
    try:
        found = score.analyze("key")
        key = Key(found.tonic.pitchClass, found.mode)
    except Exception:  # too few pitches to analyse: leave the song where it is (C major: no shift)
        key = Key(0, "major")
    return classic, key


def parse_data(data):
    """parse_midi on a file's bytes: {"version", "song": the Song's JSON form, "classic": tokens}.

    The notes, every track with drums and velocities, come from the project's one MIDI reader (mido,
    vgmusic.midi), which reads what the file holds; music21 adds the key and the original's tokens."""
    data = unwrap_riff(data)
    song = midi_to_song(parse_bytes(data))
    if not song.pitched():
        raise ValueError("no pitched notes (empty, or drums only)")
    classic, song.key = music21_reading(data)
    if all(t == "Rest" for t in classic):
        raise ValueError("no pitched notes (empty, or drums only)")
    return {"version": EXTRACT_VERSION, "song": song.to_json(), "classic": classic}


def _parse_job(job):
    """The work of one parser process (bounded.run_bounded): a (path, sha256 or None) job's dict, or
    {"error", "kind"}."""
    path, digest = job
    try:
        data = _read(path)
        if digest and hashlib.sha256(data).hexdigest() != digest:
            return {"error": "changed while being read; run again", "kind": "changed"}
        return parse_data(data)
    except MemoryError:
        raise  # run_bounded reports it once the parse's memory is released
    except Exception as e:  # music21 failing past parse_data's guards: still a reason, not a traceback
        return {"error": str(e) if isinstance(e, ValueError) else
                f"not a readable MIDI file ({type(e).__name__}: {str(e)[:120]})", "kind": "invalid"}


def parse_bounded(jobs, workers, timeout, max_memory, done):
    """Parse (path, sha256 or None) jobs in child processes, `workers` at a time, each bounded by `timeout`
    seconds and `max_memory` MB; call done(job, result) as each ends. Children still running when this
    returns or raises (Ctrl-C, a failed write in `done`) are killed."""
    run_bounded(jobs, _parse_job, workers, timeout, max_memory, done, preload=("music21",), name="the parser")


def parse_file(path, timeout=ExtractConfig.timeout, max_memory=ExtractConfig.max_memory):
    """parse_midi in a child process, bounded as extraction bounds every file: the same dict, or ValueError
    with the reason (unreadable, unusable, or past `timeout` seconds or `max_memory` MB)."""
    results = []
    parse_bounded([(Path(path), None)], 1, timeout, max_memory, lambda job, result: results.append(result))
    if "error" in results[0]:
        raise ValueError(results[0]["error"])
    return results[0]
