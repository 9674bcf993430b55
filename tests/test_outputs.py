"""Where predict.py writes: names reserved under concurrency, companion files that never overwrite each
other or what is not a song's file, names refused before composing, and the temperature rule."""
import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import datetime

import pytest

from conftest import ROOT
from vgmusic.outputs import check_name, files_of, release, song_paths

GAME = "pokemon_red_blue_yellow"
SCRIPT = ROOT / GAME / "predict.py"
QUIET = ("--no-audio", "--no-roll", "--no-page")


def _script(*flags, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, flags)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _reserve(args):
    folder, num = args
    # every process asks for the same second's name at once
    return [str(p) for p in song_paths("", folder, num, now=datetime(2026, 1, 2, 3, 4, 5))]


def test_names_are_reserved_atomically_under_concurrency(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_reserve, [(tmp_path, 1 + i % 3) for i in range(24)])
    names = [p for paths in got for p in paths]
    assert len(names) == len(set(names)) == sum(1 + i % 3 for i in range(24))
    assert all(os.path.getsize(p) == 0 for p in names)  # reservations, until each song replaces its own
    release([tmp_path / os.path.basename(p) for p in names])
    assert list(tmp_path.iterdir()) == []


def test_a_name_whose_companion_exists_is_not_reused(tmp_path):
    (tmp_path / "20260102-030405.wav").write_bytes(b"not ours")
    (first,) = song_paths("", tmp_path, 1, now=datetime(2026, 1, 2, 3, 4, 5))
    assert first.name == "20260102-030405-2.mid"
    assert (tmp_path / "20260102-030405.wav").read_bytes() == b"not ours"


