"""Does --style choose a game's way? Held-out songs under each style, and whose songs each style's songs resemble.

    python bench/style.py [--model-dir three_games_combined/weights] [--data-dir data] [--songs 20]
                          [--out bench/results] [--name style-priors]

A model's styles are its style tokens (trained with --style) or its calibrated style priors (python -m
vgmusic calibrate --style all); --style NAME applies both where both exist, as predict.py does.

1. Likelihood: each held-out song's mean nats per token under every style (lower is likelier) and under
   none (the model as it composes without --style). A model that learned each game's style gives its
   held-out songs a lower loss under their own style than under the others'. Every held-out token is a
   target once, from the windows bench/heldout.py uses (a style token first where the model has them).
2. Resemblance: `songs` songs composed under each style (seeds 1..songs, the default settings) and
   without one, each window scored by a classifier trained on the windows of the sources' own songs
   (vgmusic.judge.which_source): the mean probability of each source and the songs it puts first. The
   human songs, each judged by a classifier fitted without it, say how well the sources can be told apart.

Runs on the NumPy path; writes NAME.md and NAME.json into --out.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from heldout import song_windows  # noqa: E402  (bench/heldout.py: the same held-out windows)
from vgmusic.compose import compose, load_model  # noqa: E402  (first: it sets NumPy's threads)
from vgmusic import judge as judging  # noqa: E402
from vgmusic.checkpoint import weights_path  # noqa: E402
from vgmusic.cli import build  # noqa: E402
from vgmusic.config import PredictConfig  # noqa: E402
from vgmusic.encode import ANY_STYLE, PAD, control, load_songs  # noqa: E402
from vgmusic.evaluate import melodies  # noqa: E402
from vgmusic.infer import NumpyNet  # noqa: E402
from vgmusic.predict import request_of  # noqa: E402
from vgmusic.sampling import log_probs  # noqa: E402
from vgmusic.store import atomic_path, write_json  # noqa: E402

NONE = "(no style)"


def style_losses(model, net, ids, names):
    """Mean nats per token of one song under each style name, and under NONE."""
    tokens, pad = model.meta.get("styles") or {}, model.vocab.index[PAD]
    out = {}
    for name in [NONE, *names]:
        x, y, keep = song_windows(np.asarray(ids), model.window, pad)
        if tokens:  # as training windows began: the style's token, or the any-style token
            x[:, 0] = model.vocab.index[tokens.get(name) or control(ANY_STYLE)]
        logits = net.forward(x).reshape(-1, len(model.vocab))
        prior = model.style_priors.get(name, model.prior)
        lp = log_probs(logits if prior is None else logits + prior)
        out[name] = float(-lp[np.arange(len(lp)), y.reshape(-1)].reshape(y.shape)[keep].mean())
    return out


def composed(model, n, style, strength=1.0):
    """The melodies of n songs (seeds 1..n) composed as `predict.py --seed S --style STYLE --rhythm-prior
    STRENGTH` composes them."""
    songs = []
    for seed in range(1, n + 1):
        cfg = build(PredictConfig, argparse.Namespace(), seed=seed, style=style, rhythm_prior=strength)
        (song,) = compose(model, request_of(cfg))
        melody = song.melody()
        songs.append(list(melody.notes) if melody else [])
    return songs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=str(ROOT / "three_games_combined" / "weights"))
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    ap.add_argument("--songs", type=int, default=20, help="songs composed per style (default 20)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--name", default="style-priors", help="the results' file name (default style-priors)")
    ap.add_argument("--also", nargs="*", default=[], metavar="DIR",
                    help="other model folders (a game's own) composed and judged beside the styles, as they compose")
    ap.add_argument("--rhythm-prior", type=float, default=1.0,
                    help="the style priors' strength, as predict.py --rhythm-prior (default 1)")
    args = ap.parse_args()
    model = load_model(args.model_dir)
    meta = model.meta
    names = sorted(set(meta.get("styles") or {}) | set(model.style_priors))
    if not names:
        sys.exit(f"error: {args.model_dir}: a model without styles (calibrate --style all, or train with --style)")
    net = NumpyNet(meta["arch"], len(model.vocab), meta["hparams"], weights_path(args.model_dir, "best"))
    held = {(s, f) for s, f, _ in meta["songs"]["val"]}
    songs = load_songs(args.data_dir, meta["game"])
    rows = []
    for song in songs:
        tokens = model.enc.song_tokens(song)
        if (song.meta["source"], song.meta["file"]) not in held or not tokens:
            continue
        losses = style_losses(model, net, model.vocab.ids(tokens), names)
        best = min(names, key=losses.get)
        rows.append({"source": song.meta["source"], "file": song.meta["file"], "tokens": len(tokens),
                     "losses": losses, "likeliest": best, "own_is_likeliest": best == song.meta["source"]})
    # token-weighted mean nats under the own style, the others' and none, over all held-out songs and by source
    def means(rs):
        w = np.array([r["tokens"] for r in rs], float)
        avg = lambda f: float(np.average([f(r) for r in rs], weights=w))  # noqa: E731
        return {"songs": len(rs), "own_likeliest": sum(r["own_is_likeliest"] for r in rs),
                "own": avg(lambda r: r["losses"][r["source"]]),
                "others": avg(lambda r: np.mean([r["losses"][n] for n in names if n != r["source"]])),
                "none": avg(lambda r: r["losses"][NONE])}
    by_source = {n: means([r for r in rows if r["source"] == n]) for n in names if any(r["source"] == n for r in rows)}
    summary = means(rows)
    print(f"held-out songs: own style likeliest for {summary['own_likeliest']} of {summary['songs']}", file=sys.stderr)
    human = {n: melodies([s for s in songs if s.meta["source"] == n])[1] for n in names}
    sets = {NONE: composed(model, args.songs, "", args.rhythm_prior)}
    for n in names:
        print(f"composing {args.songs} songs in {n}'s style", file=sys.stderr, flush=True)
        sets[n] = composed(model, args.songs, n, args.rhythm_prior)
    against = {NONE: None, **{n: n for n in names}}  # whose songs a set's two-sample test is against
    for folder in args.also:
        other = load_model(folder)
        label = f"the {other.meta['game']} model ({folder})"
        print(f"composing {args.songs} songs with {label}", file=sys.stderr, flush=True)
        sets[label], against[label] = composed(other, args.songs, ""), other.meta["game"]
    resemble = judging.which_source(human, sets)
    # and how well each set passes for human: the two-sample test against its source's songs (all for none)
    everyone = [s for n in names for s in human[n]]
    for k, v in resemble["sets"].items():
        v["auc"] = judging.two_sample(human.get(against[k]) or everyone, sets[k])["auc"]

    cols = [NONE, *names]
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    text = [f"# --style: held-out songs under each style, and whose songs each style's songs resemble\n",
            f"`python bench/style.py --model-dir {args.model_dir} --songs {args.songs} --rhythm-prior "
            f"{args.rhythm_prior:g}{' --also ' + ' '.join(args.also) if args.also else ''}` "
            f"(styles: {', '.join(names)}; {'style tokens' if meta.get('styles') else 'calibrated style priors'}).\n",
            "## Held-out songs under each style\n",
            "Mean nats per token of each held-out song (lower is likelier); the own style in bold.\n",
            "| song | source | tokens | " + " | ".join(cols) + " | own style likeliest |", "|---" * (len(cols) + 4) + "|"]
    for r in rows:
        text.append(f"| {r['file']} | {r['source']} | {r['tokens']} | " + " | ".join(
            f"**{f3(r['losses'][n])}**" if n == r["source"] else f3(r["losses"][n]) for n in cols)
            + f" | {'yes' if r['own_is_likeliest'] else 'no'} |")
    text += ["", "| held-out songs of | songs | own style likeliest | own style | other styles | no style |",
             "|---" * 6 + "|"]
    for label, m in [*by_source.items(), ("all", summary)]:
        text.append(f"| {label} | {m['songs']} | {m['own_likeliest']} | {f3(m['own'])} | {f3(m['others'])} | "
                    f"{f3(m['none'])} |")
    text += ["", "## Whose songs the songs resemble\n",
             f"A {judging.WINDOW_BARS}-bar window classifier trained on the sources' own songs "
             "(vgmusic.judge.which_source): the mean probability it gives each source over a set's windows, and "
             "the songs whose windows' mean puts each source first. The human rows judge each song with a "
             "classifier fitted without it: how well the sources can be told apart at all. Last, the "
             "two-sample test (vgmusic.judge.two_sample) of a composed set against its source's songs (no "
             "style: against all of them): 0.5 is a set no classifier tells from them.\n",
             "| songs | " + " | ".join(f"P({n})" for n in names) + " | " + " | ".join(f"first: {n}" for n in names)
             + " | AUC against its songs |", "|---" * (2 * len(names) + 2) + "|"]
    for label, r in [*((f"{n}'s own songs (left out in turn)", v) for n, v in resemble["human"].items()),
                     *((f"composed, {'no style' if k == NONE else '--style ' + k}" if k in names or k == NONE
                        else f"composed by {k}", v) for k, v in resemble["sets"].items())]:
        text.append(f"| {label} | " + " | ".join(f3(r["probability"][n]) for n in names) + " | "
                    + " | ".join(f"{r['votes'][n]} of {r['songs']}" for n in names)
                    + f" | {f3(r['auc']) if 'auc' in r else '-'} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{args.name}.md") as tmp:
        tmp.write_text("\n".join(text) + "\n")
    write_json(out / f"{args.name}.json", {"model_dir": args.model_dir, "styles": names, "rows": rows,
                                           "heldout": {"all": summary, **by_source}, "resemblance": resemble})
    print("\n".join(text))


if __name__ == "__main__":
    main()
