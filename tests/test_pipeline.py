"""Extract -> train -> predict on real MIDI, through the same entry points a user runs."""
import argparse
import json
import shutil

import mido
import numpy as np
import pytest
from music21 import converter

from conftest import TINY, run_script
from vgmusic import sample, train
from vgmusic.config import PredictConfig, build
from vgmusic.encode import Event, load_songs
from vgmusic.model import stepper


def _train(data, model_dir, game="chorales_a", *extra):
    return train.main(game=game, argv=["--data-dir", str(data), "--model-dir", str(model_dir), *TINY,
                                       "--epochs", "2", *extra])


@pytest.fixture(scope="module")
def trained(corpus_data, tmp_path_factory):
    """The default: event encoding, LSTM."""
    model_dir = tmp_path_factory.mktemp("model")
    _train(corpus_data, model_dir)
    return model_dir


@pytest.fixture(scope="module")
def classic(corpus_data, tmp_path_factory):
    """The original token stream, for the checks against data/vocab.json."""
    model_dir = tmp_path_factory.mktemp("classic")
    _train(corpus_data, model_dir, "chorales_a", "--encoding", "classic")
    return model_dir


def _predict(data, model_dir, out, *extra, game="chorales_a"):
    return sample.main(game=game, argv=["--data-dir", str(data), "--model-dir", str(model_dir),
                                        "--out", str(out), *extra])


