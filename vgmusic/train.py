"""Fit a model on one game's songs, holding out whole songs, and keep self-describing checkpoints.

The model folder ends up with:
  model.json          what the weights need: encoding, vocabulary, architecture, hyper-parameters, songs
  best.weights.h5     weights of the epoch with the lowest held-out loss (what predict.py uses)
  last.weights.h5     weights after the latest epoch (what --resume continues from)
  history.csv         loss and held-out loss per epoch
  learning_curve.png  the same, drawn
An epoch's files are written beside their targets and renamed into place together, with Ctrl-C held
off for those milliseconds: the sidecar always describes the weights beside it, a full disk leaves the
previous epoch's files whole, and Ctrl-C or SIGTERM at any moment ends in one line saying what is kept.
"""
import contextlib
import hashlib
import dataclasses
import io
import json
import signal
import sys
import time
import warnings
from pathlib import Path

from .cli import build, interruption, on_terminal, os_error, parser_for, run_command
from .config import BASE_MODEL, CALIBRATED, SHIPPED, STYLED, RetrainConfig, TrainConfig, default_model_dir, game_overrides, train_dir  # noqa: F401
from .entry import forget_ctrl_c
from .trainset import distinct, prepare  # noqa: F401  (compare.py and the tests use them from here)

# SHIPPED is imported for bench/ and the tests (train.SHIPPED). h5py, TensorFlow and Keras load inside the
# functions using them, under cli.run_command: Ctrl-C in their import ends in one line; --help answers at once.


def check_memory(cfg, vocab_size, hp):
    """Refuse, before TensorFlow loads, settings whose training the kernel would kill for memory, silently."""
    from .nets import base, get
    need, what = base.training_memory(get(cfg.arch), vocab_size, hp, cfg.batch_size)
    if need > base.FREE_SHARE * (have := base.free_memory() or float("inf")):
        raise ValueError(f"these settings need about {need / 1e9:.1f} GB to train ({what}), more than the "
                         f"{have / 1e9:.1f} GB free here; lower --units, --layers, --window or --batch-size")


def check_resumable(old, new, where):
    # not the format: read_sidecar reads every readable one, and a newer one only records more
    for key in ("encoding", "arch", "hparams", "vocab_hash", "songs", "select", "styles"):
        if old.get(key) != new.get(key):
            raise ValueError(f"{where}: cannot --resume, the saved model's {key} differs from this run's "
                             f"(start afresh without --resume, or pick another --model-dir)")


