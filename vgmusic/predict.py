"""The predict command: compose Songs, then write each one's MIDI, WAV, piano roll and record, and the
listening page, and say what was written. Like composing, it never imports TensorFlow."""
import dataclasses
import datetime
import functools
import json
import math
import sys
from pathlib import Path

from .compose import Request, compose, load_model  # first: it sets NumPy's threads before NumPy loads
import numpy as np  # noqa: E402,I100
from . import ROOT  # noqa: I100
from .cli import build, parser_for, run_command, writable_file
from .config import DEFAULT_ENSEMBLE, GAME_ENSEMBLES, PredictConfig, default_model_dir
from .encode import get_encoding, load_songs
from .midi import write_midi
from .outputs import release, song_paths
from .sampling import Sampling
from .store import write_json
from .given import read_tune
from .theory import instrument_choice, parse_bars


def request_of(cfg, prime=None):
    """The composing request a command line asks for (the melody's instrument is the arrangement's)."""
    return Request(num=cfg.num, events=cfg.length, bars=cfg.bars, seconds=cfg.seconds, form=cfg.form,
                   phrase_bars=cfg.phrase_bars, sampling=sampling_of(cfg),
                   loop=cfg.loop, loop_tries=cfg.loop_tries, loop_candidates=cfg.loop_candidates, prime=prime,
                   bpm=cfg.bpm, key=cfg.key, seed=cfg.seed, style=cfg.style, intro=cfg.intro)


def instruments_of(cfg):
    """--instrument's TRACK=NAME values as {track: name} (a NAME alone is the melody's)."""
    out = {}
    for text in cfg.instrument:
        instrument_choice(text)  # checked again here for a config built in code, not by the flags
        track, sep, name = text.partition("=")
        out[track.strip().lower() if sep else "melody"] = (name if sep else text).strip()
    return out


def arranged(songs, cfg, game):
    """Each song played by the ensemble, with the tracks asked for (vgmusic/arrange.py)."""
    from .arrange import arrange
    ensemble = cfg.ensemble or GAME_ENSEMBLES.get(game, DEFAULT_ENSEMBLE)
    # a song in which the model wrote no note stays as it is: the command reports it, unwritten
    return [arrange(s, ensemble, tracks=tuple(cfg.tracks) or None, instruments=instruments_of(cfg),
                    seed=arrangement_seed(s.meta["seed"], s.meta["index"])) if s.notes() else s for s in songs]


def arrangement_seed(seed, index):
    """The arrangement's own seed: the song's, so a seed repeats the whole run, and apart for each song of
    a batch (whose melodies share one stream)."""
    return (int(seed) * 1009 + int(index)) % 2 ** 63


def edit(cfg):
    """--edit: the earlier song with --track (or --edit-bars of it) composed anew, the rest kept note for note;
    --num N gives N versions, seeds --seed, --seed + 1, ..."""
    from .arrange import regenerate
    from .given import edited, read_song
    if not cfg.track:
        raise ValueError("--edit needs --track: the track to compose anew (harmony, bass or drums)")
    song = read_song(cfg.edit)
    if not any(t.role == cfg.track for t in song.tracks) and cfg.edit_bars:
        raise ValueError(f"{cfg.edit}: has no {cfg.track} track whose bars --edit-bars could change")
    bars = parse_bars(cfg.edit_bars) if cfg.edit_bars else None
    if bars and bars[1] > math.ceil(song.bars - 1e-9):
        raise ValueError(f"--edit-bars {cfg.edit_bars}: {cfg.edit} has {math.ceil(song.bars - 1e-9)} bars")
    seed = cfg.seed if cfg.seed >= 0 else int(np.random.SeedSequence().entropy % 2 ** 32)
    return [edited(regenerate(song, cfg.track, seed + i, bars), cfg.track, bars, seed + i, cfg.edit)
            for i in range(cfg.num)]


def sampling_of(cfg):
    return Sampling(cfg.temperature, cfg.top_k, cfg.top_p, rhythm_temperature=cfg.rhythm_temperature or None,
                    rhythm_top_p=cfg.rhythm_top_p or None, repeat_penalty=cfg.repeat_penalty or None,
                    rhythm_prior=cfg.rhythm_prior)


def read_prime(path, timeout=PredictConfig.prime_timeout):
    """The Song to continue, read as extraction reads a song (bounded in time and memory; music21's key)."""
    from .parse import parse_file
    from .song import Song
    try:
        entry = parse_file(path, timeout=timeout)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    song = Song.from_json(entry["song"])
    song.title = Path(path).name
    song.meta = {"file": song.title, "classic": entry["classic"]}  # the original's tokens, for classic models
    return song


