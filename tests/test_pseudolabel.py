"""rvoskit pseudolabel: IoU arithmetic on constructed masks, resizing, fast path vs a naive loop,
outputs, errors and resume. Data is built with DatasetWriter and TrackStore.write_video."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rvoskit import labels as L
from rvoskit.cli import app
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter, read_table, rle
from rvoskit.format.trackstore import TrackStore


# -- builders -------------------------------------------------------------------------------------
def _mask_rows(video_id: str, key: str, ident: int, masks: dict[int, np.ndarray]) -> list[dict]:
    """Rows for the frames present in ``masks`` ({frame_idx: (H, W)}); absent frames get no row."""
    rows = []
    for f, m in sorted(masks.items()):
        counts = rle.encode(m)
        area, bbox = rle.area_bbox([counts], *m.shape)
        rows.append({"video_id": video_id, key: ident, "frame_idx": f, "height": m.shape[0], "width": m.shape[1],
                     "rle": counts, "area": int(area[0]), "bbox": bbox[0].tolist()})
    return rows


def make_dataset(path: Path, videos: dict, split: str = "train") -> Path:
    """videos = {video_id: {"size": (H, W), "T": T, "objects": {obj_id: {frame: mask}},
    "expressions": [obj_ids or None, ...]}}."""
    with DatasetWriter(path, dataset="mevis", split=split, frame_root=path.parent / "frames") as w:
        for vid in sorted(videos):
            v = videos[vid]
            H, W = v["size"]
            T = v["T"]
            frames = [f"{i:05d}" for i in range(T)]
            w.add_video({"video_id": vid, "split": split, "num_frames": T, "height": H, "width": W,
                         "frames": frames, "frame_files": [f"{vid}/{f}.jpg" for f in frames]})
            w.add_objects([{"video_id": vid, "obj_id": o, "anno_id": None, "category": None} for o in sorted(v["objects"])])
            w.add_expressions([{"video_id": vid, "exp_id": str(i), "exp_index": i, "text": f"expression {i}",
                                "obj_ids": ol, "anno_ids": None, "annotator": None, "kind": None}
                               for i, ol in enumerate(v["expressions"])])
            rows = []
            for o, ms in sorted(v["objects"].items()):
                rows += _mask_rows(vid, "obj_id", o, ms)
            w.add_masks(vid, rows)
    return path


def make_store(path: Path, videos: dict[str, np.ndarray]) -> Path:
    """videos = {video_id: tracks uint8 (N, T, H, W)}; every track has a row on every frame."""
    store = TrackStore(path, create=True, meta={"test": True})
    for vid, tr in videos.items():
        N, T = tr.shape[:2]
        rows = []
        for i in range(N):
            for r in _mask_rows(vid, "track_id", i, {t: tr[i, t] for t in range(T)}):
                r.update(prompt_kind="grid", prompt_frame_idx=0, expression_id=None, obj_id=None,
                         stability_score=0.9, predicted_iou=0.9)
                rows.append(r)
        store.write_video(vid, rows, np.zeros((N, T, 256), np.float32), np.arange(N, dtype=np.int32))
    return path


def rect(H, W, y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def row(table: pd.DataFrame, exp: str, track: int, source: str | None = None) -> pd.Series:
    t = table[(table["expression_id"] == exp) & (table["track_id"] == track)]
    if source is not None:
        t = t[t["source"] == source]
    assert len(t) == 1
    return t.iloc[0]


# -- known answers ------------------------------------------------------------------------------------
H, W, T = 8, 10, 4
A = rect(H, W, 0, 4, 0, 4)      # 16 px
B = rect(H, W, 4, 8, 6, 10)     # 16 px, disjoint from A
HALF_A = rect(H, W, 0, 4, 0, 2)  # 8 px inside A -> IoU 0.5
Z = np.zeros((H, W), np.uint8)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("known")
    # object 1 = A on frames 0-2, absent on frame 3; object 2 = B on frames 0-1, annotated empty on 2, absent on 3
    objects = {1: {0: A, 1: A, 2: A}, 2: {0: B, 1: B, 2: Z}}
    ds = make_dataset(tmp / "ds", {"v1": {"size": (H, W), "T": T, "objects": objects,
                                          "expressions": [[1], [1, 2], [], [2]]}})
    tracks = np.stack([
        np.stack([A, A, A, Z]),            # 0: object 1 exactly, empty where it is absent
        np.stack([Z, Z, Z, Z]),            # 1: empty throughout
        np.stack([HALF_A, HALF_A, A, Z]),  # 2: half of A on two frames
        np.stack([A | B, A | B, A, Z]),    # 3: the union of objects 1 and 2
    ])
    store = make_store(tmp / "grid", {"v1": tracks})
    L.pseudolabel([store], ds, tmp / "labels", resolution="native")
    return tmp, ds, store, pd.read_parquet(tmp / "labels" / "labels.parquet")


def test_iou_known_answers(known):
    *_, t = known
    # exact track, absent frame 3 with an empty track counts 1
    assert row(t, "v1/0", 0)["miou_per_obj"].tolist() == [1.0]
    # empty track: IoU 1 only on frame 3 (object absent) -> 1/4
    assert row(t, "v1/0", 1)["miou_max"] == pytest.approx(0.25)
    # half overlap on two frames, exact on one, both empty on one: (0.5 + 0.5 + 1 + 1) / 4
    assert row(t, "v1/0", 2)["miou_max"] == pytest.approx(0.75)
    # union track vs object 1: frames 0,1 IoU 16/32, frames 2,3 -> 1
    assert row(t, "v1/0", 3)["miou_max"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    # object 2 is empty on frame 2 (annotated) and absent on frame 3: same treatment
    r = row(t, "v1/3", 1)
    assert r["miou_per_obj"].tolist() == [pytest.approx(0.5)]  # empty track: frames 2,3 both empty


def test_multi_object_max_vs_union(known):
    _, _, _, t = known
    exact_a = row(t, "v1/1", 0)
    # per object: vs 1 -> 1; vs 2 -> frames 0,1: 0, frame 2: track A vs empty = 0, frame 3: both empty = 1
    assert exact_a["obj_ids"].tolist() == [1, 2]
    assert exact_a["miou_per_obj"].tolist() == pytest.approx([1.0, 0.25])
    assert exact_a["miou_max"] == pytest.approx(1.0)
    # vs the union: frames 0,1: 16/32, frames 2,3: 1
    assert exact_a["miou_union"] == pytest.approx(0.75)
    union_track = row(t, "v1/1", 3)
    assert union_track["miou_union"] == pytest.approx(1.0)
    assert union_track["miou_max"] == pytest.approx(0.75)  # vs object 1: (0.5, 0.5, 1, 1)
    # labels follow the max rule at 0.7
    assert bool(exact_a["label"]) and bool(union_track["label"])
    assert not bool(row(t, "v1/1", 1)["label"])
    # single-object expressions: max == union
    single = t[t["expression_id"].isin(["v1/0", "v1/3"])]
    assert np.allclose(single["miou_max"], single["miou_union"])


def test_no_target_expression(known, tmp_path):
    tmp, ds, store, t = known
    nt = t[t["expression_id"] == "v1/2"].set_index("track_id")
    assert all(len(x) == 0 for x in nt["miou_per_obj"])
    assert nt["miou_max"].isna().all()
    assert not nt["label"].any()
    # union target = the empty mask: fraction of frames where the track is empty
    assert nt["miou_union"].tolist() == pytest.approx([0.25, 1.0, 0.25, 0.25])
    # under --target union the always-empty track is the positive of the no-target expression
    L.pseudolabel([store], ds, tmp_path / "u", resolution="native", target="union")
    u = pd.read_parquet(tmp_path / "u" / "labels.parquet")
    assert u.loc[u["expression_id"] == "v1/2", "label"].tolist() == [False, True, False, False]
    # half of A on two frames: max rule positive (0.75 vs object 1), union rule negative (0.25, 0.25, 1, 1)
    assert bool(row(t, "v1/1", 2)["label"]) and not bool(row(u, "v1/1", 2)["label"])
    assert row(u, "v1/1", 2)["miou_union"] == pytest.approx(0.625)
    assert bool(row(u, "v1/1", 3)["label"])


def test_outputs_and_summary(known):
    tmp, ds, store, t = known
    out = tmp / "labels"
    df, meta = L.read_labels(out)
    assert list(df.columns) == [c.name for c in read_table(out / "labels.parquet", "labels").schema]
    assert len(df) == 4 * 4 and set(df["source"]) == {"grid"}
    assert list(df["expression_id"]) == sorted(df["expression_id"])
    assert meta["threshold"] == 0.7 and meta["target"] == "max" and meta["resolution"] == "native"
    s = meta["summary"]
    # positives (max > 0.7): v1/0 and v1/1 tracks 0 (1.0), 2 (0.75), 3 (0.75); v1/2 none; v1/3 none (best 0.5)
    assert s["positives"] == int(df["label"].sum()) == 6
    assert s["positives_per_expression"]["histogram"] == {"0": 2, "3": 2}
    assert s["expressions_without_positive"] == 2 and s["expressions_without_positive_no_target"] == 1
    assert (out / "miou_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- resizing -----------------------------------------------------------------------------------------
def test_target_size_orientation():
    sola = L.parse_resolution("540x960")
    assert sola == L.parse_resolution("960x540") == (540, 960)
    assert L.target_size(720, 1280, sola) == (540, 960)
    assert L.target_size(1280, 720, sola) == (960, 540)
    assert L.target_size(600, 600, sola) == (960, 540)  # seg_utils.reshape_masklet sends squares to portrait
    assert L.target_size(333, 500, None) == (333, 500)
    assert L.parse_resolution("native") is None
    with pytest.raises(RvosError):
        L.parse_resolution("540")


def test_resize_known_answers():
    # exact x2 upscale: bilinear with half-pixel centres then > 0.5 doubles every pixel
    m = (np.random.default_rng(0).random((6, 9)) < 0.5).astype(np.uint8)
    (up,) = L.resize_masks([rle.encode(m)], 6, 9, (12, 18))
    assert np.array_equal(rle.decode(up, 12, 18), np.kron(m, np.ones((2, 2), np.uint8)))
    # exact /2 downscale: mean of each 2x2 block > 0.5, so 3 or 4 pixels of 4; a 1-px line vanishes
    big = np.zeros((8, 12), np.uint8)
    big[0:2, 0:2] = 1           # full block -> kept
    big[2:4, 2:4] = [[1, 1], [1, 0]]  # 3 of 4 -> kept
    big[4:6, 4:6] = [[1, 0], [1, 0]]  # 2 of 4 -> 0.5, not > 0.5 -> dropped
    big[:, 11] = 1              # 1-px column -> dropped
    (down,) = L.resize_masks([rle.encode(big)], 8, 12, (4, 6))
    expect = np.zeros((4, 6), np.uint8)
    expect[0, 0] = expect[1, 1] = 1
    assert np.array_equal(rle.decode(down, 4, 6), expect)
    # empty in, empty out; a mask that vanishes becomes None too
    line = np.zeros((8, 12), np.uint8)
    line[3, :] = 1
    assert L.resize_masks([None, rle.encode(line)], 8, 12, (4, 6)) == [None, None]


def test_resize_matches_sola_torch():
    """SOLA resizes with torch bilinear (align_corners=False) > 0.5; at exact scale factors our
    OpenCV resize gives the same pixels (at other factors ties at 0.5 may differ, see docs)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    for (h, w), size in [((270, 480), (540, 960)), ((1080, 1920), (540, 960)), ((720, 405), (960, 540))]:
        ms = np.zeros((4, h, w), np.uint8)
        for m in ms:
            pts = np.stack([rng.uniform(0, w, 7), rng.uniform(0, h, 7)], 1).astype(np.int32)
            cv2.fillPoly(m, [cv2.convexHull(pts)], 1)
        ms[3] = rng.random((h, w)) < 0.5
        ours = L.resize_masks(rle.encode_batch(ms), h, w, size)
        ref = torch.nn.functional.interpolate(torch.from_numpy(ms).float()[None], size=size, mode="bilinear") > 0.5
        ref = ref[0].numpy().astype(np.uint8)
        for o, r in zip(ours, ref):
            assert np.array_equal(rle.decode(o, *size), r)


