"""The ``rvoskit`` command line: one Typer command (or sub-app) per verb, registered from
:mod:`rvoskit.commands`. Commands parse options, show progress and call stage functions."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from typer.core import TyperGroup

from rvoskit import __version__
from rvoskit.errors import RvosError

err_console = Console(stderr=True)


class _Group(TyperGroup):
    """Reports :class:`RvosError` as one red line and exit status 2 (no traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RvosError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="rvoskit",
    cls=_Group,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    help="Referring video object segmentation toolkit: convert datasets, generate SAM2 tracks, "
    "pseudo-label, corrupt, train and score track selection, evaluate J&F.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rvoskit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """rvoskit: RVOS research toolkit."""


def _register() -> None:
    from rvoskit.commands import convert, corrupt, dataset_tools, demo, pseudolabel, score, tracks, train, viz

    for module in (demo, convert, dataset_tools, tracks, pseudolabel, corrupt, train, score, viz):
        module.register(app)
    from rvoskit.commands import eval as eval_cmd

    eval_cmd.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except RvosError as exc:  # raised outside a command (e.g. while parsing)
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
