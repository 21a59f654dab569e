"""snow, fog, spatter and jpeg_compression against the reference (imagecorruptions-imaug 1.1.5).

Their fast paths (rvoskit.corrupt.weather) compute the reference's uint8 result from float32
arithmetic with a rigorous error bound plus the reference's own float64 arithmetic where float32
cannot decide the truncation (or the rounding of snow's layer), tables where the reference's
formula has a single uint8 input, and fog's plasma fractal per lattice with the same draws. Every
test here runs the reference itself: real frames (judo 854x480, bedroom upscaled to 1280x720 as the
benchmark does), noise at odd sizes, flat images (0, 255, mid-grey), every severity, several seeds;
and, for the decision points, the reference's own functions fed with inputs that land on them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvoskit.corrupt import corrupt_image, make_rng
from rvoskit.corrupt.weather import fog_apply, gaussian_above, motion_blur_round, plasma_fractal_crop

ic = pytest.importorskip("imagecorruptions")
R = pytest.importorskip("imagecorruptions.corruptions")

DATA = Path(__file__).resolve().parent / "data"
JUDO = DATA / "davis17_judo_frames_cutie" / "JPEGImages" / "judo"
BEDROOM = DATA / "sam2_bedroom" / "JPEGImages" / "bedroom"

WEATHER = ["snow", "fog", "spatter", "jpeg_compression"]


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(autouse=True)
def _no_reference_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _same_as_reference(x: np.ndarray, name: str, severity: int, seed: int) -> None:
    np.random.seed(seed)
    ref = ic.corrupt(x, severity, name)
    ours, _ = corrupt_image(x, name, severity, make_rng("legacy", seed, name))
    assert ours.dtype == np.uint8 and ours.shape == x.shape
    np.testing.assert_array_equal(ours, ref, err_msg=f"{name} severity {severity} seed {seed} shape {x.shape}")


@pytest.mark.parametrize("name", WEATHER)
def test_equal_reference_on_a_real_frame_every_severity(name):
    """judo 854x480 (fog: a 1024 plasma map), all five severities, two seeds each."""
    x = _rgb(JUDO / "00000.jpg")
    for severity in range(1, 6):
        for seed in (severity, 4321 + severity):
            _same_as_reference(x, name, severity, seed)


@pytest.mark.parametrize("name", WEATHER)
def test_equal_reference_at_720p(name):
    """bedroom upscaled to 1280x720 (the benchmark's frame; fog: a 2048 plasma map), first and last severity."""
    x = cv2.resize(_rgb(BEDROOM / "00005.jpg"), (1280, 720), interpolation=cv2.INTER_LINEAR)
    for severity in (1, 5):
        _same_as_reference(x, name, severity, 77 + severity)


@pytest.mark.parametrize("name", WEATHER)
def test_equal_reference_on_noise_odd_sizes_and_flat_images(name):
    """Noise at odd sizes (partial JPEG blocks, odd plasma crops, snow zooms that overshoot), flat
    images (all 0: fog's maximum is 0; all 255; mid-grey), every severity."""
    rng = np.random.default_rng(11)
    images = [
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        rng.integers(0, 256, (131, 64, 3), dtype=np.uint8),
        np.zeros((33, 40, 3), np.uint8),
        np.full((48, 35, 3), 255, np.uint8),
        np.full((64, 64, 3), 128, np.uint8),
    ]
    for i, x in enumerate(images):
        for severity in range(1, 6):
            _same_as_reference(x, name, severity, 100 * i + severity)


@pytest.mark.parametrize(("mapsize", "decay", "h", "w"), [(32, 3, 32, 32), (64, 1.7, 37, 61), (256, 2, 200, 256), (512, 1.4, 511, 300)])
def test_plasma_crop_equals_reference_and_uses_the_same_draws(mapsize, decay, h, w):
    """The per-lattice plasma: the reference's values on the crop, and the same number of draws
    (numpy's global state after the reference equals the RandomState's after rvoskit)."""
    for seed in (0, 9):
        np.random.seed(seed)
        ref = R.plasma_fractal(mapsize=mapsize, wibbledecay=decay)[:h, :w]
        rng = np.random.RandomState(seed)
        ours = plasma_fractal_crop(rng, mapsize, decay, h, w)
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, ref)
        np.testing.assert_array_equal(rng.get_state()[1], np.random.get_state()[1])
        assert rng.get_state()[2] == np.random.get_state()[2]


