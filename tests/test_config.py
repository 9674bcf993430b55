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


def test_help_shows_the_defaults_a_run_uses(capsys):
    text = " ".join(parser_for(TrainConfig, "").format_help().split())
    # the event encoding is the default: its values first, the others' beside them
    assert "(default: 75; classic: 25; transformer: 512)" in text
    assert "(default: 50; classic: 0)" in text and "(default: 2; classic: 0)" in text
    cfg = _train_cfg()
    assert (cfg.window, cfg.stride, cfg.max_steps, cfg.diatonic) == (75, 3, 50, 2)


def test_ignored_flags_are_not_offered_and_errors_take_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        parser_for(TrainConfig, "").parse_args(["--songs-dir", "x"])  # training reads data/, never songs
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "unrecognized arguments: --songs-dir" in err
    for flags, message in ((["--window", "0"], "must be between 2 and 4096"),
                           (["--dropout", "1"], "must be from 0 up to (not including) 1"),
                           (["--learning-rate", "nan"], "is not a finite number"),
                           (["--arch", "gru"], "must be one of lstm, bilstm, attention, transformer")):
        with pytest.raises(SystemExit):
            parser_for(TrainConfig, "").parse_args(flags)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_python_m_vgmusic_help():
    import subprocess
    import sys
    from conftest import ROOT
    r = subprocess.run([sys.executable, "-m", "vgmusic", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "python -m vgmusic predict" in r.stdout
