"""``npy:<file>``: bring your own vectors.

``<file>`` is a (n, d) float .npy matrix; its row ids are in a text file beside it, one
item_id per line, row i = line i, named ``<file>.ids.txt`` (e.g. ``vectors.npy.ids.txt``)
or, failing that, ``<stem>.ids.txt`` (``vectors.ids.txt``). Items whose id is not listed
are simply missing that modality. Rows are L2-normalised on use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import Encoder, l2n


def ids_file(path: Path) -> Path | None:
    for cand in (path.with_name(path.name + ".ids.txt"), path.with_name(path.stem + ".ids.txt")):
        if cand.exists():
            return cand
    return None


class NpyVectors(Encoder):
    def __init__(self, ref: str) -> None:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise InputError(f"npy:{ref}: file not found (give a .npy matrix with an ids file beside it)")
        ids_path = ids_file(path)
        if ids_path is None:
            raise InputError(
                f"npy:{ref}: no id list found; write one item_id per line to {path.name}.ids.txt "
                f"(or {path.stem}.ids.txt) next to it"
            )
        try:
            mat = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"npy:{ref}: cannot read it as a .npy matrix ({e})") from None
        if mat.ndim != 2 or not np.issubdtype(mat.dtype, np.number):
            raise InputError(f"npy:{ref}: expected a 2-D numeric matrix (n, d), got shape {mat.shape} {mat.dtype}")
        ids = [ln.strip() for ln in ids_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(ids) != mat.shape[0]:
            raise InputError(f"npy:{ref}: {mat.shape[0]} rows but {len(ids)} ids in {ids_path.name}; they must match")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise InputError(f"npy:{ref}: item id {dup!r} appears more than once in {ids_path.name}")
        self.matrix = mat
        self.row = {item_id: r for r, item_id in enumerate(ids)}
        st = path.stat()
        super().__init__(name=f"npy:{ref}", kind="npy", dim=int(mat.shape[1]),
                         revision=f"npy-{st.st_size}-{int(st.st_mtime)}",
                         modalities=("video", "audio", "text"), meta={"path": str(path.resolve())})

    def lookup(self, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """n item ids -> ((n, d) float32 L2 rows, (n,) bool found); missing/NaN rows are zeros.

        InputError when no item gets a vector: the ids file names other ids than the
        catalogue's (a wrong file, or ids spelt otherwise), which would leave the modality empty.
        """
        out = np.zeros((len(item_ids), self.dim), dtype=np.float32)
        found = np.zeros(len(item_ids), dtype=bool)
        matched = 0
        for i, item_id in enumerate(item_ids):
            r = self.row.get(str(item_id))
            if r is None:
                continue
            matched += 1
            v = np.asarray(self.matrix[r], dtype=np.float32)
            if np.isfinite(v).all() and np.any(v):
                out[i] = v
                found[i] = True
        if item_ids and not found.any():
            have = next(iter(self.row), None)
            why = (f"none of its {len(self.row)} ids is a catalogue item id (it has {have!r}, the catalogue "
                   f"{str(item_ids[0])!r})" if not matched else f"all {matched} matching rows are zero or not finite")
            raise InputError(f"{self.name}: no item gets a vector: {why}; the ids file must list the item ids "
                             "extract gave (see the features' items.jsonl)")
        self.unused = len(self.row) - matched  # ids of items not in this catalogue (a superset is fine)
        return l2n(out), found