def plot_curves(curves, path, title):
    """curves: {label: history rows}. One held-out line (solid) and training line (dashed) per label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .checkpoint import write_together
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, rows) in enumerate(curves.items()):
        ep, color = [r["epoch"] for r in rows], f"C{i}"
        ax.plot(ep, [r["val_loss"] for r in rows], color=color, label=f"{label} held-out")
        ax.plot(ep, [r["loss"] for r in rows], color=color, ls="--", alpha=0.6, label=f"{label} training")
        if rows and "val_pitch" in rows[0]:  # what event models are selected by
            ax.plot(ep, [r["val_pitch"] for r in rows], color=color, ls=":", label=f"{label} held-out pitches")
    ax.set(xlabel="epoch", ylabel="cross-entropy per token (nats)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    write_together(Path(path).parent, {Path(path).name: png.getvalue()})


class Run:
    """A training run's model folder and what is saved in it, one whole epoch at a time."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder else None
        self.meta, self.history = None, []  # this run's sidecar and history.csv, as they are on disk
        self.saved = False  # whether the folder holds a checkpoint of this run's model
        self.fitting, self.signal, self.held = False, None, {}

    def hold_signals(self):
        """From here to release_signals(), Ctrl-C and SIGTERM are recorded and raised by check(), called
        where TensorFlow is between steps: raised inside it (while it traces a function or runs an eager
        op) they came out as a SystemError or left half-made TensorFlow objects. A second one raises at once."""

        def record(signum, frame):
            first, self.signal = self.signal is None, self.signal or signum
            if not first:
                raise interruption(self.signal)
        # an ignored one stays ignored (nohup, a background job)
        self.held = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)
                     if signal.getsignal(s) is not signal.SIG_IGN}

    def release_signals(self):
        for s, handler in self.held.items():
            signal.signal(s, handler)
        self.held = {}

    def check(self):
        if self.signal is not None:
            raise interruption(self.signal)

    def save_epoch(self, model, row):
        """Last weights, best weights if the epoch is the best, history and sidecar, together. Returns
        whether the epoch is the best."""
        from .checkpoint import CURVE, HISTORY, SIDECAR, WEIGHTS, history_text, uninterrupted, write_together
        from .model import weights_bytes
        meta, history = dict(self.meta, epochs_done=row["epoch"]), self.history + [row]
        # last keeps the optimizer's moments for --resume; best is what composing loads, weights only
        files = {WEIGHTS["last"]: weights_bytes(model)}
        # select "last": every epoch is the one kept, its held-out loss the score
        score = row["val_loss" if meta["select"] == "last" else meta["select"]]
        improved = meta["select"] == "last" or meta["best_score"] is None or score < meta["best_score"]
        if improved:
            files[WEIGHTS["best"]] = weights_bytes(model, optimizer=False)
            meta.update(best_score=score, best_val_loss=row["val_loss"], best_epoch=row["epoch"])
            if meta.get("tokens_per_event"):  # per event: comparable across encodings and vocabularies
                meta["best_val_loss_per_event"] = round(row["val_loss"] * meta["tokens_per_event"], 5)
        # the sidecar names the very files it describes: loading refuses any other
        meta["weights_sha256"] = dict(meta.get("weights_sha256") or {}, **{
            which: hashlib.sha256(files[name]).hexdigest() for which, name in WEIGHTS.items() if name in files})
        files[HISTORY] = history_text(history)
        files[SIDECAR] = json.dumps(meta, indent=1)
        with uninterrupted():
            write_together(self.folder, files)
            if not self.saved:  # a fresh run's first epoch: an older model's curve must not outlive it
                (self.folder / CURVE).unlink(missing_ok=True)
            self.meta, self.history, self.saved = meta, history, True
        return improved

    def kept(self):
        """What the folder holds for --resume and composing, in words."""
        if not self.saved:
            return f"no epoch finished, nothing saved{f' in {self.folder}' if self.folder else ''}"
        m = self.meta
        loss = "held-out pitch loss" if m.get("select") == "val_pitch" else "held-out loss"
        return (f"best weights (epoch {m['best_epoch']}, {loss} {m['best_score']:.2f}) and last weights "
                f"(epoch {m['epochs_done']}) kept in {self.folder}; --resume continues")


def resumable(folder, meta, vocab):
    """The sidecar and history of the run to continue in `folder`, its weights files checked against the
    network (before TensorFlow loads: Keras' own errors run to pages), or a one-line error naming the file."""
    from .checkpoint import HISTORY, SIDECAR, check_weights_file, read_history, read_sidecar, read_weights, weights_path
    if not (folder / SIDECAR).exists():
        raise ValueError(f"{folder}: no {SIDECAR} to --resume from (train without --resume)")
    old, _ = read_sidecar(folder)
    check_resumable(old, meta, folder)
    missing = [k for k in RESUMED if old.get(k) is None]
    if missing:
        raise ValueError(f"{folder / SIDECAR}: damaged sidecar (no {', '.join(missing)}); cannot --resume")
    history = read_history(folder / HISTORY, old["epochs_done"])
    for which in ("best", "last"):
        path = weights_path(folder, which)
        read_weights(path, meta["arch"], len(vocab), meta["hparams"])
        check_weights_file(path, old, which)
    return old, history


