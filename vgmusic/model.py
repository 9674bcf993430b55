"""Networks, built with the functional API from the hyper-parameters a checkpoint stores.

Every architecture maps a sequence of token ids to next-token logits at every
position (many-to-many), so one window of 25 tokens gives 25 training targets
instead of the original's one. Each also provides a single-step function so
that sampling carries state instead of re-running the whole window per token.
"""
from . import quiet_tensorflow

keras = quiet_tensorflow()
import tensorflow as tf  # noqa: E402

# Hyper-parameters that define the weights' shapes; a checkpoint stores these and sampling rebuilds from them.
ARCH_KEYS = ("window", "embed_dim", "units", "layers", "dense", "dropout")


def build_lstm(vocab_size, window, embed_dim, units, layers, dense, dropout):
    """The original network (LSTM 256 x 2, dropout 0.3, Dense 256 relu, softmax), fed by an Embedding."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embed_dim, name="embed")(ids)
    for i in range(layers):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}")(x)
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout)(x)
    # Logits, not probabilities: the loss applies the softmax stably, sampling divides by temperature first.
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(ids, logits, name="lstm")


def lstm_stepper(model):
    """(initial_state(batch), step(ids, state) -> (logits, state)) sharing the model's weights."""
    embed = model.get_layer("embed")
    cells = [l.cell for l in model.layers if isinstance(l, keras.layers.LSTM)]
    dense, out = model.get_layer("dense"), model.get_layer("logits")

    def initial_state(batch):
        return [tf.zeros((batch, c.units)) for c in cells for _ in range(2)]

    def step(ids, state):
        x = embed(ids)
        new = []
        for i, cell in enumerate(cells):
            x, (h, c) = cell(x, [state[2 * i], state[2 * i + 1]], training=False)
            new += [h, c]
        return out(dense(x)), new

    return initial_state, step


ARCHS = {"lstm": (build_lstm, lstm_stepper)}


def build_model(arch, vocab_size, hparams):
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[arch][0](vocab_size, **{k: hparams[k] for k in ARCH_KEYS})


def stepper(arch, model):
    return ARCHS[arch][1](model)
