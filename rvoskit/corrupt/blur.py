"""Fast kernels for ``gaussian_blur``, ``glass_blur``, ``defocus_blur`` and ``pixelate``, with output
identical to ``imagecorruptions`` (imagecorruptions-imaug 1.1.5).

The reference blurs with ``skimage.filters.gaussian(x / 255., sigma, channel_axis=-1)``, which is
``scipy.ndimage.gaussian_filter(x / 255., [sigma, sigma, 0], mode="nearest", truncate=4.0)``: a
float64 1-D correlation down the rows (axis 0), then one along the columns (axis 1), and ends in
``np.uint8(np.clip(y, 0, 1) * 255)``, a truncation. scipy computes each output of a 1-D pass, per
line, as ``x[0] * w[0]``, then adds ``(x[-j] + x[j]) * w[j]`` for ``j = R .. 1`` (outermost pair
first) in float64; the value depends only on the line, not on the array's layout or strides.

:func:`gaussian_u8` gets the same uint8 result with less work:

1. The row pass (axis 0) runs in scipy itself, on a transposed, channel-planar copy in which the
   lines are contiguous: the same float64 values, ~1.7x faster than scipy on the interleaved
   ``(H, W, 3)`` array, whose axis-0 lines are strided.
2. The column pass is approximated in float32 (OpenCV, SIMD, direct summation) with a rigorous
   relative error bound, and the truncation is taken where the band around the float32 value
   (:func:`_floor_band`) holds no integer.
3. The other pixels (about 1 % of a real frame at sigma 6, more where values are exact integers:
   flat regions, linear ramps) get the reference's value: flat neighbourhoods from a 256-entry table
   of the reference's result on a constant image, the rest from the exact float64 row-pass values,
   summed in scipy's order.

:func:`glass_shuffle` is the reference's pixel-shuffle loop vectorised; :func:`filter2d_u8` is
``defocus_blur``'s per-plane float64 ``cv2.filter2D`` (its DFT tiles decide the values, so it is the
reference's own call, with less around it); :func:`pixelate_u8` is Pillow's box resize (as
``reduce`` passes where those are the same arithmetic) and Pillow's nearest resize maps.

Reference: ``imagecorruptions`` (imagecorruptions-imaug 1.1.5) ``gaussian_blur``, ``glass_blur``,
``_shuffle_pixels_njit_glass_blur``, ``defocus_blur``, ``pixelate``; scipy ``ndimage.gaussian_filter``
/ ``correlate1d`` (``ni_filters.c``, symmetric-kernel branch); Pillow ``Image.resize`` / ``reduce``.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import cv2
import numpy as np

from rvoskit.corrupt.kernels import _X_OVER_255

#: float32 unit roundoff
_U32 = 2.0**-24
#: the relative band around integers in which the float32 value does not decide the truncation is
#: this many times the relative float32 error bound (see :func:`gaussian_u8`)
_SAFETY = 2.5
#: absolute part of the band: covers the float32 roundings inside ``convertScaleAbs`` (< 3.1e-5)
_ABS_BAND = 1e-4
#: lines per block of the row pass (128 lines of 720 float64: 0.7 MB, in cache)
_LINES = 128
_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread work array reused from frame to frame (uninitialised): fresh multi-MB arrays each
    frame cost page faults, ~15 % of defocus_blur's time at 720p."""
    store = _SCRATCH.__dict__
    a = store.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = store[name] = np.empty(shape, dtype)
    return a


def _floor_band(t: np.ndarray, out: np.ndarray, rel: float) -> np.ndarray:
    """``out = clip(floor(t), 0, 255)`` for a float32 array with ``t >= 0.25``; returns the flat indices
    where the floor of a value within ``rel * t`` of ``t`` is not certain.

    ``lo = round(t (1 - rel) - 0.5 - d)`` and ``hi = round(t (1 + rel) - 0.5 + d)`` (``d =
    _ABS_BAND``; OpenCV's saturating, round-half-even conversion) agree exactly when every value in
    ``[t (1 - rel) - d, t (1 + rel) + d]`` has the same floor, so a true value ``T`` with
    ``|t - T| <= (rel / 2.5) T`` has floor ``hi`` wherever they agree.
    """
    lo = cv2.convertScaleAbs(t, alpha=1.0 - rel, beta=-0.5 - _ABS_BAND)
    cv2.convertScaleAbs(t, out, alpha=1.0 + rel, beta=-0.5 + _ABS_BAND)
    return np.flatnonzero(lo != out)


