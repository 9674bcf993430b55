"""The one song type and the one MIDI reader and writer: JSON and MIDI round trips on real files (mido-made,
music21-made, and a real game's multi-track song with drums), damaged forms refused, damaged cache entries
re-parsed, and the mido reader agreeing with music21's own score."""
import collections
import copy
import json
import math
from pathlib import Path

import mido
import pytest

from conftest import CHORALES, run_script
from vgmusic import midi as vmidi
from vgmusic.song import DRUM_CHANNEL, Key, Note, Section, Song, Track

OPENMSX = Path("/usr/share/games/openttd/baseset/openmsx")
TPB = vmidi.TICKS_PER_BEAT


def full_song():
    """A Song with every field set to something other than its default, times that are no short binary
    fractions (thirds, tenths), and a velocity per note."""
    melody = Track([Note(0.0, 1 / 3, 72, 101), Note(1 / 3, 0.1 + 0.2, 74, 64), Note(2.7, 1.3, 76, 1)],
                   name="Flute", program=73, channel=2, role="melody")
    bass = Track([Note(0.0, 2.0, 36, 127), Note(2.0, 2.0, 43, 90)], name="Bass", program=33, channel=None,
                 role="bass")
    drums = Track([Note(i / 2, 0.25, 36 + i % 3, 40 + 11 * i) for i in range(8)], name="Kit", program=0,
                  channel=DRUM_CHANNEL, drum=True, role="drums")
    return Song(tracks=[melody, bass, drums], tempos=[(0.0, 133.33333333333334), (16.5, 90.25)], metre=(6, 8),
                key=Key(9, "minor"), length=48.0, sections=[Section(0.0, "A"), Section(16.0, "A'")],
                loop=(4.0, 36.0), title="every field", meta={"seed": 7, "made": ["by", "hand"], "x": {"y": None}})


# --- JSON --------------------------------------------------------------------------------------------------

def test_json_round_trip_is_lossless():
    song = full_song()
    obj = song.to_json()
    text = json.dumps(obj)
    back = Song.from_json(json.loads(text))
    assert back == song  # every field: dataclass equality, floats compared exactly
    assert back.tracks[0].notes[1].onset == 1 / 3 and back.tracks[0].notes[1].duration == 0.1 + 0.2
    assert back.tempos[0][1] == 133.33333333333334 and back.key.name == "A minor"
    assert [t.channel for t in back.tracks] == [2, None, DRUM_CHANNEL] and back.tracks[2].drum
    assert [n.velocity for n in back.tracks[2].notes] == [40 + 11 * i for i in range(8)]
    assert json.dumps(back.to_json()) == text  # and again: the same text
    # a default Song too: no key, no loop, no length, no sections
    empty = Song()
    assert Song.from_json(json.loads(json.dumps(empty.to_json()))) == empty


def damaged(change):
    obj = copy.deepcopy(full_song().to_json())
    change(obj)
    return obj


def _set(path, value):
    def change(obj):
        *where, last = path
        for k in where:
            obj = obj[k]
        obj[last] = value
    return change


