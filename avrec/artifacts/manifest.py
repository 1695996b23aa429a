"""``manifest.json``: what an artifact is, what made it, and the files it holds.

``files`` maps every data file (relative path) to its size in bytes and, for files up to
:data:`CHECKSUM_MAX_BYTES`, its sha256. Readers check the sizes on every open (one stat
per file) and the checksums where asked (``verify="full"``, what stages do with their
input), and name the broken file and the command that rebuilds it. ``build_id`` is new
for every write, so a reader can tell that an artifact was replaced while it read.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..errors import ArtifactError
from .files import sha256_file, write_json

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHECKSUM_MAX_BYTES = 16 << 20  # checksums where cheap: hashing 16 MB costs ~30 ms here

# the default directory of each kind inside the workspace, and the stage that makes it
DEFAULT_DIRS = {
    "features": "features",
    "embeddings": "embeddings",
    "model": "model",
    "index": "index",
    "evaluation": "evaluation",
}
MADE_BY = {"features": "avrec extract", "embeddings": "avrec embed", "model": "avrec train",
           "index": "avrec index", "evaluation": "avrec evaluate"}


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
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    build_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "schema_version": self.schema_version,
            "avrec_version": self.avrec_version,
            "build_id": self.build_id,
            "created": self.created,
            "config": self.config,
            "inputs": self.inputs,
            "models": self.models,
            "counts": self.counts,
            "libs": self.libs,
            **({"extra": self.extra} if self.extra else {}),
            "files": self.files,
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


def list_files(directory: Path) -> dict[str, dict[str, Any]]:
    """{relative posix path: {size[, sha256]}} of every file under ``directory`` but the
    manifest (hidden names are temporaries and are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or (root == str(directory) and name == MANIFEST):
                continue
            p = Path(root) / name
            rel = p.relative_to(directory).as_posix()
            size = p.stat().st_size
            entry: dict[str, Any] = {"size": size}
            if size <= CHECKSUM_MAX_BYTES:
                entry["sha256"] = sha256_file(p)
            out[rel] = entry
    return out


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` last, listing every file already in ``directory``."""
    directory = Path(directory)
    if not manifest.created:
        manifest.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if not manifest.libs:
        manifest.libs = lib_versions()
    import uuid  # here, not at import: the recommend path reads manifests only

    manifest.build_id = uuid.uuid4().hex
    manifest.files = list_files(directory)
    write_json(directory / MANIFEST, manifest.to_dict())
    return directory / MANIFEST


def read_manifest(directory: str | Path, expect: str | tuple[str, ...] | None = None, *,
                  verify: str = "size") -> dict[str, Any]:
    """Read and check a manifest; raises ArtifactError saying what is wrong and what to do.

    verify: "none", "size" (every listed file exists with its size) or "full" (and the
    checksums listed for small files match).
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.exists():
        raise ArtifactError(f"artifact directory not found: {directory}")
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is a file, not an artifact directory; pass the directory an avrec stage wrote")
    if not path.exists():
        raise ArtifactError(
            f"{directory} is not an avrec artifact (no {MANIFEST}); pass a directory written by an avrec stage"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: also a number past 4300 digits
        raise ArtifactError(f"cannot read {path} ({getattr(e, 'msg', None) or e}); the manifest is damaged, "
                            "re-run the stage that wrote it") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} is not an avrec manifest; re-run the stage that wrote it")
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
    if verify != "none":
        verify_files(directory, data, checksums=verify == "full")
    return data


def verify_files(directory: Path, manifest: dict[str, Any], *, checksums: bool = False,
                 only: Iterable[str] | None = None) -> None:
    """Every file the manifest lists (or those in ``only``) exists with its size (and sha256)."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        return  # written before manifests listed their files
    rebuild = MADE_BY.get(str(manifest.get("artifact")), "the stage that wrote it")
    for rel in (files if only is None else [r for r in only if r in files]):
        entry = files[rel]
        parts = Path(str(rel)).parts
        if not parts or Path(str(rel)).is_absolute() or ".." in parts:
            raise ArtifactError(f"{directory / MANIFEST} lists {rel!r}, which lies outside the artifact (damaged); "
                                f"rebuild it with `{rebuild}`")
        p = directory / rel
        try:
            st = p.stat()
            size = st.st_size
        except OSError:
            raise ArtifactError(f"{p} is missing from the artifact; rebuild it with `{rebuild}`") from None
        except ValueError:  # a NUL or a lone surrogate: no file can have that name
            raise ArtifactError(f"{directory / MANIFEST} lists {rel!r}, which is not a file name (damaged); "
                                f"rebuild it with `{rebuild}`") from None
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{p} is not a file (a folder or device in its place); rebuild it with `{rebuild}`")
        want = entry.get("size") if isinstance(entry, dict) else None
        if want is not None and size != want:
            raise ArtifactError(f"{p} has {size} bytes but the manifest lists {want} (truncated or overwritten); "
                                f"rebuild it with `{rebuild}`")
        if checksums and isinstance(entry, dict) and entry.get("sha256"):
            try:
                digest = sha256_file(p)
            except OSError as e:  # a folder where the file was, or unreadable
                raise ArtifactError(f"{p} cannot be read ({e.strerror}); rebuild it with `{rebuild}`") from None
            if digest != entry["sha256"]:
                raise ArtifactError(f"{p} does not match its checksum in the manifest (damaged); "
                                    f"rebuild it with `{rebuild}`")
