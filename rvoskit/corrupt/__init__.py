"""ImageNet-C corruptions of whole videos (``rvoskit corrupt``).

- :mod:`rvoskit.corrupt.imagenet_c`: the 19 corruptions of ``imagecorruptions`` on one frame
  (:func:`corrupt_image`, :data:`CORRUPTIONS`).
- :mod:`rvoskit.corrupt.kernels`: fast kernels for ``gaussian_noise`` and ``motion_blur`` whose
  output is the reference's, pixel for pixel.
- :mod:`rvoskit.corrupt.weather`: exact fast paths of ``snow``, ``fog`` and ``spatter`` (float32
  with error bounds, the reference's float64 where float32 cannot decide).
- :mod:`rvoskit.corrupt.rng`: per-frame seeds and the two RNG kinds.
- :mod:`rvoskit.corrupt.video`: a whole dataset (:func:`corrupt_dataset`): policies, workers,
  resume, the per-frame draws table.
"""

from rvoskit.corrupt.imagenet_c import (
    CORRUPTIONS,
    SEVERITIES,
    check_corruption,
    corrupt_image,
)
from rvoskit.corrupt.kernels import (
    GAUSSIAN_NOISE_SIGMA,
    MOTION_BLUR_PARAMS,
    gaussian_noise_apply,
    motion_blur_apply,
)
from rvoskit.corrupt.rng import (
    RNG_KINDS,
    frame_seed,
    make_rng,
    standard_normal,
    video_seed,
)

__all__ = [
    "CORRUPTIONS",
    "GAUSSIAN_NOISE_SIGMA",
    "MOTION_BLUR_PARAMS",
    "RNG_KINDS",
    "SEVERITIES",
    "check_corruption",
    "corrupt_image",
    "frame_seed",
    "gaussian_noise_apply",
    "make_rng",
    "motion_blur_apply",
    "standard_normal",
    "video_seed",
]
