"""Shared fixtures: real MIDI from music21's corpus (on every install) and the original songs when present."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_SONGS = ROOT.parent / "shared" / "midi_songs"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Bach chorales split into two "games", so the global vocabulary spans folders as it does for the real ones.
CHORALES = {"chorales_a": ["bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7", "bach/bwv101.7"],
            "chorales_b": ["bach/bwv102.7", "bach/bwv103.6", "bach/bwv104.6"]}

# Small enough to train in seconds on a CPU, same code paths as the full network.
# From scratch: the shipped games fine-tune the base model by default, whose sizes these are not.
TINY = ["--units", "24", "--dense", "24", "--embed-dim", "8", "--batch-size", "32", "--max-steps", "4",
        "--verbose", "0", "--init-from", ""]


def write_corpus_midi(folder, names):
    from music21 import corpus
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        corpus.parse(name).write("midi", fp=str(folder / (name.replace("/", "_") + ".mid")))


@pytest.fixture(scope="session")
def corpus_songs(tmp_path_factory):
    songs = tmp_path_factory.mktemp("songs")
    for game, names in CHORALES.items():
        write_corpus_midi(songs / game, names)
    return songs


@pytest.fixture(scope="session")
def corpus_data(corpus_songs, tmp_path_factory):
    from vgmusic.extract import extract
    data = tmp_path_factory.mktemp("data")
    extract(corpus_songs, data, progress=False)
    return data


@pytest.fixture(scope="session")
def shared_songs():
    if not SHARED_SONGS.is_dir():
        pytest.skip("../shared/midi_songs is not present")
    return SHARED_SONGS


def model_copy(source, folder, drop=()):
    """(folder, sidecar) of a copy of the model folder `source` whose sidecar lacks the keys `drop`; the
    test is skipped where `source` has no model (a checkout without the shipped weights)."""
    import json
    import shutil
    if not (source / "model.json").exists():
        pytest.skip(f"no model in {source}")
    shutil.copytree(source, folder)
    meta = json.loads((folder / "model.json").read_text())
    for key in drop:
        meta.pop(key, None)
    (folder / "model.json").write_text(json.dumps(meta))
    return folder, meta


def run_script(script, *args, cwd):
    """Run one of the project's scripts the way a user does, from an unrelated working directory."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
