"""rotary: the decoder-only transformer with rotary positions (RoPE), which samples from a key/value cache.

The blocks of `transformer` (pre-norm, causal self-attention, a feed-forward layer), but no position is
added to the tokens: each head turns its queries and keys by angles proportional to their positions
(RoPE, Su et al. 2021), so a score depends on the two tokens and their offset alone, never on where
the window starts.

Why RoPE rather than ALiBi: both make scores depend on offsets only, which the cache needs. ALiBi
subtracts a fixed penalty per head growing with the distance, so every head prefers what is near;
songs repeat their themes a phrase or a section back (A A' B A'), and with RoPE a head can learn to look
there as sharply as at the last note. RoPE costs one complex product per token for queries and keys,
nothing on the scores.

Why each block attends to a band: a block's key at position p is computed from what the block below saw
at p, so a cache of keys stays valid after the window slides only if no key ever depended on a token
that has left the window. Each block therefore attends to itself and the span - 1 positions before
it (Keras' causal sliding_window, Mistral's), span = (window - 1) // layers + 1: the blocks together
reach back layers * (span - 1) + 1 <= window tokens, so the logits depend on the last `window` tokens
alone, as in training, where every position's whole reach lies inside its training window. Sampling
keeps, per block, the keys and values of the last `span` positions in a ring: a step adds one and drops
the oldest, nothing is recomputed, and the result is the Keras model run on the last `window` tokens.
A step reads span keys per block (128 of the default 512-token window), a quarter of full attention's.

Why relu in the feed-forward layers, where `transformer` has gelu: it is the Music Transformer's (Huang
et al. 2018) and the original Transformer's, and composing runs in NumPy, where it is one pass over the
values; gelu takes some twenty (erf has no NumPy function), a tenth of a step's time.
"""
import functools
import math

import numpy as np

from .. import quiet_tensorflow
from . import layers
from .base import Arch, KerasWindowStepper, NumpyNet, Stepper
from .transformer import pre_norm_block
from .layers import LN_EPSILON, MASKED
from .weights import attention_shapes, dense_shapes, norm_shapes

# RoPE's usual base: the pair j of a head turns by p * BASE^(-2j / key_dim) radians at position p, its
# slowest pair (key_dim 32) once in 2 pi / 1.8e-4 ~ 35,000 positions, far beyond any window here.
BASE = 10000.0


def key_dim(units, heads):
    """Each head's width; RoPE turns its coordinates in pairs, so it must be even."""
    if units % heads or units // heads % 2:
        raise ValueError(f"a rotary network needs units divisible by heads into an even width per head, "
                         f"got units {units}, heads {heads}")
    return units // heads


def span(window, layers):
    """Positions each block attends to (itself and those before it): as many as lets `layers` blocks
    together reach back no further than `window` tokens."""
    return (window - 1) // layers + 1


def frequencies(dim):
    """[dim / 2] float64 angles per position of a head's coordinate pairs (2j, 2j + 1)."""
    return BASE ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)


def turns(positions, dim):
    """[len(positions), dim / 2] complex64 e^(i p theta_j). Angles in float64: exact at any position a
    song reaches, where float32 would miss by 1e-4 radians at position 2048."""
    return np.exp(1j * (np.asarray(positions, np.float64)[:, None] * frequencies(dim))).astype(np.complex64)