def test_labels_at_resolution(tmp_path):
    # 8x12 video compared at 4x6: the track's extra 1-px column vanishes, so native IoU < 1 but resized = 1
    obj = np.zeros((8, 12), np.uint8)
    obj[0:4, 0:4] = 1
    trk = obj.copy()
    trk[:, 11] = 1
    ds = make_dataset(tmp_path / "ds", {"v": {"size": (8, 12), "T": 2, "objects": {5: {0: obj, 1: obj}}, "expressions": [[5]]},
                                        # portrait video: compared at 6x4
                                        "p": {"size": (12, 8), "T": 1, "objects": {5: {0: obj.T.copy()}}, "expressions": [[5]]}})
    store = make_store(tmp_path / "s", {"v": np.stack([np.stack([trk, trk])]), "p": trk.T.copy()[None, None]})
    L.pseudolabel([store], ds, tmp_path / "nat", resolution="native")
    L.pseudolabel([store], ds, tmp_path / "res", resolution="4x6")
    nat = pd.read_parquet(tmp_path / "nat" / "labels.parquet").set_index("expression_id")
    res = pd.read_parquet(tmp_path / "res" / "labels.parquet").set_index("expression_id")
    assert nat.loc["v/0", "miou_max"] == pytest.approx(16 / 24)
    assert nat.loc["p/0", "miou_max"] == pytest.approx(16 / 24)
    assert res.loc["v/0", "miou_max"] == 1.0 and res.loc["p/0", "miou_max"] == 1.0
    assert json.loads((tmp_path / "res" / "labels.json").read_text())["resolution"] == "4x6"


