"""The checkpoint format: one home for what training writes and composing reads.

A model folder holds `model.json` (the sidecar: everything needed to rebuild, check and
use the weights) beside `best.weights.h5` (weights only, what composing loads) and
`last.weights.h5` (weights plus optimizer state, what --resume continues from). Keras writes
the weights; read_weights reads them back without Keras, for infer.py.
This module imports neither TensorFlow nor Keras, so composing stays light.
"""
import datetime
import re
import statistics
import subprocess
from pathlib import Path

import h5py
import numpy as np

from . import ROOT, __version__
from .encode import Vocab
from .store import read_json

SIDECAR = "model.json"
FORMAT = 2  # 2: best weights carry no optimizer state; tempo, code version and baselines recorded
WEIGHTS = {"best": "best.weights.h5", "last": "last.weights.h5"}
# Hyper-parameters that define the weights' shapes; the networks are rebuilt from exactly these.
ARCH_KEYS = ("window", "embed_dim", "units", "layers", "heads", "dense", "dropout")
TRAINING_KEYS = ("batch_size", "learning_rate", "patience", "select", "seed", "stride", "transpose", "diatonic",
                 "split_seed", "val_fraction", "max_steps", "budget")
# key -> type every sidecar must have; loading checks these so a damaged file fails in one line
REQUIRED = {"format": int, "game": str, "encoding": dict, "arch": str, "hparams": dict, "vocab": list,
            "vocab_hash": str, "songs": dict}


def code_version():
    """The package version plus the git commit the weights were trained with, when there is one."""
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{__version__}+{rev}" if rev else __version__


def describe(cfg, enc, vocab, train, val, versions):
    """The sidecar of a training run: what the weights were trained on, how, with which code, and when."""
    tempos = [s["tempo"] for s in train if s.get("tempo")]
    return {
        "format": FORMAT,
        "game": cfg.game,
        "encoding": enc.spec(),
        "arch": cfg.arch,
        "hparams": {k: getattr(cfg, k) for k in ARCH_KEYS},
        "training": {k: getattr(cfg, k) for k in TRAINING_KEYS},
        "vocab_hash": vocab.hash,
        "vocab": vocab.tokens,
        "songs": {part: [[s["source"], s["file"], s["sha256"]] for s in group]
                  for part, group in (("train", train), ("val", val))},
        # songs are not shipped, so composing without them plays at the training songs' typical tempo
        "tempo": round(statistics.median(tempos), 1) if tempos else 120.0,
        "versions": dict(versions, vgmusic=code_version()),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "epochs_done": 0, "best_epoch": None, "best_val_loss": None, "best_score": None,
    }


def read_sidecar(folder):
    """The checked sidecar of a model folder, or a one-line error naming the file and what is wrong."""
    folder = Path(folder)
    path = folder / SIDECAR
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no trained model here (run train.py first)")
    meta = read_json(path, "model sidecar")
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: damaged sidecar (expected a JSON object, found {type(meta).__name__})")
    for key, kind in REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            found = "missing" if key not in meta else f"a {type(meta[key]).__name__}"
            raise ValueError(f"{path}: damaged sidecar ('{key}' should be a {kind.__name__}, is {found})")
    if meta["format"] != FORMAT:
        raise ValueError(f"{path}: model format {meta['format']} is not {FORMAT}; re-train it")
    missing = [k for k in ARCH_KEYS if k not in meta["hparams"]]
    if missing:
        raise ValueError(f"{path}: damaged sidecar (hparams lack {', '.join(missing)})")
    vocab = Vocab(meta["vocab"])
    if vocab.hash != meta["vocab_hash"]:
        raise ValueError(f"{path}: vocabulary does not match its recorded hash")
    return meta, vocab


def weights_path(folder, which="best"):
    if which not in WEIGHTS:
        raise ValueError(f"--which must be one of {', '.join(WEIGHTS)}, got {which!r}")
    path = Path(folder) / WEIGHTS[which]
    if not path.exists():
        raise FileNotFoundError(f"{path}: weights not found (training never finished an epoch?)")
    return path


# --- reading Keras' weights file --------------------------------------------------------------------

def _lstm(prefix, inputs, units):
    # kernel, recurrent kernel, bias: the four gates side by side in Keras' order i, f, c, o
    return {f"{prefix}vars/0": (inputs, 4 * units), f"{prefix}vars/1": (units, 4 * units),
            f"{prefix}vars/2": (4 * units,)}


def _dense(inputs, outputs, prefix=""):
    return {f"{prefix}vars/0": (inputs, outputs), f"{prefix}vars/1": (outputs,)}


def _attention(dim, heads, key_dim):
    shapes = {}
    for proj in ("query", "key", "value"):
        shapes.update({f"{proj}_dense/vars/0": (dim, heads, key_dim), f"{proj}_dense/vars/1": (heads, key_dim)})
    return {**shapes, "output_dense/vars/0": (heads, key_dim, dim), "output_dense/vars/1": (dim,)}


def _norm(dim):
    return {"vars/0": (dim,), "vars/1": (dim,)}  # gamma, beta


