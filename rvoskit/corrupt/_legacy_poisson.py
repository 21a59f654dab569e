"""numba kernels behind :func:`rvoskit.corrupt.rng.legacy_poisson` and the draws of :func:`~rvoskit.corrupt.rng.legacy_normals`.

A line-by-line port of numpy's ``random_poisson`` (numpy/random/src/distributions/distributions.c:
``random_poisson_mult`` below lam 10, ``random_poisson_ptrs`` from 10 on, ``random_loggam``), which
``RandomState.poisson`` runs once per element, and of numpy's MT19937 that feeds it
(numpy/random/src/mt19937: ``mt19937_gen``, the tempering of ``mt19937_next``,
``mt19937_next_double``), as one loop over the elements. The per-lam constants (``exp(-lam)``,
``log(lam)``, ``a``, ``b``, ``1/alpha``, ``v_r``) come precomputed with the C library's functions
(Python's ``math``), the same float64 operations in the same order as the C code; the loop's own
``log`` calls are the C library's too (LLVM calls libm; no fast-math, no contraction).

For the polar method (``legacy_gauss``), :func:`polar_pairs` runs the same MT19937 and the
rejection, keeping exactly the pairs needed; ``log(r2)`` is numpy's (vectorised, see
``rng.LegacyNormals.exact`` for its ulps) and :func:`polar_finish` does the rest in C's order.
"""

from __future__ import annotations

import math

import numpy as np

from rvoskit._jit import prepare_numba

prepare_numba()  # before numba: see rvoskit._jit
import numba  # noqa: E402

_LOGGAM_A = np.array([8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04, -5.952380952380952e-04,
                      8.417508417508418e-04, -1.917526917526918e-03, 6.410256410256410e-03, -2.955065359477124e-02,
                      1.796443723688307e-01, -1.39243221690590e00])


@numba.njit(nogil=True, cache=True)
def _loggam(x: float) -> float:
    a = _LOGGAM_A
    x0 = x
    n = 0
    if x == 1.0 or x == 2.0:
        return 0.0
    elif x <= 7.0:
        n = np.int64(7 - x)
        x0 = x + n
    x2 = 1.0 / (x0 * x0)
    xp = 2 * math.pi
    gl0 = a[9]
    for k in range(8, -1, -1):
        gl0 *= x2
        gl0 += a[k]
    gl = gl0 / x0 + 0.5 * math.log(xp) + (x0 - 0.5) * math.log(x0) - x0
    if x <= 7.0:
        for _ in range(n):
            gl -= math.log(x0 - 1.0)
            x0 -= 1.0
    return gl


_U = np.uint32


@numba.njit(nogil=True, cache=True)
def _twist(key):
    """numpy's ``mt19937_gen``: the next 624 words of the state, in place."""
    for i in range(227):
        y = (key[i] & _U(0x80000000)) | (key[i + 1] & _U(0x7FFFFFFF))
        key[i] = key[i + 397] ^ (y >> _U(1)) ^ ((_U(0) - (y & _U(1))) & _U(0x9908B0DF))
    for i in range(227, 623):
        y = (key[i] & _U(0x80000000)) | (key[i + 1] & _U(0x7FFFFFFF))
        key[i] = key[i - 227] ^ (y >> _U(1)) ^ ((_U(0) - (y & _U(1))) & _U(0x9908B0DF))
    y = (key[623] & _U(0x80000000)) | (key[0] & _U(0x7FFFFFFF))
    key[623] = key[396] ^ (y >> _U(1)) ^ ((_U(0) - (y & _U(1))) & _U(0x9908B0DF))


@numba.njit(nogil=True, cache=True)
def _temper(key, out):
    """numpy's ``mt19937_next`` tempering of all 624 words (the outputs of one block)."""
    for i in range(624):
        y = key[i]
        y ^= y >> _U(11)
        y ^= (y << _U(7)) & _U(0x9D2C5680)
        y ^= (y << _U(15)) & _U(0xEFC60000)
        y ^= y >> _U(18)
        out[i] = y


_TWO_M53 = 1.0 / 9007199254740992.0  # x / 2**53 == x * 2**-53 exactly


