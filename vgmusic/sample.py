"""Compose: load a model folder, seed it, sample tokens, decode them and write MIDI.

Sampling runs as one compiled TensorFlow loop that carries the network's state
from token to token. The original called model.predict on the whole 25-token
window for every token, which costs a full forward pass plus Keras' per-call
overhead each time (see bench/).
"""
import datetime
import sys
from pathlib import Path

import numpy as np

from . import ROOT
from .config import PredictConfig, build, default_model_dir, parser_for
from .encode import Vocab, get_encoding, load_songs
from .model import build_model, stepper, tf
from .render import write_midi
from .store import read_json
from .train import FORMAT, SIDECAR


def load_model(folder, which="best"):
    """The model and its sidecar, checked against each other. Raises with one line naming the file."""
    folder = Path(folder)
    if not (folder / SIDECAR).exists():
        raise FileNotFoundError(f"{folder}: no trained model here (run train.py first)")
    meta = read_json(folder / SIDECAR, "model sidecar")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder / SIDECAR}: model format {meta.get('format')} is not {FORMAT}; re-train it")
    weights = folder / f"{which}.weights.h5"
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: weights not found (training never finished an epoch?)")
    vocab = Vocab(meta["vocab"])
    if vocab.hash != meta["vocab_hash"]:
        raise ValueError(f"{folder / SIDECAR}: vocabulary does not match its recorded hash")
    model = build_model(meta["arch"], len(vocab), meta["hparams"])
    try:
        model.load_weights(weights)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ValueError(f"{weights}: weights do not fit the vocabulary ({len(vocab)} tokens) and "
                         f"architecture in {SIDECAR}: {reason}") from None
    return meta, vocab, model


def _pick(logits, temperature, top_k, seed):
    logits = tf.cast(logits, tf.float32)
    if top_k:
        kth = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth, tf.fill(tf.shape(logits), -1e9), logits)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sampled = tf.random.stateless_categorical(logits / tf.maximum(temperature, 1e-6), 1, seed,
                                              dtype=tf.int32)[:, 0]
    return tf.where(temperature > 0, sampled, greedy)


def make_generator(arch, model, top_k=0):
    """A compiled function (seed ids [batch, s], n, temperature, rng pair) -> ids [batch, n]."""
    initial_state, step = stepper(arch, model)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int64)])
    def generate(seed_ids, n, temperature, rng):
        state = initial_state(tf.shape(seed_ids)[0])
        for t in tf.range(tf.shape(seed_ids)[1] - 1):  # warm the state on the seed
            _, state = step(seed_ids[:, t], state)
        token = seed_ids[:, -1]
        out = tf.TensorArray(tf.int32, size=n)
        for i in tf.range(n):
            logits, state = step(token, state)
            token = _pick(logits, temperature, top_k, tf.stack([rng[0], rng[1] + tf.cast(i, tf.int64)]))
            out = out.write(i, token)
        return tf.transpose(out.stack())

    return generate


def generate(arch, model, seed_ids, n, temperature=1.0, top_k=0, rng_seed=0, batch=1):
    """Sample `n` token ids after `seed_ids`; returns an array [batch, n]."""
    # tracing the loop costs more than running it, so keep one compiled generator per model
    cache = model.__dict__.setdefault("_generators", {})
    if top_k not in cache:
        cache[top_k] = make_generator(arch, model, top_k)
    fn = cache[top_k]
    seed = tf.constant(np.tile(np.asarray(seed_ids, np.int32)[None], (batch, 1)))
    rng = tf.constant([rng_seed % 2**31, 0], dtype=tf.int64)
    return fn(seed, tf.constant(n), tf.constant(float(temperature)), rng).numpy()


def seed_window(songs, enc, vocab, window, rng, where):
    """A random window of `window` tokens from the songs, as the original seeded (longer songs likelier)."""
    usable = [s for s in songs if len(enc.song_tokens(s)) > window]
    if not usable:
        raise ValueError(f"{where}: no song longer than the model's window of {window} tokens")
    weights = np.array([len(enc.song_tokens(s)) - window for s in usable], float)
    song = usable[rng.choice(len(usable), p=weights / weights.sum())]
    tokens = enc.song_tokens(song)
    start = int(rng.integers(0, len(tokens) - window))
    return vocab.ids(tokens[start:start + window], f"{where}: {song['file']}"), song["file"]


def compose(cfg, game):
    folder = Path(cfg.model_dir) if cfg.model_dir else default_model_dir(game)
    meta, vocab, model = load_model(folder, cfg.which)
    enc = get_encoding(meta["encoding"])
    window = meta["hparams"]["window"]
    rng = np.random.default_rng(None if cfg.seed < 0 else cfg.seed)
    if cfg.prime:
        from .extract import parse_midi
        try:
            tokens = enc.song_tokens(parse_midi(cfg.prime))
        except ValueError as e:
            raise ValueError(f"{cfg.prime}: {e}") from None
        known = [t for t in tokens if t in vocab.index]
        if not known:
            raise ValueError(f"{cfg.prime}: none of its tokens are in this model's vocabulary")
        seed, source = vocab.ids(known[-window:]), Path(cfg.prime).name
    else:
        data_vocab = Vocab(enc.vocabulary(cfg.data_dir))
        if data_vocab.hash != meta["vocab_hash"]:
            raise ValueError(f"{folder}: model was trained on another vocabulary ({len(vocab)} tokens) than "
                             f"{cfg.data_dir}/vocab.json ({len(data_vocab)}); re-run train.py, or seed with --prime")
        seed, source = seed_window(load_songs(cfg.data_dir, meta["game"]), enc, vocab, window, rng, cfg.data_dir)
    ids = generate(meta["arch"], model, seed, cfg.length, cfg.temperature, cfg.top_k,
                   int(rng.integers(2**31)))[0]
    tokens = [vocab.tokens[i] for i in ids]
    notes = enc.decode(tokens)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.out) if cfg.out else ROOT / game / "generations" / f"{stamp}.mid"
    write_midi(notes, out, tempo=cfg.tempo, program=cfg.program)
    return out, tokens, notes, source


def main(game=None, argv=None):
    skip = ("game",) if game else ()
    parser = parser_for(PredictConfig, f"Compose a new song with {game or 'a game'}'s trained model.", skip=skip)
    args = parser.parse_args(argv)
    game = game or args.game
    if not game:
        parser.error("--game is required")
    cfg = build(PredictConfig, args, game=game)
    try:
        out, tokens, notes, source = compose(cfg, game)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    pitches = len({n[2] for n in notes})
    print(f"wrote {out}: {len(tokens)} tokens, {len(notes)} notes, {pitches} distinct pitches (seeded from {source})")
    return out
