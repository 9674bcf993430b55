"""The base corpus: every song we may use and ship a model of, as token shards a base model pretrains on.

    python get_all_notes.py --base [--corpora NAME ...] [--originals-dir DIR] [--folders DIR ...]

1. Export: each corpus (corpora.py: music21's tune collections, chorales and quartets; Debian's game music,
   Freedoom's WAD music lumps) into <songs-dir>/<corpus>/, in parallel, each piece bounded; pieces already
   there are kept.
2. Extract: those folders, the original songs' game folders and your own folders into <data-dir>/<source>.json
   (extract.py: in parallel, each file bounded, cached by its sha256).
3. Shards: every song encoded with the event encoding into <out>/ (shards.py), each source's licence recorded.

It prints, per source, the songs stored, their events and tokens and the licence, then the time and the
throughput of each stage. A bad piece or file is skipped with a one-line warning naming it (exit status 1,
everything else written).
"""
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import ROOT
from .config import ExtractConfig, _opt, between, one_of
from .corpora import CORPORA, DEBIAN, EXPORT_TIMEOUT, LICENCES, ORIGINALS_LICENCE, USER_LICENCE
from .shards import SHARD_TOKENS


@dataclass
class BaseConfig:
    corpora: list = _opt(tuple(CORPORA), "corpora to export and include (none: give the flag no names)",
                         nargs="*", choices=list(CORPORA))
    originals: bool = _opt(True, "include the original songs: <originals-dir>/<game>/ for each game of "
                                 "midi_songs/manifest.json (python get_midi_songs.py fetches them)")
    originals_dir: str = _opt("", "folder holding the original songs' game folders (default: the songs dir)",
                              metavar="DIR")
    folders: list = _opt((), "your own folders of MIDI files to include, each a source named after the folder",
                         nargs="+", metavar="DIR")
    songs_dir: str = _opt(str(ROOT / "midi_songs"), "where the corpora are exported, <songs-dir>/<corpus>/")
    data_dir: str = _opt(str(ROOT / "data"), "where the extracted songs (<source>.json) and their cache go")
    out: str = _opt(str(ROOT / "data" / "base"), "folder of the token shards and their index.json", metavar="DIR")
    limit: int = _opt(0, "pieces per corpus, 0 for all", between(0, 10 ** 6), metavar="N")
    workers: int = _opt(0, "parallel exporters and parsers (0: one per CPU core)", between(0, 256))
    export_timeout: float = _opt(EXPORT_TIMEOUT, "seconds music21 may take to write one corpus piece as MIDI "
                                                 "before it is skipped", (lambda v: 0 < v <= 86400,
                                                                          "above 0, at most 86400"), metavar="S")
    timeout: float = _opt(ExtractConfig.timeout, "seconds one file may take to parse before it is skipped",
                          (lambda v: 0 < v <= 86400, "above 0, at most 86400"), metavar="S")
    max_memory: int = _opt(ExtractConfig.max_memory, "megabytes one exporter or parser may use before its piece "
                                                     "is skipped", between(64, 1 << 20), metavar="MB")
    tracks: str = _opt("melody", "the tracks encoded: 'melody' (the track carrying the tune) or 'all' pitched "
                                 "tracks, as training's --tracks", one_of("melody", "all"))
    diatonic: int = _opt(2, "also store every song moved by 1..N scale steps up and down (training's --diatonic)",
                         between(0, 6), metavar="N")
    shard_tokens: int = _opt(SHARD_TOKENS, "token ids one shard file holds at most (2 bytes each)",
                             between(1024, 1 << 31), metavar="N")
    distinct: bool = _opt(True, "leave out a song that nearly repeats one stored before it (80%% of its 12-token "
                                "runs), in any source: one tune in two collections would straddle a held-out split")
    progress: bool = _opt(True, "progress bars, on a terminal only")


class _Counts:
    """What export_pieces reports, counted, not printed: the base corpus is thousands of pieces."""

    def __init__(self):
        self.counts = {}

    def add(self, status, name, reason=""):
        self.counts[status] = self.counts.get(status, 0) + 1


def original_games():
    from .fetch import MANIFEST, load_manifest
    return sorted({r["game"] for r in load_manifest(MANIFEST)["songs"]})


def export(cfg, status):
    """Export the corpora; the folders exported and per corpus (exported, present, skipped)."""
    from .corpora import corpus_pieces, export_pieces
    from .fetch import Failed
    folders, counts = [], {}
    for name in cfg.corpora:
        try:
            pieces = corpus_pieces(name)
        except Failed as e:
            print(f"warning: skipping corpus {name}: {e}", file=sys.stderr)
            status["skipped"] += 1
            continue
        report = _Counts()
        n = export_pieces(Path(cfg.songs_dir) / name, pieces, cfg.limit, report, cfg.progress, cfg.workers,
                          cfg.export_timeout, cfg.max_memory, preload=() if name in DEBIAN else ("music21",))
        c = report.counts
        counts[name] = (c.get("exported", 0), c.get("present", 0), c.get("skipped", 0))
        status["skipped"] += c.get("skipped", 0)
        status["exported"] = status.get("exported", 0) + c.get("exported", 0)
        if n:
            folders.append(Path(cfg.songs_dir) / name)
        else:
            print(f"warning: skipping corpus {name}: no piece could be exported", file=sys.stderr)
            status["skipped"] += 1
    return folders, counts