def starting_point(cfg, meta):
    """The weights a fine-tuning run starts from (--init-from: a model folder, or 'base'), checked
    against this run's network and vocabulary before TensorFlow loads, and what the sidecar records of them."""
    from .checkpoint import read_sidecar, read_weights, check_weights_file, weights_path
    folder = BASE_MODEL if cfg.init_from == "base" else Path(cfg.init_from).expanduser()
    old, _ = read_sidecar(folder)
    for key, what in (("arch", "architecture"), ("vocab_hash", "vocabulary"), ("encoding", "encoding")):
        if old.get(key) != meta.get(key):
            raise ValueError(f"{folder}: cannot --init-from this model, its {what} differs from this run's "
                             f"({old.get(key)} against {meta.get(key)})")
    path = weights_path(folder, "best")
    # the shapes say whether every weight fits (units, layers, embedding...): dropout or an LSTM's
    # window may differ, they shape no weight. A source without this run's style embedding (the base
    # model) gives every other layer, checked the same; the style embedding starts at zero.
    added = bool(meta["hparams"].get("style")) and not old["hparams"].get("style")
    arrays = read_weights(path, meta["arch"], len(meta["vocab"]), dict(meta["hparams"], style=False) if added
                          else meta["hparams"])
    check_weights_file(path, old, "best")
    return {"weights": path, "layers": arrays if added else None,
            "record": {"folder": "base" if cfg.init_from == "base" else str(folder), "game": old.get("game"),
                       "weights_sha256": (old.get("weights_sha256") or {}).get("best"),
                       "best_val_loss": old.get("best_val_loss")}}


# what a resumed run takes over from the sidecar it continues
RESUMED = ("created", "epochs_done", "best_epoch", "best_val_loss", "best_score")


