"""Text beside a media file: ``<stem>.json`` / ``<stem>.txt`` metadata and subtitles.

``clip.mp4`` picks up ``clip.json`` (title, description, tags, text; other keys ignored),
``clip.txt`` (free text), and ``clip.srt`` / ``clip.vtt`` / ``clip.<lang>.vtt`` subtitles
(parsed to plain text). Sidecars are read at merge time, so editing one updates the
artifact without decoding the media again.
"""

from __future__ import annotations

import json
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


def read_sidecars(media_path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """(fields, problems): fields among title, description, tags, text; problems are one-line
    warnings about unreadable sidecars (a bad sidecar never fails the media item)."""
    p = Path(media_path)
    stem, parent = p.stem, p.parent
    fields: dict[str, Any] = {}
    texts: list[str] = []
    problems: list[str] = []
    js = parent / f"{stem}.json"
    if js.is_file():
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
    txt = parent / f"{stem}.txt"
    if txt.is_file():
        try:
            texts.append(_read_text(txt))
        except OSError as e:
            problems.append(f"{txt.name}: {e}")
    if parent.is_dir():
        subs = sorted({*parent.glob(f"{_glob_escape(stem)}.srt"), *parent.glob(f"{_glob_escape(stem)}.vtt"),
                       *parent.glob(f"{_glob_escape(stem)}.*.srt"), *parent.glob(f"{_glob_escape(stem)}.*.vtt")})
        for s in subs:
            try:
                t = read_subtitles(s)
                if t:
                    texts.append(t)
            except OSError as e:
                problems.append(f"{s.name}: {e}")
    if texts:
        fields["text"] = "\n".join(t for t in texts if t)
    return fields, problems


def _glob_escape(s: str) -> str:
    import glob

    return glob.escape(s)
