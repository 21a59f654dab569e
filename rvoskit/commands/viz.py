"""``rvoskit viz``: pictures of datasets, track stores and predictions, and a report of every stage."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.progress import TextColumn

from rvoskit.commands._ranges import in_range
from rvoskit.commands import _options as opt
from rvoskit.progress import progress_bar

console = Console(stderr=True)
viz_app = typer.Typer(
    name="viz",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Pictures: mask overlays of datasets, track stores and predictions (PNG contact sheets, GIF/MP4 "
    "clips) and one HTML/Markdown report of every stage's plots and summaries.",
)

_FRAMES = typer.Option(8, "--frames", "-n", min=0, help="Frames per contact sheet, sampled evenly (first and last kept); 0 = all.")
_TILE = typer.Option(240, "--tile-width", min=16, help="Sheet tile width in pixels (frames are only shrunk).")
_ALPHA = typer.Option(0.5, "--alpha", callback=in_range(0, 1), help="Mask fill opacity, 0..1 (1 paints the palette colour exactly).")
_VIDEO = typer.Option(None, "--video", "-v", help="Restrict to these video ids (repeatable).")
_LIMIT = typer.Option(None, "--limit", min=1, help="Draw at most this many videos.")
_GIF = typer.Option(False, "--gif", help="Also write a GIF clip (every frame) per expression / video.")
_MP4 = typer.Option(False, "--mp4", help="Also write an MP4 clip ('mp4v') per expression / video.")
_VWIDTH = typer.Option(640, "--video-width", min=16, help="Clip width in pixels.")
_FPS = typer.Option(5.0, "--fps", callback=in_range(0, 1000, low_open=True), help="Clip frame rate.")
_OVERWRITE = opt.overwrite_option("Replace an existing viz output folder (otherwise it is resumed).")
_QUIET = opt.quiet_option()


def _clip_format(gif: bool, mp4: bool) -> Optional[str]:
    if gif and mp4:
        raise typer.BadParameter("choose one of --gif and --mp4")
    return "gif" if gif else ("mp4" if mp4 else None)


def _with_progress(what: str, fn, quiet: bool = False, **kw):
    with progress_bar(TextColumn("{task.fields[item]}"), console=console, disable=quiet) as bar:
        task = bar.add_task(what, total=None, item="")

        def progress(done: int, total: int, item: str) -> None:
            bar.update(task, completed=done, total=total, item=item)

        result = fn(progress=progress, **kw)
    n_clips = sum(1 for f in result.files if f["kind"] == "clip")
    n_sheets = len(result.files) - n_clips
    resumed = f", {len(result.skipped)} videos already drawn" if result.skipped else ""
    if not quiet:
        console.print(f"[green]wrote[/] {n_sheets} sheets and {n_clips} clips to {result.out}{resumed}")
    return result


@viz_app.command("dataset")
def dataset_cmd(
    dataset: Path = opt.dataset_argument("Common-format dataset directory."),
    out: Path = opt.out_option("Output folder."),
    video: Optional[List[str]] = _VIDEO,
    expression: Optional[List[str]] = typer.Option(None, "--expression", "-e", help="Expression ids (video/exp_id) or bare exp_ids (repeatable)."),
    limit: Optional[int] = _LIMIT,
    frames: int = _FRAMES,
    tile_width: int = _TILE,
    alpha: float = _ALPHA,
    max_rows: int = typer.Option(40, "--max-rows", min=1, help="Sheet rows at most (expressions beyond are named in the legend)."),
    gif: bool = _GIF,
    mp4: bool = _MP4,
    video_width: int = _VWIDTH,
    fps: float = _FPS,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Draw a dataset's ground truth per expression, with the text.

    Per video a contact sheet (first row every object in its own colour, then one row per expression with its text and target objects) and, with --gif/--mp4, a clip per
    expression.

    [bold]Examples[/]

      rvoskit viz dataset data/refdavis-val --out viz/gt --video judo --frames 8
      rvoskit viz dataset data/mevis-train --out viz/gt --limit 20 --gif
      rvoskit viz dataset data/refytvos-train --out viz/gt -e 0a7a2514aa/1 --mp4 --fps 6

    Writes OUT/<video>.png, OUT/<video>/<exp_id>.gif|mp4 and OUT/viz.json (files and captions).
    """
    from rvoskit.viz import render_dataset
    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="viz", inputs=[dataset], overwrite=overwrite)

    _with_progress(
        "viz dataset", render_dataset, quiet=quiet, dataset=dataset, out=out, videos=video, expressions=expression, limit=limit,
        frames=frames, tile_width=tile_width, alpha=alpha, max_rows=max_rows, video=_clip_format(gif, mp4),
        video_width=video_width, fps=fps, overwrite=overwrite,
    )


