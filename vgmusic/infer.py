"""Compose without TensorFlow: the networks of model.py as a NumPy forward pass.

Importing TensorFlow costs seconds of CPU before a note is written, while sampling a song costs
milliseconds. So composing reads the very `.weights.h5` file Keras wrote (checkpoint.read_weights) and runs the
same layers here, in float32 like Keras. model.py stays the one definition of every network and its
weights file the one source of truth; tests/test_infer.py proves this file gives the Keras models'
probabilities, architecture by architecture.

Nothing here may import tensorflow or keras, not even through another vgmusic module.
"""
import functools
import math
from pathlib import Path

import numpy as np

from .checkpoint import ARCH_KEYS as HPARAMS
from .checkpoint import read_weights

ARCHS = ("lstm", "bilstm", "attention", "transformer")
# Keras' LayerNormalization default, which model.py keeps
LN_EPSILON = np.float32(1e-3)
# what Keras' masked softmax puts in place of a masked score
MASKED = np.float32(-1e9)


# --- the layers ---------------------------------------------------------------------------------------

class _Workspace:
    """Float32 arrays by name, kept from call to call and grown as needed. The transformer's re-run of
    a whole window makes megabytes of temporaries per token; fresh, the allocator may take them from
    the operating system page by page every time (glibc does once no larger array has raised its
    thresholds), which cost more than the arithmetic."""

    def __init__(self):
        self.arrays = {}

    def __call__(self, name, shape):
        size = math.prod(shape)
        flat = self.arrays.get(name)
        if flat is None or flat.size < size:
            flat = self.arrays[name] = np.empty(size, np.float32)
        return flat[:size].reshape(shape)


def softmax(logits, axis=-1):
    z = logits - logits.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def _lstm_cell(z, c):
    """One step of Keras' LSTMCell from its pre-activations z = x W + h U + b; returns (h, c)."""
    u = c.shape[-1]
    # sigmoid of the i, f, o gates in the tanh form, which never overflows (the candidate's slice is unused)
    s = np.tanh(z * 0.5) * 0.5 + 0.5
    c = s[:, u:2 * u] * c + s[:, :u] * np.tanh(z[:, 2 * u:3 * u])
    return s[:, 3 * u:] * np.tanh(c), c


def _lstm_sequence(xz, recurrent, reverse=False):
    """An LSTM over xz = x W + b [B, T, 4u]; returns every step's h [B, T, u] and the final (h, c)."""
    B, T, _ = xz.shape
    u = recurrent.shape[0]
    h, c = np.zeros((B, u), np.float32), np.zeros((B, u), np.float32)
    out = np.empty((B, T, u), np.float32)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h, c = _lstm_cell(xz[:, t] + h @ recurrent, c)
        out[:, t] = h
    return out, (h, c)


def _layer_norm(x, gamma, beta):
    centred = x - x.mean(-1, keepdims=True)
    var = np.square(centred).mean(-1, keepdims=True)
    centred /= np.sqrt(var + LN_EPSILON)
    centred *= gamma
    centred += beta
    return centred


# erfc(a) for a >= 0 as t exp(P(s) - a^2), with t = 1 / (1 + p a) and s = 1 - t in [0, 1]: P(s) is
# ln(erfcx(a) / t), smooth and bounded on the whole half-line, so one polynomial of degree 6 covers it.
# Its coefficients are a minimax fit (iteratively reweighted least squares in float64, against
# math.erfc) of the error of erfc(a) weighted by 1 + a, at most 5e-9: erf and gelu take erfc(a) times
# at most |x|, so its relative error may grow where it is tiny (1e-4 at a = 4, where erfc is 1.5e-8).
# In float32 the rounding of the steps dominates: erf is within 9.2e-8 of math.erf (every float32
# from 0.25 to 6 checked), gelu within 0.3 (1e-7 + 1e-6 |gelu|) of the exact one (every fifth float32
# from 1e-4 to 12 in magnitude). Each step is one float32 pass over the array, in place: gelu in the
# transformer's feed-forward layers (512 x 512 values per block per token once the window slides)
# is the hottest loop of composing.
_ERFC_P = 0.49
_ERFC_COEF = np.array([-9.447964632869343e-10, -1.3028135299682617, -0.28942111134529114, 0.18501104414463043,
                       0.18871940672397614, 0.08908272534608841, -0.17146317660808563], np.float32)
