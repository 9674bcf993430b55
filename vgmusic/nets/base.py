"""What every architecture fills in: its registry entry (Arch), the NumPy net and stepper it subclasses,
and the stepper over its Keras layers that the NumPy one is tested against.

The checks live here, once: token ids and seeds, and logits that come out NaN or infinite. Such logits
(weights that overflow float32, say) would turn every probability into NaN, on which sampling never
finds a token; one comparison of the [batch, V] logits per step costs nothing beside the step. NumPy's
overflow warnings are silenced while a net runs: the check says what went wrong, in the one line a
failing command prints.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .weights import ARCH_KEYS, read

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
        self.hparams = {k: hparams[k] for k in ARCH_KEYS}
        self.window = int(hparams["window"])
        self.causal = arch.many_to_many
        self._load(read(self.path, arch, self.vocab_size, self.hparams))

    def forward(self, ids):
        """Logits of ids [B, T]: [B, T, V] for the many-to-many networks, [B, V] for the others."""
        ids = check_ids(ids, self.vocab_size, 2, "ids")
        with np.errstate(**QUIET):
            return self.finite(self._forward(ids))

    def stepper(self, batch=1):
        """Sampling state for `batch` sequences: start(seed ids [batch, s]) and step(ids [batch]) -> logits."""
        return self.Stepper(self, batch)

    def finite(self, logits):
        if not np.isfinite(logits).all():
            raise ValueError(f"{self.path}: the {self.arch} network's logits came out NaN or infinite; "
                             f"retrain or use the other weights file")
        return logits


class Stepper:
    """start(seed ids [batch, s]; a 1-D seed serves every row) -> next-token logits [batch, V];
    step(ids [batch]) feeds one token per row -> the logits after it.

    A subclass defines _start(seed [batch, s], checked), _step(ids [batch], checked) and _repeat(rep),
    which applies rep to every array of its state that has a row per sequence.
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

    def expand(self, k):
        """Every row becomes k rows (row i -> rows i*k ... i*k+k-1) that go on from the same state: the
        candidates of one song share the work of reading it."""
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
        ids = check_ids(np.reshape(ids, -1), self.net.vocab_size, 1, "ids")
        if len(ids) != self.batch:
            raise ValueError(f"step got {len(ids)} ids for a batch of {self.batch}")
        return ids


class KerasStepper:
    """Sampling state over the Keras layers, run eagerly, behind the interface of the NumPy steppers, all
    NumPy in and out. It is the reference the NumPy path is tested against, and a fallback; speed is
    secondary. A subclass defines _start(seed [batch, s]), _step(ids [batch]) and _repeat(rep).
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
    """Keeps the last `window` tokens and re-runs the model on them; a many-to-many network also reads a
    shorter context, at positions from 0."""

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
        out = np.asarray(self.model(self.buffer, training=False))
        return out[:, -1] if self.spec.many_to_many else out