# -- fast path vs a naive loop --------------------------------------------------------------------------
def _naive(ds_videos, store_videos, resolution):
    """Decode every (track, object) pair per frame, resize each with cv2 in C order, IoU in numpy."""
    out = {}
    for vid, v in ds_videos.items():
        Hv, Wv = v["size"]
        size = L.target_size(Hv, Wv, L.parse_resolution(resolution))

        def prep(m):
            if size == m.shape:
                return m.astype(bool)
            return cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.5

        def gt(ol, t):
            m = np.zeros((Hv, Wv), np.uint8)
            for o in ol:
                if t in v["objects"][o]:
                    m |= rle.decode(rle.encode(v["objects"][o][t]), Hv, Wv)
            return prep(m)

        def iou(a, b):
            u = (a | b).sum()
            return 1.0 if u == 0 else (a & b).sum() / u

        for e, ol in enumerate(v["expressions"]):
            for i, tr in enumerate(store_videos[vid]):
                per = [np.mean([iou(prep(tr[t]), gt([o], t)) for t in range(v["T"])]) for o in ol]
                uni = np.mean([iou(prep(tr[t]), gt(ol, t)) for t in range(v["T"])])
                out[(f"{vid}/{e}", i)] = (per, uni)
    return out


def _random_blobs(rng, n, h, w):
    ms = np.zeros((n, h, w), np.uint8)
    for m in ms:
        for _ in range(rng.integers(0, 3)):
            pts = np.stack([rng.uniform(0, w, 5), rng.uniform(0, h, 5)], 1).astype(np.int32)
            cv2.fillPoly(m, [cv2.convexHull(pts)], 1)
    return ms


