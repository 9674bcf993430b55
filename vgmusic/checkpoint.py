"""The checkpoint format: one home for what training writes and composing reads.

A model folder holds `model.json` (the sidecar: everything needed to rebuild, check and
use the weights) beside `best.weights.h5` (weights only, what composing loads) and
`last.weights.h5` (weights plus optimizer state, what --resume continues from). Keras writes
the weights; read_weights reads them back without Keras, for infer.py.
This module imports neither TensorFlow nor Keras, so composing stays light.
"""
import contextlib
import csv
import datetime
import io
import json
import math
import re
import signal
import statistics
import subprocess
from pathlib import Path

import h5py
import numpy as np

from . import ROOT, __version__
from .config import BPM_RANGE, Terminated
from .encode import Vocab, get_encoding
from .store import atomic_path, read_json

SIDECAR = "model.json"
FORMAT = 2  # 2: best weights carry no optimizer state; tempo, code version and baselines recorded
WEIGHTS = {"best": "best.weights.h5", "last": "last.weights.h5"}
HISTORY, CURVE = "history.csv", "learning_curve.png"
ARCHS = ("lstm", "bilstm", "attention", "transformer")  # what layout() knows; model.ARCHS builds them
# Hyper-parameters that define the weights' shapes; the networks are rebuilt from exactly these.
ARCH_KEYS = ("window", "embed_dim", "units", "layers", "heads", "dense", "dropout")
TRAINING_KEYS = ("batch_size", "learning_rate", "patience", "select", "seed", "stride", "transpose", "diatonic",
                 "split_seed", "val_fraction", "max_steps", "budget")
# key -> type every sidecar must have; loading checks these so a damaged file fails in one line
REQUIRED = {"format": int, "game": str, "encoding": dict, "arch": str, "hparams": dict, "vocab": list,
            "vocab_hash": str, "songs": dict}
JSON_TYPES = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list",
              bool: "a boolean"}


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


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _count(v, least=0):
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _check(meta):
    """What is wrong with a sidecar, in a few words, or None: every field anything reads, so that a
    damaged file fails here, in one line, rather than deep in composing or training."""
    if not isinstance(meta, dict):
        return f"expected a JSON object, found {type(meta).__name__}"
    for key, kind in REQUIRED.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            found = "missing" if key not in meta else JSON_TYPES.get(type(meta[key]), "null")
            return f"'{key}' should be {JSON_TYPES[kind]}, is {found}"
    try:
        enc = get_encoding(meta["encoding"])
    except (ValueError, TypeError, KeyError) as e:
        return f"encoding {json.dumps(meta['encoding'])}: {e}"
    if enc.spec() != meta["encoding"]:
        return f"encoding {json.dumps(meta['encoding'])} is not one this code writes ({json.dumps(enc.spec())})"
    if meta["arch"] not in ARCHS:
        return f"unknown architecture {meta['arch']!r}; known: {', '.join(ARCHS)}"
    hp = meta["hparams"]
    for k in ARCH_KEYS:
        if k not in hp:
            return f"hparams lack {k}"
        if not (_number(hp[k]) and 0 <= hp[k] < 1 if k == "dropout" else _count(hp[k], 1)):
            return f"hparams {k} is {hp[k]!r}, not {'a fraction' if k == 'dropout' else 'a positive integer'}"
    tokens = meta["vocab"]
    if not tokens or not all(isinstance(t, str) for t in tokens) or len(set(tokens)) != len(tokens):
        return "vocab should be distinct token strings"
    for part in ("train", "val"):
        entries = meta["songs"].get(part)
        if not isinstance(entries, list) or not all(
                isinstance(e, list) and len(e) == 3 and all(isinstance(x, str) for x in e) for e in entries):
            return f"songs.{part} should be a list of [source, file, sha256]"
    # written by every training run; checked where present, as older files may lack them
    optional = {"tempo": (lambda v: v is None or _number(v) and BPM_RANGE[0] <= v <= BPM_RANGE[1],
                          f"beats per minute, {BPM_RANGE[0]:g} to {BPM_RANGE[1]:g}"),
                "baselines": (lambda v: isinstance(v, dict) and all(map(_number, v.values())), "an object of numbers"),
                "epochs_done": (_count, "a count"),
                "best_epoch": (lambda v: v is None or _count(v, 1) and v <= meta.get("epochs_done", v),
                               "an epoch done"),
                "best_score": (lambda v: v is None or _number(v), "a number"),
                "best_val_loss": (lambda v: v is None or _number(v), "a number"),
                "select": (lambda v: v in ("val_pitch", "val_loss"), "val_pitch or val_loss"),
                "training": (lambda v: isinstance(v, dict), "an object"),
                "created": (lambda v: isinstance(v, str), "a date")}
    for key, (ok, what) in optional.items():
        if key in meta and not ok(meta[key]):
            return f"'{key}' should be {what}, is {json.dumps(meta[key])[:40]}"
    return None


