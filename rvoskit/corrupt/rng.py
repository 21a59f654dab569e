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
