"""``rvoskit corrupt``: ImageNet-C corruptions of every frame of a dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from rvoskit.commands._options import executor_option, ray_address_option

from rvoskit.commands import _options as opt
from rvoskit.commands._common import console


def corrupt(
    dataset: Path = opt.dataset_argument("Common-format dataset directory (its frames are read, its annotations reused)."),
    type_: str = typer.Option(..., "--type", "-t", help="Corruption type (the list above)."),
    severity: Optional[int] = opt.severity_option("Severity 1..5 (required).", required=False),
    severity_old: Optional[int] = opt.deprecated_alias("-s", min=1, max=5),
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset directory (built in .<name>.partial, renamed when complete)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Run seed; every frame's draws derive from (seed, video_id, frame_idx)."),
    angle_policy: str = typer.Option("per_frame", "--angle-policy", help="motion_blur angle: per_frame (new U(-45, 45) draw each frame, as ImageNet-C per image) or per_video (one per video)."),
    rng: str = typer.Option("generator", "--rng", help="generator (fast) or legacy (np.random.seed(frame seed): each frame equals the reference package's output)."),
    image_format: str = typer.Option("png", "--format", help="png (lossless) or jpeg (4:4:4 chroma)."),
    quality: int = typer.Option(None, "--quality", min=1, max=100, help="JPEG quality 1..100 (default 95); jpeg only."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output and discard a partial run with other options."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Corrupt every frame of a dataset with an ImageNet-C corruption; the annotations are the input's.

    Types: gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog, brightness, contrast, elastic_transform, pixelate, jpeg_compression, speckle_noise, gaussian_blur, spatter, saturate, as defined by the imagecorruptions package (gaussian_noise and motion_blur: pixel-identical to it for the same draws).

    Noise is drawn fresh every frame. The output's corruption.parquet records every frame's seed and drawn parameters (e.g. the motion_blur angle). A killed run resumes when the same command is run again.

    [bold]Examples[/]
      rvoskit corrupt data/mevis-valid_u --type gaussian_noise --severity 5 --out data/mevis-valid_u-gn5 -j 8
      rvoskit corrupt data/mevis-valid_u -t motion_blur --severity 5 --angle-policy per_video --seed 1 -o data/mevis-valid_u-mb5v
      rvoskit corrupt data/refdavis-val -t snow --severity 3 --format jpeg --quality 95 -o data/refdavis-val-snow3
    """
    from rich.progress import TextColumn

    from rvoskit.progress import progress_bar

    from rvoskit.corrupt.video import corrupt_dataset

    severity = opt.merge_alias(severity, severity_old, old="-s", new="--severity")
    if severity is None:
        raise typer.BadParameter("missing --severity N (1..5)", param_hint="--severity")
    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="dataset", inputs=[dataset], overwrite=overwrite)
    t0 = time.perf_counter()
    bar = progress_bar(TextColumn("frames"), label=f"[bold]{type_} s{severity}[/]", console=console, disable=quiet)
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # the bar starts once the options and the input are checked
            if done and not quiet:
                console.print(f"resuming: {done} of {total} frames already done")
            bar.start()
            task = bar.add_task("corrupt", total=total)
        bar.update(task, completed=done)

    try:
        corrupt_dataset(
            dataset,
            out,
            corruption=type_,
            severity=severity,
            seed=seed,
            angle_policy=angle_policy,
            rng=rng,
            image_format=image_format,
            quality=quality,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            overwrite=overwrite,
            progress=progress,
        )
    finally:
        if task is not None:
            bar.stop()
    if not quiet:
        console.print(f"[bold green]wrote[/] {out} in {time.perf_counter() - t0:.1f} s (per-frame draws: {out / 'corruption.parquet'})")


def register(app: typer.Typer) -> None:
    """Register ``rvoskit corrupt`` on the root app."""
    app.command("corrupt")(corrupt)
