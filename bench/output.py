"""What hearing and batching cost, in one run on one machine.

    python bench/output.py [--num 4 16] [--bars 16] [--reps 3] [--out bench/results]

(a) batch composing: N songs composed as one batch (`predict.py --num N`) against N songs composed one
    by one, with the shipped models, in this process (medians of --reps runs), at --bars bars and at the
    default 500 events, plain and as loops (--loop, one try); then whole cold processes: the issue's
    `final_fantasy_7/predict.py --num 4 --bars 16 --loop --bpm 120` against four single runs;
(b) rendering audio: the sample songs in docs/samples and a 500-event song to WAVs, as songs and as
    loops: audio seconds, render seconds and the real-time factor (render time / song time).
Writes output.md and output.json into --out.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as composing sets it (vgmusic/compose.py)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vgmusic.cli import build  # noqa: E402
from vgmusic.compose import compose, load_model  # noqa: E402
from vgmusic.config import PredictConfig, default_model_dir  # noqa: E402
from vgmusic.midi import write_midi  # noqa: E402
from vgmusic.predict import request_of  # noqa: E402
from vgmusic.store import atomic_path  # noqa: E402
from vgmusic.train import SHIPPED  # noqa: E402

GAME = "final_fantasy_7"


# --- batch composing --------------------------------------------------------------------------------------

def timed(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def batch_speed(nums, bars, reps):
    """Seconds for N songs in one batch against N single songs, per game, setting and N. Loops get one
    try each (--loop-tries 1), so both sides do the same work. Each run does what predict.py does before
    it writes: load the model, then compose the request its settings make."""
    rows = []
    for game, num in [(game, num) for num in nums for game in SHIPPED]:
        for label, settings in ((f"{bars} bars", dict(bars=bars)), ("500 events", dict(length=500)),
                                (f"{bars} bars, --loop", dict(bars=bars, loop=True, loop_tries=1))):
            def run(n, seed):
                cfg = build(PredictConfig, argparse.Namespace(), num=n, seed=seed, **settings)
                return compose(load_model(default_model_dir(game), cfg.which), request_of(cfg))
            batch = timed(lambda: run(num, 1), reps)
            single = timed(lambda: [run(1, seed) for seed in range(1, num + 1)], reps)
            rows.append({"game": game, "setting": label, "num": num, "batch_s": batch, "single_s": single,
                         "speedup": single / batch})
            print(f"  {game}, {label}: {num} songs {batch:.2f} s as a batch, {single:.2f} s one by one "
                  f"({single / batch:.1f}x)", flush=True)
    return rows


def whole_processes(tmp, reps):
    """Wall and CPU seconds of the issue's command against four single runs of the same settings."""
    script = [sys.executable, str(ROOT / GAME / "predict.py"), "--bars", "16", "--loop", "--bpm", "120",
              "--data-dir", str(Path(tmp) / "none"), "--no-page"]
    out = {}
    for label, cmds in (("--num 4, one process", [script + ["--num", "4", "--out", f"{tmp}/b.mid"]]),
                        ("4 processes of 1 song", [script + ["--out", f"{tmp}/s{i}.mid", "--seed", str(i)]
                                                   for i in range(4)])):
        walls = []
        for _ in range(reps):
            t = time.perf_counter()
            for cmd in cmds:
                subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            walls.append(time.perf_counter() - t)
        out[label] = float(np.median(walls))
        print(f"  {label}: {out[label]:.2f} s wall", flush=True)
    return out


# --- rendering audio ---------------------------------------------------------------------------------

