"""Extract -> train -> predict on real MIDI, through the same entry points a user runs."""
import argparse
import json
import shutil
import subprocess
import sys

import mido
import numpy as np
import pytest
from music21 import converter

from conftest import ROOT, TINY, run_script
from vgmusic import predict, train
from vgmusic.cli import build
from vgmusic.compose import compose, load_model
from vgmusic.config import PredictConfig
from vgmusic.encode import Event
from vgmusic.sampling import pick
from vgmusic.song import Note, Song, Track


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
    # audio, rolls and the page have tests of their own; here they would only cost time
    return predict.main(game=game, argv=["--data-dir", str(data), "--model-dir", str(model_dir), "--no-audio",
                                         "--no-roll", "--no-page", "--out", str(out), *map(str, extra)])[0]


def _onsets(path):
    """(onset in beats, pitch) of every note of a MIDI file, read with mido."""
    midi = mido.MidiFile(path)
    now, out = 0, []
    for msg in mido.merge_tracks(midi.tracks):
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            out.append((now / midi.ticks_per_beat, msg.note))
    return out, now / midi.ticks_per_beat


def test_checkpoint_describes_itself(trained, classic, corpus_data):
    meta = json.loads((classic / "model.json").read_text())
    vocab = json.loads((corpus_data / "vocab.json").read_text())["classic"]
    assert meta["vocab"] == vocab and meta["encoding"] == {"name": "classic"}
    assert meta["hparams"]["window"] == 25
    meta = json.loads((trained / "model.json").read_text())
    assert meta["encoding"] == {"name": "event", "parts": "melody", "key_normalize": True, "grid": 12, "reserved": 32}
    # the control tokens come after every note token: the ids of a model without them are unchanged
    assert meta["arch"] == "lstm" and meta["vocab"][0] == "<pad>" and len(meta["vocab"]) == 191 + 32
    assert meta["vocab"][191:] == [f"<ctl{i}>" for i in range(32)]
    assert meta["hparams"]["window"] == 75 and meta["hparams"]["units"] == 24
    assert meta["training"]["transpose"] == 0
    assert meta["epochs_done"] == 2 and meta["best_epoch"] in (1, 2)
    assert len(meta["songs"]["val"]) == 1 and len(meta["songs"]["train"]) == 3
    assert 40 < meta["tempo"] < 200 and meta["versions"]["vgmusic"].startswith("0.")
    rows = (trained / "history.csv").read_text().splitlines()
    # the held-out loss split by what each target token says
    assert rows[0] == "epoch,loss,val_loss,seconds,val_duration,val_pitch,val_wait" and len(rows) == 3
    assert all(float(v) > 0 for v in rows[1].split(",")[4:])
    for name in ("best.weights.h5", "last.weights.h5", "learning_curve.png"):
        assert (trained / name).stat().st_size > 0


@pytest.mark.parametrize("fixture", ["trained", "classic"])
def test_predict_writes_midi_that_parses_back(fixture, request, corpus_data, corpus_songs, tmp_path):
    # the classic tokens have no start-of-song token: a classic model continues a prime
    prime = ["--prime", corpus_songs / "chorales_b" / "bach_bwv102.7.mid"] if fixture == "classic" else []
    out = _predict(corpus_data, request.getfixturevalue(fixture), tmp_path / "song.mid",
                   "--length", "80", "--seed", "3", "--roll", *prime)
    assert (tmp_path / "song.png").read_bytes()[:4] == b"\x89PNG"
    midi = mido.MidiFile(out)
    ons = [m for m in mido.merge_tracks(midi.tracks) if m.type == "note_on" and m.velocity > 0]
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


