"""``rvoskit demo``: the whole pipeline on the bundled real example, one stage after another.

Composes the stage functions as a user's script would (commands do not import each other):
convert -> validate -> info -> tracks generate -> pseudolabel -> corrupt -> train -> score -> eval -> viz.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.table import Table

from rvoskit.commands import _options as opt
from rvoskit.commands._common import console
from rvoskit.errors import RvosError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "refdavis-judo"


NO_VALIDATION = (
    "No validation split: the example is one video, so nothing can be held out. The selection model is "
    "trained on all of its expressions; its metrics (train/metrics.csv, curves.png) are training-set numbers, "
    "and the eval scores the same video: a check that every stage runs, not a held-out result."
)
RANDOM_NOTICE = (
    "SAM2 ran with RANDOM weights (no --checkpoint): the masks are meaningless; the files and shapes are real. "
    "Every stage ran for real on the example's frames; pass --checkpoint for meaningful tracks, labels and scores."
)


def _stages(out: Path, example: Path, checkpoint: Path | None, config: str, device: str, grounding: Path | None,
            text_encoder: Path | None, epochs: int, rows: list, headline: list) -> list[tuple[str, Callable[[], str]]]:
    """The demo's stages, in order: ``(name, function returning a one-line result)``. ``rows`` holds
    ``(stage, seconds, result)`` of the stages run so far; ``headline`` collects ``(what, value)``."""
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
        headline.append(("example", f"{c['videos']} video, {c['frames']} frames, {c['objects']} objects, {c['expressions']} expressions"))
        return f"{c['videos']} video, {c['frames']} frames, {c['objects']} objects, {c['expressions']} expressions"

    def generate() -> str:
        from rvoskit.tracks.generate import TrackOptions, generate_tracks
        from rvoskit.tracks.sam2_model import ModelSpec

        model = ModelSpec(config=config, checkpoint=str(checkpoint) if checkpoint else None,
                          image_size=None if checkpoint else 256, device=device)
        prompts = ("gt", "grid", "grounded") if grounding else ("gt", "grid")
        if checkpoint:  # SOLA's settings
            opts = TrackOptions(prompts=prompts, grounding_model=str(grounding) if grounding else None)
        else:  # random weights pass no real quality threshold: keep every grid mask, few of them, to exercise the path
            opts = TrackOptions(prompts=prompts, prompt_interval=8, points_per_side=4, pred_iou_thresh=0.0,
                                stability_score_thresh=0.0, max_tracks=6)
        with warnings.catch_warnings():  # the demo has said so once already
            warnings.filterwarnings("ignore", message="no SAM2 checkpoint given")
            s = generate_tracks(ds, tracks, model=model, options=opts, threads=1)
        n = s["tracks"]  # the store is new: the demo refuses an existing OUT and --overwrite empties it
        spf = f"{s['seconds_per_frame']:.2f} s/frame" if s.get("seconds_per_frame") else "no frame processed"
        headline.append(("candidate tracks", f"{n} (SAM2 {config}, {device}{', random weights' if checkpoint is None else ''})"))
        return f"{tracks} ({n} tracks, {s['videos_processed']} video generated, {spf})"

    def label() -> str:
        from rvoskit.labels import pseudolabel

        s = pseudolabel({"demo": tracks}, ds, labels, resolution="native", overwrite=True)["summary"]
        headline.append(("positive pseudo-labels", f"{s['positives']} of {s['rows']} (expression, track) pairs"))
        return f"{labels} ({s['rows']} rows, {s['positives']} positive, {s['expressions_without_positive']} expressions without one)"

    def corrupt() -> str:
        from rvoskit.corrupt.video import corrupt_dataset

        corrupt_dataset(ds, noisy, corruption="gaussian_noise", severity=5, seed=0, overwrite=True)
        return f"{noisy} (gaussian_noise, severity 5)"

    def train() -> str:
        from rvoskit.selection.config import load_config
        from rvoskit.selection.training import train as train_model

        sets = [f"train.epochs={epochs}", "train.batch_size=4", "optim.lr=1e-4"]
        if text_encoder:
            sets.append(f"text.encoder={text_encoder}")
        cfg = load_config(None, sets)
        cfg["data"]["train"] = {"judo": {"dataset": str(ds), "tracks": {"demo": str(tracks)}, "labels": str(labels)}}
        cfg["data"]["valid"] = {}
        cfg["data"]["valid_fraction"] = 0.0
        warned: list[str] = []
        # random SAM2 weights give no track that matches the ground truth: train anyway and say so
        r = train_model(cfg, run, overwrite=True, allow_no_positives=checkpoint is None,
                        log=lambda s: warned.append(s) if s.startswith("warning") else None)
        for w in warned:
            headline.append(("training", w.removeprefix("warning: ")))
        return f"{run} ({r['epochs']} epochs, {r['parameters'] / 1e6:.2f} M parameters; no validation split)"

    def score() -> str:
        from rvoskit.selection.checkpoint import list_checkpoints
        from rvoskit.selection.scoring import predict

        ckpt = list_checkpoints(run)[-1][1]
        r = predict(ckpt, ds, {"demo": str(tracks)}, preds, tau=0.5, text_encoder=text_encoder, overwrite=True,
                    device=device)
        headline.append(("selected tracks", f"{r['selected_tracks']} for {r['expressions']} expressions "
                                            f"({r['empty_expressions']} with none)"))
        return str(preds)

    def evaluate() -> str:
        from rvoskit.metrics.evaluation import evaluate as run_eval
        from rvoskit.metrics.report import write_results

        r = run_eval(ds, preds, "ref-davis")
        write_results(r, evald, overwrite=True)
        s = r.summary
        text = f"J&F {s['J&F']:.3f} (J {s['J']:.3f}, F {s['F']:.3f}), ref-davis protocol"
        headline.append(("J&F (ref-davis protocol: 4 expression sets, mean)", f"{s['J&F']:.3f} (J {s['J']:.3f}, F {s['F']:.3f})"))
        return text

    def visualise() -> str:
        from rvoskit.viz.render import render_dataset, render_predictions, render_tracks
        from rvoskit.viz.report import build_report

        t0 = time.perf_counter()
        render_dataset(ds, viz / "dataset", overwrite=True)
        render_tracks(tracks, ds, viz / "tracks", overwrite=True)
        render_predictions(preds, viz / "predictions", dataset=ds, overwrite=True, video="gif")
        report = out / "report.html"
        stage_rows = [(n, f"{sec:.1f} s", res) for n, sec, res in rows]
        stage_rows.append(("viz", f"{time.perf_counter() - t0:.1f} s", f"{viz} (contact sheets, GIFs) and this report"))
        build_report(
            [viz, labels, run, evald, out / "info"], report, title="rvoskit demo",
            notice=RANDOM_NOTICE if checkpoint is None else None,
            lead_tables=[("What ran (rvoskit demo)", ("stage", "time", "outputs"), stage_rows),
                         ("Headline numbers", ("what", "value"), headline)],
            notes=[NO_VALIDATION],
        )
        return str(report)

    return [("convert", convert), ("validate", validate), ("info", info), ("tracks generate", generate),
            ("pseudolabel", label), ("corrupt", corrupt), ("train", train), ("score", score), ("eval", evaluate),
            ("viz", visualise)]


def demo(
    out: Path = opt.out_option("Output folder (one subfolder per stage).", required=False, default=Path("rvoskit-demo")),
    overwrite: bool = opt.overwrite_option("Replace an existing demo folder (every stage runs again)."),
    quiet: bool = opt.quiet_option(),
    checkpoint: Optional[Path] = opt.checkpoint_option("SAM2 checkpoint (.pt); without it SAM2 has random weights."),
    sam2_config: Optional[str] = opt.sam2_config_option(),
    config_old: Optional[str] = opt.deprecated_alias("--config"),
    device: str = opt.device_option(help="SAM2 and the selection model: cpu, cuda:N, or auto (cuda:0 when CUDA is available, else cpu)."),
    grounding_model: Optional[Path] = typer.Option(None, "--grounding-model", help="Local Grounding DINO directory (adds grounded tracks)."),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="Local transformers text encoder (default: bundled MiniLM)."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Training epochs."),
    example: Path = typer.Option(EXAMPLE, "--example", help="Native Ref-DAVIS17 root to run on."),
) -> None:
    """Run the whole pipeline on the bundled real example (16 DAVIS judo frames, 8 expressions):
    convert, validate, info, tracks generate, pseudolabel, corrupt, train, score, eval, viz.

    Without [bold]--checkpoint[/] SAM2 runs with random weights: every stage runs for real, but the
    masks, labels and scores are meaningless. The example is Ref-DAVIS, so it is scored with the
    ref-davis protocol; it has one video, so there is no validation split. OUT/report.html opens with
    the stages that ran and the headline numbers.

    [bold]Examples[/]
      rvoskit demo --out rvoskit-demo
      rvoskit demo --checkpoint ckpt/sam2.1_hiera_large.pt --device cuda:0 --out demo-real
    """
    from rvoskit.progress import progress_bar

    if not (example / "ImageSets").is_dir():
        raise RvosError("example not found (run from a clone of the repository or pass --example)", file=example)
    config = opt.resolve_sam2_config(opt.merge_alias(sam2_config, config_old, old="--config", new="--sam2-config"), checkpoint)
    device = opt.resolve_device(device)
    from rvoskit.format.outputs import claim_output

    claim_output(out, kind="demo", inputs=[example, checkpoint, grounding_model, text_encoder], overwrite=overwrite)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RvosError("output exists; pass --overwrite to replace it (every stage runs again)", file=out)
        shutil.rmtree(out)
    if checkpoint is None:
        console.print("[bold yellow]warning:[/] no --checkpoint: SAM2 runs with RANDOM weights, so tracks, labels and "
                      "scores are meaningless; every stage still runs for real.")
    out.mkdir(parents=True, exist_ok=True)
    rows: list = []
    headline: list = []
    stages = _stages(out, example, checkpoint, config, device, grounding_model, text_encoder, epochs, rows, headline)
    t_all = time.perf_counter()
    with progress_bar(console=console, disable=quiet) as bar:
        task = bar.add_task("demo", total=len(stages))
        for name, fn in stages:
            bar.update(task, description=f"demo: {name}")
            t0 = time.perf_counter()
            result = fn()
            rows.append((name, time.perf_counter() - t0, result))
            bar.advance(task)
    (out / "demo.json").write_text(json.dumps([{"stage": n, "seconds": s, "outputs": r} for n, s, r in rows], indent=2))
    if quiet:
        return
    t = Table(title=f"rvoskit demo ({time.perf_counter() - t_all:.0f} s)", header_style="bold")
    t.add_column("stage")
    t.add_column("time", justify="right")
    t.add_column("outputs")
    for name, secs, result in rows:
        t.add_row(name, f"{secs:.1f} s", result)
    console.print(t)
    for what, value in headline:
        console.print(f"  {what}: {value}", highlight=False)
    console.print(f"[dim]{NO_VALIDATION}[/]")
    console.print(f"open {out / 'report.html'}")


def register(app: typer.Typer) -> None:
    """Register ``demo`` on the root app."""
    app.command("demo")(demo)
