"""Songs to train on: the original 46 downloaded (or imported from a local copy) and checked by
sha256, or offline corpora (corpora.py: music21's, Debian's game-music packages) exported as MIDI folders.

Every file goes to a temporary name beside its destination and is renamed only once complete
(and, for songs, verified), so no interruption or failure leaves a partial file behind.
"""
import argparse
import errno
import hashlib
import http.client
import json
import re
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from .cli import build, on_terminal, parser_for, run_command
from .config import FetchConfig
from .extract import sha256_file
from .store import atomic_path

SONGS_DIR = Path(FetchConfig.songs_dir)
MANIFEST = Path(FetchConfig.manifest)
MAX_WAIT = 60.0  # seconds: the longest wait between two attempts, however many there are
# Worth another attempt: the server is busy or failing now. Others (404, 403) will not change.
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
CHUNK = 1 << 16
USER_AGENT = "vgmusic-get-midi-songs"


class Failed(Exception):
    """One file cannot be had; `final` when another attempt would get the same answer."""
    def __init__(self, reason, final=False):
        super().__init__(reason)
        self.final = final


def _row_problem(row, base_url):
    if not isinstance(row, dict):
        return "not an object"
    for key, kind in (("game", str), ("file", str), ("sha256", str), ("bytes", int), ("url", str)):
        if not isinstance(row.get(key), kind):
            return f"'{key}' missing or not a {kind.__name__}"
    for key in ("game", "file"):  # names of our own folders and files: nothing may climb out of them
        if not re.fullmatch(r"[^./\\][^/\\]*", row[key]):
            return f"'{key}' must be a plain file name, got {row[key]!r:.100}"
    if not re.fullmatch(r"[0-9a-f]{64}", row["sha256"]):
        return "'sha256' is not 64 lower-case hex digits"
    if row["bytes"] <= 0 or not row["url"].startswith(base_url):
        return f"'bytes' must be positive and the url start with the manifest's base_url {base_url!r:.100}"
    return None


def load_manifest(path):
    """{'base_url', 'songs': [{game, file, sha256, bytes, url}]}, checked row by row."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: lists nested a thousand deep
        raise ValueError(f"{path}: cannot read the manifest ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("base_url"), str) or not isinstance(doc.get("songs"), list):
        raise ValueError(f"{path}: expected an object with 'base_url' and a list 'songs'")
    seen = set()
    for i, row in enumerate(doc["songs"], 1):
        problem = _row_problem(row, doc["base_url"])
        if problem or (row["game"], row["file"]) in seen:
            raise ValueError(f"{path}: song {i}: {problem or 'listed twice'}")
        seen.add((row["game"], row["file"]))
    return doc


def select(manifest, games=()):
    known = sorted({r["game"] for r in manifest["songs"]})
    for game in set(games) - set(known):
        raise ValueError(f"no song of {game} in the manifest (it has {', '.join(known)})")
    return [r for r in manifest["songs"] if not games or r["game"] in games]


def mirror_url(url, base_url, mirror=""):
    """The url with the manifest's base replaced by a mirror's (a folder laid out the same way)."""
    return mirror.rstrip("/") + "/" + url[len(base_url):] if mirror else url


def problem_with(size, sha256, row):
    """Why a file of this size and hash is not the manifest's, or None."""
    if size != row["bytes"]:
        return f"{size} bytes, the manifest says {row['bytes']}"
    return None if sha256 == row["sha256"] else f"sha256 {sha256[:12]}... is not the manifest's {row['sha256'][:12]}..."


def is_verified(path, row):
    try:
        return path.stat().st_size == row["bytes"] and sha256_file(path) == row["sha256"]
    except OSError:
        return False


def remove_stale_temps(dest):
    """Temporary files a killed (-9) run of atomic_path left for this destination."""
    pattern = re.compile(re.escape(f".{dest.stem}.") + r"[a-z0-9_]{8}" + re.escape("".join(dest.suffixes)))
    for p in dest.parent.iterdir() if dest.parent.is_dir() else ():
        if pattern.fullmatch(p.name):
            p.unlink(missing_ok=True)


