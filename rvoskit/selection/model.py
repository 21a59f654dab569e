"""The language-aligned track selection model of SOLA, batched and padding-aware.

Follows cvlab-kaist/SOLA @ 76f87be ``module/module.py`` (``LanguageAlignedTrackSelectionModule``),
``tools/attention.py`` and ``module/ws.py``, as described in ``docs/selection.md``:

* short-term motion encoder: weight-standardised Conv1d stack over time per track,
  ``object_dim -> 2*object_dim (s2) -> (s2) -> (s2) -> width -> width -> width (k1)``, GroupNorm,
  LeakyReLU, dropout; ``T' = ceil(T / 8)``;
* random-Fourier temporal position encoding added to queries and keys of the motion attention;
* ``layers`` x [inter-object self-attention over the tracks of a frame, motion self-attention over
  the frames of a track, object -> language cross-attention], each residual + GroupNorm over
  (channels, tokens), no FFN;
* ``negatives`` learned anchors appended to the language tokens (extra keys/values, and part of the
  word means);
* ``s_t = mean_w(O_t . E_w)``, ``alpha = softmax_t(s_t)``, ``O_a = sum_t alpha_t O_t``,
  ``logit = mean_w(O_a . E_w)``.

Parameter and buffer names are SOLA's, so a SOLA ``epoch_k.pth`` state dict loads with
``load_state_dict`` when the widths agree.

Differences from SOLA's batch-1 code (deliberate): tracks, frames and words can be padded and are
masked everywhere (attention keys, GroupNorm statistics, the motion encoder's conv inputs, the
softmax over time and the word means), so a padded expression gives the same result as the same
expression alone; padding never enters a mean (SOLA's word means include ``<s>``/``</s>`` and the
negatives, and so do ours). Expressions that share a video and a candidate set can share the
language-independent part (motion encoder and first-layer self-attention): see ``group`` in
:meth:`TrackSelectionModel.forward`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class WSConv1d(nn.Conv1d):
    """``nn.Conv1d`` with weight standardisation: ``(w - mean_{in,k} w) / (std_{in,k} w + 1e-5)``.

    Same formula as SOLA ``module/ws.py`` (unbiased std, epsilon added to the std).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = w - w.mean(dim=(1, 2), keepdim=True)
        w = w / (w.flatten(1).std(dim=1).view(-1, 1, 1) + 1e-5)
        return F.conv1d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def masked_group_norm(x: torch.Tensor, mask: torch.Tensor | None, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm of ``x (B, C, L)`` whose statistics use only the positions where ``mask (B, L)`` is true.

    With ``mask`` None (or all true) this is exactly ``norm(x)``. Statistics are computed in float32.
    Masked positions get finite values (normalised with the valid positions' statistics).
    """
    if mask is None or bool(mask.all()):
        return norm(x)
    B, C, L = x.shape
    G = norm.num_groups
    xf = x.float().reshape(B, G, C // G, L)
    m = mask.to(xf.dtype).reshape(B, 1, 1, L)
    count = (m.sum(dim=(2, 3), keepdim=True) * (C // G)).clamp_min(1.0)
    mean = (xf * m).sum(dim=(2, 3), keepdim=True) / count
    centred = xf - mean
    var = (centred.square() * m).sum(dim=(2, 3), keepdim=True) / count
    y = (centred * torch.rsqrt(var + norm.eps)).reshape(B, C, L)
    if norm.affine:
        y = y * norm.weight.float().view(1, C, 1) + norm.bias.float().view(1, C, 1)
    return y.to(x.dtype)


def _key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(B, K)`` bool key mask -> SDPA boolean mask ``(B, 1, 1, K)`` (None when nothing is masked)."""
    if mask is None or bool(mask.all()):
        return None
    return mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (SOLA ``tools/attention.py``).

    ``forward(q (B, Q, D), k (B, K, D), v (B, K, D), key_mask (B, K) bool | None) -> (B, Q, D)``;
    attention-probability dropout ``dropout_p`` in training only.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout_p: float = 0.1):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"width {embed_dim} is not divisible by {num_heads} heads")
        self.embed_dim, self.num_heads, self.dropout_p = embed_dim, num_heads, dropout_p
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, n, D = x.shape
        return x.reshape(B, n, self.num_heads, D // self.num_heads).transpose(1, 2)

    def forward(self, q, k, v, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=_key_mask(key_mask), dropout_p=self.dropout_p if self.training else 0.0
        )
        B, H, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, n, H * d))


