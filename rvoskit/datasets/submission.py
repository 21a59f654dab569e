"""Submission zips for the benchmark servers, written from a predictions directory.

Layouts (``docs/eval.md``; research: dataset-formats.md §1.4, §2.4, §3.4):

- ``mevis-submission``: ``<video>/<exp_id>/<frame>.png`` at the zip root (MeViS README: "directly
  packages the video folders"), single-channel ``L`` PNGs with values 0/255 (MeViS
  ``lmpm/evaluation/evaluator.py``).
- ``refytvos-submission``: the same PNGs under a top-level ``Annotations/`` folder
  (ReferFormer ``inference_ytvos.py`` + ``docs/Ref-Youtube-VOS.md``).
- ``davis``: Ref-DAVIS17 per-expression predictions become DAVIS palette PNGs, one label map per
  sequence and frame for each expression set: ``anno_<k>/<sequence>/<frame>.png`` (k = 0..3, the
  layout ReferFormer's ``inference_davis.py`` writes and scores with the DAVIS toolkit), or, with
  ``anno_set=k``, that one set's ``<sequence>/<frame>.png`` at the zip root (the DAVIS CodaLab
  layout). Objects are merged by ReferFormer's rule (argmax over ``[0.1, masks...]``), which for
  binary masks means: where masks overlap, the lowest ``obj_id`` wins
  (:func:`rvoskit.metrics.protocols.merge_label_map`). Pixel value = ``obj_id``; the palette is the
  standard DAVIS (PASCAL VOC) one.

Every id that becomes a zip member must be a plain file name already (``safe_name(id) == id``);
anything else (``..``, ``/``, spaces) is refused rather than changed, since the server matches the
native ids.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file, safe_name
from rvoskit.format.outputs import ZIP_COMMENT
from rvoskit.format.predictions import read_manifest
from rvoskit.format.store import RvosDataset, open_dataset

TARGETS = ("mevis-submission", "refytvos-submission", "davis")


def _davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour map: ``uint8 (256, 3)``, label 1 = (128, 0, 0), 2 = (0, 128, 0), ..."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


DAVIS_PALETTE = _davis_palette()


def label_png_bytes(label: np.ndarray) -> bytes:
    """Encode a ``uint8 (H, W)`` label map as an indexed (``P``) PNG with the DAVIS palette.

    (A ``P`` image needs a palette of distinct colours: PIL merges indices that share a colour.)
    """
    from PIL import Image

    lab = np.ascontiguousarray(label, np.uint8)
    im = Image.frombytes("P", (lab.shape[1], lab.shape[0]), lab.tobytes())
    im.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """Encode a binary mask as a single-channel PNG with values 0/255 (MeViS / Ref-YouTube-VOS)."""
    ok, buf = cv2.imencode(".png", (np.asarray(mask) != 0).astype(np.uint8) * 255)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RvosError("could not encode a PNG")
    return buf.tobytes()


def _member(*parts: str) -> str:
    for p in parts:
        if safe_name(p) != p:
            raise RvosError(f"id {p!r} cannot be a zip member name as is (it would be changed or escape the zip root)", item=p)
    return "/".join(parts)


def _check_complete(index: pd.DataFrame, ds: RvosDataset, src: Path) -> None:
    """Every frame of every dataset expression has a prediction row (ids and sizes are checked by
    :func:`rvoskit.metrics.sources.check_predictions`)."""
    e = ds.expressions
    have = e["expression_id"].map(index.groupby("expression_id", observed=True).size()).fillna(0)
    short = e.index[(have < e["video_id"].map(ds.videos["num_frames"])).to_numpy()]
    if len(short):
        eid = short[0]
        got = set(index.loc[index["expression_id"] == eid, "frame_idx"])
        lost = [f for t, f in enumerate(ds.video(e.loc[eid, "video_id"])["frames"]) if t not in got]
        raise RvosError(f"{len(lost)} frame(s) without a prediction (first: {lost[0]}); pass missing='empty' to write empty masks", file=src, item=eid)


def export_submission(
    src: Path,
    to: str,
    out: Path,
    dataset: Path | None = None,
    *,
    missing: str = "error",
    anno_set: int | None = None,
) -> Path:
    """Write a benchmark submission zip from a predictions directory.

    The predictions table is streamed one video at a time
    (:func:`rvoskit.metrics.sources.rows_by_video`): memory is bounded by a video's masks.

    Args:
        src: a predictions directory (``rvoskit.format.predictions``) or ``predictions.parquet``.
        to: ``"mevis-submission"``, ``"refytvos-submission"`` or ``"davis"`` (module docstring).
        out: the zip to write (atomically: a temporary file renamed when complete).
        dataset: the dataset the predictions are for (default: the one their manifest names);
            it gives frame names, sizes and, for ``davis``, the Ref-DAVIS expression sets.
        missing: ``"error"`` (default): every frame of every dataset expression must have a
            prediction; ``"empty"``: write empty masks for missing ones.
        anno_set: ``davis`` only: write only Ref-DAVIS set k (0..3) at the zip root.

    Returns:
        ``out``.

    Raises:
        RvosError: unknown target, not a predictions table, unknown video / expression / frame
            ids, duplicate rows, missing frames (with ``missing="error"``), sizes that differ from
            the video, malformed RLE, ids that are not plain file names, ``davis`` on a dataset
            without Ref-DAVIS expression sets or with an expression that does not have exactly
            one target.
    """
    from rvoskit.metrics.evaluation import REF_DAVIS_SETS, ref_davis_set
    from rvoskit.metrics.sources import (
        ExpressionMasks,
        LabelMaps,
        check_predictions,
        open_predictions,
        rows_by_video,
    )

    src, out = Path(src), Path(out)
    if to not in TARGETS:
        raise RvosError(f"unknown export target {to!r}; choose one of {', '.join(TARGETS)}")
    if missing not in ("error", "empty"):
        raise RvosError(f"missing must be 'error' or 'empty', got {missing!r}")
    spec = open_predictions(src)  # a table, a PNG folder, or a submission .zip read as its folder
    with spec.named():
        if spec.kind in ("png-labels", "png-sets") and to != "davis":
            raise RvosError(f"DAVIS label maps ({spec.kind}) can only be exported --to davis", file=src)
        ds_path = dataset or (read_manifest(src) if src.is_dir() and spec.kind == "table" else {}).get("dataset")
        if not ds_path:
            raise RvosError("the predictions do not name their dataset; pass the dataset", file=src)
        ds = open_dataset(ds_path)
        e = ds.expressions
        if to == "davis":
            if e["annotator"].isna().all() or e["kind"].isna().all():
                raise RvosError("davis export needs a Ref-DAVIS17 dataset (expressions with annotator and kind)", file=ds.path)
            if anno_set is not None and anno_set not in REF_DAVIS_SETS:
                raise RvosError(f"anno_set must be 0..3, got {anno_set}")
        index = check_predictions(spec, ds)
        if missing == "error" and index is not None:
            _check_complete(index, ds, src)

        def need(m, item: str):
            if m is None and missing == "error":
                raise RvosError("missing prediction frame; pass --missing empty to write an empty mask", file=src, item=item)
            return m

        exp_ids = e.groupby("video_id", sort=False)["exp_id"].agg(list).to_dict()
        prefix = ("Annotations",) if to == "refytvos-submission" else ()
        sets = [anno_set] if anno_set is not None else list(REF_DAVIS_SETS)
        with atomic_file(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.comment = ZIP_COMMENT  # how --overwrite recognises an rvoskit submission
            for vid, rows in rows_by_video(spec, index, list(ds.videos.index)):
                v = ds.video(vid)
                frames = list(v["frames"])
                zeros = np.zeros((int(v["height"]), int(v["width"])), np.uint8)
                if spec.kind in ("png-labels", "png-sets"):  # label maps: copied set by set (re-encoded with the DAVIS palette)
                    src_sets = [None] if spec.kind == "png-labels" else sets
                    for k in src_sets:
                        lm = LabelMaps(spec.path if k is None else spec.set_root(k), v)
                        for t, f in enumerate(frames):
                            lab = need(lm.get(t), f"{vid} frame {f}" + ("" if k is None else f" (anno_{k})"))
                            parts = (str(vid), f"{f}.png") if k is None or anno_set is not None else (f"anno_{k}", str(vid), f"{f}.png")
                            zf.writestr(_member(*parts), label_png_bytes(zeros if lab is None else lab))
                    continue
                masks = ExpressionMasks(spec, v, rows)
                if to != "davis":
                    for x in exp_ids.get(vid, []):
                        for t, f in enumerate(frames):
                            m = masks.get(x, t) if masks.has_video else None
                            if index is None:
                                need(m, f"{vid}/{x} frame {f}")
                            zf.writestr(_member(*prefix, str(vid), str(x), f"{f}.png"), mask_png_bytes(zeros if m is None else m))
                    continue
                for k in sets:
                    _, get, _ = ref_davis_set(ds, v, k, masks, missing_frame_empty=index is not None or missing == "empty")
                    for t, f in enumerate(frames):
                        parts = (str(vid), f"{f}.png") if anno_set is not None else (f"anno_{k}", str(vid), f"{f}.png")
                        lab = need(get(t), f"{vid} frame {f} (anno_{k})")
                        zf.writestr(_member(*parts), label_png_bytes(zeros if lab is None else lab))
    return out
