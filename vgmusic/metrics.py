"""Figures that say whether music sounds like the songs it learned from, per song and between sets.

Notes are [onset_beats, duration_beats, midi_pitch(, velocity)], read on the event encoding's grid
of 12 steps per beat. Definitions follow muspy's documentation (https://salu133445.github.io/muspy/
metrics.html) and Yang & Lerch 2018, "On the evaluation of generative models in music". muspy 0.5.0
itself installs with numpy 2.4 but miscounts at bar and beat boundaries (two identical bars give a
groove consistency of 0.958, a rest on a beat ending exactly at a barline is not counted empty, and
its polyphony rate counts 3+ pitches where its docs say 2+), so they are computed here.

Imports neither TensorFlow nor Keras: evaluating a few dozen songs takes seconds.
"""
import math

import numpy as np

from .encode import GRID

LEAP = 7  # semitones: an interval wider than a fifth is a leap (the target: <= 15% of intervals)
SCALE_WINDOW = 16  # melody notes per window of the local scale consistency: about two bars of eighths
# Two bars match when their Jaccard similarity (of (onset step in bar, pitch) pairs) reaches this:
# for bars of equal size, at least two thirds of the notes coincide. Ornamented repeats still match,
# new material does not.
MATCH = 0.5
MAX_SHIFT = 12  # a sequence (the same bar transposed) counts as a return up to an octave away
# A transposed match needs this many shared notes, else any two one-note bars would "match".
MIN_SHIFTED = 3
NGRAM = 8  # notes per run when counting runs copied from the training songs
# Upper edges (in grid steps, 12 per beat) of the duration and inter-onset bins: 1/16, 1/8 triplet,
# 1/8, dotted 1/8, 1/4, dotted 1/4, 1/2, dotted 1/2, whole, longer. Fixed so songs compare.
TIME_EDGES = (3, 4, 6, 9, 12, 18, 24, 36, 48)
TIME_BINS = [f"<={e / GRID:.3g}" for e in TIME_EDGES] + [f">{TIME_EDGES[-1] / GRID:.3g}"]
KDE_POINTS = 2000  # grid points of the distance densities; the floor below keeps kernels wider than 5 points
KDE_FLOOR = 0.01  # smallest kernel width, as a share of the largest distance: finer differences mean nothing

# name -> what it measures. Histograms are vectors over TIME_BINS; the rest are scalars.
FIGURES = {
    "pitch_range": "highest minus lowest pitch (semitones)",
    "n_pitches": "distinct MIDI pitches",
    "n_pitch_classes": "distinct pitch classes",
    "pitch_class_entropy": "entropy of the pitch-class histogram (bits; 3.58 is all 12 equally)",
    "scale_consistency": "largest share of notes in one major or natural-minor scale",
    "scale_consistency_window": f"mean scale consistency of consecutive {SCALE_WINDOW}-note windows of the melody",
    "mean_abs_interval": "mean absolute melodic interval (semitones)",
    "leap_share": f"share of melodic intervals wider than {LEAP} semitones",
    "polyphony": "mean pitches sounding where at least one sounds",
    "polyphony_rate": "share of time steps with two or more pitches sounding",
    "note_density": "onsets per beat",
    "empty_beat_rate": "share of beats where nothing sounds",
    "groove_consistency": "1 - mean Hamming distance of neighbouring bars' onset patterns / steps per bar",
    "longest_repeat": "longest run of identical consecutive events (same pitches and duration)",
    "return_share": "share of bars returning to earlier material after departing from it",
    "loop_share": "share of bars identical to the bar before",
    "copied_share": f"share of the melody's {NGRAM}-note runs found in the training songs (any transposition)",
    "longest_match": "longest run of melody notes found verbatim in a training song (notes)",
    "duration_hist": "share of notes per duration (beats)",
    "ioi_hist": "share of inter-onset intervals per length (beats)",
}
HISTOGRAMS = ("duration_hist", "ioi_hist")
RHYTHM = ("note_density", "duration_hist", "ioi_hist", "groove_consistency")
# compared between sets (originality is measured against the training set itself, so it is left out)
COMPARED = [f for f in FIGURES if f not in ("copied_share", "longest_match")]