@numba.njit(nogil=True, cache=True)
def _double_across(key, words, p):
    """numpy's ``mt19937_next_double`` when fewer than 2 words are left in the block (``p >= 623``):
    twists where numpy's ``mt19937_next`` does (at ``pos == 624``). Returns ``(double, new p)``."""
    if p == 624:
        _twist(key)
        _temper(key, words)
        p = 0
    a = words[p] >> _U(5)
    p += 1
    if p == 624:
        _twist(key)
        _temper(key, words)
        p = 0
    b = words[p] >> _U(6)
    return (np.float64(a) * 67108864.0 + np.float64(b)) * _TWO_M53, p + 1


@numba.njit(nogil=True, cache=True)
def polar_pairs(key, pos, x1, x2, r2):
    """The accepted pairs of numpy's ``legacy_gauss`` (polar method), as many as ``x1`` holds, from
    the MT19937 state ``(key, pos)`` (``key`` updated in place): ``x = 2 u - 1`` for two consecutive
    ``next_double`` values, kept when ``0 < r2 = x1*x1 + x2*x2 < 1``. Each pair is written to slot
    ``k`` and ``k`` advances only when accepted (no unpredictable branch), so ``x1``, ``x2`` and
    ``r2`` need one spare slot at the end. Returns the new ``pos``."""
    words = np.empty(624, np.uint32)
    _temper(key, words)
    p = pos
    need = x1.size - 1
    k = 0
    while k < need:
        if p < 621:  # two doubles, inline
            u1 = (np.float64(words[p] >> _U(5)) * 67108864.0 + np.float64(words[p + 1] >> _U(6))) * _TWO_M53
            u2 = (np.float64(words[p + 2] >> _U(5)) * 67108864.0 + np.float64(words[p + 3] >> _U(6))) * _TWO_M53
            p += 4
        else:
            u1, p = _double_across(key, words, p)
            if p < 623:
                u2 = (np.float64(words[p] >> _U(5)) * 67108864.0 + np.float64(words[p + 1] >> _U(6))) * _TWO_M53
                p += 2
            else:
                u2, p = _double_across(key, words, p)
        a = 2.0 * u1 - 1.0
        b = 2.0 * u2 - 1.0
        s = a * a + b * b
        x1[k] = a
        x2[k] = b
        r2[k] = s
        k += (s < 1.0) & (s != 0.0)
    return p


@numba.njit(nogil=True, cache=True)
def polar_finish(log_r2, x1, x2, r2, scale, z):
    """``f = sqrt(-2.0 * log(r2) / r2)`` as numpy's ``legacy_gauss`` computes it (given ``log(r2)``),
    then ``z[2k] = f x2``, ``z[2k + 1] = f x1`` (``(scale f) x`` when ``scale != 1``)."""
    for k in range(log_r2.size):
        f = math.sqrt(-2.0 * log_r2[k] / r2[k])
        if scale != 1.0:
            f *= scale
        z[2 * k] = f * x2[k]
        z[2 * k + 1] = f * x1[k]


@numba.njit(nogil=True, cache=True)
def polar_apply(log_r2, x1, x2, r2, img, start, x_of, sigma, speckle, tol, out, near):
    """:func:`polar_finish` fused with the reference's arithmetic on the image: for the pixels
    ``start + 2k`` (``f x2``) and ``start + 2k + 1`` (``f x1``), ``v = x + sigma z`` (gaussian_noise)
    or ``v = x + x (sigma z)`` (speckle_noise) with ``x = x_of[img[i]]`` (``img / 255.``), then
    ``out[i] = uint8(clip(v, 0, 1) * 255)``, in float64 as numpy computes it. Pixels whose ``255 v``
    lies within ``tol`` of an integer (where a one-ulp error of numpy's ``log`` could matter; not
    speckle's ``x = 0``, which gives 0 whatever z) are listed in ``near``. Returns how many."""
    m = 0
    for k in range(log_r2.size):
        f = math.sqrt(-2.0 * log_r2[k] / r2[k])
        for j in range(2):
            i = start + 2 * k + j
            z = f * x2[k] if j == 0 else f * x1[k]
            x = x_of[img[i]]
            noise = sigma * z
            v = x + x * noise if speckle else x + noise
            w = v * 255.0
            if abs(w - np.rint(w)) < tol and not (speckle and x == 0.0):
                near[m] = i
                m += 1
            out[i] = np.uint8(min(max(v, 0.0), 1.0) * 255.0)
    return m


