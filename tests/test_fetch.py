"""get_midi_songs.py: downloads from a real local HTTP server, imports, corpora, Debian's game music."""
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mido
import pytest

from conftest import ROOT, SHARED_SONGS, TINY, run_script
from vgmusic import config, corpora, fetch, predict, train
from vgmusic.extract import extract

SLOW_S, TIMEOUT = 1.0, "0.3"  # the slow file answers well after the client gives up
FAST = ["--retries", "2", "--timeout", TIMEOUT, "--backoff", "0.05", "--no-progress"]
BASE = "https://example.invalid/vg/"  # the manifest's own host: tests always pass --base-url


def tiny_midi(path, seed):
    """A small real MIDI file whose notes (and so its hash) depend on the seed."""
    midi = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for i in range(8):
        pitch = 48 + (seed * 7 + i * 5) % 36
        track += [mido.Message("note_on", note=pitch, velocity=80, time=0 if i == 0 else 24),
                  mido.Message("note_off", note=pitch, velocity=0, time=48 + 24 * (i % 2))]
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path.read_bytes()


class Handler(BaseHTTPRequestHandler):
    """Serves server.files by path; the path's first folder says how it misbehaves."""

    def do_GET(self):
        path = urllib.parse.unquote(self.path)
        self.server.hits[path] += 1
        kind, body = path.split("/")[1], self.server.files.get(path)
        try:
            if body is None:
                return self.send_error(404)
            if kind == "slow":
                time.sleep(SLOW_S)
            if kind == "flaky" and self.server.hits[path] == 1:
                return self.send_error(503)
            if kind == "corrupt":
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if kind == "drip":  # half the file, then hold the connection open until released
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.server.dripping.set()
                self.server.release.wait(30)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.files, httpd.hits = {}, Counter()
    httpd.dripping, httpd.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


def make_manifest(tmp_path, server, specs, name="manifest.json"):
    """specs: (game, file, kind); kind 'missing' is not served at all. Returns (manifest path, bytes by name)."""
    rows, originals = [], {}
    for seed, (game, file, kind) in enumerate(specs):
        data = tiny_midi(tmp_path / "made" / f"{seed}.mid", seed + len(server.files))
        if kind != "missing":
            server.files[f"/{kind}/{file}"] = data
        originals[f"{game}/{file}"] = data
        rows.append({"game": game, "file": file, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                     "url": BASE + urllib.parse.quote(f"{kind}/{file}")})
    path = tmp_path / name
    path.write_text(json.dumps({"base_url": BASE, "songs": rows}))
    return path, originals


