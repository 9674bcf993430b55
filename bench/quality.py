"""Judge the shipped models by the music they write, beside human songs and earlier approaches.

    python bench/quality.py [--games G ...] [--songs 10] [--baseline LABEL=DIR ...]
    python bench/quality.py --sweep 1:1 1:0.9 0.8:0.9 ... [--games G ...]

For each game folder: composes --songs songs (seeds 1..N) with the model in <game>/weights at the
default settings, measures them with vgmusic.evaluate beside the game's held-out and training songs
and any --baseline folders (DIR may contain {game}), and writes docs/eval/<game>.json/.md/.png
plus docs/eval/summary.md (every target, every game, every set).

The baselines in docs/eval were written by commit 3a7d2c4 (the previous default and the original
approach), from a worktree of it:
    python <game>/train.py --model-dir M --budget 240        then predict with --temperature 1
    python <game>/train.py --model-dir M --encoding classic --budget 150, then --temperature 0 (argmax)
each predict seeded 1..10 from a random window of the game's songs, 500 tokens.

--sweep T:P ... instead composes --songs songs per temperature T and top-p P and writes
docs/eval/sweep.md: the figures the defaults are chosen by.

--judge instead judges the rhythm and the phrase (vgmusic/judge.py) of --songs songs per folder against the
folder's human songs, beside the human-against-human calibration (halves of a folder's songs, one game
against another), into bench/results/judge.md and judge.json:
    python get_all_notes.py && python bench/quality.py --judge --songs 20

--loops BARS instead measures seamless loops of BARS bars (docs/eval/loops.md): --songs songs per game
as one batch, their seams scored as composed from the start of a song, as composed after a preroll
phrase, and as `predict.py --loop` closes them.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vgmusic.compose import compose, load_model  # noqa: E402  (first: it sets NumPy's threads)
from vgmusic import judge as judging  # noqa: E402
from vgmusic.cli import build  # noqa: E402
from vgmusic.config import PredictConfig, default_model_dir, game_sources  # noqa: E402
from vgmusic.evaluate import (HELDOUT, TRAIN, evaluate_sets, game_split, melodies, read_folder,  # noqa: E402
                              read_midi_notes, write_report)
from vgmusic.predict import request_of  # noqa: E402
from vgmusic.store import atomic_path, write_json  # noqa: E402
from vgmusic.train import SHIPPED  # noqa: E402

OUT = ROOT / "docs" / "eval"
RESULTS = ROOT / "bench" / "results"
SHOWN = ("scale_consistency", "return_share", "leap_share", "n_pitches", "polyphony", "copied_share",
         "longest_match", "loop_share")


def melody_of(song):
    """The notes the metrics read: the Song's melody track, none if it holds no note."""
    melody = song.melody()
    return list(melody.notes) if melody else []


MODELS = {}  # --models DIR: the game's model folder is DIR/<game> instead of the shipped <game>/weights
SETTINGS = {}  # --sampling: settings every --judge song is composed with
EXTRA = []  # the flags the report repeats in its command line


def compose_set(game, n, **settings):
    """The melodies of n songs (seeds 1..n) from the game's model at the default settings plus `settings`,
    each composed as `predict.py --seed S` composes it, measured as composed (nothing is written)."""
    cfg = build(PredictConfig, argparse.Namespace(), **settings)
    model = load_model(MODELS.get("dir", {}).get(game) or default_model_dir(game), cfg.which)
    songs = []
    for seed in range(1, n + 1):
        cfg = build(PredictConfig, argparse.Namespace(), seed=seed, **settings)
        (song,) = compose(model, request_of(cfg))
        songs.append(melody_of(song))
    return songs


def load_baseline(folder):
    """A folder of songs written by an earlier approach, and how many of them hold no note at all
    (the original's argmax often writes nothing but rests)."""
    files = sorted(Path(folder).glob("*.mid"))
    empty = sum(not read_midi_notes(f) for f in files)
    if empty == len(files):
        return None, empty, len(files)
    names, songs = read_folder(folder)
    return songs, empty, len(files)


