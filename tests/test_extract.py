import json
import time

import mido
import pytest

from vgmusic.extract import EXTRACT_VERSION, NoUsableSongs, cache_problem, extract
from vgmusic.parse import parse_data, parse_midi
from vgmusic.song import Key, Song


def test_classic_tokens_from_real_midi(corpus_data):
    songs = json.loads((corpus_data / "chorales_a.json").read_text())["songs"]
    assert len(songs) == 4
    tokens = songs[0]["classic"]
    assert len(tokens) > 20
    # pitch names with octave, as the original (chorale voices are single notes)
    assert all(t == "Rest" or t[-1].isdigit() for t in tokens)
    vocab = json.loads((corpus_data / "vocab.json").read_text())["classic"]
    other = json.loads((corpus_data / "chorales_b.json").read_text())["songs"]
    assert set(vocab) == {t for s in songs + other for t in s["classic"]}
    assert vocab == sorted(vocab)


def test_timed_parts_and_key_are_kept(corpus_data):
    row = json.loads((corpus_data / "chorales_a.json").read_text())["songs"][0]
    assert set(row) == {"file", "sha256", "song", "classic"}
    song = Song.from_json(row["song"])
    assert len(song.tracks) >= 4  # SATB, each voice its own track
    assert {"Soprano", "Alto", "Tenor", "Bass"} <= {t.name for t in song.tracks}
    onsets = [n.onset for n in song.tracks[0].notes]
    assert onsets == sorted(onsets) and len(set(onsets)) > 10
    assert isinstance(song.key, Key) and song.key.mode in ("major", "minor")
    assert song.length >= song.tracks[0].end() > 0 and song.metre == (4, 4)


def _band(path):
    """Two pitched tracks and drums on channel 10, each note's velocity its own, a tempo and a metre."""
    midi = mido.MidiFile(ticks_per_beat=96)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(150), time=0),
                                       mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0)]))
    for channel, program, pitches in ((0, 33, [36, 43, 41] * 4), (1, 73, [72, 74, 76, 77] * 3), (9, 0, [36, 38] * 6)):
        t = mido.MidiTrack([mido.MetaMessage("track_name", name=f"part {channel}", time=0),
                            mido.Message("program_change", program=program, channel=channel, time=0)])
        for i, p in enumerate(pitches):
            t += [mido.Message("note_on", note=p, velocity=40 + 7 * i, channel=channel, time=0),
                  mido.Message("note_off", note=p, velocity=0, channel=channel, time=72)]
        midi.tracks.append(t)
    midi.save(path)
    return path


def test_parse_keeps_every_track_drums_and_velocities(tmp_path):
    got = parse_midi(_band(tmp_path / "band.mid"))
    assert set(got) == {"version", "song", "classic"} and got["version"] == EXTRACT_VERSION == 3
    assert json.loads(json.dumps(got)) == got  # what the cache stores, as it is
    song = Song.from_json(got["song"])
    assert [(t.name, t.program, t.channel, t.drum) for t in song.tracks] == [
        ("part 0", 33, 0, False), ("part 1", 73, 1, False), ("part 9", 0, 9, True)]
    for t in song.tracks:
        assert [n.velocity for n in t.notes] == [40 + 7 * i for i in range(12)]
        assert [n.onset for n in t.notes] == [i * 0.75 for i in range(12)] and {n.duration for n in t.notes} == {0.75}
    assert song.tempos == [(0.0, 150.0)] and song.metre == (3, 4) and song.length == 9.0
    assert song.key is not None and got["classic"]  # music21's part: the key and the original's tokens
    assert "38" not in " ".join(got["classic"])  # the snare is no pitch
    assert parse_data(_band(tmp_path / "again.mid").read_bytes()) == got


