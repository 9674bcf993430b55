"""Timed notes -> a standard MIDI file, written with mido."""
import mido

from .store import atomic_path

TICKS_PER_BEAT = 480


def notes_to_midi(notes, tempo=120.0, program=0, velocity=80, end=None):
    """notes: [onset, duration, pitch(, velocity)] in quarter notes. One track, one channel.
    `end` (quarter notes) places the end of the track, so a song of whole bars lasts whole bars."""
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
    last = round(end * TICKS_PER_BEAT) if end is not None else now
    track.append(mido.MetaMessage("end_of_track", time=max(0, last - now)))
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_midi(notes, path, **kw):
    midi = notes_to_midi(notes, **kw)
    with atomic_path(path) as tmp:
        midi.save(tmp)
    return path


def piano_roll(notes, path, title="", tempo=120.0):
    """A PNG of the notes: time across in beats, pitch up, one bar per note."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    if not notes:
        raise ValueError(f"{path}: no notes to draw")
    end = max(n[0] + n[1] for n in notes)
    fig, ax = plt.subplots(figsize=(min(16, 4 + end / 8), 4))
    boxes = [[(n[0], n[2] - 0.4), (n[0] + n[1], n[2] - 0.4), (n[0] + n[1], n[2] + 0.4), (n[0], n[2] + 0.4)]
             for n in notes]
    ax.add_collection(PolyCollection(boxes, facecolors="C0", edgecolors="C0", linewidths=0.3))
    low, high = min(n[2] for n in notes), max(n[2] for n in notes)
    ax.set_xlim(0, end)
    ax.set_ylim(low - 2, high + 2)
    for bar in range(0, int(end) + 1, 4):
        ax.axvline(bar, color="grey", lw=0.3, alpha=0.5)
    for c in range(12 * (low // 12), high + 2, 12):
        ax.axhline(c - 0.5, color="grey", lw=0.3, alpha=0.5)
    ax.set_xlabel(f"beats (bars of 4; {tempo:g} bpm)")
    ax.set_ylabel("MIDI pitch (lines at each C)")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