@pytest.mark.parametrize("obj, message", [
    (damaged(_set(["format"], 2)), "song format 2"),
    (damaged(lambda o: o.pop("format")), "song format None"),
    (damaged(_set(["tracks", 0, "notes", 0, 2], 200)), "200 is not a whole number from 0 to 127"),
    (damaged(_set(["tracks", 1, "notes", 0, 3], 128)), "128 is not a whole number"),
    (damaged(_set(["tracks", 0, "notes", 0, 2], 60.0)), "60.0 is not a whole number"),
    (damaged(_set(["tracks", 0, "notes", 0], [0.0, 1.0, 60])), "not a song"),
    (damaged(_set(["tracks", 0, "notes", 0], [0.0, 1.0, 60, 80, 1])), r"\[onset, duration, pitch, velocity\]"),
    (damaged(_set(["tracks", 0, "notes", 0, 0], -1.0)), "-1.0 is not a number from 0"),
    (damaged(_set(["tracks", 0, "notes", 0, 0], True)), "True is not a number"),
    (damaged(_set(["tracks", 0, "notes", 0, 1], float("nan"))), "nan is not a number"),
    (damaged(_set(["tracks", 0, "notes", 0, 0], float("inf"))), "inf is not a number"),  # JSON's Infinity
    (damaged(_set(["length"], 10 ** 400)), "^1000000000.* is not a number from 0 to inf$"),  # no float holds it
    (damaged(_set(["loop"], [0.0, float("inf")])), "inf is not a number"),
    (damaged(_set(["tempos"], [[1.0, 120.0]])), "tempo map must start at beat 0"),
    (damaged(_set(["tempos"], [])), "tempo map must start at beat 0"),
    (damaged(_set(["tempos", 0, 1], 0)), "0 is not a number"),
    (damaged(_set(["loop"], [8.0, 4.0])), r"loop \[8.0, 4.0\] ends before it starts"),
    (damaged(_set(["loop"], [4.0, 4.0])), "ends before it starts"),
    (damaged(_set(["key"], [3, "dorian"])), "mode 'dorian'"),
    (damaged(_set(["key"], [12, "major"])), "12 is not a whole number from 0 to 11"),
    (damaged(_set(["metre"], [0, 4])), "0 is not a whole number from 1"),
    (damaged(_set(["metre"], [4, 6])), "metre 4/6: the denominator is not a power of 2"),  # MIDI could not say it
    (damaged(_set(["metre"], [256, 4])), "256 is not a whole number from 1 to 255"),
    (damaged(_set(["meta"], [])), "meta must be an object"),
    (damaged(_set(["tracks", 0, "program"], 128)), "128 is not a whole number"),
    (damaged(_set(["tracks", 0, "channel"], 16)), "16 is not a whole number from 0 to 15"),
    (damaged(_set(["tracks"], 5)), "not a song"),
    (damaged(lambda o: o.pop("tracks")), "not a song"),
    ([full_song().to_json()], "a song is a JSON object, not list"),
    (None, "not NoneType"),
    ("song", "not str"),
])
def test_damaged_json_is_refused(obj, message):
    with pytest.raises(ValueError, match=message) as e:
        Song.from_json(obj)
    assert "\n" not in str(e.value) and len(str(e.value)) < 200


def test_time_and_parts():
    song = Song(tracks=[Track([Note(0, 8, 40)]), Track([Note(0, 1, 72), Note(1, 1, 74)]), Track([], name="empty"),
                        Track([Note(0, 0.5, 36), Note(4, 0.5, 38)], drum=True)],
                tempos=[(0.0, 120.0), (4.0, 60.0)], metre=(3, 4), sections=[Section(0, "A"), Section(3, "B")])
    assert song.end == 8 and song.bars == 8 / 3 and song.bpm == 120
    assert song.seconds(4) == 2.0 and song.duration == 2.0 + 4.0  # 4 beats at 120, 4 at 60
    assert song.melody() is song.tracks[1]  # the higher pitched track, not the first
    assert song.pitched() == song.tracks[:2]  # no drums, no empty track
    assert [n.pitch for n in song.notes()] == [72, 40, 74] and len(song.notes(drums=True)) == 5
    assert [song.section_at(b) for b in (0, 2.9, 3, 100)] == ["A", "A", "B", "B"]
    song.tracks[0].role = "melody"
    assert song.melody() is song.tracks[0]  # a track marked the melody wins
    assert Song(length=16.0).end == 16.0 and Song().melody() is None
    n = Note(1.5, 0.5, 60)
    assert (n[0], n[2], n.velocity) == (1.5, 60, 80)  # a tuple still, with a default velocity


# --- MIDI --------------------------------------------------------------------------------------------------

