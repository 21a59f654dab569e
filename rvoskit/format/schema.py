"""Machine-readable table schemas of the common format (``schemas/*.schema.json``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

FORMAT_VERSION = 1
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


def table_columns(table: str) -> list[str]:
    """Column names of a table, in schema order."""
    return [c["name"] for c in load_schema(table)["columns"]]


def check_table(table: str, data: pa.Table) -> list[str]:
    """Compare a pyarrow table against the schema.

    Returns:
        A list of problems (missing columns, wrong types, nulls in non-nullable columns); empty if
        the table conforms.
    """
    problems = []
    schema = arrow_schema(table)
    for field in schema:
        if field.name not in data.column_names:
            problems.append(f"missing column {field.name!r}")
            continue
        col = data.column(field.name)
        if not col.type.equals(field.type):
            problems.append(f"column {field.name!r} has type {col.type}, expected {field.type}")
        if not field.nullable and col.null_count:
            problems.append(f"column {field.name!r} has {col.null_count} null value(s)")
    return problems
