"""rvoskit eval end to end: protocols on constructed datasets whose answer is known or recomputed
with the official per-frame code (vos-benchmark), every bad-input path, the CLI and its outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rvoskit.datasets.submission import label_png_bytes
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter, open_dataset
from rvoskit.format import rle as rlemod
from rvoskit.format.predictions import write_predictions
from rvoskit.metrics import evaluate

DATA = Path(__file__).resolve().parent / "data"
OSVOS = DATA / "davis17_eval_sample_results" / "semi-supervised" / "osvos"
RVOS = DATA / "davis17_eval_sample_results" / "unsupervised" / "rvos"


# -- builders (also used by test_submission.py) --------------------------------------------------


def read_labels(folder: Path, n: int | None = None) -> tuple[list[str], np.ndarray]:
    """Real DAVIS palette PNGs of one sequence: (frame names, uint8 (T, H, W) labels)."""
    files = sorted(folder.glob("*.png"))[:n]
    return [f.stem for f in files], np.stack([np.array(Image.open(f)) for f in files])


def mask_rows(video_id: str, obj_id: int, masks: np.ndarray) -> list[dict]:
    """masks.parquet rows of one object; frames where the mask is empty are left out (absent)."""
    T, H, W = masks.shape
    rows = []
    for t in range(T):
        if masks[t].any():
            c = rlemod.encode(masks[t])
            a, b = rlemod.area_bbox([c], H, W)
            rows.append({"video_id": video_id, "obj_id": obj_id, "frame_idx": t, "height": H, "width": W, "rle": c, "area": int(a[0]), "bbox": b[0].tolist()})
    return rows


def build_dataset(out: Path, videos: dict, *, dataset: str = "mevis", void: dict | None = None) -> Path:
    """Write a common-format dataset.

    videos: ``{video_id: {"frames": [...], "labels": uint8 (T,H,W), "expressions": [(exp_id, obj_ids, annotator, kind)]}}``;
    objects are the nonzero labels.
    """
    with DatasetWriter(out, dataset=dataset, split="test", frame_root=out / "frames") as w:
        for vid, v in sorted(videos.items()):
            lab = v["labels"]
            T, H, W = lab.shape
            w.add_video({"video_id": vid, "split": "test", "num_frames": T, "height": H, "width": W, "frames": v["frames"], "frame_files": [f"{vid}/{f}.jpg" for f in v["frames"]]})
            objs = sorted(int(o) for o in np.unique(lab) if 0 < o < 255)
            w.add_objects([{"video_id": vid, "obj_id": o, "anno_id": None, "category": None} for o in objs])
            w.add_expressions(
                [
                    {"video_id": vid, "exp_id": str(e), "exp_index": i, "text": f"expression {e}", "obj_ids": o, "anno_ids": None, "annotator": a, "kind": k}
                    for i, (e, o, a, k) in enumerate(v["expressions"])
                ]
            )
            rows = [r for o in objs for r in mask_rows(vid, o, (lab == o).astype(np.uint8))]
            w.add_masks(vid, rows)
        if void:
            vrows = []
            for vid, vm in void.items():
                for t in range(vm.shape[0]):
                    if vm[t].any():
                        c = rlemod.encode(vm[t])
                        vrows.append({"video_id": vid, "frame_idx": t, "height": vm.shape[1], "width": vm.shape[2], "rle": c, "area": int(vm[t].sum())})
            w.add_void(vrows)
    return out


def prediction_rows(preds: dict) -> list[dict]:
    """predictions rows from ``{(video_id, exp_id): uint8 (T, H, W)}``."""
    rows = []
    for (vid, e), m in preds.items():
        T, H, W = m.shape
        for t in range(T):
            c = rlemod.encode(m[t])
            rows.append({"expression_id": f"{vid}/{e}", "video_id": vid, "exp_id": str(e), "frame_idx": t, "height": H, "width": W, "rle": c, "area": int((m[t] != 0).sum()), "score": None})
    return rows


def write_png_expr(root: Path, preds: dict, frames: dict) -> Path:
    """MeViS layout <root>/<video>/<exp_id>/<frame>.png, L 0/255."""
    for (vid, e), m in preds.items():
        d = root / vid / str(e)
        d.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(frames[vid]):
            cv2.imwrite(str(d / f"{f}.png"), (m[t] != 0).astype(np.uint8) * 255)
    return root


# -- reference: the official per-frame code, as vos-benchmark ships it ----------------------------


def ref_frame(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Per-frame J, F with vos-benchmark's Evaluator (davis2017 metrics code); both empty = (1, 1)."""
    from vos_benchmark.evaluator import Evaluator

    if not pred.any() and not gt.any():
        return 1.0, 1.0
    ev = Evaluator()
    ev.feed_frame((pred != 0).astype(np.uint8), (gt != 0).astype(np.uint8))
    return float(ev.object_iou[1][0]), float(ev.boundary_f[1][0])


