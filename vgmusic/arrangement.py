"""Figures of a whole arrangement (melody, harmony, bass, drums) that a listener hears as right or wrong.

    figures(song)  FIGURES -> a float, None where a figure is undefined (no drums, no bass ...), part by
                   part as vgmusic.roles.roles(song) finds the parts

Human game songs (bench/arrangement.py --human: Freedoom, OpenTTD's OpenMSX, Planet Blupi) give each
figure's 10th-90th percentile range; an arranger is judged by whether its songs land inside (judge.py in
bench; `judge_rows` here, so an arranger can tune in-process).

Times are beats (quarter notes), unquantised in human files: an onset within ON_TOL of a beat is on it,
and a note sounds at a sampling point k * STEP + OFFSET when onset <= point < onset + duration (the
offset catches notes struck a little late). Plain NumPy: imports nothing heavy.
"""
import math

import numpy as np

from .roles import STEP, roles
from .theory import ROLES

OFFSET = 1 / 32  # sampling points sit a 128th after the grid line: a note struck that little late counts
ON_TOL = 0.125  # an onset within a 32nd note of a beat is on that beat (human timing)
PASSING = 0.5  # beats: a note this short or shorter, struck off every beat, is a passing note
DISSONANT = (1, 6, 11)  # interval classes heard as clashes: minor 2nd/9th, tritone, major 7th
PHRASE_BARS = 4  # phrase length when the song has no sections: fills close every 4th bar
FILL = 0.25  # a phrase-end bar whose drum pattern is this far (1 - Jaccard) from the groove is a fill
SHIFT_CONCENTRATION = 0.5  # onsets this concentrated on one phase of the sixteenth grid are moved onto it
TIE = 1e-9  # chord templates scoring within this of the best all count (C-G is C major and C minor)
# drum classes of General MIDI's kit (the rest: "other"); side stick and clap play the snare's backbeat
DRUM_CLASSES = {"kick": (35, 36), "snare": (37, 38, 39, 40), "hats": (42, 44, 46),
                "cymbals": (49, 51, 52, 53, 55, 57, 59), "toms": (41, 43, 45, 47, 48, 50)}
