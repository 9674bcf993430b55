"""Choosing tokens from a network's logits, apart from any network (as KerasHub keeps its samplers):
temperature, top-k and nucleus (top-p) sampling, argmax, and the log-probabilities loops are scored by.

The temperature rule: 0 is the original's argmax; any other temperature divides the logits. A temperature
so small that the division overflows (1e-320 does) gives what its limit is, the argmax's distribution,
instead of NaN probabilities; logits that are not finite (a diverged network) are refused in one line."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0  # 0, or k at or above the vocabulary: every token
    top_p: float = 1.0

    def __post_init__(self):
        if not 0 <= self.temperature <= 100:
            raise ValueError(f"temperature must be from 0 to 100, got {self.temperature}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise ValueError(f"top-k must be a count of tokens (0: all), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be above 0 and at most 1, got {self.top_p}")


# Logits come from float32 networks, so |z| < 3.5e38: dividing by a temperature of at least this stays finite.
SAFE_TEMPERATURE = 1e-250


def pick(logits, rng, temperature=1.0, top_k=0, top_p=1.0, banned=()):
    """One token per row. One uniform draw per row whatever the settings, so a seed repeats a song
    on either engine. Temperature 0 is the original's argmax. (Called once per token: plain indexing
    rather than NumPy's take/put_along_axis, which cost more than the arithmetic on 200 tokens.)"""
    z = np.array(logits, np.float64)
    if not np.isfinite(z).all():
        raise ValueError("the network's outputs are not finite numbers (NaN or infinity): its weights are "
                         "damaged or training diverged")
    if len(banned):
        z[:, banned] = -np.inf
    u = rng.random(len(z))
    if temperature <= 0:
        return z.argmax(1)
    if temperature >= SAFE_TEMPERATURE:
        z /= temperature
    else:  # the limit of a vanishing temperature: everything but the likeliest goes to 0
        z = np.where(z == z.max(1, keepdims=True), 0.0, -np.inf)
    if 0 < top_k < z.shape[1]:  # k at or above the vocabulary keeps every token
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    if top_p < 1:
        # nucleus: the smallest set of likeliest tokens whose probability reaches top_p
        rows = np.arange(len(p))[:, None]
        order = np.argsort(-p, axis=1, kind="stable")
        sorted_p = p[rows, order]
        drop = np.cumsum(sorted_p, 1) - sorted_p >= top_p
        p[rows, order] = np.where(drop, 0.0, sorted_p)
        p /= p.sum(1, keepdims=True)
    return np.minimum((np.cumsum(p, 1) < u[:, None]).sum(1), p.shape[1] - 1)


def log_probs(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))
