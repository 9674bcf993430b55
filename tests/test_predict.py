"""predict.py's controls, each by its effect on the song written, and its refusals, with the shipped
Final Fantasy VII model (NumPy, no TensorFlow, no songs needed)."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import mido
import numpy as np
import pytest

from conftest import ROOT
from vgmusic import predict
from vgmusic.cli import build
from vgmusic.compose import compose, load_model
from vgmusic.config import PredictConfig
from vgmusic.decode import decode
from vgmusic.ensembles import ENSEMBLES
from vgmusic.form import FormPlan
from vgmusic.loop import BAR
from vgmusic.sampling import Sampling, log_probs
from vgmusic.theory import ROLES, parse_key

GAME = "final_fantasy_7"
SCRIPT = ROOT / GAME / "predict.py"


def _run(tmp_path, *flags, name="s.mid", extra=("--no-audio", "--no-roll", "--no-page")):
    """predict.main in this process: the MIDI paths written."""
    return predict.main(game=GAME, argv=["--data-dir", str(tmp_path / "no-data"), "--out", str(tmp_path / name),
                                         *extra, *map(str, flags)])


def _script(*flags, timeout=120, **kw):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, flags)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


def _compose(**settings):
    """Songs as predict.py composes them (its defaults), in this process."""
    cfg = build(PredictConfig, argparse.Namespace(), **settings)
    return compose(load_model(ROOT / GAME / "weights"), predict.request_of(cfg))


def _notes(path):
    """(onset beats, pitch) of each note, the song's end in beats, its tempo and programs."""
    midi = mido.MidiFile(path)
    now, notes, tempo, programs = 0, [], None, set()
    for msg in mido.merge_tracks(midi.tracks):
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            notes.append((now / midi.ticks_per_beat, msg.note))
        elif msg.type == "set_tempo":
            tempo = mido.tempo2bpm(msg.tempo)
        elif msg.type == "program_change":
            programs.add(msg.program)
    return notes, now / midi.ticks_per_beat, tempo, programs


@pytest.mark.parametrize("bars", [1, 3, 9])
def test_bars_gives_exactly_that_many_bars(bars, tmp_path):
    (out,) = _run(tmp_path, "--bars", bars, "--seed", 2)
    notes, end, _, _ = _notes(out)
    assert end == 4 * bars and notes and all(t < end for t, _ in notes)
    assert mido.MidiFile(out).length == pytest.approx(end * 60 / _notes(out)[2])


def test_seconds_round_to_whole_bars_at_the_tempo(tmp_path):
    (out,) = _run(tmp_path, "--seconds", 21, "--bpm", 120, "--seed", 1)  # 10.5 bars -> 10 (round half to even)
    assert mido.MidiFile(out).length == pytest.approx(20.0)
    (out,) = _run(tmp_path, "--seconds", 30, "--bpm", 90, "--seed", 1, name="b.mid")  # 11.25 bars -> 11
    assert _notes(out)[1] == 44 and _notes(out)[2] == pytest.approx(90)


def test_length_counts_events_and_ends_on_a_bar_line(tmp_path):
    (out,) = _run(tmp_path, "--length", 120, "--seed", 3)
    (song,) = _compose(length=120, seed=3)
    assert song.meta["events"] >= 120 and _notes(out)[1] % 16 == 0 and song.end == _notes(out)[1]


def test_num_writes_distinct_songs_in_one_batch_and_the_seed_repeats_them(tmp_path):
    first = _run(tmp_path, "--num", 3, "--bars", 4, "--seed", 11, name="a.mid")
    again = _run(tmp_path, "--num", 3, "--bars", 4, "--seed", 11, name="b.mid")
    assert [p.name for p in first] == ["a-1.mid", "a-2.mid", "a-3.mid"]
    songs = [p.read_bytes() for p in first]
    assert len(set(songs)) == 3 and songs == [p.read_bytes() for p in again]
    records = [json.loads(p.with_suffix(".song.json").read_text()) for p in first]
    assert [r["index"] for r in records] == [1, 2, 3] and {r["seed"] for r in records} == {11}
    assert all(r["bars"] == 4 and r["settings"]["num"] == 3 for r in records)


