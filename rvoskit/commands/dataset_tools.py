"""``rvoskit validate``, ``rvoskit info`` and ``rvoskit export``: tools around a converted dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from rvoskit.commands import _options as opt
from rvoskit.commands._common import console, summary_table
from rvoskit.errors import RvosError

EXPORT_KINDS = ("mevis", "ytvis", "mevis-submission", "refytvos-submission", "davis", "a2d-coco-gt", "jhmdb-coco-gt")
SUBMISSIONS = ("mevis-submission", "refytvos-submission", "davis")


def validate(
    dataset: Path = opt.dataset_argument("Common-format dataset directory."),
    no_frames: bool = typer.Option(False, "--no-frames", help="Do not check that frame files exist."),
    quiet: bool = opt.quiet_option("Print only the problems (nothing when the dataset is valid)."),
) -> None:
    """Check a dataset: schema, referential integrity, RLE sizes and areas, frame files.

    Exits 0 when valid; otherwise lists every problem and exits 2, the status of every command given
    bad input.

    [bold]Example[/]
      rvoskit validate data/mevis-train
    """
    from rvoskit.format.validate import validate_dataset

    problems = validate_dataset(dataset, check_frames=not no_frames)
    if problems:
        for p in problems:
            console.print(Text.assemble(("✗ ", "red"), p), highlight=False, soft_wrap=True)  # literal: ids may hold [brackets]
        if not quiet:
            console.print(f"[bold red]{len(problems)} problem(s)[/] in {dataset}")
        raise typer.Exit(2)
    if not quiet:
        console.print(f"[bold green]valid[/] {dataset}")


def info(
    datasets: list[Path] = typer.Argument(..., metavar="DATASET...", help="One or more dataset directories (e.g. one per split)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    quiet: bool = opt.quiet_option("No tables: print the JSON of --json only."),
) -> None:
    """Summarise datasets: counts per split, expressions per video, objects per expression
    (multi-object, no-target), frames per video, mask area distribution.

    [bold]Examples[/]
      rvoskit info data/mevis-train data/mevis-valid_u
      rvoskit info data/refdavis-val --json
    """
    from rvoskit.datasets.info import dataset_info

    infos = [dataset_info(d) for d in datasets]
    if as_json or quiet:
        typer.echo(json.dumps(infos, indent=2))
        return
    t = Table(title="datasets", header_style="bold")
    for col in ("dataset", "split", "videos", "frames", "objects", "expressions", "masks", "multi-object", "no-target"):
        t.add_column(col, justify="right" if col not in ("dataset", "split") else "left")
    for i in infos:
        c, h = i["counts"], i["objects_per_expression"]
        t.add_row(i["source"]["dataset"], i["source"]["split"], *(f"{c[k]:,}" for k in ("videos", "frames", "objects", "expressions", "masks")),
                  f"{i['multi_object']:,}", f"{h['no-target']:,}")
    console.print(t)
    for i in infos:
        rows = []
        for key in ("expressions_per_video", "frames_per_video", "annotated_frames_per_video"):
            if key not in i:
                continue
            d = i[key]
            if d["n"]:
                rows.append((key.replace("_", " "), f"min {d['min']:.0f} · median {d['median']:.0f} · mean {d['mean']:.1f} · max {d['max']:.0f}"))
        rows.append(("objects per expression", " · ".join(f"{k}: {v}" for k, v in i["objects_per_expression"].items())))
        a = i["mask_area"]
        if a.get("n"):
            p = a["percentiles"]
            rows.append(("mask area (% of frame)", " · ".join(f"p{k} {100 * v:.2f}" for k, v in p.items()) + f" · empty {a['empty']}"))
        mo = i.get("moments")
        if mo:
            g = mo["granularity"]
            rows.append(("moments (MeViS-M)", f"{mo['expressions_with_moment']:,} expressions with a moment · "
                         f"{mo['expressions_without_moment']:,} without · spans: {g['object']:,} object-level, "
                         f"{g['expression']:,} expression-level"))
            for key, label, fmt in (("coverage", "moment coverage of the video", "{:.0%}"), ("spans_per_expression", "spans per expression", "{:.1f}")):
                d = mo[key]
                if d["n"]:
                    rows.append((label, " · ".join(f"{k} {fmt.format(d[k])}" for k in ("min", "median", "mean", "max"))
                                 + (f" · whole video {mo['whole_video']:,}" if key == "coverage" else "")))
            oo = mo["objects_outside_moment"]
            if oo["pairs"]:
                rows.append(("objects outside their moment", f"{oo['visible_outside']:,} of {oo['pairs']:,} (expression, object) pairs "
                             f"visible outside · {oo['frames_outside']:.0%} of their mask frames · "
                             f"{mo['targets_without_span']:,} targets without a span"))
        console.print(summary_table(f"{i['source']['dataset']} / {i['source']['split']}: {i['path']}", rows))


def export(
    inputs: list[Path] = typer.Argument(
        ..., metavar="DATASET [PREDICTIONS]",
        help="The dataset; for a submission (mevis-submission, refytvos-submission, davis) also the predictions "
        "(any form eval reads: a predictions directory or .parquet, a PNG folder, a submission .zip).",
    ),
    to: str = typer.Option(..., "--to", help=f"One of: {', '.join(EXPORT_KINDS)}."),
    out: Path = opt.out_option("Output directory (mevis), .json file (ytvis) or .zip file (submissions)."),
    dataset_old: Path = opt.deprecated_alias("--dataset"),
    frames: str = typer.Option("link", "--frames", help="mevis: link (symlink frame folders), copy or none."),
    missing: str = typer.Option("error", "--missing", help="Submissions: a frame or expression without prediction is an 'error' or written 'empty'."),
    anno_set: int = typer.Option(None, "--anno-set", min=0, max=3, help="davis: write only Ref-DAVIS annotation set K (0-3) at the zip root."),
    overwrite: bool = opt.overwrite_option("Replace an existing output."),
    quiet: bool = opt.quiet_option("Do not print the 'wrote' line."),
) -> None:
    """Export a dataset to a native layout, or predictions to a benchmark submission zip.

    [bold]Examples[/]
      rvoskit export data/mevis-valid_u --to mevis --out native/mevis      # MeViS layout (round trip)
      rvoskit export data/rytvos-train --to ytvis --out rytvos-train.json  # YouTube-VIS JSON
      rvoskit export data/mevis-valid preds/ --to mevis-submission --out submission.zip
      rvoskit export data/a2d-test --to a2d-coco-gt --out a2d_test_gt.json   # MTTR's COCO ground truth
    """
    if to not in EXPORT_KINDS:
        raise RvosError(f"unknown export target {to!r} (one of {', '.join(EXPORT_KINDS)})")
    source, dataset = _export_inputs(inputs, to, dataset_old)
    if to in SUBMISSIONS and out.suffix.lower() != ".zip":
        raise RvosError(f"--to {to} writes a zip: give --out a name ending in .zip (e.g. {out.name}.zip)", file=out)
    if to in ("ytvis", "a2d-coco-gt", "jhmdb-coco-gt") and out.suffix.lower() != ".json":
        raise RvosError(f"--to {to} writes one JSON file: give --out a name ending in .json (e.g. {out.name}.json)", file=out)
    from rvoskit.format.outputs import claim_output

    kind = {"mevis": "export-mevis"}.get(to) or ("submission" if out.suffix.lower() == ".zip" else "json-export")
    claim_output(out, kind=kind, inputs=[source, dataset], overwrite=overwrite)
    if to == "mevis":
        from rvoskit.datasets.export import export_mevis

        export_mevis(source, out, frames=frames, overwrite=overwrite)
    elif to == "ytvis":
        from rvoskit.datasets.export import export_ytvis

        export_ytvis(source, out, overwrite=overwrite)
    elif to in ("a2d-coco-gt", "jhmdb-coco-gt"):
        from rvoskit.metrics.referring import export_coco_gt

        if out.exists() and not overwrite:
            raise RvosError("output exists; pass --overwrite to replace it", file=out)
        export_coco_gt(source, to.split("-")[0], out)
    else:  # a submission (``to`` was checked against EXPORT_KINDS above)
        from rvoskit.datasets.submission import export_submission

        if out.exists() and not overwrite:
            raise RvosError("output exists; pass --overwrite to replace it", file=out)
        export_submission(source, to, out, dataset, missing=missing, anno_set=anno_set)
    if not quiet:
        console.print(f"[bold green]wrote[/] {out}")


def _export_inputs(inputs: list[Path], to: str, dataset_old: Path | None) -> tuple[Path, Path | None]:
    """``(source, dataset)`` of ``export``: the dataset for mevis/ytvis; the predictions and their
    dataset for a submission (``DATASET PREDICTIONS``, or the 0.1 form ``PREDICTIONS --dataset DS``)."""
    if to not in SUBMISSIONS:
        if len(inputs) != 1 or dataset_old is not None:
            raise RvosError(f"--to {to} exports one dataset: rvoskit export DATASET --to {to} --out OUT")
        return inputs[0], None
    if len(inputs) == 2 and dataset_old is None:
        return inputs[1], inputs[0]
    if len(inputs) == 1:  # the 0.1 form
        opt.warn_deprecated("export PREDICTIONS [--dataset DS]", "export DATASET PREDICTIONS")
        return inputs[0], dataset_old
    raise RvosError(f"give the dataset and the predictions: rvoskit export DATASET PREDICTIONS --to {to} --out OUT.zip")


def register(app: typer.Typer) -> None:
    """Register ``validate``, ``info`` and ``export`` on the root app."""
    app.command("validate")(validate)
    app.command("info")(info)
    app.command("export")(export)