def test_songs_are_whole_phrases_that_repeat_in_form(trained, tmp_path):
    """Without any songs on the machine (as with a shipped model), a song starts from the model itself,
    ends on a bar line, and a repeated letter of the form repeats its phrase."""
    out = _predict(tmp_path / "no-data-here", trained, tmp_path / "s.mid", "--length", "40", "--seed", "4",
                   "--form", "AAB", "--phrase-bars", "2", "--tracks", "melody")  # the form is the melody's
    notes, end = _onsets(out)
    assert end % 8 == 0 and end >= 24  # whole 2-bar phrases, at least one pass through the form

    def phrase(k):
        return sorted((round(t - 8 * k, 4), p) for t, p in notes if 8 * k <= t < 8 * k + 8)
    assert phrase(0) and phrase(0) == phrase(1) != phrase(2)


def test_predict_warns_when_a_song_copies_its_training_songs(trained, corpus_data):
    meta = json.loads((trained / "model.json").read_text())
    baseline = meta["baselines"]["copied_share"]  # how much held-out chorales share with the training ones
    assert 0 <= baseline < 0.5
    from vgmusic.encode import load_songs
    song = next(s for s in load_songs(corpus_data, "chorales_a") if s.meta["file"] == meta["songs"]["train"][0][1])
    copy = Song(tracks=[Track(Event().song_notes(song), role="melody")])
    warning = predict.copy_warning(copy, meta, corpus_data)
    assert warning.startswith("warning: 100% of this song's 8-note runs are in the training songs")
    own = Song(tracks=[Track([Note(i * 0.5, 0.5, 60 + (i * 7) % 12) for i in range(40)])])  # a tune of its own
    assert predict.copy_warning(own, meta, corpus_data) is None
    assert predict.copy_warning(copy, meta, corpus_data.parent / "elsewhere") is None  # no songs: no check


@pytest.mark.parametrize("game", train.SHIPPED)
def test_shipped_models_compose_without_any_songs(game, tmp_path):
    """What a new user runs first: the committed model of each game folder, no songs, no data/."""
    import h5py
    from vgmusic.checkpoint import read_sidecar
    folder = ROOT / game / "weights"
    meta, vocab = read_sidecar(folder)
    assert meta["game"] == game and meta["encoding"]["key_normalize"] and meta["training"]["diatonic"] == 2
    assert meta["songs"]["train"] and meta["versions"]["vgmusic"] and meta["created"]
    weights = folder / "best.weights.h5"
    assert weights.stat().st_size < 5_000_000
    with h5py.File(weights) as f:
        assert "optimizer" not in f  # composing needs no optimizer state
    out = predict.main(game=game, argv=["--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "s.mid"),
                                        "--length", "40", "--seed", "1", "--no-audio", "--no-roll", "--no-page"])[0]
    notes, end = _onsets(out)
    assert len(notes) >= 40 and end % 16 == 0  # whole 4-bar phrases
    song = Song.from_json(json.loads(out.with_suffix(".song.json").read_text())["song"])
    melody = song.melody().notes
    assert song.melody().role == "melody" and len({n.pitch % 12 for n in melody}) <= 9  # in a key, not all twelve
    # and the arrangement in the key it was harmonised in: its chords borrow (bVII, iv) and its bass
    # approaches, but most of what sounds is the key's own scale
    tonic, mode = song.key.tonic, song.key.mode
    scale = {(tonic + d) % 12 for d in ((0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10))}
    pitched = song.notes()
    assert sum(n.duration for n in pitched if n.pitch % 12 in scale) >= 0.75 * sum(n.duration for n in pitched)


def test_prime_from_midi_file(trained, corpus_data, corpus_songs, tmp_path):
    prime = corpus_songs / "chorales_b" / "bach_bwv102.7.mid"
    out = _predict(corpus_data, trained, tmp_path / "p.mid", "--prime", str(prime), "--length", "40")
    assert len(converter.parse(str(out)).flatten().notes) > 0


