"""``rvoskit score``: apply a trained selection model to track stores and write predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rvoskit.commands import _options as opt
from rvoskit.commands._ranges import in_range
from rvoskit.errors import RvosError

HELP = """Score every (expression, track) with a trained selection model, select tracks and write predictions.

A track is selected when its probability is above [bold]--tau[/] (0.5, SOLA's default), or, with [bold]--top-k[/] K, the K best tracks of each expression are. The selected tracks' masks are OR-merged per frame; an expression with no selected track gets an empty mask on every frame.

Writes OUT/predictions.parquet (one row per expression and frame; read by [bold]rvoskit eval[/], turned into submission zips by [bold]rvoskit export[/]), OUT/predictions.json and OUT/scores.parquet (expression_id, video_id, source, track_id, logit, score, selected).

[bold]Examples[/]

[cyan]rvoskit score data/mevis_valid --checkpoint runs/sola --tracks grid=tracks/valid_grid --tracks gdino=tracks/valid_gdino --out preds/sola_valid[/]

[cyan]rvoskit score data/mevis_valid_u --checkpoint runs/sola/best --tracks grid=tracks/valid_u_grid --out preds/top1 --top-k 1 --device cuda:0[/]

Zero-shot (SOLA Table 2: trained on MeViS, scored on Ref-YouTube-VOS / Ref-DAVIS): [cyan]rvoskit score data/refytvos_valid --checkpoint runs/mevis --tracks grid=tracks/yt_grid --out preds/yt --zero-shot[/] warns if the model saw this dataset or another split of its benchmark.
"""


def score_command(
    dataset: Optional[Path] = typer.Argument(None, help="Dataset whose expressions are scored (common format).", show_default=False, metavar="DATASET"),
    checkpoint: Optional[Path] = opt.checkpoint_option("Selection checkpoint: a .pt file, a run directory (its last checkpoint), or RUN/best, RUN/last."),
    tracks: list[str] = opt.tracks_option("Track store, NAME=DIR or DIR; repeat for several sources.", required=True),
    out: Path = opt.out_option("Predictions directory to create."),
    tau: float = typer.Option(0.5, "--tau", callback=in_range(0, 1), help="Select tracks with sigmoid(logit) > tau (0 <= tau <= 1)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Select the K best tracks per expression instead of --tau (K >= 1).", show_default=False),
    zero_shot: bool = typer.Option(False, "--zero-shot", help="This is a zero-shot evaluation: warn if the model was trained on this dataset or on another split of its benchmark.", show_default=False),
    device: str = opt.device_option(),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Expressions per forward pass (>= 1; results do not depend on it)."),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="Text encoder directory, if the checkpoint's has moved.", show_default=False),
    text_cache: Optional[Path] = typer.Option(None, "--text-cache", help="Text-feature cache directory.", show_default=False),
    overwrite: bool = opt.overwrite_option(),
    quiet: bool = opt.quiet_option(),
    old_dataset: Optional[Path] = opt.deprecated_alias("--dataset"),
) -> None:
    from rich.console import Console

    from rvoskit.format.outputs import claim_output, track_paths
    from rvoskit.progress import progress_bar
    from rvoskit.selection.scoring import predict

    console = Console(stderr=True)
    if old_dataset is not None:
        # the old form: rvoskit score RUN_OR_FILE --dataset DS
        opt.warn_deprecated("score RUN_OR_FILE --dataset DS", "score DS --checkpoint RUN_OR_FILE")
        if checkpoint is not None and dataset is not None:
            raise RvosError("give the checkpoint once: score DS --checkpoint RUN_OR_FILE", item="--checkpoint")
        checkpoint, dataset = checkpoint or dataset, old_dataset
    if dataset is None:
        raise RvosError("give the dataset to score: rvoskit score DATASET --checkpoint RUN_OR_FILE --tracks NAME=DIR --out PRED")
    if checkpoint is None:
        raise RvosError("give the model: --checkpoint RUN_OR_FILE (a run directory, RUN/best, or a .pt file)", item="--checkpoint")
    from rvoskit.selection.checkpoint import resolve_checkpoint

    ckpt_file = resolve_checkpoint(checkpoint)  # a missing checkpoint is reported before anything else
    ckpt_input = checkpoint if checkpoint.exists() else checkpoint.parent  # RUN/best, RUN/last: the run
    claim_output(out, kind="predictions", inputs=[dataset, ckpt_input, *track_paths(tracks)], overwrite=overwrite)
    dev = opt.resolve_device(device)
    with progress_bar(label="{task.description}", console=console, disable=quiet) as bar:
        tasks: dict = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task({"text": "text features", "videos": "videos"}[phase], total=total)
            bar.update(tasks[phase], completed=done, total=total)

        def warn(msg: str) -> None:
            bar.console.print("[yellow]warning:[/] ", end="", highlight=False)
            bar.console.print(msg, markup=False, highlight=False)

        res = predict(
            ckpt_file,
            dataset,
            tracks,
            out,
            tau=tau,
            top_k=top_k,
            device=dev,
            batch_size=batch_size,
            text_encoder=text_encoder,
            text_cache=text_cache,
            overwrite=overwrite,
            zero_shot=zero_shot,
            warn=warn,
            progress=progress,
        )
    if not quiet:
        console.print(
            f"[green]done[/]: {res['expressions']} expressions in {res['videos']} videos, {res['selected_tracks']} tracks selected, "
            f"{res['empty_expressions']} expressions with no track -> {out}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Register ``rvoskit score`` on the root app."""
    app.command("score", help=HELP, no_args_is_help=True)(score_command)
