"""lstm: the original network (LSTM 256 x 2, dropout 0.3, Dense 256 relu, softmax), fed by an Embedding.

Causal, so it maps a window of token ids to next-token logits at every position (many-to-many): one
window gives `window` training targets instead of the original's one. Sampling carries every layer's
(h, c) from token to token: one cell step per token, from a seed of any length.

Style (hparams "style", trained by --style): the window's first token, which every training window of a
--style model makes its song's style token (vgmusic/trainset.py), has a second embedding, added to the
token embedding at every position. A style token read once, first in the window, was ignored (the held-out
songs were exactly as likely under every style, bench/results/style.md); added at every step it reaches
every gate. Zero at first, so a model started from one without it (--init-from base) starts as that
model. Its table has a row per token, not per style: the network needs to know nothing of which tokens
name styles, and rows never trained first stay zero.
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
    if hparams.get("style"):  # [B, 1, E], broadcast over every position
        x = x + L.Embedding(vocab_size, hparams["embed_dim"], embeddings_initializer="zeros", name="style")(ids[:, :1])
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
    style = [("embedding", "style", {"vars/0": (V, E)})] if hp.get("style") else []
    return ([("embedding", "embed", {"vars/0": (V, E)})] + style
            + [("lstm", f"lstm_{i}", lstm_shapes("cell/", E if i == 0 else u, u)) for i in range(n)]
            + [("dense", "dense", dense_shapes(u, d)), ("dense", "logits", dense_shapes(d, V))])


class LstmStepper(Stepper):
    """Carries every layer's (h, c) from token to token."""

    def _start(self, seed):
        self.token_gates = self.net.style_gates(seed[:, 0])
        h, self.states = self.net.run(seed)
        return self.net.head(h[:, -1])

    def _step(self, ids):
        return self.net.head(self._advance(ids))

    def _advance(self, ids):
        """Feeds ids [batch]; returns the top layer's h, without the head's logits (Stepper.advance)."""
        x = self.token_gates[ids]
        for i, (kernel, recurrent, bias) in enumerate(self.net.lstm):
            h, c = self.states[i]
            z = x + h @ recurrent if i == 0 else x @ kernel + bias + h @ recurrent
            x, c = lstm_cell(z, c)
            self.states[i] = (x, c)
        return x

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
        # each first token's style embedding projected as the first layer's input: [V, 4 units], or None
        self.style_rows = w["style"][0] @ kernel if "style" in w else None

    def style_gates(self, first):
        """The first layer's input projection of every token for sequences whose window starts with the
        tokens `first` [B]: token_gates, plus a style model's style row, chosen once per song, so a step
        still starts with one row lookup. One style per batch: composing's rows share their seed's."""
        if self.style_rows is None:
            return self.token_gates
        if len(set(first.tolist())) != 1:
            raise ValueError(f"{self.path}: a style model composes one style per batch; the seed's rows start "
                             f"with different tokens ({sorted(set(first.tolist()))[:4]})")
        return self.token_gates + self.style_rows[first[0]]

    def _forward(self, ids):
        return self.head(self.run(ids)[0])

    def run(self, ids):
        """The LSTM layers over ids [B, T]: the top layer's h at every step and each layer's final (h, c)."""
        x, states = None, []
        for i, (kernel, recurrent, bias) in enumerate(self.lstm):
            xz = self.token_gates[ids] if i == 0 else x @ kernel + bias
            if i == 0 and self.style_rows is not None:  # each row's own style, at every position
                xz = xz + self.style_rows[ids[:, 0]][:, None]
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
        self.style = model.get_layer("style") if any(layer.name == "style" for layer in model.layers) else None
        self.cells = [layer.cell for layer in model.layers if isinstance(layer, L.LSTM)]
        self.head = [model.get_layer("dense"), model.get_layer("logits")]

    def _start(self, seed):
        self.state = [np.zeros((self.batch, c.units), np.float32) for c in self.cells for _ in range(2)]
        # each row's style vector [B, E], added to every token's embedding as the model does
        self.style_vec = None if self.style is None else np.asarray(self.style(seed[:, 0]))
        for t in range(seed.shape[1]):
            logits = self._step(seed[:, t])
        return logits

    def _step(self, ids):
        x, state = self.embed(ids), []
        if self.style_vec is not None:
            x = x + self.style_vec
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, [self.state[2 * i], self.state[2 * i + 1]], training=False)
            state += [h, c]
        self.state = state
        for layer in self.head:
            x = layer(x)
        return x

    def _repeat(self, rep):
        self.state = [rep(s) for s in self.state]
        self.style_vec = None if self.style_vec is None else rep(self.style_vec)


LSTM = Arch("lstm", many_to_many=True, build=build, layout=layout, numpy_net=LstmNet,
            keras_stepper=KerasLstmStepper, style_embedding=True)
