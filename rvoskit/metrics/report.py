"""Writing evaluation results: JSON summary, Parquet/CSV tables, a histogram PNG, a rich table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
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
        _write_table(result._items, tmp / f"{name}.parquet", tmp / f"{name}.csv")
        written[name] = f"{name}.parquet"
        if per_frame:
            _write_table(result._frames, tmp / "per_frame.parquet", tmp / "per_frame.csv")
            written["per_frame"] = "per_frame.parquet"
        histogram(result, tmp / "histogram.png")
        written["histogram"] = "histogram.png"
    return {k: out / v for k, v in written.items()}


def _write_table(t, parquet: Path, csv_path: Path) -> None:
    """One table as Parquet and CSV: a DataFrame with pandas (``to_parquet``, ``to_csv`` with
    ``float_format="%.17g"``), an Arrow table without pandas, same content: the same Parquet
    values and types (no pandas metadata) and the same CSV bytes (:func:`write_csv`)."""
    if isinstance(t, pa.Table):
        pq.write_table(t, parquet)
        write_csv(t, csv_path)
    else:
        t.to_parquet(parquet, index=False)
        t.to_csv(csv_path, index=False, float_format="%.17g")


def write_csv(t: pa.Table, path: str | Path) -> None:
    """Write an Arrow table as ``DataFrame.to_csv(index=False, float_format="%.17g")`` writes it
    (Python's csv writer, minimal quoting, ``\\n`` line ends; nulls and NaN empty, floats ``%.17g``),
    without pandas (~0.3 s of start-up). Column types: null, strings, integers, floats."""
    cols = []
    for name in t.column_names:
        c, typ = t.column(name), t.schema.field(name).type
        vals = c.to_pylist()
        if pa.types.is_floating(typ):
            vals = ["" if v is None or v != v else "%.17g" % v for v in vals]
        elif pa.types.is_integer(typ) or pa.types.is_null(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ):
            vals = ["" if v is None else str(v) for v in vals]
        else:
            raise TypeError(f"write_csv: column {name!r} of type {typ} is not supported")
        cols.append(vals)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(t.column_names)
        w.writerows(zip(*cols))


def histogram(result: EvalResult, path: str | Path) -> Path:
    """PNG (768 x 432) histogram of per-item J&F (x 100, 20 bins), with the mean marked.

    Drawn with numpy and OpenCV (a few ms): matplotlib's import and layout took about a second,
    as long as scoring a small split (issue 13).
    """
    import cv2

    jf = result.items_table.column("J&F").to_pylist() if result.n_items else []
    vals = np.array([np.nan if v is None else v for v in jf], float) * 100
    counts, edges = np.histogram(vals[np.isfinite(vals)], bins=20, range=(0, 100))
    H, W = 432, 768
    x0, x1, y0, y1 = 70, W - 20, 40, H - 60
    img = np.full((H, W, 3), 255, np.uint8)
    ink, blue, red, grey = (40, 40, 40), (176, 114, 76), (82, 78, 196), (210, 210, 210)  # BGR of #4C72B0, #C44E52
    font = cv2.FONT_HERSHEY_SIMPLEX

    def text(s: str, x: int, y: int, scale: float = 0.45, align: str = "left", color=ink) -> None:
        (tw, _), _ = cv2.getTextSize(s, font, scale, 1)
        x = x - tw // 2 if align == "center" else x - tw if align == "right" else x
        cv2.putText(img, s, (int(x), int(y)), font, scale, color, 1, cv2.LINE_AA)

    top = max(1, int(counts.max(initial=0)))
    step = max(1, int(np.ceil(top / 5)))
    for v in range(0, top + step, step):
        y = int(round(y1 - v / (top + step * 0.2) * (y1 - y0)))
        cv2.line(img, (x0, y), (x1, y), grey, 1)
        text(str(v), x0 - 6, y + 4, align="right")
    xs = (x0 + edges / 100 * (x1 - x0)).round().astype(int)
    for k in np.flatnonzero(counts):
        y = int(round(y1 - counts[k] / (top + step * 0.2) * (y1 - y0)))
        cv2.rectangle(img, (xs[k] + 1, y), (xs[k + 1] - 1, y1), blue, -1)
    for v in range(0, 101, 20):
        x = int(round(x0 + v / 100 * (x1 - x0)))
        cv2.line(img, (x, y1), (x, y1 + 4), ink, 1)
        text(str(v), x, y1 + 18, align="center")
    jf = result.summary.get("J&F")
    if jf is not None and math.isfinite(jf):
        x = int(round(x0 + min(max(jf, 0.0), 1.0) * (x1 - x0)))
        for y in range(y0, y1, 10):
            cv2.line(img, (x, y), (x, min(y + 5, y1)), red, 2)
        text(f"J&F {jf * 100:.1f}", x0 + 10, y0 + 18, color=red)
    cv2.rectangle(img, (x0, y0), (x1, y1), ink, 1)
    text(f"J&F per {result.item_name} (x100)", (x0 + x1) // 2, H - 22, 0.5, "center")
    text(f"{result.item_name}s", 8, y0 - 12)
    text(f"rvoskit eval - {result.summary['protocol']} ({len(vals)} {result.item_name}s)", (x0 + x1) // 2, 22, 0.55, "center")
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover
        raise OSError(f"could not encode {path}")
    Path(path).write_bytes(buf.tobytes())
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
