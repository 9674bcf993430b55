"""Rhythm calibration (vgmusic/calibrate.py): real songs composed by a real model, its sidecar written and read
back, the offsets applied at the draw and nowhere else."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from vgmusic import calibrate as cal
from vgmusic.compose import Request, compose, load_model
from vgmusic.config import PredictConfig
from vgmusic.predict import sampling_of

from conftest import ROOT, model_copy

SHIPPED = ROOT / "final_fantasy_7" / "weights"


def test_a_round_moves_each_rhythm_toward_the_songs_within_its_kind():
    human = {"d3": 0.5, "d6": 0.4, "d12": 0.1, "w3": 0.3, "w6": 0.7, "d48": 0.0}
    drawn = {"d3": 0.1, "d6": 0.8, "d12": 0.1, "w3": 0.3, "w6": 0.7, "d48": 0.0}
    new = cal.corrected({}, human, drawn)
    assert new["d3"] > 0 > new["d6"] and abs(new["w3"]) < 1e-9 and abs(new["w6"]) < 1e-9
    assert "d48" not in new  # neither side uses it: the network's odds stand
    # the kind's drawn tokens keep their total weight: the offsets move rhythm within the kind
    assert sum(drawn[t] * np.exp(new[t]) for t in ("d3", "d6", "d12")) == pytest.approx(1.0)
    # a rhythm the songs hold a hundred times as often is moved by at most LIMIT
    far = cal.corrected({}, {"d3": 0.99, "d6": 0.01}, {"d3": 0.0099, "d6": 0.9901})
    assert max(abs(b) for b in far.values()) <= cal.LIMIT


def test_calibration_moves_the_drawn_rhythm_to_the_songs_and_predict_applies_it(tmp_path):
    """The shipped model, told that its songs move in sixteenths only: after two rounds it draws
    sixteenth waits more often than it did, the offsets are in its sidecar, loading applies them, and
    --rhythm-prior 0 composes exactly the uncalibrated songs."""
    folder, meta = model_copy(SHIPPED, tmp_path / "model", drop=("rhythm_prior",))
    model = load_model(folder)
    assert model.prior is None
    sixteenths = [["p60", "d3", "w3", "p62", "d3", "w3"] * 50]
    sampling = sampling_of(PredictConfig())

    def share_w3(m, **kw):
        songs = compose(m, Request(num=4, events=120, seed=5, sampling=dataclasses.replace(sampling, **kw)))
        waits = [t for s in songs for t in s.meta["tokens"] if t.startswith("w")]
        return waits.count("w3") / len(waits), [s.meta["tokens"] for s in songs]
    before, plain = share_w3(model)
    bias, history = cal.calibrate(model, sixteenths, sampling, songs=4, rounds=2, seed=1, report=lambda _: None)
    assert bias["w3"] > 0.5 and bias["d3"] > 0.5 and len(history) == 3
    meta["rhythm_prior"] = {"bias": bias, "weights_sha256": meta["weights_sha256"]["best"]}
    (folder / "model.json").write_text(json.dumps(meta))
    calibrated = load_model(folder)
    assert calibrated.prior is not None and calibrated.prior[calibrated.vocab.index["w3"]] == pytest.approx(bias["w3"])
    after, _ = share_w3(calibrated)
    assert after > before + 0.1
    assert share_w3(calibrated, rhythm_prior=0.0)[1] == plain  # off: the songs the model wrote before
    # measured on other weights, the offsets are not applied
    meta["rhythm_prior"]["weights_sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(meta))
    assert load_model(folder).prior is None


def test_a_damaged_prior_is_one_line_naming_the_sidecar(tmp_path):
    if not SHIPPED.joinpath("model.json").exists():
        pytest.skip("no shipped model")
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["rhythm_prior"] = {"bias": {"not-a-token": 1.0}}
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model.json: damaged sidecar \('rhythm_prior'"):
        load_model(folder)


def test_the_command_writes_the_offsets_into_the_sidecar(shared_songs, tmp_path, capsys):
    """python -m vgmusic calibrate on a copy of a shipped model, against the extracted songs."""
    if not SHIPPED.joinpath("model.json").exists():
        pytest.skip("no shipped model")
    from vgmusic.extract import extract
    extract(shared_songs, tmp_path / "data", games=["final_fantasy_7"], progress=False)
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    args = ["--game", "final_fantasy_7", "--model-dir", str(folder), "--data-dir", str(tmp_path / "data"),
            "--songs", "3", "--rounds", "1", "--characters", "1"]
    assert cal.main(args)
    meta = json.loads((folder / "model.json").read_text())
    written = meta["rhythm_prior"]
    assert written["rounds"] == 1 and written["bias"] and len(written["history"]) == 2
    # and each training song's character, on the same weights
    trained = sorted(f for _, f, _ in meta["songs"]["train"])
    assert sorted(c["file"] for c in meta["characters"]["songs"]) == trained
    assert meta["characters"]["weights_sha256"] == written["weights_sha256"] and len(load_model(folder).characters) == len(trained)
    out = capsys.readouterr().out
    assert "rhythm offsets" in out and "training songs' repeats" in out
    assert not list(folder.glob(".*"))  # nothing half-written left
    # --no-rhythm: the characters alone, and the offsets gone
    assert cal.main(args + ["--no-rhythm"])
    meta = json.loads((folder / "model.json").read_text())
    assert "rhythm_prior" not in meta and meta["characters"]["songs"] and load_model(folder).prior is None
    assert "no rhythm offsets" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="error: nothing to calibrate"):  # one line, no traceback
        cal.main(args + ["--no-rhythm", "--characters", "0"])


@pytest.fixture
def two_sources(monkeypatch, corpus_data, tmp_path):
    """A model of a game of two sources, as three_games_combined is, trained a few steps; calibrated on
    songs of 40 events (a model this new writes 500 slowly: few of its tokens end an event)."""
    from vgmusic import config, train
    from conftest import TINY
    monkeypatch.setitem(config.GAMES, "chorales_ab", dict(sources=["chorales_a", "chorales_b"]))
    monkeypatch.setattr(cal, "EVENTS", 40)
    folder = tmp_path / "ab"
    train.main(game="chorales_ab", argv=["--data-dir", str(corpus_data), "--model-dir", str(folder), *TINY,
                                         "--epochs", "1"])
    return folder


def test_each_source_gets_its_style_and_style_composes_with_it(two_sources, corpus_data):
    """calibrate --style all: one prior per source, measured against that source's songs alone, in the
    sidecar beside the weights' hash; --style NAME (or a unique prefix) composes with that prior, exactly
    as the same prior handed to the sampler, and without --style the songs are the uncalibrated ones."""
    folder = two_sources
    assert load_model(folder).style_priors == {}
    with pytest.raises(ValueError, match="has no styles, so --style cannot choose one"):
        compose(load_model(folder), Request(events=20, style="chorales_a"))
    written = cal.calibrate_folder(folder, corpus_data, songs=2, rounds=1, seed=3, style="all")
    assert sorted(written) == ["chorales_a", "chorales_b"] and all(written.values())
    meta = json.loads((folder / "model.json").read_text())
    assert "rhythm_prior" not in meta  # the model's own rhythm is not touched
    for name, record in meta["style_priors"].items():
        assert record["bias"] == written[name] and record["weights_sha256"] == meta["weights_sha256"]["best"]
        assert record["training_songs"] == sum(s == name for s, _, _ in meta["songs"]["train"])
    model = load_model(folder)
    assert sorted(model.style_priors) == ["chorales_a", "chorales_b"]

    def tokens(style="", **kw):
        sampling = dataclasses.replace(sampling_of(PredictConfig()), **kw)
        return [s.meta["tokens"] for s in compose(model, Request(num=3, events=60, seed=4, style=style,
                                                                 sampling=sampling))]
    styled = tokens("chorales_b")
    assert styled == tokens(prior=model.style_priors["chorales_b"])  # the prior, and only the prior
    assert styled == tokens("chorales_b", rhythm_prior=1.0) != tokens("chorales_b", rhythm_prior=0.0)
    assert tokens("chorales_b", rhythm_prior=0.0) == tokens()  # no prior: the songs without a style
    with pytest.raises(ValueError, match="'chorales': ambiguous; this model knows chorales_a, chorales_b"):
        tokens("chorales")
    with pytest.raises(ValueError, match="'mario': unknown"):
        tokens("mario")
    # calibrating one source again replaces its prior and keeps the other's
    cal.calibrate_folder(folder, corpus_data, songs=2, rounds=1, seed=9, style="chorales_a")
    again = json.loads((folder / "model.json").read_text())["style_priors"]
    assert again["chorales_b"] == meta["style_priors"]["chorales_b"] and again["chorales_a"]["seed"] == 9
    # priors measured on other weights are not applied, so the model has no styles
    meta["style_priors"]["chorales_a"]["weights_sha256"] = meta["style_priors"]["chorales_b"]["weights_sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(meta))
    assert load_model(folder).style_priors == {}


def test_calibrating_a_source_the_model_never_heard_is_one_line(two_sources, corpus_data):
    with pytest.raises(ValueError, match=r"--style 'zelda': unknown; .*training songs come from chorales_a, chorales_b"):
        cal.calibrate_folder(two_sources, corpus_data, songs=1, rounds=1, style="zelda")
    meta = json.loads((two_sources / "model.json").read_text())
    assert "style_priors" not in meta  # refused before anything was written
    meta["style_priors"] = {"chorales_a": {"bias": {"d3": 11.0}}}
    (two_sources / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model.json: damaged sidecar \('style_priors'"):
        load_model(two_sources)