@viz_app.command("tracks")
def tracks_cmd(
    dataset: Path = opt.dataset_argument("The dataset the tracks were generated on (for its frames)."),
    tracks: list[str] = opt.tracks_option("The track store to draw (DIR or NAME=DIR)."),
    out: Path = opt.out_option("Output folder."),
    dataset_old: Optional[Path] = opt.deprecated_alias("--dataset", "-d"),
    video: Optional[List[str]] = _VIDEO,
    limit: Optional[int] = _LIMIT,
    max_tracks: int = typer.Option(24, "--max-tracks", min=1, help="Rows of single tracks per sheet (all tracks stay in the first row)."),
    frames: int = _FRAMES,
    tile_width: int = _TILE,
    alpha: float = _ALPHA,
    gif: bool = _GIF,
    mp4: bool = _MP4,
    video_width: int = _VWIDTH,
    fps: float = _FPS,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Draw a track store's candidate tracks, one colour each.

    Per completed video a contact sheet (first row all tracks,
    one colour each, then one row per track with its prompt and scores) and, with --gif/--mp4, a clip.

    [bold]Examples[/]

      rvoskit viz tracks data/refdavis-val --tracks runs/tracks --out viz/tracks
      rvoskit viz tracks data/mevis-valid_u --tracks runs/tracks --out viz/tracks -v 0ab4afe7fb46 --mp4

    Writes OUT/<video>.png, OUT/<video>.gif|mp4 and OUT/viz.json.
    """
    from rvoskit.viz import render_tracks
    from rvoskit.format.outputs import claim_output

    dataset, tracks = _viz_tracks_inputs(dataset, tracks, dataset_old)
    claim_output(out, kind="viz", inputs=[tracks, dataset], overwrite=overwrite)

    _with_progress(
        "viz tracks", render_tracks, quiet=quiet, tracks=tracks, dataset=dataset, out=out, videos=video, limit=limit,
        max_tracks=max_tracks, frames=frames, tile_width=tile_width, alpha=alpha, video=_clip_format(gif, mp4),
        video_width=video_width, fps=fps, overwrite=overwrite,
    )


@viz_app.command("predictions")
def predictions_cmd(
    inputs: List[Path] = typer.Argument(
        ..., metavar="DATASET PREDICTIONS",
        help="The dataset, then the predictions (any form eval reads: a predictions directory or .parquet, a PNG folder, a submission .zip).",
    ),
    out: Path = opt.out_option("Output folder."),
    dataset_old: Optional[Path] = opt.deprecated_alias("--dataset", "-d"),
    video: Optional[List[str]] = _VIDEO,
    expression: Optional[List[str]] = typer.Option(None, "--expression", "-e", help="Expression ids or bare exp_ids (repeatable)."),
    limit: Optional[int] = _LIMIT,
    frames: int = _FRAMES,
    tile_width: int = _TILE,
    alpha: float = _ALPHA,
    max_rows: int = typer.Option(40, "--max-rows", min=1, help="Sheet rows at most."),
    gif: bool = _GIF,
    mp4: bool = _MP4,
    video_width: int = _VWIDTH,
    fps: float = _FPS,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Draw predictions against the ground truth (TP / FP / FN) with J.

    Per video a contact sheet with one row per expression,
    [green]true positives[/], [red]false positives[/] and [blue]false negatives[/], the ground truth
    outlined white, the J of each frame on its tile and the mean J over every frame in the label; with
    --gif/--mp4 a clip per expression. Expressions without ground truth show the prediction in red.

    [bold]Examples[/]

      rvoskit viz predictions data/refdavis-val runs/pred --out viz/pred
      rvoskit viz predictions data/refdavis-val runs/pred/predictions.parquet --out viz/pred -v judo --gif

    Writes OUT/<video>.png, OUT/<video>/<exp_id>.gif|mp4 and OUT/viz.json.
    """
    from rvoskit.viz import render_predictions
    from rvoskit.format.outputs import claim_output

    dataset, predictions = _viz_predictions_inputs(inputs, dataset_old)
    claim_output(out, kind="viz", inputs=[predictions, dataset], overwrite=overwrite)

    _with_progress(
        "viz predictions", render_predictions, quiet=quiet, predictions=predictions, out=out, dataset=dataset, videos=video,
        expressions=expression, limit=limit, frames=frames, tile_width=tile_width, alpha=alpha, max_rows=max_rows,
        video=_clip_format(gif, mp4), video_width=video_width, fps=fps, overwrite=overwrite,
    )


@viz_app.command("report")
def report_cmd(
    run_dirs: List[Path] = typer.Argument(..., help="Stage output directories to gather (walked recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report file: *.html or *.md."),
    title: str = typer.Option("rvoskit report", "--title", help="Page title."),
    embed: bool = typer.Option(False, "--embed", help="HTML: inline the images (a self-contained page)."),
    quiet: bool = _QUIET,
) -> None:
    """Gather every stage's PNGs and JSON summaries into one HTML or Markdown page.

    One page with every PNG (mIoU histograms, training curves, J&F histograms,
    viz sheets) and every JSON / JSON-lines summary (labels.json, eval summaries, training metrics,
    viz.json) found under the given directories, one section per folder. Captions come from the JSON
    files that name a PNG; images are linked by relative path (or inlined with --embed).

    [bold]Examples[/]

      rvoskit viz report runs/labels runs/train runs/eval viz/pred --out runs/report.html
      rvoskit viz report runs/ --out runs/report.md
      rvoskit viz report runs/eval --out /tmp/eval.html --embed
    """
    from rvoskit.viz import build_report
    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="report", inputs=run_dirs, allow_inside=True)

    result = build_report(run_dirs, out, title=title, embed=embed)
    for path, why in result.skipped:
        console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(str(why))}", highlight=False)
    if not quiet:
        console.print(f"[green]wrote[/] {out}: {len(result.images)} images, {len(result.summaries)} summaries")


