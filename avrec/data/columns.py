"""Matching a table's columns to the fields avrec reads, the same way for every table.

Names match case-insensitively through a table of accepted spellings (first match wins).
A column that matches nothing is a warning naming the closest known spelling, or an error
with ``strict`` (``--strict``): a misspelt ``titel`` or ``user`` for ``userid`` must not
silently leave a field empty.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, Iterable

from ..errors import InputError


def match_columns(names: Iterable[str], aliases: dict[str, tuple[str, ...]], source: str | Path, *,
                  strict: bool = False, warn: Callable[[str], None] = lambda _m: None,
                  required: Iterable[str] = (), what: str = "a table") -> dict[str, str]:
    """{field: column name as in the file} for the fields found among ``names``.

    A missing ``required`` field is an InputError (before any warning about the others).
    """
    lower: dict[str, str] = {}
    for n in names:
        if n is not None and str(n).strip():
            lower.setdefault(str(n).strip().lower(), str(n).strip())
    cols: dict[str, str] = {}
    for key, spellings in aliases.items():
        for a in spellings:
            if a.lower() in lower:
                cols[key] = lower[a.lower()]
                break
    for key in required:
        if key not in cols:
            found = ", ".join(lower.values()) or "none"
            raise InputError(f"{source}: no '{key}' column (found: {found}); {what} needs "
                             f"{' and '.join(required)} columns (also accepted for {key}: "
                             f"{', '.join(a for a in aliases[key] if a != key)})")
    used = {c.lower() for c in cols.values()}
    known = {a.lower(): key for key, spellings in aliases.items() for a in spellings}
    unused, unknown = [], []
    for low, name in lower.items():
        if low in used:
            continue
        if low in known:  # a second spelling of a field already matched
            unused.append(f"column {name!r} is not used ({cols[known[low]]!r} already gives {known[low]})")
            continue
        close = difflib.get_close_matches(low, list(known), n=1, cutoff=0.7)
        unknown.append(f"{name!r}" + (f" (did you mean {close[0]!r} for {known[close[0]]}?)" if close else ""))
    if unused or unknown:
        parts = list(unused)
        if unknown:  # JSON lines may each carry other fields: name a few, count the rest
            more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
            one = len(unknown) == 1
            verdict = ("is an error" if one else "are errors") if strict else ("is ignored" if one else "are ignored")
            parts.append(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown[:8])}{more} {verdict} "
                         f"(known: {', '.join(aliases)})")
        msg = f"{source}: " + "; ".join(parts)
        if strict:
            raise InputError(msg + " [--strict]")
        warn("warning: " + msg + " (--strict makes this an error)")
    return cols
