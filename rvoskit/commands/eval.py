"""``rvoskit eval``: score predictions with the MeViS, DAVIS or Ref-DAVIS protocol."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer
from rich.markup import escape

from rvoskit.commands._options import executor_option, ray_address_option


def eval_command(
    dataset: Path = typer.Argument(..., help="Common-format dataset directory with ground truth (rvoskit convert ...)."),
    predictions: Path = typer.Argument(
        ...,
        help="A predictions directory / predictions.parquet, or a PNG folder: <video>/<exp_id>/<frame>.png "
        "(MeViS, Ref-YouTube-VOS; an Annotations/ root is entered), <seq>/<frame>.png (DAVIS palette) or "
        "anno_<k>/<seq>/<frame>.png (ReferFormer Ref-DAVIS).",
    ),
    protocol: str = typer.Option("mevis", "--protocol", "-p", help="mevis, davis-semi, davis-unsup, ref-davis, a2d, jhmdb or refer."),
    out: Path = typer.Option(None, "--out", "-o", help="Write summary.json, per-item Parquet/CSV and histogram.png here."),
    per_frame: bool = typer.Option(False, "--per-frame", help="Also write per_frame.parquet/.csv (needs --out)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes (one video per work unit)."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    missing_frame_empty: bool = typer.Option(
        False, "--missing-frame-empty", help="Score missing prediction frames as empty masks instead of failing."
    ),
    ignore_unknown: bool = typer.Option(
        False, "--ignore-unknown", help="Skip (and list) prediction videos/expressions the dataset does not have, "
        "e.g. DAVIS Annotations/480p (train+val) scored against val, instead of failing."
    ),
    davis_task: str = typer.Option("unsupervised", "--davis-task", help="ref-davis: DAVIS task per set (unsupervised or semi-supervised)."),
    anno_set: int = typer.Option(None, "--anno-set", min=0, max=3, help="davis-semi/-unsup on per-expression predictions: Ref-DAVIS set 0..3."),
    aggregate: str = typer.Option("mean", "--aggregate", help="ref-davis: mean (of the four sets) or each."),
    moments: bool = typer.Option(False, "--moments", help="mevis on a MeViS-M dataset: also J, F, J&F over the frames inside "
                                 "each expression's moment, outside it, and all frames."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print the summary JSON only."),
) -> None:
    """Score predictions: J (region IoU), F (boundary) and J&F, identical to the official code per frame.

    [bold]Protocols[/]
      mevis        union of the expression's objects, every frame, mean per expression then over
                   expressions; a video without predictions scores 0 and is reported
      davis-semi   per object, first and last frames dropped (davis2017 semi-supervised)
      davis-unsup  up to 20 proposals matched to objects (Hungarian), void pixels ignored
      ref-davis    the four Ref-DAVIS17 expression sets scored separately, then averaged
      a2d, jhmdb   MTTR's A2D/JHMDB-Sentences metrics: P@0.5..0.9, overall and mean IoU (best-scored
                   candidate per sample) and COCO mask mAP (every candidate); PREDICTIONS may also
                   be an MTTR/ReferFormer/SOC results JSON
      refer        RefCOCO/+/g: P@0.5..0.9, cIoU and gIoU as the RIS papers (LAVT) compute them

    [bold]Examples[/]
      rvoskit eval data/mevis-valid_u runs/pred --out runs/eval --workers 4
      rvoskit eval data/mevis-valid_u output/mevis/inference --protocol mevis --per-frame --out runs/eval-png
      rvoskit eval data/refdavis-val runs/pred --protocol ref-davis --aggregate each
      rvoskit eval data/davis-val results/semi-supervised/osvos --protocol davis-semi
      rvoskit eval data/a2d-test mttr_predictions.json --protocol a2d --out runs/eval-a2d
    """
    from rich.console import Console

    if "numpy" not in sys.modules:
        # eval does no BLAS work: one OpenBLAS thread instead of a pool per core for each of the
        # OpenBLAS copies it loads (numpy's, OpenCV's, scipy's through numba), whose idle threads
        # spin after start-up (~0.1 s of CPU); a value the user set is kept
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from rvoskit.errors import RvosError
    from rvoskit.metrics import evaluate, summary_table, write_results
    from rvoskit.metrics.report import _json_safe
    from rvoskit.progress import progress_bar

    from rvoskit.format.outputs import claim_output

    if moments and protocol != "mevis":
        raise RvosError(f"--moments needs --protocol mevis, not {protocol}")
    if protocol in ("a2d", "jhmdb", "refer"):
        unused = [name for name, given in (("--per-frame", per_frame), ("--missing-frame-empty", missing_frame_empty),
                                           ("--ignore-unknown", ignore_unknown), ("--anno-set", anno_set is not None))
                  if given]
        if unused:
            raise RvosError(f"{', '.join(unused)} do(es) not apply to --protocol {protocol} (per-sample metrics, see docs/other-benchmarks.md)")
        if workers > 1 or executor not in (None, "", "local"):
            Console(stderr=True).print(f"warning: --protocol {protocol} runs in one process; --workers/--executor are ignored",
                                       markup=False, highlight=False)
    if out is not None:
        claim_output(out, kind="eval", inputs=[dataset, predictions], overwrite=overwrite)
    if protocol in ("a2d", "jhmdb", "refer"):
        _eval_referring(dataset, predictions, protocol, out, overwrite, quiet)
        return
    if per_frame and out is None:
        raise RvosError("--per-frame needs --out")
    if out is not None and out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    console = Console()
    t0 = time.perf_counter()
    kw = {
        "workers": workers,
        "executor": executor,
        "ray_address": ray_address,
        "missing_frame_empty": missing_frame_empty,
        "ignore_unknown": ignore_unknown,
        "davis_task": davis_task,
        "anno_set": anno_set,
        "aggregate": aggregate,
    }
    if quiet:
        result = evaluate(dataset, predictions, protocol, **kw)
    else:
        with progress_bar(label="[bold]eval[/] {task.description}", console=console, transient=True) as bar:
            task = bar.add_task(protocol, total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = evaluate(dataset, predictions, protocol, progress=progress, **kw)
    if moments:
        from rvoskit.metrics.moments import add_moment_scores

        add_moment_scores(result, dataset)
    paths = write_results(result, out, per_frame=per_frame, overwrite=overwrite) if out is not None else {}
    if quiet:
        typer.echo(json.dumps(_json_safe(result.summary), indent=2))
        return
    console.print(summary_table(result))
    if moments:
        from rvoskit.metrics.report import moments_table

        console.print(moments_table(result))
    missing = result.summary.get("missing_videos") or []
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        console.print(f"[yellow]{len(missing)} video(s) without predictions scored 0:[/] {escape(shown)}", highlight=False)
    _print_skipped(console, result.summary)
    for name, p in paths.items():
        console.print(f"  {name}: {p}")
    console.print(f"[dim]{result.n_items} {result.item_name}s in {time.perf_counter() - t0:.1f} s[/]")


def _print_skipped(console, s: dict) -> None:
    """Say what the checks skipped (--ignore-unknown) and the extra prediction frames never scored."""
    from rich.text import Text

    for key, what in (("skipped_unknown_videos", "video(s)"), ("skipped_unknown_expressions", "expression(s)")):
        ids = s.get(key) or []
        if ids:
            shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
            console.print(Text.assemble((f"skipped {len(ids)} {what} not in the dataset (--ignore-unknown): ", "yellow"), shown))
    n = s.get("extra_prediction_frames") or 0
    if n:
        shown = ", ".join(s.get("extra_prediction_frame_examples") or [])
        console.print(Text.assemble((f"{n} prediction frame(s) are not frames of the dataset videos (not scored): ", "yellow"), shown))


def _eval_referring(dataset: Path, predictions: Path, protocol: str, out: Path | None, overwrite: bool, quiet: bool) -> None:
    """``--protocol a2d|jhmdb|refer`` (rvoskit.metrics.referring)."""
    from rich.console import Console
    from rich.table import Table

    from rvoskit.errors import RvosError
    from rvoskit.metrics.referring import evaluate_referring, write_referring_results

    if out is not None and out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    t0 = time.perf_counter()
    result = evaluate_referring(dataset, predictions, protocol)
    paths = write_referring_results(result, out, overwrite=overwrite) if out is not None else {}
    if quiet:
        typer.echo(json.dumps(result.summary, indent=2))
        return
    console = Console()
    t = Table(title=f"{protocol} — {result.info['n_samples']:,} samples, {result.info['n_candidates']:,} candidates")
    t.add_column("metric")
    t.add_column("x100", justify="right")
    for k, v in result.summary.items():
        t.add_row(k, "—" if v is None or v < 0 else f"{100 * v:.2f}")  # COCOeval's -1: no ground truth in that area range
    console.print(t)
    if result.info["ignored_prediction_rows"]:
        console.print(f"[yellow]{result.info['ignored_prediction_rows']} prediction row(s) on frames that are not evaluated were ignored[/]")
    for name, p in paths.items():
        console.print(f"  {name}: {p}")
    console.print(f"[dim]{time.perf_counter() - t0:.1f} s[/]")


def register(app: typer.Typer) -> None:
    """Register ``rvoskit eval`` on the root app."""
    app.command("eval")(eval_command)
