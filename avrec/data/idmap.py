"""Bidirectional map between string ids and contiguous integer indices."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator


class IdMap:
    """String id <-> index, in insertion order. Ids are compared as strings."""

    def __init__(self, ids: Iterable[str] = ()):
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        for i in ids:
            self.add(i)

    def add(self, key: str) -> int:
        key = str(key)
        at = self._index.get(key)
        if at is None:
            at = self._index[key] = len(self._ids)
            self._ids.append(key)
        return at

    def get(self, key: str, default: int | None = None) -> int | None:
        return self._index.get(str(key), default)

    def index(self, key: str) -> int:
        return self._index[str(key)]

    def __getitem__(self, i: int) -> str:
        return self._ids[i]

    def __contains__(self, key: object) -> bool:
        return str(key) in self._index

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def save(self, path: str | Path) -> None:
        """One id per line (ids containing newlines are not supported)."""
        Path(path).write_text("".join(f"{i}\n" for i in self._ids), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "IdMap":
        text = Path(path).read_text(encoding="utf-8")
        return cls(line for line in text.split("\n")[:-1]) if text else cls()
