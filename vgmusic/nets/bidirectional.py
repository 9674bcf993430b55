"""bilstm and attention: the second seed project's networks, which read the window in both directions.

Stacked bidirectional LSTMs (attention adds self-attention over their outputs, then a layer norm), then
a small dense layer at every step and everything flattened into the logits. Reading backwards, they
can only predict the token after the window (many-to-one), from exactly `window` tokens; sampling keeps
the last `window` tokens and re-runs the network on them.
"""
import functools

import numpy as np

from .. import quiet_tensorflow
from .base import Arch, KerasWindowStepper, NumpyNet, Stepper
from .layers import Attention, layer_norm, lstm_sequence
from .weights import attention_shapes, dense_shapes, lstm_shapes, norm_shapes


def build(vocab_size, hparams, attention, name):
    keras = quiet_tensorflow()
    L = keras.layers
    window, units, heads, dropout = hparams["window"], hparams["units"], hparams["heads"], hparams["dropout"]
    ids = keras.Input(shape=(window,), dtype="int32", name="ids")
    x = L.Embedding(vocab_size, hparams["embed_dim"], name="embed")(ids)
    for i in range(hparams["layers"]):
        x = L.Bidirectional(L.LSTM(units, return_sequences=True), name=f"bilstm_{i}")(x)
        x = L.Dropout(dropout)(x)
    if attention:
        attended = L.MultiHeadAttention(heads, key_dim=_key_dim(units, heads), dropout=dropout,
                                        name="self_attention")(x, x)
        x = L.LayerNormalization(name="attention_norm")(x + attended)
    # the second seed's head: a small dense layer at every step, then everything flattened
    x = L.TimeDistributed(L.Dense(hparams["dense"], activation="relu"), name="per_step")(x)
    x = L.Flatten()(x)
    x = L.Dropout(dropout)(x)
    return keras.Model(ids, L.Dense(vocab_size, name="logits")(x), name=name)


def _key_dim(units, heads):
    return max(1, 2 * units // heads)


def layout(vocab_size, hp, attention):
    """What build's model saves, in model.layers order (see vgmusic.nets.weights)."""
    V, E, u, n, d, h, w = (vocab_size, hp["embed_dim"], hp["units"], hp["layers"], hp["dense"], hp["heads"],
                           hp["window"])
    out = [("embedding", "embed", {"vars/0": (V, E)})]
    for i in range(n):
        inputs = E if i == 0 else 2 * u
        out.append(("bidirectional", f"bilstm_{i}", {**lstm_shapes("forward_layer/cell/", inputs, u),
                                                     **lstm_shapes("backward_layer/cell/", inputs, u)}))
    if attention:
        out += [("multi_head_attention", "self_attention", attention_shapes(2 * u, h, _key_dim(u, h))),
                ("layer_normalization", "attention_norm", norm_shapes(2 * u))]
    return out + [("time_distributed", "per_step", dense_shapes(2 * u, d, "layer/")),
                  ("dense", "logits", dense_shapes(w * d, V))]


class WindowStepper(Stepper):
    """Keeps the last `window` tokens (a seed brings at least that many) and re-runs the network on them."""

    def _start(self, seed):
        self.buffer = seed[:, -self.net.window:]
        return self.net.run(self.buffer)

    def _step(self, ids):
        self.buffer = np.concatenate([self.buffer[:, 1:], ids[:, None]], 1)
        return self.net.run(self.buffer)

    def _repeat(self, rep):
        self.buffer = rep(self.buffer)


class BidirectionalNet(NumpyNet):
    Stepper = WindowStepper

    def _load(self, w):
        (self.embed,), self.logits = w["embed"], w["logits"]
        # forward, backward
        self.bilstm = [(w[f"bilstm_{i}"][:3], w[f"bilstm_{i}"][3:]) for i in range(self.hparams["layers"])]
        # the layout decides which of the two networks this is
        self.attention = Attention(w["self_attention"]) if "self_attention" in w else None
        self.norm = w.get("attention_norm")
        self.per_step = w["per_step"]

    def _forward(self, ids):
        if ids.shape[1] != self.window:
            raise ValueError(f"a {self.arch} network reads exactly {self.window} tokens, got {ids.shape[1]}")
        return self.run(ids)

    def run(self, ids):
        """Logits [B, V] of the token after each window of ids [B, window]."""
        x = self.embed[ids]
        for forward, backward in self.bilstm:
            # Bidirectional: the backward LSTM reads the window reversed, its outputs are put back in order
            ahead = lstm_sequence(x @ forward[0] + forward[2], forward[1])[0]
            behind = lstm_sequence(x @ backward[0] + backward[2], backward[1], reverse=True)[0]
            x = np.concatenate([ahead, behind], -1)
        if self.attention:
            x = layer_norm(x + self.attention(x)[0], *self.norm)
        x = np.maximum(x @ self.per_step[0] + self.per_step[1], 0)
        return x.reshape(len(x), -1) @ self.logits[0] + self.logits[1]


def _arch(name, attention):
    return Arch(name, many_to_many=False,
                build=functools.partial(build, attention=attention, name=name),
                layout=functools.partial(layout, attention=attention),
                numpy_net=BidirectionalNet, keras_stepper=KerasWindowStepper)


BILSTM = _arch("bilstm", attention=False)
ATTENTION = _arch("attention", attention=True)
