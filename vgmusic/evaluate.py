"""Measure the music: generated songs against a game's training and held-out songs.

    python evaluate.py --game pokemon_red_blue_yellow --generated pokemon_red_blue_yellow/generations

Held-out loss said nothing about songs with human rhythm, random pitches and no themes; these
figures do (see metrics.py for every definition). Per-song averages in turn hid rhythm collapsing onto
eighth notes, so judge.py adds the melody line's pooled IOI, duration and interval distributions and a
classifier telling 4-bar windows of generated songs from human ones. Writes PREFIX.json (every figure of
every song, per-set summaries, overlap with the training songs, targets, the judge's figures), PREFIX.md
(the tables) and PREFIX.png. Imports neither TensorFlow nor Keras (scikit-learn only when it judges).
"""
import json
import sys
from pathlib import Path

import numpy as np

from .checkpoint import SIDECAR
from .cli import build, parser_for, run_command, writable_file
from .config import RUNS, EvaluateConfig, TrainConfig, default_model_dir, game_overrides
from .encode import Event, load_songs, split_songs
from .judge import judge_sets, markdown as judge_markdown
from .metrics import (COMPARED, FIGURES, HISTOGRAMS, MATCH, NGRAM, TIME_BINS, Reference, check_targets,
                      compare_sets, originality, song_features, structure, summarize)
from .store import atomic_path, read_json, write_json

HELDOUT, TRAIN = "held-out songs", "training songs"
# the figures drawn in PREFIX.png, with the fixed target where there is one
PLOTTED = {"scale_consistency": 0.92, "scale_consistency_window": None, "return_share": 0.35,
           "loop_share": None, "leap_share": 0.15, "n_pitches": None, "pitch_class_entropy": None,
           "note_density": None, "longest_repeat": None, "copied_share": None, "longest_match": 12}


def read_midi_notes(path):
    """The melody of a MIDI file (the project's one reader, vgmusic.midi): its Notes in beats, none if
    nothing is pitched."""
    from .midi import read_midi
    melody = read_midi(path).melody()
    return list(melody.notes) if melody else []


