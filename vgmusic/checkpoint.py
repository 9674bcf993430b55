"""The checkpoint format: one home for what training writes and composing reads.

A model folder holds `model.json` (the sidecar: everything needed to rebuild, check and
use the weights) beside `best.weights.h5` (weights only, what composing loads) and
`last.weights.h5` (weights plus optimizer state, what --resume continues from).
This module imports neither TensorFlow nor Keras, so composing stays light.
"""
import datetime
import statistics
import subprocess
from pathlib import Path

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
