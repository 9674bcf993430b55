"""Arrangement figures on hand-built songs whose answers are known by construction, the roles found in a
real OpenTTD file, and the judge's table from real MIDI written and read back."""
import json
from pathlib import Path

import pytest

from conftest import run_script
from vgmusic import arrangement as A
from vgmusic import roles as R
from vgmusic.arrangement_judge import judge_rows, markdown, melody_kept, outside, summarise
from vgmusic.midi import read_midi, write_midi
from vgmusic.song import Note, Section, Song, Track

OPENTTD = Path("/usr/share/games/openttd/baseset/openmsx")
KIT = {"kick": 36, "snare": 38, "hat": 42, "tom": 45}


def track(role, notes, **kw):
    return Track([Note(*n) for n in notes], name=role, role=role, drum=role == "drums", **kw)


def held(pitches, start, length):
    return [(start, length, p) for p in pitches]


def song(*tracks, bars=4, metre=(4, 4), **kw):
    return Song(tracks=list(tracks), metre=metre, length=bars * metre[0] * 4 / metre[1], **kw)


def beat_pattern(bar, fill=False):
    """A rock beat (kick 1 and 3, snare 2 and 4, eighth hats) in one bar, or a bar of tom sixteenths."""
    t = bar * 4.0
    if fill:
        return [(t + i / 4, 0.25, KIT["tom"]) for i in range(16)]
    return ([(t + b, 0.25, KIT["kick"]) for b in (0, 2)] + [(t + b, 0.25, KIT["snare"]) for b in (1, 3)]
            + [(t + i / 2, 0.25, KIT["hat"]) for i in range(8)])


def test_metre_strong_beats():
    assert A.strong_beats((4, 4)) == [0.0, 2.0] and A.strong_beats((3, 4)) == [0.0]
    assert A.strong_beats((6, 8)) == [0.0] and A.strong_beats((12, 8)) == [0.0, 3.0]
    assert A.strong_beats((5, 4)) == [0.0, 3.0] and A.strong_beats((2, 4)) == [0.0]
    assert A.main_beats((6, 8)) == [0.0, 1.5] and A.beat_unit((3, 8)) == (0.5, 3)


def test_melody_of_chord_tones_over_a_held_triad():
    chord = track("harmony", held((48, 52, 55), 0, 16))
    tones = track("melody", [(b, 1, p) for b, p in zip(range(16), [72, 74, 76, 77] * 4)])  # C D E F, C D E F
    f = A.figures(song(tones, chord))
    assert f["chord_tone_share"] == 1.0  # C and E fall on beats 1 and 3; D and F on 2 and 4 do not count
    off = track("melody", [(b, 1, p) for b, p in zip(range(16), [73, 72, 78, 72] * 4)])  # C# and F# on the strong beats
    assert A.figures(song(off, chord))["chord_tone_share"] == 0.0
    # a minor triad's third counts, a major third over it does not
    minor = track("harmony", held((45, 48, 52), 0, 16))  # A minor
    assert A.figures(song(track("melody", [(0, 2, 72), (2, 2, 73)] * 1), minor))["chord_tone_share"] == 0.5


def test_dissonance_between_tracks_and_passing_notes():
    low = track("harmony", held((60,), 0, 16))
    clash = track("melody", held((73,), 0, 16))  # C4 against C#5: a minor ninth all along
    assert A.figures(song(clash, low))["dissonance"] == 1.0
    fifth = track("melody", held((67,), 0, 16))
    assert A.figures(song(fifth, low))["dissonance"] == 0.0
    # a passing C# (an eighth, off the beat) between two Ds over the C is left out: only consonant pairs remain
    passing = track("melody", [(b, 0.5, 62) for b in range(16)] + [(b + 0.5, 0.5, 61) for b in range(16)])
    assert A.figures(song(passing, low))["dissonance"] == 0.0
    tritone = track("melody", [(b, 1, 66) for b in range(16)])  # struck on the beat: counts
    assert A.figures(song(tritone, low))["dissonance"] == 1.0


