"""Random draws for video corruption: per-frame seeds and the two RNG kinds.

Every frame gets its own seed, derived from ``(seed, video_id, frame_idx)`` through a
:class:`numpy.random.SeedSequence`, so a frame's draws never depend on which worker ran it or in
what order. The seed is recorded in the run's ``corruption.parquet``; :func:`make_rng` turns it
back into the exact generator.

Two kinds of generator:

- ``generator`` (default): :class:`numpy.random.Generator` on PCG64, seeded with a 64-bit frame
  seed. Standard normals for the noise corruptions come from :func:`standard_normal`
  (Box-Muller in float32, about 3x faster than numpy's float32 ziggurat); everything else uses the
  Generator's own methods.
- ``legacy``: what ``imagecorruptions`` itself draws from. The frame seed is 32-bit and the
  generator is ``numpy.random.RandomState(seed)``, i.e. the global state after
  ``np.random.seed(seed)``; ``impulse_noise`` (which the reference seeds through scikit-image)
  gets ``numpy.random.default_rng(seed)``. With this kind every corruption is pixel-identical
  to ``np.random.seed(s); imagecorruptions.corrupt(frame, severity, name, **kw)`` where ``kw`` is
  ``{"seed": s}`` for ``impulse_noise`` and ``glass_blur`` and empty otherwise.
"""

from __future__ import annotations

import hashlib
import math
import threading

import numpy as np

from rvoskit.errors import RvosError

RNG_KINDS = ("generator", "legacy")
_BAND = 1 << 16  # Box-Muller pairs per band

Rng = np.random.Generator | np.random.RandomState


def _video_key(video_id: str) -> int:
    """A stable 128-bit integer for a video id (SeedSequence spawn keys must be integers)."""
    return int.from_bytes(hashlib.sha256(video_id.encode("utf-8")).digest()[:16], "little")


def _check_kind(kind: str) -> None:
    if kind not in RNG_KINDS:
        raise RvosError(f"unknown RNG kind {kind!r}; choose one of {', '.join(RNG_KINDS)}")


def _seed_from(ss: np.random.SeedSequence, kind: str) -> int:
    if kind == "legacy":
        return int(ss.generate_state(1, np.uint32)[0])
    return int(ss.generate_state(1, np.uint64)[0])


def frame_seed(seed: int, video_id: str, frame_idx: int, kind: str = "generator") -> int:
    """The seed of one frame: ``SeedSequence(seed, spawn_key=(key(video_id), 0, frame_idx))``.

    Args:
        seed: the run's seed (a non-negative integer).
        video_id: the video.
        frame_idx: 0-based index into ``videos.frames``.
        kind: ``generator`` (a 64-bit seed) or ``legacy`` (a 32-bit seed, valid for ``np.random.seed``).

    Returns:
        A non-negative Python int (< 2**64, or < 2**32 for ``legacy``).
    """
    _check_kind(kind)
    return _seed_from(np.random.SeedSequence(seed, spawn_key=(_video_key(video_id), 0, frame_idx)), kind)


def video_seed(seed: int, video_id: str, kind: str = "generator") -> int:
    """The seed of per-video draws (``--angle-policy per_video``): spawn key ``(key(video_id), 1)``."""
    _check_kind(kind)
    return _seed_from(np.random.SeedSequence(seed, spawn_key=(_video_key(video_id), 1)), kind)


def make_rng(kind: str, seed: int, corruption: str | None = None) -> Rng:
    """The generator a frame's draws come from (see the module docstring).

    Args:
        kind: ``generator`` or ``legacy``.
        seed: a frame or video seed from :func:`frame_seed` / :func:`video_seed`.
        corruption: the corruption name; only matters for ``legacy`` ``impulse_noise``.

    Raises:
        RvosError: unknown kind.
    """
    _check_kind(kind)
    if kind == "generator" or corruption == "impulse_noise":
        return np.random.default_rng(seed)
    return np.random.RandomState(seed)


