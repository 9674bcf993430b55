"""Networks, built with the functional API from the hyper-parameters a checkpoint stores.

lstm and transformer are causal and map a window of token ids to next-token logits at every
position (many-to-many): one window gives `window` training targets instead of the original's
one. bilstm and attention read the window in both directions, so they can only predict the
token after it (many-to-one), as the second seed project's models did.

The callbacks vgmusic.train fits them with are here too, beside everything else that needs Keras.

Composing runs these networks without TensorFlow (vgmusic.infer reads the weights file Keras
writes); KerasStepper here runs the Keras layers themselves behind the same interface, the
reference the NumPy path is tested against.
"""
import io
import time
from pathlib import Path

import h5py
import numpy as np

from . import quiet_tensorflow
from .checkpoint import ARCH_KEYS
from .encode import token_kind
from .store import atomic_path

keras = quiet_tensorflow()
import tensorflow as tf  # noqa: E402

L = keras.layers


def build_lstm(vocab_size, window, embed_dim, units, layers, heads, dense, dropout):
    """The original network (LSTM 256 x 2, dropout 0.3, Dense 256 relu, softmax), fed by an Embedding."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = L.Embedding(vocab_size, embed_dim, name="embed")(ids)
    for i in range(layers):
        x = L.LSTM(units, return_sequences=True, name=f"lstm_{i}")(x)
        x = L.Dropout(dropout)(x)
    x = L.Dense(dense, activation="relu", name="dense")(x)
    x = L.Dropout(dropout)(x)
    # Logits, not probabilities: the loss applies the softmax stably, sampling divides by temperature first.
    logits = L.Dense(vocab_size, name="logits")(x)
    return keras.Model(ids, logits, name="lstm")


def _bidirectional_body(vocab_size, window, embed_dim, units, layers, dropout):
    ids = keras.Input(shape=(window,), dtype="int32", name="ids")
    x = L.Embedding(vocab_size, embed_dim, name="embed")(ids)
    for i in range(layers):
        x = L.Bidirectional(L.LSTM(units, return_sequences=True), name=f"bilstm_{i}")(x)
        x = L.Dropout(dropout)(x)
    return ids, x


def _many_to_one_head(ids, x, vocab_size, dense, dropout, name):
    # the second seed's head: a small dense layer at every step, then everything flattened
    x = L.TimeDistributed(L.Dense(dense, activation="relu"), name="per_step")(x)
    x = L.Flatten()(x)
    x = L.Dropout(dropout)(x)
    return keras.Model(ids, L.Dense(vocab_size, name="logits")(x), name=name)


def build_bilstm(vocab_size, window, embed_dim, units, layers, heads, dense, dropout):
    ids, x = _bidirectional_body(vocab_size, window, embed_dim, units, layers, dropout)
    return _many_to_one_head(ids, x, vocab_size, dense, dropout, "bilstm")


def build_attention(vocab_size, window, embed_dim, units, layers, heads, dense, dropout):
    ids, x = _bidirectional_body(vocab_size, window, embed_dim, units, layers, dropout)
    attended = L.MultiHeadAttention(heads, key_dim=max(1, 2 * units // heads), dropout=dropout,
                                    name="self_attention")(x, x)
    x = L.LayerNormalization(name="attention_norm")(x + attended)
    return _many_to_one_head(ids, x, vocab_size, dense, dropout, "attention")


class PositionEmbedding(L.Layer):
    """Learned positions added to token embeddings (as in nanoGPT)."""

    def __init__(self, length, dim, **kw):
        super().__init__(**kw)
        self.length, self.dim = length, dim

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=(self.length, self.dim),
                                     initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + self.table[: tf.shape(x)[1]]


def build_transformer(vocab_size, window, embed_dim, units, layers, heads, dense, dropout):
    """Decoder-only, causal, pre-norm blocks; `units` is the model width, `dense` the feed-forward width."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = L.Embedding(vocab_size, units, name="embed")(ids)
    x = PositionEmbedding(window, units, name="positions")(x)
    x = L.Dropout(dropout)(x)
    for i in range(layers):
        h = L.LayerNormalization(name=f"norm_a{i}")(x)
        h = L.MultiHeadAttention(heads, key_dim=units // heads, dropout=dropout, name=f"attn_{i}")(
            h, h, use_causal_mask=True)
        x = x + L.Dropout(dropout)(h)
        h = L.LayerNormalization(name=f"norm_b{i}")(x)
        h = L.Dense(dense, activation="gelu", name=f"ff_in_{i}")(h)
        h = L.Dense(units, name=f"ff_out_{i}")(h)
        x = x + L.Dropout(dropout)(h)
    x = L.LayerNormalization(name="norm_out")(x)
    return keras.Model(ids, L.Dense(vocab_size, name="logits")(x), name="transformer")


