"""Writing evaluation results: JSON summary, Parquet/CSV tables, a histogram PNG, a rich table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
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
    """PNG (768 x 432) histogram of per-item J&F (x 100, 20 bins), with the mean marked.

    Drawn with numpy and OpenCV (a few ms): matplotlib's import and layout took about a second,
    as long as scoring a small split (issue 13).
    """
    import cv2

    vals = result.items["J&F"].to_numpy(float) * 100 if len(result.items) else np.zeros(0)
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