@numba.njit(nogil=True, cache=True)
def poisson_mt(code, table, key, pos, out, cap, rhs):
    """``out[j] = min(poisson(lam of code[j]), cap)`` for every element, drawing from the MT19937
    state ``(key, pos)`` (numpy's ``get_state()`` layout) exactly as ``RandomState.poisson`` does.

    ``table`` rows by code: lam, exp(-lam), 2a, b, v_r, log(1/alpha), log(lam) (see
    ``rng._poisson_table``). ``rhs``: a NaN-filled ``(rows, K)`` cache of PTRS's right-hand side
    ``-lam + k log(lam) - loggam(k + 1)`` (a function of lam and k only) for ``0 <= k < K``.
    ``key`` is updated in place.

    Returns:
        the new ``pos``.
    """
    words = np.empty(624, np.uint32)
    _temper(key, words)
    p = pos
    for i in range(code.size):
        r = code[i]
        lam = table[r, 0]
        if lam == 0.0:
            out[i] = 0
        elif lam < 10.0:  # random_poisson_mult
            enlam = table[r, 1]
            prod = 1.0
            x = 0
            while True:
                if p < 623:  # mt19937_next_double, inline
                    u = (np.float64(words[p] >> _U(5)) * 67108864.0 + np.float64(words[p + 1] >> _U(6))) * _TWO_M53
                    p += 2
                else:
                    u, p = _double_across(key, words, p)
                prod *= u
                if prod > enlam:
                    x += 1
                else:
                    break
            out[i] = min(x, cap)
        else:  # random_poisson_ptrs
            twoa, b, vr = table[r, 2], table[r, 3], table[r, 4]
            while True:
                if p < 621:  # two doubles, inline
                    u = (np.float64(words[p] >> _U(5)) * 67108864.0 + np.float64(words[p + 1] >> _U(6))) * _TWO_M53
                    v = (np.float64(words[p + 2] >> _U(5)) * 67108864.0 + np.float64(words[p + 3] >> _U(6))) * _TWO_M53
                    p += 4
                else:
                    u, p = _double_across(key, words, p)
                    v, p = _double_across(key, words, p) if p >= 623 else (
                        (np.float64(words[p] >> _U(5)) * 67108864.0 + np.float64(words[p + 1] >> _U(6))) * _TWO_M53, p + 2)
                u -= 0.5
                us = 0.5 - abs(u)
                if us == 0.0:  # u == 0: C's (int64)floor(inf) is negative on x86, so "k < 0": rejected
                    continue
                k = np.int64(math.floor((twoa / us + b) * u + lam + 0.43))  # 2 * a / us: 2 * a is exact
                if us >= 0.07 and v <= vr:
                    break
                if k < 0 or (us < 0.013 and v > us):
                    continue
                if k < rhs.shape[1]:
                    right = rhs[r, k]
                    if right != right:  # NaN: not computed yet
                        right = rhs[r, k] = -lam + k * table[r, 6] - _loggam(np.float64(k + 1))
                else:
                    right = -lam + k * table[r, 6] - _loggam(np.float64(k + 1))
                if (math.log(v) + table[r, 5] - math.log(0.5 * twoa / (us * us) + b)) <= right:
                    break
            out[i] = min(k, cap)
    return p


def warm_normals() -> None:
    """Load (or compile) :func:`polar_pairs` and :func:`polar_finish` for float64 output."""
    key = np.array(np.random.RandomState(0).get_state()[1], np.uint32)
    x = np.empty(3)
    polar_pairs(key, 624, x, x.copy(), x.copy())
    polar_finish(np.zeros(2), x[:2], x[:2], np.ones(2), 1.0, np.empty(4))
    img = np.zeros(4, np.uint8)
    for speckle in (False, True):
        polar_apply(np.zeros(2), x[:2], x[:2], np.ones(2), img, 0, np.arange(256) / 255.0, 0.1, speckle, 1e-9,
                    np.empty(4, np.uint8), np.empty(4, np.int64))


def warm() -> None:
    """Compile (or load from numba's on-disk cache) the kernels with the argument types the noise corruptions use."""
    from rvoskit.corrupt.rng import legacy_poisson

    warm_normals()
    legacy_poisson(np.random.RandomState(0), np.arange(256, dtype=np.uint8), np.arange(256) / 255.0 * 60, cap=60)