def ref_expression(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """MeViS per-expression J, F: np.mean over frames of the official per-frame values."""
    jf = np.array([ref_frame(p, g) for p, g in zip(pred, gt)])
    return float(np.mean(jf[:, 0])), float(np.mean(jf[:, 1]))


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mevis_case(tmp_path_factory):
    """Two real DAVIS sequences as a MeViS-like split: judo (2 objects) and blackswan (1 object).

    GT = OSVOS label maps (real shapes); predictions = the same object one frame later, a
    no-target expression predicted empty on some frames, a multi-object expression.
    """
    tmp = tmp_path_factory.mktemp("mevis")
    jf_, jl = read_labels(OSVOS / "judo", 6)
    bf, bl = read_labels(OSVOS / "blackswan", 5)
    videos = {
        "judo": {"frames": jf_, "labels": jl, "expressions": [("0", [1], None, None), ("1", [2], None, None), ("2", [1, 2], None, None), ("3", [], None, None)]},
        "blackswan": {"frames": bf, "labels": bl, "expressions": [("0", [1], None, None)]},
    }
    ds = build_dataset(tmp / "ds", videos)
    nxt = lambda lab, ids: np.isin(np.concatenate([lab[1:], lab[-1:]]), ids).astype(np.uint8)
    empty_some = np.zeros_like(jl)
    empty_some[2, 10:20, 30:60] = 1  # a false positive on a no-target expression
    preds = {
        ("judo", "0"): nxt(jl, [1]),
        ("judo", "1"): nxt(jl, [2]),
        ("judo", "2"): nxt(jl, [1]),  # only one of the two targets
        ("judo", "3"): empty_some,
        ("blackswan", "0"): nxt(bl, [1]),
    }
    gts = {
        ("judo", "0"): np.isin(jl, [1]),
        ("judo", "1"): np.isin(jl, [2]),
        ("judo", "2"): np.isin(jl, [1, 2]),
        ("judo", "3"): np.zeros_like(jl, bool),
        ("blackswan", "0"): np.isin(bl, [1]),
    }
    table = write_predictions(tmp / "pred", prediction_rows(preds), dataset=ds)
    png = write_png_expr(tmp / "png", preds, {"judo": jf_, "blackswan": bf})
    return {"ds": ds, "table": table, "png": png, "preds": preds, "gts": gts, "frames": {"judo": jf_, "blackswan": bf}, "tmp": tmp}


# -- MeViS protocol ---------------------------------------------------------------------------------


def test_mevis_matches_official_per_expression_and_aggregate(mevis_case):
    res = evaluate(mevis_case["ds"], mevis_case["table"], "mevis")
    items = res.items.set_index("expression_id")
    js, fs = [], []
    order = list(open_dataset(mevis_case["ds"]).expressions.index)
    assert list(res.items["expression_id"]) == order
    for eid in order:
        vid, e = eid.split("/")
        j, f = ref_expression(mevis_case["preds"][(vid, e)], mevis_case["gts"][(vid, e)])
        assert items.loc[eid, "J"] == j and items.loc[eid, "F"] == f, eid
        js.append(j)
        fs.append(f)
    assert res.summary["J"] == float(np.mean(js)) and res.summary["F"] == float(np.mean(fs))
    assert res.summary["J&F"] == (res.summary["J"] + res.summary["F"]) / 2
    assert res.summary["n_expressions"] == 5 and res.summary["missing_videos"] == []
    # the multi-object expression predicted with one of its two targets loses J
    assert items.loc["judo/2", "J"] < items.loc["judo/0", "J"]


def test_mevis_png_layout_equals_table(mevis_case):
    a = evaluate(mevis_case["ds"], mevis_case["table"], "mevis")
    b = evaluate(mevis_case["ds"], mevis_case["png"], "mevis")
    pd.testing.assert_frame_equal(a.items, b.items)
    assert b.summary["predictions_layout"] == "png-expr"
    # Ref-YouTube-VOS submission layout: an Annotations/ root is entered
    ytvos = mevis_case["tmp"] / "ytvos"
    shutil.copytree(mevis_case["png"], ytvos / "Annotations")
    c = evaluate(mevis_case["ds"], ytvos, "mevis")
    pd.testing.assert_frame_equal(a.items, c.items)


@pytest.mark.parametrize("reader", ["compiled", "plain"])
def test_mevis_png_fast_reader_equals_the_plain_readers(mevis_case, monkeypatch, reader):
    """The PNG fast path (rvoskit.metrics.pngread; cv2.imwrite's adaptive filters, Paeth rows too)
    with the compiled unfilter forced on, against every file read by cv2.imread as before."""
    from rvoskit.metrics import evaluation, pngread

    seen = []
    real = evaluation._run_video
    monkeypatch.setattr(evaluation, "_run_video", lambda job: (seen.append(job[2].compiled_png), real(job))[1])
    a = evaluate(mevis_case["ds"], mevis_case["png"], "mevis")
    assert seen and not any(seen)  # a few frames: numba is not loaded for them
    if reader == "compiled":
        monkeypatch.setattr(pngread, "COMPILED_MIN_PIXELS", 0)
    else:
        monkeypatch.setattr(pngread, "decode_u8", lambda *a, **k: None)
    seen.clear()
    b = evaluate(mevis_case["ds"], mevis_case["png"], "mevis")
    assert all(seen) == (reader == "compiled")
    pngread.use_compiled(False)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.frames, b.frames)


