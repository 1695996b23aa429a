"""The ``avrec`` command: thin typer wrappers, one module per stage."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="avrec",
    help=(
        "Audio/video content recommendation from the shell.\n\n"
        "avrec extract media/ | avrec embed | avrec train --interactions ev.csv | avrec index\n\n"
        "avrec recommend --user 42"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"avrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print avrec's version and exit.")] = False,
) -> None:
    """Audio/video content recommendation from the shell."""


def _register() -> None:
    from . import demo, embed, evaluate, events, extract, index, models, profile, recommend, serve, train  # noqa: F401


def main() -> None:
    """The console script. An interrupt exits 130 for certain: CPython may otherwise die by
    the signal itself (-2 to a parent process) when the interrupt landed inside an import,
    and one before avrec's own handler is in place would print a traceback."""
    import os
    import sys

    from .common import install_interrupt_flag

    install_interrupt_flag()
    try:
        app()
    except SystemExit as e:
        if e.code == 130:
            sys.stderr.flush()
            os._exit(130)
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)


_register()
