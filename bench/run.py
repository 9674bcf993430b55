"""Benchmark our pipeline against the original way, in one run on one machine.

    python bench/run.py [--songs-dir ../shared/midi_songs] [--budget 180]

(a) generating 500 tokens: our compiled state-carrying loop vs model.predict on the 25-token window per token,
    on the same trained model;
(b) training on Pokemon, ours vs the original network and inputs (id / vocabulary size as a float, one
    output per window, RMSprop), same held-out songs, same wall-clock budget: held-out loss per token
    (predicting each token from the 25 before it) against training seconds, plus a bigram count model;
(c) extracting the 46 songs cold, then again from the cache (wall time of get_all_notes.py).
Writes bench/results/results.md, results.json and loss_vs_time.png.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vgmusic.config import ARCH_DEFAULTS  # noqa: E402
from vgmusic.encode import Vocab, get_encoding, load_songs, split_songs, windows  # noqa: E402
from vgmusic.model import build_model, keras, tf  # noqa: E402
from vgmusic.sample import generate  # noqa: E402
from vgmusic.train import plot_curves  # noqa: E402

GAME = "pokemon_red_blue_yellow"
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


def generation(arch, model, seed_ids, n=500, reps=3):
    """Our compiled loop (first call includes tracing) against model.predict on the window per token."""
    w = len(seed_ids)
    first = time.perf_counter()
    generate(arch, model, seed_ids, n, 1.0, rng_seed=0, window=w)
    first = time.perf_counter() - first
    ours = []
    for r in range(reps):
        t = time.perf_counter()
        generate(arch, model, seed_ids, n, 1.0, rng_seed=r, window=w)
        ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    window = list(seed_ids)
    rng = np.random.default_rng(0)
    for _ in range(n):  # the original's loop
        logits = model.predict(np.array([window[-w:]], np.int32), verbose=0)[0, -1]
        p = np.exp(logits - logits.max())
        window.append(int(rng.choice(len(p), p=p / p.sum())))
    return {"ours_first_call_s": first, "ours_s": float(np.median(ours)), "original_way_s": time.perf_counter() - t}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs-dir", default=str(ROOT.parent / "shared" / "midi_songs"),
                    help="folder of the 46 songs, one sub-folder per game")
    ap.add_argument("--budget", type=float, default=150, help="training seconds per model in (b)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where results go")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    results = {"machine": {"cpus": __import__("os").cpu_count(), "tensorflow": tf.__version__}}

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
    print("(a) generation", flush=True)
    seed = x[0]
    results["generation"] = generation("lstm", ours, seed)
    sampled = generate("lstm", ours, seed, 500, 1.0, rng_seed=1)[0]
    results["generation"]["ours_copied_8gram_share"] = copied_share(list(sampled), [list(i) for i in tr_ids])
    # the transformer re-runs its whole window per token either way: compiled loop against predict per token
    hp = {**OURS, **{k: val for k, val in ARCH_DEFAULTS["transformer"].items() if k in OURS}}
    tr = build_model("transformer", 191, hp)
    results["generation_transformer"] = dict(generation("transformer", tr, np.arange(hp["window"]) % 191),
                                             window=hp["window"])

    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot_vs_time(ours_rows, orig_rows, results["training"]["bigram_nll"], out / "loss_vs_time.png")
    report = render(results)
    (out / "results.md").write_text(report)
    print(report)


def plot_vs_time(ours, orig, bigram, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for rows, label, c in ((ours, "ours (Embedding, many-to-many, Adam)", "C0"),
                           (orig, "original (id/vocab input, one target, RMSprop)", "C3")):
        ax.plot([r["seconds"] for r in rows], [r["val_loss"] for r in rows], "o-", ms=3, color=c, label=label)
    ax.axhline(bigram, color="grey", ls=":", label="bigram counts")
    ax.set_xlabel("training seconds (2-core CPU)")
    ax.set_ylabel("held-out loss per token (nats)")
    ax.set_title("Pokemon, Bicycle Ride + Pallet Town held out")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render(r):
    g, t, e, gt = r["generation"], r["training"], r["extraction"], r["generation_transformer"]
    ob = min(t["original"]["rows"], key=lambda row: row["val_loss"])
    wb = min(t["ours"]["rows"], key=lambda row: row["val_loss"])
    return "\n".join([
        f"# Benchmark ({r['machine']['cpus']} CPUs, TensorFlow {r['machine']['tensorflow']})", "",
        "| measure | ours | original way |", "|---|---|---|",
        f"| generate 500 tokens (s) | {g['ours_s']:.3f} (first call, with tracing: {g['ours_first_call_s']:.2f}) "
        f"| {g['original_way_s']:.1f} |",
        f"| transformer ({gt['window']}-token window), 500 tokens (s) | {gt['ours_s']:.2f} "
        f"(first call: {gt['ours_first_call_s']:.2f}) | {gt['original_way_s']:.1f} |",
        f"| best held-out loss per token (nats), {t['budget_s']:.0f} s budget | {wb['val_loss']:.3f} "
        f"(epoch {wb['epoch']}, {wb['seconds']:.0f} s) | {ob['val_loss']:.3f} (epoch {ob['epoch']}, "
        f"{ob['seconds']:.0f} s) |",
        f"| held-out loss at the end of the budget | {t['ours']['rows'][-1]['val_loss']:.3f} "
        f"| {t['original']['rows'][-1]['val_loss']:.3f} |",
        f"| bigram count model, held-out loss | {t['bigram_nll']:.3f} | |",
        f"| extract 46 songs cold / from cache (s) | {e['cold_s']:.2f} / {e['cached_s']:.2f} | |",
        f"| 8-token runs of a 500-token sample copied from training songs | "
        f"{100 * g['ours_copied_8gram_share']:.0f}% | |", "",
        f"{t['train_windows']} training windows, {t['held_out_windows']} held-out windows.", ""])


if __name__ == "__main__":
    main()