def randint(rng: Rng, low: int, high: int, size=None):
    """Integers in ``[low, high)``: ``Generator.integers`` or ``RandomState.randint`` (same stream as the reference)."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(low, high, size=size)
    return rng.integers(low, high, size=size)


def standard_normal(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal draws of ``shape``.

    ``RandomState``: ``rng.standard_normal`` (float64, the legacy polar method that
    ``np.random.normal`` uses, so ``scale * z`` equals ``np.random.normal(size=shape, scale=scale)``
    bit for bit). ``Generator``: float32 Box-Muller (an exact transform to N(0, 1)),
    ``z = sqrt(-2 ln(1 - u1)) * (cos 2 pi u2, sin 2 pi u2)`` with ``u1, u2 = rng.random((2,
    ceil(n / 2)), float32)``: the cosines fill the first half of the flattened output, the sines
    the second. Float32 uniforms bound ``|z|`` by 5.77, a tail probability of 8e-9.

    Returns:
        float64 (RandomState) or float32 (Generator) array of ``shape``.
    """
    if isinstance(rng, np.random.RandomState):
        return rng.standard_normal(shape)
    n = int(np.prod(shape))
    half = (n + 1) // 2
    u = rng.random((2, half), dtype=np.float32)  # u[0] -> radius, u[1] -> angle; overwritten by z
    cos = np.empty(min(_BAND, half), np.float32)
    for a in range(0, half, _BAND):  # in place, in cache-sized bands
        r, theta, c = u[0, a : a + _BAND], u[1, a : a + _BAND], cos[: min(_BAND, half - a)]
        np.subtract(np.float32(1.0), r, out=r)  # (0, 1]: log is finite
        np.log(r, out=r)
        r *= np.float32(-2.0)
        np.sqrt(r, out=r)
        theta *= np.float32(2.0 * np.pi)
        np.cos(theta, out=c)
        np.sin(theta, out=theta)
        theta *= r
        np.multiply(r, c, out=r)
    return u.reshape(-1)[:n].reshape(shape)



_POLAR_ACCEPT = math.pi / 4  # P(x1**2 + x2**2 < 1) for a pair of the polar method
_POLAR_SD = math.sqrt(_POLAR_ACCEPT * (1 - _POLAR_ACCEPT))
_CHUNK = 1 << 15  # polar attempts per chunk: the chunk's arrays (~1.5 MB) stay in cache
_scratch = threading.local()


def _buffers(chunk: int) -> dict[str, np.ndarray]:
    """Per-thread work arrays for :func:`legacy_normals` (reused: no page faults per frame)."""
    b = getattr(_scratch, "bufs", None)
    if b is None or b["r2"].size != chunk:
        b = _scratch.bufs = {
            "u": np.empty(2 * chunk), "sq": np.empty(2 * chunk), "r2": np.empty(chunk),
            "ok": np.empty(chunk, bool), "ok2": np.empty(chunk, bool),
            "x1": np.empty(chunk), "x2": np.empty(chunk), "r2c": np.empty(chunk), "f": np.empty(chunk),
        }
    return b


_NUMBA: dict = {"state": "untried", "module": None}
_NUMBA_LOCK = threading.Lock()


def _load_numba_kernels() -> None:
    try:
        from rvoskit.corrupt import _legacy_poisson as mod

        mod.warm_normals()  # loads the compiled code from numba's cache
        _NUMBA["module"], _NUMBA["state"] = mod, "ready"
    except ImportError:
        _NUMBA["state"] = "missing"


def _numba_kernels(wait: bool):
    """:mod:`rvoskit.corrupt._legacy_poisson` (numba kernels) once loaded, else None.

    Importing numba and loading the compiled kernels from its cache takes ~0.6 s of CPU, mostly
    under the GIL. ``wait=False`` starts that in a background thread and returns None until it is
    done, so the first frames of a run use numpy's draws (GIL-free, the same values) meanwhile;
    ``wait=True`` blocks until loaded. None when numba is not installed.
    """
    with _NUMBA_LOCK:
        if _NUMBA["state"] == "untried":
            _NUMBA["state"] = "loading"
            _NUMBA["thread"] = threading.Thread(target=_load_numba_kernels, name="rvoskit-numba", daemon=True)
            _NUMBA["thread"].start()
    if wait and _NUMBA["state"] == "loading":
        _NUMBA["thread"].join()
    return _NUMBA["module"]


def _pair_attempts(pairs: int) -> int:
    """Polar attempts that accept fewer than ``pairs`` pairs, 8 standard deviations out."""
    return int((pairs - 8 * _POLAR_SD * math.sqrt(pairs / _POLAR_ACCEPT) - 64) / _POLAR_ACCEPT)


