"""One HTML page listing the composed songs of a folder: hear each one, see its piano roll, download it.

Each song has a `<name>.song.json` record beside its files (written when it is composed); the page is
rebuilt from all of them. Plain HTML with its CSS inline: nothing fetched from elsewhere, so it opens
straight from the disk (file://) in any browser, with no server. The one script is the game player of
songs exported with --export (their NAME.cue.json beside them): the intro once, then the body looping.
"""
import datetime
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from .song import Song
from .store import atomic_path
from .theory import ROLES

RECORD = ".song.json"
# the names Chromium's command goes by on Debian, Ubuntu (snap) and Google's builds
CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# headless, and nothing that would reach the network or need a desktop; as root, no sandbox is possible
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
SCREENSHOT_TIMEOUT = 60  # seconds: a page of local files draws in one or two

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 1.5em;
       color: #1d2330; background: #f6f7f9; }
h1 { margin: 0.2em 0; } .count { color: #5b6473; margin-top: 0; }
article { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 0.8em 1.2em; margin: 1.2em 0; }
article h2 { margin: 0 0 0.2em; font-size: 1.25em; }
.meta { color: #5b6473; margin: 0 0 0.6em; }
.figures span { display: inline-block; margin-right: 1.4em; } .figures b { font-weight: 600; }
audio { width: 100%; margin: 0.5em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eceef2; }
.download { font-weight: 600; }
.passed { color: #17803d; } .failed { color: #b42318; }
details { margin-top: 0.4em; } summary { cursor: pointer; color: #394150; }
table.settings { border-collapse: collapse; font-size: 0.9em; margin-top: 0.3em; }
table.settings td { padding: 0.1em 1em 0.1em 0; vertical-align: top; } table.settings td:first-child { color: #5b6473; }
code { font: 0.95em ui-monospace, monospace; }
.game { border-top: 1px solid #eceef2; margin-top: 0.6em; padding-top: 0.4em; }
.game-player audio { display: none; } .stem { display: inline-block; margin-right: 1em; } .game-player button { font: inherit; padding: 0.2em 0.9em; }
"""
# Plays an exported song as a game does: the intro once, then the loop body over and over (the body
# file with `loop`, or the mix sent back to its loop start each time it ends, when there is no split)
GAME_PLAYER = """<script>
for (const p of document.querySelectorAll('.game-player')) {
  const [first, second] = p.querySelectorAll('audio'), button = p.querySelector('button');
  const label = button.textContent;
  if (second) first.addEventListener('ended', () => second.play());
  else first.addEventListener('ended', () => { first.currentTime = +p.dataset.loopStart; first.play(); });
  button.addEventListener('click', () => {
    if (p.dataset.playing) {
      for (const a of p.querySelectorAll('audio')) { a.pause(); a.currentTime = 0; }
      delete p.dataset.playing; button.textContent = label;
    } else {
      p.dataset.playing = '1'; button.textContent = 'Stop'; first.play();
    }
  });
}
</script>"""


def _name(record, key, optional):
    """A file name from the record: a plain name of a file beside it (a path elsewhere is refused)."""
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or Path(value).name != value or value in (".", ".."):
        raise ValueError(f"'{key}' is not a file name: {value!r}")
    return value


def _date(value):
    if not isinstance(value, str):
        raise ValueError(f"'date' is not an ISO-8601 string: {value!r}")
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'date' is not an ISO-8601 date: {value!r}") from None
    return when if when.tzinfo else when.astimezone()  # a date without a zone is local time


def _is_file(path):
    """Whether a file is there: a name the system refuses (too long for it) names none."""
    try:
        return path.is_file()
    except OSError:
        return False


def read_records(folder):
    """Every readable song record of `folder` whose MIDI is still there, newest first; a damaged
    record is skipped with one line on stderr."""
    songs = []
    for path in sorted(Path(folder).glob("*" + RECORD)):
        try:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # nested a thousand deep
                raise ValueError(f"not readable JSON ({type(e).__name__}: {e})") from None
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            files = {key: _name(record, key, key != "midi") for key in ("midi", "wav", "roll")}
            when = _date(record.get("date"))
        except ValueError as e:
            print(f"warning: {path}: skipped, {str(e).splitlines()[0]}", file=sys.stderr)
            continue
        if not _is_file(Path(folder) / files["midi"]):
            continue  # the song was deleted: its record alone is nothing to show
        # a WAV or picture that is gone is shown as missing, not as a broken player
        files = {k: v if v is None or _is_file(Path(folder) / v) else None for k, v in files.items()}
        files["cue"] = read_cue(Path(folder), Path(files["midi"]).stem)
        files["stems"] = stem_files(Path(folder), Path(files["midi"]).stem)
        # songs composed together share a date: then in the order they were composed
        index = record.get("index") if isinstance(record.get("index"), int) else 0
        songs.append(((-when.timestamp(), index, path.name), {**record, **files}))
    songs.sort(key=lambda s: s[0])
    return [record for _, record in songs]


def _text(value, digits=None):
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 16 bars, not 16.0
    # a file name that is not UTF-8 holds surrogates, which no page can carry: shown as U+FFFD
    return html.escape(str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _href(name):
    """A link to a file beside the page, by its bytes: names that are not UTF-8 still resolve."""
    return quote(os.fsencode(name))


def _figures(r):
    """The song's figures, read from the Song its record holds (older records: their own fields)."""
    song = None
    if isinstance(r.get("song"), dict):
        try:
            song = Song.from_json(r["song"])
        except ValueError:
            song = None
    if song is not None:
        r = dict(r, bars=round(song.bars, 3), seconds=round(song.duration, 3), bpm=song.bpm,
                 notes=len(song.notes(drums=True)),
                 instrument=", ".join(t.name or t.role for t in song.tracks) or r.get("instrument"))
    shown = [("bars", r.get("bars"), None), ("seconds", r.get("seconds"), 1), ("bpm", r.get("bpm"), 0),
             ("key", r.get("key"), None), ("instrument", r.get("instrument"), None),
             ("events", r.get("events"), None), ("notes", r.get("notes"), None)]
    return "".join(f"<span>{label} <b>{_text(v, d)}</b></span>" for label, v, d in shown if v is not None)


def _loop(loop):
    if not isinstance(loop, dict):
        return ""
    passed = loop.get("passed")
    verdict = (': <b class="passed">passed</b>' if passed is True else
               ': <b class="failed">failed</b>' if passed is False else "")
    return (f'<p class="loop">Loop seam: loss {_text(loop.get("seam_loss"), 2)} across the seam, '
            f'{_text(loop.get("typical_loss"), 2)} on typical bars{verdict}</p>')


def _song(r):
    name = Path(r["midi"]).stem
    parts = [f'<article id="{html.escape(_href(name), quote=True)}">', f"<h2>{_text(name)}</h2>"]
    shown = datetime.datetime.fromisoformat(r["date"]).strftime("%Y-%m-%d %H:%M")  # the record's own clock
    meta = [_text(r["game"])] if r.get("game") is not None else []
    meta.append(f'<time datetime="{html.escape(r["date"], quote=True)}">{shown}</time>')
    if r.get("seed") is not None:
        meta.append(f"seed {_text(r['seed'])}")
    parts.append(f'<p class="meta">{" &middot; ".join(meta)}</p>')
    parts.append(f'<p class="figures">{_figures(r)}</p>')
    if r.get("wav"):
        parts.append(f'<audio controls preload="metadata" src="{_href(r["wav"])}"></audio>')
    else:
        parts.append('<p class="meta">(no audio rendered)</p>')
    parts.append(f'<p><a class="download" href="{_href(r["midi"])}" download>Download the MIDI file '
                 f'({_text(r["midi"])})</a></p>')
    if r.get("roll"):
        parts.append(f'<img src="{_href(r["roll"])}" alt="{_text("Piano roll of " + name)}">')
    parts.append(_loop(r.get("loop")))
    if r.get("cue"):
        parts.append(_game(r["cue"]))
    elif r.get("stems"):
        parts.append(_stems(r["stems"]))
    settings = r.get("settings")
    if isinstance(settings, dict) and settings:
        rows = "".join(f"<tr><td><code>{_text(k)}</code></td><td><code>{_text(v)}</code></td></tr>"
                       for k, v in settings.items())
        parts.append(f'<details><summary>Settings</summary><table class="settings">{rows}</table></details>')
    parts.append("</article>")
    return "\n".join(p for p in parts if p)


def write_page(folder, title):
    """Write `<folder>/index.html` from the folder's song records, newest first; return its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder not found")
    songs = []
    for record in read_records(folder):
        try:
            songs.append(_song(record))
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field of an unexpected shape
            print(f"warning: {folder / (Path(record['midi']).stem + RECORD)}: skipped, {e}", file=sys.stderr)
    count = f"{len(songs)} song{'s' if len(songs) != 1 else ''}, newest first" if songs else "No songs yet."
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title>", f"<style>{STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>", f'<p class="count">{count}</p>', *songs,
        GAME_PLAYER if any('class="game-player"' in s for s in songs) else "", "</body></html>", ""])
    path = folder / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def stem_files(folder, stem):
    """(track, file name) of each listening stem beside a song (NAME.stem-TRACK.wav), in the parts' order."""
    import glob  # noqa: PLC0415
    found = {p.name[len(stem) + len(".stem-"):-len(".wav")]: p.name
             for p in folder.glob(glob.escape(stem) + ".stem-*.wav") if _is_file(p)}
    order = {role: i for i, role in enumerate(ROLES)}
    return sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def read_cue(folder, stem):
    """The cue sheet --export wrote for a song (NAME.cue.json), its files kept only where they are plain
    names of files beside it; None without one (a damaged one is skipped with a line on stderr)."""
    path = folder / f"{stem}.cue.json"
    if not _is_file(path):
        return None
    try:
        cue = json.loads(path.read_text(encoding="utf-8"))
        named = {**cue["files"], **{f"stem {s['name']}": s["files"] for s in cue["stems"]
                                    if s["files"] != cue["files"].get("mix")}}  # one track: the mix
        files = {label: {kind: _name(kinds, kind, False) for kind in kinds} for label, kinds in named.items()
                 if isinstance(kinds, dict)}
        loop = cue["loop"] and float(cue["loop"]["start"]["seconds"])
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError) as e:
        print(f"warning: {path}: game files not shown, {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return None
    files = {label: {k: v for k, v in kinds.items() if _is_file(folder / v)} for label, kinds in files.items()}
    return {"name": path.name, "files": {k: v for k, v in files.items() if v}, "loop_start": loop}


def _game(cue):
    """The exported files' download links, and a player that loops the song as the game will."""
    files = cue["files"]
    links = " &middot; ".join(
        f"{_text(label)}: " + ", ".join(f'<a href="{_href(name)}" download>{_text(kind.upper())}</a>'
                                         for kind, name in sorted(kinds.items()))
        for label, kinds in files.items())
    parts = [f'<div class="game"><p>Game files: {links} &middot; <a href="{_href(cue["name"])}" download>'
             f"cue sheet</a></p>"]

    def source(label):  # WAV first: every browser plays it
        kinds = files.get(label, {})
        return kinds.get("wav") or kinds.get("ogg")
    if cue["loop_start"] is not None and source("mix"):
        if source("intro") and source("body"):
            players = (f'<audio class="intro" preload="auto" src="{_href(source("intro"))}"></audio>'
                       f'<audio class="body" preload="auto" loop src="{_href(source("body"))}"></audio>')
        else:  # the loop start is the intro's end (a loop without an intro loops whole, as `loop` does)
            players = (f'<audio class="mix" preload="auto"{" loop" if not cue["loop_start"] else ""} '
                       f'src="{_href(source("mix"))}"></audio>')
        parts.append(f'<p class="game-player" data-loop-start="{cue["loop_start"]:.6f}">'
                     f'<button type="button">Play as in a game</button> '
                     f'{"the intro once, then " if cue["loop_start"] else ""}the loop over and over {players}</p>')
    parts.append(_stems([(label[len("stem "):], source(label)) for label in files
                         if label.startswith("stem ") and source(label)]))
    parts.append("</div>")
    return "".join(parts)


def _stems(stems):
    """A player for each track alone, (name, file) pairs, to hear what it plays (they sum to the mix)."""
    return ('<p class="stems">' + " ".join(
        f'<span class="stem">{_text(name)} <audio controls preload="none" src="{_href(src)}"></audio></span>'
        for name, src in stems) + "</p>") if stems else ""


def find_chromium():
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path, png_path, width=1200, height=1600):
    """A PNG of the page as headless Chromium draws it (the README's picture)."""
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise ValueError(f"{html_path}: page not found")
    browser = find_chromium()
    if browser is None:
        raise ValueError(f"{png_path}: a screenshot needs Chromium (e.g. apt-get install chromium), not found")
    with atomic_path(png_path) as tmp, tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={tmp}", html_path.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=SCREENSHOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ValueError(f"{png_path}: Chromium took over {SCREENSHOT_TIMEOUT} s to draw {html_path}") from None
        if done.returncode or not tmp.stat().st_size:
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line and "dbus" not in line]
            raise ValueError(f"{png_path}: Chromium could not draw {html_path} "
                             f"({(errors or ['exit status %d' % done.returncode])[-1].strip()})")
    return Path(png_path)