def test_temperature_zero_is_argmax(classic, corpus_data, corpus_songs, tmp_path):
    """The original's decoding: the seed no longer matters, each token is the likeliest."""
    prime = corpus_songs / "chorales_b" / "bach_bwv102.7.mid"
    a = _predict(corpus_data, classic, tmp_path / "a.mid", "--prime", prime, "--temperature", "0", "--seed", "1",
                 "--length", "30", "--tracks", "melody")  # the arrangement draws from the seed
    b = _predict(corpus_data, classic, tmp_path / "b.mid", "--prime", prime, "--temperature", "0", "--seed", "2",
                 "--length", "30", "--tracks", "melody")
    assert a.read_bytes() == b.read_bytes()
    model = load_model(classic)
    logits = model.make_stepper(1).start((np.arange(25) % len(model.vocab))[None])
    assert pick(logits, np.random.default_rng(0), temperature=0)[0] == logits[0].argmax()


def test_top_k_and_top_p_keep_to_the_likeliest(trained):
    logits = load_model(trained).make_stepper(1).start(np.zeros((1, 75), np.int64))
    logits = np.repeat(logits, 400, 0)
    order = np.argsort(-logits[0])
    rng = np.random.default_rng(0)
    hot = pick(logits, rng, temperature=5.0, top_k=2)
    assert set(hot) == set(order[:2])  # both, and only those
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    nucleus = order[:np.searchsorted(np.cumsum(p[order]), 0.6) + 1]
    assert set(pick(logits, rng, top_p=0.6)) <= set(nucleus)
    assert len(set(pick(logits, rng))) > len(nucleus)  # without it, the tail is reachable


