"""Fast kernels for ``gaussian_noise`` and ``motion_blur`` with output identical to ``imagecorruptions``.

Both reference corruptions end in ``np.uint8(float64 value)``, a truncation, so the output is
decided by the float64 value only near integers. The kernels here compute the value in float32,
in cache-sized row bands, bound the float32 error rigorously, and recompute in the reference's
float64 arithmetic, in the reference's order, exactly the pixels whose float32 value lies within
a band around an integer wider than that bound (well under 1 % of them on real frames). The result is the
reference's uint8 output, pixel for pixel, for every input.

Reference: ``imagecorruptions`` (imagecorruptions-imaug 1.1.5, ``corruptions.py``):
``gaussian_noise``, ``motion_blur``, ``_motion_blur``, ``shift``, ``getMotionBlurKernel``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: gaussian_noise: noise standard deviation (in [0, 1] intensity units) per severity 1..5.
GAUSSIAN_NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
#: motion_blur: (radius, sigma) in pixels per severity 1..5; the line has 2 * radius + 1 taps.
MOTION_BLUR_PARAMS = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))

# float32 error bounds (proofs in the function docstrings) with a safety factor of >= 2.8.
_EPS = 2e-3
_ROWS_PER_BAND = 32  # float32 work in row bands that stay in cache

_X_OVER_255 = np.arange(256, dtype=np.float64) / 255.0  # the reference's x / 255. for every uint8 value
_LEVELS_F32 = np.arange(256, dtype=np.float32)  # 255 * (x / 255.) rounded to float32, which is x


def _floor_band(t: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = clip(floor(t), 0, 255)`` for a float32 band with ``t >= 0``; returns the flat indices
    (into the band) where ``t`` lies within ``_EPS`` of an integer and the floor is not certain.

    Uses OpenCV's saturating rounding conversion twice: ``round(|t - 0.5 -+ eps|)`` equals
    ``floor(t -+ eps)`` for ``t >= eps`` (round-half-even ties only occur where the two results
    differ or agree with ``floor(t)``), and both saturate at 255.
    """
    lo = cv2.convertScaleAbs(t, alpha=1.0, beta=-0.5 - _EPS)
    cv2.convertScaleAbs(t, out, alpha=1.0, beta=-0.5 + _EPS)
    return np.flatnonzero(lo != out)


def gaussian_noise_apply(image: np.ndarray, z: np.ndarray, sigma: float, exact=None) -> np.ndarray:
    """``uint8(clip(image / 255 + sigma * z, 0, 1) * 255)``, the reference's float64 result.

    The reference (``gaussian_noise``) computes ``x = image / 255.`` (float64), adds
    ``np.random.normal(size=x.shape, scale=sigma)`` (which is ``0 + sigma * z``), clips to [0, 1],
    multiplies by 255 and truncates (``np.uint8``). Here ``t = 255 x + (255 sigma) z`` is computed in
    float32 and ``floor(t)`` clipped to [0, 255] is taken where ``t`` is at least 2e-3 from an
    integer. Float32 error: the roundings of ``255 x``, ``255 sigma``, ``z``, the product, the sum and
    the final shift are each at most 2**-24 relative, so with ``n = sigma z``,
    ``|t32 - t64| <= 255 * 2**-24 * (3 + 4 |n|)``, below 2.6e-4 for ``|n| <= 3.3`` (legacy float64
    normals stay below 8.6 sigma; float32 Box-Muller below 5.8). Pixels inside the 2e-3 band are
    recomputed in float64 exactly as the reference does. Near 0 there is nothing to decide: a value
    just below 0 clips to 0 and one just above truncates to 0, so ``t`` is first raised to 0.25.

    Args:
        image: ``uint8 (H, W, C)``, C in 1..4.
        z: standard normal draws of the image's shape, float32 or float64 (float64 ``z`` from
            ``RandomState.standard_normal`` makes ``sigma * z`` the reference's noise bit for bit).
        sigma: the noise standard deviation, e.g. ``GAUSSIAN_NOISE_SIGMA[severity - 1]``.
        exact: optional ``exact(flat_idx) -> float64`` giving the reference's ``z`` bit for bit where
            ``z`` itself may be a few ulps off (:meth:`rvoskit.corrupt.rng.LegacyNormals.exact`).
            The float64 recomputation first uses ``z``; only pixels whose unclipped float64 value
            ``255 (x + sigma z)`` lands within 1e-9 of an integer (0 and 255 included), where a
            few-ulp change of ``z`` (below 1e-12 after scaling) could move the clip or the
            truncation, are computed again with ``exact`` (about one pixel in 100 frames).

    Returns:
        ``uint8`` array of the image's shape.

    Raises:
        ValueError: ``z`` does not have the image's shape.
    """
    if z.shape != image.shape:
        raise ValueError(f"noise shape {z.shape} != image shape {image.shape}")
    img3 = image if image.ndim == 3 else image[:, :, None]
    z3 = z.reshape(img3.shape)
    H, W, C = img3.shape
    out = np.empty_like(img3)
    k = float(np.float32(sigma * 255.0))
    amb = []
    for r0 in range(0, H, _ROWS_PER_BAND):
        r1 = min(H, r0 + _ROWS_PER_BAND)
        t = cv2.LUT(img3[r0:r1], _LEVELS_F32).reshape(r1 - r0, W, C)
        zb = z3[r0:r1] if z3.dtype == np.float32 else z3[r0:r1].astype(np.float32)
        cv2.scaleAdd(zb, k, t, dst=t)
        np.maximum(t, np.float32(0.25), out=t)
        amb.append(_floor_band(t, out[r0:r1]) + r0 * W * C)
    amb = np.concatenate(amb)
    if amb.size:
        x = _X_OVER_255[img3.reshape(-1)[amb]]
        noise = sigma * z3.reshape(-1)[amb].astype(np.float64)
        v = x + noise
        if exact is not None:
            w = v * 255
            near = np.flatnonzero(np.abs(w - np.rint(w)) < 1e-9)
            if near.size:
                v[near] = x[near] + sigma * exact(amb[near])
        out.reshape(-1)[amb] = (np.clip(v, 0, 1) * 255).astype(np.uint8)
    return out.reshape(image.shape)


