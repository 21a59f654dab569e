"""rvoskit.corrupt against the reference implementation (imagecorruptions-imaug 1.1.5) on real frames.

- gaussian_noise and motion_blur: frame by frame, identical uint8 output for the same draws (the
  reference fed with rvoskit's draws through its own np.random calls).
- All 19 corruptions: identical output under the ``legacy`` RNG (np.random.seed(s) for the reference).
- The default ``generator`` RNG: statistically equivalent to the reference over several seeds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvoskit.corrupt import (
    CORRUPTIONS,
    GAUSSIAN_NOISE_SIGMA,
    MOTION_BLUR_PARAMS,
    corrupt_image,
    frame_seed,
    gaussian_noise_apply,
    make_rng,
    motion_blur_apply,
    standard_normal,
    video_seed,
)
from rvoskit.corrupt.kernels import motion_blur_float
from rvoskit.errors import RvosError

ic = pytest.importorskip("imagecorruptions")
R = pytest.importorskip("imagecorruptions.corruptions")

DATA = Path(__file__).resolve().parent / "data"
JUDO = DATA / "davis17_judo_frames_cutie" / "JPEGImages" / "judo"
BEDROOM = DATA / "sam2_bedroom" / "JPEGImages" / "bedroom"


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Real frames: judo 854x480 (two) and bedroom 960x540."""
    return [_rgb(JUDO / "00000.jpg"), _rgb(JUDO / "00009.jpg"), _rgb(BEDROOM / "00007.jpg")]


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 120x160 crop of a real frame (textured and flat parts) for the slower corruptions."""
    return np.ascontiguousarray(_rgb(BEDROOM / "00003.jpg")[120:240, 320:480])


@pytest.fixture(autouse=True)
def _no_reference_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def glass_in_python(monkeypatch):
    """The reference's glass-blur pixel shuffle as plain Python (its numba function's py_func: the same
    code and, per a check against numba, the same random stream) so no JIT compile is needed."""
    monkeypatch.setattr(R, "_shuffle_pixels_njit_glass_blur", R._shuffle_pixels_njit_glass_blur.py_func)


# -- gaussian_noise: exact, frame by frame ---------------------------------------------------------


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_gaussian_noise_same_draws_same_pixels(frames, severity, monkeypatch):
    """rvoskit's draws (float32 Box-Muller) handed to the reference's np.random.normal give identical frames."""
    for i, x in enumerate(frames):
        seed = frame_seed(7, "video", i)
        ours, _ = corrupt_image(x, "gaussian_noise", severity, make_rng("generator", seed))
        z = standard_normal(make_rng("generator", seed), x.shape)
        calls = []

        def normal(size=None, scale=1.0, loc=0.0, calls=calls, z=z):
            calls.append((size, scale))
            return loc + scale * z.astype(np.float64)

        monkeypatch.setattr(np.random, "normal", normal)
        ref = ic.corrupt(x, severity, "gaussian_noise")
        monkeypatch.undo()
        assert calls == [(x.shape, GAUSSIAN_NOISE_SIGMA[severity - 1])]
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_noise_legacy_rng_is_the_reference(frames, severity):
    """With the legacy RNG the draws are np.random's own: np.random.seed(s) + the reference = rvoskit."""
    for i, x in enumerate(frames):
        s = frame_seed(11, "video", i, "legacy")
        np.random.seed(s)
        ref = ic.corrupt(x, severity, "gaussian_noise")
        ours, _ = corrupt_image(x, "gaussian_noise", severity, make_rng("legacy", s))
        np.testing.assert_array_equal(ours, ref)


def test_gaussian_noise_kernel_on_integer_boundaries():
    """Draws placed within 1e-9..1e-4 of the truncation boundaries (where float32 alone would be
    wrong) still give the reference's float64 result: the ambiguous band is recomputed exactly."""
    rs = np.random.RandomState(0)
    x = rs.randint(0, 256, size=(600, 500, 3)).astype(np.uint8)
    sigma = 0.26
    k = rs.randint(-20, 276, size=x.shape)  # target level, including beyond 0 and 255
    offset = rs.choice([-1e-4, -1e-7, -1e-9, 0.0, 1e-9, 1e-7, 1e-4], size=x.shape)
    z = ((k / 255.0 - x / 255.0) + offset) / sigma
    ref = np.uint8(np.clip(x / 255.0 + sigma * z, 0, 1) * 255)
    np.testing.assert_array_equal(gaussian_noise_apply(x, z, sigma), ref)
    z32 = z.astype(np.float32)
    ref32 = np.uint8(np.clip(x / 255.0 + sigma * z32.astype(np.float64), 0, 1) * 255)
    np.testing.assert_array_equal(gaussian_noise_apply(x, z32, sigma), ref32)


def test_box_muller_draws_are_standard_normal():
    from scipy import stats

    z = standard_normal(make_rng("generator", 123), (1000, 1001))
    assert z.dtype == np.float32 and z.shape == (1000, 1001)
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert abs(stats.kurtosis(z.ravel())) < 0.02 and abs(stats.skew(z.ravel())) < 0.01
    assert stats.kstest(z.ravel()[:200_000], "norm").pvalue > 1e-3
    # draws of different frames are independent
    z2 = standard_normal(make_rng("generator", 124), (1000, 1001))
    assert abs(np.corrcoef(z.ravel(), z2.ravel())[0, 1]) < 0.005


