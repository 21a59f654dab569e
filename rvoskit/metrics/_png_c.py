"""PNG row unfiltering in C, for :mod:`rvoskit.metrics.pngread`: all five filter types (PNG spec,
section 9) on 1-byte pixels, in place, as libpng does it.

numba does the same (:mod:`rvoskit.metrics._png_kernels`) but loading it costs ~0.5 s of CPU and
~120 MiB per process (numba, llvmlite and the scipy numba imports), too much for an ``eval`` of a few
hundred frames. This 40-line C function is compiled once with the system's C compiler into a
cache folder (next to this module, like numba's cache, or ``~/.cache/rvoskit`` when that is
read-only; ``scripts/install.sh`` builds it through ``python -m rvoskit._jit``) and loaded with
ctypes (~1 ms). Without a C compiler :func:`load` returns None and pngread falls back to numba
(large runs) or to OpenCV / Pillow.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SOURCE = r"""
/* rvoskit: undo PNG row filters (1-byte pixels) in place. rows: H rows of W1 = width + 1 bytes,
   the filter type first. Returns 1, or 0 on a filter type above 4. */
#include <stdlib.h>
int rvoskit_png_unfilter(unsigned char *rows, long H, long W1) {
    long W = W1 - 1;
    for (long r = 0; r < H; r++) {
        unsigned char *x = rows + r * W1 + 1;
        const unsigned char *u = r ? x - W1 : 0;
        switch (x[-1]) {
        case 0:
            break;
        case 1:
            for (long i = 1; i < W; i++) x[i] = (unsigned char)(x[i] + x[i - 1]);
            break;
        case 2:
            if (u) for (long i = 0; i < W; i++) x[i] = (unsigned char)(x[i] + u[i]);
            break;
        case 3:
            if (u) {
                if (W > 0) x[0] = (unsigned char)(x[0] + (u[0] >> 1));
                for (long i = 1; i < W; i++) x[i] = (unsigned char)(x[i] + ((x[i - 1] + u[i]) >> 1));
            } else {
                for (long i = 1; i < W; i++) x[i] = (unsigned char)(x[i] + (x[i - 1] >> 1));
            }
            break;
        case 4:
            if (u) {
                if (W > 0) x[0] = (unsigned char)(x[0] + u[0]);
                for (long i = 1; i < W; i++) {
                    int a = x[i - 1], b = u[i], c = u[i - 1];
                    int pred;
                    if (b == c) {
                        pred = a;
                    } else {
                        int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
                        pred = (pa <= pb && pa <= pc) ? a : (pb <= pc) ? b : c;
                    }
                    x[i] = (unsigned char)(x[i] + pred);
                }
            } else {
                for (long i = 1; i < W; i++) x[i] = (unsigned char)(x[i] + x[i - 1]);
            }
            break;
        default:
            return 0;
        }
    }
    return 1;
}
"""

_STATE: dict = {}


def _library_name() -> str:
    cc = sysconfig.get_config_var("CC") or "cc"
    tag = hashlib.sha256((SOURCE + cc + sys.platform + (sysconfig.get_config_var("MULTIARCH") or "")).encode()).hexdigest()[:16]
    return f"_png_unfilter-{tag}.so"


def _folders() -> list[Path]:
    here = Path(__file__).resolve().parent / "__pycache__"
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rvoskit"
    return [here, home]


def _compile(target: Path) -> bool:
    """Compile :data:`SOURCE` into ``target`` (written to a temporary file, then renamed)."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src = Path(tmp) / "unfilter.c"
            src.write_text(SOURCE)
            out = Path(tmp) / target.name
            r = subprocess.run([*cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(src)], capture_output=True, timeout=120)
            if r.returncode != 0 or not out.is_file():
                return False
            os.replace(out, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _open(path: Path):
    lib = ctypes.CDLL(str(path))
    fn = lib.rvoskit_png_unfilter
    fn.argtypes = (ctypes.c_void_p, ctypes.c_long, ctypes.c_long)
    fn.restype = ctypes.c_int
    return fn


def load(build: bool = True):
    """The compiled ``rvoskit_png_unfilter(rows, H, W1)`` (a ctypes function), or None when there
    is no C compiler (``build``: compile it when no cached copy exists). Cached per process."""
    if "fn" in _STATE:
        return _STATE["fn"]
    fn = None
    name = _library_name()
    for folder in _folders():  # a copy built earlier (by scripts/install.sh or another run)
        if (folder / name).is_file():
            try:
                fn = _open(folder / name)
                break
            except OSError:  # broken: rebuilt below
                pass
    if fn is None and build:
        for folder in _folders():  # next to this module if writable, else the user's cache
            if _compile(folder / name):
                try:
                    fn = _open(folder / name)
                    break
                except OSError:
                    pass
    _STATE["fn"] = fn
    return fn


def unfilter(rows) -> bool:
    """Undo the filters of ``rows`` (a writable C-contiguous uint8 ``(H, W + 1)`` array) in place
    with the C function; False on an unknown filter type. Call only when :func:`load` is not None."""
    return bool(_STATE["fn"](rows.ctypes.data, rows.shape[0], rows.shape[1]))


def warm() -> bool:
    """Build the library now (``scripts/install.sh``); True when a compiled copy is available."""
    return load(build=True) is not None