class ObjectLanguageAlignmentLayer(nn.Module):
    """One SOLA alignment layer: inter-object attention, motion attention, object -> language attention.

    Each block is ``x = GroupNorm(x + Attention(x))`` with GroupNorm over ``(channels, tokens)``
    (SOLA applies it on ``(B', D, tokens)``). The language tokens are not updated.
    """

    def __init__(self, width: int, heads: int, groups: int, attn_dropout: float):
        super().__init__()
        self.obj_attn = Attention(width, heads, attn_dropout)
        self.motion_attn = Attention(width, heads, attn_dropout)
        self.object2lang_attn = Attention(width, heads, attn_dropout)
        self.norm = nn.ModuleList([nn.GroupNorm(groups, width) for _ in range(3)])

    def self_blocks(self, x, pe, track_mask, frame_mask):
        """Inter-object and motion attention (language-independent).

        Args:
            x: ``(B, N, T, D)`` object tokens; pe: ``(T, D)`` temporal position encoding;
            track_mask: ``(B, N)`` bool or None; frame_mask: ``(B, T)`` bool or None.
        """
        B, N, T, D = x.shape
        # inter-object attention: the N tracks of each frame
        y = x.permute(0, 2, 1, 3).reshape(B * T, N, D)
        tm = None if track_mask is None else track_mask[:, None, :].expand(B, T, N).reshape(B * T, N)
        y = y + self.obj_attn(y, y, y, tm)
        y = masked_group_norm(y.transpose(1, 2), tm, self.norm[0]).transpose(1, 2)
        x = y.reshape(B, T, N, D).permute(0, 2, 1, 3)
        # motion attention: the frames of each track, PE on queries and keys only
        y = x.reshape(B * N, T, D)
        qk = (x + pe).reshape(B * N, T, D)
        fm = None if frame_mask is None else frame_mask[:, None, :].expand(B, N, T).reshape(B * N, T)
        y = y + self.motion_attn(qk, qk, y, fm)
        y = masked_group_norm(y.transpose(1, 2), fm, self.norm[1]).transpose(1, 2)
        return y.reshape(B, N, T, D)

    def cross_block(self, x, lang, lang_mask, token_mask):
        """Object -> language cross-attention: ``x (B, N, T, D)``, ``lang (B, W, D)``, masks ``(B, W)``, ``(B, N*T)``."""
        B, N, T, D = x.shape
        y = x.reshape(B, N * T, D)
        y = y + self.object2lang_attn(y, lang, lang, lang_mask)
        y = masked_group_norm(y.transpose(1, 2), token_mask, self.norm[2]).transpose(1, 2)
        return y.reshape(B, N, T, D)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    if mask is None:
        return x.mean(dim=dim)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=dim) / m.sum(dim=dim).clamp_min(1.0)


