"""Where a stage's input comes from: a positional path, ``-``, a pipe, or the workspace.

stdin that is a pipe or a file carries the upstream stage's answer. When it is empty the
upstream printed nothing, which means it failed: that is an error (exit 2), never a cue to
fall back to the workspace's previous artifact. stdin that is a terminal or ``/dev/null``
(a CI step that runs one stage per line) carries nothing, and the workspace default applies.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from ..errors import InputError
from .manifest import DEFAULT_DIRS, MANIFEST

# the artifact kind each stage reads by default
UPSTREAM = {"embed": "features", "train": "embeddings", "index": "model", "recommend": "index", "evaluate": "embeddings",
            "serve": "index", "profile": "index"}


def workdir(cfg_workdir: str | None = None, override: str | None = None) -> Path:
    return Path(override or os.environ.get("AVREC_WORKDIR") or cfg_workdir or "avrec-work")


def stdin_kind() -> str:
    """'pipe', 'file' or 'socket' (stdin carries data), 'tty' or 'null' (it carries nothing:
    a terminal, /dev/null or another character device, or no stdin at all), or 'memory'
    (an in-memory stream, when avrec is called from Python: empty means nothing given)."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return "null"
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return "memory"
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "null"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "tty" if os.isatty(fd) else "null"


def _empty_stdin(stage: str) -> InputError:
    return InputError(
        f"{stage}: nothing arrived on stdin, which is piped: the command before it printed no artifact path, so "
        "it most likely failed (see its error above); fix that, or pass this stage's input as an argument"
    )


def read_stdin_path(stage: str) -> str | None:
    """The upstream path on stdin (the last non-empty line); None when stdin carries nothing.

    A pipe from a running upstream stage blocks here until it has printed its path.
    """
    if stdin_kind() in ("tty", "null"):
        return None
    try:
        text = sys.stdin.read()
    except (OSError, ValueError):
        raise _empty_stdin(stage) from None
    except UnicodeDecodeError:
        raise InputError(f"{stage}: stdin is not UTF-8 text; pipe an artifact path in") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        if stdin_kind() == "memory":
            return None
        raise _empty_stdin(stage)
    return lines[-1]


def resolve_input(arg: str | None, *, stage: str, work: Path, use_stdin: bool = True) -> Path:
    """Resolve a stage's input artifact.

    ``arg`` given: that path (``-`` reads it from stdin). No ``arg``: stdin when it is a
    pipe or a file (empty: an error), else the upstream stage's default in the workspace.
    """
    if arg == "-":
        if stdin_kind() == "tty":
            raise InputError(f"{stage}: '-' reads the input path from stdin, but stdin is a terminal; pipe a path in")
        got = read_stdin_path(stage) if stdin_kind() != "null" else None
        if not got:
            raise InputError(f"{stage}: '-' given but nothing arrived on stdin (pipe an artifact path in)")
        return Path(got)
    if arg is not None:
        if not arg.strip():
            raise InputError(f"{stage}: the input path is an empty string; pass an artifact directory")
        return Path(arg)
    if use_stdin:
        got = read_stdin_path(stage)
        if got:
            return Path(got)
    upstream = UPSTREAM.get(stage.split()[0])
    default = work / DEFAULT_DIRS[upstream] if upstream else None
    if default is None or not (default / MANIFEST).exists():
        raise InputError(
            f"{stage}: no input given and no {upstream} artifact in {work}/ "
            f"(pass a path, pipe one in, or run the previous stage first)"
        )
    return default


def default_output(out: str | None, *, kind: str, work: Path) -> Path:
    if out is not None and not out.strip():
        raise InputError("-o is an empty string; pass an output directory")
    return Path(out) if out else work / DEFAULT_DIRS[kind]
