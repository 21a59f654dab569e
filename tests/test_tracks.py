"""rvoskit tracks: SAM2 Hiera-t (bundled config, random weights, 256 px, 1 thread, denormals flushed)
on a few real frames of the bedroom and judo fixtures, plus the prompt/suppression logic on
constructed masks where the right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter
from rvoskit.format import rle as rlemod
from rvoskit.format.trackstore import TrackStore
from rvoskit.tracks import (
    ModelSpec,
    Prompt,
    TrackOptions,
    box_nms,
    generate_tracks,
    generate_video,
    gt_prompts,
    load_sam2,
    parse_shard,
    part_filter,
    prompt_frames,
    resolve_config,
    select_and_track,
)
from rvoskit.tracks.prompts import mask_iou, mask_ious
from rvoskit.tracks.sam2_model import TrackOutput

DATA = Path(__file__).parent / "data"
T = 5  # frames per test video
VIDEOS = {
    "bedroom": ("sam2_bedroom/JPEGImages/bedroom", 540, 960),
    "judo": ("davis17_judo_frames_cutie/JPEGImages/judo", 480, 854),
}
SPEC = ModelSpec("sam2.1_hiera_t", image_size=256)
# small grid and no quality thresholds: random weights give low IoU/stability scores
OPTS = TrackOptions(prompts=("gt", "grid"), points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, max_tracks=3)
CLI_ARGS = ["--sam2-config", "sam2.1_hiera_t", "--image-size", "256", "--device", "cpu", "--threads", "1", "--prompts", "gt,grid",
            "--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-thresh", "0", "--max-tracks", "3"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _judo_masks() -> dict[int, tuple[int, np.ndarray]]:
    """Two objects of the Cutie demo masks (frame 0: id 1; frame 5, 853 px wide: id 2, padded to 854)."""
    m0 = np.array(Image.open(DATA / "davis17_judo_frames_cutie/demo_masks/judo/00000.png"))
    m5 = np.array(Image.open(DATA / "davis17_judo_frames_cutie/demo_masks/judo/00005.png"))
    m5 = np.pad(m5, ((0, 0), (0, 854 - m5.shape[1])))
    return {1: (0, (m0 == 1).astype(np.uint8)), 2: (4, (m5 == 2).astype(np.uint8))}


def _write_dataset(out: Path, *, with_gt: bool, videos=("bedroom", "judo")) -> Path:
    names = [f"{i:05d}" for i in range(T)]
    with DatasetWriter(out, dataset="test", split="train" if with_gt else "valid", frame_root=DATA) as w:
        for vid in videos:
            sub, h, wd = VIDEOS[vid]
            w.add_video(dict(video_id=vid, split="s", num_frames=T, height=h, width=wd, frames=names,
                             frame_files=[f"{sub}/{n}.jpg" for n in names]))  # fmt: skip
        if "judo" in videos:
            w.add_objects([dict(video_id="judo", obj_id=o, anno_id=None, category=None) for o in (1, 2)])
            w.add_expressions([
                dict(video_id="judo", exp_id="0", exp_index=0, text="The person in white", obj_ids=[1] if with_gt else None),
                dict(video_id="judo", exp_id="1", exp_index=1, text="A man throwing another", obj_ids=[2] if with_gt else None),
            ])  # fmt: skip
        for vid in videos:
            rows = []
            if vid == "judo" and with_gt:
                for obj_id, (t, m) in _judo_masks().items():
                    c = rlemod.encode(m)
                    a, b = rlemod.area_bbox([c], 480, 854)
                    rows.append(dict(video_id="judo", obj_id=obj_id, frame_idx=t, height=480, width=854, rle=c, area=int(a[0]), bbox=b[0].tolist()))
            w.add_masks(vid, rows)
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("ds") / "train", with_gt=True)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    """An uninterrupted run through the CLI."""
    from rvoskit.cli import app

    out = tmp_path_factory.mktemp("ref") / "tracks"
    res = CliRunner().invoke(app, ["tracks", "generate", str(dataset), "--out", str(out), *CLI_ARGS])
    assert res.exit_code == 0, res.output
    assert "RANDOM SAM2 WEIGHTS" in res.output
    return out


def _same_store(a: Path, b: Path, *, exact_tokens: bool = True, videos=tuple(sorted(VIDEOS))) -> None:
    sa, sb = TrackStore(a), TrackStore(b)
    assert sa.done_videos() == list(videos)
    for vid in videos:
        ta, tb = sa.tracks(vid), sb.tracks(vid)
        assert ta.drop(columns=["bbox"]).equals(tb.drop(columns=["bbox"]))
        assert np.array_equal(np.stack(ta["bbox"]), np.stack(tb["bbox"]))
        (pa, ia), (pb, ib) = sa.tokens(vid), sb.tokens(vid)
        assert np.array_equal(ia, ib)
        if exact_tokens:
            assert pa.dtype == pb.dtype and np.array_equal(pa, pb)
        else:
            np.testing.assert_allclose(pa.astype(np.float32), pb.astype(np.float32), rtol=2e-3, atol=2e-3)


# -- end to end on real frames -------------------------------------------------------------------


def test_generate_end_to_end(reference, dataset):
    from rvoskit.format import open_dataset

    ds = open_dataset(dataset)
    store = TrackStore(reference)
    meta = store.meta
    assert meta["sam2"]["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert meta["sam2"]["checkpoint"] is None and meta["sam2"]["image_size"] == 256
    assert meta["options"]["prompt_frames"] == "interval"  # the dataset has ground truth
    run = store.manifest["runs"][-1]
    assert run["videos_processed"] == 2 and run["frames"] == 2 * T and run["seconds_per_frame"] > 0
    gt_objects = ds.object_masks("judo")
    for vid, (_, H, W) in VIDEOS.items():
        rows = store.tracks(vid)
        ptr, ids = store.tokens(vid)
        n = len(ids)
        assert ptr.shape == (n, T, 256) and ptr.dtype == np.float32 and np.isfinite(ptr).all()
        assert list(ids) == list(range(n))
        # every track has a row, a mask and a token on every frame
        assert sorted(rows.groupby("track_id").size().items()) == [(i, T) for i in range(n)]
        assert (rows["height"] == H).all() and (rows["width"] == W).all()
        masks = rlemod.decode_batch(list(rows["rle"]), H, W)
        assert np.array_equal(masks.reshape(len(rows), -1).sum(1), rows["area"].to_numpy())
        kinds = rows.groupby("track_id")["prompt_kind"].first()
        grid = rows[rows["prompt_kind"] == "grid"]
        assert 1 <= grid["track_id"].nunique() <= OPTS.max_tracks
        assert set(grid["prompt_frame_idx"]) <= {0, 4}  # every 4th frame
        info = store.video_info(vid)
        # tracking features once per frame, shared by all batches, plus the image predictor's
        # features of each grid prompt frame (frames 0 and 4)
        assert info["encoder_calls"] == T + 2
        assert info["tracks"]["grid"] == (kinds == "grid").sum()
    # one GT track per object, prompted on its mask; SAM2 outputs the prompt mask on the prompt frame
    rows = store.tracks("judo")
    gt = rows[rows["prompt_kind"] == "gt"]
    assert sorted(gt["obj_id"].unique()) == [1, 2]
    for obj_id, (t, m) in _judo_masks().items():
        r = gt[(gt["obj_id"] == obj_id) & (gt["frame_idx"] == t)].iloc[0]
        assert r["prompt_frame_idx"] == t
        assert mask_iou(r["rle"], rlemod.encode(gt_objects[obj_id][t]), 480, 854) > 0.8
    assert store.tracks("bedroom")["prompt_kind"].eq("grid").all()  # no objects in bedroom


def test_resume_after_interruption_matches_uninterrupted_run(reference, dataset, tmp_path):
    out = tmp_path / "tracks"

    def stop_at_second_video(event, **kw):
        if event == "video_start" and kw["index"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_tracks(dataset, out, model=SPEC, options=OPTS, progress=stop_at_second_video)
    store = TrackStore(out)
    assert store.done_videos() == ["bedroom"] and store.manifest["runs"] == []
    summary = generate_tracks(dataset, out, model=SPEC, options=OPTS)
    assert summary["videos_skipped"] == 1 and summary["videos_processed"] == 1
    _same_store(out, reference)  # deterministic, and a resume gives the uninterrupted result
    # the options that differ are named, and nothing is loaded or written first
    with pytest.raises(RvosError, match=r"other options \(options\.max_tracks: 3 in the store, 2 now\)"):
        generate_tracks(dataset, out, model=SPEC, options=TrackOptions(**{**OPTS.__dict__, "max_tracks": 2}))
    with pytest.raises(RvosError, match=r"other options \(options\.box_nms_thresh: 0\.7 in the store, 0\.5 now; sam2\.random_weights_seed: 0 in the store, 3 now\)"):
        generate_tracks(dataset, out, model=ModelSpec("sam2.1_hiera_t", image_size=256, seed=3), options=TrackOptions(**{**OPTS.__dict__, "box_nms_thresh": 0.5}))


def test_progress_from_the_first_second(dataset, tmp_path):
    """The first event comes before SAM2 is built; then, per video, each prompt frame as it is
    prompted, and each batch's prompt frame, tracks so far and every tracked frame."""
    from rvoskit.tracks import sam2_model

    spec = ModelSpec("sam2.1_hiera_t", image_size=256, seed=7)  # not built yet in this process
    events = []

    def record(event, **kw):
        events.append((event, kw, spec in sam2_model._MODELS))
        if event == "frame":
            raise KeyboardInterrupt  # enough seen

    with pytest.raises(KeyboardInterrupt):
        generate_tracks(dataset, tmp_path / "tracks", model=spec, options=OPTS, progress=record)
    names = [e for e, _, _ in events]
    assert names[0] == "loading" and events[0][2] is False  # before the model exists
    assert events[0][1]["videos"] == 2 and events[0][1]["config"] == "sam2.1_hiera_t"
    assert names[1:4] == ["run", "video_start", "prompts"]  # bedroom: 0 GT prompts (no objects)
    prompting = [kw for e, kw, _ in events if e == "prompting"]
    assert [(p["video_id"], p["kind"], p["frame_idx"], p["index"], p["of"]) for p in prompting] == [("bedroom", "grid", 0, 0, 2), ("bedroom", "grid", 4, 1, 2)]
    start = next(kw for e, kw, _ in events if e == "batch_start")
    assert start["kind"] == "grid" and start["tracked"] == 0 and start["prompts"] >= 1 and start["prompt_frame"] in (0, 4)
    frame = events[-1][1]
    assert names[-1] == "frame" and frame["frame_idx"] == start["prompt_frame"] and frame["video_id"] == "bedroom"


