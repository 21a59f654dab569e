"""The four noise corruptions under the legacy RNG against the reference (imagecorruptions-imaug 1.1.5),
and rvoskit.corrupt.rng.legacy_normals against numpy's own RandomState.standard_normal.

legacy_normals replaces numpy's scalar polar-method loop by whole-array arithmetic; everything here
compares with numpy or the reference package run on the same inputs and seeds: the stream of
values, the generator's state afterwards (position and cached normal), and the uint8 output of
gaussian_noise / shot_noise / impulse_noise / speckle_noise over random sizes (odd ones included),
all 5 severities, several seeds, grey and colour frames.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvoskit.corrupt import corrupt_image, make_rng
from rvoskit.corrupt import rng as rngmod
from rvoskit.corrupt.kernels import gaussian_noise_apply, speckle_noise_apply
from rvoskit.corrupt.rng import legacy_normals, legacy_poisson

ic = pytest.importorskip("imagecorruptions")

NOISES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
BEDROOM = Path(__file__).resolve().parent / "data" / "sam2_bedroom" / "JPEGImages" / "bedroom"


def _same_state(a: np.random.RandomState, b: np.random.RandomState) -> bool:
    sa, sb = a.get_state(), b.get_state()
    return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(sa, sb))


@pytest.mark.parametrize("n", [0, 1, 7, 2_999, 4_001, 65_537, 300_001, 691_200])
@pytest.mark.parametrize("cached", [False, True])
def test_legacy_normals_is_numpys_stream(n, cached):
    """Values (exact() bit for bit, z within 2 ulp), end state and the draws after it equal numpy's."""
    seed = n + 17 * cached
    a, b = np.random.RandomState(seed), np.random.RandomState(seed)
    if cached:  # an odd-sized draw before: the cached normal comes first
        a.standard_normal(3)
        b.standard_normal(3)
    want = a.standard_normal(n)
    got = legacy_normals(b, n)
    assert got.z.shape == (n,) and got.z.dtype == np.float64
    np.testing.assert_allclose(got.z, want, rtol=5e-16, atol=0)
    assert np.array_equal(got.exact(np.arange(n)), want)
    assert _same_state(a, b)
    assert np.array_equal(a.standard_normal(5), b.standard_normal(5))
    assert a.random_sample() == b.random_sample()


def test_legacy_normals_scaled_float32_and_out():
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    want = 0.38 * 255 * a.standard_normal(100_001)
    buf = np.empty(100_001, np.float32)
    got = legacy_normals(b, 100_001, scale=0.38 * 255, dtype=np.float32, out=buf)
    assert got.z is buf or np.shares_memory(got.z, buf)
    np.testing.assert_allclose(got.z, want.astype(np.float32), rtol=2e-7)
    assert _same_state(a, b)


def test_legacy_normals_overshoot_falls_back_exactly(monkeypatch):
    """A chunk that accepts more pairs than needed (forced here) restores the state and draws with numpy."""
    monkeypatch.setattr(rngmod, "_numba_kernels", lambda wait: None)  # numpy's chunked path
    monkeypatch.setattr(rngmod, "_pair_attempts", lambda pairs: rngmod._CHUNK)
    a, b = np.random.RandomState(9), np.random.RandomState(9)
    want = a.standard_normal(20_000)  # 10k pairs < the 32k attempts forced
    got = legacy_normals(b, 20_000)
    assert np.array_equal(got.z, want) and _same_state(a, b)


def test_numpys_vectorised_log_is_why_exact_exists():
    """The premise: np.log differs from the C library's log (math.log) on some values, so z alone is not
    bit-exact and the kernels must call exact() near integer boundaries. (If numpy's log ever becomes
    correctly rounded this just documents it; the kernels stay exact either way.)"""
    n = 400_000
    got = legacy_normals(np.random.RandomState(3), n)
    want = np.random.RandomState(3).standard_normal(n)
    diff = np.flatnonzero(got.z != want)
    assert diff.size < 0.01 * n  # one ulp on a few pairs in a thousand at most
    if diff.size:
        assert np.all(np.abs(got.z[diff] - want[diff]) <= 4 * np.spacing(np.abs(want[diff])))


