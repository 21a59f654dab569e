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
from rvoskit.format import rle as rlemod
from rvoskit.format.atomic import atomic_file, safe_name
from rvoskit.format.predictions import read_predictions
from rvoskit.format.store import RvosDataset, open_dataset

TARGETS = ("mevis-submission", "refytvos-submission", "davis")
REF_DAVIS_SETS = {0: (1, "first_frame"), 1: (1, "full_video"), 2: (2, "first_frame"), 3: (2, "full_video")}


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


def _load(src: Path, dataset: Path | None) -> tuple[pd.DataFrame, RvosDataset]:
    rows, manifest = read_predictions(src)
    ds_path = dataset or manifest.get("dataset")
    if not ds_path:
        raise RvosError("the predictions do not name their dataset; pass the dataset", file=src)
    ds = open_dataset(ds_path)
    unknown = sorted(set(rows["expression_id"]) - set(ds.expressions.index))
    if unknown:
        raise RvosError(f"{len(unknown)} prediction expression id(s) not in the dataset, e.g. {unknown[0]!r}", file=src)
    return rows, ds


def _frame_rows(rows: pd.DataFrame, ds: RvosDataset, missing: str, src: Path):
    """Yield ``(video row, expression row, {frame_idx: (rle, area)})`` per dataset expression."""
    by_expr = {e: part for e, part in rows.groupby("expression_id", sort=False)}
    for eid, e in ds.expressions.iterrows():
        v = ds.video(e["video_id"])
        part = by_expr.get(eid)
        got = {} if part is None else {int(t): (r, int(a), int(h), int(w)) for t, r, a, h, w in zip(part["frame_idx"], part["rle"], part["area"], part["height"], part["width"])}
        if len(got) < int(v["num_frames"]) and missing == "error":
            lost = [f for t, f in enumerate(v["frames"]) if t not in got]
            raise RvosError(f"{len(lost)} frame(s) without a prediction (first: {lost[0]}); pass missing='empty' to write empty masks", file=src, item=eid)
        yield v, e, got


def _decode(hit, v, src: Path, item: str) -> np.ndarray:
    H, W = int(v["height"]), int(v["width"])
    if hit is None or hit[1] == 0:
        return np.zeros((H, W), np.uint8)
    counts, _, h, w = hit
    if (h, w) != (H, W):
        raise RvosError(f"prediction size {h}x{w} differs from the video's {H}x{W}", file=src, item=item)
    rlemod.check(counts, H, W, file=str(src), item=item)
    return rlemod.decode(counts, H, W)


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
        RvosError: unknown target, unknown expression ids, missing frames (with
            ``missing="error"``), sizes that differ from the video, ids that are not plain file
            names, ``davis`` on a dataset without Ref-DAVIS expression sets or with an expression
            that does not have exactly one target.
    """
    src, out = Path(src), Path(out)
    if to not in TARGETS:
        raise RvosError(f"unknown export target {to!r}; choose one of {', '.join(TARGETS)}")
    if missing not in ("error", "empty"):
        raise RvosError(f"missing must be 'error' or 'empty', got {missing!r}")
    rows, ds = _load(src, Path(dataset) if dataset else None)
    with atomic_file(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        if to in ("mevis-submission", "refytvos-submission"):
            prefix = ("Annotations",) if to == "refytvos-submission" else ()
            for v, e, got in _frame_rows(rows, ds, missing, src):
                for t, f in enumerate(v["frames"]):
                    item = f"{e['expression_id']} frame {f}"
                    zf.writestr(_member(*prefix, str(v["video_id"]), str(e["exp_id"]), f"{f}.png"), mask_png_bytes(_decode(got.get(t), v, src, item)))
        else:
            _write_davis(zf, rows, ds, src, missing, anno_set)
    return out


def _write_davis(zf: zipfile.ZipFile, rows: pd.DataFrame, ds: RvosDataset, src: Path, missing: str, anno_set: int | None) -> None:
    from rvoskit.metrics.protocols import merge_label_map

    e = ds.expressions
    if e["annotator"].isna().all() or e["kind"].isna().all():
        raise RvosError("davis export needs a Ref-DAVIS17 dataset (expressions with annotator and kind)", file=ds.path)
    if anno_set is not None and anno_set not in REF_DAVIS_SETS:
        raise RvosError(f"anno_set must be 0..3, got {anno_set}")
    per_expr = {x["expression_id"]: (v, x, got) for v, x, got in _frame_rows(rows, ds, missing, src)}
    sets = [anno_set] if anno_set is not None else list(REF_DAVIS_SETS)
    for k in sets:
        annotator, kind = REF_DAVIS_SETS[k]
        sel = e[(e["annotator"] == annotator) & (e["kind"] == kind)]
        for vid in ds.videos.index:
            ex = sel[sel["video_id"] == vid]
            targets = []
            for eid, o in zip(ex["expression_id"], ex["obj_ids"]):
                if o is None or len(o) != 1:
                    raise RvosError("a Ref-DAVIS expression must have exactly one target object", file=ds.path, item=eid)
                targets.append((int(o[0]), eid))
            v = ds.video(vid)
            shape = (int(v["height"]), int(v["width"]))
            for t, f in enumerate(v["frames"]):
                masks = [(o, _decode(per_expr[eid][2].get(t), v, src, f"{eid} frame {f}")) for o, eid in targets]
                parts = (str(vid), f"{f}.png") if anno_set is not None else (f"anno_{k}", str(vid), f"{f}.png")
                zf.writestr(_member(*parts), label_png_bytes(merge_label_map(masks, shape)))
