"""MIDI files -> Songs in data/: every track of every file, plus music21's key and the original token stream.

Each file is read once, by the project's MIDI reader (vgmusic.midi: every track, drums and velocities) and
by music21 for what only it gives (the key analysis, the original project's tokens), and cached by the
sha256 of its bytes in data/cache/<sha256>.json, written the moment the file is done: a re-run over
unchanged songs reads JSON only (music21 is not even imported), and an interrupted run resumes where it
stopped. A cache entry of another version is rebuilt; a damaged one is dropped with a warning.

Every file is parsed in a child process of its own, bounded in time (--timeout) and memory (--max-memory):
one broken file (a single maximal delta time kept music21 busy for hours, its memory climbing) is skipped
with its reason instead of hanging the run. Failures are cached too, with those bounds, so a re-run does not
wait on the same file again unless the bound it ran past is raised. A bad file, or a game folder without a
usable song, is skipped with a warning naming it, and the rest is written.
"""
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from .parse import EXTRACT_VERSION, unreadable, parse_bounded
from .song import Song
from .config import ExtractConfig
from .store import write_json

MIDI_SUFFIXES = (".mid", ".midi")
# Failures that recur with the same bounds, so a re-run skips them from the cache; a crash
# or a file changed while being read may not recur, and is tried again.
LASTING = ("invalid", "timeout", "memory")
# tqdm's monitor thread would make every parser's fork (bounded.py) a fork of a multi-threaded process
tqdm.monitor_interval = 0


class NoUsableSongs(ValueError):
    pass


def shown(path):
    """A path as text that prints anywhere, on one line: bytes that are not UTF-8 as \\xe9, a newline as \\n."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_problem(entry):
    """What is wrong with a cache entry of this version, in a few words, or None: an entry that is valid
    JSON can still be damaged (edited, or written by a buggy version), and must not crash a run."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    if "error" in entry:
        ok = isinstance(entry["error"], str) and entry.get("kind") in LASTING and all(
            isinstance(entry.get(k), (int, float)) and not isinstance(entry.get(k), bool)
            for k in ("timeout", "max_memory"))
        return None if ok else "a failure without its kind and bounds"
    classic = entry.get("classic")
    if not isinstance(classic, list) or not all(isinstance(t, str) for t in classic):
        return "'classic' is not a list of tokens"
    try:
        Song.from_json(entry.get("song"))
    except ValueError as e:
        return str(e)
    return None


