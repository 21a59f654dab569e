"""RefCOCO / RefCOCO+ / RefCOCOg converter (lichengunc/refer layout): each image a 1-frame video.

Native layout (lichengunc/refer ``README.md``, ``data/README.md``, ``refer.py``)::

    <root>/<dataset>/instances.json      COCO: images, annotations (polygons), categories
    <root>/<dataset>/refs(<by>).p        pickle: list of refs {ref_id, ann_id, image_id, split, sentences: [{sent_id, sent, raw, tokens}]}
    <images>/COCO_train2014_<id>.jpg     COCO train2014 (``--images``; found beside the root by default)

``<root>`` may also be the ``<dataset>`` folder itself. Splits follow ``REFER.getRefIds``:
``train``/``val`` exact, ``test`` = any split containing "test", ``testA``/``testB``/``testC`` = the
split contains that letter.

Masks: a COCO polygon annotation is a list of polygons; rvoskit rasterises them with pycocotools
``frPyObjects`` and takes their **union** (``pycocotools.mask.merge``), the rule of ReferFormer's
``convert_coco_poly_to_mask`` (``mask.any(dim=2)``). lichengunc/refer ``getMask`` **sums** the
polygon channels instead, and LAVT keeps pixels where that sum ``== 1``, so a pixel covered by
two polygons of the same object is foreground here and in ReferFormer but background in LAVT
(rare: only where an object's polygons overlap). RLE segmentations are taken as they are.

The pickle is user input: it is read by an unpickler that resolves **no globals at all**
(:func:`load_refs_pickle`), so it yields plain builtins (list, dict, str, int, float) or is refused;
nothing is imported or called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from pycocotools import mask as maskUtils

from rvoskit.datasets.common import image_size, load_json, mask_rows, require
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter
from rvoskit.progress import progress_bar

SPLITS_BY = {"unc", "google", "umd", "berkeley"}
ALLOWED = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco", "google"): ("train", "val", "test"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "google"): ("train", "val"),
    ("refcocog", "umd"): ("train", "val", "test"),
}


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global (class, function, module attribute)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused: the pickle asks for the global {module}.{name}; a refs file holds only lists, dicts, strings and numbers")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused: the pickle uses a persistent id")


def _to_str(x: Any) -> Any:
    """Python 2 ``str`` read as bytes -> text (UTF-8, else Latin-1), recursively."""
    if isinstance(x, bytes):
        try:
            return x.decode("utf-8")
        except UnicodeDecodeError:
            return x.decode("latin-1")
    if isinstance(x, list):
        return [_to_str(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_to_str(v) for v in x)
    if isinstance(x, dict):
        return {_to_str(k): _to_str(v) for k, v in x.items()}
    return x


def load_refs_pickle(path: str | Path) -> Any:
    """Load a ``refs(<by>).p`` file safely: builtins only, never a global.

    Python 2 pickles (protocol 0 or 2, as the refer files are) and Python 3 ones load; Python 2
    byte strings become text (UTF-8, else Latin-1). Any opcode that needs a global (``GLOBAL``,
    ``STACK_GLOBAL``, and so ``REDUCE``/``INST``/``OBJ``/``NEWOBJ`` of anything) is refused.

    Raises:
        RvosError: missing file, a pickle that asks for a global or persistent id (refused), or
            a truncated / malformed pickle.
    """
    path = Path(path)
    require(path.is_file(), "missing refs pickle", file=path)
    try:
        with open(path, "rb") as f:
            data = _NoGlobals(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise RvosError(f"pickle {exc}" if str(exc).startswith("refused") else f"malformed pickle: {exc}", file=path) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        raise RvosError(f"malformed or truncated pickle: {type(exc).__name__}: {exc}", file=path) from None
    return _to_str(data)


def select_refs(refs: list[dict], split: str) -> list[dict]:
    """``REFER.getRefIds(split=...)`` semantics (lichengunc/refer ``refer.py``)."""
    if split in ("testA", "testB", "testC"):
        return [r for r in refs if split[-1] in r["split"]]
    if split in ("testAB", "testBC", "testAC"):
        return [r for r in refs if r["split"] == split]
    if split == "test":
        return [r for r in refs if "test" in r["split"]]
    return [r for r in refs if r["split"] == split]


def segmentation_rle(segm: Any, h: int, w: int) -> bytes:
    """A COCO ``segmentation`` as compressed RLE counts: polygons rasterised and unioned
    (``frPyObjects`` + ``merge``), uncompressed RLE compressed, compressed RLE passed through.

    Raises:
        ValueError: not polygons or an RLE, or an RLE of another size.
    """
    if isinstance(segm, list):
        if not segm or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segm):
            raise ValueError("polygons must be lists of at least 3 (x, y) points")
        rles = maskUtils.frPyObjects(segm, h, w)
        return maskUtils.merge(rles, intersect=False)["counts"]
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if list(segm["size"]) != [h, w]:
            raise ValueError(f"RLE size {segm['size']} differs from the image {h}x{w}")
        if isinstance(segm["counts"], list):
            return maskUtils.frPyObjects(segm, h, w)["counts"]
        c = segm["counts"]
        return c.encode("ascii") if isinstance(c, str) else c
    raise ValueError("segmentation is neither polygons nor an RLE")


def _find_images(root: Path, images: str | Path | None) -> Path:
    if images is not None:
        images = Path(images)
        require(images.is_dir(), "missing COCO image folder", file=images)
        return images
    for c in (root / "train2014", root / "images" / "mscoco" / "images" / "train2014", root / "images" / "train2014",
              root.parent / "train2014", root.parent / "images" / "mscoco" / "images" / "train2014"):
        if c.is_dir():
            return c
    raise RvosError("COCO train2014 images not found (looked for train2014/ and images/mscoco/images/train2014/ in and beside the root); "
                    "pass --images", file=root)


def convert_refcoco(
    root: str | Path,
    dataset: str,
    split_by: str,
    split: str,
    out: str | Path,
    *,
    images: str | Path | None = None,
    text: str = "sent",
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert one RefCOCO/RefCOCO+/RefCOCOg split to the common format (module docstring).

    Each image with a ref of the split becomes a 1-frame video (``video_id`` = the image file
    stem, e.g. ``COCO_train2014_000000581857``); each referred annotation an object
    (``obj_id`` = COCO ``ann_id``, category = its COCO category name); each sentence an expression
    (``exp_id`` = ``sent_id``, text = the processed ``sent`` as ReferFormer's conversion uses, or
    ``raw`` with ``text="raw"`` as LAVT tokenises), target ``[ann_id]``. ``annotated_frames`` is null.

    Args:
        root: the refer ``data`` folder (holding ``<dataset>/``) or the ``<dataset>`` folder.
        dataset: ``refcoco``, ``refcoco+`` or ``refcocog``.
        split_by: ``unc``, ``google`` or ``umd`` (``refs(<split_by>).p``).
        split: ``train``, ``val``, ``test``, ``testA``, ``testB`` (allowed per dataset and split_by).
        out: output dataset directory.
        images: the COCO ``train2014`` folder.
        text: ``sent`` or ``raw``.
        overwrite: replace an existing ``out``.
        show_progress: rich progress bar.

    Returns:
        ``out``.

    Raises:
        RvosError: bad input (one line naming the file and item); nothing is left at ``out``.
    """
    require(dataset in ("refcoco", "refcoco+", "refcocog"), f"unknown dataset {dataset!r}; choose refcoco, refcoco+ or refcocog", item="--variant")
    require((dataset, split_by) in ALLOWED, f"{dataset} has no {split_by!r} split scheme; choose "
            + " or ".join(b for d, b in ALLOWED if d == dataset), item="--split-by")
    require(split in ALLOWED[(dataset, split_by)], f"{dataset}({split_by}) has no split {split!r}; choose "
            + ", ".join(ALLOWED[(dataset, split_by)]), item="--split")
    require(text in ("sent", "raw"), f"unknown text field {text!r}; choose sent or raw", item="--text")
    root = Path(root)
    folder = root / dataset if (root / dataset / "instances.json").is_file() else root
    inst_path = folder / "instances.json"
    refs_path = folder / f"refs({split_by}).p"
    require(inst_path.is_file(), f"missing instances.json (looked in {root / dataset} and {root})", file=inst_path)
    img_dir = _find_images(root, images)
    refs = load_refs_pickle(refs_path)
    require(isinstance(refs, list), f"holds a {type(refs).__name__}, expected a list of refs", file=refs_path)
    for i, r in enumerate(refs):
        require(isinstance(r, dict) and {"ann_id", "image_id", "split", "sentences"} <= r.keys() and isinstance(r["split"], str)
                and isinstance(r["sentences"], list), "expected a ref dict with ann_id, image_id, split and sentences", file=refs_path, item=f"ref {i}")
    inst = load_json(inst_path, what="instances.json")
    require(isinstance(inst, dict) and all(isinstance(inst.get(k), list) for k in ("images", "annotations", "categories")),
            "expected images, annotations and categories lists", file=inst_path)
    imgs = {im["id"]: im for im in inst["images"]}
    anns = {a["id"]: a for a in inst["annotations"]}
    cats = {c["id"]: c.get("name") for c in inst["categories"]}
    sel = select_refs(refs, split)
    require(bool(sel), f"no ref of split {split!r}", file=refs_path)
    by_image: dict[int, list[dict]] = {}
    for r in sel:
        by_image.setdefault(r["image_id"], []).append(r)
    with DatasetWriter(out, dataset=dataset, split=split, frame_root=img_dir.resolve(), source_root=folder,
                       options={"dataset": dataset, "split_by": split_by, "split": split, "text": text}, overwrite=overwrite) as w:
        w.add_input(inst_path)
        w.add_input(refs_path)
        w.set_extra("mask_rule", "union of the polygons (pycocotools frPyObjects + merge), as ReferFormer")
        n_sent = 0
        with progress_bar(disable=not show_progress) as bar:
            task = bar.add_task(f"{dataset}({split_by})/{split}", total=len(by_image))
            rows_by_video = []
            for image_id, rs in by_image.items():
                im = imgs.get(image_id)
                require(im is not None, f"image_id {image_id} is not in instances.json", file=refs_path, item=f"ref {rs[0].get('ref_id')}")
                fname = im["file_name"]
                vid = Path(fname).stem
                H, W = int(im["height"]), int(im["width"])
                p = img_dir / fname
                require(p.is_file(), "missing COCO image", file=p, item=f"image {image_id}")
                size = image_size(p)
                require(size == (H, W), f"image is {size[0]}x{size[1]}, instances.json says {H}x{W}", file=p, item=f"image {image_id}")
                objs, counts, exprs, seen_sent = [], [], [], set()
                for r in rs:
                    a = anns.get(r["ann_id"])
                    item = f"ref {r.get('ref_id')} (ann {r['ann_id']})"
                    require(a is not None, f"ann_id {r['ann_id']} is not in instances.json", file=refs_path, item=item)
                    require(a.get("image_id") == image_id, f"ann {r['ann_id']} belongs to image {a.get('image_id')}, the ref to {image_id}", file=refs_path, item=item)
                    if r["ann_id"] not in objs:
                        try:
                            counts.append(segmentation_rle(a.get("segmentation"), H, W))
                        except ValueError as exc:
                            raise RvosError(str(exc), file=inst_path, item=f"annotation {r['ann_id']}") from None
                        objs.append(r["ann_id"])
                    for s in r["sentences"]:
                        require(isinstance(s, dict) and "sent_id" in s and text in s, f"a sentence without sent_id or {text!r}", file=refs_path, item=item)
                        require(s["sent_id"] not in seen_sent, f"sent_id {s['sent_id']} twice in image {image_id}", file=refs_path, item=item)
                        seen_sent.add(s["sent_id"])
                        exprs.append({"video_id": vid, "exp_id": str(s["sent_id"]), "exp_index": len(exprs), "text": str(s[text]),
                                      "obj_ids": [int(r["ann_id"])], "anno_ids": None, "annotator": None, "kind": None})
                n_sent += len(exprs)
                w.add_video({"video_id": vid, "split": split, "num_frames": 1, "height": H, "width": W, "frames": [vid],
                             "frame_files": [fname], "annotated_frames": None})
                w.add_objects({"video_id": vid, "obj_id": int(o), "anno_id": None, "category": cats.get(anns[o].get("category_id"))} for o in objs)
                w.add_expressions(exprs)
                rows_by_video.append((vid, mask_rows(vid, objs, [0] * len(objs), counts, H, W)))
                bar.advance(task)
        for vid, rows in sorted(rows_by_video, key=lambda x: x[0]):
            w.add_masks(vid, rows)
        w.set_extra("refs", len(sel))
    return Path(out)
