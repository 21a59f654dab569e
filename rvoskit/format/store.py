"""Reading and writing common-format directories (the only code that touches their files).

A dataset directory (see ``schemas/FORMAT.md``)::

    dataset.json        manifest
    videos.parquet      objects.parquet      expressions.parquet
    masks.parquet       (row groups per video)
    moments.parquet     (MeViS-M only)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made (~0.3 s: convert never needs it)
    import pandas as pd

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format import rle as rlemod
from rvoskit.format.atomic import atomic_dir
from rvoskit.format import arrowbuf
from rvoskit.format.jsonfile import read_json_object
from rvoskit.format.schema import (
    FORMAT_VERSION,
    arrow_schema,
    check_schema,
    check_table,
    fill_optional,
    optional_columns,
    version_supported,
)

MANIFEST = "dataset.json"
FORMAT_NAME = "rvoskit-rvos"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _int_column(t: pa.Table, name: str) -> np.ndarray:
    """An integer column as numpy: from its buffers when it has no nulls (:func:`arrowbuf.to_numpy`;
    ``to_numpy`` imports pandas, ~0.3 s of a ``convert`` that never needs it), else pyarrow's own
    conversion (floats with NaN)."""
    col = t.column(name)
    return col.to_numpy() if col.null_count else arrowbuf.to_numpy(col)


def to_arrow(table: str, data: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]]) -> pa.Table:
    """Convert rows, a DataFrame or an Arrow table to the schema of ``table`` (columns in order).

    Raises:
        RvosError: missing columns or values that do not fit the column types.
    """
    schema = arrow_schema(table)
    problems = None
    try:
        if isinstance(data, pa.Table) and data.schema.equals(schema, check_metadata=False):
            # already the schema (convert's masks): no cast, and of check_table's checks only the nulls
            t = data.replace_schema_metadata(schema.metadata)
            problems = [f"column {f.name!r} has {n} null value(s)" for f, c in zip(schema, t.columns) if not f.nullable and (n := c.null_count)]
        elif isinstance(data, pa.Table):
            t = fill_optional(table, data).select(schema.names).cast(schema)
        elif "pandas" in sys.modules and isinstance(data, sys.modules["pandas"].DataFrame):  # no DataFrame without pandas
            data = data.assign(**{c: None for c in optional_columns(table) if c not in data.columns})
            # NaN stays NaN in non-nullable float columns (pandas would make it null); elsewhere
            # pandas' missing values become nulls.
            cols = [pa.array(data[f.name], type=f.type, from_pandas=f.nullable or not pa.types.is_floating(f.type))
                    for f in schema]
            t = pa.Table.from_arrays(cols, schema=schema)
        else:
            rows = list(data)
            t = arrowbuf.from_pylist(rows, schema) if rows and all(r.__class__ is dict for r in rows) else None
            if t is None:  # values pa.array must judge (it imports pandas), or no rows
                t = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise RvosError(f"rows do not fit the {table} schema: {exc}") from None
    if problems is None:
        problems = check_table(table, t)  # pyarrow does not enforce non-nullable fields on construction
    if problems:
        raise RvosError(f"rows do not fit the {table} schema: {'; '.join(problems)}")
    return t


def masks_parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """``pq.ParquetWriter`` options of ``masks.parquet`` (one row group per video).

    A dictionary only for ``video_id`` (every RLE differs: trying one cost ~25 % of the write; the
    numbers compress as well without); no min/max statistics for the RLE bytes (nothing filters on
    them): 1.60 -> 1.44 s CPU for 364k masks in 1,662 row groups, same values. The RLE bytes are
    stored without a Parquet codec: COCO RLE is already a compression, and on a MeViS-train-sized
    split (292 MB of RLE, ``benchmarks/bench_convert.py``) snappy shrank them 1.84x for 0.56 s more
    CPU to write (1.11 s against 0.55 s, a third of ``json.load``'s time) and ~1.7 s more to read
    them all back (lz4: 1.74x for 1.04 s; zstd -5: 1.74x, 1.30 s; zstd 1: 2.67x, 1.74 s). The other
    columns are small: snappy, Parquet's usual codec (readers take any codec).
    """
    leaf = {f.name: f.name + (".list.element" if pa.types.is_list(f.type) else "") for f in schema}  # Parquet column paths
    return {"use_dictionary": ["video_id"], "compression": {leaf[n]: "none" if n == "rle" else "snappy" for n in schema.names},
            "write_statistics": [leaf[n] for n in schema.names if n != "rle"]}


def write_parquet(t: pa.Table, path: str | Path) -> None:
    """Write an Arrow table as Parquet (zstd); an empty table gets zero row groups.

    ``pq.write_table`` writes a table without rows as one zero-row row group, which Hugging Face
    ``datasets.load_dataset("parquet")`` refuses (``BatchSize must be greater than 0``); a file
    with the schema and no row group reads as an empty table everywhere (pyarrow, pandas, DuckDB,
    HF ``datasets``).
    """
    if t.num_rows == 0:
        pq.ParquetWriter(path, t.schema, compression="zstd").close()
    else:
        pq.write_table(t, path, compression="zstd")


def write_table(path: str | Path, table: str, data: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
    """Write one v1 table as Parquet (zstd), schema-checked. Returns the number of rows.

    An empty table is written with zero row groups (see :func:`write_parquet`).
    """
    t = to_arrow(table, data)
    write_parquet(t, path)
    return t.num_rows


def _parquet_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a Parquet table (missing, a directory, empty), or None."""
    if path.is_dir():
        return "is a directory, expected a Parquet file"
    if not path.exists():
        return "missing table"
    if not path.is_file():
        return "not a regular file, expected a Parquet file"
    if path.stat().st_size == 0:
        return "empty file (0 bytes), expected a Parquet table"
    return None


def read_schema(path: str | Path, table: str, *, columns: list[str] | None = None) -> pa.Schema:
    """Read a table file's schema from its Parquet footer and check it (no rows are read).

    Args:
        path: the Parquet file.
        table: its table name (schema to check against).
        columns: check only these columns.

    Raises:
        RvosError: missing, empty, truncated or corrupt file, a directory, a missing column or a
            column of another type (one line: ``<file>: missing column 'area'``).
    """
    path = Path(path)
    why = _parquet_problem(path)
    if why:
        raise RvosError(why, file=path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, table, tuple(columns) if columns is not None else None)
    schema = _CHECKED.get(key)  # per-video reads of one table parse its footer once
    if schema is not None:
        return schema
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise RvosError(f"unreadable Parquet: {_one_line(exc)}", file=path) from None
    problems = check_schema(table, schema, columns)
    if problems:
        raise RvosError("; ".join(problems), file=path)
    if len(_CHECKED) > 256:
        _CHECKED.clear()
    _CHECKED[key] = schema
    return schema


_CHECKED: dict[tuple, pa.Schema] = {}


def _one_line(exc: BaseException) -> str:
    """An exception message on one line (pyarrow messages span several)."""
    return " ".join(str(exc).split())


def _read_parquet(path: Path, filters, columns: list[str] | None) -> pa.Table:
    """``pq.read_table(path, filters=filters, columns=columns)``, the same table, without pyarrow's
    dataset API when ``filters`` is None or only ``(column, "=", value)`` terms: that API imports
    pandas (~0.3 s of an ``eval`` that never needs it, issue 13). Row groups whose statistics
    exclude a value are skipped, the others are read and their matching rows taken (nulls never
    match), in file order. Other filters go to ``pq.read_table``."""
    simple = filters is None or (isinstance(filters, list) and all(
        isinstance(f, tuple) and len(f) == 3 and f[1] in ("=", "==") and isinstance(f[2], (str, int)) and not isinstance(f[2], bool)
        for f in filters))
    if not simple:
        return pq.read_table(path, filters=filters, columns=columns)
    pf = pq.ParquetFile(path)
    if not filters:
        return pf.read(columns=columns)
    names = pf.schema_arrow.names
    if any(name not in names for name, _, _ in filters):
        return pq.read_table(path, filters=filters, columns=columns)
    md = pf.metadata
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
    groups = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        keep = True
        for name, _, value in filters:
            st = rg.column(leaf[name]).statistics if name in leaf else None
            if st is not None and st.has_min_max and type(st.min) is type(value) and not (st.min <= value <= st.max):
                keep = False
                break
        if keep:
            groups.append(g)
    want = list(dict.fromkeys((columns if columns is not None else names) + [name for name, _, _ in filters]))
    t = pf.read_row_groups(groups, columns=want) if groups else pf.schema_arrow.empty_table().select(want)
    hit = np.ones(t.num_rows, bool)
    for name, _, value in filters:
        hit &= np.fromiter((x == value for x in t.column(name).to_pylist()), bool, t.num_rows)
    if not hit.all():  # runs of matching rows as slices: take() would import pyarrow.compute (~0.1 s)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], hit, [False]]).astype(np.int8)))
        t = pa.concat_tables([t.slice(a, b - a) for a, b in zip(edges[::2], edges[1::2])]) if len(edges) else t.slice(0, 0)
    return t.select(columns if columns is not None else names)


def read_table(path: str | Path, table: str, *, filters=None, columns: list[str] | None = None) -> pa.Table:
    """Read and schema-check one v1 table.

    The schema is checked from the file footer before any row is read, so a missing column or a
    column of another type is one line (``missing column 'area'``), not a pyarrow schema dump.

    Args:
        path: the Parquet file.
        table: its table name (schema to check against).
        filters: pyarrow ``filters`` (e.g. ``[("video_id", "=", v)]``); row groups are skipped by statistics.
        columns: subset of columns to read (only those are checked).

    Raises:
        RvosError: missing, empty, truncated or corrupt file, a directory, a schema mismatch, or
            nulls in a non-nullable column (names the file).
    """
    path = Path(path)
    file_schema = read_schema(path, table, columns=columns)
    if columns is not None:  # an optional column an older file lacks is filled with nulls below
        columns = [c for c in columns if c in file_schema.names or c in optional_columns(table)]
    try:
        t = _read_parquet(path, filters, None if columns is None else [c for c in columns if c in file_schema.names])
    except (pa.ArrowException, OSError) as exc:
        raise RvosError(f"unreadable Parquet: {_one_line(exc)}", file=path) from None
    problems = check_table(table, t, columns)
    if problems:
        raise RvosError("; ".join(problems), file=path)
    return fill_optional(table, t, columns)


def _what_is(path: Path) -> str | None:
    """A guess at what a folder that is not a dataset holds, for error messages."""
    if path.is_file():
        return "a file, not a folder"
    if (path / "predictions.json").is_file() or (path / "predictions.parquet").is_file():
        return "a predictions folder (pass it as PREDICTIONS)"
    if (path / "trackstore.json").is_file():
        return "a track store (pass it with --tracks)"
    if (path / "labels.json").is_file() or (path / "labels.parquet").is_file():
        return "a labels folder (pass it with --labels)"
    return None


class RvosDataset:
    """A common-format dataset directory, read lazily.

    Attributes:
        path: the directory.
        manifest: the parsed ``dataset.json``.

    Raises (on open):
        RvosError: missing or unreadable manifest, unknown format or version.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not self.path.exists():
            raise RvosError("not an rvoskit dataset: no such folder (expected a dataset folder from rvoskit convert)", file=self.path)
        if mpath.is_dir() or (mpath.exists() and not mpath.is_file()):
            raise RvosError("dataset.json is not a file", file=mpath)
        if not mpath.is_file():
            what = _what_is(self.path)
            raise RvosError("not an rvoskit dataset (no dataset.json)" + (f"; this looks like {what}" if what else ""), file=self.path)
        self.manifest = read_json_object(mpath, "the dataset manifest")
        if self.manifest.get("format") != FORMAT_NAME:
            raise RvosError(f"format is {self.manifest.get('format')!r}, expected {FORMAT_NAME!r}", file=mpath)
        if not version_supported(self.manifest.get("format_version")):
            raise RvosError(
                f"format version {self.manifest.get('format_version')} is not supported (this rvoskit reads 1 to {FORMAT_VERSION})",
                file=mpath,
            )
        root = self.manifest.get("frame_root")
        if not isinstance(root, str) or not root:
            raise RvosError(f"is {root!r}, expected a folder path (a string)", file=mpath, item="frame_root")
        for key in ("counts", "source"):
            if key in self.manifest and not isinstance(self.manifest[key], dict):
                raise RvosError(f"is {self.manifest[key]!r}, expected an object", file=mpath, item=key)

    def check_tables(self) -> None:
        """Check every table the manifest lists (file and schema, from the Parquet footers; no rows
        are read), for stages that pass tables on without reading them (``corrupt``).

        Raises:
            RvosError: the first table that is missing, unreadable or of another schema.
        """
        tables = self.manifest.get("tables") or ["videos.parquet", "objects.parquet", "expressions.parquet", "masks.parquet"]
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise RvosError(f"is {tables!r}, expected a list of file names", file=self.path / MANIFEST, item="tables")
        for name in tables:
            table = name[: -len(".parquet")] if name.endswith(".parquet") else name
            try:
                arrow_schema(table)
            except KeyError:
                continue  # a table this version does not know: passed on as it is
            read_schema(self.path / name, table)

    def __repr__(self) -> str:
        src = self.manifest.get("source", {})
        return f"RvosDataset({str(self.path)!r}, {src.get('dataset')}/{src.get('split')})"

    # -- tables ---------------------------------------------------------------------------------
    def table(self, name: str, **kw) -> pa.Table:
        """Read table ``name`` (``videos``, ``objects``, ``expressions``, ``masks``, ``moments``) as Arrow."""
        return read_table(self.path / f"{name}.parquet", name, **kw)

    @cached_property
    def videos(self) -> pd.DataFrame:
        """``videos.parquet`` as a DataFrame indexed by ``video_id`` (frames as Python lists)."""
        df = self.table("videos").to_pandas()
        return df.set_index("video_id", drop=False)

    @cached_property
    def objects(self) -> pd.DataFrame:
        """``objects.parquet`` as a DataFrame."""
        return self.table("objects").to_pandas()

    @cached_property
    def expressions(self) -> pd.DataFrame:
        """``expressions.parquet`` as a DataFrame indexed by ``expression_id``."""
        return self.table("expressions").to_pandas().set_index("expression_id", drop=False)

    @cached_property
    def video_rows(self) -> dict[str, dict[str, Any]]:
        """``videos.parquet`` as ``{video_id: row}``, rows as dicts of plain Python values (lists,
        None for nulls), in file order: :attr:`videos` without pandas (``eval`` start-up)."""
        return {r["video_id"]: r for r in self.table("videos").to_pylist()}

    def video_row(self, video_id: str) -> dict[str, Any]:
        """:meth:`video` as a dict of plain Python values (no pandas).

        Raises:
            RvosError: unknown video id.
        """
        try:
            return self.video_rows[video_id]
        except KeyError:
            raise RvosError("unknown video", file=self.path / "videos.parquet", item=video_id) from None

    @cached_property
    def expression_rows(self) -> list[dict[str, Any]]:
        """``expressions.parquet`` rows as dicts of plain Python values, in file order (no pandas)."""
        return self.table("expressions").to_pylist()

    def void_masks(self, video_id: str) -> np.ndarray:
        """DAVIS void pixels (label 255) of a video as ``uint8 (T, H, W)`` 0/1 (zeros without ``void.parquet``)."""
        v = self.video(video_id)
        T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
        out = np.zeros((T, H, W), np.uint8)
        if (self.path / "void.parquet").is_file():
            rows = self.table("void", filters=[("video_id", "=", video_id)]).to_pandas()
            if len(rows):
                out[rows["frame_idx"].to_numpy()] = rlemod.decode_batch(list(rows["rle"]), H, W)
        return out

    @property
    def has_moments(self) -> bool:
        """Whether the dataset carries MeViS-M ``moments.parquet``."""
        return (self.path / "moments.parquet").is_file()

    @cached_property
    def moments(self) -> pd.DataFrame:
        """``moments.parquet`` (MeViS-M spans), or an empty table with the schema."""
        if not self.has_moments:
            return arrow_schema("moments").empty_table().to_pandas()
        return self.table("moments").to_pandas()

    def masks(self, video_id: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Mask rows, of one video (a row-group-pruned read) or of all videos."""
        filters = [("video_id", "=", video_id)] if video_id is not None else None
        return self.table("masks", filters=filters, columns=columns).to_pandas()

    def iter_masks(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """Yield ``(video_id, mask rows)`` per video, streaming row groups (bounded memory)."""
        path = self.path / "masks.parquet"
        read_schema(path, "masks")
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise RvosError(f"unreadable Parquet: {_one_line(exc)}", file=path) from None
        import pandas as pd

        pending: list[pd.DataFrame] = []
        current = None
        for i in range(pf.num_row_groups):
            try:
                t = pf.read_row_group(i)
            except (pa.ArrowException, OSError) as exc:
                raise RvosError(f"unreadable Parquet: {_one_line(exc)}", file=path, item=f"row group {i}") from None
            problems = check_table("masks", t)
            if problems:
                raise RvosError("; ".join(problems), file=path, item=f"row group {i}")
            df = t.to_pandas()
            for vid, part in df.groupby("video_id", sort=False):
                if current is not None and vid != current:
                    yield current, pd.concat(pending, ignore_index=True)
                    pending = []
                current = vid
                pending.append(part)
        if current is not None:
            yield current, pd.concat(pending, ignore_index=True)

    # -- frames -------------------------------------------------------------------------------
    @cached_property
    def frame_root(self) -> Path:
        """Directory that ``videos.frame_files`` are relative to (relative roots resolve against the dataset)."""
        root = Path(self.manifest["frame_root"])
        return root if root.is_absolute() else (self.path / root)

    def video(self, video_id: str) -> pd.Series:
        """The ``videos`` row of one video.

        Raises:
            RvosError: unknown video id.
        """
        try:
            return self.videos.loc[video_id]
        except KeyError:
            raise RvosError("unknown video", file=self.path / "videos.parquet", item=video_id) from None

    def annotated_frames(self, video_id: str) -> list[int]:
        """The frames of a video that have ground truth: ``videos.annotated_frames`` (format 1.1,
        sparse datasets such as A2D and JHMDB), or every frame index when it is null. A frame not
        in the list is "not annotated" (its masks read as zeros, but mean nothing)."""
        v = self.video(video_id)
        af = v.get("annotated_frames")
        return list(range(int(v["num_frames"]))) if af is None else [int(t) for t in af]

    def frame_paths(self, video_id: str) -> list[Path]:
        """Absolute paths of the frames of a video, in order."""
        return [self.frame_root / f for f in self.video(video_id)["frame_files"]]

    def read_frame(self, video_id: str, frame_idx: int) -> np.ndarray:
        """Read one frame as ``uint8 (H, W, 3)`` RGB (stored pixel order; EXIF orientation is not applied).

        Raises:
            RvosError: missing or unreadable frame file, or a frame whose size is not the video's
                ``height x width``.
        """
        import cv2

        v = self.video(video_id)
        path = self.frame_root / v["frame_files"][frame_idx]
        # EXIF orientation ignored: frames keep the size their header (and the masks) give, as SAM2's PIL loader does
        img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if path.is_file() else None
        if img is None:
            raise RvosError("missing or unreadable frame", file=path, item=f"{video_id} frame {frame_idx}")
        H, W = int(v["height"]), int(v["width"])
        if img.shape[:2] != (H, W):  # masks, tracks and corrupted copies all assume the video's size
            raise RvosError(f"frame is {img.shape[0]}x{img.shape[1]}, the video is {H}x{W} (videos.parquet)", file=path,
                            item=f"{video_id} frame {frame_idx}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    # -- masks as arrays ----------------------------------------------------------------------
    def object_masks(self, video_id: str, masks: pd.DataFrame | None = None) -> dict[int, np.ndarray]:
        """All objects of a video as ``{obj_id: uint8 (T, H, W)}`` (absent frames are zeros)."""
        v = self.video(video_id)
        T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
        if masks is None:
            masks = self.masks(video_id)
        out: dict[int, np.ndarray] = {}
        for obj_id, rows in masks.groupby("obj_id", sort=True):
            arr = np.zeros((T, H, W), np.uint8)
            arr[rows["frame_idx"].to_numpy()] = rlemod.decode_batch(list(rows["rle"]), H, W)
            out[int(obj_id)] = arr
        return out

    def expression_masks(self, expression_id: str, objects: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Ground truth of an expression: the union of its objects, ``uint8 (T, H, W)`` (MeViS rule).

        A no-target expression gives all zeros. On a sparse dataset the frames outside
        :meth:`annotated_frames` are zeros too: not annotated, not "object absent".

        Raises:
            RvosError: unknown expression, or an expression without ground truth (``obj_ids`` null).
        """
        try:
            e = self.expressions.loc[expression_id]
        except KeyError:
            raise RvosError("unknown expression", file=self.path / "expressions.parquet", item=expression_id) from None
        if e["obj_ids"] is None:
            raise RvosError("expression has no ground truth (obj_ids is null)", file=self.path, item=expression_id)
        v = self.video(e["video_id"])
        if objects is None:
            objects = self.object_masks(e["video_id"])
        gt = np.zeros((int(v["num_frames"]), int(v["height"]), int(v["width"])), np.uint8)
        for o in e["obj_ids"]:
            if int(o) in objects:
                gt |= objects[int(o)]
        return gt


def open_dataset(path: str | Path) -> RvosDataset:
    """Open a common-format dataset directory (see :class:`RvosDataset`)."""
    return RvosDataset(path)


def _refuse_colliding_ids(videos: list[dict], expressions: list[dict], out: Path) -> None:
    """Refuse ids that collide as keys: two videos with one id, or two (video, expression) pairs
    whose ``expression_id`` is the same (video ``a`` with expression ``b/c`` and video ``a/b`` with
    expression ``c`` both give ``a/b/c``).

    Raises:
        RvosError: naming both items.
    """
    seen_v: set[str] = set()
    for v in videos:
        if v["video_id"] in seen_v:
            raise RvosError("two videos have this id", file=out, item=f"video {v['video_id']}")
        seen_v.add(v["video_id"])
    seen: dict[str, tuple] = {}
    for e in expressions:
        key, pair = e["expression_id"], (e["video_id"], e["exp_id"])
        if key in seen and seen[key] != pair:
            a, b = seen[key], pair
            raise RvosError(
                f"expression ids collide: video {a[0]!r} expression {a[1]!r} and video {b[0]!r} expression "
                f"{b[1]!r} both give {key!r} (ids must not contain '/' where it makes them ambiguous)",
                file=out, item=key,
            )
        if key in seen:
            raise RvosError("two expressions have this id", file=out, item=key)
        seen[key] = pair


class DatasetWriter:
    """Write a dataset directory atomically, streaming masks one video at a time.

    Usage::

        with DatasetWriter(out, dataset="mevis", split="train", frame_root=root / "JPEGImages") as w:
            w.add_input(root / "meta_expressions.json")
            for video in ...:                      # in sorted video_id order
                w.add_video(video_row)
                w.add_objects(object_rows)
                w.add_expressions(expression_rows)
                w.add_masks(video_id, mask_rows)   # rows of one video
        # out/ now exists, complete; on an exception nothing is left behind

    Masks must arrive grouped by video (one ``add_masks`` call or several consecutive ones per
    video); each call becomes one Parquet row group, sorted by (obj_id, frame_idx).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        dataset: str,
        split: str,
        frame_root: str | Path,
        source_root: str | Path | None = None,
        options: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.out = Path(out)
        self.dataset, self.split = dataset, split
        self._frame_root = str(frame_root)
        self._source_root = str(Path(source_root).resolve()) if source_root else None
        self._options = dict(options or {})
        self._overwrite = overwrite
        self._inputs: list[dict] = []
        self._videos: list[dict] = []
        self._objects: list[dict] = []
        self._expressions: list[dict] = []
        self._moments: list[dict] | None = None
        self._void: list[dict] | None = None
        self._extra: dict[str, Any] = {}
        self._warnings: list[str] = []
        self._warning_counts: dict[str, int] = {}
        self._n_masks = 0
        self._counts: dict[str, int] | None = None  # set by write_tables
        self._done_videos: set[str] = set()
        self._last_mask_video: str | None = None

    def __enter__(self) -> "DatasetWriter":
        self._ctx = atomic_dir(self.out, overwrite=self._overwrite)
        self.tmp = self._ctx.__enter__()
        try:
            schema = arrow_schema("masks")
            self._mask_writer = pq.ParquetWriter(self.tmp / "masks.parquet", schema, **masks_parquet_options(schema))
        except BaseException:  # e.g. a full disk: __exit__ will not run, remove the temporary folder here
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self

    def add_input(self, path: str | Path, sha256: str | None = None) -> str:
        """Record an input annotation file and its sha256 in the manifest; returns the digest."""
        path = Path(path)
        digest = sha256 or sha256_file(path)
        rel = str(path.resolve())
        if self._source_root and rel.startswith(self._source_root + "/"):
            rel = rel[len(self._source_root) + 1 :]
        self._inputs.append({"path": rel, "sha256": digest, "bytes": path.stat().st_size})
        return digest

    def add_video(self, row: Mapping[str, Any]) -> None:
        """Add one ``videos`` row."""
        self._rows("videos").append(dict(row))

    def add_objects(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add ``objects`` rows."""
        self._rows("objects").extend(dict(r) for r in rows)

    def add_expressions(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add ``expressions`` rows (``expression_id`` is derived from video_id/exp_id when absent)."""
        out = self._rows("expressions")
        for r in rows:
            r = dict(r)
            r.setdefault("expression_id", f"{r['video_id']}/{r['exp_id']}")
            out.append(r)

    def _rows(self, table: str) -> list[dict]:
        if self._counts is not None:
            raise RuntimeError(f"{table} rows added after write_tables()")
        return getattr(self, f"_{table}")

    def add_moments(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add MeViS-M ``moments`` rows (creates ``moments.parquet``)."""
        if self._moments is None:
            self._moments = []
        self._moments.extend(dict(r) for r in rows)

    def add_void(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add DAVIS void rows (creates ``void.parquet``)."""
        if self._void is None:
            self._void = []
        self._void.extend(dict(r) for r in rows)

    def warn(self, kind: str, message: str, count: int = 1) -> None:
        """Record a tolerated problem of the input (see ``schemas/FORMAT.md``, "Broken input").

        The manifest gets the message in ``warnings`` (the first 200) and ``count`` added to
        ``warning_counts[kind]``; the convert summary prints both.

        Args:
            kind: a short key (``unknown_text_videos``, ``unlisted_palette_ids``, ...).
            message: one line naming the file and the item.
            count: how many items the message covers.
        """
        self._warning_counts[kind] = self._warning_counts.get(kind, 0) + int(count)
        if len(self._warnings) < 200:
            self._warnings.append(message)

    def set_extra(self, key: str, value: Any) -> None:
        """Store an extra JSON-serialisable manifest entry (e.g. verification results)."""
        self._extra[key] = value

    def add_masks(self, video_id: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> None:
        """Append the mask rows of one video as a row group.

        Raises:
            RvosError: masks of a video arrive after another video's masks (not grouped).
        """
        if video_id != self._last_mask_video:
            if video_id in self._done_videos:
                raise RvosError("masks of a video must be written consecutively", item=video_id)
            if self._last_mask_video is not None:
                self._done_videos.add(self._last_mask_video)
            self._last_mask_video = video_id
        t = to_arrow("masks", rows)
        if t.num_rows == 0:
            return
        obj, fr = _int_column(t, "obj_id"), _int_column(t, "frame_idx")
        if not ((obj[1:] > obj[:-1]) | ((obj[1:] == obj[:-1]) & (fr[1:] >= fr[:-1]))).all():  # already sorted: no copy
            t = t.sort_by([("obj_id", "ascending"), ("frame_idx", "ascending")])
        self._mask_writer.write_table(t)
        self._n_masks += t.num_rows

    def __exit__(self, exc_type, exc, tb):
        try:
            self._mask_writer.close()
            if exc_type is None:
                self._finish()
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self._ctx.__exit__(exc_type, exc, tb)

    def write_tables(self) -> None:
        """Write the ``videos``, ``objects`` and ``expressions`` tables now rather than on exit (a
        converter calls it once every video is added, while its masks are still being read and
        written on other threads); masks, moments, void rows and manifest entries may still follow.

        Raises:
            RvosError: colliding video or expression ids (:func:`_refuse_colliding_ids`).
            RuntimeError: called twice.
        """
        if self._counts is not None:
            raise RuntimeError("the videos, objects and expressions tables are written already")
        _refuse_colliding_ids(self._videos, self._expressions, self.out)
        videos = sorted(self._videos, key=lambda r: r["video_id"])
        write_table(self.tmp / "videos.parquet", "videos", videos)
        objects = sorted(self._objects, key=lambda r: (r["video_id"], r["obj_id"]))
        write_table(self.tmp / "objects.parquet", "objects", objects)
        order = {v["video_id"]: i for i, v in enumerate(videos)}
        exprs = sorted(self._expressions, key=lambda r: (order.get(r["video_id"], -1), r["exp_index"]))
        write_table(self.tmp / "expressions.parquet", "expressions", exprs)
        self._counts = {"videos": len(videos), "frames": sum(int(v["num_frames"]) for v in videos), "objects": len(objects),
                        "expressions": len(exprs)}
        self._videos, self._objects, self._expressions = [], [], []

    def _finish(self) -> None:
        if self._counts is None:
            self.write_tables()
        tables = ["videos.parquet", "objects.parquet", "expressions.parquet", "masks.parquet"]
        if self._moments is not None:
            moments = sorted(self._moments, key=lambda r: (r["video_id"], r["expression_id"], -1 if r["obj_id"] is None else r["obj_id"], r["start_idx"]))
            write_table(self.tmp / "moments.parquet", "moments", moments)
            tables.append("moments.parquet")
        if self._void is not None:
            void = sorted(self._void, key=lambda r: (r["video_id"], r["frame_idx"]))
            write_table(self.tmp / "void.parquet", "void", void)
            tables.append("void.parquet")
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "source": {"dataset": self.dataset, "split": self.split, "root": self._source_root},
            "converter": {"name": "rvoskit", "version": __version__, "options": self._options},
            "inputs": self._inputs,
            "frame_root": self._frame_root,
            "counts": {
                **self._counts,
                "masks": self._n_masks,
                **({"moments": len(self._moments)} if self._moments is not None else {}),
            },
            "tables": tables,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **self._extra,
        }
        if self._warnings or self._warning_counts:
            manifest["warnings"] = list(manifest.get("warnings") or []) + self._warnings
            manifest["warning_counts"] = dict(self._warning_counts)
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
