"""The one batched decoding loop, and the arithmetic of fitting tokens to bar lines.

Everything composing does is a plan run by `decode`: each row of the batch is a plan object that chooses
the token its row is fed (a sampled one, fitted to a bar line, or one it must replay or read) and is told
what was fed. The form (vgmusic.form), a loop's candidate last bars and the reading of a song to score
it (vgmusic.loop) are plans; so will be regenerating chosen bars or a chosen track of an existing song,
without a second loop. A plan has:

    choose(sampled id or None) -> the id to feed      feed(id, nats or None)      done (bool)
    scored (class attribute): whether feed wants the token's negative log-likelihood
    replays (bool): whether the next choose ignores the sample (a replayed or read token)
"""
import math

import numpy as np

from .sampling import log_probs

BEATS_PER_BAR = 4  # composed songs are in 4/4 (music21 reads no other metre from most of the songs)
# A phrase the network fills with more tokens than this per bar is stuck (e.g. chords without waits):
# the rest of the phrase is then a rest, so generation always ends.
MAX_TOKENS_PER_BAR = 96


def decode(stepper, logits, plans, rng, sampling=None, banned=(), progress=None, kinds=None, opening=()):
    """Step `stepper` (whose next-token logits are `logits`, one row per plan) until every plan is done;
    returns the logits after the last step. With `sampling` (a sampling.Sampling) a token is drawn for
    every row at every step, done or not, so a seed repeats a batch whatever its rows do; without, plans
    only replay or read; `kinds` (sampling.kind_groups of the vocabulary) serves sampling by kind;
    `opening`, ids never drawn as a plan's first token (open_with_a_note). `progress()` is called after
    each step."""
    scored = any(p.scored for p in plans)
    while not all(p.done for p in plans):
        if sampling is not None and not all(p.done or p.replays for p in plans):
            z = open_with_a_note(discourage_repeats(logits, plans, sampling.repeat_penalty), plans, opening)
            sampled = sampling.draw(z, rng, banned, kinds)
        else:
            # no row uses a sample (a replayed phrase is 7 of the 16 bars of A A' B A'): only the one
            # draw per row that pick makes, so the seed's stream, and every song after, stays the same
            if sampling is not None:
                rng.random(len(plans))
            sampled = [None] * len(plans)
        nats = -log_probs(logits) if scored else None
        feed = np.zeros(len(plans), np.int64)
        for i, plan in enumerate(plans):
            if not plan.done:
                feed[i] = plan.choose(sampled[i])
                plan.feed(int(feed[i]), nats[i, feed[i]] if scored else None)
        if progress:
            progress()
        # the next logits are read by the next draw, the nats, or the caller once every plan is done; a
        # step whose logits none of them reads (every row replaying) skips the network's output layers
        if scored or all(p.done for p in plans) or (
                sampling is not None and not all(p.done or p.replays for p in plans)):
            logits = stepper.step(feed)
        else:
            logits = getattr(stepper, "advance", stepper.step)(feed)
    return logits


def repeated_pitch(vocab, tokens):
    """The id of the pitch that would repeat the melody if the next token struck it: the highest pitch of
    the event before (event tokens: pitches low to high, a duration, a wait), while the next token starts
    or continues a new event's pitches; None elsewhere (and for encodings without pitch tokens)."""
    names, j = vocab.tokens, len(tokens) - 1
    while j >= 0 and names[tokens[j]][:1] == "p":  # the new event's pitches so far
        j -= 1
    if j < 1 or names[tokens[j]][:1] != "w":
        return None
    j -= 1
    while j >= 0 and names[tokens[j]][:1] != "p":  # back over the event's duration to its top pitch
        j -= 1
    return tokens[j] if j >= 0 else None


def discourage_repeats(logits, plans, penalty):
    """The logits with each row's repeated_pitch made `penalty` times as likely (1: as the network says), or
    its plan's own `repeat_penalty` where it has one (a song's character, vgmusic/characters.py).
    The base corpus's fiddle and pipe tunes strike a note again far more often than game melodies do
    (generated 17-22% of intervals against 1.5-16% in the games' songs), and a window classifier told the
    songs apart by that feature above all; the draw itself is unchanged, so a seed still repeats a song."""
    out = None
    for i, plan in enumerate(plans):
        # None: a Sampling built without one (compose gives the game's) and a plan without its own
        factor = getattr(plan, "repeat_penalty", None) or penalty
        if factor is None or factor == 1:
            continue
        tokens = getattr(plan, "tokens", None)
        token = None if plan.done or tokens is None else repeated_pitch(plan.vocab, tokens)
        if token is not None:
            out = np.array(logits, np.float32) if out is None else out
            out[i, token] += np.float32(math.log(factor))
    return logits if out is None else out


# what a token barred from a row gets: finite, so the logits' check still passes, and exp() of it is 0
BARRED = np.float32(-1e30)


def open_with_a_note(logits, plans, opening):
    """The logits with the `opening` ids (a rest's wait and duration tokens) barred from every row whose
    plan has fed nothing yet: a song starts with a note. The games' melody tracks may open on bars of
    rest while other instruments play (Zelda's up to 7 bars), and the networks learned it: fine-tuned for
    one pass, Zelda opened 2 of 20 songs on 8 and 11 bars of silence, and an 8-bar song on nothing at all.
    Here the melody is the first voice of the arrangement, so it begins the song."""
    rows = [i for i, p in enumerate(plans) if len(opening) and not p.done and not p.replays
            and getattr(p, "tokens", None) == []]
    if not rows:
        return logits
    out = np.array(logits, np.float32)
    out[np.ix_(rows, opening)] = BARRED
    return out


def fit_token(enc, vocab, token, now, end, count, limit, forced):
    """The token to feed at time `now` when the song (or phrase) must end exactly at `end`: a row past
    `limit` sampled tokens is stuck (e.g. chords without waits) and rests instead; a wait past the end
    is cut at it, its remainder queued on `forced`, so every phrase is whole bars."""
    if count > limit and enc.advance(token) == 0:
        token = enc.waits(enc.max_step)[0]
    step = enc.advance(token)
    if step and now + step > end:
        waits = enc.waits(end - now)
        forced.extend(vocab.index[w] for w in waits[1:])
        token = waits[0]
    return vocab.index[token]


def clip(enc, vocab, ids, length):
    """The tokens of `ids` that fall within `length` grid steps, the last wait cut at it."""
    out, now = [], 0
    for i in ids:
        step = enc.advance(vocab.tokens[i])
        if now + step > length:
            return out + [vocab.index[w] for w in enc.waits(length - now)]
        out.append(i)
        now += step
        if now == length and step:
            return out
    return out


def cut_at(enc, vocab, ids, steps):
    """Index of the first token at which the song has reached `steps` grid steps."""
    now = 0
    for i, t in enumerate(ids):
        if now >= steps:
            return i
        now += enc.advance(vocab.tokens[t])
    return len(ids)
