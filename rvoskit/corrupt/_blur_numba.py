"""numba loops behind :mod:`rvoskit.corrupt.blur` (imported only when numba is installed).

``shuffle_passes`` is the reference's ``_shuffle_pixels_njit_glass_blur`` loop itself (the same walk,
the same copy ``x[h, w] = x[h + dy, w + dx]``) on one word per pixel, with the offsets drawn
beforehand in one call per pass (the same stream as the reference's two-at-a-time draws).
"""

from __future__ import annotations

import numpy as np

from rvoskit._jit import prepare_numba

prepare_numba()  # before numba: see rvoskit._jit
import numba  # noqa: E402


@numba.njit(nogil=True, cache=True)
def shuffle_passes(cur, H, W, delta, offsets):  # pragma: no cover - compiled
    """``cur``: ``(H * W,)`` pixels (packed words or indices); ``offsets``: ``(passes, n, 2)`` int32 ``(dx, dy)``."""
    for it in range(offsets.shape[0]):
        k = 0
        for h in range(H - delta, delta, -1):
            for w in range(W - delta, delta, -1):
                dx = offsets[it, k, 0]
                dy = offsets[it, k, 1]
                k += 1
                cur[h * W + w] = cur[(h + dy) * W + (w + dx)]


@numba.njit(nogil=True, cache=True)
def gauss_down(f, w, v):  # pragma: no cover - compiled
    """scipy's symmetric ``correlate1d`` along axis 0 of the float64 plane ``f`` (``mode="nearest"``) into ``v``:
    ``f[r] * w[R]``, then ``+ (f[r - j] + f[r + j]) * w[R + j]`` for ``j = R .. 1``, rows clamped to the plane."""
    H, W = f.shape
    R = (w.shape[0] - 1) // 2
    c = w[R]
    for r in range(H):
        acc = v[r]
        src = f[r]
        for i in range(W):
            acc[i] = src[i] * c
        for j in range(R, 0, -1):
            a = f[max(r - j, 0)]
            b = f[min(r + j, H - 1)]
            wj = w[R + j]
            for i in range(W):
                acc[i] += (a[i] + b[i]) * wj


@numba.njit(nogil=True, cache=True)
def gauss_across_u8(v, w, out):  # pragma: no cover - compiled
    """scipy's symmetric ``correlate1d`` along axis 1 of ``v`` (``mode="nearest"``), then
    ``uint8(clip(y, 0, 1) * 255)`` into ``out``, row by row through an edge-extended line buffer."""
    H, W = v.shape
    R = (w.shape[0] - 1) // 2
    c = w[R]
    buf = np.empty(W + 2 * R)
    acc = np.empty(W)
    for r in range(H):
        row = v[r]
        for i in range(R):
            buf[i] = row[0]
            buf[R + W + i] = row[W - 1]
        for i in range(W):
            buf[R + i] = row[i]
        for i in range(W):
            acc[i] = row[i] * c
        for j in range(R, 0, -1):
            wj = w[R + j]
            lo = buf[R - j : R - j + W]
            hi = buf[R + j : R + j + W]
            for i in range(W):
                acc[i] += (lo[i] + hi[i]) * wj
        o = out[r]
        for i in range(W):
            o[i] = np.uint8(int(min(max(acc[i], 0.0), 1.0) * 255.0))


@numba.njit(nogil=True, cache=True)
def plane_scaled(x, table, k, f):  # pragma: no cover - compiled
    """Channel ``k`` of the uint8 ``(H, W, C)`` image ``x`` as ``table[x]`` (float64) into ``f``."""
    H, W, _ = x.shape
    for r in range(H):
        for i in range(W):
            f[r, i] = table[x[r, i, k]]


@numba.njit(nogil=True, cache=True)
def put_plane_u8(y, k, out):  # pragma: no cover - compiled
    """``out[..., k] = uint8(clip(y, 0, 1) * 255)`` for the float64 plane ``y``."""
    H, W = y.shape
    for r in range(H):
        for i in range(W):
            out[r, i, k] = np.uint8(int(min(max(y[r, i], 0.0), 1.0) * 255.0))


def warm() -> None:
    """Compile (or load from numba's on-disk cache) these loops with the argument types
    :mod:`rvoskit.corrupt.blur` passes, by running the three corruptions on a small frame."""
    from rvoskit.corrupt.imagenet_c import corrupt_image
    from rvoskit.corrupt.rng import make_rng

    frame = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    for name in ("gaussian_blur", "glass_blur", "defocus_blur"):
        corrupt_image(frame, name, 1, make_rng("legacy", 0, name))
