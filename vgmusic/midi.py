"""Standard MIDI files <-> Songs, with mido: the project's one MIDI reader and one writer.

The reader keeps every track: one Track per (MIDI track, channel) that plays notes, with its name, program,
channel, drum flag (channel 10) and each note's velocity; the tempo map, the first time signature and the
length (the last end of track). Times are beats (ticks / ticks per beat), unquantised: the encodings
snap them to their grid. music21 is not involved (it reads the same notes on the 46 original songs; it
stays for what only it does: the key analysis and the original project's token stream, in extract.py).

The writer writes type 1: a conductor track (tempo map, metre, key-free), then one track per Track on its
own channel, drums on channel 10, each with its program and the notes' velocities.
"""
from pathlib import Path

import mido

from .song import BPM_RANGE, DEFAULT_BPM, DRUM_CHANNEL, METRE_MAX, Note, Song, Track
from .store import atomic_path

TICKS_PER_BEAT = 480  # divisible by 2, 3, 4, 5, 8, 12, 16: every grid value lands on a whole tick
# a MIDI file claiming to be longer is refused rather than filling the memory while read or rendered
MAX_BEATS = 1 << 20


def unwrap_riff(data):
    """The standard MIDI file inside an RMID file (RIFF-wrapped MIDI, as Windows saved it); other bytes as they are."""
    if data[:4] != b"RIFF":
        return data
    at = data.find(b"data", 12) if data[8:12] == b"RMID" else -1  # the first chunk, in every RMID file seen
    if at < 0:
        raise ValueError("a RIFF file, but not RIFF MIDI (RMID) with a 'data' chunk")
    return data[at + 8:at + 8 + int.from_bytes(data[at + 4:at + 8], "little")]


def parse_bytes(data):
    """A mido.MidiFile from a file's bytes, or ValueError with the reason in a few words."""
    import io
    data = unwrap_riff(data)
    if data[:4] == b"MThd" and len(data) >= 14:
        if data[8:10] == b"\0\2":
            raise ValueError("MIDI type 2 (independent patterns), which is not supported")
        if data[12] & 0x80:
            raise ValueError("SMPTE timing (frames per second, not beats), which is not supported")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception as e:  # mido raises OSError, EOFError, KeyError, ValueError, IndexError on bad bytes
        why = str(e).splitlines()[0][:120] if str(e).strip() else "cut short" if isinstance(e, EOFError) else ""
        raise ValueError(f"not a readable MIDI file ({type(e).__name__}{': ' if why else ''}{why})") from None
    if midi.ticks_per_beat <= 0:
        raise ValueError(f"not a readable MIDI file (ticks per beat {midi.ticks_per_beat})")
    return midi


