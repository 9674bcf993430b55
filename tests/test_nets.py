"""The registry of networks (vgmusic.nets) and the shipped weights refused once they hold NaN or infinities.

tests/test_infer.py holds every architecture's NumPy pass against Keras; this file needs no TensorFlow.
"""
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT
from vgmusic import checkpoint, nets
from vgmusic.nets import base, rotary
from vgmusic.infer import NumpyNet

SHIPPED = ROOT / "pokemon_red_blue_yellow" / "weights"


def test_registry_lists_each_architecture_once_with_everything_it_needs():
    assert list(nets.ARCHS) == ["lstm", "bilstm", "attention", "transformer", "rotary"]
    assert checkpoint.ARCHS == tuple(nets.ARCHS) and checkpoint.ARCH_KEYS == nets.ARCH_KEYS
    for name, arch in nets.ARCHS.items():
        assert arch.name == name and nets.get(name) is arch
        assert all(callable(f) for f in (arch.build, arch.layout, arch.numpy_net, arch.keras_stepper))
        assert arch.min_seed(16) == (1 if arch.many_to_many else 16)
    assert [a for a in nets.ARCHS.values() if a.many_to_many] == [nets.ARCHS[a] for a in ("lstm", "transformer",
                                                                                          "rotary")]
    for bad in ("gru", None, ["lstm"]):
        with pytest.raises(ValueError, match="unknown architecture .*; choose from lstm, bilstm, attention"):
            nets.get(bad)


def test_layouts_differ_only_where_the_networks_do():
    hp = {"window": 4, "embed_dim": 3, "units": 8, "layers": 2, "heads": 2, "dense": 5, "dropout": 0.1}
    names = {arch: [name for _, name, _ in nets.layout(arch, 11, hp)] for arch in nets.ARCHS}
    assert names["attention"] == names["bilstm"][:3] + ["self_attention", "attention_norm"] + names["bilstm"][3:]
    assert names["lstm"] == ["embed", "lstm_0", "lstm_1", "dense", "logits"]
    assert names["transformer"][-2:] == ["norm_out", "logits"] and len(names["transformer"]) == 2 + 5 * 2 + 2
    # rotary: the transformer's blocks, no position table
    assert names["rotary"] == [n for n in names["transformer"] if n != "positions"]
    kinds = {kind for kind, _, _ in nets.layout("rotary", 11, hp)}
    assert "rotary_attention" in kinds and "position_embedding" not in kinds


def test_rotary_blocks_reach_back_no_further_than_the_window():
    """Each block attends to `span` positions; stacked, they reach layers * (span - 1) + 1 tokens, which must
    fit the window (the cache is then exact) and fill as much of it as the blocks can."""
    for window in (2, 3, 16, 75, 512, 4096):
        for layers in range(1, 13):
            span = rotary.span(window, layers)
            reach = layers * (span - 1) + 1
            assert span >= 1 and reach <= window < reach + layers, (window, layers)
    assert rotary.span(512, 4) == 128 and rotary.span(16, 2) == 8 and rotary.span(16, 1) == 16


def test_rotary_needs_an_even_width_per_head():
    hp = {"window": 8, "embed_dim": 3, "units": 12, "layers": 1, "heads": 4, "dense": 5, "dropout": 0.0}
    for units, heads in ((12, 4), (10, 4)):  # 3 values per head; 4 heads do not divide 10
        with pytest.raises(ValueError, match=f"units divisible by heads into an even width per head, got units "
                                             f"{units}, heads {heads}"):
            nets.layout("rotary", 11, dict(hp, units=units, heads=heads))
    assert nets.layout("rotary", 11, dict(hp, heads=2))  # 6 per head
    # the size guard counts the rotary attention's scores as MultiHeadAttention's: the two networks' floats
    # differ by the transformer's position table alone (kept twice, as every layer's outputs)
    hp = dict(hp, heads=2, units=8)
    for training in (False, True):
        floats = [base.activation_floats(nets.get(arch), 11, hp, training) for arch in ("transformer", "rotary")]
        assert floats[0] - floats[1] == 2 * hp["units"] * hp["window"]


