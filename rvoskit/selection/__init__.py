"""Language-aligned track selection (SOLA's model): text features, the model, training, scoring.

- :mod:`rvoskit.selection.text`: word / sentence features from a local transformers encoder, cached.
- :mod:`rvoskit.selection.model`: :class:`TrackSelectionModel` (batched, padding-aware).
- :mod:`rvoskit.selection.losses`: weighted BCE + alignment loss.
- :mod:`rvoskit.selection.data`: samples (expression + candidate tracks + labels) and batches.
- :mod:`rvoskit.selection.training`: :func:`train` (``rvoskit train``), on one or several named data sets.
- :mod:`rvoskit.selection.scoring`: :func:`predict` (``rvoskit score``), :func:`select_tracks`, :func:`merge_masks`.
- :mod:`rvoskit.selection.config`: defaults (SOLA's) and config files with ``--set`` overrides.

See ``docs/selection.md``.
"""

from rvoskit.selection.checkpoint import load_checkpoint, resolve_checkpoint
from rvoskit.selection.config import DEFAULTS, data_sets, load_config
from rvoskit.selection.model import TrackSelectionModel, count_parameters
from rvoskit.selection.scoring import merge_masks, predict, score_samples, select_tracks, zero_shot_warnings
from rvoskit.selection.text import TextEncoder, text_features
from rvoskit.selection.training import train

__all__ = [
    "DEFAULTS",
    "TextEncoder",
    "TrackSelectionModel",
    "count_parameters",
    "data_sets",
    "load_checkpoint",
    "load_config",
    "merge_masks",
    "predict",
    "resolve_checkpoint",
    "score_samples",
    "select_tracks",
    "text_features",
    "train",
    "zero_shot_warnings",
]