def layout(arch, vocab_size, hp):
    """What model.build_model(arch, ...) saves, in model.layers order: [(kind, layer name, {path: shape})].

    Keras stores each layer under `layers/<kind>[_<n>]`, kind being the layer's class in snake case and
    n counting the earlier layers of that class (not under the names model.py gives); it loads by that
    path, and so does this file.
    """
    V, E, u, n, d, h, w = (vocab_size, hp["embed_dim"], hp["units"], hp["layers"], hp["dense"], hp["heads"],
                           hp["window"])
    if arch == "lstm":
        return ([("embedding", "embed", {"vars/0": (V, E)})]
                + [("lstm", f"lstm_{i}", _lstm("cell/", E if i == 0 else u, u)) for i in range(n)]
                + [("dense", "dense", _dense(u, d)), ("dense", "logits", _dense(d, V))])
    if arch == "transformer":
        out = [("embedding", "embed", {"vars/0": (V, u)}), ("position_embedding", "positions", {"vars/0": (w, u)})]
        for i in range(n):
            out += [("layer_normalization", f"norm_a{i}", _norm(u)),
                    ("multi_head_attention", f"attn_{i}", _attention(u, h, u // h)),
                    ("layer_normalization", f"norm_b{i}", _norm(u)),
                    ("dense", f"ff_in_{i}", _dense(u, d)), ("dense", f"ff_out_{i}", _dense(d, u))]
        return out + [("layer_normalization", "norm_out", _norm(u)), ("dense", "logits", _dense(u, V))]
    out = [("embedding", "embed", {"vars/0": (V, E)})]
    for i in range(n):
        inputs = E if i == 0 else 2 * u
        out.append(("bidirectional", f"bilstm_{i}",
                    {**_lstm("forward_layer/cell/", inputs, u), **_lstm("backward_layer/cell/", inputs, u)}))
    if arch == "attention":
        out += [("multi_head_attention", "self_attention", _attention(2 * u, h, max(1, 2 * u // h))),
                ("layer_normalization", "attention_norm", _norm(2 * u))]
    return out + [("time_distributed", "per_step", _dense(2 * u, d, "layer/")), ("dense", "logits", _dense(w * d, V))]


def read_weights(path, arch, vocab_size, hp):
    """{layer name in model.py: its float32 arrays, in layout() order} from a Keras `.weights.h5`.

    Raises ValueError with one line naming the file when its layout or a shape does not fit the network.
    Anything beside `layers/` (the optimizer's state of a training checkpoint) is not read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights not found")
    what = f"the {arch} network of {vocab_size} tokens ({', '.join(f'{k} {hp[k]}' for k in ARCH_KEYS[:-1])})"
    try:
        with h5py.File(path, "r") as f:
            try:
                return _match(f, layout(arch, vocab_size, hp))
            except ValueError as e:
                raise ValueError(f"{path}: weights do not fit {what}: {e}") from None
    except OSError as e:  # h5py's word for a file that is not HDF5 or was cut short
        raise ValueError(f"{path}: not a readable weights file ({str(e).splitlines()[0]})") from None


def _match(f, expected):
    layers = f.get("layers")
    if not isinstance(layers, h5py.Group):
        raise ValueError("no 'layers' group, so not a Keras 3 weights file")
    stored, by_kind = {}, {}
    for key, group in layers.items():
        datasets = {}
        if isinstance(group, h5py.Group):
            group.visititems(lambda name, obj: datasets.update({name: obj})
                             if isinstance(obj, h5py.Dataset) else None)
        if datasets:  # dropout, flatten and the input hold none
            stored[key] = (group, datasets)
            kind, n = re.fullmatch(r"(.*?)(?:_(\d+))?", key).groups()
            by_kind.setdefault(kind, []).append((int(n or 0), key))
    want = {}
    for kind, name, shapes in expected:
        want.setdefault(kind, []).append((name, shapes))
    for kind in sorted(set(by_kind) | set(want)):
        have, need = len(by_kind.get(kind, ())), len(want.get(kind, ()))
        if have != need:
            raise ValueError(f"the file holds {have} '{kind}' layer(s) with weights, the network {need}")
    out = {}
    for kind, layers in want.items():
        for (_, key), (name, shapes) in zip(sorted(by_kind[kind]), layers):
            group, datasets = stored[key]
            # Keras records each layer's own name beside its weights: proof the order is the expected one
            recorded = group["vars"].attrs.get("name") if isinstance(group.get("vars"), h5py.Group) else None
            recorded = recorded.decode() if isinstance(recorded, bytes) else recorded
            if recorded is not None and recorded != name:
                raise ValueError(f"layers/{key} is the layer '{recorded}' where '{name}' belongs")
            if set(datasets) != set(shapes):
                raise ValueError(f"layers/{key} holds {sorted(datasets)}, expected {sorted(shapes)}")
            for sub, shape in shapes.items():
                if datasets[sub].shape != shape:
                    raise ValueError(f"layers/{key}/{sub} has shape {datasets[sub].shape}, expected {shape}")
            out[name] = [np.asarray(datasets[sub][()], np.float32) for sub in shapes]
    return out
