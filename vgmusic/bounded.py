"""Work that may hang or blow up, run where it cannot take the caller down with it.

run_bounded runs one piece of work per job, each in a forked child process of its own, at most `workers` at
once, each bounded in time (seconds) and memory (MB beyond what the child started with). A child sends its
result back as JSON; one that runs past a bound, or dies, is reported as a failure {"error", "kind"} instead
("timeout", "memory", "crash"). Children still running are killed on Ctrl-C or an error in the caller, and
die with the parent when it is killed outright.

It knows nothing of what the work is: extract.py passes the parsing of one MIDI file per job.
"""
import json
import os
import signal
import time

POLL = 0.5  # seconds between looks at the running children's clocks
MEMORY_EXIT = 3  # a child's exit status when even reporting its MemoryError failed


def _bound_child(max_memory):
    """In a child: die with the parent, and map at most `max_memory` MB beyond what it started with."""
    try:  # Linux: a parent killed outright (SIGKILL, out of memory) leaves no child running on
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the parent's clean-up still kills it on Ctrl-C and errors
        pass
    try:  # relative: a forked child starts out mapping all its parent's memory
        import resource
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        limit = mapped + max_memory * 2 ** 20
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
        return limit
    except (ImportError, OSError, ValueError):
        return None  # no /proc or no rlimit here: the time bound still holds


def _near_limit(limit, max_memory):
    """Whether this child came close to its memory bound: short of memory, CPython and libraries such as
    music21 fail in many ways besides MemoryError (SystemError, IndexError), or catch it and go on with less."""
    try:
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmPeak:"))
        return limit is not None and peak + max(16, max_memory // 10) * 2 ** 20 >= limit
    except (OSError, ValueError, StopIteration):
        return False


def _memory(max_memory):
    return {"error": f"used more than {max_memory} MB", "kind": "memory"}


def _child(conn, work, job, max_memory):
    """A child process: run work(job) and send back its dict, or {"error", "kind"}, as JSON."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent handles it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _mask("SIG_UNBLOCK")
    limit = _bound_child(max_memory)
    try:
        result = work(job)
    except MemoryError:
        result = None  # built below, once the work's memory is released
    except Exception as e:  # still a reason, not a traceback
        result = {"error": f"{type(e).__name__}: {e}", "kind": "error"}
    if result is None or _near_limit(limit, max_memory):
        result = _memory(max_memory)
    try:
        conn.send_bytes(json.dumps(result).encode())
    except MemoryError:
        os._exit(MEMORY_EXIT)
    except OSError:
        pass  # the parent is gone


def _context():
    """Fork where there is one: children start with the preloaded modules already imported, in milliseconds."""
    import multiprocessing
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)


def _mask(how):
    if hasattr(signal, "pthread_sigmask"):  # not on Windows
        signal.pthread_sigmask(getattr(signal, how), {signal.SIGINT, signal.SIGTERM})


def _start(ctx, work, job, max_memory, running):
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, work, job, max_memory), daemon=True)
    # A signal arriving during the fork must reach the parent alone, and only once the child is in
    # `running`, where the clean-up kills it: the child unblocks them once it ignores Ctrl-C.
    _mask("SIG_BLOCK")
    try:
        proc.start()
        running.append((proc, receive, time.monotonic(), job))
        send.close()
    finally:
        _mask("SIG_UNBLOCK")


def _death(code, max_memory, name):
    if code == MEMORY_EXIT:
        return _memory(max_memory)
    if code is not None and -code in signal.valid_signals():
        hint = ": out of memory?" if -code == signal.SIGKILL else ""
        return {"error": f"{name} died ({signal.Signals(-code).name}{hint})", "kind": "crash"}
    return {"error": f"{name} stopped without a result (exit status {code})", "kind": "crash"}


def _outcome(child, timeout, max_memory, name):
    """A child's result once it has one (the child is then gone), else None while it may run on."""
    proc, conn, start, _ = child
    if conn.poll():
        try:
            result = json.loads(conn.recv_bytes())
        except (EOFError, OSError, ValueError):  # it ended without a word: its exit status says why
            proc.join()
            result = _death(proc.exitcode, max_memory, name)
    elif time.monotonic() - start > timeout:
        result = {"error": f"timed out after {timeout:g} s", "kind": "timeout"}
    else:
        return None
    proc.kill()  # done with it: no need to wait while it frees a large result
    proc.join()
    conn.close()
    return result


def run_bounded(jobs, work, workers, timeout, max_memory, done, preload=(), name="the child process"):
    """Run work(job) for each job in a child process, `workers` at a time, each bounded by `timeout` seconds
    and `max_memory` MB; call done(job, result) in this process as each ends.

    `work` (a module-level function, where children are spawned rather than forked) returns a dict that
    json can write. The result is that dict, or a failure {"error": reason, "kind": ...}: "memory" (it
    raised MemoryError or came near the bound), "timeout", "crash" (it died; the reason begins with
    `name`), or "error" (it raised another exception; work that has reasons of its own catches them).
    `preload` names modules every job needs, imported once here: every forked child starts with them.
    Children still running when this returns or raises (Ctrl-C, an exception in `done`) are killed."""
    import importlib
    from multiprocessing.connection import wait
    for module in preload:
        importlib.import_module(module)
    ctx, pending, running = _context(), list(jobs), []
    try:
        while pending or running:
            while pending and len(running) < workers:
                _start(ctx, work, pending.pop(0), max_memory, running)
            now = time.monotonic()
            wait([c for proc, conn, *_ in running for c in (conn, proc.sentinel)],
                 timeout=max(0.0, min(POLL, *(start + timeout - now for _, _, start, _ in running))))
            for child in list(running):
                result = _outcome(child, timeout, max_memory, name)
                if result is not None:
                    running.remove(child)
                    done(child[3], result)
    finally:
        for proc, conn, *_ in running:
            proc.kill()
            proc.join()
            conn.close()
