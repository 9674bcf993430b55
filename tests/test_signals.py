"""Ctrl-C and SIGTERM at any moment of every command, its imports included: one `interrupted: ...` line,
exit 130 (SIGINT) or 143 (SIGTERM), never a traceback.

Each command runs as a user runs it, on inputs that keep it busy for seconds (so the signal finds it
running, which is asserted), and gets the signal from 0.05 s after it starts: right after its first line,
while NumPy, music21 or TensorFlow import, and while it works. (Before its first line the interpreter is
still starting, which no command can change: on a loaded machine that may take over 0.05 s, so the signal
waits for the first line, seen in /proc, where there is one.)
"""
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CHORALES, ROOT, TINY

DELAYS = (0.05, 0.15, 0.4, 0.9)
PREDICT = ROOT / "pokemon_red_blue_yellow" / "predict.py"
TRAIN = ROOT / "pokemon_red_blue_yellow" / "train.py"


@pytest.fixture(scope="module")
def silent_server():
    """A local address that takes connections and never answers: a download waits there until its timeout."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/"


@pytest.fixture(scope="module")
def inputs(corpus_songs, corpus_data, tmp_path_factory, silent_server):
    """What each command reads: songs, extracted songs, a manifest, a data folder the Pokemon script trains on."""
    tmp = tmp_path_factory.mktemp("signals")
    manifest = tmp / "manifest.json"
    base = "https://example.invalid/vg/"
    manifest.write_text(json.dumps({"base_url": base, "songs": [
        {"game": "alpha", "file": "a.mid", "bytes": 100, "sha256": hashlib.sha256(b"a").hexdigest(),
         "url": base + "a.mid"}]}))
    pokemon = tmp / "pokemon_data"  # the chorales under the Pokemon script's name
    pokemon.mkdir()
    shutil.copy(corpus_data / "vocab.json", pokemon)
    shutil.copy(corpus_data / "chorales_a.json", pokemon / "pokemon_red_blue_yellow.json")
    return dict(songs=corpus_songs, data=corpus_data, manifest=manifest, pokemon=pokemon, url=silent_server)


def command(name, i, out):
    """The command line of a real, seconds-long run of `name` writing under `out`."""
    songs, data = i["songs"], i["data"]
    return {
        "get_all_notes.py": [ROOT / "get_all_notes.py", "--songs-dir", songs, "--data-dir", out / "data",
                             "--workers", "1"],
        "get_midi_songs.py": [ROOT / "get_midi_songs.py", "--manifest", i["manifest"], "--songs-dir", out / "songs",
                              "--base-url", i["url"], "--timeout", "60", "--retries", "1"],
        "evaluate.py": [ROOT / "evaluate.py", "--game", "chorales_a", "--data-dir", data, "--out", out / "eval",
                        "--generated", *(songs / game for game in CHORALES)],
        "predict.py": [PREDICT, "--no-audio", "--length", "2000", "--num", "2", "--seed", "1",
                       "--out", out / "song.mid"],
        # the explicit --val-fraction replaces the two Pokemon songs that the game holds out itself
        "train.py": [TRAIN, "--data-dir", i["pokemon"], "--model-dir", out / "model", "--val-fraction", "0.3",
                     *TINY, "--epochs", "1000", "--patience", "1000"],
        "python -m vgmusic evaluate": ["-m", "vgmusic", "evaluate", "--game", "chorales_a", "--data-dir", data,
                                       "--out", out / "eval", "--generated", *(songs / game for game in CHORALES)],
    }[name]


# every command at every delay, each delay with both signals across the commands
CASES = [pytest.param(name, delay, sig, id=f"{name}-{delay}s-{sig.name}")
         for n, name in enumerate(["get_all_notes.py", "get_midi_songs.py", "evaluate.py", "predict.py", "train.py",
                                   "python -m vgmusic evaluate"])
         for d, delay in enumerate(DELAYS)
         for sig in [(signal.SIGINT, signal.SIGTERM)[(n + d) % 2]]]


def started(pid):
    """Whether the command's first line has run: it then holds SIGTERM back, or catches it; None without /proc."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return None
    return bool((int(status["SigBlk"], 16) | int(status["SigCgt"], 16)) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.parametrize("name, delay, sig", CASES)
def test_interrupt_at_any_moment_is_one_line(name, delay, sig, inputs, tmp_path):
    args = [sys.executable, *map(str, command(name, inputs, tmp_path))]
    # a background job's children start with SIGINT ignored; a user's Ctrl-C reaches a process that has not
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.monotonic()
    try:
        while started(proc.pid) is False and time.monotonic() < t0 + 10:
            time.sleep(0.002)
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        assert proc.poll() is None, f"{name} ended before the signal: {proc.communicate()}"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("interrupted: ")]
    assert len(said) == 1 and lines[-1] == said[0], err


LOST = {  # where Python or a library catches the exception a signal raised, and goes on
    "a library's except": "try:\n        signal.raise_signal(SIG)\n        x = 1\n    except BaseException:\n        pass",
    "a weakref callback": "class A:\n        pass\n    a = A()\n    r = weakref.ref(a, lambda ref: signal.raise_signal(SIG))\n"
                          "    del a",
}


@pytest.mark.parametrize("where", LOST)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_an_interruption_caught_on_the_way_is_raised_again(where, sig, tmp_path):
    (tmp_path / "lossy.py").write_text(
        "import signal, time, weakref\nSIG = %d\n\ndef main():\n    %s\n    time.sleep(30)\n    print('went on')\n"
        % (sig, LOST[where]))
    code = ("import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}); "
            f"sys.path[:0] = [{str(ROOT)!r}, {str(tmp_path)!r}]; from vgmusic.entry import start; start('lossy')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.returncode == (130 if sig == signal.SIGINT else 143) and "went on" not in r.stdout, r
    assert r.stderr.strip() == "interrupted: nothing was done yet", r.stderr
