"""MIDI writing (vgmusic.midi) and audio (vgmusic.render): real files written, read back with mido and music21,
and real WAVs from the real synthesizer read back with the standard library. The piano roll: test_roll.py."""
import wave

import mido
import numpy as np
import pytest
from music21 import converter

from vgmusic.midi import TICKS_PER_BEAT, song_to_midi, write_midi
from vgmusic.render import INSTALL_SYNTH, MAX_SECONDS, PEAK, midi_timeline, render_wav
from vgmusic.song import Note, Song, Track
from vgmusic.theory import note_name


def melody(notes, bpm=120.0, program=0, end=None, title=""):
    """A one-track Song of [onset, duration, pitch(, velocity)] lists."""
    return Song(tracks=[Track([Note(*n) for n in notes], program=program)], tempos=[(0.0, bpm)], length=end,
                title=title)


def note_tracks(midi):
    return [t for t in midi.tracks if any(m.type == "note_on" for m in t)]


def test_written_notes_read_back_with_their_timing(tmp_path):
    notes = [[0, 1, 60], [0, 1, 64], [1, 0.5, 67], [2.5, 0.25, 72], [2.75, 1 / 3, 71], [4, 2, 48]]
    path = write_midi(melody(notes, bpm=90, program=73), tmp_path / "n.mid")
    midi = mido.MidiFile(path)
    track, = note_tracks(midi)
    now, on, back = 0, {}, []
    for msg in track:
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            on[msg.note] = now
        elif msg.type in ("note_off", "note_on"):
            start = on.pop(msg.note)
            back.append([start / TICKS_PER_BEAT, (now - start) / TICKS_PER_BEAT, msg.note])
    key = lambda n: (n[0], n[2])  # noqa: E731
    for a, b in zip(sorted(notes, key=key), sorted(back, key=key)):
        assert a[0] == pytest.approx(b[0], abs=1e-3) and a[1] == pytest.approx(b[1], abs=1e-2) and a[2] == b[2]
    assert any(m.type == "program_change" and m.program == 73 for m in track)
    # the tempo is the conductor track's, the first of a type-1 file
    assert midi.type == 1 and not any(m.type == "note_on" for m in midi.tracks[0])
    assert mido.tempo2bpm(next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")) == pytest.approx(90)
    score = converter.parse(str(path))
    assert {p.midi for n in score.flatten().notes for p in n.pitches} == {48, 60, 64, 67, 71, 72}


def test_repeated_pitch_restrikes():
    midi = song_to_midi(melody([[0, 1, 60], [1, 1, 60]]))
    kinds = [(m.type, m.time) for m in note_tracks(midi)[0] if m.type.startswith("note")]
    assert kinds == [("note_on", 0), ("note_off", 480), ("note_on", 0), ("note_off", 480)]


def test_velocities_and_length_are_written():
    midi = song_to_midi(melody([[0, 1, 60, 20], [1, 1, 62, 127]], end=8))
    track = note_tracks(midi)[0]
    assert [m.velocity for m in track if m.type == "note_on"] == [20, 127]
    assert all(sum(m.time for m in t) == 8 * TICKS_PER_BEAT for t in midi.tracks)  # whole bars, every track


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="program"):
        song_to_midi(melody([[0, 1, 60]], program=200))
    with pytest.raises(ValueError, match="tempo"):
        song_to_midi(melody([[0, 1, 60]], bpm=0))


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
    song = melody(notes, bpm=120, end=16)  # 4 bars at 120 bpm: 8 s
    for loop, tail, seconds in ((True, 1.0, 8.0), (False, 1.0, 9.0), (False, 0.25, 8.25), (False, 0, 8.0)):
        got = render_wav(song, tmp_path / "song.wav", loop=loop, tail=tail, sample_rate=22050)
        x, rate = read_wav(tmp_path / "song.wav")
        assert rate == 22050 and len(x) == round(seconds * 22050) and got["seconds"] == len(x) / rate
        assert got["render_seconds"] > 0
        assert rms(x) > 0.05 and np.abs(x).max() <= PEAK + 1e-4
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_a_song_renders_from_memory_as_its_written_file_does(synth, tmp_path):
    """The Song itself and the MIDI file written from it: the same events at the same times, the same WAV."""
    song = Song(tracks=[Track([Note(b * 0.5, 0.5, 60 + b % 12, 40 + 5 * b) for b in range(16)], program=73),
                        Track([Note(b * 2.0, 2.0, 36 + b, 100) for b in range(4)], program=33),
                        Track([Note(b * 1.0, 0.25, 38, 110) for b in range(8)], drum=True)],
                tempos=[(0.0, 140.0), (4.0, 100.0)], length=8.0, title="band")
    path = write_midi(song, tmp_path / "band.mid")
    from_song, from_file = midi_timeline(song), midi_timeline(path)
    assert [(t, m.bytes()) for t, m in from_song[0]] == [(t, m.bytes()) for t, m in from_file[0]]
    assert from_song[1] == from_file[1] and float(from_song[1]) == pytest.approx(song.seconds(8.0), abs=1e-5)
    render_wav(song, tmp_path / "memory.wav", sample_rate=22050)
    render_wav(path, tmp_path / "file.wav", sample_rate=22050)
    memory, rate = read_wav(tmp_path / "memory.wav")
    assert np.array_equal(memory, read_wav(tmp_path / "file.wav")[0])
    assert len(memory) == round((song.duration + 1.0) * rate)