def _flat_check_pays(n_flat: int, taps: int, plane_px: int) -> bool:
    """Whether finding flat windows (erode and dilate over the (2R+1)^2 square, ~(1.2 + 0.05 R) ns a
    pixel of the plane) costs less than the window gathers of ``n_flat`` pixels (~6 ns a value)."""
    R = (taps - 1) // 2
    return n_flat * taps * 6.0 > plane_px * (1.2 + 0.05 * R)


def _planes(img3: np.ndarray) -> tuple[list[np.ndarray], int]:
    """The channel planes of ``(H, W, C)`` uint8 (contiguous) and how many to compute: 1 when all are
    equal (a grey frame stacked to RGB, as ``corrupt_image`` and the reference do), since every
    kernel here works plane by plane. The first rows are compared first, so colour frames cost ~1 us."""
    planes = cv2.split(img3) if img3.shape[2] > 1 else [np.ascontiguousarray(img3[:, :, 0])]
    p0 = planes[0]
    same = all(np.array_equal(p[0], p0[0]) for p in planes[1:]) and all(np.array_equal(p, p0) for p in planes[1:])
    return planes, 1 if same else len(planes)


@lru_cache(maxsize=16)
def _weights(sigma: float) -> np.ndarray:
    """scipy's ``gaussian_filter1d`` weights for ``truncate=4.0``: ``_gaussian_kernel1d(sigma, 0, R)[::-1]``."""
    radius = int(4.0 * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x**2)
    phi = phi / phi.sum()
    return phi[::-1].copy()


