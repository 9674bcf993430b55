"""Seamless loops: a song's last bar is chosen so that its first bar follows it as naturally as any bar
follows another inside the song, by the model's own judgement.

Background music repeats for as long as the player stays, so the seam is heard every time. The
song is composed as usual (whole bars, in its form); then, for each song, the network reads it up to its
last bar (a Reading plan, every token scored), and `candidates` ClosingPlans go on from there as one
batch: each writes a new last bar and is scored on the song's first bar fed right after it (the seam;
after an intro, the body's first bar).
A loop passes when its seam costs no more than the median bar inside the song, so returning to
the start is no less expected than the song's own continuations. The best candidate is kept;
songs that no candidate closes are composed again, up to `tries` times.
"""
from collections import defaultdict, deque

import numpy as np

from .decode import BEATS_PER_BAR, MAX_TOKENS_PER_BAR, cut_at, decode, fit_token
from .encode import GRID

BAR = BEATS_PER_BAR * GRID


class Reading:
    """Feeds given tokens (a song read to score it), each token's loss kept by the bar it falls in;
    the first `skip` are context only (a loop's preroll)."""
    scored = True
    replays = True  # every token is given

    def __init__(self, enc, vocab, ids, skip=0, start=0):
        self.enc, self.vocab, self.ids, self.skip = enc, vocab, ids, skip
        self.at, self.now, self.bar_loss = 0, start, defaultdict(list)
        self.done = not ids

    def choose(self, sampled):
        return self.ids[self.at]

    def feed(self, token_id, nats):
        if self.at >= self.skip:
            self.bar_loss[self.now // BAR].append(nats)
        self.now += self.enc.advance(self.vocab.tokens[token_id])
        self.at += 1
        self.done = self.at == len(self.ids)


class ClosingPlan:
    """One candidate ending of a song whose tokens up to its last bar have been read: a new last bar
    sampled to the song's end (none when the song was read whole), then the song's first bar
    again. Every token is scored (its negative log-likelihood), by bar, the shared part's scores copied in."""
    scored = True

    def __init__(self, enc, vocab, total, now, read_loss, opening):
        self.enc, self.vocab, self.total, self.now = enc, vocab, total, now
        self.bar_loss = defaultdict(list, {b: list(v) for b, v in read_loss.items()})
        self.forced, self.opening = deque(), opening  # remainders of waits cut at the song's end
        self.tokens, self.count, self.opened, self.seam, self.done = [], 0, 0, [], False

    @property
    def replays(self):
        return self.now >= self.total or bool(self.forced)

    def choose(self, sampled):
        if self.now >= self.total:
            return self.opening[self.opened]
        if self.forced:
            return self.forced.popleft()
        self.count += 1
        return fit_token(self.enc, self.vocab, self.vocab.tokens[sampled], self.now, self.total, self.count,
                         MAX_TOKENS_PER_BAR, self.forced)

    def feed(self, token_id, nats):
        if self.now >= self.total:
            self.seam.append(nats)
            self.opened += 1
            self.done = self.opened == len(self.opening)
            return
        self.tokens.append(token_id)
        self.bar_loss[self.now // BAR].append(nats)
        self.now += self.enc.advance(self.vocab.tokens[token_id])

    def progress(self):
        return self.now + BAR * self.opened / max(1, len(self.opening))

    def figures(self):
        """(seam loss, typical bar loss): mean nats per token of the first bar after the last, and the
        median over the song's bars of the same figure."""
        return float(np.mean(self.seam)), float(np.median([np.mean(v) for v in self.bar_loss.values()]))


def close_loop(make_stepper, enc, vocab, seed_ids, plan, rng, sampling, banned=(), candidates=16,
               progress=None, keep=False, kinds=None):
    """The best of `candidates` last bars for one song (a form.FormPlan, done), as a dict of the song's
    tokens, its seam and typical loss, and whether the seam passes. The song up to its last bar is read
    once; the candidates then go on from there as one batch. `keep` scores the song as it is. A song with
    an intro loops its body: the seam leads into the body's first bar, and the typical bar is the body's."""
    song = plan.song
    intro = cut_at(enc, vocab, song, getattr(plan, "intro", 0))  # the intro's tokens (none without one)
    cut = len(song) if keep else cut_at(enc, vocab, song, plan.length - BAR)
    stepper = make_stepper(1)
    logits = stepper.start(np.asarray(seed_ids, np.int64)[None])
    # time counts from the song's start, after its preroll
    reading = Reading(enc, vocab, plan.tokens[:plan.skip] + song[:cut], skip=plan.skip + intro, start=-plan.t0)
    logits = decode(stepper, logits, [reading], rng)
    candidates = 1 if keep else candidates
    stepper.expand(candidates)
    logits = np.repeat(logits, candidates, axis=0)
    opening = song[intro:intro + cut_at(enc, vocab, song[intro:], BAR)]
    rows = [ClosingPlan(enc, vocab, plan.length, reading.now, reading.bar_loss, opening) for _ in range(candidates)]
    for row in rows:  # a new last bar in the song's own character
        row.repeat_penalty = getattr(plan, "repeat_penalty", None)
    decode(stepper, logits, rows, rng, sampling, banned,
           progress=progress and (lambda: progress(min(r.progress() for r in rows))), kinds=kinds)
    best, seam, typical = min(((r, *r.figures()) for r in rows), key=lambda x: x[1] - x[2])
    return {"tokens": song[:cut] + best.tokens, "seam_loss": round(seam, 4), "typical_loss": round(typical, 4),
            "passed": bool(seam <= typical)}


def close_loops(make_stepper, enc, vocab, seed_ids, plans, rng, sampling, banned=(), progress=None, **settings):
    """close_loop for each song, in order; a progress bar over the songs' time."""
    done, out = 0, []
    for plan in plans:
        out.append(close_loop(make_stepper, enc, vocab, seed_ids, plan, rng, sampling, banned, progress=progress and (
            lambda steps, base=done: progress(base + steps)), **settings))
        done += plan.length
    return out


def loop_songs(plans, compose_more, close, tries):
    """Close every song's loop (`close(plans)`); songs that no candidate closes are
    replaced by new ones (`compose_more(indices)`: one for each song index), `tries` songs in all. Per song, the best closing seen,
    with the song (`plan`) it closes and the try that found it."""
    best, todo, fresh = [None] * len(plans), list(range(len(plans))), plans
    for attempt in range(tries):
        if attempt:
            fresh = compose_more(todo)
        for i, plan, c in zip(todo, fresh, close(fresh)):
            c.update(plan=plan, tries=attempt + 1)
            if best[i] is None or c["seam_loss"] - c["typical_loss"] < best[i]["seam_loss"] - best[i]["typical_loss"]:
                best[i] = c
        todo = [i for i in todo if not best[i]["passed"]]
        if not todo:
            break
    return best
