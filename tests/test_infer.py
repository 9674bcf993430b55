"""The NumPy forward pass (vgmusic.infer) against the Keras models it stands in for, on real songs.

Every architecture of the registry (vgmusic.nets) is built by its Keras definition, trained a few real
steps on Bach chorales, saved with save_compose_weights, and read back by NumpyNet; its probabilities
must equal Keras' own. rotary's key/value cache is held to Keras 40 tokens past its window, batched and
expanded, and rotary trains and composes through train.py and predict.py.
"""
import argparse
import math
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT, TINY
from vgmusic.cli import build
from vgmusic.compose import compose, load_model
from vgmusic.config import PredictConfig
from vgmusic.encode import PAD, Event, Vocab, load_songs, windows
from vgmusic import nets, predict, train
from vgmusic.infer import NumpyNet, erf, gelu, softmax
from vgmusic.model import build_model, keras, keras_stepper, many_to_many, save_compose_weights
from vgmusic.nets import layers

ARCHS = tuple(nets.ARCHS)
# TINY's sizes (conftest.py), with a short window so the bidirectional re-runs stay quick
HPARAMS = {"window": 16, "embed_dim": 8, "units": 24, "layers": 2, "heads": 4, "dense": 24, "dropout": 0.3}
TOLERANCE = 1e-5  # on probabilities; float32 rounding differences stay near 1e-7
ENC = Event()
VOCAB = Vocab(ENC.vocabulary())


def song_ids(songs):
    return [VOCAB.ids(ENC.song_tokens(s)) for s in songs if ENC.song_tokens(s)]


def real_windows(songs, per_song=4):
    """A few windows of `window` tokens from each song, start-of-song padding included."""
    rows = []
    for ids in song_ids(songs):
        x, _ = windows([ids], HPARAMS["window"], stride=1, pad_id=VOCAB.index[PAD])
        rows.append(x[np.linspace(0, len(x) - 1, per_song).astype(int)])
    return np.concatenate(rows)


@pytest.fixture(scope="module")
def chorales(corpus_data):
    return load_songs(corpus_data, "chorales_a"), load_songs(corpus_data, "chorales_b")


@pytest.fixture(scope="module", params=ARCHS)
def trained(request, chorales, tmp_path_factory):
    """(arch, Keras model, compose weights, full checkpoint) after a few real training steps."""
    arch = request.param
    keras.utils.set_random_seed(0)
    model = build_model(arch, len(VOCAB), HPARAMS)
    x, y = windows(song_ids(chorales[0]), HPARAMS["window"], stride=2, pad_id=VOCAB.index[PAD])
    y = y if many_to_many(arch) else y[:, -1]
    # a high learning rate moves the weights well away from their initial values in a few steps;
    # eager steps, since tracing a training graph costs more than the twelve steps themselves
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    model.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=12, shuffle=True, verbose=0)
    folder = tmp_path_factory.mktemp(arch)
    save_compose_weights(model, folder / "best.weights.h5")
    model.save_weights(folder / "last.weights.h5")  # with Adam's state, as a training checkpoint
    return arch, model, folder / "best.weights.h5", folder / "last.weights.h5"


def keras_probs(model, ids):
    return softmax(np.asarray(model(ids, training=False), np.float64))


def check_probabilities(trained, ids):
    arch, model, weights, _ = trained
    net = NumpyNet(arch, len(VOCAB), HPARAMS, weights)
    ours, theirs = softmax(net.forward(ids).astype(np.float64)), keras_probs(model, ids)
    shape = (len(ids), ids.shape[1], len(VOCAB)) if net.causal else (len(ids), len(VOCAB))
    assert ours.shape == theirs.shape == shape
    # trained, not uniform: a wrong gate order or scaling would move these probabilities by far more
    assert theirs.max() > 10 / len(VOCAB)
    diff = np.abs(ours - theirs).max()
    print(f"{arch}: max probability difference {diff:.2e} over {ids.shape} windows")
    assert diff < TOLERANCE


def test_forward_equals_keras_on_chorales(trained, chorales):
    check_probabilities(trained, real_windows(chorales[1]))


@pytest.fixture(scope="module")
def game_windows(shared_songs, tmp_path_factory):
    """Two windows of every original song, extracted once for every architecture."""
    games = sorted(p.name for p in shared_songs.iterdir() if p.is_dir())
    data = ROOT / "data"
    if not all((data / f"{g}.json").exists() for g in games):
        from vgmusic.extract import extract
        data = tmp_path_factory.mktemp("games")
        extract(shared_songs, data, games, progress=False)
    return np.concatenate([real_windows(load_songs(data, g), 2) for g in games])


