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


HEAVY = ("torch", "transformers", "librosa", "cv2", "scipy", "rich", "sklearn", "av")


def run_light(*args: str, timeout: float = 120) -> tuple[str, list[str]]:
    """Run ``avrec ARGS`` in a fresh interpreter, asserting exit 0; returns (its stdout, the
    heavy top-level modules (HEAVY) it imported): the light paths must import none."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['avrec', *{list(args)!r}]\n"
        "try:\n    runpy.run_module('avrec', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})), file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, input="", timeout=timeout)
    assert r.returncode == 0, r.stderr
    import ast

    return r.stdout, ast.literal_eval(r.stderr.strip().splitlines()[-1])
