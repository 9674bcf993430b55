"""Compare architectures, with and without transposition, on one game under one wall-clock budget.

    python -m vgmusic compare --game pokemon_red_blue_yellow --budget 120

Every run uses the same song-level split, the same encoding, the same budget and the same
number of steps per epoch. The table's held-out loss is measured the same way for every model:
each held-out token is predicted from the `window` tokens before it (start-of-song padding where
there are fewer), with the best weights, and the summed loss is divided by the held-out events.
Writes docs/compare/<game>.md, .json and .png (the second seed's model_learning chart, but on
held-out songs).
"""
import argparse
import time
import warnings
from pathlib import Path

from .checkpoint import ARCHS
from .cli import build, parser_for, run_command
from .config import CompareConfig, TrainConfig, game_overrides
from .store import atomic_path, write_json
from .train import Run, after_interruption, prepare, train_command

# NumPy and TensorFlow load inside run(), under cli.run_command (see train.py).


def held_out_loss(model, arch, val_ids, window, pad_id, batch=64):
    """Summed negative log-likelihood over all held-out tokens, and their number."""
    from .encode import windows
    from .model import many_to_many, tf
    x, y = windows(val_ids, window, 1, pad_id)
    total, count = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch], training=False)
        logits = logits[:, -1] if many_to_many(arch) else logits
        target = y[i:i + batch, -1]
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits).numpy()
        keep = target != (pad_id if pad_id is not None else -1)
        total, count = total + float(nll[keep].sum()), count + int(keep.sum())
    return total, count


def run(game, archs, transpose, budget, steps, data_dir, out_dir, runs_dir, encoding="event", done=None):
    """Train and measure every model on one game; `done` gets each finished run's label and Run."""
    import numpy as np
    from .encode import PAD
    rows, curves = [], {}
    done = [] if done is None else done
    for arch in archs:
        for shift in (0, transpose) if transpose else (0,):
            label = f"{arch}" + (f" +-{shift}" if shift else "")
            args = argparse.Namespace(arch=arch, transpose=shift, encoding=encoding, data_dir=data_dir,
                                      model_dir=str(Path(runs_dir) / game / label.replace(" +-", "-t")),
                                      budget=budget, max_steps=steps, verbose=0, epochs=10_000)
            cfg = build(TrainConfig, args, **game_overrides(game), game=game)
            print(f"== {game}: {label} ({budget:.0f} s)", flush=True)
            t0 = time.perf_counter()
            done.append((f"{game} {label}", Run()))
            meta, history, model = train_command(cfg, done[-1][1])
            wall = time.perf_counter() - t0
            with warnings.catch_warnings():  # that best weights carry no optimizer state is the point of them
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                model.load_weights(Path(cfg.model_dir) / "best.weights.h5")
            enc, vocab, _, val, _, val_ids = prepare(cfg)
            nll, tokens = held_out_loss(model, arch, [i for i, _ in val_ids], cfg.window, vocab.index.get(PAD))
            # without start-of-song padding the first window of each song is context only, so
            # scale the events to the tokens actually scored
            all_tokens = sum(len(enc.song_tokens(s)) for s in val)
            events = sum(enc.events(enc.song_tokens(s)) for s in val) * tokens / all_tokens
            rows.append({"model": label, "arch": arch, "transpose": shift, "params": model.count_params(),
                         "loss_per_event": nll / events, "loss_per_token": nll / tokens,
                         "held_out_tokens": tokens, "held_out_events": events,
                         "epochs": len(history), "best_epoch": meta["best_epoch"],
                         "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])),
                         "wall_seconds": wall, "window": cfg.window})
            curves[label] = history
            print(f"   held-out {nll / events:.3f} nats/event, best epoch {meta['best_epoch']} "
                  f"of {len(history)}", flush=True)
    out_dir = Path(out_dir)
    write_json(out_dir / f"{game}.json", {"game": game, "budget_s": budget, "steps_per_epoch": steps,
                                          "encoding": encoding, "rows": rows, "curves": curves})
    plot_compare(curves, out_dir / f"{game}.png", f"{game}: {budget:.0f} s of training per model")
    with atomic_path(out_dir / f"{game}.md") as tmp:
        tmp.write_text(table(game, rows, budget, steps))
    return rows


def plot_compare(curves, path, title):
    """Held-out loss against training time: one colour per architecture, dashed with transposition."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = {arch: f"C{i}" for i, arch in enumerate(ARCHS)}
    for label, rows in curves.items():
        arch = label.split()[0]
        seconds = np.cumsum([r["seconds"] for r in rows])
        ax.plot(seconds, [r["val_loss"] for r in rows], marker="o", ms=3, color=colours.get(arch, "k"),
                ls="--" if "+-" in label else "-", label=label)
    ax.set_xlabel("training seconds (2-core CPU)")
    ax.set_ylabel("held-out loss per token (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def table(game, rows, budget, steps):
    lines = [f"### {game}", "",
             f"Same split, {budget:.0f} s of training each, {steps} steps per epoch, 2-core CPU.", "",
             "| model | held-out loss per event (nats) | per token | parameters | s per epoch | best epoch |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["loss_per_event"]):
        lines.append(f"| {r['model']} | {r['loss_per_event']:.3f} | {r['loss_per_token']:.3f} | "
                     f"{r['params']:,} | {r['seconds_per_epoch']:.1f} | {r['best_epoch']} of {r['epochs']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    done = []  # (label, Run) of each training run, the last one perhaps unfinished

    def kept():
        finished = [label for label, r in done[:-1]]
        current = f"{done[-1][0]}: {done[-1][1].kept()}" if done else "no model trained"
        return ((f"{', '.join(finished)} trained; " if finished else "") + current
                + "; a game's table is written once all its models are trained")

    def body():
        p = parser_for(CompareConfig, __doc__.split("\n\n")[0], prog="python -m vgmusic compare")
        a = build(CompareConfig, p.parse_args(argv))
        if a.transpose and a.encoding == "classic":
            p.error("--transpose needs --encoding event (classic chords have no octave); add --transpose 0")
        try:
            for game in dict.fromkeys(a.game):
                run(game, a.archs, a.transpose, a.budget, a.steps, a.data_dir, a.out, a.runs_dir, a.encoding, done)
        except KeyboardInterrupt:  # also while measuring, outside train_command
            after_interruption()
            raise

    return run_command(body, kept)


if __name__ == "__main__":
    main()