_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
_MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)
SCALES = np.array([np.roll(s, root) for s in (_MAJOR, _MINOR) for root in range(12)])


def _grid(notes, beats_per_bar):
    """Onsets, durations (steps, at least 1) and pitches, with leading empty bars dropped."""
    if beats_per_bar <= 0:
        raise ValueError(f"beats_per_bar must be positive, got {beats_per_bar}")
    try:
        arr = np.array([n[:3] for n in notes], float).reshape(-1, 3)
    except (TypeError, ValueError, IndexError):
        raise ValueError("notes must be [onset, duration, pitch(, velocity)] number lists") from None
    if not len(arr):
        raise ValueError("no notes")
    if not np.isfinite(arr).all() or (arr[:, 0] < 0).any() or (arr[:, 1] < 0).any():
        raise ValueError("notes need finite, non-negative onsets and durations")
    if ((arr[:, 2] < 0) | (arr[:, 2] > 127)).any():
        raise ValueError("pitches must be MIDI numbers 0-127")
    bar = beats_per_bar * GRID
    on = np.rint(arr[:, 0] * GRID).astype(np.int64)
    on -= on.min() // bar * bar  # keeps bar alignment: a pickup stays a pickup
    dur = np.maximum(1, np.rint(arr[:, 1] * GRID)).astype(np.int64)
    return on, dur, np.rint(arr[:, 2]).astype(np.int64)


def melody_line(on, pitch):
    """At each distinct onset, the highest pitch: the tune of a part that also plays chords."""
    order = np.lexsort((-pitch, on))
    on, pitch = on[order], pitch[order]
    first = np.ones(len(on), bool)
    first[1:] = on[1:] != on[:-1]
    return on[first], pitch[first]


def scale_consistency(pitches):
    counts = np.bincount(np.asarray(pitches) % 12, minlength=12)
    return float((SCALES @ counts).max() / counts.sum())


def entropy_bits(counts):
    p = np.asarray(counts, float)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def time_histogram(steps):
    idx = np.searchsorted(TIME_EDGES, steps, side="left")  # bin i holds (edge[i-1], edge[i]]
    return (np.bincount(idx, minlength=len(TIME_BINS)) / len(steps)).tolist()