def speckle_noise_apply(image: np.ndarray, z: np.ndarray, c: float, exact=None) -> np.ndarray:
    """``uint8(clip(x + x * (c z), 0, 1) * 255)`` with ``x = image / 255``, the reference's float64 result.

    The reference (``speckle_noise``) adds ``x * np.random.normal(size=x.shape, scale=c)`` to ``x``
    (the noise is ``0 + c z``), clips to [0, 1], multiplies by 255 and truncates. Here
    ``t = k (1 + c z)`` (``k`` the uint8 value, ``255 x`` rounded) is computed in float32 in row
    bands and ``floor(t)``, clipped to [0, 255], taken where ``t`` is at least 2e-3 from an
    integer; the other pixels are recomputed in float64 exactly as the reference does. Float32
    error: the roundings of ``z``, ``c``, ``c z``, ``1 + c z`` and the product give
    ``|t32 - t| <= 2**-24 (3 k |c z| + 2 |t| + k)``, and ``k |c z| <= |t| + k``, so below 1.3e-4
    wherever ``|t| <= 256`` (beyond that both sides saturate to 255 or clip to 0). Near 0 nothing is
    decided (negative values clip to 0, small positive ones truncate to 0): ``t`` is raised to 0.25.

    Args:
        image: ``uint8 (H, W, C)``, C in 1..4, or ``(H, W)``.
        z: standard normal draws of the image's shape, float64 (the reference's, e.g.
            :func:`rvoskit.corrupt.rng.legacy_normals`) or float32.
        c: the noise scale, ``[.15, .2, .35, .45, .6][severity - 1]``.
        exact: as in :func:`gaussian_noise_apply`: the reference's ``z`` at flat indices, used
            where the float64 value ``255 (x + x c z)`` lies within 1e-9 of an integer.

    Returns:
        ``uint8`` array of the image's shape.

    Raises:
        ValueError: ``z`` does not have the image's shape.
    """
    if z.shape != image.shape:
        raise ValueError(f"noise shape {z.shape} != image shape {image.shape}")
    img3 = image if image.ndim == 3 else image[:, :, None]
    z3 = z.reshape(img3.shape)
    H, W, C = img3.shape
    out = np.empty_like(img3)
    ones = np.ones((_ROWS_PER_BAND, W, C), np.float32)
    amb = []
    for r0 in range(0, H, _ROWS_PER_BAND):
        r1 = min(H, r0 + _ROWS_PER_BAND)
        t = cv2.LUT(img3[r0:r1], _LEVELS_F32).reshape(r1 - r0, W, C)
        zb = z3[r0:r1] if z3.dtype == np.float32 else z3[r0:r1].astype(np.float32)
        w = cv2.scaleAdd(zb, float(np.float32(c)), ones[: r1 - r0]).reshape(t.shape)  # 1 + c z
        cv2.multiply(t, w, dst=t)
        np.maximum(t, np.float32(0.25), out=t)
        amb.append(_floor_band(t, out[r0:r1]) + r0 * W * C)
    amb = np.concatenate(amb)
    if amb.size:
        x = _X_OVER_255[img3.reshape(-1)[amb]]
        v = x + x * (c * z3.reshape(-1)[amb].astype(np.float64))
        if exact is not None:
            w = v * 255
            near = np.flatnonzero(np.abs(w - np.rint(w)) < 1e-9)
            if near.size:
                v[near] = x[near] + x[near] * (c * exact(amb[near]))
        out.reshape(-1)[amb] = (np.clip(v, 0, 1) * 255).astype(np.uint8)
    return out.reshape(image.shape)


