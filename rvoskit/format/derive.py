"""Derived datasets: the same annotations over new frames (``rvoskit corrupt`` writes one).

A derived dataset has the input's tables, with ``videos.frame_files`` pointing at the new frames
and ``frame_root`` set to a folder inside the dataset (relative, so the directory can move). The
other tables are hard-linked from the input when the file system allows it (they are never
modified in place: every writer replaces whole files), else copied.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rvoskit.errors import RvosError
from rvoskit.format.store import MANIFEST, RvosDataset, sha256_file, write_table


def link_or_copy(src: str | Path, dst: str | Path) -> str:
    """Hard-link ``src`` to ``dst`` (replacing ``dst``), or copy it where linking fails.

    Returns:
        ``"link"`` or ``"copy"``.
    """
    dst = Path(dst)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
        return "link"
    except OSError:
        shutil.copy2(src, dst)
        return "copy"


def write_derived_dataset(
    src: RvosDataset,
    dest: str | Path,
    *,
    frame_files: Mapping[str, list[str]],
    frame_root: str = "frames",
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """Write the tables and ``dataset.json`` of a dataset derived from ``src`` into ``dest``.

    ``dest`` is a directory being built (normally the temporary directory of an atomic write, with
    the new frames already under ``dest / frame_root``). ``videos.parquet`` is rewritten with the
    new ``frame_files``; every other table in ``src``'s manifest is hard-linked (or copied). The
    manifest is ``src``'s with ``frame_root``, ``created_at`` and ``tables`` updated, a
    ``derived_from`` entry (input path and the sha256 of its ``dataset.json``) and the ``extra``
    keys.

    Args:
        src: the input dataset.
        dest: the directory to write into (must exist).
        frame_files: ``{video_id: [path relative to frame_root, ...]}`` for every video of ``src``,
            aligned with ``videos.frames``.
        frame_root: relative frame root stored in the manifest (resolved against the dataset).
        extra: extra manifest keys (e.g. ``{"corruption": {...}}``).

    Returns:
        The manifest written.

    Raises:
        RvosError: a video missing from ``frame_files`` or with the wrong number of frames.
    """
    dest = Path(dest)
    videos = src.videos.reset_index(drop=True).copy()
    new_files = []
    for vid, frames in zip(videos["video_id"], videos["frames"]):
        files = frame_files.get(vid)
        if files is None or len(files) != len(frames):
            raise RvosError(
                f"derived frames for {len(files) if files is not None else 0} of {len(frames)} frames",
                file=dest,
                item=vid,
            )
        new_files.append(list(files))
    videos["frame_files"] = new_files
    write_table(dest / "videos.parquet", "videos", videos)
    tables = list(src.manifest.get("tables") or [])
    linked = {}
    for name in tables:
        if name != "videos.parquet":
            linked[name] = link_or_copy(src.path / name, dest / name)
    manifest = dict(src.manifest)
    manifest.update(
        {
            "frame_root": frame_root,
            "tables": tables,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "derived_from": {
                "path": str(src.path.resolve()),
                "manifest_sha256": sha256_file(src.path / MANIFEST),
                "tables": linked,
            },
            **dict(extra or {}),
        }
    )
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
