"""Offline corpora exported as MIDI folders to train on beside the games' songs: music21's corpus (on every
install) and Debian's game-music packages. `get_midi_songs.py --corpus NAME` runs export_corpora.

Like the songs, every piece is written to a temporary name beside its destination and renamed only once
complete, so no interruption or failure leaves a partial file behind.
"""
import re
import subprocess
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from .cli import on_terminal
from .fetch import Failed, remove_stale_temps
from .store import atomic_path

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
               disable=not (progress and on_terminal(sys.stderr)), file=sys.stderr)
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


def export_corpora(names, songs_dir, limit, report, progress=True):
    """Export each corpus into songs_dir/<name>/; returns how many could not be exported at all."""
    bad = 0
    for name in names:
        try:
            pieces = corpus_pieces(name)
            if not export_pieces(Path(songs_dir) / name, pieces, limit, report, progress):
                raise Failed("no piece could be exported")
        except Failed as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            bad += 1
    return bad
