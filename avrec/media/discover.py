"""Find media files in folders, file lists and stdin; give each one a stable item_id.

item_id = path relative to the input folder, without extension, with posix slashes
(a flat folder gives the file stem). A file named directly (argument or stdin line) is
identified by its path relative to the working directory when it lies below it, else by
its stem. Two media files that would share an id (``a.mp4`` and ``a.wav``) keep their
extension in the id, so no item silently replaces another.

A file reached twice (through a symlink and directly, or named twice) is one item: files
are deduplicated by their real path. A symlink inside a folder that points out of it is
not read unless ``follow_outside`` (``--follow-outside``): it becomes a skipped row, so a
link to /etc or to another user's files is never decoded by accident.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, TextIO

from ..errors import InputError

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"})
AUDIO_EXTS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".opus", ".aac"})
MEDIA_EXTS = VIDEO_EXTS | AUDIO_EXTS
SIDECAR_EXTS = frozenset({".json", ".txt", ".srt", ".vtt"})


@dataclass(frozen=True)
class MediaFile:
    item_id: str
    path: str  # absolute, symlinks not resolved (a dangling link is still a row)
    kind: str  # "video" | "audio" | "unknown": a guess from the extension; probing decides
    outside: str | None = None  # the input folder this file's real path lies outside of (not read)


def media_kind(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    return "video" if ext in VIDEO_EXTS else "audio" if ext in AUDIO_EXTS else "unknown"


def _id_from(rel: str | Path) -> str:
    p = PurePosixPath(Path(rel).as_posix())
    return str(p.with_suffix("")) if p.suffix else str(p)


def _walk(root: Path, recursive: bool) -> Iterable[Path]:
    """Media files under ``root`` by extension; hidden files and folders are skipped."""
    if not recursive:
        for p in sorted(root.iterdir()):
            if not p.name.startswith(".") and p.suffix.lower() in MEDIA_EXTS and not p.is_dir():
                yield p
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in MEDIA_EXTS:
                yield Path(dirpath) / name


def _explicit_id(p: Path) -> str:
    try:
        rel = Path(os.path.abspath(p)).relative_to(Path.cwd())
        return _id_from(rel)
    except ValueError:
        return _id_from(p.name)


def read_path_list(stream: TextIO | None = None) -> list[str]:
    """Newline-separated paths from stdin (``find . -name '*.mp4' | avrec extract -``)."""
    stream = sys.stdin if stream is None else stream
    if stream is None or stream.closed:
        return []
    paths = []
    for n, line in enumerate(stream.read().splitlines(), 1):
        if "\x00" in line:
            raise InputError(f"stdin line {n} ({line.strip()[:40]!r}) holds a NUL byte, which no path can; "
                             "pass one path per line (`find -print0` output: convert the NULs to newlines)")
        if line.strip():
            paths.append(line.strip())
    return paths


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (both real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def discover(
    inputs: Iterable[str | Path], *, recursive: bool = True, stdin: TextIO | None = None,
    follow_outside: bool = False,
) -> list[MediaFile]:
    """Media files named by ``inputs`` (folders, files, or ``-`` for a list on stdin).

    A folder contributes its media files by extension; a file named explicitly is taken
    whatever its extension (probing will say if it is not media). A named path that does
    not exist is an InputError, except for a dangling symlink, which becomes a failed row.
    """
    found: list[tuple[str, Path, str | None]] = []

    def folder(p: Path) -> None:
        root = os.path.realpath(p)
        for f in _walk(p, recursive):
            # (a dangling link reads nothing: it stays a row that says it is broken)
            out = None if follow_outside or not os.path.exists(f) or inside(os.path.realpath(f), root) else str(p)
            found.append((_id_from(f.relative_to(p)), f, out))

    for arg in inputs:
        if not str(arg).strip():
            raise InputError("an input path is an empty string; pass a media folder, media files, or '-'")
        if str(arg) == "-":
            for line in read_path_list(stdin):
                p = Path(line)
                if p.is_dir():
                    folder(p)
                else:
                    found.append((_explicit_id(p), p, None))  # missing ones become failed rows
            continue
        p = Path(arg)
        if p.is_dir():
            folder(p)
        elif p.exists() or p.is_symlink():
            found.append((_explicit_id(p), p, None))
        else:
            raise InputError(f"input not found: {p} (pass a media folder, media files, or '-' for a list on stdin)")
    # one item per file, whichever way it was reached: by real path
    seen: set[str] = set()
    unique: list[tuple[str, Path, str | None]] = []
    for iid, p, out in found:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append((iid, p, out))
    counts: dict[str, int] = {}
    for iid, _, _ in unique:
        counts[iid] = counts.get(iid, 0) + 1
    files = []
    for iid, p, out in unique:
        if counts[iid] > 1:  # a.mp4 + a.wav: keep both, told apart by extension
            iid = iid + p.suffix.lower()
        files.append(MediaFile(item_id=iid, path=os.path.abspath(p), kind=media_kind(p), outside=out))
    return files
