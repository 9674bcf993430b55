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
from urllib.parse import unquote, urlparse

import pytest

from vgmusic.page import CHROMIUM_FLAGS, find_chromium, screenshot, write_page
from vgmusic.render import piano_roll, render_wav, write_midi

TITLE = "Songs <of> 'Zelda' & \"friends\""
ODD = "song #2 & 'odd' <b>"  # a file name that must be quoted in a URL and escaped in the page
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


def song(folder, name, date, notes, loop=None, settings=None, audio=True):
    """One composed song as composing leaves it: MIDI, WAV, piano roll and its record."""
    mid = write_midi(notes, folder / f"{name}.mid", tempo=120, end=16)
    wav = render_wav(mid, folder / f"{name}.wav", loop=loop is not None) if audio else None
    piano_roll(notes, folder / f"{name}.png", name, 120, parts=["A"] * len(notes), end=16, seam=loop is not None)
    record = {"midi": f"{name}.mid", "wav": f"{name}.wav" if audio else None, "roll": f"{name}.png",
              "game": "zelda_ocarina_of_time", "date": date, "seed": 7, "settings": settings or {"temperature": 1.0},
              "bars": 4, "seconds": wav["seconds"] if wav else 8.0, "bpm": 120.0, "events": 40,
              "notes": len(notes), "key": "C major", "instrument": "Flute", "loop": loop}
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
    assert not [p for p in songs.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


def test_the_page_works_in_a_browser_opened_from_disk(songs, browser):
    page = write_page(songs, TITLE)
    seen = browser.evaluate(page.as_uri(), INSPECT)
    assert seen["title"] == TITLE and seen["h1"] == TITLE
    assert seen["names"] == ["20250301-093000", ODD, "20250101-100000"]
    assert seen["dates"] == ["2025-03-01T09:30:00+00:00", "2025-02-01T12:00:00", "2025-01-01T10:00:00"]
    assert seen["scripts"] == 0  # the settings' markup stayed text ...
    assert NASTY in seen["settings"] and "A A' B A'" in seen["settings"]  # ... and reads as written
    assert seen["loops"] and "2.31" in seen["loops"][0] and "passed" in seen["loops"][0]

    def local(url):
        """The file a URL in the page points at, checked to be in the songs folder."""
        parsed = urlparse(url)
        assert parsed.scheme == "file"
        path = Path(unquote(parsed.path))
        assert path.parent == songs and path.is_file(), url
        return path

    assert len(seen["images"]) == 3
    for img in seen["images"]:
        assert img["complete"] and img["width"] > 0 and img["alt"].startswith("Piano roll of"), img
        local(img["src"])
    assert [local(u).name for u in seen["links"]] == ["20250301-093000.mid", f"{ODD}.mid", "20250101-100000.mid"]
    assert len(seen["audio"]) == 3
    loaded = 0
    for audio in seen["audio"]:
        with wave.open(str(local(audio["src"]))) as w:
            seconds = w.getnframes() / w.getframerate()
        if audio["error"] is None and audio["duration"] is not None:
            assert audio["duration"] == pytest.approx(seconds, abs=0.01)
            loaded += 1
    assert loaded, f"Chromium loaded none of the WAVs: {seen['audio']}"


def test_screenshot_of_the_page(songs, browser, tmp_path):
    from matplotlib.image import imread
    png = screenshot(write_page(songs, TITLE), tmp_path / "page.png", width=900, height=700)
    img = imread(png)
    assert img.shape[:2] == (700, 900) and img[..., :3].std() > 0.05  # drawn, not a blank page


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
