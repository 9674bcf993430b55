"""Benchmark our pipeline against the original way, in one run on one machine.

    python bench/run.py [--songs-dir ../shared/midi_songs] [--budget 150] [--out bench/results]
    python bench/run.py --only compose [--process-runs 5] [--out bench/results]

(a) sampling 500 tokens from the same trained LSTM: our NumPy stepper (vgmusic.infer, state carried
    from token to token) and the Keras layers run eagerly, against model.predict on the 25-token window
    per token, the original's loop; the two steppers must draw the same tokens from the same seed.
    The same for the default Transformer (512-token window): NumPy stepper against predict per token;
(b) training on Pokemon, ours vs the original network and inputs (id / vocabulary size as a float, one
    output per window, RMSprop), same held-out songs, same wall-clock budget: held-out loss per token
    (predicting each token from the 25 before it) against training seconds, plus a bigram count model;
(c) extracting the 46 songs cold, then again from the cache (wall time of get_all_notes.py);
(d) composing: CPU seconds (user + sys) of whole cold processes with the shipped Pokemon model, medians of
    --process-runs, interleaved A B C D F M E A B C D F M E ...: (A) a default `predict.py` writing all it writes
    (MIDI, 44.1 kHz stereo WAV, piano roll, listening page), (B) A with --no-audio, (C) composing alone
    (--no-audio --no-roll --no-page), (D) C at 50 events, against (E) a process that only imports TensorFlow
    and Keras (what any TensorFlow composer pays first), (F) `final_fantasy_7/predict.py --bars 16
    --loop`, a four-track arrangement with mix, stems, roll and page, and (M) A with `--tracks melody`,
    the single line: A/E, B/E, (C - D)/E (what 450 more events cost), F/E, M/E, and whether predict.py
    ever imports TensorFlow;
Audio rendering and batch composing are measured by bench/output.py.
Writes results.md, results.json and loss_vs_time.png into --out; `--only compose` runs (d) alone (about a
minute) into compose.md and compose.json there, leaving the full run's files as they are.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (d) times child processes as a user runs them: in the environment we started in, before the imports
# below add their own settings to it
CHILD_ENV = dict(os.environ)
# Composing sets this for its batch-1 steps (see vgmusic/compose.py); the in-process steppers get the same.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vgmusic.config import ARCH_DEFAULTS  # noqa: E402
from vgmusic.encode import Vocab, get_encoding, load_songs, split_songs, windows  # noqa: E402
from vgmusic.infer import NumpyNet  # noqa: E402
from vgmusic.model import build_model, keras, keras_stepper, save_compose_weights, tf  # noqa: E402
from vgmusic.sampling import pick  # noqa: E402
from vgmusic.store import atomic_path  # noqa: E402

import processes  # noqa: E402  (bench/processes.py: section (d))
from processes import GAME, TF_ONLY, compose_process, compose_rows  # noqa: E402

processes.ENV = CHILD_ENV

HELD_OUT = ["Bicycle Ride_edited.mid", "Pallet Town_edited.mid"]
OURS = dict(window=25, embed_dim=64, units=256, layers=2, heads=4, dense=256, dropout=0.3)


def extraction(songs_dir, data_dir):
    def run():
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "get_all_notes.py"), "--songs-dir", str(songs_dir),
                        "--data-dir", str(data_dir)], check=True, capture_output=True)
        return time.perf_counter() - t
    return {"cold_s": run(), "cached_s": run()}


def original_network(vocab_size, window=25):
    """The original: float input id/vocab, LSTM 256 x 2 (last returns one vector), Dense 256, softmax."""
    x_in = keras.Input((window, 1))
    x = keras.layers.LSTM(256, return_sequences=True)(x_in)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.LSTM(256)(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    out = keras.layers.Dense(vocab_size, activation="softmax")(x)
    model = keras.Model(x_in, out)
    # sparse targets give the same loss as the original's one-hot ones without the memory
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def last_token_nll(probs_or_logits, targets, logits):
    p = tf.nn.softmax(probs_or_logits).numpy() if logits else probs_or_logits
    return float(-np.log(np.maximum(p[np.arange(len(targets)), targets], 1e-12)).mean())


def fit_for(model, x, y, xv, yv, budget, predict_last, batch_size=64, seed=0):
    """Epochs until the budget of training seconds is spent; held-out loss after each."""
    rows, spent, epoch = [], 0.0, 0
    rng = np.random.default_rng(seed)
    while spent < budget:
        order = rng.permutation(len(x))
        t = time.perf_counter()
        hist = model.fit(x[order], y[order], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        spent += time.perf_counter() - t
        epoch += 1
        rows.append({"epoch": epoch, "seconds": round(spent, 2), "loss": float(hist.history["loss"][0]),
                     "val_loss": predict_last(model, xv, yv)})
        print(f"  epoch {epoch}: {spent:6.1f}s train loss {rows[-1]['loss']:.3f} "
              f"held-out {rows[-1]['val_loss']:.3f}", flush=True)
    return rows


def bigram_nll(train_ids, val_ids, v, k=0.1):
    counts = np.full((v, v), k)
    for ids in train_ids:
        np.add.at(counts, (ids[:-1], ids[1:]), 1)
    p = counts / counts.sum(1, keepdims=True)
    return float(np.mean(np.concatenate([-np.log(p[ids[:-1], ids[1:]]) for ids in val_ids])))


def copied_share(generated, train_ids, n=8):
    grams = {tuple(ids[i:i + n]) for ids in train_ids for i in range(len(ids) - n + 1)}
    runs = [tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)]
    return float(np.mean([r in grams for r in runs]))


# --- (a) sampling -------------------------------------------------------------------------------------

def sample_with(stepper, seed_ids, n, rng_seed):
    """n tokens from a stepper, plain sampling at temperature 1 (sampling.pick, as composing draws)."""
    rng = np.random.default_rng(rng_seed)
    logits, out = stepper.start(np.asarray(seed_ids)[None]), []
    for _ in range(n):
        token = pick(logits, rng)
        out.append(int(token[0]))
        logits = stepper.step(token)
    return out


def timed(fn, reps):
    """Median seconds of `reps` calls (the call with rng seed r), and the first call's result."""
    times, first = [], None
    for r in range(reps):
        t = time.perf_counter()
        got = fn(r)
        times.append(time.perf_counter() - t)
        first = got if first is None else first
    return float(np.median(times)), first