def target_table(results, notes, empty):
    """Markdown: one row per game and set, one column per target; `empty` lists sets with no note at all."""
    first = next(iter(results.values()))["targets"]["default"]
    lines = ["| game | set | " + " | ".join(t[0] for t in first) + " |", "|---" * (2 + len(first)) + "|"]
    goals = [set() for _ in first]
    for game, result in results.items():
        for label, rows in result["targets"].items():
            cells = [f"{v:.3g} {'pass' if ok else 'FAIL'}" if ok is not None else f"{v:.3g}" for _, v, _, ok in rows]
            lines.append(f"| {game} | {label}{notes.get((game, label), '')} | " + " | ".join(cells) + " |")
            for i, (_, _, goal, _) in enumerate(rows):
                goals[i].add(goal)
        for label in empty.get(game, []):
            lines.append(f"| {game} | {label}{notes[game, label]} |" + " - |" * len(first))
    # goals relative to a game's own songs differ per game: their numbers are in each game's table
    lines.append("| | goal | " + " | ".join(g.pop() if len(g) == 1 else "relative: see the game's table"
                                           for g in goals) + " |")
    return "\n".join(lines)


def report(args):
    results, notes, empty = {}, {}, {}
    for game in args.games:
        train, held, _ = game_split(game, args.data_dir)
        (train_names, train_notes), (held_names, held_notes) = melodies(train), melodies(held)
        print(f"{game}: composing {args.songs} songs", file=sys.stderr, flush=True)
        sets = {"default": compose_set(game, args.songs)}
        for spec in args.baseline:
            label, _, pattern = spec.partition("=")
            songs, silent, total = load_baseline(pattern.format(game=game))
            if silent:
                notes[game, label] = f" ({silent} of {total} songs hold no note)"
            if songs:
                sets[label] = songs
            else:
                empty.setdefault(game, []).append(label)
        result = evaluate_sets(sets, train_notes, held_notes, names={TRAIN: train_names, HELDOUT: held_names})
        result.update(game=game, notes={label: notes.get((game, label), "") for label in sets})
        write_report(result, OUT / game, f"{game}: the default model against the game's songs")
        results[game] = result
    text = ["# The default models against the songs\n",
            f"`python bench/quality.py` ({args.songs} songs per model, seeds 1..{args.songs}, default settings); "
            "per-game tables and figures beside this file. The held-out row is the human baseline.\n",
            target_table(results, notes, empty), "", "## Rhythm and phrase\n", judging.LEGEND + "\n",
            judging.header(["game"]), *(row for game, result in results.items()
                                         for row in judging.table_rows(result["judge"], [game])), ""]
    with atomic_path(OUT / "summary.md") as tmp:
        tmp.write_text("\n".join(text))
    print("\n".join(text))


def sweep(args):
    rows = []
    for game in args.games:
        train, held, _ = game_split(game, args.data_dir)
        train_notes, held_notes = melodies(train)[1], melodies(held)[1]
        sets = {}
        for spec in args.sweep:
            # T:P, or T:P:RP:RT with the rhythm's own top-p and temperature (0: as the pitches')
            t, p, rp, rt = ([float(x) for x in spec.split(":")] + [0.0, 0.0])[:4]
            label = f"T={t:g} p={p:g}" + (f" rp={rp:g}" if rp else "") + (f" rT={rt:g}" if rt else "")
            sets[label] = compose_set(game, args.songs, temperature=t, top_p=p, rhythm_top_p=rp,
                                      rhythm_temperature=rt)
        result = evaluate_sets(sets, train_notes, held_notes)
        for label in sets:
            summary, targets = result["sets"][label]["summary"], result["targets"][label]
            failed = [name.split()[0] for name, _, _, ok in targets if ok is False]
            judged = result["judge"]["sets"][label]
            rows.append(f"| {game} | {label} | " + " | ".join(
                f"{summary[k]['max' if k == 'longest_match' else 'mean']:.3g}" for k in SHOWN)
                + f" | {summary['rhythm_oa']['mean']:.3g} | " + " | ".join(
                    judging.fmt(judged["shares"][k]) for k in ("eighth", "triplet", "repeated_pitch"))
                + f" | {judging.fmt(judged['classifier']['auc'])} | {', '.join(failed) or 'none'} |")
            print(rows[-1], flush=True)
    text = ["# Sampling settings\n", f"`python bench/quality.py --sweep {' '.join(args.sweep)}`, {args.songs} songs "
            "per setting (means; longest_match: the maximum).\n",
            "| game | setting | " + " | ".join(SHOWN) + " | rhythm_oa | eighth IOIs | triplet IOIs | repeated "
            "pitch | AUC vs songs | targets failed |", "|---" * (len(SHOWN) + 8) + "|", *rows, ""]
    with atomic_path(OUT / "sweep.md") as tmp:
        tmp.write_text("\n".join(text))


