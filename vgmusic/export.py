"""The files a game plays a song from: the mix and each track's stem as Ogg Vorbis and WAV with the loop
inside them, an intro and a loop body on their own, a known loudness, and a cue sheet.

    NAME.mix.ogg, NAME.mix.wav        the whole song (intro, then the loop body), loop points inside
    NAME.stem-ROLE.ogg / .wav         each track alone (songs of more than one track), same length and loop
    NAME.intro.ogg / .wav             with --split: the intro, which plays once ...
    NAME.body.ogg / .wav              ... and the body, which then loops whole; the two play back to back
    NAME.cue.json                     tempo, metre, bars, sections, the loop in frames, seconds and bars,
                                      the stems' names and instruments, the loudness, the files

Loop points, sample-exact on the loop's bar lines (render.loop_frames): an Ogg carries LOOPSTART and
LOOPLENGTH comments in frames, as RPG Maker (which reads them case-sensitively and ignores a loop
without LOOPLENGTH) and many engines read them; a WAV carries a RIFF `smpl` loop (vgmusic.wavloop),
which Godot's importer reads. Godot's Ogg importer reads no comments: the cue sheet gives its settings.

One synthesis serves everything: each track is rendered alone on the song's timeline (render_audio's
`tracks`), the mix is their sum (the synthesizer adds its voices, so it is what the whole song renders
to, but with no voice cut for want of the 256 the synthesizer holds at once), and NAME.wav, the
listening copy, is written from the same mix as render_wav would.

Loudness (vgmusic.loudness): the mix is measured (ITU-R BS.1770 integrated loudness) and brought by one
gain to --loudness, or as near as the --peak ceiling on its true peak (and on every stem's loudest
sample) allows; no limiter, so the waveform is untouched and every stem, at the same gain, still sums
to the mix. Each file written is measured again for the cue sheet.

Imported only when exporting: soundfile and mutagen load inside the functions (and nothing imports SciPy).
"""
import math
import re
from pathlib import Path

import numpy as np

from .loudness import block_powers, db, gated_loudness, true_peak
from .render import PEAK, frames_at, loop_frames, render_audio, write_pcm16
from .store import atomic_path, write_json
from .wavloop import smpl_chunk

FORMATS = ("ogg", "wav")
CUE_FORMAT = 1  # bump when the cue sheet's fields change
# Vorbis quality 0-1: 0.4 is libvorbis's 4 of 10 (about 128 kbit/s for stereo, libsndfile's default),
# what games ship music at; each step up costs size, not CPU
OGG_QUALITY = 0.4
# frames encoded per call: one call with a long stereo song crashed Python (a known python-soundfile
# bug with large Vorbis writes); 2**15 frames is 256 KB of float32
OGG_BLOCK = 1 << 15
STEM_CHARS = 12  # a stem's name in its file names at most: outputs.py's name-length check counts on it