def test_mevis_hand_built_known_answer(tmp_path):
    """One 4-frame video, two expressions: the exact numbers follow from the definitions."""
    lab = np.zeros((4, 20, 30), np.uint8)
    lab[:, 5:15, 5:15] = 1
    ds = build_dataset(tmp_path / "ds", {"v": {"frames": ["a", "b", "c", "d"], "labels": lab, "expressions": [("0", [1], None, None), ("1", [], None, None)]}})
    p0 = (lab == 1).astype(np.uint8)
    p0[3] = 0  # last frame missed: J = 0, F = 0
    p1 = np.zeros_like(lab)
    p1[0] = 1  # full-frame false positive on a no-target expression: J = 0, F = 1 (quirk)
    pred = write_predictions(tmp_path / "pred", prediction_rows({("v", "0"): p0, ("v", "1"): p1}))
    res = evaluate(ds, pred, "mevis")
    it = res.items.set_index("exp_id")
    assert it.loc["0", "J"] == 0.75 and it.loc["0", "F"] == 0.75
    assert it.loc["1", "J"] == 0.75 and it.loc["1", "F"] == 1.0
    assert res.summary["J"] == 0.75 and res.summary["F"] == 0.875 and res.summary["J&F"] == 0.8125
    fr = res.frames.set_index(["exp_id", "frame"])
    assert fr.loc[("1", "a"), "J"] == 0.0 and fr.loc[("1", "a"), "F"] == 1.0


def test_missing_video_scores_zero_and_is_reported(mevis_case, tmp_path):
    png = tmp_path / "png"
    shutil.copytree(mevis_case["png"], png)
    shutil.rmtree(png / "blackswan")
    res = evaluate(mevis_case["ds"], png, "mevis")
    it = res.items.set_index("expression_id")
    assert it.loc["blackswan/0", "status"] == "missing_video"
    assert it.loc["blackswan/0", "J"] == 0 and it.loc["blackswan/0", "F"] == 0
    assert res.summary["missing_videos"] == ["blackswan"]
    full = evaluate(mevis_case["ds"], mevis_case["png"], "mevis").items.set_index("expression_id")
    assert res.summary["J"] == float(np.mean([0.0] + [full.loc[e, "J"] for e in it.index if e != "blackswan/0"]))