class KerasStepper:
    """Sampling state over the Keras layers, run eagerly, behind the interface of vgmusic.infer's steppers:
    start(seed ids [batch, s]; a 1-D seed serves every row) -> next-token logits [batch, V], and
    step(ids [batch]) -> the logits after them, all NumPy. It is the reference the NumPy path is tested
    against, and a fallback; speed is secondary.

    The LSTM carries (h, c) of every layer, one cell step per token. The others keep the last `window`
    tokens and re-run on them (the transformer also reads a shorter context, at positions from 0).
    """

    def __init__(self, arch, model, window, batch=1):
        check_arch(arch)
        self.arch, self.model, self.window, self.batch = arch, model, int(window), int(batch)
        if arch == "lstm":
            self.embed = model.get_layer("embed")
            self.cells = [layer.cell for layer in model.layers if isinstance(layer, L.LSTM)]
            self.head = [model.get_layer("dense"), model.get_layer("logits")]

    def start(self, seed):
        seed = np.asarray(seed, np.int32)
        seed = np.tile(seed[None], (self.batch, 1)) if seed.ndim == 1 else seed
        if seed.ndim != 2 or len(seed) != self.batch or seed.shape[1] < 1:
            raise ValueError(f"seed must be [batch {self.batch}, tokens], got shape {seed.shape}")
        if self.arch == "lstm":
            self.state = [np.zeros((self.batch, c.units), np.float32) for c in self.cells for _ in range(2)]
            for t in range(seed.shape[1]):
                logits = self.step(seed[:, t])
            return logits
        if not many_to_many(self.arch) and seed.shape[1] < self.window:
            raise ValueError(f"a {self.arch} network needs a seed of at least {self.window} tokens, "
                             f"got {seed.shape[1]}")
        self.buffer = seed[:, -self.window:]
        return self._window_logits()

    def expand(self, k):
        """Every row becomes k rows going on from the same state, as vgmusic.infer's steppers do."""
        self.batch *= k
        if self.arch == "lstm":
            self.state = [np.repeat(np.asarray(s), k, axis=0) for s in self.state]
        else:
            self.buffer = np.repeat(self.buffer, k, axis=0)

    def step(self, ids):
        ids = np.asarray(ids, np.int32).reshape(self.batch)
        if self.arch != "lstm":
            full = self.buffer.shape[1] == self.window
            self.buffer = np.concatenate([self.buffer[:, 1:] if full else self.buffer, ids[:, None]], 1)
            return self._window_logits()
        x, state = self.embed(ids), []
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, [self.state[2 * i], self.state[2 * i + 1]], training=False)
            state += [h, c]
        self.state = state
        for layer in self.head:
            x = layer(x)
        return np.asarray(x)

    def _window_logits(self):
        out = np.asarray(self.model(self.buffer, training=False))
        return out[:, -1] if many_to_many(self.arch) else out


def keras_stepper(arch, model, window, batch=1):
    return KerasStepper(arch, model, window, batch)


class _InMemory(io.BytesIO):
    """An in-memory target for model.save_weights, which checks that its target's name ends in .weights.h5."""

    def __str__(self):
        return "memory.weights.h5"