def test_bpm_and_instrument(tmp_path):
    (out,) = _run(tmp_path, "--bars", 2, "--bpm", 96.5, "--instrument", "flute", "--tracks", "melody", "--seed", 1)
    _, _, tempo, programs = _notes(out)
    assert tempo == pytest.approx(96.5, abs=0.01) and programs == {73}
    (out,) = _run(tmp_path, "--bars", 2, "--instrument", "square lead", "--tracks", "melody", "--seed", 1,
                  name="b.mid")
    assert _notes(out)[3] == {80}
    (out,) = _run(tmp_path, "--bars", 2, "--instrument", 33, "--tracks", "melody", "--seed", 1, name="c.mid")
    assert _notes(out)[3] == {33}


def test_an_arrangement_by_default_each_track_its_own_channel_and_instrument(tmp_path):
    """The default is the game's ensemble (16bit for Final Fantasy VII) playing melody, harmony, bass and
    drums; --instrument TRACK=NAME changes one track's program and nothing else; --tracks chooses the parts."""
    (full,) = _run(tmp_path, "--bars", 4, "--seed", 2, name="full.mid")
    (other,) = _run(tmp_path, "--bars", 4, "--seed", 2, "--instrument", "bass=fretless bass", "flute", name="o.mid")
    (trio,) = _run(tmp_path, "--bars", 4, "--seed", 2, "--tracks", "melody", "bass", "drums", name="trio.mid")

    def tracks(path):
        out = []
        for track in mido.MidiFile(path).tracks[1:]:  # the conductor first
            notes = [(m.channel, m.note) for m in track if m.type == "note_on" and m.velocity]
            programs = {m.program for m in track if m.type == "program_change"}
            out.append((track.name, {c for c, _ in notes}, programs, [n for _, n in notes]))
        return out
    a, b, c = tracks(full), tracks(other), tracks(trio)
    sixteen = ENSEMBLES["16bit"].parts  # each track named by its part's instrument
    assert [t[0] for t in a] == [sixteen[r].name for r in ROLES] and all(t[3] for t in a)
    assert [t[1] for t in a] == [{0}, {1}, {2}, {9}]  # drums on channel 10
    record = json.loads(full.with_suffix(".song.json").read_text())
    assert record["settings"]["ensemble"] == "16bit" and record["song"]["meta"]["arrangement"]["ensemble"] == "16bit"
    assert [t[2] for t in b][:3] == [{73}, a[1][2], {35}] and [t[3] for t in b] == [t[3] for t in a]
    assert [t[0] for t in c] == [sixteen[r].name for r in ("melody", "bass", "drums")] and c[0][3] == a[0][3]


@pytest.mark.parametrize("key", ["D major", "Bb", "E minor", "F# minor"])
def test_key_moves_the_song_and_nothing_else(key, tmp_path):
    (plain,) = _run(tmp_path, "--bars", 8, "--seed", 5, "--tracks", "melody", name="plain.mid")
    (moved,) = _run(tmp_path, "--bars", 8, "--seed", 5, "--key", key, "--tracks", "melody", name="moved.mid")
    a, b = _notes(plain)[0], _notes(moved)[0]
    shifts = {q - p for (_, p), (_, q) in zip(a, b)}
    assert len(a) == len(b) and [t for t, _ in a] == [t for t, _ in b] and len(shifts) == 1
    assert abs(shifts.pop()) <= 6  # the nearer way
    record = json.loads(moved.with_suffix(".song.json").read_text())
    wanted, wanted_mode = parse_key(key)
    reached, mode = parse_key(record["key"])
    # the song keeps its mode: in the key asked for, or in its relative key, which has the same notes
    relative = wanted if mode == wanted_mode else (wanted + (3 if wanted_mode == "minor" else -3)) % 12
    assert reached == relative


def test_top_k_beyond_the_vocabulary_keeps_every_token(tmp_path):
    (wide,) = _run(tmp_path, "--bars", 4, "--seed", 6, "--top-k", 10000, name="k.mid")
    (plain,) = _run(tmp_path, "--bars", 4, "--seed", 6, name="plain.mid")
    assert wide.read_bytes() == plain.read_bytes()