# erf(x) = x + x R(x^2) for |x| < 1 (R a relative minimax fit of erf(x) / x - 1, to 1.2e-9), where
# 1 - erfc(|x|) would lose erf's digits to cancellation
_ERF_SMALL = np.array([0.12837916612625122, -0.3761262595653534, 0.1128358542919159, -0.026853812858462334,
                       0.005188330076634884, -0.0008010212914086878, 7.853919669287279e-05], np.float32)
# gelu's erfc(|x| / sqrt 2) / 2: the half folded into the constant term, as exp(ln 1/2 + P(s) - x^2 / 2)
_HALF_ERFC_COEF = _ERFC_COEF + np.array([math.log(0.5)] + [0] * 6, np.float32)


def _horner(coefs, z, out):
    """out <- sum(coefs[k] z^k) by Horner's rule in place, in float32; out must not be z."""
    np.multiply(z, coefs[-1], out=out)
    for c in coefs[-2:0:-1]:
        out += c
        out *= z
    out += coefs[0]
    return out


def _erfc(y, scale=1.0, coefs=_ERFC_COEF, work=None):
    """erfc(scale y) (times exp(coefs[0] - _ERFC_COEF[0])) for a float32 array y >= 0, in float32, in
    arrays from `work` (a _Workspace; fresh arrays without)."""
    work = work or _Workspace()
    t = np.multiply(y, np.float32(_ERFC_P * scale), out=work("erfc_t", y.shape))
    t += 1
    np.reciprocal(t, out=t)
    s = np.subtract(np.float32(1), t, out=work("erfc_s", y.shape))
    e = _horner(coefs, s, work("erfc", y.shape))
    np.multiply(y, y, out=s)  # s is spent: now the exponent's (scale y)^2
    if scale != 1:
        s *= np.float32(scale * scale)
    e -= s
    np.exp(e, out=e)
    e *= t
    return e


def erf(x):
    """The error function in float32, vectorised (NumPy has none and scipy is not a dependency)."""
    x = np.array(x, np.float32)
    shape, x = x.shape, x.reshape(-1)
    a = np.abs(x)
    big = _erfc(a)
    np.subtract(np.float32(1), big, out=big)
    np.copysign(big, x, out=big)
    small = _horner(_ERF_SMALL, x * x, np.empty_like(x))
    small *= x
    small += x
    return np.where(a < 1, small, big).reshape(shape)


def _gelu_inplace(x, work=None):
    """x <- gelu(x) for a float32 array x, with temporaries from `work` (a _Workspace); returns x.

    gelu(x) = x Phi(x) = relu(x) - |x| Phi(-|x|), and |x| Phi(-|x|) = |x| erfc(|x| / sqrt 2) / 2 is
    computed to a small relative error: no cancellation for negative x, where Keras' own form
    x erfc(-x / sqrt 2) / 2 has none either.
    """
    work = work or _Workspace()
    y = np.abs(x, out=work("gelu_abs", x.shape))
    g = _erfc(y, math.sqrt(0.5), _HALF_ERFC_COEF, work)
    g *= y
    x += y  # 2 relu(x), exactly: 0 or 2x
    x *= np.float32(0.5)
    x -= g
    return x


def gelu(x):
    """Keras 3's gelu (approximate=False): x * Phi(x), with the exact normal CDF, in float32."""
    x = np.array(x, np.float32)
    return _gelu_inplace(x.reshape(-1)).reshape(x.shape)


