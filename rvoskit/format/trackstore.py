"""Track store I/O: candidate mask tracks and SAM2 object tokens, per video, resumable.

Layout (``schemas/FORMAT.md`` section 2)::

    <tracks>/trackstore.json
    <tracks>/tracks/<safe video_id>.parquet        table "tracks", one row per (track, frame)
    <tracks>/tokens/<safe video_id>.safetensors    "obj_ptr" (N, T, 256), "track_id" (N,)
    <tracks>/done/<safe video_id>.json             completion marker, written last
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

if TYPE_CHECKING:  # annotations only: pseudolabel reads track stores without pandas (issue 13)
    import pandas as pd

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file, safe_name
from rvoskit.format.jsonfile import read_json_object
from rvoskit.format.schema import FORMAT_VERSION, check_table, fill_optional, version_supported
from rvoskit.format.store import read_schema, read_table, to_arrow

MANIFEST = "trackstore.json"
FORMAT_NAME = "rvoskit-tracks"


def meta_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The entries in which two manifest ``meta`` dicts differ, as ``"options.max_tracks: 3 in
    the store, 2 now"`` (nested keys joined with dots; a missing entry reads ``absent``)."""
    out = []
    for key in sorted(set(stored) | set(wanted), key=str):
        a, b = stored.get(key, "absent"), wanted.get(key, "absent")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += meta_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} in the store, {json.dumps(b)} now")
    return out


