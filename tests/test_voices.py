"""Notes rendered once each and summed (vgmusic.voices) against the real synthesizer playing every note live:
the same audio (the difference 55 dB under it, RMS, and no sample 45 dB off) on plain songs, loops, loops
with an intro and stems, and the cases where summing would not be the synthesizer's sum kept live."""
import struct

import mido
import numpy as np
import pytest

from vgmusic import voices
from vgmusic.render import INSTALL_SYNTH, default_soundfont, render_audio
from vgmusic.song import Note, Song, Track

pytest.importorskip("tinysoundfont", reason=f"tinysoundfont is not installed ({INSTALL_SYNTH})")


def band(loop=None):
    """Four tracks with the patterns a composed song has: a lead re-striking few notes, chords, a bass with
    long notes and drums (whose hi-hats choke one another, so they stay live), on a tempo change."""
    lead = [Note(b * 0.5, 0.5 if b % 3 else 0.25, 72 + (0, 2, 4, 7)[b % 4], 100) for b in range(64)]
    chords = [Note(bar * 4.0, 4.0, p, 70) for bar in range(8) for p in (60 + bar % 2 * 5, 64, 67)]
    bass = [Note(b * 2.0, 1.5, 36 + b % 3, 110) for b in range(16)]
    drums = [Note(b * 0.5, 0.25, (36, 42, 38, 46)[b % 4], 100) for b in range(64)]
    return Song(tracks=[Track(lead, program=80), Track(chords, program=48), Track(bass, program=33),
                        Track(drums, drum=True)], tempos=[(0.0, 140.0), (16.0, 120.0)], length=32.0, loop=loop)


@pytest.fixture
def live(tmp_path):
    """The default SoundFont under another name: render_audio then plays every note live, as before."""
    path = tmp_path / "same.sf2"
    path.symlink_to(default_soundfont())
    return path


def rms_db(error, reference):
    return 10 * np.log10(np.mean(np.square(error)) / np.mean(np.square(reference)))


@pytest.mark.parametrize("how", [dict(), dict(loop=True), dict(loop=True, intro=True), dict(tracks=[0]),
                                 dict(tail=0.25, sample_rate=22050)])
def test_summed_notes_are_what_the_synthesizer_plays(live, how):
    how = dict(how)
    song = band(loop=(8.0, 32.0) if how.pop("intro", False) else None)
    summed, _ = render_audio(song, **how)
    played, _ = render_audio(song, soundfont=live, **how)
    assert summed.shape == played.shape and np.abs(played).max() > 0.05
    # the live synthesizer steps each envelope every 64 samples counted from whichever event came last on
    # any channel, the summed notes from their own first sample: a difference of a millisecond's steps
    # (measured 64 dB under the audio at 44.1 kHz, 61 at 22.05 kHz)
    assert rms_db(summed - played, played) < -55
    assert np.abs(summed - played).max() < 10 ** (-45 / 20) * np.abs(played).max()


def test_a_note_struck_alone_is_the_synthesizers_own_to_the_bit(live):
    """One note with nothing else sounding: the synthesizer steps its envelopes from the same samples in
    both, so the sum is the live rendering exactly, from the note's first sample to its release's last."""
    song = Song(tracks=[Track([Note(1.0, 1.5, 67, 90)], program=80)], tempos=[(0.0, 120.0)], length=4.0)
    summed, _ = render_audio(song, tail=0)
    assert np.array_equal(summed, render_audio(song, tail=0, soundfont=live)[0])
    assert np.flatnonzero(np.abs(summed).max(axis=1))[0] == 22050  # struck on beat 1's very sample


def msgs(*spec):
    """(frame, message) pairs from (frame, type, channel, note or value, velocity)."""
    out = []
    for at, kind, chan, a, b in spec:
        if kind == "pitchwheel":
            out.append((at, mido.Message(kind, channel=chan, pitch=a)))
        elif kind == "program_change":
            out.append((at, mido.Message(kind, channel=chan, program=a)))
        else:
            out.append((at, mido.Message(kind, channel=chan, note=a, velocity=b)))
    return out


def test_what_summing_cannot_reproduce_stays_live():
    events = msgs((0, "program_change", 0, 80, 0), (0, "note_on", 0, 60, 90), (10, "note_off", 0, 60, 0),
                  (0, "note_on", 1, 60, 90), (5, "pitchwheel", 1, 400, 0), (10, "note_off", 1, 60, 0),
                  (0, "note_on", 2, 60, 90), (5, "note_on", 2, 60, 90), (10, "note_off", 2, 60, 0),
                  (12, "note_off", 2, 60, 0), (0, "note_on", 9, 42, 90), (5, "note_off", 9, 42, 0))
    events.sort(key=lambda e: e[0])
    live, notes, settings = voices.split(events + [(20, None)], events)
    # channel 0 summed, its program played first; a bend while a note sounds (1), a pitch struck again while
    # held (2) and the drums (9) live
    assert notes == [(0, 60, 90, 0, 10)] and [m.program for m in settings] == [80]
    assert {m.channel for _, m in live if m} == {1, 2, 9} and live[-1] == (20, None)
    # a note still held when the notes stop ends there, as the synthesizer's notes_off ends it
    held = msgs((0, "note_on", 3, 64, 80))
    assert voices.split(held + [(7, None)], held)[1] == [(3, 64, 80, 0, 7)]
    # more notes held at once than summing may take: everything live
    crowd = msgs(*[(0, "note_on", k % 8, 40 + k, 80) for k in range(voices.MAX_HELD + 1)])
    assert voices.split(crowd, crowd)[1] == []


def sf2_exclusive_classes(path):
    """{(bank, preset): exclusive classes its instruments use}: the SoundFont's preset and instrument zones."""
    data = path.read_bytes()

    def chunks(off, end):
        while off < end:
            size = struct.unpack("<I", data[off + 4:off + 8])[0]
            yield data[off:off + 4], off + 8, size
            off += 8 + size + (size & 1)
    pdta = next((o + 4, o + s) for c, o, s in chunks(12, len(data)) if c == b"LIST" and data[o:o + 4] == b"pdta")
    sub = {c: data[o:o + s] for c, o, s in chunks(*pdta)}

    def records(name, fmt):
        size = struct.calcsize(fmt)
        return [struct.unpack(fmt, sub[name][i:i + size]) for i in range(0, len(sub[name]), size)]
    phdr, pbag, pgen = records(b"phdr", "<20sHHHIII"), records(b"pbag", "<HH"), records(b"pgen", "<Hh")
    inst, ibag, igen = records(b"inst", "<20sH"), records(b"ibag", "<HH"), records(b"igen", "<Hh")

    def gens(bags, gen, first, last):
        return [g for b in range(first, last) for g in gen[bags[b][0]:bags[b + 1][0]]]
    classes = [{v for op, v in gens(ibag, igen, inst[i][1], inst[i + 1][1]) if op == 57 and v}
               for i in range(len(inst) - 1)]
    return {(p[2], p[1]): set().union(*[classes[v] for op, v in gens(pbag, pgen, p[3], phdr[i + 1][3]) if op == 41])
            for i, p in enumerate(phdr[:-1])}


def test_only_the_default_soundfonts_drum_kits_choke_notes():
    """Summing takes melodic channels only with TimGM6mb, whose exclusive classes are all in drum kits."""
    classes = sf2_exclusive_classes(default_soundfont())
    assert len(classes) > 128 and any(classes[k] for k in classes if k[0] == 128)  # the parse sees the kits' hi-hats
    assert not any(classes[k] for k in classes if k[0] != 128)
