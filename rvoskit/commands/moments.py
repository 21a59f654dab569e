"""``rvoskit moments``: moment retrieval evaluation and exports for MeViS-M (and QVHighlights files)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from rvoskit.commands import _options as opt

moments_app = typer.Typer(
    no_args_is_help=True,
    help="Moment retrieval on MeViS-M: evaluate (Moment-DETR metrics, keyframe accuracy) and export training data.",
)

FPS_HELP = "Frames per second of the dataset's frames (frame indices -> seconds); recorded in the output."
DECIMALS_HELP = "Round seconds to this many decimals (a negative value: no rounding)."


def _positive(value: Optional[float]) -> Optional[float]:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}")
    return value


def _decimals(d: int) -> int | None:
    return None if d < 0 else d


@moments_app.command("eval")
def eval_command(
    gt: Path = typer.Argument(..., help="Ground truth: a converted MeViS-M dataset, or a QVHighlights-style JSONL (seconds).",
                              show_default=False, metavar="GT"),
    pred: Path = typer.Argument(..., help="Predictions JSONL: qid + pred_relevant_windows \\[\\[start, end, score], ...] "
                                "(or, with --keyframes, qid/expression_id + pred_keyframes).", show_default=False, metavar="PRED"),
    out: Optional[Path] = opt.out_option("Write summary.json and per_query.csv here.", required=False),
    fps: Optional[float] = typer.Option(None, "--fps", callback=_positive, help=FPS_HELP),
    decimals: int = typer.Option(2, "--decimals", help=DECIMALS_HELP + " Dataset ground truth only; use the export's value."),
    keyframes: bool = typer.Option(False, "--keyframes", help="PRED ranks frames per expression: report Top-1 and Top-k keyframe accuracy."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="The k of Top-k keyframe accuracy."),
    overwrite: bool = opt.overwrite_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Score moment retrieval predictions with Moment-DETR's metrics (R1@0.5/0.7, mAP, mAP@0.5/0.75,
    short/middle/long buckets; numbers and key names of standalone_eval/eval.py), or keyframes.

    A span start..end (inclusive frames) is the window \\[start/fps, (end+1)/fps] seconds. Queries whose
    ground truth has no window (expressions without a moment) are left out and counted.

    [bold]Examples[/]
      rvoskit moments eval data/mevism-valid_u preds.jsonl --fps 6 --out runs/mr-eval
      rvoskit moments eval highlight_val_release.jsonl sample_val_preds.jsonl
      rvoskit moments eval data/mevism-valid_u keyframes.jsonl --keyframes --top-k 5
    """
    from rich.console import Console
    from rich.table import Table

    from rvoskit.errors import RvosError
    from rvoskit.metrics.moments import (
        eval_moment_retrieval,
        first_window_iou,
        keyframe_accuracy,
        load_jsonl,
        parse_ground_truth,
        parse_predictions,
    )

    from rvoskit.format.outputs import claim_output

    if out is not None:
        claim_output(out, kind="eval", inputs=[gt, pred], overwrite=overwrite)
    t0 = time.perf_counter()
    if out is not None and out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    is_dataset = gt.is_dir()
    options = {"gt": str(gt.resolve()), "pred": str(pred.resolve()), "fps": fps,
               "decimals": _decimals(decimals) if is_dataset else None, "keyframes": keyframes}
    per_query = None
    if keyframes:
        if not is_dataset:
            raise RvosError("--keyframes needs a MeViS-M dataset as GT (frame indices)", file=gt)
        from rvoskit.datasets.moments import expression_moments, read_keyframes
        from rvoskit.format import open_dataset

        ds = open_dataset(gt)
        mom = expression_moments(ds)
        info = {"qids": dict(enumerate(ds.expressions["expression_id"]))}
        res = keyframe_accuracy(mom, read_keyframes(pred, ds, info), k=top_k)
        per_query = [{"expression_id": e, "first_hit_rank": r} for e, r in res.pop("per_expression").items()]
        summary = {"protocol": "keyframes", **options, "top_k": top_k, **res,
                   "rule": "hit = frame inside the expression's moment (union of its spans, inclusive ends)"}
        brief = {"Top-1": res["top1"], f"Top-{top_k}": res["topk"]}
    else:
        dropped = 0
        if is_dataset:
            from rvoskit.datasets.moments import dataset_queries, match_prediction_qids

            g, info = dataset_queries(gt, fps, _decimals(decimals))
            lines, dropped = match_prediction_qids(load_jsonl(pred, what="predictions"), info, file=pred)
            p = parse_predictions(lines, file=pred)
            names = info["qids"]
        else:
            g = parse_ground_truth(load_jsonl(gt, what="ground truth"), file=gt)
            p = parse_predictions(load_jsonl(pred, what="predictions"), file=pred)
            names = {}
        res = eval_moment_retrieval(g, p)
        res["counts"]["predictions_without_moment_dropped"] = dropped
        summary = {"protocol": "moment-retrieval", "reference": "Moment-DETR standalone_eval/eval.py (MR-* part)", **options, **res,
                   "window_rule": "[start_idx / fps, (end_idx + 1) / fps] seconds" if is_dataset else "as given (seconds)"}
        brief = res["brief"]
        gw = dict(zip(g.qids, g.windows))
        qs = [q for q in p.qids if len(gw[q])]
        if qs:
            pw = dict(zip(p.qids, p.windows))
            iou = first_window_iou([gw[q] for q in qs], [pw[q] for q in qs])
            per_query = [{"qid": q, "expression_id": names.get(q), "first_window_iou": float(x)} for q, x in zip(qs, iou)]
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if out is not None:
        import pandas as pd

        from rvoskit.format import atomic_dir

        with atomic_dir(out, overwrite=overwrite) as tmp:
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            if per_query is not None:
                pd.DataFrame(per_query).to_csv(tmp / "per_query.csv", index=False)
    if quiet:
        typer.echo(json.dumps(brief, indent=2))
        return
    console = Console()
    t = Table(title="keyframe accuracy" if keyframes else "moment retrieval (Moment-DETR metrics)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in brief.items():
        t.add_row(k, "n/a (no query)" if v is None else f"{v:.2f}")
    console.print(t)
    c = summary.get("counts") or {k: summary[k] for k in ("n_expressions", "skipped_no_moment")}
    console.print("[dim]" + ", ".join(f"{k} {v}" for k, v in c.items()) + f"; {summary['seconds']:.2f} s[/]")
    if out is not None:
        console.print(f"  summary: {out / 'summary.json'}")


@moments_app.command("export")
def export_command(
    dataset: Path = opt.dataset_argument("Converted MeViS-M dataset (rvoskit convert mevis-m)."),
    to: str = typer.Option(..., "--to", help="qvhighlights (Moment-DETR JSONL), charades-sta (vid start end##sentence) "
                           "or chrono (Mr. BLIP JSON list)."),
    out: Path = opt.out_option("File to write; the qid -> expression_id mapping goes to <FILE>.qids.json."),
    fps: Optional[float] = typer.Option(None, "--fps", callback=_positive, help=FPS_HELP),
    decimals: int = typer.Option(2, "--decimals", help=DECIMALS_HELP),
    overwrite: bool = opt.overwrite_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Write moment retrieval training data: one query per expression with a moment (qid = the
    expression's position in the dataset), windows \\[start/fps, (end+1)/fps] seconds.

    [bold]Examples[/]
      rvoskit moments export data/mevism-train --to qvhighlights --fps 6 --out mevism_train.jsonl
      rvoskit moments export data/mevism-train --to charades-sta --fps 6 --out mevism_train.txt
      rvoskit moments export data/mevism-train --to chrono --fps 6 --out mevism_train.json
    """
    from rich.console import Console

    from rvoskit.datasets.moments import export_moments

    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="moments-export", inputs=[dataset], overwrite=overwrite)
    meta = export_moments(dataset, to, out, fps=fps, decimals=_decimals(decimals), overwrite=overwrite)
    if quiet:
        return
    extra = f", {meta['hulled']} multi-window moments written as their hull" if "hulled" in meta else ""
    Console().print(f"{meta['queries']} queries ({meta['skipped_no_moment']} expressions without a moment skipped{extra}) "
                    f"-> {out}; qids: {out}.qids.json")


def register(app: typer.Typer) -> None:
    """Register ``rvoskit moments`` on the root app."""
    app.add_typer(moments_app, name="moments")
