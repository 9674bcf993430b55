"""Judge the rhythm and the phrase: pooled note-level distributions and a classifier two-sample test.

Per-song averages (metrics.py) hid that generated rhythm had collapsed onto eighth notes, that triplets
had vanished and that pitches repeated too often: a mean IOI histogram can sit near the human one while
every song is a run of eighths. Two views that cannot hide it:

1. distributions(): the melody line (the highest note at each onset, as metrics.melody_line) of every
   song of a set, pooled: inter-onset intervals (IOI), durations, signed melodic intervals. The shares
   of rhythm classes (CLASSES), of repeated pitches and leaps, and per distribution the overlapping area
   (sum of min(p, q)) and a smoothed KL divergence against human songs.
2. two_sample(): an L2 logistic regression learns to tell 4-bar windows of one set from another's, on
   transposition-invariant features (FEATURES), cross-validated by song so no song's windows are on
   both sides. ROC AUC 0.5: it cannot tell them apart; 1: every window gives itself away. calibrate()
   runs the same test between human songs (two halves of one game's songs; one game against another),
   which says what AUC counts as "like the songs".

scikit-learn is imported inside the functions that fit: composing (predict.py) never imports this
module, and importing it (evaluate.py does) costs nothing until a classifier is fitted.
"""
import numpy as np

from .encode import GRID
from .metrics import LEAP, _grid

# ---- rhythm classes of a length in grid steps (GRID = 12 per beat)
# The duple grid is the multiples of 3 steps (a sixteenth), the triplet grid the multiples of 4 (a
# triplet eighth); a multiple of 12 (a whole beat) lies on both and counts as duple. Every length falls
# in exactly one class:
CLASSES = {
    "short": "1-2 steps: shorter than a sixteenth (grace notes, sextuplet sixteenths, timing jitter)",
    "sixteenth": "3 steps",
    "eighth": "6 steps",
    "dotted": "9, 18, 36 or 72 steps: dotted eighth, quarter, half or whole",
    "quarter": "12 steps",
    "triplet": "a multiple of 4 steps that is not a multiple of 3: 4 (triplet eighth), 8 (triplet quarter), "
               "16 (triplet half), 20, 28, ...",
    "long": "a multiple of 12 steps from 24 on that is not dotted: 24 (half), 48 (whole), 60, 84, 96, ...",
    "other": "everything else: tied duple lengths (15, 21, 27, 30, 33, 42, ...) and lengths on neither "
             "grid (5, 7, 10, 11, 13, ...)",
}
NAMES = list(CLASSES)
DOTTED = (9, 18, 36, 72)
DISTRIBUTIONS = ("ioi", "duration", "interval")
MAX_STEPS = 4 * GRID  # IOI and duration distributions: every length up to 4 beats exactly, longer pooled
MAX_INTERVAL = 12  # interval distribution: -12..+12 semitones exactly, wider pooled into -13 / +13
SMOOTH = 0.5  # pseudo-count added to every bin before KL (Krichevsky-Trofimov): an empty bin stays finite
WINDOW_BARS = 4  # bars per window of the two-sample test: a phrase
MIN_ONSETS = 2  # a window needs one interval to say anything; emptier windows are left out
FOLDS = 5  # cross-validation folds by song (fewer when a side has fewer songs)
REPEATS = 3  # shuffled fold assignments averaged per test: AUC on a few dozen songs moves with the split
SPLITS = 10  # random halves averaged for the human-against-human calibration
C = 1.0  # inverse L2 strength: plain, not tuned (tuning on the test would flatter it)


def time_classes(steps):
    """The class index (into NAMES) of each length in grid steps (see CLASSES)."""
    s = np.asarray(steps, np.int64).ravel()
    if (s < 1).any():
        raise ValueError("lengths must be at least one grid step")
    out = np.full(len(s), NAMES.index("other"))
    out[s <= 2] = NAMES.index("short")
    for name, steps_ in (("sixteenth", 3), ("eighth", 6), ("quarter", 12)):
        out[s == steps_] = NAMES.index(name)
    out[np.isin(s, DOTTED)] = NAMES.index("dotted")
    out[(s % 4 == 0) & (s % 3 != 0)] = NAMES.index("triplet")
    out[(s % 12 == 0) & (s >= 24) & ~np.isin(s, DOTTED)] = NAMES.index("long")
    return out


