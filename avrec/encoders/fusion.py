"""From per-modality vectors to the fused item vector: the recipe, fitted once and reused.

A catalogue's recipe is what embed fitted on it: the builtin features' standardisation
statistics (per-column mean and std), each modality's block and weight in the fused
vector, and the optional PCA. New items must go through the same recipe, never one fitted
on their own batch: a batch of 10 uploads has other column means, and its vectors would not
be comparable with the catalogue's (cosine 0.2-0.9 between the two for the same file).
``embed --like`` and ``index --add`` therefore apply a stored recipe.

Each modality is also centred on its catalogue mean before it is fused, indexed or searched:
x -> L2(x - mean). Encoder vectors share a large common direction (a mean pairwise cosine of
0.97 for some audio models, against 0.5 for MiniLM), which would otherwise make every
item look alike in that modality, win every "most alike in" explanation and carry the
fused vector's norm without telling items apart.

Files (in an embeddings artifact, copied into the index): ``fusion.json`` {blocks, stats,
centred, pca}, ``builtin_<modality>_stats.npy`` (2, d) float64 [mean; std],
``centre_<modality>.npy`` (d,) float32, ``pca.npz``. numpy only: the index imports this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, ConfigError


def l2n(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation; zero rows stay zero. (n, d) -> (n, d) float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)


# ---------------------------------------------------------------------------------------
# builtin features: standardisation


def fit_standardiser(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(n, d) raw features with NaN, (n,) rows present -> (2, d) float64 [mean; std] over
    the finite cells of the present rows."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    rows = x[np.asarray(present, dtype=bool)]
    if len(rows) == 0:
        return np.vstack([np.zeros(d), np.zeros(d)])
    finite = np.isfinite(rows)
    cnt = finite.sum(axis=0)
    mean = np.where(finite, rows, 0.0).sum(axis=0) / np.maximum(cnt, 1)
    var = (np.where(finite, rows - mean, 0.0) ** 2).sum(axis=0) / np.maximum(cnt, 1)
    return np.vstack([mean, np.sqrt(var)])


def standardise(x: np.ndarray, present: np.ndarray, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score each column with ``stats`` (2, d), then L2 each row.

    (n, d) raw -> ((n, d) float32 rows, (n,) mask). A NaN cell becomes 0 (the mean);
    constant (or all-NaN) columns carry no information and become 0. Rows that are
    absent, or exactly the mean (nothing to tell them apart), are zero with mask False.
    """
    x = np.asarray(x, dtype=np.float64)
    mask = np.asarray(present, dtype=bool).copy()
    out = np.zeros(x.shape, dtype=np.float32)
    if not mask.any() or x.shape[1] == 0:
        return out, np.zeros(len(x), dtype=bool)
    if stats.shape != (2, x.shape[1]):
        raise ArtifactError(f"builtin statistics are for {stats.shape[1]} features, these items have {x.shape[1]}; "
                            "extract them with the catalogue's settings")
    mean, std = stats
    rows = x[mask]
    finite = np.isfinite(rows)
    ok = std > 1e-12
    z = np.where(finite & ok, (rows - mean) / np.where(ok, std, 1.0), 0.0)
    out[mask] = l2n(z)
    return out, mask & (np.linalg.norm(out, axis=1) > 0)


# ---------------------------------------------------------------------------------------
# fusion and PCA


def fit_pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA on the non-zero rows of (n, D0) -> (mean (D0,), components (k, D0), explained (k,))."""
    rows = x[np.linalg.norm(x, axis=1) > 0].astype(np.float64)
    mean = rows.mean(axis=0)
    centred = rows - mean
    cov = centred.T @ centred / max(len(rows) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:dim]
    explained = vals[order] / max(float(vals.sum()), 1e-12)
    return mean.astype(np.float32), vecs[:, order].T.astype(np.float32), explained.astype(np.float32)


def apply_pca(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(n, D0) -> (n, k) L2-normalised; rows that were zero (no modality at all) stay zero."""
    empty = np.linalg.norm(x, axis=1) == 0
    y = (x - mean) @ components.T
    y[empty] = 0.0
    return l2n(y)


