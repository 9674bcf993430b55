"""The LSTM's style embedding (hparams "style", trained by --style): the window's first token's second
embedding, added at every position (vgmusic/nets/lstm.py).

A tiny real model is trained a few steps on chorales whose windows start with one of two style tokens,
as a --style run's do; its NumPy forward pass and stepper must give Keras' probabilities under either
style, and the two styles different ones. Fine-tuning a style model from one without the embedding
(as three_games_combined starts from the base model) takes every other layer, the style's at zero.
"""
import json

import numpy as np
import pytest

from conftest import TINY
from test_infer import TOLERANCE, keras_probs, one_line_error
from vgmusic import config, train
from vgmusic.checkpoint import _check
from vgmusic.encode import PAD, RESERVED, Event, Vocab, control, load_songs, windows
from vgmusic.infer import NumpyNet, softmax
from vgmusic.model import build_model, keras, keras_stepper, save_compose_weights

HPARAMS = {"window": 16, "embed_dim": 8, "units": 24, "layers": 2, "heads": 4, "dense": 24, "dropout": 0.3,
           "style": True}
ENC = Event(reserved=RESERVED)  # a vocabulary with control tokens, as every new event model's
VOCAB = Vocab(ENC.vocabulary())
STYLES = [VOCAB.index[control(0)], VOCAB.index[control(1)]]


def styled_windows(songs, style):
    ids = [VOCAB.ids(ENC.song_tokens(s)) for s in songs if ENC.song_tokens(s)]
    x, y = windows(ids, HPARAMS["window"], stride=2, pad_id=VOCAB.index[PAD])
    x[:, 0] = style  # the style token first, as vgmusic/trainset.py puts it
    return x, y


@pytest.fixture(scope="module")
def styled(corpus_data, tmp_path_factory):
    """(Keras model, compose weights, windows of chorales_b) after a few real steps on two styles."""
    keras.utils.set_random_seed(0)
    model = build_model("lstm", len(VOCAB), HPARAMS)
    # zero at first: a model started from one without the embedding starts as that model
    assert not np.asarray(model.get_layer("style").embeddings).any()
    a, b = (styled_windows(load_songs(corpus_data, g), s) for g, s in zip(("chorales_a", "chorales_b"), STYLES))
    x, y = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    model.compile(optimizer=keras.optimizers.Adam(0.005),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    model.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=12, shuffle=True, verbose=0)
    # a few steps barely move a table that starts at zero (the styles' probabilities differed by 3e-5):
    # rows the size a long run leaves, so that a forward pass that dropped the style would show
    style = model.get_layer("style")
    style.set_weights([np.random.default_rng(0).normal(0, 0.5, style.embeddings.shape).astype(np.float32)])
    path = tmp_path_factory.mktemp("styled") / "best.weights.h5"
    save_compose_weights(model, path)
    return model, path, b[0][::7][:12]


def test_forward_equals_keras_under_either_style_and_styles_differ(styled):
    model, path, x = styled
    net = NumpyNet("lstm", len(VOCAB), HPARAMS, path)
    under = []
    for style in STYLES:
        ids = x.copy()
        ids[:, 0] = style
        ours, theirs = softmax(net.forward(ids).astype(np.float64)), keras_probs(model, ids)
        assert np.abs(ours - theirs).max() < TOLERANCE
        under.append(ours)
    # rows of different styles in one batch: each its own
    mixed = x[:2].copy()
    mixed[:, 0] = STYLES
    assert np.abs(softmax(net.forward(mixed).astype(np.float64)) - keras_probs(model, mixed)).max() < TOLERANCE
    # the style reaches every position, not only the first: far beyond float32 rounding at the last one
    # (log-probabilities: a few steps at this rate leave one token with nearly all the mass)
    assert np.abs(np.log(under[0]) - np.log(under[1]))[:, -1].max() > 1e-2


