"""Predictions I/O: one predicted mask per (expression, frame) (``schemas/FORMAT.md`` section 4)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_dir
from rvoskit.format.schema import FORMAT_VERSION
from rvoskit.format.store import read_table, write_table

MANIFEST = "predictions.json"
FORMAT_NAME = "rvoskit-predictions"


def write_predictions(
    out: str | Path,
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    dataset: str | Path | None = None,
    meta: Mapping[str, Any] | None = None,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a predictions directory atomically.

    Args:
        out: the directory to create.
        rows: ``predictions`` table rows (see ``schemas/predictions.schema.json``).
        dataset: the dataset the predictions are for (recorded in the manifest).
        meta: extra manifest entries (checkpoint, threshold, ...).
        extra_tables: further Parquet files written in the same atomic step, ``{name: DataFrame}``
            -> ``<name>.parquet`` (for instance the per-track ``scores`` of ``rvoskit score``).
        overwrite: replace an existing ``out``.

    Returns:
        ``out``.

    Raises:
        RvosError: ``out`` exists without ``overwrite``; rows that do not fit the schema.
    """
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        n = write_table(tmp / "predictions.parquet", "predictions", rows)
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "rvoskit_version": __version__,
            "dataset": str(Path(dataset).resolve()) if dataset else None,
            "rows": n,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "meta": dict(meta or {}),
        }
        for name, df in (extra_tables or {}).items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


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
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RvosError(f"invalid JSON: {exc}", file=mpath) from None
    if manifest.get("format") != FORMAT_NAME:
        raise RvosError(f"format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}", file=mpath)
    return manifest