@pytest.mark.parametrize("workers", [1, 2])
def test_table_for_a_subset_of_videos(mevis_case, tmp_path, workers):
    """A predictions table without one video: that video scores 0 and is reported, the others
    score as with the full table."""
    sub = write_predictions(tmp_path / "sub", prediction_rows({k: v for k, v in mevis_case["preds"].items() if k[0] == "judo"}))
    res = evaluate(mevis_case["ds"], sub, "mevis", workers=workers)
    full = evaluate(mevis_case["ds"], mevis_case["table"], "mevis").items.set_index("expression_id")
    it = res.items.set_index("expression_id")
    assert res.summary["missing_videos"] == ["blackswan"] and res.summary["n_missing_videos"] == 1
    assert (it.loc["blackswan/0", "status"], it.loc["blackswan/0", "J"], it.loc["blackswan/0", "F"]) == ("missing_video", 0.0, 0.0)
    judo = [e for e in it.index if e.startswith("judo/")]
    pd.testing.assert_frame_equal(it.loc[judo], full.loc[judo])
    # a subset of the expressions of a present video is an error unless scored as empty
    part = write_predictions(tmp_path / "part", prediction_rows({("judo", "0"): mevis_case["preds"][("judo", "0")]}))
    with pytest.raises(RvosError, match="no prediction for this expression") as ei:
        evaluate(mevis_case["ds"], part, "mevis", workers=workers)
    assert str(part / "predictions.parquet") in str(ei.value) and "judo/1" in str(ei.value)
    res = evaluate(mevis_case["ds"], part, "mevis", workers=workers, missing_frame_empty=True)
    assert res.items.set_index("expression_id").loc["judo/0", "J"] == full.loc["judo/0", "J"]