@pytest.mark.parametrize("resolution", ["native", "36x64"])
def test_fast_path_matches_naive_loop(tmp_path, resolution):
    rng = np.random.default_rng(7)
    ds_videos, store_videos = {}, {}
    for vid, (h, w, t) in {"a": (30, 50, 6), "b": (45, 25, 5)}.items():
        objs = {}
        for o in (1, 2, 3):
            ms = _random_blobs(rng, t, h, w)
            objs[o] = {f: ms[f] for f in range(t) if rng.random() < 0.8}  # some frames absent
        ds_videos[vid] = {"size": (h, w), "T": t, "objects": objs, "expressions": [[1], [2, 3], [], [1, 2, 3], [3]]}
        tr = _random_blobs(rng, 7 * t, h, w).reshape(7, t, h, w)
        tr[0] = [objs[1].get(f, np.zeros((h, w), np.uint8)) for f in range(t)]  # one near-perfect track
        store_videos[vid] = tr
    ds = make_dataset(tmp_path / "ds", ds_videos)
    store = make_store(tmp_path / "s", store_videos)
    L.pseudolabel([store], ds, tmp_path / "out", resolution=resolution)
    fast = pd.read_parquet(tmp_path / "out" / "labels.parquet")
    ref = _naive(ds_videos, store_videos, resolution)
    assert len(fast) == len(ref)
    for r in fast.itertuples():
        per, uni = ref[(r.expression_id, r.track_id)]
        assert np.allclose(r.miou_per_obj, per, atol=1e-12)
        assert r.miou_union == pytest.approx(uni, abs=1e-12)
        assert (math.isnan(r.miou_max) and not per) or r.miou_max == pytest.approx(max(per), abs=1e-12)
    assert fast["label"].any()


