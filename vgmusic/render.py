"""A Song (or any MIDI file) -> a WAV, with the General MIDI SoundFont and tinysoundfont.

The Song is rendered straight from memory, through the same MIDI messages vgmusic.midi writes (so every
event lands on the sample the written file would put it on), never by re-reading a file just written.
Composing imports this module, so it never imports TensorFlow: NumPy, mido, the standard library and
tinysoundfont (inside the function that uses it).
"""
import dataclasses
import importlib.util
import mmap
import time
import wave
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np

from .store import atomic_path

from .midi import TICKS_PER_BEAT, channels, song_to_midi
from .song import DRUM_CHANNEL, Song
from .wavloop import append_chunks
from . import voices
# General MIDI in 6 MB, shipped inside the pretty_midi package (see requirements.txt)
SOUNDFONT = "TimGM6mb.sf2"
# tinysoundfont declares a dependency on pyaudio, which it imports only for live playback (never used
# here) and which does not build without PortAudio's headers: hence --no-deps.
INSTALL_SYNTH = "pip install --no-deps tinysoundfont==0.3.7"
# -1 dBFS: every mix is scaled as a whole so its loudest sample sits here: never clipped, and a
# one-instrument song (about -16 dBFS as the SoundFont plays it) as loud as a full arrangement
PEAK = 0.89
FADE = 0.05  # seconds: a non-looping WAV's tail ends in a fade, so a note still ringing stops without a click
# a MIDI file claiming to be longer is refused rather than filling the memory (a 20-minute loop takes
# about 0.9 GB while it renders); no game track comes close
MAX_SECONDS = 1200
BLOCK = 1 << 15  # frames converted to 16-bit and written at a time: 256 KB of float32, reused
# seconds: an intro's end crosses into the loop's own end over this long, so that it leads into the loop's
# first frame (which is the loop's, ringing with the loop's end) without a step; short enough to go unheard
XFADE = 0.01
# a loop's ringing tail is rendered this many frames at a time until a block's peak is under SILENT
# (-120 dBFS, far below the 16-bit floor of -96 dB): releases in General MIDI patches last up to seconds
TAIL_BLOCK = 1 << 13
SILENT = 1e-6


# --- audio ----------------------------------------------------------------------------------------------

def silence(frames):
    """Zeroed float32 stereo frames [frames, 2] to render a song into, their pages mapped in one call.
    Fresh memory is otherwise mapped a page at a time as the synthesizer first writes it: for a default
    500-event song (282 s, 100 MB of samples) those 25,000 faults cost 0.19 s of CPU here, mapped at once
    (MAP_POPULATE) 0.04 s; the samples are the same zeros either way."""
    size = int(frames) * 8
    if size >= 1 << 20 and hasattr(mmap, "MAP_POPULATE"):  # Linux; below a megabyte faults cost nothing
        try:
            memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
            return np.frombuffer(memory, np.float32).reshape(-1, 2)  # the array keeps the mapping alive
        except (OSError, ValueError, OverflowError):  # no memory to map at once: NumPy says so its own way
            pass
    return np.zeros((max(int(frames), 0), 2), np.float32)