class _Attention:
    """Keras' MultiHeadAttention over one sequence (query = key = value)."""

    def __init__(self, arrays):
        """arrays: query, key, value kernels [D, H, K] and biases [H, K] in turn, output kernel and bias."""
        dim, self.heads, self.key_dim = arrays[0].shape
        # Keras scales the queries by 1/sqrt(key_dim), rounded to float32, before the dot product; scaling
        # the query projection instead is the same but for float32 rounding, and a pass less per call
        scale = np.float32(1.0 / math.sqrt(float(self.key_dim)))
        kernels, biases = [k.reshape(dim, -1) for k in arrays[0:6:2]], [b.ravel() for b in arrays[1:6:2]]
        kernels[0], biases[0] = kernels[0] * scale, biases[0] * scale
        # the three projections as one matrix: one product per call instead of three
        self.qkv, self.qkv_bias = np.concatenate(kernels, 1), np.concatenate(biases)
        self.out, self.out_bias = arrays[6].reshape(-1, dim), arrays[7]

    def __call__(self, x, past=None, causal=False, last_only=False, work=None):
        """x [B, T, D] -> ([B, T or 1, D], (keys, values) [B, H, n + T, K]).

        `past` holds the keys and values of n earlier positions (a causal model's cache), which the
        new positions attend to as well; `last_only` computes the output of the last position alone.
        `work`, a _Workspace, holds the scores.
        """
        work = work or _Workspace()
        B, T, _ = x.shape
        H, K = self.heads, self.key_dim
        qkv = x @ self.qkv
        qkv += self.qkv_bias
        q, k, v = qkv.reshape(B, T, 3, H, K).transpose(2, 0, 3, 1, 4)  # views: matmul takes their strides
        if past is not None:
            k, v = np.concatenate([past[0], k], 2), np.concatenate([past[1], v], 2)
        if last_only:
            q = q[:, :, -1:]
        keys = k.transpose(0, 1, 3, 2)
        Tq, S = q.shape[2], k.shape[2]
        mixed = np.empty((B, Tq, H, K), np.float32)
        if not causal or Tq == 1:
            _mix(q @ keys, v, mixed.transpose(0, 2, 1, 3))
        else:
            # query i sits at position S - Tq + i and sees the keys up to there: a block of queries needs
            # the keys up to its last query alone, and masks only the square where it meets them
            seen = S - Tq
            for r0 in range(0, Tq, _QUERY_BLOCK):
                r1 = min(r0 + _QUERY_BLOCK, Tq)
                scores = np.matmul(q[:, :, r0:r1], keys[..., :seen + r1],
                                   out=work("scores", (B, H, r1 - r0, seen + r1)))
                scores[..., seen + r0:] += _causal_bias(r1 - r0)
                _mix(scores, v[:, :, :seen + r1], mixed[:, r0:r1].transpose(0, 2, 1, 3))
        out = mixed.reshape(B, Tq, H * K) @ self.out
        out += self.out_bias
        return out, (k, v)


# queries per block of causal attention: the blocks skip most of the masked half of the scores
_QUERY_BLOCK = 128


def _mix(scores, values, out):
    """out <- softmax(scores) @ values, the scores [..., Tq, S] overwritten. The softmax's division is
    left to the Tq x K mixture, a fraction of the Tq x S weights."""
    scores -= scores.max(-1, keepdims=True)
    np.exp(scores, out=scores)
    np.divide(scores @ values, scores.sum(-1, keepdims=True), out=out)


@functools.lru_cache(maxsize=8)
def _causal_bias(n):
    """[n, n]: 0 where query i sees key j (j <= i), else MASKED, which Keras' masked softmax adds to a
    score it masks; exp then turns every masked score into exactly 0."""
    bias = np.where(np.tri(n, dtype=bool), np.float32(0), MASKED)
    bias.flags.writeable = False
    return bias


# --- the networks -------------------------------------------------------------------------------------

def _check_ids(ids, vocab_size, ndim, what):
    ids = np.asarray(ids)
    if ids.ndim != ndim or ids.dtype.kind not in "iu":
        raise ValueError(f"{what} must be a {ndim}-D integer array, got shape {ids.shape} of {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{what}: token ids must lie in 0..{vocab_size - 1}, got {ids.min()}..{ids.max()}")
    return ids