def read_folder(folder):
    """The .mid files of a folder with pitched notes as (names, melodies); an unreadable or empty file is
    skipped with a warning naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder of generated songs not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".mid", ".midi"))
    names, songs = [], []
    for path in files:
        try:
            notes = read_midi_notes(path)
        except ValueError as e:
            print(f"warning: skipping {e}", file=sys.stderr)
            continue
        if notes:
            names.append(path.name)
            songs.append(notes)
        else:
            print(f"warning: skipping {path}: no pitched notes", file=sys.stderr)
    if not songs:
        raise ValueError(f"{folder}: no .mid file with pitched notes")
    return names, songs


def game_split(game, data_dir, model_dir=""):
    """Training and held-out songs of a game: those a model's sidecar names, else the default split.

    Returns (train songs, held-out songs, where the split came from).
    """
    folder = Path(model_dir) if model_dir else default_model_dir(game)
    sidecar = folder / SIDECAR
    if not sidecar.exists():
        if model_dir:
            raise ValueError(f"{folder}: no {SIDECAR} here (train a model there, or leave out --model-dir)")
        over = game_overrides(game)
        cfg = TrainConfig()
        train, val = split_songs(load_songs(data_dir, game), over.get("val_fraction", cfg.val_fraction),
                                 over.get("val_songs", cfg.val_songs), over.get("split_seed", cfg.split_seed))
        return train, val, "default split (no trained model)"
    meta = read_json(sidecar, "model sidecar")
    split = meta.get("songs") if isinstance(meta, dict) else None
    if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("train", "val")):
        raise ValueError(f"{sidecar}: no songs.train / songs.val lists (damaged or not a model sidecar)")
    loaded = {}

    def find(entry):
        if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str) for x in entry)):
            raise ValueError(f"{sidecar}: song entry {json.dumps(entry)[:80]} is not [source, file, sha256]")
        source, file, sha = entry
        if source not in loaded:
            loaded[source] = {s.meta["file"]: s for s in load_songs(data_dir, source)}
        song = loaded[source].get(file)
        if song is None:
            raise ValueError(f"{Path(data_dir) / source}.json: no song {file!r}, which {sidecar} names "
                             f"(re-run get_all_notes.py)")
        if song.meta["sha256"] != sha:
            raise ValueError(f"{Path(data_dir) / source}.json: {file!r} has changed since the model in "
                             f"{folder} was trained (sha256 differs)")
        return song

    return [find(e) for e in split["train"]], [find(e) for e in split["val"]], str(sidecar)


def melodies(songs):
    """Each song's melody part (what the models write), and the song's file name."""
    enc = Event(parts="melody")
    pairs = [(s.meta["file"], enc.song_notes(s)) for s in songs]
    return [n for n, notes in pairs if notes], [notes for _, notes in pairs if notes]


def _measure(names, songs, reference, beats_per_bar, ngram, leave_one_out=False):
    rows = []
    for i, (name, notes) in enumerate(zip(names, songs)):
        try:
            f = song_features(notes, beats_per_bar)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        ref = Reference(songs[:i] + songs[i + 1:]) if leave_one_out else reference
        rows.append({"name": name, **f, **originality(notes, ref, ngram)})
    return rows


def evaluate_sets(sets, train, heldout, beats_per_bar=4, names=None, ngram=NGRAM, progress=None):
    """Measure generated sets against a game's training and held-out songs (all lists of note lists).

    sets: {label: [notes, ...]}; names: {label: [song name, ...]} for the report (default 1, 2, ...),
    with HELDOUT and TRAIN naming those two lists. Originality is measured against the training songs,
    each training song against the others. Returns a JSON-ready dict (see write_report).
    """
    names = dict(names or {})
    for label in sets:
        if label in (HELDOUT, TRAIN):
            raise ValueError(f"set label {label!r} is reserved; choose another --label")
        if not sets[label]:
            raise ValueError(f"set {label!r} has no songs")
    if len(train) < 2:
        raise ValueError(f"need at least 2 training songs to compare against, got {len(train)}")
    say = progress or (lambda msg: None)
    reference = Reference(train)
    result = {"beats_per_bar": beats_per_bar, "ngram": ngram, "match_threshold": MATCH, "sets": {}, "targets": {}}
    groups = [(label, "generated", songs) for label, songs in sets.items()]
    groups += [(HELDOUT, "held-out", heldout), (TRAIN, "training", train)]
    for label, kind, songs in groups:
        say(f"measuring {label}: {len(songs)} songs")
        labels = names.get(label) or [str(i + 1) for i in range(len(songs))]
        rows = _measure(labels, songs, reference, beats_per_bar, ngram, leave_one_out=kind == "training")
        result["sets"][label] = {"kind": kind, "songs": rows, "summary": summarize(rows)}
    train_rows = result["sets"][TRAIN]["songs"]
    for label, entry in result["sets"].items():
        if entry["kind"] != "training":
            vs = compare_sets(entry["songs"], train_rows)
            entry["vs_train"] = vs
            entry["summary"]["rhythm_oa"] = {"mean": vs["rhythm_oa"]}
            result["targets"][label] = [list(t) for t in check_targets(
                entry["summary"], result["sets"][TRAIN]["summary"], result["sets"][HELDOUT]["summary"])]
    # the rhythm and phrase judged on the pooled melody line and on 4-bar windows (vgmusic/judge.py)
    result["judge"] = judge_sets(sets, train, heldout, beats_per_bar, HELDOUT, TRAIN, say)
    # the picture's song: the typical (median return_share) song of the first generated set
    label, kind, songs = groups[0]
    shares = [r["return_share"] if r["return_share"] is not None else -1 for r in result["sets"][label]["songs"]]
    pick = int(np.argsort(shares, kind="stable")[len(shares) // 2]) if shares else 0
    if songs:
        result["picture"] = {"set": label, "song": result["sets"][label]["songs"][pick]["name"],
                             "matrix": structure(songs[pick], beats_per_bar)["matrix"]}
    return result


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "pass" if v else "FAIL"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def markdown(result, title):
    sets = result["sets"]
    labels = list(sets)
    head = "| | " + " | ".join(f"{label} ({sets[label]['summary']['songs']})" for label in labels) + " |\n"
    head += "|---" * (len(labels) + 1) + "|\n"
    out = [f"# {title}\n", f"Songs per set in brackets. Bars of {result['beats_per_bar']} beats; originality on "
           f"{result['ngram']}-note runs of the melody against the training songs (each training song against "
           "the others). Definitions: `vgmusic/metrics.py`.\n", "## Targets\n"]
    generated = [label for label in labels if sets[label]["kind"] != "training"]
    rows = result["targets"][generated[0]] if generated else []
    t = "| target | goal | " + " | ".join(generated) + " |\n" + "|---" * (len(generated) + 2) + "|\n"
    for i, (name, _, goal, _) in enumerate(rows):
        cells = [f"{_fmt(result['targets'][g][i][1])} {_fmt(result['targets'][g][i][3])}" for g in generated]
        t += f"| {name} | {goal} | " + " | ".join(cells) + " |\n"
    out.append(t + "\nThe held-out column is the human baseline: what real songs of the game score.\n")
    out.append("## Overlap with the training songs\n\nOverlapping area (OA, 1 = as close to the training songs "
               "as they are to each other) and KL divergence of Yang & Lerch's distance densities.\n")
    t = "| figure | " + " | ".join(f"{g} OA | {g} KLD" for g in generated) + " |\n"
    t += "|---" * (2 * len(generated) + 1) + "|\n"
    for name in COMPARED + ["rhythm_oa"]:
        cells = []
        for g in generated:
            vs = sets[g]["vs_train"]
            cells += [_fmt(vs["rhythm_oa"]), ""] if name == "rhythm_oa" else [_fmt(vs["oa"][name]),
                                                                               _fmt(vs["kld"][name])]
        t += f"| {name} | " + " | ".join(cells) + " |\n"
    out.append(t)
    if "judge" in result:
        out.append(judge_markdown(result["judge"]))
    out.append("## Figures\n")
    for name, what in FIGURES.items():
        t = f"### {name}\n\n{what}\n\n" + head
        if name in HISTOGRAMS:
            for b, bin_name in enumerate(TIME_BINS):
                means = [sets[label]["summary"][name]["mean"] for label in labels]
                t += f"| {bin_name} beats | " + " | ".join(_fmt(m[b] if m else None) for m in means) + " |\n"
        else:
            for stat in ("mean", "min", "max"):
                t += f"| {stat} | " + " | ".join(_fmt(sets[label]["summary"][name][stat]) for label in labels) + " |\n"
        out.append(t)
    return "\n".join(out)


def plot(result, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = list(result["sets"])
    fig, axes = plt.subplots(3, 4, figsize=(18, 12))
    for ax, (name, target) in zip(axes.flat, PLOTTED.items()):
        data = [[r[name] for r in result["sets"][label]["songs"] if r[name] is not None] or [np.nan]
                for label in labels]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(labels) + 1), [label.replace(" ", "\n", 1) for label in labels], fontsize=8)
        if target is not None:
            ax.axhline(target, color="C3", ls="--", lw=1, label="target")
            ax.legend(fontsize=7, loc="best")
        ax.set_title(name, fontsize=10)
    ax = axes.flat[-1]
    pic = result.get("picture")
    if pic and pic["matrix"]:
        im = ax.imshow(np.array(pic["matrix"]), vmin=0, vmax=1, cmap="magma", origin="lower")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"bar similarity: {pic['set']}, {pic['song']}"[:60], fontsize=9)
        ax.set_xlabel("bar")
        ax.set_ylabel("bar")
    fig.suptitle(f"{title} (boxes: songs; green triangle: mean)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def write_report(result, prefix, title, written=None):
    """PREFIX.json, PREFIX.md and PREFIX.png, each written atomically and appended to `written` once it is;
    returns their paths."""
    prefix = Path(prefix)
    paths = [prefix.with_name(prefix.name + ext) for ext in (".json", ".md", ".png")]
    written = [] if written is None else written
    write_json(paths[0], result)
    written.append(paths[0])
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(markdown(result, title))
    written.append(paths[1])
    plot(result, paths[2], title)
    written.append(paths[2])
    return paths


def main(argv=None):
    written = []

    def kept():
        return f"wrote only {', '.join(map(str, written))}" if written else "no report written"

    return run_command(lambda: command(argv, written), kept)


def command(argv, written):
    p = parser_for(EvaluateConfig, "Measure generated songs against a game's training and held-out songs: pitch, "
                                   "scale, melody, rhythm, structure (returns to a theme), originality (runs copied "
                                   "from the training songs), and the overlap of each figure's distribution with the "
                                   "training songs'. Deterministic: the same input gives the same report.")
    args = build(EvaluateConfig, p.parse_args(argv))
    if args.label and len(args.label) != len(args.generated):
        raise ValueError(f"{len(args.label)} --label names for {len(args.generated)} --generated folders")
    prefix = Path(args.out) if args.out else RUNS / "eval" / args.game  # docs/eval/ is bench/quality.py's
    writable_file(prefix.with_name(prefix.name + ".json"), "report")  # before the minutes of measuring
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    train, held, source = game_split(args.game, args.data_dir, args.model_dir)
    say(f"{args.game}: {len(train)} training and {len(held)} held-out songs ({source})")
    train_names, train_notes = melodies(train)
    held_names, held_notes = melodies(held)
    sets, names = {}, {TRAIN: train_names, HELDOUT: held_names}
    for i, folder in enumerate(args.generated):
        label = args.label[i] if args.label else Path(folder).resolve().name
        if label in sets:
            raise ValueError(f"two sets are labelled {label!r}; give each --generated a --label")
        names[label], sets[label] = read_folder(folder)
    result = evaluate_sets(sets, train_notes, held_notes, args.beats_per_bar, names, args.ngram, say)
    result.update(game=args.game, split=source)
    title = (f"{args.game}: generated songs against the game's songs" if sets
             else f"{args.game}: held-out against training songs")
    paths = write_report(result, prefix, title, written)
    print("\n".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
