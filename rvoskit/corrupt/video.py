"""Corrupt every frame of a dataset: the video policies, workers, resume and the draws table.

Layout of the output (a derived dataset, see :mod:`rvoskit.format.derive`)::

    <out>/
      dataset.json          the input's manifest, frame_root "frames", plus "corruption" and "derived_from"
      videos.parquet        frame_files -> "<safe video_id>/<safe frame>.png"
      objects.parquet ...   hard links to (or copies of) the input's tables
      corruption.parquet    one row per frame: video_id, frame_idx, frame, file, seed, angle, params
      frames/<safe video_id>/<safe frame>.png

While running, everything is built in ``.<out name>.partial/`` beside ``<out>``: each frame is
written atomically and then recorded in ``draws.jsonl`` there; a rerun with the same options skips
the recorded frames (a killed run resumes) and, when every frame is there, writes the tables and
renames the directory to ``<out>``. Every frame's draws depend only on ``(seed, video_id,
frame_idx)``, so the result does not depend on workers, order or interruptions.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rvoskit import __version__
from rvoskit.corrupt.imagenet_c import check_corruption, corrupt_image
from rvoskit.corrupt.rng import RNG_KINDS, frame_seed, make_rng, video_seed
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor
from rvoskit.format import open_dataset, safe_name
from rvoskit.format.derive import write_derived_dataset
from rvoskit.format.store import RvosDataset, sha256_file

ANGLE_POLICIES = ("per_frame", "per_video")
FORMATS = ("png", "jpeg")
FRAME_ROOT = "frames"
DRAWS_TABLE = "corruption.parquet"
REFERENCE = "imagecorruptions-imaug 1.1.5 (imagecorruptions/corruptions.py)"
_JOB, _DRAWS = "job.json", "draws.jsonl"

DRAWS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("frame_idx", pa.int32(), nullable=False),
        pa.field("frame", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("seed", pa.uint64(), nullable=False),
        pa.field("angle", pa.float64()),
        pa.field("params", pa.string(), nullable=False),
    ]
)


def work_dir(out: str | Path) -> Path:
    """Where a run towards ``out`` builds its output (kept when the run is killed)."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _encode_params(image_format: str, quality: int | None) -> tuple[str, list[int]]:
    if image_format == "png":
        # zlib level 1, Huffman only: on corrupted frames both faster and smaller than the default LZ77 search
        return ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    return ".jpg", [
        cv2.IMWRITE_JPEG_QUALITY,
        int(quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]


# -- one frame (runs in worker processes) --------------------------------------------------------

_DATASETS: dict[str, RvosDataset] = {}


def _worker_frame(task: dict) -> dict:
    """Executor job: one frame, with the dataset opened once per process."""
    ds = _DATASETS.get(task["dataset"])
    if ds is None:
        ds = _DATASETS[task["dataset"]] = open_dataset(task["dataset"])
    return _corrupt_frame(task, ds)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a ``uint8`` image (``(H, W, 3)`` RGB or ``(H, W)`` gray) as a PNG, losslessly
    (:func:`png_parts`, joined)."""
    return b"".join(png_parts(image))


def png_parts(image: np.ndarray) -> list:
    """The bytes of a PNG of ``image`` as a list of buffers, to be written one after the other.

    One filter for the whole image, None or Sub, whichever leaves the smaller sum of absolute
    residuals on every 8th row (libpng's heuristic, per image instead of per row), then zlib at
    level 1 with Huffman coding only, or no compression (zlib stored blocks of whole rows) when
    Huffman coding would save less than 20 % (noise: judged by the entropy of the bytes of every
    8th row). On 720p corrupted frames this is 2x (smooth) to 20x (noise) faster than
    ``cv2.imencode(".png")`` at its fastest settings, for files up to ~30 % (smooth blur) or ~20 %
    (noise) larger. Any PNG reader gives back exactly ``image``.
    """
    a = np.ascontiguousarray(image, np.uint8)
    if a.ndim == 2:
        h, w, c, color = a.shape[0], a.shape[1], 1, 0
    elif a.ndim == 3 and a.shape[2] == 3:
        h, w, c, color = a.shape[0], a.shape[1], 3, 2
    else:
        raise ValueError(f"cannot write a {a.shape} image as PNG")
    rows = a.reshape(h, w * c)
    sample = rows[::8].astype(np.int16)
    sad_none = np.minimum(sample, 256 - sample).sum()  # residuals as signed bytes
    sub = (sample[:, c:] - sample[:, :-c]) % 256
    sad_sub = np.minimum(sub, 256 - sub).sum() + np.minimum(sample[:, :c], 256 - sample[:, :c]).sum()
    use_sub = bool(sad_sub < sad_none)
    # Incompressible frames (noise: the bytes of every 8th row carry >= 6.4 bits of entropy, so
    # Huffman coding, which cannot beat the entropy, saves < 20 %) are stored: written here as
    # zlib stored blocks of whole rows, the rows filtered straight into them (one copy), 7x faster
    # than Huffman coding for files ~20 % larger.
    if _entropy_bits(_filtered(rows[::8], c, use_sub)) >= 6.4:
        data = (_zlib_stored_rows(rows, c, use_sub),)
    else:
        z = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
        raw = _filtered(rows, c, use_sub)
        data = (z.compress(raw.data), z.flush())  # the IDAT body in two parts: no concatenated copies

    def chunk(kind: bytes, *body) -> list:
        crc = zlib.crc32(kind)
        for part in body:
            crc = zlib.crc32(part, crc)
        return [struct.pack(">I", sum(len(part) for part in body)), kind, *body, struct.pack(">I", crc)]

    head = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return [b"\x89PNG\r\n\x1a\n", *chunk(b"IHDR", head), *chunk(b"IDAT", *data), *chunk(b"IEND")]


def _filtered(rows: np.ndarray, c: int, use_sub: bool, out: np.ndarray | None = None) -> np.ndarray:
    """PNG scanlines of ``rows`` (``(n, w*c)`` uint8): filter byte 0 (None) or 1 (Sub), then the row."""
    raw = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8) if out is None else out
    if use_sub:
        raw[:, 0] = 1
        raw[:, 1 : 1 + c] = rows[:, :c]
        np.subtract(rows[:, c:], rows[:, :-c], out=raw[:, 1 + c :])
    else:
        raw[:, 0] = 0
        raw[:, 1:] = rows
    return raw


def _zlib_stored_rows(rows: np.ndarray, c: int, use_sub: bool) -> memoryview:
    """The zlib stream (RFC 1950) of the scanlines of ``rows`` in stored deflate blocks (RFC 1951
    BTYPE 00) of whole scanlines, each scanline filtered straight into its block."""
    h, n = rows.shape[0], rows.shape[1] + 1
    per = _STORED // n
    if per == 0 or h == 0:  # a scanline longer than a block (or no rows): blocks cut anywhere
        return _zlib_stored(_filtered(rows, c, use_sub).reshape(-1))
    blocks = -(-h // per)
    out = np.empty(2 + 5 * blocks + h * n + 4, np.uint8)
    out[:2] = (0x78, 0x01)  # deflate, 32 KB window, no dictionary, "fastest"; (0x78 << 8 | 0x01) % 31 == 0
    adler = 1
    off = 2
    for r0 in range(0, h, per):
        k = min(per, h - r0)
        size = k * n
        last = r0 + k == h
        out[off : off + 5] = (1 if last else 0, size & 0xFF, size >> 8, ~size & 0xFF, (~size >> 8) & 0xFF)
        payload = out[off + 5 : off + 5 + size]
        _filtered(rows[r0 : r0 + k], c, use_sub, payload.reshape(k, n))
        adler = zlib.adler32(payload, adler)
        off += 5 + size
    out[-4:] = np.frombuffer(adler.to_bytes(4, "big"), np.uint8)
    return memoryview(out).cast("B")


def _entropy_bits(rows: np.ndarray) -> float:
    """Shannon entropy (bits per byte) of the bytes of ``rows``: a lower bound of Huffman coding's size."""
    counts = np.bincount(np.ascontiguousarray(rows).reshape(-1), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


_STORED = 65535  # bytes per stored deflate block (the most its 16-bit length allows)


def _zlib_stored(data: np.ndarray) -> memoryview:
    """A zlib stream (RFC 1950) of ``data`` (uint8, 1-D) in stored deflate blocks (RFC 1951 BTYPE 00):
    what zlib level 0 writes, by one copy instead of zlib's window passes."""
    n = data.size
    full, rest = divmod(n, _STORED)
    blocks = full + (1 if rest or not full else 0)
    out = np.empty(2 + 5 * blocks + n + 4, np.uint8)
    out[:2] = (0x78, 0x01)  # deflate, 32 KB window, no dictionary, "fastest"; (0x78 << 8 | 0x01) % 31 == 0
    body = out[2 : 2 + 5 * blocks + n]
    if full:
        b = body[: full * (_STORED + 5)].reshape(full, _STORED + 5)
        b[:, :5] = (0, 0xFF, 0xFF, 0x00, 0x00)  # not final, stored, LEN 65535, NLEN 0
        b[:, 5:] = data[: full * _STORED].reshape(full, _STORED)
    if blocks > full:  # the last, shorter block (or the only, empty one)
        head = full * (_STORED + 5)
        body[head : head + 5] = (1, rest & 0xFF, rest >> 8, ~rest & 0xFF, (~rest >> 8) & 0xFF)
        body[head + 5 :] = data[full * _STORED :]
    else:
        b[-1, 0] = 1  # the last full block is the final one
    out[-4:] = np.frombuffer(zlib.adler32(data).to_bytes(4, "big"), np.uint8)
    return memoryview(out).cast("B")


def _compute(task: dict, image: np.ndarray, ds: RvosDataset) -> tuple[np.ndarray, dict]:
    vid, t = task["video_id"], task["frame_idx"]
    rng = make_rng(task["rng"], task["seed"], task["type"])
    try:
        return corrupt_image(image, task["type"], task["severity"], rng, angle=task["angle"])
    except RvosError as exc:
        raise RvosError(exc.message, file=ds.frame_paths(vid)[t], item=f"{vid} frame {t}") from None


def _write(task: dict, out: np.ndarray, params: dict) -> dict:
    """Encode and atomically write one corrupted frame; returns its draws record."""
    vid, t = task["video_id"], task["frame_idx"]
    if task["format"] == "png":
        data = png_parts(out)  # written part by part: no joined copy
    else:
        ext, enc = _encode_params(task["format"], task["quality"])
        ok, buf = cv2.imencode(ext, cv2.cvtColor(out, cv2.COLOR_RGB2BGR), enc)
        if not ok:
            raise RvosError(f"could not encode the corrupted frame as {task['format']}", item=f"{vid} frame {t}")
        data = [buf]
    dest = Path(task["dest"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"  # a kill leaves at most this behind
    with open(tmp, "wb") as f:
        f.writelines(data)
    os.replace(tmp, dest)
    if task["angle"] is not None:  # per_video: the video seed drew the angle (np.random.seed(it) for the reference)
        params = {**params, "angle_from": "video", "video_seed": task["video_seed"]}
    return {"video_id": vid, "frame_idx": t, "seed": task["seed"], "params": params}


def _corrupt_frame(task: dict, ds: RvosDataset) -> dict:
    """Read, corrupt, encode and atomically write one frame; returns its draws record."""
    image = ds.read_frame(task["video_id"], task["frame_idx"])
    return _write(task, *_compute(task, image, ds))


#: frames corrupted at the same time by one worker (threads: numpy's large operations, its random
#: draws, OpenCV and zlib release the GIL, and every frame's draws are its own)
COMPUTE_THREADS = 2


def _run_local(tasks: list[dict], ds: RvosDataset, threads: int = COMPUTE_THREADS) -> Iterator[dict]:
    """In this process, as a pipeline of threads: one reads (decodes) the next frames, ``threads``
    corrupt frames side by side, one encodes and writes the finished ones. Each frame's draws come
    from its own seed, so the output does not depend on which thread ran it. Records are yielded
    in order, once written."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    it = iter(tasks)
    computes: deque = deque()  # (task, future of (out, params)), in task order
    writes: deque = deque()
    with (
        ThreadPoolExecutor(1, thread_name_prefix="rvoskit-read") as rd,
        ThreadPoolExecutor(threads, thread_name_prefix="rvoskit-corrupt") as cp,
        ThreadPoolExecutor(1, thread_name_prefix="rvoskit-write") as wr,
    ):

        def compute(task: dict, image_future) -> tuple[np.ndarray, dict]:
            return _compute(task, image_future.result(), ds)

        def fill() -> None:
            while len(computes) < threads + 1 and (task := next(it, None)) is not None:
                image = rd.submit(ds.read_frame, task["video_id"], task["frame_idx"])
                computes.append((task, cp.submit(compute, task, image)))

        def cancel() -> None:
            for _, f in computes:
                f.cancel()
            for f in writes:
                f.cancel()

        try:
            fill()
            while computes:
                task, fut = computes.popleft()
                try:
                    out, params = fut.result()
                    fill()
                except BaseException:
                    for _, f in computes:
                        f.cancel()
                    while writes:  # the frames done before this one are written and recorded (resume)
                        yield writes.popleft().result()
                    raise
                writes.append(wr.submit(_write, task, out, params))
                while len(writes) > 2 or (writes and writes[0].done()):
                    yield writes.popleft().result()
            while writes:
                yield writes.popleft().result()
        except BaseException:
            cancel()
            raise


def _run(tasks: list[dict], ds: RvosDataset, ex: Executor) -> Iterator[dict]:
    """Yield the records of ``tasks`` as they finish (in this process, a process pool or Ray)."""
    ex = ex.for_units(len(tasks))
    if ex.kind == "local":
        yield from _run_local(tasks, ds)
        return
    for _task, rec in imap(_worker_frame, tasks, ex, window=4 * ex.workers if ex.kind == "process" else None):
        yield rec


# -- the run -----------------------------------------------------------------------------------


def _read_records(path: Path) -> dict[tuple[str, int], dict]:
    """Records of finished frames; a line cut by a kill is dropped and the file rewritten without it."""
    if not path.is_file():
        return {}
    records, good = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
            records[(r["video_id"], int(r["frame_idx"]))] = r
            good.append(line)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    path.write_text("".join(g + "\n" for g in good), encoding="utf-8")
    return records


def check_options(
    corruption: str,
    severity: int,
    *,
    seed: int = 0,
    angle_policy: str = "per_frame",
    rng: str = "generator",
    image_format: str = "png",
    quality: int | None = None,
    workers: int = 1,
) -> int | None:
    """Check the options of :func:`corrupt_dataset` (before any work); returns the JPEG quality to use.

    Raises:
        RvosError: the first bad option, in words.
    """
    check_corruption(corruption, severity)
    if angle_policy not in ANGLE_POLICIES:
        raise RvosError(f"unknown angle policy {angle_policy!r}; choose one of {', '.join(ANGLE_POLICIES)}")
    if angle_policy == "per_video" and corruption != "motion_blur":
        raise RvosError(f"--angle-policy per_video applies to motion_blur only, not {corruption}")
    if rng not in RNG_KINDS:
        raise RvosError(f"unknown RNG kind {rng!r}; choose one of {', '.join(RNG_KINDS)}")
    if image_format not in FORMATS:
        raise RvosError(f"unknown image format {image_format!r}; choose png or jpeg")
    if image_format == "png" and quality is not None:
        raise RvosError("--quality applies to jpeg only (png is lossless)")
    if image_format == "jpeg":
        quality = 95 if quality is None else quality
        if not 1 <= int(quality) <= 100:
            raise RvosError(f"JPEG quality must be 1..100, got {quality}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RvosError(f"seed must be a non-negative integer, got {seed!r}")
    if workers < 1:
        raise RvosError(f"workers must be >= 1, got {workers}")
    return quality


def corrupt_dataset(
    dataset: str | Path,
    out: str | Path,
    *,
    corruption: str,
    severity: int,
    seed: int = 0,
    angle_policy: str = "per_frame",
    rng: str = "generator",
    image_format: str = "png",
    quality: int | None = None,
    workers: int = 1,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a copy of a dataset whose frames are corrupted with an ImageNet-C corruption.

    Each frame gets fresh draws (new noise every frame) from its own seed
    (:func:`rvoskit.corrupt.rng.frame_seed`). ``motion_blur``'s angle is drawn per frame
    (``per_frame``, what applying ImageNet-C to each frame does) or once per video
    (``per_video``, from :func:`rvoskit.corrupt.rng.video_seed`, recorded in ``params`` as
    ``video_seed``). Every frame's seed and drawn parameters go to ``corruption.parquet``; ``corrupt_image(frame, type, severity,
    make_rng(rng, seed, type), angle=angle)`` reproduces any frame.

    Args:
        dataset: a common-format dataset directory.
        out: the output dataset directory.
        corruption: one of :data:`rvoskit.corrupt.CORRUPTIONS`.
        severity: 1..5.
        seed: the run's seed (non-negative integer).
        angle_policy: ``per_frame`` or ``per_video`` (``motion_blur`` only).
        rng: ``generator`` (fast) or ``legacy`` (draws of ``np.random.seed(frame seed)``, so each
            frame equals the reference package's output; see :mod:`rvoskit.corrupt.rng`).
        image_format: ``png`` (lossless) or ``jpeg`` (4:4:4 chroma; 4:2:0 would halve the noise).
        quality: JPEG quality 1..100 (default 95); not allowed with png.
        workers: processes (1 = in this process).
        executor: ``local`` / ``process`` / ``ray`` (:mod:`rvoskit.executor`; default: ``local``
            for one worker, else ``process``); frames are the work units.
        ray_address: the Ray cluster of ``executor="ray"``.
        overwrite: replace an existing ``out`` and discard a partial run with other options.
        progress: called as ``progress(frames done, frames total)`` after each frame (and once at
            the start with the frames already done by an earlier, interrupted run).

    Returns:
        ``out``.

    Raises:
        RvosError: unknown corruption, bad severity / policy / format / quality / seed, ``out``
            exists, a partial run with other options, an unreadable or too small frame (naming
            the file and the frame).
    """
    quality = check_options(corruption, severity, seed=seed, angle_policy=angle_policy, rng=rng, image_format=image_format, quality=quality, workers=workers)
    ex = resolve_executor(executor, workers, ray_address)
    ds = open_dataset(dataset)
    ds.check_tables()  # the tables are passed on to the corrupted copy: a broken one is refused now, not copied
    out = Path(out)
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    options = {
        "type": corruption,
        "severity": int(severity),
        "seed": int(seed),
        "angle_policy": angle_policy,
        "rng": rng,
        "format": image_format,
        "quality": quality,
    }
    job = {"input": str(ds.path.resolve()), "input_manifest_sha256": sha256_file(ds.path / "dataset.json"), "options": options}
    work = work_dir(out)
    if work.exists():
        try:
            old = json.loads((work / _JOB).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = None
        if old != job:
            if not overwrite:
                raise RvosError(
                    "a partial run with other options (or another input) is here; rerun with the same options "
                    "to resume it, or pass --overwrite to discard it",
                    file=work,
                )
            shutil.rmtree(work)
    (work / FRAME_ROOT).mkdir(parents=True, exist_ok=True)
    (work / _JOB).write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")

    ext = ".png" if image_format == "png" else ".jpg"
    tasks, frame_files = [], {}
    for vid, frames in zip(ds.videos["video_id"], ds.videos["frames"]):
        angle = vseed = None
        if angle_policy == "per_video":
            vseed = video_seed(seed, vid, rng)
            angle = float(make_rng(rng, vseed).uniform(-45, 45))
        frame_files[vid] = [f"{safe_name(vid)}/{safe_name(str(f))}{ext}" for f in frames]
        for t, (name, rel) in enumerate(zip(frames, frame_files[vid])):
            tasks.append(
                {
                    "video_id": vid,
                    "frame_idx": t,
                    "frame": str(name),
                    "file": rel,
                    "seed": frame_seed(seed, vid, t, rng),
                    "angle": angle,
                    "video_seed": vseed,
                    "dest": str(work / FRAME_ROOT / rel),
                    "dataset": str(ds.path.resolve()),
                    **{k: options[k] for k in ("type", "severity", "rng", "format", "quality")},
                }
            )

    draws_path = work / _DRAWS
    records = _read_records(draws_path)
    pending = [t for t in tasks if (t["video_id"], t["frame_idx"]) not in records or not Path(t["dest"]).is_file()]
    n_done, total = len(tasks) - len(pending), len(tasks)
    if progress:
        progress(n_done, total)
    with open(draws_path, "a", encoding="utf-8") as log:
        for rec in _run(pending, ds, ex):
            records[(rec["video_id"], rec["frame_idx"])] = rec
            log.write(json.dumps(rec) + "\n")
            log.flush()
            n_done += 1
            if progress:
                progress(n_done, total)

    # every frame is there: tables, manifest, then the rename
    rows = []
    for task in tasks:
        rec = records[(task["video_id"], task["frame_idx"])]
        rows.append(
            {
                **{k: task[k] for k in ("video_id", "frame_idx", "frame", "file")},
                "seed": int(rec["seed"]),
                "angle": rec["params"].get("angle") if corruption == "motion_blur" else None,
                "params": json.dumps(rec["params"], sort_keys=True),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=DRAWS_SCHEMA), work / DRAWS_TABLE, compression="zstd")
    for stray in (work / FRAME_ROOT).glob("*/.*"):  # temporary files of writes cut by a kill
        stray.unlink()
    write_derived_dataset(
        ds,
        work,
        frame_files=frame_files,
        frame_root=FRAME_ROOT,
        extra={
            "corruption": {
                **options,
                "chroma": "4:4:4" if image_format == "jpeg" else None,
                "draws": DRAWS_TABLE,
                "reference": REFERENCE,
                "rvoskit_version": __version__,
            }
        },
    )
    (work / _JOB).unlink()
    draws_path.unlink()
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)
    return out
