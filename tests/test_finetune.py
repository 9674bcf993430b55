"""Fine-tuning from another model (--init-from), styles (--style) and the held-out loss per event."""
import argparse
import json

import numpy as np
import pytest

from conftest import TINY
from vgmusic import config, predict, train
from vgmusic.cli import build
from vgmusic.config import TrainConfig
from vgmusic.encode import ANY_STYLE, control
from vgmusic.infer import NumpyNet
from vgmusic.trainset import STYLE_DROPOUT, datasets, prepare, styles_of


def _train(data, model_dir, game="chorales_a", *extra, epochs=2):
    train.main(game=game, argv=["--data-dir", str(data), "--model-dir", str(model_dir), *TINY,
                                "--epochs", str(epochs), *map(str, extra)])
    return json.loads((model_dir / "model.json").read_text())


def _weights(folder, meta):
    return NumpyNet(meta["arch"], len(meta["vocab"]), meta["hparams"], folder / "best.weights.h5")


@pytest.fixture(scope="module")
def source(corpus_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("source")
    return folder, _train(corpus_data, folder, "chorales_b", "--learning-rate", "0.01", epochs=3)


@pytest.fixture
def combined(monkeypatch):
    """A game of two sources, trained with styles, as three_games_combined is."""
    monkeypatch.setitem(config.GAMES, "chorales_ab", dict(sources=["chorales_a", "chorales_b"], style=True))
    return "chorales_ab"


def test_init_from_starts_from_the_other_models_weights(source, corpus_data, tmp_path):
    folder, meta = source
    # a learning rate too small to move anything: what was loaded is what is saved
    tuned = _train(corpus_data, tmp_path / "tuned", "chorales_a", "--init-from", folder, "--learning-rate", "1e-9",
                   epochs=1)
    assert tuned["init_from"]["folder"] == str(folder)
    assert tuned["init_from"]["weights_sha256"] == meta["weights_sha256"]["best"]
    a, b = _weights(folder, meta).embed, _weights(tmp_path / "tuned", tuned).embed
    assert np.allclose(a, b, atol=1e-6)
    scratch = _train(corpus_data, tmp_path / "scratch", "chorales_a", "--learning-rate", "1e-9", epochs=1)
    # from scratch the weights are a fresh draw, nothing like the source's
    assert not np.allclose(a, _weights(tmp_path / "scratch", scratch).embed, atol=1e-3)
    # and the model that has heard chorales starts far ahead of a fresh one on other chorales
    assert tuned["best_val_loss"] < scratch["best_val_loss"] - 0.2


def test_init_from_a_model_of_other_sizes_is_refused_in_one_line(source, corpus_data, tmp_path):
    folder, _ = source
    with pytest.raises(SystemExit) as e:
        train.main(game="chorales_a", argv=["--data-dir", str(corpus_data), "--model-dir", str(tmp_path / "m"),
                                            *TINY, "--units", "32", "--init-from", str(folder)])
    line = str(e.value.code)
    assert line.startswith("error: ") and str(folder) in line and "\n" not in line
    assert not (tmp_path / "m" / "model.json").exists()  # refused before anything was written


def test_init_from_a_classic_model_is_refused(corpus_data, tmp_path):
    _train(corpus_data, tmp_path / "classic", "chorales_a", "--encoding", "classic", epochs=1)
    with pytest.raises(SystemExit, match="cannot --init-from this model, its architecture|its vocabulary"):
        train.main(game="chorales_a", argv=["--data-dir", str(corpus_data), "--model-dir", str(tmp_path / "m"),
                                            *TINY, "--init-from", str(tmp_path / "classic")])


def test_loss_per_event_is_the_loss_per_token_times_tokens_per_event(source):
    _, meta = source
    assert 2 < meta["tokens_per_event"] < 8  # pitches, a duration and waits per event
    assert meta["best_val_loss_per_event"] == pytest.approx(meta["best_val_loss"] * meta["tokens_per_event"],
                                                            rel=1e-4)


def test_every_training_window_starts_with_its_songs_style(combined, corpus_data):
    cfg = build(TrainConfig, argparse.Namespace(data_dir=str(corpus_data), batch_size=256, max_steps=0),
                **config.game_overrides(combined), game=combined)
    enc, vocab, train_songs, val_songs, train_ids, val_ids = prepare(cfg)
    styles = styles_of(cfg, train_songs + val_songs, vocab)
    assert styles == {"chorales_a": control(0), "chorales_b": control(1)}
    data, n, val_data, _ = datasets(cfg, vocab, train_ids, val_ids, styles)
    first = np.concatenate([x[:, 0].numpy() for x, _ in data])
    ids = {vocab.index[t] for t in styles.values()}
    assert len(first) == n and set(first) <= ids | {vocab.index[control(ANY_STYLE)]}
    assert abs(np.mean(first == vocab.index[control(ANY_STYLE)]) - STYLE_DROPOUT) < 0.05
    # held-out windows always carry their own song's style
    val_first = np.concatenate([x[:, 0].numpy() for x, _ in val_data])
    assert set(val_first) <= ids


def test_style_composes_and_names_the_styles_it_knows(combined, corpus_data, tmp_path):
    meta = _train(corpus_data, tmp_path / "styled", combined, epochs=1)
    assert meta["styles"] == {"chorales_a": control(0), "chorales_b": control(1)}
    argv = ["--data-dir", str(corpus_data), "--model-dir", str(tmp_path / "styled"), "--no-audio", "--no-roll",
            "--no-page", "--length", "20", "--seed", "3"]
    for style in ("chorales_b", "chorales_a", ""):
        out = predict.main(game=combined, argv=argv + ["--style", style, "--out", str(tmp_path / f"s{style}.mid")])
        assert out[0].exists()
    with pytest.raises(SystemExit, match="unknown; this model knows chorales_a, chorales_b"):
        predict.main(game=combined, argv=argv + ["--style", "mario", "--out", str(tmp_path / "x.mid")])


def test_style_on_a_model_without_styles_is_refused(source, corpus_data, tmp_path):
    folder, _ = source
    with pytest.raises(SystemExit, match="this model has no styles, so --style cannot choose one"):
        predict.main(game="chorales_b", argv=["--data-dir", str(corpus_data), "--model-dir", str(folder),
                                              "--no-audio", "--no-roll", "--no-page", "--style", "chorales_a",
                                              "--out", str(tmp_path / "x.mid")])


def test_pretrain_on_shards_then_fine_tune_a_game(corpus_data, tmp_path):
    """The base model's path: token shards on disk -> a model -> a game fine-tuned from it."""
    from vgmusic.shards import build_shards
    build_shards(tmp_path / "shards", ["chorales_a", "chorales_b"], corpus_data)
    base = _train(corpus_data, tmp_path / "base", "base", "--shards", tmp_path / "shards", "--val-fraction", "0.3",
                  "--game-weight", "3", epochs=1)
    assert base["training"]["game_weight"] == 3  # both test sources are game music: not music21's collections
    listed = {f for _, f, _ in base["songs"]["train"] + base["songs"]["val"]}
    assert len(listed) == 7 and base["songs"]["val"] and base["tokens_per_event"] > 1
    tuned = _train(corpus_data, tmp_path / "tuned", "chorales_a", "--init-from", tmp_path / "base", epochs=1)
    assert tuned["init_from"]["game"] == "base"
    out = predict.main(game="chorales_a", argv=["--data-dir", str(corpus_data), "--model-dir", str(tmp_path / "tuned"),
                                               "--no-audio", "--no-roll", "--no-page", "--length", "20",
                                               "--out", str(tmp_path / "song.mid")])
    assert out[0].exists()


def test_select_last_keeps_every_epoch_to_the_last_and_never_stops_early(source, corpus_data, tmp_path):
    folder, meta = source
    # a rate high enough that the held-out loss turns up: patience 1 would stop a run selected by it
    tuned = _train(corpus_data, tmp_path / "last", "chorales_a", "--init-from", folder, "--learning-rate", "0.05",
                   "--select", "last", "--patience", "1", epochs=4)
    history = (tmp_path / "last" / "history.csv").read_text().splitlines()[1:]
    assert tuned["select"] == "last" and tuned["epochs_done"] == 4 and len(history) == 4
    assert tuned["best_epoch"] == 4 and tuned["best_val_loss"] == pytest.approx(float(history[-1].split(",")[2]))
    # the best weights are the last epoch's, the very weights --resume continues from
    assert tuned["weights_sha256"]["best"] != meta["weights_sha256"]["best"]
    last = _train(corpus_data, tmp_path / "last", "chorales_a", "--init-from", folder, "--learning-rate", "0.05",
                  "--select", "last", "--resume", epochs=5)
    assert last["best_epoch"] == 5 and last["epochs_done"] == 5
