"""MeViS converter (Ding et al., ICCV 2023; v2 TPAMI 2025).

Native layout (``docs: dataset-formats.md`` §1; henghuiding/MeViS ``lmpm/data/datasets/mevis.py``,
``tools/eval_mevis.py``)::

    <root>/<split>/JPEGImages/<video>/<frame>.jpg
    <root>/<split>/meta_expressions.json   {"videos": {vid: {"frames": [...], "expressions": {exp_id: {"exp", "obj_id", "anno_id"}}}}}
    <root>/<split>/mask_dict.json          {anno_id: [COCO RLE | null per frame]}   (train, valid_u only)
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rvoskit.datasets.common import frame_file_names, image_size, load_json, mask_rows, require
from rvoskit.datasets.jsonindex import JsonObjectIndex
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter
from rvoskit.progress import progress_bar
from rvoskit.format import rle as rlemod
from rvoskit.format.store import sha256_file

# Published sha256 of the v1 mask_dict.json files (henghuiding/MeViS issue #4, maintainer reply 2023-10-08).
PUBLISHED_SHA256 = {
    "train": "f9d9b01a2a6d7a004e2e7a664ce2b9b1576218e975030f8e4df4f66111fb253f",
    "valid_u": "6e711a3f713cd95a825f536323e434b4d80f85a8e4e66d0cd662408e8779db50",
}


def _as_list(value: Any, *, file: Path, item: str, field: str) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, (int, str)):  # tolerate a scalar where loaders expect a list
        return [value]
    raise RvosError(f"{field} must be a list, got {type(value).__name__}", file=file, item=item)


#: Splits published with ``mask_dict.json``; converting one without it is an error, not 0 objects.
SPLITS_WITH_MASKS = ("train", "valid_u")


def _int_id(value: Any) -> int:
    """An obj_id as an int: an int, an integral float (``3.0``) or a string of digits; never
    truncates (``0.5`` and ``"0.5"`` raise ValueError, as do booleans)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(value)


def read_mevis_meta(meta_path: Path) -> dict:
    """Read and structurally check ``meta_expressions.json``.

    Returns:
        The ``videos`` mapping ``{video_id: {"frames": [...], "expressions": {...}}}``.

    Raises:
        RvosError: invalid JSON, missing ``videos``/``frames``/``expressions``/``exp``, a non-string
            expression, frames not in sorted order (the official eval indexes ``mask_dict`` by
            position while the loaders sort, so unsorted frames would misalign masks).
    """
    meta = load_json(meta_path, what="meta_expressions.json")
    require(isinstance(meta, dict) and isinstance(meta.get("videos"), dict), "no 'videos' object", file=meta_path)
    for vid, v in meta["videos"].items():
        require(isinstance(v, dict), "video entry is not an object", file=meta_path, item=vid)
        frames = v.get("frames")
        # set(map(type, ...)): the isinstance check in one C loop (json gives exact str objects)
        require(isinstance(frames, list) and set(map(type, frames)) <= {str}, "'frames' must be a list of frame names", file=meta_path, item=vid)
        require(len(frames) > 0, "video has no frames", file=meta_path, item=vid)
        require(len(set(frames)) == len(frames), "duplicate frame names", file=meta_path, item=vid)
        require(frames == sorted(frames), "frames are not in sorted order (masks are indexed by position)", file=meta_path, item=vid)
        exps = v.get("expressions")
        require(isinstance(exps, dict), "'expressions' must be an object", file=meta_path, item=vid)
        for eid, e in exps.items():
            item = f"{vid}/{eid}"
            require(isinstance(e, dict) and "exp" in e, "expression without 'exp'", file=meta_path, item=item)
            require(isinstance(e["exp"], str), "'exp' must be a string", file=meta_path, item=item)
    return meta["videos"]


