"""What every architecture fills in: its registry entry (Arch), the NumPy net and stepper it subclasses,
and the stepper over its Keras layers that the NumPy one is tested against.

The checks live here, once: token ids and seeds, and logits that come out NaN or infinite. Such logits
(weights that overflow float32, say) would turn every probability into NaN, on which sampling never
finds a token; one comparison of the [batch, V] logits per step costs nothing beside the step. NumPy's
overflow warnings are silenced while a net runs: the check says what went wrong, in the one line a
failing command prints. And the size guard (at the end): what a network needs in memory, to train or to
compose, against what is free, so that a window or width no machine holds is refused before it allocates.
"""
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .layers import QUERY_BLOCK
from .weights import ARCH_KEYS, arch_hparams, read

# what overflow leaves is an infinity or a NaN, which the logits' check catches
QUIET = {"over": "ignore", "invalid": "ignore"}


@dataclass(frozen=True)
class Arch:
    """One network of the registry (vgmusic.nets.ARCHS)."""

    name: str
    # causal: logits at every position, from any context of 1 to `window` tokens; one training window
    # then gives `window` targets. The others read exactly `window` tokens and predict the one after.
    many_to_many: bool
    build: Callable  # (vocab_size, hparams) -> the keras.Model to train; imports Keras when called
    layout: Callable  # (vocab_size, hparams) -> [(kind, layer name, {path: shape})], what Keras saves
    numpy_net: type  # (arch, vocab_size, hparams, weights_path) -> a NumpyNet
    keras_stepper: type  # (arch, keras model, window, batch) -> a KerasStepper
    # whether hparams "style" gives it a style embedding (vgmusic.nets.weights.OPTIONAL_KEYS); the others
    # read a --style model's style token as the first token of the window, and nothing more
    style_embedding: bool = False

    def min_seed(self, window):
        """The fewest seed tokens a stepper starts from."""
        return 1 if self.many_to_many else int(window)


def check_ids(ids, vocab_size, ndim, what):
    ids = np.asarray(ids)
    if ids.ndim != ndim or ids.dtype.kind not in "iu":
        raise ValueError(f"{what} must be a {ndim}-D integer array, got shape {ids.shape} of {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{what}: token ids must lie in 0..{vocab_size - 1}, got {ids.min()}..{ids.max()}")
    return ids


class NumpyNet:
    """A network with the weights Keras saved, run in NumPy (float32, inference: no dropout).

    An architecture's subclass sets `Stepper` and defines `_load(weights)`, which takes the arrays of
    every layer by name, and `_forward(ids)`.
    """

    Stepper = None

    def __init__(self, arch, vocab_size, hparams, weights_path):
        bad = [k for k in ARCH_KEYS[:-1] if not isinstance(hparams.get(k), int) or hparams[k] < 1]
        if bad or "dropout" not in hparams:
            raise ValueError(f"hyper-parameters need {', '.join(ARCH_KEYS)} (positive integers but dropout), "
                             f"got {hparams}")
        self.spec, self.arch = arch, arch.name
        self.vocab_size, self.path = int(vocab_size), Path(weights_path)
        self.hparams = arch_hparams(hparams)
        self.window = int(hparams["window"])
        self.causal = arch.many_to_many
        self.guard(1)  # before the weights are read: a sidecar's window or width may ask for any size
        self._load(read(self.path, arch, self.vocab_size, self.hparams))

    def forward(self, ids):
        """Logits of ids [B, T]: [B, T, V] for the many-to-many networks, [B, V] for the others."""
        ids = check_ids(ids, self.vocab_size, 2, "ids")
        with np.errstate(**QUIET):
            return self.finite(self._forward(ids))

    def stepper(self, batch=1):
        """Sampling state for `batch` sequences: start(seed ids [batch, s]) and step(ids [batch]) -> logits."""
        self.guard(batch)
        return self.Stepper(self, batch)

    def guard(self, rows):
        """Refuse, in one line, to run `rows` sequences at once where that needs more memory than is free:
        the weights, and what a pass over a whole window computes (see composing_memory)."""
        need, have = composing_memory(self.spec, self.vocab_size, self.hparams, rows), free_memory()
        if have is not None and need > FREE_SHARE * have:
            sizes = ", ".join(f"{k} {self.hparams[k]}" for k in ARCH_KEYS[:-1])
            raise ValueError(f"{self.path}: composing {rows} song(s) at once with this {self.arch} network ({sizes}) "
                             f"needs about {need / 1e9:.1f} GB, more than the {have / 1e9:.1f} GB free here")

    def finite(self, logits):
        if not np.isfinite(logits).all():
            raise ValueError(f"{self.path}: the {self.arch} network's logits came out NaN or infinite; "
                             f"retrain or use the other weights file")
        return logits


