import wave

import mido
import numpy as np
import pytest
from music21 import converter

from vgmusic.render import (INSTALL_SYNTH, PART_COLOURS, PEAK, TICKS_PER_BEAT, bar_label_step, note_name,
                            notes_to_midi, part_colours, piano_roll, render_wav, write_midi)


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


# --- audio: real WAVs from the real synthesizer, read back with the standard library ------------------

def read_wav(path):
    """(samples as floats, frames x 2; sample rate), after checking it is 16-bit stereo."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (2, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2) / 32767, w.getframerate()


def rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


@pytest.fixture
def synth():
    pytest.importorskip("tinysoundfont", reason=f"tinysoundfont is not installed ({INSTALL_SYNTH})")


def test_wav_lasts_the_song_plus_its_tail_or_exactly_the_song_when_looping(synth, tmp_path):
    notes = [[b, 1, p] for b, p in zip(range(16), [60, 62, 64, 65, 67, 69, 71, 72] * 2)]
    mid = write_midi(notes, tmp_path / "song.mid", tempo=120, end=16)  # 4 bars at 120 bpm: 8 s
    for loop, tail, seconds in ((True, 1.0, 8.0), (False, 1.0, 9.0), (False, 0.25, 8.25), (False, 0, 8.0)):
        got = render_wav(mid, tmp_path / "song.wav", loop=loop, tail=tail, sample_rate=22050)
        x, rate = read_wav(tmp_path / "song.wav")
        assert rate == 22050 and len(x) == round(seconds * 22050) and got["seconds"] == len(x) / rate
        assert got["render_seconds"] > 0
        assert rms(x) > 0.05 and np.abs(x).max() <= PEAK + 1e-4
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


@pytest.mark.parametrize("pitch, hz", [(69, 440.0), (81, 880.0)])
def test_the_written_pitch_sounds(synth, tmp_path, pitch, hz):
    mid = write_midi([[0, 6, pitch]], tmp_path / "a.mid", tempo=120, program=73, end=8)  # a flute
    render_wav(mid, tmp_path / "a.wav")
    x, rate = read_wav(tmp_path / "a.wav")
    held = x[rate // 2: 5 * rate // 2].mean(axis=1)  # 2 s of the sustained note
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    assert np.fft.rfftfreq(len(held), 1 / rate)[spectrum.argmax()] == pytest.approx(hz, rel=0.02)


def test_the_sound_ringing_at_the_end_wraps_onto_the_start_of_a_loop(synth, tmp_path):
    # strings (slow release); nothing in the first bar, a note struck on the last beat
    notes = [[4, 4, 60], [15, 1, 69]]
    mid = write_midi(notes, tmp_path / "l.mid", tempo=120, program=48, end=16)
    render_wav(mid, tmp_path / "plain.wav")
    render_wav(mid, tmp_path / "loop.wav", loop=True)
    plain, rate = read_wav(tmp_path / "plain.wav")
    loop, _ = read_wav(tmp_path / "loop.wav")
    assert len(loop) == 8 * rate
    assert np.abs(plain[:rate // 10]).max() == 0  # played once, the song starts in silence
    assert rms(loop[:rate // 10]) > 0.2 * rms(loop)  # looped, the last note's release sounds there
    # the loop is what plays the second time round when the song is played twice in a row ...
    twice = write_midi(notes + [[n[0] + 16, *n[1:]] for n in notes], tmp_path / "twice.mid", tempo=120,
                       program=48, end=32)
    render_wav(twice, tmp_path / "twice.wav", tail=0)
    second, _ = read_wav(tmp_path / "twice.wav")
    assert np.corrcoef(second[8 * rate:].ravel(), loop.ravel())[0, 1] > 0.999
    # ... so going from its last sample back to its first is no bigger a step than any inside it
    assert np.abs(loop[0] - loop[-1]).max() <= np.abs(np.diff(loop, axis=0)).max()


def test_several_tracks_channels_drums_and_tempo_changes(synth, tmp_path):
    """A type-1 file: a tempo track that slows down, a piano, a violin and General MIDI drums."""
    midi = mido.MidiFile(type=1, ticks_per_beat=96)
    midi.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=500000, time=0),    # 120 bpm for 4 beats: 2 s
        mido.MetaMessage("set_tempo", tempo=1000000, time=384),  # then 60 bpm
        mido.MetaMessage("end_of_track", time=384)]))            # 4 beats more: 4 s, 6 s in all
    piano = [mido.Message("note_on", note=60, velocity=90, time=0), mido.Message("note_off", note=60, time=192)]
    violin = [mido.Message("program_change", channel=1, program=40, time=0),
              mido.Message("note_on", channel=1, note=76, velocity=90, time=384),  # at the tempo change: 2.0 s
              mido.Message("note_off", channel=1, note=76, time=192)]
    drums = [mido.Message(kind, channel=9, note=n, velocity=100 if kind == "note_on" else 0, time=t)
             for n in (36, 38, 42, 38) for kind, t in (("note_on", 0), ("note_off", 48))]
    for track in (piano, violin, drums):
        midi.tracks.append(mido.MidiTrack(track))
    midi.save(tmp_path / "multi.mid")
    assert midi.length == pytest.approx(6.0)
    render_wav(tmp_path / "multi.mid", tmp_path / "multi.wav", loop=True)
    x, rate = read_wav(tmp_path / "multi.wav")
    assert len(x) == 6 * rate

    # each voice on its own: the violin starts on the very sample of the tempo change, the drums sound
    only = mido.MidiFile(type=1, ticks_per_beat=96, tracks=[midi.tracks[0], midi.tracks[2]])
    only.save(tmp_path / "violin.mid")
    render_wav(tmp_path / "violin.mid", tmp_path / "violin.wav")
    v, _ = read_wav(tmp_path / "violin.wav")
    first = int(np.flatnonzero(np.abs(v).max(axis=1) > 0)[0])
    assert 2 * rate <= first <= 2 * rate + rate // 200  # within the 5 ms of the bow's attack
    mido.MidiFile(type=1, ticks_per_beat=96, tracks=[midi.tracks[0], midi.tracks[3]]).save(tmp_path / "drums.mid")
    render_wav(tmp_path / "drums.mid", tmp_path / "drums.wav")
    d, _ = read_wav(tmp_path / "drums.wav")
    assert rms(d[:rate]) > 0.02  # channel 10 plays the drum kit (bank 128), not a silent preset


def test_bad_input_is_one_line_naming_the_file(synth, tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02garbage")
    for path in (bad, tmp_path / "missing.mid"):
        with pytest.raises(ValueError, match=path.name) as e:
            render_wav(path, tmp_path / "out.wav")
        assert "\n" not in str(e.value)
    mid = write_midi([[0, 1, 60]], tmp_path / "ok.mid", end=4)
    with pytest.raises(ValueError, match="nowhere.sf2"):
        render_wav(mid, tmp_path / "out.wav", soundfont=tmp_path / "nowhere.sf2")
    with pytest.raises(ValueError, match="empty.mid"):
        render_wav(write_midi([], tmp_path / "empty.mid"), tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


# --- piano roll -------------------------------------------------------------------------------------

def test_piano_roll_gives_each_part_its_colour(tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread
    notes = [[b, 4, 60 + (b // 8) * 7] for b in range(0, 32, 4)]  # long notes: many pixels of each colour
    parts = ["A"] * 4 + ["B"] * 4
    path = piano_roll(notes, tmp_path / "roll.png", "two parts", 120, parts=parts, end=32)
    img = imread(path)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 400
    colours = part_colours(parts)
    assert len(set(colours.values())) == 2
    counts = [int(np.all(np.abs(img - to_rgb(c)) < 0.02, axis=-1).sum())
              for c in [colours["A"], colours["B"], part_colours(["A", "B", "C"])["C"]]]
    # both parts' colours cover far more than their legend swatches; a third colour is not used
    assert counts[0] > 2000 and counts[1] > 2000 and counts[2] == 0
    # a varied repeat is a lighter shade of its theme's colour
    assert part_colours(["A", "A'", "B"]) == {"A": PART_COLOURS[0], "A'": PART_COLOURS[1], "B": PART_COLOURS[2]}


def test_piano_roll_of_a_long_looping_song(tmp_path):
    from matplotlib.image import imread
    notes = [[b * 0.5, 0.5, 48 + (b * 5) % 30] for b in range(128)]  # 16 bars
    path = piano_roll(notes, tmp_path / "loop.png", "seam", 140, parts=["A"] * 64 + ["B"] * 64, end=64, seam=True)
    assert imread(path).shape[1] > 1000
    assert bar_label_step(16) == 1 and bar_label_step(32) == 1 and bar_label_step(33) == 2
    assert bar_label_step(100) == 4 and note_name(60) == "C4" and note_name(69) == "A4"
    with pytest.raises(ValueError, match="none.png"):
        piano_roll([], tmp_path / "none.png")
