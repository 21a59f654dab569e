"""Moment-aware frame sampling for training the selection model on MeViS-M (TGL, arXiv 2508.11955).

TGL trains on clips whose sampled frames are half inside the expression's moment and half outside.
SOLA's selection model reads the object tokens of *all* frames of a track; the equivalent here crops
each training expression's token block to ``n`` sampled frames by the same rule
(:func:`moment_sample_frames`), after :func:`rvoskit.selection.data.make_batch`
(:meth:`MomentSampler.crop`). ``train.moment_sampling: N`` (``rvoskit train --moment-sampling N``)
turns it on; 0 (the default) keeps every frame, SOLA's behaviour.

TGL's Object-level Selective Supervision (OSS) gives an object no supervision where the sampled
frames miss its moment. Here it acts twice: on the pseudo-labels (``rvoskit pseudolabel --moments``:
the IoU with an object counts only inside its moment), and on the crops: a positive track whose
objects (those its label came from: ``miou_per_obj > threshold``) all have object-level spans that
miss every sampled frame is taken out of that expression's candidates for the step (``track_mask``
false: neither a positive nor a negative), unless it is the expression's only candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from rvoskit.errors import RvosError


def moment_sample_frames(moment: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sample ``n`` frames, half inside the moment (TGL's rule), sorted.

    Args:
        moment: bool ``(T,)``, the frames inside the expression's moment.
        n: frames to sample (>= 1).
        rng: the generator.

    Returns:
        int64 sorted frame indices: every frame when ``n >= T``; else ``ceil(n / 2)`` drawn without
        replacement from the moment and the rest from outside it, the other side filling in when one
        side has too few frames (an empty moment gives ``n`` frames drawn from the whole video).

    Raises:
        RvosError: ``n < 1``.
    """
    if n < 1:
        raise RvosError(f"moment sampling needs at least 1 frame, got {n}")
    T = len(moment)
    if n >= T:
        return np.arange(T, dtype=np.int64)
    inside = np.flatnonzero(moment)
    outside = np.flatnonzero(~np.asarray(moment, bool))
    n_in = min(len(inside), (n + 1) // 2)
    n_out = min(len(outside), n - n_in)
    n_in = min(len(inside), n - n_out)
    pick = np.concatenate([rng.choice(inside, n_in, replace=False), rng.choice(outside, n_out, replace=False)])
    return np.sort(pick).astype(np.int64)


def dataset_object_moment_masks(dataset: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """Per expression with object-level spans, ``{obj_id: bool (T,)}`` of each object's spans."""
    from rvoskit.format import open_dataset

    ds = open_dataset(dataset)
    if not ds.has_moments:
        return {}
    T = ds.videos["num_frames"].to_dict()
    out: dict[str, dict[int, np.ndarray]] = {}
    m = ds.table("moments").to_pydict()
    for eid, vid, o, a, b in zip(m["expression_id"], m["video_id"], m["obj_id"], m["start_idx"], m["end_idx"]):
        if o is None:
            continue
        out.setdefault(eid, {}).setdefault(int(o), np.zeros(int(T[vid]), bool))[a : b + 1] = True
    return out


def positive_objects(labels: str | Path) -> dict[tuple[str, str, int], tuple[int, ...]]:
    """For each positive (expression, source, track) of a labels table made with ``target: max``, the
    objects its label came from (``miou_per_obj > threshold``); ``{}`` for ``target: union`` labels
    (a union label names no object)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from rvoskit.format.jsonfile import read_json_object

    path = Path(labels)
    path = path / "labels.parquet" if path.is_dir() else path
    meta = read_json_object(path.parent / "labels.json", "the labels manifest")
    if meta.get("target", "max") != "max":
        return {}
    thr = float(meta["threshold"])
    t = pq.read_table(path, columns=["expression_id", "source", "track_id", "obj_ids", "miou_per_obj", "label"])
    t = t.filter(pc.equal(t["label"], True)).to_pydict()
    return {(e, s, int(k)): tuple(int(o) for o, v in zip(objs, mious) if v is not None and v > thr)
            for e, s, k, objs, mious in zip(t["expression_id"], t["source"], t["track_id"], t["obj_ids"], t["miou_per_obj"])}


def dataset_moment_masks(dataset: str | Path) -> dict[str, np.ndarray]:
    """Per expression with spans, its moment (union of its spans) as bool ``(T,)`` over its video."""
    from rvoskit.format import open_dataset

    ds = open_dataset(dataset)
    if not ds.has_moments:
        return {}
    T = ds.videos["num_frames"].to_dict()
    out: dict[str, np.ndarray] = {}
    m = ds.moments
    for eid, vid, a, b in zip(m["expression_id"], m["video_id"], m["start_idx"], m["end_idx"]):
        f = out.setdefault(eid, np.zeros(int(T[vid]), bool))
        f[int(a) : int(b) + 1] = True
    return out


class MomentSampler:
    """Crops training batches to ``n`` frames per expression (:func:`moment_sample_frames`).

    Args:
        datasets: ``{set name: dataset directory}`` (the run's training sets); sets without
            ``moments.parquet`` sample uniformly.
        n: frames per expression.
        labels: ``{set name: labels directory or labels.parquet}``: turns on OSS for the crops (see
            the module docstring); None: no track is taken out.

    Attributes:
        counts: ``{"moment": expressions cropped by the moment rule, "uniform": without a moment,
        "oss_removed": positive tracks taken out of a crop by OSS}``.
    """

    def __init__(self, datasets: Mapping[str, str | Path], n: int, labels: Mapping[str, str | Path] | None = None):
        if int(n) < 1:
            raise RvosError(f"train.moment_sampling must be >= 1 frames (0 turns it off), got {n}")
        self.n = int(n)
        self.masks = {name: dataset_moment_masks(path) for name, path in datasets.items()}
        self.objects = {name: dataset_object_moment_masks(path) for name, path in datasets.items()} if labels else {}
        self.positives = {name: positive_objects(path) for name, path in (labels or {}).items()}
        self.counts = {"moment": 0, "uniform": 0, "oss_removed": 0}

    def crop(self, batch, rng: np.random.Generator):
        """A new :class:`rvoskit.selection.data.Batch` with one token block per expression, cropped to
        its sampled frames (padded at the end, ``frame_mask`` a prefix, as the model expects)."""
        from rvoskit.selection.data import Batch

        group = batch.group.numpy()
        fm = batch.frame_mask.numpy()
        picks = []
        for b, s in enumerate(batch.samples):
            T = int(fm[group[b]].sum())
            moment = self.masks.get(s.dataset, {}).get(s.expression_id)
            if moment is None or len(moment) != T:
                self.counts["uniform"] += 1
                moment = np.zeros(T, bool)
            else:
                self.counts["moment"] += 1
            picks.append(moment_sample_frames(moment, self.n, rng))
        Tp = max(len(p) for p in picks)
        G, N, _, C = batch.tokens.shape
        B = len(picks)
        tok = torch.zeros((B, N, Tp, C), dtype=batch.tokens.dtype)
        frame_mask = torch.zeros((B, Tp), dtype=torch.bool)
        for b, p in enumerate(picks):
            tok[b, :, : len(p)] = batch.tokens[int(group[b])][:, torch.from_numpy(p)]
            frame_mask[b, : len(p)] = True
        track_mask = batch.track_mask.index_select(0, batch.group).clone()
        for b, s in enumerate(batch.samples):
            self._oss(s, picks[b], track_mask[b])
        return Batch(tok, track_mask, frame_mask, torch.arange(B, dtype=torch.long),
                     batch.words, batch.word_mask, batch.sentence, batch.labels, batch.samples)

    def _oss(self, s, frames: np.ndarray, track_mask: torch.Tensor) -> None:
        """Take out of ``track_mask (N,)`` the positive tracks whose objects' spans all miss ``frames``."""
        objs = self.objects.get(s.dataset, {}).get(s.expression_id)
        pos = self.positives.get(s.dataset)
        if not objs or not pos or s.labels is None:
            return
        for j, (src, tid) in enumerate(s.candidates):
            if s.labels[j] <= 0.5:
                continue
            names = pos.get((s.expression_id, src, int(tid)))
            if not names or not all(o in objs for o in names):
                continue
            if not any(objs[o][frames].any() for o in names) and int(track_mask.sum()) > 1:
                track_mask[j] = False
                self.counts["oss_removed"] += 1