class Stepper:
    """start(seed ids [batch, s]; a 1-D seed serves every row) -> next-token logits [batch, V];
    step(ids [batch]) feeds one token per row -> the logits after it.

    A subclass defines _start(seed [batch, s], checked), _step(ids [batch], checked) and _repeat(rep),
    which applies rep to every array of its state that has a row per sequence; and may define
    _advance(ids), _step without computing the logits (advance).
    """

    def __init__(self, net, batch):
        if int(batch) < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.net, self.batch = net, int(batch)

    def start(self, seed):
        seed = self._seed(seed)
        with np.errstate(**QUIET):
            return self.net.finite(self._start(seed))

    def step(self, ids):
        ids = self._ids(ids)
        with np.errstate(**QUIET):
            return self.net.finite(self._step(ids))

    def advance(self, ids):
        """step without its logits, for a step whose logits nobody reads (a replayed phrase's tokens): a
        subclass with _advance(ids) skips the output layers; the state moves on as step moves it."""
        if not hasattr(self, "_advance"):
            self.step(ids)
            return None
        ids = self._ids(ids)
        with np.errstate(**QUIET):
            self._advance(ids)
        return None

    def expand(self, k):
        """Every row becomes k rows (row i -> rows i*k ... i*k+k-1) that go on from the same state: the
        candidates of one song share the work of reading it."""
        self.net.guard(self.batch * k)
        self.batch *= k
        self._repeat(lambda a: np.repeat(a, k, axis=0))

    def _seed(self, seed):
        seed = np.asarray(seed)
        if seed.ndim == 1:
            seed = np.tile(seed[None], (self.batch, 1))
        seed = check_ids(seed, self.net.vocab_size, 2, "seed")
        if len(seed) != self.batch:
            raise ValueError(f"seed has {len(seed)} rows for a batch of {self.batch}")
        least = self.net.spec.min_seed(self.net.window)
        if seed.shape[1] < least:
            raise ValueError(f"a {self.net.arch} network needs a seed of at least {least} tokens, "
                             f"got {seed.shape[1]}")
        return seed

    def _ids(self, ids):
        # one song's step, as the decoding loop feeds it (an int64 array of one id): checked in Python, a
        # third of the time of check_ids' NumPy reductions, on every one of a song's 1,500 steps
        if type(ids) is np.ndarray and ids.shape == (1,) == (self.batch,) and ids.dtype == np.int64 \
                and 0 <= ids.item() < self.net.vocab_size:
            return ids
        ids = check_ids(np.reshape(ids, -1), self.net.vocab_size, 1, "ids")
        if len(ids) != self.batch:
            raise ValueError(f"step got {len(ids)} ids for a batch of {self.batch}")
        return ids


class KerasStepper:
    """Sampling state over the Keras layers (their cells eagerly, or the whole model as a tf.function),
    behind the interface of the NumPy steppers, all NumPy in and out. It is the reference the NumPy path
    is tested against, and a fallback; speed is secondary. A subclass defines _start(seed [batch, s]),
    _step(ids [batch]) and _repeat(rep).
    """

    def __init__(self, arch, model, window, batch=1):
        self.spec, self.arch, self.model, self.window, self.batch = arch, arch.name, model, int(window), int(batch)

    def start(self, seed):
        seed = np.asarray(seed, np.int32)
        seed = np.tile(seed[None], (self.batch, 1)) if seed.ndim == 1 else seed
        if seed.ndim != 2 or len(seed) != self.batch or seed.shape[1] < 1:
            raise ValueError(f"seed must be [batch {self.batch}, tokens], got shape {seed.shape}")
        if seed.shape[1] < self.spec.min_seed(self.window):
            raise ValueError(f"a {self.arch} network needs a seed of at least {self.window} tokens, "
                             f"got {seed.shape[1]}")
        return self._finite(self._start(seed))

    def step(self, ids):
        return self._finite(self._step(np.asarray(ids, np.int32).reshape(self.batch)))

    def expand(self, k):
        """Every row becomes k rows going on from the same state, as the NumPy steppers do."""
        self.batch *= k
        self._repeat(lambda a: np.repeat(np.asarray(a), k, axis=0))

    def _finite(self, logits):
        logits = np.asarray(logits)
        if not np.isfinite(logits).all():
            raise ValueError(f"the Keras {self.arch} network's logits came out NaN or infinite; "
                             f"retrain or use the other weights file")
        return logits


class KerasWindowStepper(KerasStepper):
    """Keeps the last `window` tokens and re-runs the model on them, traced once per window shape; a
    many-to-many network also reads a shorter context, at positions from 0."""

    def _start(self, seed):
        self.buffer = seed[:, -self.window:]
        return self._logits()

    def _step(self, ids):
        full = self.buffer.shape[1] == self.window
        self.buffer = np.concatenate([self.buffer[:, 1:] if full else self.buffer, ids[:, None]], 1)
        return self._logits()

    def _repeat(self, rep):
        self.buffer = rep(self.buffer)

    def _logits(self):
        if getattr(self, "_call", None) is None:
            # a graph per window shape (a shorter context while the song is young, then the full one): run
            # eagerly, a recurrent layer's loop went op by op, 0.28 s a step for the attention network on a
            # 48-token window
            import tensorflow as tf
            self._call = tf.function(lambda x: self.model(x, training=False))
        out = np.asarray(self._call(np.asarray(self.buffer, np.int32)))
        return out[:, -1] if self.spec.many_to_many else out


