"""Section (d) of bench/run.py: whole cold predict.py processes against importing TensorFlow and Keras.

Kept apart from run.py, which imports TensorFlow itself: this module imports neither, and its children run in
the environment bench/run.py started in (`env`), as a user runs them.
"""
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GAME = "pokemon_red_blue_yellow"
TF_ONLY = "import tensorflow, keras"
VERDICT = {None: "", True: " pass", False: " FAIL"}
ENV = dict(os.environ)  # replaced by bench/run.py with the environment it started in


# --- (d) whole composing processes ----------------------------------------------------------------------

# ratio: (process, minus process, target), of CPU medians over E's; C - D is what the events themselves cost
RATIOS = {"A/E": ("A", None, 0.25), "B/E": ("B", None, 0.15), "(C - D)/E": ("C", "D", 0.05), "C/E": ("C", None, None),
          "F/E": ("F", None, 0.30), "M/E": ("M", None, 0.25)}
# F: issue 16's measure, a game loop as a developer asks for one: a 16-bar four-track arrangement with
# its mix and stems, the piano roll and the page (the Final Fantasy VII model: any shipped model costs the same)
LOOP_GAME, LOOP_FLAGS = "final_fantasy_7", ["--bars", "16", "--loop"]


def child(cmd):
    """(CPU seconds user + sys, wall seconds, completed process) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: {' '.join(cmd)} failed ({done.returncode}): {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done


def imported_modules(importtime_stderr):
    """Top-level module names a `python -X importtime` run imported."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line and not line.rstrip().endswith("imported package"):
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def compose_process(args, tmp):
    """Cold processes A-F and M against E, interleaved: medians, RATIOS, imports."""
    global ENV
    # bytecode cached, as every user's Python caches it: an environment that forbids it
    # (PYTHONDONTWRITEBYTECODE, set on this project's machines) would have each child compile the project's
    # 60 modules anew (0.07 s), which no user pays after the first run, while TensorFlow's and NumPy's came
    # compiled with their wheels; the untimed first runs below write it (into __pycache__, as git ignores)
    ENV = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    tmp, model_dir = Path(tmp), []
    shipped = (ROOT / GAME / "weights" / "model.json").exists()
    if not shipped:  # a checkout before any training: a small model of the same shape composes as fast
        print("  no shipped model: training a small one", flush=True)
        subprocess.run([sys.executable, str(ROOT / GAME / "train.py"), "--model-dir", str(tmp / "model"),
                        "--max-steps", "5", "--epochs", "1", "--verbose", "0"], check=True, capture_output=True)
        model_dir = ["--model-dir", str(tmp / "model")]
    (tmp / "no_data").mkdir()  # no songs to check copying against, as on a user's machine with a shipped model
    quiet, n, short = ["--no-audio", "--no-roll", "--no-page"], args.events, args.short_events
    procs = {"A": (n, [], f"`predict.py`, a {n}-event song and all it writes by default: MIDI, 44.1 kHz stereo "
                          "WAV, piano roll, listening page"), "B": (n, quiet[:1], "the same with `--no-audio`"),
             "C": (n, quiet, "composing alone: the same with `--no-audio --no-roll --no-page`"),
             "D": (short, quiet, f"C at {short} events"),
             "F": (None, LOOP_FLAGS, f"`{LOOP_GAME}/predict.py {' '.join(LOOP_FLAGS)}`: a four-track arrangement "
                                     "with its mix and a stem per track, the piano roll and the page"),
             # A as it was before arrangements became the default: the one melody line, all it writes
             "M": (n, ["--tracks", "melody"], "A with `--tracks melody`: the single line, MIDI, WAV, roll, page")}
    cmds = {k: [sys.executable, str(ROOT / (LOOP_GAME if e is None else GAME) / "predict.py"), "--out",
                str(tmp / k / "song.mid"), "--seed", str(args.predict_seed),
                *([] if e is None else ["--length", str(e)]), "--data-dir", str(tmp / "no_data"),
                *(model_dir if e is not None else []), *flags]
            for k, (e, flags, _) in procs.items()}  # each in its own folder, with its own listening page
    cmds["E"], load, runs = [sys.executable, "-c", TF_ONLY], os.getloadavg(), {k: [] for k in [*procs, "E"]}
    cmds = {k: cmds[k] for k in runs}  # E in its place among the others
    # untimed first runs: everything read from disk into the page cache, and what each process imports
    modules = {k: imported_modules(child([c[0], "-X", "importtime", *c[1:]])[2].stderr) for k, c in cmds.items()}
    for i in range(args.process_runs):  # a change in the machine's load hits every process alike
        for k, cmd in cmds.items():
            cpu, wall, done = child(cmd)
            runs[k].append({"cpu_s": cpu, "wall_s": wall})
            print(f"  {k} run {i + 1}: {cpu:5.2f} s CPU, {wall:5.2f} s wall", flush=True)
            if k == "A":
                wrote = done.stdout.strip().replace(str(tmp), "TMP").splitlines()[0]
    med = {k: {m: float(np.median([r[m] for r in rows])) for m in ("cpu_s", "wall_s")} for k, rows in runs.items()}
    cpu = {None: 0.0, **{k: m["cpu_s"] for k, m in med.items()}}
    value = {k: (cpu[a] - cpu[b]) / cpu["E"] for k, (a, b, _) in RATIOS.items()}
    ratios = {k: {"value": value[k], "target": g, "passed": None if g is None else value[k] <= g}
              for k, (_, _, g) in RATIOS.items()}
    return {"model": "shipped" if shipped else "small, trained for this run", "events": n, "short_events": short,
            "seed": args.predict_seed, "cpus": os.cpu_count(), "load_average": [load, os.getloadavg()],
            "processes": {**{k: p[2] for k, p in procs.items()}, "E": f"`python -c \"{TF_ONLY}\"` alone"},
            "runs": runs, "median": med, "ratios": ratios, "wrote": wrote,
            "imports_tensorflow": [k for k in procs if {"tensorflow", "keras", "tf_keras"} & modules[k]],
            "modules_imported": {k: len(modules[k]) for k in procs}}


def compose_rows(p):
    """(d)'s rows of a measure | ours | original way table (E the original way), and how it was measured."""
    rows = [f"| {k}: {p['processes'][k]}, CPU s (wall s) | {'| ' * (k == 'E')}{m['cpu_s']:.2f} ({m['wall_s']:.2f}) |"
            + " |" * (k != "E") for k, m in p["median"].items()]
    for k, r in p["ratios"].items():
        what = (f", {p['events'] - p['short_events']} more events" if "D" in k else "") + (
            "" if r["target"] is None else f" (target <= {r['target']:g})")
        rows.append(f"| ratio of CPU medians {k}{what} | {r['value']:.3f}{VERDICT[r['passed']]} | |")
    order = " ".join(p["runs"])
    return rows, (f"Composing: medians of {len(p['runs']['A'])} cold processes each, interleaved {order} {order} "
                  f"..., with the {p['model']} Pokemon model, `--seed {p['seed']}` (A {p['wrote']}), each after an "
                  f"untimed first run that read the files into the page cache and wrote the bytecode caches; CPU "
                  f"is user + "
                  f"sys of the child; load average {p['load_average'][0][0]:.2f} before, {p['load_average'][1][0]:.2f}"
                  f" after, on {p['cpus']} CPUs. Top-level modules imported: " + ", ".join(
                      f"{k} {n}" for k, n in p["modules_imported"].items())
                  + f"; TensorFlow or Keras by: {', '.join(p['imports_tensorflow']) or 'none'}.")
