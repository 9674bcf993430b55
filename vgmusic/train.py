"""Fit a model on one game's songs, holding out whole songs, and keep self-describing checkpoints.

The model folder ends up with:
  model.json          what the weights need: encoding, vocabulary, architecture, hyper-parameters, songs
  best.weights.h5     weights of the epoch with the lowest held-out loss (what predict.py uses)
  last.weights.h5     weights after the latest epoch (what --resume continues from)
  history.csv         loss and held-out loss per epoch
  learning_curve.png  the same, drawn
Every file is replaced atomically, so Ctrl-C at any moment leaves the best weights usable.
"""
import csv
import datetime
import io
import sys
import time
from pathlib import Path

import numpy as np

from .checkpoint import SIDECAR, WEIGHTS, describe
from .config import TrainConfig, build, default_model_dir, game_overrides, parser_for
from .encode import PAD, Vocab, flat_windows, get_encoding, load_songs, split_songs, token_kind
from .model import build_model, keras, many_to_many, save_compose_weights, tf
from .store import atomic_path, read_json, write_json


def model_dir_of(cfg):
    return Path(cfg.model_dir) if cfg.model_dir else default_model_dir(cfg.game)


def prepare(cfg):
    """Encoding, vocabulary, song split and token ids, or a ValueError naming what is missing."""
    enc = get_encoding({"name": cfg.encoding, "parts": cfg.parts, "key_normalize": cfg.key_normalize}
                       if cfg.encoding == "event" else cfg.encoding)
    if cfg.encoding == "classic" and (cfg.key_normalize or cfg.transpose or cfg.diatonic):
        raise ValueError("--key-normalize, --transpose and --diatonic need --encoding event "
                         "(classic chords have no octave)")
    if cfg.diatonic and not cfg.key_normalize:
        raise ValueError("--diatonic moves songs within C major / A minor: it needs --key-normalize")
    vocab = Vocab(enc.vocabulary(cfg.data_dir))
    songs = load_songs(cfg.data_dir, cfg.game)
    train, val = split_songs(songs, cfg.val_fraction, cfg.val_songs, cfg.split_seed)
    train = distinct(train, enc)

    def ids(song, shift=0, steps=0):
        tokens = enc.song_tokens(song, shift, steps)
        return None if tokens is None else vocab.ids(tokens, f"{cfg.data_dir}/{song['source']}.json: {song['file']}")

    # augmentation only on training songs: the held-out loss must stay about the songs as written
    train_ids = [i for s in train for shift in range(-cfg.transpose, cfg.transpose + 1)
                 for steps in range(-cfg.diatonic, cfg.diatonic + 1)
                 if (i := ids(s, shift, steps)) is not None and len(i)]
    val_ids = [i for s in val if (i := ids(s)) is not None and len(i)]
    return enc, vocab, train, val, train_ids, val_ids


# Two songs are one when this share of the shorter one's runs of RUN tokens are in the other too.
SAME_SONG, RUN = 0.8, 12


def distinct(songs, enc):
    """Songs minus near-copies of an earlier one: a song in twice weighs twice (Final Fantasy VII's
    Chocobo Billy and Farm Boy are one leaping melody, 28% of that game's training events)."""
    kept = []
    for song in songs:
        tokens = enc.song_tokens(song) or []
        runs = {tuple(tokens[i:i + RUN]) for i in range(len(tokens) - RUN + 1)}
        twin = next((other["file"] for other, seen in kept
                     if runs and seen and len(runs & seen) >= SAME_SONG * min(len(runs), len(seen))), None)
        if twin:
            print(f"note: {song['file']} repeats {twin}; training on it once", file=sys.stderr)
            continue
        kept.append((song, runs))
    return [song for song, _ in kept]


def datasets(cfg, vocab, train_ids, val_ids):
    """tf.data pipelines that cut windows from one flat token array, so memory stays O(tokens)."""
    pad = vocab.index.get(PAD)
    many = many_to_many(cfg.arch)
    # held-out windows: each held-out token is a target once (a song's last window may repeat a few)
    val_stride = cfg.window if many else 1
    out = []
    for id_lists, stride, train in ((train_ids, cfg.stride, True), (val_ids, val_stride, False)):
        flat, starts = flat_windows(id_lists, cfg.window, stride, pad)
        if not len(starts):
            raise ValueError(f"{cfg.game}: songs too short for windows of {cfg.window} tokens")
        def cut(s, flat_t=tf.constant(flat), idx=tf.range(cfg.window + 1, dtype=tf.int64)):
            w = tf.gather(flat_t, s[:, None] + idx[None])
            return w[:, :-1], (w[:, 1:] if many else w[:, -1])

        ds = tf.data.Dataset.from_tensor_slices(starts)
        if train:
            ds = ds.shuffle(len(starts), seed=cfg.seed)
            if cfg.max_steps:
                ds = ds.repeat()
        out += [ds.batch(cfg.batch_size).map(cut).prefetch(tf.data.AUTOTUNE), len(starts)]
    return out


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


