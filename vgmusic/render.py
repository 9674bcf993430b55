"""Timed notes -> a standard MIDI file, written with mido."""
import mido

from .store import atomic_path

TICKS_PER_BEAT = 480


def notes_to_midi(notes, tempo=120.0, program=0, velocity=80):
    """notes: [onset, duration, pitch(, velocity)] in quarter notes. One track, one channel."""
    if not 0 <= program <= 127:
        raise ValueError(f"MIDI program must be 0-127, got {program}")
    if tempo <= 0:
        raise ValueError(f"tempo must be positive, got {tempo}")
    events = []
    for n in notes:
        on = round(n[0] * TICKS_PER_BEAT)
        off = max(on + 1, round((n[0] + n[1]) * TICKS_PER_BEAT))
        vel = int(n[3]) if len(n) > 3 else velocity
        # note-offs sort before note-ons at the same tick so a repeated pitch re-strikes
        events.append((on, 1, "note_on", int(n[2]), vel))
        events.append((off, 0, "note_off", int(n[2]), 0))
    events.sort()
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.Message("program_change", program=program, channel=0, time=0),
    ])
    now = 0
    for tick, _, kind, pitch, vel in events:
        track.append(mido.Message(kind, note=pitch, velocity=vel, channel=0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_midi(notes, path, **kw):
    midi = notes_to_midi(notes, **kw)
    with atomic_path(path) as tmp:
        midi.save(tmp)
    return path