def seed_halves(songs):
    """{label: songs} of the two disjoint halves of a set composed with seeds 1..N (from 20 songs, N even):
    judged alone, they show how far the AUC moves with the songs drawn (Zelda's shipped model: 0.58 on seeds
    1-40, 0.72 on 41-80), the yardstick a change to the models is measured against."""
    songs, half = list(songs), len(songs) // 2
    if len(songs) < 20 or len(songs) % 2:
        return {}
    return {f"seeds 1-{half}": songs[:half], f"seeds {half + 1}-{len(songs)}": songs[half:]}


def judge(args):
    """--judge: each folder's composed songs against its human songs (vgmusic/judge.py), the calibration, and
    one game's human songs against another's; bench/results/judge.md and judge.json."""
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    results, human = {}, {}
    for game in args.games:
        train, held, _ = game_split(game, args.data_dir)
        train_notes, held_notes = melodies(train)[1], melodies(held)[1]
        say(f"{game}: composing {args.songs} songs")
        songs = compose_set(game, args.songs, **SETTINGS)
        results[game] = judging.judge_sets({"default": songs, **seed_halves(songs)}, train_notes, held_notes,
                                           progress=say)
        if game_sources(game) == [game]:  # one game's songs: compared with the other games' below
            human[game] = train_notes + held_notes
    pairs = {f"{a} vs {b}": judging.two_sample(human[a], human[b]) for i, a in enumerate(human)
             for b in list(human)[i + 1:]}
    f = judging.fmt
    cal = []
    for game, r in results.items():
        halves = r["calibration"]["halves"]
        spread = f"{f(min(halves['aucs']))} - {f(max(halves['aucs']))}" if halves["aucs"] else "-"
        aucs = [f(r["sets"][label]["classifier"]["auc"]) for label in ("default", HELDOUT)]
        seeds = " / ".join(f(r["sets"][label]["classifier"]["auc"]) for label in seed_halves(range(args.songs))) or "-"
        cal.append(f"| {game} | {aucs[0]} | {seeds} | {aucs[1]} | {f(halves['auc'])} | {f(halves['sd'])} | {spread} |")
    text = ["# Rhythm and phrase: the shipped models against their songs\n",
            f"`python bench/quality.py --judge --songs {args.songs}{' ' + ' '.join(EXTRA) if EXTRA else ''}`: "
            f"{args.songs} songs per model (seeds "
            f"1..{args.songs}, default settings) against the folder's human songs (training and held-out), the "
            "held-out songs against the training songs.\n", judging.LEGEND + "\n",
            judging.header(["folder"]), *(row for game, r in results.items() for row in judging.table_rows(r, [game])),
            "", "## The classifier against its calibration\n",
            f"AUC of the {judging.WINDOW_BARS}-bar window classifier; human against human: two random halves of a "
            f"folder's songs (split by song, {judging.SPLITS} splits: mean, sd and range), and one game's songs "
            "against another's.\n",
            "The generated songs' own spread: each half of the seeds judged alone (seeds 1..N/2, then the rest; "
            "from 20 songs).\n",
            "| folder | generated vs human | its seed halves | held-out vs training | human halves | sd | range |",
            "|---" * 7 + "|",
            *cal, "", "| human songs | AUC | windows | songs |", "|---" * 4 + "|",
            *(f"| {pair} | {f(r['auc'])} | {r['windows'][0]} vs {r['windows'][1]} | {r['songs'][0]} vs "
              f"{r['songs'][1]} |" for pair, r in pairs.items()), ""]
    name = f"judge-{args.tag}" if args.tag else "judge"
    with atomic_path(RESULTS / f"{name}.md") as tmp:
        tmp.write_text("\n".join(text))
    write_json(RESULTS / f"{name}.json", {"songs": args.songs, "models": args.models or "shipped",
                                          "settings": SETTINGS, "folders": results, "games": pairs})
    print("\n".join(text))