def test_outputs_get_umask_permissions(reference, tmp_path):
    """Every store file (safetensors included, which its writer creates 0600) gets 0666 & ~umask."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    for p in [*(reference / "tokens").iterdir(), *(reference / "tracks").iterdir(), *(reference / "done").iterdir()]:
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p
    for umask, want in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(umask)
        try:
            store = TrackStore(tmp_path / f"s{umask:o}", create=True, meta={})
            store.write_video("v", [], np.zeros((0, 2, 256), np.float32), np.zeros(0, np.int32))
        finally:
            os.umask(old)
        for sub, ext in (("tokens", ".safetensors"), ("tracks", ".parquet"), ("done", ".json")):
            assert (store.path / sub / f"v{ext}").stat().st_mode & 0o777 == want, (sub, oct(umask))


def test_feature_cache_is_transparent(reference, dataset):
    """A one-frame feature cache (SAM2's own behaviour) gives the same tracks, with more encoder calls."""
    from rvoskit.format import open_dataset

    opts = TrackOptions(**{**OPTS.__dict__, "feature_cache_mb": 1e-6})
    res = generate_video(open_dataset(dataset), "bedroom", load_sam2(SPEC), opts, frame_mode="interval")
    ptr, _ = TrackStore(reference).tokens("bedroom")
    assert np.array_equal(res.obj_ptr, ptr)
    assert [r["rle"] for r in res.rows] == list(TrackStore(reference).tracks("bedroom")["rle"])
    assert res.info["encoder_calls"] > T


def test_ray_executor(reference, dataset, tmp_path):
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        try:
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
            started = True
        except Exception as exc:  # pragma: no cover - environment without a working Ray
            pytest.skip(f"a local Ray instance could not start: {exc}")
    try:
        out = tmp_path / "tracks"
        opts = TrackOptions(**{**OPTS.__dict__, "token_dtype": "float16"})
        # shard 1/2 of the sorted videos (bedroom, judo) is judo
        summary = generate_tracks(dataset, out, model=SPEC, options=opts, executor="ray", gpus_per_task=0, threads=1, shard=(1, 2))
        assert summary["videos_processed"] == 1 and summary["executor"] == "ray" and summary["shard"] == "1/2"
        assert TrackStore(out).tokens("judo")[0].dtype == np.float16
        # another process, the same seeded weights: the same tracks, tokens equal up to float16 rounding
        _same_store(out, reference, exact_tokens=False, videos=("judo",))
    finally:
        if started:
            ray.shutdown()


@pytest.fixture(scope="module")
def tiny_grounding_dino(tmp_path_factory) -> Path:
    """A random-weight Grounding DINO in transformers' local-directory layout (tiny config, own vocab)."""
    try:
        from transformers import (
            BertConfig,
            BertTokenizer,
            GroundingDinoConfig,
            GroundingDinoForObjectDetection,
            GroundingDinoProcessor,
            SwinConfig,
        )
        from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
            GroundingDinoImageProcessorPil,
        )
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"transformers' Grounding DINO does not import without torchvision here: {exc}")
    d = tmp_path_factory.mktemp("gdino")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "a", "person", "in", "white", "man", "throwing", "another"]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    cfg = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=32,
        encoder_n_points=2, decoder_n_points=2,
    )  # fmt: skip
    GroundingDinoForObjectDetection(cfg).save_pretrained(d)
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 224}),
        tokenizer=BertTokenizer(str(d / "vocab.txt")),
    ).save_pretrained(d)
    return d


