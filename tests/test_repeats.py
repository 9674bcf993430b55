"""The repeat penalty: the melody's last pitch struck again is made `penalty` times as likely, and nothing else;
and a song's first token, which is never a rest."""
import math

import numpy as np
import pytest

from vgmusic import ROOT
from vgmusic.compose import Request, compose, load_model
from vgmusic.config import DEFAULT_REPEAT_PENALTY, REPEAT_PENALTY
from vgmusic.decode import discourage_repeats, open_with_a_note, repeated_pitch
from vgmusic.encode import Vocab
from vgmusic.judge import melody, pooled, shares
from vgmusic.sampling import Sampling, log_probs

SETTINGS = dict(top_p=0.85, rhythm_top_p=1.0)  # predict.py's defaults
MODEL = ROOT / "pokemon_red_blue_yellow" / "weights"
VOCAB = Vocab(["<pad>", "p60", "p64", "p67", "d6", "d12", "w6", "w12"])


class Row:
    def __init__(self, tokens, done=False):
        self.tokens, self.vocab, self.done, self.replays = [VOCAB.index[t] for t in tokens], VOCAB, done, False


@pytest.mark.parametrize("tokens, repeated", [
    (["p60", "d6", "w6"], "p60"),  # after a wait: the last event's pitch
    (["p60", "p67", "d12", "w12"], "p67"),  # a chord: its highest
    (["p64", "d6", "w6", "p60"], "p64"),  # inside the new event's pitches
    (["p64", "d6"], None),  # a duration comes next, no pitch
    (["p64"], None),  # the first event
    ([], None),
])
def test_the_repeated_pitch_is_the_last_events_highest(tokens, repeated):
    assert repeated_pitch(VOCAB, Row(tokens).tokens) == (VOCAB.index[repeated] if repeated else None)


def test_only_the_repeated_pitch_moves_by_the_factor():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, len(VOCAB.tokens))).astype(np.float32)
    rows = [Row(["p60", "d6", "w6"]), Row(["p64", "d6"]), Row(["p67", "d6", "w6"], done=True)]
    out = discourage_repeats(logits, rows, 0.25)
    assert out is not logits and np.array_equal(logits, discourage_repeats(logits, rows, 1))
    odds = np.exp(log_probs(out[:1]) - log_probs(logits[:1]))[0]
    other = np.delete(odds, VOCAB.index["p60"])
    assert np.allclose(other, other[0]) and math.isclose(odds[VOCAB.index["p60"]] / other[0], 0.25, rel_tol=1e-5)
    assert np.array_equal(out[1:], logits[1:])  # no pitch due, and a finished row: untouched


def test_bad_penalties_are_refused():
    for bad in (0, -1, 11):
        with pytest.raises(ValueError, match="repeat penalty"):
            Sampling(repeat_penalty=bad)


def repeats(model, penalty):
    request = Request(events=150, seed=3, sampling=Sampling(**SETTINGS, repeat_penalty=penalty))
    notes = compose(model, request)[0].melody().notes
    return shares(pooled([notes]))["repeated_pitch"], melody(notes)[2]


@pytest.mark.skipif(not (MODEL / "model.json").exists(), reason="no shipped Pokemon model")
def test_a_shipped_model_repeats_less_and_the_game_has_its_own():
    model = load_model(MODEL)
    free, same = repeats(model, 1.0), repeats(model, 1.0)
    assert np.array_equal(free[1], same[1])  # a seed still repeats the song
    assert repeats(model, 0.1)[0] < free[0] / 2
    assert REPEAT_PENALTY[model.meta["game"]] < 1 and 0 < DEFAULT_REPEAT_PENALTY <= 1
    default = compose(model, Request(events=150, seed=3, sampling=Sampling(**SETTINGS)))[0].melody().notes
    game = repeats(model, REPEAT_PENALTY[model.meta["game"]])[1]
    assert np.array_equal(melody(default)[2], game)  # None in a request: the game's own factor


def test_a_song_opens_with_a_note_whatever_the_network_says():
    rests = [VOCAB.index[t] for t in ("d6", "d12", "w6", "w12")]
    logits = np.zeros((3, len(VOCAB.tokens)), np.float32)
    logits[:, VOCAB.index["w12"]] = 30.0  # a rest almost surely
    rows = [Row([]), Row(["p60"]), Row([], done=True)]
    out = open_with_a_note(logits, rows, rests)
    assert np.isfinite(out).all() and np.exp(log_probs(out[:1]))[0, rests].sum() == 0
    assert np.array_equal(out[1:], logits[1:])  # a row under way, and a finished one: as they were
    assert open_with_a_note(logits, rows, ()) is logits
    draws = Sampling(top_p=1.0).draw(out[:1], np.random.default_rng(0))
    assert VOCAB.tokens[draws[0]].startswith("p")


def test_every_composed_song_starts_on_its_first_beat():
    """Zelda's melody tracks may open on bars of rest (the other instruments' intro); its shipped model,
    left to itself, opened seed 4's 8 bars on silence. Composed songs start with their first note."""
    model = load_model(ROOT / "zelda_ocarina_of_time" / "weights")
    for seed in (4, 13):
        (song,) = compose(model, Request(bars=8, seed=seed, sampling=Sampling(**SETTINGS)))
        assert min(n.onset for n in song.melody().notes) == 0
