"""The command layer every command shares: flags generated from the settings dataclasses of config.py, one-line
errors, checked flag values, and one way to run a command (run_command) and to hold off signals.

A command is a settings dataclass and a body: `parser_for(Cls, ...)` offers one flag per field, with its real
default in --help and every value checked (finite, in range) before anything runs; `build(Cls, args, ...)`
layers the defaults; `run_command(body, kept)` turns Ctrl-C, SIGTERM, OSError and ValueError into one line
and an exit status. The scripts start through entry.start, which handles signals from the first instant.
"""
import argparse
import contextlib
import dataclasses
import errno
import math
import os
import shlex
import signal
import sys
from pathlib import Path

from .config import ARCH_DEFAULTS, ENCODING_DEFAULTS, TrainConfig
from .entry import SIGNALS, Terminated, interrupted, interruption, received

__all__ = ["Parser", "Terminated", "add_flags", "build", "checked", "interruption", "os_error", "parser_for",
           "run_command", "uninterrupted", "writable_file"]


def checked(kind, check):
    """argparse type: parse the value and test it, so a bad value is refused before anything runs. A float
    must be finite: inf and nan are refused whatever the range."""
    def parse(text):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an' if kind is int else 'a'} {kind.__name__}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if check and not check[0](value):
            raise argparse.ArgumentTypeError(f"must be {check[1]}, got {text!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _shown(value):
    """A default as --help shows it: names of a list one after another, as they are typed."""
    return " ".join(shlex.quote(str(v)) for v in value) if isinstance(value, (list, tuple)) else repr(value)


def _other_defaults(name):
    """'; classic: 25; transformer: 512' for settings that the encoding or architecture changes."""
    return "".join(f"; {k}: {v[name]!r}" for table in (ENCODING_DEFAULTS, ARCH_DEFAULTS) for k, v in table.items()
                   if name in v and v[name] != getattr(TrainConfig, name))


def add_flags(parser, cls, skip=(), choices=None, defaults=None):
    """One flag per dataclass field, its help text and checks from the field's metadata; `choices` maps a
    list field to the names it may hold, where config cannot know them (corpora); `defaults` are a game's
    own (config.game_overrides), shown in --help as the defaults they are."""
    choices, defaults = choices or {}, defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        value = defaults.get(f.name, f.default)
        default = "" if value in ("", ()) or meta.get("required") else f" (default: {_shown(value)}"
        if f.name in defaults:
            default += ", for this game"
        elif default and cls is TrainConfig:
            default += _other_defaults(f.name)
        kw = dict(dest=f.name, default=None, help=meta["help"] + (default + ")" if default else ""))
        if meta.get("required"):
            kw["required"] = True
        if f.type is bool:  # --x / --no-x, so a default of True can be turned off
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif "nargs" in meta:
            names = choices.get(f.name, meta.get("choices"))
            parser.add_argument(flag, nargs=meta["nargs"], metavar=meta.get("metavar", "NAME"),
                                choices=list(names) if names else None, action=meta.get("action"),
                                type=checked(str, meta["check"]) if meta.get("check") else None, **kw)
        else:
            kind = "DIR" if f.name.endswith("_dir") else f.type.__name__.upper()
            parser.add_argument(flag, type=checked(f.type, meta["check"]), metavar=meta.get("metavar", kind), **kw)


def build(cls, args, **overrides):
    """Defaults, then the encoding's and architecture's, then the game's overrides, then the flags given.
    An explicit --val-fraction holds out that share even where the game names its own held-out songs."""
    values = {f.name: f.default for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if v is not None and k in values}
    if cls is TrainConfig:
        encoding = given.get("encoding", overrides.get("encoding", values["encoding"]))
        arch = given.get("arch", overrides.get("arch", values["arch"]))
        values.update(ENCODING_DEFAULTS.get(encoding, {}))
        values.update(ARCH_DEFAULTS.get(arch, {}))
    values.update({k: v for k, v in overrides.items() if k in values})
    values.update(given)
    if cls is TrainConfig and "val_fraction" in given:
        if "val_songs" in given:
            raise ValueError("give --val-fraction or --val-songs, not both")
        values["val_songs"] = ()
    return cls(**values)


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: the usage is one --help away."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser_for(cls, description, skip=(), choices=None, defaults=None, **kw):
    p = Parser(description=description, **kw)
    add_flags(p, cls, skip, choices, defaults)
    return p


def writable_file(path, what="output file"):
    """Refuse, before any work, an output path that is a folder or lies where nothing can be written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name for the {what}")
    folder = path.parent
    while not folder.exists():  # created on writing: the first folder that exists must take it
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: folder {folder} is not writable")
    return path


def on_terminal(stream=None):
    """Whether `stream` (stdout) is a terminal: progress bars and Keras' progress bar only there; a
    redirected run writes plain lines."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def os_error(e):
    """'PATH: No space left on device (ENOSPC)': what failed, where, and the errno to search for."""
    name = errno.errorcode.get(e.errno, "") if e.errno else ""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}" + (f" ({name})" if name else "")


def run_command(body, kept=lambda: "nothing half-written is left"):
    """Run a command the same way everywhere: a clear line and an exit status, never a traceback.
    `kept()` says, after Ctrl-C or SIGTERM, what was kept."""
    before = {s: signal.getsignal(s) for s in SIGNALS}
    for s, handler in before.items():
        if handler is not signal.SIG_IGN:  # nohup and friends ignore them on purpose
            signal.signal(s, Terminated.handler)
    seen = len(received)
    try:
        result = body()
        if len(received) > seen:  # caught on the way and lost (see entry.py), after all the work was done
            interrupted(received[seen], kept())
        return result
    except KeyboardInterrupt as e:
        interrupted(e, kept())
    except Exception as e:
        if len(received) > seen:  # C code (an import, TensorFlow) that turned the interruption into another error
            interrupted(received[seen], kept())
        if isinstance(e, OSError):
            sys.exit(f"error: {os_error(e)}")
        if isinstance(e, (ValueError, MemoryError)):
            sys.exit(f"error: {e}" if str(e) else f"error: {type(e).__name__}")
        raise
    finally:
        for s, handler in before.items():
            if handler is not None:  # None: set outside Python, which signal.signal cannot restore
                signal.signal(s, handler)


# --- holding signals off (interruption, from entry.py, is the exception a signal raises) ----------------

@contextlib.contextmanager
def uninterrupted():
    """Hold Ctrl-C and SIGTERM until the block is done, then raise them: the block's files all land."""
    caught = []
    held = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in SIGNALS
            if signal.getsignal(s) is not signal.SIG_IGN}  # an ignored one stays ignored (nohup)
    try:
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
    if caught:
        raise interruption(caught[0])
