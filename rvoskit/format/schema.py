"""Machine-readable table schemas of the common format (``schemas/*.schema.json``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

FORMAT_VERSION = "1.1"
"""The common format's version, ``"<major>.<minor>"``, written to every manifest. A minor version
only adds optional columns (marked ``"since"`` in the schemas), so a reader of 1.1 reads 1.0 files:
a column missing from an older file reads as nulls. Version 1.0 manifests say ``1``."""
FORMAT_MAJOR = 1
FORMAT_MINOR = 1
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

_SCALARS = {
    "string": pa.string(),
    "binary": pa.binary(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
}


def parse_version(value) -> tuple[int, int] | None:
    """``(major, minor)`` of a manifest's ``format_version`` (``1``, ``"1"``, ``"1.0"``, ``"1.1"``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, 0)
    if isinstance(value, str):
        parts = value.split(".")
        if 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts):
            return (int(parts[0]), int(parts[1]) if len(parts) == 2 else 0)
    return None


def version_supported(value) -> bool:
    """Whether this rvoskit reads a manifest with this ``format_version`` (same major, minor <= ours)."""
    v = parse_version(value)
    return v is not None and v[0] == FORMAT_MAJOR and v[1] <= FORMAT_MINOR


def _arrow_type(name: str) -> pa.DataType:
    if name.startswith("list<") and name.endswith(">"):
        return pa.list_(_arrow_type(name[5:-1]))
    return _SCALARS[name]


@lru_cache(maxsize=None)
def load_schema(table: str) -> dict:
    """Load the JSON schema of one table (``schemas/<table>.schema.json``).

    Args:
        table: table name: videos, objects, expressions, masks, moments, tracks, labels, predictions.

    Returns:
        The parsed schema dict (``name``, ``doc``, ``key``, ``sort``, ``columns``).

    Raises:
        KeyError: for an unknown table name.
    """
    path = SCHEMA_DIR / f"{table}.schema.json"
    if not path.is_file():
        raise KeyError(f"unknown table {table!r} (no {path})")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def arrow_schema(table: str) -> pa.Schema:
    """The pyarrow schema of a table, built from its JSON schema (column order included)."""
    spec = load_schema(table)
    return pa.schema(
        [pa.field(c["name"], _arrow_type(c["type"]), nullable=c["nullable"]) for c in spec["columns"]],
        metadata={"rvoskit.table": table, "rvoskit.format_version": str(FORMAT_VERSION)},
    )


@lru_cache(maxsize=None)
def optional_columns(table: str) -> frozenset[str]:
    """Columns added by a minor version (``"since"`` in the schema): a file written by an older
    minor version may lack them, and they then read as nulls (:func:`fill_optional`)."""
    return frozenset(c["name"] for c in load_schema(table)["columns"] if "since" in c)


def fill_optional(table: str, data: pa.Table, columns: list[str] | None = None) -> pa.Table:
    """Append the optional columns (:func:`optional_columns`) that ``data`` lacks, as nulls, in
    schema order at the end (only those in ``columns`` when given)."""
    schema = arrow_schema(table)
    for name in sorted(optional_columns(table), key=schema.names.index):
        if name not in data.column_names and (columns is None or name in columns):
            data = data.append_column(schema.field(name), pa.nulls(data.num_rows, schema.field(name).type))
    return data


def table_columns(table: str) -> list[str]:
    """Column names of a table, in schema order."""
    return [c["name"] for c in load_schema(table)["columns"]]


def check_schema(table: str, schema: pa.Schema, columns: list[str] | None = None) -> list[str]:
    """Compare a file's Arrow schema (a Parquet footer) against the table's schema.

    Args:
        table: the table name.
        schema: the schema read from the file (``pq.read_schema``).
        columns: check only these columns (default: every column of the table).

    Returns:
        Problems as short phrases (``missing column 'area'``, ``column 'frame_idx' has type
        string, expected int32``); empty if the schema conforms.
    """
    problems = []
    names = set(schema.names)
    for field in arrow_schema(table):
        if columns is not None and field.name not in columns:
            continue
        if field.name not in names:
            if field.name not in optional_columns(table):
                problems.append(f"missing column {field.name!r}")
            continue
        have = schema.field(field.name).type
        if not have.equals(field.type):
            problems.append(f"column {field.name!r} has type {have}, expected {field.type}")
    return problems


def check_table(table: str, data: pa.Table, columns: list[str] | None = None) -> list[str]:
    """Compare a pyarrow table against the schema.

    Args:
        table: the table name.
        data: the table.
        columns: check only these columns (default: every column of the table).

    Returns:
        A list of problems (missing columns, wrong types, nulls in non-nullable columns); empty if
        the table conforms.
    """
    problems = []
    schema = arrow_schema(table)
    for field in schema:
        if columns is not None and field.name not in columns:
            continue
        if field.name not in data.column_names:
            if field.name not in optional_columns(table):
                problems.append(f"missing column {field.name!r}")
            continue
        col = data.column(field.name)
        if not col.type.equals(field.type):
            problems.append(f"column {field.name!r} has type {col.type}, expected {field.type}")
        if not field.nullable and col.null_count:
            problems.append(f"column {field.name!r} has {col.null_count} null value(s)")
    return problems
