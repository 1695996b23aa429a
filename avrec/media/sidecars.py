"""Text beside a media file: ``<stem>.json`` / ``<stem>.txt`` metadata and subtitles.

``clip.mp4`` picks up ``clip.json`` (title, description, tags, text; other keys ignored),
``clip.txt`` (free text), and ``clip.srt`` / ``clip.vtt`` / ``clip.<lang>.vtt`` subtitles
(parsed to plain text). Sidecars are read at merge time, so editing one updates the
artifact without decoding the media again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .subtitles import read_subtitles


def normalise_tags(value: Any) -> list[str]:
    """Tags from a list, or a string separated by ``|``, ``;`` or ``,``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(t).strip() for t in value if str(t).strip()]
    s = str(value).strip()
    if not s or s.lower() == "nan":
        return []
    for sep in ("|", ";", ","):
        if sep in s:
            return [t.strip() for t in s.split(sep) if t.strip()]
    return [s]


def _read_text(p: Path) -> str:
    raw = p.read_bytes()
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc).strip()
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1").strip()


def read_sidecars(media_path: str | Path, listing: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(fields, problems): fields among title, description, tags, text; problems are one-line
    warnings about unreadable sidecars (a bad sidecar never fails the media item).

    listing: a cache of folder -> file names shared across calls, so a folder of n files
    is listed once, not once per item.
    """
    p = Path(media_path)
    stem, parent = p.stem, p.parent
    names, by_prefix = _folder(parent, listing)
    fields: dict[str, Any] = {}
    texts: list[str] = []
    problems: list[str] = []
    if f"{stem}.json" in names:
        js = parent / f"{stem}.json"
        try:
            data = json.loads(_read_text(js) or "{}")
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
            for key in ("title", "description"):
                if data.get(key):
                    fields[key] = str(data[key]).strip()
            if "tags" in data:
                fields["tags"] = normalise_tags(data["tags"])
            if data.get("text"):
                texts.append(str(data["text"]).strip())
        except (OSError, ValueError) as e:
            problems.append(f"{js.name}: {e}")
    if f"{stem}.txt" in names:
        txt = parent / f"{stem}.txt"
        try:
            texts.append(_read_text(txt))
        except OSError as e:
            problems.append(f"{txt.name}: {e}")
    # clip.srt, clip.vtt, and per-language clip.en.vtt
    subs = sorted(n for n in by_prefix.get(stem, ()) if n.lower().endswith((".srt", ".vtt"))
                  and "." not in n[len(stem) + 1 : -4])
    for name in subs:
        try:
            t = read_subtitles(parent / name)
            if t:
                texts.append(t)
        except OSError as e:
            problems.append(f"{name}: {e}")
    if texts:
        fields["text"] = "\n".join(t for t in texts if t)
    return fields, problems


def _folder(folder: Path, listing: dict[str, Any] | None) -> tuple[set[str], dict[str, list[str]]]:
    """File names of a folder, and names grouped by every prefix that ends before a dot
    ("a.b.en.vtt" under "a", "a.b", "a.b.en"), listed once per folder with a cache."""
    key = str(folder)
    if listing is not None and key in listing:
        return listing[key]
    try:
        names = {e.name for e in os.scandir(folder) if not e.is_dir()}
    except OSError:
        names = set()
    by_prefix: dict[str, list[str]] = {}
    for n in names:
        for i, ch in enumerate(n):
            if ch == ".":
                by_prefix.setdefault(n[:i], []).append(n)
    if listing is not None:
        listing[key] = (names, by_prefix)
    return names, by_prefix
