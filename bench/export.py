"""What the game files cost, and how loud the songs are before and after normalising.

    python bench/export.py [--reps 3] [--seeds 2] [--out bench/results]

(a) CPU seconds (this process's, time.process_time: both cores' worth if any library used two) of a
    16-bar four-track loop, composed by final_fantasy_7 (86 bpm, 44.7 s) and three_games_combined
    (120 bpm, 32 s) and arranged (vgmusic.arrange: melody, harmony, bass, drums; a hand-made four-track
    copy of the melody where the arranger is absent): the render alone (render_wav, what predict.py does
    without --export) against export_song with --export wav, ogg, ogg,wav, and ogg,wav with --stems off;
    the fastest of --reps runs each. Then the parts of an ogg,wav export, timed apart.
(b) loudness of each shipped model's 16-bar loops (--seeds per model), melody alone and arranged:
    integrated loudness and true peak as rendered to NAME.wav (peak at -1 dBFS), the gain export applies
    for -18 LUFS under a -1 dBTP ceiling, and the loudness after, measured on the mix as written.
Writes export.md and export.json into --out.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as composing sets it (vgmusic/compose.py)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vgmusic.compose import Request, compose, load_model  # noqa: E402
from vgmusic.config import GAME_ENSEMBLES, SHIPPED, default_model_dir  # noqa: E402
from vgmusic.export import choose_gain, export_song, write_loop_wav, write_ogg  # noqa: E402
from vgmusic.loudness import block_powers, db, gated_loudness, true_peak  # noqa: E402
from vgmusic.render import PEAK, render_audio, render_wav  # noqa: E402
from vgmusic.song import Note, Track  # noqa: E402
from vgmusic.store import atomic_path, write_json  # noqa: E402

TARGET, CEILING = -18.0, -1.0  # PredictConfig's defaults


def four_tracks(song, game, seed):
    """The song arranged for four tracks (vgmusic.arrange), or, where it is absent, a hand-made
    four-track copy: the melody, a harmony a sixth under it, a bass two octaves under, a kick and snare."""
    try:
        from vgmusic.arrange import arrange
    except ImportError:
        arrange = None
    if arrange:
        return arrange(song, GAME_ENSEMBLES.get(game, "16bit"), tracks=("melody", "harmony", "bass", "drums"),
                       seed=seed), "vgmusic.arrange"
    tune = song.tracks[0].notes
    song.tracks += [Track([n._replace(pitch=n.pitch - 9) for n in tune], name="Strings", program=48, role="harmony"),
                    Track([n._replace(pitch=n.pitch - 24) for n in tune[::2]], name="Bass", program=33, role="bass"),
                    Track([Note(b, 0.25, 36 if b % 2 == 0 else 38, 100) for b in range(int(song.end))],
                          name="Drums", drum=True, role="drums")]
    return song, "hand-made"


def cpu(fn, reps):
    best = float("inf")
    for _ in range(reps):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def costs(reps, tmp):
    rows = []
    for game in ("final_fantasy_7", "three_games_combined"):
        melody = compose(load_model(default_model_dir(game)), Request(bars=16, loop=True, loop_tries=1, seed=1))[0]
        song, how = four_tracks(melody, game, 1)
        path = tmp / f"{game}.mid"
        export_song(song, path, formats=("ogg",))  # imports (SciPy, soundfile, mutagen) paid before timing
        alone = cpu(lambda: render_wav(song, tmp / "alone.wav", loop=True), reps)
        row = {"game": game, "tracks": len(song.tracks), "made by": how, "seconds": round(song.duration, 2),
               "render alone": alone}
        for label, kw in (("wav", dict(formats=("wav",))), ("ogg", dict(formats=("ogg",))),
                          ("ogg,wav", dict(formats=("ogg", "wav"))),
                          ("ogg,wav --no-stems", dict(formats=("ogg", "wav"), stems=False))):
            row[label] = cpu(lambda: export_song(song, path, **kw), reps)
        # the parts of an ogg,wav export, apart
        parts = [render_audio(song, True, tracks=[i])[0] for i in range(len(song.tracks))]
        mix = sum(parts[1:], parts[0].copy())
        files = len(parts) + 1
        row["parts"] = {
            "synthesis, track by track": cpu(lambda: [render_audio(song, True, tracks=[i]) for i in range(files - 1)],
                                             reps),
            "synthesis, whole song": cpu(lambda: render_audio(song, True), reps),
            f"{files} Oggs": cpu(lambda: [write_ogg(tmp / "t.ogg", a, 0.5, 44100, (0, len(a))) for a in [mix, *parts]],
                                 reps),
            f"{files} WAVs": cpu(lambda: [write_loop_wav(tmp / "t.wav", a, 0.5, 44100, (0, len(a)))
                                          for a in [mix, *parts]], reps),
            f"loudness of {files}": cpu(lambda: [block_powers(a, 44100) for a in [mix, *parts]], reps),
            "true peak of the mix": cpu(lambda: true_peak(mix), reps)}
        rows.append(row)
    return rows


def loudness(seeds):
    rows = []
    for game in SHIPPED:
        model = load_model(default_model_dir(game))
        for seed in range(1, seeds + 1):
            melody = compose(model, Request(bars=16, loop=True, loop_tries=1, seed=seed))[0]
            for label, song in (("melody", melody), ("arranged", four_tracks(melody, game, seed)[0])):
                audio = render_audio(song, True)[0]
                audio *= PEAK / float(max(audio.max(), -audio.min()))  # as NAME.wav is written
                powers, peak = block_powers(audio, 44100), true_peak(audio)
                gain, before = choose_gain(powers, peak, [], TARGET, CEILING)
                rows.append({"game": game, "seed": seed, "song": label, "before_lufs": round(before, 2),
                             "true_peak_dbtp": round(db(peak), 2), "gain_db": round(db(gain), 2),
                             "after_lufs": round(gated_loudness(powers, gain), 2),
                             "held by the ceiling": gated_loudness(powers, gain) < TARGET - 0.05})
    return rows


def render(results):
    out = ["# The game files: cost and loudness\n", f"`python bench/export.py` on {results['machine']}: CPU "
           f"seconds (time.process_time), the fastest of {results['reps']} runs.\n",
           "## CPU of the exports of a 16-bar four-track loop\n",
           "| game | tracks | made by | audio s | render alone (no --export) | --export wav | ogg | ogg,wav | "
           "ogg,wav --no-stems |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results["costs"]:
        out.append(f"| {r['game']} | {r['tracks']} | {r['made by']} | {r['seconds']:.1f} | {r['render alone']:.2f} | "
                   + " | ".join(f"{r[k]:.2f} (+{r[k] - r['render alone']:.2f})"
                                for k in ("wav", "ogg", "ogg,wav", "ogg,wav --no-stems")) + " |")
    out += ["", "An export's figure is the whole export_song call, the listening WAV included, which it writes from "
            "the same synthesis; (+x) is what it adds to the render alone.", "", "Its parts, apart:", ""]
    for r in results["costs"]:
        out.append(f"- {r['game']}: " + "; ".join(f"{k} {v:.2f} s" for k, v in r["parts"].items()))
    out += ["", f"## Loudness of the shipped models' 16-bar loops (target {TARGET:g} LUFS, ceiling {CEILING:g} dBTP)\n",
            "| game | seed | song | as NAME.wav (LUFS) | its true peak (dBTP) | gain (dB) | after (LUFS) | held by "
            "the ceiling |", "|---|---|---|---|---|---|---|---|"]
    for r in results["loudness"]:
        out.append(f"| {r['game']} | {r['seed']} | {r['song']} | {r['before_lufs']:.1f} | {r['true_peak_dbtp']:.1f} | "
                   f"{r['gain_db']:+.1f} | {r['after_lufs']:.1f} | {'yes' if r['held by the ceiling'] else 'no'} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per figure, the fastest kept")
    ap.add_argument("--seeds", type=int, default=2, help="loops per model for the loudness table")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where export.md/json go")
    args = ap.parse_args()
    results = {"machine": f"{os.cpu_count()} CPU cores", "reps": args.reps}
    with tempfile.TemporaryDirectory() as tmp:
        results["costs"] = costs(args.reps, Path(tmp))
    results["loudness"] = loudness(args.seeds)
    write_json(Path(args.out) / "export.json", results)
    with atomic_path(Path(args.out) / "export.md") as tmp:
        tmp.write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