def band():
    """Melody on a flute, a bass, and drums; velocities varying; every time on the 480-tick grid."""
    melody = Track([Note(i * 0.5, 0.5, 72 + (i * 5) % 12, 60 + i * 4) for i in range(16)], name="tune", program=73,
                   role="melody")
    bass = Track([Note(i * 2.0, 5 / 3, 36 + i % 4, 100 - i * 5) for i in range(4)], name="bass", program=33)
    drums = Track([Note(i * 0.25, 0.125, (36, 42, 38, 42)[i % 4], 30 + 3 * i) for i in range(32)], name="kit",
                  drum=True)
    return Song(tracks=[melody, bass, drums], tempos=[(0.0, 125.0), (4.0, 100.0)], metre=(3, 4), length=9.0)


def test_midi_round_trip_read_with_mido_and_with_read_midi(tmp_path):
    song = band()
    path = vmidi.write_midi(song, tmp_path / "band.mid")
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == TPB and len(midi.tracks) == 4
    conductor = midi.tracks[0]
    assert not [m for m in conductor if m.type.startswith("note")]
    assert [round(mido.tempo2bpm(m.tempo), 6) for m in conductor if m.type == "set_tempo"] == [125.0, 100.0]
    assert [(m.numerator, m.denominator) for m in conductor if m.type == "time_signature"] == [(3, 4)]
    for written, track in zip(midi.tracks[1:], song.tracks):
        ons = [m for m in written if m.type == "note_on" and m.velocity]
        assert len(ons) == len(track.notes)
        assert [m.velocity for m in ons] == [n.velocity for n in sorted(track.notes)]
        assert [m.program for m in written if m.type == "program_change"] == [track.program]
        assert [m.name for m in written if m.type == "track_name"] == [track.name]
        assert sum(m.time for m in written) == 9 * TPB  # every track ends at the song's length
    channels = [{m.channel for m in t if not m.is_meta} for t in midi.tracks[1:]]
    assert all(len(c) == 1 for c in channels)
    channels = [c.pop() for c in channels]
    assert channels[2] == DRUM_CHANNEL and len(set(channels)) == 3 and DRUM_CHANNEL not in channels[:2]

    back = vmidi.read_midi(path)
    assert back.title == "band" and len(back.tracks) == 3
    for a, b, channel in zip(song.tracks, back.tracks, channels):
        assert b.notes == a.notes  # on the grid: onsets, durations, pitches and velocities exact
        assert (b.name, b.program, b.drum, b.channel) == (a.name, a.program, a.drum, channel)
    assert back.tempos == [(0.0, pytest.approx(125.0)), (4.0, pytest.approx(100.0))]
    assert back.metre == (3, 4) and back.length == 9.0 and back.duration == pytest.approx(song.duration)


def test_channels_the_writer_chooses():
    tracks = [Track([Note(0, 1, 60)], channel=9), Track([Note(0, 1, 60)], channel=3, drum=True),
              Track([Note(0, 1, 60)], channel=5), Track([Note(0, 1, 60)], channel=5), Track([Note(0, 1, 60)])]
    # a pitched track never plays the drum channel, drums always do, a channel taken goes to the next free one
    assert vmidi.channels(Song(tracks=tracks)) == [0, DRUM_CHANNEL, 5, 1, 2]
    with pytest.raises(ValueError, match="15 channels"):
        vmidi.song_to_midi(Song(tracks=[Track([Note(0, 1, 60)]) for _ in range(16)]))
    with pytest.raises(ValueError, match="program must be 0-127"):
        vmidi.song_to_midi(Song(tracks=[Track([Note(0, 1, 60)], program=128)]))
    with pytest.raises(ValueError, match="tempo must be positive"):
        vmidi.song_to_midi(Song(tracks=tracks[:1], tempos=[(0.0, 0.0)]))


