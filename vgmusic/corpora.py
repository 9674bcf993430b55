"""Offline corpora exported as MIDI folders to train on beside the games' songs: music21's corpus (on every
install) and Debian's game-music packages (MIDI files, and Freedoom's music lumps read out of its WADs).
`get_midi_songs.py --corpus NAME` runs export_corpora; `get_all_notes.py --base` exports every one of them.

Pieces are written in parallel, each in a child process of its own bounded in time and memory (a music21
edition that takes minutes is skipped with a warning instead of holding up thousands of others). Like the
songs, every piece is written to a temporary name beside its destination and renamed only once complete,
so no interruption or failure leaves a partial file behind. LICENCES says under what terms each corpus may
be used; the base corpus records it beside every song.
"""
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from .bounded import run_bounded
from .cli import on_terminal
from .fetch import Failed
from .store import atomic_path

tqdm.monitor_interval = 0  # no monitor thread: every exporter is a fork (bounded.py)

# Offline corpora and what each holds (corpus_pieces lists them). music21's corpus ships with
# every install; the Debian ones need their package (see DEBIAN).
CORPORA = {
    "bach_chorales": "Bach's four-part chorales in Riemenschneider's order (371 numbers, 350 distinct)",
    "mozart": "Mozart: string quartets K.80, 155, 156, 458, K.545's exposition; one file a movement (16)",
    "beethoven": "Beethoven: string quartets op. 18 no. 1, op. 59, one file a movement, and op. 133 (17)",
    "haydn": "Haydn: string quartets op. 1 no. 1 and op. 74 no. 1, one file a movement (9)",
    "folk": "Essen folksongs: European one-line tunes, one file a tune, each book in turn (7,238)",
    "fiddle": "Ryan's Mammoth Collection (1883): reels, jigs, hornpipes, one-line fiddle tunes (1,059)",
    "oneills": "O'Neill's Music of Ireland (1903): airs, jigs, reels, one-line tunes (2,009)",
    "airds": "Aird's Selection of Airs (1778-1803): Scotch, English and Irish airs for fife or violin (1,180)",
    "openttd": "OpenTTD's OpenMSX music: 31 GPL-2 game MIDI files (Debian package openttd-openmsx)",
    "planetblupi": "Planet Blupi's music: 10 GPL-3 game MIDI files (Debian package planetblupi-music-midi)",
    "freedoom": "Freedoom's music: 67 BSD-licensed game MIDI lumps of its two WADs (Debian package freedoom)",
}
# Under what terms each corpus may be used: the base corpus records it beside every song, and a model's
# corpus says which terms its training songs came under.
M21_NOTE = ("encoding distributed with music21 (music21/corpus/license.txt: licensed for use; commercial use may be "
            "restricted)")
LICENCES = {
    "bach_chorales": f"public domain music (Bach, d. 1750); {M21_NOTE}",
    "mozart": f"public domain music (Mozart, d. 1791); {M21_NOTE}",
    "beethoven": f"public domain music (Beethoven, d. 1827); {M21_NOTE}",
    "haydn": f"public domain music (Haydn, d. 1809); {M21_NOTE}",
    "folk": "non-commercial: the Essen folksong database, distributed with music21 by permission of Ewa Dahlig-Turek "
            "(EsAC) and Seymour Schlien (ABC) for non-commercial use (music21/corpus/essenFolksong/license.txt)",
    "fiddle": f"public domain music (Ryan's Mammoth Collection, 1883); ABC by Ray Davies; {M21_NOTE}",
    "oneills": f"public domain music (O'Neill's Music of Ireland, 1903); ABC by Norbert Paap; {M21_NOTE}",
    "airds": f"public domain music (Aird's Selection, 1778-1803); ABC by Jack Campin; {M21_NOTE}",
    "openttd": "GPL-2.0 (OpenMSX, Debian package openttd-openmsx: /usr/share/doc/openttd-openmsx/copyright)",
    "planetblupi": "GPL-3.0-or-later (Debian package planetblupi-music-midi: "
                   "/usr/share/doc/planetblupi-music-midi/copyright)",
    "freedoom": "BSD-3-Clause (the Freedoom project's licence, Debian package freedoom: "
                "/usr/share/doc/freedoom/copyright)",
}
# The original project's 46 songs and a user's own folders: no licence travels with the files.
ORIGINALS_LICENCE = ("no licence stated: fan MIDI arrangements of the games' soundtracks, as the original project "
                     "(cristianmtr/video_game_music_generation) trained and shipped its models on them")
USER_LICENCE = "your own folder: no licence recorded"
DEBIAN = {"openttd": ("openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx"),
          "planetblupi": ("planetblupi-music-midi", "/usr/share/planetblupi/music"),
          "freedoom": ("freedoom", "/usr/share/games/doom")}


def game_music(source):
    """Whether a base-corpus source is game music: any that is not one of music21's collections (the
    Debian games, the original songs, a user's folders)."""
    return source not in CORPORA or source in DEBIAN