@functools.lru_cache(maxsize=None)
def rotary_attention():
    """The RotaryAttention layer class, defined on first use (importing this module must not import
    Keras). It is Keras' MultiHeadAttention (its projections, masks, dropout and softmax) with queries
    and keys turned before the dot product, the override Keras documents for _compute_attention; Keras
    saves it under layers/rotary_attention."""
    keras = quiet_tensorflow()
    import tensorflow as tf

    class RotaryAttention(keras.layers.MultiHeadAttention):
        def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                               return_attention_scores=False, **kwargs):
            return super()._compute_attention(self._turn(query), self._turn(key), value, attention_mask, training,
                                              return_attention_scores, **kwargs)

        def _turn(self, x):
            """x [B, T, heads, K] at positions 0..T-1, each pair (x[2j], x[2j+1]) turned as the complex
            number x[2j] + i x[2j+1] times e^(i p theta_j)."""
            heads, dim = x.shape[2], x.shape[3]
            shape = tf.shape(x)
            angles = tf.range(shape[1], dtype=tf.float64)[:, None] * tf.constant(frequencies(dim))[None]
            cos, sin = (tf.cast(f(angles), x.dtype)[:, None] for f in (tf.cos, tf.sin))  # [T, 1, K/2]
            pairs = tf.reshape(x, [shape[0], shape[1], heads, dim // 2, 2])
            re, im = pairs[..., 0], pairs[..., 1]
            turned = tf.stack([re * cos - im * sin, re * sin + im * cos], -1)
            return tf.reshape(turned, [shape[0], shape[1], heads, dim])

    return RotaryAttention


def build(vocab_size, hparams):
    keras = quiet_tensorflow()
    L = keras.layers
    units, heads, dropout = hparams["units"], hparams["heads"], hparams["dropout"]
    dim, band = key_dim(units, heads), span(hparams["window"], hparams["layers"])
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = L.Dropout(dropout)(L.Embedding(vocab_size, units, name="embed")(ids))
    for i in range(hparams["layers"]):
        attention = rotary_attention()(heads, key_dim=dim, dropout=dropout, sliding_window=band, name=f"attn_{i}")
        x = pre_norm_block(L, x, i, attention, hparams["dense"], "relu", dropout)
    x = L.LayerNormalization(name="norm_out")(x)
    return keras.Model(ids, L.Dense(vocab_size, name="logits")(x), name=ROTARY.name)


def layout(vocab_size, hp):
    """What build's model saves, in model.layers order (see vgmusic.nets.weights)."""
    V, u, n, d, h = vocab_size, hp["units"], hp["layers"], hp["dense"], hp["heads"]
    out = [("embedding", "embed", {"vars/0": (V, u)})]
    for i in range(n):
        out += [("layer_normalization", f"norm_a{i}", norm_shapes(u)),
                ("rotary_attention", f"attn_{i}", attention_shapes(u, h, key_dim(u, h))),
                ("layer_normalization", f"norm_b{i}", norm_shapes(u)),
                ("dense", f"ff_in_{i}", dense_shapes(u, d)), ("dense", f"ff_out_{i}", dense_shapes(d, u))]
    return out + [("layer_normalization", "norm_out", norm_shapes(u)), ("dense", "logits", dense_shapes(u, V))]


# --- NumPy -----------------------------------------------------------------------------------------------

def normalize(x):
    """LayerNormalization without its scale and offset, which the next layer's weights hold (fold). The
    means as products with a column of 1 / width: a step normalises nine rows of 128 values, where
    mean()'s own overhead would cost more than the sums."""
    mean = _means(x.shape[-1])
    centred = x - x @ mean
    var = np.square(centred) @ mean
    var += LN_EPSILON
    centred /= np.sqrt(var, out=var)
    return centred


@functools.lru_cache(maxsize=8)
def _means(width):
    column = np.full((width, 1), 1 / width, np.float32)
    column.flags.writeable = False
    return column


def fold(norm, kernel, bias):
    """(x gamma + beta) W + b = x (gamma W) + (beta W + b): a layer norm's scale and offset moved into
    the dense layer after it, computed in float64: two passes fewer per norm and token."""
    gamma, beta = (a.astype(np.float64) for a in norm)
    kernel = kernel.astype(np.float64)
    return (gamma[:, None] * kernel).astype(np.float32), (beta @ kernel + bias).astype(np.float32)


@functools.lru_cache(maxsize=64)
def band_bias(offset, queries, keys, band):
    """[queries, keys]: 0 where query i (at offset + i from the first key) sees key j, itself and the
    band - 1 keys before it, else MASKED, which Keras' masked softmax adds to a score it masks."""
    gap = offset + np.arange(queries)[:, None] - np.arange(keys)[None]
    bias = np.where((gap >= 0) & (gap < band), np.float32(0), MASKED)
    bias.flags.writeable = False
    return bias


def softmax_mix(scores, values, out):
    """out <- softmax(scores) @ values, the scores [..., Tq, S] overwritten (layers._mix, with the
    ufuncs' reductions: a step's arrays are small enough for max() and sum()'s overhead to count)."""
    scores -= np.maximum.reduce(scores, -1, keepdims=True)
    np.exp(scores, out=scores)
    np.divide(scores @ values, np.add.reduce(scores, -1, keepdims=True), out=out)
    return out


class RotaryStepper(Stepper):
    """Per block, the turned keys [batch, heads, K, span] and values [batch, heads, span, K] of the last
    `span` positions, position p in slot p % span: the order of the slots does not matter to a softmax,
    and each key was turned by its own position once, when it came."""

    def _start(self, seed):
        net = self.net
        logits, kv = net.run(seed, last_only=True)
        B, T, W = len(seed), seed.shape[1], net.span
        kept = np.arange(max(0, T - W), T)
        self.cache = []
        for k, v in kv:
            keys = np.zeros((B, net.heads, net.key_dim, W), np.float32)
            values = np.zeros((B, net.heads, W, net.key_dim), np.float32)
            keys[..., kept % W], values[:, :, kept % W] = k.transpose(0, 1, 3, 2)[..., kept], v[:, :, kept]
            self.cache.append((keys, values))
        self.position = T
        return logits[:, -1]

    def _step(self, ids):
        net, B, p = self.net, self.batch, self.position
        u, H, K, W = net.units, net.heads, net.key_dim, net.span
        slot, seen = p % W, min(p + 1, W)
        turn = net.turn(p)
        x = net.embed[ids]
        for i, ((qkv_w, qkv_b, out_w, out_b, in_w, in_b, ff_w, ff_b), (keys, values)) in enumerate(
                zip(net.blocks, self.cache)):
            if i == 0:  # block 0 reads the token alone: its projection is a row of the table
                qkv = net.token_qkv[ids]
            else:
                qkv = normalize(x) @ qkv_w
                qkv += qkv_b
            qk = qkv[:, :2 * u].view(np.complex64).reshape(B, 2 * H, K // 2)
            qk *= turn
            keys[..., slot] = qkv[:, u:2 * u].reshape(B, H, K)
            values[:, :, slot] = qkv[:, 2 * u:].reshape(B, H, K)
            mixed = softmax_mix(qkv[:, :u].reshape(B, H, 1, K) @ keys[..., :seen], values[:, :, :seen],
                                np.empty((B, H, 1, K), np.float32))
            h = mixed.reshape(B, u) @ out_w
            h += out_b
            x += h
            h = normalize(x) @ in_w
            h += in_b
            h = np.maximum(h, 0, out=h) @ ff_w
            h += ff_b
            x += h
        self.position = p + 1
        return net.head(x)

    def _repeat(self, rep):
        self.cache = [(rep(k), rep(v)) for k, v in self.cache]


class RotaryNet(NumpyNet):
    Stepper = RotaryStepper

    def _load(self, w):
        self.units, self.heads = self.hparams["units"], self.hparams["heads"]
        self.key_dim = key_dim(self.units, self.heads)
        self.span = span(self.window, self.hparams["layers"])
        (self.embed,) = w["embed"]
        # per block, as tuples: qkv (its norm folded in), out, ff_in (its norm folded in), ff_out
        self.blocks = []
        scale = np.float32(1.0 / math.sqrt(float(self.key_dim)))  # Keras scales the turned queries
        for i in range(self.hparams["layers"]):
            q, q_bias, k, k_bias, v, v_bias, out, out_bias = w[f"attn_{i}"]
            kernel = np.concatenate([q.reshape(self.units, -1) * scale, k.reshape(self.units, -1),
                                     v.reshape(self.units, -1)], 1)
            bias = np.concatenate([q_bias.ravel() * scale, k_bias.ravel(), v_bias.ravel()])
            self.blocks.append((*fold(w[f"norm_a{i}"], kernel, bias), out.reshape(-1, self.units), out_bias,
                                *fold(w[f"norm_b{i}"], *w[f"ff_in_{i}"]), *w[f"ff_out_{i}"]))
        self.logits = list(fold(w["norm_out"], *w["logits"]))  # a list: tests poison it in place
        # no position is added to a token, so block 0's query, key and value of each token is a table
        kernel, bias = self.blocks[0][:2]
        self.token_qkv = normalize(self.embed) @ kernel + bias
        self._turns = (0, turns([0], self.key_dim))

    def turn(self, p):
        """e^(i p theta) [key_dim / 2] complex64, from a table of the next 1024 positions."""
        start, table = self._turns
        if not start <= p < start + len(table):
            self._turns = start, table = p, turns(np.arange(p, p + 1024), self.key_dim)
        return table[p - start]

    def _forward(self, ids):
        return self.run(ids)[0]

    def run(self, ids, last_only=False):
        """Logits of ids [B, T] at positions 0..T-1 ([B, 1, V] of the last alone with last_only), and every
        block's turned keys and values [B, heads, T, K]."""
        B, T = ids.shape
        u, H, K = self.units, self.heads, self.key_dim
        turn = turns(np.arange(T), K)[:, None]  # [T, 1, K/2]
        x, kv = self.embed[ids], []
        for i, (qkv_w, qkv_b, out_w, out_b, in_w, in_b, ff_w, ff_b) in enumerate(self.blocks):
            if i == 0:
                qkv = self.token_qkv[ids]
            else:
                qkv = normalize(x) @ qkv_w
                qkv += qkv_b
            qk = qkv[..., :2 * u].view(np.complex64).reshape(B, T, 2 * H, K // 2)
            qk *= turn
            q, k, v = qkv.reshape(B, T, 3, H, K).transpose(2, 0, 3, 1, 4)  # views [B, H, T, K]
            kv.append((k, v))
            # every block needs every position's keys and values, the last block only the last query
            first = T - 1 if last_only and i == len(self.blocks) - 1 else 0
            h = self.attend(q[:, :, first:], k, v, first) @ out_w
            h += out_b
            x = x[:, first:] + h
            h = normalize(x) @ in_w
            h += in_b
            h = np.maximum(h, 0, out=h) @ ff_w
            h += ff_b
            x += h
        return self.head(x), kv

    def attend(self, q, k, v, first):
        """Attention of queries q [B, H, Tq, K] at positions first.. over keys and values [B, H, S, K] at
        0..S-1, in blocks of QUERY_BLOCK queries, each reading only the keys its band reaches; [B, Tq, H*K]."""
        B, H, Tq, K = q.shape
        keys, mixed = k.transpose(0, 1, 3, 2), np.empty((B, Tq, H, K), np.float32)
        for r0 in range(0, Tq, layers.QUERY_BLOCK):
            r1 = min(r0 + layers.QUERY_BLOCK, Tq)
            lo, hi = max(0, first + r0 - self.span + 1), first + r1
            scores = q[:, :, r0:r1] @ keys[..., lo:hi]
            scores += band_bias(first + r0 - lo, r1 - r0, hi - lo, self.span)
            softmax_mix(scores, v[:, :, lo:hi], mixed[:, r0:r1].transpose(0, 2, 1, 3))
        return mixed.reshape(B, Tq, H * K)

    def head(self, x):
        logits = normalize(x) @ self.logits[0]
        logits += self.logits[1]
        return logits


ROTARY = Arch("rotary", many_to_many=True, build=build, layout=layout, numpy_net=RotaryNet,
              keras_stepper=KerasWindowStepper)
