"""Engines that run one shard function over many items: local processes or Ray.

An engine takes ``fn(tasks, payload) -> list[result]`` (a picklable top-level function),
a list of tasks and a per-item time limit, and yields ``(task_index, result)`` as items
finish, in any order. An item that times out or kills its worker yields
``(task_index, EngineFailure(reason))`` instead, so a bad file is a row, not a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError

ShardFn = Callable[[list[Any], Any], list[Any]]


@dataclass
class EngineFailure:
    error: str  # one line


def run(
    engine: str,
    fn: ShardFn,
    tasks: Sequence[Any],
    payload: Any,
    *,
    workers: int = 1,
    timeout: float | None = None,
    address: str | None = None,
    preload: Sequence[str] = (),
) -> Iterator[tuple[int, Any]]:
    """Dispatch to the named engine (``local`` | ``ray``)."""
    if engine == "local":
        from .local import run_local

        return run_local(fn, tasks, payload, workers=workers, timeout=timeout, preload=preload)
    if engine == "ray":
        from .ray_engine import run_ray

        return run_ray(fn, tasks, payload, workers=workers, timeout=timeout, address=address)
    raise ConfigError(f"distributed.engine must be local or ray; got {engine!r}")
