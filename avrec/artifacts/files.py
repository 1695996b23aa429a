"""Files inside an artifact: atomic writes, JSON lines, ``.npy`` (never pickle).

A reader that meets a damaged file gets an :class:`~avrec.errors.ArtifactError` naming the
file, never a bare ``JSONDecodeError`` or numpy's "mmap length is greater than file size".
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ArtifactError


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
    """Write JSON lines atomically; returns the number of rows.

    Every line is one JSON object: strings are escaped by json, so an id holding a newline
    stays on its line.
    """
    n = 0
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            f.write("\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON lines file written by avrec; ArtifactError naming the file and line."""
    path = Path(path)
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ArtifactError(f"{path}: line {n} is not valid JSON ({e.msg}); the file is damaged, "
                                        f"{rebuild_hint(path.parent)}") from None
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing; {rebuild_hint(path.parent)}") from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{path} is not UTF-8 text; the file is damaged, {rebuild_hint(path.parent)}") from None
    return rows


def save_npy(path: str | Path, array: Any) -> None:
    """np.save atomically, never with pickle."""
    import numpy as np

    with atomic_file(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)


def load_npy(path: str | Path, mmap: bool = True) -> Any:
    """np.load (memory-mapped by default, never pickle); ArtifactError naming a damaged file."""
    import numpy as np

    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing; {rebuild_hint(Path(path).parent)}") from None
    except (ValueError, OSError, EOFError) as e:
        # truncated: "mmap length is greater than file size", "cannot reshape", a bad header
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArtifactError(f"{path} is damaged or truncated ({first}); {rebuild_hint(Path(path).parent)}") from None


def rebuild_hint(directory: str | Path) -> str:
    """'re-run `avrec train`' for the artifact holding ``directory`` (walks up to its manifest)."""
    from .manifest import MADE_BY, MANIFEST

    d = Path(directory)
    for p in (d, *d.parents[:3]):
        try:
            kind = json.loads((p / MANIFEST).read_text(encoding="utf-8")).get("artifact")
        except (OSError, ValueError, AttributeError):
            continue
        if kind in MADE_BY:
            return f"rebuild it with `{MADE_BY[kind]}`"
    return "re-run the stage that wrote it"


def fingerprint(path: str | Path, content_hash: bool = False) -> dict[str, Any]:
    """Cheap identity of an input file: path, size, mtime (and sha256 with ``content_hash``)."""
    p = Path(path)
    st = p.stat()
    fp: dict[str, Any] = {"path": str(p.resolve()), "size": st.st_size, "mtime": int(st.st_mtime_ns)}
    if content_hash:
        fp["sha256"] = sha256_file(p)
    return fp


def sha256_file(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
