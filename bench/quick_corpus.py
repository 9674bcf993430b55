"""The token shards the shipped base model (base/weights) was pretrained on, rebuilt.

    python get_all_notes.py --base                 # exports every corpus into midi_songs/<corpus>/ (and more)
    python get_all_notes.py                        # the original songs into data/ (music21's keys)
    python bench/quick_corpus.py [--songs-dir midi_songs] [--data-dir data] [--out data/base]

`get_all_notes.py --base` reads every exported piece with music21 too, for its key: 6.2 files/s here, 32
minutes for the 11,915 pieces. This reads the same exported files with the project's MIDI reader alone
and takes each melody's key from its Krumhansl-Schmuckler profile (vgmusic.theory.estimate_key), which
took 45 s, and builds the shards from the corpora whose licences allow shipping a model (not Essen's
folk songs, which are for non-commercial use only), after the original songs, in the order below (of
two near-copies the first is kept). Pieces with fewer than 8 melody notes are left out.
"""
import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vgmusic.corpora import LICENCES, ORIGINALS_LICENCE  # noqa: E402
from vgmusic.midi import read_midi  # noqa: E402
from vgmusic.shards import build_shards  # noqa: E402
from vgmusic.song import Key  # noqa: E402
from vgmusic.store import atomic_path  # noqa: E402
from vgmusic.theory import estimate_key  # noqa: E402

GAMES = ["pokemon_red_blue_yellow", "zelda_ocarina_of_time", "final_fantasy_7"]
CORPORA = ["openttd", "planetblupi", "freedoom", "airds", "bach_chorales", "beethoven", "fiddle", "haydn", "mozart",
           "oneills"]
MIN_NOTES = 8


def one(path):
    try:
        song = read_midi(path)
        melody = song.melody()
        if not melody or len(melody.notes) < MIN_NOTES:
            return None
        song.key = Key(*estimate_key(melody.notes))
        return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "song": song.to_json(),
                "classic": []}
    except (OSError, ValueError) as e:
        print(f"warning: skipping {path}: {e}", file=sys.stderr)
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs-dir", default=str(ROOT / "midi_songs"), help="where the corpora were exported")
    ap.add_argument("--data-dir", default=str(ROOT / "data"), help="the original songs, extracted")
    ap.add_argument("--work", default=str(ROOT / "runs" / "quick_corpus"), help="the corpora's songs, read")
    ap.add_argument("--out", default=str(ROOT / "data" / "base"), help="the token shards")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for game in GAMES:  # the originals as get_all_notes.py read them
        (work / f"{game}.json").write_bytes((Path(args.data_dir) / f"{game}.json").read_bytes())
    with ProcessPoolExecutor(2) as pool:
        for corpus in CORPORA:
            files = sorted((Path(args.songs_dir) / corpus).glob("*.mid"))
            rows = [r for r in pool.map(one, files, chunksize=16) if r]
            with atomic_path(work / f"{corpus}.json") as tmp:
                tmp.write_text(json.dumps({"songs": rows}))
            print(f"{corpus}: {len(rows)} of {len(files)} files", flush=True)
    licences = {s: LICENCES.get(s, ORIGINALS_LICENCE) for s in GAMES + CORPORA}
    index = build_shards(args.out, GAMES + CORPORA, work, licences=licences)
    for name, s in index["sources"].items():
        print(f"{name}: {s['songs']} songs, {s['events']} events, {s['tokens']} tokens; {s['licence']}")


if __name__ == "__main__":
    main()