def test_grounded_prompts_per_expression(tiny_grounding_dino, tmp_path):
    ds = _write_dataset(tmp_path / "valid", with_gt=False, videos=("judo",))
    opts = TrackOptions(prompts=("grid", "grounded"), grounding_model=str(tiny_grounding_dino), points_per_side=2,
                        pred_iou_thresh=0.0, stability_score_thresh=0.0, max_tracks=1,
                        grounded_stability_thresh=0.0, max_grounded_tracks=2, batch_size=2)  # fmt: skip
    generate_tracks(ds, tmp_path / "tracks", model=SPEC, options=opts)
    store = TrackStore(tmp_path / "tracks")
    assert store.meta["options"]["prompt_frames"] == "eval"  # no ground truth: {0, T//2}
    rows = store.tracks("judo")
    per_track = rows.groupby("track_id").first()
    grid, grounded = per_track[per_track["prompt_kind"] == "grid"], per_track[per_track["prompt_kind"] == "grounded"]
    assert len(grid) == 1 and grid["expression_id"].isna().all() and set(grid["prompt_frame_idx"]) <= {0, 2}
    assert set(grounded["expression_id"]) <= {"judo/0", "judo/1"} and len(grounded) >= 1
    assert grounded.groupby("expression_id").size().max() <= 2
    assert set(grounded["prompt_frame_idx"]) <= {0, 4}  # every 4th frame
    assert grounded["predicted_iou"].notna().all() and grounded["stability_score"].notna().all()
    assert store.tokens("judo")[0].shape == (len(per_track), T, 256)