@pytest.fixture
def shipped(tmp_path):
    """A copy of a shipped model folder: (folder, sidecar, its NumpyNet arguments but the weights)."""
    folder = tmp_path / "weights"
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "model.json").read_text())
    return folder, meta, (meta["arch"], len(meta["vocab"]), meta["hparams"])


def one_line_error(call, *needles):
    with pytest.raises(ValueError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and all(n in message for n in needles), message


@pytest.mark.parametrize("dataset, layer, value", [("layers/lstm_1/cell/vars/1", "lstm_1", np.nan),
                                                   ("layers/dense_1/vars/1", "logits", np.inf),
                                                   ("layers/embedding/vars/0", "embed", -np.inf)])
def test_shipped_weights_with_nan_or_infinities_are_refused(shipped, dataset, layer, value):
    folder, _, args = shipped
    path = folder / "best.weights.h5"
    NumpyNet(*args, path)  # whole, they load
    with h5py.File(path, "r+") as f:
        f[dataset][(0,) * f[dataset].ndim] = value
    one_line_error(lambda: NumpyNet(*args, path), f"{path}: weights hold NaN or infinite values (layer {layer}); "
                                                  f"retrain or use the other weights file")
    with pytest.raises(ValueError, match="NaN or infinite values"):
        checkpoint.read_weights(path, *args)


def test_logits_that_overflow_fail_instead_of_sampling_nan(shipped):
    """Finite weights can still overflow float32: every logit weight at 3e38 makes the logits infinite."""
    folder, meta, args = shipped
    path = folder / "best.weights.h5"
    with h5py.File(path, "r+") as f:
        f["layers/dense_1/vars/0"][...] = np.float32(3e38)
    net = NumpyNet(*args, path)
    seed = np.arange(10) % len(meta["vocab"])
    one_line_error(lambda: net.forward(seed[None]), str(path), "logits came out NaN or infinite")
    one_line_error(lambda: net.stepper(2).start(seed), str(path), "logits came out NaN or infinite")


def test_composing_with_nan_weights_stops_in_one_line(shipped, tmp_path):
    """Once, such weights made composing hang: now predict.py names the file and exits 1."""
    folder, _, _ = shipped
    with h5py.File(folder / "best.weights.h5", "r+") as f:
        f["layers/lstm/cell/vars/2"][7] = np.nan
    r = subprocess.run([sys.executable, str(ROOT / "pokemon_red_blue_yellow" / "predict.py"), "--model-dir", folder,
                        "--out", tmp_path / "x.mid", "--length", "20", "--no-audio", "--no-roll", "--no-page"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert f"{folder / 'best.weights.h5'}: weights hold NaN or infinite values (layer lstm_0)" in lines[0], lines
    assert not (tmp_path / "x.mid").exists()


def test_advance_moves_the_state_as_step_does_without_the_logits():
    """A step whose logits nobody reads (a replayed phrase) skips the head: the next logits are the same bits."""
    meta = json.loads((SHIPPED / "model.json").read_text())
    net = NumpyNet(meta["arch"], len(meta["vocab"]), meta["hparams"], SHIPPED / "best.weights.h5")
    seed, fed = np.arange(12) % len(meta["vocab"]), [[3, 5], [7, 1], [2, 2]]
    stepped, advanced = net.stepper(2), net.stepper(2)
    stepped.start(seed), advanced.start(seed)
    for ids in fed[:-1]:
        stepped.step(ids)
        assert advanced.advance(ids) is None
    assert np.array_equal(stepped.step(fed[-1]), advanced.step(fed[-1]))
    with pytest.raises(ValueError, match="ids"):
        advanced.advance([len(meta["vocab"]), 0])  # ids are still checked