class NumpyNet:
    """A network of model.py with the weights Keras saved, run in NumPy (float32, inference: no dropout)."""

    def __init__(self, arch, vocab_size, hparams, weights_path):
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
        bad = [k for k in HPARAMS[:-1] if not isinstance(hparams.get(k), int) or hparams[k] < 1]
        if bad or "dropout" not in hparams:
            raise ValueError(f"hyper-parameters need {', '.join(HPARAMS)} (positive integers but dropout), "
                             f"got {hparams}")
        self.arch, self.vocab_size, self.path = arch, int(vocab_size), Path(weights_path)
        self.hparams = {k: hparams[k] for k in HPARAMS}
        self.window = int(hparams["window"])
        self.causal = arch in ("lstm", "transformer")  # logits at every position, any length up to the window
        w = read_weights(weights_path, arch, self.vocab_size, self.hparams)
        n = self.hparams["layers"]
        (self.embed,), self.logits = w["embed"], w["logits"]
        if arch == "lstm":
            self.lstm, self.dense = [w[f"lstm_{i}"] for i in range(n)], w["dense"]
            # the first layer's input projection of every token: a step starts with a row lookup
            kernel, _, bias = self.lstm[0]
            self.token_gates = self.embed @ kernel + bias
        elif arch == "transformer":
            (self.positions,), self.norm_out = w["positions"], w["norm_out"]
            # the largest temporaries of every block, one block at a time: a net computes one thing at
            # a time (as anywhere in composing), never from several threads at once
            self.work = _Workspace()
            self.blocks = [{"norm_a": w[f"norm_a{i}"], "attn": _Attention(w[f"attn_{i}"]), "norm_b": w[f"norm_b{i}"],
                            "ff_in": w[f"ff_in_{i}"], "ff_out": w[f"ff_out_{i}"]} for i in range(n)]
        else:
            self.bilstm = [(w[f"bilstm_{i}"][:3], w[f"bilstm_{i}"][3:]) for i in range(n)]  # forward, backward
            self.attention = _Attention(w["self_attention"]) if arch == "attention" else None
            self.norm = w.get("attention_norm")
            self.per_step = w["per_step"]

    def forward(self, ids):
        """Logits of ids [B, T]: [B, T, V] for the causal lstm and transformer, [B, V] for the others."""
        ids = _check_ids(ids, self.vocab_size, 2, "ids")
        T = ids.shape[1]
        if self.arch == "lstm":
            return self._lstm_head(self._lstm_run(ids)[0])
        if self.arch == "transformer":
            if not 1 <= T <= self.window:
                raise ValueError(f"a transformer reads 1 to {self.window} tokens (its positions), got {T}")
            return self._transformer(ids)[0]
        if T != self.window:
            raise ValueError(f"a {self.arch} network reads exactly {self.window} tokens, got {T}")
        return self._bidirectional(ids)

    def stepper(self, batch=1):
        """Sampling state for `batch` sequences: start(seed ids [batch, s]) and step(ids [batch]) -> logits."""
        return (LstmStepper if self.arch == "lstm" else WindowStepper)(self, batch)

    # lstm
    def _lstm_run(self, ids):
        """The LSTM layers over ids [B, T]: the top layer's h at every step and each layer's final (h, c)."""
        x, states = None, []
        for i, (kernel, recurrent, bias) in enumerate(self.lstm):
            xz = self.token_gates[ids] if i == 0 else x @ kernel + bias
            x, state = _lstm_sequence(xz, recurrent)
            states.append(state)
        return x, states

    def _lstm_head(self, h):
        d = np.maximum(h @ self.dense[0] + self.dense[1], 0)
        return d @ self.logits[0] + self.logits[1]

    # bilstm, attention
    def _bidirectional(self, ids):
        x = self.embed[ids]
        for forward, backward in self.bilstm:
            # Bidirectional: the backward LSTM reads the window reversed, its outputs are put back in order
            ahead = _lstm_sequence(x @ forward[0] + forward[2], forward[1])[0]
            behind = _lstm_sequence(x @ backward[0] + backward[2], backward[1], reverse=True)[0]
            x = np.concatenate([ahead, behind], -1)
        if self.attention:
            x = _layer_norm(x + self.attention(x)[0], *self.norm)
        x = np.maximum(x @ self.per_step[0] + self.per_step[1], 0)
        return x.reshape(len(x), -1) @ self.logits[0] + self.logits[1]

    # transformer
    def _transformer(self, ids, past=None, last_only=False):
        """Logits of ids [B, T] placed after the positions whose keys and values `past` holds (one
        (keys, values) per block), and the updated cache. `last_only`: the last position's logits alone."""
        start = 0 if past is None else past[0][0].shape[2]
        x = self.embed[ids] + self.positions[start:start + ids.shape[1]]
        cache = []
        for i, b in enumerate(self.blocks):
            # every block needs every position's keys and values, the last block only the last query
            last = last_only and i == len(self.blocks) - 1
            h, kv = b["attn"](_layer_norm(x, *b["norm_a"]), None if past is None else past[i], True, last,
                              self.work)
            cache.append(kv)
            x = (x[:, -1:] if last else x) + h
            h = _layer_norm(x, *b["norm_b"])
            h = np.matmul(h, b["ff_in"][0], out=self.work("ff", h.shape[:-1] + b["ff_in"][0].shape[-1:]))
            h += b["ff_in"][1]
            h = _gelu_inplace(h, self.work) @ b["ff_out"][0]
            h += b["ff_out"][1]
            x += h
        x = _layer_norm(x, *self.norm_out) @ self.logits[0]
        x += self.logits[1]
        return x, cache