def test_forward_equals_keras_on_game_songs(trained, game_windows):
    check_probabilities(trained, game_windows)


def test_stepper_equals_keras_stepper_and_full_forward(trained, chorales):
    arch, model, weights, _ = trained
    net = NumpyNet(arch, len(VOCAB), HPARAMS, weights)
    w = HPARAMS["window"]
    song = np.stack([ids[:60] for ids in song_ids(chorales[1])[:2]])  # two rows: a batch
    # the causal networks start from a short seed (the transformer fills its key/value cache, then
    # slides past its window); the others need a whole window
    seed = 5 if net.causal else w
    ends = range(seed, w + 7)  # context lengths whose next token the steppers predict: 6 past the window
    ours, theirs = net.stepper(batch=2), keras_stepper(arch, model, w, batch=2)
    a, b = [ours.start(song[:, :seed])], [theirs.start(song[:, :seed])]
    for t in ends[:-1]:
        a.append(ours.step(song[:, t]))
        b.append(theirs.step(song[:, t]))
    a, b = softmax(np.stack(a, 1).astype(np.float64)), softmax(np.stack(b, 1).astype(np.float64))
    # the same positions from the Keras model run on the context each stepper holds there
    if net.causal:
        contexts = [song[:, :end] if arch == "lstm" else song[:, max(0, end - w):end] for end in ends]
        full = np.stack([keras_probs(model, c)[:, -1] for c in contexts], 1)
    else:  # whole windows alike: one call for them all
        full = keras_probs(model, np.concatenate([song[:, end - w:end] for end in ends]))
        full = full.reshape(len(ends), 2, -1).transpose(1, 0, 2)
    print(f"{arch} stepper: {np.abs(a - b).max():.2e} from Keras' stepper, "
          f"{np.abs(a - full).max():.2e} from the model")
    assert np.abs(a - b).max() < TOLERANCE and np.abs(a - full).max() < TOLERANCE
    assert np.abs(b - full).max() < TOLERANCE