def motion_blur_taps(radius: int, sigma: float, angle: float, height: int, width: int) -> list[tuple[int, int, float]]:
    """The taps of the reference's ``_motion_blur``: ``[(oy, ox, weight), ...]`` in summation order.

    Output pixel ``(r, c)`` adds ``weight * image[clamp(r + oy), clamp(c + ox)]`` per tap (edge
    replication), in list order. Weights are ``exp(-i**2 / (2 sigma**2))`` normalised over the
    ``2 * radius + 1`` taps; offsets ``oy = ceil(i * sin(a) - 0.5)``, ``ox = ceil(i * cos(a) - 0.5)``
    computed with the reference's own float expressions. Like the reference, taps stop at the first
    offset that reaches the image size.
    """
    w = 2 * radius + 1
    # the reference's getMotionBlurKernel(gauss_function(np.arange(width), 0, sigma)), verbatim
    k = np.exp(-((np.arange(w) - 0) ** 2) / (2 * (sigma**2))) / (np.sqrt(2 * np.pi) * sigma)
    k = k / np.sum(k)
    point = (w * np.sin(np.deg2rad(angle)), w * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    taps = []
    for i in range(w):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if abs(dy) >= height or abs(dx) >= width:
            break
        taps.append((-dy, -dx, float(k[i])))
    return taps


def _pad(image: np.ndarray, taps) -> tuple[np.ndarray, int, int]:
    """``image`` edge-replicated so that every tap of every pixel is in bounds; returns ``(padded, top, left)``."""
    top = max(0, -min(t[0] for t in taps))
    bottom = max(0, max(t[0] for t in taps))
    left = max(0, -min(t[1] for t in taps))
    right = max(0, max(t[1] for t in taps))
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] <= 4:  # OpenCV: 20x faster than np.pad
        p = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE)
        return p.reshape(p.shape[0], p.shape[1], image.shape[2]), top, left
    return np.pad(image, [(top, bottom), (left, right)] + [(0, 0)] * (image.ndim - 2), mode="edge"), top, left


def _exact_sums(padded: np.ndarray, top: int, left: int, taps, flat_idx: np.ndarray, shape) -> np.ndarray:
    """The reference's float64 sequential sum ``((k0 x0 + k1 x1) + k2 x2) + ...`` for the given output pixels."""
    _, W, C = shape
    pW = padded.shape[1]
    r, rem = np.divmod(flat_idx, W * C)
    c, ch = np.divmod(rem, C)
    base = ((r + top) * pW + (c + left)) * C + ch
    src = padded.reshape(-1)
    acc = None
    for oy, ox, k in taps:
        term = np.float64(k) * src[base + (oy * pW + ox) * C]
        acc = term if acc is None else acc + term
    return acc