def convert_mevis(
    root: str | Path,
    split: str,
    out: str | Path,
    *,
    verify_sha: bool = False,
    overwrite: bool = False,
    show_progress: bool = False,
    extra: Callable[[DatasetWriter, dict], None] | None = None,
    dataset_name: str = "mevis",
) -> Path:
    """Convert one MeViS split to the common format.

    ``mask_dict.json`` RLE is passed through without decoding (compressed counts are only checked to
    cover ``H x W`` pixels); ``null`` frames are absent (no row); multi-object expressions keep
    all their objects; empty target lists are no-target expressions (v2). Splits without
    ``mask_dict.json`` (valid, test) give expressions with ``obj_ids = null``. The mask file is read
    through a byte-range index, one object at a time, so memory does not grow with the split.

    Args:
        root: the MeViS root (containing ``<split>/``), or the split directory itself.
        split: ``train``, ``valid_u``, ``valid``, ``test`` or any directory name with a meta file.
        out: output dataset directory (created atomically).
        verify_sha: check ``mask_dict.json`` against the published sha256 (train, valid_u).
        overwrite: replace an existing ``out``.
        show_progress: show a rich progress bar.
        extra: called with the open writer and the videos mapping before it closes (MeViS-M adds moments).
        dataset_name: ``source.dataset`` in the manifest.

    Returns:
        ``out``.

    Raises:
        RvosError: any bad input (named file and item); nothing is left at ``out``.
    """
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir() and (root / "meta_expressions.json").is_file():
        split_dir = root  # ROOT is the split directory itself
    require(split_dir.is_dir(), f"no split directory {split!r}", file=root)
    meta_path = split_dir / "meta_expressions.json"
    mask_path = split_dir / "mask_dict.json"
    has_masks = mask_path.is_file()
    mask_sha = _in_background(sha256_file, mask_path) if has_masks else None  # while the rest reads and scans
    videos = read_mevis_meta(meta_path)
    require(has_masks or split not in SPLITS_WITH_MASKS,
            f"missing mask_dict.json: the {split} split has masks (only valid and test come without)", file=mask_path)
    # the byte-range index is built (numba's start-up, then a compiled scan) on a thread while this one
    # lists every video's frame folder and reads its first frame's size, adds every video's rows and
    # writes the videos / objects / expressions tables; the masks jobs wait for the index. Errors are
    # raised where a sequential run meets them: the index's before any video's, a video's at that
    # video (a check that needs the index, "anno_id in mask_dict.json", runs in that video's job)
    if has_masks:
        try:  # numba's import on this thread, where rvoskit._jit.prepare_numba may skip its BLAS probe
            import rvoskit.datasets.maskdict_scan  # noqa: F401
        except ImportError:  # no numba: the index's exact scan
            pass
    index_job = _in_background(JsonObjectIndex, mask_path) if has_masks else None
    jpeg_root = split_dir / "JPEGImages"
    frame_info = {vid: _result_or_error(_frame_info, jpeg_root, vid, videos[vid]["frames"]) for vid in sorted(videos)}
    sha_note = None
    if verify_sha:
        require(has_masks, "--verify-sha needs mask_dict.json", file=split_dir)
        expected = PUBLISHED_SHA256.get(split)
        require(expected is not None, f"no published sha256 for split {split!r} (known: {', '.join(PUBLISHED_SHA256)})", file=mask_path)
        digest = mask_sha.result()
        require(digest == expected, f"sha256 {digest} differs from the published {expected}", file=mask_path)
        sha_note = {"file": "mask_dict.json", "sha256": digest, "published": expected, "ok": True}

    with DatasetWriter(
        out,
        dataset=dataset_name,
        split=split,
        frame_root=jpeg_root.resolve(),
        source_root=root,
        options={"verify_sha": verify_sha},
        overwrite=overwrite,
    ) as w:
        if sha_note:
            w.set_extra("sha256_verified", sha_note)
        # each video's masks are read and checked (compiled kernels: no GIL) and written (Parquet: no
        # GIL) by the pipeline's threads while this one goes on with the next videos' expressions;
        # errors are raised in the order a sequential run meets them
        with progress_bar(disable=not show_progress) as bar:
            task = bar.add_task(f"mevis/{split}", total=len(videos))
            with _MaskPipeline(w, on_done=lambda: bar.advance(task)) as pipe:
                for vid in sorted(videos):
                    info = frame_info.pop(vid)
                    try:
                        job = _convert_video(w, vid, videos[vid], info, meta_path, mask_path, index_job)
                    except BaseException as exc:
                        pipe.drain()  # an earlier video's error comes first, the index's before any
                        if index_job is not None and isinstance(exc, Exception):  # then this video's first error with the whole index
                            _convert_video(None, vid, videos[vid], info, meta_path, mask_path, index_job.result())
                        raise
                    pipe.add(job)
                try:
                    w.write_tables()  # while the masks are read
                except BaseException:
                    pipe.drain()
                    raise
                pipe.drain()
        if index_job is not None:
            index_job.result()  # an index error, when no video has a masks job
        w.add_input(meta_path)
        if has_masks:
            w.add_input(mask_path, sha256=mask_sha.result())
        if extra is not None:
            extra(w, videos)
    return Path(out)