def test_two_runs_in_the_same_second_keep_both_songs(tmp_path):
    """The issue's case, end to end: two predict.py runs at once into one folder, each song whole."""
    # predict.py names songs under <project>/<game>/generations: here a project root of the test's own
    procs = [subprocess.Popen([sys.executable, "-c", (
        "from vgmusic import predict; "
        f"predict.ROOT = __import__('pathlib').Path({str(tmp_path)!r}); "
        f"predict.main(game='gen', argv=['--model-dir', {str(ROOT / GAME / 'weights')!r}, '--length', '60', "
        f"'--seed', '{seed}', '--no-roll', '--data-dir', {str(tmp_path / 'none')!r}])")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    folder = tmp_path / "gen" / "generations"
    mids = sorted(folder.glob("*.mid"))
    assert len(mids) == 2 and all(m.stat().st_size > 0 for m in mids)
    records = [json.loads(m.with_suffix(".song.json").read_text()) for m in mids]
    assert [r["midi"] for r in records] == [m.name for m in mids]  # each set's files are one song's
    assert {r["seed"] for r in records} == {1, 2} and all(m.with_suffix(".wav").stat().st_size for m in mids)


@pytest.mark.parametrize("name", ["song.wav", "song.png", "index.html", "song.song.json", "song"])
def test_out_must_be_a_midi_name(name, tmp_path):
    r = _script("--out", tmp_path / name, "--bars", 1, *QUIET)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("must end in .mid or .midi (its audio, piano roll and record take the same "
                                     "name with their own suffixes)")
    assert list(tmp_path.iterdir()) == []


def test_companions_that_are_not_files_are_refused_before_composing(tmp_path):
    (tmp_path / "s.wav").mkdir()
    r = _script("--out", tmp_path / "s.mid", "--bars", 1)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path / 's.wav'}: is a folder, not a song's file; " \
                                                      "choose another name"
    os.symlink("/dev/null", tmp_path / "t.mid")
    r = _script("--out", tmp_path / "t.mid", "--bars", 1)
    assert r.returncode == 1 and "is a symbolic link" in r.stderr and os.path.islink(tmp_path / "t.mid")
    r = _script("--out", "/dev/null", "--bars", 1)
    assert r.returncode == 1 and "must end in .mid" in r.stderr


@pytest.mark.parametrize("length", [236, 251])
def test_long_names_are_refused_before_composing(length, tmp_path):
    name = "x" * (length - 4) + ".mid"
    started = time.perf_counter()
    r = _script("--out", tmp_path / name, *QUIET)  # 500 events: refused long before they are composed
    assert r.returncode == 1 and "name too long" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []
    assert time.perf_counter() - started < 30
    check_name(tmp_path / ("x" * 200 + ".mid"))  # a long name that fits is fine
    assert [p.name for p in files_of(tmp_path / "a.mid")] == [
        "a.mid", "a.wav", "a.png", "a.song.json", "a.mix.ogg", "a.mix.wav", "a.intro.ogg", "a.intro.wav",
        "a.body.ogg", "a.body.wav", "a.cue.json"]  # and the stems there: tests/test_export.py


def test_a_vanishing_temperature_is_the_argmax_and_ends(tmp_path):
    """--temperature 1e-320 used to overflow to NaN probabilities and never end."""
    # the melody alone: the arrangement draws from the seed, the argmax melody does not
    r = _script("--out", tmp_path / "t.mid", "--bars", 4, "--temperature", "1e-320", "--seed", 1, "--tracks", "melody",
                *QUIET, timeout=60)
    assert r.returncode == 0, r.stderr
    a = _script("--out", tmp_path / "a.mid", "--bars", 4, "--temperature", "0", "--seed", 2, "--tracks", "melody",
                *QUIET)
    assert a.returncode == 0 and (tmp_path / "t.mid").read_bytes() == (tmp_path / "a.mid").read_bytes()


def test_another_models_weights_are_refused(tmp_path):
    """Zelda's weights fit Pokemon's network exactly: only the sidecar's sha256 tells them apart."""
    import shutil
    folder = tmp_path / "m"
    shutil.copytree(ROOT / GAME / "weights", folder)
    shutil.copy(ROOT / "zelda_ocarina_of_time" / "weights" / "best.weights.h5", folder / "best.weights.h5")
    r = _script("--model-dir", folder, "--bars", 1, "--out", tmp_path / "x.mid", *QUIET)
    assert r.returncode == 1 and r.stderr.strip() == (
        f"error: {folder / 'best.weights.h5'}: not the weights model.json beside it describes (sha256 differs): "
        "another model's file? Keep a model's folder whole, or train again")
    assert not (tmp_path / "x.mid").exists()
    for game in ("pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "three_games_combined"):
        meta = json.loads((ROOT / game / "weights" / "model.json").read_text())
        assert meta["format"] == 3 and len(meta["weights_sha256"]["best"]) == 64  # every shipped model checked


def test_a_prime_whose_key_moves_notes_past_midi_is_continued(tmp_path):
    """A G major tune at the top of MIDI's range moves up to C major past 127: those notes are left out
    of the context (it used to end in a TypeError traceback)."""
    from vgmusic.encode import Event
    from vgmusic.midi import write_midi
    from vgmusic.predict import read_prime
    from vgmusic.song import Note, Song, Track
    tune = [115, 119, 122, 127, 126, 124, 122, 119, 117, 120, 124, 127, 122, 119, 115, 115]
    write_midi(Song(tracks=[Track([Note(i * 0.5, 0.5, p) for i, p in enumerate(tune * 3)])]), tmp_path / "high.mid")
    prime, enc = read_prime(tmp_path / "high.mid"), Event(key_normalize=True)
    assert enc.song_shift(prime) > 0 and enc.song_tokens(prime) is None
    assert enc.song_tokens(prime, drop_outside=True)
    r = _script("--prime", tmp_path / "high.mid", "--bars", 2, "--seed", 1, "--out", tmp_path / "c.mid", *QUIET)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_a_name_that_is_not_utf8_writes_the_whole_set(tmp_path):
    """A Latin-1 file name: MIDI, WAV, roll, record and page all written (the roll's title used to raise)."""
    folder = os.fsencode(tmp_path)
    out = os.path.join(folder, b"caf\xe9.mid")
    r = subprocess.run([sys.executable, str(SCRIPT), "--bars", "1", "--seed", "1", "--out", out], capture_output=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    names = sorted(os.listdir(folder))
    assert names == sorted([b"caf\xe9.mid", b"caf\xe9.wav", b"caf\xe9.png", b"caf\xe9.song.json", b"index.html"])
    assert b"caf%E9.mid" in open(os.path.join(folder, b"index.html"), "rb").read()


def test_prime_timeout_bounds_reading_the_prime(tmp_path):
    """--prime is read as extraction reads a song, within --prime-timeout (it was a fixed 60 s)."""
    from test_badmidi import hung
    (tmp_path / "hung.mid").write_bytes(hung())
    started = time.perf_counter()
    r = _script("--prime", tmp_path / "hung.mid", "--prime-timeout", 2, "--bars", 1, "--out", tmp_path / "x.mid", *QUIET)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path / 'hung.mid'}: timed out after 2 s"
    assert time.perf_counter() - started < 30 and not (tmp_path / "x.mid").exists()


def test_a_song_without_a_note_is_not_written_and_says_so(tmp_path):
    """Zelda's model at --temperature 0 (the original's argmax), going on from a prime that ends on a long
    note, rests for the whole bar: that used to be written as an empty song with exit status 0. (A song
    from nothing always opens with a note now, decode.open_with_a_note; a primed one goes on as it was.)"""
    from vgmusic.midi import write_midi
    from vgmusic.song import Note, Song, Track
    prime = tmp_path / "prime" / "held.mid"
    prime.parent.mkdir()
    write_midi(Song(tracks=[Track([Note(0, 0.5, 72, 80), Note(0.5, 0.5, 71, 80), Note(1, 8, 72, 80)])]), prime)
    script = ROOT / "zelda_ocarina_of_time" / "predict.py"
    r = subprocess.run([sys.executable, str(script), "--temperature", "0", "--bars", "1", "--prime", str(prime),
                        "--out", str(tmp_path / "t.mid")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: the model wrote no notes in 1 of 1 song(s), not written: t.mid (at "
                                "--temperature 0 a model can repeat a rest forever: try 0.5 or more)")
    assert list(tmp_path.iterdir()) == [prime.parent]
