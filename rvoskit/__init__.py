"""rvoskit: a toolkit for referring video object segmentation (RVOS) research.

Stages (each a library function first, a ``rvoskit`` CLI command second):
convert -> tracks generate -> pseudolabel -> corrupt -> train -> score -> eval, around one
common on-disk format (:mod:`rvoskit.format`).

The stage functions a notebook needs are importable from here; they are loaded on first use, so
``import rvoskit`` stays light (no torch, no pandas)::

    import rvoskit

    ds = rvoskit.open_dataset("data/refdavis-val")           # videos, expressions, masks
    masks = ds.expression_masks("judo/0")                  # uint8 (T, H, W): union of its objects
    result = rvoskit.evaluate("data/refdavis-val", "runs/pred", "ref-davis")
    result.summary["J&F"]
"""

from __future__ import annotations

from rvoskit._lazy import lazy_attributes

__version__ = "0.1.0"

#: public name -> module that defines it (loaded on first attribute access)
_LAZY = {
    # the common format
    "open_dataset": "rvoskit.format",
    "validate_dataset": "rvoskit.format.validate",
    "dataset_info": "rvoskit.datasets.info",
    # convert (native dataset -> common format)
    "convert_mevis": "rvoskit.datasets.mevis",
    "convert_mevis_m": "rvoskit.datasets.mevis_m",
    "convert_refytvos": "rvoskit.datasets.refytvos",
    "convert_refdavis": "rvoskit.datasets.refdavis",
    "convert_a2d": "rvoskit.datasets.a2d",
    "convert_jhmdb": "rvoskit.datasets.jhmdb",
    "convert_refcoco": "rvoskit.datasets.refcoco",
    # tracks
    "generate_tracks": "rvoskit.tracks.generate",
    "TrackOptions": "rvoskit.tracks.generate",
    "ModelSpec": "rvoskit.tracks.sam2_model",
    "open_trackstore": "rvoskit.format.trackstore",
    # pseudo-labels, corruptions
    "pseudolabel": "rvoskit.labels",
    "read_labels": "rvoskit.labels",
    "corrupt_dataset": "rvoskit.corrupt.video",
    # selection model
    "load_config": "rvoskit.selection.config",
    "train": "rvoskit.selection.training",
    "predict": "rvoskit.selection.scoring",
    # predictions and evaluation
    "read_predictions": "rvoskit.format.predictions",
    "write_predictions": "rvoskit.format.predictions",
    "evaluate": "rvoskit.metrics.evaluation",
    "write_results": "rvoskit.metrics.report",
    # MeViS-M moments (moment retrieval; docs/moments.md)
    "dataset_queries": "rvoskit.datasets.moments",
    "export_moments": "rvoskit.datasets.moments",
    "eval_moment_retrieval": "rvoskit.metrics.moments",
    "keyframe_accuracy": "rvoskit.metrics.moments",
    # export
    "export_mevis": "rvoskit.datasets.export",
    "export_ytvis": "rvoskit.datasets.export",
    "export_submission": "rvoskit.datasets.submission",
    # pictures
    "render_dataset": "rvoskit.viz.render",
    "render_tracks": "rvoskit.viz.render",
    "render_predictions": "rvoskit.viz.render",
    "build_report": "rvoskit.viz.report",
    # errors
    "RvosError": "rvoskit.errors",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
