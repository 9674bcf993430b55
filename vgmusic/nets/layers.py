"""The NumPy layers the networks of vgmusic.nets are made of, each computing what its Keras layer does.

float32 throughout, like Keras; inference only (no dropout). Nothing here imports TensorFlow or Keras.
"""
import functools
import math

import numpy as np

# Keras' LayerNormalization default, which the networks keep
LN_EPSILON = np.float32(1e-3)
# what Keras' masked softmax puts in place of a masked score
MASKED = np.float32(-1e9)
# queries per block of causal attention: the blocks skip most of the masked half of the scores
QUERY_BLOCK = 128


class Workspace:
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


def lstm_cell(z, c):
    """One step of Keras' LSTMCell from its pre-activations z = x W + h U + b; returns (h, c)."""
    u = c.shape[-1]
    # sigmoid of the i, f, o gates in the tanh form, which never overflows (the candidate's slice is unused)
    s = np.tanh(z * 0.5) * 0.5 + 0.5
    c = s[:, u:2 * u] * c + s[:, :u] * np.tanh(z[:, 2 * u:3 * u])
    return s[:, 3 * u:] * np.tanh(c), c


def lstm_sequence(xz, recurrent, reverse=False):
    """An LSTM over xz = x W + b [B, T, 4u]; returns every step's h [B, T, u] and the final (h, c)."""
    B, T, _ = xz.shape
    u = recurrent.shape[0]
    h, c = np.zeros((B, u), np.float32), np.zeros((B, u), np.float32)
    out = np.empty((B, T, u), np.float32)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h, c = lstm_cell(xz[:, t] + h @ recurrent, c)
        out[:, t] = h
    return out, (h, c)


def layer_norm(x, gamma, beta):
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
    arrays from `work` (a Workspace; fresh arrays without)."""
    work = work or Workspace()
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


def gelu_inplace(x, work=None):
    """x <- gelu(x) for a float32 array x, with temporaries from `work` (a Workspace); returns x.

    gelu(x) = x Phi(x) = relu(x) - |x| Phi(-|x|), and |x| Phi(-|x|) = |x| erfc(|x| / sqrt 2) / 2 is
    computed to a small relative error: no cancellation for negative x, where Keras' own form
    x erfc(-x / sqrt 2) / 2 has none either.
    """
    work = work or Workspace()
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
    return gelu_inplace(x.reshape(-1)).reshape(x.shape)


class Attention:
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
        `work`, a Workspace, holds the scores.
        """
        work = work or Workspace()
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
            for r0 in range(0, Tq, QUERY_BLOCK):
                r1 = min(r0 + QUERY_BLOCK, Tq)
                scores = np.matmul(q[:, :, r0:r1], keys[..., :seen + r1],
                                   out=work("scores", (B, H, r1 - r0, seen + r1)))
                scores[..., seen + r0:] += causal_bias(r1 - r0)
                _mix(scores, v[:, :, :seen + r1], mixed[:, r0:r1].transpose(0, 2, 1, 3))
        out = mixed.reshape(B, Tq, H * K) @ self.out
        out += self.out_bias
        return out, (k, v)


def _mix(scores, values, out):
    """out <- softmax(scores) @ values, the scores [..., Tq, S] overwritten. The softmax's division is
    left to the Tq x K mixture, a fraction of the Tq x S weights."""
    scores -= scores.max(-1, keepdims=True)
    np.exp(scores, out=scores)
    np.divide(scores @ values, scores.sum(-1, keepdims=True), out=out)


@functools.lru_cache(maxsize=8)
def causal_bias(n):
    """[n, n]: 0 where query i sees key j (j <= i), else MASKED, which Keras' masked softmax adds to a
    score it masks; exp then turns every masked score into exactly 0."""
    bias = np.where(np.tri(n, dtype=bool), np.float32(0), MASKED)
    bias.flags.writeable = False
    return bias