def default_soundfont():
    """pretty_midi's TimGM6mb.sf2, found without importing pretty_midi (its imports are slow)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"no SoundFont: rendering audio uses {SOUNDFONT} from pretty_midi "
                         "(pip install pretty_midi==0.2.11.post0), or pass one")
    return Path(list(spec.submodule_search_locations)[0]) / SOUNDFONT


def midi_timeline(source, tracks=None):
    """(events, length): every channel message of every track of a Song, or of a MIDI file, with its time
    in seconds, exact (Fractions, from ticks and every tempo change), and the length including the end of
    track. `tracks` (indices of a Song's tracks) keeps only those tracks' messages, on the same timeline:
    a stem."""
    if isinstance(source, Song):
        if tracks is not None:  # only those tracks, each on the channel it has in the whole song's MIDI
            chans = channels(source)
            source = dataclasses.replace(source, tracks=[dataclasses.replace(source.tracks[i], channel=chans[i])
                                                         for i in tracks])
        midi = song_to_midi(source)
    else:
        from .midi import parse_bytes
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path}: MIDI file not found")
        try:
            midi = parse_bytes(path.read_bytes())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: {e.strerror if isinstance(e, OSError) else e}") from None
    # every track's messages at their absolute ticks, in time order, earlier tracks first at one tick: the
    # order mido.merge_tracks gives, without the copy of each message it makes (a third of the time of
    # rendering a four-track song, spent in mido's checks)
    timed = []
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            timed.append((tick, msg))
    timed.sort(key=lambda pair: pair[0])
    tempo, now, at, events = 500000, Fraction(0), 0, []  # 120 bpm until the first set_tempo, as the standard says
    for tick, msg in timed:
        if tick != at:
            now += Fraction((tick - at) * tempo, midi.ticks_per_beat * 1_000_000)
            at = tick
        if msg.type == "set_tempo":
            tempo = msg.tempo
        elif msg.type in ("note_on", "note_off", "program_change", "control_change", "pitchwheel"):
            events.append((now, msg))
    return events, now


def _synth(soundfont, sample_rate):
    try:
        import tinysoundfont
    except ImportError:
        raise ValueError(f"rendering audio needs tinysoundfont: {INSTALL_SYNTH}") from None
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    try:
        sfid = synth.sfload(str(soundfont))
    except Exception as e:
        raise ValueError(f"{soundfont}: not a readable SoundFont ({e})") from None
    for chan in range(16):  # General MIDI's power-on state: piano everywhere, the standard kit on channel 10
        drums = chan == DRUM_CHANNEL
        synth.program_select(chan, sfid, 128 if drums else 0, 0, drums)
    return synth


def _send(synth, msg):
    chan = msg.channel
    if msg.type == "note_on" and msg.velocity:
        synth.noteon(chan, msg.note, msg.velocity)
    elif msg.type in ("note_on", "note_off"):
        synth.noteoff(chan, msg.note)
    elif msg.type == "program_change":
        try:
            synth.program_change(chan, msg.program, chan == DRUM_CHANNEL)
        except RuntimeError:
            pass  # a preset this SoundFont lacks: the channel keeps its instrument rather than going silent
    elif msg.type == "control_change":
        synth.control_change(chan, msg.control, msg.value)
    elif msg.type == "pitchwheel":
        synth.pitchbend(chan, msg.pitch + 8192)


def frames_at(song, beats, sample_rate=44100):
    """Each of `beats` as a frame of the Song's rendered audio, where render_audio puts an event at that
    beat: through its ticks and every tempo change as the MIDI writer writes them, exact."""
    # 120 bpm until the first set_tempo, as the standard says; then the tempo map as song_to_midi writes it
    changes = [(0, 500000)] + [(round(beat * TICKS_PER_BEAT), mido.bpm2tempo(bpm)) for beat, bpm in song.tempos]
    out = []
    for beat in beats:
        ticks, seconds, at, tempo = round(beat * TICKS_PER_BEAT), Fraction(0), 0, 500000
        for when, next_tempo in changes:
            if when > ticks:
                break
            seconds += Fraction((when - at) * tempo, TICKS_PER_BEAT * 1_000_000)
            at, tempo = when, next_tempo
        out.append(round((seconds + Fraction((ticks - at) * tempo, TICKS_PER_BEAT * 1_000_000)) * sample_rate))
    return out


def loop_frames(song, sample_rate=44100):
    """(start, end): a looping Song's loop as frames of its rendered audio: the loop plays start..end-1,
    then start again. Without an intro the start is 0; the end is the song's, where composed loops end."""
    return tuple(frames_at(song, [song.loop[0] if song.loop else 0.0, song.end], sample_rate))


def render_audio(song, loop=False, tail=1.0, sample_rate=44100, soundfont=None, tracks=None):
    """A Song (or a standard MIDI file's path) as the General MIDI SoundFont plays it: (audio, sample_rate),
    audio float32 frames x 2 channels as the synthesizer made them (not scaled).

    Every event lands on its sample. The audio lasts the MIDI's length (its end of track included) plus
    `tail` seconds of release, faded out; with `loop`, exactly the MIDI's length: the song played, then its
    loop (Song.loop's start to the end) played again, and that second pass kept: what still rings at the
    end (releases, notes cut by the loop) sounds over the loop's start, as it does when a game loops it,
    so the loop repeats without a click or gap. A song with an intro (its loop starting after beat 0)
    keeps the first pass's intro; the intro's last XFADE seconds cross into what precedes the second pass
    (the loop's own end), so the intro leads into the kept loop without a step too (loop_frames: where).
    `tracks` (indices of a Song's tracks) renders only them on the same timeline and length: a stem. The
    synthesizer sums its voices, so the stems of a song sum to its audio."""
    if not (isinstance(sample_rate, int) and 8000 <= sample_rate <= 192000):
        raise ValueError(f"sample rate must be a whole number of Hz from 8000 to 192000, got {sample_rate}")
    if not tail >= 0:
        raise ValueError(f"tail must be 0 or more seconds, got {tail}")
    events, length = midi_timeline(song, tracks)
    what = song.title or "the song" if isinstance(song, Song) else song
    if length > MAX_SECONDS:
        raise ValueError(f"{what}: {float(length):.0f} s long, more than the {MAX_SECONDS} s this renders")
    frames = round(length * sample_rate)
    if frames == 0:
        raise ValueError(f"{what}: lasts no time, nothing to render")
    # the loop's first frame: after the intro of a Song that has one, else the start
    start = loop_frames(song, sample_rate)[0] if loop and isinstance(song, Song) and song.loop else 0
    soundfont = Path(soundfont) if soundfont else default_soundfont()
    if not soundfont.is_file():
        raise ValueError(f"{soundfont}: SoundFont not found")
    synth = _synth(soundfont, sample_rate)
    # notes summed from one rendering each (vgmusic.voices) where that is what the synthesizer plays: with
    # the SoundFont whose melodic instruments are known to let each voice be
    bank = (lambda: _synth(soundfont, sample_rate)) if soundfont == default_soundfont() else None
    if loop and not start:
        return _render_loop(synth, bank, events, frames, sample_rate), sample_rate
    passes = 2 if loop else 1
    total = 2 * frames - start if loop else frames + round(tail * sample_rate)
    schedule = []
    for p in range(passes):
        offset = p * (frames - start)  # the second pass plays the loop only, right after the first
        for when, msg in events:
            at = offset + round(when * sample_rate)
            if p and at < frames:  # the intro, not played again: its notes skipped, its settings kept
                if msg.type in ("note_on", "note_off"):
                    continue
                at = frames
            schedule.append((at, msg))
        schedule.append((offset + frames, None))  # a note left held at the end is released there
    whole = silence(total)
    _play(synth, bank, events, schedule, whole)
    audio = whole[frames if loop else 0:]  # a loop keeps pass 2
    if start:
        n = min(round(XFADE * sample_rate), start)
        ramp = (np.arange(1, n + 1, dtype=np.float32) / np.float32(n))[:, None]
        intro = whole[:start].copy()
        intro[start - n:] += (whole[frames - n:frames] - intro[start - n:]) * ramp
        audio = np.concatenate([intro, audio])
    if not loop and total > frames:
        fade = min(round(FADE * sample_rate), total - frames)
        audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)[:, None]
    return audio, sample_rate


