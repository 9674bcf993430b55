"""Songs to train on: the original 46 downloaded (or imported from a local copy) and checked by
sha256, or offline corpora (music21's, Debian's game-music packages) exported as MIDI folders.

Every file goes to a temporary name beside its destination and is renamed only once complete
(and, for songs, verified), so no interruption or failure leaves a partial file behind.
"""
import argparse
import hashlib
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

from tqdm import tqdm

from . import ROOT
from .extract import sha256_file
from .store import atomic_path

SONGS_DIR = ROOT / "midi_songs"
MANIFEST = SONGS_DIR / "manifest.json"
RETRIES = 4      # attempts per file: raw-file hosts drop the odd request under load
TIMEOUT = 30.0   # seconds one attempt may take, from connecting to the last byte
BACKOFF = 1.0    # seconds before the second attempt, doubled before each later one
LIMIT = 50       # pieces per corpus: as many songs as the three games together, minutes to export
# Worth another attempt: the server is busy or failing now. Others (404, 403) will not change.
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
CHUNK = 1 << 16
USER_AGENT = "vgmusic-get-midi-songs"

# Offline corpora and what each holds (corpus_pieces lists them). music21's corpus ships with
# every install; the Debian ones need their package (see DEBIAN).
CORPORA = {
    "bach_chorales": "Bach's four-part chorales in Riemenschneider's order (371)",
    "mozart": "Mozart: string quartets K.80, 155, 156, 458, K.545's exposition; one file a movement (16)",
    "beethoven": "Beethoven: string quartets op. 18 no. 1, op. 59, one file a movement, and op. 133 (17)",
    "haydn": "Haydn: string quartets op. 1 no. 1 and op. 74 no. 1, one file a movement (9)",
    "folk": "Essen folksongs: European one-line tunes, one file a tune, each book in turn (7,238)",
    "fiddle": "Ryan's Mammoth Collection (1883): reels, jigs, hornpipes, one-line fiddle tunes (1,059)",
    "openttd": "OpenTTD's OpenMSX music: 31 GPL-2 game MIDI files (Debian package openttd-openmsx)",
    "planetblupi": "Planet Blupi's music: 10 GPL-3 game MIDI files (Debian package planetblupi-music-midi)",
}
DEBIAN = {"openttd": ("openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx"),
          "planetblupi": ("planetblupi-music-midi", "/usr/share/planetblupi/music")}
# Files left out: Essen's test books and Chinese songs (another scale and style) from `folk`;
# Beethoven's whole quartets in one file, which music21 takes minutes each to write as MIDI.
SKIP = {"essenFolksong": re.compile(r"(test|han)"), "beethoven": re.compile(r"(opus132|opus18no[345]|opus74)\.")}


class Failed(Exception):
    """One file cannot be had; `final` when another attempt would get the same answer."""
    def __init__(self, reason, final=False):
        super().__init__(reason)
        self.final = final


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs."""
    code = 143

    @classmethod
    def handler(cls, signum, frame):
        raise cls()


def _row_problem(row, base_url):
    if not isinstance(row, dict):
        return "not an object"
    for key, kind in (("game", str), ("file", str), ("sha256", str), ("bytes", int), ("url", str)):
        if not isinstance(row.get(key), kind):
            return f"'{key}' missing or not a {kind.__name__}"
    for key in ("game", "file"):  # names of our own folders and files: nothing may climb out of them
        if not re.fullmatch(r"[^./\\][^/\\]*", row[key]):
            return f"'{key}' must be a plain file name, got {row[key]!r}"
    if not re.fullmatch(r"[0-9a-f]{64}", row["sha256"]):
        return "'sha256' is not 64 lower-case hex digits"
    if row["bytes"] <= 0 or not row["url"].startswith(base_url):
        return f"'bytes' must be positive and the url start with the manifest's base_url {base_url!r}"
    return None


def load_manifest(path):
    """{'base_url', 'songs': [{game, file, sha256, bytes, url}]}, checked row by row."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
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


def downloader(base_url, mirror="", retries=RETRIES, timeout=TIMEOUT, backoff=BACKOFF):
    """get(row, dest): download one song with retries and exponential backoff, or raise Failed."""
    if retries < 1 or timeout <= 0 or backoff < 0:
        raise ValueError("--retries must be at least 1, --timeout positive, --backoff not negative")

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
                reason = (f"timed out after {timeout:g} s" if isinstance(e, TimeoutError) or "timed out" in str(e)
                          else f"cannot connect ({e.reason})" if isinstance(e, urllib.error.URLError)
                          else str(e) or type(e).__name__)
            if attempt < retries:
                time.sleep(backoff * 2 ** (attempt - 1))
        raise Failed(f"{reason} ({retries} attempt{'s' * (retries > 1)})")
    return get


