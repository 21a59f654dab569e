"""The 19 ImageNet-C corruptions of ``imagecorruptions``, on one frame, with an explicit RNG.

Each corruption is a port of ``imagecorruptions`` (imagecorruptions-imaug 1.1.5,
``imagecorruptions/corruptions.py``; Apache-2.0) with the same severity tables, the same float
arithmetic and the same order of random draws, but drawing from the ``rng`` it is given instead of
numpy's global state. With a ``RandomState(s)`` (see :mod:`rvoskit.corrupt.rng`, kind ``legacy``)
the output equals ``np.random.seed(s); imagecorruptions.corrupt(image, severity, name)`` pixel for
pixel; with a ``Generator`` the draws have the same distributions (statistically equivalent).

What the port replaces: ``skimage.filters.gaussian`` by the ``scipy.ndimage.gaussian_filter`` call
it makes (same modes and truncation), ``skimage.color.rgb2hsv`` / ``hsv2rgb`` by numpy versions
with the same float operations, the numba pixel shuffle of ``glass_blur`` by an exact vectorised equivalent, and
``gaussian_noise`` / ``motion_blur`` by the fast exact kernels of :mod:`rvoskit.corrupt.kernels`
(``snow``, ``fog``, ``spatter``: :mod:`rvoskit.corrupt.weather`).
``pixelate`` uses Pillow, as the reference does; ``jpeg_compression`` uses OpenCV's
libjpeg-turbo, which writes the same bytes as the reference's Pillow save (tested). Several
kernels compute the same float operations in place, per channel in 2-D instead of 3-D, or as
look-up tables of the reference's formula (contrast, frost): identical output, tested against the
reference package. ``frost`` reads its six texture images from the installed ``imagecorruptions``
package (they are not redistributed here).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from rvoskit.corrupt import blur, kernels, weather
from rvoskit.corrupt.rng import Rng, legacy_noise_image, legacy_normals, legacy_poisson, randint, standard_normal
from rvoskit.errors import RvosError

Params = dict[str, float | int]

# -- helpers (ports of the reference's) ------------------------------------------------------------


def _gaussian(image: np.ndarray, sigma, *, channel_axis: int | None = None, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """``skimage.filters.gaussian`` on a float image: the ``scipy.ndimage.gaussian_filter`` call it makes."""
    if channel_axis is not None:
        sigma = [sigma] * (image.ndim - 1)
        sigma.insert(channel_axis % image.ndim, 0)
    from scipy import ndimage  # imported when used: 0.2 s that noise and motion blur runs do not need

    return ndimage.gaussian_filter(image, sigma, mode=mode, truncate=truncate)


def _rgb2hsv(arr: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2hsv`` (scikit-image 0.26) for a finite float ``(H, W, 3)`` array: the same
    float operations on every pixel, as whole-array ``np.where`` instead of masked assignments
    (R's hue formula, then G's, then B's where each is the maximum: the last one wins, as there);
    identical values, ~3x faster. Its final NaN -> 0 pass only matters for NaN input."""
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    v = np.maximum(np.maximum(r, g), b)
    delta = v - np.minimum(np.minimum(r, g), b)  # np.ptp
    zero = delta == 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        s = delta / v
        h = np.where(b == v, 4.0 + (r - g) / delta, np.where(g == v, 2.0 + (b - r) / delta, (g - b) / delta))
        h = (h / 6.0) % 1.0
    s[zero] = 0.0  # the only NaN (0 / 0) of finite input
    h[zero] = 0.0
    out = np.empty_like(arr)
    out[..., 0] = h
    out[..., 1] = s
    out[..., 2] = v
    return out


#: ``hsv2rgb``'s choice per hue sector 0..5, as indices into (v, p, q, t), for R, G and B
_HSV_PICK = np.array([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], np.uint8)


