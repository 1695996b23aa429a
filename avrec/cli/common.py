"""Options shared by every command, error handling and stderr logging.

Kept light: nothing heavy is imported here, so ``avrec recommend`` starts fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from ..errors import AvrecError

ConfigOpt = Annotated[
    Optional[str],
    typer.Option("--config", "-c", help="YAML config file (or preset name: cpu, cuda).", show_default=False),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override one config key, e.g. --set train.model=ease (repeatable).", show_default=False),
]
DeviceOpt = Annotated[
    Optional[str], typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps.", show_default=False)
]
WorkdirOpt = Annotated[
    Optional[str],
    typer.Option("--workdir", "-w", help="Workspace holding each stage's default artifact [avrec-work].", show_default=False),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
EngineOpt = Annotated[
    Optional[str],
    typer.Option("--engine", help="local (processes on this machine) | ray [distributed.engine].", show_default=False),
]
AddressOpt = Annotated[
    Optional[str],
    typer.Option("--address", help="Ray cluster to join, e.g. ray://head:10001; none starts a local Ray "
                 "[distributed.address].", show_default=False),
]
OutOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", help="Output artifact directory [workspace default].", show_default=False)
]


@dataclass
class Common:
    config: Optional[str] = None
    sets: Optional[list[str]] = None
    device: Optional[str] = None
    workdir: Optional[str] = None
    quiet: bool = False
    debug: bool = False

    def load(self):
        from ..config import load_config

        cfg = load_config(self.config, self.sets or (), self.device)
        if self.workdir:
            cfg.runtime.workdir = self.workdir
        return cfg

    def work(self, cfg) -> Path:
        from ..artifacts import workdir

        return workdir(cfg.runtime.workdir, self.workdir)


def set_engine(cfg, engine: Optional[str], address: Optional[str]) -> None:
    """--engine / --address onto ``cfg.distributed`` (validated with the rest of the config)."""
    if engine is not None:
        cfg.distributed.engine = engine
    if address is not None:
        cfg.distributed.address = address


class Log:
    """Progress and messages on stderr; silent with --quiet. stdout is for data only."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """Turn AvrecError into one line on stderr and its exit code; anything else exits 1."""
    try:
        yield
    except typer.Exit:
        raise
    except AvrecError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # downstream closed the pipe (e.g. `| head`): not an error
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")
        raise typer.Exit(0) from None
    except Exception as e:  # noqa: BLE001 - last resort: one line, not a traceback
        if debug or os.environ.get("AVREC_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e} (re-run with --debug for the traceback)", file=sys.stderr)
        raise typer.Exit(1) from None


def emit_path(path: Path) -> None:
    """A stage's only stdout: the path of the artifact it wrote."""
    print(str(path), flush=True)
