"""Grounded prompts: Grounding DINO boxes for an expression, turned into SAM2 masks.

Grounding DINO runs through ``transformers`` (``GroundingDinoForObjectDetection`` + its processor)
from a local model directory, imported lazily: nothing here is needed for grid or GT prompts.
Follows SOLA ``track_generation/prompt_generator.py`` (caption, thresholds, box prompts,
stability score on the low-res logits) and ``generate_prompts_gdino.py`` (one set of prompts per
expression and prompt frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvoskit.errors import RvosError
from rvoskit.format import rle as rlemod
from rvoskit.tracks.prompts import Prompt


def caption(text: str) -> str:
    """SOLA's Grounding DINO caption: lower-cased, stripped, ending in ``"."``."""
    c = text.lower().strip()
    return c if c.endswith(".") else c + "."


@dataclass(frozen=True)
class GroundingOptions:
    """Grounding DINO thresholds (SOLA README: ``--box_threshold 0.2 --text_threshold 0.25``)."""

    box_threshold: float = 0.2
    text_threshold: float = 0.25


class GroundingDino:
    """Grounding DINO from a local ``transformers`` model directory.

    The directory is what ``save_pretrained`` writes for a hub repo such as
    ``IDEA-Research/grounding-dino-tiny`` (config.json, model.safetensors,
    preprocessor_config.json, tokenizer files); it is opened with ``local_files_only=True``.
    Without torchvision, transformers falls back to its PIL image processor (same resize to
    shortest side 800 / longest 1333 and ImageNet normalisation as SOLA's transform).

    Args:
        model_dir: the directory.
        device: torch device string.

    Raises:
        RvosError: transformers' Grounding DINO cannot be imported, or the directory does not hold
            a loadable model and processor.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise RvosError("Grounding DINO model directory not found", file=self.model_dir)
        try:
            from transformers import AutoProcessor, GroundingDinoForObjectDetection
        except Exception as exc:  # ImportError, or transformers failing on a broken torchvision
            raise RvosError(
                f"transformers' Grounding DINO could not be imported ({type(exc).__name__}: {exc}); "
                "it needs transformers >= 4.40 (and, in some versions, a working torchvision)",
                item="--grounding-model",
            ) from None
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
            self.model = GroundingDinoForObjectDetection.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise RvosError(f"cannot load Grounding DINO: {exc}", file=self.model_dir) from None
        self.device = device
        self.model = self.model.to(device).eval()

    def detect(self, image, text: str, opts: GroundingOptions) -> tuple[np.ndarray, np.ndarray]:
        """Boxes for one expression on one image.

        Keeps queries whose highest token probability exceeds ``opts.box_threshold`` (SOLA
        ``prompt_generator.get_bbox_prompts``; ``text_threshold`` only selects the phrase tokens,
        which rvoskit does not store).

        Args:
            image: PIL RGB image at its native size.
            text: the referring expression (turned into :func:`caption`).

        Returns:
            ``(boxes float32 (K, 4) xyxy in pixels, scores float32 (K,))``.
        """
        import torch

        inputs = self.processor(images=image, text=caption(text), return_tensors="pt").to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.split(":")[0], enabled=False):
            out = self.model(**inputs)
            res = self.processor.post_process_grounded_object_detection(
                out,
                inputs["input_ids"],
                threshold=opts.box_threshold,
                text_threshold=opts.text_threshold,
                target_sizes=[(image.height, image.width)],
            )[0]
        return res["boxes"].float().cpu().numpy(), res["scores"].float().cpu().numpy()


def stability_score_np(logits: np.ndarray, mask_threshold: float = 0.0, offset: float = 1.0) -> float:
    """SOLA's ``PromptGenerator.get_stability_score`` on one ``(h, w)`` low-res logit map
    (``|logit > t + 1| / |logit > t - 1|``; NaN for an empty union)."""
    inter = (logits > (mask_threshold + offset)).sum(-1, dtype=np.int32).sum(-1, dtype=np.int32)
    union = (logits > (mask_threshold - offset)).sum(-1, dtype=np.int32).sum(-1, dtype=np.int32)
    return float(inter / union) if union > 0 else float("nan")


def grounded_prompts_for_frame(session, gdino: GroundingDino, frame_idx: int, expressions: list[tuple[str, str]], opts: GroundingOptions) -> list[Prompt]:
    """Grounding DINO boxes → SAM2 box prompts on one frame, for every expression of the video.

    Per expression: the boxes of :meth:`GroundingDino.detect`; all boxes of the expression as one
    batch of box prompts (labels 2/3) through SAM2's prompt encoder and mask decoder with
    ``multimask_output=False`` (``SAM2ImagePredictor.predict(box=...)``); mask = logits resized
    to the frame ``> 0``; predicted IoU; stability score on the low-res logits (clamped to
    ±32 as ``_predict`` returns them).

    Args:
        session: the video's :class:`~rvoskit.tracks.sam2_model.VideoSession`.
        gdino: the detector.
        frame_idx: the prompt frame.
        expressions: ``[(expression_id, text)]`` of the video, in dataset order.

    Returns:
        Prompts in (expression, box) order.
    """
    import torch

    from rvoskit.tracks.sam2_model import binarize

    image = session.frames.image(frame_idx)
    H, W, S = session.height, session.width, float(session.p.image_size)
    out: list[Prompt] = []
    for expression_id, text in expressions:
        with session.timers("grounding"):
            boxes, scores = gdino.detect(image, text, opts)
        if len(boxes) == 0:
            continue
        b = torch.as_tensor(boxes, dtype=torch.float32, device=session.device).reshape(-1, 2, 2)
        b[..., 0] = b[..., 0] / W  # SAM2Transforms.transform_boxes(normalize=True)
        b[..., 1] = b[..., 1] / H
        b = b * S
        labels = torch.tensor([[2, 3]], dtype=torch.int, device=session.device).repeat(b.shape[0], 1)
        low, iou = session.decode(frame_idx, b, labels, multimask=False)
        with session.timers("prompting"):
            masks = binarize(session.to_frame(low)[:, 0])
            low_np = torch.clamp(low.float(), -32.0, 32.0)[:, 0].cpu().numpy()
            rles = rlemod.encode_batch(masks)
            for k in range(len(rles)):
                out.append(
                    Prompt(
                        kind="grounded",
                        frame_idx=int(frame_idx),
                        rle=rles[k],
                        area=int(np.count_nonzero(masks[k])),
                        stability_score=stability_score_np(low_np[k]),
                        predicted_iou=float(iou[k, 0]),
                        expression_id=expression_id,
                        score=float(scores[k]),
                    )
                )
    return out
