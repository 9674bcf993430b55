"""Song characters: each composed song takes one training song's habit of striking a note again.

A game's songs differ from each other more than one model's songs do. In Zelda's, Gerudo Valley strikes
the same pitch again on 94% of its notes and most of the others on under 5%; with one repeat penalty for
all, every composed song repeated 10-20%, a share no song of the game has, and a window classifier told
the songs apart by that feature first (univariate AUC 0.73 with the pooled shares equal: 16% and 17%).
So the calibration also measures, for each training song, the repeat penalty (vgmusic.decode.
discourage_repeats) at which the model repeats as often as that song, and composing gives each song the
penalty of one training song, drawn in proportion to the songs' lengths (a song twice as long is as
many notes of the game's music), from the song's seed and number: a seed still repeats its songs.

    character = {"source", "file", "events", "repeats" (the song's share), "repeat_penalty"}

Only the repeat penalty is a song's own: a rhythm prior calibrated to one song of 15-300 events made
rhythms monotonous (the longest run of equal inter-onset intervals 0.49 of a window against the songs'
0.32) and the classifier's AUC higher, so the rhythm stays the model's (vgmusic/calibrate.py)."""
import math

import numpy as np

ROUNDS = 4  # correcting rounds, as the rhythm's: a penalty moves what follows a note too
PER_SONG = 4  # songs composed per training song a round: ~2,000 events, so a 2% share is ~40 repeats
STEP = 0.7  # of the log-ratio a round, as the rhythm's (a full step overshot)
SMOOTH = 0.5  # repeats and notes added on both sides: a song with none gets a finite target
PENALTY_RANGE = (0.01, 10.0)  # what Sampling accepts (and a sidecar may hold): the network keeps some say
# The most a calibrated penalty reaches. Gerudo Valley's melody strikes its last pitch again on 94% of its
# notes; at 10 its character wrote a 24-note run of one pitch found verbatim in it, past issue 6's limit of
# 12 (the evaluation's longest match), and at 6 Zelda's songs used 20.6 distinct pitches (its limit 20.3);
# at 4: 10 notes and 20.0 (bench/results/judge-char-zelda-80.md, docs/eval/)
PEAK_PENALTY = 4.0
TAG = 0x43484152  # mixed into a song's seed to draw its character apart from the notes' stream


def repeat_counts(tokens):
    """(repeats, intervals) of a token list's melody line (each event's highest pitch), as
    decode.repeated_pitch sees a repeat: the next event's highest pitch equal to this one's."""
    tops, cur = [], []
    for t in tokens:
        if t[:1] == "p":
            cur.append(int(t[1:]))
        elif t[:1] == "d":
            if cur:
                tops.append(max(cur))
            cur = []
    tops = np.asarray(tops)
    return int((tops[1:] == tops[:-1]).sum()), max(len(tops) - 1, 0)


def share(counts):
    repeats, intervals = counts
    return (repeats + SMOOTH) / (intervals + 2 * SMOOTH)


def calibrate_characters(model, songs, sampling, per_song=PER_SONG, rounds=ROUNDS, seed=0, report=print, style=""):
    """Characters for `songs` [(source, file, tokens)]: `rounds` rounds of composing `per_song` songs with each
    song's penalty so far (one batch for all), each moving every penalty STEP of the way (in logs) to the
    song's repeat share over the drawn one. `sampling` as the songs compose (its rhythm prior included)."""
    from .calibrate import EVENTS
    from .compose import Request, compose
    targets = [share(repeat_counts(tokens)) for _, _, tokens in songs]
    penalties = [sampling.repeat_penalty or 1.0] * len(songs)
    for r in range(rounds + 1):  # the last composing only measures
        drawn_songs = compose(model, Request(num=per_song * len(songs), events=EVENTS, seed=seed, sampling=sampling,
                                             repeat_penalties=tuple(p for p in penalties for _ in range(per_song)),
                                             style=style))
        drawn = []
        for j in range(len(songs)):
            counts = [repeat_counts(s.meta["tokens"]) for s in drawn_songs[j * per_song:(j + 1) * per_song]]
            drawn.append(share((sum(c[0] for c in counts), sum(c[1] for c in counts))))
        gaps = [abs(math.log(d / t)) for d, t in zip(drawn, targets)]
        worst = int(np.argmax(gaps))
        report(f"  round {r}: the farthest song's repeats: {songs[worst][1]} drawn {drawn[worst]:.1%}, "
               f"the song {targets[worst]:.1%} (penalty {penalties[worst]:.2f})")
        if r < rounds:
            penalties = [min(PEAK_PENALTY, max(PENALTY_RANGE[0], p * (t / d) ** STEP))
                         for p, t, d in zip(penalties, targets, drawn)]
    return [{"source": source, "file": name, "events": model.enc.events(tokens),
             "repeats": round(repeat_counts(tokens)[0] / max(repeat_counts(tokens)[1], 1), 4),
             "repeat_penalty": round(p, 4)} for (source, name, tokens), p in zip(songs, penalties)]


def choose(characters, seed, index, source=""):
    """The character of song `index` (0-based) of a batch composed with `seed`: one of `characters` (those of
    `source` when it has any), drawn in proportion to their events; None when there are none."""
    pool = [c for c in characters if c["source"] == source] if source else []
    pool = pool or list(characters)
    if not pool:
        return None
    weights = np.array([max(c["events"], 1) for c in pool], float)
    rng = np.random.default_rng([seed % 2 ** 32, index, TAG])
    return pool[int(rng.choice(len(pool), p=weights / weights.sum()))]


def valid(v):
    """Whether a sidecar's "characters" entry is well formed (checkpoint.validate)."""
    lo, hi = PENALTY_RANGE
    return isinstance(v, dict) and isinstance(v.get("songs"), list) and v["songs"] and all(
        isinstance(c, dict) and isinstance(c.get("source"), str) and isinstance(c.get("file"), str)
        and isinstance(c.get("events"), int) and c["events"] >= 0
        and isinstance(c.get("repeat_penalty"), (int, float)) and lo <= c["repeat_penalty"] <= hi
        for c in v["songs"])