class TrackSelectionModel(nn.Module):
    """SOLA's language-aligned track selection module (see the module docstring).

    Args:
        text_dim: width of the text encoder's word features.
        object_dim, width, motion_hidden, layers, heads, negatives, dropout, attn_dropout, groups,
        groups_layer, max_temporal_length: the ``model`` section of the config (``width`` None =
        ``text_dim``; ``motion_hidden`` None = ``2 * object_dim``). When ``width != text_dim`` a
        linear projection ``text_proj`` maps words and sentence features to ``width`` (SOLA has none).
    """

    def __init__(
        self,
        text_dim: int,
        *,
        object_dim: int = 256,
        width: int | None = None,
        motion_hidden: int | None = None,
        layers: int = 2,
        heads: int = 8,
        negatives: int = 32,
        dropout: float = 0.2,
        attn_dropout: float = 0.1,
        groups: int = 8,
        groups_layer: int = 8,
        max_temporal_length: int = 100,
    ):
        super().__init__()
        width = int(width or text_dim)
        hidden = int(motion_hidden or 2 * object_dim)
        if width % 2:
            raise ValueError(f"width {width} must be even (sin/cos position encoding)")
        self.text_dim, self.object_dim, self.width = int(text_dim), int(object_dim), width
        self.max_temporal_length = max_temporal_length
        self.n_negative = negatives

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [
                WSConv1d(c_in, c_out, kernel_size=3, stride=stride, padding=1),
                nn.GroupNorm(groups, c_out),
                nn.LeakyReLU(),
                nn.Dropout(p=dropout),
            ]

        self.short_motion_encoder = nn.Sequential(
            *block(object_dim, hidden, 2),
            *block(hidden, hidden, 2),
            *block(hidden, hidden, 2),
            *block(hidden, width, 1),
            *block(width, width, 1),
            WSConv1d(width, width, kernel_size=1, stride=1, padding=0),
        )
        self.object_lang_align_layers = nn.ModuleList(
            [ObjectLanguageAlignmentLayer(width, heads, groups_layer, attn_dropout) for _ in range(layers)]
        )
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((1, width // 2)))
        self.negative_token = nn.Embedding(negatives, width)
        self.text_proj = nn.Linear(text_dim, width) if width != text_dim else None

    @classmethod
    def from_config(cls, model_cfg: Mapping[str, Any], text_dim: int) -> TrackSelectionModel:
        """Build from the ``model`` section of a config (see :mod:`rvoskit.selection.config`)."""
        return cls(text_dim, **dict(model_cfg))

    # -- parts -------------------------------------------------------------------------------------
    def encode_motion(self, tokens: torch.Tensor, frame_mask: torch.Tensor | None):
        """Short-term motion encoder.

        Args:
            tokens: ``(B, N, T, object_dim)`` object pointers.
            frame_mask: ``(B, T)`` bool, a prefix of valid frames per row, or None.

        Returns:
            ``(x (B, N, T', width), frame_mask' (B, T') | None)`` with ``T' = ceil(T/8)``; a row with
            ``T_v`` valid frames has ``ceil(T_v/8)`` valid outputs, equal to the unpadded result.
        """
        B, N, T, C = tokens.shape
        x = tokens.permute(0, 1, 3, 2).reshape(B * N, C, T)
        m = None if frame_mask is None else frame_mask[:, None, :].expand(B, N, T).reshape(B * N, T)
        mods = list(self.short_motion_encoder)
        for i in range(0, len(mods), 4):
            conv = mods[i]
            if m is not None:
                x = x * m[:, None, :].to(x.dtype)  # padded frames act as the conv's zero padding
            x = conv(x)
            if m is not None and conv.stride[0] > 1:
                m = m[:, :: conv.stride[0]]
            if i + 1 < len(mods):
                x = masked_group_norm(x, m, mods[i + 1])
                x = mods[i + 3](mods[i + 2](x))
        Tp = x.shape[-1]
        x = x.reshape(B, N, self.width, Tp).permute(0, 1, 3, 2)
        fm = None if m is None else m.reshape(B, N, Tp)[:, 0]
        return x, fm

    def temporal_encoding(self, t: int, device, dtype=torch.float32) -> torch.Tensor:
        """Random Fourier features ``[sin(2 pi (t/L) G), cos(2 pi (t/L) G)]``, ``(t, width)``."""
        pos = torch.arange(t, device=device, dtype=torch.float32).reshape(-1, 1) / self.max_temporal_length
        z = 2 * math.pi * (pos @ self.positional_encoding_gaussian_matrix.float())
        return torch.cat([torch.sin(z), torch.cos(z)], dim=-1).to(dtype)

    def language(self, words: torch.Tensor, word_mask: torch.Tensor | None):
        """Words ``(B, L, text_dim)`` -> language tokens ``(B, L + negatives, width)`` and their mask."""
        if self.text_proj is not None:
            words = self.text_proj(words)
        B = words.shape[0]
        neg = self.negative_token.weight.to(words.dtype).unsqueeze(0).expand(B, -1, -1)
        lang = torch.cat([words, neg], dim=1)
        if word_mask is None:
            return lang, None
        ones = torch.ones(B, self.n_negative, dtype=torch.bool, device=word_mask.device)
        return lang, torch.cat([word_mask.bool(), ones], dim=1)

    def project_sentence(self, sentence: torch.Tensor) -> torch.Tensor:
        """Sentence features ``(B, text_dim)`` in the model width (identity unless ``text_proj``)."""
        return sentence if self.text_proj is None else self.text_proj(sentence)

    # -- forward -------------------------------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,
        words: torch.Tensor,
        track_mask: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
        group: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score every candidate track of every expression.

        Args:
            tokens: ``(G, N, T, object_dim)`` float object pointers of G candidate sets (padded tracks
                and frames are ignored, their values do not matter).
            words: ``(B, L, text_dim)`` word features of B expressions.
            track_mask: ``(G, N)`` bool, true for real tracks (None: all real).
            frame_mask: ``(G, T)`` bool, true for the first ``T_g`` frames (None: all real).
            word_mask: ``(B, L)`` bool, true for real word tokens (None: all real).
            group: ``(B,)`` long, the candidate set of each expression; None means ``G == B`` and
                expression b uses set b. Sharing a set shares the motion encoder and the first layer's
                self-attention (computed once per set; in training they also share dropout draws).

        Returns:
            ``(logits (B, N), pooled (B, N, width))``: the selection logit of each track (sigmoid =
            probability; 0 at padded tracks) and the time-pooled track feature ``O_a``.
        """
        x, fmask = self.encode_motion(tokens, frame_mask)
        pe = self.temporal_encoding(x.shape[2], x.device, x.dtype)
        layers = list(self.object_lang_align_layers)
        if layers:
            x = layers[0].self_blocks(x, pe, track_mask, fmask)
        if group is not None:
            x = x.index_select(0, group)
            track_mask = None if track_mask is None else track_mask.index_select(0, group)
            fmask = None if fmask is None else fmask.index_select(0, group)
        B, N, Tp, _ = x.shape
        lang, lang_mask = self.language(words.to(x.dtype), word_mask)
        if track_mask is None and fmask is None:
            token_mask = None
        else:
            tm = track_mask if track_mask is not None else torch.ones(B, N, dtype=torch.bool, device=x.device)
            fm = fmask if fmask is not None else torch.ones(B, Tp, dtype=torch.bool, device=x.device)
            token_mask = (tm[:, :, None] & fm[:, None, :]).reshape(B, N * Tp)
        for i, layer in enumerate(layers):
            if i > 0:
                x = layer.self_blocks(x, pe, track_mask, fmask)
            x = layer.cross_block(x, lang, lang_mask, token_mask)
        # mean over words of (O . E_w) == O . mean_w(E_w): SOLA's two word means, without padding
        e = _masked_mean(lang, lang_mask, dim=1)  # (B, D)
        s = torch.einsum("bntd,bd->bnt", x, e)
        if fmask is not None:
            s = s.masked_fill(~fmask[:, None, :], float("-inf"))
        alpha = torch.softmax(s.float(), dim=-1).to(x.dtype)
        pooled = torch.einsum("bnt,bntd->bnd", alpha, x)
        logits = torch.einsum("bnd,bd->bn", pooled, e)
        if track_mask is not None:
            logits = logits.masked_fill(~track_mask, 0.0)
        return logits, pooled


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_report(model: TrackSelectionModel) -> str:
    """One line: total trainable parameters in millions and the split by part."""
    parts = {
        "motion encoder": model.short_motion_encoder,
        "alignment layers": model.object_lang_align_layers,
        "negatives": model.negative_token,
    }
    if model.text_proj is not None:
        parts["text projection"] = model.text_proj
    split = ", ".join(f"{k} {count_parameters(m):,}" for k, m in parts.items())
    return f"{count_parameters(model) / 1e6:.2f} M trainable parameters ({split})"
