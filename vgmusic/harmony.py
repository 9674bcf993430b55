"""Harmonise a melody: a chord every half bar (a whole bar in metres that do not halve), chosen by Viterbi
over the chord vocabulary (vgmusic.chords) with learned tables (vgmusic/arrangement_data.json, built by
vgmusic.arrange_learn):

  - emission: how likely the melody's pitch classes are over each chord (relative to its root, per
    quality), each note weighted by how long it sounds in the slot and how strong its beat is: learned from
    the game corpora's melodies and the chorales' sopranos over the chords beneath them;
  - transitions: a chord stays with the probability the game corpora keep one across a half bar (mid-bar)
    or a bar line, else changes as the games and the chorales change chords (each source counting equally);
  - the first chord as songs start, and at each phrase's end a cadence as the chorales' fermatas end them.

The form is kept: a slot of a section that replays an earlier one (A' after A, the same letter and pass)
whose melody is the same note for note gets the same chord; the sections are harmonised in order, each
knowing where the previous one ended and, where it is already fixed, the chord it leads into. A loop's last
chord is chosen knowing it leads back into the first. Costs a few milliseconds for a 16-bar song.
"""
import bisect
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from .chords import CHORDS, DIATONIC, NAMES, QUALITIES
from .theory import KEY_PROFILES

DATA = Path(__file__).with_name("arrangement_data.json")
MIN_USAGE = 0.012  # a chord the data uses less (per mode) is left out of the choices unless diatonic
MELODY_WEIGHT = 1.6  # emission log-probabilities times this: how much the melody outweighs the chord grammar
CADENCE_WEIGHT = 1.0  # the cadence table's log-probability at a phrase's last slot, times this
LOOP_TURNAROUND = 3.0  # a loop's last chord: the transition into the first chord's log-probability, times this
KEY_CANDIDATES = 4  # keys (by Krumhansl-Schmuckler) harmonised; the one the model explains best is kept
# a note's weight by where in the bar it starts (beats from the bar line): the downbeat and the bar's middle
# carry the harmony, off-beat notes are mostly passing
DOWNBEAT, MIDBAR, ONBEAT, OFFBEAT = 2.0, 1.5, 1.0, 0.5


@lru_cache(maxsize=1)
def data():
    """The learned tables (arrangement_data.json), read once: about 50 KB, a few ms."""
    try:
        obj = json.loads(DATA.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{DATA}: the arranger's data cannot be read ({e}); rebuild it with "
                         "python -m vgmusic.arrange_learn") from None
    if [tuple(c[:2]) for c in obj.get("chords", [])] != list(CHORDS):
        raise ValueError(f"{DATA}: learned with another chord vocabulary; rebuild it with "
                         "python -m vgmusic.arrange_learn")
    return obj


@lru_cache(maxsize=2)
def tables(mode):
    """(states, log change matrix, stay probabilities, log start, log cadence, log emission per state)."""
    d = data()
    m = d["modes"][mode]
    states = [i for i, c in enumerate(CHORDS) if m["usage"][i] >= MIN_USAGE or c in DIATONIC[mode]]
    change = np.array(m["change"])[np.ix_(states, states)]
    np.fill_diagonal(change, 0.0)
    change /= change.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_change = np.log(change)
    start = np.log(np.array(m["start"])[states])
    cadence = np.log(np.array(m["cadence"])[states])
    emission = np.array([np.roll(np.log(d["emission"][CHORDS[i][1]]), CHORDS[i][0]) for i in states])
    return states, log_change, m["stay"], start, cadence, emission  # emission: state x pitch class (tonic 0)


def slot_beats(song):
    """Beats per harmony slot: half a bar of 4/4 or 2/2 (two beats), a bar of 3/4, half a bar of 6/8."""
    num, den = song.metre
    bar = song.beats_per_bar
    if num % 2 == 0 and num not in (6, 12) or num in (6, 12) and den == 8:
        return bar / 2
    return bar


