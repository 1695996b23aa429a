"""Options shared by every command, declared once; error handling and stderr logging.

``@command("train", help=HELP, output=True)`` registers a function with the common options
(``--config``, ``--set``, ``--device``, ``--workdir``, ``--quiet``, ``--debug``, and where
asked ``-o``, ``--engine``/``--address``, ``--strict``) added to its signature; the function
receives them as one :class:`Common` and runs inside :func:`handle_errors`.

Kept light: nothing heavy is imported here, so ``avrec recommend`` starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer

from ..errors import AvrecError

_OPTIONS: dict[str, tuple[Any, Any]] = {
    "config": (Annotated[Optional[str], typer.Option(
        "--config", "-c", help="YAML config file (or preset name: cpu, cuda).", show_default=False)], None),
    "sets": (Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override one config key, e.g. --set train.model=ease (repeatable).", show_default=False)], None),
    "device": (Annotated[Optional[str], typer.Option(
        "--device", help="auto | cpu | cuda | cuda:N | mps.", show_default=False)], None),
    "workdir": (Annotated[Optional[str], typer.Option(
        "--workdir", "-w", help="Workspace holding each stage's default artifact [avrec-work].", show_default=False)],
        None),
    "quiet": (Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs on stderr.")], False),
    "debug": (Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")], False),
}
_GROUPS: dict[str, dict[str, tuple[Any, Any]]] = {
    "output": {"output": (Annotated[Optional[str], typer.Option(
        "--output", "-o", help="Output artifact directory [workspace default].", show_default=False)], None)},
    "engine": {
        "engine": (Annotated[Optional[str], typer.Option(
            "--engine", help="local (processes on this machine) | ray [distributed.engine].", show_default=False)], None),
        "address": (Annotated[Optional[str], typer.Option(
            "--address", help="Ray cluster to join, e.g. ray://head:10001; none starts a local Ray "
            "[distributed.address].", show_default=False)], None),
    },
    "strict": {"strict": (Annotated[bool, typer.Option(
        "--strict", help="Unknown table columns are errors, not warnings.")], False)},
}


@dataclass
class Common:
    config: Optional[str] = None
    sets: Optional[list[str]] = None
    device: Optional[str] = None
    workdir: Optional[str] = None
    quiet: bool = False
    debug: bool = False
    output: Optional[str] = None
    engine: Optional[str] = None
    address: Optional[str] = None
    strict: bool = False

    def load(self):
        """The resolved config: files, environment, --set, --device, --engine/--address."""
        from ..config import load_config
        from ..errors import ConfigError

        if self.config is not None and not self.config.strip():
            raise ConfigError("--config is an empty string; pass a YAML file or a preset name (cpu, cuda)")
        cfg = load_config(self.config, self.sets or (), self.device)
        if self.workdir:
            cfg.runtime.workdir = self.workdir
        if self.engine is not None:
            cfg.distributed.engine = self.engine
        if self.address is not None:
            cfg.distributed.address = self.address
        return cfg

    def work(self, cfg) -> Path:
        from ..artifacts import workdir

        return workdir(cfg.runtime.workdir, self.workdir)

    def out(self, cfg, kind: str) -> Path:
        """-o, else the workspace's default directory of ``kind``."""
        from ..artifacts import default_output

        return default_output(self.output, kind=kind, work=self.work(cfg))

    @property
    def log(self) -> "Log":
        return Log(self.quiet)


