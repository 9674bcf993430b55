"""The event encoding on real songs: round trip, timing, transposition, part choice."""
import json

import mido
import pytest
from music21 import converter

from vgmusic.encode import GRID, PAD, Event, flat_windows, get_encoding, key_shift, melody_part
from vgmusic.extract import parse_midi
from vgmusic.render import write_midi


def _songs(data):
    return [s for f in sorted(data.glob("*.json")) if f.name != "vocab.json"
            for s in json.loads(f.read_text())["songs"]]


def _check_round_trip(song, enc):
    tokens = enc.song_tokens(song)
    assert tokens and all(t in enc.vocabulary() for t in tokens)
    notes = enc.decode(tokens)
    assert enc.encode_notes(notes) == tokens  # encode, decode, encode is the identity
    # every source note comes back at its onset (exactly, on the grid) with its pitch and duration;
    # voices doubling a pitch at the same onset and length become one note
    source = {}
    for n in enc.song_notes(song):
        source.setdefault((round(n[0] * GRID), n[2]), []).append(n[1])
    assert {(round(n[0] * GRID), n[2]) for n in notes} == set(source)
    for n in notes:
        # durations snap to the nearest value a token can say: exact up to a beat, within 10% beyond
        d_src = min(source[round(n[0] * GRID), n[2]], key=lambda d: abs(d - n[1]))
        assert abs(d_src - n[1]) <= max(0.5 / GRID, 0.1 * d_src) or d_src > 8


def test_round_trip_chorales(corpus_data):
    for song in _songs(corpus_data):
        _check_round_trip(song, Event(parts="all"))
        _check_round_trip(song, Event(parts="melody"))


def test_round_trip_original_songs(shared_songs, tmp_path):
    from vgmusic.extract import extract
    extract(shared_songs, tmp_path, progress=False)
    songs = _songs(tmp_path)
    assert len(songs) == 46
    for song in songs:
        _check_round_trip(song, Event())


def test_rhythm_is_kept(corpus_data):
    """Durations and rests vary and chords keep their octaves, unlike the classic half-beat stream."""
    song = _songs(corpus_data)[0]
    notes = Event(parts="all").decode(Event(parts="all").song_tokens(song))
    onsets = sorted({n[0] for n in notes})
    assert len({round(b - a, 3) for a, b in zip(onsets, onsets[1:])}) >= 2
    assert len({n[1] for n in notes}) >= 3
    chord = [n[2] for n in notes if n[0] == onsets[0]]
    assert max(chord) - min(chord) >= 12  # SATB voicing spans an octave or more


def test_transposition_decodes_correctly(corpus_data):
    enc = Event(parts="all")
    song = _songs(corpus_data)[0]
    base = enc.decode(enc.song_tokens(song))
    for shift in (-5, 3, 6):
        moved = enc.decode(enc.song_tokens(song, shift))
        assert [[n[0], n[1], n[2] + shift] for n in base] == moved
    assert enc.song_tokens(song, 100) is None  # out of MIDI range: dropped, never wrapped


def test_key_normalisation_reaches_c_major_or_a_minor(corpus_data, tmp_path):
    enc = Event(parts="all", key_normalize=True)
    for song in _songs(corpus_data):
        shift = enc.song_shift(song)
        assert shift == key_shift(song["key"]) and -6 <= shift <= 5
        path = tmp_path / f"{song['file']}.mid"
        write_midi(enc.decode(enc.song_tokens(song)), path)
        key = converter.parse(str(path)).analyze("key")
        assert (key.tonic.name, key.mode) in (("C", "major"), ("A", "minor")), song["file"]


def _two_parts(path, drums=True):
    """Bass on channel 0 (first track), the tune an octave and more above on channel 1, drums on 9."""
    midi = mido.MidiFile(ticks_per_beat=480)
    for channel, pitches in ((0, [36, 40, 43, 41] * 4), (1, [72, 74, 76, 77, 79, 77, 76, 74] * 2)):
        t = mido.MidiTrack([mido.Message("program_change", program=32 if channel == 0 else 73, channel=channel)])
        step = 480 if channel == 0 else 240
        for p in pitches:
            t += [mido.Message("note_on", note=p, velocity=90, channel=channel, time=0),
                  mido.Message("note_off", note=p, velocity=0, channel=channel, time=step)]
        midi.tracks.append(t)
    if drums:
        t = mido.MidiTrack()
        for _ in range(16):
            t += [mido.Message("note_on", note=38, velocity=90, channel=9, time=0),
                  mido.Message("note_off", note=38, velocity=0, channel=9, time=240)]
        midi.tracks.append(t)
    midi.save(path)


def test_melody_part_and_no_drums(tmp_path):
    _two_parts(tmp_path / "band.mid")
    song = parse_midi(tmp_path / "band.mid")
    melody = {n[2] for n in Event(parts="melody").song_notes(song)}
    everything = {n[2] for n in Event(parts="all").song_notes(song)}
    assert melody == {72, 74, 76, 77, 79}  # the tune, though the bass track comes first
    assert everything == melody | {36, 40, 41, 43}
    assert 38 not in everything  # the snare on channel 10 is never a pitch


def test_decoder_tolerates_any_order():
    enc = Event()
    notes = enc.decode(["w12", "d6", "p60", "p64", "w12", "p67", "d3", "p60", "d12", PAD, "w24", "p62"])
    assert notes[:2] == [[1.0, 1.0, 60], [1.0, 1.0, 64]]  # no duration: lasts until the next event
    assert [2.0, 0.25, 67] in notes and [2.0, 1.0, 60] in notes  # same onset, other duration
    assert notes[-1][0] == 4.0


def test_windows_pad_song_openings():
    flat, starts = flat_windows([list(range(1, 6))], 3, stride=2, pad_id=0)
    assert list(flat) == [0, 0, 0, 1, 2, 3, 4, 5]
    assert list(starts) == [0, 2, 4]  # the last window is kept whatever the stride


def test_encoding_spec_round_trips():
    enc = Event(parts="all", key_normalize=True)
    again = get_encoding(enc.spec())
    assert (again.parts, again.key_normalize) == ("all", True)
    with pytest.raises(ValueError, match="unknown encoding"):
        get_encoding("midi-like")
