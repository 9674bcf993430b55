"""The music figures on hand-computed cases, real MIDI in, and the evaluate command end to end."""
import json
import math

import mido
import numpy as np
import pytest
from conftest import run_script

from vgmusic.evaluate import HELDOUT, TRAIN, evaluate_sets, read_folder, read_midi_notes
from vgmusic.metrics import (bar_similarity, check_targets, compare_sets, originality, overlap, song_features,
                             structure, summarize)
from vgmusic.midi import write_midi
from vgmusic.song import Note, Song, Track


def quarters(pitches, start=0.0, length=1.0):
    return [[start + i * length, length, p] for i, p in enumerate(pitches)]


def melody_song(notes, bpm=120.0, end=None):
    """A one-track Song of [onset, duration, pitch] lists, as the models write them."""
    return Song(tracks=[Track([Note(*n) for n in notes])], tempos=[(0.0, bpm)], length=end)


# ---- reading MIDI

def test_midi_notes_read_back_in_beats_without_drums(tmp_path):
    notes = [[0, 1, 60], [0, 1, 64], [1, 0.5, 67], [2.5, 0.25, 72], [4, 2, 48]]
    midi = mido.MidiFile(write_midi(melody_song(notes, bpm=90), tmp_path / "a.mid"))
    drums = mido.MidiTrack([mido.Message("note_on", note=36, velocity=90, channel=9, time=0),
                            mido.Message("note_off", note=36, velocity=0, channel=9, time=480)])
    midi.tracks.append(drums)
    midi.save(tmp_path / "b.mid")
    back = read_midi_notes(tmp_path / "b.mid")
    np.testing.assert_allclose([n[:3] for n in back], sorted(notes))
    assert all(isinstance(n, Note) and n.velocity == 80 for n in back)


def test_the_melody_track_is_read_not_the_first(tmp_path):
    """A bass on the first track, the tune above it, drums: the melody's notes, velocities and all."""
    bass = Track([Note(i * 2.0, 2.0, 36 + i % 3, 100) for i in range(8)], program=33)
    tune = Track([Note(i * 0.5, 0.5, 72 + i % 5, 50 + i) for i in range(32)], program=73)
    drums = Track([Note(i * 1.0, 0.25, 42, 90) for i in range(16)], drum=True)
    write_midi(Song(tracks=[bass, tune, drums]), tmp_path / "band.mid")
    assert read_midi_notes(tmp_path / "band.mid") == tune.notes
    write_midi(Song(tracks=[drums], length=16.0), tmp_path / "drums.mid")
    assert read_midi_notes(tmp_path / "drums.mid") == []  # nothing pitched


def test_unreadable_midi_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd not really a midi file")
    with pytest.raises(ValueError, match=r"bad\.mid: not a readable MIDI file") as e:
        read_midi_notes(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"missing\.mid: cannot be read"):
        read_midi_notes(tmp_path / "missing.mid")


def test_a_folder_skips_what_it_cannot_read(tmp_path, capsys):
    folder = tmp_path / "generated"
    write_midi(melody_song(quarters([60, 62, 64])), folder / "b good.mid")
    write_midi(melody_song([], end=4.0), folder / "c silent.mid")
    (folder / "a broken.mid").write_bytes(b"not midi")
    (folder / "notes.txt").write_text("not a song")
    names, songs = read_folder(folder)
    assert names == ["b good.mid"] and [n[:3] for n in songs[0]] == [(0.0, 1.0, 60), (1.0, 1.0, 62), (2.0, 1.0, 64)]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith(f"warning: skipping {folder / 'a broken.mid'}: not a readable MIDI")
    assert err[1] == f"warning: skipping {folder / 'c silent.mid'}: no pitched notes"
    (folder / "b good.mid").unlink()
    with pytest.raises(ValueError, match="no .mid file with pitched notes"):
        read_folder(folder)
    with pytest.raises(ValueError, match="folder of generated songs not found"):
        read_folder(tmp_path / "nowhere")


# ---- per-song figures, hand-computed

