"""What a training run reads: its encoding, vocabulary and song split, the token ids, and the windows.

Kept apart from train.py (the run: checkpoints, signals, the command) so that a corpus of any size, a
style per song and a model to start from change the data side only.

Style: a model trained with `--style` sees, as the first token of every window, the control token of
the song's source (its game), and so learns each game's own way; predict.py --style puts that token
first. A share of windows (STYLE_DROPOUT) sees ANY_STYLE instead, so the same model also composes
without a style, from everything it heard.
"""
import sys

import numpy as np

from .encode import ANY_STYLE, MAX_STYLES

# windows trained without their style: enough to learn the unconditioned song (as classifier-free
# guidance drops its condition 10-20% of the time), few enough that each style keeps most of its data
STYLE_DROPOUT = 0.1
# Two songs are one when this share of the shorter one's runs of RUN tokens are in the other too.
SAME_SONG, RUN = 0.8, 12


def prepare(cfg):
    """Encoding, vocabulary, song split and token ids, or a ValueError naming what is missing."""
    from .encode import RESERVED, Vocab, get_encoding, load_songs, split_songs
    # new event models reserve control tokens (encode.RESERVED) for the conditioning to come
    enc = get_encoding({"name": cfg.encoding, "parts": cfg.tracks, "key_normalize": cfg.key_normalize,
                        "reserved": RESERVED} if cfg.encoding == "event" else cfg.encoding)
    if cfg.encoding == "classic" and (cfg.key_normalize or cfg.transpose or cfg.diatonic):
        raise ValueError("--key-normalize, --transpose and --diatonic need --encoding event "
                         "(classic chords have no octave)")
    if cfg.diatonic and not cfg.key_normalize:
        raise ValueError("--diatonic moves songs within C major / A minor: it needs --key-normalize")
    vocab = Vocab(enc.vocabulary(cfg.data_dir))
    train, val = split_songs(load_songs(cfg.data_dir, cfg.game), cfg.val_fraction, cfg.val_songs, cfg.split_seed)
    train = distinct(train, enc)

    def ids(song, shift=0, steps=0):
        tokens = enc.song_tokens(song, shift, steps)
        return None if tokens is None else vocab.ids(tokens, f"{cfg.data_dir}/{song.meta['source']}.json: {song.meta['file']}")

    # augmentation only on training songs: the held-out loss must stay about the songs as written
    train_ids = [(i, s) for s in train for shift in range(-cfg.transpose, cfg.transpose + 1)
                 for steps in range(-cfg.diatonic, cfg.diatonic + 1)
                 if (i := ids(s, shift, steps)) is not None and len(i)]
    val_ids = [(i, s) for s in val if (i := ids(s)) is not None and len(i)]
    return enc, vocab, train, val, train_ids, val_ids


def styles_of(cfg, songs, vocab):
    """The sidecar's "styles" (source name -> control token) of a --style run, or {} without one."""
    from .encode import control
    if not getattr(cfg, "style", False):
        return {}
    names = sorted({s.meta["source"] for s in songs})
    if len(names) > MAX_STYLES:
        raise ValueError(f"--style: {len(names)} sources, more than the {MAX_STYLES} styles a model can tell apart")
    tokens = {name: control(i) for i, name in enumerate(names)}
    missing = [t for t in [*tokens.values(), control(ANY_STYLE)] if t not in vocab.index]
    if missing:
        raise ValueError(f"--style needs control tokens this encoding does not reserve ({', '.join(missing)})")
    return tokens


def style_ids(styles, vocab, pairs):
    """The style token id of each (ids, song) pair, or None when the run has no styles."""
    if not styles:
        return None
    return [vocab.index[styles[song.meta["source"]]] for _, song in pairs]


