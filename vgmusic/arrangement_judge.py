"""Arrangements against human ones: each figure of vgmusic/arrangement.py inside the human songs' range?

    ranges = load_ranges()                       # bench/results/arrangement_human.json (bench/arrangement.py --human)
    rows = judge_rows(songs, ranges)             # one dict a figure: human p10/p50/p90, the set's median, inside
    print(markdown(rows, "pokemon x3"))

A figure is inside when the set's median lies within the human songs' 10th-90th percentile range (pooled
over the three corpora, or one corpus by name); `songs_inside` says what share of the set's songs are.
melody_kept() checks the other half of the target: an arrangement leaves the melody, and so every melody
figure the evaluation judges, as it was.
"""
from pathlib import Path

import numpy as np

from .arrangement import FIGURES, figures
from .roles import roles
from .judge import fmt
from .store import read_json

HUMAN_RANGES = Path(__file__).resolve().parents[1] / "bench" / "results" / "arrangement_human.json"
POOLED = "pooled"
PERCENTILES = (10, 50, 90)
# A figure the set never defines (no drums, no bass) is outside when this share of the human songs define
# it: 104 of 108 have drums, 90 a bass, 93 a harmony track; a part missing is wrong, not unjudged.
MISSING = 0.8


def distribution(values):
    """{"p10", "p50", "p90", "n"} of the defined values (None percentiles when there are none)."""
    v = np.array([x for x in values if x is not None], float)
    out = {f"p{q}": (float(np.percentile(v, q)) if len(v) else None) for q in PERCENTILES}
    return dict(out, n=len(v))


def summarise(per_song):
    """FIGURES -> distribution() over a list of figures() dicts."""
    return {name: distribution([f.get(name) for f in per_song]) for name in FIGURES}


def load_ranges(path=HUMAN_RANGES):
    """The human ranges bench/arrangement.py --human wrote; ValueError naming the file when missing or damaged."""
    try:
        data = read_json(path, "human arrangement ranges (run python bench/arrangement.py --human)")
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    if not isinstance(data, dict) or not isinstance(data.get("ranges"), dict) or POOLED not in data["ranges"]:
        raise ValueError(f"{path}: not a human ranges file (no ranges.{POOLED})")
    return data["ranges"]


def inside(value, d):
    if value is None or d.get("p10") is None:
        return None
    return bool(d["p10"] <= value <= d["p90"])


def judge_rows(songs, ranges=None, corpus=POOLED):
    """One row a figure for a set of Songs (or of figures() dicts already computed): the human range of
    `corpus`, the set's median and n, whether the median is inside p10-p90 (None where either is
    undefined, False where the set never defines a figure that MISSING of the human songs do) and the
    share of the set's songs inside."""
    ranges = load_ranges() if ranges is None else ranges
    if corpus not in ranges:
        raise ValueError(f"no human corpus {corpus!r} in the ranges (have {', '.join(ranges)})")
    per_song = [s if isinstance(s, dict) else figures(s) for s in songs]
    songs_n = max((d.get("n", 0) for d in ranges[corpus].values()), default=0)
    rows = []
    for name in FIGURES:
        human = ranges[corpus].get(name, {"p10": None, "p50": None, "p90": None, "n": 0})
        values = [f.get(name) for f in per_song if f.get(name) is not None]
        median = float(np.median(values)) if values else None
        marks = [inside(v, human) for v in values]
        marks = [m for m in marks if m is not None]
        verdict = inside(median, human)
        if not values and per_song and human["n"] >= MISSING * songs_n > 0:
            verdict = False
        rows.append({"figure": name, "p10": human["p10"], "p50": human["p50"], "p90": human["p90"],
                     "human_n": human["n"], "median": median, "n": len(values), "inside": verdict,
                     "songs_inside": float(np.mean(marks)) if marks else None})
    return rows


def outside(rows):
    """The names of the figures whose median is outside the human range (what a tuner works on)."""
    return [r["figure"] for r in rows if r["inside"] is False]


def markdown(rows, label):
    """A table of judge_rows(): the human range beside the set's median, marked inside or OUTSIDE."""
    text = [f"| figure | human p10 | human p50 | human p90 | human n | {label} median | n | inside | songs inside |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = {True: "yes", False: "**OUTSIDE**", None: "-"}[r["inside"]]
        text.append(f"| {r['figure']} | {fmt(r['p10'])} | {fmt(r['p50'])} | {fmt(r['p90'])} | {r['human_n']} | "
                    f"{fmt(r['median'])} | {r['n']} | {mark} | {fmt(r['songs_inside'])} |")
    return "\n".join(text)


def melody_kept(original, arranged):
    """Whether arranging left the melody as it was: {"same_notes": the melody tracks' notes identical,
    "changed": the melody figures of metrics.song_features that moved (name -> (before, after))}."""
    from .metrics import song_features

    def melody(song):
        tracks = roles(song)["melody"]
        return sorted(n for t in tracks[:1] for n in t.notes)
    a, b = melody(original), melody(arranged)
    if not a or not b:
        return {"same_notes": a == b, "changed": {}}
    # metrics counts bars in whole grid steps: a bar of 3.5 beats (7/8) is read on the nearest whole beat
    bpb = max(1, round(original.beats_per_bar))
    fa, fb = song_features(a, bpb), song_features(b, bpb)
    changed = {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]}
    return {"same_notes": a == b, "changed": changed}
