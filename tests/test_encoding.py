"""The event encoding on real songs: round trip, timing, transposition, part choice, control tokens."""
import mido
import pytest
from music21 import converter

from vgmusic.encode import (GRID, PAD, RESERVED, Event, flat_windows, get_encoding, load_songs, split_songs,
                            token_kind)
from vgmusic.parse import parse_midi
from vgmusic.midi import write_midi
from vgmusic.song import Note, Song, Track
from vgmusic.theory import key_shift


def _songs(data):
    """Every extracted Song in a data folder, game by game, as training reads them."""
    return [s for f in sorted(data.glob("*.json")) if f.name != "vocab.json" for s in load_songs(data, f.stem)]


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
        # durations snap to the nearest value a token can say: within half a step up to a beat (the reader
        # keeps the file's own ticks, unquantised), within 10% beyond
        d_src = min(source[round(n[0] * GRID), n[2]], key=lambda d: abs(d - n[1]))
        assert abs(d_src - n[1]) <= max(0.5 / GRID + 1e-9, 0.1 * d_src) or d_src > 8


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
        assert [n._replace(pitch=n.pitch + shift) for n in base] == moved
    assert enc.song_tokens(song, 100) is None  # out of MIDI range: dropped, never wrapped
    # a move along the C major scale keeps every onset and duration and moves each pitch by 1 or 2 semitones
    up = enc.decode(enc.song_tokens(song, 0, 1))
    assert [(n.onset, n.duration) for n in up] == [(n.onset, n.duration) for n in base]
    assert all(1 <= b.pitch - a.pitch <= 2 for a, b in zip(sorted(base, key=lambda n: n[:3]),
                                                         sorted(up, key=lambda n: n[:3])))


def test_key_normalisation_reaches_c_major_or_a_minor(corpus_data, tmp_path):
    enc = Event(parts="all", key_normalize=True)
    for song in _songs(corpus_data):
        shift = enc.song_shift(song)
        assert shift == key_shift(song.key) and -6 <= shift <= 5
        path = tmp_path / f"{song.meta['file']}.mid"
        write_midi(Song(tracks=[Track(enc.decode(enc.song_tokens(song)))]), path)
        key = converter.parse(str(path)).analyze("key")
        assert (key.tonic.name, key.mode) in (("C", "major"), ("A", "minor")), song.meta["file"]
    assert Event(parts="all").song_shift(song) == 0  # without key normalisation: no shift


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
    song = Song.from_json(parse_midi(tmp_path / "band.mid")["song"])
    melody = {n[2] for n in Event(parts="melody").song_notes(song)}
    everything = {n[2] for n in Event(parts="all").song_notes(song)}
    assert melody == {72, 74, 76, 77, 79}  # the tune, though the bass track comes first
    assert song.melody().program == 73 and song.melody() is song.tracks[1]
    assert everything == melody | {36, 40, 41, 43}
    assert 38 not in everything  # the snare on channel 10 is never a pitch
    drums, = [t for t in song.tracks if t.drum]  # though the song keeps the drums, velocities and all
    assert drums.channel == 9 and len(drums.notes) == 16 and {n.velocity for n in drums.notes} == {90}


def test_notes_without_length_are_left_out():
    song = Song(tracks=[Track([Note(0, 1, 60), Note(1, 0, 61), Note(1, 1, 62)])])
    for parts in ("melody", "all"):
        assert [n.pitch for n in Event(parts=parts).song_notes(song)] == [60, 62]
    assert Event().song_notes(Song(tracks=[Track([Note(0, 1, 36)], drum=True)])) == []  # nothing pitched
    assert Event().song_tokens(Song()) == []


def test_decoder_tolerates_any_order():
    enc = Event()
    notes = enc.decode(["w12", "d6", "p60", "p64", "w12", "p67", "d3", "p60", "d12", PAD, "w24", "p62"])
    assert notes[:2] == [Note(1.0, 1.0, 60), Note(1.0, 1.0, 64)]  # no duration: lasts until the next event
    assert Note(2.0, 0.25, 67) in notes and Note(2.0, 1.0, 60) in notes  # same onset, other duration
    assert notes[-1][0] == 4.0 and all(isinstance(n, Note) and n.velocity == 80 for n in notes)


def test_windows_pad_song_openings():
    flat, starts = flat_windows([list(range(1, 6))], 3, stride=2, pad_id=0)
    assert list(flat) == [0, 0, 0, 1, 2, 3, 4, 5]
    assert list(starts) == [0, 2, 4]  # the last window is kept whatever the stride


def test_encoding_spec_round_trips():
    enc = Event(parts="all", key_normalize=True)
    again = get_encoding(enc.spec())
    assert (again.parts, again.key_normalize, again.reserved) == ("all", True, 0)
    assert "reserved" not in enc.spec()  # a model trained without control tokens keeps its spec
    with pytest.raises(ValueError, match="unknown encoding"):
        get_encoding("midi-like")


def test_reserved_control_tokens_come_after_every_note_token():
    plain, enc = Event(), Event(reserved=RESERVED)
    assert RESERVED == 32 and enc.spec()["reserved"] == 32 and get_encoding(enc.spec()).reserved == 32
    vocab = enc.vocabulary()
    assert vocab[:len(plain.vocabulary())] == plain.vocabulary()  # no note token changes its id
    assert vocab[len(plain.vocabulary()):] == [f"<ctl{i}>" for i in range(32)]
    assert [token_kind(t) for t in ("<ctl0>", "<ctl31>", PAD, "p60", "d12", "w6")] == [
        "control", "control", "pad", "pitch", "duration", "wait"]
    # a control token is no note and moves no time
    assert enc.decode(["<ctl3>", "p60", "d12", "<ctl0>", "w12", "p62", "d6", "w6"]) == [
        Note(0.0, 1.0, 60), Note(1.0, 0.5, 62)]
    for bad in (-1, 4097, 1.5, True, "8"):
        with pytest.raises(ValueError, match="reserved"):
            Event(reserved=bad)


def test_split_holds_out_whole_songs(corpus_data):
    songs = load_songs(corpus_data, "chorales_a")
    assert [s.meta["source"] for s in songs] == ["chorales_a"] * 4
    assert all(s.meta["classic"] and len(s.meta["sha256"]) == 64 and s.title == s.meta["file"] for s in songs)
    train, val = split_songs(songs, 0.25, split_seed=3)
    assert len(val) == 1 and len(train) == 3 and {s.meta["file"] for s in train + val} == {
        s.meta["file"] for s in songs}
    assert split_songs(songs, 0.25, split_seed=3) == (train, val)  # the same seed, the same split
    train, val = split_songs(songs, 0.5, val_songs=[songs[0].meta["file"]])
    assert val == [songs[0]] and train == songs[1:]
    with pytest.raises(ValueError, match="not among"):
        split_songs(songs, 0.5, val_songs=["nowhere.mid"])