def class_counts(steps):
    return np.bincount(time_classes(steps), minlength=len(NAMES)) if len(steps) else np.zeros(len(NAMES), int)


def melody(notes, beats_per_bar=4):
    """The melody line metrics.py reads (the highest note at each onset) as onsets, durations and pitches
    in grid steps, bar-aligned as metrics._grid aligns them."""
    on, dur, pitch = _grid(notes, beats_per_bar)
    order = np.lexsort((-pitch, on))
    on, dur, pitch = on[order], dur[order], pitch[order]
    first = np.ones(len(on), bool)
    first[1:] = on[1:] != on[:-1]
    return on[first], dur[first], pitch[first]


# ---- 1. pooled distributions

def pooled(songs, beats_per_bar=4):
    """Counts over every song's melody line: IOI and duration per step (1..MAX_STEPS, then longer),
    signed interval (-13..13, +-13 meaning beyond an octave) and the rhythm classes of IOIs and durations."""
    c = {"ioi": np.zeros(MAX_STEPS + 1, int), "duration": np.zeros(MAX_STEPS + 1, int),
         "interval": np.zeros(2 * MAX_INTERVAL + 3, int), "ioi_classes": np.zeros(len(NAMES), int),
         "duration_classes": np.zeros(len(NAMES), int)}
    for notes in songs:
        on, dur, pitch = melody(notes, beats_per_bar)
        ioi = np.diff(on)
        c["ioi"] += np.bincount(np.minimum(ioi, MAX_STEPS + 1) - 1, minlength=MAX_STEPS + 1)
        c["duration"] += np.bincount(np.minimum(dur, MAX_STEPS + 1) - 1, minlength=MAX_STEPS + 1)
        lim = MAX_INTERVAL + 1
        c["interval"] += np.bincount(np.clip(np.diff(pitch), -lim, lim) + lim, minlength=2 * lim + 1)
        c["ioi_classes"] += class_counts(ioi)
        c["duration_classes"] += class_counts(dur)
    return c


def _share(part, whole):
    return float(part / whole) if whole else None


def shares(c):
    """The shares the issue asks for, from pooled() counts: IOI classes, repeated pitches, leaps."""
    n_ioi, n_dur, n_iv = (int(c[k].sum()) for k in ("ioi_classes", "duration_classes", "interval"))
    out = {name: _share(c["ioi_classes"][i], n_ioi) for i, name in enumerate(NAMES)}
    out.update({f"duration_{name}": _share(c["duration_classes"][i], n_dur) for i, name in enumerate(NAMES)})
    mid = MAX_INTERVAL + 1
    out["repeated_pitch"] = _share(c["interval"][mid], n_iv)
    intervals = np.arange(len(c["interval"])) - mid
    out["leap"] = _share(c["interval"][np.abs(intervals) > LEAP].sum(), n_iv)
    out["iois"], out["intervals"] = n_ioi, n_iv
    return out


def compare(counts, reference):
    """Overlapping area (sum of min(p, q), 1 = the same distribution) and KL(reference || counts) in nats,
    both counts smoothed by SMOOTH per bin: KL grows where the set lacks what the reference has (triplets
    that vanished), which is the failure it is here to catch."""
    counts, reference = np.asarray(counts, float), np.asarray(reference, float)
    if not counts.sum() or not reference.sum():
        return None, None
    p, q = reference / reference.sum(), counts / counts.sum()
    oa = float(np.minimum(p, q).sum())
    ps, qs = reference + SMOOTH, counts + SMOOTH
    ps, qs = ps / ps.sum(), qs / qs.sum()
    return min(oa, 1.0), max(float((ps * np.log(ps / qs)).sum()), 0.0)


def distributions(songs, reference_songs, beats_per_bar=4):
    """A set's pooled melody-line figures and, per distribution, its overlap with and KL from the reference
    songs' (None when there is no reference)."""
    c = pooled(songs, beats_per_bar)
    out = {"shares": shares(c), "oa": {}, "kld": {}, "counts": {k: v.tolist() for k, v in c.items()}}
    ref = pooled(reference_songs, beats_per_bar) if reference_songs else None
    for name in DISTRIBUTIONS:
        out["oa"][name], out["kld"][name] = compare(c[name], ref[name]) if ref else (None, None)
    return out


