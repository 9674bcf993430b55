"""Judge the arranger (vgmusic/arrange.py) by helper figures of vgmusic/arrangement.py against the human
game songs' p10-p90 ranges (bench/results/arrangement_human.json), for every shipped model and ensemble.

    python bench/arrange_figures.py                      # 4 models x 5 ensembles, 20 songs each, 16 bars
    python bench/arrange_figures.py --models pokemon_red_blue_yellow --ensembles chip --num 5

Each model composes `--num` songs (seed `--seed`, `--bars` bars, its form, a loop with --loop), each song is
arranged by every ensemble (arrangement seed = the song's number), and the figures are computed on the
Songs in memory (their tracks carry their roles). Writes bench/results/arrange_figures.{json,md}: each set's
figures outside the human range, whether every melody stayed note for note, and the arranging time.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from vgmusic.arrange import arrange  # noqa: E402
from vgmusic.arrangement_judge import judge_rows, load_ranges, melody_kept  # noqa: E402
from vgmusic.compose import Request, compose, load_model  # noqa: E402
from vgmusic.ensembles import ENSEMBLES  # noqa: E402
from vgmusic.judge import fmt  # noqa: E402
from vgmusic.store import atomic_path, write_json  # noqa: E402

MODELS = ("pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7", "three_games_combined")
OUT = ROOT / "bench" / "results"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="shipped model folders (default: all four)")
    ap.add_argument("--ensembles", nargs="+", default=list(ENSEMBLES), help="ensembles (default: all)")
    ap.add_argument("--num", type=int, default=20, help="songs per model (default: 20)")
    ap.add_argument("--bars", type=int, default=16, help="bars per song (default: 16)")
    ap.add_argument("--seed", type=int, default=1, help="composing seed (default: 1)")
    ap.add_argument("--loop", action="store_true", help="compose loops (default: off)")
    ap.add_argument("--tracks", default="", help="roles to arrange, comma-separated (default: the ensemble's)")
    ap.add_argument("--out", default=str(OUT / "arrange_figures"), help="results, without suffix")
    args = ap.parse_args()
    ranges = load_ranges()
    tracks = tuple(args.tracks.split(",")) if args.tracks else None
    sets, lines = [], []
    for model in args.models:
        songs = compose(load_model(ROOT / model / "weights"), Request(num=args.num, bars=args.bars, seed=args.seed,
                                                                      loop=args.loop))
        for ens in args.ensembles:
            start = time.perf_counter()
            arranged = [arrange(s, ens, tracks, seed=i + 1) for i, s in enumerate(songs)]
            ms = (time.perf_counter() - start) * 1000 / len(songs)
            rows = judge_rows(arranged, ranges)
            kept = all(melody_kept(s, a)["same_notes"] for s, a in zip(songs, arranged))
            out = [r for r in rows if r["inside"] is False]
            sets.append({"model": model, "ensemble": ens, "ms_per_song": round(ms, 2), "melody_kept": kept,
                         "outside": [r["figure"] for r in out], "rows": rows})
            line = (f"{model} / {ens}: {len(rows) - len(out)} of {len(rows)} inside or undefined, melody kept "
                    f"{kept}, {ms:.1f} ms a song; outside: "
                    + (", ".join(f"{r['figure']} {fmt(r['median'])} ({fmt(r['p10'])}-{fmt(r['p90'])})" for r in out)
                       or "none"))
            print(line, flush=True)
            lines.append(f"- {line}")
    out = Path(args.out)
    write_json(out.with_suffix(".json"), {"command": " ".join(["python bench/arrange_figures.py", *sys.argv[1:]]),
                                          "sets": sets})
    names = [r["figure"] for r in sets[0]["rows"]]
    table = ["| figure | human p10-p90 | " + " | ".join(f"{s['model'][:8]} {s['ensemble']}" for s in sets) + " |",
             "|---" * (len(sets) + 2) + "|"]
    for i, name in enumerate(names):
        r0 = sets[0]["rows"][i]
        cells = [f"**{fmt(r['median'])}**" if r["inside"] is False else fmt(r["median"])
                 for r in (s["rows"][i] for s in sets)]
        table.append(f"| {name} | {fmt(r0['p10'])}-{fmt(r0['p90'])} | " + " | ".join(cells) + " |")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("# The arranger against the human game songs\n\n`python bench/arrange_figures.py "
                       + " ".join(sys.argv[1:]) + "`: medians of each set, **bold** outside the human p10-p90.\n\n"
                       + "\n".join(lines) + "\n\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