def motion_blur_apply(image: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """The reference's ``np.uint8(motion_blur(image))`` for a given angle, pixel for pixel.

    The reference sums ``kernel[i] * shift(image, dx, dy)`` over the taps in float64 (starting from
    a float32 zero image, which the first float64 term promotes), clips to [0, 255] and truncates.
    Here:

    1. ``A``: the same weighted sum in float32 (taps at the same offset merged), in row bands of an
       edge-replicated padded image. Error bound: at most 41 terms, each at most 255; the weight,
       product and running-sum roundings give ``|A - S| <= (41 + 3) * 255 * 2**-24 < 7e-4``.
    2. Pixels with ``A`` at least 2e-3 from an integer: output ``floor(A)``.
    3. Among the others, pixels whose taps all hold the same value ``v`` (a flat neighbourhood:
       ``erode == dilate`` over the tap footprint): the reference's float64 result for a constant
       ``v`` (a 256-entry table; e.g. a flat 200 gives 199 when the float kernel sums below 1).
    4. The rest: the reference's float64 sum, in its order, gathered tap by tap.

    Args:
        image: ``uint8 (H, W, C)``, C in 1..4, or ``(H, W)``.
        radius, sigma: ``MOTION_BLUR_PARAMS[severity - 1]``.
        angle: degrees (the reference draws ``np.random.uniform(-45, 45)``).

    Returns:
        ``uint8`` array of the image's shape.
    """
    img3 = image if image.ndim == 3 else image[:, :, None]
    H, W, C = img3.shape
    taps = motion_blur_taps(radius, sigma, angle, H, W)
    padded, top, left = _pad(img3, taps)
    out = np.empty_like(img3)

    # 1-2. float32 sum in row bands, converted from uint8 band by band; floor where unambiguous
    merged: dict[tuple[int, int], float] = {}
    for oy, ox, k in taps:
        merged[(oy, ox)] = merged.get((oy, ox), 0.0) + k
    terms = [(oy, ox, float(np.float32(k))) for (oy, ox), k in merged.items()]
    oy_min = min(t[0] for t in taps)
    oy_max = max(t[0] for t in taps)
    span = oy_max - oy_min
    src = np.empty((_ROWS_PER_BAND + span, padded.shape[1], C), np.float32)
    acc = np.empty((_ROWS_PER_BAND, W, C), np.float32)
    amb = []
    for r0 in range(0, H, _ROWS_PER_BAND):
        r1 = min(H, r0 + _ROWS_PER_BAND)
        n = r1 - r0
        s, a = src[: n + span], acc[:n]
        s[...] = padded[r0 + top + oy_min : r1 + top + oy_max]
        oy, ox, k = terms[0]
        np.multiply(s[oy - oy_min : oy - oy_min + n, left + ox : left + ox + W], np.float32(k), out=a)
        for oy, ox, k in terms[1:]:
            cv2.scaleAdd(s[oy - oy_min : oy - oy_min + n, left + ox : left + ox + W], k, a, dst=a)
        amb.append(_floor_band(a, out[r0:r1]) + r0 * W * C)
    amb = np.concatenate(amb)
    if amb.size:
        # 3. flat neighbourhoods: the reference result for a constant value
        ry = max(abs(t[0]) for t in taps)
        rx = max(abs(t[1]) for t in taps)
        footprint = np.zeros((2 * ry + 1, 2 * rx + 1), np.uint8)
        for oy, ox, _ in taps:
            footprint[ry + oy, rx + ox] = 1
        lo = cv2.erode(img3, footprint, anchor=(rx, ry), borderType=cv2.BORDER_REPLICATE).reshape(-1)[amb]
        hi = cv2.dilate(img3, footprint, anchor=(rx, ry), borderType=cv2.BORDER_REPLICATE).reshape(-1)[amb]
        flat = lo == hi
        ramp = np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
        const = _exact_sums(ramp, 0, 0, [(0, 0, k) for _, _, k in taps], np.arange(256), (1, 256, 1))
        out.reshape(-1)[amb[flat]] = np.clip(const, 0, 255).astype(np.uint8)[lo[flat]]
        # 4. everything else: gather the taps and sum in the reference's order
        rest = amb[~flat]
        if rest.size:
            out.reshape(-1)[rest] = np.clip(_exact_sums(padded, top, left, taps, rest, (H, W, C)), 0, 255).astype(np.uint8)
    return out.reshape(image.shape)


def motion_blur_float(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """The reference's ``_motion_blur`` on any array (``snow`` blurs its float snow layer with it).

    Same taps, same float64 products and same summation order as the reference, so the result is
    identical; the shifted copies are slices of one edge-padded array instead of ``np.roll`` copies.

    Args:
        x: ``(H, W)`` or ``(H, W, C)`` array of any real dtype.
        radius, sigma, angle: as in :func:`motion_blur_apply` (any angle).

    Returns:
        float64 array of ``x``'s shape (unclipped).
    """
    H, W = x.shape[:2]
    taps = motion_blur_taps(radius, sigma, angle, H, W)
    p, top, left = _pad(x, taps)
    acc = None
    for oy, ox, k in taps:
        term = np.float64(k) * p[top + oy : top + oy + H, left + ox : left + ox + W]
        acc = term if acc is None else acc + term
    return acc