# chord templates, intervals above the root: triads first (the bass's root/fifth uses those alone)
TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8)}
SEVENTHS = {"7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "m7b5": (0, 3, 6, 10)}

FIGURES = {
    "chord_tone_share": "melody notes struck on strong beats whose pitch class is in the chord the accompaniment "
                        "(harmony and bass) plays from that beat to the next strong beat (best triad/seventh)",
    "dissonance": "share of between-track pitch pairs sounding together (every eighth) that are minor seconds/ninths, "
                  "tritones or major sevenths; passing notes (<= an eighth, struck off the beat) left out",
    "bass_root_fifth": "downbeats where the lowest bass note is the root or fifth of the best triad of every pitched "
                       "track over the first half bar",
    "bass_lowest": "share of eighths where the bass sounds and is the lowest pitched note",
    "melody_on_top": "share of eighths where the melody sounds and no other pitched note is higher",
    "voices": "mean pitched notes sounding at once, where any sounds",
    "pitched_tracks": "pitched tracks with notes",
    "groove_consistency": "1 - mean drum-pattern distance (1 - Jaccard, classes x sixteenths) of each bar inside a "
                          "phrase (neither its first nor its last) from the nearer of the one or two bars before",
    "fill_contrast": "mean drum-pattern distance of the bars closing a phrase minus that of the bars inside one",
    "fill_share": f"bars closing a phrase whose drum pattern is at least {FILL} from the groove",
    "start_contrast": "mean drum-pattern distance of the bars opening a phrase (after the first) minus that of "
                      "the bars inside one",
    "harmony_below_melody": "melody's median pitch minus the harmony's (semitones)",
    "bass_below_melody": "melody's median pitch minus the bass's (semitones)",
}
for _role in ("melody", "harmony", "bass"):
    FIGURES.update({f"{_role}_median": f"{_role}: median MIDI pitch",
                    f"{_role}_span": f"{_role}: 90th minus 10th percentile pitch (semitones)",
                    f"{_role}_polyphony": f"{_role}: mean distinct pitches sounding at once while it sounds "
                                          "(sixteenths; a unison doubling is one)",
                    f"{_role}_density": f"{_role}: distinct onsets (sixteenths) per bar it plays in",
                    f"{_role}_presence": f"{_role}: share of the song's sounding bars it plays in"})
FIGURES.update({"drums_density": "drums: distinct onsets (sixteenths) per bar they play in",
                "drums_polyphony": "drums: hits per onset",
                "drums_presence": "drums: share of the song's sounding bars they play in"})


# ---- metre ------------------------------------------------------------------------------------------

def beat_unit(metre):
    """(beats of the metre's pulse, pulses a bar): 4/4 -> (1, 4); compound 6/8 -> (1.5, 2); 3/8 -> (0.5, 3)."""
    num, den = metre
    if den >= 8 and num % 3 == 0 and num > 3:  # compound: the pulse is a dotted note of three
        return 3 * 4 / den, num // 3
    return 4 / den, num


def strong_beats(metre):
    """Beat offsets of a bar's strong beats: the downbeat, and the middle pulse of a bar of 4 or more
    pulses (beats 1 and 3 of 4/4; 1 and 4 of 5/4 and 6/4 read 3+2, 3+3; 1 and 3 of 12/8's four pulses)."""
    unit, pulses = beat_unit(metre)
    return [0.0] if pulses < 4 else [0.0, math.ceil(pulses / 2) * unit]


def main_beats(metre):
    unit, pulses = beat_unit(metre)
    return [i * unit for i in range(pulses)]


def _near(times, offsets, bar):
    """Whether each time lies within ON_TOL of one of the bar's `offsets` (the next downbeat included)."""
    pos = np.mod(times, bar)
    grid = np.array(list(offsets) + [bar])
    return (np.abs(pos[:, None] - grid[None, :]) <= ON_TOL).any(1)


# ---- rolls on the sampling grid ---------------------------------------------------------------------

def _array(notes):
    return np.array([n[:3] for n in notes], float).reshape(-1, 3)


def _roll(arr, n, columns=128, pitch_class=False):
    """(n, columns) counts of the notes sounding at each sampling point; every note sounds at one point
    at least (the first at or after its onset), however short."""
    roll = np.zeros((n + 1, columns), np.int32)
    if len(arr):
        k0 = np.ceil((arr[:, 0] - OFFSET) / STEP - 1e-9).astype(np.int64)
        k1 = np.ceil((arr[:, 0] + arr[:, 1] - OFFSET) / STEP - 1e-9).astype(np.int64)
        k0 = np.clip(k0, 0, n)
        k1 = np.clip(np.maximum(k1, k0 + 1), 0, n)
        col = arr[:, 2].astype(np.int64) % (12 if pitch_class else 128)
        np.add.at(roll, (k0, col), 1)
        np.add.at(roll, (k1, col), -1)
    return np.cumsum(roll, 0)[:n]


def _templates(kinds):
    rows, roots, fifths = [], [], []
    for intervals in kinds.values():
        for root in range(12):
            v = np.zeros(12)
            v[[(root + i) % 12 for i in intervals]] = 1
            rows.append(v)
            roots.append(root)
            fifths.append((root + intervals[2]) % 12)
    return np.array(rows), np.array(roots), np.array(fifths)


def _best(weights, templates):
    """(windows, templates) bool: the templates of best cosine with each window's pitch-class weights,
    ties all kept; None rows (all False) where fewer than 2 pitch classes sound (no harmony to name)."""
    norm = np.linalg.norm(weights, axis=1, keepdims=True)
    scores = (weights @ templates.T) / np.maximum(norm, 1e-12) / np.linalg.norm(templates, axis=1)
    best = scores >= scores.max(1, keepdims=True) - TIE
    best[(weights > 0).sum(1) < 2] = False
    return best


def _windows(starts, ends, pc_roll):
    """Pitch-class weights (sixteenths sounding) of each [start, end) window of sampling points."""
    c = np.vstack([np.zeros((1, 12)), np.cumsum(pc_roll, 0)])
    return c[ends] - c[starts]


# ---- the figures ------------------------------------------------------------------------------------

def _ratio(a, b):
    return float(a / b) if b else None


def grid_shift(arr, concentration=SHIFT_CONCENTRATION):
    """The beats every onset lies late (or, negative, early) of the sixteenth grid, when the song keeps to
    one such phase: the circular mean of onset phases on the sixteenth's circle, where they concentrate
    (mean resultant length >= `concentration`); else 0. Planet Blupi's files play everything 0.1 beat
    late, which no tolerance of a quantised beat catches and which hides the bass from every downbeat."""
    if not len(arr):
        return 0.0
    z = np.exp(2j * np.pi * arr[:, 0] / STEP).mean()
    return float(np.angle(z) / (2 * np.pi) * STEP) if abs(z) >= concentration else 0.0


def _melody_line(arr):
    """The highest note at each onset (the tune of a track that also plays chords)."""
    if not len(arr):
        return arr
    order = np.lexsort((-arr[:, 2], arr[:, 0]))
    arr = arr[order]
    keep = np.ones(len(arr), bool)
    keep[1:] = np.diff(arr[:, 0]) > 1e-6
    return arr[keep]


def _role_figures(f, name, arr, n, bar, sounding_bars):
    if not len(arr):
        return  # every figure of the role stays None
    played = len(np.unique(arr[:, 0] // bar))
    onsets = len(np.unique(np.round(arr[:, 0] / STEP)))
    if name == "drums":
        f["drums_polyphony"] = len(arr) / onsets
    else:
        p, count = arr[:, 2], (_roll(arr, n) > 0).sum(1)
        f[f"{name}_median"] = float(np.median(p))
        f[f"{name}_span"] = float(np.percentile(p, 90) - np.percentile(p, 10))
        f[f"{name}_polyphony"] = float(count[count > 0].mean()) if (count > 0).any() else None
    f[f"{name}_density"] = onsets / played
    f[f"{name}_presence"] = min(1.0, played / sounding_bars) if sounding_bars else None


def phrase_ends(song, n_bars):
    """Indices of the bars that close a phrase: the bar before each section start and the last bar
    when the song has sections, else every PHRASE_BARS-th bar."""
    bar = song.beats_per_bar
    if len(song.sections) > 1:
        ends = {round(s.start / bar) - 1 for s in song.sections[1:]} | {n_bars - 1}
        return sorted(e for e in ends if 0 <= e < n_bars)
    return list(range(PHRASE_BARS - 1, n_bars, PHRASE_BARS))


def drum_patterns(arr, bar, n_bars):
    """(bars, classes x sixteenths) bool: which drum class is struck on which sixteenth of each bar."""
    steps = max(1, round(bar / STEP))
    classes = np.full(128, len(DRUM_CLASSES))
    for i, keys in enumerate(DRUM_CLASSES.values()):
        classes[list(keys)] = i
    pat = np.zeros((n_bars, len(DRUM_CLASSES) + 1, steps), bool)
    if len(arr):
        k = np.round(arr[:, 0] / STEP).astype(np.int64)  # snapped to the nearest sixteenth
        b, s = k // steps, k % steps
        ok = b < n_bars
        pat[b[ok], classes[arr[ok, 2].astype(np.int64)], s[ok]] = True
    return pat.reshape(n_bars, -1)


def groove(pat, ends):
    """(groove_consistency, fill_contrast, fill_share, start_contrast) of drum patterns (see FIGURES).

    Each bar is compared with the nearer match (Jaccard) of the one or two bars before it that close no
    phrase: a two-bar groove is a groove, and a fill is no reference. Bars outside the drums' first to
    last bar are left out. The human songs mark both edges of a phrase: the bar closing it (a fill) and
    the bar opening the next (a crash, a new groove) differ from the bars inside, so each is set against
    the bars inside a phrase, which neither open nor close one."""
    played = np.flatnonzero(pat.any(1))
    if len(played) < 2:
        return None, None, None, None
    ends = set(ends)
    dist = {}
    for i in range(played[0] + 1, played[-1] + 1):
        sims = []
        for j in (i - 1, i - 2):
            if j >= played[0] and j not in ends:
                union = (pat[i] | pat[j]).sum()
                if union:
                    sims.append((pat[i] & pat[j]).sum() / union)
        if sims:
            dist[i] = 1 - max(sims)
    closing = [d for i, d in dist.items() if i in ends]
    opening = [d for i, d in dist.items() if i - 1 in ends and i not in ends]
    inside = [d for i, d in dist.items() if i not in ends and i - 1 not in ends]
    mean = float(np.mean(inside)) if inside else None
    return (None if mean is None else 1 - mean,
            float(np.mean(closing)) - mean if inside and closing else None,
            float(np.mean([d >= FILL for d in closing])) if closing else None,
            float(np.mean(opening)) - mean if inside and opening else None)


def figures(song):
    """FIGURES of one Song -> float or None (see FIGURES for each definition)."""
    f = dict.fromkeys(FIGURES)
    r = roles(song)
    bar = song.beats_per_bar
    arrs = {role: _array([n for t in tracks for n in t.notes]) for role, tracks in r.items()}
    shift = grid_shift(np.vstack(list(arrs.values())))
    for a in arrs.values():
        a[:, 0] = np.maximum(a[:, 0] - shift, 0.0)
    end = max(song.end, max((t.end() for t in song.tracks), default=0.0))
    n = int(math.ceil(end / STEP)) + 1
    n_bars = max(1, int(math.ceil(end / bar - 1e-9)))
    everything = np.vstack(list(arrs.values()))
    sounding_bars = len(np.unique(everything[:, 0] // bar)) if len(everything) else 0
    for role in ROLES:
        _role_figures(f, role, arrs[role], n, bar, sounding_bars)
    pitched = [t for role in ("melody", "harmony", "bass") for t in r[role]]
    f["pitched_tracks"] = float(len(pitched))
    if f["melody_median"] is not None:
        for role in ("harmony", "bass"):
            if f[f"{role}_median"] is not None:
                f[f"{role}_below_melody"] = f["melody_median"] - f[f"{role}_median"]
    f["groove_consistency"], f["fill_contrast"], f["fill_share"], f["start_contrast"] = groove(
        drum_patterns(arrs["drums"], bar, n_bars), phrase_ends(song, n_bars))
    if not pitched:
        return f
    strong, beats = strong_beats(song.metre), main_beats(song.metre)
    eighths = np.arange(0, n, max(1, round(0.5 / STEP)))
    _harmony_figures(f, r, arrs, song, n, n_bars, strong)
    _vertical_figures(f, arrs, pitched, shift, n, bar, beats, eighths)
    return f


def _strong_windows(bar, n_bars, strong, n):
    times = np.array([b * bar + s for b in range(n_bars) for s in strong])
    nxt = np.append(times[1:], n_bars * bar)
    return times, np.clip(np.round(times / STEP).astype(int), 0, n), np.clip(np.round(nxt / STEP).astype(int), 0, n)


def _harmony_figures(f, r, arrs, song, n, n_bars, strong):
    bar = song.beats_per_bar
    times, starts, ends = _strong_windows(bar, n_bars, strong, n)
    accomp = np.vstack([arrs["harmony"], arrs["bass"]])
    tri, roots, fifths = _templates(TRIADS)
    chords = np.vstack([tri, _templates(SEVENTHS)[0]])
    mel = _melody_line(arrs["melody"])
    if len(accomp) and len(mel):
        on_strong = mel[_near(mel[:, 0], strong, bar)]
        if len(on_strong):
            # the strong beat each struck note belongs to: the nearest one (a note a little early counts)
            idx = np.clip(np.searchsorted(times, on_strong[:, 0] + ON_TOL, side="right") - 1, 0, len(times) - 1)
            best = _best(_windows(starts, ends, _roll(accomp, n, 12, True)), chords)
            tones = (best.astype(float) @ chords) > 0  # windows x 12: the union of the best chords' tones
            defined = best.any(1)[idx]
            pcs = on_strong[:, 2].astype(int) % 12
            hits = tones[idx, pcs]
            f["chord_tone_share"] = _ratio(hits[defined].sum(), defined.sum())
    if len(arrs["bass"]):
        downbeats = np.flatnonzero(np.isclose(np.mod(times, bar), 0))
        every = np.vstack([arrs[role] for role in ("melody", "harmony", "bass")])
        best = _best(_windows(starts[downbeats], ends[downbeats], _roll(every, n, 12, True)), tri)
        at = np.clip(starts[downbeats], 0, n - 1)
        bass_roll = _roll(arrs["bass"], n)[at] > 0
        has_bass = bass_roll.any(1) & best.any(1)
        lowest = np.argmax(bass_roll, 1) % 12
        good = np.zeros(len(at), bool)
        for i in np.flatnonzero(has_bass):
            good[i] = np.isin(lowest[i], np.concatenate([roots[best[i]], fifths[best[i]]]))
        f["bass_root_fifth"] = _ratio(good[has_bass].sum(), has_bass.sum())


def _vertical_figures(f, arrs, pitched, shift, n, bar, beats, eighths):
    # passing notes: short, struck off every beat of the metre
    clash = np.zeros((12, 12))
    for i in range(12):
        for j in range(12):
            clash[i, j] = (i - j) % 12 in DISSONANT
    pcs, total, bad = [], np.zeros(len(eighths)), np.zeros(len(eighths))
    for t in pitched:
        a = _array(t.notes)
        a[:, 0] = np.maximum(a[:, 0] - shift, 0.0)
        keep = (a[:, 1] > PASSING) | _near(a[:, 0], beats, bar)
        pcs.append(_roll(a[keep], n, 12, True)[eighths].astype(float))
    for i in range(len(pcs)):
        for j in range(i + 1, len(pcs)):
            total += pcs[i].sum(1) * pcs[j].sum(1)
            bad += ((pcs[i] @ clash) * pcs[j]).sum(1)
    f["dissonance"] = _ratio(bad.sum(), total.sum())
    full = {role: _roll(arrs[role], n)[eighths] for role in ("melody", "harmony", "bass")}
    allp = full["melody"] + full["harmony"] + full["bass"]
    count = allp.sum(1)
    f["voices"] = float(count[count > 0].mean()) if (count > 0).any() else None
    top = lambda roll: np.where(roll.any(1), 127 - np.argmax(roll[:, ::-1] > 0, 1), -1)  # noqa: E731
    low = lambda roll: np.where(roll.any(1), np.argmax(roll > 0, 1), 128)  # noqa: E731
    m = full["melody"]
    if m.any():
        others = full["harmony"] + full["bass"]
        sounds = m.any(1)
        f["melody_on_top"] = float((top(m)[sounds] >= top(others)[sounds]).mean())
    b = full["bass"]
    if b.any():
        others = full["melody"] + full["harmony"]
        sounds = b.any(1)
        f["bass_lowest"] = float((low(b)[sounds] <= low(others)[sounds]).mean())