def read_midi(path):
    """The Song in a MIDI file (RIFF-wrapped too); ValueError naming the file when it is unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        song = midi_to_song(parse_bytes(data))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    song.title = path.stem
    return song


def midi_to_song(midi):
    """A mido.MidiFile as a Song (see the module's docstring)."""
    tpb = midi.ticks_per_beat
    tempos, metre, tracks, end = [], None, [], 0
    # a channel's first program change anywhere: some files set every channel's instrument in the first
    # track and play the notes in others
    anywhere = {}
    for track in midi.tracks:
        now = 0
        for msg in track:
            now += msg.time
            if msg.type == "program_change" and (msg.channel not in anywhere or now < anywhere[msg.channel][0]):
                anywhere[msg.channel] = (now, msg.program)
    for number, track in enumerate(midi.tracks):
        now, name = 0, ""
        sounding, notes, programs = {}, {}, {}  # keyed by (channel, pitch) / channel
        for msg in track:
            now += msg.time
            if now > MAX_BEATS * tpb:
                raise ValueError(f"longer than {MAX_BEATS} beats")
            kind = msg.type
            if kind == "note_on" and msg.velocity:
                sounding.setdefault((msg.channel, msg.note), []).append((now, msg.velocity))
                notes.setdefault(msg.channel, [])
            elif kind in ("note_on", "note_off"):
                started = sounding.get((msg.channel, msg.note))
                if started:  # first on, first off: a re-struck pitch ends in the order it began
                    on, vel = started.pop(0)
                    notes[msg.channel].append((on, now - on, msg.note, vel))
            elif kind == "program_change":
                # the instrument a channel plays its notes with: the last change before its first note
                if msg.channel not in notes:
                    programs[msg.channel] = msg.program
            # a damaged tempo (0 microseconds a beat) or metre (0/4, 4/2**255) is left out, as if absent
            elif kind == "set_tempo":
                if msg.tempo and BPM_RANGE[0] <= (bpm := mido.tempo2bpm(msg.tempo)) <= BPM_RANGE[1]:
                    tempos.append((now, bpm))
            elif kind == "time_signature" and metre is None:
                if 1 <= msg.numerator <= METRE_MAX and msg.denominator <= METRE_MAX:
                    metre = (msg.numerator, msg.denominator)
            elif kind == "track_name" and not name:
                name = msg.name.strip()
        for (channel, pitch), starts in sounding.items():  # still held at the end of the track
            notes[channel].extend((on, now - on, pitch, vel) for on, vel in starts)
        end = max(end, now)
        for channel in sorted(notes):
            if not notes[channel]:
                continue
            tracks.append(Track(
                notes=sorted(Note(on / tpb, dur / tpb, pitch, vel) for on, dur, pitch, vel in notes[channel]),
                name=name or f"track {number + 1}", channel=channel,
                program=programs.get(channel, anywhere.get(channel, (0, 0))[1]),
                drum=channel == DRUM_CHANNEL))
    tempos.sort(key=lambda t: t[0])  # stable: of two tempos at one tick, the later in the file plays
    tempo_map = [(0.0, DEFAULT_BPM)]
    for tick, bpm in tempos:
        if tick / tpb == tempo_map[-1][0]:
            tempo_map.pop()
        if not tempo_map or bpm != tempo_map[-1][1]:
            tempo_map.append((tick / tpb, bpm))
    return Song(tracks=tracks, tempos=tempo_map, metre=metre or (4, 4), length=end / tpb)


def channels(song):
    """A channel per track: the one it was read with where free, drums on 10, the others in order."""
    taken, out = set(), []
    for t in song.tracks:
        want = DRUM_CHANNEL if t.drum else t.channel
        if want is not None and (want == DRUM_CHANNEL) == t.drum and (t.drum or want not in taken):
            out.append(want)
        else:
            out.append(None)
        if out[-1] is not None:
            taken.add(out[-1])
    free = iter(c for c in range(16) if c != DRUM_CHANNEL and c not in taken)
    for i, c in enumerate(out):
        if c is None:
            c = next(free, None)
            if c is None:
                raise ValueError(f"{len(song.tracks)} pitched tracks: MIDI has 15 channels besides the drums'")
            out[i] = c
    return out


def song_to_midi(song):
    """A Song as a type-1 mido.MidiFile (see the module's docstring)."""
    for beat, bpm in song.tempos:
        if not bpm > 0:
            raise ValueError(f"tempo must be positive, got {bpm} at beat {beat:g}")
    conductor = mido.MidiTrack()
    events = [(round(beat * TICKS_PER_BEAT), "set_tempo", dict(tempo=mido.bpm2tempo(bpm))) for beat, bpm in song.tempos]
    events.insert(1, (0, "time_signature", dict(numerator=song.metre[0], denominator=song.metre[1])))
    end = round(song.end * TICKS_PER_BEAT)
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(_track(conductor, events, end))
    for track, channel in zip(song.tracks, channels(song)):
        if not 0 <= track.program <= 127:
            raise ValueError(f"MIDI program must be 0-127, got {track.program}")
        head = mido.MidiTrack([mido.MetaMessage("track_name", name=track.name or track.role or "track", time=0)])
        messages = [(0, "program_change", dict(program=track.program, channel=channel))]
        timed = []
        for n in track.notes:
            on = round(n.onset * TICKS_PER_BEAT)
            off = max(on + 1, round((n.onset + n.duration) * TICKS_PER_BEAT))
            # note-offs sort before note-ons at the same tick so a repeated pitch re-strikes
            timed.append((on, 1, n.pitch, n.velocity))
            timed.append((off, 0, n.pitch, 0))
        timed.sort()
        if all(type(p) is int and type(v) is int and 0 <= p <= 127 and 0 <= v <= 127 for _, _, p, v in timed):
            midi.tracks.append(_notes(_track(head, messages, None), timed, channel, end))
            continue
        messages += [(tick, "note_on" if kind else "note_off", dict(note=pitch, velocity=vel, channel=channel))
                     for tick, kind, pitch, vel in timed]  # mido's checks name the bad value
        midi.tracks.append(_track(head, messages, end))
    return midi


def _notes(track, timed, channel, end):
    """`track` with the notes `timed` ((tick, on, pitch, velocity), sorted, every value checked 0-127 by
    the caller) appended as delta-timed messages, then the end of track at `end`. Each message is made
    as mido.Message makes it (the same fields in the same order) without its per-value checks: they were
    two thirds of the time of writing a song's MIDI."""
    now, new, append = 0, mido.Message.__new__, track.append
    for tick, kind, pitch, vel in timed:
        msg = new(mido.Message)
        vars(msg).update(type="note_on" if kind else "note_off", time=tick - now, channel=channel, note=pitch,
                         velocity=vel)
        append(msg)
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return track


def _track(track, events, end):
    """`track` with `events` ((tick, message type, fields) in time order) appended as delta-timed messages,
    each made (and checked) once, then the end of track at `end` (None: none yet, _notes adds it after the
    notes, which count their times from tick 0, where these events all are)."""
    now = 0
    for tick, kind, fields in events:
        make = mido.Message if kind in ("note_on", "note_off", "program_change") else mido.MetaMessage
        track.append(make(kind, time=tick - now, **fields))
        now = tick
    if end is None:  # more messages follow (_notes)
        return track
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return track


def write_midi(song, path):
    data = midi_bytes(song_to_midi(song))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


NOTE_STATUS = {"note_off": 0x80, "note_on": 0x90}


def midi_bytes(midi):
    """The file mido's MidiFile.save writes (running status; each track's end of track last, carrying the
    time of any earlier one), the note messages encoded here: mido's bytes() per message took two thirds
    of writing a song. What song_to_midi makes: notes, channel and meta messages, no sysex."""
    out = bytearray(b"MThd\0\0\0\6" + bytes([0, midi.type, *divmod(len(midi.tracks), 256),
                                                 *divmod(midi.ticks_per_beat, 256)]))
    for track in midi.tracks:
        data, running, carried = bytearray(), None, 0
        for msg in track:
            if msg.type == "end_of_track":
                carried += msg.time
                continue
            _varint(data, msg.time + carried)
            carried = 0
            status = NOTE_STATUS.get(msg.type)
            if status is not None:
                status |= msg.channel
                data += (bytes((msg.note, msg.velocity)) if status == running
                         else bytes((status, msg.note, msg.velocity)))
                running = status
            elif msg.is_meta:
                data += bytes(msg.bytes())
                running = None
            else:
                body = bytes(msg.bytes())
                data += body[1:] if body[0] == running else body
                running = body[0] if body[0] < 0xF0 else None
        _varint(data, carried)
        data += b"\xff\x2f\x00"  # end of track
        out += b"MTrk" + len(data).to_bytes(4, "big") + data
    return bytes(out)


def _varint(data, value):
    """MIDI's variable-length quantity: 7 bits a byte, most significant first, the high bit on all but the last."""
    if value < 0x80:
        data.append(value)
        return
    groups = []
    while value:
        groups.append(value & 0x7F)
        value >>= 7
    data += bytes([g | 0x80 for g in reversed(groups[1:])] + [groups[0]])
