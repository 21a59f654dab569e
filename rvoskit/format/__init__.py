"""The rvoskit common format v1: one module owns reading and writing it.

See ``schemas/FORMAT.md`` for the specification. Public API:

- :func:`open_dataset` / :class:`RvosDataset`: read a dataset directory.
- :class:`DatasetWriter`: write one, atomically, streaming masks per video.
- :func:`atomic_dir`: the temporary-directory-then-rename helper every stage uses.
- :mod:`rvoskit.format.rle`: COCO RLE helpers around pycocotools.
- :func:`read_table` / :func:`write_table`: schema-checked Parquet I/O for any v1 table.
"""

from __future__ import annotations

from rvoskit._lazy import lazy_attributes

#: public name -> module that defines it, loaded on first use: light modules of this package
#: (:mod:`rvoskit.format.outputs`, :mod:`rvoskit.format.atomic`), which every command imports on
#: start-up, do not pull in pandas and pyarrow through this package's import
_LAZY = {
    "atomic_dir": "rvoskit.format.atomic",
    "atomic_file": "rvoskit.format.atomic",
    "safe_name": "rvoskit.format.atomic",
    "FORMAT_VERSION": "rvoskit.format.schema",
    "arrow_schema": "rvoskit.format.schema",
    "load_schema": "rvoskit.format.schema",
    "table_columns": "rvoskit.format.schema",
    "DatasetWriter": "rvoskit.format.store",
    "RvosDataset": "rvoskit.format.store",
    "open_dataset": "rvoskit.format.store",
    "read_table": "rvoskit.format.store",
    "write_table": "rvoskit.format.store",
}

__all__ = [
    "FORMAT_VERSION",
    "DatasetWriter",
    "RvosDataset",
    "arrow_schema",
    "atomic_dir",
    "atomic_file",
    "load_schema",
    "open_dataset",
    "read_table",
    "safe_name",
    "table_columns",
    "write_table",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
