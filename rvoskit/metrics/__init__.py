"""J, F and J&F: per-frame metrics identical to the DAVIS/MeViS code, and the benchmark protocols.

No SAM2 or torch import here (``metrics`` knows nothing of models).

- :func:`frame_jf`, :func:`jaccard`, :func:`boundary_f`, :func:`video_jf`, :func:`seg2bmap`:
  per-frame J and F (:mod:`rvoskit.metrics.jf`).
- :func:`evaluate`: a whole split with the ``mevis``, ``davis-semi``, ``davis-unsup`` or
  ``ref-davis`` protocol (:mod:`rvoskit.metrics.evaluation`); :func:`write_results` writes it.
- :func:`evaluate_referring`: A2D-Sentences / JHMDB-Sentences (MTTR's P@K, IoU and COCO mAP) and
  RefCOCO (cIoU, gIoU, P@K) (:mod:`rvoskit.metrics.referring`); :func:`export_coco_gt` writes
  MTTR's COCO ground truth.
"""

from rvoskit.metrics.evaluation import PROTOCOLS, EvalResult, evaluate
from rvoskit.metrics.jf import (
    BOUND_TH,
    bound_pix,
    boundary_f,
    disk,
    frame_jf,
    jaccard,
    seg2bmap,
    video_jf,
)
from rvoskit.metrics.protocols import (
    davis_summary,
    db_statistics,
    merge_label_map,
    mevis_summary,
)
from rvoskit.metrics.referring import (
    ReferringResult,
    coco_gt,
    evaluate_referring,
    export_coco_gt,
    write_referring_results,
)
from rvoskit.metrics.report import summary_table, write_results

__all__ = [
    "BOUND_TH",
    "PROTOCOLS",
    "EvalResult",
    "ReferringResult",
    "coco_gt",
    "evaluate_referring",
    "export_coco_gt",
    "write_referring_results",
    "bound_pix",
    "boundary_f",
    "davis_summary",
    "db_statistics",
    "disk",
    "evaluate",
    "frame_jf",
    "jaccard",
    "merge_label_map",
    "mevis_summary",
    "seg2bmap",
    "summary_table",
    "video_jf",
    "write_results",
]
