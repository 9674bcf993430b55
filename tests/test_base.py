"""The base corpus command: corpora exported, folders extracted, shards written, a bad file skipped."""
import json

import numpy as np

from conftest import run_script
from vgmusic import shards


def test_base_corpus_command(corpus_songs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("bach_bwv1.6.mid", "bach_bwv10.7.mid"):
        (mine / name).write_bytes((corpus_songs / "chorales_a" / name).read_bytes())
    (mine / "broken.mid").write_bytes(b"MThd\0\0\0\6\0\1\0\1\1\xe0MTrk\0\0\0\xff")  # a header and a cut track
    args = ["--base", "--corpora", "bach_chorales", "--limit", "3", "--no-originals", "--folders", mine,
            "--songs-dir", tmp_path / "songs", "--data-dir", tmp_path / "data", "--out", tmp_path / "base",
            "--diatonic", "1", "--workers", "2"]
    r = run_script("get_all_notes.py", *args, cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # something was skipped; everything else is written
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings[0].startswith(f"warning: skipping {mine / 'broken.mid'}: not a readable MIDI file")
    assert warnings[1:] == ["warning: 1 skipped (see above); everything else is written"]
    out = r.stdout
    assert "mine" in out and "your own folder: no licence recorded" in out and "public domain music (Bach" in out
    assert "files parsed now" in out and "files/s" in out and "events/s" in out and "base corpus: 5 songs" in out
    assert sorted(p.name for p in (tmp_path / "songs" / "bach_chorales").iterdir()) == [
        "bwv153.1.mid", "bwv269.mid", "bwv347.mid"]  # Riemenschneider's first three

    got = shards.Shards(tmp_path / "base")
    assert [s["source"] for s in got.songs] == ["mine"] * 2 + ["bach_chorales"] * 3  # your folders first
    assert {k: v["songs"] for k, v in got.sources.items()} == {"mine": 2, "bach_chorales": 3}
    assert all(sorted(v[0] for v in s["variants"]) == [-1, 0, 1] for s in got.songs)
    got.verify()
    x, y = next(got.windows(32, 8, shuffle=True).batches(4))
    assert x.shape == y.shape == (4, 32) and np.array_equal(x[:, 1:], y[:, :-1])
    assert json.loads((tmp_path / "data" / "mine.json").read_text())["songs"][0]["file"] == "bach_bwv1.6.mid"

    # again: nothing exported or parsed anew, the same shards
    before = (tmp_path / "base" / "index.json").read_bytes()
    r = run_script("get_all_notes.py", *args, cwd=tmp_path)
    assert r.returncode == 1 and "(0 written now" in r.stdout and "0 files parsed now" in r.stdout
    assert (tmp_path / "base" / "index.json").read_bytes() == before


def test_base_help_and_nothing_to_build(tmp_path):
    r = run_script("get_all_notes.py", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--base" in r.stdout
    r = run_script("get_all_notes.py", "--base", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for flag in ("--corpora", "--originals-dir", "--folders", "--out", "--limit", "--workers", "--timeout",
                 "--diatonic", "--shard-tokens", "--distinct"):
        assert flag in r.stdout
    assert "(default: 0)" in r.stdout and "freedoom" in r.stdout
    r = run_script("get_all_notes.py", "--base", "--corpora", "--no-originals", "--data-dir", tmp_path / "d",
                   cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        "error: nothing to build the base corpus from (no corpus exported, no song folder)")
    r = run_script("get_all_notes.py", "--base", "--diatonic", "9", cwd=tmp_path)
    assert r.returncode == 2 and "--diatonic" in r.stderr


def test_base_flags_are_bounded_and_show_their_defaults(capsys):
    """The checks tests/test_config.py makes of every command's settings, on the base corpus command's."""
    import dataclasses

    import pytest

    from vgmusic import cli
    from vgmusic.base import BaseConfig
    text = " ".join(cli.parser_for(BaseConfig, "").format_help().split())
    for f in dataclasses.fields(BaseConfig):
        assert "--" + f.name.replace("_", "-") in text
        if f.type in (int, float):
            assert f.metadata.get("check") and f"(default: {f.default!r}" in text, f.name
            for value in ["1" + "0" * 30] + (["inf", "nan"] if f.type is float else []):
                with pytest.raises(SystemExit) as e:
                    cli.parser_for(BaseConfig, "").parse_args(["--" + f.name.replace("_", "-"), value])
                err = capsys.readouterr().err
                assert e.value.code == 2 and err.count("\n") == 1 and "(see --help)" in err
