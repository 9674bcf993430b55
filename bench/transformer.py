"""Composing speed of the rotary transformer (its key/value cache) against the shipped LSTM, on the NumPy path.

    python bench/transformer.py [--rotary-model DIR] [--reps 7] [--out bench/results]

bench/results/transformer.md was measured with a rotary model trained as a user trains one (8 minutes here):

    python get_all_notes.py --songs-dir ../shared/midi_songs --data-dir /tmp/vgdata
    python -m vgmusic train --game pokemon_red_blue_yellow --arch rotary --data-dir /tmp/vgdata \
        --model-dir /tmp/rotary_pokemon --budget 480
    python bench/transformer.py --rotary-model /tmp/rotary_pokemon

(a) one step (a token in, the next token's logits out) from a full context, batch 1 and batch 16 (a loop's
    candidates): the shipped Pokemon LSTM (units 256 x 2, embed 64), rotary and the learned-position
    transformer at their defaults (vgmusic/config.py); the transformer re-runs its whole window per token,
    so it steps --transformer-tokens tokens, the others --tokens;
(b) a 500-event song (predict.py's default length) from a full context (the window of start-of-song
    tokens composing starts from), through vgmusic.compose, nothing written: LSTM against rotary, the same
    seeds; the tokens each song took are reported beside its seconds.
Every measure is the median of --reps runs, the models interleaved (A B A B ...): the machine is shared,
and each ratio is the median of the runs' own ratios. Without --rotary-model, rotary and the transformer
get fresh weights (their speed does not depend on training), saved by Keras beside a copy of the shipped
model's sidecar. Writes transformer.md and transformer.json into --out.
"""
import argparse
import hashlib
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as composing sets it (vgmusic/compose.py)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vgmusic.compose import Request, compose, load_model  # noqa: E402
from vgmusic.config import ARCH_DEFAULTS, TrainConfig  # noqa: E402
from vgmusic.nets import ARCH_KEYS  # noqa: E402
from vgmusic.store import atomic_path  # noqa: E402

SHIPPED = ROOT / "pokemon_red_blue_yellow" / "weights"


def fresh_model(arch, folder, seed=0):
    """A model folder of `arch` at its defaults with fresh Keras weights and the shipped sidecar's
    vocabulary, encoding and tempo."""
    from vgmusic.model import build_model, keras, save_compose_weights
    meta = json.loads((SHIPPED / "model.json").read_text())
    hp = {k: ARCH_DEFAULTS[arch].get(k, getattr(TrainConfig, k)) for k in ARCH_KEYS}
    keras.utils.set_random_seed(seed)
    folder.mkdir(parents=True)
    save_compose_weights(build_model(arch, len(meta["vocab"]), hp), folder / "best.weights.h5")
    sha = hashlib.sha256((folder / "best.weights.h5").read_bytes()).hexdigest()
    meta.update(arch=arch, hparams=hp, weights_sha256={"best": sha})
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def step_us(model, batch, tokens):
    """Microseconds per step of `batch` rows after a full context."""
    stepper = model.make_stepper(batch)
    stepper.start(np.tile(np.asarray(model.start_ids())[None], (batch, 1)))
    ids = np.arange(tokens) % len(model.vocab)
    t = time.perf_counter()
    for i in ids:
        stepper.step(np.full(batch, i))
    return (time.perf_counter() - t) / tokens * 1e6


def song_s(model, seed, events):
    """Seconds to compose one song of `events` events from the start-of-song context, and its tokens."""
    t = time.perf_counter()
    (song,) = compose(model, Request(events=events, seed=seed))
    return time.perf_counter() - t, len(song.meta["tokens"])


def interleaved(runs, reps):
    """{name: [result of each rep]}, running every name's function once per rep in turn."""
    out = {name: [] for name in runs}
    for r in range(reps):
        for name, fn in runs.items():
            out[name].append(fn(r))
    return out