def test_reader_takes_every_channel_of_a_track_and_the_effective_tempo(tmp_path):
    """Type 0: one track, three channels (drums on 10); a zero-velocity note-on ends a note; a re-struck
    pitch ends in the order it began; two tempos at tick 0: the later one plays."""
    m = mido.Message
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(150), time=0),
        m("program_change", channel=1, program=40, time=0),
        m("note_on", channel=0, note=60, velocity=70, time=0), m("note_on", channel=1, note=76, velocity=99, time=0),
        m("note_on", channel=9, note=36, velocity=120, time=0),
        m("note_on", channel=9, note=36, velocity=0, time=120), m("note_on", channel=0, note=60, velocity=50, time=120),
        m("note_off", channel=0, note=60, time=240), m("note_off", channel=0, note=60, time=240),
        m("note_off", channel=1, note=76, time=0), m("program_change", channel=1, program=41, time=0)])
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    midi.tracks.append(track)
    midi.save(tmp_path / "type0.mid")
    song = vmidi.read_midi(tmp_path / "type0.mid")
    assert [(t.channel, t.program, t.drum) for t in song.tracks] == [(0, 0, False), (1, 40, False), (9, 0, True)]
    assert song.tracks[0].notes == [Note(0.0, 1.0, 60, 70), Note(0.5, 1.0, 60, 50)]
    assert song.tracks[1].notes == [Note(0.0, 1.5, 76, 99)] and song.tracks[2].notes == [Note(0.0, 0.25, 36, 120)]
    assert song.tempos == [(0.0, pytest.approx(150.0))] and song.length == 1.5
    with pytest.raises(ValueError, match=r"missing\.mid: cannot be read"):
        vmidi.read_midi(tmp_path / "missing.mid")


# --- the done-when: a real game's song with drums, through extraction and back ----------------------

def openmsx_song():
    """One of OpenTTD's songs (Debian's openttd-openmsx): several tracks, drums, velocities that vary."""
    if not OPENMSX.is_dir():
        pytest.skip(f"{OPENMSX} is not present (apt-get install openttd-openmsx)")
    files = sorted(OPENMSX.glob("*.mid"))
    wanted = OPENMSX / "5432gone_redfarn.mid"
    if not files:
        pytest.skip(f"no .mid files in {OPENMSX}")
    return wanted if wanted in files else files[0]