def test_a_song_buffer_mapped_at_once_renders_the_same_samples(synth, monkeypatch):
    """render.silence maps a long song's samples in one call (Linux): zeros, writable, the same WAV."""
    import mmap

    from vgmusic import render
    buf = render.silence(1 << 18)  # 2 MB of frames
    assert buf.shape == (1 << 18, 2) and buf.dtype == np.float32 and buf.flags.writeable and not buf.any()
    base = buf
    while getattr(base, "base", None) is not None:
        base = base.base
    base = base.obj if isinstance(base, memoryview) else base  # NumPy holds the mapping through a view
    assert isinstance(base, mmap.mmap) or not hasattr(mmap, "MAP_POPULATE")
    assert render.silence(10).shape == (10, 2) and render.silence(0).shape == (0, 2)
    song = melody([[b, 1, 60 + b, 90] for b in range(12)], bpm=120, end=12)  # 7 s with its tail: 2.5 MB
    mapped, _ = render.render_audio(song)
    monkeypatch.setattr(render, "silence", lambda frames: np.zeros((frames, 2), np.float32))
    plain, _ = render.render_audio(song)
    assert np.abs(mapped).max() > 0.05 and np.array_equal(mapped, plain)


@pytest.mark.parametrize("pitch, hz", [(69, 440.0), (81, 880.0)])
def test_the_written_pitch_sounds(synth, tmp_path, pitch, hz):
    song = melody([[0, 6, pitch]], bpm=120, program=73, end=8)  # a flute
    assert note_name(pitch) == {69: "A4", 81: "A5"}[pitch]
    render_wav(song, tmp_path / "a.wav")
    x, rate = read_wav(tmp_path / "a.wav")
    held = x[rate // 2: 5 * rate // 2].mean(axis=1)  # 2 s of the sustained note
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    assert np.fft.rfftfreq(len(held), 1 / rate)[spectrum.argmax()] == pytest.approx(hz, rel=0.02)


def test_the_sound_ringing_at_the_end_wraps_onto_the_start_of_a_loop(synth, tmp_path):
    # strings (slow release); nothing in the first bar, a note struck on the last beat
    notes = [[4, 4, 60], [15, 1, 69]]
    song = melody(notes, bpm=120, program=48, end=16)
    render_wav(song, tmp_path / "plain.wav")
    render_wav(song, tmp_path / "loop.wav", loop=True)
    plain, rate = read_wav(tmp_path / "plain.wav")
    loop, _ = read_wav(tmp_path / "loop.wav")
    assert len(loop) == 8 * rate
    assert np.abs(plain[:rate // 10]).max() == 0  # played once, the song starts in silence
    assert rms(loop[:rate // 10]) > 0.2 * rms(loop)  # looped, the last note's release sounds there
    # the loop is what plays the second time round when the song is played twice in a row ...
    twice = melody(notes + [[n[0] + 16, *n[1:]] for n in notes], bpm=120, program=48, end=32)
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
    # a Song's drum track does too, from memory
    kit = Song(tracks=[Track([Note(b * 0.5, 0.25, (36, 38, 42, 38)[b % 4], 100) for b in range(8)], drum=True)],
               length=4.0)
    render_wav(kit, tmp_path / "kit.wav")
    assert rms(read_wav(tmp_path / "kit.wav")[0][:rate]) > 0.02


def test_bad_input_is_one_line_naming_the_file(synth, tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02garbage")
    for path in (bad, tmp_path / "missing.mid"):
        with pytest.raises(ValueError, match=path.name) as e:
            render_wav(path, tmp_path / "out.wav")
        assert "\n" not in str(e.value)
    song = melody([[0, 1, 60]], end=4)
    with pytest.raises(ValueError, match="nowhere.sf2"):
        render_wav(song, tmp_path / "out.wav", soundfont=tmp_path / "nowhere.sf2")
    with pytest.raises(ValueError, match="empty.mid"):
        render_wav(write_midi(Song(), tmp_path / "empty.mid"), tmp_path / "out.wav")
    with pytest.raises(ValueError, match="^quiet: lasts no time"):  # a Song is named by its title
        render_wav(Song(title="quiet"), tmp_path / "out.wav")
    with pytest.raises(ValueError, match=f"more than the {MAX_SECONDS} s"):
        render_wav(melody([[0, 1, 60]], end=MAX_SECONDS * 2 + 2), tmp_path / "out.wav")
    for kw, message in (({"sample_rate": 100}, "sample rate"), ({"tail": -1}, "tail")):
        with pytest.raises(ValueError, match=message):
            render_wav(song, tmp_path / "out.wav", **kw)
    assert not (tmp_path / "out.wav").exists()


def test_the_writer_writes_the_bytes_mido_would(tmp_path):
    """midi_bytes (notes encoded without mido's per-message work) against mido's own MidiFile.save: a
    song with drums, velocities, a tempo change, long silences (delta times of 2-3 bytes), running status
    across note-ons and note-offs and a pitch repeated; and every openttd song where Debian's package is."""
    import glob
    import io
    from vgmusic.midi import midi_bytes, read_midi
    song = Song(tracks=[Track([Note(0, 1, 60, 90), Note(1, 1, 60, 20), Note(300, 0.5, 72, 127)], program=80),
                        Track([Note(b * 0.5, 0.25, 42, 100) for b in range(9)], drum=True, name="kit")],
                tempos=[(0.0, 140.0), (2.0, 90.0)], length=400.0)
    songs = [song] + [read_midi(f) for f in sorted(glob.glob("/usr/share/games/openttd/baseset/openmsx/*.mid"))]
    for s in songs:
        midi = song_to_midi(s)
        saved = io.BytesIO()
        midi.save(file=saved)
        assert midi_bytes(midi) == saved.getvalue()
    assert write_midi(song, tmp_path / "s.mid").read_bytes() == midi_bytes(song_to_midi(song))