def build_base(cfg, status):
    """The three stages; returns (index, figures)."""
    from .encode import RESERVED, Event
    from .extract import extract, shown
    from .shards import build_shards
    status.update(skipped=0, stage="exporting the corpora")
    figures, folders, licences = {}, [], {}
    # the original songs first, then your folders, then the corpora: of two near-copies the first is kept
    if cfg.originals:
        where = Path(cfg.originals_dir or cfg.songs_dir)
        for game in original_games():
            folder = where / game
            if folder.is_dir():
                folders.append(folder)
                licences[game] = ORIGINALS_LICENCE
            else:
                print(f"warning: skipping the original songs of {game}: {shown(folder)} not found (python "
                      "get_midi_songs.py fetches them, or give --originals-dir)", file=sys.stderr)
                status["skipped"] += 1
    for f in map(Path, cfg.folders):
        if f.name in licences or f.name in cfg.corpora:
            raise ValueError(f"{shown(f)}: a source named {f.name} is already included; rename the folder")
        if not f.is_dir():
            raise ValueError(f"{shown(f)}: not a folder of MIDI files")
        folders.append(f)
        licences[f.name] = USER_LICENCE
    t0 = time.perf_counter()
    exported_folders, exported = export(cfg, status)
    figures["export"] = (time.perf_counter() - t0, exported)
    folders += exported_folders
    licences.update({f.name: LICENCES[f.name] for f in exported_folders})
    if not folders:
        raise ValueError("nothing to build the base corpus from (no corpus exported, no song folder)")

    status["stage"] = "extracting"
    extracted = {}
    t0 = time.perf_counter()
    summary, _ = extract(cfg.songs_dir, cfg.data_dir, workers=cfg.workers, progress=cfg.progress,
                         timeout=cfg.timeout, max_memory=cfg.max_memory, status=extracted, folders=folders)
    figures["extract"] = (time.perf_counter() - t0, extracted)
    status["skipped"] += extracted["skipped"]

    status["stage"] = "writing the token shards"
    t0 = time.perf_counter()
    sources = [f.name for f in folders if f.name in summary]
    encoding = Event(parts=cfg.tracks, key_normalize=True, reserved=RESERVED)
    index = build_shards(cfg.out, sources, cfg.data_dir, licences, encoding, cfg.diatonic, cfg.shard_tokens,
                         cfg.distinct, cfg.progress)
    figures["shards"] = time.perf_counter() - t0
    return index, figures


def _rate(n, seconds):
    return f"{n / seconds:,.1f}" if seconds > 0 else "-"


def report(cfg, index, figures, seconds):
    from .extract import shown
    print(f"{'source':<24} {'songs':>7} {'events':>10} {'tokens':>11} {'copies':>6}  licence")
    totals = [0, 0, 0, 0]
    for name, s in index["sources"].items():
        row = (s["songs"], s["events"], s["tokens"], s["near_copies"])
        totals = [a + b for a, b in zip(totals, row)]
        print(f"{name:<24} {row[0]:>7,} {row[1]:>10,} {row[2]:>11,} {row[3]:>6,}  {s['licence']}")
    print(f"{'total':<24} {totals[0]:>7,} {totals[1]:>10,} {totals[2]:>11,} {totals[3]:>6,}")
    spent, exported = figures["export"]
    now = sum(e for e, _, _ in exported.values())
    print(f"export: {sum(e + p for e, p, _ in exported.values()):,} pieces in {len(exported)} corpora "
          f"({now:,} written now, {_rate(now, spent)} pieces/s) in {spent:.1f} s")
    spent, ex = figures["extract"]
    parsed = ex.get("parsed_songs", set())
    events = sum(s["events"] for s in index["songs"] if s["sha256"] in parsed)
    print(f"extract: {ex.get('parsed', 0):,} files parsed now in {ex.get('parse_seconds', 0):.1f} s "
          f"({_rate(ex.get('parsed', 0), ex.get('parse_seconds', 0))} files/s, "
          f"{_rate(events, ex.get('parse_seconds', 0))} events/s), {ex.get('done', 0):,} of {ex.get('total', 0):,} "
          f"cached; {spent:.1f} s in all")
    tokens = sum(f["tokens"] for f in index["shards"])
    print(f"shards: {tokens:,} token ids in {len(index['shards'])} files ({tokens * 2 / 2 ** 20:.1f} MB, "
          f"{_rate(totals[1], figures['shards'])} events/s) in {figures['shards']:.1f} s -> "
          f"{shown(Path(cfg.out) / 'index.json')}")
    print(f"base corpus: {totals[0]:,} songs, {totals[1]:,} events from {len(index['sources'])} sources "
          f"in {seconds:.1f} s on {cfg.workers or os.cpu_count()} workers")


def main(argv=None):
    from .cli import build, on_terminal, parser_for, run_command
    argv = [a for a in sys.argv[1:] if a != "--base"] if argv is None else argv
    status = {}

    def body():
        parser = parser_for(BaseConfig, "Build the base corpus (python get_all_notes.py --base): export every "
                            "corpus into the songs dir, extract them with the original songs and your folders "
                            "into the data dir, and write every song's event tokens as token shards with their "
                            "licences. Exit status: 0 all built; 1 something skipped (the rest written) or an "
                            "error; 2 bad usage; 130/143 interrupted (what was exported and parsed is kept: run "
                            "again to resume).")
        cfg = build(BaseConfig, parser.parse_args(argv))
        cfg.progress = cfg.progress and on_terminal(sys.stderr)
        t0 = time.perf_counter()
        index, figures = build_base(cfg, status)
        report(cfg, index, figures, time.perf_counter() - t0)
        if status["skipped"]:
            print(f"warning: {status['skipped']} skipped (see above); everything else is written", file=sys.stderr)
        return 1 if status["skipped"] else 0

    def kept():
        stage = status.get("stage")
        if stage is None:
            return "nothing was done yet"
        return (f"while {stage}: the pieces exported and the files parsed are kept (run again to resume); "
                "the token shards' index is unchanged")
    sys.exit(run_command(body, kept))