def scan(path):
    """What a MIDI file holds per (track, channel), straight from mido's messages and not through the
    project's reader: (program, drum, Counter of (onset on the 480 grid, pitch, velocity)) for each."""
    midi = mido.MidiFile(path)
    out = []
    for track in midi.tracks:
        now, programs, ons = 0, {}, {}
        for msg in track:
            now += msg.time
            if msg.type == "program_change" and msg.channel not in ons:
                programs[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity:
                ons.setdefault(msg.channel, collections.Counter())[
                    round(now * TPB / midi.ticks_per_beat), msg.note, msg.velocity] += 1
        out += [(programs.get(c, 0), c == DRUM_CHANNEL, ons[c]) for c in sorted(ons)]
    return out


def on_grid(track):
    """A track's notes as the writer places them: onset and end each rounded to the 480-tick grid."""
    out = collections.Counter()
    for n in track.notes:
        on = round(n.onset * TPB)
        out[on, max(on + 1, round((n.onset + n.duration) * TPB)) - on, n.pitch, n.velocity] += 1
    return out


def test_a_game_song_with_drums_survives_extraction_and_writing(tmp_path):
    from vgmusic.encode import load_songs
    from vgmusic.extract import extract
    source = openmsx_song()
    game = tmp_path / "songs" / "openttd"
    game.mkdir(parents=True)
    (game / source.name).write_bytes(source.read_bytes())
    summary, _ = extract(tmp_path / "songs", tmp_path / "data", progress=False)
    assert summary["openttd"][0] == 1
    song, = load_songs(tmp_path / "data", "openttd")
    assert song.meta["file"] == source.name and song.key is not None

    original = scan(source)
    assert len(original) >= 4 and any(drum for _, drum, _ in original)
    assert any(len({v for _, _, v in ons}) > 5 for _, _, ons in original)  # velocities that vary
    # extraction kept every track, program, drum part and note with its velocity
    assert [(t.program, t.drum, collections.Counter((round(n.onset * TPB), n.pitch, n.velocity) for n in t.notes))
            for t in song.tracks] == original

    vmidi.write_midi(song, tmp_path / "again.mid")
    assert scan(tmp_path / "again.mid") == original  # the written file holds them all, velocities too
    back = vmidi.read_midi(tmp_path / "again.mid")
    assert len(back.tracks) == len(song.tracks)
    for a, b in zip(song.tracks, back.tracks):
        assert (b.program, b.drum, b.name) == (a.program, a.drum, a.name)
        assert on_grid(b) == on_grid(a)  # and durations too, on the writer's grid
    assert back.metre == song.metre and round(back.length * TPB) == round(song.length * TPB)
    assert [(round(b * TPB), round(bpm, 3)) for b, bpm in back.tempos] == [
        (round(b * TPB), round(bpm, 3)) for b, bpm in song.tempos]


# --- damaged cache entries ------------------------------------------------------------------------------

def melody_file(path, base):
    vmidi.write_midi(Song(tracks=[Track([Note(i * 0.5, 0.5, base + (i * 3) % 8, 70 + i) for i in range(16)])]),
                     path)
    return path


def test_damaged_cache_entries_are_parsed_again(tmp_path):
    from vgmusic.extract import cache_problem, sha256_file
    game, data = tmp_path / "songs" / "game", tmp_path / "data"
    game.mkdir(parents=True)
    names = ["error without kind", "numbers for lists", "no tracks list", "pitch 300", "not json", "a list",
             "older version"]
    files = [melody_file(game / f"{name}.mid", 50 + i) for i, name in enumerate(names)]
    first = run_script("get_all_notes.py", "--songs-dir", tmp_path / "songs", "--data-dir", data, cwd=tmp_path)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    entries = {f: data / "cache" / f"{sha256_file(f)}.json" for f in files}
    good = {f: json.loads(e.read_text()) for f, e in entries.items()}
    assert all(cache_problem(g) is None and g["version"] == 3 for g in good.values())

    def song_with(change):
        entry = copy.deepcopy(good[files[3]])
        change(entry["song"])
        return entry
    pitch_300 = song_with(lambda s: s["tracks"][0]["notes"][0].__setitem__(2, 300))
    written = [{"version": 3, "error": "x"}, {"version": 3, "song": 5, "classic": 7},
               dict(song_with(lambda s: s.__setitem__("tracks", 5)), version=3), pitch_300]
    for f, entry in zip(files, written):
        entries[f].write_text(json.dumps(entry))
    entries[files[4]].write_text('{"version": 3, "song": ')
    entries[files[5]].write_text("[1, 2]")
    entries[files[6]].write_text(json.dumps({"version": 2, "classic": ["C4"], "parts": []}))
    assert cache_problem(written[0]) == "a failure without its kind and bounds"
    assert cache_problem(written[1]) == "'classic' is not a list of tokens"
    assert cache_problem(pitch_300) == "300 is not a whole number from 0 to 127"

    again = run_script("get_all_notes.py", "--songs-dir", tmp_path / "songs", "--data-dir", data, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    reasons = dict(zip(files, ["a failure without its kind and bounds", "'classic' is not a list of tokens",
                               "not a song (TypeError: 'int' object is not iterable)",
                               "300 is not a whole number from 0 to 127", "unreadable (not JSON)",
                               "not a JSON object"]))
    # in the order the files are listed; the older version's entry is rebuilt without a word
    assert again.stderr.splitlines() == [f"warning: damaged cache entry for {f} ({reasons[f]}); parsing it again"
                                         for f in sorted(reasons)]
    for f in files:  # each entry rewritten whole, as the first run wrote it (an older version's silently)
        assert json.loads(entries[f].read_text()) == good[f], f
    assert "game: 7 songs" in again.stdout


# --- the readers agree -----------------------------------------------------------------------------------

def test_mido_reader_agrees_with_music21s_own_score(corpus_songs):
    """music21 splits a note crossing a bar line into tied notes; the MIDI it writes and the reader keep one.
    Repeats are played out in the MIDI it writes."""
    from music21 import corpus
    checked = 0
    for game, names in CHORALES.items():
        for name in names:
            score = corpus.parse(name).expandRepeats()  # as music21 plays it, and writes it to MIDI
            song = vmidi.read_midi(corpus_songs / game / (name.replace("/", "_") + ".mid"))
            parts = [p for p in score.parts if p.recurse().notes]
            assert len(song.tracks) == len(parts), name
            for part, track in zip(parts, song.tracks):
                merged = sorted((float(n.offset), float(n.quarterLength), p.midi)
                                for n in part.stripTies().flatten().notes for p in n.pitches)
                assert len(track.notes) == len(merged), (name, part.partName)
                for (onset, dur, pitch), n in zip(merged, track.notes):
                    assert (n.onset, n.pitch) == (pytest.approx(onset, abs=1e-6), pitch), (name, part.partName)
                    assert math.isclose(n.duration, dur, abs_tol=1e-6), (name, part.partName, n)
                starts = {float(n.offset) for n in part.flatten().notes if n.tie is None or n.tie.type == "start"}
                assert sorted({n.onset for n in track.notes}) == pytest.approx(sorted(starts))
                checked += 1
            signature = score.recurse().getElementsByClass("TimeSignature")[0]
            assert song.metre == (signature.numerator, signature.denominator), name
    assert checked >= 7 * 4


def test_a_program_set_in_another_track_is_the_channels_instrument():
    """Some files set every channel's instrument in the first track and play the notes in others."""
    import mido
    from vgmusic.midi import midi_to_song
    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.Message("program_change", channel=2, program=40, time=0)]))
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", channel=2, note=60, velocity=90, time=0),
                                       mido.Message("note_off", channel=2, note=60, time=480)]))
    midi.tracks.append(mido.MidiTrack([mido.Message("program_change", channel=3, program=10, time=0),
                                       mido.Message("note_on", channel=3, note=62, velocity=90, time=0),
                                       mido.Message("note_off", channel=3, note=62, time=480)]))
    assert [(t.channel, t.program) for t in midi_to_song(midi).tracks] == [(2, 40), (3, 10)]


