import argparse

import pytest

from vgmusic.cli import build, parser_for
from vgmusic.config import PredictConfig, TrainConfig, game_overrides, game_sources


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
    assert "(default: 75; classic: 25; transformer: 512; rotary: 512)" in text
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


# --- every command's flags: one Parser, real defaults in --help, every number finite and bounded --------

import dataclasses  # noqa: E402
import math  # noqa: E402

from conftest import ROOT  # noqa: E402
from vgmusic import cli, config, theory  # noqa: E402

COMMAND_CONFIGS = (config.TrainConfig, config.PredictConfig, config.ExtractConfig, config.FetchConfig,
                   config.EvaluateConfig, config.CompareConfig, config.RetrainConfig)


def _refused(parse, argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "(see --help)" in err, err
    return err


@pytest.mark.parametrize("cls", COMMAND_CONFIGS, ids=lambda c: c.__name__)
def test_every_numeric_flag_is_finite_and_bounded(cls, capsys):
    fields = [f for f in dataclasses.fields(cls) if f.type in (int, float)]
    assert fields
    for f in fields:
        assert f.metadata.get("check"), f"{cls.__name__}.{f.name} has no range"
        flag = "--" + f.name.replace("_", "-")
        bad = ["1" + "0" * 30, "-" + "1" + "0" * 30] + (["inf", "-inf", "nan", "1e400"] if f.type is float else [])
        for value in bad:
            err = _refused(cli.parser_for(cls, "").parse_args, [flag, value], capsys)
            assert f"argument {flag}: " in err, err
        required = [a for g in dataclasses.fields(cls) if g.metadata.get("required") for a in ("--game", "x")]
        assert cli.parser_for(cls, "").parse_args([*required, flag, str(f.default)])  # the default passes its check


@pytest.mark.parametrize("cls", COMMAND_CONFIGS, ids=lambda c: c.__name__)
def test_help_lists_every_flag_with_its_default(cls):
    text = " ".join(cli.parser_for(cls, "").format_help().split())
    for f in dataclasses.fields(cls):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert flag in text
        if f.default not in ("", ()) and f.type in (int, float):
            assert f"(default: {f.default!r}" in text, flag


def test_download_flags_are_bounded(capsys):
    from vgmusic import fetch
    for flags, message in ((["--timeout", "inf"], "is not a finite number"),  # OverflowError before
                           (["--backoff", "inf"], "is not a finite number"),
                           (["--backoff", "1e9"], "must be between 0 and 60"),  # slept silently before
                           (["--timeout", "nan"], "is not a finite number"),
                           (["--retries", "0"], "must be between 1 and 100"),
                           (["--limit", "-1"], "must be between 0 and")):
        assert message in _refused(fetch.run, flags, capsys)
    assert "no wait longer than 60 s" in " ".join(fetch.parser().format_help().split())


def test_waits_between_attempts_never_pass_a_minute(monkeypatch):
    from vgmusic import fetch
    waits = []
    monkeypatch.setattr(fetch.time, "sleep", waits.append)
    with socket_closed() as url:
        get = fetch.downloader("https://example.invalid/", url, retries=4, timeout=5, backoff=40)
        row = {"game": "g", "file": "a.mid", "bytes": 10, "sha256": "0" * 64, "url": "https://example.invalid/a.mid"}
        with pytest.raises(fetch.Failed, match="4 attempts"):
            get(row, ROOT / "runs" / "never-written.mid")
    assert waits == [40, 60, 60]


def socket_closed():
    """A local url nothing listens on: every attempt fails at once."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}/"
    return closed()


def test_extract_refuses_nan_and_inf(capsys):
    from vgmusic import extract
    for value in ("nan", "inf", "0", "1e9"):
        assert "argument --timeout: " in _refused(extract.main, ["--timeout", value], capsys)


@pytest.mark.parametrize("value", ["-1", "5.5", "128", "+3", " 1e2", "kazoo"])
def test_instrument_must_be_a_whole_program_or_a_name(value, capsys):
    from vgmusic import predict
    with pytest.raises(ValueError):
        theory.gm_program(value)
    err = _refused(lambda argv: predict.main(game="final_fantasy_7", argv=argv), ["--instrument", value], capsys)
    assert "argument --instrument: must be a General MIDI instrument name" in err, err


def test_instruments_by_number_and_name():
    assert [theory.gm_program(v) for v in ("0", "33", "127", "flute", "square lead")] == [0, 33, 127, 73, 80]
    assert config.gm_program is theory.gm_program and config.parse_key is theory.parse_key  # one copy


def test_explicit_val_fraction_wins_over_the_games_held_out_songs(capsys):
    from vgmusic import train
    pokemon = "pokemon_red_blue_yellow"
    assert _train_cfg(game=pokemon).val_songs == config.GAMES[pokemon]["val_songs"]
    cfg = _train_cfg("--val-fraction", "0.3", game=pokemon)
    assert (cfg.val_fraction, tuple(cfg.val_songs)) == (0.3, ())
    assert _train_cfg("--val-songs", "a.mid", game=pokemon).val_songs == ["a.mid"]
    err = _refused(lambda argv: train.main(game=pokemon, argv=argv), ["--val-fraction", "0.3", "--val-songs", "a.mid"],
                   capsys)
    assert "give --val-fraction or --val-songs, not both" in err
    assert "wins over the songs a game holds out itself" in " ".join(cli.parser_for(TrainConfig, "").format_help()
                                                                     .split())


def test_training_never_replaces_a_shipped_model_unless_asked(tmp_path, capsys):
    from vgmusic import train
    pokemon, shipped = "pokemon_red_blue_yellow", ROOT / "pokemon_red_blue_yellow" / "weights"
    assert config.train_dir(pokemon) == ROOT / "runs" / pokemon
    assert config.train_dir(pokemon, replace_shipped=True) == shipped
    assert config.train_dir("my_band") == ROOT / "my_band" / "weights"  # no shipped model there
    with pytest.raises(ValueError, match="holds the shipped pokemon_red_blue_yellow model"):
        config.train_dir("my_band", str(shipped))
    before = {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()}
    with pytest.raises(SystemExit) as e:  # an explicit --model-dir there is refused before anything runs
        train.main(game=pokemon, argv=["--model-dir", str(shipped), "--data-dir", str(tmp_path)])
    assert "holds the shipped pokemon_red_blue_yellow model (tracked in git): add --replace-shipped" in str(e.value.code)
    with pytest.raises(SystemExit):  # by default: runs/<game>, said so (then no songs are found here)
        train.main(game=pokemon, argv=["--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"training into {ROOT / 'runs' / pokemon}: {shipped} holds the shipped model" in out
    assert {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()} == before


def test_retrain_replaces_the_shipped_models_and_train_logs_lines(monkeypatch, tmp_path, capsys):
    from vgmusic import train
    seen = []

    def fake(cfg, run):
        seen.append(cfg)
        return ({"best_epoch": 1, "epochs_done": 1, "best_val_loss": 1.0}, [{"val_loss": 1.0, "val_pitch": 1.0}],
                None)
    monkeypatch.setattr(train, "train_command", fake)
    # a game retrain does not calibrate afterwards: nothing here writes into the shipped sidecar
    assert "pokemon_red_blue_yellow" not in train.CALIBRATED and "pokemon_red_blue_yellow" not in train.STYLED
    train.retrain_main(["--games", "pokemon_red_blue_yellow"])
    (cfg,) = seen
    assert cfg.replace_shipped and cfg.model_dir == str(ROOT / "pokemon_red_blue_yellow" / "weights")
    # Keras' progress bar redraws itself with control characters even into a file: one line per epoch there
    train.main(game="pokemon_red_blue_yellow", argv=["--model-dir", str(tmp_path), "--verbose", "1"])
    assert seen[-1].verbose == 2
    monkeypatch.setattr(train, "on_terminal", lambda: True)
    train.main(game="pokemon_red_blue_yellow", argv=["--model-dir", str(tmp_path), "--verbose", "1"])
    assert seen[-1].verbose == 1
    assert f"compose with it: python -m vgmusic predict --game pokemon_red_blue_yellow --model-dir {tmp_path}" in \
        capsys.readouterr().out


def test_evaluate_writes_under_runs_by_default(corpus_data, monkeypatch, tmp_path, capsys):
    from vgmusic import evaluate
    monkeypatch.setattr(evaluate, "RUNS", tmp_path)
    evaluate.main(["--game", "chorales_a", "--data-dir", str(corpus_data)])
    assert (tmp_path / "eval" / "chorales_a.json").is_file()
    assert "docs/eval" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--game", "x", "--beats-per-bar", "nan"], "argument --beats-per-bar: "),
    (["compare", "--budget", "inf"], "argument --budget: 'inf' is not a finite number"),
    (["compare", "--steps", "0"], "argument --steps: must be between 1 and"),
    (["retrain", "--seed", "1e3"], "argument --seed: '1e3' is not an int"),
    (["extract", "--workers", "-1"], "argument --workers: must be between 0 and 256"),
])
def test_every_command_refuses_in_one_line(argv, message, capsys):
    from vgmusic import compare, evaluate, extract, train
    main = {"evaluate": evaluate.main, "compare": compare.main, "retrain": train.retrain_main,
            "extract": extract.main}[argv[0]]
    assert message in _refused(main, argv[1:], capsys)
