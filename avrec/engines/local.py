"""A pool of worker processes with a time limit per item.

``concurrent.futures`` cannot stop one hung task, so each worker is a process with its own
pipe: the parent hands it one item at a time, waits on all pipes with a deadline, and
kills and replaces a worker whose item runs past ``timeout`` (a decoder stuck on a bad
file) or that dies (a decoder crash). Workers ignore SIGINT; the parent stops them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any, Iterator, Sequence

from . import EngineFailure, ShardFn


def _worker(conn: Connection, fn: ShardFn, payload: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                return
            index, task = msg
            try:
                result = fn([task], payload)[0]
            except Exception as e:  # noqa: BLE001 - the shard function should not raise; be safe
                result = EngineFailure(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
            conn.send((index, result))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return


def _context(preload: Sequence[str] = ()) -> mp.context.BaseContext:
    # forkserver: workers fork from a clean server process (no threads of the parent, e.g.
    # a progress bar) that has imported the heavy modules once; spawn where it does not exist
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", *preload])
        return ctx
    return mp.get_context("spawn")


# Workers get their parallelism from being several processes and from FFmpeg's own threads.
# A BLAS pool per worker on top (numpy's matmuls in the audio features) oversubscribes the
# cores, and OpenBLAS's idle threads spin: 4 one-minute clips took 1.85 s instead of 1.55 s
# with one worker on 2 cores. Worker processes start with these set, before numpy loads.
_ONE_THREAD_ENV = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
# The fork server starts as `python -c ...`, which puts the working directory first on
# sys.path: a folder named `avrec` (or `numpy`) where the user runs extract would then be
# imported instead of the installed package, and every worker would die on it. Python 3.11+
# leaves the working directory out with PYTHONSAFEPATH (the -P flag).
_SAFE_PATH_ENV = {"PYTHONSAFEPATH": "1"}


@contextmanager
def _worker_env() -> Iterator[None]:
    """os.environ as worker processes (or the fork server) should inherit it, for the duration."""
    env = {**_ONE_THREAD_ENV, **_SAFE_PATH_ENV}
    saved = {k: os.environ.get(k) for k in env}
    # the user's settings win; set but empty is unset to Python and BLAS (PYTHONSAFEPATH= in a
    # CI template would otherwise let a folder named avrec in the working directory kill every worker)
    os.environ.update({k: v for k, v in env.items() if not saved[k]})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prestart(preload: Sequence[str] = ()) -> None:
    """Start the fork server now, without waiting for it: its imports then overlap with
    what the caller does before the first worker is needed (finding files, fingerprints)."""
    ctx = _context(preload)
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with _worker_env():
            forkserver.ensure_running()


class _Slot:
    def __init__(self, ctx: mp.context.BaseContext, fn: ShardFn, payload: Any):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker, args=(child, fn, payload), daemon=True)
        with _worker_env():  # the fork server, if this starts it, or a spawned worker inherits it
            self.proc.start()
        child.close()
        self.index: int | None = None
        self.deadline = float("inf")

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        self.proc.join(timeout=None if kill else 5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def run_local(
    fn: ShardFn,
    tasks: Sequence[Any],
    payload: Any,
    *,
    workers: int = 1,
    timeout: float | None = None,
    preload: Sequence[str] = (),
) -> Iterator[tuple[int, Any]]:
    """Yield (task index, result or EngineFailure) as items finish.

    preload: modules the workers import once, before forking (decoders, feature code).
    """
    if not tasks:
        return
    ctx = _context(preload)
    n = max(1, min(workers, len(tasks)))
    pending = deque(range(len(tasks)))
    slots = [_Slot(ctx, fn, payload) for _ in range(n)]
    limit = timeout if timeout and timeout > 0 else None
    try:
        while True:
            for s in slots:  # hand out work
                if s.index is None and pending:
                    s.index = pending.popleft()
                    s.deadline = time.monotonic() + limit if limit else float("inf")
                    s.conn.send((s.index, tasks[s.index]))
            busy = [s for s in slots if s.index is not None]
            if not busy:
                return
            now = time.monotonic()
            wait_for = max(0.0, min(s.deadline for s in busy) - now) if limit else None
            ready = wait([s.conn for s in busy], timeout=wait_for)
            for s in busy:
                if s.conn in ready:
                    try:
                        index, result = s.conn.recv()
                    except (EOFError, OSError):
                        code = s.proc.exitcode
                        s.proc.join(timeout=1)
                        code = s.proc.exitcode if s.proc.exitcode is not None else code
                        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        failed = s.index
                        slots[slots.index(s)] = _replace(s, ctx, fn, payload, kill=True)
                        yield failed, EngineFailure(f"worker process died while decoding ({why})")
                        continue
                    s.index, s.deadline = None, float("inf")
                    yield index, result
                elif time.monotonic() >= s.deadline:
                    failed = s.index
                    slots[slots.index(s)] = _replace(s, ctx, fn, payload, kill=True)
                    yield failed, EngineFailure(f"timed out after {limit:g} s (extract.item_timeout); decoder stopped")
    finally:
        for s in slots:
            s.stop(kill=s.index is not None)


def _replace(s: _Slot, ctx: mp.context.BaseContext, fn: ShardFn, payload: Any, *, kill: bool) -> _Slot:
    s.stop(kill=kill)
    return _Slot(ctx, fn, payload)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