# music21 collections of many tunes an ABC file, by their folder in music21's corpus
ABC = {"folk": "essenFolksong", "fiddle": "ryansMammoth", "oneills": "oneills1850", "airds": "airdsAirs"}
# A piece music21 takes longer than this to write as MIDI is skipped (Beethoven's op. 132 took minutes,
# the tunes take 0.02-0.2 s); memory as extraction bounds each file.
EXPORT_TIMEOUT, EXPORT_MEMORY = 300.0, 2048
# Files left out: Essen's test books and Chinese songs (another scale and style) from `folk`;
# Beethoven's whole quartets in one file, which music21 takes minutes each to write as MIDI.
SKIP = {"essenFolksong": re.compile(r"(test|han)"), "beethoven": re.compile(r"(opus132|opus18no[345]|opus74)\.")}


def _unshare(score):
    """music21's ABC reader puts one TimeSignature (or key, or tempo) object in every bar that returns to it,
    and its MIDI writer refuses an object found twice ("already found in this Stream": 8% of the Essen
    tunes): each bar gets its own copy."""
    import copy

    from music21 import key, meter, tempo
    seen = set()
    for measure in list(score.recurse().getElementsByClass("Measure")):
        for el in list(measure.getElementsByClass((meter.TimeSignature, key.KeySignature, tempo.MetronomeMark))):
            if id(el) in seen:
                measure.replace(el, copy.deepcopy(el))
            else:
                seen.add(id(el))


def _write_score(score, tmp):
    from music21 import bar, repeat, spanner
    if not score.flatten().notes:
        raise ValueError("no notes")
    _unshare(score)
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
    """A writer for one music21 corpus piece (`number`: one tune of a many-tune ABC file).

    It parses the corpus file itself, never music21's pickles of it: corpus.parse would load and store
    pickles in a temporary folder any user can write to (and, a piece at a time, thousands of them)."""
    def write(tmp):
        from music21 import converter, corpus
        path = Path(source)
        if not path.is_file():
            found = corpus.getWork(str(source))  # raises when there is none
            path = Path(found[0] if isinstance(found, list) else found)  # several formats: the first, as corpus.parse
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(path, number=number, forceSource=True, storePickle=False)
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


def package_files(package, folder, suffixes):
    """The package's files ending in `suffixes`; Failed naming the apt-get line when it is absent."""
    try:
        listing = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listing = [str(p) for p in Path(folder).glob("*")]  # no dpkg: the files where Debian puts them
    files = sorted(Path(f) for f in listing if f.lower().endswith(suffixes) and Path(f).is_file())
    if not files:
        raise Failed(f"package {package} is not installed: run sudo apt-get install {package}")
    return files


def debian_pieces(package, folder):
    """The package's MIDI files as (name, writer); Failed naming the apt-get line when it is absent."""
    return [(f.stem, lambda tmp, f=f: tmp.write_bytes(f.read_bytes()))
            for f in package_files(package, folder, (".mid", ".midi"))]


# --- Doom WADs: a 12-byte header ('IWAD' or 'PWAD', the lump count, the directory's offset), then a
# directory of 16 bytes a lump (offset, size, a name of 8 bytes padded with NULs). Music lumps are named
# D_<song>; Freedoom's are standard MIDI files ("MThd"); Doom's own format, DMX MUS ("MUS\x1a"), is not
# converted (a MUS lump is skipped with a warning naming it).
WAD_MAGIC = (b"IWAD", b"PWAD")
MIDI_MAGIC, MUS_MAGIC = b"MThd", b"MUS\x1a"


def wad_lumps(path):
    """[(name, offset, size)] of a WAD's directory, in its order; ValueError when it is no WAD or a damaged one."""
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] not in WAD_MAGIC:
            raise ValueError(f"{path}: not a WAD file (no IWAD or PWAD header)")
        count, at = struct.unpack("<ii", head[4:])
        if count < 0 or at < 12 or at + 16 * count > size:
            raise ValueError(f"{path}: damaged WAD ({count} lumps listed at byte {at} of {size})")
        f.seek(at)
        table = f.read(16 * count)
    lumps = []
    for i in range(count):
        offset, length, raw = struct.unpack_from("<ii8s", table, 16 * i)
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        if length < 0 or (length and not 0 <= offset <= size - length):
            raise ValueError(f"{path}: damaged WAD (lump {i} {name!r} lies outside the file)")
        lumps.append((name, offset, length))
    return lumps


def wad_music(path):
    """[(lump name, format, bytes)] of every music lump (D_*) of a WAD; format is "midi", "mus" or "unknown"."""
    out = []
    with open(path, "rb") as f:
        for name, offset, length in wad_lumps(path):
            if name.upper().startswith("D_") and length:
                f.seek(offset)
                data = f.read(length)
                kind = ("midi" if data[:4] in (MIDI_MAGIC, b"RIFF") else "mus" if data[:4] == MUS_MAGIC
                        else "unknown")
                out.append((name, kind, data))
    return out