def _in_background(fn: Callable, *args) -> Future:
    """``fn(*args)`` on a daemon thread (an error ends nothing else; an interrupted command does not
    wait for it): its future, whose ``result()`` gives the value or raises the error."""
    fut: Future = Future()

    def run() -> None:
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=run, name=f"rvoskit-{getattr(fn, '__name__', 'job')}", daemon=True).start()
    return fut


def _result_or_error(fn: Callable, *args) -> Any:
    """``fn(*args)``, or the exception it raised (to be raised later, in order)."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def _frame_info(jpeg_root: Path, vid: str, frames: list[str]) -> tuple[list[str], tuple[int, int]]:
    """A video's frame file names (:func:`frame_file_names`) and ``(H, W)`` of its first frame."""
    files = frame_file_names(jpeg_root / vid, frames, video_id=vid)  # no path object per frame
    return files, image_size(jpeg_root / vid / files[0])


def _convert_video(w: DatasetWriter | None, vid: str, v: dict, frame_info: tuple | Exception, meta_path: Path,
                   mask_path: Path, index: JsonObjectIndex | Future | None):
    """Add a video's videos/expressions/objects rows (``frame_info``: :func:`_frame_info`'s answer, or
    its error, raised here); returns the job of its masks (the arguments of :func:`_video_masks`, run
    by :class:`_MaskPipeline`), or None (a split without masks).

    ``index``: the ``mask_dict.json`` index; its future (being built: the job then checks that each
    anno_id is in the file, in the order this would); None for a split without masks. ``w`` None:
    only the checks (raises the video's first error).
    """
    if isinstance(frame_info, Exception):
        raise frame_info
    frames = v["frames"]
    files, (H, W) = frame_info
    if w is not None:
        w.add_video(
            {
                "video_id": vid,
                "split": w.split,
                "num_frames": len(frames),
                "height": H,
                "width": W,
                "frames": frames,
                "frame_files": [f"{vid}/{f}" for f in files],
            }
        )
    known = None if isinstance(index, Future) else index
    unchecked: list[tuple[str, str]] = []  # (expression, anno_id) the job checks against the index
    obj_of_anno: dict[str, int] = {}
    anno_of_obj: dict[int, str] = {}
    rows = []
    for n, (eid, e) in enumerate(v["expressions"].items()):
        item = f"{vid}/{eid}"
        obj_ids = anno_ids = None
        if index is not None:
            require("obj_id" in e and "anno_id" in e, "expression without obj_id/anno_id in a split with masks", file=meta_path, item=item)
            try:
                obj_ids = [_int_id(x) for x in _as_list(e["obj_id"], file=meta_path, item=item, field="obj_id")]
            except (TypeError, ValueError):
                raise RvosError(f"obj_id {e['obj_id']!r} is not an integer list", file=meta_path, item=item) from None
            anno_ids = [str(x) for x in _as_list(e["anno_id"], file=meta_path, item=item, field="anno_id")]
            require(len(obj_ids) == len(anno_ids), "obj_id and anno_id lists differ in length", file=meta_path, item=item)
            require(len(set(obj_ids)) == len(obj_ids), "repeated obj_id in one expression", file=meta_path, item=item)
            for o, a in zip(obj_ids, anno_ids):
                if known is None:
                    unchecked.append((item, a))
                else:
                    _require_anno(known, a, meta_path, item)
                if obj_of_anno.setdefault(a, o) != o:
                    raise RvosError(f"anno_id {a} names obj_id {obj_of_anno[a]} and {o}", file=meta_path, item=item)
                if anno_of_obj.setdefault(o, a) != a:
                    raise RvosError(f"obj_id {o} has anno_id {anno_of_obj[o]} and {a}", file=meta_path, item=item)
        rows.append(
            {"video_id": vid, "exp_id": str(eid), "exp_index": n, "text": e["exp"], "obj_ids": obj_ids, "anno_ids": anno_ids,
             "annotator": None, "kind": None}
        )
    if w is None:
        return None
    w.add_expressions(rows)
    if index is None:
        w.add_objects([])
        return None
    objects = sorted(anno_of_obj.items())
    w.add_objects({"video_id": vid, "obj_id": o, "anno_id": a, "category": None} for o, a in objects)
    return (vid, objects, frames, H, W, mask_path, index, meta_path, unchecked)


def _require_anno(index: JsonObjectIndex, anno_id: str, meta_path: Path, item: str) -> None:
    require(anno_id in index, f"anno_id {anno_id} is not in mask_dict.json (expression names an unknown object)", file=meta_path, item=item)