def test_fog_blend_on_values_next_to_integers(monkeypatch):
    """fog's float32 blend with float64 recompute: the reference's fog, fed (through its own
    plasma_fractal) a dense ramp of plasma values so that many results sit next to an integer,
    on every uint8 value and with the image maximum at 255 and below."""
    ramp = (np.arange(256 * 256, dtype=np.float32) / np.float32(256 * 256 - 1)).reshape(256, 256)
    monkeypatch.setattr(R, "plasma_fractal", lambda mapsize=256, wibbledecay=3: ramp)
    v = np.arange(256, dtype=np.uint8)
    for top in (255, 200):
        ramp_u8 = np.tile(np.minimum(v, top), (256, 1))
        x = np.stack([ramp_u8, ramp_u8.T, np.full((256, 256), top, np.uint8)], -1)
        for severity, c0 in enumerate((1.5, 2.0, 2.5, 2.5, 3.0), 1):
            ref = ic.corrupt(x, severity, "fog")
            np.testing.assert_array_equal(fog_apply(x, ramp, c0), ref, err_msg=f"severity {severity} max {top}")


@pytest.mark.parametrize("angle", [-135.0, -100.3, -90.0, -60.5, -45.0])
def test_snow_layer_rounding_equals_reference(angle):
    """np.round(_motion_blur(layer) * 255) in float32 + exact recompute: random layers, layers of
    values k / 510 (many results on .5, the ties of round-half-even), a constant layer of
    (k + 0.5) / 255, and a layer too small for all the taps."""
    r = np.random.RandomState(3)
    rand = np.clip(r.rand(90, 120) * 1.4 - 0.2, 0, 1)
    half = r.randint(0, 511, (64, 70)) / 510.0
    const = np.full((40, 40), 100.5 / 255)
    tiny = r.rand(12, 9)
    for layer in (rand, half, const, tiny):
        radius, sigma = (12, 8) if layer is not tiny else (12, 12)
        want = np.round(R._motion_blur(layer, radius=radius, sigma=sigma, angle=angle) * 255).astype(np.uint8)
        np.testing.assert_array_equal(motion_blur_round(layer, radius, sigma, angle), want)


@pytest.mark.parametrize("sigma", [1, 2, 4])
def test_spatter_mask_comparison_equals_scipy(sigma):
    """spatter's gaussian(noise) > threshold: float32 passes + scipy-order float64 where undecided.
    scipy itself on normal noise (odd and tiny sizes), on a constant layer equal to the threshold
    (every pixel undecided: its value is the threshold up to scipy's rounding) and on a layer within
    1e-9 of it."""
    from scipy import ndimage

    r = np.random.RandomState(sigma)
    thr = 0.65
    layers = [r.normal(0.67, 0.4, (97, 131)), r.normal(0.67, 0.4, (6, 9)), np.full((40, 50), thr),
              thr + 1e-9 * r.standard_normal((64, 48)), np.where(r.rand(50, 60) < 0.5, thr, thr + 2.0**-40)]
    for layer in layers:
        want = ndimage.gaussian_filter(layer, sigma, mode="nearest", truncate=4.0) > thr
        np.testing.assert_array_equal(gaussian_above(layer, sigma, thr), want)


def test_spatter_mask_uses_the_true_layer_where_a_few_ulps_decide():
    """With vectorised legacy normals (a few ulps off on some draws), gaussian_above asks for the
    true values where the float64 value from the approximate layer is within 1e-12 of the threshold:
    a layer at the threshold (or one ulp above) with 30 % of its values one ulp too high gives
    scipy's comparison on the true layer only through that path."""
    from scipy import ndimage

    r = np.random.RandomState(0)
    thr = 0.65
    used_exact = False
    for sigma in (1, 2):
        for true in (np.full((40, 50), thr), np.where(r.rand(40, 50) < 0.5, thr, np.nextafter(thr, 1))):
            approx = true.copy()
            bump = r.rand(*true.shape) < 0.3
            approx[bump] = np.nextafter(approx[bump], 2)
            want = ndimage.gaussian_filter(true, sigma, mode="nearest", truncate=4.0) > thr
            np.testing.assert_array_equal(gaussian_above(approx, sigma, thr, exact_layer=lambda i, t=true: t.reshape(-1)[i]), want)
            used_exact |= not np.array_equal(gaussian_above(approx, sigma, thr), want)
    assert used_exact  # the approximate layer alone decides some pixels wrongly


def test_spatter_with_no_surviving_liquid_is_the_image():
    """When no liquid survives the threshold, the reference divides by zero; rvoskit returns the
    image's own uint8(float32(v) / 255 * 255) (no spatter) instead of NaNs."""
    from rvoskit.corrupt.weather import spatter_liquid

    x = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = spatter_liquid(x, np.zeros((40, 50), np.float32), 0.6)
    np.testing.assert_array_equal(out, np.uint8(np.clip(x.astype(np.float32) / 255.0, 0, 1) * 255))
