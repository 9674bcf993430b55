"""Training, checkpoints, evaluate and compare under Ctrl-C, SIGTERM, a full disk and damaged files.

Every command runs as a user runs it, in its own process; each case asserts the exit status, the one
line the user reads (never a traceback) and that what the line says is true of the files left behind.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

# a few thousand parameters: every epoch is two steps, so checkpoints come every fraction of a second
TINY = ["--units", "8", "--embed-dim", "8", "--dense", "8", "--batch-size", "8", "--max-steps", "2", "--verbose", "0"]
PREDICT_QUIET = ["--no-audio", "--no-roll", "--no-page"]


def command(*args):
    return [sys.executable, *map(str, args)]


def train_args(data, model_dir, *extra):
    return command("-m", "vgmusic", "train", "--game", "chorales_a", "--data-dir", data, "--model-dir", model_dir,
                   *TINY, *extra)


def start(args):
    # a background job's children start with SIGINT ignored; a user's Ctrl-C reaches a process that has not
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run(args, timeout=300):
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def one_line(err):
    """The one line a failing command leaves on stderr (TensorFlow says nothing once silenced)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".")) if Path(folder).exists() else []


def predict(model_dir, out):
    return run(command(ROOT / "final_fantasy_7" / "predict.py", "--model-dir", model_dir, "--out", out,
                       "--seed", "1", "--length", "20", *PREDICT_QUIET), timeout=120)


def check_kept(line, folder, out):
    """The line says which epochs were kept; the sidecar, history and weights agree, and a song is composed."""
    meta = json.loads((folder / "model.json").read_text())
    best, last = meta["best_epoch"], meta["epochs_done"]
    assert f"best weights (epoch {best}, held-out pitch loss {meta['best_score']:.2f}) and last weights " \
           f"(epoch {last}) kept in {folder}; --resume continues" in line, line
    assert len((folder / "history.csv").read_text().splitlines()) == last + 1
    assert hidden(folder) == []
    code, said, err = predict(folder, out)
    assert code == 0 and "wrote" in said and out.stat().st_size > 0, err
    return meta


def wait_for(path, proc, limit=180):
    deadline = time.time() + limit
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)


# --- Ctrl-C and SIGTERM -----------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["reading songs", "importing TensorFlow", "first epoch"])
def test_interrupt_before_any_epoch_saves_nothing(when, corpus_data, tmp_path):
    model = tmp_path / "m"
    proc = start(train_args(corpus_data, model, "--epochs", "1000"))
    # the first line says the songs are being read (in about half a second, however slow the machine was to
    # start Python); then TensorFlow takes seconds to import; the second line names the network, as fitting starts
    assert "reading the songs" in proc.stdout.readline()
    if when == "importing TensorFlow":
        time.sleep(1.0)
    elif when == "first epoch":
        assert "training songs" in proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert one_line(err) == f"interrupted: no epoch finished, nothing saved in {model}"
    assert not model.exists() or list(model.iterdir()) == []