def _fetch_once(url, dest, row, timeout):
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as resp, atomic_path(dest) as tmp:
        digest, size = hashlib.sha256(), 0
        with open(tmp, "wb") as out:
            while chunk := resp.read1(CHUNK):  # what has arrived, so a stall is seen
                size += len(chunk)
                if size > row["bytes"]:
                    raise Failed(f"more than the manifest's {row['bytes']} bytes", final=True)
                if time.monotonic() > deadline:
                    raise TimeoutError("timed out")
                digest.update(chunk)
                out.write(chunk)
        problem = problem_with(size, digest.hexdigest(), row)
        if problem:  # cut short: try again; complete but different: asking again gets the same bytes
            raise Failed(problem, final=size == row["bytes"])


# errors of writing the song, which the next attempt would meet again
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def downloader(base_url, mirror="", retries=FetchConfig.retries, timeout=FetchConfig.timeout,
               backoff=FetchConfig.backoff):
    """get(row, dest): download one song with retries and exponential backoff (each wait at most MAX_WAIT),
    or raise Failed."""
    if not (1 <= retries and 0 < timeout <= 3600 and 0 <= backoff <= MAX_WAIT):  # what the flags allow
        raise ValueError(f"--retries must be at least 1, --timeout above 0 and at most 3600 s, --backoff from 0 "
                         f"to {MAX_WAIT:g} s")

    def get(row, dest):
        url = mirror_url(row["url"], base_url, mirror)
        for attempt in range(1, retries + 1):
            try:
                _fetch_once(url, dest, row, timeout)
                return "downloaded"
            except urllib.error.HTTPError as e:
                e.close()
                reason = f"HTTP {e.code} {e.reason}"
                if e.code not in RETRY_STATUS:
                    raise Failed(f"{reason} for {url}") from None
            except Failed as e:
                if e.final:
                    raise
                reason = str(e)
            except (OSError, http.client.HTTPException, ValueError) as e:
                if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:  # the destination's fault: no retry helps
                    raise OSError(e.errno, e.strerror, str(dest)) from None
                reason = (f"timed out after {timeout:g} s" if isinstance(e, TimeoutError) or "timed out" in str(e)
                          else f"cannot connect ({e.reason})" if isinstance(e, urllib.error.URLError)
                          else str(e) or type(e).__name__)
            if attempt < retries:
                time.sleep(min(backoff * 2 ** (attempt - 1), MAX_WAIT))
        raise Failed(f"{reason} ({retries} attempt{'s' * (retries > 1)})")
    return get


def importer(source):
    """get(row, dest): copy one song from a local folder or zip archive, checked, or raise Failed."""
    source = Path(source)
    if source.is_dir():
        entries = [(p.relative_to(source).as_posix(), p.stat().st_size, p.read_bytes)
                   for p in sorted(source.rglob("*")) if p.is_file()]
    elif zipfile.is_zipfile(source):
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{source}: {e}") from None
        entries = [(i.filename, i.file_size, lambda i=i: archive.read(i)) for i in archive.infolist() if not i.is_dir()]
    else:
        raise ValueError(f"{source}: --from needs a folder or a .zip archive")
    by_name = {}
    for entry in entries:
        by_name.setdefault(entry[0].rsplit("/", 1)[-1], []).append(entry)

    def get(row, dest):
        # the game's own folder first; sizes are compared before anything is read or unpacked
        found = sorted(by_name.get(row["file"], []), key=lambda e: not e[0].endswith(f"{row['game']}/{row['file']}"))
        for _, size, read in found:
            try:
                data = read() if size == row["bytes"] else None
            except (OSError, zipfile.BadZipFile) as e:
                raise Failed(f"cannot read it from {source} ({e})") from None
            if data is not None and hashlib.sha256(data).hexdigest() == row["sha256"]:
                # a write that fails (a full or read-only destination) ends the run naming the destination
                with atomic_path(dest) as tmp:
                    tmp.write_bytes(data)
                return "imported"
        raise Failed(f"no copy under {source} has the manifest's size and sha256" if found
                     else f"not found under {source}")
    return get