def _hsv2rgb(arr: np.ndarray) -> np.ndarray:
    """``skimage.color.hsv2rgb`` (scikit-image 0.26) for a float ``(H, W, 3)`` array: the same
    ``v, p, q, t`` arithmetic, then per channel one ``np.choose`` among the four instead of one
    over an 18-plane stack; identical values."""
    h6 = arr[..., 0] * 6
    hi = np.floor(h6)
    f = h6 - hi
    s = arr[..., 1]
    v = arr[..., 2]
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    k = hi.astype(np.uint8) % 6
    out = np.empty(arr.shape, np.float64)
    for ch in range(3):
        out[..., ch] = np.choose(_HSV_PICK[ch][k], (v, p, q, t))
    return out


_X_OVER_255 = np.arange(256) / 255.0  # the reference's x / 255. for every uint8 value
_IMPULSE_STEP = 1 << 16  # impulse_noise: uniforms per piece (512 KB)
_ROUND_TRIP_255 = np.uint8(np.clip(np.arange(256) / 255.0, 0, 1) * 255)  # the reference's value of an untouched pixel
_SCRATCH = threading.local()


def _scratch_f64(n: int) -> np.ndarray:
    """A float64 ``(n,)`` work array reused by this thread's next noise frame (the noise
    corruptions use it for their draws and are done with it when they return)."""
    a = getattr(_SCRATCH, "f64", None)
    if a is None or a.size != n:
        a = _SCRATCH.f64 = np.empty(n, np.float64)
    return a


def _to_255(x: np.ndarray) -> np.ndarray:
    """``np.clip(x, 0, 1) * 255`` in place on a float array the caller owns (same values, no copies)."""
    np.clip(x, 0, 1, out=x)
    x *= 255
    return x


def _disk(radius: float, alias_blur: float = 0.1, dtype=np.float32) -> np.ndarray:
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        L = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    X, Y = np.meshgrid(L, L)
    aliased_disk = np.array((X**2 + Y**2) <= radius**2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    return cv2.GaussianBlur(aliased_disk, ksize=ksize, sigmaX=alias_blur)


def _clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    ch0 = int(np.ceil(img.shape[0] / float(zoom_factor)))
    top0 = (img.shape[0] - ch0) // 2
    ch1 = int(np.ceil(img.shape[1] / float(zoom_factor)))
    top1 = (img.shape[1] - ch1) // 2
    from scipy import ndimage

    # The reference zooms the (h, w, C) crop by (z, z, 1), order 1: the channel coordinates stay
    # integers, so their second tap has weight 0 and adds nothing. Zooming each channel plane in
    # 2-D gives identical values with half the taps (~2x faster; zoom_blur is 10 of these).
    crop = img[top0 : top0 + ch0, top1 : top1 + ch1]
    planes = [ndimage.zoom(np.ascontiguousarray(crop[..., k]), (zoom_factor, zoom_factor), order=1) for k in range(crop.shape[2])]
    return np.stack(planes, axis=-1)


@lru_cache(maxsize=6)
def _frost_texture(idx: int) -> np.ndarray:
    spec = importlib.util.find_spec("imagecorruptions")
    name = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")[idx]
    if spec is None or not spec.submodule_search_locations:
        raise RvosError("frost needs the frost textures of the imagecorruptions package: pip install --no-deps imagecorruptions-imaug==1.1.5")
    path = Path(next(iter(spec.submodule_search_locations))) / "frost" / name
    img = cv2.imread(str(path))
    if img is None:
        raise RvosError("missing or unreadable frost texture", file=path)
    return img


@lru_cache(maxsize=12)
def _frost_resized(idx: int, h: int, w: int) -> np.ndarray:
    """Frost texture ``idx`` (BGR uint8) scaled as the reference scales it for an ``h x w`` frame
    (1.1 x the factor that makes it cover the frame, ``cv2.resize`` INTER_CUBIC); read and resized
    once per (texture, frame size) instead of once per frame, the same pixels. Read-only."""
    texture = _frost_texture(idx)
    fh, fw = texture.shape[:2]
    if fh >= h and fw >= w:
        scaling_factor = 1
    elif fh < h and fw >= w:
        scaling_factor = h / fh
    elif fh >= h and fw < w:
        scaling_factor = w / fw
    else:
        scaling_factor = np.maximum(h / fh, w / fw)
    scaling_factor *= 1.1
    new_shape = (int(np.ceil(fw * scaling_factor)), int(np.ceil(fh * scaling_factor)))
    out = cv2.resize(texture, dsize=new_shape, interpolation=cv2.INTER_CUBIC)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=5)
