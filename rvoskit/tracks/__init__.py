"""SAM2 candidate mask tracks and object tokens (``rvoskit tracks generate``).

Public API:

- :func:`generate_tracks`: a dataset (split, shard) → a track store, resumable, local or on Ray.
- :func:`generate_video`: one video → rows, object tokens ``(N, T, 256)`` and info.
- :class:`TrackOptions`, :class:`ModelSpec`, :func:`load_sam2`, :func:`resolve_config`.
- Prompt pieces: :func:`prompt_frames`, :func:`box_nms`, :func:`part_filter`,
  :func:`select_and_track` (tracking-time suppression).

This package knows nothing of text encoders; Grounding DINO (``rvoskit.tracks.grounding``) is
imported only for grounded prompts.
"""

from rvoskit.tracks.generate import (
    TrackOptions,
    generate_tracks,
    generate_video,
    parse_shard,
    select_and_track,
)
from rvoskit.tracks.prompts import (
    GridOptions,
    Prompt,
    box_nms,
    gt_prompts,
    part_filter,
    prompt_frames,
)
from rvoskit.tracks.sam2_model import (
    ModelSpec,
    VideoSession,
    load_sam2,
    pick_device,
    resolve_config,
)

__all__ = [
    "GridOptions",
    "ModelSpec",
    "Prompt",
    "TrackOptions",
    "VideoSession",
    "box_nms",
    "generate_tracks",
    "generate_video",
    "gt_prompts",
    "load_sam2",
    "parse_shard",
    "part_filter",
    "pick_device",
    "prompt_frames",
    "resolve_config",
    "select_and_track",
]
