"""Samples and batches for the selection model: expressions, their candidate tracks, labels, tokens.

One sample = one expression with all its candidate tracks, from every track store given (SOLA
``dataloader.py``: one sample per expression, candidates from several ``sam2_output_dirs`` such as
``gt_tracks,grid_tracks``). A track store is named by its *source* label: ``--tracks gt=DIR`` gives
source ``gt``; a bare ``DIR`` gives the directory's name. Pseudo-label tables (``labels.parquet``)
use the same names in their ``source`` column.

A batch holds B expressions and G <= B *candidate sets* (one per distinct (video, candidates)); the
tokens are stored once per set and the model's ``group`` index maps expressions to sets.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rvoskit.errors import RvosError
from rvoskit.format import read_table
from rvoskit.format.trackstore import TrackStore
from rvoskit.selection.text import TextFeature


def parse_track_sources(specs: Iterable[str] | Mapping[str, str | Path]) -> dict[str, Path]:
    """``["gt=DIR", "DIR2"]`` (or a mapping) -> ``{"gt": DIR, "<name of DIR2>": DIR2}``, in order.

    The same convention as ``rvoskit pseudolabel`` (:func:`rvoskit.labels.parse_sources`, which this
    calls): the name is the labels' ``source``; a spec that is an existing path is a path.

    Raises:
        RvosError: no store, an empty name or a name given twice.
    """
    from rvoskit.labels import parse_sources

    return parse_sources(specs if isinstance(specs, Mapping) else list(specs))


def open_stores(sources: Mapping[str, str | Path]) -> dict[str, TrackStore]:
    """Open each named track store (see :func:`parse_track_sources`).

    Raises:
        RvosError: a directory that is not a track store.
    """
    if not sources:
        raise RvosError("no track store given (--tracks NAME=DIR)")
    return {name: TrackStore(path) for name, path in sources.items()}


@dataclass
class Sample:
    """One expression and its candidate tracks.

    Attributes:
        expression_id, video_id, text: from the dataset.
        candidates: ``((source, track_id), ...)`` in source order, then track order.
        labels: float32 ``(N,)`` 0/1 pseudo-labels aligned with ``candidates``, or None (scoring).
        dataset: the name of the data set the expression comes from (``""`` when there is one);
            with several training sets, ids are unique only together with it (:attr:`key`).
    """

    expression_id: str
    video_id: str
    text: str
    candidates: tuple[tuple[str, int], ...]
    labels: np.ndarray | None = field(default=None, repr=False)
    dataset: str = ""

    @property
    def key(self) -> str:
        """``"<dataset>/<expression_id>"`` (just the expression id without a data set name): unique
        across the data sets of a run."""
        return f"{self.dataset}/{self.expression_id}" if self.dataset else self.expression_id

    @property
    def video_key(self) -> tuple[str, str]:
        """``(dataset, video_id)``: videos of different data sets never share an encoding."""
        return (self.dataset, self.video_id)


def _track_owners(store: TrackStore, video_id: str) -> pd.DataFrame:
    """``track_id, expression_id`` of a completed video's tracks (expression_id: grounded tracks only).

    Reads two columns of the video's tracks table.
    """
    if not store.is_done(video_id):
        raise RvosError("video is labelled but not in this track store", file=store.path, item=video_id)
    return store.tracks(video_id, columns=["track_id", "expression_id"]).drop_duplicates("track_id")


def labelled_samples(dataset, stores: Mapping[str, TrackStore], labels_dir: str | Path, name: str = "") -> list[Sample]:
    """Training samples: every expression that has pseudo-labels for the given stores.

    The candidates of an expression are the tracks of its video in each store (``source``) that
    have a label row and whose ``expression_id`` in the track store is null (grid / gt tracks) or
    this expression (grounded tracks of other expressions are not candidates, as in SOLA).

    Args:
        dataset: an opened :class:`~rvoskit.format.RvosDataset` (texts, videos).
        stores: ``{source: TrackStore}``.
        labels_dir: a labels directory (``labels.parquet``) or the Parquet file itself.
        name: the data set's name (:attr:`Sample.dataset`).

    Returns:
        Samples in dataset order; labels are the table's ``label`` column.

    Raises:
        RvosError: a source without label rows, labels of an unknown expression or of a track that is not
        in its store, a video missing from a store.
    """
    set_name = name
    path = Path(labels_dir)
    path = path / "labels.parquet" if path.is_dir() else path
    table = read_table(path, "labels", columns=["expression_id", "video_id", "source", "track_id", "label"]).to_pandas()
    known = sorted(table["source"].unique())
    for name in stores:
        if name not in known:
            raise RvosError(f"no pseudo-labels for track source {name!r} (sources in the table: {known})", file=path)
    table = table[table["source"].isin(list(stores))]
    exprs = dataset.expressions
    unknown = sorted(set(table["expression_id"]) - set(exprs.index))
    if unknown:
        raise RvosError(f"{len(unknown)} labelled expressions are not in the dataset", file=path, item=unknown[0])
    owners = []
    for name, vid in table[["source", "video_id"]].drop_duplicates().itertuples(index=False):
        o = _track_owners(stores[name], vid)
        owners.append(o.assign(source=name, video_id=vid).rename(columns={"expression_id": "owner"}))
    table = table.merge(pd.concat(owners, ignore_index=True), on=["source", "video_id", "track_id"], how="left", indicator=True)
    stray = table[table["_merge"] != "both"]
    if len(stray):
        r = stray.iloc[0]
        raise RvosError(f"track {r['track_id']} is labelled but not in the store", file=stores[r["source"]].path, item=r["video_id"])
    table = table[table["owner"].isna() | (table["owner"] == table["expression_id"])].copy()
    table["_src"] = table["source"].map({name: i for i, name in enumerate(stores)})
    table = table.sort_values(["expression_id", "_src", "track_id"], kind="stable")
    groups = {eid: g for eid, g in table.groupby("expression_id", sort=False)}
    out = []
    for eid, e in exprs.iterrows():
        g = groups.get(eid)
        if g is None:
            continue
        if (g["video_id"] != e["video_id"]).any():
            raise RvosError(f"labels put the expression in another video than {e['video_id']!r}", file=path, item=eid)
        cands = tuple(zip(g["source"].tolist(), (int(t) for t in g["track_id"])))
        out.append(Sample(eid, e["video_id"], e["text"], cands, g["label"].to_numpy(np.float32), set_name))
    return out


def video_candidates(tracks: Mapping[str, pd.DataFrame], expression_id: str) -> tuple[tuple[str, int], ...]:
    """Candidates of an expression in one video: every track of each store whose ``expression_id`` is
    null (grid / gt tracks) or this expression (grounded tracks), in source order then track order.

    Args:
        tracks: ``{source: tracks rows of the video}`` (``TrackStore.tracks``).
    """
    out = []
    for name, rows in tracks.items():
        ids = rows.loc[rows["expression_id"].isna() | (rows["expression_id"] == expression_id), "track_id"]
        out.extend((name, int(t)) for t in sorted(ids.unique()))
    return tuple(out)


def read_tokens(store: TrackStore, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    """``(obj_ptr (N, T, C), track_id (N,))`` of a video, checked.

    Raises:
        RvosError: a missing, unreadable or truncated safetensors file, one without ``obj_ptr`` or
        ``track_id``, or arrays of the wrong rank, dtype or length; the message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not store.is_done(video_id):
        raise RvosError("video not in the track store (not generated yet)", file=store.path, item=video_id)
    path = store._file("tokens", video_id, ".safetensors")
    try:
        d = load_file(str(path))
    except FileNotFoundError:
        raise RvosError("object tokens missing (the video is marked done; regenerate it)", file=path, item=video_id) from None
    except (SafetensorError, OSError, ValueError, MemoryError) as exc:
        raise RvosError(f"unreadable object tokens ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); expected a safetensors file with obj_ptr (N, T, C) and track_id (N,)", file=path, item=video_id) from None
    for key in ("obj_ptr", "track_id"):
        if key not in d:
            raise RvosError(f"no {key!r} in the object tokens (keys: {sorted(d)}); expected obj_ptr (N, T, C) and track_id (N,)", file=path, item=video_id)
    obj_ptr, track_id = d["obj_ptr"], d["track_id"]
    if obj_ptr.ndim != 3 or obj_ptr.dtype.kind != "f":
        raise RvosError(f"obj_ptr has shape {obj_ptr.shape} and dtype {obj_ptr.dtype}, expected floats (N, T, C)", file=path, item=video_id)
    if track_id.ndim != 1 or track_id.dtype.kind not in "iu" or len(track_id) != obj_ptr.shape[0]:
        raise RvosError(f"track_id has shape {track_id.shape} and dtype {track_id.dtype}, expected {obj_ptr.shape[0]} integers (one per obj_ptr row)", file=path, item=video_id)
    return obj_ptr, track_id


