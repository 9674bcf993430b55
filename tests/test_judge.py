"""The rhythm and phrase judge: rhythm classes and shares by hand, the window features, folds that keep
songs apart, and a two-sample test that tells a rhythm collapsed onto eighths from real music while it
cannot tell two halves of the same music apart."""
import numpy as np
import pytest

from vgmusic import judge
from vgmusic.metrics import _grid, melody_line
from vgmusic.song import Note


def names(steps):
    return [judge.NAMES[i] for i in judge.time_classes(steps)]


def test_rhythm_classes_in_grid_steps():
    assert names([3, 6, 12]) == ["sixteenth", "eighth", "quarter"]
    assert names([9, 18, 36, 72]) == ["dotted"] * 4
    assert names([4, 8, 16, 20, 28]) == ["triplet"] * 5  # on the triplet grid, off the duple one
    assert names([24, 48, 60, 96]) == ["long"] * 4
    assert names([1, 2]) == ["short"] * 2
    assert names([5, 7, 10, 15, 21, 30]) == ["other"] * 6  # off both grids, or tied duple lengths
    with pytest.raises(ValueError, match="at least one grid step"):
        judge.time_classes([0])


def test_shares_of_a_hand_made_melody():
    # a C-E dyad (the top line reads E), then eighth, eighth, triplet eighths, dotted quarter, sixteenth...
    onsets = [0, 0.5, 1, 4 / 3, 5 / 3, 2, 3.5, 3.75, 4]
    pitches = [64, 64, 65, 67, 79, 77, 77, 76, 76]
    notes = [Note(0.0, 0.5, 60)] + [Note(o, 0.25, p) for o, p in zip(onsets, pitches)]
    on, dur, pitch = judge.melody(notes)
    m_on, m_pitch = melody_line(*_grid(notes, 4)[::2])
    assert on.tolist() == m_on.tolist() and pitch.tolist() == m_pitch.tolist()  # metrics.py's melody line
    assert on.tolist() == [0, 6, 12, 16, 20, 24, 42, 45, 48] and pitch[0] == 64 and dur[0] == 3
    d = judge.distributions([notes], [notes])
    s = d["shares"]
    # IOIs 6 6 4 4 4 18 3 3: two eighths, three triplets, one dotted, two sixteenths
    assert (s["iois"], s["eighth"], s["triplet"], s["dotted"], s["sixteenth"]) == (8, 2 / 8, 3 / 8, 1 / 8, 2 / 8)
    # intervals 0 +1 +2 +12 -2 0 -1 0: three repeats, one leap (+12 > 7)
    assert (s["repeated_pitch"], s["leap"], s["duration_sixteenth"]) == (3 / 8, 1 / 8, 1.0)
    assert d["oa"] == {"ioi": 1.0, "duration": 1.0, "interval": 1.0} and d["kld"]["ioi"] == 0.0
    counts = d["counts"]["interval"]
    assert len(counts) == 27 and counts[13 + 12] == 1 and counts[13] == 3  # +12 is its own bin, 0 the middle
    wide = [Note(0.0, 1.0, 40), Note(1.0, 1.0, 80), Note(2.0, 1.0, 41)]
    assert judge.pooled([wide])["interval"][[0, 26]].tolist() == [1, 1]  # beyond an octave: the tails, pooled


def test_overlap_and_kl():
    assert judge.compare([5, 5, 0], [5, 5, 0]) == (1.0, 0.0)
    oa, kl = judge.compare([10, 0], [0, 10])
    assert oa == 0.0 and kl > 1
    # KL(reference || set) punishes the set for lacking what the reference has more than for adding
    lacks = judge.compare([50, 50, 0], [40, 40, 20])[1]
    adds = judge.compare([40, 40, 20], [50, 50, 0])[1]
    assert lacks > adds > 0
    assert judge.compare([0, 0], [1, 2]) == (None, None)


def bars_of_quarters(pitches, start=0.0):
    return [Note(start + i, 1.0, p) for i, p in enumerate(pitches)]


def test_window_features_by_hand_and_transposition_invariant():
    notes = bars_of_quarters([60, 62, 64, 65] * 4 + [67] * 5)  # 4 bars, then a partial fifth bar
    w = judge.windows(notes)
    assert w.shape == (1, len(judge.FEATURES))  # the partial window is left out
    f = dict(zip(judge.FEATURES, w[0]))
    assert f["IOI quarter"] == 1.0 and f["duration quarter"] == 1.0 and f["onsets per beat"] == 1.0
    assert f["rest share"] == 0.0 and f["onsets on the beat"] == 1.0 and f["syncopations"] == 0.0
    assert f["pitch range"] == 5 and f["pitch classes"] == 4 and f["longest equal-IOI run"] == 1.0
    # intervals +2 +2 +1 -5, four times over, less the last -5
    assert [f[k] for k in ("interval +2", "interval +1", "interval -7..-5")] == pytest.approx([8 / 15, 4 / 15, 3 / 15])
    up = [Note(n.onset, n.duration, n.pitch + 7) for n in notes]
    np.testing.assert_array_equal(judge.windows(up), w)
    # off-beat notes held across the beat: every onset off the beat, every one syncopated
    sync = [Note(0.5 + i, 0.75, 60 + i % 3) for i in range(16)]
    f = dict(zip(judge.FEATURES, judge.windows(sync)[0]))
    assert f["onsets on the off-beat eighth"] == 1.0 and f["syncopations"] == 1.0
    assert f["rest share"] == pytest.approx(1 - (15 * 9 + 6) / 192)  # the last note is cut at the window's end