def chords_and_bass(bass_pitches):
    # C major for a bar, F major for a bar, twice; the bass plays one note a bar
    harmony = [n for bar, triad in enumerate([(60, 64, 67), (60, 65, 69)] * 2) for n in held(triad, 4 * bar, 4)]
    return song(track("melody", [(b, 1, 79) for b in range(16)]), track("harmony", harmony),
                track("bass", [(4 * bar, 4, p) for bar, p in enumerate(bass_pitches)]))


def test_bass_on_roots_and_fifths():
    assert A.figures(chords_and_bass([36, 41, 36, 41]))["bass_root_fifth"] == 1.0  # C, F
    assert A.figures(chords_and_bass([43, 36, 43, 36]))["bass_root_fifth"] == 1.0  # G (C's fifth), C (F's fifth)
    f = A.figures(chords_and_bass([40, 45, 40, 45]))  # E, A: the thirds
    assert f["bass_root_fifth"] == 0.0
    assert f["bass_lowest"] == 1.0 and f["melody_on_top"] == 1.0 and f["bass_presence"] == 1.0
    assert f["bass_below_melody"] == 79 - 42.5 and f["harmony_polyphony"] == 3.0 and f["bass_density"] == 1.0


def test_groove_repeated_and_fills_at_phrase_ends():
    steady = track("drums", [n for bar in range(8) for n in beat_pattern(bar)], channel=9)
    melody = track("melody", [(b, 1, 72) for b in range(32)])
    f = A.figures(song(melody, steady, bars=8))
    assert f["groove_consistency"] == 1.0 and f["fill_contrast"] == 0.0 and f["fill_share"] == 0.0
    assert f["drums_density"] == 8.0 and f["drums_polyphony"] == 12 / 8 and f["drums_presence"] == 1.0
    filled = track("drums", [n for bar in range(8) for n in beat_pattern(bar, fill=bar % 4 == 3)], channel=9)
    f = A.figures(song(melody, filled, bars=8))
    assert f["groove_consistency"] == 1.0 and f["fill_contrast"] == 1.0 and f["fill_share"] == 1.0
    assert f["start_contrast"] == 0.0  # the bar after a fill is compared with the groove two bars back
    # sections say where phrases end: fills in bars 2 and 7 close two sections of 3 and 5 bars
    odd = track("drums", [n for bar in range(8) for n in beat_pattern(bar, fill=bar in (2, 7))], channel=9)
    s = song(melody, odd, bars=8, sections=[Section(0.0, "A"), Section(12.0, "B")])
    assert A.phrase_ends(s, 8) == [2, 7] and A.figures(s)["fill_contrast"] == 1.0
    bare = A.figures(song(melody))
    assert bare["groove_consistency"] is None and bare["drums_density"] is None  # no drums: undefined, not zero
    assert set(bare) == set(A.FIGURES) == set(A.figures(Song()))


def test_roles_of_an_unmarked_file():
    melody = Track([Note(b, 1, 76) for b in range(16)], channel=0)
    octave = Track([Note(b, 1, 64) for b in range(16)], channel=1)  # doubles the melody an octave down
    pad = Track([Note(0, 16, p) for p in (60, 64, 67)] * 1 + [Note(b, 1, 60) for b in range(16)], channel=2)
    bass = Track([Note(4 * b, 4, 36) for b in range(4)], channel=3)
    drums = Track([Note(*n) for n in beat_pattern(0)], channel=9, drum=True)
    r = R.roles(Song(tracks=[bass, pad, octave, melody, drums]))
    assert r["melody"] == [melody, octave] and r["bass"] == [bass] and r["harmony"] == [pad]
    assert r["drums"] == [drums]
    high = Track([Note(4 * b, 4, 60) for b in range(4)], channel=3)  # median above BASS_MAX: harmony
    assert R.roles(Song(tracks=[high, melody]))["bass"] == []
    # a composed song's roles are taken at their word
    marked = song(track("melody", [(0, 1, 40)]), track("bass", [(0, 1, 80)]))
    assert R.roles(marked)["bass"][0].notes[0].pitch == 80


