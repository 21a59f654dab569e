"""Submission zips: layouts, PNG content, palette, round trip through rvoskit eval, bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_eval import OSVOS, build_dataset, prediction_rows, read_labels

from rvoskit.datasets.submission import DAVIS_PALETTE, export_submission
from rvoskit.errors import RvosError
from rvoskit.format.predictions import write_predictions
from rvoskit.metrics import evaluate


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sub")
    frames, gt = read_labels(OSVOS / "judo", 4)
    exprs = [(str(4 * (o - 1) + k), [o], 1 + k // 2, ("first_frame", "full_video")[k % 2]) for o in (1, 2) for k in range(4)]
    ds = build_dataset(tmp / "ds", {"judo": {"frames": frames, "labels": gt, "expressions": exprs}}, dataset="refdavis")
    preds = {}
    for o in (1, 2):
        for k in range(4):
            m = (gt == o).astype(np.uint8)
            if o == 2:  # object 2's prediction overlaps object 1 on a band
                m[:, 150:170, :] |= (gt[:, 150:170, :] == 1).astype(np.uint8)
            preds[("judo", str(4 * (o - 1) + k))] = m
    pred = write_predictions(tmp / "pred", prediction_rows(preds), dataset=ds)
    return {"ds": ds, "pred": pred, "preds": preds, "frames": frames, "gt": gt, "tmp": tmp}


def _png(zf: zipfile.ZipFile, name: str) -> Image.Image:
    return Image.open(io.BytesIO(zf.read(name)))


@pytest.mark.parametrize("to,prefix", [("mevis-submission", ""), ("refytvos-submission", "Annotations/")])
def test_mevis_and_refytvos_layout_and_round_trip(case, to, prefix, tmp_path):
    out = export_submission(case["pred"], to, tmp_path / "sub.zip")
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        assert len(names) == 8 * 4
        assert names[0] == f"{prefix}judo/0/{case['frames'][0]}.png"
        im = _png(zf, f"{prefix}judo/4/{case['frames'][2]}.png")
        assert im.mode == "L"
        a = np.array(im)
        assert set(np.unique(a)) <= {0, 255}
        assert np.array_equal(a != 0, case["preds"][("judo", "4")][2] != 0)
        zf.extractall(tmp_path / "x")
    # the unpacked zip scores exactly like the table it came from
    want = evaluate(case["ds"], case["pred"], "mevis").items
    got = evaluate(case["ds"], tmp_path / "x", "mevis").items
    assert want[["J", "F"]].equals(got[["J", "F"]])


def test_davis_palette_pngs_per_set_and_overlap_rule(case, tmp_path, data_dir):
    out = export_submission(case["pred"], "davis", tmp_path / "davis.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert names == {f"anno_{k}/judo/{f}.png" for k in range(4) for f in case["frames"]}
        im = _png(zf, f"anno_2/judo/{case['frames'][1]}.png")
        assert im.mode == "P"
        lab = np.array(im)
        gt = case["gt"][1]
        # overlap band: object 1 wins (lowest obj_id, ReferFormer's argmax on binary masks)
        band = gt[150:170] == 1
        assert (lab[150:170][band] == 1).all()
        assert np.array_equal(lab[gt == 2], np.full((gt == 2).sum(), 2, np.uint8))
        pal = np.array(im.getpalette()[:768], np.uint8).reshape(-1, 3)
    # the palette is the DAVIS one: equal to the real DAVIS result PNGs' palette
    real = Image.open(data_dir / "davis17_eval_sample_results" / "semi-supervised" / "osvos" / "judo" / "00000.png")
    real_pal = np.array(real.getpalette(), np.uint8).reshape(-1, 3)
    n = min(len(real_pal), 256)
    assert np.array_equal(DAVIS_PALETTE[:n], real_pal[:n]) and np.array_equal(pal[:n], real_pal[:n])
    # one set at the zip root (DAVIS CodaLab layout), scored like the table through ref-davis
    one = export_submission(case["pred"], "davis", tmp_path / "one.zip", anno_set=1)
    with zipfile.ZipFile(one) as zf:
        assert min(zf.namelist()) == f"judo/{case['frames'][0]}.png"
        zf.extractall(tmp_path / "one")
    a = evaluate(case["ds"], tmp_path / "one", "davis-unsup").summary
    b = evaluate(case["ds"], case["pred"], "davis-unsup", anno_set=1).summary
    assert a["J&F-Mean"] == b["J&F-Mean"]


def test_missing_frames_unsafe_ids_and_unknown_target(case, tmp_path):
    rows = [r for r in prediction_rows(case["preds"]) if not (r["exp_id"] == "0" and r["frame_idx"] == 2)]
    pred = write_predictions(tmp_path / "p", rows, dataset=case["ds"])
    with pytest.raises(RvosError, match="without a prediction") as ei:
        export_submission(pred, "mevis-submission", tmp_path / "a.zip")
    assert "judo/0" in str(ei.value)
    assert not (tmp_path / "a.zip").exists()  # nothing half-written
    out = export_submission(pred, "mevis-submission", tmp_path / "b.zip", missing="empty")
    with zipfile.ZipFile(out) as zf:
        assert not np.array(_png(zf, f"judo/0/{case['frames'][2]}.png")).any()
    with pytest.raises(RvosError, match="unknown export target"):
        export_submission(case["pred"], "coco", tmp_path / "c.zip")
    with pytest.raises(RvosError, match="Ref-DAVIS17"):
        export_submission(_mevis_like(tmp_path), "davis", tmp_path / "d.zip")


def _mevis_like(tmp_path: Path) -> Path:
    lab = np.zeros((2, 8, 8), np.uint8)
    lab[:, 2:5, 2:5] = 1
    ds = build_dataset(tmp_path / "m", {"v": {"frames": ["a", "b"], "labels": lab, "expressions": [("0", [1], None, None)]}})
    return write_predictions(tmp_path / "mp", prediction_rows({("v", "0"): lab}), dataset=ds)


def test_ids_that_would_escape_the_zip_root_are_refused(tmp_path):
    lab = np.zeros((1, 8, 8), np.uint8)
    lab[:, 2:5, 2:5] = 1
    ds = build_dataset(tmp_path / "ds", {"..": {"frames": ["00000"], "labels": lab, "expressions": [("0", [1], None, None)]}})
    pred = write_predictions(tmp_path / "p", prediction_rows({("..", "0"): lab}), dataset=ds)
    with pytest.raises(RvosError, match="cannot be a zip member"):
        export_submission(pred, "mevis-submission", tmp_path / "z.zip")