def test_scale_of_quarter_notes():
    f = song_features(quarters([60, 62, 64, 65, 67, 69, 71, 72]))  # two bars of C major
    assert (f["pitch_range"], f["n_pitches"], f["n_pitch_classes"]) == (12, 8, 7)
    # C twice in 8 notes, six others once: 0.25*2 + 6 * 0.125*3
    assert f["pitch_class_entropy"] == pytest.approx(2.75)
    assert f["scale_consistency"] == 1.0 and f["leap_share"] == 0.0
    assert f["mean_abs_interval"] == pytest.approx(12 / 7)
    assert (f["polyphony"], f["polyphony_rate"], f["note_density"], f["empty_beat_rate"]) == (1, 0, 1, 0)
    assert f["groove_consistency"] == 1.0  # two identical bars (muspy 0.5.0 says 0.958)
    assert f["duration_hist"] == f["ioi_hist"] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]  # all "<=1 beat"
    assert f["longest_repeat"] == 1 and f["bars"] == 2


def test_chord_rest_and_leap():
    # a C-E dyad for two beats, a beat of rest, then C5: one bar
    f = song_features([[0, 2, 60], [0, 2, 64], [3, 1, 72]])
    assert f["polyphony"] == pytest.approx((24 * 2 + 12) / 36)  # pitches sounding / steps with sound
    assert f["polyphony_rate"] == pytest.approx(0.5)
    assert f["empty_beat_rate"] == pytest.approx(0.25)  # beat 3 of 4 is silent
    assert f["note_density"] == pytest.approx(0.5)
    assert (f["mean_abs_interval"], f["leap_share"]) == (8, 1.0)  # melody line: E4 -> C5
    assert f["duration_hist"] == pytest.approx([0, 0, 0, 0, 1 / 3, 0, 2 / 3, 0, 0, 0])
    assert f["ioi_hist"] == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]  # one gap of 3 beats
    assert f["groove_consistency"] is None and f["return_share"] is None  # one bar: no neighbours


def test_scale_consistency_whole_song_and_in_windows():
    white = [60, 62, 64, 65, 67, 69, 71, 72] * 2
    chromatic = ([61, 62, 60] * 6)[:16]  # C#, D, C: no major or minor scale holds all three
    f = song_features(quarters(white + chromatic, length=0.5))
    # pitch classes: C 9, C# 6, D 7, E F G A B 2 each; C major holds 26 of 32
    assert f["scale_consistency"] == pytest.approx(26 / 32)
    # window 1 is all C major; window 2 (C# 6, D 5, C 5) holds at most 11 of 16 in one scale
    assert f["scale_consistency_window"] == pytest.approx((1 + 11 / 16) / 2)


def test_longest_repeat_counts_identical_events():
    f = song_features(quarters([60, 60, 60, 60, 60, 62]))
    assert f["longest_repeat"] == 5
    chords = [[t, 1, p] for t in range(3) for p in (60, 64)] + [[3, 2, 60], [3, 2, 64]]
    assert song_features(chords)["longest_repeat"] == 3  # the fourth chord is longer


def test_leading_empty_bars_are_dropped_but_a_pickup_stays():
    assert song_features(quarters([60, 62, 64, 65], start=8)) == song_features(quarters([60, 62, 64, 65]))
    pickup = song_features(quarters([60, 62, 64, 65], start=3))
    assert pickup["bars"] == 2 and pickup["empty_beat_rate"] == pytest.approx(3 / 7)  # 3 silent of 7 beats


def test_bad_notes_are_refused():
    with pytest.raises(ValueError, match="no notes"):
        song_features([])
    with pytest.raises(ValueError, match="0-127"):
        song_features([[0, 1, 200]])


# ---- structure

def bar(k, start):
    """Bar k of a theme: four quarters whose pattern differs from every other k's, even transposed."""
    return quarters([60 + k, 64 + 2 * k, 67 - k, 72 + 3 * k], start=start)


def song(bar_ids):
    notes = []
    for i, k in enumerate(bar_ids):
        notes += bar(k, 4 * i) if k is not None else []
    return notes