def train(cfg, progress=sys.stdout, run=None):
    """Train on cfg.game's songs into cfg.model_dir; returns (sidecar, history rows, model).

    Ctrl-C and SIGTERM raise KeyboardInterrupt (entry.Terminated) and write errors OSError, always with
    the folder's files consistent; `run` (a Run) then says what they hold.
    """
    from .checkpoint import CURVE, WEIGHTS, describe, remove_temporaries
    from .encode import PAD, token_kind
    from .trainset import (Listed, datasets, heldout_baseline, prepare_shards, shard_datasets,
                           shard_tokens_per_event, styles_of, tokens_per_event)
    run = run if run is not None else Run()
    folder = run.folder = Path(cfg.model_dir or default_model_dir(cfg.game))
    # a base corpus takes minutes to read before TensorFlow's import: the first line says what is under way
    print(f"{cfg.game}: reading the songs in {cfg.shards or cfg.data_dir}", file=progress, flush=True)
    if cfg.shards:  # a corpus of any size, read from disk (the base model)
        enc, vocab, shards, train_ids, val_ids = prepare_shards(cfg)
        train_songs, val_songs = ([Listed(shards.songs[i]) for i in rows] for rows in (train_ids, val_ids))
    else:
        enc, vocab, train_songs, val_songs, train_ids, val_ids = prepare(cfg)
    meta = describe(cfg, enc, vocab, train_songs, val_songs, {})
    check_memory(cfg, len(vocab), meta["hparams"])
    # The held-out pitch loss went on falling for epochs after the total had turned up (on Zelda: from
    # 3.44 to 2.59 while durations and waits, rhythms unlike the training songs', rose), and models
    # stopped by the total wrote wide random leaps. So event models keep the epoch of the best pitches.
    has_pitch = any(token_kind(t) == "pitch" for t in vocab.tokens)
    meta["select"] = "last" if cfg.select == "last" else "val_pitch" if cfg.select == "pitch" and has_pitch else "val_loss"
    meta["baselines"] = {} if cfg.shards else heldout_baseline(enc, train_songs, val_songs)
    meta["tokens_per_event"] = (shard_tokens_per_event(enc, vocab, shards, val_ids) if cfg.shards
                                else tokens_per_event(enc, vocab, val_ids))
    styles = styles_of(cfg, train_songs + val_songs, vocab)
    if styles:
        meta["styles"] = styles
    start = starting_point(cfg, meta) if cfg.init_from and not cfg.resume else None
    if start:
        meta["init_from"] = start["record"]
    old, history = resumable(folder, meta, vocab) if cfg.resume else (None, [])
    if old:
        meta.update({k: old[k] for k in RESUMED}, weights_sha256=old.get("weights_sha256"))
    run.meta, run.history, run.saved = meta, history, bool(old)
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporaries(folder)
    title = f"{cfg.game}: {cfg.arch}, {enc.name}"

    from .model import Budget, Checkpointer, KindLoss, build_model, keras, tf
    meta["versions"].update(keras=keras.__version__, tensorflow=tf.__version__)
    run.hold_signals()
    try:
        keras.utils.set_random_seed(cfg.seed)
        data, n_windows, val_data, _ = (shard_datasets(cfg, shards, train_ids, val_ids) if cfg.shards
                                        else datasets(cfg, vocab, train_ids, val_ids, styles))
        run.check()
        model = build_model(cfg.arch, len(vocab), meta["hparams"])
        # start-of-song padding is context, never a target
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                      ignore_class=vocab.index.get(PAD)))
        if old:
            model.optimizer.build(model.trainable_variables)  # so Adam's moments load too, not restart at zero
            try:
                model.load_weights(folder / WEIGHTS["last"])
            except Exception as e:  # what read_weights cannot see: the optimizer's part, or Keras' own checks
                reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                raise ValueError(f"{folder / WEIGHTS['last']}: cannot --resume from these weights: {reason}") from None
        if start:  # fine-tuning: every weight from the model started from, the optimizer afresh
            with warnings.catch_warnings():  # that best weights carry no optimizer state is the point of them
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                if start["layers"] is None:
                    model.load_weights(start["weights"])
                for name, values in (start["layers"] or {}).items():  # every layer but the style's, by name
                    model.get_layer(name).set_weights(values)
        run.check()
        print(f"{cfg.game}: {len(train_songs)} training songs ({n_windows} windows"
              f"{f', transposed +-{cfg.transpose}' if cfg.transpose else ''}"
              f"{f', moved +-{cfg.diatonic} scale steps' if cfg.diatonic else ''}), {len(val_songs)} held out "
              f"({', '.join(s.meta['file'] for s in val_songs)}); {enc.name} encoding, vocabulary {len(vocab)}; "
              f"{cfg.arch}, {model.count_params():,} parameters"
              f"{f', styles {len(styles)}' if styles else ''}"
              f"{f', from {cfg.init_from}' if start else ''} -> {folder}", file=progress, flush=True)
        callbacks = [KindLoss(val_data, vocab, run.check), Checkpointer(run.save_epoch, run.check, progress)]
        # held-out loss turns up after a few epochs on songs this small: stopping is part of training
        if meta["select"] != "last":
            callbacks.append(keras.callbacks.EarlyStopping(monitor=meta["select"], mode="min", patience=cfg.patience))
        run.fitting = True
        model.fit(data, validation_data=val_data, epochs=cfg.epochs, initial_epoch=len(run.history),
                  steps_per_epoch=cfg.max_steps or None, shuffle=False, verbose=cfg.verbose,
                  callbacks=callbacks + ([Budget(cfg.budget)] if cfg.budget else []))
        run.check()
    except KeyboardInterrupt:
        if run.history:  # the curve so far, as after a finished run; a second Ctrl-C skips it
            with contextlib.suppress(OSError):
                plot_curves({cfg.arch: run.history}, folder / CURVE, title)
        raise
    finally:
        run.release_signals()
    if run.history:
        plot_curves({cfg.arch: run.history}, folder / CURVE, title)
    meta = run.meta
    if meta["best_epoch"]:
        print(f"best epoch {meta['best_epoch']} of {meta['epochs_done']} by "
              f"{'being the last' if meta['select'] == 'last' else meta['select']} "
              f"({meta['best_score']:.3f}); held-out loss {meta['best_val_loss']:.3f} per token", file=progress)
    return meta, run.history, model


def after_interruption():
    """Make a caught Ctrl-C end the process with cli.run_command's status and line, nothing more."""
    import logging
    logging.getLogger("tensorflow").setLevel(logging.CRITICAL)  # of objects a Ctrl-C left half-made, as freed
    forget_ctrl_c()


