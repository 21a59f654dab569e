"""gaussian_blur, glass_blur, defocus_blur and pixelate against the reference (imagecorruptions-imaug 1.1.5).

Their fast kernels (rvoskit.corrupt.blur) compute the reference's uint8 result from a cheaper float32
pass plus the reference's float64 arithmetic where float32 cannot decide the truncation, so every
test here runs the reference itself on inputs chosen to reach each branch: real frames (judo
854x480, bedroom upscaled to 1280x720 as the benchmark does: linear interpolation makes many
exact-integer values), noise at odd sizes, grey frames, flat images (0, 255, mid-grey: values that
are integers up to an ulp), large flat patches (the table branch), linear ramps touching the left
and right edges (exact-integer values near the borders: the clamped branch).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvoskit.corrupt import corrupt_image, make_rng
from rvoskit.corrupt import blur
from rvoskit.corrupt.blur import gaussian_u8, glass_shuffle

ic = pytest.importorskip("imagecorruptions")
R = pytest.importorskip("imagecorruptions.corruptions")
skf = pytest.importorskip("skimage.filters")

DATA = Path(__file__).resolve().parent / "data"
JUDO = DATA / "davis17_judo_frames_cutie" / "JPEGImages" / "judo"
BEDROOM = DATA / "sam2_bedroom" / "JPEGImages" / "bedroom"

BLURS = ["gaussian_blur", "glass_blur", "defocus_blur", "pixelate"]
#: every sigma the two corruptions use (gaussian_blur 1..6, glass_blur 0.7..1.5)
SIGMAS = [1, 2, 3, 4, 6, 0.7, 0.9, 1.1, 1.5]


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(autouse=True)
def _no_reference_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def frame720() -> np.ndarray:
    """The benchmark's frame: bedroom 960x540 upscaled to 1280x720 (INTER_LINEAR), JPEG q90 round trip."""
    im = cv2.resize(cv2.imread(str(BEDROOM / "00000.jpg")), (1280, 720), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _structured(h: int, w: int, seed: int) -> np.ndarray:
    """Noise with a flat 255 patch, a flat 0 patch, a flat mid-grey patch and column ramps at both edges."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    x[: h // 3, w // 4 : w // 2] = 255
    x[h // 3 : 2 * h // 3, w // 4 : w // 2] = 0
    x[2 * h // 3 :, w // 4 : w // 2] = 117
    ramp = (np.arange(w // 4) * 3 + 10).astype(np.uint8)
    x[:, : w // 4] = ramp[:, None]
    x[:, w - w // 4 :] = ramp[::-1, None]
    return x


def _reference_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """What the reference computes: np.uint8(clip(skimage gaussian(x / 255., sigma, channel_axis=-1)) * 255)."""
    return np.uint8(np.clip(skf.gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255)


@pytest.fixture(params=["compiled", "float32"])
def gauss_path(request, monkeypatch):
    """gaussian_u8's two paths: the compiled exact passes (numba) and, without numba, the scipy row
    pass with the float32 column pass and its float64 fix-ups."""
    if request.param == "compiled":
        pytest.importorskip("numba")
        assert blur._gauss_loops() is not None  # numba here gives scipy's float64 values bit for bit
    else:
        monkeypatch.setattr(blur, "_gauss_loops", lambda: None)
    return request.param


def test_compiled_gaussian_passes_give_scipys_float64_values():
    """The compiled passes against scipy's gaussian_filter1d, bit for bit in float64 (not only after the
    truncation), every sigma, frame-sized and odd planes."""
    nb = pytest.importorskip("rvoskit.corrupt._blur_numba")
    from scipy import ndimage

    from rvoskit.corrupt.kernels import _X_OVER_255

    rng = np.random.default_rng(3)
    for sigma in SIGMAS:
        w = blur._weights(float(sigma))
        for shape in ((240, 427), (37, 9)):
            f = _X_OVER_255[rng.integers(0, 256, shape, dtype=np.uint8)]
            v = np.empty_like(f)
            nb.gauss_down(f, w, v)
            want = ndimage.gaussian_filter1d(f, sigma, axis=0, mode="nearest", truncate=4.0)
            np.testing.assert_array_equal(v.view(np.int64), want.view(np.int64))
            o = np.empty(shape, np.uint8)
            nb.gauss_across_u8(want, w, o)
            y = ndimage.gaussian_filter1d(want, sigma, axis=1, mode="nearest", truncate=4.0)
            np.testing.assert_array_equal(o, np.uint8(np.clip(y, 0, 1) * 255))


def test_gaussian_u8_equals_reference_on_the_benchmark_frame(frame720, gauss_path):
    """720p, every gaussian_blur severity through the reference corruption itself."""
    for severity in range(1, 6):
        ref = ic.corrupt(frame720, severity, "gaussian_blur")
        ours, _ = corrupt_image(frame720, "gaussian_blur", severity, make_rng("legacy", 0, "gaussian_blur"))
        np.testing.assert_array_equal(ours, ref, err_msg=f"severity {severity}")


@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_u8_equals_reference_gaussian(sigma, gauss_path):
    """Every sigma, on a real frame, odd-sized structured noise, flat images, grey and 1-channel input."""
    judo = _rgb(JUDO / "00000.jpg")
    cases = [judo, _structured(97, 131, int(sigma * 10)), _structured(480, 640, 1)[:, :, :3]]
    cases += [np.full((40, 50, 3), v, np.uint8) for v in (0, 255, 117)]
    grey_top = _structured(64, 70, 5)
    grey_top[:3] = grey_top[:3, :, :1]  # equal planes in the first rows only: not a grey frame
    cases += [grey_top, np.repeat(judo[:90, :120, 1:2], 3, axis=2)]  # and a grey frame stacked to RGB
    for x in cases:
        np.testing.assert_array_equal(gaussian_u8(x, sigma), _reference_gaussian(x, sigma), err_msg=f"sigma {sigma} shape {x.shape}")
    grey = cv2.cvtColor(judo[:123, :211], cv2.COLOR_RGB2GRAY)
    want = _reference_gaussian(grey[:, :, None], sigma)
    np.testing.assert_array_equal(gaussian_u8(grey, sigma), want[:, :, 0])
    np.testing.assert_array_equal(gaussian_u8(grey[:, :, None], sigma), want)


def test_gaussian_u8_rejects_a_sigma_beyond_its_error_bound():
    with pytest.raises(ValueError):
        gaussian_u8(np.zeros((32, 32, 3), np.uint8), 6.5)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("shape", [(40, 50), (33, 64), (9, 9), (8, 11), (64, 37)])
def test_glass_shuffle_equals_reference_shuffle(shape, compiled, monkeypatch):
    """The shuffle (the compiled walk, and the vectorised passes used without numba) against the
    reference's loop (its numba function's py_func, same seed), every (delta, iterations) of the
    severity table, including walks that are empty or one pixel wide."""
    if compiled:
        pytest.importorskip("numba")
    else:
        monkeypatch.setattr(blur, "_shuffle_loop", lambda: None)
    for sev, (_, delta, iters) in enumerate([(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]):
        x = np.random.default_rng(sev).integers(0, 256, shape + (3,), dtype=np.uint8)
        seed = 100 + sev
        want = R._shuffle_pixels_njit_glass_blur.py_func(shape[0], shape[1], x.copy(), (0, delta, iters), seed)
        got = glass_shuffle(x.copy(), delta, iters, np.random.RandomState(seed))
        np.testing.assert_array_equal(got, want, err_msg=f"{shape} delta {delta} iterations {iters}")
    # other pixel layouts (moved as source indices instead of packed RGB): one and four channels, float
    for x in (np.random.default_rng(9).integers(0, 256, shape + (1,), dtype=np.uint8), np.random.default_rng(8).random(shape + (4,))):
        want = R._shuffle_pixels_njit_glass_blur.py_func(shape[0], shape[1], x.copy(), (0, 2, 2), 7)
        np.testing.assert_array_equal(glass_shuffle(x.copy(), 2, 2, np.random.RandomState(7)), want)


@pytest.mark.parametrize("name", BLURS)
def test_blur_corruptions_equal_reference_every_severity(name, monkeypatch):
    """The four corruptions through imagecorruptions.corrupt, every severity: a real frame at an odd
    size, structured noise and a grey frame (stacked to RGB by both)."""
    if name == "glass_blur":  # its numba shuffle as plain Python: the same code and stream, no JIT
        monkeypatch.setattr(R, "_shuffle_pixels_njit_glass_blur", R._shuffle_pixels_njit_glass_blur.py_func)
    judo = _rgb(JUDO / "00009.jpg")
    size = (57, 83) if name == "glass_blur" else (237, 311)
    cases = [np.ascontiguousarray(judo[100 : 100 + size[0], 300 : 300 + size[1]]), _structured(size[0] + 2, size[1] - 4, 3),
             cv2.cvtColor(judo[: size[0], : size[1]], cv2.COLOR_RGB2GRAY)]
    for x in cases:
        for severity in range(1, 6):
            s = 50 + severity
            kw = {"seed": s} if name == "glass_blur" else {}
            np.random.seed(s)
            ref = ic.corrupt(x, severity, name, **kw)
            ours, _ = corrupt_image(x, name, severity, make_rng("legacy", s, name))
            np.testing.assert_array_equal(ours, ref, err_msg=f"{name} severity {severity} shape {x.shape}")


def test_defocus_without_numba_equals_reference(monkeypatch):
    """defocus_blur's plane-by-plane path (installs without numba) against the reference, every severity."""
    monkeypatch.setattr(blur, "_rgb_loops", lambda: None)
    x = _structured(97, 131, 6)
    for severity in range(1, 6):
        ours, _ = corrupt_image(x, "defocus_blur", severity, None)
        np.testing.assert_array_equal(ours, ic.corrupt(x, severity, "defocus_blur"), err_msg=f"severity {severity}")


