"""transformer: decoder-only, causal, pre-norm blocks with learned positions (as in nanoGPT).

`units` is the model width, `dense` the feed-forward width. Causal like the lstm, so it gives logits at
every position (many-to-many) of any context from 1 token up to its `window` positions.
"""
import functools

import numpy as np

from .. import quiet_tensorflow
from .base import Arch, KerasWindowStepper, NumpyNet, Stepper
from .layers import Attention, Workspace, gelu_inplace, layer_norm
from .weights import attention_shapes, dense_shapes, norm_shapes


@functools.lru_cache(maxsize=None)
def position_embedding():
    """The PositionEmbedding layer class. A Keras layer subclasses Keras' Layer, so it is defined on first
    use: importing this module must not import Keras. Keras saves it under layers/position_embedding."""
    keras = quiet_tensorflow()
    import tensorflow as tf

    class PositionEmbedding(keras.layers.Layer):
        """Learned positions added to token embeddings (as in nanoGPT)."""

        def __init__(self, length, dim, **kw):
            super().__init__(**kw)
            self.length, self.dim = length, dim

        def build(self, input_shape):
            self.table = self.add_weight(name="table", shape=(self.length, self.dim),
                                         initializer=keras.initializers.RandomNormal(stddev=0.02))

        def call(self, x):
            return x + self.table[: tf.shape(x)[1]]

    return PositionEmbedding


def build(vocab_size, hparams):
    keras = quiet_tensorflow()
    L = keras.layers
    window, units, heads, dropout = hparams["window"], hparams["units"], hparams["heads"], hparams["dropout"]
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = L.Embedding(vocab_size, units, name="embed")(ids)
    x = position_embedding()(window, units, name="positions")(x)
    x = L.Dropout(dropout)(x)
    for i in range(hparams["layers"]):
        attention = L.MultiHeadAttention(heads, key_dim=units // heads, dropout=dropout, name=f"attn_{i}")
        x = pre_norm_block(L, x, i, attention, hparams["dense"], "gelu", dropout)
    x = L.LayerNormalization(name="norm_out")(x)
    return keras.Model(ids, L.Dense(vocab_size, name="logits")(x), name=TRANSFORMER.name)


def pre_norm_block(L, x, i, attention, dense, activation, dropout):
    """Block i of a pre-norm decoder (nanoGPT's): causal self-attention, then the feed-forward layers,
    each after a layer norm and added back; the layer names are what the weights layouts say."""
    h = L.LayerNormalization(name=f"norm_a{i}")(x)
    x = x + L.Dropout(dropout)(attention(h, h, use_causal_mask=True))
    h = L.LayerNormalization(name=f"norm_b{i}")(x)
    h = L.Dense(dense, activation=activation, name=f"ff_in_{i}")(h)
    return x + L.Dropout(dropout)(L.Dense(x.shape[-1], name=f"ff_out_{i}")(h))


def layout(vocab_size, hp):
    """What build's model saves, in model.layers order (see vgmusic.nets.weights)."""
    V, u, n, d, h, w = vocab_size, hp["units"], hp["layers"], hp["dense"], hp["heads"], hp["window"]
    out = [("embedding", "embed", {"vars/0": (V, u)}), ("position_embedding", "positions", {"vars/0": (w, u)})]
    for i in range(n):
        out += [("layer_normalization", f"norm_a{i}", norm_shapes(u)),
                ("multi_head_attention", f"attn_{i}", attention_shapes(u, h, u // h)),
                ("layer_normalization", f"norm_b{i}", norm_shapes(u)),
                ("dense", f"ff_in_{i}", dense_shapes(u, d)), ("dense", f"ff_out_{i}", dense_shapes(d, u))]
    return out + [("layer_normalization", "norm_out", norm_shapes(u)), ("dense", "logits", dense_shapes(u, V))]


class TransformerStepper(Stepper):
    """Keeps the last `window` tokens. While the context is shorter than the window, each token is one
    position more and attends to the cached keys and values; once the window slides, every learned
    position shifts, so the whole window is re-run, as the Keras model would be."""

    def _start(self, seed):
        self.buffer = seed[:, -self.net.window:]
        return self._logits(self.buffer)

    def _step(self, ids):
        ids = ids[:, None]
        full = self.buffer.shape[1] == self.net.window
        self.buffer = np.concatenate([self.buffer[:, 1:] if full else self.buffer, ids], 1)
        return self._logits(self.buffer) if full else self._logits(ids, self.cache)

    def _logits(self, ids, past=None):
        logits, self.cache = self.net.run(ids, past, last_only=True)
        return logits[:, -1]

    def _repeat(self, rep):
        self.buffer = rep(self.buffer)
        self.cache = [tuple(rep(a) for a in kv) for kv in self.cache]


class TransformerNet(NumpyNet):
    Stepper = TransformerStepper

    def _load(self, w):
        (self.embed,), self.logits = w["embed"], w["logits"]
        (self.positions,), self.norm_out = w["positions"], w["norm_out"]
        # the largest temporaries of every block, one block at a time: a net computes one thing at
        # a time (as anywhere in composing), never from several threads at once
        self.work = Workspace()
        self.blocks = [{"norm_a": w[f"norm_a{i}"], "attn": Attention(w[f"attn_{i}"]), "norm_b": w[f"norm_b{i}"],
                        "ff_in": w[f"ff_in_{i}"], "ff_out": w[f"ff_out_{i}"]} for i in range(self.hparams["layers"])]

    def _forward(self, ids):
        if not 1 <= ids.shape[1] <= self.window:
            raise ValueError(f"a transformer reads 1 to {self.window} tokens (its positions), got {ids.shape[1]}")
        return self.run(ids)[0]

    def run(self, ids, past=None, last_only=False):
        """Logits of ids [B, T] placed after the positions whose keys and values `past` holds (one
        (keys, values) per block), and the updated cache. `last_only`: the last position's logits alone."""
        start = 0 if past is None else past[0][0].shape[2]
        x = self.embed[ids] + self.positions[start:start + ids.shape[1]]
        cache = []
        for i, b in enumerate(self.blocks):
            # every block needs every position's keys and values, the last block only the last query
            last = last_only and i == len(self.blocks) - 1
            h, kv = b["attn"](layer_norm(x, *b["norm_a"]), None if past is None else past[i], True, last,
                              self.work)
            cache.append(kv)
            x = (x[:, -1:] if last else x) + h
            h = layer_norm(x, *b["norm_b"])
            h = np.matmul(h, b["ff_in"][0], out=self.work("ff", h.shape[:-1] + b["ff_in"][0].shape[-1:]))
            h += b["ff_in"][1]
            h = gelu_inplace(h, self.work) @ b["ff_out"][0]
            h += b["ff_out"][1]
            x += h
        x = layer_norm(x, *self.norm_out) @ self.logits[0]
        x += self.logits[1]
        return x, cache


TRANSFORMER = Arch("transformer", many_to_many=True, build=build, layout=layout, numpy_net=TransformerNet,
                   keras_stepper=KerasWindowStepper)