def test_resume_continues_epochs(trained, corpus_data, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(trained, folder)
    meta = _train(corpus_data, folder, "chorales_a", "--resume", "--epochs", "3")
    assert meta["epochs_done"] == 3
    assert len((folder / "history.csv").read_text().splitlines()) == 4
    import hashlib
    assert meta["weights_sha256"] == {w: hashlib.sha256((folder / f"{w}.weights.h5").read_bytes()).hexdigest()
                                      for w in ("best", "last")}
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    shutil.copy(folder / "best.weights.h5", other / "last.weights.h5")  # a file the sidecar does not describe
    with pytest.raises(SystemExit, match="last.weights.h5: not the weights model.json beside it describes"):
        _train(corpus_data, other, "chorales_a", "--resume", "--epochs", "4")
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
    with pytest.raises(SystemExit, match="best.weights.h5: weights do not fit the lstm network of 35 tokens"):
        _predict(corpus_data, folder, tmp_path / "x.mid")


def _same_song_on_both_engines(model_dir, game, tmp_path, **settings):
    songs = []
    for engine in ("numpy", "keras"):
        cfg = build(PredictConfig, argparse.Namespace(), model_dir=str(model_dir), data_dir=str(tmp_path / "none"),
                    out=str(tmp_path / f"{engine}.mid"), seed=5, **settings)
        songs.append(compose(load_model(model_dir, engine=engine), predict.request_of(cfg))[0])
    assert songs[0].meta["tokens"] == songs[1].meta["tokens"] and len(songs[0].meta["tokens"]) > 20
    assert songs[0].notes() == songs[1].notes()


def test_same_seed_same_song_on_numpy_and_keras(trained, tmp_path):
    _same_song_on_both_engines(trained, "chorales_a", tmp_path, length=40)


@pytest.mark.parametrize("arch", ["bilstm", "attention", "transformer"])
def test_other_architectures_train_and_compose(arch, corpus_data, tmp_path):
    meta = _train(corpus_data, tmp_path / arch, "chorales_a", "--arch", arch, "--window", "48", "--epochs", "1",
                  "--heads", "2", "--layers", "1")
    assert meta["arch"] == arch and meta["epochs_done"] == 1
    out = _predict(corpus_data, tmp_path / arch, tmp_path / "o.mid", "--length", "60", "--seed", "2")
    assert len(mido.MidiFile(out).tracks[1]) > 3
    # the NumPy engine composes what the Keras model would, token for token
    _same_song_on_both_engines(tmp_path / arch, "chorales_a", tmp_path, length=12, phrase_bars=1)


def test_composing_never_imports_tensorflow(trained, tmp_path):
    code = ("import sys; from vgmusic.predict import main; "
            f"main(game='chorales_a', argv=['--model-dir', {str(trained)!r}, '--out', {str(tmp_path / 'x.mid')!r}, "
            "'--length', '30']); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "sys.exit(f'imported {bad[:3]}' if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.mid").stat().st_size > 0


def test_key_normalised_model_composes_in_the_prime_key(corpus_data, corpus_songs, tmp_path):
    _train(corpus_data, tmp_path / "k", "chorales_a", "--transpose", "2", "--tracks", "all", "--epochs", "1")
    meta = json.loads((tmp_path / "k" / "model.json").read_text())
    assert meta["encoding"]["key_normalize"] and meta["training"]["transpose"] == 2
    prime = corpus_songs / "chorales_b" / "bach_bwv103.6.mid"
    cfg = build(PredictConfig, argparse.Namespace(), model_dir=str(tmp_path / "k"), data_dir=str(corpus_data),
                out=str(tmp_path / "k.mid"), length=60, seed=0, prime=str(prime), audio=False, roll=False, page=False)
    (song,) = compose(load_model(tmp_path / "k"), predict.request_of(cfg, predict.read_prime(prime)))
    tokens, notes = song.meta["tokens"], song.notes()
    from vgmusic.parse import parse_midi
    shift = Event(key_normalize=True).song_shift(Song.from_json(parse_midi(prime)["song"]))
    assert shift != 0  # this chorale is not in C / A minor
    end = sum(Event().advance(t) for t in tokens) / 12
    assert end % 4 == 0 and song.end == end  # whole bars
    decoded = [Note(n[0], min(n[1], end - n[0]), n[2] - shift) for n in Event().decode(tokens) if 0 <= n[2] - shift <= 127]
    assert notes == sorted(Track(decoded).playable())
    written = []
    predict.write_songs(cfg, "chorales_a", [song], [tmp_path / "k.mid"], written)
    out = written[0][0]
    pitches = {p.midi for n in converter.parse(str(out)).flatten().notes for p in n.pitches}
    assert pitches == {n[2] for n in notes}


def test_a_song_in_twice_is_trained_on_once(corpus_data, capsys):
    from vgmusic.encode import load_songs
    songs = load_songs(corpus_data, "chorales_a")
    copy = Song.from_json(json.loads(json.dumps(songs[0].to_json())))
    copy.meta = dict(songs[0].meta, file="copy.mid")
    melody = copy.melody()
    melody.notes[3] = melody.notes[3]._replace(pitch=melody.notes[3].pitch + 1)  # a near-copy: one note differs
    assert train.distinct(songs + [copy], Event()) == songs
    assert "copy.mid repeats " + songs[0].meta["file"] in capsys.readouterr().err
    assert train.distinct(songs, Event()) == songs  # different chorales all stay


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
    assert len(converter.parse(str(out)).flatten().notes) >= 500


def test_ctrl_c_leaves_best_weights_usable(corpus_data, tmp_path):
    """SIGINT mid-training: the process ends with code 130 and predict works from what was saved."""
    import signal
    import time
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
    assert "interrupted: best weights" in err
    meta = json.loads((model / "model.json").read_text())
    assert 1 <= meta["best_epoch"] <= meta["epochs_done"] < 1000
    _predict(corpus_data, model, tmp_path / "after.mid", "--length", "30")
    assert (tmp_path / "after.mid").stat().st_size > 0


def test_help_lists_every_flag(tmp_path):
    r = run_script("three_games_combined/train.py", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for flag in ("--epochs", "--batch-size", "--seed", "--resume", "--window", "--val-songs"):
        assert flag in r.stdout