# -- several stores, missing videos, workers, CLI -----------------------------------------------------
def test_cli_two_named_stores_missing_video_and_workers(known, tmp_path):
    _, _, grid, t = known
    gt_tracks = np.stack([np.stack([A, A, A, Z]), np.stack([B, B, Z, Z])])
    # v2 only in the gt store, v3 in neither: a warning and a count, not a crash
    gt = make_store(tmp_path / "gt_store", {"v1": gt_tracks, "v2": np.stack([np.stack([A, Z])])})
    ds2 = make_dataset(tmp_path / "ds2", {
        "v1": {"size": (H, W), "T": T, "objects": {1: {0: A, 1: A, 2: A}, 2: {0: B, 1: B, 2: Z}}, "expressions": [[1], [1, 2], [], [2]]},
        "v2": {"size": (H, W), "T": 2, "objects": {1: {0: A}}, "expressions": [[1]]},
        "v3": {"size": (H, W), "T": 2, "objects": {1: {0: A}}, "expressions": [[1], [1]]},
    })
    res = CliRunner().invoke(app, ["pseudolabel", str(ds2), "--tracks", f"gt={gt}", "--tracks", str(grid), "--out", str(tmp_path / "lab"),
                                   "--resolution", "native", "-j", "2"])
    assert res.exit_code == 0, res.output
    assert "'grid' has no tracks for 2 of 3 videos" in res.output and "'gt' has no tracks for 1 of 3" in res.output
    df, meta = L.read_labels(tmp_path / "lab")
    assert set(df["source"]) == {"gt", "grid"}
    assert len(df) == 4 * (4 + 2) + 1
    # the grid rows equal the single-store, single-process run
    g = df[df["source"] == "grid"].reset_index(drop=True)
    pd.testing.assert_frame_equal(g, t, check_like=True)
    assert row(df, "v1/3", 1, "gt")["miou_max"] == 1.0
    assert row(df, "v2/0", 0, "gt")["miou_max"] == 1.0  # A on frame 0, absent and empty on frame 1
    s = meta["summary"]
    assert s["expressions_without_tracks"] == 2 and s["expressions_without_positive"] == 1 + 2  # v1/2 (no target), v3
    assert s["sources"]["grid"]["missing_videos"] == 2 and s["sources"]["gt"]["missing_video_ids"] == ["v3"]
    assert s["sources"]["gt"]["expressions_with_positive"] == 4  # v1/0, v1/1, v1/3, v2/0
    assert meta["sources"]["gt"]["path"] == str(gt.resolve())


