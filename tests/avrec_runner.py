"""Run the ``avrec`` command in a subprocess (imported by tests as ``avrec_runner``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_avrec(*args: str, input: str | None = None, cwd: Path | None = None, env: dict | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m avrec ARGS`` in a subprocess; stdin is /dev/null (as in a CI step)
    unless ``input`` is given, which is piped in (an empty string is an empty pipe)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "avrec", *args],
        input=input, stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
    )
