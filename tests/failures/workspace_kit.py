"""One real workspace on the sample catalogue (extract, embed, train, index), built once per
test process and copied into each test that damages it (imported by tests/failures/*)."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
FAST = ["--set", "train.hybrid.epochs=40"]


def fast_config():
    from avrec.config import Config

    cfg = Config()
    cfg.train.hybrid.epochs = 40
    cfg.index.n_trees = 10
    return cfg


@functools.lru_cache(maxsize=None)
def _built() -> Path:
    from avrec.embed import embed
    from avrec.extract import extract
    from avrec.index import build_index
    from avrec.train import train

    work = Path(tempfile.mkdtemp(prefix="avrec-failures-")) / "work"
    cfg = fast_config()
    extract([SAMPLE / "media"], work / "features", cfg, metadata=SAMPLE / "metadata.csv")
    embed(work / "features", work / "embeddings", cfg)
    train(work / "embeddings", SAMPLE / "interactions.csv", work / "model", cfg)
    build_index(work / "model", work / "index", cfg.index, seed=0)
    return work


def workspace(dest: Path) -> Path:
    """A private copy of the built workspace at ``dest`` (its artifacts' paths inside it
    still point at the shared original for their inputs, which tests must not change)."""
    shutil.copytree(_built(), dest, symlinks=True)
    return dest


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes): to show nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
