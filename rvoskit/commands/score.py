"""``rvoskit score``: apply a trained selection model to track stores and write predictions."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = """Score every (expression, track) with a trained selection model, select tracks and write predictions.

A track is selected when its probability is above [bold]--tau[/] (0.5, SOLA's default), or, with [bold]--top-k[/] K, the K best tracks of each expression are. The selected tracks' masks are OR-merged per frame; an expression with no selected track gets an empty mask on every frame.

Writes OUT/predictions.parquet (one row per expression and frame; read by [bold]rvoskit eval[/], turned into submission zips by [bold]rvoskit export[/]), OUT/predictions.json and OUT/scores.parquet (expression_id, video_id, source, track_id, logit, score, selected).

[bold]Examples[/]

[cyan]rvoskit score runs/sola --dataset data/mevis_valid --tracks grid=tracks/valid_grid --tracks gdino=tracks/valid_gdino --out preds/sola_valid[/]

[cyan]rvoskit score runs/sola/checkpoints/epoch_015.pt --dataset data/mevis_valid_u --tracks grid=tracks/valid_u_grid --out preds/top1 --top-k 1 --device cuda:0[/]
"""


def score_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file, or a run directory (its newest checkpoint)."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset whose expressions are scored (common format)."),
    tracks: list[str] = typer.Option(..., "--tracks", help="Track store, NAME=DIR or DIR; repeat for several sources."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions directory to create."),
    tau: float = typer.Option(0.5, "--tau", help="Select tracks with sigmoid(logit) > tau."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Select the K best tracks per expression instead of --tau."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda:N."),
    batch_size: int = typer.Option(16, "--batch-size", help="Expressions per forward pass."),
    text_encoder: Path | None = typer.Option(None, "--text-encoder", help="Text encoder directory, if the checkpoint's has moved."),
    text_cache: Path | None = typer.Option(None, "--text-cache", help="Text-feature cache directory."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    from rich.console import Console
    from rvoskit.progress import progress_bar

    from rvoskit.selection.scoring import predict

    console = Console(stderr=True)
    from rvoskit.format.outputs import claim_output, track_paths

    claim_output(out, kind="predictions", inputs=[checkpoint, dataset, *track_paths(tracks), text_encoder], overwrite=overwrite)
    with progress_bar(label="{task.description}", console=console) as bar:
        tasks: dict = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task({"text": "text features", "videos": "videos"}[phase], total=total)
            bar.update(tasks[phase], completed=done, total=total)

        res = predict(
            checkpoint,
            dataset,
            tracks,
            out,
            tau=tau,
            top_k=top_k,
            device=device,
            batch_size=batch_size,
            text_encoder=text_encoder,
            text_cache=text_cache,
            overwrite=overwrite,
            progress=progress,
        )
    console.print(
        f"[green]done[/]: {res['expressions']} expressions in {res['videos']} videos, {res['selected_tracks']} tracks selected, "
        f"{res['empty_expressions']} expressions with no track -> {out}"
    )


def register(app: typer.Typer) -> None:
    """Register ``rvoskit score`` on the root app."""
    app.command("score", help=HELP, no_args_is_help=True)(score_command)