def _row_pass(lines: np.ndarray, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
    """scipy's 1-D gaussian along the last axis of a contiguous float64 array (the reference's call)."""
    from scipy import ndimage

    return ndimage.gaussian_filter1d(lines, float(sigma), axis=-1, mode="nearest", truncate=4.0, output=out)


@lru_cache(maxsize=16)
def _flat_table(sigma: float) -> np.ndarray:
    """The reference's uint8 result on a constant image of each value 0..255 (256 entries)."""
    from scipy import ndimage

    const = (np.arange(256, dtype=np.uint8) / 255.0).reshape(1, 1, 256)
    y = ndimage.gaussian_filter(const, [sigma, sigma, 0], mode="nearest", truncate=4.0)
    return np.uint8(np.clip(y.reshape(256), 0, 1) * 255)


@lru_cache(maxsize=16)
def _flat_rows(sigma: float) -> np.ndarray:
    """The reference's row-pass value for a constant column of each value 0..255 (256 float64 entries)."""
    const = (np.arange(256, dtype=np.uint8) / 255.0)[:, None] * np.ones((1, 3))
    return _row_pass(const, sigma)[:, 1].copy()


def _exact_column_pass(v: np.ndarray, w: np.ndarray, c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """scipy's float64 column-pass value at ``(c, r)`` of one transposed plane ``v`` (``(W, H)``, the
    exact row pass): ``v[c] * w[0]``, then ``+ (v[c - j] + v[c + j]) * w[j]`` for ``j = R .. 1``,
    with ``c +- j`` clamped to the image (``mode="nearest"``). The windows are gathered as
    ``(2R + 1, n)`` from a sliding-window view, with clamped indices for pixels within R of an end."""
    n2 = len(w)
    R = (n2 - 1) // 2
    W = v.shape[0]
    if W >= n2:
        win = np.moveaxis(np.lib.stride_tricks.sliding_window_view(v, n2, axis=0), -1, 0)
        g = win[:, np.clip(c - R, 0, W - n2), r]  # windows inside the plane; edges fixed below
        edge = np.flatnonzero((c < R) | (c >= W - R))
    else:
        g = np.empty((n2, len(r)), np.float64)
        edge = np.arange(len(r))
    if edge.size:
        g[:, edge] = v[np.clip(c[edge] + np.arange(-R, R + 1)[:, None], 0, W - 1), r[edge]]
    acc = g[R] * w[R]
    for j in range(R, 0, -1):
        acc += (g[R - j] + g[R + j]) * w[R + j]
    return acc


def gaussian_u8(image: np.ndarray, sigma: float) -> np.ndarray:
    """``np.uint8(np.clip(gaussian_filter(image / 255., [sigma, sigma, 0], mode="nearest", truncate=4.0), 0, 1) * 255)``.

    That is the reference's ``gaussian_blur`` result (and, without the clip, which changes nothing
    for a non-negative kernel, ``glass_blur``'s first blur), pixel for pixel.

    Error bound of step 2 (module docstring): the column pass sums ``n = 2R + 1 <= 49`` float32
    terms ``(255 w_k) v_k >= 0``, where ``v_k`` (the exact row-pass value in [0, 1], rounded to
    float32) and ``255 w_k`` (rounded) each carry a relative error of at most ``u = 2**-24``; the
    products and the sum (any order, with or without FMA; every partial sum of non-negative terms is
    at most the total; OpenCV's ``filter2D`` sums directly, without a DFT, for kernels of fewer than
    50 taps, 130 with SSE3 for float32, and 49 is the most here) add at most ``(n + 1) u`` times the total. So ``|t32 - T| <= (n + 3) u T``
    for the true ``T = 255 y`` (the reference's float64 ``255 y`` is within 1e-12 of it), a
    relative bound; :func:`_floor_band` takes the floor where the band ``2.5 (n + 3) u t32 + 1e-4``
    around ``t32`` holds no integer. Values are >= 0 (non-negative weights and pixels), so
    ``t32 < 0.25`` truncates to 0 for certain; ``t32`` is raised to 0.25 there, and the clip to
    255 is the saturation of the conversion.

    Args:
        image: ``uint8 (H, W, C)``, C in 1..4 (the reference's RGB frame), or ``(H, W)``.
        sigma: the blur's standard deviation in pixels (> 0; radius ``int(4 sigma + 0.5)`` <= 24).

    Returns:
        ``uint8`` array of the image's shape.

    Raises:
        ValueError: sigma outside (0, 6] (the radius bound above).
    """
    if not 0 < sigma <= 6:
        raise ValueError(f"sigma {sigma} outside (0, 6]")
    img3 = image if image.ndim == 3 else image[:, :, None]
    H, W, C_out = img3.shape
    src_planes, C = _planes(img3)  # C = 1 for a grey frame stacked to RGB: one plane computed, copied
    w = _weights(float(sigma))
    passes = _gauss_loops()
    if passes is not None:  # both passes compiled, in scipy's float64 order: exact by construction
        down, across = passes
        planes = []
        for p in src_planes[:C]:
            f = cv2.LUT(p, _X_OVER_255, dst=_scratch("gauss_f", (H, W), np.float64))
            v = _scratch("gauss_v", (H, W), np.float64)
            down(f, w, v)
            o = np.empty((H, W), np.uint8)
            across(v, w, o)
            planes.append(o)
        if C_out == 1:
            return planes[0].reshape(image.shape)
        return cv2.merge(planes * C_out if C == 1 else planes).reshape(image.shape)
    R = (len(w) - 1) // 2
    # 1. row pass (axis 0), exact: lines made contiguous in a (C, W, H) planar transpose
    planes_t = _scratch("gauss_u8", (C, W, H), np.uint8)
    for ch in range(C):
        cv2.transpose(src_planes[ch], planes_t[ch])
    v_t = _scratch("gauss_rows", (C, W, H), np.float64)
    v32 = _scratch("gauss_rows32", (C, W, H), np.float32)  # its float32 copy for step 2
    lines, v_lines, v32_lines = planes_t.reshape(C * W, H), v_t.reshape(C * W, H), v32.reshape(C * W, H)
    for a in range(0, C * W, _LINES):  # x / 255. (a table) and the pass, a cache-sized block of lines at a time
        block = _row_pass(cv2.LUT(lines[a : a + _LINES], _X_OVER_255), sigma, out=v_lines[a : a + _LINES])
        v32_lines[a : a + _LINES] = block
    # 2. column pass (axis 1) in float32 on the same transposed planes (a vertical kernel), 255
    #    folded into the weights; truncate where certain
    k32 = (w * 255.0).astype(np.float32).reshape(-1, 1)
    rel = _SAFETY * (len(w) + 3) * _U32
    square = np.ones((2 * R + 1, 2 * R + 1), np.uint8)
    planes = []
    for ch in range(C):
        t = cv2.filter2D(v32[ch], cv2.CV_32F, k32, dst=_scratch("gauss_cols", (W, H), np.float32), borderType=cv2.BORDER_REPLICATE)
        np.maximum(t, np.float32(0.25), out=t)
        o = np.empty((W, H), np.uint8)
        amb = _floor_band(t, o, rel)
        if amb.size:
            # 3. undecided pixels: the reference's float64 value
            dst = o.reshape(-1)
            # flat windows have a centre whose row-pass value is that of a constant column: the
            # erode == dilate check (rigorous) runs when enough pixels pass that cheap filter
            centre = planes_t[ch].reshape(-1)[amb]
            maybe_flat = np.count_nonzero(v_t[ch].reshape(-1)[amb] == _flat_rows(float(sigma))[centre])
            if _flat_check_pays(maybe_flat, len(w), W * H):  # flat neighbourhoods: a table
                lo = cv2.erode(planes_t[ch], square, borderType=cv2.BORDER_REPLICATE).reshape(-1)[amb]
                hi = cv2.dilate(planes_t[ch], square, borderType=cv2.BORDER_REPLICATE).reshape(-1)[amb]
                flat = lo == hi
                dst[amb[flat]] = _flat_table(float(sigma))[lo[flat]]
                amb = amb[~flat]
            if amb.size:
                c, r = np.divmod(amb, H)
                y = _exact_column_pass(v_t[ch], w, c, r)
                np.clip(y, 0, 1, out=y)
                y *= 255
                dst[amb] = y.astype(np.uint8)
        planes.append(cv2.transpose(o))
    if C_out == 1:
        return planes[0].reshape(image.shape)
    return cv2.merge(planes * C_out if C == 1 else planes).reshape(image.shape)


def _draw_offsets(rng, delta: int, n: int) -> np.ndarray:
    """``randint(-delta, delta, size=(n, 2))`` as int32: legacy ``RandomState.randint`` with
    ``dtype=int32`` (the same masked 32-bit draws as its int64 default, so the same values);
    ``Generator.integers`` drawn as int64 (its default stream) and narrowed."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(-delta, delta, size=(n, 2), dtype=np.int32)
    return rng.integers(-delta, delta, size=(n, 2)).astype(np.int32)


def _rgb_loops():
    """The compiled ``plane_scaled`` and ``put_plane_u8`` of :mod:`rvoskit.corrupt._blur_numba`, or None without numba."""
    try:
        from rvoskit.corrupt._blur_numba import plane_scaled, put_plane_u8
    except ImportError:
        return None
    return plane_scaled, put_plane_u8


def _is_grey(img3: np.ndarray) -> bool:
    """Whether all channels of ``(H, W, C)`` are equal (first rows first: ~1 us for colour frames)."""
    c0 = img3[:, :, 0]
    if not all(np.array_equal(img3[0, :, k], c0[0]) for k in range(1, img3.shape[2])):
        return False
    return all(np.array_equal(img3[:, :, k], c0) for k in range(1, img3.shape[2]))


@lru_cache(maxsize=1)
def _gauss_loops():
    """The compiled passes of :mod:`rvoskit.corrupt._blur_numba` (``gauss_down``, ``gauss_across_u8``),
    or None without numba, or if on this machine they do not give scipy's float64 values bit for bit
    (checked once on a noise plane: a compiler that fused the multiply-adds would fail it)."""
    try:
        from rvoskit.corrupt._blur_numba import gauss_across_u8, gauss_down
    except ImportError:
        return None
    from scipy import ndimage

    f = _X_OVER_255[np.random.default_rng(0).integers(0, 256, (61, 67), dtype=np.uint8)]
    for sigma in (0.7, 6.0):
        w = _weights(sigma)
        v = np.empty_like(f)
        gauss_down(f, w, v)
        want = ndimage.gaussian_filter1d(f, sigma, axis=0, mode="nearest", truncate=4.0)
        if not np.array_equal(v.view(np.int64), want.view(np.int64)):
            return None
        other = want.T.copy()  # the second pass on other rows, through its uint8 end
        o = np.empty(other.shape, np.uint8)
        gauss_across_u8(other, w, o)
        y = ndimage.gaussian_filter1d(other, sigma, axis=1, mode="nearest", truncate=4.0)
        if not np.array_equal(o, np.uint8(np.clip(y, 0, 1) * 255)):
            return None
    return gauss_down, gauss_across_u8


def _shuffle_loop():
    """The compiled walk of :mod:`rvoskit.corrupt._blur_numba`, or None without numba."""
    try:
        from rvoskit.corrupt._blur_numba import shuffle_passes
    except ImportError:
        return None
    return shuffle_passes


def glass_shuffle(x: np.ndarray, delta: int, iterations: int, rng) -> np.ndarray:
    """The reference's ``_shuffle_pixels_njit_glass_blur`` on ``x`` (``(H, W, ...)``), same result for the same draws.

    The reference walks ``h`` from ``H - delta`` down to ``delta + 1`` and, inside, ``w`` from
    ``W - delta`` down to ``delta + 1``, draws ``dx, dy = randint(-delta, delta, size=2)`` and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with ``(h', w') = (h + dy, w + dx)``. On pixel
    views that tuple "swap" is a copy: ``x[h, w]`` takes ``x[h', w']``'s value, which keeps it. So
    the pixel at walk position ``k`` ends with the value of its source ``j`` as it was when ``k``
    was visited: ``j``'s value at the end of the pass if the walk visited ``j`` before ``k``
    (``j`` inside the walked rectangle and ``dy * nw + dx > 0``: a later row, or the same row
    further right), else ``j``'s value before the pass. Each pass is computed as a source index
    per pixel: a gather for every position, then, for the ~40 % whose source was visited earlier,
    the chain of earlier sources followed to its first node with an unvisited source (chains are
    short: each link continues with probability < 1/2), in int32 on the walked rectangle only. RGB
    uint8 pixels are moved packed as one uint32 each; other images as source indices. With numba
    installed, the walk itself runs compiled (the same copies in the same order, ~10x faster than
    the vectorised passes); the offsets are drawn the same way either way.

    Args:
        x: the image, ``(H, W, C)``, any dtype (for 2-D arrays the reference's tuple assignment is a
            true swap of scalars, which this does not model).
        delta: the largest shift (``dx, dy`` in ``[-delta, delta)``).
        iterations: number of passes.
        rng: ``RandomState`` (the reference's stream) or ``Generator``.

    Returns:
        The shuffled image (a new array), or ``x`` itself when the walk is empty.
    """
    H, W = x.shape[:2]
    nh, nw = H - 2 * delta, W - 2 * delta
    if nh <= 0 or nw <= 0:
        return x
    n = nh * nw
    rgb8 = x.ndim == 3 and x.shape[2] == 3 and x.dtype == np.uint8
    if rgb8:  # shuffle the pixels themselves, packed as one uint32 each (RGBA, A = 0)
        cur = cv2.cvtColor(x, cv2.COLOR_RGB2RGBA).view(np.uint32).reshape(H, W)
    else:  # shuffle source indices, gather the pixels at the end
        cur = np.arange(H * W, dtype=np.int32).reshape(H, W)
    flat = cur.reshape(-1)
    loop = _shuffle_loop()
    if loop is not None:  # the reference's loop, compiled, on offsets drawn one pass at a time
        loop(flat, H, W, delta, np.stack([_draw_offsets(rng, delta, n) for _ in range(iterations)]))
        if rgb8:
            return cv2.cvtColor(cur.view(np.uint8).reshape(H, W, 4), cv2.COLOR_RGBA2RGB)
        return x.reshape(H * W, -1)[flat].reshape(x.shape)
    # walk position k = i * nw + j is pixel (H - delta - i, W - delta - j)
    rect = (slice(H - delta, delta, -1), slice(W - delta, delta, -1))
    pos = np.arange(H * W, dtype=np.int32).reshape(H, W)[rect].reshape(-1).copy()  # pixel index of each walk position
    i = np.arange(nh, dtype=np.int32)[:, None]
    j = np.arange(nw, dtype=np.int32)[None, :]
    for _ in range(iterations):
        d = _draw_offsets(rng, delta, n)
        dx, dy = d[:, 0], d[:, 1]
        off = dy * np.int32(nw)
        off += dx  # walk positions back to the source, when it lies in the walked rectangle
        jpix = dy * np.int32(W)
        jpix += dx
        jpix += pos
        vals = flat[jpix]  # sources' values before the pass
        dep = off > 0  # source visited earlier, if inside the rectangle: fix the border strips
        d2y, d2x, dep2 = dy.reshape(nh, nw), dx.reshape(nh, nw), dep.reshape(nh, nw)
        top = slice(0, min(delta, nh))  # h' = h + dy may pass H - delta: i - dy < 0
        dep2[top] &= (i[top] - d2y[top]) >= 0
        bottom = slice(max(0, nh - delta), nh)  # h' may fall to delta or below
        dep2[bottom] &= (i[bottom] - d2y[bottom]) <= nh - 1
        left = slice(0, min(delta, nw))  # w' may pass W - delta
        dep2[:, left] &= (j[:, left] - d2x[:, left]) >= 0
        right = slice(max(0, nw - delta), nw)  # w' may fall to delta or below
        dep2[:, right] &= (j[:, right] - d2x[:, right]) <= nw - 1
        act = np.flatnonzero(dep).astype(np.int32)
        if act.size:
            par = act - off[act]
            todo = np.flatnonzero(dep[par])
            while todo.size:  # follow each chain to its first node with an unvisited source
                p = par[todo]
                p -= off[p]
                par[todo] = p
                todo = todo[dep[p]]
            vals[act] = vals[par]
        cur[rect] = vals.reshape(nh, nw)
    if rgb8:
        return cv2.cvtColor(cur.view(np.uint8).reshape(H, W, 4), cv2.COLOR_RGBA2RGB)
    return x.reshape(H * W, -1)[flat].reshape(x.shape)


def filter2d_u8(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``np.uint8(np.clip(cv2.filter2D(plane / 255., -1, kernel), 0, 1) * 255)`` per channel plane.

    The reference's ``defocus_blur`` filters each channel of ``x / 255.`` (float64) with
    ``cv2.filter2D`` (a DFT per tile for its 17x17 and 21x21 disks) and ends in
    ``np.uint8(np.clip(., 0, 1) * 255)``. Here the same ``filter2D`` call runs on the same float64
    plane values (``x / 255.`` through a 256-entry table, from OpenCV's channel split instead of the
    binding's copy of a strided view), so the filtered values are identical; the clip, scale and
    truncation run in place per plane, and the planes are merged once (with numba, each plane is
    made from the frame and its result written into the interleaved output by compiled loops).

    Args:
        image: ``uint8 (H, W, C)``, C in 1..4, or ``(H, W)``.
        kernel: the filter (``float32`` or ``float64``, as the reference passes it).

    Returns:
        ``uint8`` array of the image's shape.
    """
    img3 = image if image.ndim == 3 else image[:, :, None]
    loops = _rgb_loops()
    if loops is not None and img3.shape[2] > 1 and not _is_grey(img3):
        # compiled, plane by plane: the float64 plane straight from the interleaved frame, filter2D
        # as above, then clip, scale and truncate straight into the interleaved result (no split,
        # astype or merge; each plane's data still in cache)
        plane_scaled, put_plane_u8 = loops
        H, W = img3.shape[:2]
        f = _scratch("f2d_in", (H, W), np.float64)
        y = _scratch("f2d_out", (H, W), np.float64)
        out = np.empty(img3.shape, np.uint8)
        for k in range(img3.shape[2]):
            plane_scaled(img3, _X_OVER_255, k, f)
            cv2.filter2D(f, -1, kernel, dst=y)
            put_plane_u8(y, k, out)
        return out.reshape(image.shape)
    src_planes, n = _planes(img3)  # n = 1 for a grey frame stacked to RGB: one plane filtered, copied
    planes = []
    for p in src_planes[:n]:
        f = cv2.LUT(p, _X_OVER_255, dst=_scratch("f2d_in", p.shape, np.float64))
        y = cv2.filter2D(f, -1, kernel, dst=_scratch("f2d_out", p.shape, np.float64))
        np.clip(y, 0, 1, out=y)
        y *= 255
        planes.append(y.astype(np.uint8))
    if img3.shape[2] == 1:
        return planes[0].reshape(image.shape)
    return cv2.merge(planes * img3.shape[2] if n == 1 else planes).reshape(image.shape)


@lru_cache(maxsize=64)
def _nearest_map(n_in: int, n_out: int) -> tuple[np.ndarray, bool]:
    """Pillow's ``NEAREST`` resize source index for each of ``n_out`` positions (its 16.16 fixed-point
    affine walk, read off a 1-pixel-high index image), and whether OpenCV's ``INTER_NEAREST_EXACT``
    picks the same indices."""
    from PIL import Image

    idx = Image.frombytes("I", (n_in, 1), np.arange(n_in, dtype=np.int32).tobytes())
    pil = np.asarray(idx.resize((n_out, 1), Image.NEAREST))[0].astype(np.intp)
    ocv = cv2.resize(np.arange(n_in, dtype=np.float32)[None, :], (n_out, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0]
    return pil, bool(np.array_equal(pil, ocv.astype(np.intp)))


@lru_cache(maxsize=32)
def _box_order(h: int, w: int, f: int) -> str | None:
    """For a BOX resize of an ``(h, w)`` RGB image by ``1/f`` (f = 2 or 4, dividing both): which
    ``reduce`` pair gives Pillow's result, ``"rows"`` (``(f, 1)`` then ``(1, f)``) or ``"cols"``, or None.

    The BOX resize by an exact factor f gives every output the average of an f x f block, each weight
    exactly 1/f in Pillow's 22-bit fixed point, in two passes that each round ``(sum + f/2) // f``;
    Pillow's ``reduce`` computes the same passes with the same rounding in integer code, ~1.5-2x
    faster. The order of the two passes (which changes the result) is Pillow's choice for the size
    (the installed Pillow takes columns first for some tall images), so it is read off a noise
    image of this size once; a size where that does not single out one order keeps the BOX resize.
    """
    from PIL import Image

    probe = Image.fromarray(np.random.default_rng(h * 7919 + w).integers(0, 256, (h, w, 3), dtype=np.uint8))
    want = np.asarray(probe.resize((w // f, h // f), Image.BOX))
    rows = np.array_equal(np.asarray(probe.reduce((f, 1)).reduce((1, f))), want)
    cols = np.array_equal(np.asarray(probe.reduce((1, f)).reduce((f, 1))), want)
    return "rows" if rows and not cols else "cols" if cols and not rows else None


def pixelate_u8(image: np.ndarray, c: float) -> np.ndarray:
    """The reference's ``pixelate``: Pillow ``BOX`` resize to ``(int(w c), int(h c))``, then ``NEAREST`` back to ``(w, h)``.

    The box resize is Pillow's own, on the same ``Image.fromarray`` frame (as two ``reduce`` passes
    with the same integer arithmetic when the scale is 1/2 or 1/4 of a divisible size: :func:`_box_order`;
    a compiled loop was slower than Pillow's C here). The nearest resize is
    separable: output ``(y, x)`` is input ``(ymap[y], xmap[x])``, with Pillow's maps read off
    1-pixel index images; the rows are widened by OpenCV's ``INTER_NEAREST_EXACT`` where that picks
    the same columns (checked per size, cached), else by a gather, then copied whole by ``ymap``.
    No full-size Pillow image is converted back to numpy (``tobytes``: the reference does it twice,
    once for the input's shape).

    Args:
        image: ``uint8 (H, W, 3)``.
        c: the scale, ``[0.6, 0.5, 0.4, 0.3, 0.25][severity - 1]``.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    from PIL import Image

    h, w = image.shape[:2]
    f = round(1 / c)
    order = _box_order(h, w, f) if f in (2, 4) and c == 1 / f and h % f == 0 and w % f == 0 else None
    im = Image.fromarray(image)
    if order is None:
        small = np.asarray(im.resize((int(w * c), int(h * c)), Image.BOX))
    else:  # the same two integer passes as Pillow's BOX resize, in the order it takes for this size
        first, second = ((f, 1), (1, f)) if order == "rows" else ((1, f), (f, 1))
        small = np.asarray(im.reduce(first).reduce(second))
    xmap, x_same = _nearest_map(small.shape[1], w)
    ymap, _ = _nearest_map(small.shape[0], h)
    if x_same:  # widen the small rows with OpenCV (same columns), then copy whole rows
        wide = cv2.resize(small, (w, small.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    else:
        wide = np.take(small, xmap, axis=1)
    return np.take(wide, ymap, axis=0)
