"""``rvoskit tracks generate``: SAM2 candidate mask tracks and object tokens (:mod:`rvoskit.tracks`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from rvoskit.commands import _options as opt
from rvoskit.commands._ranges import in_range

tracks_app = typer.Typer(
    name="tracks",
    help="SAM2 candidate mask tracks and object tokens (SOLA-style).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_SAM2 = "SAM2"
_GRID = "Grid prompts (SAM2 automatic mask generator)"
_TRACK = "Tracking and suppression"
_GROUND = "Grounded prompts (Grounding DINO)"
_RUN = "Scale and output"


@tracks_app.command("generate")
def generate(
    dataset: Path = opt.dataset_argument(),
    out: Path = opt.out_option("Track store directory (created; rerun the same command to resume)."),
    overwrite: bool = opt.overwrite_option("Replace an existing track store at --out (also one made with other options)."),
    quiet: bool = opt.quiet_option(),
    split: Optional[str] = opt.split_option(None, "Only the videos of this split (videos.split)."),
    checkpoint: Optional[Path] = opt.checkpoint_option(
        "SAM2 checkpoint (.pt with a 'model' key). Omitted: RANDOM weights, for tests and dry runs only.", rich_help_panel=_SAM2
    ),
    sam2_config: Optional[str] = opt.sam2_config_option(rich_help_panel=_SAM2),
    device: str = opt.device_option(rich_help_panel=_SAM2),
    config_old: Optional[str] = opt.deprecated_alias("--config"),
    gpu_old: Optional[int] = opt.deprecated_alias("--gpu"),
    cpu_old: bool = opt.deprecated_alias("--cpu", is_flag=True),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=64, help="SAM2 input side in pixels (default: the config's 1024; multiple of 32).", rich_help_panel=_SAM2),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights (only without --checkpoint).", rich_help_panel=_SAM2),
    prompts: str = typer.Option("grid", "--prompts", help="Comma-separated prompt kinds: grid, gt (one track per ground-truth object), grounded.", rich_help_panel=_GRID),
    prompt_frames: str = typer.Option("auto", "--prompt-frames", help="auto (interval if the dataset has ground truth, else eval), interval, or eval ({0, T/2}).", rich_help_panel=_GRID),
    prompt_interval: int = typer.Option(4, "--prompt-interval", min=1, help="Grid prompt every N frames (interval mode; SOLA: 4).", rich_help_panel=_GRID),
    points_per_side: int = typer.Option(32, "--points-per-side", min=1, help="Point grid side (32 x 32 points).", rich_help_panel=_GRID),
    points_per_batch: int = typer.Option(64, "--points-per-batch", min=1, help="Points per decoder call (speed/memory only).", rich_help_panel=_GRID),
    pred_iou_thresh: float = typer.Option(0.8, "--pred-iou-thresh", callback=in_range(0, 1), help="Keep masks with predicted IoU above this (0 disables).", rich_help_panel=_GRID),
    stability_thresh: float = typer.Option(0.95, "--stability-thresh", callback=in_range(0, 1), help="Keep masks with stability score >= this (0 disables).", rich_help_panel=_GRID),
    box_nms_thresh: float = typer.Option(0.7, "--box-nms-thresh", callback=in_range(0, 1), help="Box NMS IoU threshold.", rich_help_panel=_GRID),
    part_thresh: float = typer.Option(0.7, "--part-thresh", callback=in_range(0, 1), help="Drop a mask lying more than this fraction inside a larger kept one.", rich_help_panel=_GRID),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Prompts (from one frame) tracked together; at most 2 beyond 200 frames.", rich_help_panel=_TRACK),
    suppress_iou: float = typer.Option(0.7, "--suppress-iou", callback=in_range(0, 1), help="Skip a prompt whose IoU with a new track on its own frame exceeds this.", rich_help_panel=_TRACK),
    max_tracks: int = typer.Option(64, "--max-tracks", min=1, help="Grid tracks per video.", rich_help_panel=_TRACK),
    max_grounded_tracks: int = typer.Option(16, "--max-grounded-tracks", min=1, help="Grounded tracks per expression.", rich_help_panel=_TRACK),
    token_dtype: str = typer.Option("float32", "--token-dtype", help="Object token dtype: float32 or float16.", rich_help_panel=_TRACK),
    grounding_model: Optional[Path] = typer.Option(None, "--grounding-model", help="Local transformers Grounding DINO directory (for --prompts grounded).", rich_help_panel=_GROUND),
    box_threshold: float = typer.Option(0.2, "--box-threshold", callback=in_range(0, 1), help="Grounding DINO box threshold.", rich_help_panel=_GROUND),
    text_threshold: float = typer.Option(0.25, "--text-threshold", callback=in_range(0, 1), help="Grounding DINO text threshold.", rich_help_panel=_GROUND),
    grounded_stability: float = typer.Option(0.85, "--grounded-stability", callback=in_range(0, 1), help="Grounded prompts need stability >= this.", rich_help_panel=_GROUND),
    grounded_interval: int = typer.Option(4, "--grounded-interval", min=1, help="Grounded prompt every N frames.", rich_help_panel=_GROUND),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: this job does videos K, K+N, ... (0-based, for job arrays).", rich_help_panel=_RUN),
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray (one task per video).", rich_help_panel=_RUN),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address (ray.init(address=...)); default: a local instance.", rich_help_panel=_RUN),
    gpus_per_task: float = typer.Option(1.0, "--gpus-per-task", callback=in_range(0, None), help="num_gpus of each Ray task (0 on CPU clusters).", rich_help_panel=_RUN),
    cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", callback=in_range(0, None, low_open=True), help="num_cpus of each Ray task.", rich_help_panel=_RUN),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (this process or each Ray task).", rich_help_panel=_RUN),
    feature_cache_mb: float = typer.Option(4096, "--feature-cache-mb", callback=in_range(0, None), help="Per-video SAM2 image-feature cache (speed only).", rich_help_panel=_RUN),
) -> None:
    """Generate SAM2 candidate mask tracks and their object tokens for every video.

    Grid prompts follow SOLA: SAM2's automatic mask generator (32x32 points, predicted IoU 0.8, stability 0.95, box NMS 0.7) and its part filter on prompt frames (every 4th frame on data with ground truth, {0, T/2} otherwise); prompts are tracked largest first, up to 4 from one frame at a time, forward and backward through the video; a remaining prompt that a new track covers with IoU > 0.7 on its frame is skipped; at most 64 tracks. Each track's SAM2 object pointer on every frame is stored as its object token (N x T x 256 per video).

    Output: a track store (tracks/*.parquet, tokens/*.safetensors, done/ markers, trackstore.json). Every video is written atomically; an interrupted run resumes where it stopped when rerun with the same options.

    [bold]Examples[/]

      rvoskit tracks generate data/mevis_train --out work/tracks_grid --checkpoint ckpt/sam2_hiera_large.pt --device cuda:0

      rvoskit tracks generate data/mevis_train --out work/tracks_gt --prompts gt --checkpoint ckpt/sam2_hiera_large.pt

      rvoskit tracks generate data/mevis_valid --out work/tracks_gdino --prompts grounded --grounding-model models/grounding-dino-tiny --checkpoint ckpt/sam2_hiera_large.pt

      rvoskit tracks generate data/mevis_train --out work/tracks --checkpoint ckpt/sam2_hiera_large.pt --shard $SLURM_ARRAY_TASK_ID/16

      rvoskit tracks generate data/mevis_train --out /shared/tracks --checkpoint /shared/sam2_hiera_large.pt --executor ray --ray-address auto

      rvoskit convert refdavis examples/refdavis-judo --split val --out /tmp/judo   [dim](the bundled example)[/]
      rvoskit tracks generate /tmp/judo --out /tmp/tracks --image-size 256 --points-per-side 4 --device cpu   [dim](random weights: a dry run)[/]
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rvoskit.commands._common import summary_table
    from rvoskit.tracks import (
        ModelSpec,
        TrackOptions,
        generate_tracks,
        parse_shard,
    )

    console = Console(stderr=True)
    kinds = tuple(k.strip() for k in prompts.split(",") if k.strip())
    options = TrackOptions(
        prompts=kinds,
        prompt_frames=prompt_frames,
        prompt_interval=prompt_interval,
        points_per_side=points_per_side,
        points_per_batch=points_per_batch,
        pred_iou_thresh=pred_iou_thresh,
        stability_score_thresh=stability_thresh,
        box_nms_thresh=box_nms_thresh,
        part_thresh=part_thresh,
        batch_size=batch_size,
        suppress_iou=suppress_iou,
        max_tracks=max_tracks,
        max_grounded_tracks=max_grounded_tracks,
        grounding_model=str(grounding_model) if grounding_model else None,
        box_threshold=box_threshold,
        text_threshold=text_threshold,
        grounded_stability_thresh=grounded_stability,
        grounded_interval=grounded_interval,
        token_dtype=token_dtype,
        feature_cache_mb=feature_cache_mb,
    ).check()
    config = opt.resolve_sam2_config(opt.merge_alias(sam2_config, config_old, old="--config", new="--sam2-config"), checkpoint)
    if gpu_old is not None:
        device = opt.merge_alias(device if device != "auto" else None, f"cuda:{gpu_old}", old="--gpu N", new="--device cuda:N")
    if cpu_old:
        device = opt.merge_alias(device if device != "auto" else None, "cpu", old="--cpu", new="--device cpu")
    device = opt.resolve_device(device, cpu_without_cuda=gpu_old is not None)
    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="tracks", inputs=[dataset, checkpoint, grounding_model], overwrite=overwrite, shard=shard)
    if out.exists() and overwrite:
        _remove_store(out)
    model = ModelSpec(config=config, checkpoint=str(checkpoint) if checkpoint else None, image_size=image_size, device=device, seed=seed)
    if checkpoint is None:
        console.print(
            "[bold white on red] RANDOM SAM2 WEIGHTS [/] no --checkpoint given: the tracks and tokens are meaningless "
            "(use this for tests and dry runs only)."
        )
    elif device == "cpu" and executor == "local" and not quiet:
        console.print("[yellow]note:[/] running SAM2 on the CPU (fp32); a GPU run uses bf16 autocast and is much faster.")

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=quiet,
    ) as bar:
        videos = bar.add_task("videos", total=None)
        batches = bar.add_task("", total=None, visible=False)

        def progress(event: str, **kw) -> None:
            # something on screen from the first second: loading SAM2, then per video the prompt
            # frame being prompted, and the prompts tracked so far and the frame being tracked
            vid = escape(str(kw.get("video_id", "")))
            if event == "loading":
                bar.update(videos, description=f"{kw['videos']} videos: loading SAM2 {escape(str(kw['config']))} on {kw['device']}")
            elif event == "run":
                bar.update(videos, total=kw["todo"], description=f"videos ({kw['total'] - kw['todo']} already done)")
            elif event == "video_start" and kw.get("frames"):
                bar.update(batches, description=f"  {vid}: {kw['frames']} frames, starting", completed=0, total=None, visible=True)
            elif event == "prompting":
                bar.update(batches, description=f"  {vid}: {kw['kind']} prompts on frame {kw['frame_idx']} ({kw['index'] + 1}/{kw['of']} prompt frames, {kw['found']} prompts so far)")
            elif event == "prompts":
                bar.update(batches, description=f"  {vid}: {kw['n']} {kw['kind']} prompts", completed=0)
            elif event in ("batch_start", "frame"):
                at = f", at frame {kw['frame_idx']}" if event == "frame" else ""
                bar.update(
                    batches,
                    description=f"  {vid}: {kw['kind']} tracks {kw['tracked']}/{kw['prompts']} prompts, {kw['size']} from frame {kw['prompt_frame']}{at}",
                    completed=kw["tracked"],
                )
            elif event == "batch":
                bar.update(batches, completed=kw["tracked"])
            elif event == "video_done":
                bar.advance(videos)
            elif event == "video_failed":
                console.print(f"[red]failed:[/] {escape(str(kw['video_id']))}: {escape(str(kw['error']))}", highlight=False)

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no SAM2 checkpoint given")
            summary = generate_tracks(
                dataset,
                out,
                model=model,
                options=options,
                split=split,
                shard=parse_shard(shard),
                executor=executor,
                ray_address=ray_address,
                gpus_per_task=gpus_per_task,
                cpus_per_task=cpus_per_task,
                threads=threads,
                progress=progress,
            )
        bar.update(batches, visible=False)

    if quiet:
        return
    tpv = summary["tracks_per_video"]
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in summary["stage_seconds"].items())
    rows = [
        ("videos processed", summary["videos_processed"]),
        ("videos already done", summary["videos_skipped"]),
        ("frames", summary["frames"]),
        ("tracks", summary["tracks"]),
        ("tracks / video (mean, min, max)", f"{tpv['mean']:.1f}, {tpv['min']}, {tpv['max']}"),
        ("time", f"{summary['seconds']:.1f} s"),
        ("time / frame", f"{summary['seconds_per_frame']:.3f} s" if summary["seconds_per_frame"] else "-"),
        ("stages (summed over videos)", stages or "-"),
        ("output", str(out)),
    ]
    Console().print(summary_table("tracks generate", rows))


def _remove_store(out: Path) -> None:
    """``--overwrite``: remove an existing track store (never anything else)."""
    import shutil

    from rvoskit.errors import RvosError

    if out.is_dir() and ((out / "trackstore.json").is_file() or not any(out.iterdir())):
        shutil.rmtree(out)
    else:
        raise RvosError("not a track store (no trackstore.json); --overwrite only replaces a track store", file=out)


def register(app: typer.Typer) -> None:
    """Register ``rvoskit tracks`` on the root app."""
    app.add_typer(tracks_app, name="tracks")
