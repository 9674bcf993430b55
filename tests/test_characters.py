"""Song characters (vgmusic/characters.py): each training song's repeat penalty measured with a real model,
written into its sidecar, and each composed song given one of them by its seed."""
import dataclasses
import json

import numpy as np
import pytest

from vgmusic import characters as ch
from vgmusic.compose import Request, compose, load_model
from vgmusic.config import PredictConfig
from vgmusic.decode import discourage_repeats
from vgmusic.encode import Vocab
from vgmusic.predict import sampling_of
from vgmusic.sampling import Sampling, log_probs

from conftest import ROOT, model_copy

SHIPPED = ROOT / "pokemon_red_blue_yellow" / "weights"
VOCAB = Vocab(["<pad>", "p60", "p64", "p67", "d6", "w6"])
CHARACTERS = [{"source": "a", "file": "long.mid", "events": 300, "repeats": 0.9, "repeat_penalty": 5.0},
              {"source": "a", "file": "short.mid", "events": 100, "repeats": 0.0, "repeat_penalty": 0.05},
              {"source": "b", "file": "other.mid", "events": 50, "repeats": 0.1, "repeat_penalty": 0.5}]


def test_repeats_are_counted_on_each_events_highest_pitch():
    tokens = ["p60", "d6", "w6", "p55", "p60", "d6", "w6", "p62", "d6", "w6", "p62", "d6", "w6"]
    assert ch.repeat_counts(tokens) == (2, 3)  # 60 -> 60 (the chord's top), 60 -> 62, 62 -> 62
    assert ch.repeat_counts([]) == (0, 0) and 0 < ch.share((0, 0)) < 1  # smoothed: a finite target


def test_a_song_draws_a_character_by_its_seed_in_proportion_to_the_songs_lengths():
    drawn = [ch.choose(CHARACTERS, seed, 0)["file"] for seed in range(400)]
    assert drawn == [ch.choose(CHARACTERS, seed, 0)["file"] for seed in range(400)]  # a seed repeats it
    counts = {name: drawn.count(name) for name in ("long.mid", "short.mid", "other.mid")}
    assert counts["long.mid"] > 2 * counts["short.mid"] > 0 and counts["other.mid"] > 0
    assert len({ch.choose(CHARACTERS, 7, i)["file"] for i in range(30)}) == 3  # songs of one batch differ
    assert {ch.choose(CHARACTERS, s, 0, "b")["file"] for s in range(20)} == {"other.mid"}  # a style: its songs
    assert ch.choose(CHARACTERS, 1, 0, "unknown") is not None and ch.choose([], 1, 0) is None


def test_a_plans_own_penalty_is_used_for_its_row():
    class Row:
        def __init__(self, penalty):
            self.tokens, self.vocab, self.done, self.replays = [1, 4, 5], VOCAB, False, False
            self.repeat_penalty = penalty
    logits = np.zeros((3, len(VOCAB.tokens)), np.float32)
    out = discourage_repeats(logits, [Row(None), Row(4.0), Row(1.0)], 0.25)
    odds = np.exp(log_probs(out) - log_probs(logits))[:, VOCAB.index["p60"]] / np.exp(
        log_probs(out) - log_probs(logits))[:, VOCAB.index["p64"]]
    assert odds == pytest.approx([0.25, 4.0, 1.0], rel=1e-5)


def test_validation_refuses_a_damaged_entry():
    assert ch.valid({"songs": CHARACTERS})
    for bad in ({}, {"songs": []}, {"songs": [dict(CHARACTERS[0], repeat_penalty=20)]},
                {"songs": [dict(CHARACTERS[0], events="many")]}, {"songs": [{"file": "x.mid"}]}):
        assert not ch.valid(bad)


@pytest.fixture
def shipped(tmp_path):
    return model_copy(SHIPPED, tmp_path / "model", drop=("characters",))


def test_calibration_finds_a_higher_penalty_for_a_song_that_repeats(shipped, monkeypatch):
    """The shipped model against two made-up songs, one striking each note twice, one never: after two
    rounds the repeating song's penalty is the higher, and the model, composing with it, repeats more."""
    from vgmusic import calibrate
    monkeypatch.setattr(calibrate, "EVENTS", 80)
    folder, _ = shipped
    model = load_model(folder)
    twice = ["p60", "d6", "w6", "p60", "d6", "w6", "p64", "d6", "w6", "p64", "d6", "w6"] * 20
    never = ["p60", "d6", "w6", "p62", "d6", "w6", "p64", "d6", "w6", "p65", "d6", "w6"] * 20
    sampling = sampling_of(PredictConfig())
    found = ch.calibrate_characters(model, [("a", "twice.mid", twice), ("a", "never.mid", never)],
                                    dataclasses.replace(sampling, repeat_penalty=0.25),
                                    per_song=3, rounds=2, seed=2, report=lambda _: None)
    assert [c["file"] for c in found] == ["twice.mid", "never.mid"] and found[0]["repeats"] == pytest.approx(0.5, abs=0.01)
    assert found[0]["repeat_penalty"] > 2 * found[1]["repeat_penalty"]

    def repeats(penalty):
        songs = compose(model, Request(num=3, events=80, seed=9, sampling=sampling, repeat_penalties=(penalty,) * 3))
        counts = [ch.repeat_counts(s.meta["tokens"]) for s in songs]
        return sum(c[0] for c in counts) / sum(c[1] for c in counts)
    assert repeats(found[0]["repeat_penalty"]) > repeats(found[1]["repeat_penalty"]) + 0.1


def test_composing_gives_each_song_a_character_unless_a_penalty_is_asked_for(shipped):
    folder, meta = shipped
    plain = load_model(folder)
    assert plain.characters == []
    request = Request(num=4, events=60, seed=11, sampling=sampling_of(PredictConfig()))
    before = [s.meta["tokens"] for s in compose(plain, request)]
    meta["characters"] = {"songs": CHARACTERS, "weights_sha256": meta["weights_sha256"]["best"]}
    (folder / "model.json").write_text(json.dumps(meta))
    model = load_model(folder)
    songs = compose(model, request)
    chosen = [ch.choose(CHARACTERS, 11, i) for i in range(4)]
    assert [s.meta["character"]["file"] for s in songs] == [c["file"] for c in chosen]
    # exactly the songs composed with those penalties handed over, one per song
    handed = compose(plain, Request(num=4, events=60, seed=11, sampling=request.sampling,
                                    repeat_penalties=tuple(c["repeat_penalty"] for c in chosen)))
    assert [s.meta["tokens"] for s in songs] == [s.meta["tokens"] for s in handed] != before
    assert all("character" not in s.meta for s in handed)
    # --repeat-penalty given: one penalty for every song, no character
    fixed = dataclasses.replace(request.sampling, repeat_penalty=0.25)
    assert [s.meta["tokens"] for s in compose(model, Request(num=4, events=60, seed=11, sampling=fixed))] == before
    with pytest.raises(ValueError, match="2 repeat penalties for 4 songs"):
        compose(model, Request(num=4, events=60, repeat_penalties=(1.0, 1.0)))
    # measured on other weights: not used
    meta["characters"]["weights_sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(meta))
    assert load_model(folder).characters == []
    meta["characters"] = {"songs": [{"file": "x.mid"}]}
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model.json: damaged sidecar \('characters'"):
        load_model(folder)