@pytest.mark.parametrize("name", ["defocus_blur", "pixelate"])
def test_defocus_and_pixelate_equal_reference_at_720p(frame720, name):
    """filter2D's DFT tiles and Pillow's resize maps depend on the size: the benchmark's 1280x720, every severity."""
    for severity in range(1, 6):
        ref = ic.corrupt(frame720, severity, name)
        ours, _ = corrupt_image(frame720, name, severity, make_rng("legacy", 0, name))
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name} severity {severity}")


def test_pixelate_gather_branch_equals_reference(monkeypatch):
    """pixelate's nearest resize as a gather with Pillow's own maps (the branch for sizes where OpenCV's
    INTER_NEAREST_EXACT would pick other pixels), against the reference."""
    real = blur._nearest_map.__wrapped__
    monkeypatch.setattr(blur, "_nearest_map", lambda n_in, n_out: (real(n_in, n_out)[0], False))
    x = _structured(123, 171, 4)
    for severity in range(1, 6):
        ours, _ = corrupt_image(x, "pixelate", severity, make_rng("legacy", 0, "pixelate"))
        np.testing.assert_array_equal(ours, ic.corrupt(x, severity, "pixelate"), err_msg=f"severity {severity}")


def test_pixelate_reduce_passes_equal_box_resize_for_every_sum():
    """pixelate's box resize by 1/2 and 1/4 as two Pillow reduce passes: equal to Pillow's BOX resize
    (the reference's call) for every block sum of the first pass (0..255 f) and every sum of the
    second (f lines of constant blocks whose first-pass values add to 0..255 f), on wide images and
    on their transposes (the installed Pillow resizes the columns of some tall images first)."""
    for f, severity in ((2, 2), (4, 5)):
        sums = np.arange(255 * f + 1)
        split = np.clip(sums[None, :] - 255 * np.arange(f)[:, None], 0, 255).astype(np.uint8)  # (f, sums): f values adding to each sum
        first = split.T.reshape(1, -1).repeat(f, axis=0)  # first pass: each block of f pixels sums to one of the sums
        second = split.repeat(f, axis=1)  # second pass: f lines of constant blocks, first-pass values adding to each sum
        for x in (first, second):
            x = np.tile(x, (32 // f, 1))  # whole f-line blocks, at least 32 lines
            x = np.stack([x, x[:, ::-1], 255 - x], axis=-1)
            for y in (x, x.transpose(1, 0, 2)):
                y = np.ascontiguousarray(y)
                assert blur._box_order(y.shape[0], y.shape[1], f) in ("rows", "cols")  # the fast path runs
                np.testing.assert_array_equal(corrupt_image(y, "pixelate", severity, None)[0], ic.corrupt(y, severity, "pixelate"))
        for shape in ((132, 48), (256, 64), (48, 132)):  # noise, where the order of the passes shows
            y = np.random.default_rng(shape[0]).integers(0, 256, shape + (3,), dtype=np.uint8)
            np.testing.assert_array_equal(corrupt_image(y, "pixelate", severity, None)[0], ic.corrupt(y, severity, "pixelate"))