def test_stepper_equals_keras_stepper_and_full_forward_under_either_style(styled):
    model, path, x = styled
    net = NumpyNet("lstm", len(VOCAB), HPARAMS, path)
    last, rows = [], []
    for style in STYLES:
        song = np.concatenate([[style], x[0, 1:], x[1]])  # past the window
        rows.append(song[:5])
        ours, theirs = net.stepper(), keras_stepper("lstm", model, HPARAMS["window"])
        a, b = [ours.start(song[:5])], [theirs.start(song[:5])]
        ours.expand(2)  # the candidates of one song go on from its state, its style with them
        theirs.expand(2)
        for t in range(5, len(song) - 1):
            a.append(ours.step([song[t]] * 2)[1:])
            b.append(theirs.step([song[t]] * 2)[1:])
        a, b = (softmax(np.concatenate(s).astype(np.float64)) for s in (a, b))
        full = keras_probs(model, song[None, :-1])[0, 4:]
        assert np.abs(a - b).max() < TOLERANCE and np.abs(a - full).max() < TOLERANCE
        last.append(a[-1])
    assert np.abs(np.log(last[0]) - np.log(last[1])).max() > 1e-2
    # composing's rows share one seed, so one style: rows of two are refused in one line
    one_line_error(lambda: net.stepper(batch=2).start(np.stack(rows)), "one style per batch")


def test_a_model_without_the_embedding_loads_as_it_always_has(styled):
    _, path, x = styled
    # the file holds two embeddings, a network without the style one expects one
    one_line_error(lambda: NumpyNet("lstm", len(VOCAB), dict(HPARAMS, style=False), path), str(path), "embedding")
    meta = json.loads((config.ROOT / "three_games_combined" / "weights" / "model.json").read_text())
    assert "style" not in meta["hparams"] and _check(meta) is None
    assert _check(dict(meta, hparams=dict(meta["hparams"], style=1))) == (
        "hparams style is 1, not a boolean of a network with a style embedding")
    assert "style embedding" in _check(dict(meta, arch="transformer", hparams=dict(meta["hparams"], style=True)))


@pytest.fixture
def combined(monkeypatch):
    """A game of two sources trained with styles, as three_games_combined can be."""
    monkeypatch.setitem(config.GAMES, "chorales_ab", dict(sources=["chorales_a", "chorales_b"], style=True))
    return "chorales_ab"


def _train(data, folder, game, *extra):
    train.main(game=game, argv=["--data-dir", str(data), "--model-dir", str(folder), *TINY, "--epochs", "1",
                                *map(str, extra)])
    meta = json.loads((folder / "model.json").read_text())
    return meta, NumpyNet(meta["arch"], len(meta["vocab"]), meta["hparams"], folder / "best.weights.h5")


def test_init_from_a_model_without_styles_starts_as_it(combined, corpus_data, tmp_path):
    source, plain = _train(corpus_data, tmp_path / "plain", "chorales_b", "--learning-rate", "0.01")
    assert "style" not in source["hparams"]
    # a learning rate too small to move anything: what was loaded is what is saved
    meta, tuned = _train(corpus_data, tmp_path / "tuned", combined, "--init-from", tmp_path / "plain",
                         "--learning-rate", "1e-9")
    assert meta["hparams"]["style"] is True and meta["init_from"]["weights_sha256"] == source["weights_sha256"]["best"]
    for name in ("embed", "token_gates", "logits"):
        a, b = getattr(plain, name), getattr(tuned, name)
        assert all(np.allclose(u, v, atol=1e-6) for u, v in zip(a, b)), name
    assert np.abs(tuned.style_rows).max() < 1e-6  # the new layer starts (and, at 1e-9, stays) at zero
    # sizes are still checked against the source, and a source of another vocabulary is refused
    with pytest.raises(SystemExit, match="weights do not fit.*units 32"):
        _train(corpus_data, tmp_path / "m", combined, "--units", "32", "--init-from", tmp_path / "plain")
    _train(corpus_data, tmp_path / "classic", "chorales_a", "--encoding", "classic")
    with pytest.raises(SystemExit, match="cannot --init-from this model, its architecture|its vocabulary"):
        _train(corpus_data, tmp_path / "m", combined, "--init-from", tmp_path / "classic")