def test_ctrl_c_after_epochs_keeps_what_it_says(corpus_data, tmp_path):
    model = tmp_path / "m"
    proc = start(train_args(corpus_data, model, "--epochs", "1000", "--patience", "1000"))
    wait_for(model / "history.csv", proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    meta = check_kept(one_line(err), model, tmp_path / "after.mid")
    assert 1 <= meta["best_epoch"] <= meta["epochs_done"] < 1000
    assert (model / "learning_curve.png").stat().st_size > 0  # the curve so far is drawn on the way out


def test_sigterm_keeps_a_checkpoint_that_resumes(corpus_data, tmp_path):
    """SIGTERM ends like Ctrl-C with 143; hidden temporary files a killed run left are removed by the next."""
    model = tmp_path / "m"
    model.mkdir()
    stale = [model / ".last.weights.k1ll3d.weights.h5", model / ".model.k1ll3d.json", model / ".history.x.csv"]
    for path in stale:
        path.write_bytes(b"half a file")
    proc = start(train_args(corpus_data, model, "--epochs", "1000", "--patience", "1000"))
    wait_for(model / "history.csv", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    meta = check_kept(one_line(err), model, tmp_path / "after.mid")  # also: no hidden file left
    done = meta["epochs_done"]
    code, out, err = run(train_args(corpus_data, model, "--epochs", done + 1, "--resume"))
    assert code == 0, err
    assert f"epoch {done + 1}:" in out and json.loads((model / "model.json").read_text())["epochs_done"] == done + 1


# --- a full disk --------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs of its own, or a skip where mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True,
                           text=True, timeout=30)
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs: {e}")
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder):
    """Write zeros into a file until the disk is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_full_disk_stops_training_in_one_line_and_keeps_the_last_checkpoint(corpus_data, small_disk, tmp_path):
    model = small_disk / "m"
    proc = start(train_args(corpus_data, model, "--epochs", "1000", "--patience", "1000"))
    wait_for(model / "model.json", proc)
    fill(small_disk)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # not 139: HDF5 never writes to the disk, so nothing half-open crashes at exit
    line = one_line(err)
    assert line.startswith(f"error: {model}/") and "No space left on device (ENOSPC); " in line, line
    check_kept(line, model, tmp_path / "after.mid")  # and composes from what is left


# --- damaged checkpoints ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(corpus_data, tmp_path_factory):
    model = tmp_path_factory.mktemp("trained") / "m"
    code, out, err = run(train_args(corpus_data, model, "--epochs", "1"))
    assert code == 0, err
    return model


@pytest.fixture(scope="module")
def foreign_weights(trained, tmp_path_factory):
    """Weights of the same sizes but another network, and of the same network over another vocabulary."""
    from vgmusic.model import build_model, save_compose_weights
    meta = json.loads((trained / "model.json").read_text())
    folder = tmp_path_factory.mktemp("foreign")
    save_compose_weights(build_model("transformer", len(meta["vocab"]), meta["hparams"]),
                         folder / "arch.weights.h5")
    save_compose_weights(build_model("lstm", len(meta["vocab"]) - 5, meta["hparams"]), folder / "vocab.weights.h5")
    return folder


def edit_sidecar(change):
    def damage(folder):
        meta = json.loads((folder / "model.json").read_text())
        change(meta)
        (folder / "model.json").write_text(json.dumps(meta))
    return damage


def without(key):
    return edit_sidecar(lambda meta: meta.pop(key))


def write(name, data):
    return lambda folder: (folder / name).write_bytes(data(folder / name) if callable(data) else data)


SIDECAR_DAMAGE = {
    "empty": (write("model.json", b""), "model.json: model sidecar is not valid JSON"),
    "not json": (write("model.json", b"{'arch': lstm"), "model.json: model sidecar is not valid JSON"),
    "a list": (write("model.json", b"[1, 2, 3]"), "model.json: damaged sidecar (expected a JSON object, found list)"),
    **{f"no {key}": (without(key), f"model.json: damaged sidecar ('{key}' should be")
       for key in ("format", "game", "encoding", "arch", "hparams", "vocab", "vocab_hash", "songs")},
    "units a string": (edit_sidecar(lambda m: m["hparams"].update(units="8")),
                       "damaged sidecar (hparams units is '8', not a positive integer)"),
    "vocab a string": (edit_sidecar(lambda m: m.update(vocab="abc")), "damaged sidecar ('vocab' should be a list"),
    "song entry short": (edit_sidecar(lambda m: m["songs"].update(train=[["a", "b"]])),
                         "damaged sidecar (songs.train should be a list of [source, file, sha256])"),
    "tempo a string": (edit_sidecar(lambda m: m.update(tempo="fast")), "damaged sidecar ('tempo' should be"),
    "unknown encoding": (edit_sidecar(lambda m: m.update(encoding={"name": "midi"})),
                         "damaged sidecar (encoding {\"name\": \"midi\"}: unknown encoding 'midi'"),
    "vocabulary edited": (edit_sidecar(lambda m: m["vocab"].reverse()),
                          "model.json: vocabulary does not match its recorded hash"),
    "unknown arch": (edit_sidecar(lambda m: m.update(arch="gru")),
                     "damaged sidecar (unknown architecture 'gru'; known: lstm, bilstm, attention, transformer, rotary)"),
}


def weights_damage(name):
    return {
        "weights missing": (lambda folder: (folder / name).unlink(), f"{name}: weights not found"),
        "weights empty": (write(name, b""), f"{name}: not a readable weights file"),
        "weights truncated": (write(name, lambda path: path.read_bytes()[:5000]),
                              f"{name}: not a readable weights file (Unable to synchronously open file (truncated"),
        "weights random": (write(name, os.urandom(40000)), f"{name}: not a readable weights file"),
        "weights of another network": ("arch", f"{name}: weights do not fit the lstm network of"),
        "weights of another vocabulary": ("vocab", f"{name}: weights do not fit the lstm network of"),
    }


def damaged_copy(trained, foreign, tmp_path, damage, name="best.weights.h5"):
    folder = tmp_path / "m"
    shutil.copytree(trained, folder)
    if isinstance(damage, str):  # a weights file of another network
        shutil.copy(foreign / f"{damage}.weights.h5", folder / name)
    else:
        damage(folder)
    return folder


@pytest.mark.parametrize("case", [*SIDECAR_DAMAGE, *weights_damage("best.weights.h5")])
def test_predict_names_the_damaged_file(case, trained, foreign_weights, tmp_path):
    damage, message = {**SIDECAR_DAMAGE, **weights_damage("best.weights.h5")}[case]
    folder = damaged_copy(trained, foreign_weights, tmp_path, damage)
    code, out, err = predict(folder, tmp_path / "x.mid")
    assert code == 1, err
    line = one_line(err)
    assert line.startswith(f"error: {folder}") and message in line, line
    assert not (tmp_path / "x.mid").exists()


def history(text):
    return write("history.csv", text.encode())


RESUME_DAMAGE = {
    "a list": SIDECAR_DAMAGE["a list"],
    "no vocab": SIDECAR_DAMAGE["no vocab"],
    "vocabulary edited": SIDECAR_DAMAGE["vocabulary edited"],
    "unknown arch": SIDECAR_DAMAGE["unknown arch"],
    "no epochs_done": (without("epochs_done"), "model.json: damaged sidecar (no epochs_done); cannot --resume"),
    "no sidecar": (lambda folder: (folder / "model.json").unlink(), "no model.json to --resume from"),
    **{k: v for k, v in weights_damage("last.weights.h5").items() if k != "weights of another vocabulary"},
    "history missing": (lambda folder: (folder / "history.csv").unlink(),
                        "history.csv: missing, yet the sidecar counts 1 epochs; cannot --resume"),
    "history garbage": (history("not,a\ncsv file"), "history.csv: damaged history (no epoch, loss, val_loss"),
    "history short row": (history("epoch,loss,val_loss,seconds\n1,2.5\n"), "history.csv: damaged history"),
    "history letters": (history("epoch,loss,val_loss,seconds\n1,abc,2,3\n"), "history.csv: damaged history"),
    "history no rows": (history("epoch,loss,val_loss,seconds\n"),
                        "history.csv: damaged history (epochs none; the sidecar counts 1)"),
}


@pytest.mark.parametrize("case", RESUME_DAMAGE)
def test_resume_names_the_damaged_file(case, trained, foreign_weights, corpus_data, tmp_path):
    damage, message = RESUME_DAMAGE[case]
    folder = damaged_copy(trained, foreign_weights, tmp_path, damage, "last.weights.h5")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, out, err = run(train_args(corpus_data, folder, "--epochs", "3", "--resume"))
    assert code == 1, err
    line = one_line(err)
    assert line.startswith(f"error: {folder}") and message in line, line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # refused before anything is written


def test_evaluate_names_a_damaged_sidecar(corpus_data, trained, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(trained, folder)
    for text, message in [("", "model sidecar is not valid JSON"),
                          ("[]", "no songs.train / songs.val lists"),
                          (json.dumps({"songs": {"train": [["a", 1, None]], "val": []}}),
                           'song entry ["a", 1, null] is not [source, file, sha256]')]:
        (folder / "model.json").write_text(text)
        code, out, err = run(command(ROOT / "evaluate.py", "--game", "chorales_a", "--data-dir", corpus_data,
                                     "--model-dir", folder, "--out", tmp_path / "report"))
        line = one_line(err)
        assert code == 1 and line.startswith(f"error: {folder / 'model.json'}: ") and message in line, err
    assert not list(tmp_path.glob("report*"))


@pytest.mark.parametrize("args, message", [
    (["compare", "--budget", "0"], "argument --budget: must be between 1 and"),
    (["compare", "--archs", "gru"], "argument --archs: invalid choice: 'gru'"),
    (["compare", "--encoding", "classic"], "--transpose needs --encoding event"),
    (["retrain", "--games", "zelda"], "argument --games: invalid choice: 'zelda'"),
    (["retrain", "--seed", "-1"], "argument --seed: must be between 0 and"),
    (["evaluate", "--game", "x", "--ngram", "1"], "argument --ngram: must be between 2 and"),
])
def test_bad_flags_are_refused_in_one_line(args, message):
    code, out, err = run(command("-m", "vgmusic", *args), timeout=60)
    assert code == 2 and message in one_line(err), err
