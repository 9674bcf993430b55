"""A Song (or any MIDI file) -> a WAV, with the General MIDI SoundFont and tinysoundfont.

The Song is rendered straight from memory, through the same MIDI messages vgmusic.midi writes (so every
event lands on the sample the written file would put it on), never by re-reading a file just written.
Composing imports this module, so it never imports TensorFlow: NumPy, mido, the standard library and
tinysoundfont (inside the function that uses it).
"""
import importlib.util
import time
import wave
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np

from .store import atomic_path

from .midi import TICKS_PER_BEAT, song_to_midi  # noqa: F401  (TICKS_PER_BEAT: the tests' tolerance)
from .song import DRUM_CHANNEL, Song
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


# --- audio ----------------------------------------------------------------------------------------------

def default_soundfont():
    """pretty_midi's TimGM6mb.sf2, found without importing pretty_midi (its imports are slow)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"no SoundFont: rendering audio uses {SOUNDFONT} from pretty_midi "
                         "(pip install pretty_midi==0.2.11.post0), or pass one")
    return Path(list(spec.submodule_search_locations)[0]) / SOUNDFONT


def midi_timeline(source):
    """(events, length): every channel message of every track of a Song, or of a MIDI file, with its time
    in seconds, exact (Fractions, from ticks and every tempo change), and the length including the end of
    track."""
    if isinstance(source, Song):
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
    tempo, now, events = 500000, Fraction(0), []  # 120 bpm until the first set_tempo, as the standard says
    for msg in mido.merge_tracks(midi.tracks):
        now += Fraction(msg.time * tempo, midi.ticks_per_beat * 1_000_000)
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


def render_wav(song, wav_path, loop=False, tail=1.0, sample_rate=44100, soundfont=None):
    """Render a Song (or a standard MIDI file's path) to a 16-bit stereo WAV with a General MIDI SoundFont.

    Every event lands on its sample. The WAV lasts the MIDI's length (its end of track included) plus
    `tail` seconds of release; with `loop`, exactly the MIDI's length, the song played twice in a row
    and the second pass kept: what still rings at the end (releases, notes cut by the loop) sounds
    over the start, as it does when a game loops the song, so the WAV repeats without a click or gap.
    Returns {"seconds": audio length, "render_seconds": wall time}."""
    started = time.perf_counter()
    if not (isinstance(sample_rate, int) and 8000 <= sample_rate <= 192000):
        raise ValueError(f"sample rate must be a whole number of Hz from 8000 to 192000, got {sample_rate}")
    if not tail >= 0:
        raise ValueError(f"tail must be 0 or more seconds, got {tail}")
    events, length = midi_timeline(song)
    what = song.title or "the song" if isinstance(song, Song) else song
    if length > MAX_SECONDS:
        raise ValueError(f"{what}: {float(length):.0f} s long, more than the {MAX_SECONDS} s this renders")
    song = round(length * sample_rate)
    if song == 0:
        raise ValueError(f"{what}: lasts no time, nothing to render")
    soundfont = Path(soundfont) if soundfont else default_soundfont()
    if not soundfont.is_file():
        raise ValueError(f"{soundfont}: SoundFont not found")
    synth = _synth(soundfont, sample_rate)
    passes = 2 if loop else 1
    total = passes * song if loop else song + round(tail * sample_rate)
    frame = 8  # bytes: two float32 channels
    buf = bytearray(total * frame)
    view = memoryview(buf)
    pos = 0
    for p in range(passes):
        for when, msg in events:
            at = p * song + round(when * sample_rate)
            if at > pos:
                synth.generate_simple(at - pos, buffer=view[pos * frame:at * frame])
                pos = at
            _send(synth, msg)
        at = (p + 1) * song
        if at > pos:
            synth.generate_simple(at - pos, buffer=view[pos * frame:at * frame])
            pos = at
        synth.notes_off()  # a note left held at the end is released there, as a looping game does
    if total > pos:
        synth.generate_simple(total - pos, buffer=view[pos * frame:])
    audio = np.frombuffer(buf, np.float32).reshape(-1, 2)[song if loop else 0:]  # a loop keeps pass 2
    if not loop and total > song:
        fade = min(round(FADE * sample_rate), total - song)
        audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)[:, None]
    peak = float(max(audio.max(), -audio.min()))
    scale = np.float32(PEAK / peak if peak > 0 else 1.0)
    # converted and written a block at a time, in float32 as NumPy computes `audio * scale`: a 3-minute
    # song is 65 MB of float samples, and converting it whole made three more arrays as large, whose
    # fresh pages cost the kernel more time than the synthesis (0.38 s of system time in 0.66 s)
    block = np.empty((min(len(audio), BLOCK), 2), np.float32)
    with atomic_path(wav_path) as tmp:
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
                w.writeframes(pcm.astype("<i2").tobytes())
    return {"seconds": len(audio) / sample_rate, "render_seconds": time.perf_counter() - started}