def test_cache_problems_are_named(tmp_path):
    good = parse_midi(_band(tmp_path / "band.mid"))
    assert cache_problem(good) is None
    assert cache_problem({"version": 3, "error": "timed out after 5 s", "kind": "timeout", "timeout": 5,
                          "max_memory": 2048}) is None  # a failure, with the bounds it ran under
    for entry, reason in [([], "not a JSON object"),
                          ({"version": 3, "error": "x"}, "a failure without its kind and bounds"),
                          ({"version": 3, "error": "x", "kind": "crash", "timeout": 5, "max_memory": 9}, "kind"),
                          ({"version": 3, "error": "x", "kind": "timeout", "timeout": True, "max_memory": 9}, "bounds"),
                          (dict(good, classic=7), "'classic' is not a list of tokens"),
                          (dict(good, classic=["C4", 5]), "'classic' is not a list of tokens"),
                          (dict(good, song=None), "a song is a JSON object"),
                          (dict(good, song=dict(good["song"], tempos=[[2.0, 120.0]])), "start at beat 0")]:
        assert reason in cache_problem(entry), entry


def test_damaged_cache_entry_is_parsed_again(corpus_songs, tmp_path, capsys):
    game = tmp_path / "songs" / "game"
    game.mkdir(parents=True)
    path = game / "a.mid"
    path.write_bytes((corpus_songs / "chorales_a" / "bach_bwv66.6.mid").read_bytes())
    extract(tmp_path / "songs", tmp_path / "data", progress=False)
    entry, = (tmp_path / "data" / "cache").glob("*.json")
    good = entry.read_text()
    data = (tmp_path / "data" / "game.json").read_text()
    broken = json.loads(good)
    broken["song"]["tracks"][1]["notes"][3][2] = 300
    entry.write_text(json.dumps(broken))
    capsys.readouterr()
    summary, _ = extract(tmp_path / "songs", tmp_path / "data", progress=False)
    assert summary == {"game": (1, len(json.loads(good)["classic"]))}
    assert capsys.readouterr().err == (f"warning: damaged cache entry for {path} (300 is not a whole number from 0 "
                                       "to 127); parsing it again\n")
    assert json.loads(entry.read_text()) == json.loads(good)  # rewritten whole
    assert (tmp_path / "data" / "game.json").read_text() == data


def test_chords_use_normal_order(tmp_path):
    from music21 import chord, stream
    s = stream.Stream([chord.Chord(["C4", "E4", "G4"]), chord.Chord(["D4", "F#4", "A4"])])
    s.write("midi", fp=str(tmp_path / "c.mid"))
    assert [t for t in parse_midi(tmp_path / "c.mid")["classic"] if t != "Rest"] == ["0.4.7", "2.6.9"]


def test_cached_rerun_is_fast_and_identical(corpus_songs, tmp_path):
    extract(corpus_songs, tmp_path, progress=False)
    first = (tmp_path / "chorales_a.json").read_text()
    t0 = time.perf_counter()
    extract(corpus_songs, tmp_path, progress=False)
    assert time.perf_counter() - t0 < 1.0
    assert (tmp_path / "chorales_a.json").read_text() == first


def _drums_only(path):
    track = mido.MidiTrack()
    for i in range(8):
        track.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=0 if i == 0 else 240))
        track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=240))
    midi = mido.MidiFile()
    midi.tracks.append(track)
    midi.save(path)


def test_bad_files_are_skipped_with_reasons(corpus_songs, tmp_path, capsys):
    game = tmp_path / "songs" / "mixed"
    game.mkdir(parents=True)
    good = corpus_songs / "chorales_a" / "bach_bwv66.6.mid"
    (game / "good.mid").write_bytes(good.read_bytes())
    (game / "truncated.mid").write_bytes(good.read_bytes()[:200])
    (game / "not_midi.mid").write_text("this is a text file, not MIDI\n")
    _drums_only(game / "drums.mid")
    summary, _ = extract(tmp_path / "songs", tmp_path / "data", progress=False)
    assert summary["mixed"][0] == 1
    err = capsys.readouterr().err
    for name in ("truncated.mid", "not_midi.mid", "drums.mid"):
        assert f"skipping {game / name}" in err
    assert "good.mid" not in err


