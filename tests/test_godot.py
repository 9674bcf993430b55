"""The exported loop as a game engine reads it: a headless Godot 3 imports the WAV and the Ogg into a
project, and a GDScript reports their loop settings and lengths, which must be the cue sheet's.

The WAV's loop is Godot's importer reading the file's own `smpl` chunk; Godot's Ogg importer reads no
loop comments, so its loop offset comes from the cue sheet into NAME.mix.ogg.import, as the README tells
a developer to do. Skipped where Debian's godot3-server (or godot3) is not installed or cannot import
headless (apt-get install godot3-server; .ci/run installs it where it can)."""
import json
import os
import re
import shutil
import subprocess

import pytest

pytest.importorskip("tinysoundfont", reason="tinysoundfont is not installed")
pytest.importorskip("soundfile")
pytest.importorskip("mutagen")
pytest.importorskip("pyloudnorm")

GODOTS = ("godot3-server", "godot3", "godot")  # Debian's headless build first: it needs no display
TIMEOUT = 120  # seconds: importing two files and running the script takes about 2 s

CHECK = """extends SceneTree
func _init():
    var w = load("res://song.mix.wav")
    var frames = w.data.size() / (2 * (2 if w.stereo else 1))
    print("WAV %d %d %d %d %d %d" % [w.loop_mode, w.loop_begin, w.loop_end, frames, w.mix_rate, w.format])
    var o = load("res://song.mix.ogg")
    print("OGG %d %d %d" % [int(o.loop), int(o.loop_offset * RATE), int(round(o.get_length() * RATE))])
    quit()
"""


def godot():
    for name in GODOTS:
        exe = shutil.which(name)
        if exe:
            try:
                version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.TimeoutExpired):
                continue
            if version.startswith("3."):
                return exe
    return None


def run(exe, project, *args):
    home = project.parent / "home"  # the editor's settings and caches, not the user's
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
               XDG_CACHE_HOME=str(home / "cache"), LC_ALL="C.UTF-8")
    return subprocess.run([exe, "--path", str(project), *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=env)


def test_godot_imports_the_loop_the_cue_sheet_gives(tmp_path):
    exe = godot()
    if exe is None:
        pytest.skip("Godot 3 is not installed (apt-get install godot3-server)")
    from vgmusic.export import export_song
    from vgmusic.song import Note, Section, Song, Track
    # a flute tune over a bass, one bar of intro before three that loop, at 100 bpm (the loop starts at
    # 2.4 s: a frame that is no round number of milliseconds)
    tune = [Note(b * 0.5, 0.5, 74 + (b * 3) % 9, 90) for b in range(32)]
    song = Song(tracks=[Track(tune, name="Flute", program=73, role="melody"),
                        Track([n._replace(pitch=n.pitch - 24) for n in tune[::4]], name="Bass", program=33,
                              role="bass")],
                tempos=[(0.0, 100.0)], length=16.0, sections=[Section(0.0, "intro"), Section(4.0, "A")],
                loop=(4.0, 16.0))
    export_song(song, tmp_path / "song.mid", preview=False)
    cue = json.loads((tmp_path / "song.cue.json").read_text())
    project = tmp_path / "project"
    project.mkdir()
    (project / "project.godot").write_text('config_version=4\n\n[application]\nconfig/name="loop check"\n')
    for name in ("song.mix.wav", "song.mix.ogg"):
        shutil.copy(tmp_path / name, project / name)
    ogg = cue["loop"]["godot_ogg_import"]  # what the README says to put in the Ogg's import settings
    (project / "song.mix.ogg.import").write_text(
        '[remap]\n\nimporter="ogg_vorbis"\ntype="AudioStreamOGGVorbis"\n\n[params]\n\n'
        f'loop={str(ogg["loop"]).lower()}\nloop_offset={ogg["loop_offset"]!r}\n')
    (project / "check.gd").write_text(CHECK.replace("RATE", str(cue["sample_rate"])))
    try:
        imported = run(exe, project, "--editor", "--quit")
    except subprocess.TimeoutExpired:
        pytest.skip(f"{exe} did not finish importing within {TIMEOUT} s here")
    if imported.returncode or not list((project / ".import").glob("song.mix.wav-*.sample")):
        pytest.skip(f"{exe} cannot import headless here (exit status {imported.returncode})")
    shown = run(exe, project, "-s", "check.gd").stdout
    wav = re.search(r"^WAV (-?\d+) (-?\d+) (-?\d+) (-?\d+) (-?\d+) (-?\d+)$", shown, re.M)
    ogg = re.search(r"^OGG (-?\d+) (-?\d+) (-?\d+)$", shown, re.M)
    assert wav and ogg, shown
    mode, begin, end, frames, rate, bits = map(int, wav.groups())
    start, stop = cue["loop"]["start"]["frames"], cue["loop"]["end_frame"]
    assert (mode, begin, frames, rate, bits) == (1, start, cue["frames"], cue["sample_rate"], 1)  # forward, PCM16
    # Godot 3 takes the smpl chunk's last looped sample as the frame it jumps back at: one frame (23 us)
    # short of the loop, a step no larger than any other in the song
    assert end in (stop - 1, stop)
    looping, offset, length = map(int, ogg.groups())
    assert looping == 1 and offset == start and abs(length - cue["frames"]) <= 1