# --- sampling state -----------------------------------------------------------------------------------

class _Stepper:
    """start(seed ids [batch, s]; a 1-D seed serves every row) -> next-token logits [batch, V];
    step(ids [batch]) feeds one token per row -> the logits after it."""

    def __init__(self, net, batch):
        if int(batch) < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.net, self.batch = net, int(batch)

    def _seed(self, seed, least=1):
        seed = np.asarray(seed)
        if seed.ndim == 1:
            seed = np.tile(seed[None], (self.batch, 1))
        seed = _check_ids(seed, self.net.vocab_size, 2, "seed")
        if len(seed) != self.batch:
            raise ValueError(f"seed has {len(seed)} rows for a batch of {self.batch}")
        if seed.shape[1] < least:
            raise ValueError(f"a {self.net.arch} network needs a seed of at least {least} tokens, "
                             f"got {seed.shape[1]}")
        return seed

    def expand(self, k):
        """Every row becomes k rows (row i -> rows i*k ... i*k+k-1) that go on from the same state: the
        candidates of one song share the work of reading it."""
        def rep(a):
            return np.repeat(a, k, axis=0)
        self.batch *= k
        if hasattr(self, "states"):
            self.states = [(rep(h), rep(c)) for h, c in self.states]
        else:
            self.buffer = rep(self.buffer)
            if getattr(self, "cache", None) is not None:
                self.cache = [tuple(rep(a) for a in kv) for kv in self.cache]

    def _ids(self, ids):
        ids = _check_ids(np.reshape(ids, -1), self.net.vocab_size, 1, "ids")
        if len(ids) != self.batch:
            raise ValueError(f"step got {len(ids)} ids for a batch of {self.batch}")
        return ids


class LstmStepper(_Stepper):
    """Carries every layer's (h, c) from token to token: one cell step per token, any seed length."""

    def start(self, seed):
        h, self.states = self.net._lstm_run(self._seed(seed))
        return self.net._lstm_head(h[:, -1])

    def step(self, ids):
        net = self.net
        x = net.token_gates[self._ids(ids)]
        for i, (kernel, recurrent, bias) in enumerate(net.lstm):
            h, c = self.states[i]
            z = x + h @ recurrent if i == 0 else x @ kernel + bias + h @ recurrent
            x, c = _lstm_cell(z, c)
            self.states[i] = (x, c)
        return net._lstm_head(x)


class WindowStepper(_Stepper):
    """The other networks read at most `window` tokens (bilstm and attention exactly that many): keep the
    last ones and re-run on them. While a transformer's context is shorter than its window, each token
    is one position more and attends to the cached keys and values instead; once the window slides,
    every learned position shifts, so the whole window is re-run, as the Keras model would be."""

    def start(self, seed):
        net = self.net
        self.buffer = self._seed(seed, 1 if net.causal else net.window)[:, -net.window:]
        return self._logits(self.buffer)

    def step(self, ids):
        ids = self._ids(ids)[:, None]
        full = self.buffer.shape[1] == self.net.window
        self.buffer = np.concatenate([self.buffer[:, 1:] if full else self.buffer, ids], 1)
        return self._logits(self.buffer) if full else self._logits(ids, self.cache)

    def _logits(self, ids, past=None):
        if self.net.arch != "transformer":
            return self.net._bidirectional(ids)
        logits, self.cache = self.net._transformer(ids, past, last_only=True)
        return logits[:, -1]
