"""Seamless loops: a song's last bar is chosen so that its first bar follows it as naturally as any bar
follows another inside the song, by the model's own judgement.

Background music repeats for as long as the player stays, so the seam is heard every time. The
song is composed as usual (whole bars, in its form); then, for each song, the network writes
`candidates` new last bars from the same context, and each candidate is scored by the loss of the
song's first bar fed right after it (the seam), in the same pass that scores every bar of the song.
A loop passes when its seam costs no more than the median bar inside the song, so returning to
the start is no less expected than the song's own continuations. The best candidate is kept;
songs that no candidate closes are composed again, up to `tries` times.
"""
from collections import defaultdict, deque

import numpy as np

from .encode import PAD
from .sample import BAR, MAX_TOKENS_PER_BAR, fit_token, pick


def log_probs(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def cut_at(enc, vocab, ids, steps):
    """Index of the first token at which the song has reached `steps` grid steps."""
    now = 0
    for i, t in enumerate(ids):
        if now >= steps:
            return i
        now += enc.advance(vocab.tokens[t])
    return len(ids)


class Closing:
    """One candidate ending of a song whose tokens up to its last bar have been read: a new last bar
    sampled to the song's end (none with `keep`: the song was read whole), then the song's first bar
    again. Every token is scored (its negative log-likelihood), by bar, the shared part's scores copied in."""

    def __init__(self, enc, vocab, total, now, read_loss, opening):
        self.enc, self.vocab, self.total, self.now = enc, vocab, total, now
        self.bar_loss = defaultdict(list, {b: list(v) for b, v in read_loss.items()})
        self.forced, self.opening = deque(), opening  # remainders of waits cut at the song's end
        self.tokens, self.count, self.opened, self.seam, self.done = [], 0, 0, [], False

    def choose(self, sampled):
        if self.now >= self.total:
            return self.opening[self.opened]
        if self.forced:
            return self.forced.popleft()
        self.count += 1
        return fit_token(self.enc, self.vocab, self.vocab.tokens[sampled], self.now, self.total, self.count,
                         MAX_TOKENS_PER_BAR, self.forced)

    def feed(self, token_id, loss):
        if self.now >= self.total:
            self.seam.append(loss)
            self.opened += 1
            self.done = self.opened == len(self.opening)
            return
        self.tokens.append(token_id)
        self.bar_loss[self.now // BAR].append(loss)
        self.now += self.enc.advance(self.vocab.tokens[token_id])

    def figures(self):
        """(seam loss, typical bar loss): mean nats per token of the first bar after the last, and the
        median over the song's bars of the same figure."""
        return float(np.mean(self.seam)), float(np.median([np.mean(v) for v in self.bar_loss.values()]))


def close_loop(make_stepper, enc, vocab, seed_ids, row, rng, temperature=1.0, top_k=0, top_p=1.0,
               candidates=16, progress=None, keep=False):
    """The best of `candidates` last bars for one song (a sample.Row), as a dict of the song's tokens,
    its seam and typical loss, and whether the seam passes. The song up to its last bar is read once;
    the candidates then go on from there as one batch. `keep` scores the song as it is."""
    song = row.song
    cut = len(song) if keep else cut_at(enc, vocab, song, row.length - BAR)
    stepper = make_stepper(1)
    logits = stepper.start(np.asarray(seed_ids, np.int64)[None])
    read_loss, now = defaultdict(list), -row.t0  # time counts from the song's start, after its preroll
    for i, t in enumerate(row.tokens[:row.skip] + song[:cut]):
        if i >= row.skip:
            read_loss[now // BAR].append(-log_probs(logits)[0, t])
        now += enc.advance(vocab.tokens[t])
        logits = stepper.step([t])
    candidates = 1 if keep else candidates
    stepper.expand(candidates)
    logits = np.repeat(logits, candidates, axis=0)
    opening = song[:cut_at(enc, vocab, song, BAR)]
    rows = [Closing(enc, vocab, row.length, now, read_loss, opening) for _ in range(candidates)]
    banned = [vocab.index[PAD]] if PAD in vocab.index else []
    while not all(r.done for r in rows):
        sampled = pick(logits, rng, temperature, top_k, top_p, banned)
        logp = log_probs(logits)
        feed = np.zeros(len(rows), np.int64)
        for i, r in enumerate(rows):
            if not r.done:
                feed[i] = r.choose(sampled[i])
                r.feed(int(feed[i]), -logp[i, feed[i]])
        if progress:
            progress(min(r.now + BAR * r.opened / max(1, len(r.opening)) for r in rows))
        logits = stepper.step(feed)
    best, seam, typical = min(((r, *r.figures()) for r in rows), key=lambda x: x[1] - x[2])
    return {"tokens": song[:cut] + best.tokens, "seam_loss": round(seam, 4), "typical_loss": round(typical, 4),
            "passed": bool(seam <= typical)}


def close_loops(make_stepper, enc, vocab, seed_ids, songs, rng, progress=None, **settings):
    """close_loop for each song, in order; a progress bar over the songs' time."""
    done, out = 0, []
    for row in songs:
        out.append(close_loop(make_stepper, enc, vocab, seed_ids, row, rng, progress=progress and (
            lambda steps, base=done: progress(base + steps)), **settings))
        done += row.length
    return out


def loop_songs(rows, compose_more, close, tries):
    """Close every song's loop (`close(rows)`); songs that no candidate closes are
    replaced by new ones (`compose_more(n)`), `tries` songs in all. Per song, the best closing seen,
    with the song (`row`) it closes and the try that found it."""
    best, todo, fresh = [None] * len(rows), list(range(len(rows))), rows
    for attempt in range(tries):
        if attempt:
            fresh = compose_more(len(todo))
        for i, row, c in zip(todo, fresh, close(fresh)):
            c.update(row=row, tries=attempt + 1)
            if best[i] is None or c["seam_loss"] - c["typical_loss"] < best[i]["seam_loss"] - best[i]["typical_loss"]:
                best[i] = c
        todo = [i for i in todo if not best[i]["passed"]]
        if not todo:
            break
    return best
