"""Prediction sources for ``rvoskit eval``: a predictions table or PNG folders.

Layouts (``docs/eval.md``):

- ``table``: a predictions directory (``predictions.parquet`` + ``predictions.json``) or a bare
  ``predictions.parquet``: one RLE per (expression, frame) (``schemas/FORMAT.md`` section 4).
- ``png-expr``: MeViS / Ref-YouTube-VOS submission layout ``<root>/<video>/<exp_id>/<frame>.png``
  (a root holding only ``Annotations/`` is entered). Read as ``cv2.IMREAD_GRAYSCALE`` and any
  nonzero pixel is foreground, as MeViS ``tools/eval_mevis.py`` reads them.
- ``png-labels``: DAVIS results ``<root>/<sequence>/<frame>.png``, indexed (``P``) or ``L`` PNGs,
  pixel value = object / proposal id, read with PIL as davis2017 ``results.py`` does.
- ``png-sets``: ReferFormer's Ref-DAVIS layout ``<root>/anno_<k>/<sequence>/<frame>.png``
  (k = 0..3), one ``png-labels`` folder per expression set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rvoskit.errors import RvosError
from rvoskit.format import arrowbuf
from rvoskit.format import rle as rlemod
from rvoskit.format.atomic import safe_name
from rvoskit.format.predictions import read_manifest
from rvoskit.format.store import RvosDataset, read_schema, read_table
from rvoskit.metrics import pngread

if TYPE_CHECKING:  # the PNG paths of eval never import pandas (~0.3 s); the table paths import it where used
    import pandas as pd

_SET_DIR = re.compile(r"anno_([0-3])")
_IGNORED = ("__MACOSX",)


@dataclass(frozen=True)
class PredictionSpec:
    """Where predictions are and how they are laid out (small and picklable, for workers)."""

    kind: str  # "table" | "png-expr" | "png-labels" | "png-sets"
    path: Path  # the table file, or the PNG root
    origin: Path | None = None  # the submission .zip the PNG root was extracted from
    zip_root: Path | None = None  # the temporary folder it was extracted to

    @contextmanager
    def named(self):
        """Errors raised inside name the submission zip (``sub.zip/<member>``), not the temporary
        folder it was extracted to."""
        try:
            yield
        except RvosError as exc:
            if self.origin is not None and exc.file and exc.file.startswith(str(self.zip_root)):
                rel = exc.file[len(str(self.zip_root)):].lstrip("/")
                exc.file = f"{self.origin}/{rel}" if rel else str(self.origin)
                exc.args = (str(exc),)
            raise

    def set_root(self, k: int) -> Path:
        """The ``png-labels`` folder of expression set ``k`` of a ``png-sets`` layout."""
        return self.path / f"anno_{k}"


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir() and not e.name.startswith(".") and e.name not in _IGNORED)
    except OSError as exc:
        raise RvosError(f"cannot list the folder: {exc.strerror}", file=path) from None


def _files(path: Path, suffix: str = ".png") -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.name for e in it if e.is_file() and e.name.endswith(suffix) and not e.name.startswith("."))


def check_id(item_id: str, what: str, where: Path) -> str:
    """Refuse an id that would not stay inside its folder as a path component (``safe_name`` rule)."""
    if safe_name(item_id) != item_id:
        raise RvosError(f"{what} id {item_id!r} cannot be used as a file name as is", file=where, item=item_id)
    return item_id


def open_predictions(path: str | Path) -> PredictionSpec:
    """Detect the layout of ``path`` (see the module docstring).

    Raises:
        RvosError: the path does not exist, or holds no recognisable predictions.
    """
    path = Path(path)
    if not path.exists():
        raise RvosError(f"predictions not found (expected {EXPECTED})", file=path)
    if path.is_file():
        if path.suffix.lower() == ".zip":
            return _zip_spec(path)
        if path.suffix != ".parquet":
            raise RvosError(f"not predictions: expected {EXPECTED}", file=path)
        return _table_spec(path)
    if (path / "predictions.parquet").exists():
        read_manifest(path)
        return _table_spec(path / "predictions.parquet")
    if (path / "dataset.json").is_file():
        raise RvosError(f"this is an rvoskit dataset, not predictions (expected {EXPECTED})", file=path)
    if (path / "trackstore.json").is_file():
        raise RvosError(f"this is a track store, not predictions (expected {EXPECTED})", file=path)
    dirs = _subdirs(path)
    if not dirs:
        raise RvosError(f"empty prediction folder (no sequence or video folders; expected {EXPECTED})", file=path)
    if dirs == ["Annotations"]:  # Ref-YouTube-VOS submission layout
        return open_predictions(path / "Annotations")
    if all(_SET_DIR.fullmatch(d) for d in dirs):
        return PredictionSpec("png-sets", path)
    first = path / dirs[0]
    if _files(first):
        return PredictionSpec("png-labels", path)
    if _subdirs(first):
        return PredictionSpec("png-expr", path)
    raise RvosError("no PNG files under the first video folder", file=first)


EXPECTED = ("a predictions directory (rvoskit score), a predictions.parquet, a PNG folder "
            "(<video>/<exp_id>/<frame>.png, <seq>/<frame>.png or anno_<k>/<seq>/<frame>.png) or a submission .zip of one")


def _table_spec(path: Path) -> PredictionSpec:
    """A ``table`` source after checking its schema from the Parquet footer (no rows are read here)."""
    read_schema(path, "predictions")
    return PredictionSpec("table", path)


def _zip_spec(path: Path) -> PredictionSpec:
    """Extract a submission zip (or a zip of a predictions folder) into a private temporary folder
    (removed at exit) and open that folder, so that a zip is read exactly as the folder it was made
    from. ``spec.origin`` is the zip; errors raised under ``spec.named()`` name it.

    Raises:
        RvosError: not a zip, a member that would escape the folder (absolute, ``..``), no PNG or
            Parquet file.
    """
    import atexit
    import shutil
    import tempfile
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RvosError(f"unreadable zip: {exc}", file=path) from None
    with zf:
        names = [i for i in zf.infolist() if not i.is_dir()]
        for info in names:
            parts = Path(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                raise RvosError("zip member would be written outside its folder", file=path, item=info.filename)
        if not any(i.filename.lower().endswith((".png", ".parquet")) for i in names):
            raise RvosError(f"the zip holds no PNG or Parquet file (expected {EXPECTED})", file=path)
        tmp = Path(tempfile.mkdtemp(prefix="rvoskit-zip-"))
        atexit.register(shutil.rmtree, tmp, True)
        try:
            zf.extractall(tmp)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            shutil.rmtree(tmp, True)
            raise RvosError(f"unreadable zip: {exc}", file=path) from None
    root = tmp
    dirs = _subdirs(root)
    if len(dirs) == 1 and dirs[0] != "Annotations" and not (root / "predictions.parquet").exists():
        inner = root / dirs[0]  # a zip of the folder itself (``zip -r sub.zip results/``)
        sub = _subdirs(inner)
        if (inner / "predictions.parquet").exists() or (
                sub and not _files(inner) and all(_SET_DIR.fullmatch(d) or d == "Annotations" for d in sub)):
            root = inner
    with PredictionSpec("png-expr", root, origin=path, zip_root=tmp).named():
        spec = open_predictions(root)
    return PredictionSpec(spec.kind, spec.path, origin=path, zip_root=tmp)


# -- checks against the dataset ------------------------------------------------------------------


def _unknown(kind: str, ids: list[str], where: Path) -> RvosError:
    shown = ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return RvosError(f"{len(ids)} unknown {kind} id(s) not in the dataset: {shown}", file=where)


def _no_nulls(t: pa.Table, path: Path) -> pa.Table:
    for name in t.column_names:
        if t.column(name).null_count:
            raise RvosError(f"column {name!r} has {t.column(name).null_count} null value(s)", file=path)
    return t


def table_index(path: Path) -> pd.DataFrame:
    """The key columns of a predictions table (no RLE), for checks and per-video splitting."""
    cols = ["expression_id", "video_id", "exp_id", "frame_idx", "height", "width"]
    return _no_nulls(read_table(path, "predictions", columns=cols), path).to_pandas(strings_to_categorical=True)


TABLE_COLUMNS = ["video_id", "exp_id", "frame_idx", "rle", "area"]
"""The columns of a predictions table that scoring reads."""


def table_rows_by_video(path: Path, rows_per_video: dict[str, int], batch_rows: int = 1 << 13) -> Iterator[tuple[str, pa.Table]]:
    """Stream a predictions table and yield ``(video_id, rows)`` as soon as a video is complete.

    Only the videos in ``rows_per_video`` (video id -> its number of rows in the table, from
    :func:`table_index`) are kept; the others are skipped. The table is read in file order,
    ``batch_rows`` rows at a time, and a video's rows are held (as Arrow, ``TABLE_COLUMNS``) only
    until its last row has been read: a table written video by video (as ``rvoskit score``
    writes it) holds about one video at a time, in any order at most the table's rows.

    Raises:
        RvosError: unreadable Parquet, null RLE or area values.
    """
    try:
        batches = pq.ParquetFile(path, buffer_size=1 << 22).iter_batches(batch_size=batch_rows, columns=TABLE_COLUMNS)
        pending: dict[str, list[pa.Table]] = {}
        left = dict(rows_per_video)
        for batch in batches:
            t = _no_nulls(pa.Table.from_batches([batch]), path)
            first: dict[str, int] = {}  # codes in order of first appearance (pd.factorize, without pandas)
            codes = np.fromiter((first.setdefault(v, len(first)) for v in t.column("video_id").to_pylist()), np.int64, t.num_rows)
            uniques = list(first)
            counts = np.bincount(codes, minlength=len(uniques))
            order = np.argsort(codes, kind="stable")  # rows of one video together, in file order
            for vid, end, n in zip(uniques, np.cumsum(counts), counts):
                if vid not in left:
                    continue
                # a compact copy, not a slice: a pickled slice (to a worker) carries the whole batch
                pending.setdefault(vid, []).append(t.take(arrowbuf.from_numpy(order[end - n : end].astype(np.int64))))
                left[vid] -= n
                if left[vid] == 0:
                    del left[vid]
                    yield vid, pa.concat_tables(pending.pop(vid))
    except (pa.ArrowException, OSError) as exc:
        raise RvosError(f"unreadable Parquet: {exc}", file=path) from None


def rows_by_video(spec: PredictionSpec, index: pd.DataFrame | None, videos: list[str]) -> Iterator[tuple[str, pa.Table | None]]:
    """``(video_id, rows)`` for each of ``videos``: for a table (``index`` from
    :func:`check_predictions`) first the videos it has no row for (``rows`` None), then the others
    as :func:`table_rows_by_video` completes them; for PNG folders (``index`` None) every video
    with ``rows`` None, in order."""
    if index is None:
        yield from ((v, None) for v in videos)
        return
    n_rows = index if isinstance(index, dict) else index["video_id"].value_counts().to_dict()
    counts = {v: int(n_rows[v]) for v in videos if v in n_rows}
    yield from ((v, None) for v in videos if v not in counts)
    yield from table_rows_by_video(spec.path, counts)


def check_predictions(spec: PredictionSpec, ds: RvosDataset, *, ignore_unknown: bool = False,
                      report: dict | None = None, counts_only: bool = False) -> pd.DataFrame | dict[str, int] | None:
    """Check that every id in the predictions exists in the dataset, sizes match, no duplicates,
    and count prediction frames the dataset does not have.

    Args:
        spec: the source (:func:`open_predictions`).
        ds: the dataset.
        ignore_unknown: skip videos and expressions the dataset does not have (for instance the
            DAVIS train sequences of ``Annotations/480p`` scored against val) instead of failing;
            they are listed in ``report``.
        report: filled with ``unknown_videos``, ``unknown_expressions`` (skipped ids, with
            ``ignore_unknown``) and ``extra_frames`` (count) / ``extra_frame_examples``: PNG files
            whose name is not a frame of the video (never scored, always counted).

        counts_only: for a table, return ``{video_id: rows}`` instead of the key columns (the same
            checks, the same errors, without pandas: ``rvoskit eval``'s start-up).

    Returns:
        For a table, its key columns (:func:`table_index`) of the videos the dataset has (or their
        row counts per video, with ``counts_only``); None for PNG folders.

    Raises:
        RvosError: unknown video / expression ids (without ``ignore_unknown``), frame indices
            outside the video, a size that differs from the video's, duplicate rows, or no
            predictions at all.
    """
    report = report if report is not None else {}
    report.setdefault("unknown_videos", [])
    report.setdefault("unknown_expressions", [])
    report.setdefault("extra_frames", 0)
    report.setdefault("extra_frame_examples", [])
    if spec.kind == "table" and counts_only:
        return _check_table_counts(spec, ds, ignore_unknown, report)
    if spec.kind == "table":
        videos = ds.videos
        idx = table_index(spec.path)
        if idx.empty:
            raise RvosError("the predictions table has no rows", file=spec.path)
        bad_v = sorted(set(idx["video_id"]) - set(videos.index))
        if bad_v:
            if not ignore_unknown:
                raise _unknown("video", bad_v, spec.path)
            report["unknown_videos"] += bad_v
            idx = idx[idx["video_id"].isin(videos.index)]
        exprs = ds.expressions
        bad_e = sorted(set(idx["expression_id"]) - set(exprs.index))
        if bad_e:
            if not ignore_unknown:
                raise _unknown("expression", bad_e, spec.path)
            report["unknown_expressions"] += bad_e
        known = idx[idx["expression_id"].isin(exprs.index)]  # checked; rows of skipped expressions are never read
        if known.empty:
            raise RvosError("no prediction row is for an expression of the dataset", file=spec.path)
        e = exprs.loc[known["expression_id"]]
        wrong = (e["video_id"].to_numpy() != known["video_id"].to_numpy()) | (e["exp_id"].to_numpy() != known["exp_id"].to_numpy())
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise RvosError("video_id/exp_id do not match the expression", file=spec.path, item=known["expression_id"].iloc[i])
        v = videos.loc[known["video_id"]]
        for col, ref in (("height", "height"), ("width", "width")):
            off = known[col].to_numpy() != v[ref].to_numpy()
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise RvosError(
                    f"prediction size {known['height'].iloc[i]}x{known['width'].iloc[i]} differs from the video's "
                    f"{v['height'].iloc[i]}x{v['width'].iloc[i]}",
                    file=spec.path,
                    item=f"{known['expression_id'].iloc[i]} frame {known['frame_idx'].iloc[i]}",
                )
        out = (known["frame_idx"].to_numpy() < 0) | (known["frame_idx"].to_numpy() >= v["num_frames"].to_numpy())
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise RvosError(f"frame_idx {known['frame_idx'].iloc[i]} outside the video's {v['num_frames'].iloc[i]} frames",
                            file=spec.path, item=f"{known['expression_id'].iloc[i]} frame {known['frame_idx'].iloc[i]}")
        dup = known.duplicated(["expression_id", "frame_idx"])
        if dup.any():
            i = int(np.flatnonzero(dup.to_numpy())[0])
            raise RvosError("duplicate prediction rows", file=spec.path, item=f"{known['expression_id'].iloc[i]} frame {known['frame_idx'].iloc[i]}")
        return idx
    roots = [spec.set_root(k) for k in range(4) if spec.set_root(k).is_dir()] if spec.kind == "png-sets" else [spec.path]
    frames_of = {v: set(r["frames"]) for v, r in ds.video_rows.items()}  # plain rows: no pandas on the PNG paths
    any_known = False
    for root in roots:
        dirs = _subdirs(root)
        if not dirs:
            raise RvosError("empty prediction folder", file=root)
        bad_v = sorted(set(dirs) - set(frames_of))
        if bad_v:
            if not ignore_unknown:
                raise _unknown("video", bad_v, root)
            report["unknown_videos"] += [f"{root.name}/{v}" if spec.kind == "png-sets" else v for v in bad_v]
        by_video: dict[str, set] | None = None
        if spec.kind == "png-expr":
            by_video = {}
            for e in ds.expression_rows:
                by_video.setdefault(e["video_id"], set()).add(e["exp_id"])
        for vid in dirs:
            if vid not in frames_of:
                continue
            any_known = True
            if spec.kind == "png-expr":
                exps = _subdirs(root / vid)
                bad_e = sorted(set(exps) - by_video.get(vid, set()))
                if bad_e:
                    if not ignore_unknown:
                        raise _unknown(f"expression (video {vid})", bad_e, root / vid)
                    report["unknown_expressions"] += [f"{vid}/{x}" for x in bad_e]
                folders = [root / vid / x for x in exps if x not in bad_e]
            else:
                folders = [root / vid]
            for folder in folders:
                extra = [f for f in _files(folder) if f[: -len(".png")] not in frames_of[vid]]
                report["extra_frames"] += len(extra)
                room = 10 - len(report["extra_frame_examples"])
                if extra and room > 0:
                    report["extra_frame_examples"] += [str((folder / f).relative_to(spec.path)) for f in extra[:room]]
    if not any_known:
        raise RvosError("no prediction folder is for a video of the dataset", file=spec.path)
    return None


def _check_table_counts(spec: PredictionSpec, ds: RvosDataset, ignore_unknown: bool, report: dict) -> dict[str, int]:
    """The table checks of :func:`check_predictions` on plain columns (no pandas), the same
    errors on the same first offending row; returns the rows per known video."""
    cols = ["expression_id", "video_id", "exp_id", "frame_idx", "height", "width"]
    t = _no_nulls(read_table(spec.path, "predictions", columns=cols), spec.path)
    if t.num_rows == 0:
        raise RvosError("the predictions table has no rows", file=spec.path)
    c = {k: t.column(k).to_pylist() for k in cols}
    vrows = ds.video_rows
    bad_v = sorted(set(c["video_id"]) - set(vrows))
    if bad_v:
        if not ignore_unknown:
            raise _unknown("video", bad_v, spec.path)
        report["unknown_videos"] += bad_v
        keep = [i for i, v in enumerate(c["video_id"]) if v in vrows]
        c = {k: [x[i] for i in keep] for k, x in c.items()}
    erows = {e["expression_id"]: e for e in ds.expression_rows}
    bad_e = sorted(set(c["expression_id"]) - set(erows))
    if bad_e:
        if not ignore_unknown:
            raise _unknown("expression", bad_e, spec.path)
        report["unknown_expressions"] += bad_e
    known = [i for i, e in enumerate(c["expression_id"]) if e in erows]  # rows of skipped expressions are never read
    if not known:
        raise RvosError("no prediction row is for an expression of the dataset", file=spec.path)
    E, V, X, T, Hs, Ws = (c[k] for k in cols)
    for i in known:
        e = erows[E[i]]
        if e["video_id"] != V[i] or e["exp_id"] != X[i]:
            raise RvosError("video_id/exp_id do not match the expression", file=spec.path, item=E[i])
    for col in ("height", "width"):
        for i in known:
            if c[col][i] != vrows[V[i]][col]:
                v = vrows[V[i]]
                raise RvosError(f"prediction size {Hs[i]}x{Ws[i]} differs from the video's {v['height']}x{v['width']}",
                                file=spec.path, item=f"{E[i]} frame {T[i]}")
    for i in known:
        n = vrows[V[i]]["num_frames"]
        if T[i] < 0 or T[i] >= n:
            raise RvosError(f"frame_idx {T[i]} outside the video's {n} frames", file=spec.path, item=f"{E[i]} frame {T[i]}")
    seen: set = set()
    for i in known:
        if (E[i], T[i]) in seen:
            raise RvosError("duplicate prediction rows", file=spec.path, item=f"{E[i]} frame {T[i]}")
        seen.add((E[i], T[i]))
    counts: dict[str, int] = {}
    for v in V:
        counts[v] = counts.get(v, 0) + 1
    return counts


# -- reading per video ---------------------------------------------------------------------------


def _check_shape(mask: np.ndarray, shape: tuple[int, int], file, item: str) -> np.ndarray:
    if mask.shape != shape:
        raise RvosError(
            f"prediction size {mask.shape[0]}x{mask.shape[1]} differs from the ground truth {shape[0]}x{shape[1]}",
            file=file,
            item=item,
        )
    return mask


def read_gray_png(path: Path, shape: tuple[int, int], item: str) -> np.ndarray | None:
    """Read a MeViS-style prediction PNG as ``cv2.IMREAD_GRAYSCALE`` (None when the file is missing).

    Raises:
        RvosError: unreadable file, or a size other than ``shape``.
    """
    if not path.is_file():
        return None
    data = path.read_bytes()
    m = pngread.decode_u8(data, (0,), pngread.GRAY_SAFE)  # the same values, faster (None: not that kind of PNG)
    if m is None and data:  # cv2.imread's decoder, on the bytes already read (imdecode refuses zero bytes)
        m = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise RvosError("unreadable PNG", file=path, item=item)
    return _check_shape(m, shape, path, item)


def read_label_png(path: Path, shape: tuple[int, int], item: str) -> np.ndarray | None:
    """Read a DAVIS result PNG (palette indices, or gray values) with PIL (None when missing).

    Raises:
        RvosError: unreadable file, a colour (RGB) PNG, or a size other than ``shape``.
    """
    if not path.is_file():
        return None
    a = pngread.decode_u8(path.read_bytes(), (0, 3), pngread.LABEL_SAFE)  # Pillow's values, faster (None: read with Pillow)
    if a is None:
        from PIL import Image

        try:
            with Image.open(path) as im:
                a = np.array(im)
        except (OSError, ValueError) as exc:
            raise RvosError(f"unreadable PNG: {exc}", file=path, item=item) from None
    if a.ndim != 2:
        raise RvosError("expected an indexed (P) or grayscale (L) PNG of object ids", file=path, item=item)
    return _check_shape(a, shape, path, item)


class ExpressionMasks:
    """Predicted masks of the expressions of one video (``table`` or ``png-expr`` source).

    Args:
        spec: the source.
        video: the ``videos`` row.
        rows: for a table, that video's prediction rows (``TABLE_COLUMNS``, from
            :func:`table_rows_by_video`); None when the table has none.
    """

    def __init__(self, spec: PredictionSpec, video: pd.Series, rows: pa.Table | None = None):
        self.spec = spec
        self.video_id = str(video["video_id"])
        self.frames = list(video["frames"])
        self.shape = (int(video["height"]), int(video["width"]))
        self._zeros = np.zeros(self.shape, np.uint8)
        self._table: dict[tuple[str, int], tuple[bytes, int]] = {}
        if spec.kind == "table":
            if rows is not None:
                cols = (rows.column(c).to_pylist() for c in ("exp_id", "frame_idx", "rle", "area"))
                self._table = {(e, t): (r, a) for e, t, r, a in zip(*cols)}
            self._exps = {e for e, _ in self._table}
            self.has_video = bool(self._table)
        else:
            check_id(self.video_id, "video", spec.path)
            self._dir = spec.path / self.video_id
            self.has_video = self._dir.is_dir()
            self._exps = set(_subdirs(self._dir)) if self.has_video else set()

    def has_expression(self, exp_id: str) -> bool:
        """Whether the source has any prediction for this expression."""
        return exp_id in self._exps

    def get(self, exp_id: str, t: int) -> np.ndarray | None:
        """The predicted mask ``(H, W)`` (nonzero = foreground) on frame ``t``, None when missing.

        Raises:
            RvosError: unreadable or wrongly sized PNG, malformed RLE.
        """
        item = f"{self.video_id}/{exp_id} frame {self.frames[t]}"
        if self.spec.kind == "table":
            hit = self._table.get((exp_id, t))
            if hit is None:
                return None
            counts, area = hit
            if area == 0:
                return self._zeros
            H, W = self.shape
            rlemod.check(counts, H, W, file=str(self.spec.path), item=item)
            return rlemod.decode(counts, H, W)
        check_id(exp_id, "expression", self._dir)
        return read_gray_png(self._dir / exp_id / f"{self.frames[t]}.png", self.shape, item)


class LabelMaps:
    """DAVIS result label maps of one sequence from a ``png-labels`` folder."""

    def __init__(self, root: Path, video: pd.Series):
        self.video_id = check_id(str(video["video_id"]), "video", root)
        self.root = root / self.video_id
        self.frames = list(video["frames"])
        self.shape = (int(video["height"]), int(video["width"]))
        self.has_video = self.root.is_dir()

    def get(self, t: int) -> np.ndarray | None:
        """Label map ``(H, W)`` of frame ``t`` (None when the PNG is missing)."""
        return read_label_png(self.root / f"{self.frames[t]}.png", self.shape, f"{self.video_id} frame {self.frames[t]}")


# -- one reader for every command ---------------------------------------------------------------

PREDICTION_ROW_COLUMNS = ["expression_id", "video_id", "exp_id", "frame_idx", "height", "width", "rle", "area"]


def prediction_rows(spec: PredictionSpec, ds: RvosDataset, video_id: str, rows: pa.Table | None = None) -> pd.DataFrame:
    """The predictions of one video as ``predictions`` rows, whatever the layout, read and checked
    exactly as ``rvoskit eval`` reads them (``viz predictions`` draws these).

    - ``table``: ``rows`` (default: that video's rows, read with a row-group filter); each RLE
      with a nonzero ``area`` must cover ``H x W`` pixels (:func:`rvoskit.format.rle.check`), a
      row with ``area`` 0 is an empty mask (as eval scores it).
    - ``png-expr``: every expression folder, each PNG read as eval reads it (nonzero = foreground).
    - ``png-sets``: set ``k``'s label maps give the masks of the set-``k`` expressions
      (``label == obj_id``), as ReferFormer writes them.
    - ``png-labels``: one row per label value, ``expression_id`` ``"<video>/label <k>"`` (DAVIS
      results have no expressions).

    Returns:
        A DataFrame with :data:`PREDICTION_ROW_COLUMNS` (frames without a prediction have no row).

    Raises:
        RvosError: malformed RLE, unreadable or wrongly sized PNG (named file and item).
    """
    v = ds.video(video_id)
    H, W = int(v["height"]), int(v["width"])
    frames = list(v["frames"])
    out: list[tuple] = []
    empty = None
    if spec.kind == "table":
        if rows is None:
            rows = read_table(spec.path, "predictions", filters=[("video_id", "=", video_id)], columns=TABLE_COLUMNS)
        for x, t, counts, area in zip(*(rows.column(c).to_pylist() for c in ("exp_id", "frame_idx", "rle", "area"))):
            item = f"{video_id}/{x} frame {frames[t] if 0 <= t < len(frames) else t}"
            if area == 0:
                empty = empty if empty is not None else rlemod.encode(np.zeros((H, W), np.uint8))
                counts = empty
            else:
                rlemod.check(counts, H, W, file=str(spec.path), item=item)
            out.append((f"{video_id}/{x}", video_id, str(x), int(t), H, W, counts, int(area)))
    elif spec.kind == "png-expr":
        src = ExpressionMasks(spec, v)
        for x in sorted(src._exps):
            for t in range(len(frames)):
                m = src.get(x, t)
                if m is not None:
                    b = (m > 0).astype(np.uint8)
                    out.append((f"{video_id}/{x}", video_id, x, t, H, W, rlemod.encode(b), int(b.sum())))
    else:
        sets = [None] if spec.kind == "png-labels" else [k for k in range(4) if spec.set_root(k).is_dir()]
        e = ds.expressions
        for k in sets:
            lm = LabelMaps(spec.path if k is None else spec.set_root(k), v)
            if not lm.has_video:
                continue
            if k is not None:
                from rvoskit.metrics.evaluation import ref_davis_set_expressions

                sel = ref_davis_set_expressions(e, video_id, k)
                targets = {str(x): int(o[0]) for x, o in zip(sel["exp_id"], sel["obj_ids"]) if o is not None and len(o) == 1}
            for t in range(len(frames)):
                lab = lm.get(t)
                if lab is None:
                    continue
                if k is None:
                    targets = {f"label {i}": i for i in np.unique(lab).tolist() if i != 0}
                for x, o in targets.items():
                    b = (lab == o).astype(np.uint8)
                    out.append((f"{video_id}/{x}", video_id, x, t, H, W, rlemod.encode(b), int(b.sum())))
    import pandas as pd

    return pd.DataFrame(out, columns=PREDICTION_ROW_COLUMNS)


def prediction_keys(spec: PredictionSpec, ds: RvosDataset, index: pd.DataFrame | None) -> pd.DataFrame:
    """One row per predicted expression (``expression_id``, ``video_id``, ``exp_id``) of the videos
    the dataset has, for any layout (``index`` from :func:`check_predictions`). ``png-labels``
    folders give one row per video (``exp_id`` ``"*"``): their label values are known per frame."""
    import pandas as pd

    cols = ["expression_id", "video_id", "exp_id"]
    if index is not None:
        k = index[cols].astype(str).drop_duplicates()
        return k[k["video_id"].isin(ds.videos.index)].reset_index(drop=True)
    rows = []
    if spec.kind == "png-sets":
        roots = [spec.set_root(k) for k in range(4) if spec.set_root(k).is_dir()]
        vids = sorted({v for r in roots for v in _subdirs(r) if v in ds.videos.index})
    else:
        vids = [v for v in _subdirs(spec.path) if v in ds.videos.index]
    e = ds.expressions
    for vid in vids:
        if spec.kind == "png-expr":
            rows += [(f"{vid}/{x}", vid, x) for x in _subdirs(spec.path / vid)]
        elif spec.kind == "png-labels":
            rows.append((f"{vid}/*", vid, "*"))
        else:
            from rvoskit.metrics.evaluation import ref_davis_set_expressions

            for k in range(4):
                if not (spec.set_root(k) / vid).is_dir():
                    continue
                sel = ref_davis_set_expressions(e, vid, k)
                rows += [(eid, vid, str(x)) for eid, x in zip(sel["expression_id"], sel["exp_id"])]
    return pd.DataFrame(rows, columns=cols)
