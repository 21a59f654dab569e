"""``rvoskit pseudolabel``: IoU pseudo-labels of candidate tracks (:mod:`rvoskit.labels`)."""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from rvoskit.commands import _options as opt
from rvoskit.commands._options import executor_option, ray_address_option


class Target(str, Enum):
    max = "max"
    union = "union"


def pseudolabel(
    sources: list[str] = typer.Argument(
        ...,
        metavar="DATASET",
        help="Common-format dataset with ground truth.",
        show_default=False,
    ),
    tracks: list[str] = opt.tracks_option(
        "Track store, NAME=DIR or DIR (NAME is the 'source' column, default the folder's name); repeat for several stores."
    ),
    out: Path = opt.out_option("Labels directory to write."),
    iou: float = typer.Option(0.7, "--iou", min=0.0, max=1.0, help="Threshold: label = mIoU > iou (SOLA: 0.7)."),
    target: Target = typer.Option(
        Target.max, "--target", help="max: max over the expression's objects (SOLA); union: IoU with their union."
    ),
    resolution: str = typer.Option(
        "540x960", "--resolution", help="Compare at this size (short x long side, oriented like the video; SOLA: 540x960) or 'native'."
    ),
    moments: bool = typer.Option(
        False, "--moments", help="MeViS-M (OSS): the IoU with an object counts only inside that object's moment; "
        "each label records its rule (moment_rule)."),
    workers: int = opt.workers_option("Processes (one video per job)."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    overwrite: bool = opt.overwrite_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Pseudo-label candidate tracks by their mean IoU with the ground truth.

    For every expression and every track of its video: the mean over all frames of the per-frame IoU (both empty = 1) with each target object, the max over objects, and the IoU with the union of the objects. The label is [bold]max > --iou[/] (SOLA) or [bold]union > --iou[/] with --target union.

    Writes labels.parquet, labels.json (options; summary: positives per expression, expressions with none) and miou_hist.png. An interrupted run resumes where it stopped.

    [bold]Examples[/]

      rvoskit pseudolabel data/mevis_train --tracks work/tracks_grid --out work/labels

      rvoskit pseudolabel data/mevis_train --tracks gt=work/tracks_gt --tracks grid=work/tracks_grid --iou 0.7 --out work/labels -j 4

      rvoskit pseudolabel data/refdavis_train --tracks work/tracks_grid --resolution native --target union --out work/labels_u

      rvoskit pseudolabel data/mevism_train --tracks work/tracks_grid --moments --out work/labels_oss
    """
    from rich.progress import TextColumn

    from rvoskit.progress import progress_bar

    from rvoskit.errors import RvosError
    from rvoskit.labels import MissingTracksWarning
    from rvoskit.labels import pseudolabel as run
    from rvoskit.format.outputs import claim_output, track_paths

    if tracks:
        if len(sources) != 1:
            raise RvosError("give one dataset: rvoskit pseudolabel DATASET --tracks NAME=DIR ... --out LABELS")
        dataset = sources[0]
    else:  # the 0.1 form: TRACKS... DATASET
        if len(sources) < 2:
            raise RvosError("give at least one track store: rvoskit pseudolabel DATASET --tracks NAME=DIR ... --out LABELS")
        opt.warn_deprecated("pseudolabel TRACKS... DATASET", "pseudolabel DATASET --tracks NAME=DIR ...")
        *tracks, dataset = sources
    console = Console(stderr=True)
    claim_output(out, kind="labels", inputs=[dataset, *track_paths(tracks)], overwrite=overwrite)
    with progress_bar(TextColumn("videos"), label="labelling", console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task("videos", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MissingTracksWarning)
            meta = run(
                tracks,
                dataset,
                out,
                iou=iou,
                target=target.value,
                resolution=resolution,
                workers=workers,
                executor=executor,
                ray_address=ray_address,
                overwrite=overwrite,
                progress=progress,
                moments=moments,
            )
    for w in caught:
        if issubclass(w.category, MissingTracksWarning):
            console.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if quiet:
        return
    s = meta["summary"]
    typer.echo(
        f"{s['rows']} (expression, track) rows, {s['positives']} positives; "
        f"{s['expressions_without_positive']} of {s['expressions']} expressions have no positive "
        f"({100 * s['lost_for_training_fraction']:.1f}% lost for training); "
        f"positives per expression: mean {s['positives_per_expression']['mean']:.2f}"
    )
    if "moments" in meta:
        rules = ", ".join(f"{k} {v}" for k, v in meta["moments"]["expressions_per_rule"].items())
        typer.echo(f"  moments (OSS): expressions per rule: {rules}")
    for name, src in s["sources"].items():
        miss = f", {src['missing_videos']} videos missing" if src["missing_videos"] else ""
        typer.echo(f"  {name}: {src['tracks']} tracks, {src['positives']} positives, "
                   f"{src['expressions_with_positive']} expressions with a positive{miss}")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Register ``rvoskit pseudolabel`` on the root app."""
    app.command("pseudolabel")(pseudolabel)