class Report:
    """What happened to each file, printed as it happens and counted for the summary."""
    def __init__(self):
        self.counts = {}

    def add(self, status, name, reason=""):
        self.counts[status] = self.counts.get(status, 0) + 1
        tqdm.write(f"{status:<10} {name}" + (f": {reason}" if reason else ""), file=sys.stdout)

    def summary(self):
        return ", ".join(f"{n} {s}" for s, n in self.counts.items()) or "nothing done"


def get_songs(rows, songs_dir, get, report, progress=True):
    """Every row into songs_dir/<game>/<file>, skipping those already there and correct."""
    bars = progress and on_terminal(sys.stderr)  # a redirected run writes the per-file lines only
    for row in tqdm(rows, desc="songs", unit="file", disable=not bars, file=sys.stderr):
        name = f"{row['game']}/{row['file']}"
        dest = Path(songs_dir) / name
        remove_stale_temps(dest)
        if is_verified(dest, row):
            report.add("present", name)
            continue
        try:
            report.add(get(row, dest), name)
        except Failed as e:
            report.add("failed", name, str(e))
    return report.counts.get("failed", 0)


def parser():
    from .corpora import CORPORA
    corpora = "\n".join(f"  {n:<14} {what}" for n, what in CORPORA.items())
    what = textwrap.fill(
        "Get the songs to train on: download the songs in the manifest (checked by size and sha256), import them "
        "from a local copy (--from), or export offline corpora (--corpus). Files already present and correct are "
        "skipped; nothing is ever left half-written. Exit status: 0 all done; 1 a file or corpus failed, or an "
        "error; 2 bad usage; 130/143 interrupted.", 100)
    return parser_for(FetchConfig, what, choices={"corpus": CORPORA},
        epilog=f"corpora (--corpus):\n{corpora}\n\nthen: python get_all_notes.py && python -m vgmusic train "
               "--game <name>", formatter_class=argparse.RawDescriptionHelpFormatter)


def run(argv=None):
    """The command; returns its exit status (0 all done, 1 something failed), or exits with one line (1: an
    error, 2: bad usage, 130/143: interrupted)."""
    report = Report()

    def body():
        p = parser()
        cfg = build(FetchConfig, p.parse_args(argv))
        if cfg.corpus and (cfg.source or cfg.games or cfg.base_url):
            p.error("--corpus exports corpora; it does not combine with --from, --games or --base-url")
        if cfg.corpus:
            from .corpora import export_corpora
            failed = export_corpora(cfg.corpus, cfg.songs_dir, cfg.limit, report, cfg.progress)
            what = "corpus" if failed == 1 else "corpora"
            print(f"{report.summary()} -> {cfg.songs_dir}" + (f"; {failed} {what} failed" if failed else ""))
            return 1 if failed else 0
        manifest = load_manifest(cfg.manifest)
        rows = select(manifest, cfg.games)
        get = (importer(cfg.source) if cfg.source else
               downloader(manifest["base_url"], cfg.base_url, cfg.retries, cfg.timeout, cfg.backoff))
        failed = get_songs(rows, cfg.songs_dir, get, report, cfg.progress)
        print(f"{len(rows)} files: {report.summary()} -> {cfg.songs_dir}")
        if failed:
            print(f"error: {failed} of {len(rows)} files failed (see above); without a network, "
                  "--from DIR|ZIP imports a copy and --corpus exports offline music", file=sys.stderr)
            return 1
        return 0

    def kept():
        return (f"after {report.summary()}" if report.counts else "before any file was done") + \
            "; no partial file left"

    return run_command(body, kept)


def main(argv=None):
    sys.exit(run(argv))
