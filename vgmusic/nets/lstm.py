"""lstm: the original network (LSTM 256 x 2, dropout 0.3, Dense 256 relu, softmax), fed by an Embedding.

Causal, so it maps a window of token ids to next-token logits at every position (many-to-many): one
window gives `window` training targets instead of the original's one. Sampling carries every layer's
(h, c) from token to token: one cell step per token, from a seed of any length.
"""
import numpy as np

from .. import quiet_tensorflow
from .base import Arch, KerasStepper, NumpyNet, Stepper
from .layers import lstm_cell, lstm_sequence
from .weights import dense_shapes, lstm_shapes


def build(vocab_size, hparams):
    keras = quiet_tensorflow()
    L = keras.layers
    dropout = hparams["dropout"]
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = L.Embedding(vocab_size, hparams["embed_dim"], name="embed")(ids)
    for i in range(hparams["layers"]):
        x = L.LSTM(hparams["units"], return_sequences=True, name=f"lstm_{i}")(x)
        x = L.Dropout(dropout)(x)
    x = L.Dense(hparams["dense"], activation="relu", name="dense")(x)
    x = L.Dropout(dropout)(x)
    # Logits, not probabilities: the loss applies the softmax stably, sampling divides by temperature first.
    logits = L.Dense(vocab_size, name="logits")(x)
    return keras.Model(ids, logits, name=LSTM.name)


def layout(vocab_size, hp):
    """What build's model saves, in model.layers order (see vgmusic.nets.weights)."""
    V, E, u, n, d = vocab_size, hp["embed_dim"], hp["units"], hp["layers"], hp["dense"]
    return ([("embedding", "embed", {"vars/0": (V, E)})]
            + [("lstm", f"lstm_{i}", lstm_shapes("cell/", E if i == 0 else u, u)) for i in range(n)]
            + [("dense", "dense", dense_shapes(u, d)), ("dense", "logits", dense_shapes(d, V))])


class LstmStepper(Stepper):
    """Carries every layer's (h, c) from token to token."""

    def _start(self, seed):
        h, self.states = self.net.run(seed)
        return self.net.head(h[:, -1])

    def _step(self, ids):
        net = self.net
        x = net.token_gates[ids]
        for i, (kernel, recurrent, bias) in enumerate(net.lstm):
            h, c = self.states[i]
            z = x + h @ recurrent if i == 0 else x @ kernel + bias + h @ recurrent
            x, c = lstm_cell(z, c)
            self.states[i] = (x, c)
        return net.head(x)

    def _repeat(self, rep):
        self.states = [(rep(h), rep(c)) for h, c in self.states]


class LstmNet(NumpyNet):
    Stepper = LstmStepper

    def _load(self, w):
        (self.embed,), self.logits = w["embed"], w["logits"]
        self.lstm, self.dense = [w[f"lstm_{i}"] for i in range(self.hparams["layers"])], w["dense"]
        # the first layer's input projection of every token: a step starts with a row lookup
        kernel, _, bias = self.lstm[0]
        self.token_gates = self.embed @ kernel + bias

    def _forward(self, ids):
        return self.head(self.run(ids)[0])

    def run(self, ids):
        """The LSTM layers over ids [B, T]: the top layer's h at every step and each layer's final (h, c)."""
        x, states = None, []
        for i, (kernel, recurrent, bias) in enumerate(self.lstm):
            xz = self.token_gates[ids] if i == 0 else x @ kernel + bias
            x, state = lstm_sequence(xz, recurrent)
            states.append(state)
        return x, states

    def head(self, h):
        d = np.maximum(h @ self.dense[0] + self.dense[1], 0)
        return d @ self.logits[0] + self.logits[1]


class KerasLstmStepper(KerasStepper):
    """One eager cell step per token through the Keras LSTM cells, (h, c) of every layer carried."""

    def __init__(self, arch, model, window, batch=1):
        super().__init__(arch, model, window, batch)
        L = quiet_tensorflow().layers
        self.embed = model.get_layer("embed")
        self.cells = [layer.cell for layer in model.layers if isinstance(layer, L.LSTM)]
        self.head = [model.get_layer("dense"), model.get_layer("logits")]

    def _start(self, seed):
        self.state = [np.zeros((self.batch, c.units), np.float32) for c in self.cells for _ in range(2)]
        for t in range(seed.shape[1]):
            logits = self._step(seed[:, t])
        return logits

    def _step(self, ids):
        x, state = self.embed(ids), []
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, [self.state[2 * i], self.state[2 * i + 1]], training=False)
            state += [h, c]
        self.state = state
        for layer in self.head:
            x = layer(x)
        return x

    def _repeat(self, rep):
        self.state = [rep(s) for s in self.state]


LSTM = Arch("lstm", many_to_many=True, build=build, layout=layout, numpy_net=LstmNet,
            keras_stepper=KerasLstmStepper)