def check_token_headers(store: TrackStore, video_ids: Iterable[str], frames: Mapping[str, int] | None = None, dim: int | None = None) -> None:
    """Check the object-token files of ``video_ids`` from their headers only (no tensor is read):
    present, readable, holding ``obj_ptr`` (N, T, C) floats and ``track_id`` (N,) integers, T the
    video's frame count (``frames``) and C the model's token width (``dim``). Used before training
    starts, so a broken store fails before any work.

    Raises:
        RvosError: naming the safetensors file and the video (see :func:`read_tokens`).
    """
    from safetensors import SafetensorError, safe_open

    expected = "expected a safetensors file with obj_ptr (N, T, C) and track_id (N,)"
    for vid in video_ids:
        if not store.is_done(vid):
            raise RvosError("video is labelled but not in this track store", file=store.path, item=vid)
        path = store._file("tokens", vid, ".safetensors")
        try:
            with safe_open(str(path), framework="numpy") as f:
                keys = set(f.keys())
                for key in ("obj_ptr", "track_id"):
                    if key not in keys:
                        raise RvosError(f"no {key!r} in the object tokens (keys: {sorted(keys)}); {expected}", file=path, item=vid)
                ptr, tid = f.get_slice("obj_ptr"), f.get_slice("track_id")
                shape, dtype, tshape, tdtype = list(ptr.get_shape()), ptr.get_dtype(), list(tid.get_shape()), tid.get_dtype()
        except FileNotFoundError:
            raise RvosError("object tokens missing (the video is marked done; regenerate it)", file=path, item=vid) from None
        except (SafetensorError, OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RvosError(f"unreadable object tokens ({first}); {expected}", file=path, item=vid) from None
        if len(shape) != 3 or not dtype.startswith(("F", "BF")):
            raise RvosError(f"obj_ptr has shape {tuple(shape)} and dtype {dtype}, expected floats (N, T, C)", file=path, item=vid)
        if len(tshape) != 1 or tdtype[0] not in "IU" or tshape[0] != shape[0]:
            raise RvosError(f"track_id has shape {tuple(tshape)} and dtype {tdtype}, expected {shape[0]} integers (one per obj_ptr row)", file=path, item=vid)
        want_t = None if frames is None else frames.get(vid)
        if want_t is not None and shape[1] != want_t:
            raise RvosError(f"object tokens have {shape[1]} frames, the dataset's video has {want_t}", file=path, item=vid)
        if dim is not None and shape[2] != dim:
            raise RvosError(f"object tokens are {shape[2]} wide, the model expects {dim} (model.object_dim)", file=path, item=vid)


class TokenCache:
    """Object tokens per (data set, source, video), loaded on demand, the ``max_videos`` most recent kept.

    ``get(source, video_id, dataset="") -> (obj_ptr float32 (N, T, C), {track_id: row})``.

    Args:
        stores: ``{source: TrackStore}`` (one data set, named ``""``) or
            ``{set name: {source: TrackStore}}`` (several data sets).
        max_videos: videos kept in memory.
        frames: ``{set name: {video_id: num_frames}}``: the tokens of a video must have one row per
            frame of the dataset's video (``T``); None skips the check.
        dim: the token width the model expects (``model.object_dim``); None skips the check.
    """

    def __init__(self, stores: Mapping, max_videos: int = 64, *, frames: Mapping[str, Mapping[str, int]] | None = None, dim: int | None = None):
        self._stores: dict[tuple[str, str], TrackStore] = {}
        for key, value in stores.items():
            if isinstance(value, Mapping):
                self._stores.update({(str(key), src): st for src, st in value.items()})
            else:
                self._stores[("", str(key))] = value
        self.max = max(1, int(max_videos))
        self.frames, self.dim = frames, dim
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @property
    def stores(self) -> dict[str, TrackStore]:
        """``{source: TrackStore}`` of the unnamed data set (the single-set form)."""
        return {src: st for (ds, src), st in self._stores.items() if ds == ""}

    def store(self, source: str, dataset: str = "") -> TrackStore:
        """The track store of a source in a data set."""
        return self._stores[(dataset, source)]

    def get(self, source: str, video_id: str, dataset: str = "") -> tuple[np.ndarray, dict[int, int]]:
        key = (dataset, source, video_id)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        store = self.store(source, dataset)
        obj_ptr, track_id = read_tokens(store, video_id)
        where = store._file("tokens", video_id, ".safetensors")
        want_t = None if self.frames is None else self.frames.get(dataset, {}).get(video_id)
        if want_t is not None and obj_ptr.shape[1] != want_t:
            raise RvosError(f"object tokens have {obj_ptr.shape[1]} frames, the dataset's video has {want_t}", file=where, item=video_id)
        if self.dim is not None and obj_ptr.shape[2] != self.dim:
            raise RvosError(f"object tokens are {obj_ptr.shape[2]} wide, the model expects {self.dim} (model.object_dim)", file=where, item=video_id)
        value = (np.asarray(obj_ptr, dtype=np.float32), {int(t): i for i, t in enumerate(track_id)})
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.max:
                self._cache.popitem(last=False)
        return value


@dataclass
class Batch:
    """Model inputs for B expressions in G candidate sets (see :meth:`TrackSelectionModel.forward`).

    Attributes:
        tokens: ``(G, N, T, C)`` float32; track_mask ``(G, N)``; frame_mask ``(G, T)``; group ``(B,)``.
        words: ``(B, L, D)``; word_mask ``(B, L)``; sentence ``(B, D)``.
        labels: ``(B, N)`` float32 or None; candidate_mask: ``(B, N)`` bool (``track_mask[group]``).
        samples: the B samples.
    """

    tokens: torch.Tensor
    track_mask: torch.Tensor
    frame_mask: torch.Tensor
    group: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    sentence: torch.Tensor
    labels: torch.Tensor | None
    samples: list[Sample]

    @property
    def candidate_mask(self) -> torch.Tensor:
        return self.track_mask.index_select(0, self.group)

    def to(self, device) -> Batch:
        """A copy on ``device``."""
        move = lambda t: None if t is None else t.to(device, non_blocking=True)
        return Batch(
            *(move(getattr(self, f)) for f in ("tokens", "track_mask", "frame_mask", "group", "words", "word_mask", "sentence", "labels")),
            samples=self.samples,
        )


def make_batch(samples: Sequence[Sample], features: Mapping[str, TextFeature], tokens: TokenCache) -> Batch:
    """Collate samples into a padded :class:`Batch` (one token block per distinct candidate set).

    Raises:
        RvosError: a candidate track missing from its store's tokens; stores that disagree on a video's
        number of frames; a sample without candidates.
    """
    sets: dict[tuple, int] = {}
    group = []
    for s in samples:
        if not s.candidates:
            raise RvosError("expression has no candidate tracks", item=s.key)
        group.append(sets.setdefault((s.dataset, s.video_id, s.candidates), len(sets)))
    blocks = []
    for dataset, video_id, cands in sets:
        parts, T = [], None
        for source in dict.fromkeys(src for src, _ in cands):
            obj, index = tokens.get(source, video_id, dataset)
            if T is not None and obj.shape[1] != T:
                raise RvosError(f"track stores disagree on the number of frames ({T} vs {obj.shape[1]})", item=video_id)
            T = obj.shape[1]
            try:
                rows = [index[t] for src, t in cands if src == source]
            except KeyError as exc:
                raise RvosError(f"track {exc.args[0]} has no tokens", file=tokens.store(source, dataset).path, item=video_id) from None
            parts.append(obj[rows])
        blocks.append(np.concatenate(parts) if len(parts) > 1 else parts[0])
    G, C = len(blocks), blocks[0].shape[2]
    N, T = max(b.shape[0] for b in blocks), max(b.shape[1] for b in blocks)
    tok = np.zeros((G, N, T, C), np.float32)
    track_mask = np.zeros((G, N), bool)
    frame_mask = np.zeros((G, T), bool)
    for g, b in enumerate(blocks):
        tok[g, : b.shape[0], : b.shape[1]] = b
        track_mask[g, : b.shape[0]] = True
        frame_mask[g, : b.shape[1]] = True
    feats = [features[s.text] for s in samples]
    B, L, D = len(samples), max(f.words.shape[0] for f in feats), feats[0].words.shape[1]
    words = np.zeros((B, L, D), np.float32)
    word_mask = np.zeros((B, L), bool)
    for i, f in enumerate(feats):
        words[i, : f.words.shape[0]] = f.words
        word_mask[i, : f.words.shape[0]] = True
    labels = None
    if all(s.labels is not None for s in samples):
        labels = np.zeros((B, N), np.float32)
        for i, s in enumerate(samples):
            labels[i, : len(s.labels)] = s.labels
    return Batch(
        torch.from_numpy(tok),
        torch.from_numpy(track_mask),
        torch.from_numpy(frame_mask),
        torch.as_tensor(group, dtype=torch.long),
        torch.from_numpy(words),
        torch.from_numpy(word_mask),
        torch.from_numpy(np.stack([f.sentence for f in feats]).astype(np.float32)),
        None if labels is None else torch.from_numpy(labels),
        list(samples),
    )


def batch_indices(
    samples: Sequence[Sample],
    batch_size: int,
    *,
    group_by_video: bool = True,
    rng: np.random.Generator | None = None,
    pool: Sequence[int] | None = None,
) -> list[list[int]]:
    """Split sample indices into batches of ``batch_size``.

    With ``rng`` the order is shuffled: with ``group_by_video`` videos are shuffled and each video's
    expressions (shuffled) are kept together, so a batch spans few videos and shares their encoding;
    without it expressions are shuffled freely (SOLA's order at batch size 1). Without ``rng`` the
    order is the dataset order. Videos are told apart by (data set, video id).

    Args:
        pool: the indices to batch (an index may repeat, see :func:`epoch_pool`); default every sample once.
    """
    idx = np.arange(len(samples)) if pool is None else np.asarray(pool, dtype=np.int64)
    if rng is not None:
        if group_by_video:
            by_video: dict[tuple[str, str], list[int]] = {}
            for i in idx.tolist():
                by_video.setdefault(samples[i].video_key, []).append(i)
            videos = list(by_video)
            idx = np.concatenate([rng.permutation(by_video[videos[v]]) for v in rng.permutation(len(videos))]) if videos else idx
        else:
            idx = rng.permutation(idx)
    bs = max(1, int(batch_size))
    return [idx[i : i + bs].tolist() for i in range(0, len(idx), bs)]


def epoch_pool(samples: Sequence[Sample], weights: Mapping[str, float], rng: np.random.Generator) -> list[int] | None:
    """The sample indices of one epoch under per-set sampling weights (the sampling rule).

    A set of ``n`` expressions with weight ``w`` contributes ``round(w * n)`` draws: every
    expression ``floor(w)`` times, plus a random subset (without replacement) for the rest, so the
    expected count of each expression is ``w``. With every weight 1 (proportional sampling) this is
    every sample once, and None is returned without drawing from ``rng`` (the order is then exactly
    that of the single-set path).
    """
    if all(float(weights.get(s.dataset, 1.0)) == 1.0 for s in samples):
        return None
    by_set: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_set.setdefault(s.dataset, []).append(i)
    pool: list[int] = []
    for name, idx in by_set.items():
        n, w = len(idx), float(weights.get(name, 1.0))
        count = int(round(w * n))
        copies, rest = divmod(count, n)
        pool += idx * copies
        if rest:
            pool += sorted(rng.choice(idx, size=rest, replace=False).tolist())
    return pool


def split_by_video(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of the videos (seeded) of each data set: ``(train, valid)`` samples."""
    held: set[tuple[str, str]] = set()
    for name in dict.fromkeys(s.dataset for s in samples):
        videos = sorted({s.video_id for s in samples if s.dataset == name})
        n = round(len(videos) * fraction)
        if n:
            held |= {(name, v) for v in np.random.default_rng(seed).permutation(videos)[:n].tolist()}
    return [s for s in samples if s.video_key not in held], [s for s in samples if s.video_key in held]


def prefetch(items: Iterable, size: int = 2) -> Iterator:
    """Iterate ``items`` produced by a background thread, ``size`` ahead (exceptions are re-raised)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    end = object()
    stop = threading.Event()

    def work():
        try:
            for it in items:
                if stop.is_set():
                    return
                q.put(it)
            q.put(end)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            it = q.get()
            if it is end:
                return
            if isinstance(it, BaseException):
                raise it
            yield it
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)
