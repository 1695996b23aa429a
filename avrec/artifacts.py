"""Artifact directories: manifest, atomic writes, JSON lines, input resolution.

Every stage writes one directory holding ``manifest.json``::

    {artifact, schema_version, avrec_version, created, config, inputs, models, counts, libs}

plus its data (``.npy`` float32 matrices, ``items.jsonl``; never pickle). Kinds:
``features`` (extract), ``embeddings`` (embed), ``model`` (train), ``index`` (index),
``evaluation`` (evaluate).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import __version__
from .errors import ArtifactError, InputError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

# the default directory of each stage inside the workspace, and the stage that reads it
DEFAULT_DIRS = {
    "features": "features",
    "embeddings": "embeddings",
    "model": "model",
    "index": "index",
    "evaluation": "evaluation",
}
MADE_BY = {"features": "avrec extract", "embeddings": "avrec embed", "model": "avrec train",
           "index": "avrec index", "evaluation": "avrec evaluate"}
UPSTREAM = {"embed": "features", "train": "embeddings", "index": "model", "recommend": "index", "evaluate": "embeddings"}


@dataclass
class Manifest:
    artifact: str
    schema_version: int = SCHEMA_VERSION
    avrec_version: str = __version__
    created: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    libs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "schema_version": self.schema_version,
            "avrec_version": self.avrec_version,
            "created": self.created,
            "config": self.config,
            "inputs": self.inputs,
            "models": self.models,
            "counts": self.counts,
            "libs": self.libs,
            **({"extra": self.extra} if self.extra else {}),
        }


_LIBS = ("numpy", "scipy", "annoy", "torch", "transformers", "soxr", "opencv-python-headless", "av")


def lib_versions(names: Iterable[str] = _LIBS) -> dict[str, str]:
    """Installed versions, read from package metadata (no imports of the packages themselves)."""
    from importlib import metadata  # ~20 ms: only stages that write manifests pay for it

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return out


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    directory = Path(directory)
    if not manifest.created:
        manifest.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if not manifest.libs:
        manifest.libs = lib_versions()
    write_json(directory / MANIFEST, manifest.to_dict())
    return directory / MANIFEST


def read_manifest(directory: str | Path, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read and check a manifest; raises ArtifactError saying what is wrong and what to do."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.exists():
        raise ArtifactError(f"artifact directory not found: {directory}")
    if not path.exists():
        raise ArtifactError(
            f"{directory} is not an avrec artifact (no {MANIFEST}); pass a directory written by an avrec stage"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read {path}: {e}") from None
    kinds = (expect,) if isinstance(expect, str) else expect
    if kinds and data.get("artifact") not in kinds:
        made = " or ".join(f"`{MADE_BY[k]}`" for k in kinds if k in MADE_BY)
        raise ArtifactError(
            f"{directory} is a '{data.get('artifact')}' artifact, but this stage needs "
            f"'{' or '.join(kinds)}'" + (f" (made by {made})" if made else "")
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{directory} has schema_version {data.get('schema_version')}, this avrec reads "
            f"{SCHEMA_VERSION}; re-run the stage that wrote it"
        )
    return data


# ---------------------------------------------------------------------------------------
# files


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_public(path: str | Path) -> None:
    """Give a temp file or directory the mode a plain open()/mkdir() would have.

    mkstemp/mkdtemp create 0600/0700 entries; artifacts are meant to be read by other
    processes and users (a serving account, CI), so apply the usual umask instead.
    """
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~_umask())


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one rename.

    On error the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        make_public(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False, default=_json_default)
        f.write("\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write JSON lines atomically; returns the number of rows."""
    n = 0
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            f.write("\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save_npy(path: str | Path, array: Any) -> None:
    """np.save atomically, never with pickle."""
    import numpy as np

    with atomic_file(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)


def load_npy(path: str | Path, mmap: bool = True) -> Any:
    import numpy as np

    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``final`` in one rename.

    On error the temporary directory is removed and ``final`` is left as it was, so an
    interrupted stage never leaves a half-written artifact behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    make_public(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# input resolution: positional path, "-" (stdin), or the workspace default


def workdir(cfg_workdir: str | None = None, override: str | None = None) -> Path:
    return Path(override or os.environ.get("AVREC_WORKDIR") or cfg_workdir or "avrec-work")


def _read_stdin_path() -> str | None:
    """The upstream path from stdin when stdin is piped; None on a terminal or empty input.

    A pipe from a running upstream stage blocks here until it has printed its path.
    """
    stream = sys.stdin
    if stream is None or stream.closed:
        return None
    try:
        if stream.isatty():
            return None
        text = stream.read()
    except (OSError, ValueError):
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def resolve_input(arg: str | None, *, stage: str, work: Path, use_stdin: bool = True) -> Path:
    """Resolve a stage's input artifact.

    ``arg`` given: that path (``-`` reads it from stdin). No ``arg``: stdin if something
    was piped, else the upstream stage's default directory in the workspace.
    """
    if arg == "-":
        got = _read_stdin_path()
        if not got:
            raise InputError(f"{stage}: '-' given but nothing arrived on stdin (pipe an artifact path in)")
        return Path(got)
    if arg:
        return Path(arg)
    if use_stdin:
        got = _read_stdin_path()
        if got:
            return Path(got)
    upstream = UPSTREAM.get(stage)
    default = work / DEFAULT_DIRS[upstream] if upstream else None
    if default is None or not (default / MANIFEST).exists():
        raise InputError(
            f"{stage}: no input given and no {upstream} artifact in {work}/ "
            f"(pass a path, pipe one in, or run the previous stage first)"
        )
    return default


def default_output(out: str | None, *, kind: str, work: Path) -> Path:
    return Path(out) if out else work / DEFAULT_DIRS[kind]


def fingerprint(path: str | Path, content_hash: bool = False) -> dict[str, Any]:
    """Cheap identity of an input file: path, size, mtime (and sha256 with ``content_hash``)."""
    p = Path(path)
    st = p.stat()
    fp: dict[str, Any] = {"path": str(p.resolve()), "size": st.st_size, "mtime": int(st.st_mtime_ns)}
    if content_hash:
        import hashlib

        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        fp["sha256"] = h.hexdigest()
    return fp
