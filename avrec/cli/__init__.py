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
    from . import demo, embed, evaluate, extract, index, models, recommend, train  # noqa: F401


def main() -> None:
    app()


_register()
