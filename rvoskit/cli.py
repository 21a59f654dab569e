"""The ``rvoskit`` command line: one Typer command (or sub-app) per verb, registered from
:mod:`rvoskit.commands`. Commands parse options, show progress and call stage functions."""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

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


def print_error(text: str, prefix: str = "error: ") -> None:
    """Print one error line on stderr: a red prefix, then ``text`` literally (no Rich markup, so
    ``[a, b]`` stays; whitespace runs folded so it stays one line)."""
    from rich.text import Text

    line = " ".join(str(text).split())
    err_console.print(Text.assemble((prefix, "bold red"), line), highlight=False, soft_wrap=True)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def _oserror_line(exc: OSError) -> str:
    """One line for a file-system error: ``cannot write OUT: <strerror>`` when it concerns the
    command's output (its folder, its temporaries, or a full / read-only disk with no file named),
    ``cannot write FILE: <strerror>`` for another file that could not be written (a cache),
    else ``FILE: <strerror>``."""
    from rvoskit.format.outputs import last_output

    reason = exc.strerror or str(exc) or type(exc).__name__
    out = last_output()
    name = exc.filename
    if name is None:
        if out is not None and (exc.errno in _WRITE_ERRNOS or exc.errno is None):
            return f"cannot write {out}: {reason}"
        return reason
    n = Path(os.path.abspath(os.fsdecode(name)))
    if out is not None:
        o = Path(os.path.abspath(out))
        if n == o or n.is_relative_to(o) or o.is_relative_to(n) or (n.parent == o.parent and n.name.startswith(f".{o.name}.")):
            return f"cannot write {out}: {reason}"
    if exc.errno in _WRITE_ERRNOS:
        return f"cannot write {os.fsdecode(name)}: {reason}"
    return f"{os.fsdecode(name)}: {reason}"


class _Group(TyperGroup):
    """Reports errors as one red line without a traceback: :class:`RvosError` and file-system
    errors (``cannot write OUT: No space left on device``) exit 2, Ctrl-C prints ``interrupted:
    rerun the same command to resume`` and exits 130; lists the
    commands in pipeline order (:data:`rvoskit.commands._options.COMMAND_ORDER`)."""

    def list_commands(self, ctx):
        from rvoskit.commands._options import COMMAND_ORDER

        names = list(super().list_commands(ctx))
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def invoke(self, ctx):
        from rvoskit.format.outputs import forget_last_output

        forget_last_output()
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            # `--overwrite true`: flags take no value; say so instead of "unexpected extra argument"
            words = set(re.findall(r"\w+", exc.message.lower())) if "extra argument" in exc.message else set()
            if words & _BOOL_WORDS:
                exc.message += " (flags such as --overwrite and --quiet take no value: write --overwrite, not --overwrite true)"
            raise
        except RvosError as exc:
            print_error(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            print_error(_oserror_line(exc))
            raise typer.Exit(2) from None
        except MemoryError as exc:
            print_error(f"out of memory: {exc}" if str(exc) else "out of memory")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print()
            print_error("rerun the same command to resume", prefix="interrupted: ")
            raise typer.Exit(130) from None


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
    from rvoskit.commands import moments

    moments.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    from rvoskit import _jit

    _jit.command_process()  # numba without its BLAS probe in this process (rvoskit._jit.prepare_numba)
    try:
        app()
    except RvosError as exc:  # raised outside a command (e.g. while parsing)
        print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:  # outside a command (while starting up)
        print_error("rerun the same command to resume", prefix="interrupted: ")
        sys.exit(130)


if __name__ == "__main__":
    main()
