"""Everything that needs Keras: the networks built for training, the Keras reference stepper, the
weights files Keras writes, and the callbacks vgmusic.train fits with.

Each network is defined once, in its vgmusic.nets module, beside its weights layout and the NumPy
forward pass that composes without TensorFlow; build_model and keras_stepper find it by name there.
lstm, transformer and rotary are causal and give next-token logits at every position (many-to-many); bilstm and
attention read the window in both directions, so they predict only the token after it (many-to-one).
"""
import io
import time
from pathlib import Path

import h5py
import numpy as np

from . import nets, quiet_tensorflow
from .encode import token_kind
from .store import atomic_path

keras = quiet_tensorflow()
import tensorflow as tf  # noqa: E402

# the transformer's Keras layer, under the name it has always been imported by
PositionEmbedding = nets.transformer.position_embedding()


def check_arch(arch):
    """The registry's Arch of `arch`, or a one-line ValueError that lists the known ones."""
    return nets.get(arch)


def build_model(arch, vocab_size, hparams):
    return nets.get(arch).build(vocab_size, nets.arch_hparams(hparams))


def many_to_many(arch):
    return nets.get(arch).many_to_many


def keras_stepper(arch, model, window, batch=1):
    """Sampling state over the Keras layers of `model`, run eagerly, behind the NumPy steppers' interface
    (start(seed) and step(ids) -> next-token logits, expand(k)): the reference they are tested against."""
    spec = nets.get(arch)
    return spec.keras_stepper(spec, model, window, batch)


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