def test_bar_similarity_by_hand():
    a = {(0, 60), (12, 62), (24, 64), (36, 65)}
    assert bar_similarity(a, {(0, 60), (12, 62), (24, 64), (36, 67)}) == pytest.approx(3 / 5)
    assert bar_similarity(a, {(s, p + 2) for s, p in a}) == 1.0  # a sequence: same bar a tone higher
    assert bar_similarity({(0, 60)}, {(0, 62)}) == 0.0  # one note is too little to call a transposition
    assert bar_similarity(a, set()) == 0.0


def test_small_forms_by_hand():
    aba = structure(song([0, 1, 0]))  # bar 3 returns to bar 1 after leaving it
    assert (aba["return_share"], aba["loop_share"]) == (1 / 2, 0)
    aaba = structure(song([0, 0, 1, 0]))  # bar 2 loops; bar 4 returns (bar 3 departed)
    assert aaba["return_share"] == pytest.approx(1 / 3) and aaba["loop_share"] == pytest.approx(1 / 3)
    rest = structure(song([0, None, 0]))  # an empty bar is no departure
    assert (rest["return_share"], rest["loop_share"]) == (0, 0)
    m = np.array(aba["matrix"])
    assert m.shape == (3, 3) and (m == m.T).all() and m[0, 2] == 1.0 and m[0, 1] < 0.5
    seq = song([0, 1]) + [[n[0] + 8, n[1], n[2] + 2] for n in bar(0, 0)]  # bar 3 = bar 1 a tone up
    assert structure(seq)["return_share"] == 1 / 2


def test_a_theme_scores_above_wandering_and_above_one_stuck_bar():
    theme = structure(song([0, 1, 2, 3] * 2 + [4, 5, 6, 7] + [0, 1, 2, 3]))  # AABA of 4-bar phrases
    assert theme["return_share"] == pytest.approx(8 / 15) and theme["loop_share"] == 0
    rng = np.random.default_rng(0)
    wander = structure([[i / 2, 0.5, int(p)] for i, p in enumerate(rng.integers(48, 85, 16 * 8))])
    stuck = structure(song([0] * 16))
    assert (stuck["return_share"], stuck["loop_share"]) == (0, 1)
    assert theme["return_share"] > wander["return_share"] + 0.3 and theme["return_share"] > stuck["return_share"]


# ---- originality

REF = [[i * 1.0, 1.0, p] for i, p in enumerate([60, 62, 64, 60, 67, 65, 64, 62, 60, 72, 71, 69, 67, 65, 64, 62,
                                                59, 60, 64, 67, 72, 76, 74, 72])]


def test_transposed_shifted_copy_is_fully_copied():
    copy = [[n[0] + 6.5, n[1], n[2] + 5] for n in REF]
    assert originality(copy, [REF]) == {"copied_share": 1.0, "longest_match": len(REF)}


def test_disjoint_song_copies_nothing():
    own = [[i * 0.5, 0.5, 60 + (i * 5) % 13] for i in range(30)]  # eighths; REF moves in quarters
    assert originality(own, [REF]) == {"copied_share": 0.0, "longest_match": 1}


def test_one_quotation_of_ten_notes():
    before = [[i * 0.5, 0.5, 50 + (i * 5) % 13] for i in range(15)]
    quote = [[7.5 + j * 1.0, 1.0, p + 3] for j, p in enumerate(n[2] for n in REF[4:14])]  # 10 notes, a 3rd up
    after = [[17.5 + i * 0.5, 0.5, 50 + (i * 7) % 11] for i in range(15)]
    result = originality(before + quote + after, [REF], n=8)
    assert result["longest_match"] == 10
    assert result["copied_share"] == pytest.approx(3 / 33)  # 3 of the 40 notes' 33 eight-note runs
    assert originality(REF[:5], [REF])["copied_share"] is None  # fewer than 8 notes: no run


# ---- between sets

def test_overlap_by_hand():
    assert overlap([0.3, 0.5, 0.9], [0.3, 0.5, 0.9]) == pytest.approx((1.0, 0.0), abs=1e-6)
    # one distance each, kernels at the width floor h = 1% of the largest: OA = 2 * Phi(-d / 2h)
    h = 0.01 * 1.01
    assert overlap([1.0], [1.01])[0] == pytest.approx(1 + math.erf(-0.01 / (2 * h) / math.sqrt(2)), abs=2e-3)
    assert overlap([1.0, 1.1, 0.9], [9.0, 9.5, 8.7])[0] < 1e-3