def importer(source):
    """get(row, dest): copy one song from a local folder or zip archive, checked, or raise Failed."""
    source = Path(source)
    if source.is_dir():
        entries = [(p.relative_to(source).as_posix(), p.stat().st_size, p.read_bytes)
                   for p in sorted(source.rglob("*")) if p.is_file()]
    elif zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        entries = [(i.filename, i.file_size, lambda i=i: archive.read(i)) for i in archive.infolist() if not i.is_dir()]
    else:
        raise ValueError(f"{source}: --from needs a folder or a .zip archive")
    by_name = {}
    for entry in entries:
        by_name.setdefault(entry[0].rsplit("/", 1)[-1], []).append(entry)

    def get(row, dest):
        # the game's own folder first; sizes are compared before anything is read or unpacked
        found = sorted(by_name.get(row["file"], []), key=lambda e: not e[0].endswith(f"{row['game']}/{row['file']}"))
        try:
            for _, size, read in found:
                if size == row["bytes"] and hashlib.sha256(data := read()).hexdigest() == row["sha256"]:
                    with atomic_path(dest) as tmp:
                        tmp.write_bytes(data)
                    return "imported"
        except (OSError, zipfile.BadZipFile) as e:
            raise Failed(f"cannot read it from {source} ({e})") from None
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
    for row in tqdm(rows, desc="songs", unit="file", disable=None if progress else True, file=sys.stderr):
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


def _write_score(score, tmp):
    from music21 import bar, repeat, spanner
    if not score.flatten().notes:
        raise ValueError("no notes")
    try:
        score.write("midi", fp=str(tmp))
    except repeat.ExpanderException:
        # Badly formed repeat marks, common in these editions: play every bar once instead.
        for m in score.recurse().getElementsByClass("Measure"):
            m.leftBarline = None if isinstance(m.leftBarline, bar.Repeat) else m.leftBarline
            m.rightBarline = None if isinstance(m.rightBarline, bar.Repeat) else m.rightBarline
        for mark in list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
            mark.activeSite.remove(mark)
        score.write("midi", fp=str(tmp))


def m21_piece(source, number=None):
    """A writer for one music21 corpus piece (`number`: one tune of a many-tune ABC file)."""
    def write(tmp):
        from music21 import corpus
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = corpus.parse(source, number=number) if number else corpus.parse(source)
            _write_score(score, tmp)
    return write


def _composer_pieces(composer):
    from music21 import corpus
    chosen = {}
    for p in map(Path, corpus.getComposer(composer)):
        if p.suffix in (".mxl", ".xml", ".krn") and not (composer in SKIP and SKIP[composer].match(p.name)):
            key = p.with_suffix("")
            if key not in chosen or p.suffix == ".mxl":  # one format per piece, MusicXML first
                chosen[key] = p
    # named by their path under the composer's folder: mozart/k155/movement1 -> k155_movement1
    return [("_".join(key.parts[len(key.parts) - key.parts[::-1].index(composer):]), m21_piece(p))
            for key, p in sorted(chosen.items())]


def _abc_pieces(collection):
    """Each tune of each ABC file, one file's first tune after another's, so a limit spans books."""
    from music21 import corpus
    books = []
    for p in sorted(map(Path, corpus.getComposer(collection))):
        if p.suffix == ".abc" and not (collection in SKIP and SKIP[collection].match(p.name)):
            numbers = [int(n) for n in re.findall(r"^X:\s*(\d+)", p.read_text("latin-1"), re.M)]
            books.append([(p.stem if len(numbers) == 1 else f"{p.stem}_{n:04d}",
                           m21_piece(p, n if len(numbers) > 1 else None)) for n in numbers])
    return [book[i] for i in range(max(map(len, books), default=0)) for book in books if i < len(book)]


def debian_pieces(package, folder):
    """The package's MIDI files as (name, writer); Failed naming the apt-get line when it is absent."""
    try:
        listing = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listing = [str(p) for p in Path(folder).glob("*")]  # no dpkg: the files where Debian puts them
    files = sorted(Path(f) for f in listing if f.lower().endswith((".mid", ".midi")) and Path(f).is_file())
    if not files:
        raise Failed(f"package {package} is not installed: run sudo apt-get install {package}")
    return [(f.stem, lambda tmp, f=f: tmp.write_bytes(f.read_bytes())) for f in files]


def corpus_pieces(name):
    if name in DEBIAN:
        return debian_pieces(*DEBIAN[name])
    if name == "bach_chorales":
        from music21 import corpus
        names = corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename")
        return [(n.split("/")[-1], m21_piece(n)) for n in names]
    if name == "folk":
        return _abc_pieces("essenFolksong")
    if name == "fiddle":
        return _abc_pieces("ryansMammoth")
    return _composer_pieces(name)