def test_a_song_played_late_reads_as_on_the_grid():
    s = chords_and_bass([36, 41, 36, 41])
    late = Song(tracks=[Track([n._replace(onset=n.onset + 0.1) for n in t.notes], role=t.role) for t in s.tracks],
                length=s.length + 0.1)
    assert A.grid_shift(A._array(late.notes())) == pytest.approx(0.1)
    assert A.figures(late) == pytest.approx(A.figures(s))  # G over C major, then over F major: 0.5
    assert A.figures(late)["bass_root_fifth"] == 1.0 and A.figures(late)["chord_tone_share"] == 0.5


def test_judge_rows_and_the_melody_kept(tmp_path):
    human = [A.figures(chords_and_bass(b)) for b in ([36, 41, 36, 41], [43, 36, 43, 36], [40, 41, 36, 41])]
    ranges = {"pooled": summarise(human)}
    rows = {r["figure"]: r for r in judge_rows([chords_and_bass([40, 45, 40, 45])], ranges)}
    assert rows["bass_root_fifth"]["inside"] is False and rows["bass_root_fifth"]["songs_inside"] == 0.0
    assert rows["chord_tone_share"]["inside"] is True and rows["groove_consistency"]["inside"] is None
    bare = {r["figure"]: r for r in judge_rows([song(track("melody", [(0, 4, 72)]))], ranges)}
    assert bare["bass_root_fifth"]["inside"] is False and bare["bass_root_fifth"]["n"] == 0  # no bass: wrong
    assert bare["groove_consistency"]["inside"] is None  # the human songs had no drums either
    assert "bass_root_fifth" in outside(list(rows.values())) and "**OUTSIDE**" in markdown(list(rows.values()), "x")
    with pytest.raises(ValueError, match="no human corpus"):
        judge_rows([], ranges, "nowhere")
    lead = song(track("melody", [(b, 1, 72 + b % 5) for b in range(16)]))
    arranged = song(*lead.tracks, track("bass", [(0, 16, 36)]))
    assert melody_kept(lead, arranged) == {"same_notes": True, "changed": {}}
    moved = song(track("melody", [(b, 1, 74 + b % 5) for b in range(16)]))
    assert melody_kept(lead, moved)["same_notes"] is False


def test_the_bench_judges_midi_files_against_the_ranges(tmp_path):
    out, songs = tmp_path / "results", tmp_path / "songs"
    human = [A.figures(chords_and_bass(b)) for b in ([36, 41, 36, 41], [43, 36, 43, 36])]
    out.mkdir()
    (out / "arrangement_human.json").write_text(json.dumps({
        "command": "test", "seconds": 0, "licences": {c: "test" for c in ("freedoom", "openttd", "planetblupi")},
        "ranges": {c: summarise(human) for c in ("freedoom", "openttd", "planetblupi", "pooled")}, "songs": []}))
    for i, b in enumerate(([36, 41, 36, 41], [40, 45, 40, 45])):
        write_midi(chords_and_bass(b), songs / f"s{i}.mid")
    back = read_midi(songs / "s0.mid")  # the roles found again from the tracks' names
    assert A.figures(back) == pytest.approx(A.figures(chords_and_bass([36, 41, 36, 41])))
    r = run_script("bench/arrangement.py", "--songs", songs, "--label", "two songs", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    judged = json.loads((out / "arrangement-two_songs.json").read_text())
    assert len(judged["songs"]) == 2 and {r["figure"] for r in judged["rows"]} == set(A.FIGURES)
    assert "two songs" in (out / "arrangement.md").read_text()
    r = run_script("bench/arrangement.py", "--songs", tmp_path / "none", "--out", out, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error:")


def test_roles_of_a_real_openttd_song():
    path = OPENTTD / "5432gone_redfarn.mid"
    if not path.is_file():
        pytest.skip("Debian package openttd-openmsx is not installed")
    s = read_midi(path)
    r = R.roles(s)
    median = lambda ts: sorted(n.pitch for t in ts for n in t.notes)[sum(len(t.notes) for t in ts) // 2]  # noqa: E731
    assert r["drums"] and all(t.drum for t in r["drums"]) and r["melody"] and r["bass"]
    assert median(r["bass"]) < median(r["melody"]) and median(r["bass"]) < R.BASS_MAX
    f = A.figures(s)
    assert all(f[k] is not None for k in ("chord_tone_share", "dissonance", "bass_root_fifth", "groove_consistency"))