def distinct(songs, enc):
    """Songs minus near-copies of an earlier one: a song in twice weighs twice (Final Fantasy VII's
    Chocobo Billy and Farm Boy are one leaping melody, 28% of that game's training events)."""
    kept = []
    for song in songs:
        tokens = enc.song_tokens(song) or []
        runs = {tuple(tokens[i:i + RUN]) for i in range(len(tokens) - RUN + 1)}
        twin = next((other.meta["file"] for other, seen in kept
                     if runs and seen and len(runs & seen) >= SAME_SONG * min(len(runs), len(seen))), None)
        if twin:
            print(f"note: {song.meta['file']} repeats {twin}; training on it once", file=sys.stderr)
            continue
        kept.append((song, runs))
    return [song for song, _ in kept]


def window_styles(id_lists, styles, starts_per_song, any_id, seed):
    """The style token of every training window, a STYLE_DROPOUT share of them ANY_STYLE (seeded)."""
    per_window = np.concatenate([np.full(n, s, np.int32) for s, n in zip(styles, starts_per_song)])
    if any_id is not None:
        drop = np.random.default_rng(seed).random(len(per_window)) < STYLE_DROPOUT
        per_window[drop] = any_id
    return per_window


def datasets(cfg, vocab, train_ids, val_ids, styles=None):
    """tf.data pipelines that cut windows from one flat token array, so memory stays O(tokens). With
    `styles` (the sidecar's), every window's first token is its song's style token."""
    from .encode import PAD, control, flat_windows
    from .model import many_to_many, tf
    pad, many = vocab.index.get(PAD), many_to_many(cfg.arch)
    out = []
    # held-out windows: each held-out token is a target once (a song's last window may repeat a few)
    for pairs, stride, train in ((train_ids, cfg.stride, True), (val_ids, cfg.window if many else 1, False)):
        id_lists = [i for i, _ in pairs]
        flat, starts, counts = flat_windows(id_lists, cfg.window, stride, pad, counts=True)
        if not len(starts):
            raise ValueError(f"{cfg.game}: songs too short for windows of {cfg.window} tokens")
        columns = [starts]
        if styles:
            # held-out windows keep their style: the held-out loss is the conditioned one
            any_id = vocab.index[control(ANY_STYLE)] if train else None
            columns.append(window_styles(id_lists, style_ids(styles, vocab, pairs), counts, any_id, cfg.seed))

        def cut(s, *style, flat_t=tf.constant(flat), idx=tf.range(cfg.window + 1, dtype=tf.int64)):
            w = tf.gather(flat_t, s[:, None] + idx[None])
            x = w[:, :-1]
            if style:  # the style token in the first position, the window's other tokens after it
                x = tf.concat([tf.cast(style[0][:, None], x.dtype), x[:, 1:]], axis=1)
            return x, (w[:, 1:] if many else w[:, -1])
        ds = tf.data.Dataset.from_tensor_slices(tuple(columns))
        if train:
            ds = ds.shuffle(len(starts), seed=cfg.seed)
            if cfg.max_steps:
                ds = ds.repeat()
        out += [ds.batch(cfg.batch_size).map(cut).prefetch(tf.data.AUTOTUNE), len(starts)]
    return out


def tokens_per_event(enc, vocab, val_ids):
    """Held-out tokens per event: a loss per token times this is the loss per event, which compares
    encodings (and vocabularies) with different numbers of tokens per note."""
    events = sum(enc.events([vocab.tokens[t] for t in ids]) for ids, _ in val_ids)
    tokens = sum(len(ids) for ids, _ in val_ids)
    return tokens / events if events else None


def heldout_baseline(enc, train_songs, val_songs):
    """How much held-out human songs share with the training songs: composing warns above it."""
    if not hasattr(enc, "song_notes"):
        return {}
    from .evaluate import originality
    refs = [enc.song_notes(s) for s in train_songs]
    found = [originality(enc.song_notes(s), refs) for s in val_songs]
    return {"copied_share": round(float(np.mean([f["copied_share"] for f in found])), 4),
            "longest_match": int(max(f["longest_match"] for f in found))}


# --- a corpus of token shards (get_all_notes.py --base): how the base model is pretrained -------------

class Listed:
    """A song of a shard index as the sidecar lists it: where it came from, no notes (those stay in the
    shards) and no tempo (a base model is fine-tuned before it composes)."""

    def __init__(self, row):
        self.meta, self.bpm = {"source": row["source"], "file": row["file"], "sha256": row["sha256"]}, None


