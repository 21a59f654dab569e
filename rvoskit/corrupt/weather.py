"""Exact fast paths for ``fog``, ``snow`` and ``spatter`` (imagecorruptions-imaug 1.1.5).

The reference ends each of them in ``np.uint8(float value)`` (a truncation) or rounds an
intermediate layer (``np.round(layer * 255)``), so a float value decides the output only next to
an integer (or half-integer). The helpers here compute those values in float32 with a rigorous
error bound, take the floor where the value is further than ``kernels._EPS`` (2e-3, more than 20x
the bound) from a decision point, and recompute the few other pixels (well under 1 %) with the
reference's own float64 (or float32) operations in the reference's order. Where the reference's
per-pixel formula has only a few inputs (a uint8 value, no spatter), a 256-entry table of its
result is used. Every helper returns exactly the reference's values; the tests run the reference.

Reference: ``imagecorruptions/corruptions.py`` (imagecorruptions-imaug 1.1.5; Apache-2.0):
``plasma_fractal``, ``fog``, ``snow``, ``_motion_blur``, ``spatter``.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from rvoskit.corrupt.kernels import _exact_sums, _floor_band, motion_blur_taps

_F32 = np.float32
_X_OVER_255 = np.arange(256, dtype=np.float64) / 255.0  # the reference's x / 255. (float64) per uint8 value
_X32_OVER_255 = np.arange(256, dtype=np.float32) / np.float32(255.0)  # np.array(x, float32) / 255.


def _roll_add(a: np.ndarray, shift: int, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    """``a + np.roll(a, shift, axis)`` (shift +-1, float32, same additions) without the rolled copy."""
    if out is None:
        out = np.empty_like(a)
    n = a.shape[axis]
    if n == 1:
        return np.add(a, a, out=out)
    s = (slice(None),) * axis
    if shift == -1:  # out[i] = a[i] + a[i + 1], wrapping
        np.add(a[s + (slice(0, n - 1),)], a[s + (slice(1, n),)], out=out[s + (slice(0, n - 1),)])
        np.add(a[s + (n - 1,)], a[s + (0,)], out=out[s + (n - 1,)])
    else:  # out[i] = a[i] + a[i - 1], wrapping
        np.add(a[s + (slice(1, n),)], a[s + (slice(0, n - 1),)], out=out[s + (slice(1, n),)])
        np.add(a[s + (0,)], a[s + (n - 1,)], out=out[s + (0,)])
    return out


@lru_cache(maxsize=1)
def _legacy_uniform_is_affine() -> bool:
    """Whether ``RandomState.uniform(low, high)`` equals ``low + (high - low) * random_sample()``
    computed by numpy (two IEEE roundings), as numpy's C source writes it (``random_uniform``).

    That holds unless the C compiler fused the multiply-add into one FMA (a single rounding, which
    changes a large share of the values): checked once on 4 x 4096 draws."""
    a, b = np.random.RandomState(20261129), np.random.RandomState(20261129)
    for w in (100.0, 100 / 1.4**7, 3.3, 1e-3):
        u = b.random_sample(4096)
        u *= w - (-w)
        u += -w
        if not np.array_equal(a.uniform(-w, w, 4096), u):
            return False
    return True


def _wibbled(rng, wibble: float, quarter: np.ndarray) -> np.ndarray:
    """The reference's ``wibbledmean``: ``float32(quarter + wibble * uniform(-wibble, wibble))``
    (``quarter``: the float32 ``array / 4``; the sum in float64), drawn and added in blocks of rows
    that stay in cache (the same draws in the same order as one call). For a ``RandomState`` the
    uniforms are ``random_sample`` values scaled by numpy (``-w + 2w * u``, the same two roundings
    as ``uniform``'s C loop, checked by :func:`_legacy_uniform_is_affine`), 1.3 ns a draw less.
    The result is written over ``quarter`` (returned)."""
    out = quarter
    n = quarter.shape[0]
    rows = max(1, 65536 // quarter.shape[1])
    affine = isinstance(rng, np.random.RandomState) and _legacy_uniform_is_affine()
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        if affine:
            u = rng.random_sample((r1 - r0, quarter.shape[1]))
            u *= wibble - (-wibble)
            u += -wibble
        else:
            u = rng.uniform(-wibble, wibble, (r1 - r0, quarter.shape[1]))
        u *= wibble
        np.add(u, quarter[r0:r1], out=out[r0:r1], casting="same_kind")
    return out


def plasma_fractal_crop(rng, mapsize: int, wibbledecay: float, height: int, width: int) -> np.ndarray:
    """The reference's ``plasma_fractal(mapsize, wibbledecay)[:height, :width]``, identical values.

    The reference fills a ``(mapsize, mapsize)`` float32 map level by level (diamond-square):
    per level with step ``s`` it draws ``uniform(-wibble, wibble)`` for the square centres, then for
    the two diamond lattices, and stores ``float32(sum / 4 + wibble * draw)`` (the sum of four
    float32 neighbours with ``np.roll`` wrap-around, ``/ 4`` in float32, the rest in float64); at
    the end it subtracts the map's minimum and divides by the new maximum. Here each level's four
    lattices are kept as separate contiguous arrays (corners, centres, and the two diamond sets),
    the same float32 sums are formed from slices instead of rolled copies, a level's three draws
    come from one ``uniform`` call (the same stream, in the same order), and the finest level is
    never interleaved into a full map: its minimum and maximum are taken per lattice and only the
    crop is assembled and normalised (``max(m - min) == float32(max(m) - min)``: rounding is
    monotonic). The draws are taken in blocks of rows that stay in cache (the same stream: a
    lattice's draws are consecutive). Same values, half the time.

    Args:
        rng: ``RandomState`` (the reference's stream) or ``Generator``.
        mapsize: a power of two >= 2.
        wibbledecay: the per-level decay of the random amplitude.
        height, width: the crop, at most ``mapsize`` each.

    Returns:
        float32 ``(height, width)`` in [0, 1].
    """
    C = np.zeros((1, 1), _F32)  # corner lattice of the current level
    wibble = 100.0
    n = 1
    while True:
        # fillsquares: centres D = wibbledmean(C + roll(C, -1, 0), then + roll(., -1, 1))
        # (each wibbledmean overwrites its sum: four fresh arrays a level, fewer page faults)
        cc0 = _roll_add(C, -1, 0)  # C + roll(C, -1, 0): also the diamonds' "tulsum"
        S = _roll_add(cc0, -1, 1)
        S *= _F32(0.25)  # array / 4 in float32 (an exact scaling, as the division)
        D = _wibbled(rng, wibble, S)
        # filldiamonds: L (rows 0::s, cols s/2::s) and T (rows s/2::s, cols 0::s)
        ld = _roll_add(D, 1, 0)  # D + roll(D, 1, 0)
        tmp = _roll_add(C, -1, 1)
        ld += tmp  # + (C + roll(C, -1, 1))
        ld *= _F32(0.25)
        L = _wibbled(rng, wibble, ld)
        td = _roll_add(D, 1, 1, out=tmp)  # D + roll(D, 1, 1)
        td += cc0  # + (C + roll(C, -1, 0))
        td *= _F32(0.25)
        T = _wibbled(rng, wibble, td)
        del cc0, tmp
        wibble /= wibbledecay
        if 2 * n >= mapsize:
            break
        N = np.empty((2 * n, 2 * n), _F32)
        N[0::2, 0::2], N[1::2, 1::2], N[0::2, 1::2], N[1::2, 0::2] = C, D, L, T
        C, n = N, 2 * n
    lattices = (C, D, L, T)
    lo = min(a.min() for a in lattices)
    hi = max(a.max() for a in lattices)
    out = np.empty((height, width), _F32)
    h0, h1, w0, w1 = (height + 1) // 2, height // 2, (width + 1) // 2, width // 2
    out[0::2, 0::2], out[1::2, 1::2] = C[:h0, :w0], D[:h1, :w1]
    out[0::2, 1::2], out[1::2, 0::2] = L[:h0, :w1], T[:h1, :w0]
    out -= lo
    out /= _F32(hi - lo)
    return out


def fog_apply(image: np.ndarray, plasma: np.ndarray, c0: float) -> np.ndarray:
    """The reference's ``np.uint8(fog(...))`` given its plasma crop.

    The reference computes, per pixel and channel, ``x = v / 255. + float32(c0 * plasma)`` (float64),
    ``clip(x * max_val / (max_val + c0), 0, 1) * 255`` with ``max_val`` the image's maximum over
    255, and truncates. Here ``t = 255 * x * max_val / (max_val + c0)`` is formed in float32 (a
    256-entry table for the image term, one multiply for the plasma term); with every value in
    [0, 255] and four float32 roundings of at most 2**-24 relative each, ``|t32 - t64| < 7e-5``.
    Pixels with ``t`` within 2e-3 of an integer are recomputed in float64 as the reference does.

    Args:
        image: ``uint8 (H, W, 3)``.
        plasma: float32 ``(H, W)``, the normalised plasma crop (:func:`plasma_fractal_crop`).
        c0: the severity's fog amplitude.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    H, W, C = image.shape
    max_val = _X_OVER_255[int(image.max())]  # (x / 255.).max(): division is monotonic
    q = np.multiply(plasma, _F32(c0))  # the reference's float32 c0 * plasma
    k = 255.0 * max_val / (max_val + c0)
    lut = (_X_OVER_255 * k).astype(_F32)
    qk = q * _F32(k)
    out = np.empty_like(image)
    rows = 32  # row bands that stay in cache
    amb = []
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        t = cv2.LUT(image[r0:r1], lut).reshape(r1 - r0, W, C)
        t += qk[r0:r1, :, None]
        amb.append(_floor_band(t, out[r0:r1]) + r0 * W * C)
    amb = np.concatenate(amb)
    if amb.size:
        v = image.reshape(-1)[amb]
        x = _X_OVER_255[v] + q.reshape(-1)[amb // C].astype(np.float64)
        out.reshape(-1)[amb] = np.uint8(np.clip(x * max_val / (max_val + c0), 0, 1) * 255)
    return out


def motion_blur_round(layer: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """``np.round(_motion_blur(layer, radius, sigma, angle) * 255).astype(np.uint8)`` for a float
    ``(H, W)`` layer with values in [0, 1] (snow's blurred snow layer), identical values.

    The reference sums ``k_i * shift_i(layer)`` over the taps in float64 (:func:`kernels.motion_blur_float`)
    and rounds ``255 * sum`` half to even. Here the sum is taken in float32 with weights ``255 k_i``
    (taps at the same offset merged) in cache-sized row bands; at most 25 (41) terms in [0, 255]:
    ``|t32 - t64| <= (41 + 4) * 255 * 2**-24 < 7e-4``. ``round(t) = floor(t + 0.5)`` where ``t + 0.5``
    is at least 2e-3 from an integer; the other pixels get the reference's float64 sum in its order.

    Args:
        layer: float ``(H, W)``, values in [0, 1].
        radius, sigma, angle: as the reference's ``_motion_blur``.

    Returns:
        ``uint8 (H, W)``.
    """
    H, W = layer.shape
    taps = motion_blur_taps(radius, sigma, angle, H, W)
    top = max(0, -min(t[0] for t in taps))
    bottom = max(0, max(t[0] for t in taps))
    left = max(0, -min(t[1] for t in taps))
    right = max(0, max(t[1] for t in taps))
    padded = cv2.copyMakeBorder(layer.astype(_F32), top, bottom, left, right, cv2.BORDER_REPLICATE)
    merged: dict[tuple[int, int], float] = {}
    for oy, ox, k in taps:
        merged[(oy, ox)] = merged.get((oy, ox), 0.0) + k
    terms = [(oy, ox, float(_F32(255.0 * k))) for (oy, ox), k in merged.items()]
    out = np.empty((H, W), np.uint8)
    rows = 64
    acc = np.empty((rows, W), _F32)
    amb = []
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        n = r1 - r0
        a = acc[:n]
        a.fill(0.5)
        for oy, ox, k in terms:
            cv2.scaleAdd(padded[r0 + top + oy : r1 + top + oy, left + ox : left + ox + W], k, a, dst=a)
        amb.append(_floor_band(a, out[r0:r1]) + r0 * W)
    amb = np.concatenate(amb)
    if amb.size:
        p64 = cv2.copyMakeBorder(np.ascontiguousarray(layer, np.float64), top, bottom, left, right, cv2.BORDER_REPLICATE)
        s = _exact_sums(p64[..., None], top, left, taps, amb, (H, W, 1))
        out.reshape(-1)[amb] = np.round(s * 255).astype(np.uint8)
    return out


def snow_blend(image: np.ndarray, layer: np.ndarray, c6: float) -> np.ndarray:
    """The reference's ``np.uint8`` of snow's last two lines, given the rounded snow layer.

    The reference computes ``x = float32(v) / 255`` (float32), ``x' = c6 * x + (1 - c6) *
    max(x, gray * 1.5 + 0.5)`` in float32 (``gray``: OpenCV's RGB2GRAY of ``x``), then
    ``clip(x' + s + rot180(s), 0, 1) * 255`` in float64 with ``s = layer / 255.`` and truncates.
    ``x'`` is computed with the same float32 operations; then ``t = 255 x' + (a + b)`` (``a``, ``b``
    the two uint8 layer values) in float32: two roundings of at most 2**-24 relative on values below
    766, ``|t32 - t64| < 1e-4``. Pixels with ``t`` within 2e-3 of an integer below 256 are recomputed
    in float64 as the reference does.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        layer: ``uint8 (H, W)``, ``np.round(blurred snow layer * 255)``.
        c6: the severity's blend weight.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    H, W, C = image.shape
    rot = np.ascontiguousarray(layer[::-1, ::-1])
    ab = np.add(layer, rot, dtype=_F32)
    out = np.empty_like(image)
    rows = 32  # row bands that stay in cache
    amb = []
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        x = cv2.LUT(image[r0:r1], _X32_OVER_255).reshape(r1 - r0, W, C)
        gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(r1 - r0, W, 1)
        gray *= 1.5
        gray += 0.5
        bright = np.maximum(x, gray)
        bright *= 1 - c6  # (1 - c6) * max(...): python float times float32, in float32
        x *= c6
        x += bright  # x', float32
        t = x * _F32(255)
        t += ab[r0:r1, :, None]
        i = _floor_band(t, out[r0:r1])
        if i.size:
            amb.append((i + r0 * W * C, x.reshape(-1)[i]))
    if amb:
        idx = np.concatenate([a[0] for a in amb])
        p = idx // C
        v = np.concatenate([a[1] for a in amb]).astype(np.float64)
        v += _X_OVER_255[layer.reshape(-1)[p]]
        v += _X_OVER_255[rot.reshape(-1)[p]]
        out.reshape(-1)[idx] = np.uint8(np.clip(v, 0, 1) * 255)
    return out


def _scipy_weights(sigma: float) -> np.ndarray:
    """scipy's ``gaussian_filter1d`` weights for ``truncate=4.0`` (``_gaussian_kernel1d(sigma, 0, R)[::-1]``)."""
    radius = int(4.0 * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x**2)
    phi = phi / phi.sum()
    return phi[::-1].copy()


def _scipy_line_sum(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """scipy's symmetric ``correlate1d`` value for windows ``g`` (``(2R + 1, ...)``, float64):
    ``g[R] * w[R]``, then ``+= (g[R - j] + g[R + j]) * w[R + j]`` for ``j = R .. 1`` (ni_filters.c)."""
    R = (len(w) - 1) // 2
    acc = g[R] * w[R]
    for j in range(R, 0, -1):
        acc += (g[R - j] + g[R + j]) * w[R + j]
    return acc


def gaussian_above(layer: np.ndarray, sigma: float, threshold: float, exact_layer=None) -> np.ndarray:
    """``gaussian_filter(layer, sigma, mode="nearest", truncate=4.0) > threshold`` for a float64
    ``(H, W)`` layer, exactly (spatter's mud mask: ``skimage.filters.gaussian`` of its noise).

    scipy filters axis 0, then axis 1, in float64, each output as :func:`_scipy_line_sum`. Here
    both passes run in float32 (OpenCV ``sepFilter2D``, edge replication = ``"nearest"``). Error
    bound, with ``M = max |layer|``, ``n`` taps and ``u = 2**-24``: the weights are >= 0 and sum to
    1, the input and weight roundings and the ``n`` products and sums of a pass cost at most
    ``(n + 3) u`` times the sum of the absolute terms (<= M), so ``|g32 - g| <= 2 (n + 3) u M``
    (+ 1e-12 for scipy's own float64 rounding). Pixels within 4x that bound of ``threshold`` get
    scipy's float64 value: the ``(2R + 1)^2`` window gathered with clamped indices, both passes
    summed in scipy's order.

    Args:
        layer: float64 ``(H, W)``.
        sigma: the gaussian's standard deviation (radius ``int(4 sigma + 0.5)``).
        threshold: the comparison value.
        exact_layer: optional ``exact_layer(flat_idx) -> float64``, the true layer values where
            ``layer`` may be a few ulps off (vectorised legacy normals); used only for pixels whose
            float64 value, from ``layer``, lies within 1e-12 of ``threshold`` (a few-ulp input
            change moves it by less than 1e-14).

    Returns:
        bool ``(H, W)``.
    """
    H, W = layer.shape
    w = _scipy_weights(sigma)
    R = (len(w) - 1) // 2
    k32 = w.astype(_F32)
    g = cv2.sepFilter2D(layer.astype(_F32), cv2.CV_32F, k32, k32, borderType=cv2.BORDER_REPLICATE)
    band = 4 * 2 * (len(w) + 3) * 2.0**-24 * float(np.abs(layer).max()) + 1e-12
    out = g > _F32(threshold)
    amb = np.flatnonzero(np.abs(g - _F32(threshold)) <= _F32(band) + _F32(threshold) * _F32(2.0**-23))
    if amb.size:
        r, c = np.divmod(amb, W)
        off = np.arange(-R, R + 1)
        rows = np.clip(r[None, :] + off[:, None], 0, H - 1)  # (2R + 1, n)
        cols = np.clip(c[None, :] + off[:, None], 0, W - 1)
        win = layer[rows[:, None, :], cols[None, :, :]]  # (row tap, col tap, n)
        p1 = _scipy_line_sum(win, w)  # the axis-0 pass at each column of the window
        g64 = _scipy_line_sum(p1, w)
        if exact_layer is not None:
            near = np.flatnonzero(np.abs(g64 - threshold) <= 1e-12)
            if near.size:
                flat = rows[:, None, near] * W + cols[None, :, near]
                win = np.asarray(exact_layer(flat.reshape(-1)), np.float64).reshape(flat.shape)
                g64[near] = _scipy_line_sum(_scipy_line_sum(win, w), w)
        out.reshape(-1)[amb] = g64 > threshold
    return out


def _take_pixels(image: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``image.reshape(-1, C)[idx]`` (``np.take``: several times faster than fancy indexing)."""
    return np.take(image.reshape(-1, image.shape[-1]), idx, axis=0)


def _put_pixels(out: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """``out.reshape(-1, C)[idx] = values`` for a contiguous uint8 ``out``, one channel at a time."""
    flat = out.reshape(-1)
    C = out.shape[-1]
    base = idx * C
    for ch in range(C):
        np.put(flat, base + ch, values[:, ch])


def spatter_mud(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The reference's ``np.uint8`` of spatter's mud branch (severities 4-5) given its mask ``m``.

    Per pixel and channel the reference computes ``x = float32(v) / 255`` (float32),
    ``x * (1 - m)`` (float32), ``+ m * mud[ch]`` (float64), ``clip(., 0, 1) * 255`` and truncates.
    Where ``m == 0`` that is a function of ``v`` alone (a 256-entry table of the same formula); the
    pixels with mud are computed with the same operations on their values only.

    Args:
        image: ``uint8 (H, W, 3)``.
        m: float32 ``(H, W)``, the blurred mud mask after ``m[m < 0.8] = 0``.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    lut = np.uint8(np.clip(_X32_OVER_255.astype(np.float64), 0, 1) * 255)
    out = cv2.LUT(image, lut).reshape(image.shape)
    idx = np.flatnonzero(m > 0)  # m is 0 or >= 0.8
    if idx.size:
        mm = m.reshape(-1)[idx]
        x = _X32_OVER_255[_take_pixels(image, idx)]
        x *= (_F32(1) - mm)[:, None]
        color = mm.astype(np.float64)[:, None] * np.array([63 / 255.0, 42 / 255.0, 20 / 255.0])
        color += x
        np.clip(color, 0, 1, out=color)
        color *= 255
        _put_pixels(out, idx, np.uint8(color))
    return out


def spatter_liquid(image: np.ndarray, m1: np.ndarray, c4: float) -> np.ndarray:
    """The reference's ``np.uint8`` of spatter's liquid branch (severities 1-3) given ``m1 = liquid * dist``.

    The reference makes ``m`` (BGRA float32) from ``m1``, divides by its maximum and scales by
    ``c4``, then per channel ``clip(x + m * colour, 0, 1)`` in float32 with ``x = float32(v) / 255``
    and the pale turquoise colour, ``* 255`` (float32) and truncates. Where ``m1 == 0`` the result
    depends on ``v`` alone (a 256-entry table of the same formula); the other pixels are computed
    with the same float32 operations on their values only. When no liquid survives, the reference
    divides by zero (NaN output); here there is no spatter.

    Args:
        image: ``uint8 (H, W, 3)``.
        m1: float32 ``(H, W)``.
        c4: the severity's liquid strength.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    lut = np.uint8(np.clip(_X32_OVER_255, 0, 1) * _F32(255))
    out = cv2.LUT(image, lut).reshape(image.shape)
    peak = m1.max()
    if not peak > 0:
        return out
    idx = np.flatnonzero(m1 > 0)  # m1 >= 0
    mm = m1.reshape(-1)[idx] / peak  # float32 / float32
    mm *= _F32(c4)
    color = np.array([175 / 255.0, 238 / 255.0, 238 / 255.0], _F32)  # ones_like(float32) * python float
    x = _X32_OVER_255[_take_pixels(image, idx)]
    x += mm[:, None] * color
    np.clip(x, 0, 1, out=x)
    x *= _F32(255)
    _put_pixels(out, idx, np.uint8(x))
    return out
