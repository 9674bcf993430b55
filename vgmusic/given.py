"""The songs predict.py starts from instead of composing one: a user's tune to arrange (--melody) and an
earlier song of this tool's to change one part of (--edit). Each comes back as a Song with the meta that
the report and the record read (seed, index, events, key, loop), so every later stage treats it as it
treats a composed song. Nothing here imports music21: the tune's key comes from its notes
(Krumhansl-Schmuckler, theory.estimate_key), as the quick corpus path takes it.
"""
import json
import math
from pathlib import Path

from .midi import read_midi
from .song import Key, Song, Track
from .theory import estimate_key, key_name

# A tune longer than this is refused: an arrangement is a game's track, and the arranger's work and the
# audio grow with the length (a 20-minute song is the renderer's own limit)
MAX_TUNE_BARS = 1000


def read_tune(path, loop=False):
    """The tune of a MIDI file as a one-track Song ready to arrange: its melody (Song.melody(): the highest
    busy pitched track), its tempo map and metre, whole bars, its key from the notes. ValueError names
    the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: --melody file not found")
    song = read_midi(path)
    melody = song.melody()
    if melody is None:
        raise ValueError(f"{path}: no pitched notes to arrange (only drums, or empty)")
    notes = sorted(melody.notes)
    bpb = song.beats_per_bar
    end = max(n.onset + n.duration for n in notes)
    bars = max(1, math.ceil(end / bpb - 1e-6))
    if bars > MAX_TUNE_BARS:
        raise ValueError(f"{path}: {bars} bars, more than the {MAX_TUNE_BARS} an arrangement takes")
    length = bars * bpb
    notes = [n._replace(duration=min(n.duration, length - n.onset)) for n in notes]
    tonic, mode = estimate_key(notes)
    track = Track(notes, name=melody.name or "melody", program=melody.program, role="melody")
    track.notes = track.playable()
    return Song(tracks=[track], tempos=list(song.tempos), metre=song.metre, key=Key(tonic, mode), length=length,
                loop=(0.0, length) if loop else None, title=path.stem,
                meta={"seed": None, "index": 1, "events": len({n.onset for n in notes}), "key": key_name(tonic, mode),
                      "loop": None, "melody": path.name})


def record_path(midi):
    midi = Path(midi)
    return midi.with_suffix(".song.json")


def read_song(midi):
    """An earlier song of this tool's, exactly as it was written: the Song in its record (SONG.song.json
    beside SONG.mid), which is lossless where the MIDI file is not (roles, sections, the arrangement's
    chords). ValueError names the file and the problem."""
    midi = Path(midi)
    if not midi.is_file():
        raise ValueError(f"{midi}: --edit song not found")
    record = record_path(midi)
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{record}: not found: --edit needs the record predict.py writes beside each song "
                         f"(its tracks' parts and chords are not in the MIDI file)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{record}: not a song's record ({getattr(e, 'strerror', None) or e})") from None
    try:
        song = Song.from_json(data["song"] if isinstance(data, dict) else None)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{record}: not a song's record ({e})") from None
    if not any(t.role for t in song.tracks):
        raise ValueError(f"{record}: its tracks name no parts (melody, harmony, bass, drums) to change")
    return song


def edited(song, role, bars, seed, source):
    """What the record says was changed, in song.meta["edit"]; the song keeps the rest of its meta."""
    song.meta = dict(song.meta, edit={"from": Path(source).name, "track": role, "bars": list(bars) if bars else None,
                                      "seed": seed}, index=1)
    return song
