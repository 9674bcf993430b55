import json
import time

import mido
import pytest

from vgmusic.extract import NoUsableSongs, extract, parse_midi


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
    song = json.loads((corpus_data / "chorales_a.json").read_text())["songs"][0]
    assert len(song["parts"]) >= 4  # SATB, each voice its own part
    onsets = [n[0] for n in song["parts"][0]["notes"]]
    assert onsets == sorted(onsets) and len(set(onsets)) > 10
    assert song["key"]["mode"] in ("major", "minor")


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
