"""rvoskit score: selection by threshold / top-k, OR-merge, grounded candidates, predictions end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter, open_dataset, write_table
from rvoskit.format import rle as rlemod
from rvoskit.format.predictions import read_predictions
from rvoskit.format.trackstore import TrackStore
from rvoskit.selection.checkpoint import save_checkpoint
from rvoskit.selection.config import load_config
from rvoskit.selection.data import labelled_samples, open_stores, video_candidates
from rvoskit.selection.model import TrackSelectionModel
from rvoskit.selection.scoring import merge_masks, predict, select_tracks
from rvoskit.selection.text import default_encoder_dir, encoder_key

torch.set_num_threads(1)

T, H, W = 4, 6, 8


def _box(y0, y1, x0, x1, frames=range(T)):
    m = np.zeros((T, H, W), np.uint8)
    for t in frames:
        m[t, y0:y1, x0:x1] = 1
    return m


# grid tracks: 0 = left block, 1 = right block (absent on frame 3), 2 = overlapping 0
GRID = [_box(0, 3, 0, 3), _box(2, 6, 5, 8, frames=range(3)), _box(1, 4, 1, 5)]
# grounded tracks: 0 was prompted by expression v/0, 1 by expression v/1
GDINO = [_box(4, 6, 0, 2), _box(0, 2, 6, 8)]


def _rows(vid, masks, owners=None):
    rows = []
    for tid, m in enumerate(masks):
        counts = rlemod.encode_batch(m)
        area, bbox = rlemod.area_bbox(counts, H, W)
        for t in range(T):
            rows.append(
                {"video_id": vid, "track_id": tid, "frame_idx": t, "prompt_kind": "grounded" if owners else "grid", "prompt_frame_idx": 0,
                 "expression_id": owners[tid] if owners else None, "obj_id": None, "stability_score": 0.9, "predicted_iou": 0.9,
                 "height": H, "width": W, "rle": counts[t], "area": int(area[t]), "bbox": bbox[t].tolist()}
            )
    return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    names = [f"{t:05d}" for t in range(T)]
    with DatasetWriter(root / "ds", dataset="synthetic", split="valid", frame_root=root / "frames") as w:
        for vid in ("v", "u"):
            w.add_video({"video_id": vid, "split": "valid", "num_frames": T, "height": H, "width": W, "frames": names, "frame_files": names})
            w.add_objects([{"video_id": vid, "obj_id": 1, "anno_id": None, "category": None}])
            w.add_expressions(
                [{"video_id": vid, "exp_id": str(k), "exp_index": k, "text": text, "obj_ids": [1], "anno_ids": None, "annotator": None, "kind": None}
                 for k, text in enumerate(["the cat on the left", "a small dog jumping over the fence"])]
            )
            w.add_masks(vid, [])
    rng = np.random.default_rng(0)
    grid, gdino = TrackStore(root / "grid", create=True), TrackStore(root / "gdino", create=True)
    for vid in ("v", "u"):
        grid.write_video(vid, _rows(vid, GRID), rng.standard_normal((3, T, 256)).astype(np.float32), np.arange(3, dtype=np.int32))
        gdino.write_video(vid, _rows(vid, GDINO, [f"{vid}/0", f"{vid}/1"]), rng.standard_normal((2, T, 256)).astype(np.float32), np.arange(2, dtype=np.int32))
    # an untrained tiny model, saved as a checkpoint of a run
    cfg = load_config(None, ["model.width=32", "model.motion_hidden=32", "model.heads=4", "model.groups=4", "model.groups_layer=4"])
    torch.manual_seed(0)
    model = TrackSelectionModel.from_config(cfg["model"], 384)
    text = {"encoder": str(default_encoder_dir()), "key": encoder_key(default_encoder_dir()), "dim": 384}
    ckpt = save_checkpoint(root / "run" / "checkpoints" / "epoch_001.pt", {"epoch": 1, "config": cfg, "text": text, "model": model.state_dict(), "metrics": []})
    return {"root": root, "ds": root / "ds", "grid": root / "grid", "gdino": root / "gdino", "ckpt": ckpt, "cache": root / "cache"}


def test_select_by_threshold_and_top_k():
    scores = pd.DataFrame(
        {"expression_id": ["a", "a", "a", "b", "b", "c"], "score": [0.9, 0.5, 0.7, 0.2, 0.49, 0.51]}
    )
    assert select_tracks(scores).tolist() == [True, False, True, False, False, True]  # strictly above 0.5
    assert select_tracks(scores, tau=0.6).tolist() == [True, False, True, False, False, False]
    assert select_tracks(scores, top_k=1).tolist() == [True, False, False, False, True, True]
    assert select_tracks(scores, top_k=2).tolist() == [True, False, True, True, True, True]
    with pytest.raises(RvosError):
        select_tracks(scores, top_k=0)


def test_or_merge_and_empty_masks():
    tracks = {"grid": pd.DataFrame(_rows("v", GRID)), "gdino": pd.DataFrame(_rows("v", GDINO, ["v/0", "v/1"]))}
    merged = merge_masks(tracks, [("grid", 0), ("grid", 1), ("gdino", 1)], T, H, W)
    expected = GRID[0] | GRID[1] | GDINO[1]
    assert len(merged) == T
    for t, (counts, area) in enumerate(merged):
        assert np.array_equal(rlemod.decode(counts, H, W), expected[t])
        assert area == expected[t].sum()
    # frame 3: grid track 1 is empty there (its row has area 0) and adds nothing
    assert not GRID[1][3].any() and merged[3][1] == (GRID[0][3] | GDINO[1][3]).sum() < merged[2][1]
    single = merge_masks(tracks, [("grid", 2)], T, H, W)
    assert all(np.array_equal(rlemod.decode(c, H, W), GRID[2][t]) for t, (c, _) in enumerate(single))
    for counts, area in merge_masks(tracks, [], T, H, W):
        assert area == 0 and rlemod.decode(counts, H, W).shape == (H, W) and not rlemod.decode(counts, H, W).any()


def test_grounded_tracks_are_candidates_of_their_own_expression_only(world, tmp_path):
    stores = open_stores({"grid": world["grid"], "gdino": world["gdino"]})
    rows = {k: s.tracks("v") for k, s in stores.items()}
    assert video_candidates(rows, "v/0") == (("grid", 0), ("grid", 1), ("grid", 2), ("gdino", 0))
    assert video_candidates(rows, "v/1") == (("grid", 0), ("grid", 1), ("grid", 2), ("gdino", 1))
    # pseudo-labels cover every (expression, track) pair, as rvoskit pseudolabel writes them
    label_rows = [
        {"expression_id": f"{vid}/{k}", "video_id": vid, "source": src, "track_id": t, "obj_ids": [1], "miou_per_obj": [0.8],
         "miou_max": 0.8, "miou_union": 0.8, "label": src == "gdino" and t == k}
        for vid in ("v", "u") for k in (0, 1) for src, n in (("grid", 3), ("gdino", 2)) for t in range(n)
    ]
    write_table(tmp_path / "labels.parquet", "labels", label_rows)
    samples = labelled_samples(open_dataset(world["ds"]), stores, tmp_path)
    by_id = {s.expression_id: s for s in samples}
    assert by_id["v/1"].candidates == video_candidates(rows, "v/1")
    assert by_id["v/1"].labels.tolist() == [0, 0, 0, 1]
    # a label for a track the store does not have is an error naming the store
    write_table(tmp_path / "bad.parquet", "labels", label_rows + [{**label_rows[0], "track_id": 7}])
    with pytest.raises(RvosError, match="track 7 is labelled but not in the store"):
        labelled_samples(open_dataset(world["ds"]), stores, tmp_path / "bad.parquet")


def _pred_masks(out):
    rows, manifest = read_predictions(out)
    return {eid: rlemod.decode_batch(list(g.sort_values("frame_idx")["rle"]), H, W) for eid, g in rows.groupby("expression_id")}, rows, manifest


def test_predict_threshold_extremes_and_top1(world, tmp_path):
    tracks = {"grid": world["grid"], "gdino": world["gdino"]}
    kw = dict(text_cache=world["cache"])
    # tau = 0: every candidate is selected -> the union of the video's grid tracks and the expression's own grounded track
    predict(world["ckpt"], world["ds"], tracks, tmp_path / "all", tau=0.0, **kw)
    masks, rows, manifest = _pred_masks(tmp_path / "all")
    assert len(rows) == 4 * T and set(rows["frame_idx"]) == set(range(T))
    assert np.array_equal(masks["v/0"], GRID[0] | GRID[1] | GRID[2] | GDINO[0])
    assert np.array_equal(masks["u/1"], GRID[0] | GRID[1] | GRID[2] | GDINO[1])
    assert manifest["meta"]["selection"] == {"tau": 0.0, "top_k": None}
    # tau = 1: nothing is selected -> an empty mask (with a row) on every frame
    predict(world["ckpt"], world["ds"], tracks, tmp_path / "none", tau=1.0, **kw)
    masks, rows, _ = _pred_masks(tmp_path / "none")
    assert len(rows) == 4 * T and (rows["area"] == 0).all() and not any(m.any() for m in masks.values())
    assert rows["score"].isna().all()
    # top-1: the highest-scoring candidate of each expression, as recorded in scores.parquet
    predict(world["ckpt"], world["ds"], tracks, tmp_path / "top1", top_k=1, **kw)
    masks, rows, _ = _pred_masks(tmp_path / "top1")
    scores = pd.read_parquet(tmp_path / "top1" / "scores.parquet")
    assert len(scores) == 4 * 4 and scores.groupby("expression_id")["selected"].sum().eq(1).all()
    np.testing.assert_allclose(scores["score"], 1 / (1 + np.exp(-scores["logit"])))
    for eid, g in scores.groupby("expression_id"):
        best = g.loc[g["score"].idxmax()]
        assert bool(best["selected"])
        source = GRID if best["source"] == "grid" else GDINO
        assert np.array_equal(masks[eid], source[int(best["track_id"])])
        assert rows.loc[rows["expression_id"] == eid, "score"].iloc[0] == pytest.approx(best["score"])
    # the same scores whatever the batch size (batched scoring is padding-invariant)
    predict(world["ckpt"], world["ds"], tracks, tmp_path / "b1", top_k=1, batch_size=1, **kw)
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "b1" / "scores.parquet")["logit"], scores["logit"], atol=1e-5)


def test_score_command_and_errors(world, tmp_path):
    out = tmp_path / "preds"
    args = ["score", str(world["root"] / "run"), "--dataset", str(world["ds"]), "--tracks", f"grid={world['grid']}", "--out", str(out)]
    res = CliRunner().invoke(app, args + ["--text-cache", str(world["cache"]), "--tau", "0.3"])
    assert res.exit_code == 0, res.output
    rows, manifest = read_predictions(out)
    assert len(rows) == 4 * T and manifest["meta"]["tracks"] == {"grid": str(world["grid"].resolve())}
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = CliRunner().invoke(app, ["score", str(tmp_path / "nothing.pt"), "--dataset", str(world["ds"]), "--tracks", str(world["grid"]), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "missing checkpoint" in res.output
    other = tmp_path / "other_encoder"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert", "hidden_size": 384}')
    with pytest.raises(RvosError, match="not the one the model was trained with"):
        predict(world["ckpt"], world["ds"], [str(world["grid"])], tmp_path / "y", text_encoder=other)


def test_video_masks_merge_each_distinct_selection_once(monkeypatch):
    """Expressions that select the same tracks (in any order) share one merge; masks are never decoded."""
    import pycocotools.mask as cocomask

    from rvoskit.selection.scoring import VideoMasks

    calls = []
    real_merge = cocomask.merge
    monkeypatch.setattr(cocomask, "merge", lambda rles, intersect=0: calls.append(len(rles)) or real_merge(rles, intersect=intersect))
    monkeypatch.setattr(cocomask, "decode", lambda *a: pytest.fail("a track mask was decoded to pixels"))
    tracks = {"grid": pd.DataFrame(_rows("v", GRID))}
    vm = VideoMasks(tracks, T, H, W)
    first = vm.merge([("grid", 0), ("grid", 1)])
    assert vm.merge([("grid", 1), ("grid", 0)]) is first
    # frames 0-2 hold both tracks (one merge each); on frame 3 track 1 is empty and track 0 is kept as is
    assert calls == [2, 2, 2]
    assert [a for _, a in first] == [int((GRID[0][t] | GRID[1][t]).sum()) for t in range(T)]


def test_predict_writes_one_row_group_per_video_and_nothing_on_error(world, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from rvoskit.selection import scoring

    tracks = {"grid": world["grid"], "gdino": world["gdino"]}
    predict(world["ckpt"], world["ds"], tracks, tmp_path / "p", top_k=1, text_cache=world["cache"])
    pf = pq.ParquetFile(tmp_path / "p" / "predictions.parquet")
    groups = [set(pf.read_row_group(i, columns=["video_id"]).column(0).to_pylist()) for i in range(pf.num_row_groups)]
    assert groups == [{"u"}, {"v"}]  # dataset order, one video per row group
    assert len(pq.read_table(tmp_path / "p" / "scores.parquet")) == 4 * 4
    # a failure on the second video leaves no output directory behind
    n = {"videos": 0}
    real_init = scoring.VideoMasks.__init__

    def counting_init(self, *a, **k):
        n["videos"] += 1
        if n["videos"] == 2:
            raise RvosError("stop on the second video")
        real_init(self, *a, **k)

    monkeypatch.setattr(scoring.VideoMasks, "__init__", counting_init)
    with pytest.raises(RvosError, match="second video"):
        predict(world["ckpt"], world["ds"], tracks, tmp_path / "q", top_k=1, text_cache=world["cache"])
    assert not (tmp_path / "q").exists() and not list(tmp_path.glob(".q.tmp-*"))
