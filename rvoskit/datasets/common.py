"""Helpers shared by the native-format converters: strict JSON, frame checks, progress."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor

T = TypeVar("T")
R = TypeVar("R")

FRAME_EXTS = (".jpg", ".jpeg", ".png")


def _no_duplicates(file: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise RvosError(f"duplicate key {k!r}", file=file, item=str(k))
            out[k] = v
        return out

    return hook


def load_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """Load a JSON file strictly.

    Raises:
        RvosError: missing file, non-UTF-8 bytes (with the byte offset), truncated or invalid
            JSON (with line and column), or a duplicate key anywhere in the document (duplicate
            video, expression or annotation ids would otherwise be silently dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise RvosError(f"missing {what}", file=path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RvosError(f"not valid UTF-8 at byte {exc.start}", file=path) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(path))
    except json.JSONDecodeError as exc:
        kind = "truncated JSON" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise RvosError(f"{kind}: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=path) from None


def require(cond: bool, message: str, *, file: str | Path | None = None, item: str | None = None) -> None:
    """Raise :class:`RvosError` with ``message`` unless ``cond``."""
    if not cond:
        raise RvosError(message, file=file, item=item)


def find_frame(folder: Path, name: str) -> Path | None:
    """The file ``<folder>/<name>.<ext>`` for the first existing frame extension, or None."""
    for ext in FRAME_EXTS:
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def frame_files(folder: Path, names: Sequence[str], *, video_id: str) -> list[Path]:
    """Locate every named frame of a video (:func:`frame_file_names` as paths in ``folder``).

    Raises:
        RvosError: the frame folder or one of the frames is missing (names the first missing frame).
    """
    return [folder / e for e in frame_file_names(folder, names, video_id=video_id)]


def frame_file_names(folder: Path, names: Sequence[str], *, video_id: str) -> list[str]:
    """The file name (``<name>.jpg``, ...) of every named frame of a video in ``folder``: one
    listdir, no path object per frame.

    Raises:
        RvosError: the frame folder or one of the frames is missing (names the first missing frame),
            or a name is not a plain file name.
    """
    require(folder.is_dir(), "missing frame folder", file=folder, item=video_id)
    # one listdir instead of 3 stats per frame
    entries = os.listdir(folder)
    if len(entries) == len(names) and set(map(type, names)) <= {str}:
        # the common case: the folder holds exactly <name>.jpg for every plain name (no separator in
        # any name, none of "", ".", "..")
        joined = "".join(names)
        if "/" not in joined and "\\" not in joined and not {"", ".", ".."}.intersection(names):
            jpgs = [n + ".jpg" for n in names]
            if set(jpgs) == set(entries):
                return jpgs
    present = {}
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        if ext.lower() in FRAME_EXTS and stem not in present:
            present[stem] = entry
    out = []
    for n in names:
        if not (isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n):
            raise RvosError(f"frame name {n!r} is not a plain file name (no path separators, '.' or '..')", file=folder, item=video_id)
        p = present.get(n)
        if p is None:
            raise RvosError(f"missing frame {n!r}", file=folder, item=video_id)
        out.append(p)
    return out


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image, read from its header (Pillow; no pixel decode).

    Raises:
        RvosError: unreadable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise RvosError(f"unreadable image: {exc}", file=path) from None
    return int(h), int(w)


def read_label_png(path: Path) -> np.ndarray:
    """Read an 8-bit label PNG (palette ``P`` or grey ``L``) as ``uint8 (H, W)`` label values.

    Palette PNGs are read as indices (not colours), which is what DAVIS and Ref-YouTube-VOS store.

    Raises:
        RvosError: unreadable file, or a mode other than P/L (for instance an RGB mask).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise RvosError(f"label PNG has mode {im.mode}, expected an 8-bit palette (P) or grey (L) image", file=path)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise RvosError(f"unreadable label PNG: {exc}", file=path) from None


def first_few(items: Sequence[str], n: int = 10) -> str:
    """``items`` for an error message: the first ``n``, comma-separated, then ``and K more``."""
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def label_values(label: np.ndarray) -> list[int]:
    """The values present in a ``uint8`` label map, ascending (a histogram: faster than ``np.unique``)."""
    return np.flatnonzero(np.bincount(label.ravel(), minlength=256)).tolist()


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int | Executor) -> Iterator[R]:
    """``map(fn, items)`` in order, through :mod:`rvoskit.executor` (``workers`` processes when an
    int > 1, else the given :class:`~rvoskit.executor.Executor`).

    At most ``2 * workers`` results are in flight, so memory does not grow with ``len(items)``.
    """
    ex = (workers if isinstance(workers, Executor) else resolve_executor(None, max(1, int(workers)))).for_units(len(items))
    for _item, value in imap(fn, items, ex, ordered=True, start_method="fork" if sys.platform == "linux" else "spawn"):
        yield value


def mask_rows(video_id: str, obj_ids: Sequence[int], frame_idxs: Sequence[int], counts: Sequence[bytes], height: int, width: int) -> list[dict]:
    """Build ``masks`` table rows (area and box from the RLE, no decoding).

    Args:
        video_id: the video.
        obj_ids, frame_idxs, counts: aligned per-row object ids, frame indices and compressed RLE counts.
        height, width: the mask size (= video size).
    """
    from rvoskit.format import rle

    areas, boxes = rle.area_bbox(list(counts), height, width)
    return [
        {
            "video_id": video_id,
            "obj_id": int(o),
            "frame_idx": int(t),
            "height": height,
            "width": width,
            "rle": c,
            "area": int(a),
            "bbox": b.tolist(),
        }
        for o, t, c, a, b in zip(obj_ids, frame_idxs, counts, areas, boxes)
    ]
