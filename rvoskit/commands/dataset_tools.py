"""(being written)"""

import typer


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