def test_checkpoint_describes_itself(trained, classic, corpus_data):
    meta = json.loads((classic / "model.json").read_text())
    vocab = json.loads((corpus_data / "vocab.json").read_text())["classic"]
    assert meta["vocab"] == vocab and meta["encoding"] == {"name": "classic"}
    assert meta["hparams"]["window"] == 25
    meta = json.loads((trained / "model.json").read_text())
    assert meta["encoding"] == {"name": "event", "parts": "melody", "key_normalize": False, "grid": 12}
    assert meta["arch"] == "lstm" and meta["vocab"][0] == "<pad>"
    assert meta["hparams"]["window"] == 75 and meta["hparams"]["units"] == 24
    assert meta["epochs_done"] == 2 and meta["best_epoch"] in (1, 2)
    assert len(meta["songs"]["val"]) == 1 and len(meta["songs"]["train"]) == 3
    rows = (trained / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,val_loss,seconds" and len(rows) == 3
    for name in ("best.weights.h5", "last.weights.h5", "learning_curve.png"):
        assert (trained / name).stat().st_size > 0


@pytest.mark.parametrize("fixture", ["trained", "classic"])
def test_predict_writes_midi_that_parses_back(fixture, request, corpus_data, tmp_path):
    out = _predict(corpus_data, request.getfixturevalue(fixture), tmp_path / "song.mid",
                   "--length", "240", "--seed", "3", "--roll")
    assert (tmp_path / "song.png").read_bytes()[:4] == b"\x89PNG"
    midi = mido.MidiFile(out)
    ons = [m for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert len(ons) > 30
    notes = converter.parse(str(out)).flatten().notes
    assert len(notes) > 30
    offsets = sorted({float(n.offset) for n in notes})
    assert offsets[-1] > 15  # laid out in time, not stacked at offset 0
    assert len({p.midi for n in notes for p in n.pitches}) > 3


def test_same_seed_same_song(trained, corpus_data, tmp_path):
    a = _predict(corpus_data, trained, tmp_path / "a.mid", "--length", "60", "--seed", "7")
    b = _predict(corpus_data, trained, tmp_path / "b.mid", "--length", "60", "--seed", "7")
    c = _predict(corpus_data, trained, tmp_path / "c.mid", "--length", "60", "--seed", "8")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_prime_from_midi_file(trained, corpus_data, corpus_songs, tmp_path):
    prime = corpus_songs / "chorales_b" / "bach_bwv102.7.mid"
    out = _predict(corpus_data, trained, tmp_path / "p.mid", "--prime", str(prime), "--length", "40")
    assert len(converter.parse(str(out)).flatten().notes) > 0


def test_stepwise_state_matches_full_window(trained):
    _, vocab, model = sample.load_model(trained)
    ids = np.random.default_rng(0).integers(0, len(vocab), (2, 30)).astype(np.int32)
    full = model(ids, training=False).numpy()
    start, step = stepper("lstm", model, 75)
    logits, state = start(ids[:, :1])
    steps = [logits.numpy()]
    for t in range(1, ids.shape[1]):
        logits, state = step(ids[:, t], state)
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5)


def test_temperature_zero_is_argmax(classic):
    _, vocab, model = sample.load_model(classic)
    seed = np.arange(25) % len(vocab)
    a = sample.generate("lstm", model, seed, 30, temperature=0, rng_seed=1)
    b = sample.generate("lstm", model, seed, 30, temperature=0, rng_seed=2)
    np.testing.assert_array_equal(a, b)
    logits = model(np.concatenate([seed, a[0, :-1]])[None].astype(np.int32), training=False).numpy()[0]
    np.testing.assert_array_equal(a[0], logits[24:].argmax(-1))


def test_top_k_keeps_to_the_likeliest(classic):
    _, vocab, model = sample.load_model(classic)
    seed = np.arange(25) % len(vocab)
    out = sample.generate("lstm", model, seed, 20, temperature=5.0, top_k=2, rng_seed=0, batch=8)
    ids = np.concatenate([np.tile(seed, (8, 1)), out[:, :-1]], 1).astype(np.int32)
    logits = model(ids, training=False).numpy()[:, 24:]
    top2 = np.argsort(logits, -1)[..., -2:]
    assert all(out[b, t] in top2[b, t] for b in range(8) for t in range(20))
    assert len({tuple(r) for r in out}) > 1  # a batch gives different candidates


def test_resume_continues_epochs(trained, corpus_data, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(trained, folder)
    meta = _train(corpus_data, folder, "chorales_a", "--resume", "--epochs", "3")
    assert meta["epochs_done"] == 3
    assert len((folder / "history.csv").read_text().splitlines()) == 4
    with pytest.raises(SystemExit, match="cannot --resume.*hparams"):
        _train(corpus_data, folder, "chorales_a", "--resume", "--epochs", "4", "--units", "16")


def test_missing_model_fails_with_one_line(corpus_data, tmp_path):
    with pytest.raises(SystemExit, match="no trained model here"):
        _predict(corpus_data, tmp_path / "nothing", tmp_path / "x.mid")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras says which layers it could not fill first
def test_weights_from_another_vocabulary_are_refused(classic, corpus_data, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(classic, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["vocab"] = meta["vocab"][:-3]
    from vgmusic.store import tokens_hash
    meta["vocab_hash"] = tokens_hash(meta["vocab"])
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="weights do not fit the vocabulary"):
        _predict(corpus_data, folder, tmp_path / "x.mid")


def test_model_from_other_data_is_refused(classic, corpus_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(corpus_data, data)
    vocab = json.loads((data / "vocab.json").read_text())
    vocab["classic"].append("C9")
    (data / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(SystemExit, match="another vocabulary"):
        _predict(data, classic, tmp_path / "x.mid")


@pytest.mark.parametrize("arch", ["bilstm", "attention", "transformer"])
def test_other_architectures_train_and_compose(arch, corpus_data, tmp_path):
    meta = _train(corpus_data, tmp_path / arch, "chorales_a", "--arch", arch, "--window", "48", "--epochs", "1",
                  "--heads", "2", "--layers", "1")
    assert meta["arch"] == arch and meta["epochs_done"] == 1
    out = _predict(corpus_data, tmp_path / arch, tmp_path / "o.mid", "--length", "60", "--seed", "2")
    assert len(mido.MidiFile(out).tracks[0]) > 3


def test_window_models_sample_what_they_would_predict(corpus_data, tmp_path):
    """The compiled window sampler gives the same tokens as re-running the model by hand."""
    _train(corpus_data, tmp_path / "t", "chorales_a", "--arch", "transformer", "--window", "32", "--epochs", "1",
           "--heads", "2", "--layers", "1")
    _, vocab, model = sample.load_model(tmp_path / "t")
    seed = np.random.default_rng(1).integers(1, len(vocab), 32)
    out = sample.generate("transformer", model, seed, 12, temperature=0, window=32)[0]
    buf = list(seed)
    for token in out:
        expected = model(np.array([buf[-32:]], np.int32), training=False).numpy()[0, -1].argmax()
        assert token == expected
        buf.append(token)


def test_key_normalised_model_composes_in_the_seed_key(corpus_data, tmp_path):
    _train(corpus_data, tmp_path / "k", "chorales_a", "--key-normalize", "--transpose", "2", "--parts", "all",
           "--epochs", "1")
    meta = json.loads((tmp_path / "k" / "model.json").read_text())
    assert meta["encoding"]["key_normalize"] and meta["training"]["transpose"] == 2
    cfg = build(PredictConfig, argparse.Namespace(), model_dir=str(tmp_path / "k"), data_dir=str(corpus_data),
                out=str(tmp_path / "k.mid"), length=150, seed=0)
    out, tokens, notes, source = sample.compose(cfg, "chorales_a")
    song = next(s for s in load_songs(corpus_data, "chorales_a") if s["file"] == source)
    shift = Event(key_normalize=True).song_shift(song)
    assert shift != 0  # these chorales are not all in C / A minor
    assert notes == [[n[0], n[1], n[2] - shift] for n in Event().decode(tokens)]
    written = {p.midi for n in converter.parse(str(out)).flatten().notes for p in n.pitches}
    assert written == {n[2] for n in notes}


def test_classic_cannot_be_transposed(corpus_data, tmp_path):
    with pytest.raises(SystemExit, match="need --encoding event"):
        _train(corpus_data, tmp_path / "c", "chorales_a", "--encoding", "classic", "--transpose", "2")


def test_scripts_end_to_end_on_original_songs(shared_songs, tmp_path):
    """get_all_notes.py, train.py and predict.py run from another directory on the 46 songs."""
    data, model = tmp_path / "data", tmp_path / "model"
    r = run_script("get_all_notes.py", "--songs-dir", shared_songs, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "pokemon_red_blue_yellow: 16 songs" in r.stdout
    r = run_script("pokemon_red_blue_yellow/train.py", "--data-dir", data, "--model-dir", model, *TINY,
                   "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Bicycle Ride_edited.mid, Pallet Town_edited.mid" in r.stdout
    assert "oneDNN" not in r.stderr and "cuda" not in r.stderr.lower()
    out = tmp_path / "gen.mid"
    r = run_script("pokemon_red_blue_yellow/predict.py", "--data-dir", data, "--model-dir", model,
                   "--out", out, "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(converter.parse(str(out)).flatten().notes) > 100


def test_ctrl_c_leaves_best_weights_usable(corpus_data, tmp_path):
    """SIGINT mid-training: the process ends with code 130 and predict works from what was saved."""
    import signal
    import subprocess
    import sys
    import time
    from conftest import ROOT
    model = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "vgmusic", "train", "--game", "chorales_a",
                             "--data-dir", str(corpus_data), "--model-dir", str(model), *TINY,
                             "--epochs", "1000", "--patience", "1000"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (model / "history.csv").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: best weights" in out
    meta = json.loads((model / "model.json").read_text())
    assert 1 <= meta["best_epoch"] <= meta["epochs_done"] < 1000
    _predict(corpus_data, model, tmp_path / "after.mid", "--length", "30")
    assert (tmp_path / "after.mid").stat().st_size > 0


def test_help_lists_every_flag(tmp_path):
    r = run_script("three_games_combined/train.py", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for flag in ("--epochs", "--batch-size", "--seed", "--resume", "--window", "--val-songs"):
        assert flag in r.stdout
