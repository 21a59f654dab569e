"""rvoskit's compiled kernels (numba): which modules hold them, and compiling them ahead of time.

Every kernel is ``@njit(cache=True)``: compiled on first use (seconds) and then loaded from numba's
on-disk cache (``__pycache__`` next to the module, or numba's user-wide cache directory when that is
not writable). ``scripts/install.sh`` runs ``python -m rvoskit._jit`` so that no command pays the
compile time. Each caller falls back to a numpy / pycocotools path with the same results when numba
is missing or ``NUMBA_DISABLE_JIT`` is set (see the modules below).

- :mod:`rvoskit.datasets.maskdict_scan`: ``convert mevis``'s ``mask_dict.json`` scan and RLE checks.
- :mod:`rvoskit._labels_kernels`: ``pseudolabel --resolution native``'s RLE intersections.
- :mod:`rvoskit.corrupt._legacy_poisson`: numpy's MT19937, polar normals and Poisson loop
  (``corrupt --rng legacy`` noise corruptions).
- :mod:`rvoskit.corrupt._blur_numba`: gaussian_blur / glass_blur / defocus_blur loops.
- :mod:`rvoskit.metrics._png_kernels`: ``eval``'s PNG row unfiltering (Average / Paeth rows).
"""

from __future__ import annotations

import importlib
import time

#: The modules that hold ``@njit`` kernels; each has a ``warm()`` that compiles them with the
#: argument types rvoskit uses. ``tests/test_jit.py`` checks that no kernel module is missing.
KERNEL_MODULES = (
    "rvoskit.datasets.maskdict_scan",
    "rvoskit._labels_kernels",
    "rvoskit.corrupt._legacy_poisson",
    "rvoskit.corrupt._blur_numba",
    "rvoskit.metrics._png_kernels",
)


def warm_all(verbose: bool = False) -> list[tuple[str, float]]:
    """Compile (or load from the disk cache) every kernel of :data:`KERNEL_MODULES`.

    Returns:
        ``(module, seconds)`` per module, in order.

    Raises:
        ImportError: numba is not installed.
    """
    done = []
    for name in KERNEL_MODULES:
        t0 = time.perf_counter()
        importlib.import_module(name).warm()
        done.append((name, time.perf_counter() - t0))
        if verbose:
            print(f"  {name}: {done[-1][1]:.1f} s")
    return done


if __name__ == "__main__":
    print("compiling rvoskit's numba kernels into numba's on-disk cache")
    warm_all(verbose=True)
