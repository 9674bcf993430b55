import mido
import pytest
from music21 import converter

from vgmusic.render import TICKS_PER_BEAT, notes_to_midi, write_midi


def test_written_notes_read_back_with_their_timing(tmp_path):
    notes = [[0, 1, 60], [0, 1, 64], [1, 0.5, 67], [2.5, 0.25, 72], [2.75, 1 / 3, 71], [4, 2, 48]]
    path = write_midi(notes, tmp_path / "n.mid", tempo=90, program=73)
    midi = mido.MidiFile(path)
    now, on, back = 0, {}, []
    for msg in midi.tracks[0]:
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            on[msg.note] = now
        elif msg.type in ("note_off", "note_on"):
            start = on.pop(msg.note)
            back.append([start / TICKS_PER_BEAT, (now - start) / TICKS_PER_BEAT, msg.note])
    key = lambda n: (n[0], n[2])  # noqa: E731
    for a, b in zip(sorted(notes, key=key), sorted(back, key=key)):
        assert a[0] == pytest.approx(b[0], abs=1e-3) and a[1] == pytest.approx(b[1], abs=1e-2) and a[2] == b[2]
    assert any(m.type == "program_change" and m.program == 73 for m in midi.tracks[0])
    assert mido.tempo2bpm(next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")) == pytest.approx(90)
    score = converter.parse(str(path))
    assert {p.midi for n in score.flatten().notes for p in n.pitches} == {48, 60, 64, 67, 71, 72}


def test_repeated_pitch_restrikes():
    midi = notes_to_midi([[0, 1, 60], [1, 1, 60]])
    kinds = [(m.type, m.time) for m in midi.tracks[0] if m.type.startswith("note")]
    assert kinds == [("note_on", 0), ("note_off", 480), ("note_on", 0), ("note_off", 480)]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="program"):
        notes_to_midi([[0, 1, 60]], program=200)
    with pytest.raises(ValueError, match="tempo"):
        notes_to_midi([[0, 1, 60]], tempo=0)
