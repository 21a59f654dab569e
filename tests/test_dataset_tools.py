"""validate, info, export (MeViS layout, YouTube-VIS JSON) and the CLI surface."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pycocotools.mask as cocomask
import pytest
from typer.testing import CliRunner

from rvoskit import __version__
from rvoskit.cli import app
from rvoskit.datasets.export import export_ytvis
from rvoskit.datasets.info import dataset_info
from rvoskit.format import DatasetWriter, open_dataset, rle

runner = CliRunner()


def test_version_and_help_with_examples():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output
    for cmd in (["demo"], ["convert", "mevis"], ["convert", "refytvos"], ["convert", "refdavis"], ["convert", "mevis-m"],
                ["validate"], ["info"], ["export"], ["tracks", "generate"], ["pseudolabel"], ["corrupt"], ["train"], ["score"],
                ["eval"], ["viz", "dataset"], ["viz", "tracks"], ["viz", "predictions"], ["viz", "report"]):
        res = runner.invoke(app, cmd + ["--help"])
        assert res.exit_code == 0 and "Example" in res.output, cmd


def test_validate_passes_then_lists_each_problem(judo_dataset, tmp_path):
    res = runner.invoke(app, ["validate", str(judo_dataset)])
    assert res.exit_code == 0 and "valid" in res.output
    bad = tmp_path / "bad"
    shutil.copytree(judo_dataset, bad)
    t = pq.read_table(bad / "masks.parquet").to_pylist()
    t[3]["rle"] = t[3]["rle"][:-1]  # malformed RLE
    t[5]["obj_id"] = 9  # unknown object
    t[7]["area"] += 1  # wrong area
    pq.write_table(pa.Table.from_pylist(t, schema=pq.read_schema(bad / "masks.parquet")), bad / "masks.parquet")
    frame = bad / "frames_gone"
    m = json.loads((bad / "dataset.json").read_text())
    m["frame_root"] = str(frame)
    (bad / "dataset.json").write_text(json.dumps(m))
    res = runner.invoke(app, ["validate", str(bad)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2  # bad input, as everywhere (docs/cli.md)
    assert "malformed RLE" in out or "RLE covers" in out
    assert "judo obj 9" in out and "unknown object" in out
    assert "area" in out and "frame file missing" in out
    res = runner.invoke(app, ["validate", str(bad), "--no-frames"])
    assert "frame file missing" not in res.output


def test_info_counts(judo_dataset, tmp_path):
    i = dataset_info(judo_dataset)
    assert i["counts"] == {"videos": 1, "frames": 16, "objects": 2, "expressions": 8, "masks": 32}
    assert i["objects_per_expression"]["1"] == 8 and i["multi_object"] == 0
    assert i["frames_per_video"]["median"] == 16
    ds = open_dataset(judo_dataset)
    frac = ds.masks()["area"] / (480 * 854)
    assert i["mask_area"]["percentiles"]["50"] == pytest.approx(float(np.median(frac)))
    res = runner.invoke(app, ["info", str(judo_dataset), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)[0]["counts"]["masks"] == 32
    assert runner.invoke(app, ["info", str(judo_dataset)]).exit_code == 0


def _dataset_from_real_ytvis(data_dir, out):
    """A dataset built from the real YouTube-VIS ground truth (CocoVID layout, uncompressed RLE)."""
    doc = json.loads((data_dir / "ytvis_mmtracking_demo" / "ann_cocovid.json").read_text())
    video = doc["videos"][0]
    images = sorted([im for im in doc["images"] if im["video_id"] == video["id"]], key=lambda im: im["frame_id"])
    frame_of = {im["id"]: t for t, im in enumerate(images)}
    H, W = images[0]["height"], images[0]["width"]
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    with DatasetWriter(out, dataset="ytvis", split="train", frame_root=data_dir) as w:
        w.add_video({"video_id": video["name"], "split": "train", "num_frames": len(images), "height": H, "width": W,
                     "frames": [im["file_name"].split("/")[-1].split(".")[0] for im in images],
                     "frame_files": [im["file_name"] for im in images]})
        objs = {}
        rows = []
        for a in doc["annotations"]:
            objs[a["instance_id"] + 1] = cats[a["category_id"]]
            counts, _, _ = rle.from_native(a["segmentation"], H, W)
            ar, bb = rle.area_bbox([counts], H, W)
            rows.append({"video_id": video["name"], "obj_id": a["instance_id"] + 1, "frame_idx": frame_of[a["image_id"]],
                         "height": H, "width": W, "rle": counts, "area": int(ar[0]), "bbox": bb[0].tolist()})
        w.add_objects({"video_id": video["name"], "obj_id": o, "anno_id": None, "category": c} for o, c in objs.items())
        w.add_expressions([{"video_id": video["name"], "exp_id": "0", "exp_index": 0, "text": "the object", "obj_ids": [min(objs)],
                            "anno_ids": None, "annotator": None, "kind": None}])
        w.add_masks(video["name"], rows)
    return doc, out


def test_export_ytvis_matches_real_youtube_vis_ground_truth(data_dir, tmp_path):
    doc, ds_path = _dataset_from_real_ytvis(data_dir, tmp_path / "ds")
    out = export_ytvis(ds_path, tmp_path / "ytvis.json")
    y = json.loads(out.read_text())
    assert {"videos", "annotations", "categories"} <= set(y)
    v = y["videos"][0]
    assert v["length"] == len(v["file_names"]) == 20 and (v["height"], v["width"]) == (720, 1280)
    by_image = {(a["instance_id"] + 1, a["image_id"]): a for a in doc["annotations"]}
    images = sorted([im for im in doc["images"]], key=lambda im: im["frame_id"])
    assert len(y["annotations"]) == len({a["instance_id"] for a in doc["annotations"]})  # one per object track
    checked = 0
    for ann in y["annotations"]:
        assert len(ann["segmentations"]) == v["length"]
        for t, seg in enumerate(ann["segmentations"]):
            ref = by_image.get((ann["obj_id"], images[t]["id"]))
            if ref is None:
                assert seg is None and ann["areas"][t] is None and ann["bboxes"][t] is None
                continue
            mine = cocomask.decode({"size": seg["size"], "counts": seg["counts"].encode()})
            theirs = cocomask.decode(cocomask.frPyObjects(ref["segmentation"], 720, 1280))
            assert np.array_equal(mine, theirs)
            assert ann["areas"][t] == ref["area"] and ann["bboxes"][t] == ref["bbox"]
            checked += 1
    assert checked == len(doc["annotations"])
    assert y["expressions"][0]["annotation_ids"] == [1]


def test_export_mevis_cli_from_refdavis(judo_dataset, tmp_path):
    res = runner.invoke(app, ["export", str(judo_dataset), "--to", "mevis", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "m" / "val" / "meta_expressions.json").read_text())
    assert meta["videos"]["judo"]["expressions"]["0"]["obj_id"] == [1]
    res = runner.invoke(app, ["convert", "mevis", str(tmp_path / "m"), "--split", "val", "--out", str(tmp_path / "back"), "-q"])
    assert res.exit_code == 0, res.output
    a, b = open_dataset(judo_dataset), open_dataset(tmp_path / "back")
    assert a.masks()["rle"].tolist() == b.masks()["rle"].tolist()
    res = runner.invoke(app, ["export", str(judo_dataset), "--to", "nonsense", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown export target" in res.output
