"""Training losses of the selection model, batched with track masks.

Follows cvlab-kaist/SOLA @ 76f87be ``train.py`` (weighted BCE) and ``tools/loss.py``
(``AlignmentLoss``). Each expression's loss is a mean over its real tracks (SOLA trains one
expression per step, so its per-step loss is exactly that); a batch's loss is the mean over its
expressions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _per_expression_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x (B, N, ...)`` over the real tracks and trailing dims of each row, then over rows."""
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    per_row = (x * m).flatten(1).sum(1) / (m.expand_as(x).flatten(1).sum(1)).clamp_min(1.0)
    return per_row.mean()


def selection_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, positive_weight: float = 1.5):
    """Weighted BCE on the selection logits.

    Args:
        logits: ``(B, N)`` float; labels: ``(B, N)`` float 0/1; mask: ``(B, N)`` bool real tracks.
        positive_weight: weight of positive tracks (SOLA ``train.positive_weight`` 1.5; negatives 1).

    Returns:
        Scalar: mean over expressions of the weighted mean over real tracks (SOLA
        ``binary_cross_entropy_with_logits(logit, label, weight)`` at batch size 1).
    """
    weight = torch.where(labels > 0, positive_weight, 1.0).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none") * weight
    return _per_expression_mean(loss, mask)


def alignment_loss(
    pooled: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    sentence: torch.Tensor,
    negatives: torch.Tensor,
    positive_weight: float = 1.5,
    temperature: float = 0.07,
) -> torch.Tensor:
    """SOLA's alignment loss between pooled track features, the sentence and the negative anchors.

    ``pos = <O_a, sentence> * exp(temperature)`` with target = label; ``neg_k = <O_a, anchor_k> *
    exp(temperature)`` with target ``1 - label`` for the most similar anchor only and 0 for the
    others; ``loss = positive_weight * BCE(pos) + BCE(neg)`` (means). SOLA multiplies by
    ``exp(0.07)`` (its temperature is a parameter that is never optimised); kept as is.

    Args:
        pooled: ``(B, N, D)`` time-pooled track features ``O_a``.
        labels: ``(B, N)`` float 0/1; mask: ``(B, N)`` bool real tracks.
        sentence: ``(B, D)`` sentence feature (masked mean of the word features, in the model width).
        negatives: ``(K, D)`` the negative anchors (``model.negative_token.weight``).

    Returns:
        Scalar loss (mean over expressions).
    """
    scale = math.exp(temperature)
    pooled = pooled.float()
    pos = torch.einsum("bnd,bd->bn", pooled, sentence.float()) * scale
    neg = torch.einsum("bnd,kd->bnk", pooled, negatives.float()) * scale
    hardest = F.one_hot(neg.argmax(dim=-1), neg.shape[-1]).to(neg.dtype)
    neg_target = (1.0 - labels.float()).unsqueeze(-1) * hardest
    pos_loss = _per_expression_mean(F.binary_cross_entropy_with_logits(pos, labels.float(), reduction="none"), mask)
    neg_loss = _per_expression_mean(F.binary_cross_entropy_with_logits(neg, neg_target, reduction="none"), mask)
    return positive_weight * pos_loss + neg_loss


def selection_loss(model, logits, pooled, labels, mask, sentence, loss_cfg) -> dict[str, torch.Tensor]:
    """Total loss ``BCE + alignment_weight * alignment`` (SOLA ``train.py``).

    Args:
        model: the :class:`~rvoskit.selection.model.TrackSelectionModel` (for its anchors and text projection).
        logits, pooled: the model outputs; labels, mask: ``(B, N)``; sentence: ``(B, text_dim)``.
        loss_cfg: the ``loss`` section of the config.

    Returns:
        ``{"loss", "bce", "alignment"}`` scalars (``loss`` carries the gradient).
    """
    pw = float(loss_cfg["positive_weight"])
    bce = selection_bce(logits, labels, mask, pw)
    align = alignment_loss(
        pooled,
        labels,
        mask,
        model.project_sentence(sentence.to(pooled.dtype)),
        model.negative_token.weight,
        positive_weight=pw,
        temperature=float(loss_cfg["temperature"]),
    )
    return {"loss": bce + float(loss_cfg["alignment_weight"]) * align, "bce": bce, "alignment": align}
