"""The ``rvoskit`` command line: one Typer command (or sub-app) per verb, registered from
:mod:`rvoskit.commands`. Commands parse options, show progress and call stage functions."""

from __future__ import annotations

import re
import sys

import typer
from rich.console import Console
from typer._click.exceptions import UsageError
from typer.core import TyperGroup, TyperOption

from rvoskit import __version__
from rvoskit.errors import RvosError

err_console = Console(stderr=True)
_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


def _flag_type(self, ctx):
    """A plain flag shows no value type in the help (typer would print ``<bool>``)."""
    if getattr(self, "is_flag", False) and not getattr(self, "metavar", None):
        return None
    return _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type


class _Group(TyperGroup):
    """Reports :class:`RvosError` as one red line and exit status 2 (no traceback); lists the
    commands in pipeline order (:data:`rvoskit.commands._options.COMMAND_ORDER`)."""

    def list_commands(self, ctx):
        from rvoskit.commands._options import COMMAND_ORDER

        names = list(super().list_commands(ctx))
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            # `--overwrite true`: flags take no value; say so instead of "unexpected extra argument"
            words = set(re.findall(r"\w+", exc.message.lower())) if "extra argument" in exc.message else set()
            if words & _BOOL_WORDS:
                exc.message += " (flags such as --overwrite and --quiet take no value: write --overwrite, not --overwrite true)"
            raise
        except RvosError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="rvoskit",
    cls=_Group,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
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