def predict_per_token(model, seed_ids, n, rng_seed):
    """The original's loop: model.predict on the last `window` tokens for every token."""
    w, window = len(seed_ids), list(seed_ids)
    rng = np.random.default_rng(rng_seed)
    for _ in range(n):
        logits = model.predict(np.array([window[-w:]], np.int32), verbose=0)[:, -1]
        window.append(int(pick(logits, rng)[0]))
    return window[w:]


def numpy_net(arch, model, vocab_size, hp, folder):
    """The Keras model's weights as composing reads them, loaded into NumPy; (net, load seconds)."""
    path = Path(folder) / f"{arch}.weights.h5"
    save_compose_weights(model, path)
    t = time.perf_counter()
    net = NumpyNet(arch, vocab_size, hp, path)
    return net, time.perf_counter() - t


def generation(model, vocab_size, seed_ids, args, folder):
    """The trained LSTM: NumPy stepper and Keras eager stepper against predict per token."""
    net, load_s = numpy_net("lstm", model, vocab_size, OURS, folder)
    n, w = args.tokens, len(seed_ids)
    numpy_s, numpy_tokens = timed(lambda r: sample_with(net.stepper(1), seed_ids, n, r), args.reps)
    keras_s, keras_tokens = timed(lambda r: sample_with(keras_stepper("lstm", model, w, 1), seed_ids, n, r),
                                  args.keras_reps)
    same = sum(a == b for a, b in zip(numpy_tokens, keras_tokens))
    differ = next((i for i, (a, b) in enumerate(zip(numpy_tokens, keras_tokens)) if a != b), None)
    print(f"  NumPy and Keras steppers, same seed: {same} of {n} tokens equal"
          + ("" if differ is None else f" (first difference at token {differ})"), flush=True)
    original_s, _ = timed(lambda r: predict_per_token(model, seed_ids, n, r), args.original_reps)
    return {"tokens": n, "reps": args.reps, "keras_reps": args.keras_reps, "original_reps": args.original_reps,
            "numpy_load_s": load_s, "numpy_s": numpy_s, "keras_eager_s": keras_s, "same_tokens": same,
            "first_difference": differ, "original_way_s": original_s}, numpy_tokens