def median(values):
    return float(np.median(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rotary-model", help="a trained rotary model folder (default: fresh weights)")
    ap.add_argument("--reps", type=int, default=7, help="runs of every measure; medians are reported")
    ap.add_argument("--tokens", type=int, default=1500, help="(a) steps timed per run: ~500 events")
    ap.add_argument("--transformer-tokens", type=int, default=10, help="(a) steps of the learned-position transformer")
    ap.add_argument("--events", type=int, default=500, help="(b) events per song")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rotary_dir = Path(args.rotary_model) if args.rotary_model else fresh_model("rotary", Path(tmp) / "rotary")
        transformer_dir = fresh_model("transformer", Path(tmp) / "transformer")
        models = {"lstm": load_model(SHIPPED), "rotary": load_model(rotary_dir),
                  "transformer": load_model(transformer_dir)}
        for name, m in models.items():
            print(f"{name}: {m.meta['hparams']}", flush=True)
        steps = {}
        for batch in (1, 16):
            print(f"(a) steps, batch {batch}", flush=True)
            steps[batch] = interleaved({
                "lstm": lambda r: step_us(models["lstm"], batch, args.tokens),
                "rotary": lambda r: step_us(models["rotary"], batch, args.tokens),
                "transformer": lambda r: step_us(models["transformer"], batch, args.transformer_tokens)},
                args.reps if batch == 1 else max(3, args.reps // 2))
            print("   " + ", ".join(f"{k} {median(v):.0f} us" for k, v in steps[batch].items()), flush=True)
        print(f"(b) {args.events}-event songs", flush=True)
        songs = interleaved({name: lambda r, name=name: song_s(models[name], r + 1, args.events)
                             for name in ("lstm", "rotary")}, args.reps)
    results = {
        "command": shlex.join(["python", "bench/transformer.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "numpy": np.__version__, "load_before": load,
                    "load_after": os.getloadavg()},
        "hparams": {name: m.meta["hparams"] for name, m in models.items()},
        "rotary_weights": trained(models["rotary"].meta) if args.rotary_model else "fresh weights",
        "steps_us": {str(b): runs for b, runs in steps.items()},
        "songs": {name: {"seconds": [s for s, _ in v], "tokens": [n for _, n in v]} for name, v in songs.items()},
    }
    write(Path(args.out), results, render(results, args))


def trained(meta):
    """How a trained model was trained, in a few words."""
    t = meta.get("training", {})
    return (f"trained on {meta['game']} (`--arch rotary --budget {t.get('budget', 0):g}`: "
            f"{len(meta['songs']['train'])} songs, "
            f"best epoch {meta.get('best_epoch')} of {meta.get('epochs_done')}, held-out pitch loss "
            f"{meta.get('best_score') or float('nan'):.3f})")


def ratio(a, b):
    return median(np.asarray(a) / np.asarray(b))


def render(r, args):
    s, lstm, rot = r["steps_us"], r["songs"]["lstm"], r["songs"]["rotary"]
    hp = r["hparams"]
    sizes = {k: ", ".join(f"{key} {v[key]}" for key in ("window", "units", "layers", "heads", "dense"))
             for k, v in hp.items()}
    per_token = [[a / b for a, b in zip(song["seconds"], song["tokens"])] for song in (rot, lstm)]
    lines = [
        f"# Composing speed: rotary (key/value cache) against the shipped LSTM ({r['machine']['cpus']} CPUs, NumPy "
        f"{r['machine']['numpy']})", "",
        f"`{r['command']}`", "",
        "| measure | LSTM (shipped Pokemon) | rotary | rotary / LSTM | transformer (learned positions) |",
        "|---|---|---|---|---|",
        f"| one step from a full context, batch 1 (us) | {median(s['1']['lstm']):.0f} | {median(s['1']['rotary']):.0f} "
        f"| {ratio(s['1']['rotary'], s['1']['lstm']):.2f} | {median(s['1']['transformer']):.0f} "
        f"({ratio(s['1']['transformer'], s['1']['lstm']):.0f}x) |",
        f"| one step, batch 16 (a loop's candidates; us per step) | {median(s['16']['lstm']):.0f} "
        f"| {median(s['16']['rotary']):.0f} | {ratio(s['16']['rotary'], s['16']['lstm']):.2f} "
        f"| {median(s['16']['transformer']):.0f} |",
        f"| a {args.events}-event song from a full context (s) | {median(lstm['seconds']):.3f} "
        f"| {median(rot['seconds']):.3f} | {ratio(rot['seconds'], lstm['seconds']):.2f} | |",
        f"| tokens of that song (median) | {median(lstm['tokens']):.0f} | {median(rot['tokens']):.0f} | | |",
        f"| seconds per token of the song (us) | {median(per_token[1]) * 1e6:.0f} | {median(per_token[0]) * 1e6:.0f} "
        f"| {ratio(*per_token):.2f} | |", "",
        f"Networks: LSTM {sizes['lstm']}, embed {hp['lstm']['embed_dim']}; rotary {sizes['rotary']} "
        f"({r['rotary_weights']}); transformer {sizes['transformer']} (fresh weights).",
        f"Medians of {args.reps} runs (batch 16: {max(3, args.reps // 2)}), the models interleaved; each ratio is the "
        f"median of the runs' own ratios. A step run times {args.tokens} steps ({args.transformer_tokens} for the "
        f"transformer, which re-runs its window per token). Songs: vgmusic.compose with the default sampling, seeds "
        f"1..{args.reps}, from the window of start-of-song tokens; a song's tokens are its pitches, durations and "
        f"waits. Load average {r['machine']['load_before'][0]:.1f} before, {r['machine']['load_after'][0]:.1f} after "
        f"(the machine is shared).", ""]
    return "\n".join(lines)


def write(out, results, report):
    out.mkdir(parents=True, exist_ok=True)
    for path, text in ((out / "transformer.json", json.dumps(results, indent=1)), (out / "transformer.md", report)):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    print(report)


if __name__ == "__main__":
    main()