def audio_speed(extra=(), reps=3):
    """Each MIDI in docs/samples (and `extra`: (label, path) pairs, e.g. (d)'s 500-event song) rendered
    to a WAV, as a song
    (1 s tail) and as a loop (the song played twice, the second pass kept): medians of `reps` renders.
    A render's time is the whole render_wav call: reading the MIDI and the SoundFont, synthesis, writing."""
    import mido
    from vgmusic.render import render_wav
    songs = [(p.name, p) for p in sorted((ROOT / "docs" / "samples").glob("*.mid"))]
    songs += [(label, Path(p)) for label, p in extra if Path(p).is_file()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, mid in songs:
            row = {"file": label, "notes": sum(m.type == "note_on" and m.velocity > 0
                                                  for track in mido.MidiFile(mid).tracks for m in track)}
            for kind, loop in (("song", False), ("loop", True)):
                runs = [render_wav(mid, Path(tmp) / "out.wav", loop=loop) for _ in range(reps)]
                render_s = float(np.median([r["render_seconds"] for r in runs]))
                row[kind] = {"audio_s": runs[0]["seconds"], "render_s": render_s,
                             "realtime_factor": render_s / runs[0]["seconds"]}
            print(f"  {label}: {row['song']['audio_s']:.1f} s of audio in {row['song']['render_s']:.3f} s "
                  f"(loop {row['loop']['render_s']:.3f} s)", flush=True)
            rows.append(row)
    return {"reps": reps, "songs": rows}


def render_audio(a):
    """The audio table for output.md."""
    lines = ["| song | notes | audio s | render s | real-time factor | as a loop: audio s | render s | factor |",
             "|---|---|---|---|---|---|---|---|"]
    for row in a["songs"]:
        s, lp = row["song"], row["loop"]
        lines.append(f"| {row['file']} | {row['notes']} | {s['audio_s']:.1f} | {s['render_s']:.3f} "
                     f"| {s['realtime_factor']:.4f} | {lp['audio_s']:.1f} | {lp['render_s']:.3f} "
                     f"| {lp['realtime_factor']:.4f} |")
    return lines + ["", f"Audio: medians of {a['reps']} renders each with tinysoundfont and TimGM6mb.sf2 at "
                        "44.1 kHz (a loop renders the song twice and keeps the second pass); the factor is "
                        "render time over song time.", ""]



def render(results):
    rows = ["# Batch composing and audio rendering\n", f"`python bench/output.py` on {results['machine']}.\n",
            "## Batch composing\n",
            "| game | songs of | N | one batch, s | one by one, s | speed-up |", "|---|---|---|---|---|---|"]
    rows += [f"| {r['game']} | {r['setting']} | {r['num']} | {r['batch_s']:.2f} | {r['single_s']:.2f} | "
             f"{r['speedup']:.1f}x |" for r in results["batch"]]
    rows += ["", f"In this process, medians of {results['reps']} runs, NumPy engine, each run loading the model "
             "and composing as predict.py does; one batch shares every network step among its songs, but on a "
             "CPU a step's cost grows with the batch (matrix products instead of matrix-vector ones), so the "
             "saving is bounded. Whole cold processes of `final_fantasy_7/predict.py --bars 16 --loop "
             "--bpm 120` (composing, MIDI, WAV, piano roll): " + "; ".join(
                 f"{k}: {v:.2f} s wall" for k, v in results["processes"].items()) + ".", "",
             "## Audio rendering\n", *render_audio(results["audio"])]
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, nargs="+", default=[4, 16], help="songs per batch (default 4 16)")
    ap.add_argument("--bars", type=int, default=16, help="bars per song (default 16)")
    ap.add_argument("--reps", type=int, default=3, help="runs per figure; medians are reported (default 3)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where output.md/json go")
    args = ap.parse_args()
    results = {"machine": f"{os.cpu_count()} CPU cores", "reps": args.reps}
    print("(a) batch composing", flush=True)
    results["batch"] = batch_speed(args.num, args.bars, args.reps)
    with tempfile.TemporaryDirectory() as tmp:
        results["processes"] = whole_processes(tmp, args.reps)
        song = Path(tmp) / "song.mid"  # the song `pokemon_red_blue_yellow/predict.py --seed 1` writes
        cfg = build(PredictConfig, argparse.Namespace(), seed=1)
        (composed,) = compose(load_model(default_model_dir("pokemon_red_blue_yellow"), cfg.which), request_of(cfg))
        write_midi(composed, song)
        print("(b) rendering audio", flush=True)
        results["audio"] = audio_speed([("a 500-event Pokemon song, seed 1", song)], args.reps)
    out = Path(args.out)
    with atomic_path(out / "output.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    with atomic_path(out / "output.md") as tmp:
        tmp.write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
