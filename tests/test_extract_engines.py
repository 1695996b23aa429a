"""Engines: the local pool's per-item time limit and crash handling; Ray's clear absence."""

import os
import signal
import threading

import pytest

from avrec.engines import EngineFailure, run
from avrec.errors import ConfigError


def double(tasks, payload):
    return [t * payload for t in tasks]


def misbehave(tasks, payload):
    out = []
    for t in tasks:
        if t == "hang":
            threading.Event().wait()  # a decoder stuck forever
        if t == "crash":
            os.kill(os.getpid(), signal.SIGKILL)  # a decoder that takes the process down
        if t == "raise":
            raise ValueError("bad\nthing")
        out.append(t.upper())
    return out


def blas_threads(tasks, payload):
    return [[os.environ.get(k) for k in names] for names in tasks]


def test_workers_run_one_blas_thread_each_unless_the_user_says_otherwise():
    # parallelism comes from worker processes and FFmpeg's threads; a BLAS pool per worker on
    # top oversubscribes the cores
    keys = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
    before = {k: os.environ.get(k) for k in keys}
    got = dict(run("local", blas_threads, [keys], None, workers=1, timeout=60))
    assert got[0] == [before[k] or "1" for k in keys]
    assert {k: os.environ.get(k) for k in keys} == before  # this process's own setting is left alone


def test_results_come_back_for_every_task():
    got = dict(run("local", double, list(range(7)), 3, workers=2, timeout=60))
    assert got == {i: 3 * i for i in range(7)}


def test_hang_crash_and_exception_become_failures_and_the_rest_goes_on():
    tasks = ["a", "hang", "b", "crash", "raise", "c"]
    got = dict(run("local", misbehave, tasks, None, workers=2, timeout=1.0))
    assert {got[i] for i in (0, 2, 5)} == {"A", "B", "C"}
    assert isinstance(got[1], EngineFailure) and "timed out after 1 s" in got[1].error
    assert isinstance(got[3], EngineFailure) and "worker process died" in got[3].error and "signal 9" in got[3].error
    assert isinstance(got[4], EngineFailure) and got[4].error == "ValueError: bad"


def test_ray_engine_says_how_to_install_it():
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match="pip install 'avrec\\[ray\\]'"):
        list(run("ray", double, [1], 2))


def test_unknown_engine():
    with pytest.raises(ConfigError, match="local or ray"):
        run("spark", double, [1], 2)


def test_ray_engine_matches_the_local_pool():
    ray = pytest.importorskip("ray")
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    try:
        got = dict(run("ray", misbehave, ["a", "hang", "b", "crash"], None, workers=2, timeout=15))  # Ray starting its workers on a busy 2-core VM took over 5 s
    finally:
        ray.shutdown()
    assert got[0] == "A" and got[2] == "B"
    assert isinstance(got[1], EngineFailure) and "timed out" in got[1].error
    assert isinstance(got[3], EngineFailure)