def test_table_is_split_by_video_in_any_row_order(mevis_case, tmp_path):
    """The streamed split gives each requested video all of its rows, however the table is ordered
    and batched, and skips the others."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rvoskit.metrics.sources import TABLE_COLUMNS, table_index, table_rows_by_video

    rows = pd.DataFrame(prediction_rows(mevis_case["preds"])).sample(frac=1.0, random_state=0)
    path = write_predictions(tmp_path / "shuffled", rows) / "predictions.parquet"
    # a table from elsewhere: rows in any order (write_predictions sorts), many row groups
    pq.write_table(pa.Table.from_pandas(rows, schema=pq.read_schema(path), preserve_index=False), path, row_group_size=7)
    counts = table_index(path)["video_id"].value_counts().to_dict()
    for batch in (1, 5, 1000):
        got = dict(table_rows_by_video(path, {"judo": counts["judo"]}, batch_rows=batch))
        assert list(got) == ["judo"]
        want = rows[rows["video_id"] == "judo"][TABLE_COLUMNS].reset_index(drop=True)
        pd.testing.assert_frame_equal(got["judo"].to_pandas(), want, check_dtype=False)
    a = evaluate(mevis_case["ds"], path, "mevis", workers=2)
    pd.testing.assert_frame_equal(a.items, evaluate(mevis_case["ds"], mevis_case["table"], "mevis").items)


def test_missing_frame_is_an_error_unless_flag(mevis_case, tmp_path):
    png = tmp_path / "png"
    shutil.copytree(mevis_case["png"], png)
    f = mevis_case["frames"]["judo"][3]
    (png / "judo" / "0" / f"{f}.png").unlink()
    with pytest.raises(RvosError, match="missing prediction frame") as ei:
        evaluate(mevis_case["ds"], png, "mevis")
    assert "judo/0" in str(ei.value) and f in str(ei.value)
    res = evaluate(mevis_case["ds"], png, "mevis", missing_frame_empty=True)
    fr = res.frames.set_index(["expression_id", "frame_idx"])
    gt = mevis_case["gts"][("judo", "0")][3]
    assert (fr.loc[("judo/0", 3), "J"], fr.loc[("judo/0", 3), "F"]) == ref_frame(np.zeros_like(gt), gt)
    # an expression folder that is missing entirely follows the same rule
    shutil.rmtree(png / "judo" / "1")
    with pytest.raises(RvosError, match="no prediction for this expression"):
        evaluate(mevis_case["ds"], png, "mevis")


@pytest.mark.parametrize("damage", ["size", "unreadable", "unknown_video", "unknown_expression", "empty"])
def test_bad_png_input_is_a_clear_error(mevis_case, tmp_path, damage):
    png = tmp_path / "png"
    shutil.copytree(mevis_case["png"], png)
    f0 = mevis_case["frames"]["judo"][0]
    target = png / "judo" / "0" / f"{f0}.png"
    if damage == "size":
        cv2.imwrite(str(target), np.zeros((480, 853), np.uint8))
        match = "differs from the ground truth"
    elif damage == "unreadable":
        target.write_bytes(b"not a png")
        match = "unreadable PNG"
    elif damage == "unknown_video":
        (png / "no-such-video" / "0").mkdir(parents=True)
        match = "unknown video"
    elif damage == "unknown_expression":
        (png / "judo" / "99").mkdir()
        match = "unknown expression"
    else:
        shutil.rmtree(png)
        png.mkdir()
        match = "empty prediction folder"
    with pytest.raises(RvosError, match=match) as ei:
        evaluate(mevis_case["ds"], png, "mevis")
    assert str(png) in str(ei.value)
    if damage in ("size", "unreadable"):  # raised in a worker process: the same file, item and message
        with pytest.raises(RvosError, match=match) as ew:
            evaluate(mevis_case["ds"], png, "mevis", workers=2)
        assert str(ew.value) == str(ei.value) == f"{target}: judo/0 frame {f0}: " + ei.value.message


def test_bad_table_input_is_a_clear_error(mevis_case, tmp_path):
    rows = prediction_rows({("judo", "0"): mevis_case["preds"][("judo", "0")]})
    bad = [dict(r, video_id="nope", expression_id="nope/0") if i == 0 else r for i, r in enumerate(rows)]
    with pytest.raises(RvosError, match="unknown video"):
        evaluate(mevis_case["ds"], write_predictions(tmp_path / "a", bad), "mevis")
    small = np.zeros((6, 100, 100), np.uint8)
    with pytest.raises(RvosError, match="differs from the video"):
        evaluate(mevis_case["ds"], write_predictions(tmp_path / "b", prediction_rows({("judo", "0"): small})), "mevis")
    with pytest.raises(RvosError, match="unknown expression"):
        evaluate(mevis_case["ds"], write_predictions(tmp_path / "c", prediction_rows({("judo", "7"): mevis_case["preds"][("judo", "0")]})), "mevis")
    with pytest.raises(RvosError, match="no rows"):
        evaluate(mevis_case["ds"], write_predictions(tmp_path / "d", []), "mevis")


def test_workers_give_identical_results(mevis_case):
    a = evaluate(mevis_case["ds"], mevis_case["table"], "mevis")
    b = evaluate(mevis_case["ds"], mevis_case["table"], "mevis", workers=2)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.summary == b.summary


# -- DAVIS protocols on real DAVIS result PNGs ------------------------------------------------------


@pytest.fixture(scope="module")
def davis_case(tmp_path_factory):
    """judo: OSVOS labels (2 objects) as ground truth with a void band; RVOS (up to 20 ids) and
    OSVOS itself as results; 8 frames."""
    tmp = tmp_path_factory.mktemp("davis")
    frames, gt = read_labels(OSVOS / "judo", 8)
    _, rvos = read_labels(RVOS / "judo", 8)
    void = np.zeros_like(gt)
    void[:, 200:210, :] = 1  # a void band across both objects
    exprs = [(str(4 * (o - 1) + k), [o], 1 + k // 2, ("first_frame", "full_video")[k % 2]) for o in (1, 2) for k in range(4)]
    ds = build_dataset(tmp / "ds", {"judo": {"frames": frames, "labels": gt, "expressions": exprs}}, dataset="refdavis", void={"judo": void})
    for name, lab in (("rvos", rvos), ("osvos", gt)):
        d = tmp / name / "judo"
        d.mkdir(parents=True)
        for f, l in zip(frames, lab):
            (d / f"{f}.png").write_bytes(label_png_bytes(l))
    return {"ds": ds, "frames": frames, "gt": gt, "rvos": rvos, "void": void, "tmp": tmp}


def _ref_pair(pred, gt, void=None):
    """Official J, F with void pixels: J over non-void pixels, F on masks with void removed."""
    if void is None:
        return ref_frame(pred, gt)
    keep = void == 0
    p, g = (pred != 0) & keep, (gt != 0) & keep
    union = (p | g).sum()
    j = 1.0 if union == 0 else (p & g).sum() / union
    return j, ref_frame(p, g)[1]


def test_davis_unsup_hungarian_matches_reference(davis_case):
    from scipy.optimize import linear_sum_assignment

    from rvoskit.metrics import db_statistics

    res = evaluate(davis_case["ds"], davis_case["tmp"] / "rvos", "davis-unsup")
    gt, rv, void = davis_case["gt"], davis_case["rvos"], davis_case["void"]
    n_prop = int(rv.max())
    J = np.zeros((n_prop, 2, len(gt)))
    F = np.zeros_like(J)
    for jj in range(n_prop):
        for ii in range(2):
            for t in range(len(gt)):
                J[jj, ii, t], F[jj, ii, t] = _ref_pair(rv[t] == jj + 1, gt[t] == ii + 1, void[t])
    rows, cols = linear_sum_assignment(-(J.mean(2) + F.mean(2)) / 2)
    assert list(res.items["proposal"]) == list(rows + 1) and list(res.items["obj_id"]) == list(cols + 1)
    jm = [db_statistics(J[r, c])[0] for r, c in zip(rows, cols)]
    fm = [db_statistics(F[r, c])[0] for r, c in zip(rows, cols)]
    assert res.summary["J-Mean"] == float(np.nanmean(jm)) and res.summary["F-Mean"] == float(np.mean(fm))
    assert res.summary["J&F-Mean"] == (res.summary["J-Mean"] + res.summary["F-Mean"]) / 2


def test_davis_semi_perfect_result_and_dropped_frames(davis_case):
    res = evaluate(davis_case["ds"], davis_case["tmp"] / "osvos", "davis-semi")
    # GT scored against itself: every kept frame is 1 (no void in this task), 6 of 8 frames kept
    assert res.summary["J-Mean"] == 1.0 and res.summary["F-Mean"] == 1.0 and res.summary["J-Decay"] == 0.0
    assert sorted(res.frames["frame_idx"].unique()) == list(range(1, 7))
    assert list(res.items["obj_id"]) == [1, 2]
    # first and last frames need not exist
    d = davis_case["tmp"] / "osvos_cut" / "judo"
    shutil.copytree(davis_case["tmp"] / "osvos" / "judo", d)
    (d / f"{davis_case['frames'][0]}.png").unlink()
    assert evaluate(davis_case["ds"], d.parent, "davis-semi").summary["J-Mean"] == 1.0
    # a label above the number of objects is refused, as the reference does
    bad = davis_case["tmp"] / "osvos_bad" / "judo"
    shutil.copytree(davis_case["tmp"] / "osvos" / "judo", bad)
    lab = davis_case["gt"][2].copy()
    lab[0:5, 0:5] = 3
    (bad / f"{davis_case['frames'][2]}.png").write_bytes(label_png_bytes(lab))
    with pytest.raises(RvosError, match="label 3"):
        evaluate(davis_case["ds"], bad.parent, "davis-semi")


def test_ref_davis_sets_and_aggregation(davis_case, tmp_path):
    """Per-expression predictions of the four sets: merged per set, scored, averaged."""
    gt = davis_case["gt"]
    preds = {}
    for o in (1, 2):
        for k in range(4):
            m = (gt == o).astype(np.uint8)
            if k >= 2:  # annotator 2's expressions are predicted one frame late
                m = np.concatenate([m[1:], m[-1:]])
            preds[("judo", str(4 * (o - 1) + k))] = m
    pred = write_predictions(tmp_path / "pred", prediction_rows(preds))
    res = evaluate(davis_case["ds"], pred, "ref-davis")
    sets = res.summary["sets"]
    assert list(sets) == ["anno_0", "anno_1", "anno_2", "anno_3"]
    assert sets["anno_0"]["J&F-Mean"] == sets["anno_1"]["J&F-Mean"] > sets["anno_2"]["J&F-Mean"] == sets["anno_3"]["J&F-Mean"]
    assert res.summary["J&F-Mean"] == float(np.mean([s["J&F-Mean"] for s in sets.values()]))
    for k in range(4):
        one = evaluate(davis_case["ds"], pred, "davis-unsup", anno_set=k)
        assert one.summary["J&F-Mean"] == sets[f"anno_{k}"]["J&F-Mean"]
    assert set(res.items["expression_id"]) == {f"judo/{e}" for _, e in preds}
    each = evaluate(davis_case["ds"], pred, "ref-davis", aggregate="each")
    assert "J&F-Mean" not in each.summary and each.summary["sets"] == sets
    # the ReferFormer PNG layout anno_<k>/<seq>/<frame>.png gives the same numbers
    from rvoskit.metrics import merge_label_map

    for k in range(4):
        d = tmp_path / "rf" / f"anno_{k}" / "judo"
        d.mkdir(parents=True)
        for t, f in enumerate(davis_case["frames"]):
            lab = merge_label_map([(o, preds[("judo", str(4 * (o - 1) + k))][t]) for o in (1, 2)], gt.shape[1:])
            (d / f"{f}.png").write_bytes(label_png_bytes(lab))
    assert evaluate(davis_case["ds"], tmp_path / "rf", "ref-davis").summary["sets"] == sets


def test_davis_needs_a_set_for_per_expression_predictions(davis_case, tmp_path):
    pred = write_predictions(tmp_path / "p", prediction_rows({("judo", "0"): (davis_case["gt"] == 1).astype(np.uint8)}))
    with pytest.raises(RvosError, match="--anno-set"):
        evaluate(davis_case["ds"], pred, "davis-unsup")
    with pytest.raises(RvosError, match="unknown protocol"):
        evaluate(davis_case["ds"], pred, "davis")


# -- CLI ---------------------------------------------------------------------------------------------


def test_cli_eval_writes_outputs(mevis_case, tmp_path):
    from typer.testing import CliRunner

    from rvoskit.cli import app

    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", str(mevis_case["ds"]), str(mevis_case["png"]), "--out", str(out), "--per-frame"])
    assert r.exit_code == 0, r.output
    assert "J&F" in r.output
    summary = json.loads((out / "summary.json").read_text())
    ref = evaluate(mevis_case["ds"], mevis_case["png"], "mevis")
    assert summary["J&F"] == ref.summary["J&F"]
    items = pd.read_parquet(out / "per_expression.parquet")
    pd.testing.assert_frame_equal(items, ref.items)
    assert len(pd.read_csv(out / "per_frame.csv")) == 4 * 6 + 5
    assert (out / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # bad input: one red line, exit status 2, no traceback
    r = CliRunner().invoke(app, ["eval", str(mevis_case["ds"]), str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "predictions not found" in r.output and "Traceback" not in r.output
    # a PNG at another size than the ground truth, found in a worker process: the file is named
    png = tmp_path / "png"
    shutil.copytree(mevis_case["png"], png)
    f = mevis_case["frames"]["blackswan"][4]
    cv2.imwrite(str(png / "blackswan" / "0" / f"{f}.png"), np.zeros((240, 427), np.uint8))
    r = CliRunner().invoke(app, ["eval", str(mevis_case["ds"]), str(png), "--workers", "2"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"{f}.png" in r.output and "240x427 differs from the ground truth 480x854" in " ".join(r.output.split())
