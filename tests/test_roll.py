"""The Pillow piano roll: real PNGs written and read back."""
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageColor

from conftest import ROOT
from vgmusic.roll import (PART_COLOURS, TRACK_COLOURS, bar_label_step, instrument_name, part_colours,
                          piano_roll)
from vgmusic.song import Note, Section, Song, Track


def pixels(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB")).astype(int)


def count(img, colour):
    return int(np.all(img == ImageColor.getrgb(colour), axis=-1).sum())


def tune(bars, low=60, high=72, step=1.0):
    """Notes climbing and falling across `bars` bars of 4/4."""
    notes, t, p, up = [], 0.0, low, 1
    while t < bars * 4:
        notes.append(Note(t, step, p))
        t += step
        p += up
        up = -1 if p >= high else 1 if p <= low else up
    return notes


def test_size_grows_with_bars_and_pitch_range(tmp_path):
    sizes = {}
    for bars, high in [(4, 72), (16, 72), (16, 96)]:
        song = Song(tracks=[Track(tune(bars, high=high))], length=bars * 4)
        with Image.open(piano_roll(song, tmp_path / f"{bars}_{high}.png", "size")) as img:
            sizes[bars, high] = img.size
    assert sizes[16, 72][0] > sizes[4, 72][0] + 400  # about 45 px a bar
    assert sizes[16, 96][1] > sizes[16, 72][1]
    assert sizes[16, 72][1] == sizes[4, 72][1]
    long = Song(tracks=[Track(tune(400))], length=1600)
    with Image.open(piano_roll(long, tmp_path / "long.png")) as img:
        assert img.width <= 2000  # a page wide at most
    assert sorted(p.name for p in tmp_path.iterdir()) == ["16_72.png", "16_96.png", "4_72.png", "long.png"]


def test_sections_colour_the_notes_and_a_varied_repeat_is_lighter(tmp_path):
    notes = [Note(b, 4, 60 + (b // 8) * 5) for b in range(0, 48, 4)]  # long notes: many pixels of each
    song = Song(tracks=[Track(notes)], length=48, tempos=[(0.0, 136.0)],
                sections=[Section(0, "A"), Section(16, "A'"), Section(32, "B")])
    img = pixels(piano_roll(song, tmp_path / "form.png", "form AA'B"))
    colours = part_colours(["A", "A'", "B"])
    assert colours == {"A": PART_COLOURS[0], "A'": PART_COLOURS[1], "B": PART_COLOURS[2]}
    found = {label: count(img, c) for label, c in colours.items()}
    assert all(n > 1500 for n in found.values()), found  # the notes, not only the legend's swatches
    assert count(img, PART_COLOURS[4]) == 0  # no fourth theme

    def lightness(colour):
        return sum(ImageColor.getrgb(colour))
    assert colours["A"] != colours["A'"] and lightness(colours["A'"]) > lightness(colours["A"])
    # A' shares A's hue; A2, the form's second pass, is a theme of its own
    assert part_colours(["A", "B", "A2", "A2'"]) == {"A": PART_COLOURS[0], "B": PART_COLOURS[2],
                                                    "A2": PART_COLOURS[4], "A2'": PART_COLOURS[5]}
    assert bar_label_step(16) == 1 and bar_label_step(32) == 1 and bar_label_step(33) == 2
    assert bar_label_step(100) == 4


def dashed_columns(img):
    """x of each column crossed by a dashed line: black runs, many, one after another."""
    black = np.all(img < 60, axis=-1)
    starts = black[1:] & ~black[:-1]
    return [x for x in range(img.shape[1]) if starts[:, x].sum() >= 12]


def test_a_looping_song_marks_its_seam(tmp_path):
    song = Song(tracks=[Track(tune(8))], length=32, sections=[Section(0, "A")])
    plain = pixels(piano_roll(song, tmp_path / "plain.png"))
    song.loop = (0.0, 32.0)
    looped = pixels(piano_roll(song, tmp_path / "loop.png"))
    assert dashed_columns(plain) == []
    dashes = dashed_columns(looped)
    assert dashes and dashes[-1] - dashes[0] > looped.shape[1] / 2  # at both edges of the roll


def test_an_arrangement_gets_a_colour_per_track_and_a_drum_strip(tmp_path):
    melody, harmony, bass = tune(8, 72, 84, 0.5), tune(8, 55, 64, 2.0), tune(8, 36, 43)
    drums = [Note(b * 0.5, 0.1, 42) for b in range(64)] + [Note(b, 0.1, 36 + 2 * (b % 2)) for b in range(32)]
    tracks = [Track(melody, "lead", 80, role="melody"), Track(harmony, "pad", 89, role="harmony"),
              Track(bass, "", 38, role="bass")]
    sections = [Section(0, "A"), Section(16, "A'")]
    song = Song(tracks=tracks + [Track(drums, "kit", drum=True, role="drums")], length=32, sections=sections)
    img = pixels(piano_roll(song, tmp_path / "band.png", "arrangement"))
    found = [count(img, c) for c in TRACK_COLOURS[:5]]
    assert all(n > 150 for n in found[:4]) and found[4] == 0, found
    # the form's band shows A and A' although the notes are coloured by track
    assert count(img, PART_COLOURS[0]) > 1000 and count(img, PART_COLOURS[1]) > 1000
    # the drum hits lie in their own strip, below every pitched note
    rows = [np.nonzero(np.all(img == ImageColor.getrgb(c), axis=-1))[0] for c in TRACK_COLOURS[:4]]
    assert np.percentile(rows[3], 50) > max(np.percentile(r, 95) for r in rows[:3])
    without = pixels(piano_roll(Song(tracks=tracks, length=32, sections=sections), tmp_path / "nodrums.png"))
    assert img.shape[0] > without.shape[0] + 30  # three drum keys, a row each
    assert instrument_name(tracks[0]) == "Lead 1 (square)" and instrument_name(Track(drum=True)) == "drum kit"


def test_any_text_draws(tmp_path):
    # a non-UTF-8 file name comes through as surrogates; controls and scripts the font lacks as well
    weird = "caf\udce9 \ud800\x00\t\n 日本語 🎵 עברית " + "long " * 200
    song = Song(tracks=[Track(tune(2), name=weird), Track(tune(2, 40, 50), role=weird, program=127)],
                sections=[Section(0, weird), Section(4, weird + "'")], title=weird, length=8)
    path = piano_roll(song, tmp_path / "caf\udce9.png", weird)
    assert pixels(path).shape[1] < 2000
    assert pixels(piano_roll(Song(tracks=[Track(tune(1))], title=weird), tmp_path / "title.png")).size


def test_songs_with_no_notes_are_refused(tmp_path):
    for song in [Song(), Song(tracks=[Track([], "empty"), Track([], drum=True)], length=16)]:
        with pytest.raises(ValueError, match="none.png: no notes to draw"):
            piano_roll(song, tmp_path / "none.png")
    assert list(tmp_path.iterdir()) == []


def test_odd_songs_still_draw(tmp_path):
    for i, song in enumerate([
            Song(tracks=[Track([Note(0, 0, 64)])]),  # one note of no length
            Song(tracks=[Track([Note(b, 1, 38 + b % 3) for b in range(8)], drum=True)]),  # drums alone
            Song(tracks=[Track(tune(4))], length=2),  # notes after the end are cut, not drawn
            Song(tracks=[Track([Note(40, 1, 60)])], length=8),  # ... unless the end comes before every note
            Song(tracks=[Track(tune(4, 61, 64))], metre=(7, 8), loop=(3.5, 14.0)),  # no C, 7/8, loop at bar 2
            Song(tracks=[Track([Note(b, 1, 60 + b)], name=f"t{b}") for b in range(20)])]):  # legend below
        assert pixels(piano_roll(song, tmp_path / f"{i}.png")).shape[0] > 100


def test_a_500_note_song_draws_fast_without_matplotlib(tmp_path):
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from vgmusic.song import Note, Section, Song, Track
notes = [Note(i * 0.5, 0.5, 60 + (i * 7) % 20) for i in range(500)]
song = Song(tracks=[Track(notes)], length=250, sections=[Section(0, "A"), Section(125, "A'")], loop=(0, 250))
started = time.process_time()
from vgmusic.roll import piano_roll
piano_roll(song, {str(tmp_path / 'fast.png')!r}, "500 notes")
print(time.process_time() - started)
assert "matplotlib" not in sys.modules, "matplotlib was imported"
assert "pretty_midi" not in sys.modules, "pretty_midi was imported"
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < 0.5  # about 0.05 s: a tenth of that, with room for a busy machine
    with Image.open(tmp_path / "fast.png") as img:
        assert img.width == 2000


def test_drawing_in_process_is_quick(tmp_path):
    song = Song(tracks=[Track(tune(60))], length=240)
    piano_roll(song, tmp_path / "warm.png")
    started = time.process_time()
    piano_roll(song, tmp_path / "again.png")
    assert time.process_time() - started < 0.3
