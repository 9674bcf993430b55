"""The game files (vgmusic.export), read back as a game would read them, by readers that share nothing
with the writer: soundfile (libsndfile) for the samples, mutagen for the Ogg comments, vgmusic.wavloop's
RIFF walk checked against Python's `wave`, pyloudnorm for the loudness; then the seam, sample by sample.
The engine itself: tests/test_godot.py."""
import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from vgmusic.render import loop_frames, render_audio, render_wav
from vgmusic.song import Note, Section, Song, Track

from conftest import ROOT, run_script

pytest.importorskip("tinysoundfont", reason="tinysoundfont is not installed")
sf = pytest.importorskip("soundfile")
mutagen = pytest.importorskip("mutagen.oggvorbis")
pyloudnorm = pytest.importorskip("pyloudnorm")

RATE = 44100
INTRO, END = 4.0, 20.0  # beats: one bar of intro, then four bars that loop (10 s at 120 bpm)


def arranged():
    """A three-track song as an arrangement is: a flute tune, a bass under it, a drum kit; notes ring
    across both seams (the intro's last beat, the loop's last bar held to its end)."""
    tune = [Note(b * 0.5, 0.5, 72 + (b * 5) % 12, 90) for b in range(38)] + [Note(19.0, 1.0, 79, 100)]
    return Song(tracks=[Track(tune, name="Flute", program=73, role="melody"),
                        Track([n._replace(pitch=n.pitch - 24) for n in tune[::2]], name="Bass", program=33,
                              role="bass"),
                        Track([Note(b * 1.0, 0.25, 36 if b % 2 == 0 else 42, 100) for b in range(20)], name="Kit",
                              drum=True, role="drums")],
                tempos=[(0.0, 120.0)], length=END, sections=[Section(0.0, "intro"), Section(INTRO, "A")],
                loop=(INTRO, END), title="arranged")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from vgmusic.export import export_song
    folder = tmp_path_factory.mktemp("export")
    song = arranged()
    export_song(song, folder / "song.mid", split=True)
    return folder, song, json.loads((folder / "song.cue.json").read_text())


def steps(x):
    """Each frame's largest step to the next, over the channels."""
    return np.abs(np.diff(x, axis=0)).max(axis=1)


def seam_jump(x, first, last):
    """The step a player makes from frame `last` back to frame `first`."""
    return float(np.abs(x[first] - x[last]).max())


def test_cue_sheet_places_the_loop_on_its_bar_lines(exported):
    folder, song, cue = exported
    start, end = 2 * RATE, 10 * RATE  # one bar of 4/4 at 120 bpm is 2 s
    assert loop_frames(song) == (start, end)
    assert cue["loop"]["start"] == {"frames": start, "seconds": 2.0, "beats": INTRO, "bar": 2.0}
    assert cue["loop"]["length"] == {"frames": end - start, "seconds": 8.0, "beats": 16.0, "bars": 4.0}
    assert cue["intro"] == {"frames": start, "seconds": 2.0, "beats": INTRO, "bars": 1.0}
    assert cue["frames"] == end and cue["tempo_bpm"] == 120 and cue["metre"] == [4, 4] and cue["bars"] == 5
    assert [(s["label"], s["frames"], s["bar"]) for s in cue["sections"]] == [("intro", 0, 1), ("A", start, 2)]
    assert [(s["name"], s["track"], s["program"], s["drum"]) for s in cue["stems"]] == [
        ("melody", "Flute", 73, False), ("bass", "Bass", 33, False), ("drums", "Kit", 0, True)]
    offset = cue["loop"]["godot_ogg_import"]["loop_offset"]
    assert int(offset * RATE) == start  # Godot truncates seconds x rate
    names = [n for kinds in [*cue["files"].values(), *(s["files"] for s in cue["stems"])] for n in kinds.values()]
    assert len(names) == 12 and all((folder / n).is_file() and "/" not in n for n in names)


