"""SubRip (.srt) and WebVTT (.vtt) subtitles to plain text."""

from __future__ import annotations

import html
import re
from pathlib import Path

_TIMING = re.compile(r"^\s*(\d{1,2}:)?\d{1,2}:\d{2}[.,]\d{1,3}\s*-->\s*(\d{1,2}:)?\d{1,2}:\d{2}[.,]\d{1,3}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <c.colour>, <00:01.000>, {\an8}
_DECIMAL_REF = re.compile(r"&#0*([0-9]+)(;?)")


def _unescape(s: str) -> str:
    """html.unescape, but a decimal reference of over 7 digits (past U+10FFFF, so U+FFFD as
    html gives it) does not reach int(): past 4300 digits that raises ValueError."""
    return html.unescape(_DECIMAL_REF.sub(lambda m: "\ufffd" if len(m[1]) > 7 else f"&#{m[1]}{m[2]}", s))


def subtitle_text(text: str) -> str:
    """Plain spoken text of an SRT or VTT document: cues joined by spaces, in order.

    Drops the WEBVTT header, NOTE/STYLE/REGION blocks, cue numbers and identifiers,
    timings and cue settings, markup tags; collapses a line repeated by consecutive cues
    (as rolling auto-captions do).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        head = lines[0]
        if head.startswith("WEBVTT") or head.split(" ")[0] in ("NOTE", "STYLE", "REGION"):
            # the header block may carry the first cue only if there is no blank line: rare
            continue
        idx = next((i for i, ln in enumerate(lines) if _TIMING.match(ln)), None)
        if idx is None:
            continue  # not a cue
        for ln in lines[idx + 1 :]:
            clean = _unescape(_TAG.sub("", ln)).strip()
            if clean and (not out or out[-1] != clean):
                out.append(clean)
    return " ".join(out)


def read_subtitles(path: str | Path) -> str:
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return subtitle_text(raw.decode(enc))
        except UnicodeDecodeError:
            continue
    return ""
