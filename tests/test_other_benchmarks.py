"""A2D-Sentences, JHMDB-Sentences, RefCOCO: converters, format 1.1 (annotated_frames), the a2d/jhmdb/refer
eval protocols against MTTR's code as published (tests/reference/mttr, Apache-2.0), COCO-gt exports."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as maskUtils
from typer.testing import CliRunner

import native_other as native
from rvoskit.cli import app
from rvoskit.format import open_dataset

REF = Path(__file__).parent / "reference" / "mttr"
runner = CliRunner()


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _reference_a2d_gt_builder():
    """MTTR's create_gt_in_coco_format.py (A2D) as published; its import of MTTR's dataset module
    (torchvision) is served by a stub that holds MTTR's get_image_id, copied."""
    saved = {k: sys.modules.get(k) for k in ("datasets", "datasets.a2d_sentences", "datasets.a2d_sentences.a2d_sentences_dataset")}
    pkg, sub, ds_mod = types.ModuleType("datasets"), types.ModuleType("datasets.a2d_sentences"), types.ModuleType("datasets.a2d_sentences.a2d_sentences_dataset")
    pkg.__path__, sub.__path__ = [], []

    def get_image_id(video_id, frame_idx, ref_instance_a2d_id):  # MTTR a2d_sentences_dataset.py, verbatim
        image_id = f'v_{video_id}_f_{frame_idx}_i_{ref_instance_a2d_id}'
        return image_id

    ds_mod.get_image_id = get_image_id
    sub.a2d_sentences_dataset = ds_mod
    sys.modules.update({"datasets": pkg, "datasets.a2d_sentences": sub, "datasets.a2d_sentences.a2d_sentences_dataset": ds_mod})
    try:
        return _load("mttr_a2d_gt", REF / "a2d_create_gt_in_coco_format.py")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def reference_eval(gt_json: Path, predictions: list[dict]) -> dict:
    """MTTR trainer.py evaluate_a2d_sentences after the model: COCO, loadRes, COCOeval segm with
    useCats = 0, stats[:6], and metrics.py calculate_precision_at_k_and_iou_metrics."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    metrics = _load("mttr_metrics", REF / "metrics.py")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        coco_gt = COCO(str(gt_json))
        coco_pred = coco_gt.loadRes(copy.deepcopy(predictions))  # loadRes adds keys to the dicts it is given
        coco_eval = COCOeval(coco_gt, coco_pred, iouType='segm')
        coco_eval.params.useCats = 0
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        ap = coco_eval.stats[:6]
        precision_at_k, overall_iou, mean_iou = metrics.calculate_precision_at_k_and_iou_metrics(coco_gt, coco_pred)
    out = {f"P@{k}": float(v) for k, v in zip([0.5, 0.6, 0.7, 0.8, 0.9], precision_at_k)}
    out.update({"overall_iou": float(overall_iou), "mean_iou": float(mean_iou)})
    out.update(dict(zip(["mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"], [float(a) for a in ap])))
    return out


def random_candidates(gt: dict, n: int, seed: int) -> list[dict]:
    """n scored candidates per image of a COCO gt: the ground truth, shifted / grown copies, random
    blobs and an empty mask, with some tied scores."""
    rng = np.random.default_rng(seed)
    anns = {a["image_id"]: a for a in gt["annotations"]}
    out = []
    for im in gt["images"]:
        H, W = im["height"], im["width"]
        g = maskUtils.decode(anns[im["id"]]["segmentation"])
        for k in range(n):
            kind = k % 5
            if kind == 0:
                m = g.copy()
            elif kind == 1:
                m = np.roll(g, int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2)))
            elif kind == 2:
                m = g.copy()
                m[: int(rng.integers(0, H)), : int(rng.integers(0, W))] = 1
            elif kind == 3:
                m = np.zeros((H, W), np.uint8)
            else:
                m = native._blob(rng, H, W)
            rle = maskUtils.encode(np.asfortranarray(m.astype(np.uint8)))
            score = float(rng.choice([0.5, 0.25, 0.75])) if k % 3 == 0 else float(rng.random())
            out.append({"image_id": im["id"], "category_id": 1, "segmentation": {"size": [H, W], "counts": rle["counts"].decode("ascii")}, "score": score})
    rng.shuffle(out)
    return out


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def a2d(tmp_path_factory):
    from rvoskit.datasets.a2d import convert_a2d

    base = tmp_path_factory.mktemp("a2d")
    root = base / "a2d_sentences"
    info = native.make_a2d(root)
    ds = convert_a2d(root, "test", base / "a2d-test", workers=2)
    return {"root": root, "ds": ds, "base": base, **info}


@pytest.fixture(scope="module")
def jhmdb(tmp_path_factory):
    from rvoskit.datasets.jhmdb import convert_jhmdb

    base = tmp_path_factory.mktemp("jhmdb")
    root = base / "jhmdb_sentences"
    info = native.make_jhmdb(root)
    ds = convert_jhmdb(root, base / "jhmdb", samples=root / "samples.json")
    return {"root": root, "ds": ds, "base": base, **info}


@pytest.fixture(scope="module")
def refcoco(tmp_path_factory):
    from rvoskit.datasets.refcoco import convert_refcoco

    base = tmp_path_factory.mktemp("refcoco")
    info = native.make_refcoco(base / "p2", protocol=2)
    native.make_refcoco(base / "p0", protocol=0)
    out = {"base": base, **info}
    for split in ("train", "val", "testA", "testB"):
        out[split] = convert_refcoco(base / "p2", "refcoco", "unc", split, base / f"rc-{split}")
    out["testA_p0"] = convert_refcoco(base / "p0", "refcoco", "unc", "testA", base / "rc0-testA")
    return out


# -- A2D -----------------------------------------------------------------------------------------


def test_a2d_samples_and_gt_identical_to_mttr_builder(a2d, tmp_path):
    """MTTR's create_gt_in_coco_format.py, run on the native tree, and rvoskit's export agree:
    sample list (missed video, '1 (copy)', absent instances, duplicated ids), ids, order, masks."""
    ref = _reference_a2d_gt_builder()
    ref.dataset_path = str(a2d["root"])
    ref.output_path = str(tmp_path / "ref_gt.json")
    ref.create_a2d_sentences_ground_truth_test_annotations()
    want = json.loads((tmp_path / "ref_gt.json").read_text())
    r = runner.invoke(app, ["export", str(a2d["ds"]), "--to", "a2d-coco-gt", "--out", str(tmp_path / "gt.json"), "--quiet"])
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "gt.json").read_text())
    assert got["images"] == want["images"] and got["categories"] == want["categories"]
    assert len(got["annotations"]) == len(want["annotations"]) == 13
    for g, w in zip(got["annotations"], want["annotations"]):
        assert {k: g[k] for k in ("id", "image_id", "category_id", "segmentation", "area", "iscrowd")} == \
               {k: w[k] for k in ("id", "image_id", "category_id", "segmentation", "area", "iscrowd")}
        assert np.allclose(g["bbox"], w["bbox"])
    ids = [i["id"] for i in got["images"]]
    assert "v_vidA_test_f_7_i_1" not in ids and "v_vidA_test_f_7_i_2" in ids  # instance absent on frame 7: no sample
    assert not any("vidM_missed" in i or "vidE_train" in i for i in ids)


def test_a2d_conversion_quirks(a2d):
    ds = open_dataset(a2d["ds"])
    v = ds.videos
    assert sorted(v.index) == ["-vidC_test", "vidA_test", "vidB_test", "vidD_test"]
    assert ds.annotated_frames("vidA_test") == [2, 6, 9] and list(v.loc["vidD_test", "annotated_frames"]) == [0, 11]
    e = ds.expressions
    assert "1 (copy)" not in set(e["text"]) and len(e) == 6
    assert e.loc["vidB_test/2", "obj_ids"].tolist() == [1]  # exp_id = row of a2d_annotation.txt; row 3 ('1 (copy)') dropped
    m = ds.masks("vidA_test")
    # duplicated id 1 on frame 10: the first position's mask
    row = m[(m.obj_id == 1) & (m.frame_idx == 9)].iloc[0]
    want = a2d["gt"][("vidA_test", 10, 1)]
    assert np.array_equal(maskUtils.decode({"size": [a2d["H"], a2d["W"]], "counts": row["rle"]}), want)
    # frames: every decoded frame written 1:1 (frame n has frame n's colour)
    for n in (1, 7, 12):
        px = ds.read_frame("vidD_test", n - 1).reshape(-1, 3).mean(0)
        assert np.abs(px - native.frame_colour(n)).max() < 6
    assert ds.video("vidD_test")["num_frames"] == a2d["T"]
    # --frame-format jpg: the same tables, JPEG frames of the same content
    r = runner.invoke(app, ["convert", "a2d", str(a2d["root"]), "--out", str(a2d["base"] / "jpg"), "--frame-format", "jpg", "--quiet"])
    assert r.exit_code == 0, r.output
    j = open_dataset(a2d["base"] / "jpg")
    assert j.video("vidD_test")["frame_files"][6].endswith("00007.jpg")
    assert np.abs(j.read_frame("vidD_test", 6).reshape(-1, 3).mean(0) - native.frame_colour(7)).max() < 8
    pd.testing.assert_frame_equal(j.masks(), ds.masks())


def test_a2d_eval_identical_to_mttr(a2d, tmp_path):
    """rvoskit eval --protocol a2d == MTTR's evaluation (pycocotools + metrics.py) on the same
    20 candidates per sample, from the results JSON and from an rvoskit predictions table."""
    from rvoskit.format.predictions import write_predictions
    from rvoskit.metrics.referring import export_coco_gt, referring_samples

    gt_path = export_coco_gt(a2d["ds"], "a2d", tmp_path / "gt.json")
    gt = json.loads(gt_path.read_text())
    preds = random_candidates(gt, 20, seed=3)
    want = reference_eval(gt_path, preds)
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    r = runner.invoke(app, ["eval", str(a2d["ds"]), str(tmp_path / "preds.json"), "--protocol", "a2d", "--out", str(tmp_path / "ev"), "--quiet"])
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert list(got) == ["P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "overall_iou", "mean_iou", "mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"]
    assert got == want
    assert 0 < want["mAP"] < 1 and want["AP_L"] != -1
    # bad predictions: one line, exit 2
    some = gt["images"][0]["id"]
    for bad, msg in (([p for p in preds if p["image_id"] != some], "no prediction"),
                     (preds + [{**preds[0], "image_id": "v_nope_f_1_i_1"}], "not a sample"),
                     (preds[:5] + [{**preds[5], "score": "high"}], "not a finite number"),
                     (preds[:5] + [{**preds[5], "segmentation": {**preds[5]["segmentation"], "counts": "0"}}], "covers")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        r = runner.invoke(app, ["eval", str(a2d["ds"]), str(tmp_path / "bad.json"), "--protocol", "a2d", "--quiet"])
        assert r.exit_code == 2 and msg in r.output and "bad.json" in r.output, r.output
    # options of the J&F protocols are refused, not silently ignored; -j is ignored with a warning
    r = runner.invoke(app, ["eval", str(a2d["ds"]), str(tmp_path / "preds.json"), "--protocol", "a2d", "--missing-frame-empty", "--quiet"])
    assert r.exit_code == 2 and "--missing-frame-empty" in r.output and "a2d" in r.output, r.output
    r = runner.invoke(app, ["eval", str(a2d["ds"]), str(tmp_path / "preds.json"), "--protocol", "a2d", "-j", "2", "--quiet"])
    assert r.exit_code == 0 and "--workers/--executor are ignored" in r.output, r.output
    # the same candidates as an rvoskit predictions table (several scored rows per frame)
    ds = open_dataset(a2d["ds"])
    s = referring_samples(ds, "a2d").set_index("image_id")
    rows = []
    for p in preds:
        smp = s.loc[p["image_id"]]
        c = p["segmentation"]["counts"].encode()
        rows.append({"expression_id": smp["expression_id"], "video_id": smp["video_id"], "exp_id": smp["exp_id"], "frame_idx": int(smp["frame_idx"]),
                     "height": int(smp["height"]), "width": int(smp["width"]), "rle": c, "area": int(maskUtils.area({"size": [int(smp['height']), int(smp['width'])], "counts": c})),
                     "score": p["score"]})
    # an extra row on a frame that is not annotated is ignored
    rows.append({**rows[0], "frame_idx": 0 if rows[0]["frame_idx"] else 1})
    rows[-1]["frame_idx"] = next(t for t in range(12) if t not in set(ds.video(rows[0]["video_id"])["annotated_frames"]))
    write_predictions(tmp_path / "table", pd.DataFrame(rows))
    from rvoskit.metrics.referring import evaluate_referring

    res = evaluate_referring(ds, tmp_path / "table", "a2d")
    # scores went through float32 in the table: the ranking is the same here, the numbers too
    assert res.summary == want and res.info["ignored_prediction_rows"] == 1


def test_coco_map_identical_random_many_images(tmp_path):
    """coco_segm_map and mttr_iou_metrics vs the reference on 150 random images of several
    sizes (areas in all COCO ranges), ties in scores, empty ground truths, missed images."""
    from rvoskit.metrics.referring import Candidates, coco_segm_map, intersection_union, mttr_iou_metrics, _top_candidates

    rng = np.random.default_rng(7)
    images, anns = [], []
    for k in range(150):
        H, W = [(24, 32), (80, 120), (130, 150)][k % 3]
        g = native._blob(rng, H, W, 1) if k % 17 else np.zeros((H, W), np.uint8)
        iid = f"v_{k % 7}_f_{k}_i_{k % 3}"
        r = maskUtils.encode(np.asfortranarray(g))
        images.append({"id": iid, "height": H, "width": W})
        anns.append({"id": k + 1, "image_id": iid, "category_id": 1, "segmentation": {"size": [H, W], "counts": r["counts"].decode()},
                     "area": float(maskUtils.area(r)), "iscrowd": 0})
    gt = {"categories": [{"id": 1, "name": "dummy_class"}], "images": images, "annotations": anns}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    preds = random_candidates(gt, 12, seed=11)
    want = reference_eval(tmp_path / "gt.json", preds)
    index = {im["id"]: i for i, im in enumerate(images)}
    cand = Candidates(np.array([index[p["image_id"]] for p in preds]), np.array([p["score"] for p in preds]),
                      [p["segmentation"]["counts"].encode() for p in preds], "test")
    sizes = [(im["height"], im["width"]) for im in images]
    gt_rles = [a["segmentation"]["counts"].encode() for a in anns]
    areas = np.array([int(a["area"]) for a in anns])
    ap = coco_segm_map([im["id"] for im in images], gt_rles, areas, sizes, cand)
    top = _top_candidates(cand, len(images))
    I, U = intersection_union([cand.rle[j] for j in top], gt_rles, sizes, areas)
    ious, _ = mttr_iou_metrics(I, U)
    assert {**ious, **ap} == want
    # fewer candidates: some images get only tied or no correct candidates at maxDets 1
    keep = [p for i, p in enumerate(preds) if i % 4 == 0]
    missing = {p["image_id"] for p in keep} ^ {im["id"] for im in images}
    keep += [{**preds[0], "image_id": m} for m in missing]  # every image keeps a prediction (MTTR's loop needs one)
    want2 = reference_eval(tmp_path / "gt.json", keep)
    cand2 = Candidates(np.array([index[p["image_id"]] for p in keep]), np.array([p["score"] for p in keep]),
                       [p["segmentation"]["counts"].encode() for p in keep], "test")
    assert coco_segm_map([im["id"] for im in images], gt_rles, areas, sizes, cand2) == {k: want2[k] for k in ap}


def test_a2d_bad_input_one_line_nothing_written_and_resume(a2d, tmp_path):
    """Bad input is one line, exit 2, no OUT; the clips decoded before the error stay in the work
    folder beside OUT (each complete, with its marker) and the rerun after the fix resumes there."""
    import shutil

    root = tmp_path / "a2d_sentences"
    shutil.copytree(a2d["root"], root)
    h5 = root / "text_annotations" / "a2d_annotation_with_instances" / "vidB_test" / "00006.h5"
    good = h5.read_bytes()
    h5.write_bytes(b"not an h5 file")
    out = tmp_path / "out"
    work = tmp_path / ".out.partial"
    r = runner.invoke(app, ["convert", "a2d", str(root), "--split", "test", "--out", str(out), "--quiet"])
    assert r.exit_code == 2
    assert "00006.h5" in r.output and "unreadable h5" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()
    assert not any(".tmp-" in p.name for p in tmp_path.rglob("*"))
    done = sorted(p.stem for p in (work / "done").glob("*.json"))
    assert "-vidC_test" in done and sorted(p.name for p in (work / "frames").iterdir()) == done  # decoded before the h5 error (id order: -vidC, vidA, vidB)
    ino = (work / "frames" / "-vidC_test" / "00001.png").stat().st_ino
    # other options on the same work folder: refused without --overwrite
    r = runner.invoke(app, ["convert", "a2d", str(root), "--split", "test", "--frame-format", "jpg", "--out", str(out), "--quiet"])
    assert r.exit_code == 2 and "partial conversion with other options" in r.output
    h5.write_bytes(good)
    r = runner.invoke(app, ["convert", "a2d", str(root), "--split", "test", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (out / "frames" / "-vidC_test" / "00001.png").stat().st_ino == ino  # not decoded again
    assert not work.exists()
    pd.testing.assert_frame_equal(open_dataset(out).masks(), open_dataset(a2d["ds"]).masks())

    out2 = tmp_path / "out2"
    (root / "Release" / "clips320H" / "vidA_test.mp4").unlink()
    r = runner.invoke(app, ["convert", "a2d", str(root), "--split", "test", "--out", str(out2), "--quiet"])
    assert r.exit_code == 2 and "vidA_test" in r.output and "clip" in r.output and not out2.exists()
    (root / "Release" / "clips320H" / "vidA_test.mp4").write_bytes(b"\x00\x00\x00 ftypisom garbage")
    r = runner.invoke(app, ["convert", "a2d", str(root), "--split", "test", "--out", str(out2), "--quiet", "-j", "2"])
    assert r.exit_code == 2 and "unreadable clip" in r.output and "vidA_test.mp4" in r.output and not out2.exists(), r.output


# -- JHMDB ---------------------------------------------------------------------------------------


def test_jhmdb_gt_identical_to_mttr_builder_and_eval(jhmdb, tmp_path):
    ref = _load("mttr_jhmdb_gt", REF / "jhmdb_create_gt_in_coco_format.py")
    samples = [tuple(a) for a in json.loads((jhmdb["root"] / "samples.json").read_text())]
    ref.create_jhmdb_sentences_ground_truth_annotations(samples, dataset_coco_gt_format_path=str(tmp_path / "ref_gt.json"))
    want = json.loads((tmp_path / "ref_gt.json").read_text())
    r = runner.invoke(app, ["export", str(jhmdb["ds"]), "--to", "jhmdb-coco-gt", "--out", str(tmp_path / "gt.json"), "--quiet"])
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "gt.json").read_text())
    got.pop("info")
    assert got == want
    preds = random_candidates(want, 10, seed=5)
    (tmp_path / "p.json").write_text(json.dumps(preds))
    r = runner.invoke(app, ["eval", str(jhmdb["ds"]), str(tmp_path / "p.json"), "--protocol", "jhmdb", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == reference_eval(tmp_path / "ref_gt.json", preds)
    ds = open_dataset(jhmdb["ds"])
    assert all(len(a) == 3 for a in ds.videos["annotated_frames"])
    assert ds.manifest["evaluated_frames"]["comparable_with_mttr"] is True


def test_jhmdb_without_samples_draws_with_seed_and_warns(jhmdb, tmp_path):
    r = runner.invoke(app, ["convert", "jhmdb", str(jhmdb["root"]), "--seed", "4", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert "NOT comparable" in " ".join(r.output.split())
    a, b = open_dataset(tmp_path / "a"), None
    from rvoskit.datasets.jhmdb import convert_jhmdb

    b = open_dataset(convert_jhmdb(jhmdb["root"], tmp_path / "b", seed=4))
    assert a.manifest["evaluated_frames"] == {"source": "drawn", "seed": 4, "comparable_with_mttr": False}
    fa = [list(x) for x in a.videos["annotated_frames"]]
    assert fa == [list(x) for x in b.videos["annotated_frames"]]
    # frames beyond the masks (brush_hair_vid2 has 20 frames, 17 masks) are never drawn
    assert max(a.video("brush_hair_vid2")["annotated_frames"]) <= 16


# -- RefCOCO -------------------------------------------------------------------------------------


def test_refcoco_conversion(refcoco):
    ta = open_dataset(refcoco["testA"])
    t0 = open_dataset(refcoco["testA_p0"])
    pd.testing.assert_frame_equal(ta.expressions.reset_index(drop=True), t0.expressions.reset_index(drop=True))
    assert ta.masks()["rle"].tolist() == t0.masks()["rle"].tolist()
    # testA = refs whose split contains 'A' (testA and testAB), testB = 'B'
    assert sorted(ta.videos.index) == ["COCO_train2014_000000000002", "COCO_train2014_000000000003"]
    assert sorted(open_dataset(refcoco["testB"]).videos.index) == ["COCO_train2014_000000000003"]
    tr = open_dataset(refcoco["train"])
    v = tr.video("COCO_train2014_000000000001")
    assert v["num_frames"] == 1 and v["annotated_frames"] is None
    e = tr.expressions
    assert e["text"].tolist() == ["the thing 0 ref 0", "the thing 1 ref 0"] and e["exp_id"].tolist() == ["100", "101"]
    m = maskUtils.decode({"size": [48, 64], "counts": tr.masks()["rle"].iloc[0]})
    polys = maskUtils.decode(maskUtils.frPyObjects(refcoco["anns"][0]["segmentation"], 48, 64))
    assert np.array_equal(m, polys.any(axis=2).astype(np.uint8))  # union of the polygons
    assert (polys.sum(axis=2) == 2).any() and m[polys.sum(axis=2) == 2].all()  # overlap is foreground
    assert tr.objects["category"].tolist() == ["person"]


def test_refcoco_malicious_pickle_refused(refcoco, tmp_path):
    import os
    import shutil

    root = tmp_path / "r"
    shutil.copytree(refcoco["base"] / "p2", root)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for proto in (0, 2, 4):
        (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([{"x": Evil()}], protocol=proto))
        r = runner.invoke(app, ["convert", "refcoco", str(root), "--split", "val", "--out", str(tmp_path / "o"), "--quiet"])
        assert r.exit_code == 2, r.output
        assert "refused" in r.output and "refs(unc).p" in r.output and "system" in r.output
        assert not marker.exists() and not (tmp_path / "o").exists()
    (root / "refcoco" / "refs(unc).p").write_bytes(native.py2_pickle([{"a": 1}], 2)[:-3])
    r = runner.invoke(app, ["convert", "refcoco", str(root), "--split", "val", "--out", str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 2 and "pickle" in r.output and not (tmp_path / "o").exists()
    r = runner.invoke(app, ["convert", "refcoco", str(root), "--split-by", "google", "--split", "testA", "--out", str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 2 and "testA" in r.output


def test_refer_protocol(refcoco, tmp_path):
    """cIoU / gIoU / P@K as LAVT-RIS test.py computes them (IoU = I/U, 0 for U = 0, P@K with >=),
    computed here from decoded masks; the best-scored of several candidates is used."""
    from rvoskit.format.predictions import write_predictions

    ds = open_dataset(refcoco["train"])
    rng = np.random.default_rng(0)
    rows, I_, U_ = [], [], []
    gt_of = {(r.video_id, r.obj_id): r.rle for r in ds.masks().itertuples()}
    for e in ds.expressions.itertuples():
        v = ds.video(e.video_id)
        H, W = int(v["height"]), int(v["width"])
        g = maskUtils.decode({"size": [H, W], "counts": gt_of[(e.video_id, e.obj_ids[0])]})
        best = native._blob(rng, H, W)
        for m, s in ((native._blob(rng, H, W), 0.2), (best, 0.9), (g, 0.1)):
            c = maskUtils.encode(np.asfortranarray(m))["counts"]
            rows.append({"expression_id": e.expression_id, "video_id": e.video_id, "exp_id": e.exp_id, "frame_idx": 0, "height": H, "width": W,
                         "rle": c, "area": int(m.sum()), "score": s})
        I_.append(int((best & g).sum()))
        U_.append(int((best | g).sum()))
    write_predictions(tmp_path / "p", pd.DataFrame(rows))
    r = runner.invoke(app, ["eval", str(refcoco["train"]), str(tmp_path / "p"), "--protocol", "refer", "--quiet"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    iou = [i / u if u else 0.0 for i, u in zip(I_, U_)]
    want = {f"P@{k}": sum(x >= k for x in iou) / len(iou) for k in (0.5, 0.6, 0.7, 0.8, 0.9)}
    want.update({"cIoU": sum(I_) / sum(U_), "gIoU": float(np.mean(iou))})
    assert got == pytest.approx(want, abs=1e-15) and list(got) == list(want)


# -- format 1.1 ----------------------------------------------------------------------------------


def test_v1_dataset_still_reads_and_validate_checks_annotated_frames(judo_dataset, a2d, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from rvoskit.format.validate import validate_dataset

    old = tmp_path / "old"
    shutil.copytree(judo_dataset, old)
    t = pq.read_table(old / "videos.parquet").drop(["annotated_frames"])
    pq.write_table(t, old / "videos.parquet")
    m = json.loads((old / "dataset.json").read_text())
    m["format_version"] = 1
    (old / "dataset.json").write_text(json.dumps(m))
    ds = open_dataset(old)
    assert ds.videos["annotated_frames"].isna().all()
    v0 = ds.videos.index[0]
    assert ds.annotated_frames(v0) == list(range(int(ds.video(v0)["num_frames"])))
    assert validate_dataset(old) == []
    m["format_version"] = "1.2"
    (old / "dataset.json").write_text(json.dumps(m))
    r = runner.invoke(app, ["validate", str(old)])
    assert r.exit_code != 0 and "1.2" in r.output
    assert json.loads((a2d["ds"] / "dataset.json").read_text())["format_version"] == "1.1"
    # a mask on a frame that is not annotated is reported
    bad = tmp_path / "bad"
    shutil.copytree(a2d["ds"], bad, symlinks=True)
    v = pq.read_table(bad / "videos.parquet").to_pandas()
    v["annotated_frames"] = [list(a[:-1]) for a in v["annotated_frames"]]
    from rvoskit.format import write_table

    write_table(bad / "videos.parquet", "videos", v)
    probs = validate_dataset(bad, check_frames=False)
    assert any("outside videos.annotated_frames" in p for p in probs)


def test_mevis_protocol_scores_annotated_frames_only(a2d, tmp_path):
    """J&F on a sparse dataset: a wrong prediction on a frame that is not annotated changes nothing."""
    from rvoskit.format.predictions import write_predictions
    from rvoskit.metrics import evaluate

    ds = open_dataset(a2d["ds"])
    rows = []
    for e in ds.expressions.itertuples():
        v = ds.video(e.video_id)
        H, W, T = int(v["height"]), int(v["width"]), int(v["num_frames"])
        gt = ds.expression_masks(e.expression_id)
        for t in range(T):
            m = gt[t] if t in set(v["annotated_frames"]) else np.ones((H, W), np.uint8)
            rows.append({"expression_id": e.expression_id, "video_id": e.video_id, "exp_id": e.exp_id, "frame_idx": t, "height": H, "width": W,
                         "rle": maskUtils.encode(np.asfortranarray(m))["counts"], "area": int(m.sum()), "score": None})
    write_predictions(tmp_path / "p", pd.DataFrame(rows))
    res = evaluate(ds, tmp_path / "p", "mevis")
    assert res.summary["J&F"] == pytest.approx(1.0)
    assert res.frames.groupby("video_id")["frame_idx"].agg(lambda x: sorted(set(x)))["vidA_test"] == [2, 6, 9]


def test_info_and_viz_on_the_three_datasets(a2d, jhmdb, refcoco, tmp_path):
    from rvoskit.format.validate import validate_dataset

    for ds in (a2d["ds"], jhmdb["ds"], refcoco["val"]):
        assert validate_dataset(ds) == []
        r = runner.invoke(app, ["info", str(ds), "--json"])
        assert r.exit_code == 0, r.output
        info = json.loads(r.output)
        info = info[0] if isinstance(info, list) else info
        assert ("annotated_frames_per_video" in info) == (ds != refcoco["val"])
        r = runner.invoke(app, ["viz", "dataset", str(ds), "--out", str(tmp_path / ds.name), "--frames", "2", "--quiet"])
        assert r.exit_code == 0, r.output
        assert list((tmp_path / ds.name).rglob("*.png"))


def test_pseudolabel_miou_over_annotated_frames_only():
    """A sparse video: the track matches the ground truth on the annotated frames and is wrong
    elsewhere (no ground truth there): mIoU 1. Without annotated_frames the other frames count."""
    from rvoskit.labels import video_mious

    H, W, T = 8, 10, 4
    g = np.zeros((H, W), np.uint8)
    g[2:5, 3:8] = 1
    enc = lambda m: maskUtils.encode(np.asfortranarray(m))["counts"]  # noqa: E731
    masks = pd.DataFrame([{"obj_id": 1, "frame_idx": t, "rle": enc(g), "area": int(g.sum())} for t in (0, 2)])
    other = np.zeros_like(g)
    other[0:2, 0:2] = 1
    tracks = pd.DataFrame([{"track_id": 0, "frame_idx": t, "height": H, "width": W, "rle": enc(g if t in (0, 2) else other),
                            "area": int((g if t in (0, 2) else other).sum())} for t in range(T)])
    exprs = pd.DataFrame([{"expression_id": "v/0", "obj_ids": [1]}])
    video = {"video_id": "v", "num_frames": T, "height": H, "width": W, "annotated_frames": [0, 2]}
    out = video_mious(video, exprs, masks, {"s": tracks}, None)
    assert out["miou_max"].tolist() == [1.0]
    out = video_mious({**video, "annotated_frames": None}, exprs, masks, {"s": tracks}, None)
    assert out["miou_max"].tolist() == [0.5]


def test_a2d_extracted_frames_and_jhmdb_bad_mat(a2d, jhmdb, tmp_path):
    """Release/pngs320H (already extracted frames) is referenced instead of decoding the clips,
    with the same tables; a broken puppet_mask.mat is one line, exit 2, nothing written."""
    import shutil

    from rvoskit.datasets.a2d import convert_a2d, decode_clip

    root = tmp_path / "a2d_sentences"
    shutil.copytree(a2d["root"], root)
    for vid in ("vidA_test", "vidB_test", "-vidC_test", "vidD_test"):
        d = root / "Release" / "pngs320H" / vid
        d.mkdir(parents=True)
        from PIL import Image

        for n, fr in enumerate(decode_clip(root / "Release" / "clips320H" / f"{vid}.mp4"), 1):
            Image.fromarray(fr).save(d / f"{n:05d}.png")
    shutil.rmtree(root / "Release" / "clips320H")
    ds = open_dataset(convert_a2d(root, "test", tmp_path / "png-ds"))
    ref = open_dataset(a2d["ds"])
    assert Path(ds.manifest["frame_root"]) == (root / "Release" / "pngs320H").resolve()
    assert ds.video("vidA_test")["frame_files"][0] == "vidA_test/00001.png"
    pd.testing.assert_frame_equal(ds.masks(), ref.masks())
    assert np.array_equal(ds.read_frame("vidB_test", 4), ref.read_frame("vidB_test", 4))

    jroot = tmp_path / "jhmdb_sentences"
    shutil.copytree(jhmdb["root"], jroot)
    (jroot / "puppet_mask" / "pullup" / "pullup_vid3" / "puppet_mask.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    r = runner.invoke(app, ["convert", "jhmdb", str(jroot), "--samples", str(jroot / "samples.json"), "--out", str(tmp_path / "j"), "--quiet"])
    assert r.exit_code == 2 and "puppet_mask.mat" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "j").exists()
