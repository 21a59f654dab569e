"""``rvoskit validate``, ``rvoskit info`` and ``rvoskit export``: tools around a converted dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from rvoskit.commands._common import console, summary_table
from rvoskit.errors import RvosError

EXPORT_KINDS = ("mevis", "ytvis", "mevis-submission", "refytvos-submission", "davis")


def validate(
    dataset: Path = typer.Argument(..., help="Common-format dataset directory."),
    no_frames: bool = typer.Option(False, "--no-frames", help="Do not check that frame files exist."),
) -> None:
    """Check a dataset: schema, referential integrity, RLE sizes and areas, frame files.

    Exits 0 when valid, 1 with the list of problems otherwise.

    [bold]Example[/]
      rvoskit validate data/mevis-train
    """
    from rvoskit.format.validate import validate_dataset

    problems = validate_dataset(dataset, check_frames=not no_frames)
    if problems:
        for p in problems:
            console.print(f"[red]✗[/] {p}", highlight=False, soft_wrap=True)
        console.print(f"[bold red]{len(problems)} problem(s)[/] in {dataset}")
        raise typer.Exit(1)
    console.print(f"[bold green]valid[/] {dataset}")


def info(
    datasets: list[Path] = typer.Argument(..., help="One or more dataset directories (e.g. one per split)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Summarise datasets: counts per split, expressions per video, objects per expression
    (multi-object, no-target), frames per video, mask area distribution.

    [bold]Examples[/]
      rvoskit info data/mevis-train data/mevis-valid_u
      rvoskit info data/refdavis-val --json
    """
    from rvoskit.datasets.info import dataset_info

    infos = [dataset_info(d) for d in datasets]
    if as_json:
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
        for key in ("expressions_per_video", "frames_per_video"):
            d = i[key]
            if d["n"]:
                rows.append((key.replace("_", " "), f"min {d['min']:.0f} · median {d['median']:.0f} · mean {d['mean']:.1f} · max {d['max']:.0f}"))
        rows.append(("objects per expression", " · ".join(f"{k}: {v}" for k, v in i["objects_per_expression"].items())))
        a = i["mask_area"]
        if a.get("n"):
            p = a["percentiles"]
            rows.append(("mask area (% of frame)", " · ".join(f"p{k} {100 * v:.2f}" for k, v in p.items()) + f" · empty {a['empty']}"))
        console.print(summary_table(f"{i['source']['dataset']} / {i['source']['split']}: {i['path']}", rows))


def export(
    source: Path = typer.Argument(..., help="A dataset directory (mevis, ytvis) or a predictions directory (submissions)."),
    to: str = typer.Option(..., "--to", help=f"One of: {', '.join(EXPORT_KINDS)}."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (mevis), .json file (ytvis) or .zip (submissions)."),
    dataset: Path = typer.Option(None, "--dataset", help="Dataset the predictions belong to (submissions)."),
    frames: str = typer.Option("link", "--frames", help="mevis: link (symlink frame folders), copy or none."),
    missing: str = typer.Option("error", "--missing", help="Submissions: a frame or expression without prediction is an 'error' or written 'empty'."),
    anno_set: int = typer.Option(None, "--anno-set", min=0, max=3, help="davis: write only Ref-DAVIS annotation set K (0-3) at the zip root."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Export a dataset to a native layout, or predictions to a benchmark submission zip.

    [bold]Examples[/]
      rvoskit export data/mevis-valid_u --to mevis --out native/mevis      # MeViS layout (round trip)
      rvoskit export data/rytvos-train --to ytvis --out rytvos-train.json  # YouTube-VIS JSON
      rvoskit export preds/ --to mevis-submission --dataset data/mevis-valid --out submission.zip
    """
    from rvoskit.format.outputs import claim_output

    kind = {"mevis": "export-mevis"}.get(to) or ("submission" if out.suffix.lower() == ".zip" else "json-export")
    claim_output(out, kind=kind, inputs=[source, dataset], overwrite=overwrite)
    if to == "mevis":
        from rvoskit.datasets.export import export_mevis

        export_mevis(source, out, frames=frames, overwrite=overwrite)
    elif to == "ytvis":
        from rvoskit.datasets.export import export_ytvis

        export_ytvis(source, out, overwrite=overwrite)
    elif to in EXPORT_KINDS:
        from rvoskit.datasets.submission import export_submission

        if out.exists() and not overwrite:
            raise RvosError("output exists; pass --overwrite to replace it", file=out)
        export_submission(source, to, out, dataset, missing=missing, anno_set=anno_set)
    else:
        raise RvosError(f"unknown export target {to!r} (one of {', '.join(EXPORT_KINDS)})")
    console.print(f"[bold green]wrote[/] {out}")


def register(app: typer.Typer) -> None:
    """Register ``validate``, ``info`` and ``export`` on the root app."""
    app.command("validate")(validate)
    app.command("info")(info)
    app.command("export")(export)
