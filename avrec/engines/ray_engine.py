"""Ray engine: the same shard function as the local pool, one Ray task per item.

Selected with ``distributed.engine: ray`` (``distributed.address`` to join a cluster;
none starts a local one). Ray is imported only here, lazily. Each item is its own task so
the per-item time limit holds: a task past ``timeout`` is cancelled (force-killing its
worker) and reported as failed, exactly as the local pool does.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from . import EngineFailure, ShardFn


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "distributed.engine is 'ray' but ray is not installed; pip install 'avrec[ray]' "
            "or use --set distributed.engine=local"
        ) from None
    return ray


def connect(address: str | None):
    """The ray module, connected to ``address`` (None: a local cluster) unless already connected."""
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    return ray


def run_ray(
    fn: ShardFn,
    tasks: Sequence[Any],
    payload: Any,
    *,
    workers: int = 1,
    timeout: float | None = None,
    address: str | None = None,
) -> Iterator[tuple[int, Any]]:
    _import_ray()  # say how to install it even when there is nothing to do
    if not tasks:
        return
    ray = connect(address)
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    payload_ref = ray.put(payload)
    limit = timeout if timeout and timeout > 0 else None
    # keep a bounded number of tasks in flight: results (thumbnails, PCM) stay small in memory
    in_flight: dict[Any, tuple[int, float]] = {}
    next_task = 0
    window = max(1, workers) * 2
    try:
        while next_task < len(tasks) or in_flight:
            while next_task < len(tasks) and len(in_flight) < window:
                ref = remote.remote([tasks[next_task]], payload_ref)
                in_flight[ref] = (next_task, time.monotonic() + limit if limit else float("inf"))
                next_task += 1
            soonest = min(d for _, d in in_flight.values())
            wait_s = max(0.0, soonest - time.monotonic()) if limit else None
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait_s)
            for ref in done:
                index, _ = in_flight.pop(ref)
                try:
                    yield index, ray.get(ref)[0]
                except Exception as e:  # noqa: BLE001 - a worker crash is one failed item
                    yield index, EngineFailure(f"ray task failed: {type(e).__name__}")
            now = time.monotonic()
            for ref, (index, deadline) in list(in_flight.items()):
                if now >= deadline:
                    ray.cancel(ref, force=True)
                    del in_flight[ref]
                    yield index, EngineFailure(f"timed out after {limit:g} s (extract.item_timeout); task cancelled")
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)