def export_pieces(folder, pieces, limit, report, progress=True):
    """Write up to `limit` pieces as folder/<name>.mid; a piece that fails is skipped with a warning."""
    folder = Path(folder)
    done = 0
    bar = tqdm(total=min(limit, len(pieces)) if limit else len(pieces), desc=folder.name, unit="piece",
               disable=None if progress else True, file=sys.stderr)
    for name, write in pieces:
        if limit and done >= limit:
            break
        dest = folder / f"{name}.mid"
        remove_stale_temps(dest)
        if dest.is_file():
            report.add("present", f"{folder.name}/{dest.name}")
        else:
            try:
                with atomic_path(dest) as tmp:
                    write(tmp)
            except Exception as e:  # music21 raises many kinds on pieces it cannot read or write
                text = " ".join(str(e).split())[:160] or type(e).__name__
                tqdm.write(f"warning: skipping {folder.name} piece {name}: {text}", file=sys.stderr)
                report.counts["skipped"] = report.counts.get("skipped", 0) + 1
                continue
            report.add("exported", f"{folder.name}/{dest.name}")
        done += 1
        bar.update(1)
    bar.close()
    return done


def parser():
    corpora = "\n".join(f"  {n:<14} {what}" for n, what in CORPORA.items())
    p = argparse.ArgumentParser(
        description="Get the songs to train on: download the songs in the manifest (checked by size and sha256), "
                    "import them from a local copy (--from), or export offline corpora (--corpus). "
                    "Files already present and correct are skipped; nothing is ever left half-written.",
        epilog=f"corpora (--corpus):\n{corpora}\n\nthen: python get_all_notes.py && python -m vgmusic train "
               "--game <name>", formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--songs-dir", default=str(SONGS_DIR), metavar="DIR", help="where game folders go (default: %(default)s)")
    add("--manifest", default=str(MANIFEST), metavar="FILE", help="songs to get (default: %(default)s)")
    add("--games", nargs="*", default=(), metavar="GAME", help="only these games of the manifest (default: all)")
    add("--retries", type=int, default=RETRIES, metavar="N", help="download attempts per file (default: %(default)s)")
    add("--timeout", type=float, default=TIMEOUT, metavar="S",
        help="seconds one download attempt may take (default: %(default)s)")
    add("--backoff", type=float, default=BACKOFF, metavar="S",
        help="seconds before the 2nd attempt, doubled before each later one (default: %(default)s)")
    add("--base-url", default="", metavar="URL",
        help="download from a mirror laid out the same way: URL replaces the manifest's base_url in every url")
    add("--from", dest="source", default="", metavar="DIR|ZIP",
        help="import from a local folder or .zip instead of downloading (files found by name, under <game>/ "
             "or anywhere), checked by the same sha256")
    add("--corpus", nargs="+", default=(), choices=list(CORPORA), metavar="NAME",
        help=f"instead, export these offline corpora into <songs-dir>/<name>/: {', '.join(CORPORA)}")
    add("--limit", type=int, default=LIMIT, metavar="N", help="pieces per corpus, 0 for all (default: %(default)s)")
    add("--no-progress", action="store_true", help="no progress bars (per-file lines still print)")
    return p


def _corpora(args, report):
    """Export each corpus; returns how many could not be exported at all."""
    bad = 0
    for name in args.corpus:
        try:
            pieces = corpus_pieces(name)
            if not export_pieces(Path(args.songs_dir) / name, pieces, args.limit, report, not args.no_progress):
                raise Failed("no piece could be exported")
        except Failed as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            bad += 1
    return bad


def run(argv=None):
    """The command; returns its exit status (0 all done, 1 something failed, 130/143 interrupted)."""
    p = parser()
    args = p.parse_args(argv)
    if args.limit < 0:
        p.error("--limit must be 0 (all) or more")
    if args.corpus and (args.source or args.games or args.base_url):
        p.error("--corpus exports corpora; it does not combine with --from, --games or --base-url")
    report = Report()
    try:
        if args.corpus:
            failed = _corpora(args, report)
            what = "corpus" if failed == 1 else "corpora"
            print(f"{report.summary()} -> {args.songs_dir}" + (f"; {failed} {what} failed" if failed else ""))
            return 1 if failed else 0
        manifest = load_manifest(args.manifest)
        rows = select(manifest, args.games)
        get = (importer(args.source) if args.source else
               downloader(manifest["base_url"], args.base_url, args.retries, args.timeout, args.backoff))
        failed = get_songs(rows, args.songs_dir, get, report, not args.no_progress)
    except KeyboardInterrupt as e:
        done = f"after {report.summary()}" if report.counts else "before any file was done"
        print(f"\ninterrupted {done}; no partial file left", file=sys.stderr)
        return getattr(e, "code", 130)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(rows)} files: {report.summary()} -> {args.songs_dir}")
    if failed:
        print(f"error: {failed} of {len(rows)} files failed (see above); without a network, "
              "--from DIR|ZIP imports a copy and --corpus exports offline music", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    signal.signal(signal.SIGTERM, Interrupted.handler)
    sys.exit(run(argv))
