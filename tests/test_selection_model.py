"""The selection model: SOLA's parameter count, shapes, padding invariance, shared encodings, losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rvoskit.selection.losses import alignment_loss, selection_bce
from rvoskit.selection.model import (
    TrackSelectionModel,
    count_parameters,
    masked_group_norm,
    parameter_report,
)

torch.set_num_threads(1)

TINY = dict(width=32, motion_hidden=48, layers=2, heads=4, negatives=5, groups=4, groups_layer=4)


def test_sola_configuration_has_32_98_m_parameters():
    # SOLA configs/mevis/default.yaml: RoBERTa-large words (1024), 256-d object tokens, 2 layers, 32 negatives.
    with torch.device("meta"):
        model = TrackSelectionModel(1024)
    assert model.text_proj is None  # width follows the text encoder: no projection
    assert count_parameters(model) == 32_980_480
    assert count_parameters(model.short_motion_encoder) == 7_745_024
    assert count_parameters(model.object_lang_align_layers[0]) == 12_601_344
    assert parameter_report(model).startswith("32.98 M trainable parameters")


def test_width_follows_text_encoder_unless_set():
    assert TrackSelectionModel(384, **{**TINY, "width": None}).width == 384
    m = TrackSelectionModel(384, **TINY)
    assert m.width == 32 and m.text_proj.in_features == 384


@pytest.mark.parametrize("T,expected", [(1, 1), (7, 1), (8, 1), (9, 2), (30, 4), (64, 8), (100, 13), (200, 25)])
def test_motion_encoder_downsamples_by_8(T, expected):
    torch.manual_seed(0)
    model = TrackSelectionModel(16, **TINY).eval()
    x, _ = model.encode_motion(torch.randn(2, 3, T, 256), None)
    assert x.shape == (2, 3, expected, 32)


def _expression(n, t, l, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, 256, generator=g), torch.randn(l, d, generator=g)


def _pad(items):
    """Pad [(tokens (N,T,C), words (L,D))] with garbage (large random values) and build masks."""
    B = len(items)
    N = max(t.shape[0] for t, _ in items)
    T = max(t.shape[1] for t, _ in items)
    L = max(w.shape[0] for _, w in items)
    tokens = 50 * torch.randn(B, N, T, 256)
    words = 50 * torch.randn(B, L, items[0][1].shape[1])
    tm, fm, wm = torch.zeros(B, N, dtype=torch.bool), torch.zeros(B, T, dtype=torch.bool), torch.zeros(B, L, dtype=torch.bool)
    for b, (t, w) in enumerate(items):
        tokens[b, : t.shape[0], : t.shape[1]] = t
        words[b, : w.shape[0]] = w
        tm[b, : t.shape[0]] = True
        fm[b, : t.shape[1]] = True
        wm[b, : w.shape[0]] = True
    return tokens, words, tm, fm, wm


def test_padding_does_not_change_results():
    torch.manual_seed(1)
    model = TrackSelectionModel(24, **TINY).eval()
    items = [_expression(3, 9, 4, seed=1), _expression(6, 30, 7, seed=2), _expression(1, 17, 2, seed=3), _expression(4, 8, 5, seed=4)]
    tokens, words, tm, fm, wm = _pad(items)
    with torch.no_grad():
        logits, pooled = model(tokens, words, tm, fm, wm)
        for b, (t, w) in enumerate(items):
            alone, alone_pooled = model(t[None], w[None])
            n = t.shape[0]
            torch.testing.assert_close(logits[b, :n], alone[0], atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(pooled[b, :n], alone_pooled[0], atol=2e-5, rtol=1e-4)
            assert torch.all(logits[b, n:] == 0)
    # the padded values really are ignored: other garbage, same result
    tokens2, words2, *_ = _pad(items)
    with torch.no_grad():
        again, _ = model(tokens2, words2, tm, fm, wm)
    torch.testing.assert_close(again, logits, atol=2e-5, rtol=1e-4)


def test_shared_candidate_sets_give_the_same_scores():
    torch.manual_seed(2)
    model = TrackSelectionModel(24, **TINY).eval()
    video_a, _ = _expression(5, 21, 1, seed=5)
    video_b, _ = _expression(3, 12, 1, seed=6)
    texts = [_expression(1, 1, L, seed=10 + L)[1] for L in (3, 6, 4)]
    # expressions 0 and 1 refer into video a, expression 2 into video b
    tokens, _, tm, fm, _ = _pad([(video_a, texts[0]), (video_b, texts[0])])
    _, words, _, _, wm = _pad([(video_a, w) for w in texts])
    with torch.no_grad():
        shared, _ = model(tokens, words, tm, fm, wm, group=torch.tensor([0, 0, 1]))
        for b, (vid, w) in enumerate([(video_a, texts[0]), (video_a, texts[1]), (video_b, texts[2])]):
            alone, _ = model(vid[None], w[None])
            torch.testing.assert_close(shared[b, : vid.shape[0]], alone[0], atol=2e-5, rtol=1e-4)


def test_masked_group_norm_equals_group_norm_on_the_valid_part():
    torch.manual_seed(3)
    norm = torch.nn.GroupNorm(4, 16)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, 16, 10)
    lengths = [10, 4, 7]
    mask = torch.arange(10)[None, :] < torch.tensor(lengths)[:, None]
    y = masked_group_norm(x, mask, norm)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(y[b, :, :n], norm(x[b : b + 1, :, :n])[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(y).all()


def test_training_mode_gradients_reach_every_parameter():
    torch.manual_seed(4)
    model = TrackSelectionModel(24, **TINY).train()
    tokens, words, tm, fm, wm = _pad([_expression(3, 9, 4, seed=1), _expression(2, 20, 6, seed=2)])
    logits, pooled = model(tokens, words, tm, fm, wm)
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 0]])
    loss = selection_bce(logits, labels, tm) + alignment_loss(pooled, labels, tm, model.project_sentence(words.mean(1)), model.negative_token.weight)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_bce_weights_positives_and_ignores_padded_tracks():
    logits = torch.tensor([[2.0, -1.0, 0.5, 99.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    per = F.binary_cross_entropy_with_logits(logits[0, :3], labels[0, :3], reduction="none")
    expected = (1.5 * per[0] + per[1] + 1.5 * per[2]) / 3
    torch.testing.assert_close(selection_bce(logits, labels, mask, 1.5), expected)


def test_alignment_loss_follows_sola_definition():
    torch.manual_seed(5)
    N, K, D = 4, 6, 8
    pooled, sentence, anchors = torch.randn(1, N, D), torch.randn(1, D), torch.randn(K, D)
    labels = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # written out element by element (SOLA tools/loss.py: logits scaled by exp(0.07),
    # target 1 - label on the most similar anchor only, 1.5 * pos + neg)
    s = math.exp(0.07)
    pos_terms, neg_terms = [], []
    for n in range(N):
        p = float(pooled[0, n] @ sentence[0]) * s
        pos_terms.append(F.binary_cross_entropy_with_logits(torch.tensor(p), labels[0, n]))
        sims = [float(pooled[0, n] @ anchors[k]) * s for k in range(K)]
        hard = max(range(K), key=lambda k: sims[k])
        for k in range(K):
            target = (1 - labels[0, n]) if k == hard else torch.tensor(0.0)
            neg_terms.append(F.binary_cross_entropy_with_logits(torch.tensor(sims[k]), target))
    expected = 1.5 * torch.stack(pos_terms).mean() + torch.stack(neg_terms).mean()
    got = alignment_loss(pooled, labels, torch.ones(1, N, dtype=torch.bool), sentence, anchors, 1.5, 0.07)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # a padded track (label 0, huge features) does not change it
    padded = torch.cat([pooled, 100 * torch.randn(1, 1, D)], dim=1)
    got2 = alignment_loss(padded, torch.cat([labels, torch.zeros(1, 1)], 1), torch.tensor([[True] * N + [False]]), sentence, anchors)
    torch.testing.assert_close(got2, expected, atol=1e-5, rtol=1e-5)
