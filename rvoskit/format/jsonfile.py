"""Reading the small JSON manifests of the common format (dataset.json, predictions.json,
trackstore.json, labels.json, completion markers) with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rvoskit.errors import RvosError


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON file that must hold one object.

    Args:
        path: the file.
        what: what the file is, for the message (``"the track store manifest"``).

    Returns:
        The parsed object.

    Raises:
        RvosError: a directory in place of the file, an unreadable file, bytes that are not UTF-8,
            invalid or truncated JSON, or a document that is not an object (``null``, a list, a
            number), naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise RvosError(f"is a directory, expected {what} (a JSON file)", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RvosError(f"not valid UTF-8 at byte {exc.start}, expected {what}", file=path) from None
    except OSError as exc:
        raise RvosError(f"cannot read {what}: {exc.strerror}", file=path) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RvosError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=path) from None
    if not isinstance(doc, dict):
        kind = "null" if doc is None else type(doc).__name__
        raise RvosError(f"holds a JSON {kind}, expected {what} (a JSON object)", file=path)
    return doc