def test_errors(known, tmp_path):
    tmp, ds, grid, _ = known
    runner = CliRunner()
    # output exists
    res = runner.invoke(app, ["pseudolabel", str(grid), str(ds), "--out", str(tmp / "labels")])
    assert res.exit_code == 2 and "--overwrite" in res.output
    # no ground truth: names the split
    nogt = make_dataset(tmp_path / "valid", {"v1": {"size": (H, W), "T": T, "objects": {}, "expressions": [None]}}, split="valid")
    with pytest.raises(RvosError, match="need ground truth.*mevis/valid"):
        L.pseudolabel([grid], nogt, tmp_path / "x")
    # a store video the dataset does not have: names the video
    other = make_dataset(tmp_path / "other", {"zz": {"size": (H, W), "T": T, "objects": {}, "expressions": [[]]}})
    with pytest.raises(RvosError, match="'v1'"):
        L.pseudolabel([grid], other, tmp_path / "y")
    # a store whose video has another size is another dataset's (or version's) store: refused at
    # any resolution, naming the store, the video and both sizes (issue 11: never silently resized)
    small = make_store(tmp_path / "small", {"v1": np.zeros((1, T, 4, 5), np.uint8)})
    for res in ("native", "4x5"):
        with pytest.raises(RvosError, match=f"v1: track store 'small': tracks are 4x5 but the video is {H}x{W}"):
            L.pseudolabel([small], ds, tmp_path / "z", resolution=res)
        assert not (tmp_path / "z").exists()
    # ... and so is one whose video has fewer frames (missing frames are not "empty")
    short = make_store(tmp_path / "short", {"v1": np.zeros((1, T - 1, H, W), np.uint8)})
    with pytest.raises(RvosError, match=f"v1: track store 'short': the video has {T - 1} frames in the store but {T}"):
        L.pseudolabel([short], ds, tmp_path / "z")
    assert not (tmp_path / "z").exists()
    # a resolution no machine can hold is refused up front, not a MemoryError
    with pytest.raises(RvosError, match="--resolution 100000x100000 is too large"):
        L.pseudolabel([grid], ds, tmp_path / "z", resolution="100000x100000")
    # an RLE that is not of its row's size (resizing decodes it): names the store, video and frame, no traceback
    bad = TrackStore(tmp_path / "bad", create=True, meta={})
    rows = _mask_rows("v1", "track_id", 0, {t: A for t in range(T)})
    rows[2]["rle"] = rle.encode(np.ones((4, 5), np.uint8))
    for r in rows:
        r.update(prompt_kind="grid", prompt_frame_idx=0, expression_id=None, obj_id=None, stability_score=0.9, predicted_iou=0.9)
    bad.write_video("v1", rows, np.zeros((1, T, 256), np.float32), np.zeros(1, np.int32))
    res = runner.invoke(app, ["pseudolabel", str(tmp_path / "bad"), str(ds), "--resolution", "4x5", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "v1: track store 'bad', frame 2: RLE describes 20 pixels, not 8x10" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "b").exists()
    # two stores with one name
    with pytest.raises(RvosError, match="named 'grid'"):
        L.parse_sources([str(grid), f"grid={small}"])
    res = runner.invoke(app, ["pseudolabel", str(ds), "--out", str(tmp_path / "w")])
    assert res.exit_code == 2 and "at least one track store" in res.output


def test_resume_after_interruption(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    vids = {v: {"size": (12, 16), "T": 3, "objects": {1: dict(enumerate(_random_blobs(rng, 3, 12, 16)))},
                "expressions": [[1]]} for v in ("a", "b", "c")}
    ds = make_dataset(tmp_path / "ds", vids)
    store = make_store(tmp_path / "s", {v: _random_blobs(rng, 6, 12, 16).reshape(2, 3, 12, 16) for v in vids})
    calls = []
    real = L._label_video

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(L, "_label_video", counting)

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        L.pseudolabel([store], ds, tmp_path / "out", resolution="native", progress=stop)
    assert not (tmp_path / "out").exists() and calls == ["a", "b"]
    L.pseudolabel([store], ds, tmp_path / "out", resolution="native")
    assert calls == ["a", "b", "c"]
    assert not (tmp_path / ".out.parts").exists()
    resumed = pd.read_parquet(tmp_path / "out" / "labels.parquet")
    L.pseudolabel([store], ds, tmp_path / "fresh", resolution="native")
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(tmp_path / "fresh" / "labels.parquet"))
    # other options discard the parts
    with pytest.raises(KeyboardInterrupt):
        L.pseudolabel([store], ds, tmp_path / "out2", resolution="native", progress=stop)
    calls.clear()
    L.pseudolabel([store], ds, tmp_path / "out2", resolution="6x8")
    assert calls == ["a", "b", "c"]


# -- native IoUs vs pycocotools, bit for bit ------------------------------------------------------------
def _fuzz_masks(rng, n, T, h, w):
    """(n, T, h, w) uint8 masks of every awkward kind: empty, full, full columns (runs that cross a
    column, where pycocotools' box spans the height), thin lines, boxes that touch a neighbour's box
    edge to edge, and random polygons."""
    out = np.zeros((n, T, h, w), np.uint8)
    for i in range(n):
        for t in range(T):
            m = out[i, t]
            kind = rng.integers(9)
            if kind == 0:
                continue  # empty
            if kind == 1:
                m[:] = 1
            elif kind == 2:
                x0 = int(rng.integers(0, w))
                m[:, x0 : x0 + int(rng.integers(1, 4))] = 1  # whole columns
                m[int(rng.integers(0, h)) :, max(x0 - 1, 0)] = 1  # a run from a column's middle into the next
            elif kind == 3:
                m[int(rng.integers(0, h)), :] = 1  # one row: a run per column
            elif kind == 4:  # two halves split at a random column / row: boxes that touch
                c = int(rng.integers(1, w))
                if rng.random() < 0.5:
                    m[:, :c] = 1
                else:
                    m[:, c:] = 1
            elif kind == 5:
                r = int(rng.integers(1, h))
                m[:r if rng.random() < 0.5 else h, : int(rng.integers(1, w + 1))] = 1
            else:
                for _ in range(int(rng.integers(1, 3))):
                    pts = np.stack([rng.uniform(-2, w + 2, 5), rng.uniform(-2, h + 2, 5)], 1).astype(np.int32)
                    cv2.fillPoly(m, [cv2.convexHull(pts)], 1)
    return out


def _masklets(masks, name, stored=True):
    n, T, h, w = masks.shape
    grid = np.full((n, T), None, dtype=object)
    for i in range(n):
        for t in range(T):
            if masks[i, t].any():
                grid[i, t] = rle.encode(masks[i, t])
    if not stored:
        return L.Masklets(h, w, grid, name)
    area, bbox = np.zeros((n, T), np.int64), np.zeros((n, T, 4))
    for i in range(n):
        for t in range(T):
            if grid[i, t] is not None:
                a, b = rle.area_bbox([grid[i, t]], h, w)
                area[i, t], bbox[i, t] = a[0], b[0]
    return L.Masklets(h, w, grid, name, area, bbox)


def _reference_ious(tracks, objects, unions):
    """The straightforward computation: per frame one pycocotools.mask.iou of every track against
    every object, every union (pycocotools.mask.merge of its objects) and the empty mask; 1.0 where
    both are empty. ``(n, m + len(unions) + 1, T)``."""
    import pycocotools.mask as cm

    n, T = tracks.grid.shape
    size = [tracks.height, tracks.width]
    out = []
    for t in range(T):
        targets = list(objects.grid[:, t])
        for u in unions:
            parts = [{"size": size, "counts": objects.grid[o, t]} for o in u if objects.grid[o, t] is not None]
            targets.append(cm.merge(parts, intersect=False)["counts"] if parts else None)
        targets.append(None)
        a = list(tracks.grid[:, t])
        iou = np.zeros((n, len(targets)))
        for i in range(n):
            for j in range(len(targets)):
                if a[i] is None and targets[j] is None:
                    iou[i, j] = 1.0
                elif a[i] is not None and targets[j] is not None:
                    iou[i, j] = cm.iou([{"size": size, "counts": a[i]}], [{"size": size, "counts": targets[j]}], [0])[0][0]
        out.append(iou)
    return np.stack(out, axis=2)


@pytest.mark.parametrize("seed", range(6))
def test_native_ious_bit_identical_to_pycocotools(seed):
    rng = np.random.default_rng(seed)
    h, w, T = int(rng.integers(5, 30)), int(rng.integers(5, 30)), int(rng.integers(1, 6))
    n, m = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    tracks = _fuzz_masks(rng, n, T, h, w)
    objs = _fuzz_masks(rng, m, T, h, w)
    if seed % 2:  # ground truth as annotated: objects do not overlap (the additive union path)
        for o in range(1, m):
            objs[o] &= ~np.any(objs[:o], axis=0)
    tracks[0] = objs[0]  # a perfect track
    unions = [list(c) for c in ([0, 1], [1, 2, 3], [0, 2]) if max(c) < m]
    want = _reference_ious(_masklets(tracks, "t"), _masklets(objs, "o"), unions)
    assert L.load_kernels()  # numba is a dependency: the compiled path must be there
    for compiled in (False, True):
        for stored in (True, False):
            got = L._native_ious(_masklets(tracks, "t", stored), _masklets(objs, "o", stored), unions, range(T), compiled)
            assert got.dtype == np.float64 and got.shape == want.shape
            assert np.array_equal(got, want), (compiled, np.argwhere(got != want)[:5])
        # a subset of frames, in order
        frames = [t for t in range(T) if t % 2 == 0]
        got = L._native_ious(_masklets(tracks, "t"), _masklets(objs, "o"), unions, frames, compiled)
        assert np.array_equal(got, want[:, :, frames])


def test_native_ious_touching_boxes_and_wrong_areas():
    """Boxes that share only an edge never overlap (pycocotools: overlap width 0 -> IoU 0); boxes
    that share one column do. Stored areas that are not the masks' own do not change unions: the
    integers recovered from the IoUs fail their check and the union is walked."""
    h, w = 12, 16
    a, b, c = (np.zeros((1, 1, h, w), np.uint8) for _ in range(3))
    a[0, 0, 2:9, 0:6] = 1   # x in [0, 6)
    b[0, 0, 3:10, 6:11] = 1  # x in [6, 11): touches a's box at x = 6
    c[0, 0, 0:3, 5:7] = 1    # one column inside a's box, one in b's
    tracks = np.concatenate([a, b, c])
    objs = np.concatenate([b, c])
    unions = [[0, 1]]
    want = _reference_ious(_masklets(tracks, "t"), _masklets(objs, "o"), unions)
    assert L.load_kernels()
    for compiled in (False, True):
        got = L._native_ious(_masklets(tracks, "t"), _masklets(objs, "o"), unions, [0], compiled)
        assert np.array_equal(got, want)
        assert got[0, 0, 0] == 0.0 and got[2, 1, 0] == 1.0 and 0 < got[0, 1, 0] < 1
        wrong = _masklets(objs, "o")
        wrong.area = wrong.area + 1  # not the RLE's
        assert np.array_equal(L._native_ious(_masklets(tracks, "t"), wrong, unions, [0], compiled), want)
        small = _masklets(tracks, "t")
        small.bbox = small.bbox.copy()
        small.bbox[:, :, 2:] = 1  # boxes too small for their masks: not trusted, recomputed
        assert np.array_equal(L._native_ious(small, _masklets(objs, "o"), unions, [0], compiled), want)


def test_compiled_kernels_against_pycocotools():
    """rvoskit._labels_kernels: areas and |A & B| of random masks (every awkward kind) equal
    pycocotools' area and the intersection behind its IoU; strings pycocotools' encoder cannot
    write are refused (status 1), so the caller uses pycocotools for them."""
    import pycocotools.mask as cm

    from rvoskit import _labels_kernels as K

    K.warm()
    rng = np.random.default_rng(3)
    for _ in range(60):
        h, w = int(rng.integers(2, 40)), int(rng.integers(2, 40))
        ms = _fuzz_masks(rng, 6, 1, h, w)[:, 0]
        cs = [cm.encode(np.asfortranarray(m))["counts"] for m in ms]
        lens = np.array([len(c) for c in cs], np.int64)
        ends = np.cumsum(lens)
        starts = ends - lens
        runs = np.zeros(int(lens.sum()), np.int64)
        nruns, area, first, last, status = (np.zeros(6, np.int64) for _ in range(5))
        K.parse(np.frombuffer(b"".join(cs), np.uint8), starts, ends, h * w, runs, nruns, area, first, last, status)
        assert not status.any()
        assert area.tolist() == [int(a) for a in cm.area([{"size": [h, w], "counts": c} for c in cs])]
        pa, pb = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
        got = np.zeros(36, np.int64)
        K.intersections(runs, starts, nruns, first, last, pa, pb, got)
        assert got.tolist() == [int((ms[a].astype(bool) & ms[b].astype(bool)).sum()) for a, b in zip(pa, pb)]
    for bad, total in ((b"2", 6), (b"a", 6), (b"\x7f1", 6), (b"0" * 14, 6), (b"16", 6), (b"3O", 6)):  # truncated, alphabet, alphabet, too long, 7 pixels, negative
        runs = np.zeros(len(bad), np.int64)
        nruns, area, first, last, status = (np.zeros(1, np.int64) for _ in range(5))
        K.parse(np.frombuffer(bad, np.uint8), np.zeros(1, np.int64), np.full(1, len(bad), np.int64), total, runs,
                nruns, area, first, last, status)
        assert status[0] == 1, bad


@pytest.mark.parametrize("compiled", [False, True])
def test_pseudolabel_identical_to_reference_script(tmp_path, monkeypatch, compiled):
    """End to end against benchmarks/reference/pseudolabel_pycocotools.py (the straightforward
    pycocotools script the benchmark times): every mIoU and label equal, native (through
    pycocotools, and through the compiled kernels) and 540x960."""
    import subprocess
    import sys

    if compiled:
        assert L.load_kernels()
        monkeypatch.setattr(L, "KERNELS_MIN_TRACK_FRAMES", 0)
    else:
        monkeypatch.setattr(L, "_KERNELS", {})
        monkeypatch.setattr(L, "KERNELS_MIN_TRACK_FRAMES", 10**12)

    rng = np.random.default_rng(11)
    ds_videos, store_videos = {}, {}
    for vid, (h, w, t) in {"a": (24, 40, 5), "b": (33, 21, 4)}.items():
        objs = _fuzz_masks(rng, 3, t, h, w)
        for o in range(1, 3):
            objs[o] &= ~np.any(objs[:o], axis=0)
        ds_videos[vid] = {"size": (h, w), "T": t, "objects": {o + 1: {f: objs[o, f] for f in range(t) if rng.random() < 0.85}
                                                                for o in range(3)},
                          "expressions": [[1], [2, 3], [1, 2, 3], [3], [1, 3], []]}
        tr = _fuzz_masks(rng, 9, t, h, w)
        tr[0] = objs[1]
        store_videos[vid] = tr
    ds = make_dataset(tmp_path / "ds", ds_videos)
    store = make_store(tmp_path / "s", store_videos)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "reference" / "pseudolabel_pycocotools.py"
    for res in ("native", "540x960") if not compiled else ("native",):
        L.pseudolabel({"s": store}, ds, tmp_path / f"out_{res}", resolution=res)
        assert ("module" in L._KERNELS) == compiled
        ours = pd.read_parquet(tmp_path / f"out_{res}" / "labels.parquet")
        subprocess.run([sys.executable, str(script), str(ds), str(store), res, str(tmp_path / f"ref_{res}.parquet")], check=True)
        ref = pd.read_parquet(tmp_path / f"ref_{res}.parquet")
        both = ref.merge(ours, on=["expression_id", "track_id"], suffixes=("_ref", ""))
        assert len(both) == len(ref) == len(ours) == 2 * 6 * 9
        assert np.array_equal(both["miou_max_ref"], both["miou_max"], equal_nan=True)  # NaN: no target
        assert both["miou_max"].isna().sum() == 2 * 9
        assert (both["miou_union_ref"] == both["miou_union"]).all()
        assert (both["label_ref"] == both["label"]).all()
