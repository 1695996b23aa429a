"""Shared fixtures: paths to the sample and real data, and a subprocess runner for the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# tests never touch the network: models are tiny local ones or the packaged MiniLM
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def sample_data() -> Path:
    if not (SAMPLE / "interactions.csv").exists():
        pytest.skip("sample_data/ is missing")
    return SAMPLE


@pytest.fixture(scope="session")
def shared_media() -> Path:
    path = SHARED / "media"
    if not path.exists():
        pytest.skip("../shared/data/media is absent")
    return path


@pytest.fixture(scope="session")
def movielens() -> Path:
    path = SHARED / "movielens-latest-small"
    if not (path / "ratings.csv").exists():
        pytest.skip("../shared/data/movielens-latest-small is absent")
    return path


def run_avrec(*args: str, input: str | None = None, cwd: Path | None = None, env: dict | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m avrec ARGS`` in a subprocess; stdin is empty unless ``input`` is given."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "avrec", *args],
        input=input if input is not None else "",
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
    )


@pytest.fixture
def avrec_cli():
    return run_avrec