def _boundary_case(apply, formula, sigma):
    """A pixel whose float64 value sits on an integer with the exact z and one ulp below with z - 1 ulp:
    the kernel must give the exact z's result (through ``exact``) and not the approximate one's."""
    for k in range(1, 255):
        for target in range(1, 255):
            x = np.float64(k) / 255.0
            z = np.float64((target / 255.0 - x) / sigma) if formula == "add" else np.float64((target / k - 1.0) / sigma)
            value = (lambda zz: x + sigma * zz) if formula == "add" else (lambda zz: x + x * (sigma * zz))
            for _ in range(64):  # walk z up to the first value whose result is >= target
                if np.clip(value(z), 0, 1) * 255 >= target:
                    break
                z = np.nextafter(z, np.inf)
            zlow = np.nextafter(z, -np.inf)
            if np.clip(value(z), 0, 1) * 255 >= target > np.clip(value(zlow), 0, 1) * 255:
                img = np.full((2, 3, 3), k, np.uint8)
                zexact = np.zeros(img.shape)  # z = 0 elsewhere: those pixels stay k
                zexact.flat[4] = z
                zapprox = zexact.copy()
                zapprox.flat[4] = zlow
                calls = []

                def exact(idx):
                    calls.append(np.asarray(idx).copy())
                    return zexact.reshape(-1)[idx]

                got = apply(img, zapprox, sigma, exact=exact)
                assert got.flat[4] == target and any(4 in c for c in calls)
                assert apply(img, zapprox, sigma).flat[4] == target - 1  # without exact: the approximate value's
                return
    pytest.fail("no boundary case found")


def test_gaussian_kernel_uses_exact_draws_on_integer_boundaries():
    _boundary_case(gaussian_noise_apply, "add", 0.38)


def test_speckle_kernel_uses_exact_draws_on_integer_boundaries():
    _boundary_case(speckle_noise_apply, "mul", 0.6)


def _frames() -> list[np.ndarray]:
    """Random crops of a real frame at random (odd) sizes, grey and colour, plus flat and saturated ones."""
    src = cv2.cvtColor(cv2.imread(str(BEDROOM / "00005.jpg")), cv2.COLOR_BGR2RGB)
    g = np.random.default_rng(13)
    out = []
    for h, w in [(32, 32), (37, 53), (61, 240), (150, 131), (203, 97)]:
        y, x = int(g.integers(0, src.shape[0] - h)), int(g.integers(0, src.shape[1] - w))
        out.append(np.ascontiguousarray(src[y : y + h, x : x + w]))
    out.append(cv2.cvtColor(out[3], cv2.COLOR_RGB2GRAY))  # grey (H, W)
    out.append(out[4][:, :, 1:2].copy())  # grey (H, W, 1)
    out.append(np.full((40, 45, 3), 255, np.uint8))  # saturated
    out.append(np.zeros((33, 70, 3), np.uint8))  # black (shot_noise: lam = 0 draws nothing)
    out.append(g.integers(0, 256, (47, 59, 3), dtype=np.uint8))  # white noise
    return out


@pytest.fixture(params=["numba", "numpy"])
def kernels_path(request, monkeypatch):
    """Run a test with numba's compiled kernels loaded, and again with numpy's paths only."""
    if request.param == "numba":
        pytest.importorskip("numba")
        assert rngmod._numba_kernels(wait=True) is not None
    else:
        monkeypatch.setattr(rngmod, "_numba_kernels", lambda wait: None)
    return request.param


@pytest.mark.parametrize("name", NOISES)
def test_noise_equals_reference_fuzz(name, kernels_path):
    """np.random.seed(s); imagecorruptions.corrupt(frame, S, name) (plus seed=s for impulse_noise) equals
    corrupt_image(frame, name, S, make_rng('legacy', s, name)): every frame, every severity, 2 seeds each."""
    g = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, frame in enumerate(_frames()):
            for severity in range(1, 6):
                for s in g.integers(0, 2**32, 2):
                    s = int(s)
                    np.random.seed(s)
                    want = ic.corrupt(frame, severity, name, **({"seed": s} if name == "impulse_noise" else {}))
                    got, _ = corrupt_image(frame, name, severity, make_rng("legacy", s, name))
                    assert got.dtype == np.uint8 and got.shape == want.shape
                    assert np.array_equal(got, want), f"{name} frame {i} {frame.shape} severity {severity} seed {s}"


@pytest.mark.parametrize("name", NOISES)
def test_noise_equals_reference_on_a_720p_frame(name):
    """The whole-frame path (many chunks of draws, many row bands) at 1280x720, severities 1 and 5."""
    frame = cv2.resize(cv2.cvtColor(cv2.imread(str(BEDROOM / "00011.jpg")), cv2.COLOR_BGR2RGB), (1280, 720))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for severity, s in ((1, 2024), (5, 99)):
            np.random.seed(s)
            want = ic.corrupt(frame, severity, name, **({"seed": s} if name == "impulse_noise" else {}))
            got, _ = corrupt_image(frame, name, severity, make_rng("legacy", s, name))
            assert np.array_equal(got, want), f"{name} severity {severity}"