# -- motion_blur: exact, frame by frame ------------------------------------------------------------


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_motion_blur_same_angle_same_pixels(frames, severity, monkeypatch):
    """The angle rvoskit draws, handed to the reference's np.random.uniform, gives identical frames."""
    for i, x in enumerate(frames):
        seed = frame_seed(3, "video", i)
        ours, params = corrupt_image(x, "motion_blur", severity, make_rng("generator", seed))
        assert -45 <= params["angle"] <= 45
        monkeypatch.setattr(np.random, "uniform", lambda low, high, angle=params["angle"]: angle)
        ref = ic.corrupt(x, severity, "motion_blur")
        monkeypatch.undo()
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("angle", [-45.0, -44.999, -30.0, -0.3, 0.0, 17.25, 45.0])
def test_motion_blur_kernel_edge_cases(frames, angle):
    """Extreme and axis angles; flat regions (exercising the constant-neighbourhood table, where the
    float kernel sum below 1 turns a flat 200 into 199); tiny images where taps stop at the border."""
    flat = np.full((90, 140, 3), 200, np.uint8)
    flat[30:60, 40:90] = (0, 255, 17)
    x = frames[1]
    for img in (x, flat, x[:25, :37], x[:3, :200]):
        for radius, sigma in MOTION_BLUR_PARAMS:
            ref = np.uint8(np.clip(R._motion_blur(img, radius=radius, sigma=sigma, angle=angle), 0, 255))
            np.testing.assert_array_equal(motion_blur_apply(img, radius, sigma, angle), ref)
    assert motion_blur_apply(flat, 20, 15, angle)[0, 0, 0] == np.uint8(np.clip(R._motion_blur(flat, 20, 15, angle), 0, 255))[0, 0, 0]


def test_motion_blur_float_layer_equals_reference():
    """snow's float layer blur (any angle, float64 input): identical float64 values."""
    layer = np.random.RandomState(1).rand(70, 90)
    for angle in (-135.0, -90.0, -60.5, -45.0):
        np.testing.assert_array_equal(motion_blur_float(layer, 12, 8, angle), R._motion_blur(layer, radius=12, sigma=8, angle=angle))


# -- all corruptions: exact under the legacy RNG -----------------------------------------------------


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_equals_reference_under_legacy_rng(crop, name, glass_in_python):
    """np.random.seed(s); imagecorruptions.corrupt(...) == rvoskit with make_rng('legacy', s), all severities."""
    x = crop if name != "glass_blur" else crop[:64, :96]
    for severity in range(1, 6):
        s = 1000 + severity
        kw = {"seed": s} if name in ("impulse_noise", "glass_blur") else {}
        np.random.seed(s)
        ref = ic.corrupt(x, severity, name, **kw)
        ours, _ = corrupt_image(x, name, severity, make_rng("legacy", s, name))
        assert ours.dtype == np.uint8 and ours.shape == x.shape
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name} severity {severity}")


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturate"])
def test_colour_corruptions_equal_reference_on_ties_and_grays(name):
    """The rewritten HSV round trip (np.where instead of masked assignments, np.choose per channel)
    and contrast's per-channel table: identical to imagecorruptions on every RGB case of
    rgb2hsv (a channel tied for the maximum, grays, black, white) and on noise."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    x[:32] = (x[:32] // 85) * 85  # 4 levels per channel: many ties between channels
    x[32:40] = x[32:40, :, :1]  # grays
    x[40:44], x[44:48] = 0, 255
    for severity in range(1, 6):
        np.random.seed(severity)
        ref = ic.corrupt(x, severity, name)
        ours, _ = corrupt_image(x, name, severity, make_rng("legacy", severity, name))
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name} severity {severity}")


@pytest.mark.parametrize("name", ["defocus_blur", "elastic_transform", "zoom_blur", "snow", "frost", "fog", "spatter", "speckle_noise"])
def test_rewritten_filters_equal_reference_on_a_large_frame(frames, name):
    """defocus_blur (one 3-channel filter2D instead of three planes), elastic_transform (2-D
    map_coordinates per channel instead of 3-D) and zoom_blur / snow (2-D zoom per channel
    instead of a (z, z, 1) 3-D zoom), frost (a 256 x 256 table of the blend), fog, spatter and
    speckle_noise (the same operations in place): identical to
    imagecorruptions on a 360x640 frame
    (filter2D's DFT tiling depends on the size), first and last severity."""
    x = cv2.resize(frames[0], (640, 360), interpolation=cv2.INTER_LINEAR)
    for severity in (1, 5):
        np.random.seed(severity)
        ref = ic.corrupt(x, severity, name)
        ours, _ = corrupt_image(x, name, severity, make_rng("legacy", severity, name))
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name} severity {severity}")


