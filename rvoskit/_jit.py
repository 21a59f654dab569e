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
import sys
import threading
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


_COMMAND_PROCESS = False


def command_process() -> None:
    """Mark this process as an ``rvoskit`` command (:func:`rvoskit.cli.main` calls it first): the
    kernel modules then load numba without its BLAS probe (:func:`prepare_numba`)."""
    global _COMMAND_PROCESS
    _COMMAND_PROCESS = True


def prepare_numba() -> None:
    """Called by each kernel module before it imports numba.

    When numba's CPU target starts (which loading a cached kernel does), it imports
    ``numba.np.arraymath``, whose module level runs ``_HAVE_BLAS = _check_blas()``: an import of
    ``scipy.linalg.cython_blas``, i.e. all of ``scipy.linalg`` (~0.3 s of CPU with scipy 1.17),
    only to know whether ``np.dot`` / ``np.linalg`` can be compiled. Its typing context, on the first
    call of any kernel, imports ``numba.core.typing.cffi_utils``, which builds a ``cffi.FFI()`` (cffi's
    C parser, pycparser: ~0.03-0.05 s) only to type cffi functions passed as arguments. No rvoskit
    kernel uses either (``tests/test_jit.py`` checks), so in an ``rvoskit`` command process
    (:func:`command_process`), when numba is first imported on the main thread, both modules are
    imported with ``scipy.linalg.cython_blas`` and ``cffi`` hidden: numba then records that it has
    no BLAS and no cffi, and both stay importable as usual. In any other process (a user's program
    importing rvoskit) nothing is changed.
    """
    if not _COMMAND_PROCESS or "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    if threading.current_thread() is not threading.main_thread():
        return  # another thread could import scipy.linalg meanwhile and find it hidden
    hidden = [m for m in ("scipy.linalg.cython_blas", "cffi") if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # import -> ImportError
    try:
        import numba.core.typing.cffi_utils  # noqa: F401  (SUPPORTED = False)
        import numba.np.arraymath  # noqa: F401  (_HAVE_BLAS = False)
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]


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
