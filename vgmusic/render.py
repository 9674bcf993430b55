"""Timed notes -> a standard MIDI file (mido); any MIDI file -> a WAV (tinysoundfont); notes -> a piano roll.

Composing imports this module, so it never imports TensorFlow: NumPy, mido, the standard library,
tinysoundfont and matplotlib (the last two only inside the functions that use them).
"""
import importlib.util
import time
import wave
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np

from .store import atomic_path

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9  # MIDI channel 10 (counted from 1): General MIDI's percussion, played from bank 128
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
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
# matplotlib's tab20: ten hues, each dark then light. A theme of the form (A, B, A2...) gets a hue in
# order of first appearance; its varied repeat (A', a new last bar) the light shade of the same hue.
PART_COLOURS = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
                "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
                "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"]
LEGEND_BESIDE = 12  # parts listed beside the roll; more (long songs) go in rows below it


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


# --- audio ----------------------------------------------------------------------------------------------

def default_soundfont():
    """pretty_midi's TimGM6mb.sf2, found without importing pretty_midi (its imports are slow)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"no SoundFont: rendering audio uses {SOUNDFONT} from pretty_midi "
                         "(pip install pretty_midi==0.2.11.post0), or pass one")
    return Path(list(spec.submodule_search_locations)[0]) / SOUNDFONT


def midi_timeline(path):
    """(events, length): every channel message of every track with its time in seconds, exact
    (Fractions, from ticks and every tempo change), and the length including the end of track."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: MIDI file not found")
    try:
        midi = mido.MidiFile(path)
    except Exception as e:  # mido raises many kinds (OSError, EOFError, KeyError, ValueError) on bad bytes
        raise ValueError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None
    if midi.type == 2:
        raise ValueError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    if midi.ticks_per_beat <= 0:
        raise ValueError(f"{path}: not a readable MIDI file (ticks per beat {midi.ticks_per_beat})")
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


def render_wav(midi_path, wav_path, loop=False, tail=1.0, sample_rate=44100, soundfont=None):
    """Render a standard MIDI file to a 16-bit stereo WAV with a General MIDI SoundFont.

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
    events, length = midi_timeline(midi_path)
    if length > MAX_SECONDS:
        raise ValueError(f"{midi_path}: {float(length):.0f} s long, more than the {MAX_SECONDS} s this renders")
    song = round(length * sample_rate)
    if song == 0:
        raise ValueError(f"{midi_path}: the MIDI file lasts no time, nothing to render")
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
    peak = float(np.abs(audio).max())
    scale = PEAK / peak if peak > 0 else 1.0
    pcm = np.round(np.clip(audio * scale, -1, 1) * 32767).astype("<i2")
    with atomic_path(wav_path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())
    return {"seconds": len(pcm) / sample_rate, "render_seconds": time.perf_counter() - started}


# --- piano roll -----------------------------------------------------------------------------------------

def note_name(pitch):
    """MIDI pitch -> scientific pitch name: 60 is C4 (middle C), 69 is A4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def bar_label_step(bars, most=32):
    """Label every bar, or every 2nd/4th/8th... bar: never more than `most` labels, so none overlap."""
    step = 1
    while bars / step > most:
        step *= 2
    return step


