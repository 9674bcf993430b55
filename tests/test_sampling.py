"""Sampling by kind of token (pitch, duration, wait) and the decoding loop's use of the random stream."""
import numpy as np
import pytest

from vgmusic.decode import decode
from vgmusic.encode import Event, token_kind
from vgmusic.sampling import DURATION, PITCH, WAIT, Sampling, kind_groups, pick

TOKENS = Event().vocabulary()
KINDS = kind_groups(token_kind(t) for t in TOKENS)
BANNED = np.array([TOKENS.index("<pad>")])


def logits_of(rows, values):
    z = np.full((rows, len(TOKENS)), -30.0, np.float32)
    for token, v in values.items():
        z[:, TOKENS.index(token)] = v
    return z


def skewed_logits(rows=1):
    """Every kind likely enough to stay (pitches 59%, durations 24%, waits 17%), each with rare members:
    one nucleus over all tokens cuts the rare rhythms with the rare pitches."""
    return logits_of(rows, {"p60": 2, "p62": 2, "p64": 2, "p67": -0.5, "p72": -0.5, "d6": 2.2, "d9": -0.5,
                            "w6": 1.8, "w9": -0.8})


def test_default_draw_is_pick_and_keeps_the_stream():
    z = np.random.default_rng(3).normal(size=(4, len(TOKENS))).astype(np.float32)
    for s in (Sampling(), Sampling(0.8, 20, 0.9), Sampling(temperature=0)):
        a, b = np.random.default_rng(7), np.random.default_rng(7)
        assert (s.draw(z, a, BANNED, KINDS) == pick(z, b, s.temperature, s.top_k, s.top_p, BANNED)).all()
        assert a.random() == b.random()  # one draw per row either way


def test_by_kind_keeps_rare_rhythms_a_single_nucleus_cuts():
    z = skewed_logits(20000)
    glob = Sampling(top_p=0.85).draw(z, np.random.default_rng(0), BANNED, KINDS)
    kind = Sampling(top_p=0.85, rhythm_top_p=1.0).draw(z, np.random.default_rng(0), BANNED, KINDS)
    d9, p67 = TOKENS.index("d9"), TOKENS.index("p67")
    assert (glob == d9).sum() == 0  # the rare dotted value is cut with the rare pitches
    assert (kind == d9).sum() > 150  # sampled by kind, rhythm keeps it
    assert (kind == p67).sum() == 0  # while the pitches' own cut still removes the rare pitches
    # each kind keeps its share: as often a duration as the network says, whatever the cuts
    p = np.exp(z[0].astype(np.float64) - z[0].max())
    p[BANNED] = 0
    p /= p.sum()
    for g in (PITCH, DURATION, WAIT):
        assert abs(np.isin(kind, np.flatnonzero(KINDS == g)).mean() - p[KINDS == g].sum()) < 0.015


def test_a_kind_the_network_barely_offers_stays_cut():
    """Where a rest is due (waits 95%), a chord note the network gives 5% stays out, as one cut keeps it out."""
    z = logits_of(20000, {"w6": 3.0, "w12": 2.0, "w9": 0.0, "p60": -0.2, "p64": -0.4, "p67": -0.6})
    kind = Sampling(top_p=0.85, rhythm_top_p=1.0).draw(z, np.random.default_rng(2), BANNED, KINDS)
    assert not np.isin(kind, np.flatnonzero(KINDS == PITCH)).any()
    assert (kind == TOKENS.index("w9")).sum() > 100  # while the rare wait stays


def test_rhythm_temperature_flattens_only_rhythm():
    z = skewed_logits(20000)
    hot = Sampling(rhythm_temperature=3.0).draw(z, np.random.default_rng(1), BANNED, KINDS)
    cold = Sampling().draw(z, np.random.default_rng(1), BANNED, KINDS)
    d9, p67 = TOKENS.index("d9"), TOKENS.index("p67")
    assert (hot == d9).sum() > 1.5 * (cold == d9).sum()
    # the pitches' relative odds are untouched by the rhythm's temperature
    ratio = lambda s: (s == p67).sum() / max(1, (s == TOKENS.index("p60")).sum())
    assert abs(ratio(hot) - ratio(cold)) < 0.03


@pytest.mark.parametrize("kw", [dict(rhythm_top_p=0), dict(rhythm_top_p=1.5), dict(rhythm_temperature=0),
                                dict(rhythm_temperature=101)])
def test_bad_rhythm_settings_are_refused(kw):
    with pytest.raises(ValueError, match="rhythm"):
        Sampling(**kw)


def test_by_kind_needs_the_kinds():
    with pytest.raises(ValueError, match="kind"):
        Sampling(rhythm_top_p=0.9).draw(skewed_logits(), np.random.default_rng(0))


class Replay:
    """A plan that replays given ids, and one that samples: decode must draw once per row per step
    either way, so the stream (and every song after) does not depend on which steps were replays."""
    scored = False

    def __init__(self, ids, replays):
        self.ids, self.replays, self.got, self.done = list(ids), replays, [], False

    def choose(self, sampled):
        return self.ids[len(self.got)] if self.replays else sampled

    def feed(self, token_id, nats=None):
        self.got.append(token_id)
        self.done = len(self.got) == len(self.ids)


class Fixed:
    """A stepper whose logits never change."""

    def __init__(self, logits):
        self.logits = logits

    def step(self, ids):
        return self.logits


@pytest.mark.parametrize("replays", [True, False])
def test_replayed_steps_still_draw_once_per_row(replays):
    z = skewed_logits(2)
    rng = np.random.default_rng(5)
    plans = [Replay(range(1, 11), replays), Replay(range(1, 11), replays)]
    decode(Fixed(z), z, plans, rng, Sampling(top_p=0.9), BANNED, kinds=KINDS)
    reference = np.random.default_rng(5)
    reference.random(2 * 10)  # ten steps, two rows
    assert rng.random() == reference.random()
    if replays:
        assert plans[0].got == list(range(1, 11))


@pytest.mark.parametrize("settings", [Sampling(), Sampling(0.8, 20, 0.9), Sampling(1.0, 0, 0.85, rhythm_top_p=1.0),
                                      Sampling(0.7, 0, 0.8, rhythm_temperature=1.3, rhythm_top_p=0.95),
                                      Sampling(1e-300, 0, 0.85, rhythm_top_p=1.0)])
def test_one_row_draws_what_a_batch_draws(settings):
    """A song composed alone takes pick's 1-D path; a batch the 2-D one: the same row and the same
    uniform draw must give the same token, bit for bit, on either (so --num never changes a song)."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        z = (rng.normal(size=len(TOKENS)) * rng.uniform(0.5, 4)).astype(np.float32)
        seed = int(rng.integers(1 << 30))
        alone = settings.draw(z[None], np.random.default_rng(seed), BANNED, KINDS)
        batch = settings.draw(np.stack([z, z[::-1]]), np.random.default_rng(seed), BANNED, KINDS)
        assert alone.shape == (1,) and alone[0] == batch[0]
