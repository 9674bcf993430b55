"""Corrupt and odd MIDI files through get_all_notes.py as a user runs it: each bad file is skipped with one
line naming it, never a traceback; the good ones are written; a hung file is cut off by --timeout; Ctrl-C,
SIGTERM and a full disk end the run with one line and nothing half-written."""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from conftest import ROOT
from vgmusic.parse import parse_file, parse_midi
from vgmusic.song import Song

FAST = ["--workers", "2", "--timeout", "5"]
# Files that may parse (music21 reads past a track length to the end of the file; 20,000 notes may take
# longer than the test's --timeout on a loaded machine): each must be kept or skipped, cleanly either way.
EITHER = {"20000 notes.mid", "track length too long.mid"}
needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="watches processes through /proc (Linux)")


def song(path, notes=32, base=60, channel=0, velocity=80, step=240):
    """A real melody written with mido: `notes` notes walking up and down from `base`."""
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    for i in range(notes):
        pitch = base + (i % 8 if (i // 8) % 2 == 0 else 7 - i % 8)
        track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=velocity, time=0))
        track.append(mido.Message("note_off", channel=channel, note=pitch, velocity=0, time=step))
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)
    return path.read_bytes()


def vlq(n):
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append(n & 0x7F | 0x80)
    return bytes(reversed(out))


def smf(tracks, fmt=1, division=480, ntrks=None):
    head = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks) if ntrks is None else ntrks, division)
    return head + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


def huge_delta(division=96):
    """117 bytes: one note held by the largest delta time MIDI allows (0x0FFFFFFF ticks): at 96 ticks a beat
    2.8 million beats (388 hours), more than the reader's bound (vgmusic.midi.MAX_BEATS), which refuses it
    at once."""
    name = b"a note held 77 hours: music21 took hours and gigabytes of memory to parse it"
    events = (vlq(0) + b"\xff\x03" + vlq(len(name)) + name + vlq(0) + b"\x90\x3c\x64"
              + vlq(0x0FFFFFFF) + b"\x80\x3c\x00" + vlq(0) + b"\xff\x2f\x00")
    return smf([events], fmt=0, division=division)


def hung():
    """The same note at 480 ticks a beat: 559,240 beats (77 hours at 120 bpm), within the reader's bound, and
    music21 (which extraction still runs, for the key and the original's tokens) takes hours and gigabytes
    over it: only --timeout or --max-memory ends it."""
    return huge_delta(division=480)


