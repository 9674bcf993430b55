"""predict.py on songs it did not compose: --melody arranges a given tune, --edit composes one track of an
earlier song anew (or some bars of it) and keeps every other note. Real MIDI in, real MIDI out, read back
with mido; real one-line refusals."""
import json

import mido
import pytest

from conftest import run_script
from vgmusic.midi import write_midi
from vgmusic.song import Note, Song, Track

GAME = "zelda_ocarina_of_time"


def tracks(path):
    """Per MIDI track after the conductor: (channel set, program set, [(onset beats, pitch)])."""
    midi = mido.MidiFile(path)
    out = []
    for track in midi.tracks[1:]:
        now, notes = 0, []
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity:
                notes.append((now / midi.ticks_per_beat, msg.note))
        out.append(({m.channel for m in track if hasattr(m, "channel")},
                    {m.program for m in track if m.type == "program_change"}, notes))
    return out


def predict(tmp_path, *flags):
    run = run_script(f"{GAME}/predict.py", "--no-audio", "--no-page", "--data-dir", tmp_path / "none", *flags,
                     cwd=tmp_path)
    return run


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An arranged song predict.py wrote (8 bars, every track), its MIDI and record."""
    folder = tmp_path_factory.mktemp("earlier")
    run = predict(folder, "--bars", "8", "--seed", "4", "--out", folder / "a.mid")
    assert run.returncode == 0, run.stderr
    return folder / "a.mid"


def test_edit_composes_one_track_anew_and_keeps_every_other_note(earlier, tmp_path):
    run = predict(tmp_path, "--edit", earlier, "--track", "bass", "--seed", "7", "--out", tmp_path / "b.mid")
    assert run.returncode == 0, run.stderr
    before, after = tracks(earlier), tracks(tmp_path / "b.mid")
    record = json.loads((tmp_path / "b.song.json").read_text())
    roles = [t["role"] for t in record["song"]["tracks"]]
    assert roles == ["melody", "harmony", "bass", "drums"] and len(before) == len(after) == 4
    for role, a, b in zip(roles, before, after):
        assert a[:2] == b[:2]  # channels and programs stay
        assert (a[2] != b[2]) == (role == "bass"), role  # the bass changed, nothing else did
    assert record["song"]["meta"]["edit"] == {"from": "a.mid", "track": "bass", "bars": None, "seed": 7}


def test_an_edit_without_a_seed_prints_the_one_that_repeats_it(earlier, tmp_path):
    run = predict(tmp_path, "--edit", earlier, "--track", "harmony", "--out", tmp_path / "r.mid")
    assert run.returncode == 0, run.stderr
    seed = int(run.stdout.split("(--seed ")[1].split()[0])
    again = predict(tmp_path, "--edit", earlier, "--track", "harmony", "--seed", seed, "--out", tmp_path / "s.mid")
    assert again.returncode == 0 and (tmp_path / "r.mid").read_bytes() == (tmp_path / "s.mid").read_bytes()
    assert json.loads((tmp_path / "r.song.json").read_text())["song"]["meta"]["edit"]["seed"] == seed


def test_edit_bars_changes_only_those_bars(earlier, tmp_path):
    changed = set()
    for seed in (1, 2, 3):  # one seed could by chance give the same drums back
        out = tmp_path / f"d{seed}.mid"
        run = predict(tmp_path, "--edit", earlier, "--track", "drums", "--edit-bars", "3-4", "--seed", seed,
                      "--out", out)
        assert run.returncode == 0, run.stderr
        before, after = tracks(earlier)[3][2], tracks(out)[3][2]
        outside = [n for n in before if not 8 <= n[0] < 16]  # bars 3-4 of 4/4 are beats 8-16
        assert [n for n in after if not 8 <= n[0] < 16] == outside
        changed.add(tuple(n for n in after if 8 <= n[0] < 16) != tuple(n for n in before if 8 <= n[0] < 16))
    assert True in changed
    assert tracks(earlier)[:3] == tracks(tmp_path / "d1.mid")[:3]


@pytest.mark.parametrize("flags, message", [
    (["--track", "bass"], "a.song.json: not found: --edit needs the record"),
    ([], "--edit needs --track"),
    (["--track", "bass", "--edit-bars", "12-14"], "has 8 bars"),
])
def test_edit_refusals_are_one_line(earlier, tmp_path, flags, message):
    song = earlier
    if "not found" in message:
        song = tmp_path / "a.mid"
        song.write_bytes(earlier.read_bytes())  # the MIDI without its record
    run = predict(tmp_path, "--edit", song, *flags, "--out", tmp_path / "x.mid")
    assert run.returncode != 0 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert not (tmp_path / "x.mid").exists()


def test_melody_arranges_a_given_tune_note_for_note(tmp_path):
    """A tune in 3/4, two bars and a half long, on a flute: it is arranged in its metre, every note kept."""
    tune = [Note(0, 1, 67), Note(1, 1, 69), Note(2, 1, 71), Note(3, 2, 72), Note(5, 1, 71), Note(6, 1.5, 69)]
    bass = [Note(0, 3, 43), Note(3, 3, 48)]  # a low second track: the tune is the higher one
    write_midi(Song(tracks=[Track(bass, program=32), Track(tune, program=73)], metre=(3, 4), tempos=[(0.0, 100.0)]),
               tmp_path / "tune.mid")
    run = predict(tmp_path, "--melody", tmp_path / "tune.mid", "--seed", "1", "--out", tmp_path / "arr.mid")
    assert run.returncode == 0, run.stderr
    out = tracks(tmp_path / "arr.mid")
    assert len(out) == 4 and [c for c, _, _ in out] == [{0}, {1}, {2}, {9}]
    shift = out[0][2][0][1] - 67  # the melody may move by whole octaves into the ensemble's register
    assert shift % 12 == 0 and out[0][2] == [(n.onset, n.pitch + shift) for n in tune]
    midi = mido.MidiFile(tmp_path / "arr.mid")
    sig = [m for m in midi.tracks[0] if m.type == "time_signature"]
    assert (sig[0].numerator, sig[0].denominator) == (3, 4) and midi.length == pytest.approx(9 * 60 / 100)
    record = json.loads((tmp_path / "arr.song.json").read_text())
    assert record["song"]["meta"]["melody"] == "tune.mid" and record["song"]["meta"]["arrangement"]["ensemble"]


def test_melody_refuses_a_file_without_a_tune(tmp_path):
    write_midi(Song(tracks=[Track([Note(0, 1, 36)], drum=True)]), tmp_path / "drums.mid")
    run = predict(tmp_path, "--melody", tmp_path / "drums.mid", "--out", tmp_path / "x.mid")
    assert run.returncode != 0 and "drums.mid: no pitched notes to arrange" in run.stderr
    assert run.stderr.count("\n") == 1 and not (tmp_path / "x.mid").exists()
    run = predict(tmp_path, "--melody", tmp_path / "missing.mid", "--prime", tmp_path / "drums.mid")
    assert run.returncode != 0 and "one of --edit, --melody and --prime" in run.stderr