# -- logic on constructed masks ------------------------------------------------------------------


def test_prompt_frames():
    assert prompt_frames(10, "interval", 4) == [0, 4, 8]
    assert prompt_frames(9, "eval") == [0, 4]  # SOLA's frames[::9//2] would also give 8
    assert prompt_frames(8, "eval") == [0, 4]
    assert prompt_frames(1, "eval") == [0]
    assert prompt_frames(3, "interval", 1) == [0, 1, 2]
    with pytest.raises(ValueError):
        prompt_frames(5, "interval", 0)


def _rect(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_part_filter_drops_masks_inside_larger_ones():
    H, W = 40, 40
    big = _rect(H, W, 0, 20, 0, 20)  # 400
    inside = _rect(H, W, 2, 10, 2, 10)  # 64, fully inside big -> part
    near_dup = _rect(H, W, 0, 19, 0, 20)  # 380, inside big -> part
    half = _rect(H, W, 10, 30, 10, 20)  # 200, half inside big (0.5) -> kept
    mostly = _rect(H, W, 14, 24, 0, 10)  # 100, 60 % inside big -> kept
    apart = _rect(H, W, 30, 40, 30, 40)  # 100, disjoint -> kept
    in_half = _rect(H, W, 22, 28, 12, 18)  # 36, inside 'half' only -> part of a kept mask
    masks = [inside, half, big, apart, near_dup, mostly, in_half]
    rles = [rlemod.encode(m) for m in masks]
    areas = [int(m.sum()) for m in masks]
    keep = part_filter(rles, areas, H, W, 0.7)
    assert keep.tolist() == [False, True, True, True, False, True, False]


def test_box_nms_matches_torchvision_semantics():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10], [1, 0, 11, 10], [5, 5, 5, 9], [5, 5, 5, 9]], float)
    scores = np.array([0.5, 0.9, 0.3, 0.5, 0.4, 0.8, 0.1])
    # visit 1 (0.9): keep; 5 (0.8, zero area, IoU 0 with 1): keep; 0 (IoU 81/119 = 0.68 with 1): keep;
    # 3 (tie with 0, later index; IoU 1 with 0): suppressed; 4 (IoU 90/110 = 0.82 with 1): suppressed;
    # 2: keep; 6 (same degenerate box as 5: IoU 0/0 never suppresses): keep
    assert box_nms(boxes, scores, 0.7).tolist() == [1, 5, 0, 2, 6]
    assert box_nms(np.zeros((0, 4)), np.zeros(0), 0.7).tolist() == []