def test_every_file_read_back_has_its_loop(exported):
    from vgmusic.wavloop import read_wav
    folder, song, cue = exported
    start, end = cue["loop"]["start"]["frames"], cue["loop"]["end_frame"]
    expected = {"mix": (start, end, end), "intro": (None, None, start), "body": (0, end - start, end - start)}
    expected.update({f"stem-{s['name']}": (start, end, end) for s in cue["stems"]})
    for label, (first, stop, frames) in expected.items():
        wav, ogg = folder / f"song.{label}.wav", folder / f"song.{label}.ogg"
        ours = read_wav(wav)
        with wave.open(str(wav)) as w:  # the standard library's reader agrees with ours
            assert (w.getnframes(), w.getframerate(), w.getnchannels(), w.getsampwidth()) == (
                ours["frames"], ours["sample_rate"], ours["channels"], ours["bits"] // 8) == (frames, RATE, 2, 2)
        assert ours["loops"] == ([] if first is None else [(0, first, stop - 1)])  # forward, its last sample
        assert sf.info(str(ogg)).frames == frames and sf.info(str(ogg)).samplerate == RATE
        tags = mutagen.OggVorbis(str(ogg)).tags
        if first is None:
            assert "LOOPSTART" not in tags
        else:
            assert tags["LOOPSTART"] == [str(first)] and tags["LOOPLENGTH"] == [str(stop - first)]
            raw = ogg.read_bytes()  # RPG Maker matches the names case-sensitively
            assert f"LOOPSTART={first}".encode() in raw and f"LOOPLENGTH={stop - first}".encode() in raw


def test_the_loop_end_continues_into_the_loop_start(exported):
    """As a game plays it: from the loop's last frame back to its first is a step like any other in the
    song (at most the 99th percentile of its frame-to-frame steps), in the WAV and in the decoded Ogg; so
    is the intro's end into the loop. A plain render cut at the loop's frames is not (the test's power)."""
    folder, song, cue = exported
    start, end = cue["loop"]["start"]["frames"], cue["loop"]["end_frame"]
    for label in ("mix", "stem-melody", "stem-bass", "body"):
        for kind in ("wav", "ogg"):
            x, _ = sf.read(str(folder / f"song.{label}.{kind}"), dtype="float32")
            first, last = (0, len(x) - 1) if label == "body" else (start, end - 1)
            typical = np.percentile(steps(x), 99)
            assert seam_jump(x, first, last) <= typical, (label, kind)
            if label == "mix":
                assert seam_jump(x, start, start - 1) <= typical  # the intro leads into the loop
    plain, _ = render_audio(song, loop=False, tail=0)
    assert seam_jump(plain, start, end - 1) > 3 * np.percentile(steps(plain), 99)


def test_stems_sum_to_the_mix(exported):
    folder, song, cue = exported
    mix, _ = sf.read(str(folder / "song.mix.wav"), dtype="int16")
    stems = sum(sf.read(str(folder / f"song.stem-{s['name']}.wav"), dtype="int16")[0].astype(np.int32)
                for s in cue["stems"])
    # each file rounds to the nearest step on its own: at most half a step each apart
    assert np.abs(stems - mix).max() <= (len(cue["stems"]) + 1) / 2
    assert np.abs(mix).max() > 3000  # and they are not silence


def test_intro_and_body_play_back_to_back_as_the_whole_file(exported):
    folder, song, cue = exported
    for kind in ("wav", "ogg"):
        whole, _ = sf.read(str(folder / f"song.mix.{kind}"), dtype="float32")
        intro, _ = sf.read(str(folder / f"song.intro.{kind}"), dtype="float32")
        body, _ = sf.read(str(folder / f"song.body.{kind}"), dtype="float32")
        joined = np.concatenate([intro, body])
        assert len(intro) == cue["intro"]["frames"] and len(joined) == len(whole)
        if kind == "wav":
            assert np.array_equal(joined, whole)  # sample for sample
        else:  # each Ogg decodes on its own: no gap, and no step at the join
            assert seam_jump(joined, len(intro), len(intro) - 1) <= np.percentile(steps(joined), 99)


def test_loudness_meets_the_target_or_the_ceiling(exported):
    from vgmusic.loudness import db, true_peak
    folder, song, cue = exported
    meter = pyloudnorm.Meter(RATE)
    mix, _ = sf.read(str(folder / "song.mix.wav"), dtype="float32")
    got = meter.integrated_loudness(mix)
    peak = db(true_peak(mix))
    assert peak <= cue["loudness"]["ceiling_dbtp"] + 0.05
    # one gain: the target, unless the ceiling held the song back (then its peak is at the ceiling)
    assert got == pytest.approx(-18.0, abs=0.1) or peak == pytest.approx(-1.0, abs=0.05)
    assert cue["loudness"]["lufs"]["mix"] == pytest.approx(got, abs=0.05)
    for s in cue["stems"]:
        x, _ = sf.read(str(folder / f"song.stem-{s['name']}.wav"), dtype="float32")
        assert cue["loudness"]["lufs"][f"stem-{s['name']}"] == pytest.approx(meter.integrated_loudness(x), abs=0.05)
    ogg, _ = sf.read(str(folder / "song.mix.ogg"), dtype="float32")
    assert meter.integrated_loudness(ogg) == pytest.approx(got, abs=0.2)  # Vorbis keeps the loudness


def test_the_fast_meter_is_pyloudnorms_and_the_true_peak_is_the_oversampled_one():
    from scipy.signal import upfirdn
    from vgmusic.loudness import _interpolator, integrated_loudness, true_peak
    audio, _ = render_audio(arranged(), loop=True)
    for part in (audio, audio[:RATE], audio[: RATE // 2], audio[:, :1], 0 * audio):
        assert integrated_loudness(part, RATE) == pytest.approx(pyloudnorm.Meter(RATE).integrated_loudness(part),
                                                                abs=0.01)
    full = upfirdn(_interpolator().T.ravel(), audio, up=4, axis=0)
    assert true_peak(audio) == pytest.approx(max(np.abs(full).max(), np.abs(audio).max()), rel=1e-6)
    # a sine at a quarter of the sample rate, sampled 45 degrees off its crests: every sample at 0.707,
    # the wave itself at 1 (BS.1770's own example of a peak between the samples, 3 dB over)
    sine = np.sin(np.pi / 2 * np.arange(4000) + np.pi / 4).astype(np.float32)[:, None].repeat(2, axis=1)
    assert np.abs(sine).max() == pytest.approx(0.7071, abs=1e-4) and true_peak(sine) == pytest.approx(1, abs=0.02)


def test_a_one_track_song_is_its_own_stem_and_its_wav_is_render_wavs(tmp_path):
    from vgmusic.export import export_song
    song = arranged()
    song.tracks = song.tracks[:1]
    export_song(song, tmp_path / "one.mid", formats=("wav",))
    render_wav(song, tmp_path / "alone.wav", loop=True)
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "alone.wav").read_bytes()
    cue = json.loads((tmp_path / "one.cue.json").read_text())
    assert [s["files"] for s in cue["stems"]] == [{"wav": "one.mix.wav"}]
    assert cue["files"] == {"mix": {"wav": "one.mix.wav"}}
    assert not list(tmp_path.glob("one.stem-*")) and not list(tmp_path.glob(".*"))


def test_stem_names_are_short_and_distinct():
    from vgmusic.export import STEM_CHARS, parse_formats, stem_names
    song = Song(tracks=[Track(role="harmony"), Track(role="harmony"), Track(name="Électrique / Lead ++"),
                        Track(role="x" * 40), Track()])
    assert stem_names(song) == ["harmony", "harmony2", "lectrique-le", "x" * STEM_CHARS, "track5"]
    assert parse_formats("OGG, wav,ogg") == ("ogg", "wav") and parse_formats("") == ()
    with pytest.raises(ValueError, match="mp3"):
        parse_formats("ogg,mp3")


def test_stems_are_the_songs_files(tmp_path):
    from vgmusic.outputs import files_of, song_paths
    (tmp_path / "a.stem-bass.ogg").write_bytes(b"")
    assert tmp_path / "a.stem-bass.ogg" in files_of(tmp_path / "a.mid")
    taken = tmp_path / "20250101-120000.stem-drums.wav"
    taken.write_bytes(b"")
    import datetime
    paths = song_paths("", tmp_path, 1, now=datetime.datetime(2025, 1, 1, 12))
    assert paths == [tmp_path / "20250101-120000-2.mid"]  # a stem there takes the name


def test_predict_writes_the_game_files(tmp_path):
    """The issue's command, shortened: an intro, a loop, both formats, split; and the flags' errors."""
    out = tmp_path / "game.mid"
    r = run_script("final_fantasy_7/predict.py", "--bars", 4, "--intro", 1, "--loop", "--export", "ogg,wav",
                   "--split", "--out", out, "--seed", 3, "--no-roll", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cue = json.loads((tmp_path / "game.cue.json").read_text())
    beat = 60 / cue["tempo_bpm"]
    assert cue["intro"]["bars"] == 1 and cue["loop"]["length"]["bars"] == 4 and cue["bars"] == 5
    assert cue["sections"][0]["label"] == "intro" and cue["loop"]["start"]["seconds"] == pytest.approx(4 * beat,
                                                                                                     abs=1e-4)
    assert sf.info(str(tmp_path / "game.intro.wav")).frames == cue["intro"]["frames"]
    assert "exported" in r.stdout and "game.cue.json" in r.stdout
    page = (tmp_path / "index.html").read_text()
    assert 'class="game-player"' in page and 'href="game.cue.json"' in page and "game.body.wav" in page
    for bad, says in ((["--split", "--export", "wav"], "--split needs"), (["--export", "mp3"], "ogg, wav"),
                      (["--export", "wav", "--no-audio"], "--export needs")):
        r = run_script("final_fantasy_7/predict.py", "--bars", 1, *bad, "--out", tmp_path / "x.mid", cwd=tmp_path)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def test_the_k_weighting_and_the_interpolator_are_pyloudnorms_and_scipys():
    """The meter designs pyloudnorm's filters itself and SciPy's interpolator, so that exporting never
    imports SciPy: the same coefficients at every common rate, and the same 48 taps."""
    from scipy.signal import firwin
    from vgmusic.loudness import OVERSAMPLE, TAPS, _interpolator, k_weighting
    for rate in (22050, 32000, 44100, 48000, 96000):
        theirs = pyloudnorm.Meter(rate, filter_class="K-weighting")._filters
        for (b, a), f in zip(k_weighting(rate), (theirs["high_shelf"], theirs["high_pass"])):
            assert np.allclose(b, f.b, rtol=1e-12, atol=1e-15) and np.allclose(a, f.a, rtol=1e-12, atol=1e-15)
    h = firwin(OVERSAMPLE * TAPS, 1 / OVERSAMPLE, window=("kaiser", 5.0)) * OVERSAMPLE
    assert np.allclose(_interpolator(), h.reshape(TAPS, OVERSAMPLE).T, rtol=1e-6, atol=1e-7)


def test_exporting_imports_no_scipy(tmp_path):
    code = ("import sys; from vgmusic.export import export_song; from vgmusic.song import Note, Song, Track; "
            f"export_song(Song(tracks=[Track([Note(0, 1, 60)])], length=4.0), {str(tmp_path / 's.mid')!r}, "
            "formats=('ogg', 'wav')); print(sorted(m for m in ('pyloudnorm', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
    assert (tmp_path / "s.mix.ogg").exists() and (tmp_path / "s.cue.json").exists()


def test_composing_imports_none_of_the_export_libraries():
    code = ("import sys, vgmusic.predict, vgmusic.render; "
            "print(sorted(m for m in ('soundfile', 'mutagen', 'pyloudnorm', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