def all_files(folder):
    """Every file, hidden temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def statuses(out):
    """'status name[: reason]' lines -> {name: (status, reason)}."""
    result = {}
    for line in out.splitlines():
        status, _, rest = line.partition(" ")
        name, _, reason = rest.strip().partition(": ")
        if status in ("downloaded", "present", "failed", "imported", "exported"):
            result[name] = (status, reason)
    return result


SPECS = [("alpha", "Aeris's Theme_edited.mid", "good"), ("alpha", "b.mid", "good"),
         ("beta", "c.mid", "flaky"), ("beta", "corrupt.mid", "corrupt"),
         ("beta", "slow.mid", "slow"), ("beta", "missing.mid", "missing")]


def test_download_verifies_retries_and_reports_each_file(server, tmp_path, capsys):
    manifest, originals = make_manifest(tmp_path, server, SPECS)
    songs = tmp_path / "songs"
    args = ["--manifest", manifest, "--songs-dir", songs, "--base-url", server.url, *FAST]
    assert fetch.run(list(map(str, args))) == 1
    out, err = capsys.readouterr()
    got = statuses(out)
    assert got["alpha/Aeris's Theme_edited.mid"][0] == got["alpha/b.mid"][0] == "downloaded"
    assert got["beta/c.mid"][0] == "downloaded"  # a 503, then the file
    assert got["beta/corrupt.mid"][0] == "failed" and "sha256" in got["beta/corrupt.mid"][1]
    assert got["beta/slow.mid"] == ("failed", "timed out after 0.3 s (2 attempts)")
    assert got["beta/missing.mid"][0] == "failed" and "HTTP 404" in got["beta/missing.mid"][1]
    assert "3 of 6 files failed" in err and "Traceback" not in err
    assert server.hits["/flaky/c.mid"] == 2 and server.hits["/slow/slow.mid"] == 2
    assert server.hits["/missing/missing.mid"] == 1 and server.hits["/corrupt/corrupt.mid"] == 1  # no retry
    # only verified files were kept: no corrupt file, no partial or temporary file
    good = ["alpha/Aeris's Theme_edited.mid", "alpha/b.mid", "beta/c.mid"]
    assert all_files(songs) == sorted(good)
    assert all((songs / name).read_bytes() == originals[name] for name in good)

    # present and correct: not asked for again; a damaged copy is replaced
    (songs / "alpha/b.mid").write_bytes(b"MThd damaged")
    hits = server.hits["/good/Aeris's Theme_edited.mid"]
    assert fetch.run(list(map(str, args + ["--games", "alpha"]))) == 0
    got = statuses(capsys.readouterr().out)
    assert got == {"alpha/Aeris's Theme_edited.mid": ("present", ""), "alpha/b.mid": ("downloaded", "")}
    assert server.hits["/good/Aeris's Theme_edited.mid"] == hits
    assert (songs / "alpha/b.mid").read_bytes() == originals["alpha/b.mid"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_download_leaves_no_partial_file(server, tmp_path, signum, code):
    manifest, _ = make_manifest(tmp_path, server, [("gamma", f"drip{signum}.mid", "drip")])
    songs = tmp_path / "songs"
    server.dripping.clear()
    proc = subprocess.Popen([sys.executable, str(ROOT / "get_midi_songs.py"), "--manifest", str(manifest),
                             "--songs-dir", str(songs), "--base-url", server.url, "--timeout", "20",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.dripping.wait(30)
        deadline = time.monotonic() + 10
        while not all_files(songs) and time.monotonic() < deadline:
            time.sleep(0.02)
        partial = all_files(songs)
        assert len(partial) == 1 and partial[0].startswith("gamma/.drip")  # half a file, under a temporary name
        time.sleep(0.2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code
    assert err.strip() == "interrupted: before any file was done; no partial file left"
    assert all_files(songs) == []


def test_import_from_folder_and_zip(server, tmp_path, capsys):
    specs = [("alpha", "a.mid", "good"), ("alpha", "nested.mid", "good"), ("beta", "wrong.mid", "good"),
             ("beta", "absent.mid", "good")]
    manifest, originals = make_manifest(tmp_path, server, specs)
    src = tmp_path / "copy"
    for name, rel in (("alpha/a.mid", "alpha/a.mid"), ("alpha/nested.mid", "some/where/else/nested.mid")):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(originals[name])
    wrong = bytearray(originals["beta/wrong.mid"])
    wrong[20] ^= 1  # right name and size, wrong bytes
    (src / "beta").mkdir()
    (src / "beta/wrong.mid").write_bytes(bytes(wrong))
    archive = tmp_path / "copy.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in src.rglob("*.mid"):
            z.write(p, "songs/" + str(p.relative_to(src)))
    for source in (src, archive):
        songs = tmp_path / f"songs_{source.suffix or 'dir'}"
        assert fetch.run(["--manifest", str(manifest), "--songs-dir", str(songs), "--from", str(source),
                          "--no-progress"]) == 1
        got = statuses(capsys.readouterr().out)
        assert got["alpha/a.mid"] == got["alpha/nested.mid"] == ("imported", "")
        assert got["beta/wrong.mid"][0] == "failed" and "sha256" in got["beta/wrong.mid"][1]
        assert got["beta/absent.mid"][0] == "failed" and "not found" in got["beta/absent.mid"][1]
        assert all_files(songs) == ["alpha/a.mid", "alpha/nested.mid"]
        assert (songs / "alpha/nested.mid").read_bytes() == originals["alpha/nested.mid"]


def test_bad_input_is_one_line_error(server, tmp_path):
    manifest, _ = make_manifest(tmp_path, server, [("alpha", "a.mid", "good")])
    doc = json.loads(manifest.read_text())
    doc["songs"][0]["sha256"] = "abc"
    manifest.write_text(json.dumps(doc))
    result = run_script("get_midi_songs.py", "--manifest", manifest, "--songs-dir", tmp_path / "s", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {manifest}: song 1: 'sha256' is not 64 lower-case hex digits"
    result = run_script("get_midi_songs.py", "--games", "no_such_game", "--songs-dir", tmp_path / "s", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("error: no song of no_such_game in the manifest")
    assert not (tmp_path / "s").exists()


def test_real_songs_import_with_their_hashes(shared_songs, tmp_path, capsys):
    songs = tmp_path / "songs"
    assert fetch.run(["--from", str(shared_songs), "--songs-dir", str(songs), "--no-progress"]) == 0
    rows = fetch.load_manifest(fetch.MANIFEST)["songs"]
    got = statuses(capsys.readouterr().out)
    assert len(rows) == len(got) == 46 and {s for s, _ in got.values()} == {"imported"}
    for row in rows:
        data = (songs / row["game"] / row["file"]).read_bytes()
        assert len(data) == row["bytes"] and hashlib.sha256(data).hexdigest() == row["sha256"]
    shared_manifest = SHARED_SONGS.parent / "midi_songs_manifest.json"
    if shared_manifest.is_file():  # the committed manifest carries the shared one's facts unchanged
        facts = lambda rs: sorted(tuple(r[k] for k in ("game", "file", "bytes", "sha256", "url")) for r in rs)
        assert facts(rows) == facts(json.loads(shared_manifest.read_text()))


def test_combined_games_name_known_folders():
    games = {r["game"] for r in fetch.load_manifest(fetch.MANIFEST)["songs"]}
    for name in ("games_and_mozart", "games_and_bach"):
        sources = config.game_sources(name)
        assert games < set(sources) and set(sources) <= games | set(corpora.CORPORA)


def test_corpus_exports_extract_train_and_compose(tmp_path, monkeypatch, capsys):
    songs, data, model = tmp_path / "songs", tmp_path / "data", tmp_path / "model"
    args = ["--corpus", "bach_chorales", "folk", "--limit", "3", "--songs-dir", str(songs), "--no-progress"]
    assert fetch.run(args) == 0
    assert [s for s, _ in statuses(capsys.readouterr().out).values()] == ["exported"] * 6
    for name in ("bach_chorales", "folk"):
        files = all_files(songs / name)
        assert len(files) == 3 and all(f.endswith(".mid") and not f.startswith(".") for f in files)
        for f in files:
            midi = mido.MidiFile(songs / name / f)
            assert sum(m.type == "note_on" and m.velocity > 0 for t in midi.tracks for m in t) > 10
    assert len({f for f in all_files(songs / "folk")}) == 3 and "altdeu10_0001.mid" in all_files(songs / "folk")
    assert fetch.run(args) == 0  # again: nothing re-exported
    assert [s for s, _ in statuses(capsys.readouterr().out).values()] == ["present"] * 6

    summary, _ = extract(songs, data, progress=False)
    assert summary["bach_chorales"][0] == 3 and summary["folk"][0] == 3
    monkeypatch.setitem(config.GAMES, "bach_and_folk", dict(sources=["bach_chorales", "folk"]))
    train.main(game="bach_and_folk", argv=["--data-dir", str(data), "--model-dir", str(model), *TINY,
                                           "--epochs", "1", "--window", "24"])
    meta = json.loads((model / "model.json").read_text())
    used = meta["songs"]["train"] + meta["songs"]["val"]
    assert {s[0] for s in used} == {"bach_chorales", "folk"} and len(used) == 6
    out = tmp_path / "song.mid"
    predict.main(game="bach_and_folk", argv=["--data-dir", str(data), "--model-dir", str(model), "--out", str(out),
                                             "--length", "80", "--seed", "1", "--no-audio", "--no-roll", "--no-page"])
    assert sum(m.type == "note_on" for t in mido.MidiFile(out).tracks for m in t) > 0


def test_piece_that_fails_is_skipped_with_a_warning(tmp_path, capsys):
    pieces = [("nope", corpora.m21_piece("bach/no_such_piece")), ("bwv269", corpora.m21_piece("bach/bwv269"))]
    assert corpora.export_pieces(tmp_path / "x", pieces, 5, fetch.Report(), progress=False) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: skipping x piece nope: ")
    assert all_files(tmp_path / "x") == ["bwv269.mid"]


def test_debian_package_missing_fails_that_name_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(corpora.DEBIAN, "openttd", ("vgmusic-no-such-package", str(tmp_path / "none")))
    args = ["--corpus", "openttd", "fiddle", "--limit", "1", "--songs-dir", str(tmp_path), "--no-progress"]
    assert fetch.run(args) == 1
    out, err = capsys.readouterr()
    assert err.strip() == ("error: openttd: package vgmusic-no-such-package is not installed: "
                           "run sudo apt-get install vgmusic-no-such-package")
    assert "exported   fiddle/" in out and len(all_files(tmp_path / "fiddle")) == 1
    assert not (tmp_path / "openttd").exists()


@pytest.mark.parametrize("name", ["openttd", "planetblupi"])
def test_debian_game_music(name, tmp_path, capsys):
    try:
        pieces = corpora.corpus_pieces(name)
    except fetch.Failed:
        pytest.skip(f"apt-get install {corpora.DEBIAN[name][0]} to test this")
    songs = tmp_path / "songs"
    assert fetch.run(["--corpus", name, "--limit", "0", "--songs-dir", str(songs), "--no-progress"]) == 0
    files = all_files(songs / name)
    assert len(files) == len(pieces) >= 10
    installed = {p.name: p for p in Path(corpora.DEBIAN[name][1]).glob("*.mid")}
    assert all((songs / name / f).read_bytes() == installed[f].read_bytes() for f in files)
    # train like a game folder: extract the smallest (planetblupi's take music21 minutes each: no test)
    smallest = min(files, key=lambda f: (songs / name / f).stat().st_size)
    if (songs / name / smallest).stat().st_size > 20_000:
        return
    for f in set(files) - {smallest}:
        (songs / name / f).unlink()
    summary, _ = extract(songs, tmp_path / "data", progress=False)
    assert summary[name][0] == 1


def test_a_redirected_run_writes_plain_lines(server, tmp_path):
    """Progress bars only on a terminal: into a pipe or a file, the per-file lines and nothing else."""
    manifest, originals = make_manifest(tmp_path, server, [("alpha", "a.mid", "good"), ("alpha", "b.mid", "good")])
    src = tmp_path / "copy"
    for name, data in originals.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    r = run_script("get_midi_songs.py", "--manifest", manifest, "--songs-dir", tmp_path / "songs", "--from", src,
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and "\r" not in r.stdout and "\x1b" not in r.stdout
    assert r.stdout.splitlines()[:2] == ["imported   alpha/a.mid", "imported   alpha/b.mid"]


@pytest.mark.parametrize("how", ["download", "import"])
def test_a_full_or_read_only_destination_names_the_destination(how, server, tmp_path):
    """It used to say 'cannot read it from <source>' (an import) or retry as if the network had failed."""
    manifest, originals = make_manifest(tmp_path, server, [("alpha", "a.mid", "good")])
    src = tmp_path / "copy"
    (src / "alpha").mkdir(parents=True)
    (src / "alpha" / "a.mid").write_bytes(originals["alpha/a.mid"])
    songs = tmp_path / "ro"
    songs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(songs)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a small tmpfs")
    try:
        source = ["--from", str(src)] if how == "import" else ["--base-url", server.url]
        r = run_script("get_midi_songs.py", "--manifest", manifest, "--songs-dir", songs, "--retries", 3, *source,
                       cwd=tmp_path)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "cannot read it from" not in r.stdout + r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(f"error: {songs}")
        assert "Read-only file system (EROFS)" in r.stderr
    finally:
        subprocess.run(["umount", str(songs)])