def judged_songs():
    """(source, file) of every song a shipped model is judged on (its sidecar's held-out songs): the
    base model never trains on them, so a game fine-tuned from it is judged on songs neither heard."""
    from .checkpoint import read_sidecar
    from .config import SHIPPED, default_model_dir
    held = set()
    for game in SHIPPED:
        try:
            meta, _ = read_sidecar(default_model_dir(game))
        except ValueError:
            continue  # a checkout without that model: nothing of it to keep apart
        held |= {(source, file) for source, file, _ in meta["songs"]["val"]}
    return held


def prepare_shards(cfg):
    """(encoding, vocabulary, Shards, training song numbers, held-out song numbers) of cfg.shards."""
    from .encode import Vocab, get_encoding
    from .shards import Shards
    if cfg.style:
        raise ValueError("--style trains on a game's extracted songs, not on --shards")
    shards = Shards(cfg.shards)
    enc, vocab = get_encoding(shards.spec), Vocab(shards.tokens)
    wanted = {"name": cfg.encoding, "parts": cfg.tracks, "key_normalize": cfg.key_normalize}
    if {k: shards.spec.get(k) for k in wanted} != wanted:
        raise ValueError(f"{cfg.shards}: shards encoded as {shards.spec}, not as this run's settings {wanted} "
                         "(rebuild them with get_all_notes.py --base, or match --tracks / --key-normalize)")
    stored = int(shards.index.get("diatonic", 0))
    if cfg.diatonic > stored:
        raise ValueError(f"{cfg.shards}: songs stored moved by up to {stored} scale steps, not --diatonic "
                         f"{cfg.diatonic}")
    train, val = shards.split(cfg.val_fraction, cfg.split_seed, held_out=judged_songs())
    return enc, vocab, shards, train, val


def shard_datasets(cfg, shards, train, val):
    """The training stream (windows read from the memory-mapped shards batch by batch, in a seeded
    order, so memory never grows with the corpus) and the held-out windows (held in memory: a few
    thousand), as datasets() returns them."""
    from .model import many_to_many, tf
    many = many_to_many(cfg.arch)
    steps = range(-cfg.diatonic, cfg.diatonic + 1)
    weights = None
    if cfg.game_weight > 1:
        from .corpora import game_music
        weights = {source: cfg.game_weight for source in shards.sources if game_music(source)}
    stream = shards.windows(cfg.window, cfg.stride, songs=train, steps=steps, shuffle=True, seed=cfg.seed,
                            weights=weights)
    if weights:
        games = shards.windows(cfg.window, cfg.stride, songs=[s for s in train if shards.songs[s]["source"] in weights],
                               steps=steps, weights=weights)
        print(f"{cfg.game}: game music ({', '.join(sorted(weights))}) counted {cfg.game_weight} times: "
              f"{len(games) / len(stream):.0%} of {len(stream):,} training windows", flush=True)
    held = shards.windows(cfg.window, cfg.window if many else 1, songs=val, steps=[0])
    if not len(stream) or not len(held):
        raise ValueError(f"{cfg.shards}: songs too short for windows of {cfg.window} tokens")
    target = tf.TensorSpec((None, cfg.window) if many else (None,), tf.int32)
    data = tf.data.Dataset.from_generator(lambda: stream.batches(cfg.batch_size, None, many),
                                          output_signature=(tf.TensorSpec((None, cfg.window), tf.int32), target))
    w = held.take(np.arange(len(held)))
    val_data = tf.data.Dataset.from_tensor_slices((w[:, :-1], w[:, 1:] if many else w[:, -1]))
    return [data.prefetch(4), len(stream), val_data.batch(cfg.batch_size), len(held)]


def shard_tokens_per_event(enc, vocab, shards, val):
    events = tokens = 0
    for song in val:
        ids = shards.ids(int(song))
        events += enc.events([vocab.tokens[t] for t in ids])
        tokens += len(ids)
    return tokens / events if events else None
