"""The rvoskit common format v1: one module owns reading and writing it.

See ``schemas/FORMAT.md`` for the specification. Public API:

- :func:`open_dataset` / :class:`RvosDataset`: read a dataset directory.
- :class:`DatasetWriter`: write one, atomically, streaming masks per video.
- :func:`atomic_dir`: the temporary-directory-then-rename helper every stage uses.
- :mod:`rvoskit.format.rle`: COCO RLE helpers around pycocotools.
- :func:`read_table` / :func:`write_table`: schema-checked Parquet I/O for any v1 table.
"""

from rvoskit.format.atomic import atomic_dir, atomic_file, safe_name
from rvoskit.format.schema import FORMAT_VERSION, arrow_schema, load_schema, table_columns
from rvoskit.format.store import (
    DatasetWriter,
    RvosDataset,
    open_dataset,
    read_table,
    write_table,
)

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
