"""Atomic writes and checked reads: nothing is ever left half-written."""
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: Keras and matplotlib pick the format from it
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix="".join(path.suffixes))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if not e.filename:  # a write through an open file names nothing: name what was being written
            e.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, obj):
    # what holds songs' notes (the cache's "songs", a record's "song") is written compact: json indents
    # only in its pure-Python encoder, which took 0.03 s of a 0.7 s composing process for one song's record
    bulk = isinstance(obj, dict) and ("songs" in obj or "song" in obj)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, separators=(",", ":")) if bulk else json.dumps(obj, indent=1))


def read_json(path, what):
    """Load JSON or fail with one line naming the file and what to do."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        raise ValueError(f"{path}: {what} is not valid JSON ({str(e)[:100] or type(e).__name__})") from None


def tokens_hash(tokens):
    return hashlib.sha256(json.dumps(list(tokens)).encode()).hexdigest()[:16]
