"""Shared fixtures: paths to the sample and real data, and a subprocess runner for the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from avrec_runner import run_avrec

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


@pytest.fixture
def avrec_cli():
    return run_avrec
