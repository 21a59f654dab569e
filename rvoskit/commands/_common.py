"""Shared bits of the CLI layer: consoles and the conversion summary table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()


def summary_table(title: str, rows: list[tuple[str, object]]) -> Table:
    """A two-column rich table (``what``, ``value``)."""
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("what")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    return t


def print_dataset_summary(path, seconds: float) -> None:
    """Print the counts of a freshly written dataset and the time it took."""
    from rvoskit.format import open_dataset

    ds = open_dataset(path)
    c = ds.manifest["counts"]
    src = ds.manifest["source"]
    counts = ds.manifest.get("warning_counts") or {}
    rows = ([(k, v) for k, v in c.items()] + [(f"warnings: {k}", v) for k, v in counts.items()]
            + [("time", f"{seconds:.1f} s"), ("output", str(path))])
    console.print(summary_table(f"{src['dataset']} / {src['split']}", rows))
    for w in ds.manifest.get("warnings", []) or []:
        console.print(Text.assemble(("warning: ", "yellow"), str(w)))  # literal: ids like [3] must not be read as markup