def _frost_lut(c: tuple[float, float]) -> np.ndarray:
    """Frost's blend ``uint8(clip(c0 x + c1 t, 0, 255))`` for every (image value x, texture value t)
    pair, indexed by ``x << 8 | t``: the reference's float64 formula, truncated as corrupt_image does."""
    v = np.arange(256, dtype=np.float64)
    lut = np.uint8(np.clip(c[0] * v[:, None] + c[1] * v[None, :], 0, 255)).ravel()
    lut.flags.writeable = False
    return lut


# -- the corruptions ------------------------------------------------------------------------------
# Each takes (uint8 (H, W, 3) RGB, severity 1..5, rng) and returns (image with values in [0, 255],
# the scalar parameters it drew).


def gaussian_noise(x: np.ndarray, severity: int, rng: Rng) -> tuple[np.ndarray, Params]:
    """ImageNet-C Gaussian noise: ``uint8(clip(x/255 + N(0, c^2), 0, 1) * 255)`` per pixel and channel, c = [.08, .12, .18, .26, .38]; exact kernel in :func:`kernels.gaussian_noise_apply`.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = kernels.GAUSSIAN_NOISE_SIGMA[severity - 1]
    if isinstance(rng, np.random.RandomState):  # the reference's draws, compiled or vectorised (exact where it matters)
        out = legacy_noise_image(rng, x, c, speckle=False)
        if out is not None:
            return out, {}
        nz = legacy_normals(rng, x.size, out=_scratch_f64(x.size))
        return kernels.gaussian_noise_apply(x, nz.z.reshape(x.shape), c, exact=nz.exact), {}
    return kernels.gaussian_noise_apply(x, standard_normal(rng, x.shape), c), {}


def shot_noise(x, severity, rng):
    """Shot (Poisson) noise: ``poisson(x/255 * c) / c``, c = [60, 25, 12, 5, 3].

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [60, 25, 12, 5, 3][severity - 1]
    if isinstance(rng, np.random.RandomState):  # numpy's legacy Poisson loop, compiled (when numba is there)
        drawn = legacy_poisson(rng, x, _X_OVER_255 * c, cap=c)  # lam = x / 255. * c, one of 256 values
        if drawn is not None:  # min(draw, c): every draw >= c gives 255
            return cv2.LUT(drawn, _shot_levels(c)), {}
    x = np.array(x) / 255.0
    x *= c
    return _to_255(np.divide(rng.poisson(x), float(c))), {}


@lru_cache(maxsize=None)
def _shot_levels(c: int) -> np.ndarray:
    """``uint8(clip(k / float(c), 0, 1) * 255)`` for draws k = 0..255 (the reference's value of a draw)."""
    return np.uint8(np.clip(np.arange(256) / float(c), 0, 1) * 255)