def train_command(cfg, run):
    """train() for a command: a write error also says what the folder still holds, and whatever a forced
    second Ctrl-C broke inside TensorFlow ends as the interruption it is."""
    try:
        return train(cfg, run=run)
    except KeyboardInterrupt:
        after_interruption()
        raise
    except Exception as e:
        if run.signal is not None:
            after_interruption()
            raise interruption(run.signal) from None
        if isinstance(e, OSError) and run.fitting:
            sys.exit(f"error: {os_error(e)}; {run.kept()}")
        raise


def retrain_main(argv=None):
    """Retrain the shipped models from the songs with the default settings; report each held-out loss."""
    import argparse
    done, runs = [], [Run()]

    def kept():
        return (f"{', '.join(done)} retrained; " if done else "") + runs[-1].kept()

    def body():
        parser = parser_for(RetrainConfig, "Retrain the four shipped models (in <game>/weights/, replacing them) "
                            "from the songs in data/ (run get_midi_songs.py and get_all_notes.py first) with the "
                            "default settings, and report each held-out loss.", prog="python -m vgmusic retrain")
        args = build(RetrainConfig, parser.parse_args(argv))
        rows = []
        for game in dict.fromkeys(args.games):
            # exactly the command that replaces the shipped models: it says so
            cfg = build(TrainConfig, argparse.Namespace(data_dir=args.data_dir, seed=args.seed, verbose=0),
                        **game_overrides(game), game=game, model_dir=str(default_model_dir(game)),
                        replace_shipped=True)
            t0 = time.perf_counter()
            runs.append(Run())
            meta, history, _ = train_command(cfg, runs[-1])
            best = history[meta["best_epoch"] - 1]
            kinds = ", ".join(f"{k[4:]} {v:.3f}" for k, v in best.items() if k.startswith("val_") and k != "val_loss")
            rows.append(f"{game}: held-out loss {meta['best_val_loss']:.3f} per token ({kinds}) at epoch "
                        f"{meta['best_epoch']} of {meta['epochs_done']}, {time.perf_counter() - t0:.0f} s")
            if game in CALIBRATED:  # new weights: the rhythm and each song's repeats measured anew (calibrate.py)
                from .calibrate import calibrate_folder
                calibrate_folder(default_model_dir(game), args.data_dir, characters=CALIBRATED[game])
            if game in STYLED:  # and each source's style, which --style composes with
                from .calibrate import calibrate_folder
                calibrate_folder(default_model_dir(game), args.data_dir, style="all")
            done.append(game)
        print("\n".join(rows))

    return run_command(body, kept=kept)


def main(game=None, argv=None):
    run = Run()

    def body():
        parser = parser_for(TrainConfig, f"Train a model on {game or 'a game'}'s songs (run get_all_notes.py first).",
                            **(dict(skip=("game",), defaults=dict(game_overrides(game), model_dir=str(train_dir(game))))
                               if game else {}))
        args = parser.parse_args(argv)
        name = game or args.game
        if not name:
            parser.error("--game is required")
        if args.val_fraction is not None and args.val_songs is not None:
            parser.error("give --val-fraction or --val-songs, not both")
        cfg = build(TrainConfig, args, **game_overrides(name), game=name)
        run.folder = folder = train_dir(name, cfg.model_dir, cfg.replace_shipped)
        if not cfg.model_dir and folder != default_model_dir(name):
            print(f"training into {folder}: {default_model_dir(name)} holds the shipped model, which "
                  "--replace-shipped would train over", flush=True)
        # Keras draws its progress bar with backspaces and carriage returns even into a file: lines there
        verbose = 2 if cfg.verbose == 1 and not on_terminal() else cfg.verbose
        cfg = dataclasses.replace(cfg, model_dir=str(folder), verbose=verbose)
        meta = train_command(cfg, run)[0]
        if folder.resolve() != default_model_dir(name).resolve():
            print(f"compose with it: python -m vgmusic predict --game {name} --model-dir {folder}")
        return meta

    # Ctrl-C exits 130, the shell's code for it, so scripts chaining train and predict stop there
    return run_command(body, kept=run.kept)