def note_weight(onset, bar):
    pos = onset % bar
    if abs(pos) < 1e-6:
        return DOWNBEAT
    if abs(pos - bar / 2) < 1e-6:
        return MIDBAR
    return ONBEAT if abs(pos - round(pos)) < 1e-6 else OFFBEAT


def slot_weights(notes, slots, slot, bar):
    """slots x 12: each slot's pitch-class weights, absolute pitch classes."""
    w = np.zeros((slots, 12))
    for n in notes:
        first, last = int(n.onset // slot), int(min(slots - 1, (n.onset + n.duration - 1e-9) // slot))
        for s in range(first, last + 1):
            overlap = min((s + 1) * slot, n.onset + n.duration) - max(s * slot, n.onset)
            if overlap > 0:
                # the note's beat weight counts where it is struck; held into later slots, it counts as on a beat
                w[s, n.pitch % 12] += overlap * (note_weight(n.onset, bar) if s == first else ONBEAT)
    return w


def estimate_keys(notes):
    """The KEY_CANDIDATES likeliest keys (tonic, mode) by Krumhansl-Schmuckler, best first."""
    weight = np.zeros(12)
    for n in notes:
        weight[n.pitch % 12] += n.duration
    if not weight.any():
        return [(0, "major")]
    scores = [(np.corrcoef(weight, np.roll(p, t))[0, 1], t, m) for m, p in KEY_PROFILES.items() for t in range(12)]
    return [(t, m) for _, t, m in sorted(scores, key=lambda x: -x[0])[:KEY_CANDIDATES]]


def phrases(song, slot, slots):
    """[(first slot, last slot + 1, theme)] of the form's sections (a theme is a label without its "'");
    a song without sections is cut into phrases of 4 bars, each a theme of its own."""
    starts = [(int(round(s.start / slot)), s.label.rstrip("'")) for s in song.sections if s.start < slots * slot]
    if not starts:
        per = max(1, int(round(4 * song.beats_per_bar / slot)))
        starts = [(i, f"phrase{i}") for i in range(0, slots, per)]
    if starts[0][0] > 0:
        starts.insert(0, (0, "intro"))
    return [(a, b, theme) for (a, theme), (b, _) in zip(starts, starts[1:] + [(slots, "")]) if b > a]


def slot_contents(notes, slots, slot):
    """slot -> its melody as hashable data, relative to its start (what decides two slots are the same):
    every slot's at once, the notes found by bisection in onset order (one scan of all notes per slot
    took most of the time of arranging a 500-event song)."""
    ordered = sorted(notes, key=lambda n: n.onset)
    onsets = [n.onset for n in ordered]

    def content(a, b):
        lo, hi = bisect.bisect_left(onsets, a * slot - 1e-9), bisect.bisect_left(onsets, b * slot - 1e-9)
        return tuple(sorted((round(n.onset - a * slot, 4), round(n.duration, 4), n.pitch) for n in ordered[lo:hi]))
    return [content(t, t + 1) for t in range(slots + 1)]


def viterbi(emit, start, log_change, stay, bar_lines, fixed, end=None, cadence=None):
    """The best state path of one phrase: emit (slots x states), start (states: log prior, or the previous
    chord's transition row), fixed {slot: state} forced, end (states: what the phrase leads into) and a
    cadence (states) at its last slot. Returns (path, score)."""
    n, k = emit.shape
    same, other = np.eye(k, dtype=bool), ~np.eye(k, dtype=bool)
    score = start + emit[0]
    if 0 in fixed:
        score = np.where(np.arange(k) == fixed[0], score, -np.inf)
    back = np.zeros((n, k), np.int64)
    # the two transition matrices, at a bar line and within a bar, made once rather than at every slot
    trans = {line: np.where(same, math.log(p), math.log(1 - p) + np.where(other, log_change, -np.inf))
             for line, p in ((True, stay["bar"]), (False, stay["mid"]))}
    for t in range(1, n):
        total = score[:, None] + trans[bool(bar_lines[t])]
        back[t] = total.argmax(axis=0)
        score = total.max(axis=0) + emit[t]
        if t in fixed:
            score = np.where(np.arange(k) == fixed[t], score, -np.inf)
    if cadence is not None:
        score = score + CADENCE_WEIGHT * cadence
    if end is not None:
        score = score + end
    path = [int(score.argmax())]
    best = float(score[path[0]])
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1], best