def weights_bytes(model, optimizer=True):
    """The bytes of the `.weights.h5` file model.save_weights writes, built in memory; optimizer=False
    leaves out the optimizer's state (Adam's two moments triple the file), which composing never reads.

    HDF5 never writes to disk here: a file that fails mid-write (a full disk) stays open inside the
    HDF5 library, which then crashes the interpreter at exit (segfault in H5_term_library). The
    caller writes these bytes with Python, whose write errors are plain OSErrors.
    """
    full = _InMemory()
    model.save_weights(full)
    if optimizer:
        return full.getvalue()
    out = io.BytesIO()
    with h5py.File(full, "r") as src, h5py.File(out, "w") as dst:
        dst.attrs.update(src.attrs)
        for key in src:
            if key != "optimizer":
                src.copy(src[key], dst, name=key)
    return out.getvalue()


def save_compose_weights(model, path):
    """Write the network's weights alone, atomically: what composing loads, into a fresh build_model(...)
    with model.load_weights or into vgmusic.infer.NumpyNet."""
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"{path}: weights files must end in .weights.h5")
    data = weights_bytes(model, optimizer=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# name: (builder, many-to-many targets?)
ARCHS = {
    "lstm": (build_lstm, True),
    "bilstm": (build_bilstm, False),
    "attention": (build_attention, False),
    "transformer": (build_transformer, True),
}


def check_arch(arch):
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")


def build_model(arch, vocab_size, hparams):
    check_arch(arch)
    return ARCHS[arch][0](vocab_size, **{k: hparams[k] for k in ARCH_KEYS})


def many_to_many(arch):
    check_arch(arch)
    return ARCHS[arch][1]


# --- what vgmusic.train fits with -------------------------------------------------------------------

class KindLoss(keras.callbacks.Callback):
    """Held-out loss split by what the target token says (pitch, duration, wait).

    The total hid that pitches were picked no better than chance while rhythm was learned,
    so each kind is logged (and written to history.csv) every epoch. `check()` runs before each batch.
    """

    def __init__(self, val_data, vocab, check=lambda: None):
        super().__init__()
        self.val_data, self.check = val_data, check
        kinds = [token_kind(t) for t in vocab.tokens]
        self.names = sorted({k for k in kinds if k != "pad"})
        self.kind_of = np.array([self.names.index(k) if k != "pad" else -1 for k in kinds])

    def on_epoch_end(self, epoch, logs=None):
        sums, counts = np.zeros(len(self.names)), np.zeros(len(self.names))
        for x, y in self.val_data:
            self.check()
            logits = self.model(x, training=False).numpy().astype(np.float64)
            y = y.numpy()
            logp = logits - logits.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            nll = -np.take_along_axis(logp, y[..., None], -1)[..., 0]
            kind = self.kind_of[y]
            keep = kind >= 0
            np.add.at(sums, kind[keep], nll[keep])
            np.add.at(counts, kind[keep], 1)
        for i, name in enumerate(self.names):
            if counts[i]:
                logs[f"val_{name}"] = float(sums[i] / counts[i])


class Checkpointer(keras.callbacks.Callback):
    """Hands each epoch's row of history to `save(model, row)` (True when the epoch is the best so far),
    prints it, and calls `check()` between steps: vgmusic.train raises a held Ctrl-C there."""

    def __init__(self, save, check, progress):
        super().__init__()
        self.save, self.check, self.progress = save, check, progress

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    # batch *begin*: a callback with batch-end methods would keep Keras from running those asynchronously
    def on_train_batch_begin(self, batch, logs=None):
        self.check()

    def on_test_batch_begin(self, batch, logs=None):
        self.check()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"]),
               "seconds": round(time.perf_counter() - self.t0, 3),
               **{k: round(v, 5) for k, v in logs.items() if k.startswith("val_") and k != "val_loss"}}
        improved = self.save(self.model, row)
        kinds = ", ".join(f"{k[4:]} {v:.3f}" for k, v in row.items() if k.startswith("val_") and k != "val_loss")
        print(f"epoch {epoch + 1}: loss {row['loss']:.3f}, held-out {row['val_loss']:.3f}"
              f"{f' ({kinds})' if kinds else ''}{' best' if improved else ''}", file=self.progress, flush=True)
        self.check()


class Budget(keras.callbacks.Callback):
    """Stops training once the wall-clock budget is spent; the partial epoch is still validated and saved."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.t0 = seconds, None

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.t0 > self.seconds:
            self.model.stop_training = True