def test_written_notes_are_the_messages_mido_checks_and_bad_values_still_refused(tmp_path):
    """The writer makes note messages without mido's per-value checks once it has checked them itself: the
    same bytes as checked messages (NumPy ints take the checked path), and a pitch past 127 still refused."""
    import numpy as np
    notes = [Note(0.0, 1.0, 60, 90), Note(0.5, 0.25, 64, 100), Note(1.0, 1.0, 60, 90)]
    song = Song(tracks=[Track(notes=notes, name="t", program=5)], tempos=[(0.0, 120.0)], length=2.0)
    numpy_song = Song(tracks=[Track(notes=[Note(n.onset, n.duration, np.int64(n.pitch), np.int64(n.velocity))
                                           for n in notes], name="t", program=5)], tempos=[(0.0, 120.0)], length=2.0)
    fast, checked = vmidi.write_midi(song, tmp_path / "a.mid"), vmidi.write_midi(numpy_song, tmp_path / "b.mid")
    assert fast.read_bytes() == checked.read_bytes()
    assert [m.dict() for m in mido.MidiFile(fast).tracks[1]] == [m.dict() for m in mido.MidiFile(checked).tracks[1]]
    with pytest.raises(ValueError):
        vmidi.song_to_midi(Song(tracks=[Track(notes=[Note(0.0, 1.0, 128, 90)])], length=1.0))
