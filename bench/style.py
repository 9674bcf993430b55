"""Does --style choose a game's way? Each held-out song's loss under every style of a --style model.

    python bench/style.py [--model-dir three_games_combined/weights] [--data-dir data] [--out bench/results]

A model that learned each game's style gives each game's held-out songs a lower loss under their own
style token than under the others' (and than under the any-style token). Every held-out token is a
target once: windows of the model's length, each starting with the style token, as in training
(vgmusic/trainset.py). Runs on the NumPy path; writes style.md and style.json into --out.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from heldout import song_nats  # noqa: E402  (bench/heldout.py: the same held-out windows)
from vgmusic.checkpoint import read_sidecar, weights_path  # noqa: E402
from vgmusic.encode import ANY_STYLE, control, get_encoding, load_songs  # noqa: E402
from vgmusic.infer import NumpyNet  # noqa: E402
from vgmusic.store import atomic_path  # noqa: E402

ANY = "(any style)"


def style_losses(net, vocab, ids, styles, window):
    """Mean nats per token of one song under each style token."""
    return {name: float(song_nats(net, vocab, ids, window, token)[0].mean()) for name, token in styles.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=str(ROOT / "three_games_combined" / "weights"))
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    from vgmusic.encode import Vocab
    meta, vocab = read_sidecar(args.model_dir)
    if not meta.get("styles"):
        sys.exit(f"error: {args.model_dir}: a model trained without --style")
    vocab = vocab if isinstance(vocab, Vocab) else Vocab(vocab)
    enc = get_encoding(meta["encoding"])
    net = NumpyNet(meta["arch"], len(vocab), meta["hparams"], weights_path(args.model_dir, "best"))
    styles = dict(meta["styles"], **{ANY: control(ANY_STYLE)})
    held = {(s, f) for s, f, _ in meta["songs"]["val"]}
    rows = []
    for song in load_songs(args.data_dir, meta["game"]):
        if (song.meta["source"], song.meta["file"]) not in held:
            continue
        tokens = enc.song_tokens(song)
        if not tokens:
            continue
        losses = style_losses(net, vocab, vocab.ids(tokens), styles, meta["hparams"]["window"])
        best = min(meta["styles"], key=losses.get)
        rows.append({"source": song.meta["source"], "file": song.meta["file"], "tokens": len(tokens),
                     "losses": losses, "likeliest": best, "own_is_likeliest": best == song.meta["source"]})
    names = list(styles)
    text = [f"# Held-out songs under each style of {args.model_dir}\n",
            f"`python bench/style.py --model-dir {args.model_dir}`: mean nats per token of each held-out song with "
            "every training window's first token set to each style (lower is likelier).\n",
            "| song | source | " + " | ".join(names) + " | own style likeliest |", "|---" * (len(names) + 3) + "|"]
    for r in rows:
        text.append(f"| {r['file']} | {r['source']} | " + " | ".join(
            f"**{r['losses'][n]:.3f}**" if n == r["source"] else f"{r['losses'][n]:.3f}" for n in names)
            + f" | {'yes' if r['own_is_likeliest'] else 'no'} |")
    own = sum(r["own_is_likeliest"] for r in rows)
    # token-weighted mean loss under the own style, the others' and any
    w = np.array([r["tokens"] for r in rows], float)
    mean = lambda f: float(np.average([f(r) for r in rows], weights=w))  # noqa: E731
    summary = {"songs": len(rows), "own_likeliest": own,
               "own": mean(lambda r: r["losses"][r["source"]]),
               "others": mean(lambda r: np.mean([v for k, v in r["losses"].items() if k not in (r["source"], ANY)])),
               "any": mean(lambda r: r["losses"][ANY])}
    text += ["", f"Own style likeliest for {own} of {len(rows)} held-out songs; mean nats per token (weighted by "
             f"tokens): own style {summary['own']:.3f}, other styles {summary['others']:.3f}, any style "
             f"{summary['any']:.3f}.", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "style.md") as tmp:
        tmp.write_text("\n".join(text))
    with atomic_path(out / "style.json") as tmp:
        tmp.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    print("\n".join(text))


if __name__ == "__main__":
    main()