def _bars(on, pitch, bar, n_bars):
    sets = [set() for _ in range(n_bars)]
    for o, p in zip(on.tolist(), pitch.tolist()):
        sets[o // bar].add((o % bar, p))
    return sets


def bar_similarity(a, b):
    """Jaccard similarity of two bars' (step, pitch) sets, at the best transposition within an octave."""
    if not a or not b:
        return 0.0
    best = len(a & b) / len(a | b)
    by_step = {}
    for s, q in b:
        by_step.setdefault(s, []).append(q)
    shifts = {}
    for s, p in a:
        for q in by_step.get(s, ()):
            if q != p and abs(q - p) <= MAX_SHIFT:
                shifts[q - p] = shifts.get(q - p, 0) + 1
    for shared in shifts.values():
        if shared >= MIN_SHIFTED:
            best = max(best, shared / (len(a) + len(b) - shared))
    return best


def _structure(on, dur, pitch, bar):
    n_bars = -(-int((on + dur).max()) // bar)
    sets = _bars(on, pitch, bar, n_bars)
    sim = np.eye(n_bars)
    for i in range(n_bars):
        for j in range(i + 1, n_bars):
            sim[i, j] = sim[j, i] = bar_similarity(sets[i], sets[j])
    full = np.array([bool(s) for s in sets])
    sim[~full, :] = sim[:, ~full] = 0.0  # an empty bar matches nothing, itself included
    match = sim >= MATCH
    returns = loops = counted = 0
    for j in range(1, n_bars):
        if not full[j]:
            continue
        counted += 1
        loops += sets[j] == sets[j - 1]
        earlier = np.flatnonzero(match[:j - 1, j])
        # the earliest matching bar leaves the most room for a departure: a non-empty bar unlike bar j
        if len(earlier) and any(full[k] and not match[k, j] for k in range(earlier[0] + 1, j)):
            returns += 1
    return {"bars": n_bars,
            "return_share": returns / counted if counted else None,
            "loop_share": loops / counted if counted else None,
            "matrix": sim}


def structure(notes, beats_per_bar=4):
    """How a song returns to its own material, bar by bar.

    return_share: of the non-empty bars after the first, the share matching some bar i <= j-2 with a
    non-empty bar between them that does not match bar j (a theme left and come back to: AABA of
    4-bar phrases scores 8/15; a song that wanders or sits on one bar scores 0).
    loop_share: of the same bars, the share identical to the bar just before (bar-to-bar loops).
    matrix: bar-by-bar similarity (list of lists), 0 for empty bars.
    """
    on, dur, pitch = _grid(notes, beats_per_bar)
    out = _structure(on, dur, pitch, beats_per_bar * GRID)
    return dict(out, matrix=out["matrix"].round(4).tolist())


def _events(on, dur, pitch):
    """(pitches, duration) per onset, in time order: what a sampler emits as one event."""
    groups = {}
    for o, d, p in zip(on.tolist(), dur.tolist(), pitch.tolist()):
        pitches, longest = groups.get(o, (frozenset(), 0))
        groups[o] = (pitches | {p}, max(longest, d))
    return [groups[o] for o in sorted(groups)]


def song_features(notes, beats_per_bar=4):
    """Every per-song figure of FIGURES except originality (see originality()); None where undefined."""
    on, dur, pitch = _grid(notes, beats_per_bar)
    bar = beats_per_bar * GRID
    end = int((on + dur).max())
    f = {"notes": len(pitch), "beats": end / GRID}
    f["pitch_range"] = int(pitch.max() - pitch.min())
    f["n_pitches"] = len(np.unique(pitch))
    f["n_pitch_classes"] = len(np.unique(pitch % 12))
    f["pitch_class_entropy"] = entropy_bits(np.bincount(pitch % 12, minlength=12))
    f["scale_consistency"] = scale_consistency(pitch)
    m_on, m_pitch = melody_line(on, pitch)
    windows = [m_pitch[i:i + SCALE_WINDOW] for i in range(0, len(m_pitch) - SCALE_WINDOW + 1, SCALE_WINDOW)]
    f["scale_consistency_window"] = float(np.mean([scale_consistency(w) for w in windows or [m_pitch]]))
    steps = np.abs(np.diff(m_pitch))
    f["mean_abs_interval"] = float(steps.mean()) if len(steps) else None
    f["leap_share"] = float((steps > LEAP).mean()) if len(steps) else None
    roll = np.zeros((end, 128), bool)
    for o, d, p in zip(on.tolist(), dur.tolist(), pitch.tolist()):
        roll[o:o + d, p] = True
    sounding = roll.sum(1)
    f["polyphony"] = float(sounding.sum() / np.count_nonzero(sounding))
    f["polyphony_rate"] = float((sounding >= 2).mean())
    onsets = np.unique(on)
    f["note_density"] = len(onsets) / (end / GRID)
    beats = -(-end // GRID)
    busy = np.pad(sounding > 0, (0, beats * GRID - end)).reshape(beats, GRID).any(1)
    f["empty_beat_rate"] = float(1 - busy.mean())
    n_bars = -(-end // bar)
    groove = np.zeros((n_bars, bar), bool)
    groove[onsets // bar, onsets % bar] = True
    f["groove_consistency"] = (float(1 - (groove[1:] != groove[:-1]).sum() / (bar * (n_bars - 1)))
                               if n_bars > 1 else None)
    events, run, longest = _events(on, dur, pitch), 1, 1
    for a, b in zip(events, events[1:]):
        run = run + 1 if a == b else 1
        longest = max(longest, run)
    f["longest_repeat"] = longest
    s = _structure(on, dur, pitch, bar)
    f["bars"], f["return_share"], f["loop_share"] = s["bars"], s["return_share"], s["loop_share"]
    f["duration_hist"] = time_histogram(dur)
    f["ioi_hist"] = time_histogram(np.diff(onsets)) if len(onsets) > 1 else None
    return f


def interval_tokens(notes, beats_per_bar=4):
    """The melody line as (semitones from the previous note, grid steps since its onset), one per
    note after the first: transposing or shifting a tune in time leaves it unchanged."""
    on, _, pitch = _grid(notes, beats_per_bar)
    m_on, m_pitch = melody_line(on, pitch)
    return list(zip(np.diff(m_pitch).tolist(), np.diff(m_on).tolist()))


class Reference:
    """Reference songs as interval tokens, with their n-gram sets built once per length and kept."""

    def __init__(self, reference_note_lists):
        self.seqs = [interval_tokens(n) for n in reference_note_lists if len(n)]
        self.longest = max((len(s) for s in self.seqs), default=0)
        self._grams = {}

    def grams(self, k):
        if k not in self._grams:
            self._grams[k] = {tuple(s[i:i + k]) for s in self.seqs for i in range(len(s) - k + 1)}
        return self._grams[k]


def originality(notes, reference_note_lists, n=NGRAM):
    """How much of a song's melody is copied from reference songs (a list of note lists or a Reference).

    An n-note run is n consecutive melody notes, written as its n-1 (interval, inter-onset) pairs.
    copied_share: share of the song's n-note runs found anywhere in a reference song (None if the
    song has fewer than n notes). longest_match: the longest run of consecutive notes found verbatim
    in a reference song, in notes (1 when not even two notes in a row are found).
    """
    if n < 2:
        raise ValueError(f"runs need at least 2 notes, got n={n}")
    ref = reference_note_lists if isinstance(reference_note_lists, Reference) else Reference(reference_note_lists)
    tokens = interval_tokens(notes)
    runs = [tuple(tokens[i:i + n - 1]) for i in range(len(tokens) - n + 2)]
    copied = float(np.mean([r in ref.grams(n - 1) for r in runs])) if runs else None
    # a run found verbatim has every sub-run found too, so the longest is found by halving
    lo, hi = 0, min(len(tokens), ref.longest)
    while lo < hi:
        k = (lo + hi + 1) // 2
        grams = ref.grams(k)
        if any(tuple(tokens[i:i + k]) in grams for i in range(len(tokens) - k + 1)):
            lo = k
        else:
            hi = k - 1
    return {"copied_share": copied, "longest_match": lo + 1}


def _values(features, name):
    return [np.atleast_1d(np.asarray(f[name], float)) for f in features if f.get(name) is not None]


def _distances(a, b=None):
    """Euclidean distances within a set (each pair once) or between two sets (every pair)."""
    if b is None:
        return np.array([np.linalg.norm(a[i] - a[j]) for i in range(len(a)) for j in range(i + 1, len(a))])
    return np.array([np.linalg.norm(x - y) for x in a for y in b])


def _bandwidth(x, floor):
    """Scott's rule for one dimension (sd * n^-1/5, as scipy's gaussian_kde), at least `floor`."""
    return max(np.std(x, ddof=1) * len(x) ** -0.2 if len(x) > 1 else 0.0, floor)


def _kde(x, grid, bw):
    z = (grid[:, None] - x[None, :]) / bw
    return np.exp(-0.5 * z * z).sum(1) / (len(x) * bw * math.sqrt(2 * math.pi))


def overlap(intra, inter):
    """Overlapping area of two distance densities and KL(intra || inter) in nats (Yang & Lerch 2018)."""
    intra, inter = np.asarray(intra, float), np.asarray(inter, float)
    if not len(intra) or not len(inter):
        return None, None
    scale = max(np.abs(intra).max(), np.abs(inter).max())
    if scale == 0:
        return 1.0, 0.0  # every distance is zero on both sides: the same density
    bw = [_bandwidth(x, KDE_FLOOR * scale) for x in (intra, inter)]
    grid = np.linspace(min(intra.min(), inter.min()) - 4 * max(bw), max(intra.max(), inter.max()) + 4 * max(bw),
                       KDE_POINTS)
    p, q = _kde(intra, grid, bw[0]), _kde(inter, grid, bw[1])
    p, q = p / np.trapezoid(p, grid), q / np.trapezoid(q, grid)
    oa = float(np.trapezoid(np.minimum(p, q), grid))
    # densities floored at 1e-10 of their peak: KL stays finite (at most ~23 nats) for disjoint sets
    p_, q_ = np.maximum(p, 1e-10 * p.max()), np.maximum(q, 1e-10 * q.max())
    kld = float(np.trapezoid(p * np.log(p_ / q_), grid))
    return min(oa, 1.0), max(kld, 0.0)


def compare_sets(generated, reference):
    """Per compared figure, how the generated set sits in the reference set (Yang & Lerch 2018).

    The intra-set distances of the reference (every pair of its songs) and the inter-set distances
    (every generated song against every reference song) each get a Gaussian kernel density; oa is
    their overlapping area (1: generated songs are as far from the references as the references are
    from each other) and kld is KL(intra || inter). rhythm_oa is the mean oa over RHYTHM.
    """
    out = {"oa": {}, "kld": {}}
    for name in COMPARED:
        g, r = _values(generated, name), _values(reference, name)
        out["oa"][name], out["kld"][name] = (overlap(_distances(r), _distances(g, r))
                                             if len(r) > 1 and g else (None, None))
    rhythm = [out["oa"][n] for n in RHYTHM if out["oa"][n] is not None]
    out["rhythm_oa"] = float(np.mean(rhythm)) if rhythm else None
    return out


def summarize(features):
    """Per figure: mean, min and max over the songs where it is defined (histograms: mean per bin)."""
    out = {}
    for name in FIGURES:
        vals = [f[name] for f in features if f.get(name) is not None]
        if name in HISTOGRAMS:
            out[name] = {"mean": np.mean(vals, 0).tolist() if vals else None}
        else:
            out[name] = ({"mean": float(np.mean(vals)), "min": float(min(vals)), "max": float(max(vals))}
                         if vals else {"mean": None, "min": None, "max": None})
    out["songs"] = len(features)
    return out


LOOP_TOLERANCE = 0.02  # loop_share may exceed the training songs' by this much (a bar or two per song)
COPY_TOLERANCE = 0.05  # copied_share may exceed the held-out songs' (the human baseline) by this much


def check_targets(gen_summary, train_summary, heldout_summary):
    """The issue's targets as (name, value, target, passed); passed is None where a value is missing.

    Summaries come from summarize(); gen_summary also carries rhythm_oa ({"mean": oa vs training}).
    """
    def mean(summary, name):
        return (summary.get(name) or {}).get("mean")

    rows = []

    def check(name, value, op, bound, target):
        passed = None if value is None or bound is None else (value >= bound if op == ">=" else value <= bound)
        rows.append((name, value, target, passed))

    train_pitches, train_loops = mean(train_summary, "n_pitches"), mean(train_summary, "loop_share")
    held_copied = mean(heldout_summary, "copied_share")
    check("scale_consistency mean", mean(gen_summary, "scale_consistency"), ">=", 0.92, ">= 0.92")
    check("return_share mean", mean(gen_summary, "return_share"), ">=", 0.35, ">= 0.35")
    check("leap_share mean", mean(gen_summary, "leap_share"), "<=", 0.15, "<= 0.15")
    bound = None if train_pitches is None else 1.5 * train_pitches
    check("n_pitches mean", mean(gen_summary, "n_pitches"), "<=", bound,
          f"<= {bound:.1f} (1.5 x training {train_pitches:.1f})" if bound is not None else "<= 1.5 x training")
    check("rhythm_oa vs training", mean(gen_summary, "rhythm_oa"), ">=", 0.8, ">= 0.8")
    bound = None if held_copied is None else held_copied + COPY_TOLERANCE
    check("copied_share mean", mean(gen_summary, "copied_share"), "<=", bound,
          f"<= {bound:.3f} (held-out {held_copied:.3f} + {COPY_TOLERANCE})" if bound is not None
          else "<= held-out + 0.05")
    check("longest_match max", (gen_summary.get("longest_match") or {}).get("max"), "<=", 12, "<= 12 notes")
    bound = None if train_loops is None else train_loops + LOOP_TOLERANCE
    check("loop_share mean", mean(gen_summary, "loop_share"), "<=", bound,
          f"<= {bound:.3f} (training {train_loops:.3f} + {LOOP_TOLERANCE})" if bound is not None
          else "<= training + 0.02")
    return rows