def read_sidecar(folder):
    """The checked sidecar of a model folder, or a one-line error naming the file and what is wrong."""
    folder = Path(folder)
    path = folder / SIDECAR
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no trained model here (run train.py first)")
    meta = read_json(path, "model sidecar")
    if isinstance(meta, dict) and meta.get("format", FORMAT) != FORMAT:
        raise ValueError(f"{path}: model format {json.dumps(meta['format'])} is not {FORMAT}; re-train it")
    wrong = _check(meta)
    if wrong:
        raise ValueError(f"{path}: damaged sidecar ({wrong})")
    vocab = Vocab(meta["vocab"])
    if vocab.hash != meta["vocab_hash"]:
        raise ValueError(f"{path}: vocabulary does not match its recorded hash")
    return meta, vocab


def remove_temporaries(folder):
    """Delete what a killed run left: store.atomic_path's hidden .<stem>.XXXX<suffixes> files of every file
    training writes. A run removes them before its first write."""
    folder = Path(folder)
    for name in (SIDECAR, *WEIGHTS.values(), HISTORY, CURVE):
        stem, _, suffixes = name.partition(".")
        for tmp in folder.glob(f".{stem}.*.{suffixes}"):
            tmp.unlink(missing_ok=True)


def weights_path(folder, which="best"):
    if which not in WEIGHTS:
        raise ValueError(f"--which must be one of {', '.join(WEIGHTS)}, got {which!r}")
    path = Path(folder) / WEIGHTS[which]
    if not path.exists():
        raise FileNotFoundError(f"{path}: weights not found (training never finished an epoch?)")
    return path


# --- writing an epoch's files -----------------------------------------------------------------------

def interruption(signum):
    """The exception config.run_command turns into one line and exit 130 (Ctrl-C) or 143 (SIGTERM)."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def uninterrupted():
    """Hold Ctrl-C and SIGTERM until the block is done, then raise them: the block's files all land."""
    caught = []
    held = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(s) is not signal.SIG_IGN}  # an ignored one stays ignored (nohup)
    try:
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
    if caught:
        raise interruption(caught[0])


def write_together(folder, files):
    """Write {name: text or bytes} into `folder`, each to a temporary file beside its target, then rename
    them all into place in order, only once every one is written: a full disk leaves the old files whole.
    A failed write names its target, not the hidden temporary file."""
    folder = Path(folder)
    with contextlib.ExitStack() as stack:
        # contexts unwind last-in first-out, so enter them backwards: the renames then go in order
        temps = {name: stack.enter_context(atomic_path(folder / name)) for name in reversed(list(files))}
        for name, data in files.items():
            try:
                (temps[name].write_bytes if isinstance(data, bytes) else temps[name].write_text)(data)
            except OSError as e:
                e.filename = str(folder / name)
                raise


def history_text(rows):
    """history.csv: one row per epoch, its losses and seconds."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["epoch", "loss", "val_loss", "seconds"])
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_history(path, epochs):
    """The first `epochs` rows of history.csv as numbers, or a one-line error naming the file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: missing, yet the sidecar counts {epochs} epochs; cannot --resume")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = reader.fieldnames or []
        missing = {"epoch", "loss", "val_loss"} - set(fields)
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))} column")
        rows = [{k: float(v) for k, v in row.items()} for row in rows[:epochs]]
    except (ValueError, TypeError, csv.Error) as e:  # a short or long row gives float(None or a list)
        raise ValueError(f"{path}: damaged history ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                         f"cannot --resume") from None
    if [r["epoch"] for r in rows] != list(range(1, epochs + 1)):
        found = ", ".join(f"{r['epoch']:g}" for r in rows[:8])
        raise ValueError(f"{path}: damaged history (epochs {found or 'none'}; the sidecar counts {epochs}); "
                         f"cannot --resume")
    return [dict(r, epoch=int(r["epoch"])) for r in rows]


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
    # h5py's words for a file that is not HDF5 or was cut short (OSError) or damaged inside (the others)
    except (OSError, RuntimeError, KeyError) as e:
        reason = str(e).strip("'\"").splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a readable weights file ({reason})") from None


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
