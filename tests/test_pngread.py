"""The PNG fast path of eval (rvoskit.metrics.pngread) against the readers it stands in for:
Pillow's ``np.array(Image.open(f))`` (DAVIS label maps) and ``cv2.imread(f, IMREAD_GRAYSCALE)``
(MeViS masks), on PNGs written by Pillow, OpenCV and a hand-made encoder (every filter type,
several IDAT chunks, odd sizes), and on broken files, where it must step aside (None)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from rvoskit.metrics import pngread
from rvoskit.metrics.sources import read_gray_png, read_label_png

SIZES = [(1, 1), (1, 7), (5, 1), (2, 3), (17, 31), (48, 85), (120, 213)]


def _pil(a: np.ndarray, mode: str, **kw) -> bytes:
    """``a`` saved by Pillow as a palette (``P``, as davis2017 writes results) or gray (``L``) PNG."""
    im = Image.frombytes(mode, a.shape[::-1], np.ascontiguousarray(a).tobytes())
    if mode == "P":
        im.putpalette(np.random.default_rng(0).integers(0, 256, 768).astype(np.uint8).tobytes())
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    c = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", c & 0xFFFFFFFF)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _encode(a: np.ndarray, filters, color: int = 0, depth: int = 8, interlace: int = 0, parts: int = 1, extra=(), level=6) -> bytes:
    """A PNG of ``a`` (H, W uint8) with the given filter type per row (plain-Python filtering)."""
    H, W = a.shape
    x = a.astype(np.int64)
    raw = bytearray()
    for r in range(H):
        f = int(filters[r % len(filters)])
        raw.append(f)
        for i in range(W):
            left = x[r, i - 1] if i else 0
            up = x[r - 1, i] if r else 0
            ul = x[r - 1, i - 1] if r and i else 0
            pred = [0, left, up, (left + up) // 2, _paeth(left, up, ul)][f]
            raw.append((x[r, i] - pred) & 255)
    z = zlib.compress(bytes(raw), level)
    cut = np.linspace(0, len(z), parts + 1).astype(int)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, depth, color, 0, 0, interlace))
    if color == 3:
        out += _chunk(b"PLTE", bytes(range(256)) * 3)
    for kind, body in extra:
        out += _chunk(kind, body)
    for i in range(parts):
        out += _chunk(b"IDAT", z[cut[i] : cut[i + 1]])
    return out + _chunk(b"IEND", b"")


def _pil_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im)


def _cv2_gray(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def _labels(rng, H, W, kind):
    if kind == "noise":
        return rng.integers(0, 256, (H, W), dtype=np.uint8)
    if kind == "binary":
        return (rng.random((H, W)) < 0.3).astype(np.uint8) * 255
    # blobs: a few rectangles of object ids, as label maps look
    a = np.zeros((H, W), np.uint8)
    for o in range(1, 5):
        y, x = rng.integers(0, H), rng.integers(0, W)
        a[y : y + rng.integers(1, H + 1), x : x + rng.integers(1, W + 1)] = o * (60 if rng.random() < 0.5 else 1)
    return a


@pytest.fixture(params=["libdeflate", "zlib"])
def inflater(request, monkeypatch):
    if request.param == "zlib":
        monkeypatch.setattr(pngread, "_libdeflate_zlib", None)
    return request.param


@pytest.fixture(params=[False, True], ids=["numpy", "compiled"])
def compiled(request):
    pngread.use_compiled(request.param)
    yield request.param
    pngread.use_compiled(False)


@pytest.mark.parametrize("size", SIZES)
def test_pillow_and_opencv_files_give_their_readers_values(size, inflater, compiled):
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    for kind in ("noise", "binary", "blobs"):
        a = _labels(rng, *size, kind)
        for data in (_pil(a, "P"), _pil(a, "L"), _pil(a, "L", optimize=True), _pil(a, "L", compress_level=0), _pil(a, "P", compress_level=9)):
            got = pngread.decode_u8(data, (0, 3), pngread.LABEL_SAFE)
            ref = _pil_array(data)
            assert got is not None or not compiled
            if got is not None:  # None: Avg / Paeth rows, left to the reader
                assert got.dtype == np.uint8 and got.shape == a.shape and got.flags.writeable
                np.testing.assert_array_equal(got, ref)
            if _pil_array(data).ndim == 2 and Image.open(io.BytesIO(data)).mode == "L":
                g = pngread.decode_u8(data)
                if g is not None:
                    np.testing.assert_array_equal(g, _cv2_gray(data))
        for level in (0, 1, 9):
            data = cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, level])[1].tobytes()
            g = pngread.decode_u8(data)
            assert g is not None or not compiled
            if g is not None:
                np.testing.assert_array_equal(g, _cv2_gray(data))
        # Pillow writes palette images with filter None on every row: always the fast path
        assert pngread.decode_u8(_pil(a, "P"), (0, 3), pngread.LABEL_SAFE) is not None


@pytest.mark.parametrize("filters", [[0], [1], [2], [1, 2], [2, 2, 0, 1], [0, 2, 2, 2, 1, 2], [3], [4], [0, 4, 2], [2, 3, 1]])
@pytest.mark.parametrize("size", [(1, 1), (3, 1), (1, 9), (9, 13), (40, 57)])
def test_every_filter_type(filters, size, inflater, compiled):
    rng = np.random.default_rng(len(filters) * 100 + size[0])
    for kind in ("noise", "binary", "blobs"):
        a = _labels(rng, *size, kind)
        for parts in (1, 3):
            data = _encode(a, filters, parts=parts)
            ref = _cv2_gray(data)
            np.testing.assert_array_equal(ref, a)
            got = pngread.decode_u8(data)
            kinds = {filters[r % len(filters)] for r in range(size[0])}
            if kinds <= {0, 1, 2} or compiled:
                np.testing.assert_array_equal(got, ref)
            else:
                assert got is None


def test_steps_aside_for_other_and_broken_files(inflater, compiled):
    a = _labels(np.random.default_rng(3), 20, 30, "blobs")
    good = _encode(a, [0, 1, 2])
    assert pngread.decode_u8(good) is not None
    rgb = io.BytesIO()
    Image.fromarray(np.dstack([a] * 3)).save(rgb, "PNG")
    sig = b"\x89PNG\r\n\x1a\n"
    z = zlib.compress(b"\0" * (20 * 31))
    cases = {
        "rgb": rgb.getvalue(),
        "16-bit": _encode(a, [0], depth=16),
        "interlaced": _encode(a, [0], interlace=1),
        "palette for the gray reader": _encode(a, [0], color=3),
        "bad IDAT crc": good[:-25] + bytes([good[-25] ^ 1]) + good[-24:],
        "truncated": good[:-20],
        "not a png": b"GIF89a" + good[6:],
        "empty": b"",
        "unknown critical chunk": _encode(a, [0], extra=[(b"ABCD", b"xy")]),
        "gamma for the gray reader": _encode(a, [0], extra=[(b"gAMA", struct.pack(">I", 45455))]),
        "short image data": sig + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30, 21, 8, 0, 0, 0, 0)) + _chunk(b"IDAT", z) + _chunk(b"IEND", b""),
        "long image data": sig + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30, 19, 8, 0, 0, 0, 0)) + _chunk(b"IDAT", z) + _chunk(b"IEND", b""),
        "no IEND": good[:-12],
    }
    raw = bytearray(zlib.decompress(z))
    raw[31] = 7  # row 1: filter type 7
    cases["bad filter type"] = sig + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30, 20, 8, 0, 0, 0, 0)) + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    bad_adler = bytearray(zlib.compress(bytes(20 * 31)))
    bad_adler[-1] ^= 1
    cases["bad adler32"] = sig + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30, 20, 8, 0, 0, 0, 0)) + _chunk(b"IDAT", bytes(bad_adler)) + _chunk(b"IEND", b"")
    for name, data in cases.items():
        assert pngread.decode_u8(data) is None, name
    # what the label reader takes besides: palette files, gamma; and the text chunks both take
    lab = _encode(a, [0], color=3, extra=[(b"gAMA", struct.pack(">I", 45455))])
    np.testing.assert_array_equal(pngread.decode_u8(lab, (0, 3), pngread.LABEL_SAFE), _pil_array(lab))
    txt = _encode(a, [2], extra=[(b"tEXt", b"k\0v")])
    np.testing.assert_array_equal(pngread.decode_u8(txt), _cv2_gray(txt))


def test_eval_readers_fall_back_with_the_same_values_and_errors(tmp_path):
    rng = np.random.default_rng(5)
    a = _labels(rng, 33, 47, "blobs")
    files = {
        "pil_p.png": _pil(a, "P"),
        "pil_l.png": _pil(a, "L"),
        "paeth.png": _encode(a, [4, 3, 1]),
        "cv2.png": cv2.imencode(".png", a)[1].tobytes(),
        "gamma.png": _encode(a, [0], extra=[(b"gAMA", struct.pack(">I", 45455))]),
    }
    for name, data in files.items():
        f = tmp_path / name
        f.write_bytes(data)
        np.testing.assert_array_equal(read_label_png(f, a.shape, "x"), np.array(Image.open(f)))
        np.testing.assert_array_equal(read_gray_png(f, a.shape, "x"), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))
    bad = tmp_path / "bad.png"
    bad.write_bytes(files["pil_p.png"][:60])
    from rvoskit.errors import RvosError

    with pytest.raises(RvosError, match="unreadable PNG"):
        read_label_png(bad, a.shape, "x")
    with pytest.raises(RvosError, match="unreadable PNG"):
        read_gray_png(bad, a.shape, "x")
    empty = tmp_path / "empty.png"  # zero bytes: cv2.imread gives None (cv2.imdecode would raise)
    empty.write_bytes(b"")
    for read in (read_label_png, read_gray_png):
        with pytest.raises(RvosError, match="unreadable PNG"):
            read(empty, a.shape, "x")
    with pytest.raises(RvosError, match="differs from the ground truth"):
        read_label_png(tmp_path / "pil_p.png", (a.shape[0] + 1, a.shape[1]), "x")
    assert read_label_png(tmp_path / "missing.png", a.shape, "x") is None
