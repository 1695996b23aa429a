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