def _play(synth, bank, events, schedule, audio, wrap=False):
    """The `schedule` ((frame, message), in order; None: every held note released, as a looping game does)
    into `audio` (float32 frames x 2); with `bank` (a fresh synthesizer's maker), the notes that sound the
    same summed from one rendering each (vgmusic.voices), wrapped over the start with `wrap`."""
    notes = None
    if bank:
        schedule, notes, settings = voices.split(schedule, events)
    view, pos = memoryview(audio).cast("B"), 0
    for at, msg in schedule:
        if at > pos:
            synth.generate_simple(at - pos, buffer=view[pos * 8:at * 8])
            pos = at
        if msg is None:
            synth.notes_off()
        else:
            _send(synth, msg)
    if len(audio) > pos:
        synth.generate_simple(len(audio) - pos, buffer=view[pos * 8:])
    if notes:
        voices.add_notes(audio, notes, settings, bank(), _send, wrap)


def _render_loop(synth, bank, events, frames, sample_rate):
    """A loop without an intro, played once: what still rings after its end (releases, notes the loop's end
    cut) is rendered on until it falls silent (at most one more loop's length) and added over the start,
    which is what a game hears each time round. The synthesizer sums independent voices, so this is the
    second pass of playing the song twice over, at half the cost: the same samples up to float rounding."""
    audio = silence(frames)
    schedule = [(round(when * sample_rate), msg) for when, msg in events] + [(frames, None)]
    tail = np.empty((min(TAIL_BLOCK, frames), 2), np.float32)
    _play(synth, bank, events, schedule, audio, wrap=True)
    at = 0
    while at < frames:  # the live synthesizer's ringing tail, a block at a time, wrapped over the start
        n = min(len(tail), frames - at)
        synth.generate_simple(n, buffer=memoryview(tail[:n]).cast("B"))
        audio[at:at + n] += tail[:n]
        at += n
        if float(np.abs(tail[:n]).max()) < SILENT:
            break
    return audio