def test_game_without_usable_song_fails_clearly(tmp_path):
    (tmp_path / "songs" / "empty").mkdir(parents=True)
    with pytest.raises(NoUsableSongs, match="empty: no .mid"):
        extract(tmp_path / "songs", tmp_path / "data", progress=False)
    (tmp_path / "songs" / "empty" / "junk.mid").write_text("junk")
    with pytest.raises(NoUsableSongs, match="no usable song"):
        extract(tmp_path / "songs", tmp_path / "data", progress=False)


def test_original_songs_extract(shared_songs, tmp_path):
    summary, vocab = extract(shared_songs, tmp_path, progress=False)
    assert {g: n for g, (n, _) in summary.items()} == {
        "final_fantasy_7": 11, "pokemon_red_blue_yellow": 16, "zelda_ocarina_of_time": 19}
    assert any("." in t for t in vocab) and "Rest" in vocab


def test_a_game_without_songs_does_not_stop_the_others(corpus_songs, tmp_path, capsys):
    songs = tmp_path / "songs"
    (songs / "chorales").mkdir(parents=True)
    (songs / "chorales" / "a.mid").write_bytes((corpus_songs / "chorales_a" / "bach_bwv66.6.mid").read_bytes())
    (songs / "empty").mkdir()
    (songs / "junk").mkdir()
    (songs / "junk" / "x.mid").write_text("junk")
    status = {}
    summary, vocab = extract(songs, tmp_path / "data", progress=False, status=status)
    assert list(summary) == ["chorales"] and vocab
    assert status["skipped"] == 3  # x.mid, and both game folders
    err = capsys.readouterr().err
    assert f"warning: skipping game folder {songs / 'empty'}: no .mid or .midi files\n" in err
    assert f"warning: skipping game folder {songs / 'junk'}: no usable song among 1 file(s)\n" in err
    assert json.loads((tmp_path / "data" / "vocab.json").read_text())["classic"] == vocab
    assert not (tmp_path / "data" / "junk.json").exists()


def test_parallel_extraction_equals_serial(corpus_songs, tmp_path):
    """Two parsers at once write exactly what one writes: the same songs, in the same order, the same cache."""
    out = {}
    for workers in (1, 2):
        data = tmp_path / f"w{workers}"
        status = {}
        summary, vocab = extract(corpus_songs, data, workers=workers, progress=False, status=status)
        assert status["parsed"] == 7 and status["skipped"] == 0 and len(status["parsed_songs"]) == 7
        out[workers] = (summary, vocab, {p.relative_to(data).as_posix(): p.read_bytes()
                                         for p in sorted(data.rglob("*.json"))})
    assert out[1] == out[2]
    assert set(out[1][2]) >= {"chorales_a.json", "chorales_b.json", "vocab.json"} and len(out[1][2]) == 3 + 7


def test_folders_anywhere_are_read_by_their_names(corpus_songs, tmp_path):
    elsewhere = tmp_path / "far" / "away" / "mine"
    elsewhere.mkdir(parents=True)
    (elsewhere / "x.mid").write_bytes((corpus_songs / "chorales_b" / "bach_bwv102.7.mid").read_bytes())
    summary, _ = extract(tmp_path / "no_songs_dir", tmp_path / "data", progress=False,
                         folders=[corpus_songs / "chorales_a", elsewhere])
    assert {g: n for g, (n, _) in summary.items()} == {"chorales_a": 4, "mine": 1}
    assert json.loads((tmp_path / "data" / "mine.json").read_text())["songs"][0]["file"] == "x.mid"
    (tmp_path / "other" / "mine").mkdir(parents=True)
    with pytest.raises(ValueError, match="two folders named mine"):
        extract(tmp_path, tmp_path / "data", progress=False, folders=[elsewhere, tmp_path / "other" / "mine"])