@dataclass
class Recipe:
    """How a catalogue's modality vectors become its fused vectors (see the module docstring)."""

    blocks: list[dict[str, Any]]  # [{modality, start, end, weight}] in fused order
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # builtin modality -> (2, d)
    pca: dict[str, np.ndarray] | None = None  # {mean, components, explained_variance_ratio}
    means: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (d,) catalogue mean
    kinds: dict[str, str] = field(default_factory=dict)  # modality -> video | audio | text | other (default: its name)

    def fit_means(self, vectors: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> None:
        """Each modality's mean over the items that have it (the catalogue's)."""
        self.means = {m: np.asarray(x[masks[m]].mean(axis=0), np.float32) for m, x in vectors.items()
                      if x.shape[1] and masks[m].any()}

    def centre(self, m: str, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(n, d) modality rows -> L2(x - mean) where ``mask``, zero elsewhere (as they are
        without a stored mean)."""
        mu = self.means.get(m)
        if mu is None or x.shape[1] != mu.shape[0]:
            return np.where(np.asarray(mask)[:, None], x, 0.0).astype(np.float32)
        return l2n(np.where(np.asarray(mask)[:, None], x - mu, 0.0))

    @property
    def dims(self) -> dict[str, int]:
        return {b["modality"]: int(b["end"] - b["start"]) for b in self.blocks}

    def fuse(self, vectors: dict[str, np.ndarray], masks: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Concat of sqrt(w_m) * v_m in the recipe's block order (zero blocks for a modality
        these items lack), L2, then the recipe's PCA. -> (n, D) float32."""
        parts = []
        for b in self.blocks:
            m, d = b["modality"], int(b["end"] - b["start"])
            x = vectors.get(m)
            if x is None or x.shape[1] == 0:
                parts.append(np.zeros((n, d), np.float32))
                continue
            if x.shape[1] != d:
                raise ArtifactError(f"modality {m} has {x.shape[1]} dims, the catalogue's has {d}; "
                                    "embed the new items with the catalogue's encoders (avrec embed --like)")
            parts.append(self.centre(m, x, masks[m]) * np.float32(np.sqrt(b["weight"])))
        fused = l2n(np.concatenate(parts, axis=1)) if parts else np.zeros((n, 0), np.float32)
        if self.pca is not None:
            fused = apply_pca(fused, self.pca["mean"], self.pca["components"])
        return fused

    # files ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        from ..artifacts import save_npy, write_json

        write_json(directory / "fusion.json", {"blocks": self.blocks, "stats": sorted(self.stats),
                                               "centred": sorted(self.means), "pca": self.pca is not None,
                                               "kinds": dict(self.kinds)})
        for m, st in self.stats.items():
            save_npy(directory / f"builtin_{m}_stats.npy", np.asarray(st, np.float64))
        for m, mu in self.means.items():
            save_npy(directory / f"centre_{m}.npy", np.asarray(mu, np.float32))
        if self.pca is not None:
            np.savez(directory / "pca.npz", **self.pca)

    @classmethod
    def load(cls, directory: Path) -> "Recipe | None":
        """The recipe stored in ``directory``, or None for an artifact written before recipes."""
        from ..artifacts import load_npy

        p = directory / "fusion.json"
        if not p.exists():
            return None
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ArtifactError(f"{p} is damaged; rebuild it with `avrec embed`") from None
        stats = {m: np.asarray(load_npy(directory / f"builtin_{m}_stats.npy", mmap=False)) for m in meta.get("stats", [])}
        means = {m: np.asarray(load_npy(directory / f"centre_{m}.npy", mmap=False)) for m in meta.get("centred", [])}
        pca = None
        if meta.get("pca"):
            with np.load(directory / "pca.npz", allow_pickle=False) as z:
                pca = {k: z[k] for k in z.files}
        return cls(blocks=list(meta["blocks"]), stats=stats, pca=pca, means=means, kinds=dict(meta.get("kinds") or {}))

    def kind(self, m: str) -> str:
        """What modality ``m`` is made from (an artifact from before named modalities: its name)."""
        return self.kinds.get(m, m)


def blocks_for(dims: dict[str, int], weights: dict[str, float]) -> list[dict[str, Any]]:
    """The fused layout: each modality with a positive weight and dims, in order."""
    blocks, start = [], 0
    for m, d in dims.items():
        w = float(weights.get(m, 1.0))
        if w <= 0 or d == 0:
            continue
        blocks.append({"modality": m, "start": start, "end": start + d, "weight": w})
        start += d
    if not blocks:
        raise ConfigError("no modality has a positive weight in embed.weights; nothing to fuse")
    return blocks
