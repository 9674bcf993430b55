"""Networks, built with the functional API from the hyper-parameters a checkpoint stores.

lstm and transformer are causal and map a window of token ids to next-token logits at every
position (many-to-many): one window gives `window` training targets instead of the original's
one. bilstm and attention read the window in both directions, so they can only predict the
token after it (many-to-one), as the second seed project's models did.

Each architecture also has a stepper for sampling: start(seed ids) -> (logits, state) and
step(ids, state) -> (logits, state). The LSTM carries its recurrent state; the others keep the
last `window` tokens as their state and re-run on them.
"""
from . import quiet_tensorflow

keras = quiet_tensorflow()
import tensorflow as tf  # noqa: E402

L = keras.layers
# Hyper-parameters that define the weights' shapes; a checkpoint stores these and sampling rebuilds from them.
ARCH_KEYS = ("window", "embed_dim", "units", "layers", "heads", "dense", "dropout")


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


def lstm_stepper(model, window):
    """Carries (h, c) of every layer from token to token: one cell step per generated token."""
    embed = model.get_layer("embed")
    cells = [l.cell for l in model.layers if isinstance(l, L.LSTM)]
    dense, out = model.get_layer("dense"), model.get_layer("logits")

    def step(ids, state):
        x = embed(ids)
        new = []
        for i, cell in enumerate(cells):
            x, (h, c) = cell(x, [state[2 * i], state[2 * i + 1]], training=False)
            new += [h, c]
        return out(dense(x)), new

    def start(seed):
        state = [tf.zeros((tf.shape(seed)[0], c.units)) for c in cells for _ in range(2)]
        logits = tf.zeros((tf.shape(seed)[0], out.units))
        for t in tf.range(tf.shape(seed)[1]):
            logits, state = step(seed[:, t], state)
        return logits, state

    return start, step


def window_stepper(model, window, many_to_many):
    """Keeps the last `window` tokens and re-runs the network on them, inside the compiled loop."""
    def logits_of(buffer):
        out = model(buffer, training=False)
        return out[:, -1] if many_to_many else out

    def start(seed):
        # a static length: Flatten in the many-to-one heads cannot size itself from an unknown one
        buffer = tf.reshape(seed[:, -window:], [-1, window])
        return logits_of(buffer), buffer

    def step(ids, buffer):
        buffer = tf.reshape(tf.concat([buffer[:, 1:], ids[:, None]], axis=1), [-1, window])
        return logits_of(buffer), buffer

    return start, step


# name: (builder, many-to-many targets?, stepper)
ARCHS = {
    "lstm": (build_lstm, True, lstm_stepper),
    "bilstm": (build_bilstm, False, lambda m, w: window_stepper(m, w, False)),
    "attention": (build_attention, False, lambda m, w: window_stepper(m, w, False)),
    "transformer": (build_transformer, True, lambda m, w: window_stepper(m, w, True)),
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


def stepper(arch, model, window):
    return ARCHS[arch][2](model, window)