class _MaskPipeline:
    """Masks jobs (:func:`_convert_video`'s), in video order: :attr:`PARSERS` threads read and check
    videos' masks (:func:`_video_masks`: compiled kernels, no GIL), an ordering thread hands their
    tables to a writer thread (``w.add_masks``: Parquet, no GIL) in video order, and the caller's
    thread goes on with the next videos' expressions without waiting (a job is a few references).
    At most ``QUEUED + 1`` videos are queued for or in the parsers and ``WRITES`` tables for or in
    the writer (memory stays flat).

    Errors come out as a sequential run meets them: :meth:`add` and :meth:`drain` raise the error
    of the earliest video, a read error of video k before its write error, and the caller, after an
    error of its own in video k, calls :meth:`drain` first (any error of videos < k wins)."""

    _READ, _WRITE = 0, 1
    PARSERS = 2  # videos parsed at once: reading and checking the masks is the longest stage
    # videos handed to the parsers, and tables handed to the writer, ahead of the oldest unfinished
    # one: a long video, or a slow write, at the head leaves no thread idle (one parse and one write
    # waiting each had the parsers idle ~20 % of the time); a few tables of a few MB at most
    QUEUED = 3 * PARSERS
    WRITES = PARSERS + 3

    def __init__(self, w: DatasetWriter, on_done: Callable[[], None] = lambda: None):
        self.w = w
        self._on_done = on_done  # called by the ordering thread after each video (the progress bar)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._errors: list[tuple[int, int, BaseException]] = []  # (video index, stage, error)
        self._stop = threading.Event()
        self._n = 0

    def __enter__(self) -> "_MaskPipeline":
        self._parse_pool = ThreadPoolExecutor(self.PARSERS, thread_name_prefix="rvoskit-masks-read")
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="rvoskit-masks-write")
        self._reader = threading.Thread(target=self._read_loop, name="rvoskit-masks-order", daemon=True)
        self._reader.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # the threads finish before the writer closes; on an error (or Ctrl-C) queued jobs are dropped
        if exc_type is not None:
            self._stop.set()
        self._jobs.put(None)
        self._reader.join()
        self._parse_pool.shutdown(wait=True, cancel_futures=exc_type is not None)
        self._write_pool.shutdown(wait=True, cancel_futures=exc_type is not None)

    def _read_loop(self) -> None:
        parses: deque = deque()  # (video index, video_id, future), in video order
        writes: deque = deque()  # (video index, future), in video order

        def settle(keep: int) -> None:
            while len(writes) > keep:
                k, fut = writes.popleft()
                try:
                    fut.result()
                except BaseException as exc:
                    self._fail(k, self._WRITE, exc)

        def hand_on() -> None:  # the oldest parse to the writer
            k, vid, fut = parses.popleft()
            try:
                table = fut.result()
            except BaseException as exc:
                self._fail(k, self._READ, exc)
                return
            if self._stop.is_set():
                return  # an earlier error: nothing more is written
            settle(keep=self.WRITES - 1)
            writes.append((k, self._write_pool.submit(self.w.add_masks, vid, table)))
            self._on_done()

        while (item := self._jobs.get()) is not None:
            k, job = item
            if self._stop.is_set():
                continue  # an error: the rest is dropped
            if job is None:  # a split without masks
                self._on_done()
                continue
            parses.append((k, job[0], self._parse_pool.submit(_video_masks, *job)))
            while len(parses) > self.QUEUED:
                hand_on()
        while parses:
            hand_on()
        settle(keep=0)

    def _fail(self, k: int, stage: int, exc: BaseException) -> None:
        self._errors.append((k, stage, exc))
        self._stop.set()

    def _raise_first(self) -> None:
        self._jobs.put(None)
        self._reader.join()
        k, stage, exc = min(self._errors, key=lambda e: e[:2])
        raise exc

    def add(self, job: tuple | None) -> None:
        """Queue a video's masks job (None: a video without masks); raises an earlier video's error."""
        if self._stop.is_set():
            self._raise_first()
        self._jobs.put((self._n, job))
        self._n += 1

    def drain(self) -> None:
        """Finish every job; raise the first error."""
        self._jobs.put(None)
        self._reader.join()
        if self._errors:
            self._raise_first()


