"""numba loops behind :mod:`rvoskit.corrupt.blur` (imported only when numba is installed).

``shuffle_passes`` is the reference's ``_shuffle_pixels_njit_glass_blur`` loop itself (the same walk,
the same copy ``x[h, w] = x[h + dy, w + dx]``) on one word per pixel, with the offsets drawn
beforehand in one call per pass (the same stream as the reference's two-at-a-time draws).
"""

from __future__ import annotations

import numba


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
