"""``rvoskit convert {mevis,refytvos,refdavis,mevis-m,a2d,jhmdb,refcoco}``: native datasets -> common format."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from rvoskit.commands import _options as opt
from rvoskit.commands._common import print_dataset_summary
from rvoskit.format.outputs import claim_output
from rvoskit.commands._options import executor_option, ray_address_option

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
    drop_unannotated: bool = typer.Option(
        False, "--drop-unannotated", help="TGL's cleaning (train): drop expressions whose referred objects have no valid mask, "
        "then videos left without expressions; the counts are printed and kept in dataset.json."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert a MeViS split and add MeViS-M temporal spans (moments.parquet).

    Spans are object level ({exp_id: {obj_id: \\[\\[start, end], ...]}}) or expression level
    ({exp_id: \\[\\[start, end], ...]}, as on the valid split; stored with a null obj_id).

    [bold]Examples[/]
      rvoskit convert mevis-m /data/mevis --split valid_u --overlay spans.json --out data/mevism-valid_u
      rvoskit convert mevis-m /data/mevis --split train --overlay train_spans.json --drop-unannotated --out data/mevism-train
    """
    from rvoskit.datasets.mevis_m import convert_mevis_m

    split = opt.merge_alias(split, split_old, old="-s", new="--split", default="valid_u")
    claim_output(out, kind="dataset", inputs=[root, overlay], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_mevis_m(root, split, out, overlay=overlay, overlay_format=overlay_format, verify_sha=verify_sha,
                    drop_unannotated=drop_unannotated, overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)
    if drop_unannotated and not quiet:
        from rvoskit.commands._common import console
        from rvoskit.format import open_dataset

        rec = open_dataset(out).manifest["dropped_unannotated"]
        console.print(f"dropped (TGL cleaning): {rec['expressions']:,} expressions, {rec['videos']:,} videos, "
                      f"{rec['moments']:,} spans; {rec['expressions_with_some_target_unannotated']:,} expressions have at "
                      f"least one target without a valid mask (TGL reports {rec['tgl_reported']['expressions']:,} "
                      f"expressions, {rec['tgl_reported']['videos']} videos)")


@convert_app.command("a2d")
def a2d(
    root: Path = ROOT,
    split: str = opt.split_option("test", help="train or test (videoset.csv column 9: 0 train, 1 test)."),
    out: Path = OUT,
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes decoding clips and reading h5 files."),
    frame_format: str = typer.Option("png", "--frame-format", help="Frames written from the clips: png (lossless, the decoded pixels) or jpg (quality 95, ~10x smaller)."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert A2D-Sentences (Release/videoset.csv, clips320H/*.mp4, text_annotations/ with the instance h5 files).

    Reproduces MTTR's sample list: missed videos and the '1 (copy)' row dropped, only the
    (frame, instance) pairs of the h5 files, the first position of a duplicated instance id. Each
    clip is decoded once (PyAV) and its frames written under OUT/frames, 1:1 with the decoded
    stream; annotated frames are recorded in videos.annotated_frames.

    [bold]Examples[/]
      rvoskit convert a2d /data/a2d_sentences --split test --out data/a2d-test -j 8
      rvoskit eval data/a2d-test mttr_predictions.json --protocol a2d --out runs/eval-a2d
    """
    from rvoskit.datasets.a2d import convert_a2d

    claim_output(out, kind="dataset", inputs=[root], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_a2d(root, split, out, workers=workers, frame_format=frame_format, executor=executor, ray_address=ray_address, overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


@convert_app.command("jhmdb")
def jhmdb(
    root: Path = ROOT,
    out: Path = OUT,
    samples: Path = typer.Option(None, "--samples", help="MTTR's jhmdb_sentences_samples_metadata.json: the 3 evaluated frames per video "
                                 "(without it they are drawn with --seed and the numbers are not comparable)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw of 3 frames per video when --samples is not given."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes reading the .mat files."),
    executor: str = executor_option(),
    ray_address: str = ray_address_option(),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert JHMDB-Sentences (jhmdb_annotation.txt, Rename_Images/, puppet_mask/*/*/puppet_mask.mat).

    Evaluation only: masks on the three evaluated frames per video (videos.annotated_frames).

    [bold]Examples[/]
      rvoskit convert jhmdb /data/jhmdb_sentences --samples MTTR/datasets/jhmdb_sentences/jhmdb_sentences_samples_metadata.json --out data/jhmdb
    """
    from rvoskit.datasets.jhmdb import convert_jhmdb

    claim_output(out, kind="dataset", inputs=[root, samples], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_jhmdb(root, out, samples=samples, seed=seed, workers=workers, executor=executor, ray_address=ray_address,
                  overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


@convert_app.command("refcoco")
def refcoco(
    root: Path = ROOT,
    variant: str = typer.Option("refcoco", "--variant", help="refcoco, refcoco+ or refcocog (--dataset always names a dataset folder: docs/cli.md)."),
    split_by: str = typer.Option("unc", "--split-by", help="unc, google or umd: the refs(<by>).p file."),
    split: str = opt.split_option("val", help="train, val, test, testA or testB (as the dataset and --split-by allow)."),
    out: Path = OUT,
    images: Path = typer.Option(None, "--images", help="COCO train2014 image folder (default: found in or beside ROOT)."),
    text: str = typer.Option("sent", "--text", help="Expression text: sent (processed, as ReferFormer) or raw (as LAVT)."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
) -> None:
    """Convert RefCOCO / RefCOCO+ / RefCOCOg (lichengunc/refer: instances.json, refs(<by>).p, COCO train2014).

    Each image becomes a 1-frame video, each sentence an expression; polygons become RLE (their
    union). The pickle is read with an unpickler that accepts no globals.

    [bold]Examples[/]
      rvoskit convert refcoco /data/refer/data --variant refcocog --split-by umd --split val --out data/refcocog-umd-val
    """
    from rvoskit.datasets.refcoco import convert_refcoco

    claim_output(out, kind="dataset", inputs=[root, images], overwrite=overwrite)
    t0 = time.perf_counter()
    convert_refcoco(root, variant, split_by, split, out, images=images, text=text, overwrite=overwrite, show_progress=not quiet)
    _done(out, t0, quiet)


def register(app: typer.Typer) -> None:
    """Register ``convert`` on the root app."""
    app.add_typer(convert_app, name="convert")