def _read_cache(cache_file, warn):
    """The cached result of one file, None when there is none of this version; a damaged one is dropped
    with a warning (`warn(reason)`) and the file parsed again."""
    try:
        entry = json.loads(cache_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: lists nested a thousand deep
        warn(f"unreadable ({e.strerror if isinstance(e, OSError) else 'not JSON'})")
        return None
    if not isinstance(entry, dict):
        warn("not a JSON object")
        return None
    if entry.get("version") != EXTRACT_VERSION:
        return None  # another version's entry: rebuilt once, silently
    wrong = cache_problem(entry)
    if wrong:
        warn(wrong)
        return None
    return entry


def _retry(entry, timeout, max_memory):
    """Whether a cached failure is worth another try: it ran past a bound that is now higher."""
    return (entry.get("kind") == "timeout" and timeout > entry.get("timeout", 0)
            or entry.get("kind") == "memory" and max_memory > entry.get("max_memory", 0))


def _write(path, obj):
    """write_json, naming the file when it fails: a failed write() names none (ENOSPC, EIO)."""
    try:
        write_json(path, obj)
    except OSError as e:
        if e.filename:
            raise
        raise OSError(e.errno, e.strerror or str(e), shown(path)) from None


def _check_writable(*folders):
    """Fail before anything is parsed, naming the folder, where the results could not be written."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".writable.")
            os.close(fd)
            os.unlink(probe)
        except (FileExistsError, NotADirectoryError):
            file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
            raise ValueError(f"{shown(folder)}: " + ("a file, not a folder" if file == folder else
                                                     f"cannot be a folder: {shown(file)} is a file")) from None
        except OSError as e:
            raise OSError(e.errno, e.strerror, shown(folder)) from None


def _songs_in(folder, skip):
    """[(path, sha256)] of the MIDI files in one game folder, and how many entries are named like one;
    a name that is no readable file (a folder, a broken link, no permission) is skipped."""
    found, named = [], 0
    for path in sorted(Path(folder).iterdir()):
        # dot files are temporaries of interrupted writes (store.atomic_path), never songs
        if path.suffix.lower() not in MIDI_SUFFIXES or path.name.startswith("."):
            continue
        named += 1
        try:
            mode = path.stat().st_mode
            if stat.S_ISREG(mode):
                found.append((path, sha256_file(path)))
            else:  # a pipe or a device would block the reader
                skip(path, "a folder, not a MIDI file" if stat.S_ISDIR(mode) else "not a regular file")
        except OSError as e:  # vanished since listed, no permission, an I/O error
            broken = isinstance(e, FileNotFoundError) and path.is_symlink()
            skip(path, "a broken symbolic link" if broken else unreadable(e))
    return found, named


def extract(songs_dir, data_dir, games=(), workers=0, progress=True, timeout=ExtractConfig.timeout,
            max_memory=ExtractConfig.max_memory, status=None, folders=()):
    """Parse every game folder, write data/<game>.json and data/vocab.json; return (summary, vocabulary).
    `folders`, given, are the folders to read wherever they are (each one's name is its game's) instead of
    those under `songs_dir`. A bad file or game folder is skipped with a warning; `status`, a dict, counts
    those in "skipped", the songs cached in "done" of "total", and the files parsed now (not from the
    cache) in "parsed" and the seconds their parsing took in "parse_seconds"."""
    status = {} if status is None else status
    status.update(skipped=0, parsed=0, parse_seconds=0.0)

    def skip(path, reason, what="skipping"):
        status["skipped"] += 1
        tqdm.write(f"warning: {what} {shown(path)}: {reason}", file=sys.stderr)

    songs_dir, data_dir = Path(songs_dir), Path(data_dir)
    if folders:
        folders = list(dict.fromkeys(Path(f) for f in folders))
        names = [f.name for f in folders]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two folders named {shown(twice[0])}: their songs would go to one "
                             f"{shown(data_dir / (twice[0] + '.json'))}")
    else:
        if not songs_dir.is_dir():
            raise NoUsableSongs(f"{shown(songs_dir)}: songs folder not found (put one folder of .mid files per "
                                "game there)")
        folders = list(dict.fromkeys(songs_dir / g for g in games)) if games else sorted(
            p for p in songs_dir.iterdir() if p.is_dir())
        if not folders:
            raise NoUsableSongs(f"{shown(songs_dir)}: no game folders (expected {shown(songs_dir)}/<game>/*.mid)")
    by_name = {f.name: f for f in folders}
    cache_dir = status["cache"] = data_dir / "cache"
    _check_writable(data_dir, cache_dir)

    files, reasons = {}, {}
    for folder in folders:
        if not folder.is_dir():
            reasons[folder.name] = "game folder not found"
            continue
        try:
            files[folder.name] = _songs_in(folder, skip)
        except OSError as e:
            reasons[folder.name] = f"cannot be listed ({e.strerror})"

    entries, earlier, todo = {}, set(), {}
    for found, _ in files.values():
        for path, digest in found:
            if digest not in entries and digest not in todo:
                entry = _read_cache(cache_dir / f"{digest}.json", lambda reason, path=path: tqdm.write(
                    f"warning: damaged cache entry for {shown(path)} ({reason}); parsing it again", file=sys.stderr))
                if entry is None or _retry(entry, timeout, max_memory):
                    todo[digest] = path
                else:
                    entries[digest] = entry
                    earlier.add(digest)
    status.update(total=len(entries) + len(todo), done=len(entries))
    if todo:
        bar = tqdm(total=len(todo), desc="parsing MIDI", unit="song", file=sys.stderr,
                   disable=None if progress else True)

        def done(job, result):
            bar.update(1)
            entries[job[1]] = result
            if "error" in result:
                if result["kind"] not in LASTING:
                    return
                result.update(version=EXTRACT_VERSION, timeout=timeout, max_memory=max_memory)
            _write(cache_dir / f"{job[1]}.json", result)
            status["done"] += 1
            if "error" not in result:
                status.setdefault("parsed_songs", set()).add(job[1])
        started = time.perf_counter()
        try:
            parse_bounded([(p, d) for d, p in todo.items()], workers or os.cpu_count() or 1, timeout, max_memory,
                          done)
        finally:
            bar.close()
            status["parsed"] = len(todo)
            status["parse_seconds"] = time.perf_counter() - started

    vocab, summary = set(), {}
    for game, (found, named) in files.items():
        songs, first = [], {}
        for path, digest in found:
            entry = entries[digest]
            if "error" in entry:
                again = {"timeout": "--timeout", "memory": "--max-memory"}.get(entry["kind"])
                skip(path, entry["error"] + (f" (in an earlier run: a higher {again} tries it again)"
                                             if again and digest in earlier else ""))
            elif digest in first:  # once only: a copy could fall on both sides of the train/held-out split
                tqdm.write(f"note: skipping {shown(path)}: the same bytes as {shown(first[digest].name)}",
                           file=sys.stderr)
            elif not entry["classic"]:
                skip(path, "no pitched notes in any part")
            else:
                first[digest] = path
                songs.append({"file": shown(path.name), "sha256": digest, "song": entry["song"],
                              "classic": entry["classic"]})
                vocab.update(entry["classic"])
        if not songs:
            reasons[game] = f"no usable song among {named} file(s)" if named else "no .mid or .midi files"
            continue
        _write(data_dir / f"{game}.json", {"game": shown(game), "songs": songs})
        summary[game] = (len(songs), sum(len(s["classic"]) for s in songs))
    if not summary:
        where = (f"{shown(songs_dir)}: no usable song in any of its" if songs_dir in {f.parent for f in folders}
                 else "no usable song in any of the")
        raise NoUsableSongs(f"{shown(folders[0])}: {reasons[folders[0].name]}" if len(folders) == 1 else
                            f"{where} {len(folders)} game folders")
    for game, reason in reasons.items():
        skip(by_name[game], reason, "skipping game folder")

    # The vocabulary spans every game in data/, not just those extracted now, so extracting one
    # game never silently re-numbers the tokens another game's model uses.
    for other in sorted(data_dir.glob("*.json")):
        if other.name != "vocab.json" and other.stem not in summary:
            try:
                for song in json.loads(other.read_text()).get("songs", []):
                    vocab.update(song["classic"])
            except (OSError, ValueError, AttributeError, KeyError, TypeError, RecursionError):
                tqdm.write(f"warning: {shown(other)}: not a game's songs; its tokens are left out of the "
                           "vocabulary", file=sys.stderr)
    tokens = sorted(vocab)
    _write(data_dir / "vocab.json", {"classic": tokens})
    return summary, tokens


def main(argv=None):
    from .cli import build, on_terminal, parser_for, run_command
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--base" in argv:  # the base corpus: a command of its own, with its own flags
        from .base import main as base_main
        return base_main([a for a in argv if a != "--base"])
    status = {}

    def body():
        parser = parser_for(ExtractConfig, "Parse every MIDI file under midi_songs/<game>/, each within --timeout "
                            "and --max-memory, into data/<game>.json and one vocabulary, data/vocab.json. Exit "
                            "status: 0 all extracted; 1 something skipped (the rest written) or an error; 2 bad "
                            "usage; 130/143 interrupted (what was parsed stays cached: run again to resume).")
        parser.add_argument("--base", action="store_true",
                            help="instead, build the base corpus: every song we may use (the music21 and Debian "
                                 "corpora, the original songs, your folders) exported, extracted and written as "
                                 "token shards; `--base --help` lists its flags")
        cfg = build(ExtractConfig, parser.parse_args(argv))
        summary, tokens = extract(cfg.songs_dir, cfg.data_dir, cfg.games, cfg.workers, timeout=cfg.timeout,
                                  max_memory=cfg.max_memory, status=status, progress=on_terminal(sys.stderr))
        for game, (n, t) in summary.items():
            print(f"{shown(game)}: {n} songs, {t} tokens")
        print(f"vocabulary: {len(tokens)} tokens -> {shown(Path(cfg.data_dir) / 'vocab.json')}")
        if status["skipped"]:
            print(f"warning: {status['skipped']} skipped (see above); everything else is written", file=sys.stderr)
        return 1 if status["skipped"] else 0

    def kept():
        if "total" not in status:
            return "nothing was parsed or written yet (it was listing the songs)"
        return (f"{status['done']} of {status['total']} songs parsed and cached in {shown(status['cache'])}; "
                "run again to resume")
    sys.exit(run_command(body, kept))
