"""``rvoskit convert {mevis,refytvos,refdavis,mevis-m}``: native datasets -> common format."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from rvoskit.commands import _options as opt
from rvoskit.commands._common import print_dataset_summary
from rvoskit.format.outputs import claim_output
from rvoskit.commands._executor import executor_option, ray_address_option

convert_app = typer.Typer(no_args_is_help=True, help="Convert a native RVOS dataset split to the rvoskit common format.")

ROOT = typer.Argument(..., help="Native dataset root.", exists=False)
OUT = typer.Option(..., "--out", "-o", help="Output dataset directory (written atomically).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output directory.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")


def _done(out: Path, t0: float, quiet: bool) -> None:
    if not quiet:
        print_dataset_summary(out, time.perf_counter() - t0)


@convert_app.command("mevis")
def mevis(
    root: Path = ROOT,
    split: str = opt.split_option("train", help="train, valid_u (masks) or valid, test (no masks)."),
    split_old: Optional[str] = opt.deprecated_alias("-s"),
    out: Path = OUT,
    verify_sha: bool = typer.Option(False, "--verify-sha", help="Check mask_dict.json against the published sha256 (train, valid_u)."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert a MeViS split (JPEGImages, meta_expressions.json, mask_dict.json).

    [bold]Examples[/]
      rvoskit convert mevis /data/mevis --split train --out data/mevis-train
      rvoskit convert mevis /data/mevis --split valid_u --out data/mevis-valid_u --verify-sha
    """
    from rvoskit.datasets.mevis import convert_mevis

    split = opt.merge_alias(split, split_old, old="-s", new="--split", default="train")
    claim_output(out, kind="dataset", inputs=[root], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_mevis(root, split, out, verify_sha=verify_sha, overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


@convert_app.command("refytvos")
def refytvos(
    root: Path = ROOT,
    split: str = opt.split_option("train", help="train (masks), valid or test (expressions only)."),
    split_old: Optional[str] = opt.deprecated_alias("-s"),
    out: Path = OUT,
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes decoding annotation PNGs."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert a Ref-YouTube-VOS split (meta_expressions/, <split>/JPEGImages, train Annotations + meta.json).

    The valid meta also lists the test videos; they are left out (using meta_expressions/test, or
    the absence of their frame folder).

    [bold]Examples[/]
      rvoskit convert refytvos /data/ref-youtube-vos --split train --out data/rytvos-train --workers 8
      rvoskit convert refytvos /data/ref-youtube-vos --split valid --out data/rytvos-valid
    """
    from rvoskit.datasets.refytvos import convert_refytvos

    split = opt.merge_alias(split, split_old, old="-s", new="--split", default="train")
    claim_output(out, kind="dataset", inputs=[root], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_refytvos(root, split, out, workers=workers, executor=executor, ray_address=ray_address, overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


@convert_app.command("refdavis")
def refdavis(
    root: Path = ROOT,
    split: str = opt.split_option("val", help="train or val (ImageSets/2017/<split>.txt)."),
    split_old: Optional[str] = opt.deprecated_alias("-s"),
    out: Path = OUT,
    text_dir: Path = typer.Option(None, "--text-dir", help="Folder of Davis17_annot*.txt (default: <root>/davis_text_annotations or beside root)."),
    davis_annotations: str = typer.Option("semi-supervised", "--davis-annotations", help="semi-supervised (Annotations/480p) or unsupervised."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes decoding annotation PNGs."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert Ref-DAVIS17: a DAVIS 2017 split plus the four Ref-DAVIS text files.

    Each object gets 4 expressions (annotator 1/2 x first-frame/full-video) keeping annotator and
    kind; void pixels (255) are kept apart in void.parquet.

    [bold]Examples[/]
      rvoskit convert refdavis /data/DAVIS --split val --out data/refdavis-val
      rvoskit convert refdavis /data/DAVIS --split val --davis-annotations unsupervised --out data/refdavis-val-unsup
    """
    from rvoskit.datasets.refdavis import convert_refdavis

    split = opt.merge_alias(split, split_old, old="-s", new="--split", default="val")
    claim_output(out, kind="dataset", inputs=[root, text_dir], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_refdavis(root, split, out, text_dir=text_dir, annotations=davis_annotations, workers=workers,
                     executor=executor, ray_address=ray_address,
                     overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


@convert_app.command("mevis-m")
def mevis_m(
    root: Path = ROOT,
    split: str = opt.split_option("valid_u", help="MeViS split the spans annotate."),
    split_old: Optional[str] = opt.deprecated_alias("-s"),
    overlay: Path = typer.Option(..., "--overlay", help="MeViS-M span file (see README: MeViS-M overlay)."),
    overlay_format: str = typer.Option("rvoskit-v1", "--overlay-format", help="Reader of the span file."),
    out: Path = OUT,
    verify_sha: bool = typer.Option(False, "--verify-sha", help="Check mask_dict.json against the published sha256."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert a MeViS split and add MeViS-M temporal spans (moments.parquet).

    [bold]Example[/]
      rvoskit convert mevis-m /data/mevis --split valid_u --overlay spans.json --out data/mevism-valid_u
    """
    from rvoskit.datasets.mevis_m import convert_mevis_m

    split = opt.merge_alias(split, split_old, old="-s", new="--split", default="valid_u")
    claim_output(out, kind="dataset", inputs=[root, overlay], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_mevis_m(root, split, out, overlay=overlay, overlay_format=overlay_format, verify_sha=verify_sha,
                    overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


def register(app: typer.Typer) -> None:
    """Register ``convert`` on the root app."""
    app.add_typer(convert_app, name="convert")
