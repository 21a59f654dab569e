"""``rvoskit train``: train the language-aligned track selection model (SOLA)."""

from __future__ import annotations

from pathlib import Path

import typer

from rvoskit.errors import RvosError

HELP = """Train the track selection model (SOLA's model) on object tokens and pseudo-labels.

One sample is one expression with all candidate tracks of its video from every [bold]--tracks[/] store (SOLA trains on GT + grid tracks). Loss: BCE (positive weight 1.5) + 0.3 x alignment loss; AdamW 5e-6, ReduceLROnPlateau on the validation loss, gradient clipping 1.0, seed 42 (SOLA's defaults; change them in a YAML/TOML [bold]--config[/] file or with [bold]--set[/] section.key=value).

Writes RUN/config.yaml, RUN/checkpoints/epoch_NNN.pt (every epoch, with optimizer state), RUN/metrics.csv + metrics.json (loss, accuracy, precision, recall, F1 per epoch) and RUN/curves.png.

[bold]Examples[/]

[cyan]rvoskit train --dataset data/mevis_train --tracks gt=tracks/gt --tracks grid=tracks/grid --labels labels/train --valid-dataset data/mevis_valid_u --valid-tracks grid=tracks/valid_grid --valid-labels labels/valid_u --out runs/sola --device cuda:0[/]

SOLA's 32.98 M model (RoBERTa-large text features): add [cyan]--text-encoder models/all-roberta-large-v1[/]

[cyan]rvoskit train ... --out runs/small --config small.yaml --set optim.lr=1e-4 --set train.batch_size=16[/]

Continue a run: [cyan]rvoskit train --out runs/sola --resume --set train.epochs=20[/]
"""


def train_command(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, metrics, curves)."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Training dataset (common format)."),
    tracks: list[str] = typer.Option([], "--tracks", help="Training track store, NAME=DIR or DIR (name = folder name); repeat for several sources."),
    labels: Path | None = typer.Option(None, "--labels", help="Pseudo-labels directory (labels.parquet) of the training stores."),
    valid_dataset: Path | None = typer.Option(None, "--valid-dataset", help="Validation dataset."),
    valid_tracks: list[str] = typer.Option([], "--valid-tracks", help="Validation track store(s), NAME=DIR."),
    valid_labels: Path | None = typer.Option(None, "--valid-labels", help="Validation pseudo-labels directory."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML or TOML config file (any subset of the keys)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value: section.key=value (value parsed as YAML)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Shortcut for --set train.epochs=N."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Shortcut for --set train.batch_size=N (expressions per step)."),
    text_encoder: Path | None = typer.Option(None, "--text-encoder", help="Local transformers text encoder directory (default: bundled MiniLM)."),
    text_cache: Path | None = typer.Option(None, "--text-cache", help="Text-feature cache directory."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda:N (bfloat16 autocast on CUDA)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete a non-empty --out and start again."),
) -> None:
    from rich.console import Console
    from rich.progress import TextColumn

    from rvoskit.progress import progress_bar

    from rvoskit.selection.config import load_config
    from rvoskit.selection.data import parse_track_sources
    from rvoskit.selection.training import train

    console = Console(stderr=True)
    if config is None and resume and (out / "config.yaml").is_file():
        config = out / "config.yaml"
    cfg = load_config(config, overrides)
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value is not None:
            cfg["train"][key] = value
    if text_encoder is not None:
        cfg["text"]["encoder"] = str(text_encoder.resolve())
    if text_cache is not None:
        cfg["text"]["cache_dir"] = str(text_cache.resolve())
    for split, ds, tr, lb in (("train", dataset, tracks, labels), ("valid", valid_dataset, valid_tracks, valid_labels)):
        if ds is not None:
            cfg["data"][split]["dataset"] = str(ds.resolve())
        if tr:
            cfg["data"][split]["tracks"] = {k: str(v.resolve()) for k, v in parse_track_sources(tr).items()}
        if lb is not None:
            cfg["data"][split]["labels"] = str(lb.resolve())
    if not cfg["data"]["train"]["dataset"]:
        raise RvosError("give the training data: --dataset, --tracks and --labels (or a --config with data.train)")

    with progress_bar(TextColumn("{task.fields[info]}"), label="{task.description}", console=console) as bar:
        tasks: dict = {}

        def progress(phase: str, done: int, total: int, info: dict) -> None:
            key = (phase, info.get("epoch"))
            if key not in tasks:
                label = {"text": "text features", "train": "train", "valid": "valid"}[phase]
                if info.get("epoch"):
                    label += f" epoch {info['epoch']}"
                tasks[key] = bar.add_task(label, total=total, info="")
            text = f"loss {info['loss']:.4f}" if "loss" in info else ""
            bar.update(tasks[key], completed=done, total=total, info=text)

        result = train(cfg, out, resume=resume, overwrite=overwrite, device=device, progress=progress, log=bar.console.print)
    last = result["metrics"][-1] if result["metrics"] else {}
    console.print(f"[green]done[/]: {result['epochs']} epochs in {out} (last: " + ", ".join(f"{k} {last[k]:.4f}" for k in ("train_loss", "valid_loss", "f1") if k in last) + ")")


def register(app: typer.Typer) -> None:
    """Register ``rvoskit train`` on the root app."""
    app.command("train", help=HELP, no_args_is_help=True)(train_command)