def transition_row(state, log_change, stay, bar_line):
    p = stay["bar"] if bar_line else stay["mid"]
    row = math.log(1 - p) + log_change[state]
    row[state] = math.log(p)
    return row


def harmonise_in(song, notes, tonic, mode, loop):
    """(chords: [(start beat, end beat, chord index)], score) in one key."""
    states, log_change, stay, start, cadence, emission = tables(mode)
    slot, bar = slot_beats(song), song.beats_per_bar
    slots = max(1, int(round(song.end / slot)))
    w = slot_weights(notes, slots, slot, bar)
    emit = MELODY_WEIGHT * (w @ np.roll(emission, tonic, axis=1).T)  # slots x states
    bar_lines = [abs((t * slot) % bar) < 1e-6 for t in range(slots)]
    parts = phrases(song, slot, slots)
    chosen, seen, total = [None] * slots, {}, 0.0
    contents = slot_contents(notes, slots, slot)
    first_slot = min(slots - 1, int(round(song.loop[0] / slot))) if song.loop else 0
    for i, (a, b, theme) in enumerate(parts):
        fixed = {}
        for t in range(a, b):
            key = (theme, t - a, contents[t])
            if key in seen:
                fixed[t - a] = chosen[seen[key]]
            else:
                seen[key] = t
        first = start if a == 0 else transition_row(chosen[a - 1], log_change, stay, bar_lines[a])
        # what the phrase leads into: the next phrase's first chord when the form already fixes it (a
        # replay), the song's first chord at a loop's end
        nxt = None
        if b < slots and i + 1 < len(parts):
            key = (parts[i + 1][2], 0, contents[b])
            nxt = chosen[seen[key]] if key in seen and seen[key] < b else None
        elif b == slots and loop and a > first_slot:  # back to the loop's start: bar 1, or the body's first
            nxt = chosen[first_slot]
        end = None
        if nxt is not None:
            end = np.array([transition_row(s, log_change, stay, True)[nxt] for s in range(len(states))])
            if b == slots:  # a loop's seam: a turnaround (the dominant before the tonic) is what a game loop plays
                end = LOOP_TURNAROUND * end
        path, score = viterbi(emit[a:b], first, log_change, stay, bar_lines[a:b], fixed, end,
                              None if b == slots and loop else cadence)
        chosen[a:b] = path
        total += score
    out = []
    for t, s in enumerate(chosen):
        c = states[s]
        if out and out[-1][2] == c:
            out[-1][1] = (t + 1) * slot
        else:
            out.append([t * slot, (t + 1) * slot, c])
    return [tuple(x) for x in out], total


def harmonise(song, notes, key=None, loop=None):
    """The chords of a melody (its notes) in `song`'s metre, form and length: (key (tonic, mode), chords
    [(start beat, end beat, chord index into chords.CHORDS)]). `key` (tonic, mode) or song.key is used as
    given; else the likeliest keys are tried and the best harmonised kept."""
    loop = song.loop is not None if loop is None else loop
    if key is None and song.key is not None:
        key = (song.key.tonic, song.key.mode)
    candidates = [key] if key else estimate_keys(notes)
    best = None
    for tonic, mode in candidates:
        chords, score = harmonise_in(song, notes, tonic, mode, loop)
        if best is None or score > best[2]:
            best = ((tonic, mode), chords, score)
    return best[0], best[1]


def chord_names(chords):
    return [NAMES[c] for _, _, c in chords]


def chord_pitch_classes(chord, tonic):
    root, quality = CHORDS[chord]
    return [(tonic + root + i) % 12 for i in QUALITIES[quality]]
