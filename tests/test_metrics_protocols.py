"""Protocol arithmetic on hand-built cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvoskit.metrics.protocols import (
    davis_semi_frames,
    davis_summary,
    davis_unsup_frames,
    db_statistics,
    merge_label_map,
    mevis_summary,
)


def test_mevis_summary_weights_expressions_equally():
    s = mevis_summary([1.0, 0.5, 0.0], [1.0, 0.25, 0.0])
    assert s == {"J": 0.5, "F": 1.25 / 3, "J&F": (0.5 + 1.25 / 3) / 2}
    assert all(math.isnan(v) for v in mevis_summary([], []).values())


def test_db_statistics_mean_recall_decay():
    v = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    M, R, D = db_statistics(v)
    # 10 frames: bin edges round(linspace(1, 10, 5)) - 1 = [0, 2, 5, 7, 9] -> first bin v[0:3], last v[7:10]
    assert M == float(np.mean(v))
    assert R == 0.5  # 1.0, 0.9, 0.8, 0.7, 0.6 are above 0.5
    assert D == float(np.mean(v[0:3]) - np.mean(v[7:10]))  # (1.0+0.9+0.8)/3 - (0.3+0.2+0.1)/3


def test_db_statistics_recall_counts_strictly_above_half():
    assert db_statistics(np.array([0.5, 0.51, 1.0, 0.0]))[1] == 0.5


def test_davis_summary_pools_objects():
    j = [np.array([1.0, 1.0]), np.array([0.0, 0.5])]
    f = [np.array([0.5, 0.5]), np.array([0.0, 0.0])]
    s = davis_summary(j, f)
    assert s["J-Mean"] == (1.0 + 0.25) / 2 and s["F-Mean"] == 0.25
    assert s["J&F-Mean"] == (s["J-Mean"] + s["F-Mean"]) / 2
    assert s["J-Recall"] == 0.5 and s["F-Recall"] == 0.0


def test_merge_label_map_lowest_obj_id_wins_like_argmax():
    H, W = 6, 8
    m1, m2, m3 = (np.zeros((H, W), np.uint8) for _ in range(3))
    m1[0:4, 0:4] = 1
    m2[2:6, 2:6] = 1
    m3[0:2, 6:8] = 1
    lab = merge_label_map([(3, m3), (2, m2), (1, m1)], (H, W))
    # ReferFormer: argmax over [0.1 background, mask_1, mask_2, mask_3] on binary masks
    ref = np.argmax(np.stack([np.full((H, W), 0.1), m1, m2, m3]), axis=0)
    assert np.array_equal(lab, ref)
    assert lab[3, 3] == 1 and lab[5, 5] == 2 and lab[0, 7] == 3 and lab[5, 0] == 0


def _objects():
    T, H, W = 3, 20, 20
    a = np.zeros((T, H, W), np.uint8)
    b = np.zeros((T, H, W), np.uint8)
    a[:, 2:8, 2:8] = 1
    b[:, 10:18, 10:18] = 1
    return a, b


def test_unsupervised_matching_finds_swapped_labels():
    a, b = _objects()
    labels = np.zeros_like(a)
    labels[b == 1] = 1  # proposal 1 is object b
    labels[a == 1] = 2  # proposal 2 is object a
    labels[:, 0, 0] = 3  # a stray proposal
    J, F, props, objs = davis_unsup_frames([a, b], labels, None)
    assert list(props) == [1, 2] and list(objs) == [1, 0]  # reference order: ascending proposal
    assert (J == 1).all() and (F == 1).all()


def test_unsupervised_pads_missing_proposals_and_limits_to_20():
    a, b = _objects()
    labels = np.zeros_like(a)
    labels[a == 1] = 1
    J, F, _, objs = davis_unsup_frames([a, b], labels, None)
    got = {int(o): (J[i].mean(), F[i].mean()) for i, o in enumerate(objs)}
    assert got[0] == (1.0, 1.0) and got[1] == (0.0, 0.0)  # object b matched to an empty proposal
    labels[0, 0, 0] = 21
    with pytest.raises(ValueError, match="21"):
        davis_unsup_frames([a, b], labels, None)


def test_unsupervised_void_pixels_are_ignored():
    a, b = _objects()
    labels = np.zeros_like(a)
    labels[a == 1] = 1
    labels[b == 1] = 2
    labels[:, 12:14, :] = 0  # the prediction misses a band ...
    void = np.zeros_like(a)
    void[:, 12:14, :] = 1  # ... that is void
    J, F, _, _ = davis_unsup_frames([a, b], labels, void)
    assert (J == 1).all() and (F == 1).all()
    J2, _, _, _ = davis_unsup_frames([a, b], labels, None)
    assert J2[1].max() < 1


def test_semi_supervised_labels_are_object_ids():
    a, b = _objects()
    labels = np.zeros_like(a)
    labels[a == 1] = 1  # object 2 missing from the result: zero-padded, J = 0
    J, F = davis_semi_frames([a, b], labels)
    assert (J[0] == 1).all() and (J[1] == 0).all() and (F[1] == 0).all()
    labels[0, 0, 0] = 3
    with pytest.raises(ValueError, match="label 3"):
        davis_semi_frames([a, b], labels)
