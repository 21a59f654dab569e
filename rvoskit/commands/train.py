"""``rvoskit train``: train the language-aligned track selection model (SOLA)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from rvoskit.commands import _options as opt
from rvoskit.errors import RvosError

HELP = """Train the track selection model (SOLA's model) on object tokens and pseudo-labels, on one data set or several at once.

One sample is one expression with all candidate tracks of its video from every [bold]--tracks[/] store (SOLA trains on GT + grid tracks). Loss: BCE (positive weight 1.5) + 0.3 x alignment loss; AdamW 5e-6, ReduceLROnPlateau on the validation loss, gradient clipping 1.0, seed 42 (SOLA's defaults; change them in a YAML/TOML [bold]--config[/] file or with [bold]--set[/] section.key=value).

Several training sets (SOLA's MeViS + Ref-YouTube-VOS): repeat [bold]--train[/] NAME:dataset=DIR,tracks=SRC=DIR+SRC=DIR,labels=DIR[,weight=W] (or put named sets under data.train in the config). weight = how often each expression of the set is drawn per epoch (1 = proportional to the set's size). [bold]--valid[/] takes the same form; metrics are reported per set and overall.

Writes RUN/config.yaml, RUN/run.json (data sets seen, last and best epoch), RUN/checkpoints/epoch_NNN.pt (the last one with optimizer state; by default only the last and the best are kept), RUN/metrics.csv + metrics.json and RUN/curves.png.

[bold]Examples[/]

[cyan]rvoskit train data/mevis_train --tracks gt=tracks/gt --tracks grid=tracks/grid --labels labels/train --valid-dataset data/mevis_valid_u --valid-tracks grid=tracks/valid_grid --valid-labels labels/valid_u --out runs/sola --device cuda:0[/]

Joint training: [cyan]rvoskit train --train mevis:dataset=data/mevis_train,tracks=gt=tr/mevis_gt+grid=tr/mevis_grid,labels=lb/mevis --train ytvos:dataset=data/ytvos_train,tracks=gt=tr/yt_gt+grid=tr/yt_grid,labels=lb/ytvos --out runs/joint[/]

SOLA's 32.98 M model (RoBERTa-large text features): add [cyan]--text-encoder models/all-roberta-large-v1[/]

Continue a run: [cyan]rvoskit train --out runs/sola --resume --epochs 20[/]
"""


def parse_set_spec(spec: str, option: str) -> tuple[str, dict]:
    """``NAME:dataset=DIR,tracks=SRC=DIR+SRC=DIR,labels=DIR[,weight=W]`` -> ``(NAME, {dataset, tracks, labels, weight})``.

    ``tracks`` entries are ``SRC=DIR`` or ``DIR`` (name = folder name), joined by ``+``. Paths holding
    ``,`` or ``+`` need the config-file form (``data.train.NAME``).

    Raises:
        RvosError: no ``NAME:``, an unknown or repeated key, a missing value.
    """
    from rvoskit.selection.config import SET_KEYS
    from rvoskit.selection.data import parse_track_sources

    name, sep, rest = spec.partition(":")
    if not sep or not name.strip() or not rest:
        raise RvosError(f"{spec!r} is not NAME:dataset=DIR,tracks=SRC=DIR+SRC=DIR,labels=DIR", item=option)
    out: dict = {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not value:
            raise RvosError(f"{part!r} in {spec!r} is not key=value (keys: {', '.join(SET_KEYS)})", item=option)
        if key not in SET_KEYS:
            raise RvosError(f"unknown key {key!r} in {spec!r} (keys: {', '.join(SET_KEYS)})", item=option)
        if key in out:
            raise RvosError(f"{key!r} given twice in {spec!r}", item=option)
        if key == "tracks":
            out[key] = {k: str(Path(v).resolve()) for k, v in parse_track_sources(value.split("+")).items()}
        elif key == "weight":
            out[key] = value
        else:
            out[key] = str(Path(value).resolve())
    return name.strip(), out


def train_command(
    dataset: Optional[Path] = typer.Argument(None, help="Training dataset (common format); or give several sets with --train.", show_default=False, metavar="DATASET"),
    out: Path = opt.out_option("Run directory (checkpoints, metrics, curves)."),
    tracks: list[str] = opt.tracks_option("Training track store of DATASET, NAME=DIR or DIR (name = folder name); repeat for several sources."),
    labels: Optional[Path] = opt.labels_option("Pseudo-labels directory (labels.parquet) of DATASET's stores."),
    train_sets: list[str] = typer.Option([], "--train", metavar="NAME:dataset=DIR,tracks=SRC=DIR+...,labels=DIR[,weight=W]", help="A named training set (repeat for joint training); weight = draws per expression per epoch (default 1: proportional)."),
    valid_dataset: Optional[Path] = typer.Option(None, "--valid-dataset", help="Validation dataset.", show_default=False),
    valid_tracks: list[str] = typer.Option([], "--valid-tracks", metavar="NAME=DIR", help="Validation track store(s), NAME=DIR.", show_default=False),
    valid_labels: Optional[Path] = typer.Option(None, "--valid-labels", help="Validation pseudo-labels directory.", show_default=False),
    valid_sets: list[str] = typer.Option([], "--valid", metavar="NAME:dataset=DIR,tracks=SRC=DIR+...,labels=DIR", help="A named validation set (repeatable; metrics per set and overall)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML or TOML training config file (any subset of the keys).", show_default=False),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a config value: section.key=value (value parsed as YAML)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Shortcut for --set train.epochs=N (N >= 1).", show_default=False),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Shortcut for --set train.batch_size=N (expressions per step, N >= 1).", show_default=False),
    keep_checkpoints: Optional[int] = typer.Option(None, "--keep-checkpoints", min=0, help="Keep the N newest epoch checkpoints plus the best (default 1: the last and the best; 0 keeps all).", show_default=False),
    moment_sampling: Optional[int] = typer.Option(None, "--moment-sampling", min=0, help="MeViS-M (TGL): crop each training expression's object tokens to N frames, half inside its moment (shortcut for --set train.moment_sampling=N; 0: all frames).", show_default=False),
    allow_no_positives: bool = typer.Option(False, "--allow-no-positives", help="Train even when a training set has no positive label (normally refused: such a model learns to select nothing).", show_default=False),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="Local transformers text encoder directory (default: bundled MiniLM).", show_default=False),
    text_cache: Optional[Path] = typer.Option(None, "--text-cache", help="Text-feature cache directory (shared by every data set and run).", show_default=False),
    device: str = opt.device_option(),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out.", show_default=False),
    overwrite: bool = opt.overwrite_option("Delete an existing run in --out and start again."),
    quiet: bool = opt.quiet_option(),
    old_dataset: Optional[Path] = opt.deprecated_alias("--dataset"),
) -> None:
    from rich.console import Console
    from rich.progress import TextColumn

    from rvoskit.format.outputs import claim_output
    from rvoskit.progress import progress_bar
    from rvoskit.selection.config import apply_override, data_sets, load_config, validate_config
    from rvoskit.selection.data import parse_track_sources
    from rvoskit.selection.training import train

    console = Console(stderr=True)
    dataset = opt.merge_alias(dataset, old_dataset, old="--dataset DS", new="train DS")
    if config is None and resume and (out / "config.yaml").is_file():
        config = out / "config.yaml"
    cfg = load_config(config, overrides)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("keep_last", keep_checkpoints), ("moment_sampling", moment_sampling)):
        if value is not None:
            cfg["train"][key] = value
    if text_encoder is not None:
        cfg["text"]["encoder"] = str(text_encoder.resolve())
    if text_cache is not None:
        cfg["text"]["cache_dir"] = str(text_cache.resolve())
    for role, ds, tr, lb, specs in (("train", dataset, tracks, labels, train_sets), ("valid", valid_dataset, valid_tracks, valid_labels, valid_sets)):
        given = ds is not None or bool(tr) or lb is not None
        if given and specs:
            what = "DATASET --tracks --labels" if role == "train" else "--valid-dataset --valid-tracks --valid-labels"
            raise RvosError(f"give the {role} data either as {what} or as --{role} NAME:..., not both", item=f"--{role}")
        if specs:
            named = {}
            for spec in specs:
                name, s = parse_set_spec(spec, f"--{role}")
                if name in named:
                    raise RvosError(f"set name {name!r} given twice", item=f"--{role}")
                named[name] = s
            cfg["data"][role] = named
        elif given:
            section = cfg["data"][role]
            current = next(iter(data_sets(cfg, role, check_paths=False).values()), {}) if section else {}
            spec = {
                "dataset": str(ds.resolve()) if ds is not None else current.get("dataset"),
                "tracks": {k: str(Path(v).resolve()) for k, v in parse_track_sources(tr).items()} if tr else current.get("tracks", {}),
                "labels": str(lb.resolve()) if lb is not None else current.get("labels"),
            }
            cfg["data"][role] = {next(iter(data_sets({"data": {role: spec}}, role, check_paths=False))): spec}
    validate_config(cfg)
    sets = {role: data_sets(cfg, role, check_paths=False) for role in ("train", "valid")}
    if not sets["train"]:
        raise RvosError("give the training data: DATASET --tracks NAME=DIR --labels DIR, or --train NAME:dataset=DIR,tracks=SRC=DIR,labels=DIR (or a --config with data.train)")
    inputs = [p for role in sets.values() for s in role.values() for p in (s["dataset"], s["labels"], *s["tracks"].values())]
    claim_output(out, kind="run", inputs=inputs, overwrite=overwrite)
    dev = opt.resolve_device(device)

    with progress_bar(TextColumn("{task.fields[info]}"), label="{task.description}", console=console, disable=quiet) as bar:
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

        def log(msg: str) -> None:
            if msg.startswith("warning:"):
                bar.console.print(f"[yellow]warning:[/]{escape(msg[len('warning:'):])}", highlight=False, markup=True)
            elif not quiet:
                bar.console.print(msg, highlight=False, markup=False)

        result = train(cfg, out, resume=resume, overwrite=overwrite, device=dev, allow_no_positives=allow_no_positives, progress=progress, log=log)
    if not quiet:
        last = result["metrics"][-1] if result["metrics"] else {}
        best = f"; best epoch {result['best'][0]} ({result['best'][1]} {result['best'][2]:.4f})" if result.get("best") else ""
        console.print(f"[green]done[/]: {result['epochs']} epochs in {out} (last: " + ", ".join(f"{k} {last[k]:.4f}" for k in ("train_loss", "valid_loss", "f1") if k in last) + ")" + best, highlight=False)


def register(app: typer.Typer) -> None:
    """Register ``rvoskit train`` on the root app."""
    app.command("train", help=HELP, no_args_is_help=True)(train_command)