class TrackStore:
    """A track store directory: created if missing, resumable, readable.

    Args:
        path: the store directory.
        create: create the directory and manifest if they do not exist.
        meta: manifest entries (dataset path, SAM2 config, options) recorded on creation and
            compared on reopen: a resume with different generation options is refused.

    Raises:
        RvosError: not a track store (and ``create`` is false), unsupported version, or a resume
            whose ``meta`` differs from the store's.
    """

    def __init__(self, path: str | Path, *, create: bool = False, meta: Mapping[str, Any] | None = None):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not mpath.is_file():
            if not create:
                raise RvosError("not an rvoskit track store (no trackstore.json)", file=self.path)
            for sub in ("tracks", "tokens", "done"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            manifest = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "rvoskit_version": __version__,
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "meta": dict(meta or {}),
                "runs": [],
            }
            with atomic_file(mpath) as tmp:
                tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        self.manifest = read_json_object(mpath, "the track store manifest")
        if self.manifest.get("format") != FORMAT_NAME or not version_supported(self.manifest.get("format_version")):
            raise RvosError("not a v1 rvoskit track store", file=mpath)
        if meta is not None and create:
            diff = meta_differences(self.manifest.get("meta", {}), json.loads(json.dumps(dict(meta))))
            if diff:
                raise RvosError(
                    f"this store was generated with other options ({'; '.join(diff)}); "
                    "use a new --out or the same options to resume",
                    file=mpath,
                )

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether ``path`` holds a track store (its ``trackstore.json``)."""
        return (Path(path) / MANIFEST).is_file()

    @property
    def meta(self) -> dict:
        """The generation options recorded in the manifest."""
        return self.manifest.get("meta", {})

    def _file(self, sub: str, video_id: str, ext: str) -> Path:
        return self.path / sub / f"{safe_name(video_id)}{ext}"

    def is_done(self, video_id: str) -> bool:
        """Whether the video's tracks and tokens are complete."""
        return self._file("done", video_id, ".json").is_file()

    def done_videos(self) -> list[str]:
        """Ids of the completed videos (from the markers), sorted."""
        out = []
        for p in sorted((self.path / "done").glob("*.json")):
            vid = read_json_object(p, "a video's completion marker").get("video_id")
            if not isinstance(vid, str):
                raise RvosError(f"video_id is {vid!r}, expected a string", file=p, item="video_id")
            out.append(vid)
        return sorted(out)

    def write_video(
        self,
        video_id: str,
        rows: pd.DataFrame | Iterable[Mapping[str, Any]],
        obj_ptr: np.ndarray,
        track_ids: np.ndarray,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one video's tracks and tokens atomically, then its completion marker.

        Args:
            video_id: the video.
            rows: ``tracks`` table rows (one per track and frame).
            obj_ptr: ``(N, T, 256)`` float32 or float16 object pointers.
            track_ids: ``(N,)`` int32, the track of each row of ``obj_ptr``.
            info: per-video summary stored in the marker (timings, prompt counts).

        Raises:
            RvosError: shapes that disagree with each other.
        """
        from safetensors.numpy import save_file

        obj_ptr = np.ascontiguousarray(obj_ptr)
        track_ids = np.ascontiguousarray(track_ids, dtype=np.int32)
        if obj_ptr.ndim != 3 or obj_ptr.shape[0] != track_ids.shape[0]:
            raise RvosError(f"obj_ptr {obj_ptr.shape} does not match {track_ids.shape[0]} track ids", item=video_id)
        table = to_arrow("tracks", rows)
        with atomic_file(self._file("tracks", video_id, ".parquet")) as tmp:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, compression="zstd")
        with atomic_file(self._file("tokens", video_id, ".safetensors")) as tmp:
            save_file({"obj_ptr": obj_ptr, "track_id": track_ids}, str(tmp), metadata={"video_id": video_id})
        marker = {"video_id": video_id, "num_tracks": int(track_ids.shape[0]), "num_frames": int(obj_ptr.shape[1]), **(info or {})}
        with atomic_file(self._file("done", video_id, ".json")) as tmp:
            tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")

    def video_info(self, video_id: str) -> dict:
        """The completion marker's contents of a video."""
        path = self._file("done", video_id, ".json")
        if not path.is_file():
            raise RvosError("video not in the track store (not generated yet)", file=self.path, item=video_id)
        return read_json_object(path, "a video's completion marker")

    def tracks(self, video_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The ``tracks`` rows of one completed video (all columns, or ``columns`` only).

        Raises:
            RvosError: the video is not complete in this store.
        """
        return self.tracks_table(video_id, columns).to_pandas()

    def tracks_table(self, video_id: str, columns: list[str] | None = None):
        """:meth:`tracks` as a schema-checked Arrow table (no pandas conversion), read on this
        thread (``ParquetFile.read``: one small file per video, where the dataset API and a thread
        pool cost more than the read; the same checks as :func:`rvoskit.format.store.read_table`).

        Raises:
            RvosError: the video is not complete in this store, or its file is not a valid table.
        """
        if not self.is_done(video_id):
            raise RvosError("video not in the track store (not generated yet)", file=self.path, item=video_id)
        path = self._file("tracks", video_id, ".parquet")
        file_schema = read_schema(path, "tracks", columns=columns)
        if columns is not None and any(c not in file_schema.names for c in columns):
            return read_table(path, "tracks", columns=columns)  # older file: optional columns filled in there
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            t = pq.ParquetFile(path).read(columns=columns, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise RvosError(f"unreadable Parquet: {' '.join(str(exc).split())}", file=path) from None
        problems = check_table("tracks", t, columns)
        if problems:
            raise RvosError("; ".join(problems), file=path)
        return fill_optional("tracks", t, columns)

    def tokens(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(obj_ptr (N, T, 256), track_id (N,) int32)`` of one completed video."""
        from safetensors.numpy import load_file

        if not self.is_done(video_id):
            raise RvosError("video not in the track store (not generated yet)", file=self.path, item=video_id)
        d = load_file(str(self._file("tokens", video_id, ".safetensors")))
        return d["obj_ptr"], d["track_id"]

    def add_run(self, summary: Mapping[str, Any]) -> None:
        """Append a run summary (videos, tracks per video, time per frame) to the manifest.

        The manifest is re-read under an exclusive lock (``trackstore.json.lock``) first, so that
        shards finishing at the same time do not drop each other's summaries.
        """
        import fcntl

        with open(self.path / (MANIFEST + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.manifest = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
                self.manifest.setdefault("runs", []).append(dict(summary))
                with atomic_file(self.path / MANIFEST) as tmp:
                    tmp.write_text(json.dumps(self.manifest, indent=2) + "\n", encoding="utf-8")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def open_trackstore(path: str | Path) -> TrackStore:
    """Open an existing track store for reading (see :class:`TrackStore`)."""
    return TrackStore(path)