class LegacyNormals:
    """Draws of ``RandomState.standard_normal(n)``, from :func:`legacy_normals`.

    Attributes:
        z: ``(n,)`` array of ``scale * z`` in the requested dtype. With float64 and ``scale=1`` it
            is the reference's array except where numpy's vectorised ``np.log`` differs from the C
            library's ``log`` by one ulp (about 0.3 % of pairs; ``z`` then moves by ~1 ulp).
    """

    def __init__(self, z: np.ndarray, state, n: int):
        self.z = z
        self._state, self._n = state, n

    def exact(self, idx: np.ndarray) -> np.ndarray:
        """The reference's ``RandomState.standard_normal(n)[idx]``, bit for bit (unscaled, float64).

        Replays the draws: ``standard_normal(n)`` on a generator restored to the state before them
        (one reference-speed draw, ~45 ms at 720p; callers use it only for the rare values where a
        one-ulp difference could matter).
        """
        rs = np.random.RandomState()
        rs.set_state(self._state)
        return rs.standard_normal(self._n)[np.asarray(idx, np.int64)]


def legacy_normals(rs: np.random.RandomState, n: int, *, scale: float = 1.0, dtype=np.float64, out: np.ndarray | None = None) -> LegacyNormals:
    """``scale * rs.standard_normal(n)`` (numpy's legacy polar method), vectorised; ``rs`` ends in the same state.

    numpy's ``legacy_gauss`` (numpy/random/src/legacy/legacy-distributions.c) takes pairs
    ``x1 = 2 u1 - 1``, ``x2 = 2 u2 - 1`` of consecutive ``random_sample`` doubles, rejects
    ``r2 = x1*x1 + x2*x2 >= 1`` or ``== 0``, and with ``f = sqrt(-2 log(r2) / r2)`` returns ``f * x2``
    and keeps ``f * x1`` for the next call. A cached normal from an earlier odd-sized draw comes
    first, as in the reference, and the last value of an odd count (with its cached twin) comes from
    ``rs.standard_normal`` itself, so the generator ends in the reference's state (position and
    cached normal). In between, whole pairs:

    - with numba (:mod:`rvoskit.corrupt._legacy_poisson`, loaded in the background on first use):
      ``polar_pairs`` runs numpy's MT19937 and the rejection from ``rs``'s state and keeps exactly
      the pairs needed, ``np.log`` takes their ``log(r2)`` and ``polar_finish`` computes ``f`` and
      the interleaved outputs, all in cache-sized chunks; ``rs`` is then set to the generator's
      state (about 2.5x faster than numpy's loop);
    - without numba (or while it loads): the doubles are drawn in chunks by
      ``Generator(rs's bit generator).random`` (the same doubles from the same state), the rejection
      and ``f`` are whole-array float64 operations in the same order. Each chunk holds fewer
      attempts than needed at 8 standard deviations: every double drawn is one the reference draws
      too; should a chunk ever accept too many pairs, the state is restored and
      ``rs.standard_normal(n)`` is used (about 1.6x faster than numpy's loop).

    Exactness: the only difference is numpy's SIMD ``log`` (one ulp on ~0.3 % of pairs);
    :meth:`LegacyNormals.exact` replays the reference for the values where that could matter.

    Args:
        rs: the legacy generator.
        n: number of draws.
        scale: the values are ``scale * z`` (``(scale * f) * x`` when ``scale != 1``: within
            2 ulp of the float64 ``scale * z``).
        dtype: float64 or float32 (float32: the float64 values rounded).
        out: optional contiguous ``(n,)`` array of ``dtype`` to write the values to (reusing one
            buffer frame after frame saves the page faults of a fresh 22 MB array).

    Returns:
        :class:`LegacyNormals`; ``.z`` has shape ``(n,)``.
    """
    state = rs.get_state()
    z = np.empty(n, dtype) if out is None else out.reshape(n)
    pos = 0
    if n and state[3]:  # the cached normal of an odd-sized earlier draw
        z[0] = scale * rs.standard_normal()
        pos = 1
    mod = _numba_kernels(wait=False)
    if mod is not None and (n - pos) // 2:  # numba: exactly the pairs needed, drawn and tested in one loop
        mt_name, key, mt_pos = rs.get_state()[:3]
        key = np.array(key, np.uint32)
        b = _buffers(_CHUNK)
        x1, x2, r2, f = b["x1"], b["x2"], b["r2c"], b["f"]
        pairs = (n - pos) // 2
        for a in range(0, pairs, _CHUNK - 1):
            k = min(_CHUNK - 1, pairs - a)
            mt_pos = mod.polar_pairs(key, mt_pos, x1[: k + 1], x2[: k + 1], r2[: k + 1])
            np.log(r2[:k], out=f[:k])
            mod.polar_finish(f[:k], x1[:k], x2[:k], r2[:k], float(scale), z[pos : pos + 2 * k])
            pos += 2 * k
        rs.set_state((mt_name, key, mt_pos, 0, 0.0))  # no cached normal: whole pairs were used
        z[pos:] = scale * rs.standard_normal(n - pos)  # the odd last value (and its cached twin), numpy's own
        return LegacyNormals(z, state, n)
    b = _buffers(_CHUNK)
    g = np.random.Generator(rs._bit_generator)  # shares rs's MT19937 state: random() = rs.random_sample()
    while (att := min(_CHUNK, _pair_attempts((n - pos) // 2))) >= 1024:
        u, sq, r2, ok = b["u"][: 2 * att], b["sq"][: 2 * att], b["r2"][:att], b["ok"][:att]
        g.random(out=u)
        u *= 2.0
        u -= 1.0  # x = 2 u - 1, exact
        np.multiply(u, u, out=sq)
        np.add(sq[0::2], sq[1::2], out=r2)  # x1*x1 + x2*x2
        np.less(r2, 1.0, out=ok)
        ok &= np.not_equal(r2, 0.0, out=b["ok2"][:att])
        keep = np.flatnonzero(ok)
        k = keep.size
        if 2 * k > n - pos:  # never at 8 standard deviations; exact anyway
            rs.set_state(state)
            z[:] = scale * rs.standard_normal(n)
            return LegacyNormals(z, state, n)
        x1, x2, r2c, f = b["x1"][:k], b["x2"][:k], b["r2c"][:k], b["f"][:k]
        np.take(u[0::2], keep, out=x1, mode="clip")  # the accepted pairs, contiguous
        np.take(u[1::2], keep, out=x2, mode="clip")
        np.take(r2, keep, out=r2c, mode="clip")
        np.log(r2c, out=f)
        f *= -2.0
        f /= r2c
        np.sqrt(f, out=f)
        if scale != 1.0:
            f *= scale
        x2 *= f  # returned first
        x1 *= f  # the cached one, returned next
        zz = z[pos : pos + 2 * k].reshape(k, 2)
        zz[:, 0] = x2
        zz[:, 1] = x1
        pos += 2 * k
    z[pos:] = scale * rs.standard_normal(n - pos)
    return LegacyNormals(z, state, n)


def _poisson_table(lam_values: np.ndarray) -> np.ndarray:
    """Per-lam constants of numpy's ``random_poisson``, computed as it computes them (C library
    functions through ``math``, same order): lam, exp(-lam), 2a, b, v_r, log(1/alpha), log(lam)."""
    rows = []
    for lam in np.asarray(lam_values, np.float64).tolist():
        if lam >= 10:
            slam, loglam = math.sqrt(lam), math.log(lam)
            b = 0.931 + 2.53 * slam
            a = -0.059 + 0.02483 * b
            invalpha = 1.1239 + 1.1328 / (b - 3.4)
            vr = 0.9277 - 3.6224 / (b - 2)
            rows.append((lam, 0.0, 2 * a, b, vr, math.log(invalpha), loglam))
        else:
            rows.append((lam, math.exp(-lam), 0.0, 0.0, 0.0, 0.0, 0.0))
    return np.array(rows, np.float64)


def _poisson_kernel():
    """The numba loop of :mod:`rvoskit.corrupt._legacy_poisson` (waits for it to load), or None without numba."""
    mod = _numba_kernels(wait=True)
    return None if mod is None else mod.poisson_mt


def legacy_poisson(rs: np.random.RandomState, codes: np.ndarray, lam_values: np.ndarray, cap: int) -> np.ndarray | None:
    """``min(rs.poisson(lam_values[codes]), cap)`` (numpy's legacy Poisson), with ``rs`` left in the same state.

    numpy draws element by element: ``random_poisson_mult`` below lam 10 (multiply uniforms until
    the product drops to ``exp(-lam)``: ``X + 1`` doubles), ``random_poisson_ptrs`` from 10 on
    (pairs of doubles until one is accepted), nothing for lam 0. Each element's doubles follow the
    previous element's, so the loop is sequential; it runs here as a compiled (numba) port of
    those functions (:mod:`rvoskit.corrupt._legacy_poisson`), with numpy's MT19937 (twist,
    tempering, ``next_double``) ported too and run from ``rs``'s state, which is then set to where
    numpy's loop would leave it. The elements' lam values come from a small table (``codes`` index
    it), so the per-lam constants are computed once with the C library's functions (as numpy
    computes them per element), and PTRS's ``log(k!)`` side is cached per (lam, k).

    Args:
        rs: the legacy generator.
        codes: ``uint8`` (or other integer) indices into ``lam_values``, any shape.
        lam_values: float64 lam per code (non-negative, below 1e7).
        cap: the draws are returned as ``min(draw, cap)`` (shot noise saturates at ``c``), ``0 <= cap <= 255``.

    Returns:
        ``uint8`` array of ``codes``' shape, or ``None`` when numba is not installed (the caller
        then uses ``rs.poisson``).
    """
    run = _poisson_kernel()
    if run is None:
        return None
    table = _poisson_table(lam_values)
    flat = np.ascontiguousarray(codes).reshape(-1)
    out = np.empty(flat.size, np.uint8)
    rhs = np.full((len(table), 256), np.nan)  # PTRS's right-hand sides by (lam, k), filled as met
    name, key, pos, has_gauss, gauss = rs.get_state()
    key = np.array(key, np.uint32)
    pos = run(flat, table, key, int(pos), out, cap, rhs)
    rs.set_state((name, key, pos, has_gauss, gauss))
    return out.reshape(np.shape(codes))


_X_OVER_255 = np.arange(256) / 255.0  # the reference's x / 255. for every uint8 value
_EXACT_TOL = 1e-9  # legacy_noise_image: pixels this close to an integer (x 255) get the replayed true draws


def legacy_noise_image(rs: np.random.RandomState, image: np.ndarray, sigma: float, speckle: bool) -> np.ndarray | None:
    """gaussian_noise's ``uint8(clip(x + N, 0, 1) * 255)`` or speckle_noise's ``uint8(clip(x + x N, 0, 1) * 255)``
    with ``x = image / 255.`` and ``N = rs.normal(size=image.shape, scale=sigma)``, the reference's
    result and end state, the draws and the arithmetic in one compiled pass (numba).

    The pairs come from ``polar_pairs`` (see :func:`legacy_normals`) and ``polar_apply`` computes each
    pixel in float64 in numpy's order straight from them (no ``z`` array). ``z`` is exact up to
    numpy's vectorised ``log`` (one ulp on ~0.3 % of pairs, ~1e-16 relative), so only a pixel whose
    ``255 v`` lies within 1e-9 of an integer can differ; those (about one per 100 frames at 720p) are
    recomputed with the true draws, replayed by ``standard_normal`` from the saved state. A cached
    normal at the start and the last value of an odd count are numpy's own.

    Returns:
        ``uint8`` array of ``image``'s shape, or None when numba is not (yet) loaded (the caller then
        uses :func:`legacy_normals` and a float32 kernel; the same result).
    """
    mod = _numba_kernels(wait=False)
    if mod is None:
        return None
    state = rs.get_state()
    img = np.ascontiguousarray(image).reshape(-1)
    n = img.size
    out = np.empty(n, np.uint8)
    exact_idx, exact_z = [], []
    pos = 0
    if n and state[3]:  # the cached normal of an earlier odd-sized draw
        exact_idx.append(np.array([0]))
        exact_z.append(np.array([rs.standard_normal()]))
        pos = 1
    pairs = (n - pos) // 2
    if pairs:
        mt_name, key, mt_pos = rs.get_state()[:3]
        key = np.array(key, np.uint32)
        b = _buffers(_CHUNK)
        x1, x2, r2, f = b["x1"], b["x2"], b["r2c"], b["f"]
        near = np.empty(2 * _CHUNK, np.int64)
        near_idx = []
        for a in range(0, pairs, _CHUNK - 1):
            k = min(_CHUNK - 1, pairs - a)
            mt_pos = mod.polar_pairs(key, mt_pos, x1[: k + 1], x2[: k + 1], r2[: k + 1])
            np.log(r2[:k], out=f[:k])
            m = mod.polar_apply(f[:k], x1[:k], x2[:k], r2[:k], img, pos, _X_OVER_255, float(sigma), bool(speckle), _EXACT_TOL, out, near)
            if m:
                near_idx.append(near[:m].copy())
            pos += 2 * k
        rs.set_state((mt_name, key, mt_pos, 0, 0.0))  # no cached normal: whole pairs were used
        if near_idx:  # replay the true draws (rare)
            idx = np.concatenate(near_idx)
            replay = np.random.RandomState()
            replay.set_state(state)
            exact_idx.append(idx)
            exact_z.append(replay.standard_normal(n)[idx])
    if pos < n:  # the odd last value (its twin cached in rs), numpy's own
        exact_idx.append(np.arange(pos, n))
        exact_z.append(rs.standard_normal(n - pos))
    if exact_idx:
        idx, z = np.concatenate(exact_idx), np.concatenate(exact_z)
        x = _X_OVER_255[img[idx]]
        noise = sigma * z
        v = x + x * noise if speckle else x + noise
        out[idx] = (np.clip(v, 0, 1) * 255).astype(np.uint8)
    return out.reshape(np.shape(image))
