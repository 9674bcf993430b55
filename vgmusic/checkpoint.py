"""The checkpoint format: one home for what training writes and composing reads.

A model folder holds `model.json` (the sidecar: everything needed to rebuild, check and
use the weights) beside `best.weights.h5` (weights only, what composing loads) and
`last.weights.h5` (weights plus optimizer state, what --resume continues from). Keras writes
the weights; read_weights (from vgmusic.nets, beside each network's layout) reads them back without Keras.
This module imports neither TensorFlow nor Keras, so composing stays light.
"""
import contextlib
import csv
import datetime
import io
import hashlib
import json
import math
import statistics
import subprocess
from pathlib import Path

from . import ROOT, __version__
from .characters import valid as _characters
from .cli import interruption, uninterrupted  # noqa: F401  (moved to cli; train.py imports them here)
from .config import BPM_RANGE
from .encode import Vocab, get_encoding
from .nets import ARCH_KEYS, layout, read_weights  # noqa: F401 (read_weights and layout: re-exported)
from .nets import ARCHS as _ARCHS
from .store import atomic_path, read_json

SIDECAR = "model.json"
# 2: best weights carry no optimizer state; tempo, code version and baselines recorded.
# 3: the sidecar records the sha256 of the weights files it describes, and loading checks them.
FORMAT = 3
READABLE = (2, 3)  # format 2 (the models shipped before) loads as it is, without the check
WEIGHTS = {"best": "best.weights.h5", "last": "last.weights.h5"}
HISTORY, CURVE = "history.csv", "learning_curve.png"
ARCHS = tuple(_ARCHS)  # the names of vgmusic.nets' registry, which a sidecar's arch must be one of
TRAINING_KEYS = ("batch_size", "learning_rate", "patience", "select", "seed", "stride", "transpose", "diatonic",
                 "split_seed", "val_fraction", "max_steps", "budget", "game_weight")
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
    tempos = [s.bpm for s in train if s.bpm]  # a corpus of shards keeps no tempo
    return {
        "format": FORMAT,
        "game": cfg.game,
        "encoding": enc.spec(),
        "arch": cfg.arch,
        # a --style LSTM adds its style embedding (vgmusic/nets/lstm.py); other sidecars stay as they were
        "hparams": {**{k: getattr(cfg, k) for k in ARCH_KEYS},
                    **({"style": True} if cfg.style and _ARCHS[cfg.arch].style_embedding else {})},
        "training": {k: getattr(cfg, k) for k in TRAINING_KEYS},
        "vocab_hash": vocab.hash,
        "vocab": vocab.tokens,
        "songs": {part: [[s.meta["source"], s.meta["file"], s.meta["sha256"]] for s in group]
                  for part, group in (("train", train), ("val", val))},
        # songs are not shipped, so composing without them plays at the training songs' typical tempo
        "tempo": round(statistics.median(tempos), 1) if tempos else 120.0,
        "versions": dict(versions, vgmusic=code_version()),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "epochs_done": 0, "best_epoch": None, "best_val_loss": None, "best_score": None,
    }


