"""Writing an artifact as a transaction: a temporary sibling, a lock, one rename.

Every stage writes its whole artifact into ``.<name>.tmp-*`` beside the output and swaps
it into place at the end, so a reader sees the old artifact or the new one, never half of
one. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: there is no instant at which
the output is missing. A lock file (``.<name>.lock``, ``flock``: released by the kernel even
when the writer is SIGKILLed) refuses a second writer and names the holder's pid. Holding
the lock, a writer removes what killed writers left (``.<name>.tmp-*``, ``.<name>.old-*``).
extract resumes: its staging directory ``.<name>.partial`` survives a failed run and holds
the shards done so far.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import ArtifactError, InputError
from .files import make_public
from .manifest import MADE_BY, MANIFEST


class LockedError(ArtifactError):
    """Another process is writing the same output. Exit 2: wait for it, or write elsewhere."""


def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


def staging_path(final: Path) -> Path:
    """Where a resumable stage (extract) builds the next version of ``final``."""
    return final.parent / f".{final.name}.partial"


@contextlib.contextmanager
def hold_lock(final: Path) -> Iterator[None]:
    """Exclusive right to write ``final``; LockedError naming the holder if it is taken."""
    path = _lock_path(final)
    info = json.dumps({"pid": os.getpid(), "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
                       "since": _dt.datetime.now().isoformat(timespec="seconds")})
    try:
        import fcntl
    except ImportError:  # no flock (Windows): an exclusive create, stale when its pid is gone
        fcntl = None  # type: ignore[assignment]
    fd = -1
    for _ in range(5):
        if fcntl is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _holder(path)
                if holder.get("pid") and not _alive(int(holder["pid"])):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    continue
                raise _locked(final, holder) from None
            break
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            # the holder writes its pid just after it takes the lock: read in between, the file
            # is empty and the refusal would name nobody, so give it a moment
            holder = _holder_of(fd)
            for _ in range(50):
                if holder.get("pid"):
                    break
                time.sleep(0.02)
                holder = _holder_of(fd)
            os.close(fd)
            raise _locked(final, holder) from None
        # the previous holder unlinks the file as it lets go: make sure ours is still the one named
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        fd = -1
    if fd < 0:
        raise ArtifactError(f"could not lock {final} (its lock file keeps changing); try again")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, info.encode("utf-8"))
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _holder_of(fd: int) -> dict:
    """What the lock file open at ``fd`` says about its holder (the inode we failed to lock)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked(final: Path, holder: dict) -> LockedError:
    who = f"pid {holder['pid']}" if holder.get("pid") else "another process"
    what = f" (`{holder['command']}`, since {holder.get('since')})" if holder.get("command") else ""
    return LockedError(f"{final} is being written by {who}{what}; wait for it to finish, or write elsewhere with -o")


def check_output(final: Path, *, kind: str | None, inputs: Sequence[str | Path] = (),
                 sources: Sequence[str | Path] = ()) -> None:
    """Refuse an output that is a file, another kind of artifact, a folder of other things,
    this stage's input artifact (or inside it, or around it), or a folder holding a source
    (media, a table): replacing the output would delete it."""
    if final.is_symlink() and not final.exists():
        raise InputError(f"output {final} is a dangling symlink; remove it or pass another -o")
    if final.exists():
        if not final.is_dir():
            raise InputError(f"output {final} is a file; pass a directory path to -o")
        man = final / MANIFEST
        if man.exists():
            try:
                have = json.loads(man.read_text(encoding="utf-8")).get("artifact")
            except (OSError, ValueError, AttributeError):
                have = None
            if kind is not None and have != kind:
                made = f" (made by `{MADE_BY[have]}`)" if have in MADE_BY else ""
                raise ArtifactError(f"{final} holds a '{have}' artifact{made}; this stage writes '{kind}' and "
                                    "would replace it: pass another -o")
        elif any(not p.name.startswith(".") for p in final.iterdir()):
            raise InputError(f"{final} exists and is not an avrec artifact; pass a new or empty directory to -o "
                             "(an output directory is replaced as a whole)")
    out = os.path.realpath(final)
    for inp in inputs:
        src = os.path.realpath(inp)
        if out == src or out.startswith(src + os.sep) or src.startswith(out + os.sep):
            raise InputError(f"-o {final} is this stage's own input ({inp}); write the output elsewhere")
    for inp in sources:
        src = os.path.realpath(inp)
        if out == src or src.startswith(out + os.sep):
            raise InputError(f"-o {final} holds this stage's input {inp}, which replacing it would delete; "
                             "write the output elsewhere")


def clean_stale(final: Path, *, keep_staging: bool = True) -> list[Path]:
    """Remove what interrupted writers of ``final`` left beside it (call with the lock held)."""
    removed = []
    prefixes = (f".{final.name}.tmp-", f".{final.name}.old-")
    with contextlib.suppress(OSError):
        for p in final.parent.iterdir():
            if p.name.startswith(prefixes) or (not keep_staging and p == staging_path(final)):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
                removed.append(p)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0:
        return True
    return False  # EINVAL/ENOSYS: a filesystem without it; the two-rename path follows


def swap_into_place(tmp: Path, final: Path) -> None:
    """Make ``tmp`` the new ``final``; the old one is removed."""
    old = final.parent / f".{final.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
    if final.exists() and _exchange(tmp, final):
        os.rename(tmp, old)  # tmp now holds the previous artifact
    elif final.exists():
        os.rename(final, old)
        os.rename(tmp, final)
    else:
        os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


class Transaction:
    """The temporary directory a stage writes (``path``) and its destination (``final``)."""

    def __init__(self, final: Path, path: Path):
        self.final, self.path = final, path
        self.committed = True

    def skip(self) -> None:
        """Leave ``final`` as it is (nothing changed); the temporary directory is dropped."""
        self.committed = False


@contextlib.contextmanager
def transaction(final: str | Path, *, kind: str | None, inputs: Sequence[str | Path] = (),
                sources: Sequence[str | Path] = (), resume: bool = False) -> Iterator[Transaction]:
    """Build an artifact in a temporary sibling of ``final`` and swap it into place.

    Refuses a bad output (:func:`check_output`) and a second writer (:func:`hold_lock`).
    On an exception the temporary directory is removed and ``final`` is untouched, except
    with ``resume``: then it is :func:`staging_path`, kept for the next run to go on from.
    """
    final = Path(final)
    if final.is_symlink() and final.exists():
        final = Path(os.path.realpath(final))  # swap the directory the link points at, not the link
    check_output(final, kind=kind, inputs=inputs, sources=sources)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"cannot create {final}: a parent of it is a file; pass another -o") from None
    except PermissionError:
        raise InputError(f"cannot create {final}: permission denied; pass another -o") from None
    with hold_lock(final):
        clean_stale(final, keep_staging=resume)
        if resume:
            tmp = staging_path(final)
            tmp.mkdir(exist_ok=True)
        else:
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
        make_public(tmp)
        txn = Transaction(final, tmp)
        try:
            yield txn
        except BaseException:
            if not resume or not any(tmp.iterdir()):
                shutil.rmtree(tmp, ignore_errors=True)
            elif not (tmp / "shards").is_dir() or not any((tmp / "shards").iterdir()):
                shutil.rmtree(tmp, ignore_errors=True)  # nothing worth resuming from
            raise
        if txn.committed:
            swap_into_place(tmp, final)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """A transaction with no kind check: yields the temporary directory."""
    with transaction(final, kind=None) as txn:
        yield txn.path