def test_frost_cached_textures_equal_reference_frame_after_frame(frames):
    """frost reads and resizes each texture once per frame size (rvoskit caches it): frame after frame,
    sizes alternating, every texture drawn, the output stays the reference's."""
    from rvoskit.corrupt import imagenet_c

    imagenet_c._frost_resized.cache_clear()
    small = cv2.resize(frames[1], (160, 90), interpolation=cv2.INTER_AREA)
    seen = set()
    for seed in range(14):
        x = frames[0] if seed % 2 else small
        np.random.seed(seed)
        ref = ic.corrupt(x, 3, "frost")
        ours, params = corrupt_image(x, "frost", 3, make_rng("legacy", seed, "frost"))
        np.testing.assert_array_equal(ours, ref, err_msg=f"seed {seed}")
        seen.add(params["texture"])
    assert len(seen) >= 4 and imagenet_c._frost_resized.cache_info().hits > 0


def test_jpeg_compression_equals_reference_at_every_quality(frames):
    """jpeg_compression through OpenCV's libjpeg-turbo: the same pixels as the reference's Pillow
    save / open, at every severity, on real frames and on noise (odd sizes: partial MCUs)."""
    noise = np.random.default_rng(5).integers(0, 256, (123, 211, 3), dtype=np.uint8)
    for x in (frames[0], frames[2], noise):
        for severity in range(1, 6):
            ref = ic.corrupt(x, severity, "jpeg_compression")
            ours, _ = corrupt_image(x, "jpeg_compression", severity, make_rng("legacy", 0, "jpeg_compression"))
            np.testing.assert_array_equal(ours, ref, err_msg=f"severity {severity} shape {x.shape}")


# -- the default generator RNG: statistically equivalent ----------------------------------------


RANDOM_ONES = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
               "snow", "frost", "fog", "elastic_transform", "spatter"]  # fmt: skip


@pytest.mark.parametrize("name", RANDOM_ONES)
def test_generator_rng_statistically_equivalent(crop, name, glass_in_python):
    """Over 6 seeds each, the residual statistics (mean, mean |.|, std of output - input) of rvoskit
    with the Generator and of the reference with np.random agree within 4.5 standard errors."""
    x = crop if name != "glass_blur" else crop[:64, :96]
    n = 6
    for severity in (2, 5):
        ref, ours = [], []
        for s in range(n):
            np.random.seed(s)
            kw = {"seed": s} if name in ("impulse_noise", "glass_blur") else {}
            ref.append(_residual_stats(x, ic.corrupt(x, severity, name, **kw)))
            ours.append(_residual_stats(x, corrupt_image(x, name, severity, make_rng("generator", 100 + s))[0]))
        ref, ours = np.array(ref), np.array(ours)
        se = np.sqrt(ref.var(0, ddof=1) / n + ours.var(0, ddof=1) / n) + 0.02
        z = np.abs(ref.mean(0) - ours.mean(0)) / se
        assert (z < 4.5).all(), f"{name} s{severity}: ref {ref.mean(0)} ours {ours.mean(0)} z {z}"


def _residual_stats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = y.astype(np.float64) - x
    return np.array([d.mean(), np.abs(d).mean(), d.std()])


# -- seeds and bad input -------------------------------------------------------------------------


def test_frame_seeds_are_per_frame_and_valid_for_each_rng():
    seeds = {frame_seed(0, v, t) for v in ("a", "b", "../x") for t in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**64 for s in seeds)
    legacy = [frame_seed(0, "a", t, "legacy") for t in range(50)]
    assert len(set(legacy)) == 50 and all(0 <= s < 2**32 for s in legacy)
    np.random.seed(legacy[0])  # accepted by the reference's seeding
    assert frame_seed(1, "a", 0) != frame_seed(0, "a", 0)
    assert video_seed(0, "a") != video_seed(0, "b") and video_seed(0, "a") not in seeds
    assert isinstance(make_rng("legacy", 5), np.random.RandomState)
    assert isinstance(make_rng("legacy", 5, "impulse_noise"), np.random.Generator)
    with pytest.raises(RvosError, match="RNG kind"):
        make_rng("mt", 5)


def test_bad_input_is_a_clear_error(crop):
    rng = make_rng("generator", 0)
    with pytest.raises(RvosError, match="unknown corruption type 'gaussian'.*gaussian_noise"):
        corrupt_image(crop, "gaussian", 1, rng)
    for bad in (0, 6, 2.5, "3", True):
        with pytest.raises(RvosError, match="severity must be an integer 1..5"):
            corrupt_image(crop, "gaussian_noise", bad, rng)
    with pytest.raises(RvosError, match="at least 32x32"):
        corrupt_image(crop[:31], "gaussian_noise", 1, rng)
    with pytest.raises(RvosError, match="uint8"):
        corrupt_image(crop.astype(np.float32), "gaussian_noise", 1, rng)
    grey, _ = corrupt_image(crop[:, :, 0], "contrast", 3, rng)  # grey input is stacked, as in the reference
    np.testing.assert_array_equal(grey, ic.corrupt(crop[:, :, 0], 3, "contrast"))
