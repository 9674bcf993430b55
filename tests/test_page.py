"""The songs page: real MIDI, WAV and PNG files, written and then opened from disk in headless Chromium.

Chromium is driven over its DevTools protocol on a pipe (--remote-debugging-pipe: NUL-separated JSON
on file descriptors 3 and 4), which needs nothing beyond the standard library: no driver, no package.
"""
import fcntl
import json
import os
import select
import signal
import tempfile
import time
import wave
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

import pytest

from vgmusic.midi import write_midi
from vgmusic.page import CHROMIUM_FLAGS, find_chromium, screenshot, write_page
from vgmusic.render import render_wav
from vgmusic.roll import piano_roll
from vgmusic.song import Note, Section, Song, Track

TITLE = "Songs <of> 'Zelda' & \"friends\""
ODD = "song #2 & 'odd' <b>"  # a file name that must be quoted in a URL and escaped in the page
LATIN1 = os.fsdecode(b"caf\xe9 \xff")  # a file name whose bytes are not UTF-8 (Latin-1, as older systems wrote)
NASTY = "<script>document.title='pwned'</script> & \"quotes\" 'too'"


class Browser:
    """Headless Chromium and one tab, driven over the DevTools protocol."""

    def __init__(self, exe):
        self.profile = tempfile.TemporaryDirectory()
        theirs_in, self.ours_out = os.pipe()
        self.ours_in, theirs_out = os.pipe()
        # Chromium reads commands on fd 3 and answers on fd 4. posix_spawn places them there without
        # running Python in the child (unsafe after fork once TensorFlow's threads run in this process);
        # copies above 10 first, so neither move overwrites the other pipe's end.
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (theirs_in, theirs_out))
        try:
            self.pid = os.posix_spawn(
                exe, [exe, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}", "--remote-debugging-pipe",
                      "about:blank"], os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, a, 3), (os.POSIX_SPAWN_DUP2, b, 4),
                              (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                              (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
        finally:
            for fd in (theirs_in, theirs_out, a, b):
                os.close(fd)
        self.pending, self.last_id = b"", 0
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except Exception:
            self.close()
            raise

    def call(self, method, timeout=30, session=None, **params):
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.ours_out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.pending:
                line, self.pending = self.pending.split(b"\0", 1)
                answer = json.loads(line)
                if answer.get("id") == self.last_id:  # events and other answers are not needed here
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ours_in], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")
            chunk = os.read(self.ours_in, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.pending += chunk

    def run(self, script, timeout=30):
        got = self.call("Runtime.evaluate", session=self.session, expression=script, awaitPromise=True,
                        returnByValue=True, timeout=timeout)
        if "exceptionDetails" in got:
            raise RuntimeError(got["exceptionDetails"])
        return got["result"]["value"]

    def evaluate(self, url, script):
        """Open `url` in the tab, then the value of `script` (an expression; a promise is awaited)."""
        self.call("Page.navigate", session=self.session, url=url)
        arrived = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        deadline = time.monotonic() + 30
        while True:  # until the new page has replaced the old one and loaded
            try:
                if self.run(arrived):
                    break
            except RuntimeError:  # asked while the old page was going away
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Chromium did not load {url} within 30 s")
            time.sleep(0.05)
        return self.run(script, timeout=60)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        deadline = time.monotonic() + 10
        while not os.waitpid(self.pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        os.close(self.ours_in)
        os.close(self.ours_out)
        self.profile.cleanup()


# Waits until the page and every image are loaded and every <audio> has its metadata (or gave up),
# then reports what the page shows.
INSPECT = """new Promise(done => {
  const settled = a => a.readyState >= 1 || a.error;
  const ready = () => document.readyState === 'complete' && [...document.images].every(i => i.complete)
                      && [...document.querySelectorAll('audio')].every(settled);
  const started = Date.now();
  const look = () => {
    if (!ready() && Date.now() - started < 20000) return setTimeout(look, 50);
    done({
      title: document.title,
      h1: document.querySelector('h1').textContent,
      names: [...document.querySelectorAll('article h2')].map(h => h.textContent),
      dates: [...document.querySelectorAll('article time')].map(t => t.getAttribute('datetime')),
      images: [...document.images].map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth, alt: i.alt})),
      audio: [...document.querySelectorAll('audio')].map(a => ({src: a.src, duration: a.duration,
                                                              error: a.error && a.error.code})),
      links: [...document.querySelectorAll('a[download]')].map(a => a.href),
      settings: [...document.querySelectorAll('table.settings td')].map(td => td.textContent),
      loops: [...document.querySelectorAll('.loop')].map(p => p.textContent),
      scripts: document.querySelectorAll('script').length,
    });
  };
  look();
})"""


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    b = Browser(exe)
    yield b
    b.close()


def composed(notes, loop=False, bpm=120.0, bars=4):
    """A Song as composing returns it: one flute track, whole bars, its form, a loop when it loops."""
    return Song(tracks=[Track([Note(*n) for n in notes], name="Flute", program=73, role="melody")],
                tempos=[(0.0, bpm)], length=bars * 4.0, sections=[Section(0.0, "A")],
                loop=(0.0, bars * 4.0) if loop else None)


def song(folder, name, date, notes, loop=None, settings=None, audio=True):
    """One composed song as composing leaves it: MIDI, WAV, piano roll and its record, the Song in it."""
    s = composed(notes, loop=loop is not None)
    write_midi(s, folder / f"{name}.mid")
    wav = render_wav(s, folder / f"{name}.wav", loop=loop is not None) if audio else None
    piano_roll(s, folder / f"{name}.png", name)
    record = {"midi": f"{name}.mid", "wav": f"{name}.wav" if audio else None, "roll": f"{name}.png",
              "game": "zelda_ocarina_of_time", "date": date, "seed": 7, "settings": settings or {"temperature": 1.0},
              "bars": 4, "seconds": wav["seconds"] if wav else 8.0, "bpm": 120.0, "events": 40,
              "notes": len(notes), "key": "C major", "instrument": "Flute", "loop": loop, "song": s.to_json()}
    (folder / f"{name}.song.json").write_text(json.dumps(record))
    return wav


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    pytest.importorskip("tinysoundfont", reason="tinysoundfont is not installed")
    folder = tmp_path_factory.mktemp("generations")
    scale = [[b, 1, 60 + b % 8] for b in range(16)]
    song(folder, "20250101-100000", "2025-01-01T10:00:00", scale)
    song(folder, ODD, "2025-02-01T12:00:00", [[b, 2, 72 - b] for b in range(0, 16, 2)],
         settings={"form": "A A' B A'", "note": NASTY})
    song(folder, "20250301-093000", "2025-03-01T09:30:00+00:00", scale[::-1],
         loop={"seam_loss": 2.314, "typical_loss": 2.402, "passed": True})
    song(folder, LATIN1, "2025-01-15T08:00:00", scale[::2])
    (folder / "broken.song.json").write_text('{"midi": "broken.mid", "date": ')  # cut short
    (folder / "escape.song.json").write_text(json.dumps({"midi": "../outside.mid", "date": "2025-04-01T00:00"}))
    (folder / "deleted.song.json").write_text(json.dumps({"midi": "deleted.mid", "date": "2025-05-01T00:00"}))
    return folder


def test_page_lists_the_songs_newest_first_and_skips_damaged_records(songs, capsys):
    page = write_page(songs, TITLE)
    assert page == songs / "index.html"
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings)
    assert "broken.song.json" in warnings[0] and "escape.song.json" in warnings[1]
    text = page.read_text()
    assert "deleted" not in text and NASTY not in text and "<script" not in text
    # a name that is not UTF-8: linked by its bytes, shown with U+FFFD where a byte is no character
    assert 'href="caf%E9%20%FF.mid"' in text and 'src="caf%E9%20%FF.wav"' in text
    assert "<h2>caf\ufffd \ufffd</h2>" in text
    assert not [p for p in songs.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


def test_the_page_works_in_a_browser_opened_from_disk(songs, browser):
    page = write_page(songs, TITLE)
    seen = browser.evaluate(page.as_uri(), INSPECT)
    assert seen["title"] == TITLE and seen["h1"] == TITLE
    assert seen["names"] == ["20250301-093000", ODD, "caf\ufffd \ufffd", "20250101-100000"]
    assert seen["dates"] == ["2025-03-01T09:30:00+00:00", "2025-02-01T12:00:00", "2025-01-15T08:00:00",
                             "2025-01-01T10:00:00"]
    assert seen["scripts"] == 0  # the settings' markup stayed text ...
    assert NASTY in seen["settings"] and "A A' B A'" in seen["settings"]  # ... and reads as written
    assert seen["loops"] and "2.31" in seen["loops"][0] and "passed" in seen["loops"][0]

    def local(url):
        """The file a URL in the page points at, checked to be in the songs folder."""
        parsed = urlparse(url)
        assert parsed.scheme == "file"
        path = Path(os.fsdecode(unquote_to_bytes(parsed.path)))  # by its bytes: names need not be UTF-8
        assert path.parent == songs and path.is_file(), url
        return path

    assert len(seen["images"]) == 4
    for img in seen["images"]:
        assert img["complete"] and img["width"] > 0 and img["alt"].startswith("Piano roll of"), img
        local(img["src"])
    assert [local(u).name for u in seen["links"]] == ["20250301-093000.mid", f"{ODD}.mid", f"{LATIN1}.mid",
                                                      "20250101-100000.mid"]
    assert len(seen["audio"]) == 4
    loaded = 0
    for audio in seen["audio"]:
        with wave.open(str(local(audio["src"]))) as w:
            seconds = w.getnframes() / w.getframerate()
        if audio["error"] is None and audio["duration"] is not None:
            assert audio["duration"] == pytest.approx(seconds, abs=0.01)
            loaded += 1
    assert loaded, f"Chromium loaded none of the WAVs: {seen['audio']}"


def test_screenshot_of_the_page(songs, browser, tmp_path):
    import numpy as np
    from PIL import Image
    png = screenshot(write_page(songs, TITLE), tmp_path / "page.png", width=900, height=700)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (900, 700)
        assert (np.asarray(img.convert("RGB")) / 255).std() > 0.05  # drawn, not a blank page


def figures(page):
    """{label: value} of each song's figures line, in the page's order."""
    import re
    return [dict(re.findall(r"<span>(\w+) <b>([^<]*)</b></span>", line))
            for line in page.read_text().splitlines() if line.startswith('<p class="figures">')]


def test_the_figures_come_from_the_song_in_the_record(tmp_path):
    """The record's own fields (written by older versions, or edited) lose to the Song it holds."""
    two = Song(tracks=[Track([Note(b, 1, 72 + b % 5) for b in range(24)], name="Flute", program=73),
                       Track([Note(b * 4, 4, 36) for b in range(6)], name="Bass", program=33),
                       Track([Note(b, 0.25, 38) for b in range(24)], name="Drums", drum=True)],
               tempos=[(0.0, 96.0)], metre=(3, 4), length=24.0)
    write_midi(two, tmp_path / "new.mid")
    older = {"bars": 4, "seconds": 8.0, "bpm": 120.0, "notes": 16, "instrument": "Flute", "key": "D minor",
             "events": 40}
    (tmp_path / "new.song.json").write_text(json.dumps(dict(older, midi="new.mid", date="2025-06-01T10:00:00",
                                                            song=two.to_json())))
    write_midi(composed([[0, 1, 60]]), tmp_path / "old.mid")
    (tmp_path / "old.song.json").write_text(json.dumps(dict(older, midi="old.mid", date="2025-05-01T10:00:00")))
    damaged = dict(two.to_json(), tempos=[[4.0, 96.0]])
    write_midi(composed([[0, 1, 60]]), tmp_path / "damaged.mid")
    (tmp_path / "damaged.song.json").write_text(json.dumps(dict(older, midi="damaged.mid",
                                                                date="2025-04-01T10:00:00", song=damaged)))
    new, old, broken = figures(write_page(tmp_path, "figures"))
    # 24 beats of 3/4 are 8 bars, 15 s at 96 bpm; 54 notes, the drums' too; the key and events are the record's
    assert new == {"bars": "8", "seconds": "15.0", "bpm": "96", "key": "D minor", "instrument": "Flute, Bass, Drums",
                   "events": "40", "notes": "54"}
    assert old == broken == {"bars": "4", "seconds": "8.0", "bpm": "120", "key": "D minor", "instrument": "Flute",
                             "events": "40", "notes": "16"}  # no Song, or a damaged one: the record's fields


def test_a_folder_with_no_songs(tmp_path, monkeypatch):
    page = write_page(tmp_path, "Nothing")
    assert "No songs yet." in page.read_text() and "<article" not in page.read_text()
    with pytest.raises(ValueError, match="nowhere"):
        write_page(tmp_path / "nowhere", "x")
    with pytest.raises(ValueError, match="missing.html"):
        screenshot(tmp_path / "missing.html", tmp_path / "x.png")
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without Chromium
    with pytest.raises(ValueError, match="needs Chromium"):
        screenshot(page, tmp_path / "x.png")


# Waits until the game player's files are loaded, then says where its button is on the screen.
GAME_READY = """new Promise(done => {
  const p = document.querySelector('.game-player'), started = Date.now();
  const look = () => {
    if ([...p.querySelectorAll('audio')].some(a => a.readyState < 1)) {
      return Date.now() - started < 20000 ? setTimeout(look, 50) : done({error: 'the files did not load'});
    }
    const box = p.querySelector('button').getBoundingClientRect();
    done({x: box.x + box.width / 2, y: box.y + box.height / 2});
  };
  look();
})"""
# After the click: skips to the intro's last 0.2 s and reports, a moment later, whether the body took over.
GAME_PLAYED = """new Promise(done => {
  const p = document.querySelector('.game-player'), [intro, body] = p.querySelectorAll('audio');
  intro.currentTime = intro.duration - 0.2;
  setTimeout(() => done({intro: intro.duration, body: body.duration, looping: body.loop && !body.paused,
                         ended: intro.ended, scripts: document.querySelectorAll('script').length,
                         links: [...document.querySelectorAll('.game a[download]')].map(a => a.href)}), 1500);
})"""


def test_the_page_offers_the_game_files_and_plays_the_intro_then_the_loop(tmp_path, browser):
    pytest.importorskip("soundfile")
    pytest.importorskip("mutagen")
    pytest.importorskip("pyloudnorm")
    from vgmusic.export import export_song
    s = Song(tracks=[Track([Note(b, 1, 60 + b % 8) for b in range(20)], name="Flute", program=73, role="melody"),
                     Track([Note(b * 4, 4, 36) for b in range(5)], name="Bass", program=33, role="bass")],
             tempos=[(0.0, 120.0)], length=20.0, sections=[Section(0.0, "intro"), Section(4.0, "A")],
             loop=(4.0, 20.0))
    write_midi(s, tmp_path / "g.mid")
    export_song(s, tmp_path / "g.mid", split=True)
    (tmp_path / "g.song.json").write_text(json.dumps({"midi": "g.mid", "wav": "g.wav", "date": "2025-06-01T10:00",
                                                      "song": s.to_json()}))
    button = browser.evaluate(write_page(tmp_path, "game").as_uri(), GAME_READY)
    assert "error" not in button, button
    for kind in ("mousePressed", "mouseReleased"):  # a real click: browsers play sound only after one
        browser.call("Input.dispatchMouseEvent", session=browser.session, type=kind, x=button["x"], y=button["y"],
                     button="left", clickCount=1)
    seen = browser.run(GAME_PLAYED)
    assert seen["intro"] == pytest.approx(2.0, abs=0.01) and seen["body"] == pytest.approx(8.0, abs=0.01)
    assert seen["ended"] and seen["looping"] and seen["scripts"] == 1
    names = sorted(Path(urlparse(u).path).name for u in seen["links"])
    assert names == sorted([f"g.{label}.{kind}" for label in ("mix", "intro", "body", "stem-melody", "stem-bass")
                            for kind in ("ogg", "wav")] + ["g.cue.json"])
    assert all((tmp_path / n).is_file() for n in names)