def loops(args):
    import numpy as np
    from vgmusic.decode import decode
    from vgmusic.form import FormPlan
    from vgmusic.loop import close_loops
    cfg = build(PredictConfig, argparse.Namespace(), seed=1, bars=args.loops, num=args.songs, loop=True)
    request = request_of(cfg)
    rows = []
    for game in args.games:
        model = load_model(default_model_dir(game), cfg.which)
        enc, vocab, seed = model.enc, model.vocab, model.start_ids()
        for label, preroll, close in (("the song as composed", 0, False), ("after a preroll phrase", 1, False),
                                      ("predict.py --loop", 1, True)):
            if close:  # exactly what predict.py --loop --bars BARS --num SONGS --seed 1 composes
                found = [song.meta["loop"] for song in compose(model, request)]
            else:  # composed as predict.py composes (seed 1), from the start or after a preroll phrase; the
                # seams scored as the songs end, with no new last bar
                rng = np.random.default_rng(1)
                plans = [FormPlan(enc, vocab, cfg.form, cfg.phrase_bars, cfg.length, args.loops,
                                  preroll * cfg.phrase_bars) for _ in range(args.songs)]
                stepper = model.make_stepper(len(plans))
                logits = stepper.start(np.tile(np.asarray(seed, np.int64)[None], (len(plans), 1)))
                decode(stepper, logits, plans, rng, request.sampling, model.banned)
                found = close_loops(model.make_stepper, enc, vocab, seed, plans, rng, request.sampling,
                                    model.banned, candidates=cfg.loop_candidates, keep=True)
            margin = [f["seam_loss"] - f["typical_loss"] for f in found]
            tries = [f.get("tries", 1) for f in found]
            rows.append(f"| {game} | {label} | {sum(f['passed'] for f in found)} of {len(found)} | "
                        f"{np.median([f['seam_loss'] for f in found]):.3f} | "
                        f"{np.median([f['typical_loss'] for f in found]):.3f} | {np.median(margin):+.3f} | "
                        f"{max(margin):+.3f} | {np.mean(tries):.1f} |")
            print(rows[-1], flush=True)
    text = ["# Seamless loops\n", f"`python bench/quality.py --loops {args.loops} --songs {args.songs}`: "
            f"{args.songs} loops of {args.loops} bars per game and method (seed 1). Losses in nats per token: the "
            "seam is the song's first bar heard after its last, the typical bar the median bar of the song; a "
            "loop passes when its seam costs no more than its typical bar. Medians over the loops.\n",
            "| game | loop made from | seams that pass | seam loss | typical bar | seam - typical | worst | "
            "songs tried |", "|---" * 8 + "|", *rows, ""]
    with atomic_path(OUT / "loops.md") as tmp:
        tmp.write_text("\n".join(text))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", nargs="+", default=list(SHIPPED), help="game folders (default: the four)")
    ap.add_argument("--songs", type=int, default=10, help="songs per model or setting (default 10)")
    ap.add_argument("--data-dir", default=str(ROOT / "data"), help="extracted songs (default: data/)")
    ap.add_argument("--baseline", nargs="*", default=[], metavar="LABEL=DIR",
                    help="folders of songs by other approaches; DIR may contain {game}")
    ap.add_argument("--sweep", nargs="*", default=[], metavar="T:P[:RP:RT]",
                    help="temperature:top-p[:rhythm top-p:rhythm temperature] settings to compare (0: as the pitches')")
    ap.add_argument("--loops", type=int, default=0, metavar="BARS", help="measure seamless loops of BARS bars")
    ap.add_argument("--judge", action="store_true", help="judge rhythm and phrase into bench/results/judge.md")
    ap.add_argument("--models", default="", metavar="DIR", help="with --judge: the models in DIR/<game> instead of the "
                                                                   "shipped ones")
    ap.add_argument("--sampling", default="", metavar="T:P:RP:RT", help="with --judge: these sampling settings "
                                                                        "(0: the default's)")
    ap.add_argument("--repeat-penalty", type=float, default=0.0, metavar="R", help="with --judge: this repeat penalty "
                                                                                 "for every folder (0: each game's own)")
    ap.add_argument("--tag", default="", help="with --judge: write judge-TAG.md and .json")
    args = ap.parse_args()
    if args.repeat_penalty:
        SETTINGS["repeat_penalty"] = args.repeat_penalty
        EXTRA.append(f"--repeat-penalty {args.repeat_penalty:g}")
    if args.models:
        MODELS["dir"] = {game: Path(args.models) / game for game in args.games}
        EXTRA.append(f"--models {args.models}")
    if args.sampling:
        t, p, rp, rt = ([float(x) for x in args.sampling.split(":")] + [0.0] * 3)[:4]
        SETTINGS.update(temperature=t, top_p=p, rhythm_top_p=rp, rhythm_temperature=rt)  # rp 0: one cut; rt 0: as the pitches
        EXTRA.append(f"--sampling {args.sampling}")
    if args.tag:
        EXTRA.append(f"--tag {args.tag}")
    try:
        loops(args) if args.loops else sweep(args) if args.sweep else judge(args) if args.judge else report(args)
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