def impulse_noise(x, severity, rng):
    """Impulse (salt-and-pepper) noise, amount c = [.03, .06, .09, .17, .27] (scikit-image ``random_noise('s&p')``).

    scikit-image draws ``flipped = rng.random(shape) <= c``, then ``salted = rng.random(shape) <= 0.5``,
    and sets flipped pixels to 1 (salted) or 0; the reference then clips and scales by 255 and
    truncates. Here the uint8 result is built directly: ``uint8((k / 255.) * 255.)`` from a
    256-entry table for untouched values (the float64 round trip gives ``k`` back or ``k - 1``),
    255 and 0 for the flipped ones. The uniforms are drawn in cache-sized pieces into one reused
    buffer (a ``Generator``'s ``random`` continues the same stream across calls); the same
    comparisons on the same doubles, so the same pixels.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [0.03, 0.06, 0.09, 0.17, 0.27][severity - 1]
    if not isinstance(rng, np.random.Generator):  # a RandomState passed by hand: the plain way
        x = np.array(x) / 255.0
        flipped = rng.random(x.shape) <= c
        salted = rng.random(x.shape) <= 0.5
        salted &= flipped
        x[salted] = 1
        flipped ^= salted
        x[flipped] = 0.0
        return _to_255(x), {}
    n, step = x.size, _IMPULSE_STEP
    u = _scratch_f64(min(n, step))
    flipped = np.empty(n, bool)
    for a in range(0, n, step):  # all of flipped's draws first, as scikit-image does
        b = min(n, a + step)
        rng.random(out=u[: b - a])
        np.less_equal(u[: b - a], c, out=flipped[a:b])
    out = cv2.LUT(x, _ROUND_TRIP_255).reshape(-1)  # x not flipped: uint8(clip(k / 255.) * 255)
    salted = np.empty(min(n, step), bool)
    fmask = np.empty(min(n, step), np.uint8)
    for a in range(0, n, step):
        b = min(n, a + step)
        rng.random(out=u[: b - a])
        s = np.less_equal(u[: b - a], 0.5, out=salted[: b - a]).view(np.uint8)
        f = np.negative(flipped[a:b].view(np.uint8), out=fmask[: b - a])  # 255 where flipped, else 0
        np.negative(s, out=s)  # 255 where salted
        s &= f  # 255 where flipped and salted, 0 elsewhere
        np.bitwise_not(f, out=f)
        o = out[a:b]
        o &= f  # flipped pixels to 0 (pepper) ...
        o |= s  # ... and salted ones to 255
    return out.reshape(x.shape), {}


def speckle_noise(x, severity, rng):
    """Speckle noise: ``x + x * N(0, c^2)``, c = [.15, .2, .35, .45, .6].

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [0.15, 0.2, 0.35, 0.45, 0.6][severity - 1]
    if isinstance(rng, np.random.RandomState):  # the reference's draws, compiled, or vectorised with an exact float32 kernel
        out = legacy_noise_image(rng, x, c, speckle=True)
        if out is not None:
            return out, {}
        nz = legacy_normals(rng, x.size, out=_scratch_f64(x.size))
        return kernels.speckle_noise_apply(x, nz.z.reshape(x.shape), c, exact=nz.exact), {}
    x = np.array(x) / 255.0
    noise = standard_normal(rng, x.shape).astype(np.float64, copy=False)
    noise *= c  # c * z, in place
    noise *= x
    noise += x  # x + x * noise: the same two roundings, in place
    return _to_255(noise), {}


def gaussian_blur(x, severity, rng):
    """Gaussian blur, sigma c = [1, 2, 3, 4, 6] pixels (scikit-image ``gaussian``, channel axis last).

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [1, 2, 3, 4, 6][severity - 1]
    # uint8(clip(gaussian(x / 255.), 0, 1) * 255) directly: exact row pass, float32 column pass,
    # the reference's float64 value where float32 does not decide the truncation
    return blur.gaussian_u8(x, c), {}


def glass_blur(x, severity, rng):
    """Glass blur: blur (sigma), local pixel shuffles (max delta, iterations), blur; (sigma, delta, iters) per severity.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
    x = blur.gaussian_u8(x, c[0])  # np.uint8(gaussian(x / 255.) * 255): the weights are >= 0, no clip needed
    x = blur.glass_shuffle(x, c[1], c[2], rng)
    return blur.gaussian_u8(x, c[0]), {}


