"""rle.pixel_counts (the vectorised check convert mevis uses) against rle.pixel_count, RLE by RLE,
on real pycocotools encodings and on malformed strings; convert mevis still names a bad RLE."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as cocomask

from rvoskit.format import rle


def _exact(c: bytes) -> int:
    try:
        return rle.pixel_count(c)
    except ValueError:
        return -1


def _encodings(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 80, 2))
        m = rng.random((h, w)) < rng.random()
        if rng.random() < 0.5:  # smooth shapes (long runs, multi-character deltas) as well as noise
            yy, xx = np.mgrid[:h, :w]
            m = (yy - rng.integers(h)) ** 2 + (xx - rng.integers(w)) ** 2 < rng.integers(1, 2000)
        out.append(cocomask.encode(np.asfortranarray(m.astype(np.uint8)))["counts"])
    big = np.zeros((2000, 3000), np.uint8)
    big[100:1900, 5:2990] = 1  # runs of thousands of pixels: 3-character runs
    return out + [cocomask.encode(np.asfortranarray(big))["counts"], b"", b"0"]


def test_pixel_counts_equal_the_one_at_a_time_parse_on_valid_rle():
    cs = _encodings(300)
    assert rle.pixel_counts(cs).tolist() == [_exact(c) for c in cs]
    assert rle.pixel_counts([]).shape == (0,)


def test_pixel_counts_flag_every_rle_the_exact_parse_rejects():
    rng = np.random.default_rng(1)
    good = _encodings(50, seed=2)
    cases = [b"0" * 5 + b"\x00", b"1a\x7f", b"`", b"o" * 13 + b"1", b"0ooooooooooooo0", b"1:", b"13O", b"4" + b"o" * 11 + b"0", b"o" * 9 + b"0", b"0" + b"o" * 9 + b"?"]
    for _ in range(1500):  # mutations: a changed character, a cut, junk appended, random bytes
        c = bytearray(good[rng.integers(len(good))])
        op = rng.integers(4)
        if op == 0 and c:
            c[rng.integers(len(c))] = int(rng.integers(30, 120))
        elif op == 1 and c:
            c = c[: rng.integers(len(c))]
        elif op == 2:
            c += bytes(rng.integers(48, 112, rng.integers(1, 15)).astype(np.uint8))
        else:
            c = bytearray(rng.integers(40, 130, rng.integers(0, 30)).astype(np.uint8))
        cases.append(bytes(c))
    batch = [x for c in cases for x in (good[0], c)]  # each case between good ones: nothing leaks across
    got = rle.pixel_counts(batch)
    want = [_exact(x) for x in batch]
    assert got.tolist() == want
    assert sum(w == -1 for w in want) > 300  # the mutations do reach the error paths


def test_pixel_counts_with_runs_of_every_parity_and_empty_rles_between():
    """Short RLEs (0, 1, 2, 3 runs, negative first runs) next to long ones: each RLE's parity
    classes start where it starts, whatever the position in the concatenation."""
    rng = np.random.default_rng(3)
    good = _encodings(40, seed=4)
    short = [b"", b"0", b"1", b"3", b"O", b"11", b"1O", b"111", b"3O1", b"3O0", b"5O", b"7", b"02"]
    batch = [bytes(x) for x in rng.choice(np.array(good + short, dtype=object), 400)]
    assert rle.pixel_counts(batch).tolist() == [_exact(c) for c in batch]