def _viz_tracks_inputs(dataset: Path, tracks: list[str], dataset_old: Optional[Path]) -> tuple[Path, Path]:
    """``(dataset, track store)``: ``DATASET --tracks DIR``, or the 0.1 form ``TRACKS --dataset DS``."""
    from rvoskit.errors import RvosError
    from rvoskit.format.outputs import track_paths

    if tracks:
        if dataset_old is not None:
            raise RvosError("give the dataset once: rvoskit viz tracks DATASET --tracks DIR --out OUT")
        if len(tracks) != 1:
            raise RvosError("viz tracks draws one track store: give --tracks once")
        return dataset, Path(track_paths(tracks)[0])
    if dataset_old is None:
        raise RvosError("give the track store: rvoskit viz tracks DATASET --tracks DIR --out OUT")
    opt.warn_deprecated("viz tracks TRACKS --dataset DS", "viz tracks DS --tracks TRACKS")
    return dataset_old, dataset


def _viz_predictions_inputs(inputs: List[Path], dataset_old: Optional[Path]) -> tuple[Optional[Path], Path]:
    """``(dataset, predictions)``: ``DATASET PREDICTIONS``, or the 0.1 form ``PREDICTIONS [--dataset DS]``
    (without a dataset, the one recorded in predictions.json)."""
    from rvoskit.errors import RvosError

    if len(inputs) == 2 and dataset_old is None:
        return inputs[0], inputs[1]
    if len(inputs) == 1:
        opt.warn_deprecated("viz predictions PREDICTIONS [--dataset DS]", "viz predictions DATASET PREDICTIONS")
        return dataset_old, inputs[0]
    raise RvosError("give the dataset and the predictions: rvoskit viz predictions DATASET PREDICTIONS --out OUT")


def register(app: typer.Typer) -> None:
    """Register ``rvoskit viz`` (dataset, tracks, predictions, report) on the root app."""
    app.add_typer(viz_app, name="viz")