def defocus_blur(x, severity, rng):
    """Defocus blur: convolution with an anti-aliased disk, (radius, alias blur) = [(3,.1), (4,.5), (6,.5), (8,.5), (10,.5)].

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    # the reference's filter2D of each float64 channel plane, then clip, scale, truncate: per plane, in place
    return blur.filter2d_u8(x, _disk(radius=c[0], alias_blur=c[1])), {}


def motion_blur(x, severity, rng, angle: float | None = None):
    """ImageMagick-style motion blur, (radius, sigma) = [(10,3), (15,5), (15,8), (15,12), (20,15)], angle ~ U(-45, 45) degrees unless given; exact kernel in :func:`kernels.motion_blur_apply`.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    radius, sigma = kernels.MOTION_BLUR_PARAMS[severity - 1]
    if angle is None:
        angle = float(rng.uniform(-45, 45))
    return kernels.motion_blur_apply(x, radius, sigma, angle), {"angle": float(angle)}


def zoom_blur(x, severity, rng):
    """Zoom blur: mean of the image and its centre zooms by the severity's factor range.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [
        np.arange(1, 1.11, 0.01),
        np.arange(1, 1.16, 0.01),
        np.arange(1, 1.21, 0.02),
        np.arange(1, 1.26, 0.02),
        np.arange(1, 1.31, 0.03),
    ][severity - 1]
    x = (np.array(x) / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        zoom_layer = _clipped_zoom(x, zoom_factor)[: x.shape[0], : x.shape[1], :]
        out[: zoom_layer.shape[0], : zoom_layer.shape[1]] += zoom_layer
    out += x
    out /= len(c) + 1  # (x + out) / (len(c) + 1), in place
    return _to_255(out), {}


def snow(x, severity, rng):
    """Snow: a snow layer (normal draws, zoom, motion-blurred) over a greyed, brightened image.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ][severity - 1]
    snow_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    snow_layer = _clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = np.clip(snow_layer.squeeze(), 0, 1)
    angle = float(rng.uniform(-135, -45))
    # np.round(_motion_blur(layer) * 255).astype(np.uint8), then the blend, exactly: rvoskit.corrupt.weather
    snow_layer = weather.motion_blur_round(snow_layer, radius=c[4], sigma=c[5], angle=angle)
    return weather.snow_blend(x, snow_layer[: x.shape[0], : x.shape[1]], c[6]), {"angle": angle}


def frost(x, severity, rng):
    """Frost: blend with a random crop of one of the imagecorruptions frost textures.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][severity - 1]
    idx = int(randint(rng, 0, 6))
    h, w = x.shape[:2]
    texture = _frost_resized(idx, h, w)
    x_start = int(randint(rng, 0, texture.shape[0] - h))
    y_start = int(randint(rng, 0, texture.shape[1] - w))
    texture = cv2.cvtColor(texture[x_start : x_start + h, y_start : y_start + w], cv2.COLOR_BGR2RGB)  # [..., ::-1], contiguous
    pair = np.asarray(x).astype(np.uint16)
    pair <<= 8
    pair |= texture
    return np.take(_frost_lut(c), pair), {"texture": idx, "row": x_start, "col": y_start}


def fog(x, severity, rng):
    """Fog: a plasma-fractal haze added to the image, then contrast-normalised.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)][severity - 1]
    h, w = x.shape[:2]
    map_size = 1 << (int(max(x.shape)) - 1).bit_length()
    # the reference's plasma crop (same draws, same float32 values) and its float64 blend, exactly:
    # see rvoskit.corrupt.weather
    plasma = weather.plasma_fractal_crop(rng, map_size, c[1], h, w)
    return weather.fog_apply(x, plasma, c[0]), {}


