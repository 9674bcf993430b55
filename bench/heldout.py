"""Held-out loss per token and per event of model folders, all measured the same way on the same songs.

    python bench/heldout.py --data-dir data --models LABEL=DIR ... [--out bench/results/heldout]

A sidecar's best_val_loss is what Keras measured on the tokens of its own time (the shipped models were
trained on songs music21 read; the songs are now read by mido, see the README), so models are compared
here on today's tokens of the held-out songs their sidecars name: every held-out token predicted once,
from the window of tokens before it (start-of-song pads first, as in training; a --style model's
window starting with the song's style token), on the NumPy path. Per event = the summed nats over the
held-out events, which compares models whatever their tokens per event. Writes OUT.md and OUT.json.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vgmusic.checkpoint import read_sidecar, weights_path  # noqa: E402
from vgmusic.config import default_model_dir  # noqa: E402
from vgmusic.encode import PAD, get_encoding, load_songs, token_kind  # noqa: E402
from vgmusic.infer import NumpyNet  # noqa: E402
from vgmusic.sampling import log_probs  # noqa: E402
from vgmusic.store import atomic_path  # noqa: E402


def song_windows(ids, window, pad_id):
    """Windows of `window` inputs (pads before the song, as training) and their targets, with a mask
    that counts each target once."""
    seq = np.concatenate([np.full(window, pad_id, np.int64), ids])
    starts = list(range(0, len(seq) - window, window))
    if starts[-1] != len(seq) - window - 1:
        starts.append(len(seq) - window - 1)
    x = np.stack([seq[s:s + window] for s in starts])
    y = np.stack([seq[s + 1:s + window + 1] for s in starts])
    keep = np.ones_like(y, bool)
    if len(starts) > 1:  # the last window overlaps the one before it: only its new targets count
        keep[-1, :window - (starts[-1] - starts[-2])] = False
    keep &= y != pad_id
    return x, y, keep


def song_nats(net, vocab, ids, window, first=None):
    """Each held-out target's nats [n] and its token id, the window's first input set to `first`."""
    x, y, keep = song_windows(np.asarray(ids), window, vocab.index[PAD])
    if first is not None:
        x[:, 0] = vocab.index[first]
    lp = log_probs(net.forward(x).reshape(-1, len(vocab)))
    nll = -lp[np.arange(len(lp)), y.reshape(-1)].reshape(y.shape)
    return nll[keep], y[keep]


def measure(folder, data_dir, game=None):
    """The figures of one model folder; `game`: on that game's held-out songs (its shipped model's), as
    for the base model, which holds every game's out."""
    meta, vocab = read_sidecar(folder)
    enc = get_encoding(meta["encoding"])
    net = NumpyNet(meta["arch"], len(vocab), meta["hparams"], weights_path(folder, "best"))
    judged = read_sidecar(default_model_dir(game))[0] if game else meta
    held = {(s, f) for s, f, _ in judged["songs"]["val"]}
    styles = meta.get("styles") or {}
    nats, kinds, events, songs = [], [], 0, 0
    for song in load_songs(data_dir, game or meta["game"]):
        if (song.meta["source"], song.meta["file"]) not in held:
            continue
        tokens = enc.song_tokens(song)
        if not tokens:
            continue
        n, y = song_nats(net, vocab, vocab.ids(tokens), meta["hparams"]["window"], styles.get(song.meta["source"]))
        nats.append(n)
        kinds += [token_kind(vocab.tokens[t]) for t in y]
        events += enc.events(tokens)
        songs += 1
    nats = np.concatenate(nats)
    kinds = np.array(kinds)
    return {"songs": songs, "tokens": int(len(nats)), "events": events, "per_token": float(nats.mean()),
            "per_event": float(nats.sum() / events),
            "by_kind": {k: float(nats[kinds == k].mean()) for k in sorted(set(kinds))},
            "sidecar_best_val_loss": meta.get("best_val_loss"), "init_from": (meta.get("init_from") or {}).get("game")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    ap.add_argument("--models", nargs="+", required=True, metavar="LABEL=DIR[@GAME]",
                    help="model folders; @GAME: on that game's held-out songs (for the base model)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "heldout"))
    args = ap.parse_args()
    rows = {}
    for spec in args.models:
        label, folder = spec.split("=", 1)
        folder, _, game = folder.partition("@")
        rows[label] = measure(folder, args.data_dir, game or None)
        print(label, json.dumps(rows[label]), flush=True)
    text = ["# Held-out loss, measured alike\n", f"`python bench/heldout.py --data-dir {args.data_dir} --models "
            f"{' '.join(args.models)}`: nats per held-out token and per held-out event, on today's tokens of the "
            "songs each sidecar holds out (NumPy path, every target once).\n",
            "| model | songs | tokens | events | per token | per event | pitch | duration | wait |", "|---" * 9 + "|"]
    for label, r in rows.items():
        k = r["by_kind"]
        text.append(f"| {label} | {r['songs']} | {r['tokens']} | {r['events']} | {r['per_token']:.3f} | "
                    f"{r['per_event']:.3f} | {k.get('pitch', float('nan')):.3f} | {k.get('duration', float('nan')):.3f} "
                    f"| {k.get('wait', float('nan')):.3f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(text) + "\n")
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(rows, indent=1))
    print("\n".join(text))


if __name__ == "__main__":
    main()
