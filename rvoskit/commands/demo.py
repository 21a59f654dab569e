"""``rvoskit demo``: the whole pipeline on the bundled real example, one stage after another.

Composes the stage functions as a user's script would (commands do not import each other):
convert -> validate -> info -> tracks generate -> pseudolabel -> corrupt -> train -> score -> eval -> viz.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import typer
from rich.table import Table

from rvoskit.commands._common import console
from rvoskit.errors import RvosError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "refdavis-judo"


def _stages(out: Path, example: Path, checkpoint: Path | None, config: str, grounding: Path | None,
            text_encoder: Path | None, epochs: int) -> list[tuple[str, Callable[[], str]]]:
    ds, tracks, labels = out / "dataset", out / "tracks", out / "labels"
    noisy, run, preds, evald, viz = out / "dataset-gaussian_noise-5", out / "train", out / "predictions", out / "eval", out / "viz"

    def convert() -> str:
        from rvoskit.datasets.refdavis import convert_refdavis

        convert_refdavis(example, "val", ds, overwrite=True)
        return str(ds)

    def validate() -> str:
        from rvoskit.format.validate import validate_dataset

        problems = validate_dataset(ds)
        if problems:
            raise RvosError("the converted example is not valid: " + "; ".join(problems[:5]), file=ds)
        return "valid"

    def info() -> str:
        from rvoskit.datasets.info import dataset_info

        i = dataset_info(ds)
        (out / "info").mkdir(exist_ok=True)
        (out / "info" / "info.json").write_text(json.dumps(i, indent=2))
        c = i["counts"]
        return f"{c['videos']} video, {c['frames']} frames, {c['objects']} objects, {c['expressions']} expressions"

    def generate() -> str:
        from rvoskit.tracks.generate import TrackOptions, generate_tracks
        from rvoskit.tracks.sam2_model import ModelSpec

        model = ModelSpec(config=config, checkpoint=str(checkpoint) if checkpoint else None,
                          image_size=None if checkpoint else 256)
        prompts = ("gt", "grid", "grounded") if grounding else ("gt", "grid")
        if checkpoint:  # SOLA's settings
            opts = TrackOptions(prompts=prompts, grounding_model=str(grounding) if grounding else None)
        else:  # random weights pass no real quality threshold: keep every grid mask, few of them, to exercise the path
            opts = TrackOptions(prompts=prompts, prompt_interval=8, points_per_side=4, pred_iou_thresh=0.0,
                                stability_score_thresh=0.0, max_tracks=6)
        s = generate_tracks(ds, tracks, model=model, options=opts, threads=1)
        return f"{tracks} ({s['tracks']} tracks, {s['seconds_per_frame']} s/frame)"

    def label() -> str:
        from rvoskit.labels import pseudolabel

        s = pseudolabel({"demo": tracks}, ds, labels, resolution="native", overwrite=True)["summary"]
        return f"{labels} ({s['rows']} rows, {s['positives']} positive, {s['expressions_without_positive']} expressions without one)"

    def corrupt() -> str:
        from rvoskit.corrupt.video import corrupt_dataset

        corrupt_dataset(ds, noisy, corruption="gaussian_noise", severity=5, seed=0, overwrite=True)
        return str(noisy)

    def train() -> str:
        from rvoskit.selection.config import load_config
        from rvoskit.selection.training import train as train_model

        sets = [f"train.epochs={epochs}", "train.batch_size=4", "optim.lr=1e-4"]
        if text_encoder:
            sets.append(f"text.encoder={text_encoder}")
        cfg = load_config(None, sets)
        cfg["data"]["train"] = {"dataset": str(ds), "tracks": {"demo": str(tracks)}, "labels": str(labels)}
        cfg["data"]["valid"] = {"dataset": str(ds), "tracks": {"demo": str(tracks)}, "labels": str(labels)}
        r = train_model(cfg, run, overwrite=True, log=lambda s: None)
        return f"{run} ({r['epochs']} epochs, {r['parameters'] / 1e6:.2f} M parameters)"

    def score() -> str:
        from rvoskit.selection.checkpoint import list_checkpoints
        from rvoskit.selection.scoring import predict

        ckpt = list_checkpoints(run)[-1][1]
        predict(ckpt, ds, {"demo": str(tracks)}, preds, tau=0.5, text_encoder=text_encoder, overwrite=True)
        return str(preds)

    def evaluate() -> str:
        from rvoskit.metrics.evaluation import evaluate as run_eval
        from rvoskit.metrics.report import write_results

        r = run_eval(ds, preds, "mevis")
        write_results(r, evald, overwrite=True)
        s = r.summary
        return f"J&F {s['J&F']:.3f} (J {s['J']:.3f}, F {s['F']:.3f}), MeViS protocol"

    def visualise() -> str:
        from rvoskit.viz.render import render_dataset, render_predictions, render_tracks
        from rvoskit.viz.report import build_report

        render_dataset(ds, viz / "dataset", overwrite=True)
        render_tracks(tracks, ds, viz / "tracks", overwrite=True)
        render_predictions(preds, viz / "predictions", dataset=ds, overwrite=True, video="gif")
        report = out / "report.html"
        build_report([viz, labels, run, evald, out / "info"], report, title="rvoskit demo")
        return str(report)

    return [("convert", convert), ("validate", validate), ("info", info), ("tracks generate", generate),
            ("pseudolabel", label), ("corrupt", corrupt), ("train", train), ("score", score), ("eval", evaluate),
            ("viz", visualise)]


def demo(
    out: Path = typer.Option(Path("rvoskit-demo"), "--out", "-o", help="Output folder (one subfolder per stage)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="SAM2 checkpoint (.pt); without it SAM2 has random weights."),
    config: str = typer.Option("sam2.1_hiera_t", "--config", help="SAM2 config matching the checkpoint (e.g. sam2.1_hiera_l)."),
    grounding_model: Path = typer.Option(None, "--grounding-model", help="Local Grounding DINO directory (adds grounded tracks)."),
    text_encoder: Path = typer.Option(None, "--text-encoder", help="Local transformers text encoder (default: bundled MiniLM)."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Training epochs."),
    example: Path = typer.Option(EXAMPLE, "--example", help="Native Ref-DAVIS17 root to run on."),
) -> None:
    """Run the whole pipeline on the bundled real example (16 DAVIS judo frames, 8 expressions):
    convert, validate, info, tracks generate, pseudolabel, corrupt, train, score, eval, viz.

    Without [bold]--checkpoint[/] SAM2 runs with random weights: every stage runs for real, but the
    masks, labels and scores are meaningless.

    [bold]Examples[/]
      rvoskit demo --out rvoskit-demo
      rvoskit demo --checkpoint ckpt/sam2.1_hiera_large.pt --config sam2.1_hiera_l --out demo-real
    """
    from rvoskit.progress import progress_bar

    if not (example / "ImageSets").is_dir():
        raise RvosError("example not found (run from a clone of the repository or pass --example)", file=example)
    if checkpoint is None:
        console.print("[bold yellow]warning:[/] no --checkpoint: SAM2 runs with RANDOM weights, so tracks, labels and "
                      "scores are meaningless; every stage still runs for real.")
    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="demo", inputs=[example, checkpoint, grounding_model, text_encoder])
    out.mkdir(parents=True, exist_ok=True)
    stages = _stages(out, example, checkpoint, config, grounding_model, text_encoder, epochs)
    rows = []
    t_all = time.perf_counter()
    with progress_bar(console=console) as bar:
        task = bar.add_task("demo", total=len(stages))
        for name, fn in stages:
            bar.update(task, description=f"demo: {name}")
            t0 = time.perf_counter()
            result = fn()
            rows.append((name, time.perf_counter() - t0, result))
            bar.advance(task)
    t = Table(title=f"rvoskit demo ({time.perf_counter() - t_all:.0f} s)", header_style="bold")
    t.add_column("stage")
    t.add_column("time", justify="right")
    t.add_column("outputs")
    for name, secs, result in rows:
        t.add_row(name, f"{secs:.1f} s", result)
    console.print(t)
    (out / "demo.json").write_text(json.dumps([{"stage": n, "seconds": s, "outputs": r} for n, s, r in rows], indent=2))


def register(app: typer.Typer) -> None:
    """Register ``demo`` on the root app."""
    app.command("demo")(demo)