def riff_wrapped(midi):
    """RMID: a standard MIDI file in the 'data' chunk of a RIFF file, as Windows saved MIDI."""
    body = b"RMID" + b"data" + struct.pack("<I", len(midi)) + midi + b"\0" * (len(midi) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bad_files(tmp):
    """{file name: bytes} of corrupt and odd MIDI files, each different from every other."""
    good = song(tmp / "scratch.mid", base=50)
    track = good[14 + 8:]
    drums, zero, many = tmp / "drums.mid", tmp / "zero.mid", tmp / "many.mid"
    song(drums, channel=9, base=36)
    song(zero, velocity=0)
    song(many, notes=20000, step=30)
    return {
        "truncated half.mid": good[:len(good) // 2],
        "truncated header.mid": good[:10],
        "text.mid": b"this is a text file, not MIDI\n",
        "empty.mid": b"",
        "track length too long.mid": good[:18] + struct.pack(">I", 0xFFFFFF) + track,
        "track length too short.mid": good[:18] + struct.pack(">I", 9) + track,
        "header length wrong.mid": b"MThd" + struct.pack(">I", 0x7FFFFFFF) + good[8:],
        "no tracks.mid": smf([], ntrks=0),
        "missing tracks.mid": smf([track], ntrks=5),
        "smpte division.mid": smf([track], division=0xE728),
        "type 2.mid": smf([track, track[:-4] + b"\x00\xff\x2f\x00"], fmt=2),
        "huge delta.mid": huge_delta(),
        "hung.mid": hung(),
        "drums only.mid": drums.read_bytes(),
        "zero velocity.mid": zero.read_bytes(),
        "not rmid.mid": b"RIFF" + struct.pack("<I", 4) + b"WAVE",
        "new\nline.mid": b"a name that would break the warning in two",
        "20000 notes.mid": many.read_bytes(),
    }


def run_extract(songs, data, *args, **kw):
    return subprocess.run([sys.executable, str(ROOT / "get_all_notes.py"), "--songs-dir", str(songs),
                           "--data-dir", str(data), *FAST, *map(str, args)], capture_output=True, timeout=300, **kw)


def unprivileged():
    """A command prefix under which file permissions hold, or None: root drops the capabilities that
    override them (setpriv), so chmod 000 keeps even root out."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    works = shutil.which("setpriv") and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    return prefix if works else None


def skipped_in(stderr):
    """{path: reason} of the 'warning: skipping PATH: REASON' lines."""
    lines = [line[len("warning: skipping "):] for line in stderr.splitlines() if line.startswith("warning: skipping ")]
    return dict(line.split(": ", 1) for line in lines)


def leftovers(folder):
    """Temporaries of interrupted writes: dot files anywhere under `folder`."""
    return list(folder.rglob(".*"))


def children(pid):
    """Pids of the live (not zombie) child processes of `pid`, read from /proc."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat_file.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # ended while we looked
        if int(ppid) == pid and state != "Z":
            found.append(int(stat_file.parent.name))
    return found


def alive(pids):
    def running(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return [pid for pid in pids if running(pid)]


def open_files(pid):
    names = []
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            names.append(os.readlink(fd))
    except OSError:
        pass  # it ended, or closed the file while we looked
    return names


def test_bad_files_are_skipped_one_line_each(tmp_path):
    songs, data = tmp_path / "songs", tmp_path / "data"
    game, only_bad = songs / "game", songs / "only_bad"
    game.mkdir(parents=True)
    only_bad.mkdir()
    bad = bad_files(tmp_path)
    for name, content in bad.items():
        (game / name).write_bytes(content)
    good = song(game / "good.mid")
    song(game / "good 2.mid", base=67)
    (game / "good copy.mid").write_bytes(good)
    (game / "text copy.mid").write_bytes(bad["text.mid"])
    song(Path(os.fsdecode(os.fsencode(game) + b"/caf\xe9.mid")), base=62)  # a Latin-1 name: not UTF-8
    song(game / "ポケモン.mid", base=64)
    (game / "rmid.mid").write_bytes(riff_wrapped(song(tmp_path / "plain.mid", base=65)))
    (game / "x.mid").mkdir()
    (game / "y.mid").symlink_to(game / "nowhere.mid")
    os.mkfifo(game / "z.mid")  # reading it would block forever
    (only_bad / "junk.mid").write_bytes(b"junk")
    (only_bad / "drums.mid").write_bytes(bad["drums only.mid"])
    prefix = unprivileged()
    if prefix is not None:
        song(game / "locked.mid", base=70)
        (game / "locked.mid").chmod(0)

    t0 = time.perf_counter()
    run = subprocess.run([*(prefix or []), sys.executable, str(ROOT / "get_all_notes.py"), "--songs-dir", str(songs),
                          "--data-dir", str(data), *FAST], capture_output=True, timeout=300)
    took = time.perf_counter() - t0
    err = run.stderr.decode("utf-8", "replace")
    assert run.returncode == 1, err
    assert "Traceback" not in err
    skipped = skipped_in(err)
    for name in set(bad) - EITHER - {"new\nline.mid"} | {"text copy.mid"}:
        assert str(game / name) in skipped, name
    assert str(game / "new\\nline.mid") in skipped
    assert skipped[str(game / "x.mid")] == "a folder, not a MIDI file"
    assert skipped[str(game / "y.mid")] == "a broken symbolic link"
    assert skipped[str(game / "z.mid")] == "not a regular file"
    assert skipped[str(game / "huge delta.mid")] == "longer than 1048576 beats"  # refused before music21 sees it
    assert skipped[str(game / "hung.mid")] in ("timed out after 5 s", "used more than 2048 MB")
    assert skipped[str(game / "text copy.mid")] == skipped[str(game / "text.mid")]
    assert skipped[str(game / "type 2.mid")].startswith("MIDI type 2")
    assert skipped[str(game / "smpte division.mid")].startswith("SMPTE timing")
    assert skipped[str(game / "drums only.mid")].startswith("no pitched notes")
    assert skipped[str(game / "zero velocity.mid")].startswith("no pitched notes")
    if prefix is not None:
        assert skipped[str(game / "locked.mid")] == "cannot be read (Permission denied)"
    assert skipped[f"game folder {only_bad}"] == "no usable song among 2 file(s)"
    assert [line for line in err.splitlines() if line.startswith("note:")] == [
        f"note: skipping {game / 'good.mid'}: the same bytes as good copy.mid"]
    rows = {s["file"]: s for s in json.loads((data / "game.json").read_text())["songs"]}
    kept = set(rows)
    assert {"good copy.mid", "good 2.mid", "caf\\xe9.mid", "ポケモン.mid", "rmid.mid"} <= kept
    rmid = Song.from_json(rows["rmid.mid"]["song"])  # the RIFF-wrapped file's notes, read from inside it
    assert [n.pitch for n in rmid.tracks[0].notes][:9] == [65 + i for i in range(8)] + [72]
    assert len(rmid.tracks[0].notes) == 32 and {n.velocity for n in rmid.tracks[0].notes} == {80}
    for name in EITHER:
        assert (name in kept) != (str(game / name) in skipped), name
    assert not (data / "only_bad.json").exists()
    assert json.loads((data / "vocab.json").read_text())["classic"]
    assert not leftovers(data)
    assert took < 60, took  # the hung file cost one --timeout, not hours

    # again: all from the cache, the hung file too, with how to give it another try
    t0 = time.perf_counter()
    again = run_extract(songs, data)
    err = again.stderr.decode("utf-8", "replace")
    assert again.returncode == 1 and "Traceback" not in err
    assert time.perf_counter() - t0 < 20  # nothing parsed again: no --timeout waited
    flag = "--timeout" if "timed out" in skipped[str(game / "hung.mid")] else "--max-memory"
    again_skipped = skipped_in(err)
    assert again_skipped[str(game / "hung.mid")].endswith(f"(in an earlier run: a higher {flag} tries it again)")
    assert again_skipped[str(game / "huge delta.mid")] == "longer than 1048576 beats"


def test_all_good_exits_0_and_copies_are_noted(tmp_path):
    game = tmp_path / "songs" / "game"
    game.mkdir(parents=True)
    (game / "a copy.mid").write_bytes(song(game / "a.mid"))
    run = run_extract(tmp_path / "songs", tmp_path / "data")
    assert run.returncode == 0, run.stderr
    assert run.stderr.decode().strip() == f"note: skipping {game / 'a.mid'}: the same bytes as a copy.mid"
    assert b"game: 1 songs" in run.stdout


def test_parse_file_is_bounded(tmp_path):
    (tmp_path / "hung.mid").write_bytes(hung())
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^(timed out after 2 s|used more than 2048 MB)$"):
        parse_file(tmp_path / "hung.mid", timeout=2)
    assert time.perf_counter() - t0 < 10
    (tmp_path / "huge.mid").write_bytes(huge_delta())
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^longer than 1048576 beats$"):
        parse_file(tmp_path / "huge.mid", timeout=60)
    assert time.perf_counter() - t0 < 10  # the reader's bound: no waiting on the timeout
    song(tmp_path / "many.mid", notes=20000, step=30)
    with pytest.raises(ValueError, match=r"^used more than 64 MB$"):
        parse_file(tmp_path / "many.mid", timeout=60, max_memory=64)
    plain = song(tmp_path / "plain.mid")
    (tmp_path / "rmid.mid").write_bytes(riff_wrapped(plain))
    assert parse_file(tmp_path / "rmid.mid") == parse_file(tmp_path / "plain.mid") == parse_midi(tmp_path / "plain.mid")
    with pytest.raises(ValueError, match=r"^cannot be read \(No such file or directory\)$"):
        parse_file(tmp_path / "missing.mid")
    with pytest.raises(ValueError, match=r"^cannot be read \(Is a directory\)$"):
        parse_file(tmp_path)


def test_prime_with_a_bad_file_is_one_line(tmp_path):
    (tmp_path / "text.mid").write_text("not MIDI")
    song(tmp_path / "drums.mid", channel=9, base=36)
    for prime, reason in ((tmp_path / "text.mid", "not a readable MIDI file"),
                          (tmp_path / "drums.mid", "no pitched notes")):
        run = subprocess.run([sys.executable, str(ROOT / "final_fantasy_7" / "predict.py"), "--prime", str(prime),
                              "--out", str(tmp_path / "x.mid"), "--seed", "1", "--length", "20", "--no-audio",
                              "--no-roll", "--no-page"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.strip().startswith(f"error: {prime}: {reason}")
        assert not (tmp_path / "x.mid").exists()


@needs_proc
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_extraction_keeps_what_is_parsed(tmp_path, sig, code):
    game, data = tmp_path / "songs" / "game", tmp_path / "data"
    game.mkdir(parents=True)
    song(game / "a.mid")
    (game / "b hung.mid").write_bytes(hung())
    cmd = [sys.executable, str(ROOT / "get_all_notes.py"), "--songs-dir", str(tmp_path / "songs"),
           "--data-dir", str(data), "--workers", "2", "--timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list((data / "cache").glob("[0-9a-f]*.json")) or not children(proc.pid):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        parsers = children(proc.pid)
        # Ctrl-C in a terminal reaches the whole process group, the parsers too; SIGTERM the parent alone
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.strip() == f"interrupted: 1 of 2 songs parsed and cached in {data / 'cache'}; run again to resume"
    assert not alive(parsers), "a parser outlived the extraction"
    cached = list((data / "cache").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["classic"]
    assert not leftovers(data)
    if sig == signal.SIGINT:  # a re-run parses only what is missing
        before = cached[0].stat().st_mtime_ns
        run = run_extract(tmp_path / "songs", data, "--timeout", "1")
        assert run.returncode == 1 and b"Traceback" not in run.stderr
        assert skipped_in(run.stderr.decode())[str(game / "b hung.mid")] in ("timed out after 1 s",
                                                                             "used more than 2048 MB")
        assert cached[0].stat().st_mtime_ns == before
        assert len(list((data / "cache").glob("*.json"))) == 2  # the failure is cached, with its bounds


@needs_proc
def test_interrupted_while_hashing(tmp_path):
    game = tmp_path / "songs" / "game"
    game.mkdir(parents=True)
    song(game / "a.mid")
    with open(game / "big.mid", "wb") as f:  # 4 GB of holes: seconds to hash, no disk used
        f.truncate(4 << 30)
    proc = subprocess.Popen([sys.executable, str(ROOT / "get_all_notes.py"), "--songs-dir", str(tmp_path / "songs"),
                             "--data-dir", str(tmp_path / "data"), *FAST], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(name.endswith("big.mid") for name in open_files(proc.pid)):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip() == "interrupted: nothing was parsed or written yet (it was listing the songs)"
    assert not list((tmp_path / "data" / "cache").glob("*.json")) and not leftovers(tmp_path / "data")


def test_full_disk_is_one_line_and_keeps_what_was_written(tmp_path):
    game, data = tmp_path / "songs" / "game", tmp_path / "data"
    game.mkdir(parents=True)
    for i in range(6):
        song(game / f"s{i}.mid", notes=400, base=50 + i)
    data.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(data)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (data / "older.json").write_text('{"game": "older", "songs": []}')  # from an earlier run
        (data / "filler").write_bytes(bytes(300 * 1024 - 64 * 1024))  # room for about two songs' cache entries
        run = run_extract(tmp_path / "songs", data)
        err = run.stderr.decode()
        assert run.returncode == 1 and "Traceback" not in err, err
        line, = [line for line in err.splitlines() if line]
        assert line.startswith(f"error: {data}/") and line.endswith(": No space left on device (ENOSPC)")
        assert not leftovers(data)
        entries = list((data / "cache").glob("*.json"))
        assert 0 < len(entries) < 6
        for entry in entries:
            assert json.loads(entry.read_text())["classic"]  # whole, never half-written
        assert (data / "older.json").read_text() == '{"game": "older", "songs": []}'
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_unwritable_data_folder_is_one_line(tmp_path):
    game = tmp_path / "songs" / "game"
    game.mkdir(parents=True)
    song(game / "a.mid")
    (tmp_path / "file").write_text("a file, not a folder")
    run = run_extract(tmp_path / "songs", tmp_path / "file" / "data")
    assert run.returncode == 1
    assert run.stderr.decode().strip() == (f"error: {tmp_path / 'file' / 'data'}: cannot be a folder: "
                                           f"{tmp_path / 'file'} is a file")
    prefix = unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made to hold")
    (tmp_path / "locked").mkdir(mode=0o555)
    run = subprocess.run([*prefix, sys.executable, str(ROOT / "get_all_notes.py"), "--songs-dir",
                          str(tmp_path / "songs"), "--data-dir", str(tmp_path / "locked")], capture_output=True)
    assert run.returncode == 1
    assert run.stderr.decode().strip() == f"error: {tmp_path / 'locked'}: Permission denied (EACCES)"
