import argparse

import pytest

from vgmusic.config import PredictConfig, TrainConfig, build, game_overrides, game_sources, parser_for


def _train_cfg(*flags, game="zelda_ocarina_of_time"):
    args = parser_for(TrainConfig, "", skip=("game",)).parse_args(list(flags))
    return build(TrainConfig, args, **game_overrides(game), game=game)


def test_layers_of_defaults():
    cfg = _train_cfg()
    assert (cfg.encoding, cfg.arch, cfg.window, cfg.transpose, cfg.max_steps) == ("event", "lstm", 75, 0, 50)
    assert (cfg.key_normalize, cfg.diatonic) == (True, 2)
    assert _train_cfg("--no-key-normalize").key_normalize is False  # a default of True can be turned off
    classic = _train_cfg("--encoding", "classic")
    # the original's windows, no transposition
    assert (classic.window, classic.transpose, classic.diatonic, classic.key_normalize) == (25, 0, 0, False)
    tr = _train_cfg("--arch", "transformer")
    assert (tr.window, tr.units, tr.dropout) == (512, 128, 0.1)
    assert _train_cfg("--arch", "transformer", "--window", "256").window == 256  # a flag beats every default


def test_games():
    assert game_sources("three_games_combined") == ["pokemon_red_blue_yellow", "zelda_ocarina_of_time",
                                                    "final_fantasy_7"]
    assert game_sources("my_band") == ["my_band"]  # a user's own folder needs no config
    assert _train_cfg(game="pokemon_red_blue_yellow").val_songs == ["Bicycle Ride_edited.mid",
                                                                    "Pallet Town_edited.mid"]


def test_every_field_has_help():
    for cls in (TrainConfig, PredictConfig):
        text = parser_for(cls, "").format_help()
        for name in cls.__dataclass_fields__:
            assert "--" + name.replace("_", "-") in text


def test_bad_values_fail_clearly():
    with pytest.raises(SystemExit):
        parser_for(TrainConfig, "").parse_args(["--epochs", "many"])
    from vgmusic.model import build_model
    with pytest.raises(ValueError, match="unknown architecture 'gru'"):
        build_model("gru", 10, {})
    assert build(PredictConfig, argparse.Namespace(), length=7).length == 7