def test_top_p_and_temperature_narrow_the_choice(tmp_path):
    def pitches(*flags, name):
        (out,) = _run(tmp_path, "--bars", 16, "--seed", 4, *flags, name=name)
        return len({p for _, p in _notes(out)[0]})
    assert pitches("--top-p", 0.2, name="narrow.mid") < pitches("--top-p", 1, name="wide.mid")
    assert pitches("--temperature", 0.2, "--top-p", 1, name="cold.mid") < pitches("--temperature", 1.5, "--top-p", 1,
                                                                                  name="hot.mid")


def test_loop_figures_are_the_models_own_loss(tmp_path):
    """The seam figures printed are what the network says: recomputed here token by token."""
    songs = _compose(bars=8, loop=True, seed=3, num=2, loop_candidates=4)
    model = load_model(ROOT / GAME / "weights")
    meta, vocab, make_stepper, enc = model.meta, model.vocab, model.make_stepper, model.enc
    for song in songs:
        loop, ids = song.meta["loop"], vocab.ids(song.meta["tokens"])
        assert song.end == 32 and song.loop == (0, 32) and loop["passed"] == (loop["seam_loss"] <= loop["typical_loss"])
        opening, now = [], 0
        for t in ids:  # the song's first bar
            if now >= BAR:
                break
            opening.append(t)
            now += enc.advance(vocab.tokens[t])
        # the start of a song, the preroll the song continues, the song, then its first bar again
        stepper = make_stepper(1)
        logits = stepper.start(vocab.ids(["<pad>"] * meta["hparams"]["window"]))
        for t in vocab.ids(song.meta["preroll"]):
            logits = stepper.step([t])
        bars, now = {}, 0
        for t in ids:
            bars.setdefault(now // BAR, []).append(-log_probs(logits)[0, t])
            now += enc.advance(vocab.tokens[t])
            logits = stepper.step([t])
        seam = []
        for t in opening:
            seam.append(-log_probs(logits)[0, t])
            logits = stepper.step([t])
        assert len(bars) == 8
        assert np.mean(seam) == pytest.approx(loop["seam_loss"], abs=1e-4)
        assert np.median([np.mean(v) for v in bars.values()]) == pytest.approx(loop["typical_loss"], abs=1e-4)


def test_chosen_last_bars_close_loops_better_than_the_songs_own(tmp_path):
    from vgmusic.loop import close_loops, cut_at
    model = load_model(ROOT / GAME / "weights")
    vocab, make_stepper, enc, seed = model.vocab, model.make_stepper, model.enc, model.start_ids()
    rng, sampling = np.random.default_rng(0), Sampling(top_p=0.85)
    rows = [FormPlan(enc, vocab, "AA'BA'", 4, 0, bars=8, preroll=4) for _ in range(8)]
    stepper = make_stepper(8)
    decode(stepper, stepper.start(np.tile(seed[None], (8, 1))), rows, rng, sampling, model.banned)
    own = close_loops(make_stepper, enc, vocab, seed, rows, rng, sampling, model.banned, keep=True)
    chosen = close_loops(make_stepper, enc, vocab, seed, rows, rng, sampling, model.banned, candidates=16)
    assert [o["tokens"] for o in own] == [r.song for r in rows]  # kept: the songs as they are
    assert sum(c["tokens"] != r.song for c, r in zip(chosen, rows)) >= 6  # new last bars
    for c, r in zip(chosen, rows):  # only the last bar is new
        cut = cut_at(enc, vocab, r.song, r.length - BAR)
        assert c["tokens"][:cut] == r.song[:cut] and sum(enc.advance(vocab.tokens[t]) for t in c["tokens"]) == r.length
    margin = [[f["seam_loss"] - f["typical_loss"] for f in found] for found in (own, chosen)]
    assert sum(f["passed"] for f in chosen) > sum(f["passed"] for f in own) and np.mean(margin[1]) < np.mean(margin[0])


def test_loop_writes_whole_bars_and_prints_both_figures(tmp_path):
    r = _script("--num", 2, "--bars", 8, "--loop", "--bpm", 120, "--seed", 7, "--out", tmp_path / "l.mid",
                "--no-audio", "--no-roll", "--no-page", "--data-dir", tmp_path / "none")
    assert r.returncode == 0, r.stderr
    seams = [line for line in r.stdout.splitlines() if line.strip().startswith("loop seam:")]
    assert len(seams) == 2 and all("nats/token" in s and "(median)" in s for s in seams)
    for i in (1, 2):
        assert mido.MidiFile(tmp_path / f"l-{i}.mid").length == pytest.approx(16.0)
        record = json.loads((tmp_path / f"l-{i}.song.json").read_text())
        assert set(record["loop"]) >= {"seam_loss", "typical_loss", "passed", "tries"}


BAD_FLAGS = [("--length", "0"), ("--length", "-5"), ("--top-k", "-3"), ("--top-p", "0"), ("--top-p", "1.5"),
             ("--temperature", "-1"), ("--temperature", "nan"), ("--bpm", "1e9"), ("--bpm", "nan"),
             ("--bpm", "2"), ("--bars", "-1"), ("--seconds", "inf"), ("--num", "0"), ("--seed", "-2"),
             ("--instrument", "kazoo"), ("--instrument", "200"), ("--key", "H minor"), ("--which", "first"),
             ("--phrase-bars", "0"), ("--loop-candidates", "0")]


@pytest.mark.parametrize("flag,value", BAD_FLAGS)
def test_bad_flag_values_are_refused_in_one_line(flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        predict.main(game=GAME, argv=[flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and f"argument {flag}: " in err, err


def test_conflicting_and_impossible_requests(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        predict.main(game=GAME, argv=["--bars", "4", "--seconds", "8"])
    assert e.value.code == 2 and "not both" in capsys.readouterr().err
    r = _script("--out", tmp_path, "--bars", 1)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path}: is a folder; give a file name for the song"
    r = _script("--prime", tmp_path / "nope.mid", "--out", tmp_path / "x.mid")
    assert r.returncode == 1 and "--prime file not found" in r.stderr and "Traceback" not in r.stderr


def _mount(tmp_path, name, options):
    folder = tmp_path / name
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a small tmpfs")
    return folder


def test_full_disk_and_read_only_folder(tmp_path):
    full = _mount(tmp_path, "full", "size=64k")
    try:
        r = _script("--num", 3, "--bars", 64, "--out", full / "s.mid", "--seed", 1, "--no-page",
                    "--data-dir", tmp_path / "none")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        line = r.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {full}/") and line.endswith("No space left on device (ENOSPC)")
        assert not [p for p in full.iterdir() if p.name.startswith(".")]  # no temporary file left
    finally:
        subprocess.run(["umount", str(full)])
    read_only = _mount(tmp_path, "ro", "ro,size=64k")
    try:
        r = _script("--out", read_only / "s.mid", "--bars", 1)
        assert r.returncode == 1 and r.stderr.strip().endswith("is not writable") and "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", str(read_only)])


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_one_line_and_no_partial_file(sig, code, tmp_path):
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--length", "100000", "--out", str(tmp_path / "x.mid"),
                             "--data-dir", str(tmp_path / "none")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # composing: 100,000 events take minutes
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "Traceback" not in err
    assert err.strip() == "interrupted: no song was written" and os.listdir(tmp_path) == []


def test_a_loop_writes_a_stem_per_track_that_sums_to_the_mix(tmp_path):
    """--loop of an arrangement: NAME.stem-TRACK.wav beside NAME.wav, sample-aligned, each with the loop's
    smpl chunk, at the mix's gain, so that the stems add up to the mix (to the rounding of each)."""
    import wave
    from vgmusic.wavloop import read_wav
    (out,) = _run(tmp_path, "--bars", 2, "--loop", "--seed", 3, extra=("--no-roll", "--no-page"))

    def samples(path):
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 44100)
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int64)
    mix = samples(out.with_suffix(".wav"))
    stems = {r: samples(out.with_suffix(f".stem-{r}.wav")) for r in ROLES}
    assert all(len(s) == len(mix) for s in stems.values()) and all(np.abs(s).max() > 0 for s in stems.values())
    assert np.abs(sum(stems.values()) - mix).max() <= len(stems)  # each rounded once
    info = read_wav(out.with_suffix(".stem-bass.wav"))
    assert info["loops"] == [(0, 0, len(mix) // 2 - 1)]  # forward, the whole song: its first frame to its last
    (plain,) = _run(tmp_path, "--bars", 2, "--seed", 3, name="plain.mid", extra=("--no-roll", "--no-page"))
    assert not list(tmp_path.glob("plain.stem-*"))  # a song that does not loop: the mix alone
