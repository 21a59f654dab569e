"""Pictures of rvoskit data: mask overlays of datasets, track stores and predictions (PNG contact
sheets, GIF/MP4 clips) and an HTML/Markdown report of every stage's plots and summaries.

Public API:

- :func:`render_dataset`, :func:`render_tracks`, :func:`render_predictions` (:mod:`rvoskit.viz.render`).
- :func:`build_report` (:mod:`rvoskit.viz.report`).
- Drawing primitives, the palette and the GIF/MP4 writer in :mod:`rvoskit.viz.draw`.

No torch: this package draws with OpenCV, Pillow and matplotlib only.
"""

from rvoskit.viz.draw import (
    PALETTE,
    Sheet,
    VideoSink,
    contact_sheet,
    overlay,
    sample_frames,
)
from rvoskit.viz.render import (
    VizResult,
    dataset_scene,
    frame_j,
    predictions_scene,
    render_dataset,
    render_predictions,
    render_tracks,
    scene_clips,
    scene_sheet,
    tracks_scene,
)
from rvoskit.viz.report import build_report

__all__ = [
    "PALETTE",
    "Sheet",
    "VideoSink",
    "VizResult",
    "build_report",
    "contact_sheet",
    "dataset_scene",
    "frame_j",
    "overlay",
    "predictions_scene",
    "render_dataset",
    "render_predictions",
    "render_tracks",
    "sample_frames",
    "scene_clips",
    "scene_sheet",
    "tracks_scene",
]