def one_line_error(call, *needles):
    with pytest.raises(ValueError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and all(n in message for n in needles), message


def test_weights_that_do_not_fit_fail_in_one_line(trained, tmp_path):
    arch, _, weights, _ = trained
    other = {"lstm": "transformer", "bilstm": "attention", "attention": "bilstm", "transformer": "rotary",
             "rotary": "transformer"}[arch]
    one_line_error(lambda: NumpyNet(arch, len(VOCAB) + 1, HPARAMS, weights), str(weights), "shape")
    one_line_error(lambda: NumpyNet(other, len(VOCAB), HPARAMS, weights), str(weights), "do not fit")
    one_line_error(lambda: NumpyNet(arch, len(VOCAB), dict(HPARAMS, layers=3), weights), str(weights))
    one_line_error(lambda: NumpyNet(arch, len(VOCAB), dict(HPARAMS, units=32), weights), str(weights), "shape")
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(weights.read_bytes()[:2000])
    one_line_error(lambda: NumpyNet(arch, len(VOCAB), HPARAMS, broken), str(broken))
    with pytest.raises(FileNotFoundError, match="missing.weights.h5: weights not found"):
        NumpyNet(arch, len(VOCAB), HPARAMS, tmp_path / "missing.weights.h5")
    net = NumpyNet(arch, len(VOCAB), HPARAMS, weights)
    one_line_error(lambda: net.forward(np.full((1, HPARAMS["window"]), len(VOCAB))), "token ids")
    if not net.causal:
        one_line_error(lambda: net.forward(np.zeros((1, 3), np.int64)), "exactly")
        one_line_error(lambda: net.stepper().start(np.zeros(3, np.int64)), "seed of at least")


def test_non_finite_weights_and_logits_fail_in_one_line(trained, chorales, tmp_path):
    """What a diverged run leaves fits every shape: refused at load, naming the file and the layer. Logits
    that overflow from finite weights stop the NumPy and Keras steppers instead of sampling from NaN."""
    arch, model, weights, _ = trained
    for value in (np.nan, np.inf):
        poisoned = tmp_path / f"{value}.weights.h5"
        shutil.copy(weights, poisoned)
        with h5py.File(poisoned, "r+") as f:
            f["layers/embedding/vars/0"][3, 1] = value
        one_line_error(lambda: NumpyNet(arch, len(VOCAB), HPARAMS, poisoned), str(poisoned),
                       "NaN or infinite values (layer embed)")
    seed = song_ids(chorales[1])[0][:HPARAMS["window"]]
    net = NumpyNet(arch, len(VOCAB), HPARAMS, weights)
    ours = net.stepper()
    ours.start(seed)
    net.logits[1][5] = np.inf  # the steppers read the net's arrays: this poisons the next step
    one_line_error(lambda: ours.step([seed[-1]]), str(weights), "logits came out NaN or infinite")
    one_line_error(lambda: net.forward(np.asarray([seed])), str(weights), "logits came out NaN or infinite")
    fresh = build_model(arch, len(VOCAB), HPARAMS)
    fresh.set_weights(model.get_weights())
    theirs = keras_stepper(arch, fresh, HPARAMS["window"])
    theirs.start(seed)
    fresh.get_layer("logits").bias.assign(np.full(len(VOCAB), np.nan, np.float32))
    one_line_error(lambda: theirs.step([seed[-1]]), f"Keras {arch} network's logits came out NaN or infinite")


def test_compose_weights_hold_no_optimizer_and_load_into_keras(trained):
    arch, model, weights, checkpoint = trained
    with h5py.File(weights) as f, h5py.File(checkpoint) as g:
        assert "optimizer" not in f and "optimizer" in g and "layers" in f
    assert weights.stat().st_size < checkpoint.stat().st_size
    fresh = build_model(arch, len(VOCAB), HPARAMS)
    fresh.load_weights(weights)
    ids = np.random.default_rng(1).integers(0, len(VOCAB), (2, HPARAMS["window"]))
    np.testing.assert_array_equal(np.asarray(fresh(ids, training=False)), np.asarray(model(ids, training=False)))
    # a training checkpoint reads the same: its optimizer state is passed over
    np.testing.assert_array_equal(NumpyNet(arch, len(VOCAB), HPARAMS, checkpoint).forward(ids),
                                  NumpyNet(arch, len(VOCAB), HPARAMS, weights).forward(ids))


def test_erf_and_gelu_are_precise():
    # float32 inputs, so that math.erf sees the very numbers erf() does
    x = np.concatenate([np.linspace(-9, 9, 20001), np.geomspace(1e-30, 6, 2000), [0.0, 1e-8, -1e-8, 30.0, -30.0],
                        np.nextafter(np.float32(1), np.float32([0, 2]))]).astype(np.float32)
    reference = np.array([math.erf(v) for v in x.astype(np.float64)])
    # erf's bound, a float32 approximation: 9.2e-8 from math.erf at worst, found by running it on
    # every float32 from 0.25 to 6 (below, the bound shrinks with |x|; beyond, erf rounds to 1)
    assert erf(x).dtype == np.float32 and np.abs(erf(x) - reference).max() < 1e-7
    np.testing.assert_array_equal(erf(-x), -erf(x))
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf])), [1, -1])
    # what Dense(activation="gelu") computes: the exact form, which the tanh approximation misses by 1e-4
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    np.testing.assert_allclose(gelu(x), np.asarray(keras.activations.gelu(x)), rtol=1e-6, atol=1e-7)
    # and the exact values, far into the negative tail where 1 + erf would cancel
    x = np.concatenate([x, np.linspace(-14, 14, 1001, dtype=np.float32)])
    reference = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x.astype(np.float64)])
    np.testing.assert_allclose(gelu(x), reference, rtol=1e-6, atol=1e-7)
    before = x.copy()
    assert gelu(x[5]).shape == () and gelu(x.reshape(2, -1)).shape == (2, len(x) // 2)
    np.testing.assert_array_equal(x, before)  # gelu() leaves its input alone


def test_causal_attention_in_blocks_of_queries(trained, chorales, monkeypatch):
    """The transformer's attention runs its queries in blocks of QUERY_BLOCK (128, beyond this window):
    blocks of 5 that end anywhere give Keras' probabilities too, the stepper's and past cached keys."""
    arch, model, weights, _ = trained
    if arch not in ("transformer", "rotary"):
        pytest.skip("causal self-attention is the transformers'")
    monkeypatch.setattr(layers, "QUERY_BLOCK", 5)
    check_probabilities(trained, real_windows(chorales[1]))
    test_stepper_equals_keras_stepper_and_full_forward(trained, chorales)
    if arch == "rotary":  # its blocks of queries over sequences past the window, each with its band of keys
        ids = np.stack([ids[:45] for ids in song_ids(chorales[1])[:2]])
        ours = NumpyNet(arch, len(VOCAB), HPARAMS, weights).forward(ids)
        np.testing.assert_allclose(ours, np.asarray(model(ids, training=False)), rtol=0, atol=1e-5)
        return
    # a block of queries after cached keys: 7 positions, then 6 at once
    net = NumpyNet(arch, len(VOCAB), HPARAMS, weights)
    ids = real_windows(chorales[1])[:3, :13]
    _, cache = net.run(ids[:, :7])
    np.testing.assert_allclose(net.run(ids[:, 7:], cache)[0], net.forward(ids)[:, 7:], rtol=0, atol=1e-5)


def test_rotary_cache_slides_as_keras_reruns_the_window(trained, chorales):
    """The cached stepper, 40 tokens past a window of 16, two rows then six (expand): at every step the
    probabilities of the Keras model run on the last `window` tokens, which start at position 0 there
    while the stepper's positions run on (RoPE: scores depend on offsets alone). And the NumPy pass over
    the whole sequence, each block attending to its band, equals Keras' own over it."""
    arch, model, weights, _ = trained
    if arch != "rotary":
        pytest.skip("the key/value cache that slides is rotary's")
    net, w = NumpyNet(arch, len(VOCAB), HPARAMS, weights), HPARAMS["window"]
    song = np.stack([ids[:w + 44] for ids in song_ids(chorales[1])[:2]])
    assert song.shape == (2, w + 44) and net.span < w  # the ring holds fewer positions than the window
    stepper, seed, fork = net.stepper(batch=2), 3, w + 20
    ours = [stepper.start(song[:, :seed])]
    for t in range(seed, w + 43):
        if t == fork:  # three candidates per row from here on, candidate c fed its song from c tokens back
            stepper.expand(3)
            rows = np.repeat(song, 3, axis=0)
            for i in range(6):
                rows[i, t:] = song[i // 3, t - i % 3:song.shape[1] - i % 3]
        ours.append(stepper.step((rows if t >= fork else song)[:, t]))
    for end, logits in enumerate(ours, seed):
        context = (rows if end > fork else song)[:, max(0, end - w):end]
        theirs = keras_probs(model, context)[:, -1]
        assert np.abs(softmax(logits.astype(np.float64)) - theirs).max() < TOLERANCE, end
    whole = rows[:, :w + 40]
    np.testing.assert_allclose(softmax(net.forward(whole).astype(np.float64)), keras_probs(model, whole),
                               rtol=0, atol=TOLERANCE)


def test_rotary_trains_and_composes_with_train_and_predict(corpus_data, tmp_path):
    """train.py --arch rotary for a few steps, then predict.py composes from what it wrote, and the NumPy
    engine composes what the Keras model would, token for token."""
    folder = tmp_path / "rotary"
    meta = train.main(game="chorales_a", argv=["--data-dir", str(corpus_data), "--model-dir", str(folder), *TINY,
                                                "--arch", "rotary", "--window", "48", "--epochs", "1", "--heads", "2"])
    assert meta["arch"] == "rotary" and meta["epochs_done"] == 1 and meta["hparams"]["window"] == 48
    argv = ["--data-dir", str(corpus_data), "--model-dir", str(folder), "--no-audio", "--no-roll", "--no-page",
            "--out", str(tmp_path / "o.mid"), "--length", "60", "--seed", "2"]
    out = predict.main(game="chorales_a", argv=argv)[0]
    assert out.stat().st_size > 0
    songs = []
    for engine in ("numpy", "keras"):
        cfg = build(PredictConfig, argparse.Namespace(), model_dir=str(folder), data_dir=str(tmp_path / "none"),
                    out=str(tmp_path / f"{engine}.mid"), seed=5, length=12, phrase_bars=1)
        songs.append(compose(load_model(folder, engine=engine), predict.request_of(cfg))[0])
    assert songs[0].meta["tokens"] == songs[1].meta["tokens"] and len(songs[0].meta["tokens"]) > 20


def test_importing_infer_loads_no_tensorflow():
    # nor h5py, which only reading a weights file needs
    code = ("import sys, vgmusic.infer, vgmusic.nets, vgmusic.checkpoint; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'h5py')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
