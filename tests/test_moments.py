"""MeViS-M moments: overlay granularities, moment retrieval metrics against Moment-DETR's own
standalone_eval (tests/reference/moment_detr, run on the same inputs), exports, keyframe accuracy,
TGL's cleaning."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rvoskit.cli import app
from rvoskit.datasets.mevis_m import convert_mevis_m
from rvoskit.datasets.moments import dataset_queries, export_moments, expression_moments
from rvoskit.datasets.synthetic import make_mevis
from rvoskit.errors import RvosError
from rvoskit.format import open_dataset
from rvoskit.format.validate import validate_dataset
from rvoskit.metrics import moments as M

REF = Path(__file__).parent / "reference" / "moment_detr"
QVH = Path(__file__).parent / "data" / "qvhighlights_val_mr"
runner = CliRunner()


# -- the reference ---------------------------------------------------------------------------------


class _SerialPool:
    """In-process stand-in for multiprocessing.Pool (the reference's results do not depend on it)."""

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def imap_unordered(self, fn, items, chunksize=1):
        return map(fn, items)


@pytest.fixture(scope="module")
def reference():
    sys.path.insert(0, str(REF))
    try:
        from standalone_eval import eval as ref_eval
    finally:
        sys.path.remove(str(REF))
    ref_eval.mp = types.SimpleNamespace(Pool=_SerialPool)  # its only use of multiprocessing (the module itself is untouched)
    return ref_eval


def run_reference(ref_eval, submission: list[dict], gt: list[dict]) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        return ref_eval.eval_submission([dict(d) for d in submission], [dict(d) for d in gt], verbose=False)


def run_reference_buckets(ref_eval, submission: list[dict], gt: list[dict]) -> dict:
    """The reference's eval_moment_retrieval, bucket by bucket with its own functions, skipping the
    buckets without queries (where the reference crashes: short MeViS videos have no 'long' window)."""
    out = {}
    for (lo, hi), name in zip([[0, 10], [10, 30], [30, 150], [0, 150]], ["short", "middle", "long", "full"]):
        sub, g = ref_eval.get_data_by_range([dict(d) for d in submission], [dict(d) for d in gt], [lo, hi])
        if g:
            out[name] = {"MR-mAP": ref_eval.compute_mr_ap(sub, g, num_workers=1), "MR-R1": ref_eval.compute_mr_r1(sub, g)}
    return out


def mr_part(result: dict) -> dict:
    return {k: result[k] for k in ("full", "short", "middle", "long")} | {"brief": {k: v for k, v in result["brief"].items() if k.startswith("MR-")}}


def rvoskit_eval(submission: list[dict], gt: list[dict]) -> dict:
    r = M.eval_moment_retrieval(M.parse_ground_truth(gt), M.parse_predictions(submission))
    return mr_part(r)


def _gz_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# -- golden: published numbers and the reference on QVHighlights val ---------------------------------


def test_qvhighlights_val_sample_predictions_match_published_and_reference(reference):
    gt = _gz_jsonl(QVH / "highlight_val_release.mr.jsonl.gz")
    pred = _gz_jsonl(QVH / "sample_val_preds.mr.jsonl.gz")
    published = json.loads((QVH / "sample_val_preds_metrics_raw.json").read_text())
    ours = rvoskit_eval(pred, gt)
    assert ours == mr_part(published)
    assert ours == mr_part(run_reference(reference, pred, gt))


def _random_case(rng: np.random.Generator, n: int, *, integer: bool) -> tuple[list[dict], list[dict]]:
    gt, pred = [], []
    for q in range(n):
        G = int(rng.choice([1, 1, 1, 2, 3, 5]))
        starts = np.sort(rng.uniform(0, 140, G))
        lens = rng.choice([rng.uniform(0.5, 10), rng.uniform(10, 30), rng.uniform(30, 80)], G)
        w = np.stack([starts, np.minimum(starts + lens, 150)], 1)
        if integer:
            w = np.round(w)
            w[:, 1] = np.maximum(w[:, 1], w[:, 0] + 1)
        gt.append({"qid": int(q * 7 + 3), "duration": 150, "relevant_windows": w.tolist()})
        K = int(rng.integers(1, 14))  # more than 10 sometimes: only the first 10 count for mAP
        p = []
        for _ in range(K):
            if rng.random() < 0.5:  # near a GT window, sometimes exactly it (ties in IoU)
                s, e = w[rng.integers(G)]
                jit = 0 if rng.random() < 0.3 else rng.normal(0, 3, 2)
                s, e = float(s + np.atleast_1d(jit)[0]), float(e + np.atleast_1d(jit)[-1])
                if e <= s:
                    e = s + 1
            else:
                s = float(rng.uniform(0, 140))
                e = s + float(rng.uniform(1, 60))
            if integer:
                s, e = float(round(s)), float(max(round(e), round(s) + 1))
            score = float(rng.choice([0.5, 0.25, rng.random()]))  # repeated scores: the stable sort matters
            p.append([s, e, score])
        pred.append({"qid": int(q * 7 + 3), "pred_relevant_windows": p})
    order = rng.permutation(n)  # prediction order differs from the ground-truth order
    return [pred[i] for i in order], gt


@pytest.mark.parametrize("seed,integer", [(0, False), (1, True), (2, False)])
def test_random_cases_match_reference(reference, seed, integer):
    pred, gt = _random_case(np.random.default_rng(seed), 300, integer=integer)
    assert rvoskit_eval(pred, gt) == mr_part(run_reference(reference, pred, gt))


def test_reference_quirks_are_reproduced(reference):
    gt = [{"qid": 1, "relevant_windows": [[10, 20]]}, {"qid": 2, "relevant_windows": [[0, 10], [50, 70]]},
          {"qid": 3, "relevant_windows": [[30, 40]]}, {"qid": 4, "relevant_windows": [[0, 40]]}]
    pred = [
        # the exact window listed 11th, with the top score: outside the 10 windows mAP reads
        {"qid": 1, "pred_relevant_windows": [[60, 70, 0.1]] * 10 + [[10, 20, 0.99]]},
        # one of two GT windows found: AP = 50
        {"qid": 2, "pred_relevant_windows": [[0, 10, 0.9]]},
        # R1 takes the first listed window, not the best scored
        {"qid": 3, "pred_relevant_windows": [[0, 5, 0.1], [30, 40, 0.9]]},
        # IoU exactly 0.5 counts for R1@0.5 (>=)
        {"qid": 4, "pred_relevant_windows": [[20, 40, 0.5]]},
    ]
    ours = rvoskit_eval(pred, gt)
    assert ours == mr_part(run_reference(reference, pred, gt))
    ap = M.average_precision([M.parse_ground_truth(gt).windows[i] for i in range(2)],
                             [M.parse_predictions(pred).windows[i] for i in range(2)])
    assert ap[0].max() == 0 and ap[1, 0] == pytest.approx(0.5)
    assert ours["full"]["MR-R1"]["0.5"] == 50.0  # qid 2 (IoU 1 with [0, 10]) and qid 4 (IoU 0.5)


def test_mismatched_qids_and_empty_buckets():
    gt = M.parse_ground_truth([{"qid": 1, "relevant_windows": [[0, 5]]}, {"qid": 2, "relevant_windows": []}])
    with pytest.raises(RvosError, match="must match"):
        M.eval_moment_retrieval(gt, M.parse_predictions([{"qid": 1, "pred_relevant_windows": [[0, 5, 1]]}]))
    r = M.eval_moment_retrieval(gt, M.parse_predictions([{"qid": 1, "pred_relevant_windows": [[0, 5, 1]]},
                                                          {"qid": 2, "pred_relevant_windows": [[0, 5, 1]]}]))
    assert r["counts"]["skipped_queries"] == 1  # no window: the reference cannot score it
    assert r["brief"]["MR-full-R1@0.5"] == 100.0 and r["brief"]["MR-long-mAP"] is None


# -- MeViS-M datasets --------------------------------------------------------------------------------


def _overlay(root: Path, split: str, *, expression_level: bool) -> dict:
    """Spans for every expression of a generated MeViS split: whole-video moments, empty moments,
    several spans, touching spans (they merge)."""
    meta = json.loads((root / split / "meta_expressions.json").read_text())
    videos = {}
    for i, (vid, v) in enumerate(sorted(meta["videos"].items())):
        T = len(v["frames"])
        exps = {}
        for j, (eid, e) in enumerate(v["expressions"].items()):
            kind = (i + j) % 4
            spans = [[[0, T - 1]], [], [[1, 2], [3, 4]], [[0, 1], [T - 2, T - 1]]][kind]
            if expression_level:
                exps[eid] = spans
            elif e.get("obj_id"):
                objs = e["obj_id"]
                exps[eid] = {str(o): (spans if n == 0 else [[T // 2, T // 2]]) for n, o in enumerate(objs)}
        videos[vid] = exps
    return {"format": "rvoskit-mevis-m-overlay", "version": 1, "videos": videos}


@pytest.fixture(scope="module")
def mevis_m(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mevism")
    root = make_mevis(tmp / "mevis", split="train", num_videos=3, num_frames=10, height=48, width=64)
    out = {}
    for level in ("object", "expression"):
        ov = tmp / f"{level}.json"
        ov.write_text(json.dumps(_overlay(root, "train", expression_level=level == "expression")))
        out[level] = convert_mevis_m(root, "train", tmp / f"ds-{level}", overlay=ov)
    return root, out


def test_overlay_granularities(mevis_m):
    _, dss = mevis_m
    obj, expr = open_dataset(dss["object"]), open_dataset(dss["expression"])
    assert obj.moments["obj_id"].notna().all()
    assert expr.moments["obj_id"].isna().all() and len(expr.moments)
    assert validate_dataset(dss["expression"]) == [] and validate_dataset(dss["object"]) == []
    mom = expression_moments(expr)
    T = 10
    kinds = sorted(map(tuple, (tuple(map(tuple, s)) for s in mom.values())))
    assert ((0, T - 1),) in kinds and () in kinds  # whole video, empty
    assert ((1, 4),) in kinds  # touching spans 1..2, 3..4 merge
    # object level: the second object of the multi-object expression adds its middle frame
    mo = expression_moments(obj)
    multi = [e for e, o in zip(obj.expressions["expression_id"], obj.expressions["obj_ids"]) if len(o) > 1]
    assert all(any(a <= T // 2 <= b for a, b in mo[e]) for e in multi if mo[e])


def test_overlay_errors(mevis_m, tmp_path):
    root, _ = mevis_m
    base = _overlay(root, "train", expression_level=True)
    vid = sorted(base["videos"])[0]
    bad = json.loads(json.dumps(base))
    bad["videos"][vid]["0"] = [[0, 10]]  # frames 0..9: index 10 is outside
    (tmp_path / "o.json").write_text(json.dumps(bad))
    with pytest.raises(RvosError, match="outside 0..9"):
        convert_mevis_m(root, "train", tmp_path / "x", overlay=tmp_path / "o.json")
    assert not (tmp_path / "x").exists()
    mixed = json.loads(json.dumps(base))
    mixed["videos"][vid]["0"] = [[0, 1]]
    mixed["videos"][vid]["1"] = {"1": [[0, 1]]}
    mixed["videos"][vid]["2"] = [[0, 1]]
    (tmp_path / "m.json").write_text(json.dumps(mixed))
    convert_mevis_m(root, "train", tmp_path / "y", overlay=tmp_path / "m.json")  # different expressions: fine


def test_dataset_eval_equals_reference_on_exported_files(mevis_m, reference, tmp_path):
    _, dss = mevis_m
    ds = dss["object"]
    gt_file = tmp_path / "gt.jsonl"
    meta = export_moments(ds, "qvhighlights", gt_file, fps=3)
    gt = [json.loads(x) for x in gt_file.read_text().splitlines()]
    side = json.loads((tmp_path / "gt.jsonl.qids.json").read_text())
    e = open_dataset(ds).expressions
    assert meta["skipped_no_moment"] > 0 and meta["queries"] == len(gt)
    for d in gt:  # qid -> expression, window rule, duration
        eid = side["qids"][str(d["qid"])]
        assert e["expression_id"].iloc[d["qid"]] == eid and d["vid"] == eid.rsplit("/", 1)[0]
        assert d["duration"] == round(10 / 3, 2)
    whole = [d for d in gt if d["relevant_windows"] == [[0.0, round(10 / 3, 2)]]]
    assert whole  # span 0..9 (inclusive) -> [0, 10/3] seconds
    rng = np.random.default_rng(3)
    pred = [{"qid": d["qid"], "vid": d["vid"],
             "pred_relevant_windows": [[float(a), float(a + rng.uniform(0.3, 3)), float(rng.random())]
                                       for a in rng.uniform(0, 3, 4)] + [d["relevant_windows"][0] + [0.5]]} for d in gt]
    pf = tmp_path / "pred.jsonl"
    pf.write_text("".join(json.dumps(p) + "\n" for p in pred))
    res = runner.invoke(app, ["moments", "eval", str(ds), str(pf), "--fps", "3", "--out", str(tmp_path / "ev"), "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    ref = run_reference_buckets(reference, pred, gt)
    assert set(ref) == {"full", "short"}  # 10 frames at 3 fps: no middle or long window
    assert summary["full"] == ref["full"] and summary["short"] == ref["short"]
    assert summary["middle"]["MR-mAP"]["average"] is None and summary["brief"]["MR-long-mAP"] is None
    assert summary["fps"] == 3 and summary["brief"]["MR-full-mAP"] == ref["full"]["MR-mAP"]["average"]
    # the JSONL ground truth gives the same numbers as the dataset
    res2 = runner.invoke(app, ["moments", "eval", str(gt_file), str(pf), "-q"])
    assert res2.exit_code == 0 and json.loads(res2.output) == summary["brief"]
    # a prediction whose vid is not its qid's video: qids from another export
    pred[0]["vid"] = "elsewhere"
    pf.write_text("".join(json.dumps(p) + "\n" for p in pred))
    res3 = runner.invoke(app, ["moments", "eval", str(ds), str(pf), "--fps", "3"])
    assert res3.exit_code == 2 and "another export" in res3.output
    res4 = runner.invoke(app, ["moments", "eval", str(ds), str(pf)])
    assert res4.exit_code == 2 and "--fps" in res4.output


def test_exports(mevis_m, tmp_path):
    _, dss = mevis_m
    ds = dss["expression"]
    export_moments(ds, "charades-sta", tmp_path / "c.txt", fps=5)
    export_moments(ds, "chrono", tmp_path / "c.json", fps=5)
    lines = (tmp_path / "c.txt").read_text().splitlines()
    chrono = json.loads((tmp_path / "c.json").read_text())
    side = json.loads((tmp_path / "c.txt.qids.json").read_text())
    assert len(lines) == len(chrono) == side["queries"]
    e = open_dataset(ds).expressions.set_index("expression_id")
    for line, c in zip(lines, chrono):
        head, sent = line.split("##")
        vid, s, t = head.split(" ")
        eid = side["qids"][str(c["qid"])]
        assert vid == c["video"] == eid.rsplit("/", 1)[0] and sent == e.loc[eid, "text"] == c["query"]
        assert float(s) == c["relevant_windows"][0][0] and float(t) == c["relevant_windows"][-1][1]  # hull
    assert side["hulled"] == sum(len(c["relevant_windows"]) > 1 for c in chrono) > 0
    with pytest.raises(RvosError, match="exists"):
        export_moments(ds, "chrono", tmp_path / "c.json", fps=5)
    (tmp_path / "other.json").write_text("[]")
    with pytest.raises(RvosError, match="never replaced"):
        export_moments(ds, "chrono", tmp_path / "other.json", fps=5, overwrite=True)
    res = runner.invoke(app, ["moments", "export", str(ds), "--to", "qvhighlights", "--fps", "5", "-o", str(tmp_path / "q.jsonl")])
    assert res.exit_code == 0, res.output


def test_keyframe_accuracy(mevis_m, tmp_path):
    _, dss = mevis_m
    ds = open_dataset(dss["expression"])
    mom = expression_moments(ds)
    lines, expected1, expectedk = [], 0, 0
    n = 0
    for k, (eid, spans) in enumerate(mom.items()):
        if not spans:
            continue
        n += 1
        inside = [f for a, b in spans for f in range(a, b + 1)]
        outside = [f for f in range(10) if f not in inside]
        if k % 3 == 0:
            ranked = [inside[0]] + outside[:2]
            expected1 += 1
            expectedk += 1
        elif k % 3 == 1 and outside:
            ranked = outside[:1] + [inside[-1]]
            expectedk += 1
        else:
            ranked = outside[:3] or [inside[0]]
            expected1 += not outside
            expectedk += not outside
        key = {"qid": k} if k % 2 else {"expression_id": eid}
        lines.append({**key, "pred_keyframes": ranked})
    pf = tmp_path / "kf.jsonl"
    pf.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = runner.invoke(app, ["moments", "eval", str(dss["expression"]), str(pf), "--keyframes", "--top-k", "2", "-q"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["Top-1"] == round(100 * expected1 / n, 2) and out["Top-2"] == round(100 * expectedk / n, 2)
    lines[0]["pred_keyframes"] = [10]
    pf.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = runner.invoke(app, ["moments", "eval", str(dss["expression"]), str(pf), "--keyframes"])
    assert res.exit_code == 2 and "outside 0..9" in res.output


def test_drop_unannotated(tmp_path):
    root = make_mevis(tmp_path / "mevis", split="train", num_videos=3, num_frames=6, height=32, width=48, no_target=False)
    meta = json.loads((root / "train" / "meta_expressions.json").read_text())
    masks = json.loads((root / "train" / "mask_dict.json").read_text())
    vids = sorted(meta["videos"])
    for e in meta["videos"][vids[0]]["expressions"].values():  # every object of video 0: no valid mask
        for a in e["anno_id"]:
            masks[str(a)] = [None] * 6
    e1 = meta["videos"][vids[1]]["expressions"]
    single = [e for e in e1.values() if len(e["anno_id"]) == 1][0]
    masks[str(single["anno_id"][0])] = [None] * 6  # one object of video 1: its expression goes, the multi stays
    (root / "train" / "mask_dict.json").write_text(json.dumps(masks))
    ov = _overlay(root, "train", expression_level=False)
    (tmp_path / "o.json").write_text(json.dumps(ov))
    res = runner.invoke(app, ["convert", "mevis-m", str(root), "--split", "train", "--overlay", str(tmp_path / "o.json"),
                              "--drop-unannotated", "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    ds = open_dataset(tmp_path / "ds")
    rec = ds.manifest["dropped_unannotated"]
    n0 = len(meta["videos"][vids[0]]["expressions"])
    assert rec["videos"] == 1 and rec["dropped_videos"] == [vids[0]]
    assert rec["expressions"] == n0 + 1 and rec["expressions_with_some_target_unannotated"] == n0 + 2
    assert vids[0] not in set(ds.videos["video_id"]) and len(ds.expressions) == sum(len(v["expressions"]) for v in meta["videos"].values()) - n0 - 1
    assert set(ds.moments["expression_id"]) <= set(ds.expressions["expression_id"])
    assert validate_dataset(tmp_path / "ds") == []
    assert ds.manifest["counts"]["videos"] == 2
    assert "dropped" in res.output


def test_dataset_queries_need_moments(tmp_path):
    root = make_mevis(tmp_path / "m", split="train", num_videos=1, num_frames=4, height=32, width=32)
    from rvoskit.datasets.mevis import convert_mevis

    ds = convert_mevis(root, "train", tmp_path / "ds")
    with pytest.raises(RvosError, match="moments.parquet"):
        dataset_queries(ds, 5)


def test_info_moment_statistics(mevis_m):
    _, dss = mevis_m
    from rvoskit.datasets.info import dataset_info

    mo = dataset_info(dss["expression"])["moments"]
    ds = open_dataset(dss["expression"])
    mom = expression_moments(ds)
    with_m = [s for s in mom.values() if s]
    assert mo["expressions_with_moment"] == len(with_m) and mo["expressions_without_moment"] == len(mom) - len(with_m)
    assert mo["granularity"]["object"] == 0 and mo["granularity"]["expression"] == len(ds.moments)
    assert mo["whole_video"] == sum(s == [(0, 9)] for s in with_m)
    assert mo["coverage"]["max"] == 1.0 and mo["spans_per_expression"]["max"] == 2
    # objects outside: count it directly from the masks
    m = ds.masks(columns=["video_id", "obj_id", "frame_idx", "area"])
    m = m[m["area"] > 0]
    pairs = outside = 0
    for eid, vid, objs in zip(ds.expressions["expression_id"], ds.expressions["video_id"], ds.expressions["obj_ids"]):
        inside = {f for a, b in mom[eid] for f in range(a, b + 1)}
        for o in objs:
            f = set(m.loc[(m["video_id"] == vid) & (m["obj_id"] == o), "frame_idx"])
            if f:
                pairs += 1
                outside += bool(f - inside)
    assert mo["objects_outside_moment"]["pairs"] == pairs and mo["objects_outside_moment"]["visible_outside"] == outside
    obj = dataset_info(dss["object"])["moments"]
    od = open_dataset(dss["object"])
    with_span = od.moments.groupby("expression_id")["obj_id"].apply(set).to_dict()
    expected = sum(sum(o not in with_span[e] for o in objs) for e, objs in zip(od.expressions["expression_id"], od.expressions["obj_ids"])
                   if e in with_span)
    assert obj["granularity"]["expression"] == 0 and obj["targets_without_span"] == expected > 0
    res = runner.invoke(app, ["info", str(dss["object"])])
    assert res.exit_code == 0 and "moment coverage" in res.output, res.output


def test_eval_moments_inside_outside(mevis_m, tmp_path):
    """Predictions = the ground truth inside the moment, empty outside: inside J = F = 1; outside a frame
    scores 1 exactly when the ground truth is empty there (both empty) and 0 otherwise."""
    from rvoskit.format import rle as rlemod
    from rvoskit.format.predictions import write_predictions

    _, dss = mevis_m
    ds = open_dataset(dss["object"])
    mom = expression_moments(ds)
    rows, expect_out = [], []
    for eid, vid, exp_id, objs in zip(ds.expressions["expression_id"], ds.expressions["video_id"], ds.expressions["exp_id"], ds.expressions["obj_ids"]):
        v = ds.video(vid)
        T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
        m = ds.masks(vid)
        inside = np.zeros(T, bool)
        for a, b in mom[eid]:
            inside[a : b + 1] = True
        empty_gt = []
        for t in range(T):
            gt = np.zeros((H, W), np.uint8)
            for r in m[(m["frame_idx"] == t) & m["obj_id"].isin([int(o) for o in objs])].itertuples():
                gt |= rlemod.decode(r.rle, H, W)
            empty_gt.append(not gt.any())
            pred = gt if inside[t] else np.zeros_like(gt)
            rows.append({"expression_id": eid, "video_id": vid, "exp_id": exp_id, "frame_idx": t, "height": H, "width": W,
                         "rle": rlemod.encode(pred), "area": int(pred.sum()), "score": None})
        if (~inside).any():
            expect_out.append(np.mean(np.array(empty_gt)[~inside]))
    write_predictions(tmp_path / "pred", rows, dataset=dss["object"])
    res = runner.invoke(app, ["eval", str(dss["object"]), str(tmp_path / "pred"), "--moments", "--out", str(tmp_path / "ev"), "-q"])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "ev" / "summary.json").read_text())["moments"]
    n_in = sum(1 for v in mom.values() if v)
    assert s["inside"]["J"] == 1.0 and s["inside"]["F"] == 1.0 and s["inside"]["n_expressions"] == n_in
    assert s["outside"]["n_expressions"] == len(expect_out) and s["outside"]["J"] == pytest.approx(np.mean(expect_out))
    assert s["outside"]["J&F"] == pytest.approx(np.mean(expect_out)) and s["outside"]["J"] < 1
    assert s["all"]["n_expressions"] == len(mom)
    import pandas as pd

    items = pd.read_parquet(tmp_path / "ev" / "per_expression.parquet")
    assert {"J_inside", "J_outside", "n_inside"} <= set(items.columns)
    res = runner.invoke(app, ["eval", str(dss["object"]), str(tmp_path / "pred"), "--moments", "--protocol", "davis-semi"])
    assert res.exit_code == 2 and "--moments needs --protocol mevis" in res.output


def test_pseudolabel_moments_oss(tmp_path):
    """OSS known answers: an object's IoU counts only inside its moment; expression-level spans stand for
    every object; an object without a span cannot make a positive; no span at all: every frame."""
    import pandas as pd
    from test_pseudolabel import A, B, HALF_A, Z, H, T, W, make_dataset, make_store, row

    from rvoskit import labels as L
    from rvoskit.format import write_table

    objects = {1: {0: A, 1: A, 2: A}, 2: {0: B, 1: B, 2: Z}}
    ds = make_dataset(tmp_path / "ds", {"v1": {"size": (H, W), "T": T, "objects": objects, "expressions": [[1], [1, 2], [], [2]]}})
    spans = [("v1/0", 1, 0, 1), ("v1/1", 1, 2, 2), ("v1/3", None, 3, 3)]
    write_table(ds / "moments.parquet", "moments", [
        {"expression_id": e, "video_id": "v1", "obj_id": o, "start_idx": a, "end_idx": b, "start_frame": f"{a:05d}", "end_frame": f"{b:05d}"}
        for e, o, a, b in spans])
    tracks = np.stack([np.stack([A, A, A, Z]), np.stack([HALF_A, HALF_A, A, Z]), np.stack([A | B, A | B, A, Z])])
    store = make_store(tmp_path / "grid", {"v1": tracks})
    meta = L.pseudolabel([store], ds, tmp_path / "oss", resolution="native", moments=True)
    t = pd.read_parquet(tmp_path / "oss" / "labels.parquet")
    assert row(t, "v1/0", 1)["miou_max"] == pytest.approx(0.5)  # frames 0-1 only; all frames would give 0.75
    assert row(t, "v1/0", 2)["miou_max"] == pytest.approx(0.5) and row(t, "v1/0", 0)["miou_max"] == 1.0
    r = row(t, "v1/1", 1)
    assert list(r["miou_per_obj"])[0] == 1.0 and np.isnan(list(r["miou_per_obj"])[1])  # object 2 has no span
    assert r["miou_max"] == 1.0 and r["miou_union"] == 1.0 and r["moment_rule"] == "object-moment"
    r = row(t, "v1/3", 1)
    assert r["moment_rule"] == "expression-moment" and r["miou_max"] == 1.0  # frame 3: both empty
    r = row(t, "v1/2", 1)
    assert r["moment_rule"] == "no-moment" and r["miou_union"] == pytest.approx(0.25) and np.isnan(r["miou_max"])
    assert meta["moments"]["expressions_per_rule"] == {"object-moment": 2, "expression-moment": 1, "no-moment": 1}
    from rvoskit.selection.moments import positive_objects

    pos = positive_objects(tmp_path / "oss")
    assert pos[("v1/0", "grid", 0)] == (1,) and ("v1/0", "grid", 1) not in pos  # track 1: 0.5, not positive
    # without --moments: every frame, no rule
    plain = L.pseudolabel([store], ds, tmp_path / "plain", resolution="native")
    p = pd.read_parquet(tmp_path / "plain" / "labels.parquet")
    assert row(p, "v1/0", 1)["miou_max"] == pytest.approx(0.75) and p["moment_rule"].isna().all() and "moments" not in plain
    os_ds = make_dataset(tmp_path / "ds2", {"v1": {"size": (H, W), "T": T, "objects": objects, "expressions": [[1]]}})
    res = runner.invoke(app, ["pseudolabel", str(os_ds), "--tracks", str(store), "--moments", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "moments.parquet" in res.output


def test_moment_sample_frames_rule():
    from rvoskit.selection.moments import moment_sample_frames

    rng = np.random.default_rng(0)
    moment = np.zeros(20, bool)
    moment[5:9] = True
    for _ in range(20):
        f = moment_sample_frames(moment, 6, rng)
        assert len(f) == 6 == len(set(f)) and list(f) == sorted(f)
        assert moment[f].sum() == 3  # half inside
    f = moment_sample_frames(moment, 12, rng)
    assert moment[f].sum() == 4 and len(f) == 12  # only 4 frames inside: the outside fills in
    assert len(moment_sample_frames(np.zeros(20, bool), 5, rng)) == 5  # no moment: uniform
    assert list(moment_sample_frames(moment, 30, rng)) == list(range(20))  # more than T: every frame
    with pytest.raises(RvosError):
        moment_sample_frames(moment, 0, rng)


def test_train_moment_sampling(tmp_path):
    import torch
    from test_train_selection import TINY

    from rvoskit.format import write_table
    from rvoskit.selection.data import TokenCache, make_batch, open_stores, parse_track_sources, labelled_samples
    from rvoskit.selection.moments import MomentSampler
    from rvoskit.selection.synthetic import make_synthetic

    w = make_synthetic(tmp_path / "syn", videos=4, frames=(10, 14), expressions=2, seed=3)
    ds = open_dataset(w["dataset"])
    rows = []
    for eid, vid in zip(ds.expressions["expression_id"], ds.expressions["video_id"]):
        T = int(ds.video(vid)["num_frames"])
        rows.append({"expression_id": eid, "video_id": vid, "obj_id": None, "start_idx": 2, "end_idx": 5,
                     "start_frame": ds.video(vid)["frames"][2], "end_frame": ds.video(vid)["frames"][5]})
    write_table(Path(w["dataset"]) / "moments.parquet", "moments", rows)
    # the crop: one block per expression, its sampled frames, half inside frames 2..5
    stores = open_stores(parse_track_sources([f"{k}={v}" for k, v in w["tracks"].items()]))
    samples = labelled_samples(ds, stores, w["labels"], "syn")
    from rvoskit.selection.text import TextFeature

    feats = {s.text: TextFeature(np.ones((3, 8), np.float32), np.ones(8, np.float32)) for s in samples}
    batch = make_batch(samples[:4], feats, TokenCache({"syn": stores}))
    sampler = MomentSampler({"syn": w["dataset"]}, 4)
    crop = sampler.crop(batch, np.random.default_rng(0))
    assert crop.tokens.shape[0] == 4 and crop.tokens.shape[2] == 4 and bool(crop.frame_mask.all())
    assert sampler.counts == {"moment": 4, "uniform": 0, "oss_removed": 0}
    g = batch.group.numpy()
    for b in range(4):
        full = batch.tokens[int(g[b])]
        picked = [t for t in range(full.shape[1]) if any(torch.equal(full[:, t], crop.tokens[b, :, k]) for k in range(4))]
        assert len(picked) == 4 and sum(2 <= t <= 5 for t in picked) == 2
    # the option, end to end
    args = ["train", w["dataset"], "--tracks", f"gt={w['tracks']['gt']}", "--tracks", f"grid={w['tracks']['grid']}",
            "--labels", w["labels"], "--out", str(tmp_path / "run"), "--epochs", "1", "--moment-sampling", "4",
            "--text-cache", str(tmp_path / "tc")] + [a for o in TINY for a in ("--set", o)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "moment_sampling: 4" in (tmp_path / "run" / "config.yaml").read_text()


def test_viz_dataset_moment_timeline(mevis_m):
    from rvoskit.viz import draw
    from rvoskit.viz.render import dataset_scene, scene_sheet

    _, dss = mevis_m
    ds = open_dataset(dss["expression"])
    vid = ds.videos.index[0]
    scene = dataset_scene(ds, vid)
    sheet = scene_sheet(scene, frames=5, tile_width=100, alpha=0.5)
    mom = expression_moments(ds)
    T = 10
    for r, row in enumerate(scene.rows):
        x, y, w, h = sheet.cells[(r, 0)]
        if row.expression_id is None:  # the all-objects row has no timeline
            assert row.moment is None
            continue
        inside = np.zeros(T, bool)
        for a, b in mom[row.expression_id]:
            inside[a : b + 1] = True
        assert (row.moment == inside).all() and any(str(s).startswith("moment:") for s in row.label)
        x1 = sheet.cells[(r, 4)][0] + sheet.cells[(r, 4)][2]
        band = sheet.image[y + h + 2 : y + h + 2 + draw.TIMELINE_HEIGHT - 7, x:x1]  # above the ticks
        width = x1 - x
        for t in range(T):  # the middle of each frame's stretch has the moment colour exactly when inside
            px = band[:, int((t + 0.5) * width / T)]
            assert (px == np.array(draw.MOMENT)).all(axis=-1).all() == inside[t]
    _, y, _, h = sheet.legend
    assert (sheet.image[y : y + h] == np.array(draw.MOMENT)).all(axis=-1).sum() >= 50


def test_validate_reports_bad_spans(mevis_m, tmp_path):
    import shutil

    from rvoskit.format import write_table

    _, dss = mevis_m
    bad = tmp_path / "bad"
    shutil.copytree(dss["object"], bad)
    m = open_dataset(bad).table("moments").to_pylist()
    e = open_dataset(bad).expressions
    eid = m[0]["expression_id"]
    vid = m[0]["video_id"]
    non_target = next(int(o) for o in open_dataset(bad).objects.query("video_id == @vid")["obj_id"]
                      if int(o) not in set(int(x) for x in e.loc[eid, "obj_ids"]))
    m += [dict(m[0], obj_id=None, start_idx=0, end_idx=0),  # both granularities in one expression
          dict(m[0], obj_id=non_target),  # not a target
          dict(m[0], start_idx=m[0]["end_idx"], end_idx=m[0]["end_idx"])]  # overlaps the first span
    m.sort(key=lambda r: (r["video_id"], r["expression_id"], -1 if r["obj_id"] is None else r["obj_id"], r["start_idx"]))
    write_table(bad / "moments.parquet", "moments", m)
    problems = "\n".join(validate_dataset(bad))
    assert "both object-level and expression-level" in problems
    assert "not a target of the expression" in problems
    assert "overlaps the previous span" in problems


def test_training_oss_takes_out_positive_tracks_whose_objects_miss_the_crop():
    import torch

    from rvoskit.selection.data import Sample
    from rvoskit.selection.moments import MomentSampler

    sampler = MomentSampler.__new__(MomentSampler)
    T = 10
    a, b = np.zeros(T, bool), np.zeros(T, bool)
    a[0:2], b[8:10] = True, True
    sampler.objects = {"s": {"v/0": {1: a, 2: b}}}
    sampler.positives = {"s": {("v/0", "gt", 0): (1,), ("v/0", "gt", 1): (2,), ("v/0", "gt", 2): (1, 2)}}
    sampler.counts = {"oss_removed": 0}
    s = Sample("v/0", "v", "x", (("gt", 0), ("gt", 1), ("gt", 2), ("gt", 3)), np.array([1, 1, 1, 0], np.float32), dataset="s")
    mask = torch.ones(4, dtype=torch.bool)
    sampler._oss(s, np.array([5, 8]), mask)
    assert mask.tolist() == [False, True, True, True] and sampler.counts["oss_removed"] == 1
    mask = torch.ones(4, dtype=torch.bool)
    sampler._oss(s, np.array([0, 9]), mask)  # both objects seen: nothing taken out
    assert mask.all()
