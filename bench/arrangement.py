"""Judge arrangements against human multi-track game songs (vgmusic/arrangement.py's figures).

    python bench/arrangement.py --human                                  # the human ranges
    python bench/arrangement.py --songs DIR [DIR ...] --label pokemon-x3  # a set of generated MIDI files

--human reads every multi-track game song Debian installs (Freedoom's two WADs' music lumps, BSD-3-Clause;
OpenTTD's OpenMSX, GPL-2.0; Planet Blupi, GPL-3.0) with the project's MIDI reader, computes every figure
and writes their distribution (p10, p50, p90, n) per corpus and pooled, with each song's figures, to
--out/arrangement_human.json. --songs computes the figures of every .mid/.midi file under the folders and
writes arrangement-<label>.{md,json}: each figure's median beside the human range, inside or OUTSIDE.
Both rebuild --out/arrangement.md: the human ranges and one summary row per label judged so far (run it
once per game and ensemble). A file that cannot be read is skipped with a warning.
"""
import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from vgmusic.arrangement import FIGURES, figures  # noqa: E402
from vgmusic.arrangement_judge import (POOLED, fmt, judge_rows, load_ranges, markdown,  # noqa: E402
                                       summarise)
from vgmusic.store import atomic_path, write_json  # noqa: E402

OUT = ROOT / "bench" / "results"
HUMAN_FILE, TABLE = "arrangement_human.json", "arrangement.md"
CORPORA = ("freedoom", "openttd", "planetblupi")


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


def human_songs(corpus):
    """(name, Song) of every song of one Debian corpus; a package that is absent is warned about."""
    from vgmusic.corpora import DEBIAN, LICENCES, package_files, wad_music
    from vgmusic.fetch import Failed
    from vgmusic.midi import midi_to_song, parse_bytes, read_midi
    package, folder = DEBIAN[corpus]
    try:
        files = package_files(package, folder, (".wad",) if corpus == "freedoom" else (".mid", ".midi"))
    except Failed as e:
        warn(f"{corpus}: {e}")
        return []
    out = []
    for f in files:
        if corpus != "freedoom":
            try:
                out.append((f.stem, read_midi(f)))
            except ValueError as e:
                warn(f"skipping {e}")
            continue
        try:
            lumps = wad_music(f)
        except (OSError, ValueError) as e:
            warn(f"skipping {f}: {e}")
            continue
        for name, kind, data in lumps:
            try:
                if kind != "midi":
                    raise ValueError(f"a {kind} lump, not standard MIDI")
                out.append((f"{f.stem}_{name}", midi_to_song(parse_bytes(data))))
            except ValueError as e:
                warn(f"skipping {f.name} lump {name}: {e}")
    for _, song in out:
        song.meta["licence"] = LICENCES[corpus]
    return out


def human(out):
    start = time.perf_counter()
    songs, ranges = [], {}
    for corpus in CORPORA:
        figs = []
        for name, song in human_songs(corpus):
            f = figures(song)
            figs.append(f)
            songs.append({"corpus": corpus, "song": name, "bars": round(song.bars, 2), "figures": f})
        ranges[corpus] = summarise(figs)
        print(f"{corpus}: {len(figs)} songs")
    if not songs:
        sys.exit("error: no human song could be read (install freedoom, openttd-openmsx, planetblupi-music-midi)")
    ranges[POOLED] = summarise([s["figures"] for s in songs])
    seconds = time.perf_counter() - start
    from vgmusic.corpora import LICENCES
    write_json(out / HUMAN_FILE, {"command": "python bench/arrangement.py --human", "seconds": round(seconds, 1),
                                  "licences": {c: LICENCES[c] for c in CORPORA}, "figures": FIGURES,
                                  "ranges": ranges, "songs": songs})
    print(f"{len(songs)} human songs in {seconds:.1f} s -> {out / HUMAN_FILE}")


