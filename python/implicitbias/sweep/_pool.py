"""Worker processes of the local backend: several chunks in flight at once, each in its own process.

A worker is ``python -c "...serve()"`` started with :mod:`subprocess` (no fork of
this process, no re-import of the caller's ``__main__``), with this process's
``sys.path``. It reads messages on its stdin and answers on its stdout, each a
pickle behind an 8-byte length: ``("spec", spec)`` sets the sweep,
``("chunk", runs, num_threads)`` computes one chunk (the family's ``rows``, as
:func:`~implicitbias.sweep.compute_chunk` does outside Dask) and
answers ``("rows", rows, cpu_seconds)`` or ``("error", exception, traceback)``.
Anything the worker prints goes to stderr. Workers ignore SIGINT: the sweeping
process stops them (SIGKILL) on Ctrl-C, so a stop is prompt even inside a long
core call, and on Linux a worker dies with its parent (``PR_SET_PDEATHSIG``: with the thread
that started it, so workers are started on the sweep's calling thread).
Only the sweeping process writes the store.

Workers are kept for the next sweep of this process (a worker's start costs the
import of the package, about 1 s of CPU) and killed at exit or after any error.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import IO, Any

_HEADER = struct.Struct("<Q")


def _send(fh: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(data)) + data)
    fh.flush()


def _read_exactly(fh: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        b = fh.read(left)
        if not b:
            raise EOFError
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _recv(fh: IO[bytes]) -> Any:
    (n,) = _HEADER.unpack(_read_exactly(fh, _HEADER.size))
    return pickle.loads(_read_exactly(fh, n))


# --------------------------------------------------------------------------- the worker's side
def _die_with_parent() -> None:
    """On Linux, ask the kernel to SIGKILL this process when its parent dies (best effort)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve() -> None:
    """The worker's loop (runs in the worker process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the answers
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    import implicitbias

    from .._native import core
    from ._families import FAMILIES

    _send(out, ("ready", implicitbias.__file__, str(getattr(core, "isa", ""))))
    spec: Any = None
    while True:
        try:
            msg = _recv(inp)
        except EOFError:
            return
        if msg[0] == "spec":
            spec = msg[1]
            continue
        _, runs, num_threads = msg
        cpu = time.process_time()
        try:
            rows = FAMILIES[spec.family].rows(spec, runs, num_threads)  # what compute_chunk does outside Dask
        except Exception as exc:
            tb = traceback.format_exc()
            try:
                pickle.loads(pickle.dumps(exc))  # an exception that does not survive pickling goes as text
            except Exception:
                exc = None  # type: ignore[assignment]
            _send(out, ("error", exc, tb))
            continue
        _send(out, ("rows", rows, time.process_time() - cpu))


# --------------------------------------------------------------------------- the sweeping process's side
class WorkerError(RuntimeError):
    """A worker process that died or answered out of protocol."""


class Worker:
    """One worker process."""

    def __init__(self) -> None:
        """Start the process (the caller's thread should outlive it: on Linux the worker dies with it)."""
        import json

        code = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "  # Ctrl-C is the parent's
                "import sys, json; sys.path[:0] = json.loads(sys.argv[1]); "
                "from implicitbias.sweep._pool import serve; serve()")
        self.proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(sys.path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.spec_hash: str | None = None
        self.ready = False

    def start(self) -> None:
        """Wait for the worker's import and check that it loaded this package and core."""
        if self.ready:
            return
        import implicitbias

        from .._native import core

        ready = self._recv()
        expected = ("ready", implicitbias.__file__, str(getattr(core, "isa", "")))
        if tuple(ready) != expected:
            self.kill()
            raise WorkerError(f"a sweep worker process loaded another implicitbias or core ({ready[1:]}; this "
                              f"process: {expected[1:]}); run with workers=1")
        self.ready = True

    def _recv(self) -> Any:
        assert self.proc.stdout is not None
        try:
            return _recv(self.proc.stdout)
        except EOFError:
            code = self.proc.wait()
            raise WorkerError(f"a sweep worker process exited (code {code}) while computing a chunk") from None

    def compute(self, spec: Any, runs: list[dict[str, Any]], num_threads: int) -> tuple[list, float]:
        """The chunk's rows and the worker's CPU seconds for it; re-raises the chunk's exception."""
        assert self.proc.stdin is not None
        self.start()
        try:
            if self.spec_hash != spec.hash:
                _send(self.proc.stdin, ("spec", spec))
                self.spec_hash = spec.hash
            _send(self.proc.stdin, ("chunk", runs, num_threads))
        except (BrokenPipeError, OSError):
            code = self.proc.wait()
            raise WorkerError(f"a sweep worker process exited (code {code})") from None
        kind, value, extra = self._recv()
        if kind == "rows":
            return value, extra
        if value is None:
            raise WorkerError(f"a chunk failed in a sweep worker process:\n{extra}")
        if hasattr(value, "add_note"):  # Python >= 3.11
            value.add_note(f"(in a sweep worker process)\n{extra}")
        raise value

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for fh in (self.proc.stdin, self.proc.stdout):
            try:
                if fh is not None:
                    fh.close()
            except OSError:
                pass


_IDLE: list[Worker] = []
_IDLE_LOCK = threading.Lock()


def acquire() -> Worker:
    """An idle worker (kept from an earlier sweep) or a new one (call on a thread that outlives the
    worker: the main thread)."""
    with _IDLE_LOCK:
        while _IDLE:
            w = _IDLE.pop()
            if w.alive():
                return w
            w.kill()
    return Worker()


def release(w: Worker) -> None:
    """Keep a worker that finished its chunks cleanly for the next sweep."""
    with _IDLE_LOCK:
        _IDLE.append(w)


@atexit.register
def shutdown() -> None:
    """Stop the kept workers."""
    with _IDLE_LOCK:
        workers = list(_IDLE)
        _IDLE.clear()
    for w in workers:
        w.kill()