def features(rng, mean, n):
    return [{"note_density": float(rng.normal(mean, 0.2)), "groove_consistency": float(rng.normal(0.9, 0.02)),
             "duration_hist": rng.dirichlet([5, 5, 1]).tolist(), "ioi_hist": rng.dirichlet([2, 2, 2]).tolist(),
             "scale_consistency": float(rng.uniform(0.9, 1))} for _ in range(n)]


def test_sets_from_one_distribution_overlap_and_far_sets_do_not():
    rng = np.random.default_rng(1)
    reference = features(rng, 1.0, 40)
    same, far = compare_sets(features(rng, 1.0, 40), reference), compare_sets(features(rng, 5.0, 40), reference)
    assert same["oa"]["note_density"] > 0.8 and far["oa"]["note_density"] < 0.05
    assert far["kld"]["note_density"] > 10 * same["kld"]["note_density"]
    assert same["oa"]["pitch_range"] is None  # a figure no song has
    rhythm = [same["oa"][k] for k in ("note_density", "duration_hist", "ioi_hist", "groove_consistency")]
    assert same["rhythm_oa"] == pytest.approx(np.mean(rhythm)) and far["rhythm_oa"] < same["rhythm_oa"]


def test_targets_pass_and_fail_at_their_bounds():
    def summary(**means):
        return {k: {"mean": v, "min": v, "max": v} for k, v in means.items()}
    train = summary(n_pitches=10.0, loop_share=0.10)
    held = summary(copied_share=0.01)
    good = summary(scale_consistency=0.95, return_share=0.4, leap_share=0.1, n_pitches=15.0, rhythm_oa=0.85,
                   copied_share=0.06, longest_match=12, loop_share=0.12)
    rows = check_targets(good, train, held)
    assert len(rows) == 8 and all(passed for *_, passed in rows), rows
    bad = summary(scale_consistency=0.5, return_share=0.1, leap_share=0.4, n_pitches=15.1, rhythm_oa=0.5,
                  copied_share=0.07, longest_match=13, loop_share=0.13)
    assert not any(passed for *_, passed in check_targets(bad, train, held))
    assert check_targets({}, train, held)[0][3] is None  # nothing measured: neither pass nor fail


# ---- the command

def melody_of(song):
    from vgmusic.encode import Event
    return Event(parts="melody").song_notes(song)


def test_evaluate_sets_on_chorales(corpus_data):
    from vgmusic.encode import load_songs
    songs = [melody_of(s) for s in load_songs(corpus_data, "chorales_a")]
    train, held = songs[:3], songs[3:]
    copies = [[[n[0], n[1], n[2] + 2] for n in s] for s in train]
    result = evaluate_sets({"copies": copies}, train, held)
    assert list(result["sets"]) == ["copies", HELDOUT, TRAIN]
    assert result["sets"]["copies"]["summary"]["copied_share"]["mean"] == 1.0
    targets = {name: passed for name, _, _, passed in result["targets"]["copies"]}
    assert targets["longest_match max"] is False and targets["copied_share mean"] is False
    # the judge (vgmusic/judge.py): copies of three of the four human songs share their rhythm and intervals
    judged = result["judge"]["sets"]
    assert list(judged) == ["copies", HELDOUT, TRAIN, "all human songs"]
    assert min(judged["copies"]["oa"].values()) > 0.8 and judged[HELDOUT]["against"] == TRAIN
    assert judged["copies"]["classifier"]["songs"] == [4, 3]
    json.dumps(result)  # JSON-ready
    with pytest.raises(ValueError, match="reserved"):
        evaluate_sets({TRAIN: copies}, train, held)