def _video_masks(vid: str, objects: list[tuple[int, str]], frames: list[str], H: int, W: int, mask_path: Path,
                 index: JsonObjectIndex | Future, meta_path: Path, unchecked: list[tuple[str, str]]):
    """The masks rows of one video: an Arrow table from the compiled path, or row dicts from the
    exact path (any value outside the compiled parser's subset, and every error message).
    ``index`` may be the index's future (waited for); ``unchecked``: the (expression, anno_id)
    pairs :func:`_convert_video` left to check against it.

    Raises:
        RvosError: the index's error; an anno_id not in mask_dict.json (naming the meta file and
            the expression); a mask entry that is not a list or has another number of frames,
            malformed RLE, a mask size other than the frame's (naming mask_dict.json and the
            anno_id / frame).
    """
    if isinstance(index, Future):
        index = index.result()
    for item, a in unchecked:
        _require_anno(index, a, meta_path, item)
    if index.fast:
        table = _fast_masks(index, vid, objects, len(frames), H, W)
        if table is not None:
            return table
    m_obj, m_t, m_counts, m_seg = [], [], [], []

    def native(seg, t: int, item: str, check_total: bool) -> bytes:
        try:
            return rlemod.from_native(seg, H, W, check_total=check_total)[0]
        except ValueError as exc:
            what = "mask size differs from the frame" if "differs" in str(exc) else "malformed RLE"
            raise RvosError(f"{what}: {exc}", file=mask_path, item=f"{item} frame {t} ({frames[t]})") from None

    for o, a in objects:
        segs = index.get(a)
        item = f"anno_id {a} (video {vid})"
        require(isinstance(segs, list), "mask entry is not a list", file=mask_path, item=item)
        require(len(segs) == len(frames), f"has {len(segs)} frames, the video has {len(frames)}", file=mask_path, item=item)
        for t, seg in enumerate(segs):
            if not seg:  # null / None: absent in this frame
                continue
            m_obj.append(o)
            m_t.append(t)
            m_counts.append(native(seg, t, item, False))  # the totals are checked below, all at once
            m_seg.append((seg, item))
    totals = rlemod.pixel_counts(m_counts)
    for i in np.flatnonzero(totals != H * W):  # the first bad one raises the one-at-a-time check's error
        native(m_seg[i][0], m_t[i], m_seg[i][1], True)
    return mask_rows(vid, m_obj, m_t, m_counts, H, W)


def _fast_masks(index: JsonObjectIndex, vid: str, objects: list[tuple[int, str]], T: int, H: int, W: int):
    """The masks rows of one video as an Arrow table, through the compiled parser
    (:func:`rvoskit.datasets.maskdict_scan.parse_values`): no Python object per mask.

    Returns None when anything needs the exact path: a value outside the parser's subset, a frame
    count other than ``T``, an RLE size other than ``H x W``, or counts that fail their check (the
    exact path then gives the same rows or raises the one-at-a-time check's error).
    """
    import pyarrow as pa

    from rvoskit.datasets import maskdict_scan as ms
    from rvoskit.format.arrowbuf import from_numpy
    from rvoskit.format.schema import arrow_schema

    if not objects or not all(-(1 << 63) <= o < (1 << 63) for o, _ in objects):  # int64 obj_id: the exact path's error
        return None
    raw, starts, ends = index.read_raw([a for _, a in objects], reuse=True)  # parse_values copies what it keeps
    ok, n_el, el_h, el_w, status, area, bbox, data, offsets = ms.parse_values(raw, starts, ends)
    if not ok or (n_el != T).any():
        return None
    is_rle = el_h >= 0
    if (el_h[is_rle] != H).any() or (el_w[is_rle] != W).any() or status.any():
        return None
    n = int(is_rle.sum())
    obj = np.repeat(np.fromiter((o for o, _ in objects), np.int64, len(objects)), T)[is_rle]
    t = np.tile(np.arange(T, dtype=np.int32), len(objects))[is_rle]

    v = vid.encode()
    schema = arrow_schema("masks")  # the writer's schema as it is: to_arrow casts nothing
    return pa.Table.from_arrays([
        pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(np.arange(0, len(v) * (n + 1), len(v), dtype=np.int32)), pa.py_buffer(v * n)]),
        from_numpy(obj),
        from_numpy(t),
        from_numpy(np.full(n, H, np.int32)),
        from_numpy(np.full(n, W, np.int32)),
        pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]),
        from_numpy(area[is_rle]),
        pa.ListArray.from_buffers(schema.field("bbox").type, n, [None, pa.py_buffer(np.arange(0, 4 * n + 1, 4, dtype=np.int32))],
                                  children=[from_numpy(bbox[is_rle].ravel())]),
    ], schema=schema)