def parse_formats(text):
    """'ogg,wav' -> ('ogg', 'wav'); '' -> (); ValueError naming what is not a format."""
    names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad:
        raise ValueError(f"--export {text!r}: {', '.join(bad)} is not one of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def export_options(cfg):
    """export_song's settings from the predict command's (vgmusic.config.PredictConfig)."""
    return dict(formats=parse_formats(cfg.export), split=cfg.split, stems=cfg.stems, loudness=cfg.loudness,
                peak=cfg.peak)


def stem_names(song):
    """A short file-name word per track: its role, else its name (lower case, letters, digits and '-'),
    numbered where two would share one."""
    out = []
    for i, t in enumerate(song.tracks):
        word = re.sub(r"[^a-z0-9]+", "-", (t.role or t.name).lower()).strip("-")[:STEM_CHARS].strip("-")
        word = word or f"track{i + 1}"
        name, n = word, 2
        while name in out:
            name = f"{word[:STEM_CHARS - len(str(n))]}{n}"
            n += 1
        out.append(name)
    return out


def write_ogg(path, audio, gain, sample_rate, loop=None):
    """`audio * gain` as Ogg Vorbis at `path` (atomically), with LOOPSTART and LOOPLENGTH comments (frames)
    for `loop` = (start, end)."""
    import soundfile
    from mutagen.oggvorbis import OggVorbis
    block = np.empty((min(len(audio), OGG_BLOCK), audio.shape[1]), np.float32)
    with atomic_path(path) as tmp:
        with soundfile.SoundFile(str(tmp), "w", sample_rate, audio.shape[1], format="OGG", subtype="VORBIS",
                                 compression_level=1 - OGG_QUALITY) as f:
            for start in range(0, len(audio), OGG_BLOCK):
                part = block[:len(audio) - start] if start + OGG_BLOCK > len(audio) else block
                np.multiply(audio[start:start + len(part)], np.float32(gain), out=part)
                np.clip(part, -1, 1, out=part)
                f.write(part)
        if loop:
            tags = OggVorbis(str(tmp))
            tags["LOOPSTART"] = str(loop[0])  # mutagen keeps the case given: RPG Maker reads upper case only
            tags["LOOPLENGTH"] = str(loop[1] - loop[0])
            tags.save()
    return path


def write_loop_wav(path, audio, gain, sample_rate, loop=None):
    """`audio * gain` as a 16-bit WAV with a `smpl` loop over frames loop[0]..loop[1]-1."""
    return write_pcm16(audio, gain, path, sample_rate, smpl_chunk(*loop, sample_rate) if loop else b"")


def choose_gain(mix_powers, mix_peak, stem_peaks, loudness, peak):
    """(gain, loudness before in LUFS): the one gain that brings the mix to `loudness`, lowered where the
    mix's true peak or any stem's loudest sample would pass `peak` dBTP; 1 for silence."""
    before = gated_loudness(mix_powers)
    if not math.isfinite(before):
        return 1.0, before
    ceiling = 10 ** (peak / 20)
    loudest = max([mix_peak, *stem_peaks])
    return min(10 ** ((loudness - before) / 20), ceiling / loudest if loudest > 0 else math.inf), before


def export_song(song, midi_path, formats=FORMATS, split=False, stems=True, loudness=-18.0, peak=-1.0,
                sample_rate=44100, soundfont=None, preview=True):
    """Write a Song's game files beside `midi_path` (see the module's docstring), and with `preview` its
    listening copy NAME.wav as render_wav writes it. Returns render_wav's figures, and sets
    song.meta["export"] to what was written (files, loudness)."""
    import time
    started = time.perf_counter()
    midi_path = Path(midi_path)
    looping = song.loop is not None
    played = [i for i, t in enumerate(song.tracks) if t.notes]  # a track with no note has no stem
    parts = []
    if stems and len(played) > 1:
        parts = [render_audio(song, looping, sample_rate=sample_rate, soundfont=soundfont, tracks=[i])[0]
                 for i in played]
        mix = parts[0].copy()
        for part in parts[1:]:
            mix += part
    else:
        mix = render_audio(song, looping, sample_rate=sample_rate, soundfont=soundfont)[0]
    loudest = float(max(mix.max(), -mix.min()))
    listening = PEAK / loudest if loudest > 0 else 1.0
    if preview:
        write_pcm16(mix, listening, midi_path.with_suffix(".wav"), sample_rate)
    render = {"seconds": len(mix) / sample_rate, "render_seconds": time.perf_counter() - started}
    if not formats:  # the listening stems: at the listening mix's gain, so they sum to NAME.wav, and looped
        loop = loop_frames(song, sample_rate) if looping else None
        names = stem_names(song)
        render["stems"] = [write_loop_wav(midi_path.with_suffix(f".stem-{names[i]}.wav"), part, listening,
                                          sample_rate, loop and (loop[0], len(part))).name
                           for i, part in zip(played, parts)]
        return render
    start, end = loop_frames(song, sample_rate) if looping else (0, len(mix))
    if looping and end != len(mix):  # a note past the song's end lengthened the MIDI: the loop ends there
        end = len(mix)
    powers = block_powers(mix, sample_rate)
    mix_peak = true_peak(mix)
    stem_peaks = [float(max(p.max(), -p.min())) for p in parts]
    gain, before = choose_gain(powers, mix_peak, stem_peaks, loudness, peak)
    loop = (start, end) if looping else None

    files, measured = {}, {}

    def write(label, audio, loop_points, powers=None):
        files[label] = {}
        for kind in formats:
            path = midi_path.with_suffix(f".{label}.{kind}")
            (write_ogg if kind == "ogg" else write_loop_wav)(path, audio, gain, sample_rate, loop_points)
            files[label][kind] = path.name
        after = gated_loudness(block_powers(audio, sample_rate) if powers is None else powers, gain)
        measured[label] = round(after, 2) if math.isfinite(after) else None

    write("mix", mix, loop, powers)
    names = stem_names(song)
    for i, part in zip(played, parts):
        write(f"stem-{names[i]}", part, loop)
    if split and looping and start > 0:
        write("intro", mix[:start], None)
        write("body", mix[start:end], (0, end - start))
    cue = cue_sheet(song, midi_path, sample_rate, len(mix), loop, files, names, played,
                    {"target_lufs": loudness, "ceiling_dbtp": peak, "gain_db": round(db(gain), 2),
                     "mix_before_lufs": round(before, 2) if math.isfinite(before) else None,
                     "mix_true_peak_dbtp": round(db(mix_peak * gain), 2) if mix_peak > 0 else None,
                     "lufs": measured})
    cue_path = midi_path.with_suffix(".cue.json")
    write_json(cue_path, cue)
    names_written = [name for kinds in files.values() for name in kinds.values()] + [cue_path.name]
    level = (f"{measured['mix']:.1f} LUFS" if measured["mix"] is not None else "silent") + (
        f" (asked {loudness:g}: held by the {peak:g} dBTP ceiling)" if measured["mix"] is not None
        and measured["mix"] < loudness - 0.05 else "")
    song.meta["export"] = {"cue": cue_path.name, "files": files, "loudness": cue["loudness"],
                           "summary": f"exported {len(names_written)} files, the mix at {level}: "
                                      + ", ".join(names_written)}
    render["export_seconds"] = time.perf_counter() - started - render["render_seconds"]
    return render


def _place(song, beat, frame, sample_rate):
    bar = beat / song.beats_per_bar
    return {"frames": frame, "seconds": round(frame / sample_rate, 6), "beats": beat,
            "bar": round(bar + 1, 6)}  # bars counted from 1, as a score and the piano roll number them


def cue_sheet(song, midi_path, sample_rate, frames, loop, files, names, played, loudness):
    """The cue sheet's JSON object: everything an engine's importer or a music system needs to place the
    song, its loop and its stems; file names relative to the cue sheet."""
    beats = [s.start for s in song.sections]
    at = frames_at(song, beats + ([song.loop[0]] if song.loop else []), sample_rate)
    sections = [dict(label=s.label, **_place(song, s.start, f, sample_rate)) for s, f in zip(song.sections, at)]
    out = {"format": CUE_FORMAT, "midi": midi_path.name, "sample_rate": sample_rate, "channels": 2,
           "frames": frames, "seconds": round(frames / sample_rate, 6),
           "tempo_bpm": song.bpm, "tempos": [list(t) for t in song.tempos], "metre": list(song.metre),
           "bars": round(song.bars, 6), "beats": song.end, "sections": sections, "intro": None, "loop": None}
    if loop:
        start_beat = song.loop[0]
        length_beats = song.end - start_beat
        out["loop"] = {"start": _place(song, start_beat, loop[0], sample_rate),
                       "length": {"frames": loop[1] - loop[0], "seconds": round((loop[1] - loop[0]) / sample_rate, 6),
                                  "beats": length_beats, "bars": round(length_beats / song.beats_per_bar, 6)},
                       "end_frame": loop[1],
                       # Godot's Ogg importer reads no loop comments: these go in NAME.mix.ogg.import's
                       # [params]; half a frame on, so Godot's truncation of seconds x rate lands on the frame
                       "godot_ogg_import": {"loop": True, "loop_offset": (loop[0] + 0.5) / sample_rate}}
        if loop[0]:
            out["intro"] = {"frames": loop[0], "seconds": round(loop[0] / sample_rate, 6), "beats": start_beat,
                            "bars": round(start_beat / song.beats_per_bar, 6)}
    out["files"] = {k: v for k, v in files.items() if not k.startswith("stem-")}
    # every track that plays: a song of one is its own stem (the mix's files); without --stems, none has files
    alone = files.get("mix") if len(played) == 1 else None
    out["stems"] = [{"name": names[i], "track": t.name, "role": t.role, "program": t.program, "drum": t.drum,
                     "files": files.get(f"stem-{names[i]}", alone)} for i in played for t in [song.tracks[i]]]
    out["loudness"] = loudness
    return out