def _prompt(frame, mask, **kw) -> Prompt:
    return Prompt(kind="grid", frame_idx=frame, rle=rlemod.encode(mask), area=int(mask.sum()), **kw)


def test_select_and_track_suppression_batching_and_cap():
    H, W, n_frames = 20, 20, 3
    A = _rect(H, W, 0, 10, 0, 10)  # 100
    A2 = _rect(H, W, 0, 10, 0, 9)  # 90, IoU 0.9 with A
    B = _rect(H, W, 10, 20, 10, 18)  # 80
    C = _rect(H, W, 0, 8, 12, 20)  # 64
    D = _rect(H, W, 12, 20, 0, 7)  # 56
    E = _rect(H, W, 0, 7, 12, 20)  # 56, IoU 0.875 with C
    # largest first; frames: A f0, A2 f1, B f0, C f1, D f0, E f2
    prompts = [_prompt(0, A), _prompt(1, A2), _prompt(0, B), _prompt(1, C), _prompt(0, D), _prompt(2, E)]
    calls = []

    def track(batch):
        # a "tracker" whose track is the prompt mask on every frame
        calls.append([(p.frame_idx, p.area) for p in batch])
        return [TrackOutput(rles=[p.rle] * n_frames, obj_ptr=np.zeros((n_frames, 256), np.float32)) for p in batch]

    out, st = select_and_track(prompts, track, height=H, width=W, batch_size=2, suppress_iou=0.7, max_tracks=10)
    # batch 1 = A, B (frame 0; A2 on frame 1 is passed over); A's track suppresses A2 (IoU 0.9 on frame 1).
    # batch 2 = C (the first pending prompt, frame 1, the only one left there); C's track suppresses
    # E (IoU 0.875 on frame 2). batch 3 = D.
    assert calls == [[(0, 100), (0, 80)], [(1, 64)], [(0, 56)]]
    assert [p.area for p, _ in out] == [100, 80, 64, 56]
    assert (st.tracked, st.suppressed, st.not_tracked, st.batches) == (4, 2, 0, 3)
    calls.clear()
    out, st = select_and_track(prompts, track, height=H, width=W, batch_size=4, suppress_iou=0.7, max_tracks=2)
    assert calls == [[(0, 100), (0, 80)]] and len(out) == 2  # the cap ends the first batch early
    calls.clear()
    out, st = select_and_track(prompts, track, height=H, width=W, batch_size=4, suppress_iou=None, max_tracks=None)
    assert len(out) == 6 and st.suppressed == 0  # GT mode: everything tracked


def test_gt_prompts_use_each_objects_largest_mask():
    import pandas as pd

    H, W = 8, 8
    sizes = {(3, 0): 0, (3, 1): 4, (3, 2): 9, (3, 3): 9, (5, 2): 0, (7, 1): 1}  # (obj_id, frame) -> area
    rows = []
    for (obj_id, t), area in sizes.items():
        m = np.zeros((H, W), np.uint8)
        m.flat[:area] = 1
        rows.append({"obj_id": obj_id, "frame_idx": t, "rle": rlemod.encode(m), "area": area})
    prompts = gt_prompts(pd.DataFrame(rows[::-1]))  # row order does not matter
    assert [(p.obj_id, p.frame_idx, p.area) for p in prompts] == [(3, 2, 9), (7, 1, 1)]  # ties: earliest; 5 is empty
    assert rlemod.decode(prompts[0].rle, H, W).sum() == 9 and prompts[0].kind == "gt"