def brightness(x, severity, rng):
    """Brightness: add c = [.1, .2, .3, .4, .5] to V in HSV.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1]
    x = _rgb2hsv(np.array(x) / 255.0)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return _to_255(_hsv2rgb(x)), {}


def contrast(x, severity, rng):
    """Contrast: scale around the mean by c = [.4, .3, .2, .1, .05].

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [0.4, 0.3, 0.2, 0.1, 0.05][severity - 1]
    img = np.asarray(x)
    means = np.mean(img / 255.0, axis=(0, 1), keepdims=True)  # the reference's float64 means, same summation
    # each output pixel depends only on its channel's uint8 value: the reference's float formula
    # on the 256 values per channel, truncated to uint8 as corrupt_image does, then a table look-up
    v = (np.arange(256) / 255.0)[:, None]
    lut = np.uint8(np.clip((v - means[0]) * c + means[0], 0, 1) * 255)  # (256, 3)
    return cv2.LUT(img, lut.reshape(256, 1, 3)), {}


def elastic_transform(image, severity, rng):
    """Elastic transform: smoothed random displacement field (imagecorruptions 1.1 definition, no affine step).

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    image = np.array(image, dtype=np.float32) / 255.0
    shape = image.shape
    sigma = np.array(shape[:2]) * 0.01
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    max_d = shape[0] * 0.005
    dx = (_gaussian(rng.uniform(-max_d, max_d, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (_gaussian(rng.uniform(-max_d, max_d, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    from scipy import ndimage

    # The reference interpolates the (H, W, 3) image at (y + dy, x + dx, channel) in 3-D; the
    # channel coordinate is an integer, so its second tap has weight 0 and adds nothing: one 2-D
    # map_coordinates per channel at the same float64 coordinates gives identical values with half
    # the taps and no (H * W * 3, 1) index arrays.
    y, x = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    coords = np.stack([(y + dy).ravel(), (x + dx).ravel()])
    out = np.empty(shape, np.float32)
    for ch in range(shape[2]):
        out[..., ch] = ndimage.map_coordinates(np.ascontiguousarray(image[..., ch]), coords, order=1, mode="reflect").reshape(shape[:2])
    return _to_255(out), {}


def pixelate(x, severity, rng):
    """Pixelate: downscale by c = [.6, .5, .4, .3, .25] (box) and upscale (nearest).

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [0.6, 0.5, 0.4, 0.3, 0.25][severity - 1]
    return blur.pixelate_u8(x, c), {}  # Pillow's box resize, its nearest resize as OpenCV's (same maps)


