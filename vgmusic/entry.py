"""Where every command starts: Ctrl-C and SIGTERM end it in one line from its first instant.

A script blocks both signals on its first line, before it imports anything of the project, and calls
start(); start() installs the handlers, lets the signals through (one that came meanwhile is raised
then), and only then imports the command's module, which takes seconds (NumPy, music21, TensorFlow).
So an interruption at any moment, imports included, ends in `interrupted: ...` and exit status 130
(Ctrl-C) or 143 (SIGTERM), never a traceback. Nothing heavy is imported here.

Python raises a signal's exception wherever the main thread is, and some places lose it: Python ignores
it in a weakref callback (one frees each module's import lock) or a __del__, printing 'Exception
ignored'; an extension module turns it into an ImportError; matplotlib turns any exception while it
reads a style into a warning. So the handler records each signal, and an interruption freed before it
reached a command's end is raised again (_lost); an error that escapes after a signal is that signal.
"""
import _thread
import importlib
import os
import signal
import sys
import weakref

SIGNALS = (signal.SIGINT, signal.SIGTERM)
AGAIN_WAIT, AGAIN_TRIES = 0.05, 100  # a lost interruption is sent again until seen: for up to 5 s
received = []  # the signals this process was sent, in order
_said = []  # the line this process said: `interrupted: ...`, once
_main_thread = _thread.get_ident()


class Interrupt(KeyboardInterrupt):
    """Ctrl-C, as the handler raises it (a class of its own, so that a lost one is noticed)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs; exits 143 instead of 130."""
    code = 143

    @staticmethod
    def handler(signum, frame):
        """The handler of both signals: Ctrl-C raises Interrupt, SIGTERM Terminated."""
        received.append(signum)
        raise _watched(signum)  # no local name for it: the traceback holds this frame, and a cycle frees late


def _watched(signum):
    """The exception of a signal, raised again (_lost) if it is freed before a command said it."""
    e = Terminated() if signum == signal.SIGTERM else Interrupt()
    weakref.finalize(e, _lost, signum).atexit = False
    return e


def interruption(signum):
    """The exception run_command turns into one line and exit 130 (Ctrl-C) or 143 (SIGTERM)."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _lost(signum):
    """An interruption was freed before any command said it: something caught it and went on. Raise it again,
    from another thread, which runs once the main thread lets go of the interpreter (out of the callback
    that freed it). A handler other than ours (training's, uninterrupted()'s) holds it on purpose."""
    if not _said and signal.getsignal(signum) is Terminated.handler:
        _thread.start_new_thread(_again, (signum,))


def _again(signum):
    """Send the lost signal to the main thread again, as a real signal: it wakes a sleep or a blocked read
    too. One that lands after the main thread last looked and before it blocks (entering time.sleep, say)
    is seen only when it wakes, perhaps much later: so it is sent again every AGAIN_WAIT seconds until its
    handler has run (1 in 3 runs of tests/test_signals.py's sleeper lost it to that race)."""
    import time
    seen = len(received)
    for _ in range(AGAIN_TRIES):
        try:
            signal.pthread_kill(_main_thread, signum)
        except (AttributeError, OSError):  # no pthread_kill (Windows), or the main thread is gone
            _thread.interrupt_main(signum)
            return
        time.sleep(AGAIN_WAIT)
        if len(received) > seen:
            return


def _unraisable(args, default=sys.unraisablehook):
    """Python's report of an exception it ignores: an interruption lost so is raised again when freed
    (_lost); after `interrupted: ...`, what the interruption left half-made says nothing more."""
    if _said or isinstance(args.exc_value, (Interrupt, Terminated)):
        return
    default(args)


def install():
    """Ctrl-C raises Interrupt, SIGTERM Terminated; then both are let through, so one that came while they
    were held is raised here. An ignored one stays ignored (nohup, a background job)."""
    sys.unraisablehook = _unraisable
    for s in SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, Terminated.handler)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def leave_on_signal(line=None):
    """From now on a signal ends the process at once, with its status (and `line`, if any): for when
    the work is done or given up and only the exit is left, so nothing can raise in clean-up code."""
    def handler(signum, frame):
        try:
            sys.stdout.flush()
        except Exception:  # a closed or broken stdout: nothing more can be said there
            pass
        if line:
            os.write(2, f"\ninterrupted: {line}\n".encode())
        os._exit(143 if signum == signal.SIGTERM else 130)
    for s in SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, handler)


def forget_ctrl_c():
    """A KeyboardInterrupt that once passed through Python's C API (PyRun_String, which TensorFlow's C++
    calls while it imports) marks the interpreter as ended by Ctrl-C even though it was caught later:
    `python -m` then kills itself with SIGINT at exit (status -2, not 130). Running code that way clears it."""
    try:
        import ctypes
        ctypes.pythonapi.PyRun_SimpleStringFlags(b"", None)
    except Exception:  # no ctypes or no CPython: nothing was marked either
        pass


def interrupted(e, kept):
    """End the command after Ctrl-C or SIGTERM: one line saying what was kept, exit 130 or 143. `e` is the
    exception raised, or the signal's number."""
    code = getattr(e, "code", 130) if isinstance(e, BaseException) else 143 if e == signal.SIGTERM else 130
    leave_on_signal()  # a second one while saying so ends it at once, with no second line
    _said.append(kept)
    print(f"\ninterrupted: {kept}", file=sys.stderr, flush=True)
    forget_ctrl_c()
    sys.exit(code)


def start(module, function="main", **kwargs):
    """Run `module`.`function`(**kwargs), the command, with Ctrl-C and SIGTERM handled from the first
    instant; exit with its status (a returned int) or 0."""
    try:
        install()
        main = getattr(importlib.import_module(module), function)
        status = main(**kwargs)
        if received and not _said:  # caught on the way and lost, after all the work was done
            interrupted(received[0], "after the command had finished")
    except KeyboardInterrupt as e:  # while importing (the command's own run_command catches the rest)
        interrupted(e, "nothing was done yet")
    except Exception:
        if received:  # an extension module turned the interruption of its import into an ImportError
            interrupted(received[0], "nothing was done yet")
        raise
    finally:
        leave_on_signal(None if _said else "while exiting; the command had ended")
    sys.exit(status if isinstance(status, int) and not isinstance(status, bool) else 0)