def test_command_writes_report_for_generated_sets(corpus_data, tmp_path):
    from vgmusic.encode import load_songs
    stuck, copies = tmp_path / "stuck", tmp_path / "copies"
    for i in range(3):
        write_midi(melody_song(song([i] * 12)), stuck / f"{i}.mid")
    for i, s in enumerate(load_songs(corpus_data, "chorales_a")):
        write_midi(melody_song([[n[0], n[1], n[2] - 3] for n in melody_of(s)]), copies / f"{i}.mid")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "eval" / "chorales"
    r = run_script("evaluate.py", "--game", "chorales_a", "--data-dir", corpus_data, "--generated", stuck, copies,
                   "--label", "stuck model", "copy model", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.with_suffix(".json").read_text())
    assert list(result["sets"]) == ["stuck model", "copy model", HELDOUT, TRAIN]
    assert result["split"].startswith("default split")
    stuck_summary = result["sets"]["stuck model"]["summary"]
    assert stuck_summary["loop_share"]["mean"] == 1.0 and stuck_summary["return_share"]["mean"] == 0.0
    assert result["sets"]["copy model"]["summary"]["longest_match"]["max"] > 12
    md = out.with_suffix(".md").read_text()
    assert "| return_share mean | >= 0.35 | 0 FAIL |" in md and "### groove_consistency" in md
    # every IOI of the stuck model is a quarter: the judge's table says so
    assert result["judge"]["sets"]["stuck model"]["shares"]["quarter"] == 1.0
    assert "## Rhythm and phrase" in md and "| stuck model | 141 | 0.000 | 0.000 | 0.000 | 0.000 | 1.000 |" in md
    import matplotlib.image
    assert matplotlib.image.imread(out.with_suffix(".png")).shape[1] > 800

    # the split a model's sidecar names wins over the default one
    songs = load_songs(corpus_data, "chorales_a")
    model = tmp_path / "model"
    entry = lambda s: [s.meta["source"], s.meta["file"], s.meta["sha256"]]  # noqa: E731
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"songs": {"train": [entry(s) for s in songs[:2]],
                                                            "val": [entry(s) for s in songs[2:]]}}))
    r = run_script("evaluate.py", "--game", "chorales_a", "--data-dir", corpus_data, "--model-dir", model,
                   "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["split"].endswith("model.json") and len(result["sets"][TRAIN]["songs"]) == 2

    # bad input: one line each, no traceback
    (model / "model.json").write_text(json.dumps({"songs": {"train": [entry(s) for s in songs[:2]],
                                                            "val": [[songs[2].meta["source"], songs[2].meta["file"],
                                                                     "0"]]}}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.mid").write_bytes(b"not midi")
    for args, message in [(["--model-dir", model], "has changed since"),
                          (["--generated", tmp_path / "broken"], "no .mid file with pitched notes"),
                          (["--generated", tmp_path / "empty"], "no .mid file"),
                          (["--generated", stuck, "--label", "a", "b"], "2 --label names for 1")]:
        r = run_script("evaluate.py", "--game", "chorales_a", "--data-dir", corpus_data, "--out", out, *args,
                       cwd=tmp_path)
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
        if tmp_path / "broken" in args:  # the unreadable file is skipped, named, before the folder fails
            assert f"warning: skipping {tmp_path / 'broken' / 'x.mid'}: not a readable MIDI file" in r.stderr


def test_real_held_out_songs_return_to_their_themes(shared_songs, tmp_path):
    """On the original songs: human melodies hold themes; the same rhythms with shuffled pitches do not."""
    from vgmusic.config import GAMES
    from vgmusic.encode import load_songs, split_songs
    from vgmusic.evaluate import melodies
    from vgmusic.extract import extract
    extract(shared_songs, tmp_path, games=["pokemon_red_blue_yellow"], progress=False)
    held_out = GAMES["pokemon_red_blue_yellow"]["val_songs"]
    train, held = split_songs(load_songs(tmp_path, "pokemon_red_blue_yellow"), 0.15, held_out)
    _, held_notes = melodies(held)
    _, train_notes = melodies(train)
    rng = np.random.default_rng(0)
    shuffled = [[[n[0], n[1], int(p)] for n, p in zip(s, rng.permutation([n[2] for n in s]))] for s in held_notes]
    human = summarize([dict(song_features(s), **originality(s, train_notes)) for s in held_notes])
    assert human["return_share"]["min"] > 0.3
    assert max(structure(s)["return_share"] for s in shuffled) < human["return_share"]["min"] - 0.2
    assert human["copied_share"]["max"] < 0.05 and human["scale_consistency"]["min"] > 0.92