@functools.lru_cache(maxsize=4)
def training_melodies(data_dir, game, encoding, trained):
    """The notes of the training songs a model names, read once however many songs a run checks;
    None when they are not on this machine (shipped models)."""
    try:
        songs = load_songs(data_dir, game)
    except (OSError, ValueError):
        return None
    enc = get_encoding(json.loads(encoding))
    return [enc.song_notes(s) for s in songs if s.meta["file"] in trained]


def copy_warning(song, meta, data_dir):
    """One line when the song copies the training songs more than held-out human songs do, if they are here."""
    baseline = meta.get("baselines", {}).get("copied_share")
    if baseline is None:
        return None
    refs = training_melodies(str(data_dir), meta["game"], json.dumps(meta["encoding"], sort_keys=True),
                             frozenset(f for _, f, _ in meta["songs"]["train"]))
    if refs is None:
        return None  # nothing to compare with
    from .metrics import originality
    got = originality(song.melody().notes, refs)
    if got["copied_share"] > baseline + 0.05:
        return (f"warning: {got['copied_share']:.0%} of this song's 8-note runs are in the training songs "
                f"(held-out human songs: {baseline:.0%}); longest verbatim run {got['longest_match']} notes")
    return None


def record_of(song, cfg, game, files, date):
    """A song's record (NAME.song.json): the Song itself, lossless, and how it was made."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items()
                if k not in ("game", "out", "data_dir", "audio", "roll", "page", "seed", "prime_timeout")}
    midi, wav, png = files
    meta = song.meta
    return {"midi": midi.name, "wav": wav and wav.name, "roll": png and png.name, "game": game, "date": date,
            "seed": meta["seed"], "index": meta["index"], "settings": settings,
            "bars": round(song.bars, 3), "seconds": round(song.duration, 3), "bpm": song.bpm,
            "events": meta["events"], "notes": len(song.notes()), "key": meta["key"] or "as composed",
            "instrument": ", ".join(t.name or t.role for t in song.tracks), "loop": meta["loop"],
            "song": song.to_json()}


def write_songs(cfg, game, songs, paths, written):
    """Each song's MIDI, then (as asked) its WAV, piano roll and record; then the listening page.
    Appends each song's files to `written` as soon as its MIDI is complete. Returns the page's path."""
    audio_error = None
    # one date per run, so the page keeps a run's songs together and in order
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    for song, path in zip(songs, paths):
        write_midi(song, path)
        written.append([path])
        wav = png = None
        if cfg.audio and not audio_error:
            try:
                # the game files (vgmusic/export.py), and the WAV from the same synthesis; a loop of several
                # tracks gets its stems beside the mix even without --export: a game layers them
                if cfg.export or (cfg.stems and song.loop is not None and len(song.pitched()) + any(
                        t.drum and t.notes for t in song.tracks) > 1):
                    from .export import export_options, export_song
                    song.meta["render"] = export_song(song, path, **export_options(cfg))
                else:
                    from .render import render_wav
                    song.meta["render"] = render_wav(song, path.with_suffix(".wav"), loop=song.loop is not None)
                wav = path.with_suffix(".wav")
            except ValueError as e:  # no synthesizer here: the MIDI is still the song
                audio_error = str(e)
                print(f"warning: no audio: {e}", file=sys.stderr)
        if cfg.roll:
            from .roll import piano_roll
            png = piano_roll(song, path.with_suffix(".png"), f"{game}: {path.stem}")
        stems = [path.with_name(name) for name in (song.meta.get("render") or {}).get("stems", [])]
        written[-1] += [p for p in (wav, *stems, png) if p]
        write_json(path.with_suffix(".song.json"), record_of(song, cfg, game, (path, wav, png), date))
    if cfg.page:
        from .page import write_page
        return write_page(paths[0].parent, f"{game}: composed songs")
    return None


def report(song, files):
    """What a user reads for each song written."""
    notes, path = song.notes(), files[0]
    kinds = ["stems" if ".stem-" in p.name else p.suffix[1:] for p in files[1:]]
    extra = ", ".join(dict.fromkeys(kinds))  # each kind once, in order: "wav, stems, png"
    key = song.meta["key"]
    lines = [f"wrote {path}{f' (+ {extra})' if extra else ''}: {song.bars:g} bars, "
             f"{song.duration:.1f} s at {song.bpm:g} bpm, {song.meta['events']} events, {len(notes)} notes, "
             f"{len({n.pitch for n in notes})} distinct pitches" + (f", in {key}" if key else "")]
    loop = song.meta["loop"]
    if loop:
        first = song.loop[0] / song.beats_per_bar + 1 if song.loop else 1  # after an --intro, the body's first
        lines.append(f"  loop seam: bar {first:g} after the last bar costs {loop['seam_loss']:.3f} nats/token, a bar "
                     f"inside the song {loop['typical_loss']:.3f} (median): "
                     + ("seamless" if loop["passed"] else "NOT seamless") + f" (song {loop['tries']} tried)")
    if song.meta.get("export"):  # the game files: vgmusic/export.py
        lines.append(f"  {song.meta['export']['summary']}")
    return "\n".join(lines)


def predict(cfg, game, written):
    """The command's work: compose and write, reporting as it goes; returns the MIDI paths written. A song
    without a note is not written, and ends the command with an error after the others are."""
    if sum(map(bool, (cfg.edit, cfg.melody, cfg.prime))) > 1:
        raise ValueError("give one of --edit, --melody and --prime")
    model = prime = None
    if not (cfg.edit or cfg.melody):
        folder = Path(cfg.model_dir) if cfg.model_dir else default_model_dir(game)
        model = load_model(folder, cfg.which)
    if cfg.prime:
        if not Path(cfg.prime).is_file():
            raise ValueError(f"{cfg.prime}: --prime file not found")
        prime = read_prime(cfg.prime, cfg.prime_timeout)
    tune = read_tune(cfg.melody, cfg.loop) if cfg.melody else None
    # reserved before composing: a concurrent run takes other names, a name that cannot be written fails now
    paths = song_paths(cfg.out, ROOT / game / "generations", cfg.num)
    try:
        if cfg.edit:
            songs = edit(cfg)
        elif tune:
            seed = cfg.seed if cfg.seed >= 0 else int(np.random.SeedSequence().entropy % 2 ** 32)
            songs = arranged([dataclasses.replace(tune, meta=dict(tune.meta, seed=seed + i, index=i + 1))
                              for i in range(cfg.num)], cfg, game)
        else:
            songs = arranged(compose(model, request_of(cfg, prime), progress=True), cfg, game)
        empty = [p for s, p in zip(songs, paths) if not s.notes()]
        keep = [(s, p) for s, p in zip(songs, paths) if s.notes()]
        page = write_songs(cfg, game, [s for s, _ in keep], [p for _, p in keep], written) if keep else None
    finally:
        release(paths)  # reservations no song replaced
    failed = []
    for (song, _), files in zip(keep, written):
        print(report(song, files))
        if song.meta["loop"] and not song.meta["loop"]["passed"]:
            failed.append(files[0].name)
        warning = copy_warning(song, model.meta, cfg.data_dir) if model else None
        if warning:
            print(warning, file=sys.stderr)
    if page:
        print(f"listening page: {page}")
    if cfg.seed < 0:
        # an --edit run's own seed, not the one the earlier song was composed with
        seed = (songs[0].meta.get("edit") or {}).get("seed", songs[0].meta["seed"])
        print(f"seed {seed} (--seed {seed} repeats this run)")
    if failed:
        print(f"warning: no seamless loop in {cfg.loop_tries} songs for {', '.join(failed)}: each keeps "
              "its best seam (more --loop-tries or --loop-candidates may find one)", file=sys.stderr)
    if empty:
        hint = (" (at --temperature 0 a model can repeat a rest forever: try 0.5 or more)"
                if cfg.temperature == 0 else "")
        raise ValueError(f"the model wrote no notes in {len(empty)} of {len(songs)} song(s), not written: "
                         f"{', '.join(p.name for p in empty)}{hint}")
    return [files[0] for files in written]


def main(game=None, argv=None):
    written = []

    def run():
        skip = ("game",) if game else ()
        own = {"ensemble": GAME_ENSEMBLES[game]} if game in GAME_ENSEMBLES else {}
        parser = parser_for(PredictConfig, f"Compose new songs with {game or 'a game'}'s trained model and arrange "
                                           "them: MIDI, WAV, piano roll and a listening page.", skip=skip,
                            defaults=own)
        args = parser.parse_args(argv)
        name = game or args.game
        if not name:
            parser.error("--game is required")
        cfg = build(PredictConfig, args, game=name, ensemble=GAME_ENSEMBLES.get(name, DEFAULT_ENSEMBLE))
        if cfg.bars and cfg.seconds:
            parser.error("give --bars or --seconds, not both")
        if cfg.export.strip() and not cfg.audio or cfg.split and not (cfg.intro and cfg.export.strip()):
            parser.error("--export needs the audio (not --no-audio); --split needs --export and --intro")
        if cfg.out:
            writable_file(cfg.out, "song")
        return predict(cfg, name, written)

    def kept():
        return (f"{len(written)} song(s) written before it, in {written[-1][0].parent}" if written
                else "no song was written")
    return run_command(run, kept)