def slug(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "set"


def generated(dirs, label, against, out):
    from vgmusic.midi import read_midi
    ranges = load_ranges(out / HUMAN_FILE)
    files = sorted({p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in (".mid", ".midi")
                    and p.is_file()})
    if not files:
        sys.exit(f"error: no .mid files under {' '.join(map(str, dirs))}")
    per_song = []
    for p in files:
        try:
            per_song.append({"file": str(p), "figures": figures(read_midi(p))})
        except ValueError as e:
            warn(f"skipping {e}")
    rows = judge_rows([s["figures"] for s in per_song], ranges, against)
    name = slug(label)
    write_json(out / f"arrangement-{name}.json", {"label": label, "against": against, "dirs": list(map(str, dirs)),
                                                  "rows": rows, "songs": per_song})
    bad = [r["figure"] for r in rows if r["inside"] is False]
    text = [f"# Arrangement figures: {label}\n", f"`python bench/arrangement.py --songs {' '.join(map(str, dirs))} "
            f"--label {label}`: {len(per_song)} songs against the human songs ({against}).\n",
            markdown(rows, label), "", f"Outside the human range: {', '.join(bad) or 'none'}.", ""]
    with atomic_path(out / f"arrangement-{name}.md") as tmp:
        tmp.write_text("\n".join(text))
    print(f"{label}: {len(per_song)} songs, {len(rows) - len(bad)} of {len(rows)} figures inside or undefined; "
          f"outside: {', '.join(bad) or 'none'} -> {out / f'arrangement-{name}.md'}")


def rebuild_table(out):
    """arrangement.md: the human ranges per corpus and pooled, then every label's medians, OUTSIDE marked."""
    path = out / HUMAN_FILE
    if not path.exists():
        return
    data = json.loads(path.read_text())
    ranges = data["ranges"]
    cols = [*CORPORA, POOLED]
    n = {c: sum(s["corpus"] == c for s in data["songs"]) for c in CORPORA}
    n[POOLED] = len(data["songs"])
    text = ["# Arrangements against human game songs\n",
            f"`{data['command']}` ({data['seconds']} s): every figure of `vgmusic/arrangement.py` over the human "
            "multi-track game songs Debian installs: " + ", ".join(f"{c} ({n[c]} songs; {data['licences'][c]})"
                                                                    for c in CORPORA) + ". Cells: p10 / p50 / p90 (n "
            "songs where the figure is defined).\n",
            "| figure | " + " | ".join(cols) + " | what |", "|---" * (len(cols) + 2) + "|"]
    for name, what in FIGURES.items():
        cells = [f"{fmt(ranges[c][name]['p10'])} / {fmt(ranges[c][name]['p50'])} / {fmt(ranges[c][name]['p90'])} "
                 f"({ranges[c][name]['n']})" for c in cols]
        text.append(f"| {name} | " + " | ".join(cells) + f" | {what} |")
    sets = sorted(out.glob("arrangement-*.json"))
    if sets:
        judged = [json.loads(p.read_text()) for p in sets]
        text += ["", "## Generated sets\n", "Each set's median of each figure; **bold**: outside the human p10-p90 "
                 "range it was judged against (files: `arrangement-<label>.md`).\n",
                 "| figure | " + " | ".join(j["label"] for j in judged) + " |", "|---" * (len(judged) + 1) + "|"]
        for i, name in enumerate(FIGURES):
            cells = []
            for j in judged:
                r = next((r for r in j["rows"] if r["figure"] == name), None)
                cells.append("-" if r is None else f"**{fmt(r['median'])}**" if r["inside"] is False
                             else fmt(r["median"]))
            text.append(f"| {name} | " + " | ".join(cells) + " |")
        text.append("| figures outside | " + " | ".join(str(sum(r["inside"] is False for r in j["rows"]))
                                                        for j in judged) + " |")
    with atomic_path(out / TABLE) as tmp:
        tmp.write_text("\n".join(text) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--human", action="store_true", help="compute the human songs' ranges (default: off)")
    ap.add_argument("--songs", nargs="+", default=[], help="folders of generated MIDI files to judge")
    ap.add_argument("--label", default="", help="the set's name in the tables (default: the first folder's name)")
    ap.add_argument("--against", default=POOLED, choices=[*CORPORA, POOLED],
                    help=f"the human songs judged against (default: {POOLED})")
    ap.add_argument("--out", default=str(OUT), help=f"results folder (default: {OUT})")
    args = ap.parse_args()
    if not args.human and not args.songs:
        ap.error("give --human, --songs DIR ..., or both")
    out = Path(args.out)
    try:
        if args.human:
            human(out)
        if args.songs:
            generated(args.songs, args.label or Path(args.songs[0]).name, args.against, out)
        rebuild_table(out)
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
