"""Throughput of the base corpus's stages: export, extraction (cold and cached), token shards, training windows.

    python bench/corpus.py [--folk N] [--chorales N] [--workers 1 2] [--index runs/base/shards]

On a sample of the corpora (N Essen folk tunes, N Bach chorales, Freedoom's lumps when installed), each
stage timed with every --workers count: pieces exported per second, files parsed per second and events
(notes or chords of the melody, as the event encoding counts them) per second with an empty cache and
again from the cache, songs and events written as shards per second, and training windows (75 tokens,
stride 3, shuffled) read per second from the memory-mapped shards. With --index, the per-source figures of
a full build (get_all_notes.py --base) are added. Writes bench/results/corpus.md and corpus.json; the
scratch files go to bench/out/ (git-ignored).
"""
import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vgmusic import corpora, shards  # noqa: E402
from vgmusic.extract import extract  # noqa: E402


def cpu():
    """CPU seconds this process and its finished children have used: the load-free cost of a stage."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


class Quiet:
    def __init__(self):
        self.counts = {}

    def add(self, status, name, reason=""):
        self.counts[status] = self.counts.get(status, 0) + 1


def sample(args):
    pieces = {"folk": corpora.corpus_pieces("folk")[:args.folk],
              "bach_chorales": corpora.corpus_pieces("bach_chorales")[:args.chorales]}
    try:
        pieces["freedoom"] = corpora.corpus_pieces("freedoom")[:args.freedoom]
    except corpora.Failed:
        print("note: freedoom is not installed; its lumps are left out", file=sys.stderr)
    return pieces


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folk", type=int, default=400, help="Essen folk tunes in the sample (default: 400)")
    p.add_argument("--chorales", type=int, default=60, help="Bach chorales in the sample (default: 60)")
    p.add_argument("--freedoom", type=int, default=12, help="Freedoom lumps in the sample (default: 12)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (default: 1 2)")
    p.add_argument("--index", default="", help="a full build's shard folder to report per source (default: none)")
    args = p.parse_args(argv)
    out = ROOT / "bench" / "out" / "corpus"
    pieces = sample(args)
    rows, results = [], {"cpus": os.cpu_count(), "sample": {k: len(v) for k, v in pieces.items()}, "runs": {}}
    import music21  # noqa: F401  (imported once, as every run's parent process does)
    for workers in args.workers:
        run = out / f"w{workers}"
        shutil.rmtree(run, ignore_errors=True)
        r = {}
        t0, c0 = time.perf_counter(), cpu()
        n = sum(corpora.export_pieces(run / "songs" / name, ps, 0, Quiet(), False, workers,
                                      preload=() if name in corpora.DEBIAN else ("music21",))
                for name, ps in pieces.items())
        r["export"] = (n, time.perf_counter() - t0, cpu() - c0)
        for label in ("extract (cold cache)", "extract (cached)"):
            status = {}
            t0, c0 = time.perf_counter(), cpu()
            summary, _ = extract(run / "songs", run / "data", workers=workers, progress=False, status=status)
            r[label] = (sum(s for s, _ in summary.values()), time.perf_counter() - t0, cpu() - c0)
        t0, c0 = time.perf_counter(), cpu()
        index = shards.build_shards(run / "shards", sorted(summary), run / "data", corpora.LICENCES)
        r["shards"] = (len(index["songs"]), time.perf_counter() - t0, cpu() - c0)
        events = sum(s["events"] for s in index["songs"])
        windows = shards.Shards(run / "shards").windows(75, 3, shuffle=True, seed=0)
        t0, c0 = time.perf_counter(), cpu()
        seen = sum(len(x) for x, _ in windows.batches(64, epochs=1))
        r["windows"] = (seen, time.perf_counter() - t0, cpu() - c0)
        results["runs"][workers] = {k: {"items": v[0], "seconds": round(v[1], 3), "cpu_seconds": round(v[2], 3)}
                                    for k, v in r.items()}
        results["runs"][workers]["events"] = events
        for stage, (items, seconds, used) in r.items():
            unit = {"export": "pieces", "shards": "songs", "windows": "windows"}.get(stage, "files")
            per_event = f"{events / seconds:,.0f}" if stage != "windows" and seconds else ""
            rows.append(f"| {workers} | {stage} | {items:,} {unit} | {seconds:.2f} | {items / seconds:,.1f} | "
                        f"{per_event} | {used:.2f} | {items / used:,.1f} |")
        print("\n".join(rows[-5:]), flush=True)

    load = os.getloadavg()[0]
    lines = [f"# Base corpus throughput ({os.cpu_count()} CPU cores, load average {load:.1f} when it ended)", "",
             f"Sample: {', '.join(f'{n} {k}' for k, n in results['sample'].items())}. Events are the notes or "
             "chords of each song's melody as the event encoding counts them (songs stored unmoved); the shards "
             "hold each song and its moves by 1 and 2 scale steps. Windows: 75 tokens, stride 3, shuffled, "
             "batches of 64, read from the memory-mapped shards. CPU seconds are this process's and its "
             "children's (user + system): what a stage costs whatever else the machine runs; items per CPU "
             "second times the free cores is what the parallel stages reach.", "",
             "| workers | stage | items | seconds | items/s | events/s | CPU s | items/CPU s |",
             "|---|---|---|---|---|---|---|---|", *rows]
    if args.index:
        index = json.loads((Path(args.index) / "index.json").read_text())
        results["full"] = {k: {kk: v[kk] for kk in ("songs", "events", "tokens", "near_copies", "licence")}
                           for k, v in index["sources"].items()}
        lines += ["", f"## Full build: {args.index}", "", "| source | songs | events | tokens | near-copies left out "
                  "| licence |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {v['songs']:,} | {v['events']:,} | {v['tokens']:,} | {v['near_copies']:,} | "
                  f"{v['licence']} |" for k, v in results["full"].items()]
        tot = [sum(v[k] for v in results["full"].values()) for k in ("songs", "events", "tokens", "near_copies")]
        lines.append(f"| total | {tot[0]:,} | {tot[1]:,} | {tot[2]:,} | {tot[3]:,} | |")
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "corpus.md").write_text("\n".join(lines) + "\n")
    (ROOT / "bench" / "results" / "corpus.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