def _write_lump(tmp, wad, name):
    for lump, kind, data in wad_music(wad):
        if lump == name:
            if kind != "midi":
                raise ValueError(f"lump {name} of {wad.name} is " + (
                    "DMX MUS, not standard MIDI (not converted)" if kind == "mus" else "not a MIDI file"))
            tmp.write_bytes(data)
            return
    raise ValueError(f"no lump {name} in {wad}")


def wad_pieces(package, folder):
    """Every music lump of the package's WADs as (name, writer): <wad>_<lump>, freedoom2_D_RUNNIN."""
    pieces = []
    for wad in package_files(package, folder, (".wad",)):
        try:
            lumps = wad_music(wad)
        except (OSError, ValueError) as e:
            raise Failed(str(e)) from None
        pieces += [(f"{wad.stem}_{name}", lambda tmp, wad=wad, name=name: _write_lump(tmp, wad, name))
                   for name, _, _ in lumps]
    if not pieces:
        raise Failed(f"no music lumps in the WADs of package {package}")
    return pieces


def corpus_pieces(name):
    if name == "freedoom":
        return wad_pieces(*DEBIAN[name])
    if name in DEBIAN:
        return debian_pieces(*DEBIAN[name])
    if name == "bach_chorales":
        from music21 import corpus
        names = corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename")
        # 21 of Riemenschneider's numbers repeat a chorale another number names: each file once
        return [(n.split("/")[-1], m21_piece(n)) for n in dict.fromkeys(names)]
    if name in ABC:
        return _abc_pieces(ABC[name])
    return _composer_pieces(name)


def _temp_key(dest):
    """What atomic_path's temporary name for `dest` is without its 8 random characters."""
    return f".{dest.stem}." + "".join(dest.suffixes)


def remove_stale(folder, dests):
    """Temporary files that a killed (-9) run of atomic_path left for any of `dests`: one listing of the
    folder for the whole corpus (fetch.remove_stale_temps lists it once a file)."""
    keys = {_temp_key(d) for d in dests}
    for p in Path(folder).iterdir() if Path(folder).is_dir() else ():
        n = p.name
        if n.startswith("."):
            for i in range(1, len(n) - 8):
                if n[i - 1] == "." and re.fullmatch(r"[a-z0-9_]{8}", n[i:i + 8]) and n[:i] + n[i + 8:] in keys:
                    p.unlink(missing_ok=True)
                    break


def _reason(e):
    return " ".join(str(e).split())[:160] or type(e).__name__


def export_pieces(folder, pieces, limit, report, progress=True, workers=0, timeout=EXPORT_TIMEOUT,
                  max_memory=EXPORT_MEMORY, preload=("music21",)):
    """Write up to `limit` pieces (0: all) as folder/<name>.mid, `workers` at a time (0: one per core), each
    in a child process bounded by `timeout` seconds and `max_memory` MB; returns how many are there.

    A piece that fails or passes a bound is skipped with a one-line warning, and the next one is tried in
    its place: the pieces exported are the first `limit` that can be, whatever `workers` is."""
    folder = Path(folder)
    want = min(limit, len(pieces)) if limit else len(pieces)
    dests = [folder / f"{name}.mid" for name, _ in pieces]
    remove_stale(folder, dests)
    bar = tqdm(total=want, desc=folder.name, unit="piece", disable=not (progress and on_terminal(sys.stderr)),
               file=sys.stderr)
    done, at, todo = 0, 0, []
    try:
        while done < want and at < len(pieces):
            todo = []
            while at < len(pieces) and done + len(todo) < want:
                if dests[at].is_file():
                    report.add("present", f"{folder.name}/{dests[at].name}")
                    done += 1
                    bar.update(1)
                else:
                    todo.append(at)
                at += 1

            def work(i):
                try:
                    with atomic_path(dests[i]) as tmp:
                        pieces[i][1](tmp)
                except Exception as e:  # music21 raises many kinds on pieces it cannot read or write
                    return {"error": _reason(e), "kind": "invalid"}
                return {}

            def finished(i, result):
                nonlocal done
                if "error" in result:
                    tqdm.write(f"warning: skipping {folder.name} piece {pieces[i][0]}: {result['error']}",
                               file=sys.stderr)
                    report.counts["skipped"] = report.counts.get("skipped", 0) + 1
                else:
                    report.add("exported", f"{folder.name}/{dests[i].name}")
                    done += 1
                    bar.update(1)
            if todo:
                run_bounded(todo, work, workers or os.cpu_count() or 1, timeout, max_memory, finished,
                            preload=preload, name="the exporter")
    finally:
        bar.close()
        if todo:  # a child killed at a bound, or by Ctrl-C, leaves its temporary file
            remove_stale(folder, [dests[i] for i in todo])
    return done


def export_corpora(names, songs_dir, limit, report, progress=True, workers=0):
    """Export each corpus into songs_dir/<name>/; returns how many could not be exported at all."""
    bad = 0
    for name in names:
        try:
            pieces = corpus_pieces(name)
            if not export_pieces(Path(songs_dir) / name, pieces, limit, report, progress, workers,
                                 preload=() if name in DEBIAN else ("music21",)):
                raise Failed("no piece could be exported")
        except Failed as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            bad += 1
    return bad
