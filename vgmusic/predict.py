"""The predict command: compose songs, then write each one's MIDI, WAV, piano roll and record, and the
listening page, and say what was written. Like composing, it never imports TensorFlow."""
import dataclasses
import datetime
import functools
import json
import sys
from pathlib import Path

from .sample import BEATS_PER_BAR, compose  # first: it sets NumPy's threads before NumPy loads
from . import ROOT  # noqa: I100
from .config import PredictConfig, build, gm_program, parser_for, run_command, writable_file
from .encode import get_encoding, load_songs
from .render import write_midi
from .store import write_json


def output_paths(out, game, num):
    """--out, or <timestamp>.mid under the game's generations/; with several songs, <name>-1.mid, ..."""
    if out:
        out = Path(out)
        return [out] if num == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix or '.mid'}")
                                       for i in range(1, num + 1)]
    folder = ROOT / game / "generations"
    stamp, n = datetime.datetime.now().strftime("%Y%m%d-%H%M%S"), 1
    while True:  # a counter when several runs start within one second
        name = stamp if n == 1 else f"{stamp}-{n}"
        paths = [folder / f"{name}.mid"] if num == 1 else [folder / f"{name}-{i}.mid" for i in range(1, num + 1)]
        if not any(p.exists() for p in paths):
            return paths
        n += 1


@functools.lru_cache(maxsize=4)
def training_melodies(data_dir, game, encoding, trained):
    """The notes of the training songs a model names, read once however many songs a run checks;
    None when they are not on this machine (shipped models)."""
    try:
        songs = load_songs(data_dir, game)
    except (OSError, ValueError):
        return None
    enc = get_encoding(json.loads(encoding))
    return [enc.song_notes(s) for s in songs if s["file"] in trained]


def copy_warning(notes, meta, data_dir):
    """One line when the song copies the training songs more than held-out human songs do, if they are here."""
    baseline = meta.get("baselines", {}).get("copied_share")
    if baseline is None:
        return None
    refs = training_melodies(str(data_dir), meta["game"], json.dumps(meta["encoding"], sort_keys=True),
                             frozenset(f for _, f, _ in meta["songs"]["train"]))
    if refs is None:
        return None  # nothing to compare with
    from .evaluate import originality
    got = originality(notes, refs)
    if got["copied_share"] > baseline + 0.05:
        return (f"warning: {got['copied_share']:.0%} of this song's 8-note runs are in the training songs "
                f"(held-out human songs: {baseline:.0%}); longest verbatim run {got['longest_match']} notes")
    return None


def write_songs(cfg, game, songs, written):
    """Each song's MIDI, then (as asked) its WAV, piano roll and record; then the listening page.
    Appends each MIDI path to `written` as soon as it is complete."""
    paths = output_paths(cfg.out, game, len(songs))
    program = gm_program(cfg.instrument)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items()
                if k not in ("game", "out", "data_dir", "audio", "roll", "page", "seed")}
    audio_error = None
    # one date per run, so the page keeps a run's songs together and in order
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    for song, path in zip(songs, paths):
        write_midi(song["notes"], path, tempo=song["bpm"], program=program, end=song["beats"])
        written.append(path)
        wav = png = None
        if cfg.audio and not audio_error:
            try:
                from .render import render_wav
                song["render"] = render_wav(path, path.with_suffix(".wav"), loop=cfg.loop)
                wav = path.with_suffix(".wav")
            except ValueError as e:  # no synthesizer here: the MIDI is still the song
                audio_error = str(e)
                print(f"warning: no audio: {e}", file=sys.stderr)
        if cfg.roll and song["notes"]:
            from .render import piano_roll
            png = piano_roll(song["notes"], path.with_suffix(".png"), f"{game}: {path.stem}", song["bpm"],
                             parts=song["parts"], end=song["beats"], seam=cfg.loop)
        song["files"] = [p for p in (path, wav, png) if p]
        record = {"midi": path.name, "wav": wav and wav.name, "roll": png and png.name, "game": game,
                  "date": date,
                  "seed": song["seed"], "index": song["index"], "settings": settings,
                  "bars": round(song["beats"] / BEATS_PER_BAR, 3),
                  "seconds": round(song["beats"] * 60 / song["bpm"], 3), "bpm": song["bpm"],
                  "events": song["events"], "notes": len(song["notes"]), "key": song["key"] or "as composed",
                  "instrument": cfg.instrument if not cfg.instrument.isdigit() else f"program {program}",
                  "loop": song["loop"]}
        write_json(path.with_suffix(".song.json"), record)
    if cfg.page:
        from .page import write_page
        songs[0]["page"] = write_page(paths[0].parent, f"{game}: composed songs")
    return paths


def report(song, path):
    """What a user reads for each song written."""
    notes, seconds = song["notes"], song["beats"] * 60 / song["bpm"]
    extra = ", ".join(p.suffix[1:] for p in song["files"][1:])
    lines = [f"wrote {path}{f' (+ {extra})' if extra else ''}: {song['beats'] / BEATS_PER_BAR:g} bars, "
             f"{seconds:.1f} s at {song['bpm']:g} bpm, {song['events']} events, {len(notes)} notes, "
             f"{len({n[2] for n in notes})} distinct pitches" + (f", in {song['key']}" if song["key"] else "")]
    loop = song["loop"]
    if loop:
        lines.append(f"  loop seam: bar 1 after the last bar costs {loop['seam_loss']:.3f} nats/token, a bar "
                     f"inside the song {loop['typical_loss']:.3f} (median): "
                     + ("seamless" if loop["passed"] else "NOT seamless") + f" (song {loop['tries']} tried)")
    return "\n".join(lines)


def main(game=None, argv=None):
    skip = ("game",) if game else ()
    parser = parser_for(PredictConfig, f"Compose new songs with {game or 'a game'}'s trained model: MIDI, "
                                       "WAV, piano roll and a listening page.", skip=skip)
    args = parser.parse_args(argv)
    game = game or args.game
    if not game:
        parser.error("--game is required")
    cfg = build(PredictConfig, args, game=game)
    if cfg.bars and cfg.seconds:
        parser.error("give --bars or --seconds, not both")
    written = []

    def run():
        if cfg.out:
            writable_file(cfg.out, "song")
        if cfg.prime and not Path(cfg.prime).is_file():
            raise ValueError(f"{cfg.prime}: --prime file not found")
        meta, songs = compose(cfg, game, progress=True)
        write_songs(cfg, game, songs, written)
        failed = []
        for song, path in zip(songs, written):
            print(report(song, path))
            if song["loop"] and not song["loop"]["passed"]:
                failed.append(path.name)
            warning = copy_warning(song["notes"], meta, cfg.data_dir)
            if warning:
                print(warning, file=sys.stderr)
        if "page" in songs[0]:
            print(f"listening page: {songs[0]['page']}")
        if cfg.seed < 0:
            print(f"seed {songs[0]['seed']} (--seed {songs[0]['seed']} repeats this run)")
        if failed:
            print(f"warning: no seamless loop in {cfg.loop_tries} songs for {', '.join(failed)}: each keeps "
                  "its best seam (more --loop-tries or --loop-candidates may find one)", file=sys.stderr)
        return written

    def kept():
        return (f"{len(written)} song(s) written before it, in {written[-1].parent}" if written
                else "no song was written")
    return run_command(run, kept)