@pytest.mark.parametrize("start", ["fresh", "odd_word", "cached_normal"])
def test_legacy_poisson_is_numpys_stream(start):
    """min(RandomState.poisson(lam), cap) and the state after it (key, pos, cached normal): lam 0, the
    multiplication method (< 10), PTRS (>= 10, with its log(k!) side cached per (lam, k) and computed
    directly for k >= 256), many MT19937 blocks, starting mid-block at an odd word."""
    pytest.importorskip("numba")
    lam_values = np.concatenate([[0.0], np.linspace(0.01, 9.99, 120), [10.0], np.geomspace(10.001, 4000.0, 134)])
    g = np.random.default_rng(5)
    codes = g.integers(0, 256, (157, 211), dtype=np.uint8)
    codes[:3] = 0  # a run of lam 0 (no draws)
    for seed in (1, 2):
        a, b = np.random.RandomState(seed), np.random.RandomState(seed)
        if start == "odd_word":
            a.randint(0, 2**32, dtype=np.uint32), b.randint(0, 2**32, dtype=np.uint32)
        elif start == "cached_normal":
            a.standard_normal(1), b.standard_normal(1)
        want = np.minimum(a.poisson(lam_values[codes]), 255)
        got = legacy_poisson(b, codes, lam_values, cap=255)
        assert got.dtype == np.uint8 and np.array_equal(got, want)
        assert _same_state(a, b)
        assert np.array_equal(a.standard_normal(3), b.standard_normal(3))


def test_shot_noise_without_numba_is_still_the_reference(monkeypatch):
    """Without numba, shot_noise falls back to RandomState.poisson: same output."""
    monkeypatch.setattr(rngmod, "_poisson_kernel", lambda: None)
    frame = _frames()[3]
    for severity in (1, 5):
        np.random.seed(77)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = ic.corrupt(frame, severity, "shot_noise")
        got, _ = corrupt_image(frame, "shot_noise", severity, make_rng("legacy", 77))
        assert np.array_equal(got, want)


@pytest.mark.parametrize("numba_draws", [True, False])
def test_legacy_normals_with_and_without_numba(numba_draws, monkeypatch):
    """numba's kernels (MT19937, rejection, f) when numba is there and loaded, else numpy's whole-array
    path: same values, same state, odd counts, cached normals, doubles straddling MT19937 blocks."""
    if numba_draws:
        pytest.importorskip("numba")
        assert rngmod._numba_kernels(wait=True) is not None
    else:
        monkeypatch.setattr(rngmod, "_numba_kernels", lambda wait: None)
    for n, odd_word, cached in ((150_001, False, False), (99_998, True, False), (70_001, True, True), (5, False, True)):
        a, b = np.random.RandomState(n), np.random.RandomState(n)
        if odd_word:  # the doubles then straddle MT19937 blocks
            a.randint(0, 2**32, dtype=np.uint32), b.randint(0, 2**32, dtype=np.uint32)
        if cached:
            a.standard_normal(1), b.standard_normal(1)
        want = a.standard_normal(n)
        got = legacy_normals(b, n)
        np.testing.assert_allclose(got.z, want, rtol=5e-16, atol=0)
        assert np.array_equal(got.exact(np.arange(n)), want) and _same_state(a, b)
        scaled = legacy_normals(np.random.RandomState(3), n, scale=0.5, dtype=np.float32).z
        np.testing.assert_allclose(scaled, (0.5 * np.random.RandomState(3).standard_normal(n)).astype(np.float32), rtol=2e-7)


@pytest.mark.parametrize("speckle", [False, True])
def test_fused_noise_replays_the_true_draws_where_asked(speckle, monkeypatch):
    """legacy_noise_image with every pixel sent to the exact path (tolerance 1: all of them replayed):
    still the reference's pixels; and with a cached normal first and an odd count, the reference's state."""
    pytest.importorskip("numba")
    assert rngmod._numba_kernels(wait=True) is not None
    name = "speckle_noise" if speckle else "gaussian_noise"
    frame = _frames()[1]  # 37 x 53 x 3: odd
    for tol in (1e-9, 1.0):
        monkeypatch.setattr(rngmod, "_EXACT_TOL", tol)
        for severity in (1, 5):
            np.random.seed(5)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = ic.corrupt(frame, severity, name)
            got, _ = corrupt_image(frame, name, severity, make_rng("legacy", 5))
            assert np.array_equal(got, want)
    sigma = 0.38
    a, b = np.random.RandomState(8), np.random.RandomState(8)
    a.standard_normal(1), b.standard_normal(1)  # a cached normal comes first
    x = frame / 255.0
    noise = a.normal(size=frame.shape, scale=sigma)
    want = np.uint8(np.clip(x + x * noise if speckle else x + noise, 0, 1) * 255)
    assert np.array_equal(rngmod.legacy_noise_image(b, frame, sigma, speckle), want) and _same_state(a, b)