def write_pcm16(audio, scale, path, sample_rate, chunks=b""):
    """`audio * scale` as a 16-bit stereo WAV at `path` (atomically), clipped to full scale, rounded;
    `chunks`, whole RIFF chunks (a loop's `smpl`: vgmusic.wavloop), follow the samples."""
    # converted and written a block at a time, in float32 as NumPy computes `audio * scale`: a 3-minute
    # song is 65 MB of float samples, and converting it whole made three more arrays as large, whose
    # fresh pages cost the kernel more time than the synthesis (0.38 s of system time in 0.66 s)
    block = np.empty((min(len(audio), BLOCK), 2), np.float32)
    scale = np.float32(scale)
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            for start in range(0, len(audio), BLOCK):
                pcm = block[:len(audio) - start] if start + BLOCK > len(audio) else block
                np.multiply(audio[start:start + len(pcm)], scale, out=pcm)
                np.minimum(pcm, 1, out=pcm)
                np.maximum(pcm, -1, out=pcm)
                pcm *= np.float32(32767)
                np.round(pcm, out=pcm)
                w.writeframes(pcm.astype("<i2"))  # wave takes any buffer: no copy to bytes
        if chunks:
            append_chunks(tmp, chunks)
    return path


def render_wav(song, wav_path, loop=False, tail=1.0, sample_rate=44100, soundfont=None):
    """Render a Song (or a standard MIDI file's path) to a 16-bit stereo WAV with a General MIDI SoundFont
    (render_audio: how a loop and an intro are rendered), scaled as a whole so its loudest sample sits at
    PEAK. Returns {"seconds": audio length, "render_seconds": wall time}."""
    started = time.perf_counter()
    audio, sample_rate = render_audio(song, loop, tail, sample_rate, soundfont)
    peak = float(max(audio.max(), -audio.min()))
    write_pcm16(audio, PEAK / peak if peak > 0 else 1.0, wav_path, sample_rate)
    return {"seconds": len(audio) / sample_rate, "render_seconds": time.perf_counter() - started}
