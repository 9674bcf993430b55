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

from conftest import ROOT

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
    if not SHIPPED.joinpath("model.json").exists():
        pytest.skip("no shipped model")
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta.pop("rhythm_prior", None)
    (folder / "model.json").write_text(json.dumps(meta))
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
    assert cal.main(["--game", "final_fantasy_7", "--model-dir", str(folder), "--data-dir", str(tmp_path / "data"),
                     "--songs", "3", "--rounds", "1"])
    written = json.loads((folder / "model.json").read_text())["rhythm_prior"]
    assert written["rounds"] == 1 and written["bias"] and len(written["history"]) == 2
    assert "rhythm offsets" in capsys.readouterr().out
    assert not list(folder.glob(".*"))  # nothing half-written left