# ---- 2. the classifier two-sample test on windows

_IV_EDGES = (-7, -4, -2, -1, 0, 1, 2, 3, 5, 8)  # left edges of the coarse signed interval bins after the first
IV_BINS = ["<=-8", "-7..-5", "-4..-3", "-2", "-1", "0 (repeat)", "+1", "+2", "+3..+4", "+5..+7", ">=+8"]
FEATURES = ([f"interval {b}" for b in IV_BINS] + [f"IOI {n}" for n in NAMES] + [f"duration {n}" for n in NAMES]
            + ["onsets per beat", "rest share", "onsets on the beat", "onsets on the off-beat eighth",
               "onsets on other sixteenths", "onsets off the duple grid", "syncopations", "pitch range",
               "mean |interval|", "contour changes", "pitch classes", "legato", "longest equal-IOI run"])


def window_features(on, dur, pitch, length):
    """One window's FEATURES: onsets relative to its start, `length` steps long. Nothing here depends on
    the key or the register (intervals, pitch range and pitch-class counts are transposition-invariant)."""
    ioi, iv = np.diff(on), np.diff(pitch)
    f = list(np.bincount(np.searchsorted(_IV_EDGES, iv, side="right"), minlength=len(IV_BINS)) / len(iv))
    f += list(class_counts(ioi) / len(ioi)) + list(class_counts(dur) / len(dur))
    covered = np.zeros(length, bool)
    for o, d in zip(on.tolist(), dur.tolist()):
        covered[o:o + d] = True
    pos = on % GRID
    f += [len(on) / (length / GRID), 1 - covered.mean(), (pos == 0).mean(), (pos == GRID // 2).mean(),
          ((pos % 3 == 0) & (pos % (GRID // 2) != 0)).mean(), (pos % 3 != 0).mean(),
          ((pos != 0) & (pos + dur > GRID)).mean()]  # off the beat and held across the next one
    steps = np.sign(iv[iv != 0])
    run = best = 1
    for a, b in zip(ioi[:-1], ioi[1:]):
        run = run + 1 if a == b else 1
        best = max(best, run)
    f += [pitch.max() - pitch.min(), np.abs(iv).mean(), (steps[1:] != steps[:-1]).mean() if len(steps) > 1 else 0.0,
          len(np.unique(pitch % 12)), np.minimum(dur[:-1] / ioi, 2).mean(), best / len(ioi)]
    return np.array(f, float)


def windows(notes, beats_per_bar=4, bars=WINDOW_BARS):
    """FEATURES of each full `bars`-bar window of a song's melody line (bar-aligned, not overlapping; the
    last, partial window and windows under MIN_ONSETS onsets are left out), shape (windows, features)."""
    on, dur, pitch = melody(notes, beats_per_bar)
    length = bars * beats_per_bar * GRID
    rows = []
    for w in range(int((on + dur).max()) // length):
        sel = (on >= w * length) & (on < (w + 1) * length)
        if sel.sum() >= MIN_ONSETS:
            rows.append(window_features(on[sel] - w * length, dur[sel], pitch[sel], length))
    return np.array(rows, float).reshape(-1, len(FEATURES))


def song_folds(labels, groups, n_splits, seed):
    """(train, test) index arrays of a stratified cross-validation in which every window of a song (its
    group) falls on the same side: a classifier that memorised a song's windows gains nothing."""
    from sklearn.model_selection import StratifiedGroupKFold
    labels, groups = np.asarray(labels), np.asarray(groups)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros((len(labels), 1)), labels, groups))


def two_sample(a_songs, b_songs, beats_per_bar=4, repeats=REPEATS, seed=0):
    """ROC AUC of an L2 logistic regression telling windows of b_songs (positive) from those of a_songs,
    from pooled out-of-fold scores, cross-validated by song; the mean over `repeats` fold shuffles.

    Returns {"auc", "aucs", "windows": [a, b], "songs": [a, b], "folds"}; auc None (with "why") when a
    side has fewer than 2 songs with a full window.
    """
    return _auc([windows(n, beats_per_bar) for n in a_songs], [windows(n, beats_per_bar) for n in b_songs],
                repeats, seed)


def _auc(a, b, repeats, seed):
    """two_sample() on each song's windows already cut (lists of arrays, one per song)."""
    from sklearn.metrics import roc_auc_score
    X, y, g, songs = [], [], [], [0, 0]
    for label, side in enumerate((a, b)):
        for w in side:
            if len(w):
                X.append(w)
                y += [label] * len(w)
                g += [sum(songs)] * len(w)  # the song's number: its windows form one group
                songs[label] += 1
    out = {"auc": None, "aucs": [], "windows": [y.count(0), y.count(1)], "songs": songs, "folds": 0}
    k = min(FOLDS, *songs)
    if k < 2:
        return dict(out, why=f"needs 2 songs with a full {WINDOW_BARS}-bar window on each side, has {songs}")
    X, y, g = np.concatenate(X), np.array(y), np.array(g)
    for r in range(repeats):
        scores = np.zeros(len(y))
        for train, test in song_folds(y, g, k, seed + r):
            if len(np.unique(y[train])) < 2:
                raise ValueError("a training fold holds one side only (too few songs to cross-validate)")
            scores[test] = _classifier().fit(X[train], y[train]).decision_function(X[test])
        out["aucs"].append(float(roc_auc_score(y, scores)))
    return dict(out, auc=float(np.mean(out["aucs"])), folds=k)


def calibrate(songs, beats_per_bar=4, splits=SPLITS, seed=0):
    """The two-sample test between two random halves of the same human songs (split by song), `splits`
    times: the AUC that means "no more different than the songs are from each other"."""
    if len(songs) < 4:
        return {"auc": None, "sd": None, "aucs": [], "splits": 0, "why": f"needs 4 songs, has {len(songs)}"}
    cut = [windows(n, beats_per_bar) for n in songs]
    aucs = []
    for s in range(splits):
        perm = np.random.default_rng(seed + s).permutation(len(songs))
        half = len(songs) // 2
        r = _auc([cut[i] for i in perm[:half]], [cut[i] for i in perm[half:]], 1, seed + s)
        if r["auc"] is not None:
            aucs.append(r["auc"])
    return {"auc": float(np.mean(aucs)) if aucs else None, "sd": float(np.std(aucs)) if aucs else None,
            "aucs": aucs, "splits": len(aucs)}


def _classifier():
    """The judge's classifier: standardised features, an L2 logistic regression, classes balanced."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))


def which_source(human, sets, beats_per_bar=4):
    """Whose songs do a set's windows resemble? A multinomial logistic regression on the windows of
    `human` ({source: songs}, two sources or more) says, for each window of each of `sets` ({label:
    songs}), how likely each source is. Calibrated like the two-sample test: each human song is judged by
    a classifier fitted without it (leave one song out), which says how well the sources can be told apart.

    Returns {"sources", "human": {source: {"probability": {source: mean over its songs' windows},
    "votes": {source: songs whose windows' mean puts it first}}}, "sets": the same for each set}."""
    names = list(human)
    cut = {n: [w for w in (windows(s, beats_per_bar) for s in human[n]) if len(w)] for n in names}
    X = np.concatenate([w for n in names for w in cut[n]])
    y = np.concatenate([[k] * len(w) for k, n in enumerate(names) for w in cut[n]])
    song = np.concatenate([[i] * len(w) for i, w in enumerate(w for n in names for w in cut[n])])

    def summary(probs):  # each song's windows' mean probabilities -> the set's figures
        probs = np.array(probs).reshape(-1, len(names))
        votes = np.bincount(probs.argmax(1), minlength=len(names)) if len(probs) else np.zeros(len(names), int)
        return {"probability": dict(zip(names, map(float, probs.mean(0) if len(probs) else [np.nan] * len(names)))),
                "votes": dict(zip(names, map(int, votes))), "songs": len(probs)}
    held = {n: [] for n in names}
    for i in np.unique(song):
        m = song == i
        held[names[y[m][0]]].append(_classifier().fit(X[~m], y[~m]).predict_proba(X[m]).mean(0))
    fitted = _classifier().fit(X, y)
    out = {}
    for label, songs in sets.items():
        cuts = [w for w in (windows(s, beats_per_bar) for s in songs) if len(w)]
        out[label] = summary([fitted.predict_proba(w).mean(0) for w in cuts])
    return {"sources": names, "human": {n: summary(held[n]) for n in names}, "sets": out}


# ---- both, for evaluate.py and bench/quality.py

HUMAN = "all human songs"


def judge_sets(sets, train, heldout, beats_per_bar=4, heldout_label="held-out songs", train_label="training songs",
               progress=None):
    """Every generated set against the human songs (training and held-out together), the held-out songs
    against the training songs (the human baseline), and the halves calibration. JSON-ready."""
    say = progress or (lambda msg: None)
    human = list(train) + list(heldout)
    out = {"window_bars": WINDOW_BARS, "beats_per_bar": beats_per_bar, "classes": CLASSES, "features": FEATURES,
           "sets": {}}
    for label, songs in sets.items():
        say(f"judging {label}: {len(songs)} songs against {len(human)} human songs")
        out["sets"][label] = dict(distributions(songs, human, beats_per_bar), kind="generated", against=HUMAN,
                                  classifier=two_sample(human, songs, beats_per_bar))
    out["sets"][heldout_label] = dict(distributions(heldout, train, beats_per_bar), kind="held-out",
                                      against=train_label, classifier=two_sample(train, heldout, beats_per_bar))
    for label, songs, kind in ((train_label, train, "training"), (HUMAN, human, "human")):
        out["sets"][label] = dict(distributions(songs, None, beats_per_bar), kind=kind, against=None, classifier=None)
    say(f"calibrating: {SPLITS} random halves of {len(human)} human songs")
    out["calibration"] = {"halves": calibrate(human, beats_per_bar)}
    return out


SHOWN = ("eighth", "sixteenth", "dotted", "triplet", "quarter", "repeated_pitch", "leap")


def fmt(v):
    """A figure as the tables print it: 3 decimals, - for none."""
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def table_rows(judged, first=()):
    """One markdown row per set (see header()): shares, overlaps, KL and AUC, after the cells `first`."""
    rows = []
    for label, e in judged["sets"].items():
        s, clf = e["shares"], e["classifier"] or {}
        cells = [*first, label, s["iois"], *(fmt(s[k]) for k in SHOWN), *(fmt(e["oa"][k]) for k in DISTRIBUTIONS),
                 *(fmt(e["kld"][k]) for k in DISTRIBUTIONS), fmt(clf.get("auc")), e["against"] or "-"]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return rows


def header(first=()):
    cols = [*first, "set", "IOIs"] + [k.replace("_", " ") for k in SHOWN[:-1]] + [f"leap >{LEAP}"]
    cols += ["OA IOI", "OA dur", "OA interval", "KL IOI", "KL dur", "KL interval", "AUC", "against"]
    return "| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|"


LEGEND = ("Shares of the melody line's inter-onset intervals (IOIs) by class, in grid steps of 1/12 beat (sixteenth "
          "3, eighth 6, dotted 9/18/36/72, quarter 12, triplet: a multiple of 4 that is not one of 3), and of "
          f"repeated pitches and leaps among its melodic intervals, pooled over the set's songs. OA: overlapping area "
          "(sum of min(p, q)) of the pooled IOI, duration and interval distributions with those of the songs named "
          f"under *against* (1 = the same); KL: KL(against || set) in nats, add-{SMOOTH} smoothed. AUC: an L2 "
          f"logistic regression telling {WINDOW_BARS}-bar windows of the set from windows of those songs, "
          "cross-validated by song (0.5: it cannot tell them apart, 1: every window gives itself away). "
          "Definitions: `vgmusic/judge.py`.")


def markdown(judged):
    """The section evaluate.py's report carries."""
    cal = judged["calibration"]["halves"]
    return "\n".join(["## Rhythm and phrase: the melody line, pooled over the songs\n", LEGEND + "\n", header(),
                      *table_rows(judged), "", f"Calibration, human against human: two random halves of the {HUMAN} "
                      f"(split by song, {cal['splits']} splits) give AUC {fmt(cal['auc'])} (sd {fmt(cal['sd'])}).\n"])