class KindLoss(keras.callbacks.Callback):
    """Held-out loss split by what the target token says (pitch, duration, wait).

    The total hid that pitches were picked no better than chance while rhythm was learned,
    so each kind is logged (and written to history.csv) every epoch.
    """

    def __init__(self, val_data, vocab):
        super().__init__()
        self.val_data = val_data
        kinds = [token_kind(t) for t in vocab.tokens]
        self.names = sorted({k for k in kinds if k != "pad"})
        self.kind_of = np.array([self.names.index(k) if k != "pad" else -1 for k in kinds])

    def on_epoch_end(self, epoch, logs=None):
        sums, counts = np.zeros(len(self.names)), np.zeros(len(self.names))
        for x, y in self.val_data:
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


def check_resumable(old, new, where):
    for key in ("format", "encoding", "arch", "hparams", "vocab_hash", "songs"):
        if old.get(key) != new.get(key):
            raise ValueError(f"{where}: cannot --resume, the saved model's {key} differs from this run's "
                             f"(start afresh without --resume, or pick another --model-dir)")


def read_history(path):
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_history(path, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["epoch", "loss", "val_loss", "seconds"])
    w.writeheader()
    w.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def plot_curves(curves, path, title):
    """curves: {label: history rows}. One held-out line (solid) and training line (dashed) per label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, rows) in enumerate(curves.items()):
        color = f"C{i}"
        ep = [r["epoch"] for r in rows]
        ax.plot(ep, [r["val_loss"] for r in rows], color=color, label=f"{label} held-out")
        ax.plot(ep, [r["loss"] for r in rows], color=color, ls="--", alpha=0.6, label=f"{label} training")
        if rows and "val_pitch" in rows[0]:  # what event models are selected by
            ax.plot(ep, [r["val_pitch"] for r in rows], color=color, ls=":", label=f"{label} held-out pitches")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy per token (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


class Checkpointer(keras.callbacks.Callback):
    """Saves last and best weights, the sidecar and the history after every epoch, atomically."""

    def __init__(self, folder, meta, history, progress):
        super().__init__()
        self.folder, self.meta, self.history, self.progress = folder, meta, history, progress
        self.t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = datetime.datetime.now()

    def on_epoch_end(self, epoch, logs=None):
        secs = (datetime.datetime.now() - self.t0).total_seconds()
        row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"]),
               "seconds": round(secs, 3), **{k: round(v, 5) for k, v in logs.items() if k.startswith("val_")
                                              and k != "val_loss"}}
        self.history.append(row)
        # last keeps the optimizer's moments for --resume; best is what composing loads, weights only
        with atomic_path(self.folder / WEIGHTS["last"]) as tmp:
            self.model.save_weights(tmp)
        best = self.meta["best_score"]
        improved = best is None or row[self.meta["select"]] < best
        if improved:
            save_compose_weights(self.model, self.folder / WEIGHTS["best"])
            self.meta.update(best_score=row[self.meta["select"]], best_val_loss=row["val_loss"], best_epoch=epoch + 1)
        kinds = ", ".join(f"{k[4:]} {v:.3f}" for k, v in row.items() if k.startswith("val_") and k != "val_loss")
        print(f"epoch {epoch + 1}: loss {row['loss']:.3f}, held-out {row['val_loss']:.3f}"
              f"{f' ({kinds})' if kinds else ''}{' best' if improved else ''}", file=self.progress, flush=True)
        self.meta["epochs_done"] = epoch + 1
        write_history(self.folder / "history.csv", self.history)
        write_json(self.folder / SIDECAR, self.meta)


def train(cfg, progress=sys.stdout):
    keras.utils.set_random_seed(cfg.seed)
    enc, vocab, train_songs, val_songs, train_ids, val_ids = prepare(cfg)
    data, n_windows, val_data, _ = datasets(cfg, vocab, train_ids, val_ids)
    folder = model_dir_of(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    meta = describe(cfg, enc, vocab, train_songs, val_songs,
                    {"keras": keras.__version__, "tensorflow": tf.__version__})
    # The held-out pitch loss went on falling for epochs after the total had turned up (on Zelda: from
    # 3.44 to 2.59 while durations and waits, rhythms unlike the training songs', rose), and models
    # stopped by the total wrote wide random leaps. So event models keep the epoch of the best pitches.
    if cfg.select not in ("pitch", "total"):
        raise ValueError(f"--select must be 'pitch' or 'total', got {cfg.select!r}")
    has_pitch = any(token_kind(t) == "pitch" for t in vocab.tokens)
    meta["select"] = "val_pitch" if cfg.select == "pitch" and has_pitch else "val_loss"
    model = build_model(cfg.arch, len(vocab), meta["hparams"])
    # start-of-song padding is context, never a target
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=vocab.index.get(PAD)))

    history = []
    if cfg.resume:
        old = read_json(folder / SIDECAR, "model sidecar to resume from")
        check_resumable(old, meta, folder)
        model.optimizer.build(model.trainable_variables)  # so Adam's moments load too, not restart at zero
        model.load_weights(folder / WEIGHTS["last"])
        history = read_history(folder / "history.csv")[: old["epochs_done"]]
        meta.update({k: old[k] for k in ("created", "epochs_done", "best_epoch", "best_val_loss", "best_score")})
    print(f"{cfg.game}: {len(train_songs)} training songs ({n_windows} windows"
          f"{f', transposed +-{cfg.transpose}' if cfg.transpose else ''}"
          f"{f', moved +-{cfg.diatonic} scale steps' if cfg.diatonic else ''}), {len(val_songs)} held out "
          f"({', '.join(s['file'] for s in val_songs)}); {enc.name} encoding, vocabulary {len(vocab)}; "
          f"{cfg.arch}, {model.count_params():,} parameters -> {folder}", file=progress)

    callbacks = [KindLoss(val_data, vocab), Checkpointer(folder, meta, history, progress),
                 # held-out loss turns up after a few epochs on songs this small: stopping is part of training
                 keras.callbacks.EarlyStopping(monitor=meta["select"], mode="min", patience=cfg.patience)]
    if cfg.budget:
        callbacks.append(Budget(cfg.budget))
    interrupted = False
    try:
        model.fit(data, validation_data=val_data, epochs=cfg.epochs, initial_epoch=len(history),
                  steps_per_epoch=cfg.max_steps or None, shuffle=False, callbacks=callbacks, verbose=cfg.verbose)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted: best weights (epoch {meta['best_epoch']}) are in {folder}", file=progress)
    if history:
        plot_curves({cfg.arch: history}, folder / "learning_curve.png", f"{cfg.game}: {cfg.arch}, {enc.name}")
        meta["baselines"] = heldout_baseline(enc, train_songs, val_songs)
        write_json(folder / SIDECAR, meta)
    if not interrupted and meta["best_epoch"]:
        print(f"best epoch {meta['best_epoch']} of {meta['epochs_done']} by {meta['select']} "
              f"({meta['best_score']:.3f}); held-out loss {meta['best_val_loss']:.3f} per token", file=progress)
    meta["interrupted"] = interrupted
    return meta, history, model


def heldout_baseline(enc, train_songs, val_songs):
    """How much held-out human songs share with the training songs: composing warns above it."""
    if not hasattr(enc, "song_notes"):
        return {}
    from .evaluate import originality
    refs = [enc.song_notes(s) for s in train_songs]
    found = [originality(enc.song_notes(s), refs) for s in val_songs]
    return {"copied_share": round(float(np.mean([f["copied_share"] for f in found])), 4),
            "longest_match": int(max(f["longest_match"] for f in found))}


# The models shipped in the four game folders, retrained by `python -m vgmusic retrain`.
SHIPPED = ("pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "three_games_combined")


def retrain_main(argv=None):
    """Retrain the shipped models from the songs with the default settings; report each held-out loss."""
    import argparse
    parser = argparse.ArgumentParser(description="Retrain the four shipped models (in <game>/weights/) from the "
                                                 "songs in data/ (run get_midi_songs.py and get_all_notes.py first) "
                                                 "with the default settings, and report each held-out loss.")
    parser.add_argument("--games", nargs="*", default=list(SHIPPED), metavar="GAME",
                        help=f"which of them (default: all of {', '.join(SHIPPED)})")
    parser.add_argument("--data-dir", default=TrainConfig.data_dir, help="extracted songs (default: data/)")
    parser.add_argument("--seed", type=int, default=0, help="training seed; the same seed repeats a model (default 0)")
    args = parser.parse_args(argv)
    rows = []
    for game in args.games:
        cfg = build(TrainConfig, argparse.Namespace(data_dir=args.data_dir, seed=args.seed, verbose=0),
                    **game_overrides(game), game=game)
        t0 = time.perf_counter()
        try:
            meta, history, _ = train(cfg)
        except (ValueError, FileNotFoundError) as e:
            sys.exit(f"error: {e}")
        if meta["interrupted"]:
            sys.exit(130)
        best = history[meta["best_epoch"] - 1]
        kinds = ", ".join(f"{k[4:]} {v:.3f}" for k, v in best.items() if k.startswith("val_") and k != "val_loss")
        rows.append(f"{game}: held-out loss {meta['best_val_loss']:.3f} per token ({kinds}) at epoch "
                    f"{meta['best_epoch']} of {meta['epochs_done']}, {time.perf_counter() - t0:.0f} s")
    print("\n".join(rows))


def main(game=None, argv=None):
    skip = ("game",) if game else ()
    parser = parser_for(TrainConfig, f"Train a model on {game or 'a game'}'s songs (run get_all_notes.py first).",
                        skip=skip)
    args = parser.parse_args(argv)
    game = game or args.game
    if not game:
        parser.error("--game is required")
    cfg = build(TrainConfig, args, **game_overrides(game), game=game)
    try:
        meta, _, _ = train(cfg)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    if meta["interrupted"]:
        sys.exit(130)  # the shell's code for Ctrl-C, so scripts chaining train and predict stop here
    return meta