# --- the size guard: what a network needs in memory, against what this machine has free ----------------

FREE_SHARE = 0.8  # the share of the free memory a run may count on: the rest is the system's and others'
# Composing keeps, beside each layer's outputs, about as much again in temporaries (x W, then + b, ...).
COMPOSING_KEPT = {None: 2}
# Training (Keras 3.15 on TensorFlow 2.21, CPU), fitted to the peak RSS of runs of one step, one validation
# and one save (tests/test_limits.py MEASURED: lstm of 256 to 4096 units, 2 and 4 layers, windows 75 and
# 300, batches 64 to 256; transformer windows 512 and 1024; attention; bilstm 512 and 1024 units), each
# figure then rounded up by about a fifth: TensorFlow and Keras themselves 0.63 GB; per weight 10.2 floats
# (itself, its gradient, Adam's two moments, and the epoch's weights files, built in memory: saving is the
# peak); per float activation_floats counts, 2.3-2.5 kept for the backward pass, 11.3 in a Bidirectional LSTM.
TRAINING_BASE, TRAINING_PER_WEIGHT, TRAINING_KEPT = 0.8e9, 12, {"bidirectional": 13, None: 3}


def free_memory():
    """Bytes of memory this process may still take: the kernel's MemAvailable (free, plus the caches it
    gives back), or less where a cgroup (a container) sets a limit; None where neither can be read."""
    have = None
    try:
        with open("/proc/meminfo") as f:
            have = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            pass
    # cgroup v2, then v1: the limit less what is used, page cache that can be dropped counted as free
    for folder, limit, used, cache in (("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),
                                       ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                                        "total_inactive_file")):
        try:
            folder = Path(folder)
            stat = dict(line.split()[:2] for line in (folder / "memory.stat").read_text().splitlines())
            room = int((folder / limit).read_text()) - int((folder / used).read_text()) + int(stat.get(cache, 0))
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        have = room if have is None else min(have, room)
    return have


def weight_count(arch, vocab_size, hp):
    """The network's parameters, exactly: every array of its layout."""
    return sum(math.prod(shape) for _, _, shapes in arch.layout(vocab_size, hp) for shape in shapes.values())


def activation_floats(arch, vocab_size, hp, training=False, kept=COMPOSING_KEPT):
    """Floats one window of `window` tokens makes the network compute, about, each layer's times what is
    kept of it (kept[layer kind], else kept[None]). At every position, each layer's outputs, read off its
    weights: one per bias (an LSTM's four gates, a dense layer's units, an attention's queries, keys and
    values) or per embedding dimension; a network predicting the token after its window computes its last
    layer once. And each attention's scores, heads x window x keys: in training every layer's over the whole
    window; in composing one layer's at a time (the NumPy net reuses them), causal ones QUERY_BLOCK queries
    at once."""
    window, layers = int(hp["window"]), arch.layout(vocab_size, hp)
    total, scores = 0, [0]
    for i, (kind, _, shapes) in enumerate(layers):
        if kind in ("embedding", "position_embedding"):
            width = shapes["vars/0"][-1]
        else:
            width = sum(math.prod(s) for path, s in shapes.items() if len(s) == 1 or path.endswith("_dense/vars/1"))
        times = kept.get(kind, kept[None])
        if "query_dense/vars/0" in shapes:  # an attention of any kind: MultiHeadAttention or a subclass
            keys = window if training or not arch.many_to_many else min(window, QUERY_BLOCK)
            scores.append(times * shapes["query_dense/vars/0"][1] * window * keys)
        total += times * width * (1 if i == len(layers) - 1 and not arch.many_to_many else window)
    return total + (sum(scores) if training else max(scores))


def composing_memory(arch, vocab_size, hp, rows=1):
    """Bytes composing `rows` sequences at once needs, about: the float32 weights and, per row, a pass over
    a whole window (a seed's, and every step of the networks that re-read their window)."""
    return 4 * (weight_count(arch, vocab_size, hp) + rows * activation_floats(arch, vocab_size, hp))


def training_memory(arch, vocab_size, hp, batch_size):
    """Bytes training needs, about (see TRAINING_KEPT), and what they are, in words."""
    params = weight_count(arch, vocab_size, hp)
    weights = 4 * TRAINING_PER_WEIGHT * params
    acts = 4 * batch_size * activation_floats(arch, vocab_size, hp, True, TRAINING_KEPT)
    return TRAINING_BASE + weights + acts, (
        f"{params:,} weights: {weights / 1e9:.1f} GB with their gradients, Adam's moments and the saved files; "
        f"{acts / 1e9:.1f} GB of activations for batches of {batch_size}")