def test_folds_never_put_a_song_on_both_sides():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(12), rng.integers(1, 9, 12))
    labels = (groups >= 5).astype(int)
    folds = judge.song_folds(labels, groups, 4, seed=0)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(groups)))  # every window tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(labels[test]) == {0, 1}  # stratified: both sides in every test fold
    assert [t.tolist() for _, t in folds] == [t.tolist() for _, t in judge.song_folds(labels, groups, 4, seed=0)]


@pytest.fixture(scope="module")
def chorales():
    """The soprano lines of 40 Bach chorales in 4/4 from music21's corpus (every install has them)."""
    from music21 import corpus
    songs = []
    for path in sorted(p for p in corpus.getComposer("bach") if p.name.startswith("bwv")):
        score = corpus.parse(path)
        ts = score.recurse().getElementsByClass("TimeSignature")
        if ts and ts[0].ratioString == "4/4":
            songs.append([Note(float(n.offset), float(n.quarterLength), max(p.midi for p in n.pitches))
                          for n in score.parts[0].flatten().notes])
        if len(songs) == 40:
            return songs
    raise ValueError("fewer than 40 chorales in 4/4 in music21's corpus")


def all_eighths(notes):
    """The same tune, its pitches cycled through eighth notes for as long as the song lasts: only the
    rhythm changes."""
    end = max(n.onset + n.duration for n in notes)
    return [Note(i * 0.5, 0.5, notes[i % len(notes)].pitch) for i in range(int(end * 2))]


def test_collapsed_rhythm_is_told_apart_and_halves_of_real_songs_are_not(chorales):
    eighths = [all_eighths(s) for s in chorales[::2]]
    apart = judge.two_sample(chorales[1::2], eighths)
    with_window = sum(len(judge.windows(s)) > 0 for s in chorales[1::2])  # a chorale under 4 bars has none
    assert apart["auc"] > 0.95 and apart["songs"] == [with_window, 20] and apart["folds"] == judge.FOLDS
    halves = judge.calibrate(chorales)
    assert halves["splits"] == judge.SPLITS and abs(halves["auc"] - 0.5) < 0.12, halves
    # deterministic: the same songs give the same figures
    assert judge.two_sample(chorales[1::2], eighths) == apart
    assert judge.calibrate(chorales[:12], splits=2) == judge.calibrate(chorales[:12], splits=2)
    # and the pooled shares say why: every IOI an eighth, against a chorale's quarters
    assert judge.distributions(eighths, chorales)["shares"]["eighth"] == 1.0
    assert judge.distributions(chorales, None)["shares"]["quarter"] > 0.5


def test_too_few_songs_give_no_auc(chorales):
    r = judge.two_sample(chorales[:1], chorales[1:3])
    assert r["auc"] is None and "2 songs" in r["why"] and r["songs"] == [1, 2]
    assert judge.calibrate(chorales[:3])["auc"] is None
    short = [bars_of_quarters([60, 62])]  # no full window at all
    assert judge.two_sample(short * 3, chorales[:3])["songs"] == [0, 3]


def test_judge_sets_is_json_ready_with_markdown(chorales):
    import json
    out = judge.judge_sets({"eighths": [all_eighths(s) for s in chorales[:6]]}, chorales[6:14], chorales[14:18])
    assert list(out["sets"]) == ["eighths", "held-out songs", "training songs", judge.HUMAN]
    assert out["sets"]["eighths"]["against"] == judge.HUMAN and out["sets"]["held-out songs"]["against"] == \
        "training songs"
    assert out["sets"]["eighths"]["classifier"]["auc"] > 0.9
    json.dumps(out)
    md = judge.markdown(out)
    assert "| eighths | " in md and "Calibration, human against human" in md


def test_real_songs_rhythm_and_calibration(shared_songs):
    """On the original songs: Zelda's triplets and Pokemon's lack of them, an eighth-note collapse told apart,
    two halves of one game's songs not."""
    from vgmusic.evaluate import read_midi_notes
    songs = {game: [read_midi_notes(p) for p in sorted((shared_songs / game).glob("*.mid"))]
             for game in ("pokemon_red_blue_yellow", "zelda_ocarina_of_time")}
    pokemon, zelda = (judge.distributions(s, None)["shares"] for s in songs.values())
    assert zelda["triplet"] > 0.05 > 0.02 > pokemon["triplet"]
    assert 0.3 < pokemon["eighth"] < 0.6
    real = songs["pokemon_red_blue_yellow"]
    assert judge.two_sample(real[::2], [all_eighths(s) for s in real[1::2]])["auc"] > 0.85
    assert abs(judge.calibrate(real)["auc"] - 0.5) < 0.15


def test_composing_and_importing_the_evaluation_load_no_scikit_learn():
    import subprocess
    import sys
    from conftest import ROOT
    code = ("import sys, vgmusic.predict, vgmusic.evaluate; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
