"""avrec/cli/common.py's handle_errors: one line and an exit code that means one thing."""

from __future__ import annotations

import pytest
import typer

from avrec.cli import common
from avrec.errors import InputError


def _exit(fn) -> int:
    with pytest.raises(typer.Exit) as e:
        with common.handle_errors():
            fn()
    return e.value.exit_code


def _made_while_interrupted():
    # what CPython 3.11 raises when Ctrl-C lands in a class's __set_name__ during an import
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as ki:
        raise RuntimeError("Error calling __set_name__ on 'cached_property' instance 'epsneg' in 'finfo'") from ki


def test_an_interrupt_that_python_turned_into_another_error_is_still_an_interrupt(capsys, monkeypatch):
    monkeypatch.setattr(common, "_interrupted", False)
    assert _exit(_made_while_interrupted) == 130
    assert capsys.readouterr().err.splitlines() == ["interrupted"]

    def plain():
        raise KeyboardInterrupt

    assert _exit(plain) == 130


def test_after_a_sigint_any_error_ends_as_interrupted(capsys, monkeypatch):
    monkeypatch.setattr(common, "_interrupted", True)  # the handler saw the signal; the chain lost it

    def odd():
        raise TypeError("expected str, bytes or os.PathLike object, not BufferedWriter")

    assert _exit(odd) == 130
    assert capsys.readouterr().err.splitlines() == ["interrupted"]


def test_without_an_interrupt_errors_keep_their_codes(capsys, monkeypatch):
    monkeypatch.setattr(common, "_interrupted", False)

    def bug():
        raise RuntimeError("boom")

    def bad_input():
        raise InputError("--k must be positive; pass --k 10")

    assert _exit(bug) == 1
    assert "a bug in avrec" in capsys.readouterr().err
    assert _exit(bad_input) == 2
    assert capsys.readouterr().err.strip() == "error: --k must be positive; pass --k 10"


SIGINT_IN_IMPORTLIB = r"""
import signal, sys, time, types
from avrec.cli import common

common.install_interrupt_flag()
# the frame importlib's module-lock weakref callback runs in (a KeyboardInterrupt raised there
# is lost, and can leave the global import lock held)
code = compile("pass", "<frozen importlib._bootstrap>", "exec")
frame = types.SimpleNamespace(f_code=code)
t0 = time.monotonic()
common._on_sigint(signal.SIGINT, frame)  # must not raise here
print("returned", flush=True)
try:
    while time.monotonic() - t0 < 5:
        time.sleep(0.001)
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - t0:.3f}s", flush=True)
    sys.exit(130)
print("lost", flush=True)
"""


def test_a_sigint_inside_importlib_is_sent_again_not_lost():
    """Ctrl-C that lands in importlib's bookkeeping is deferred to ordinary code, where it ends the
    run; before, it was lost there and an extract run could hang on the import lock."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", SIGINT_IN_IMPORTLIB], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 130 and lines[0] == "returned" and lines[1].startswith("interrupted after"), (r.stdout, r.stderr)
    assert "Exception ignored" not in r.stderr


def test_a_sigint_in_ordinary_code_raises_at_once(monkeypatch):
    import signal
    import types

    monkeypatch.setattr(common, "_interrupted", False)
    frame = types.SimpleNamespace(f_code=compile("pass", "/work/some_module.py", "exec"))
    with pytest.raises(KeyboardInterrupt):
        common._on_sigint(signal.SIGINT, frame)
    assert common._interrupted
    # an importlib frame that keeps receiving it (a wait on another thread's module lock) gets
    # it raised in the end, not deferred for ever
    monkeypatch.setattr(common, "_resends", common.MAX_RESENDS)
    importlib_frame = types.SimpleNamespace(f_code=compile("pass", "<frozen importlib._bootstrap>", "exec"))
    with pytest.raises(KeyboardInterrupt):
        common._on_sigint(signal.SIGINT, importlib_frame)
    assert common._resends == 0