def part_colours(labels):
    """{label: colour} for the form's part labels, in order of first appearance (see PART_COLOURS)."""
    themes = list(dict.fromkeys(str(p).rstrip("'") for p in labels))
    hue = {t: 2 * (i % (len(PART_COLOURS) // 2)) for i, t in enumerate(themes)}
    return {p: PART_COLOURS[hue[str(p).rstrip("'")] + str(p).endswith("'")] for p in dict.fromkeys(labels)}


def piano_roll(notes, path, title="", tempo=120.0, parts=None, end=None, beats_per_bar=4, seam=False):
    """A PNG of the notes ([onset, duration, pitch(, velocity)] in beats): time across, pitch up.

    `parts`: one label per note (the form's sections, e.g. "A", "A'", "B"), one colour each and a legend.
    `end`: the song's end in beats (whole bars), else the last note's end. Bars are numbered along the
    top from 1; pitches are named at each C. `seam` marks where a looping song goes back to bar 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch
    if not len(notes):
        raise ValueError(f"{path}: no notes to draw")
    if parts is not None and len(parts) != len(notes):
        raise ValueError(f"{path}: {len(parts)} part labels for {len(notes)} notes")
    if beats_per_bar <= 0:
        raise ValueError(f"beats per bar must be positive, got {beats_per_bar}")
    end = float(end) if end is not None else max(n[0] + n[1] for n in notes)
    bars = max(1, int(np.ceil(end / beats_per_bar - 1e-9)))
    low, high = int(min(n[2] for n in notes)), int(max(n[2] for n in notes))
    # width grows with the song so a bar stays readable, up to a page's width
    fig, ax = plt.subplots(figsize=(min(20, 5 + 0.45 * bars), min(7, 3.5 + (high - low) / 12)))
    colour = part_colours(parts) if parts is not None else {}
    boxes = [[(n[0], n[2] - 0.4), (n[0] + n[1], n[2] - 0.4), (n[0] + n[1], n[2] + 0.4), (n[0], n[2] + 0.4)]
             for n in notes]
    faces = [colour[p] for p in parts] if parts is not None else PART_COLOURS[0]
    ax.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors=faces, linewidths=0.3))
    ax.set_xlim(0, end)
    ax.set_ylim(low - 2, high + 2)
    beats = np.arange(0, int(end) + 1)
    on_bar = beats % beats_per_bar == 0
    if bars <= 64:  # beyond that the beat lines would only grey the picture
        ax.vlines(beats[~on_bar], 0, 1, transform=ax.get_xaxis_transform(), color="grey", lw=0.3, alpha=0.25,
                  zorder=0)
    ax.vlines(beats[on_bar], 0, 1, transform=ax.get_xaxis_transform(), color="grey", lw=0.6, alpha=0.7, zorder=0)
    cs = list(range(12 * ((low - 2) // 12 + 1), high + 3, 12))
    for c in cs:
        ax.axhline(c - 0.5, color="grey", lw=0.3, alpha=0.4, zorder=0)
    named = cs or sorted({low, high})  # a tune inside one octave may pass no C: name its outer notes
    ax.set_yticks(named, [note_name(p) for p in named])
    step = bar_label_step(bars)
    top = ax.secondary_xaxis("top")
    numbered = range(0, bars, step)
    top.set_xticks([(b + 0.5) * beats_per_bar for b in numbered], [str(b + 1) for b in numbered], fontsize=8)
    top.tick_params(length=0)
    top.set_xlabel("bar" if step == 1 else f"bar (every {'2nd' if step == 2 else f'{step}th'} numbered)",
                   fontsize=8)
    if seam:
        for x in (0, end):  # on the frame's edges: drawn unclipped so the whole dash shows
            ax.axvline(x, color="black", ls="--", lw=1.6, clip_on=False, zorder=3)
        # beside the frame, not over the notes
        ax.text(1.005, 0, "loop:\nback to\nbar 1", transform=ax.transAxes, ha="left", va="bottom", fontsize=8)
    if colour:
        handles = [Patch(color=c, label=p) for p, c in colour.items()]
        if len(handles) <= LEGEND_BESIDE:
            ax.legend(handles=handles, title="part", fontsize=8, title_fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.005, 1), borderaxespad=0)
        else:
            ax.legend(handles=handles, title="parts", fontsize=8, title_fontsize=8, loc="upper center",
                      bbox_to_anchor=(0.5, -0.18), ncol=min(len(handles), 16), borderaxespad=0)
    ax.set_xlabel(f"beats ({beats_per_bar} per bar, {tempo:g} bpm)")
    ax.set_ylabel("pitch")
    ax.set_title(title)
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path
