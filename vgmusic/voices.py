"""Each distinct note rendered once and added wherever it sounds: the synthesizer's cost, once per sound.

tinysoundfont plays every note as voices of its own that never touch one another (each reads its sample
from its own start, with its own envelopes and filter) and sums them, so the audio of a song is the sum of
each note's audio placed at its first sample. A game melody strikes the same few notes again and again (a
default 500-event Pokemon song: 2,205 pitched notes, 305 of them distinct in channel, pitch, velocity and
length to the sample), so rendering each once and adding its copies costs a third of playing them all
(0.29 s of CPU against 0.88 for that song, its drums still played live).
What differs from playing them live: the synthesizer steps each voice's envelope every 64 samples counted
from the last event on any channel, a summed note from its own first sample, so a step can fall up to 63
samples (1.4 ms) apart: the difference is 99 dB under the default Pokemon song, RMS, and 64 dB under
tests/test_voices.py's band of short notes.

Only what stays independent is taken out of the live synthesizer (`split`); the rest plays there as
before:
- not the drum channel: General MIDI kits choke one hi-hat with the next (SoundFont exclusive classes,
  which stop a voice from another note), and TimGM6mb's melodic instruments have none (tests check);
- not a channel with a program, controller or pitch-bend change after its first note (it would change
  voices already sounding), nor one striking a pitch it still holds (the synthesizer's note-off ends
  the oldest held voice of that pitch, which depends on which voices have ended by themselves);
- not a song holding more than MAX_HELD notes at once: the synthesizer's 256 voices would start cutting
  off the oldest, which summing never does.
"""
import numpy as np

from .song import DRUM_CHANNEL

MAX_HELD = 64  # notes held at once, every channel together, up to which summing is the synthesizer's sum
# after its note-off, a note's release is rendered this many frames at a time until a block is exact
# silence: the synthesizer then has no voice left for it (it writes zeros where no voice sounds)
BLOCK = 1 << 12
LONGEST = 60  # seconds a note may ring after its note-off: past it, it is cut (no General MIDI patch nears it)
SETTINGS = ("program_change", "control_change", "pitchwheel")


def _independent(events):
    """The channels whose notes split may take: see the module's docstring."""
    held, struck, bad, now, most = {}, set(), {DRUM_CHANNEL}, 0, 0  # now: notes held at this moment
    for _, msg in events:
        if msg.type in SETTINGS:
            if msg.channel in struck:
                bad.add(msg.channel)
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity:
            struck.add(msg.channel)
            if held.get(key):
                bad.add(msg.channel)
            held[key] = held.get(key, 0) + 1
            now += 1
            most = max(most, now)
        elif held.get(key):
            held[key] -= 1
            now -= 1
    if most > MAX_HELD:
        return set()
    return {c for c in struck if c not in bad}


def split(schedule, events):
    """(live, notes, settings): `schedule` ((frame, message or None), in order; None: every held note
    ends there, as the synthesizer's notes_off) without the notes that can be summed, those notes as
    (channel, pitch, velocity, first frame, note-off frame), and the setting messages of their channels,
    which the renderer of those notes plays first. `events` are one pass of the song, which decide the
    channels."""
    free = _independent(events)
    live, notes, settings, held, first = [], [], [], {}, True
    for at, msg in schedule:
        if msg is None:
            for (chan, pitch), (on, vel) in held.items():
                notes.append((chan, pitch, vel, on, at))
            held.clear()
            live.append((at, msg))
            first = False
        elif msg.channel not in free:
            live.append((at, msg))
        elif msg.type in SETTINGS:
            if first:  # all before the channel's first note; a later pass repeats them, to the same state
                settings.append(msg)
        elif msg.type == "note_on" and msg.velocity:
            held[msg.channel, msg.note] = (at, msg.velocity)
        elif (msg.channel, msg.note) in held:
            on, vel = held.pop((msg.channel, msg.note))
            notes.append((msg.channel, msg.note, vel, on, at))
    return live, notes, settings


def add_notes(audio, notes, settings, synth, send, wrap=False):
    """Adds each of `notes` (split's) into `audio` (float32 frames x 2) at its first frame, as `synth` (a
    fresh synthesizer, `send` playing a message on it) renders the note alone after `settings`; what
    rings past the end is dropped, or with `wrap` added over the start (at most once round), as a loop
    plays. Each distinct note is rendered once, its copies added, then let go."""
    for msg in settings:
        send(synth, msg)
    order = sorted(range(len(notes)), key=lambda i: (notes[i][:3], notes[i][4] - notes[i][3]))
    frames, sound, last = len(audio), None, None
    for i in order:
        chan, pitch, vel, on, off = notes[i]
        this = (chan, pitch, vel, off - on)
        if this != last:
            sound, last = _render(synth, chan, pitch, vel, off - on), this
        n = min(len(sound), frames - on)
        audio[on:on + n] += sound[:n]
        if wrap and n < len(sound):
            rest = sound[n:n + frames]
            audio[:len(rest)] += rest


def _render(synth, chan, pitch, vel, length):
    """One note alone: struck, held `length` frames, released until the synthesizer falls silent."""
    synth.noteon(chan, pitch, vel)
    parts = [np.frombuffer(synth.generate_simple(length), np.float32).reshape(-1, 2)] if length else []
    synth.noteoff(chan, pitch)
    for _ in range(LONGEST * synth.samplerate // BLOCK):
        block = synth.generate_simple(BLOCK).obj  # its bytearray
        sounding = len(block.rstrip(b"\0"))  # bytes up to the last that is not zero
        if not sounding:
            break
        parts.append(np.frombuffer(block, np.float32, -(-sounding // 8) * 2).reshape(-1, 2))
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)
