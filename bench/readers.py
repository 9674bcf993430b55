"""music21 against mido as the MIDI reader: do they read the same notes, and how fast?

    python bench/readers.py [FOLDER ...]     (default: the original songs and the Debian game corpora)

For every file: the notes each reader finds in every pitched part, quantised to the event encoding's
grid (onset to the nearest 1/12 beat, duration to the nearest value a token can say), compared as
multisets of (onset, duration, pitch), over all pitched parts and over the melody part; drum notes (which
music21 reads as unpitched and the old extraction dropped) are counted apart. Speed is files per second
of each reader alone, parsing the same bytes in one process. Writes bench/results/readers.md.
"""
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vgmusic.encode import GRID, nearest_step  # noqa: E402
from vgmusic.midi import midi_to_song, parse_bytes  # noqa: E402
from vgmusic.song import Note, Song, Track  # noqa: E402

DEFAULT = [ROOT.parent / "shared" / "midi_songs", Path("/usr/share/games/openttd/baseset/openmsx"),
           Path("/usr/share/planetblupi/music")]


def music21_song(data):
    """The pitched parts music21 reads, as the extraction of commit 542329d kept them."""
    import music21
    from music21 import chord, note
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = music21.converter.parseData(data, format="midi")
    tracks = []
    for part in score.parts:
        notes = []
        for el in part.flatten().notes:
            pitches = ([el.pitch.midi] if isinstance(el, note.Note) else
                       [p.midi for p in el.pitches] if isinstance(el, chord.Chord) else [])
            dur = float(el.quarterLength)
            if dur > 0:
                notes += [Note(float(el.offset), dur, p, el.volume.velocity or 80) for p in pitches]
        if notes:
            tracks.append(Track(sorted(notes)))
    return Song(tracks=tracks)


def grid(notes):
    return Counter((round(n.onset * GRID), nearest_step(n.duration * GRID), n.pitch) for n in notes
                   if n.duration > 0)


def agreement(a, b):
    """Shared notes over the larger count: 1.0 when both read exactly the same notes."""
    shared = sum((a & b).values())
    return shared / max(sum(a.values()), sum(b.values()), 1)


def main(folders):
    files = [p for f in folders if f.is_dir() for p in sorted(f.rglob("*")) if p.suffix.lower() in (".mid", ".midi")]
    rows, times = [], {"music21": 0.0, "mido": 0.0}
    import music21  # noqa: F401  (its import is not the reader's per-file cost)
    for path in files:
        data = path.read_bytes()
        t0 = time.perf_counter()
        try:
            m21 = music21_song(data)
        except Exception as e:
            print(f"{path.name}: music21 failed ({type(e).__name__})")
            continue
        t1 = time.perf_counter()
        ours = midi_to_song(parse_bytes(data))
        t2 = time.perf_counter()
        times["music21"] += t1 - t0
        times["mido"] += t2 - t1
        melody_a, melody_b = m21.melody(), ours.melody()
        rows.append((path.parent.name, path.name, agreement(grid(m21.notes()), grid(ours.notes())),
                     agreement(grid(melody_a.notes if melody_a else []), grid(melody_b.notes if melody_b else [])),
                     sum(len(t.notes) for t in ours.tracks if t.drum)))
    n = len(rows)
    lines = [f"# music21 against mido, {n} files", "",
             f"- files per second: music21 {n / times['music21']:.1f}, mido {n / times['mido']:.1f} "
             f"({times['music21'] / times['mido']:.0f} times faster)",
             f"- files whose pitched notes agree exactly on the grid: {sum(r[2] == 1 for r in rows)} of {n}; "
             f"mean agreement {sum(r[2] for r in rows) / n:.4f}",
             f"- files whose melody part agrees exactly: {sum(r[3] == 1 for r in rows)} of {n}",
             f"- drum notes mido reads (music21's extraction dropped them): {sum(r[4] for r in rows)}", "",
             "| folder | file | pitched notes agree | melody agrees | drum notes |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c:.4f} | {d:.4f} | {e} |" for a, b, c, d, e in rows]
    out = ROOT / "bench" / "results" / "readers.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:7]))
    print(f"-> {out}")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]] or DEFAULT)