def _number(v):
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an integer beyond any float: JSON reads one of 400 digits as it is
        return False


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
        return f"encoding {json.dumps(meta['encoding'])[:80]}: {str(e)[:120]}"
    if enc.spec() != meta["encoding"]:
        return f"encoding {json.dumps(meta['encoding'])[:80]} is not one this code writes ({json.dumps(enc.spec())})"
    if meta["arch"] not in ARCHS:
        return f"unknown architecture {meta['arch']!r:.40}; known: {', '.join(ARCHS)}"
    hp = meta["hparams"]
    from dataclasses import fields

    from .config import TrainConfig
    # the ranges training allows: a window of 1e9 would otherwise be read as one, and composing allocate for it
    allowed = {f.name: f.metadata["check"] for f in fields(TrainConfig)}
    for k in ARCH_KEYS:
        if k not in hp:
            return f"hparams lack {k}"
        if not (_number(hp[k]) and 0 <= hp[k] < 1 if k == "dropout" else _count(hp[k], 1)):
            return f"hparams {k} is {hp[k]!r:.40}, not {'a fraction' if k == 'dropout' else 'a positive integer'}"
        if not allowed[k][0](hp[k]):
            return f"hparams {k} is {hp[k]!r:.40}, not {allowed[k][1]} as training allows"
    styled = hp.get("style", False)
    if not isinstance(styled, bool) or styled and not _ARCHS[meta["arch"]].style_embedding:
        return f"hparams style is {hp['style']!r:.40}, not a boolean of a network with a style embedding"
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
                "select": (lambda v: v in ("val_pitch", "val_loss", "last"), "val_pitch, val_loss or last"),
                "training": (lambda v: isinstance(v, dict), "an object"),
                "weights_sha256": (lambda v: v is None or isinstance(v, dict) and set(v) <= set(WEIGHTS) and all(
                    isinstance(h, str) and len(h) == 64 for h in v.values()), "sha256 digests of best and last"),
                "created": (lambda v: isinstance(v, str), "a date"),
                "tokens_per_event": (lambda v: v is None or _number(v) and v > 0, "a positive number"),
                "best_val_loss_per_event": (lambda v: v is None or _number(v), "a number"),
                # a --style model: source name -> one of its vocabulary's control tokens
                "styles": (lambda v: isinstance(v, dict) and all(
                    isinstance(k, str) and t in tokens and t.startswith("<") for k, t in v.items()),
                           "source names and their control tokens"),
                # vgmusic/calibrate.py: a logit offset for some of the vocabulary's rhythm tokens
                "rhythm_prior": (lambda v: _prior(v, tokens),
                                 "an object whose bias gives vocabulary tokens offsets of at most 10"),
                # calibrate --style: one such prior per source, each measured on that source's songs
                "style_priors": (lambda v: isinstance(v, dict) and v and all(
                    isinstance(k, str) and k and _prior(p, tokens) for k, p in v.items()),
                                 "source names, each with a prior whose bias gives vocabulary tokens offsets of at "
                                 "most 10"),
                # vgmusic/characters.py: each training song's repeat penalty
                "characters": (_characters, "an object whose songs each give a source, file, events and a repeat "
                                            "penalty from 0.01 to 10")}
    for key, (ok, what) in optional.items():
        if key in meta and not ok(meta[key]):
            return f"'{key}' should be {what}, is {json.dumps(meta[key])[:40]}"
    return None


def _prior(v, tokens):
    """A calibrated prior: {"bias": {vocabulary token: logit offset within +-10}, ...}."""
    return isinstance(v, dict) and isinstance(v.get("bias"), dict) and all(
        t in tokens and _number(b) and abs(b) <= 10 for t, b in v["bias"].items())


def read_sidecar(folder):
    """The checked sidecar of a model folder, or a one-line error naming the file and what is wrong."""
    folder = Path(folder)
    path = folder / SIDECAR
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no trained model here (run train.py first)")
    meta = read_json(path, "model sidecar")
    if isinstance(meta, dict) and meta.get("format", FORMAT) not in READABLE:
        raise ValueError(f"{path}: model format {json.dumps(meta['format'])} is not one of "
                         f"{', '.join(map(str, READABLE))}; re-train it")
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


def check_weights_file(path, meta, which="best"):
    """Refuse a weights file that is not the very one its sidecar describes (by the sha256 the sidecar
    records), so another model's weights of the same shape never load silently. Called once the file has
    been read, so that a damaged file is named for what is wrong with it."""
    want = (meta.get("weights_sha256") or {}).get(which)
    if want is None:
        return  # a sidecar of format 2 records none
    with open(path, "rb") as f:
        got = hashlib.file_digest(f, "sha256").hexdigest()
    if got != want:
        raise ValueError(f"{path}: not the weights {SIDECAR} beside it describes (sha256 differs): another "
                         f"model's file? Keep a model's folder whole, or train again")


# --- writing an epoch's files -----------------------------------------------------------------------

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
