"""Predictions I/O: one predicted mask per (expression, frame) (``schemas/FORMAT.md`` section 4).

:class:`PredictionsWriter` streams a split video by video (one Parquet row group per video, bounded
memory); :func:`write_predictions` writes rows given at once through it; :func:`read_predictions`
and :func:`read_manifest` read them back.
"""

from __future__ import annotations

import sys
import datetime as _dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # annotations only: eval reads predictions without pandas (issue 13)
    import pandas as pd

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_dir
from rvoskit.format.jsonfile import read_json_object
from rvoskit.format.schema import FORMAT_VERSION, arrow_schema
from rvoskit.format.store import read_table, to_arrow

MANIFEST = "predictions.json"
FORMAT_NAME = "rvoskit-predictions"


def write_predictions(
    out: str | Path,
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    dataset: str | Path | None = None,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a predictions directory atomically from all its rows at once.

    Rows are sorted as the schema says (video, expression, frame) and written one row group per
    video through :class:`PredictionsWriter` (use the writer directly to stream a large split).

    Args:
        out: the directory to create.
        rows: ``predictions`` table rows (see ``schemas/predictions.schema.json``).
        dataset: the dataset the predictions are for (recorded in the manifest).
        meta: extra manifest entries (checkpoint, threshold, ...).
        overwrite: replace an existing ``out``.

    Returns:
        ``out``.

    Raises:
        RvosError: ``out`` exists without ``overwrite``; rows that do not fit the schema.
    """
    table = to_arrow("predictions", rows).sort_by([(k, "ascending") for k in ("video_id", "expression_id", "frame_idx")])
    with PredictionsWriter(out, dataset=dataset, meta=meta, overwrite=overwrite) as writer:
        vids = table.column("video_id").to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, vids[1:] != vids[:-1]]) if len(vids) else np.zeros(0, int)
        for a, b in zip(starts, np.r_[starts[1:], len(vids)]):
            writer.add(table.slice(a, b - a))
    return Path(out)


class PredictionsWriter:
    """Write a predictions directory atomically, one :meth:`add` call (one row group) per video.

    Usage::

        with PredictionsWriter(out, dataset=ds_dir, meta={...}, extra={"scores": schema}) as w:
            for video in ...:
                w.add(prediction_rows, scores=scores_df)
        # out/ now holds predictions.parquet, scores.parquet and predictions.json; on an exception
        # nothing is left behind

    Args:
        out: the directory to create.
        dataset: the dataset the predictions are for (recorded in the manifest).
        meta: extra manifest entries (checkpoint, threshold, ...).
        extra: further tables written in the same atomic step, ``{name: pyarrow schema}`` ->
            ``<name>.parquet`` (for instance the per-track ``scores`` of ``rvoskit score``).
        overwrite: replace an existing ``out``.

    Raises:
        RvosError: ``out`` exists without ``overwrite``; rows that do not fit a schema.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        dataset: str | Path | None = None,
        meta: Mapping[str, Any] | None = None,
        extra: Mapping[str, pa.Schema] | None = None,
        overwrite: bool = False,
    ):
        self.out = Path(out)
        self.dataset = str(Path(dataset).resolve()) if dataset else None
        self.meta = dict(meta or {})
        self.extra = dict(extra or {})
        self.overwrite = overwrite
        self.rows = 0

    def __enter__(self) -> "PredictionsWriter":
        self._ctx = atomic_dir(self.out, overwrite=self.overwrite)
        self._tmp = self._ctx.__enter__()
        self._writers = {}
        try:
            self._writers["predictions"] = pq.ParquetWriter(self._tmp / "predictions.parquet", arrow_schema("predictions"), compression="zstd")
            for name, schema in self.extra.items():
                self._writers[name] = pq.ParquetWriter(self._tmp / f"{name}.parquet", schema, compression="zstd")
        except BaseException:  # e.g. a full disk: __exit__ will not run, remove the temporary folder here
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self

    def add(self, rows: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]], **extra: pd.DataFrame) -> None:
        """Append the ``predictions`` rows of one video (schema-checked), and rows of the extra tables."""
        table = to_arrow("predictions", rows)
        if table.num_rows:
            self._writers["predictions"].write_table(table)
            self.rows += table.num_rows
        for name, df in extra.items():
            if name not in self.extra:
                raise RvosError(f"no extra table {name!r} was declared", file=self.out)
            if len(df):
                try:
                    t = pa.Table.from_pandas(df[self.extra[name].names], schema=self.extra[name], preserve_index=False)
                except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise RvosError(f"rows do not fit the {name} table: {exc}", file=self.out) from None
                self._writers[name].write_table(t)

    def __exit__(self, exc_type, exc, tb):
        try:
            self._close(exc_type)
        except BaseException:  # a failed close or manifest write (full disk): nothing half-written stays
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self._ctx.__exit__(exc_type, exc, tb)

    def _close(self, exc_type) -> None:
        for w in self._writers.values():
            w.close()
        if exc_type is None:
            manifest = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "rvoskit_version": __version__,
                "dataset": self.dataset,
                "rows": self.rows,
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "meta": self.meta,
            }
            (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a predictions directory (or a bare ``predictions.parquet``).

    Returns:
        ``(rows, manifest)``; the manifest is ``{}`` for a bare Parquet file.

    Raises:
        RvosError: missing or malformed table or manifest.
    """
    path = Path(path)
    if path.is_dir():
        return read_table(path / "predictions.parquet", "predictions").to_pandas(), read_manifest(path)
    return read_table(path, "predictions").to_pandas(), {}


def read_manifest(path: str | Path) -> dict:
    """The manifest of a predictions directory (``{}`` when it has none), without reading the table.

    Raises:
        RvosError: malformed manifest, or one of another format.
    """
    mpath = Path(path) / MANIFEST
    if not mpath.is_file():
        return {}
    manifest = read_json_object(mpath, "the predictions manifest")
    if manifest.get("format") != FORMAT_NAME:
        raise RvosError(f"format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}", file=mpath)
    return manifest
