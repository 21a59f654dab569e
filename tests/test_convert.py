"""Converters on real files (Ref-YouTube-VOS valid meta, DAVIS judo example) and on generated native datasets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rvoskit.datasets.export import export_mevis
from rvoskit.datasets.mevis import convert_mevis
from rvoskit.datasets.mevis_m import convert_mevis_m
from rvoskit.datasets.refdavis import convert_refdavis
from rvoskit.datasets.refytvos import convert_refytvos
from rvoskit.datasets.synthetic import make_mevis, make_refdavis, make_refytvos
from rvoskit.errors import RvosError
from rvoskit.format import open_dataset
from rvoskit.format.validate import validate_dataset


# ---------------------------------------------------------------- MeViS
@pytest.fixture()
def mevis_root(tmp_path):
    return make_mevis(tmp_path / "mevis", split="train", num_videos=3, num_frames=8)


def test_mevis_passes_rle_through_and_keeps_absence(mevis_root, tmp_path):
    out = convert_mevis(mevis_root, "train", tmp_path / "ds")
    ds = open_dataset(out)
    meta = json.loads((mevis_root / "train" / "meta_expressions.json").read_text())
    mask_dict = json.loads((mevis_root / "train" / "mask_dict.json").read_text())
    assert validate_dataset(out) == []
    n_rows = 0
    for vid, v in meta["videos"].items():
        rows = ds.masks(vid)
        objs = ds.objects[ds.objects.video_id == vid]
        for o in objs.itertuples():
            segs = mask_dict[o.anno_id]
            mine = rows[rows.obj_id == o.obj_id].set_index("frame_idx")
            for t, seg in enumerate(segs):
                if seg is None:
                    assert t not in mine.index  # null = absent: no row
                else:
                    assert mine.loc[t, "rle"] == seg["counts"].encode()  # byte-identical pass-through
                    n_rows += 1
        for eid, e in v["expressions"].items():
            row = ds.expressions.loc[f"{vid}/{eid}"]
            assert list(row["obj_ids"]) == e["obj_id"] and list(row["anno_ids"]) == [str(a) for a in e["anno_id"]]
            assert row["text"] == e["exp"]
    assert n_rows == len(ds.masks())
    n_obj = ds.expressions["obj_ids"].map(len)
    assert (n_obj == 0).sum() == 3 and (n_obj == 3).sum() == 3  # no-target and multi-object kept
    digests = {i["path"]: i["sha256"] for i in ds.manifest["inputs"]}  # mask_dict.json is hashed on a thread
    assert list(digests) == ["train/meta_expressions.json", "train/mask_dict.json"]
    for name, d in digests.items():
        assert d == hashlib.sha256((mevis_root / name).read_bytes()).hexdigest()


def test_mevis_union_ground_truth_of_multi_object_expression(mevis_root, tmp_path):
    ds = open_dataset(convert_mevis(mevis_root, "train", tmp_path / "ds"))
    multi = ds.expressions[ds.expressions["obj_ids"].map(len) == 3].iloc[0]
    objs = ds.object_masks(multi["video_id"])
    gt = ds.expression_masks(multi["expression_id"])
    assert np.array_equal(gt, np.maximum.reduce([objs[o] for o in multi["obj_ids"]]))
    none = ds.expressions[ds.expressions["obj_ids"].map(len) == 0].iloc[0]
    assert ds.expression_masks(none["expression_id"]).sum() == 0


def test_mevis_round_trip_through_native_export(mevis_root, tmp_path):
    a = convert_mevis(mevis_root, "train", tmp_path / "a")
    native = export_mevis(a, tmp_path / "native")
    b = convert_mevis(native, "train", tmp_path / "b")
    for t in ("videos", "objects", "expressions", "masks"):
        assert pq.read_table(a / f"{t}.parquet").equals(pq.read_table(b / f"{t}.parquet")), t


def test_mevis_valid_split_without_masks(tmp_path):
    root = make_mevis(tmp_path / "m", split="valid", num_videos=2)
    ds = open_dataset(convert_mevis(root, "valid", tmp_path / "ds"))
    assert ds.expressions["obj_ids"].isna().all() and len(ds.masks()) == 0 and len(ds.objects) == 0


def test_mevis_verify_sha_refuses_unpublished_files(mevis_root, tmp_path):
    with pytest.raises(RvosError, match="differs from the published"):
        convert_mevis(mevis_root, "train", tmp_path / "ds", verify_sha=True)
    assert not (tmp_path / "ds").exists()


def test_mevis_unsorted_frames_are_rejected(mevis_root, tmp_path):
    p = mevis_root / "train" / "meta_expressions.json"
    meta = json.loads(p.read_text())
    vid = next(iter(meta["videos"]))
    meta["videos"][vid]["frames"].reverse()
    p.write_text(json.dumps(meta))
    with pytest.raises(RvosError, match="sorted order") as e:
        convert_mevis(mevis_root, "train", tmp_path / "ds")
    assert vid in str(e.value)


def test_mevis_m_overlay_spans(mevis_root, tmp_path):
    meta = json.loads((mevis_root / "train" / "meta_expressions.json").read_text())
    vid = sorted(meta["videos"])[0]
    frames = meta["videos"][vid]["frames"]
    overlay = {"format": "rvoskit-mevis-m-overlay", "version": 1,
               "videos": {vid: {"3": {"0": [[0, 2], [5, 7]], "2": [[1, 1]]}}}}
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(overlay))
    ds = open_dataset(convert_mevis_m(mevis_root, "train", tmp_path / "ds", overlay=path))
    m = ds.moments.sort_values(["obj_id", "start_idx"])
    assert m[["obj_id", "start_idx", "end_idx"]].values.tolist() == [[0, 0, 2], [0, 5, 7], [2, 1, 1]]
    assert m["end_frame"].tolist() == [frames[2], frames[7], frames[1]]
    assert validate_dataset(ds.path) == []
    # by frame name, overlapping spans, object not targeted
    overlay["frame_ref"] = "name"
    overlay["videos"][vid] = {"3": {"0": [[frames[0], frames[3]], [frames[2], frames[4]]]}}
    path.write_text(json.dumps(overlay))
    with pytest.raises(RvosError, match="overlaps"):
        convert_mevis_m(mevis_root, "train", tmp_path / "ds2", overlay=path)
    overlay["videos"][vid] = {"0": {"2": [[frames[0], frames[1]]]}}
    path.write_text(json.dumps(overlay))
    with pytest.raises(RvosError, match="not a target"):
        convert_mevis_m(mevis_root, "train", tmp_path / "ds2", overlay=path)
    assert not (tmp_path / "ds2").exists()


# ---------------------------------------------------------------- Ref-YouTube-VOS
def _ytvos_root_with_real_valid_meta(tmp_path, data_dir, with_test_meta: bool):
    real = json.loads((data_dir / "refytvos_valid_meta_expressions" / "meta_expressions.json").read_text())
    root = tmp_path / "rytvos"
    (root / "meta_expressions" / "valid").mkdir(parents=True)
    shutil.copy(data_dir / "refytvos_valid_meta_expressions" / "meta_expressions.json", root / "meta_expressions" / "valid")
    vids = sorted(real["videos"])
    valid = [v for v in vids if not real["videos"][v]["frames"][0] == "00000"][:2] + vids[:2]  # includes late starts
    if not with_test_meta:  # told apart by the published count: exactly 202 videos have frames
        valid += [v for v in vids if v not in valid][: 202 - len(valid)]
    frame = np.full((8, 12, 3), 128, np.uint8)
    one = tmp_path / "frame.jpg"
    Image.fromarray(frame).save(one)
    for v in valid:
        d = root / "valid" / "JPEGImages" / v
        d.mkdir(parents=True)
        for f in real["videos"][v]["frames"]:
            os.link(one, d / f"{f}.jpg")
    if with_test_meta:
        (root / "meta_expressions" / "test").mkdir(parents=True)
        test = {"videos": {v: real["videos"][v] for v in vids if v not in valid}}
        (root / "meta_expressions" / "test" / "meta_expressions.json").write_text(json.dumps(test))
    return root, real, valid


@pytest.mark.parametrize("with_test_meta", [True, False])
def test_refytvos_real_valid_meta_filters_test_videos(tmp_path, data_dir, with_test_meta):
    root, real, valid = _ytvos_root_with_real_valid_meta(tmp_path, data_dir, with_test_meta)
    assert len(real["videos"]) == 507 and sum(len(v["expressions"]) for v in real["videos"].values()) == 2096
    ds = open_dataset(convert_refytvos(root, "valid", tmp_path / "ds"))
    assert sorted(ds.videos.index) == sorted(valid)
    assert ds.manifest["dropped_videos"]["count"] == 507 - len(valid)
    for v in valid[:4]:
        assert list(ds.video(v)["frames"]) == real["videos"][v]["frames"]  # irregular steps and starts kept
        texts = ds.expressions[ds.expressions.video_id == v]
        assert list(texts["exp_id"]) == list(real["videos"][v]["expressions"])
        assert list(texts["text"]) == [e["exp"] for e in real["videos"][v]["expressions"].values()]
    assert ds.expressions["obj_ids"].isna().all()
    assert validate_dataset(ds.path) == []


def test_refytvos_train_palette_masks(tmp_path):
    root = make_refytvos(tmp_path / "r", num_videos=3)
    ds = open_dataset(convert_refytvos(root, "train", tmp_path / "ds", workers=2))
    assert validate_dataset(ds.path) == []
    for vid, v in ds.videos.iterrows():
        objs = ds.object_masks(vid)
        for t, name in enumerate(v["frames"]):
            label = np.asarray(Image.open(root / "train" / "Annotations" / vid / f"{name}.png"))
            for o, m in objs.items():
                assert np.array_equal(m[t], (label == o).astype(np.uint8))
            present = set(ds.masks(vid).query("frame_idx == @t")["obj_id"])
            assert present == {o for o in objs if (label == o).any()}  # absent ids have no row
    steps = {int(b) - int(a) for f in ds.videos["frames"] for a, b in zip(f, f[1:])}
    assert steps - {1}, "frame steps come from the file, not an assumption"
    assert all(isinstance(o, (int, np.integer)) for o in ds.objects["obj_id"])


# ---------------------------------------------------------------- Ref-DAVIS17
def test_refdavis_example_real_masks_and_expressions(example_root, judo_dataset):
    ds = open_dataset(judo_dataset)
    assert list(ds.videos.index) == ["judo"] and ds.video("judo")["width"] == 854
    e = ds.expressions
    assert list(e["exp_id"]) == [str(i) for i in range(8)]
    assert list(e["kind"]) == ["first_frame", "full_video"] * 4
    assert [list(x) for x in e["obj_ids"]] == [[1]] * 4 + [[2]] * 4
    assert "à droite" in e.loc["judo/2", "text"]  # annotator 2 file is latin-1
    objs = ds.object_masks("judo")
    for t, name in enumerate(ds.video("judo")["frames"]):
        label = np.asarray(Image.open(example_root / "Annotations" / "480p" / "judo" / f"{name}.png"))
        for o in (1, 2):
            assert np.array_equal(objs[o][t], (label == o).astype(np.uint8))


def test_refdavis_typos_void_and_unsupervised(tmp_path):
    root = make_refdavis(tmp_path / "davis", num_videos=4, num_objects=2)
    ds = open_dataset(convert_refdavis(root, "train", tmp_path / "semi"))
    assert set(ds.videos.index) == {"classic-car", "dogs-scale", "motorbike"}  # typo'd names fixed
    assert len(ds.expressions) == 3 * 2 * 4
    for vid, v in ds.videos.iterrows():
        void = ds.void_masks(vid)
        assert void.sum() > 0
        for t, name in enumerate(v["frames"]):
            label = np.asarray(Image.open(root / "Annotations" / "480p" / vid / f"{name}.png"))
            assert np.array_equal(void[t], (label == 255).astype(np.uint8))
        assert 255 not in set(ds.objects[ds.objects.video_id == vid]["obj_id"])
    unsup = open_dataset(convert_refdavis(root, "train", tmp_path / "unsup", annotations="unsupervised"))
    a, b = ds.object_masks("motorbike"), unsup.object_masks("motorbike")
    assert np.array_equal(a[1], b[2]) and np.array_equal(a[2], b[1])  # the other label set


def test_refytvos_test_split_reads_frames_from_valid(tmp_path):
    root = make_refytvos(tmp_path / "r", num_videos=1, valid_videos=1, test_videos=1)
    test_meta = json.loads((root / "meta_expressions" / "test" / "meta_expressions.json").read_text())
    (test_vid,) = test_meta["videos"]
    (valid_vid,) = [p.name for p in (root / "valid" / "JPEGImages").iterdir()]
    shutil.copytree(root / "valid" / "JPEGImages" / valid_vid, root / "valid" / "JPEGImages" / test_vid)
    ds = open_dataset(convert_refytvos(root, "test", tmp_path / "ds"))
    assert list(ds.videos.index) == [test_vid]
    assert ds.frame_paths(test_vid)[0].is_file() and ds.expressions["obj_ids"].isna().all()
    # without the test meta, a valid split whose videos all have frames, no more than the published
    # 202, is the valid split (no warning)
    shutil.rmtree(root / "meta_expressions" / "test")
    ds = open_dataset(convert_refytvos(root, "valid", tmp_path / "ds2"))
    assert len(ds.videos) == 2 and not ds.manifest.get("warnings")


def test_refdavis_exp_ids_follow_referformer_string_order(tmp_path):
    root = make_refdavis(tmp_path / "d", num_videos=2, num_objects=11, height=64, width=96, num_frames=3, void=False)
    ds = open_dataset(convert_refdavis(root, "val", tmp_path / "ds"))
    e = ds.expressions
    objs = {int(x) for x in ds.objects["obj_id"]}
    order = sorted((o for o in range(1, 12) if o in objs), key=str)  # "1", "10", "11", "2", ...
    for k, o in enumerate(order):
        rows = e[e["obj_ids"].map(lambda x: list(x) == [o])]
        assert sorted(rows["exp_id"].astype(int)) == [4 * k + j for j in range(4)]
        assert list(rows.sort_values("exp_index")["kind"]) == ["first_frame", "full_video"] * 2
