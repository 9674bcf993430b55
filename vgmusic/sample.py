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
from .encode import PAD, Vocab, get_encoding, load_songs
from .model import build_model, stepper, tf
from .render import piano_roll, write_midi
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


def make_generator(arch, model, window, top_k=0):
    """A compiled function (seed ids [batch, s], n, temperature, rng pair) -> ids [batch, n]."""
    start, step = stepper(arch, model, window)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int64)])
    def generate(seed_ids, n, temperature, rng):
        logits, state = start(seed_ids)
        out = tf.TensorArray(tf.int32, size=n)
        for i in tf.range(n):
            token = _pick(logits, temperature, top_k, tf.stack([rng[0], rng[1] + tf.cast(i, tf.int64)]))
            out = out.write(i, token)
            logits, state = step(token, state)
        return tf.transpose(out.stack())

    return generate


def generate(arch, model, seed_ids, n, temperature=1.0, top_k=0, rng_seed=0, batch=1, window=None):
    """Sample `n` token ids after `seed_ids`; returns an array [batch, n]."""
    window = window or len(seed_ids)
    # tracing the loop costs more than running it, so keep one compiled generator per model
    cache = model.__dict__.setdefault("_generators", {})
    if (top_k, window) not in cache:
        cache[top_k, window] = make_generator(arch, model, window, top_k)
    seed = tf.constant(np.tile(np.asarray(seed_ids, np.int32)[None], (batch, 1)))
    rng = tf.constant([rng_seed % 2**31, 0], dtype=tf.int64)
    return cache[top_k, window](seed, tf.constant(n), tf.constant(float(temperature)), rng).numpy()


def padded(tokens, window, vocab):
    """Tokens with the start-of-song padding the model was trained with in front, if it has any."""
    return [PAD] * window + list(tokens) if PAD in vocab.index else list(tokens)


def seed_window(songs, enc, vocab, window, rng, where):
    """A random window of `window` tokens from the songs, as the original seeded (longer songs likelier)."""
    seqs = [(s, padded(enc.song_tokens(s), window, vocab)) for s in songs]
    seqs = [(s, t) for s, t in seqs if len(t) > window]
    if not seqs:
        raise ValueError(f"{where}: no song longer than the model's window of {window} tokens")
    weights = np.array([len(t) - window for _, t in seqs], float)
    song, tokens = seqs[rng.choice(len(seqs), p=weights / weights.sum())]
    start = int(rng.integers(0, len(tokens) - window))
    return vocab.ids(tokens[start:start + window], f"{where}: {song['file']}"), song


def new_generation_path(folder):
    """<timestamp>.mid, with a counter when several songs are written within one second."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = folder / f"{stamp}.mid", 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.mid"
    return path


def compose(cfg, game):
    folder = Path(cfg.model_dir) if cfg.model_dir else default_model_dir(game)
    meta, vocab, model = load_model(folder, cfg.which)
    enc = get_encoding(meta["encoding"])
    window = meta["hparams"]["window"]
    rng = np.random.default_rng(None if cfg.seed < 0 else cfg.seed)
    if cfg.prime:
        from .extract import parse_midi
        try:
            song = dict(parse_midi(cfg.prime), file=Path(cfg.prime).name)
        except ValueError as e:
            raise ValueError(f"{cfg.prime}: {e}") from None
        known = [t for t in padded(enc.song_tokens(song), window, vocab) if t in vocab.index]
        if len(known) < (1 if meta["arch"] == "lstm" else window):  # only the LSTM takes any seed length
            raise ValueError(f"{cfg.prime}: too few tokens this model knows to fill its window of {window}")
        seed = vocab.ids(known[-window:])
    else:
        data_vocab = Vocab(enc.vocabulary(cfg.data_dir))
        if data_vocab.hash != meta["vocab_hash"]:
            raise ValueError(f"{folder}: model was trained on another vocabulary ({len(vocab)} tokens) than "
                             f"{cfg.data_dir}/vocab.json ({len(data_vocab)}); re-run train.py, or seed with --prime")
        seed, song = seed_window(load_songs(cfg.data_dir, meta["game"]), enc, vocab, window, rng, cfg.data_dir)
    ids = generate(meta["arch"], model, seed, cfg.length, cfg.temperature, cfg.top_k,
                   int(rng.integers(2**31)), window=window)[0]
    tokens = [vocab.tokens[i] for i in ids]
    back = enc.song_shift(song)  # a key-normalised model composes in C / A minor: return to the seed's key
    notes = [[n[0], n[1], n[2] - back] for n in enc.decode(tokens) if 0 <= n[2] - back <= 127]
    out = Path(cfg.out) if cfg.out else new_generation_path(ROOT / game / "generations")
    tempo = cfg.tempo or song.get("tempo") or 120.0
    write_midi(notes, out, tempo=tempo, program=cfg.program)
    if cfg.roll:
        piano_roll(notes, out.with_suffix(".png"), f"{game}: {meta['arch']}, seeded from {song['file']}", tempo)
    return out, tokens, notes, song["file"]


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