def test_mask_iou_both_empty_is_one():
    z = rlemod.encode(np.zeros((5, 5), np.uint8))
    assert mask_iou(z, z, 5, 5) == 1.0
    assert mask_iou(z, rlemod.encode(_rect(5, 5, 0, 2, 0, 2)), 5, 5) == 0.0
    a, b = rlemod.encode(_rect(5, 5, 0, 2, 0, 2)), rlemod.encode(_rect(5, 5, 0, 2, 1, 3))
    # one call for many: the same values, the both-empty rule only where both are empty
    assert mask_ious(z, [z, a, z], 5, 5).tolist() == [1.0, 0.0, 1.0]
    assert mask_ious(a, [z, a, b], 5, 5).tolist() == [0.0, 1.0, 2 / 6]
    assert mask_ious(a, [], 5, 5).shape == (0,)


def test_amg_post_processing_equals_sam2s_functions():
    """Stability scores, masks and boxes of the grid prompting equal sam2.utils.amg's on the CPU,
    also for empty and full masks and logits exactly at the thresholds."""
    import torch.nn.functional as F
    from sam2.utils.amg import batched_mask_to_box, calculate_stability_score

    from rvoskit.tracks.prompts import mask_boxes, stability_score
    from rvoskit.tracks.sam2_model import binarize

    g = torch.Generator().manual_seed(0)
    logits = F.interpolate(torch.randn(10, 1, 9, 13, generator=g) * 4, (37, 53), mode="bilinear", align_corners=False)[:, 0]
    edge = torch.full((6, 37, 53), -5.0)
    edge[1] = 5.0  # full mask
    edge[2, 0, 0] = edge[2, 36, 52] = 3.0  # two corner pixels
    edge[3, 10:20, 5:7] = 1.0  # exactly at the upper threshold: inside the mask, not in the intersection
    edge[4, 3:5, 40:50] = -1.0  # exactly at the lower threshold: not in the union
    edge[5, 7, 9] = 0.0  # exactly at the mask threshold: background
    logits = torch.cat([logits, edge])
    for offset in (1.0, 0.1):
        torch.testing.assert_close(stability_score(logits, offset), calculate_stability_score(logits, 0.0, offset), rtol=0, atol=0, equal_nan=True)
    masks = binarize(logits)
    assert np.array_equal(masks, (logits > 0).numpy()) and masks.transpose(0, 2, 1).flags.c_contiguous
    assert np.array_equal(mask_boxes(masks), batched_mask_to_box(torch.from_numpy(np.ascontiguousarray(masks))).numpy())
    assert rlemod.encode_batch(masks) == rlemod.encode_batch(np.ascontiguousarray(masks))


def test_config_names_and_shards():
    assert resolve_config("sam2.1_hiera_t") == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert resolve_config("sam2_hiera_large") == "configs/sam2/sam2_hiera_l.yaml"
    assert resolve_config("configs/sam2.1/sam2.1_hiera_b+.yaml") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    assert resolve_config("sam2.1-hiera-base-plus") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    with pytest.raises(RvosError, match="unknown SAM2 config"):
        resolve_config("sam3_hiera_t")
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(RvosError):
            parse_shard(bad)


def test_cli_errors_are_one_line(dataset, tmp_path):
    from rvoskit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["tracks", "generate", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert res.exit_code == 2 and "missing: " in res.output and "dataset" in res.output  # names the folder
    res = runner.invoke(app, ["tracks", "generate", str(dataset), "--out", str(tmp_path / "o"), "--sam2-config", "sam2_hiera_xl", "--device", "cpu"])
    assert res.exit_code == 2 and "unknown SAM2 config" in res.output
    res = runner.invoke(app, ["tracks", "generate", str(dataset), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "no.pt"), "--sam2-config", "sam2.1_hiera_t", "--device", "cpu"])
    assert res.exit_code == 2 and "checkpoint not found" in res.output
    res = runner.invoke(app, ["tracks", "generate", str(dataset), "--out", str(tmp_path / "o"), "--prompts", "grounded", "--device", "cpu"])
    assert res.exit_code == 2 and "--grounding-model" in res.output
    assert not (tmp_path / "o").exists()  # nothing is written before the inputs are checked
