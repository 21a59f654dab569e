"""``import rvoskit``: the stage functions a notebook needs, loaded lazily (README "Python")."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np

import rvoskit

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "refdavis-judo"


def test_import_is_light():
    code = "import sys, rvoskit; print(sorted(m for m in ('torch', 'pandas', 'pyarrow', 'cv2', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_public_name_resolves_and_is_documented():
    for name in rvoskit.__all__:
        value = getattr(rvoskit, name)
        if name == "__version__":
            continue
        assert callable(value), name
        assert inspect.getdoc(value), f"rvoskit.{name} has no docstring"
        assert name in dir(rvoskit)
    for stage in ("open_dataset", "convert_refdavis", "generate_tracks", "pseudolabel", "corrupt_dataset", "train",
                  "predict", "evaluate", "read_predictions", "open_trackstore", "export_submission"):
        assert stage in rvoskit.__all__


def test_notebook_round_trip(tmp_path):
    """convert -> open -> expression_masks -> predictions from the ground truth -> evaluate = 1.0."""
    from rvoskit.format import rle

    rvoskit.convert_refdavis(EXAMPLE, "val", tmp_path / "ds")
    ds = rvoskit.open_dataset(tmp_path / "ds")
    objects = ds.object_masks("judo")
    gt = ds.expression_masks("judo/0")
    assert gt.shape == (16, 480, 854) and gt.dtype == np.uint8
    want = np.zeros_like(gt)
    for o in ds.expressions.loc["judo/0", "obj_ids"]:
        want |= objects[int(o)]
    assert np.array_equal(gt, want) and gt.any()
    rows = []
    for eid, e in ds.expressions.iterrows():
        masks = ds.expression_masks(eid)
        for t, m in enumerate(masks):
            rows.append({"expression_id": eid, "video_id": e["video_id"], "exp_id": e["exp_id"], "frame_idx": t,
                         "height": m.shape[0], "width": m.shape[1], "rle": rle.encode(m), "area": int(m.sum())})
    rvoskit.write_predictions(tmp_path / "pred", rows, dataset=tmp_path / "ds")
    preds, _ = rvoskit.read_predictions(tmp_path / "pred")
    assert len(preds) == len(ds.expressions) * 16
    result = rvoskit.evaluate(tmp_path / "ds", tmp_path / "pred", "ref-davis")
    assert result.summary["protocol"] == "ref-davis"
    assert abs(result.summary["J&F"] - 1.0) < 1e-9