def jpeg_compression(x, severity, rng):
    """JPEG compression at quality c = [25, 18, 15, 10, 7] (Pillow).

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [25, 18, 15, 10, 7][severity - 1]
    # The reference saves with Pillow (libjpeg-turbo: 4:2:0, standard Huffman tables, islow DCT)
    # and decodes with Pillow; OpenCV's bundled libjpeg-turbo with the same settings writes the same
    # bytes and decodes them to the same pixels (tests compare with the reference), without
    # Pillow's image copies.
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(x, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, c])
    if not ok:  # pragma: no cover - OpenCV built without JPEG: Pillow, as the reference
        from PIL import Image

        out = BytesIO()
        Image.fromarray(x).save(out, "JPEG", quality=c)
        out.seek(0)
        return np.array(Image.open(out).convert("RGB")), {}
    rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10: libjpeg writes RGB directly
    if rgb is not None:
        return cv2.imdecode(buf, rgb), {}
    y = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return cv2.cvtColor(y, cv2.COLOR_BGR2RGB, dst=y), {}


def spatter(x, severity, rng):
    """Spatter: liquid (severities 1-3) or mud (4-5) splashes from thresholded, blurred noise.

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    The blend with the image is computed only where there is spatter (a table of the reference's
    formula elsewhere): :func:`rvoskit.corrupt.weather.spatter_liquid` / ``spatter_mud``.
    """
    c = [
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ][severity - 1]
    exact = None
    if c[5] == 1 and isinstance(rng, np.random.RandomState):
        # mud: only gaussian(noise) > c3 matters, so the vectorised legacy normals (the same draws,
        # a few ulps off on ~0.03 % of them) with the true values where a comparison is that close
        nz = legacy_normals(rng, x.shape[0] * x.shape[1])
        liquid_layer = nz.z.reshape(x.shape[:2])
        liquid_layer *= c[1]
        liquid_layer += c[0]  # loc + scale * z, as numpy's legacy normal

        def exact_mud(idx):
            return c[0] + c[1] * nz.exact(idx)

        exact = exact_mud
    else:
        liquid_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    if c[5] == 0:
        liquid_layer = _gaussian(liquid_layer, c[2])
        liquid_layer[liquid_layer < c[3]] = 0
        liquid_layer = (liquid_layer * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid_layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, ker)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        return weather.spatter_liquid(x, liquid_layer * dist, c[4]), {}
    # np.where(gaussian(liquid_layer) > c3, 1, 0) (after zeroing values below c3, which keeps the
    # same set): only the comparison matters, decided exactly by weather.gaussian_above
    m = _gaussian(weather.gaussian_above(liquid_layer, c[2], c[3], exact_layer=exact).astype(np.float32), c[4])
    m[m < 0.8] = 0
    return weather.spatter_mud(x, m), {}


def saturate(x, severity, rng):
    """Saturate: scale and shift S in HSV, (scale, shift) = [(.3,0), (.1,0), (2,0), (5,.1), (20,.2)].

    Source: imagecorruptions 1.1 (imagecorruptions-imaug 1.1.5), same tables and draw order.
    """
    c = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    x = _rgb2hsv(np.array(x) / 255.0)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return _to_255(_hsv2rgb(x)), {}


# -- registry -----------------------------------------------------------------------------------

#: name -> function, in the reference's order: the 15 ImageNet-C corruptions, then the 4 extra ones.
CORRUPTIONS: dict[str, Callable[..., tuple[np.ndarray, Params]]] = {
    f.__name__: f
    for f in (
        gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur,
        snow, frost, fog, brightness, contrast, elastic_transform, pixelate, jpeg_compression,
        speckle_noise, gaussian_blur, spatter, saturate,
    )
}  # fmt: skip
SEVERITIES = (1, 2, 3, 4, 5)


def check_corruption(name: str, severity: int) -> None:
    """Raise :class:`RvosError` for an unknown corruption name or a severity outside 1..5."""
    if name not in CORRUPTIONS:
        raise RvosError(f"unknown corruption type {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or int(severity) not in SEVERITIES:
        raise RvosError(f"severity must be an integer 1..5, got {severity!r}")


def corrupt_image(image: np.ndarray, name: str, severity: int, rng: Rng, *, angle: float | None = None) -> tuple[np.ndarray, Params]:
    """Corrupt one RGB image, as ``imagecorruptions.corrupt(image, severity, name)`` does.

    Args:
        image: ``uint8 (H, W, 3)`` RGB (or ``(H, W)`` / ``(H, W, 1)`` grey, stacked to 3 channels
            like the reference), at least 32x32.
        name: one of :data:`CORRUPTIONS`.
        severity: 1..5.
        rng: where the draws come from (:func:`rvoskit.corrupt.rng.make_rng`).
        angle: ``motion_blur`` only: use this angle (degrees) instead of drawing one.

    Returns:
        ``(uint8 (H, W, 3) corrupted image, drawn scalar parameters)``; the float result is
        truncated to uint8 as the reference's ``np.uint8`` does. Parameters: ``motion_blur`` and
        ``snow`` ``{"angle"}``; ``frost`` ``{"texture", "row", "col"}``; others ``{}``.

    Raises:
        RvosError: unknown name, bad severity, not a uint8 image, image smaller than 32x32.
    """
    check_corruption(name, severity)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise RvosError("expected a uint8 image array")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.stack((image,) * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise RvosError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.shape[0] < 32 or image.shape[1] < 32:
        raise RvosError(f"image is {image.shape[1]}x{image.shape[0]}; corruptions need at least 32x32")
    image = np.ascontiguousarray(image)
    fn = CORRUPTIONS[name]
    out, params = fn(image, int(severity), rng, angle=angle) if name == "motion_blur" else fn(image, int(severity), rng)
    return np.uint8(out) if out.dtype != np.uint8 else out, params