def command(name: str, *, help: Optional[str] = None, output: bool = False, engine: bool = False,
            strict: bool = False, workdir: bool = True, **kw: Any) -> Callable:
    """Register ``fn(common: Common, ...)`` as ``avrec NAME`` with the common options added."""
    from . import app

    groups = {k: v for g, on in (("output", output), ("engine", engine), ("strict", strict)) if on
              for k, v in _GROUPS[g].items()}
    options = {k: v for k, v in _OPTIONS.items() if workdir or k != "workdir"}
    added = {**groups, **options}

    def deco(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "common"]
        params = own + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
                        for k, (a, d) in added.items()]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            common = Common(**{k: kwargs.pop(k) for k in added})
            with handle_errors(common.debug):
                return fn(common=common, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return app.command(name, help=help or fn.__doc__, **kw)(wrapper)

    return deco


class Log:
    """Progress and messages on stderr; silent with --quiet. stdout is for data only."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)


# OSErrors whose cause is a path the user gave: exit 2 with the path and the reason
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS}


_interrupted = False


RESEND_S = 0.005  # how soon a SIGINT that landed inside importlib's bookkeeping is sent again
MAX_RESENDS = 200  # then raised wherever it lands (1 s: a main thread waiting on another's module lock)
_resends = 0


def _on_sigint(signum: int, frame: Any) -> None:
    global _interrupted, _resends
    _interrupted = True
    if frame is not None and frame.f_code.co_filename.startswith("<frozen importlib._bootstrap") \
            and _resends < MAX_RESENDS:
        _resends += 1
        # raising here, inside importlib's module-lock bookkeeping (a weakref callback of
        # _get_module_lock, _ModuleLock.acquire), loses the exception ("Exception ignored in
        # ... cb") and can leave the global import lock held: every later import in another
        # thread then blocks for ever. tests/failures/test_kill.py caught an extract run hung
        # 120 s after Ctrl-C that way. So the signal is sent again a moment later, to land in
        # ordinary code (signal is imported at the top: no import machinery in here).
        t = threading.Timer(RESEND_S, os.kill, (os.getpid(), signal.SIGINT))
        t.daemon = True
        t.start()
        return
    _resends = 0
    raise KeyboardInterrupt


def install_interrupt_flag() -> None:
    """Python's own Ctrl-C behaviour, remembered: CPython turns a KeyboardInterrupt that lands
    while a class is being made (an import's dataclass, a ``__set_name__``) into a RuntimeError
    or a stranger error chained to it, and that must still end the run as interrupted (130),
    not as "a bug in avrec". A SIGINT that is ignored (a background job) stays ignored."""

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def _was_interrupted(e: BaseException) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return _interrupted


def _interrupt_exit() -> None:
    print("interrupted", file=sys.stderr)
    raise typer.Exit(130) from None


@contextlib.contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """One line on stderr and an exit code that means one thing: 2 the user can fix it
    (input, config, paths), 1 a runtime failure, 3 too many failed items, 130 interrupted."""
    debug = debug or bool(os.environ.get("AVREC_DEBUG"))
    try:
        yield
    except typer.Exit:
        raise
    except AvrecError as e:
        if _was_interrupted(e):
            _interrupt_exit()
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        _interrupt_exit()
    except BrokenPipeError:
        # downstream closed the pipe (e.g. `| head`): not an error
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")
        raise typer.Exit(0) from None
    except OSError as e:
        if _was_interrupted(e):
            _interrupt_exit()
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        if e.errno in _USER_ERRNOS:
            print(f"error: {where}{e.strerror or e}; check the path and its permissions", file=sys.stderr)
            raise typer.Exit(2) from None
        if e.errno == errno.ENOSPC:
            print(f"error: {where}no space left on the device; free some space and run it again (the previous "
                  "artifact is intact)", file=sys.stderr)
            raise typer.Exit(1) from None
        print(f"error: {where}{e.strerror or e} (re-run with --debug for the traceback)", file=sys.stderr)
        raise typer.Exit(1) from None
    except UnicodeDecodeError as e:
        if debug:
            raise
        print(f"error: an input is not UTF-8 text (byte {e.start}); save it as UTF-8", file=sys.stderr)
        raise typer.Exit(2) from None
    except MemoryError:
        if debug:
            raise
        print("error: out of memory; use a smaller batch or a machine with more memory", file=sys.stderr)
        raise typer.Exit(1) from None
    except Exception as e:  # noqa: BLE001 - last resort: one line, not a traceback
        if _was_interrupted(e):
            _interrupt_exit()
        if debug:
            raise
        text = str(e).strip().splitlines()
        print(f"error: unexpected failure: {text[0] if text else 'no message'} "
              "(a bug in avrec; re-run with --debug for the traceback)", file=sys.stderr)
        raise typer.Exit(1) from None


def emit_path(path: Path) -> None:
    """A stage's only stdout: the path of the artifact it wrote."""
    print(str(path), flush=True)