def generation_transformer(args, folder):
    """Default Transformer hyper-parameters, fresh weights (speed does not depend on training).

    Seeded with a full window, as composing seeds it (a window of start-of-song pads): the window
    slides from the first token on, so every token is an exact re-run of the window in NumPy too.
    From a 1-token seed the 500 tokens stay inside the window and each one is a cached step."""
    hp = {**OURS, **{k: val for k, val in ARCH_DEFAULTS["transformer"].items() if k in OURS}}
    v, n = 191, args.tokens
    model = build_model("transformer", v, hp)
    net, load_s = numpy_net("transformer", model, v, hp, folder)
    seed = np.arange(hp["window"]) % v
    reps = args.transformer_reps
    numpy_s, _ = timed(lambda r: sample_with(net.stepper(1), seed, n, r), reps)
    cached_s, _ = timed(lambda r: sample_with(net.stepper(1), seed[:1], min(n, hp["window"] - 1), r), reps)
    return {"window": hp["window"], "tokens": n, "reps": reps, "numpy_load_s": load_s, "numpy_s": numpy_s,
            "numpy_cached_s": cached_s,
            "original_way_s": timed(lambda r: predict_per_token(model, seed, n, r), args.original_reps)[0]}


class HelpFormat(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every flag's default in --help."""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormat)
    ap.add_argument("--songs-dir", default=str(ROOT.parent / "shared" / "midi_songs"),
                    help="folder of the 46 songs, one sub-folder per game")
    ap.add_argument("--budget", type=float, default=150, help="(b) training seconds per model")
    ap.add_argument("--tokens", type=int, default=500, help="(a) tokens sampled per run, as the original wrote")
    ap.add_argument("--reps", type=int, default=5, help="(a) runs of the LSTM NumPy stepper; medians are reported")
    ap.add_argument("--keras-reps", type=int, default=3, help="(a) runs of the Keras eager LSTM stepper")
    ap.add_argument("--transformer-reps", type=int, default=3,
                    help="(a) runs of each Transformer NumPy stepper (the slowest part of (a))")
    ap.add_argument("--original-reps", type=int, default=1,
                    help="(a) runs of each predict-per-token loop (tens of seconds each)")
    ap.add_argument("--events", type=int, default=500, help="(d) events of the songs of A, B, C (predict.py's default)")
    ap.add_argument("--short-events", type=int, default=50, help="(d) events of D's song")
    ap.add_argument("--process-runs", type=int, default=5, help="(d) timed runs of each process, interleaved")
    ap.add_argument("--predict-seed", type=int, default=1, help="(d) predict.py --seed: every run writes one song")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where results go")
    ap.add_argument("--only", choices=["compose"], help="run only (d), writing compose.md and compose.json")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__, "numpy": np.__version__}}
    if args.only == "compose":
        print("(d) whole predict.py processes against importing TensorFlow", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            results.update(command=shlex.join(["python", "bench/run.py", *sys.argv[1:]]),
                           compose_process=compose_process(args, tmp))
        rows, how = compose_rows(results["compose_process"])
        return write(out, "compose", results, "\n".join([
            f"# Composing processes ({os.cpu_count()} CPUs)\n", f"`{results['command']}`\n",
            "| measure | ours | original way |", "|---|---|---|", *rows, "", how, ""]))
    keras.utils.set_random_seed(0)

    with tempfile.TemporaryDirectory() as data:
        print("(c) extraction", flush=True)
        results["extraction"] = extraction(args.songs_dir, data)
        enc = get_encoding("classic")
        vocab = Vocab(enc.vocabulary(data))
        train, val = split_songs(load_songs(data, GAME), 0, HELD_OUT)
    tr_ids = [vocab.ids(enc.song_tokens(s)) for s in train]
    va_ids = [vocab.ids(enc.song_tokens(s)) for s in val]
    x, y = windows(tr_ids, 25)
    xv, yv = windows(va_ids, 25)
    yv_last = yv[:, -1]
    v = len(vocab)

    print("(b) training, ours", flush=True)
    ours = build_model("lstm", v, OURS)
    ours.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    best = {}

    def ours_eval(m, xv_, _):
        nll = last_token_nll(m.predict(xv_, verbose=0, batch_size=256)[:, -1], yv_last, logits=True)
        if nll < best.get("nll", np.inf):
            best.update(nll=nll, weights=m.get_weights())
        return nll

    ours_rows = fit_for(ours, x, y, xv, yv, args.budget, ours_eval)
    ours.set_weights(best["weights"])
    print("(b) training, original network", flush=True)
    orig = original_network(v)
    orig_rows = fit_for(orig, (x / v)[..., None].astype("float32"), y[:, -1],
                        (xv / v)[..., None].astype("float32"), yv_last, args.budget,
                        lambda m, a, b: last_token_nll(m.predict(a, verbose=0, batch_size=256), b, logits=False))
    results["training"] = {
        "held_out": HELD_OUT, "budget_s": args.budget, "train_windows": len(x), "held_out_windows": len(xv),
        "bigram_nll": bigram_nll(tr_ids, va_ids, v),
        "ours": {"best": min(r["val_loss"] for r in ours_rows), "epochs": len(ours_rows), "rows": ours_rows},
        "original": {"best": min(r["val_loss"] for r in orig_rows), "epochs": len(orig_rows), "rows": orig_rows},
    }
    with tempfile.TemporaryDirectory() as tmp:
        print("(a) generation, LSTM", flush=True)
        results["generation"], sampled = generation(ours, v, x[0], args, tmp)
        results["generation"]["ours_copied_8gram_share"] = copied_share(sampled, [list(i) for i in tr_ids])
        print("(a) generation, transformer", flush=True)
        results["generation_transformer"] = generation_transformer(args, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        print("(d) whole predict.py processes against importing TensorFlow", flush=True)
        results["compose_process"] = compose_process(args, tmp)

    plot_vs_time(ours_rows, orig_rows, results["training"]["bigram_nll"], out / "loss_vs_time.png")
    write(out, "results", results, render(results))


def plot_vs_time(ours, orig, bigram, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for rows, label, c in ((ours, "ours (Embedding, many-to-many, Adam)", "C0"),
                           (orig, "original (id/vocab input, one target, RMSprop)", "C3")):
        ax.plot([r["seconds"] for r in rows], [r["val_loss"] for r in rows], "o-", ms=3, color=c, label=label)
    ax.axhline(bigram, color="grey", ls=":", label="bigram counts")
    ax.set_xlabel(f"training seconds ({os.cpu_count()}-core CPU)")
    ax.set_ylabel("held-out loss per token (nats)")
    ax.set_title("Pokemon, Bicycle Ride + Pallet Town held out")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def render(r):
    g, t, e, gt, p = (r["generation"], r["training"], r["extraction"], r["generation_transformer"],
                      r["compose_process"])
    ob = min(t["original"]["rows"], key=lambda row: row["val_loss"])
    wb = min(t["ours"]["rows"], key=lambda row: row["val_loss"])
    compose, composing = compose_rows(p)
    agree = ("the same tokens" if g["first_difference"] is None else
             f"{g['same_tokens']} of {g['tokens']} tokens the same (first difference at token {g['first_difference']})")
    return "\n".join([
        f"# Benchmark ({r['machine']['cpus']} CPUs, TensorFlow {r['machine']['tensorflow']}, "
        f"NumPy {r['machine']['numpy']})", "",
        "| measure | ours | original way |", "|---|---|---|",
        *compose,
        f"| LSTM, {g['tokens']} tokens (s) | {g['numpy_s']:.3f} NumPy (Keras eager: {g['keras_eager_s']:.2f}) "
        f"| {g['original_way_s']:.1f} |",
        f"| Transformer ({gt['window']}-token window), {gt['tokens']} tokens (s) | {gt['numpy_s']:.2f} NumPy "
        f"(from a 1-token seed, cached: {gt['numpy_cached_s']:.2f}) | {gt['original_way_s']:.1f} |",
        f"| best held-out loss per token (nats), {t['budget_s']:.0f} s budget | {wb['val_loss']:.3f} "
        f"(epoch {wb['epoch']}, {wb['seconds']:.0f} s) | {ob['val_loss']:.3f} (epoch {ob['epoch']}, "
        f"{ob['seconds']:.0f} s) |",
        f"| held-out loss at the end of the budget | {t['ours']['rows'][-1]['val_loss']:.3f} "
        f"| {t['original']['rows'][-1]['val_loss']:.3f} |",
        f"| bigram count model, held-out loss | {t['bigram_nll']:.3f} | |",
        f"| extract 46 songs cold / from cache (s) | {e['cold_s']:.2f} / {e['cached_s']:.2f} | |",
        f"| 8-token runs of a {g['tokens']}-token sample copied from training songs | "
        f"{100 * g['ours_copied_8gram_share']:.0f}% | |", "",
        composing,
        f"Sampling: medians of {g['reps']} runs (Transformer {gt['reps']}, predict per token {g['original_reps']}); "
        f"the NumPy and Keras steppers drew {agree} from the same seed. "
        f"Loading the LSTM's weights into NumPy took {g['numpy_load_s']:.3f} s, the Transformer's "
        f"{gt['numpy_load_s']:.3f} s.",
        f"Training: {t['train_windows']} training windows, {t['held_out_windows']} held-out windows.", ""])


def write(out, stem, results, report):
    """STEM.json and STEM.md into `out`; the report printed."""
    for path, text in ((out / f"{stem}.json", json.dumps(results, indent=1)), (out / f"{stem}.md", report)):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    print(report)


if __name__ == "__main__":
    main()
