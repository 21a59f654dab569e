"""Writing evaluation results: JSON summary, Parquet/CSV tables, a histogram PNG, a rich table."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.table import Table

from rvoskit.format.atomic import atomic_dir
from rvoskit.metrics.evaluation import EvalResult
from rvoskit.metrics.protocols import DAVIS_COLUMNS


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_results(result: EvalResult, out: str | Path, *, per_frame: bool = False, overwrite: bool = False) -> dict[str, Path]:
    """Write an evaluation to a new directory, atomically.

    Files: ``summary.json`` (values in [0, 1], ``null`` for undefined), ``per_<item>.parquet`` and
    ``.csv`` (``item`` is ``expression`` or ``object``), ``per_frame.parquet`` / ``.csv`` with
    ``per_frame``, and ``histogram.png`` (per-item J&F).

    Returns:
        ``{name: final path}``.

    Raises:
        RvosError: ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out)
    name = f"per_{result.item_name}"
    written = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "summary.json").write_text(json.dumps(_json_safe(result.summary), indent=2) + "\n", encoding="utf-8")
        written["summary"] = "summary.json"
        result.items.to_parquet(tmp / f"{name}.parquet", index=False)
        result.items.to_csv(tmp / f"{name}.csv", index=False, float_format="%.17g")
        written[name] = f"{name}.parquet"
        if per_frame:
            result.frames.to_parquet(tmp / "per_frame.parquet", index=False)
            result.frames.to_csv(tmp / "per_frame.csv", index=False, float_format="%.17g")
            written["per_frame"] = "per_frame.parquet"
        histogram(result, tmp / "histogram.png")
        written["histogram"] = "histogram.png"
    return {k: out / v for k, v in written.items()}


def histogram(result: EvalResult, path: str | Path) -> Path:
    """PNG histogram of per-item J&F (x 100), with the mean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vals = result.items["J&F"].to_numpy(float) * 100 if len(result.items) else []
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.hist(vals, bins=20, range=(0, 100), color="#4C72B0", edgecolor="white")
    jf = result.summary.get("J&F")
    if jf is not None and math.isfinite(jf):
        ax.axvline(jf * 100, color="#C44E52", linestyle="--", label=f"J&F {jf * 100:.1f}")
        ax.legend(loc="upper left")
    ax.set_xlabel(f"J&F per {result.item_name} (x100)")
    ax.set_ylabel(f"{result.item_name}s")
    ax.set_title(f"rvoskit eval — {result.summary['protocol']} ({len(vals)} {result.item_name}s)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _pct(x) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def moments_table(result: EvalResult) -> Table:
    """J&F, J, F inside the MeViS-M moments, outside them and over all frames (``eval --moments``)."""
    m = result.summary["moments"]
    t = Table(title="MeViS-M moments")
    for c in ("frames", "J&F", "J", "F", "expressions"):
        t.add_column(c, justify="right" if c != "frames" else "left")
    for part in ("inside", "outside", "all"):
        v = m[part]
        t.add_row(part, _pct(v["J&F"]), _pct(v["J"]), _pct(v["F"]), str(v["n_expressions"]))
    return t


def summary_table(result: EvalResult) -> Table:
    """The headline numbers as a rich table (values x 100)."""
    s = result.summary
    if s["protocol"] == "mevis":
        t = Table(title=f"MeViS protocol — {s['n_expressions']} expressions")
        for c in ("J&F", "J", "F", "missing videos"):
            t.add_column(c, justify="right")
        t.add_row(_pct(s["J&F"]), _pct(s["J"]), _pct(s["F"]), str(s["n_missing_videos"]))
        return t
    if s["protocol"] == "ref-davis":  # an item is one expression: one object in one of the sets
        t = Table(title=f"{s['protocol']} ({s['davis_task']}) — {s['n_objects']} expressions in {len(s['sets'])} sets")
        t.add_column("set")
    else:
        t = Table(title=f"{s['protocol']} ({s['davis_task']}) — {s['n_objects']} objects")
    for c in DAVIS_COLUMNS:
        t.add_column(c, justify="right")
    if s["protocol"] == "ref-davis":
        for name, vals in s["sets"].items():
            t.add_row(name, *[_pct(vals[c]) for c in DAVIS_COLUMNS])
        if s.get("aggregate") == "mean" and "J&F-Mean" in s:
            t.add_row("[bold]mean[/]", *[f"[bold]{_pct(s[c])}[/]" for c in DAVIS_COLUMNS])
    else:
        t.add_row(*[_pct(s[c]) for c in DAVIS_COLUMNS])
    return t
