"""Choosing tokens from a network's logits, apart from any network (as KerasHub keeps its samplers):
temperature, top-k and nucleus (top-p) sampling, argmax, and the log-probabilities loops are scored by.

The temperature rule: 0 is the original's argmax; any other temperature divides the logits. A temperature
so small that the division overflows (1e-320 does) gives what its limit is, the argmax's distribution,
instead of NaN probabilities; logits that are not finite (a diverged network) are refused in one line."""
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0  # 0, or k at or above the vocabulary: every token
    top_p: float = 1.0
    # Durations and waits by settings of their own (None: as the pitches). One nucleus over every token
    # cuts the rare rhythms along with the rare leaps (at top-p 0.85, 74% of Pokemon's generated
    # intervals were eighths against 47% in its songs); with either set, which kind of token comes
    # next (pitch, duration, wait) is cut as before, and within each kind its own cut applies.
    rhythm_temperature: float = None
    rhythm_top_p: float = None
    # How likely, against the network's word, a note is to strike the melody's last pitch again (1: as
    # the network says; vgmusic.decode.discourage_repeats). None: the model's game's own (vgmusic/games.py).
    repeat_penalty: float = None
    # How much of the model's rhythm calibration to apply (vgmusic/calibrate.py; None: all of it, 0: none),
    # and the logit offsets [V] themselves, which composing takes from the model (or a caller gives)
    rhythm_prior: float = None
    prior: object = field(default=None, compare=False, repr=False)

    @property
    def by_kind(self):
        return self.rhythm_temperature is not None or self.rhythm_top_p is not None

    def __post_init__(self):
        if not 0 <= self.temperature <= 100:
            raise ValueError(f"temperature must be from 0 to 100, got {self.temperature}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise ValueError(f"top-k must be a count of tokens (0: all), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be above 0 and at most 1, got {self.top_p}")
        if self.rhythm_temperature is not None and not 0.01 <= self.rhythm_temperature <= 100:
            raise ValueError(f"rhythm temperature must be from 0.01 to 100, got {self.rhythm_temperature}")
        if self.repeat_penalty is not None and not 0.01 <= self.repeat_penalty <= 10:
            raise ValueError(f"repeat penalty must be from 0.01 to 10, got {self.repeat_penalty}")
        if self.rhythm_prior is not None and not 0 <= self.rhythm_prior <= 10:
            raise ValueError(f"rhythm prior must be from 0 to 10, got {self.rhythm_prior}")
        if self.rhythm_top_p is not None and not 0 < self.rhythm_top_p <= 1:
            raise ValueError(f"rhythm top-p must be above 0 and at most 1, got {self.rhythm_top_p}")

    def draw(self, logits, rng, banned=(), kinds=None):
        """One token per row by these settings; `kinds` [V] (KIND_GROUPS of each token, see kind_groups)
        is needed only when sampling by kind."""
        if self.prior is not None:  # the rhythm calibration's offsets: the draw itself is unchanged
            logits = np.asarray(logits, np.float32) + self.prior
        if not self.by_kind or self.temperature <= 0:
            return pick(logits, rng, self.temperature, self.top_k, self.top_p, banned)
        if kinds is None:
            raise ValueError("sampling rhythm apart from pitch needs each token's kind")
        rt = self.temperature if self.rhythm_temperature is None else self.rhythm_temperature
        rp = self.top_p if self.rhythm_top_p is None else self.rhythm_top_p
        # one temperature for all when the rhythm's is the pitches' (no per-token array to build each step)
        temperature = self.temperature if rt == self.temperature else np.where(kinds == PITCH, self.temperature, rt)
        return pick(logits, rng, temperature, self.top_k, (self.top_p, rp, rp), banned, kinds)


# the groups a by-kind sampler cuts apart: pitches (and whatever else is sampled), durations, waits
PITCH, DURATION, WAIT = 0, 1, 2
KIND_GROUPS = {"duration": DURATION, "wait": WAIT}


def kind_groups(kinds):
    """Each token's group (PITCH, DURATION, WAIT) from its kind name (vgmusic.encode.token_kind)."""
    return np.array([KIND_GROUPS.get(k, PITCH) for k in kinds], np.int64)


# Logits come from float32 networks, so |z| < 3.5e38: dividing by a temperature of at least this stays finite.
SAFE_TEMPERATURE = 1e-250


def pick(logits, rng, temperature=1.0, top_k=0, top_p=1.0, banned=(), groups=None):
    """One token per row. One uniform draw per row whatever the settings, so a seed repeats a song
    on either engine. Temperature 0 is the original's argmax.

    With `groups` (each token's group id, [V]), `temperature` may be one per token and `top_p` one per
    group: the nucleus is then cut in each group apart, the kept tokens scaled back to the group's share.

    Called once per token on a vocabulary of about 200, so the cost is NumPy's per-call overhead, not the
    arithmetic: a single row (a song composed alone) takes a path of 1-D operations that does exactly
    the arithmetic of the batched one, in the same order, so both give the same token for the same draw
    (tests/test_sampling.py checks them against each other)."""
    z = np.array(logits, np.float64)
    # one sum tells finite logits apart (float32 values cannot add up past float64's range); only a
    # non-finite sum needs the element-wise look that names the fault
    if not math.isfinite(z.sum()) and not np.isfinite(z).all():
        raise ValueError("the network's outputs are not finite numbers (NaN or infinity): its weights are "
                         "damaged or training diverged")
    if len(banned):
        z[:, banned] = -np.inf
    u = rng.random(len(z))
    if np.ndim(temperature) == 0 and temperature <= 0:
        return z.argmax(1)
    cols = None if groups is None else _columns(groups, len(top_p))
    if len(z) == 1:
        return np.array([_pick_row(z[0], u[0], temperature, top_k, top_p, cols)])
    if np.min(temperature) >= SAFE_TEMPERATURE:
        z /= temperature
    else:  # the limit of a vanishing temperature: everything but the likeliest goes to 0
        z = np.where(z == z.max(1, keepdims=True), 0.0, -np.inf)
    if 0 < top_k < z.shape[1]:  # k at or above the vocabulary keeps every token
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    if cols is not None:
        # which kind comes next is cut as one nucleus would cut it (top_p[0], the pitches' setting), so
        # a kind the network gives 5% (a chord note where a rest is due) stays out as before; within
        # each kind kept, its own cut, the kind keeping its share
        shares = np.stack([p[:, c].sum(1) for c in cols], 1)
        kinds = nucleus(shares.copy(), top_p[0]) > 0 if top_p[0] < 1 else shares > 0
        for g, cut in enumerate(top_p):
            if not len(cols[g]):
                continue
            share = np.where(kinds[:, g], shares[:, g], 0.0)[:, None]
            kept = nucleus(p[:, cols[g]], cut * shares[:, g:g + 1]) if cut < 1 else p[:, cols[g]]
            total = kept.sum(1, keepdims=True)
            p[:, cols[g]] = kept * np.divide(share, total, out=np.zeros_like(share), where=total > 0)
        p /= p.sum(1, keepdims=True)
    elif top_p < 1:
        p = nucleus(p, top_p)
        p /= p.sum(1, keepdims=True)
    return np.minimum((np.cumsum(p, 1) < u[:, None]).sum(1), p.shape[1] - 1)


def _pick_row(z, u, temperature, top_k, top_p, cols):
    """pick's arithmetic for one row z [V] (already a float64 copy, banned tokens at -inf)."""
    if np.ndim(temperature) == 0 and temperature == 1:
        pass  # dividing by 1 changes no bit
    elif np.min(temperature) >= SAFE_TEMPERATURE:
        z /= temperature
    else:
        z = np.where(z == z.max(), 0.0, -np.inf)
    if 0 < top_k < len(z):
        z[z < np.partition(z, -top_k)[-top_k]] = -np.inf
    z -= z.max()
    p = np.exp(z, out=z)
    p /= p.sum()
    if cols is not None:
        shares = np.array([p[c].sum() for c in cols])
        kinds = _kinds_kept(shares.tolist(), top_p[0]) if top_p[0] < 1 else shares > 0
        for g, cut in enumerate(top_p):
            c = cols[g]
            if not len(c) or cut >= 1 and kinds[g]:
                # a kind kept whole: its tokens would be scaled by its share over their sum, the same sum of
                # the same numbers (the kinds' columns are apart), exactly 1: nothing to do
                continue
            kept = _nucleus_row(p[c], cut * shares[g]) if cut < 1 else p[c]
            total = kept.sum()
            p[c] = kept * (shares[g] / total if kinds[g] and total > 0 else 0.0)
        p /= p.sum()
    elif top_p < 1:
        p = _nucleus_row(p, top_p)
        p /= p.sum()
    # the count of cumulative sums under u, found by bisection: p >= 0, so the sums never decrease
    return min(int(np.searchsorted(np.cumsum(p), u)), len(p) - 1)


def _kinds_kept(shares, top_p):
    """_nucleus_row(shares, top_p) > 0 for the three kinds' shares, in Python floats: the same stable
    order, the same sums in the same order (float64 either way), without NumPy's per-call cost."""
    order = sorted(range(len(shares)), key=lambda i: -shares[i])  # sorted() is stable, as argsort's "stable"
    kept, total = [False] * len(shares), 0.0
    for i in order:
        total += shares[i]  # the cumulative sum, added in the same order as np.cumsum adds it
        kept[i] = shares[i] > 0 and not total - shares[i] >= top_p  # zeroed where the sum before reaches top_p
    return kept


_COLUMNS = {}  # id(groups) -> (groups, its columns per group): a model's kinds array lives as long as it does


def _columns(groups, n):
    got = _COLUMNS.get(id(groups))
    if got is None or got[0] is not groups or len(got[1]) != n:
        got = _COLUMNS[id(groups)] = (groups, [np.flatnonzero(groups == g) for g in range(n)])
    return got[1]


def nucleus(p, top_p):
    """p [B, V] with all but the smallest set of likeliest tokens whose probability reaches top_p (a
    number, or one per row [B, 1]) set to 0, in place."""
    rows = np.arange(len(p))[:, None]
    order = np.argsort(-p, axis=1, kind="stable")
    sorted_p = p[rows, order]
    sorted_p[np.cumsum(sorted_p, 1) - sorted_p >= top_p] = 0.0
    p[rows, order] = sorted_p
    return p


def _nucleus_row(p, top_p):
    """nucleus for one row p [V]."""
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    sorted_p[np.cumsum(sorted_p) - sorted_p >= top_p] = 0.0
    p[order] = sorted_p
    return p


def prior_array(bias, vocab):
    """Logit offsets {token: offset} (a rhythm calibration's, vgmusic/calibrate.py) as a vector over the
    vocabulary, 0 for every token without one, float32 as the networks' logits."""
    out = np.zeros(len(vocab.tokens), np.float32)
    for t, b in bias.items():
        out[vocab.index[t]] = b
    return out


def log_probs(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))
