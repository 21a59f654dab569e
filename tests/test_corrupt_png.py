"""corrupt's own PNG writer is lossless: PIL and OpenCV read back exactly the pixels written."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from rvoskit.corrupt.video import png_bytes


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (33, 17, 3), (64, 48, 3)])
@pytest.mark.parametrize("kind", ["noise", "smooth"])
def test_png_bytes_round_trip(shape, kind):
    rng = np.random.default_rng(sum(shape))
    if kind == "noise":
        img = rng.integers(0, 256, shape, dtype=np.uint8)
    else:  # smooth: the Sub filter is chosen
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        img = ((xx * 3 + yy) % 256).astype(np.uint8)
        img = np.repeat(img[..., None], shape[2], axis=2) if len(shape) == 3 else img
    data = png_bytes(img)
    assert np.array_equal(np.array(Image.open(io.BytesIO(data))), img)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(back if img.ndim == 2 else cv2.cvtColor(back, cv2.COLOR_BGR2RGB), img)


def test_png_bytes_refuses_other_shapes():
    with pytest.raises(ValueError):
        png_bytes(np.zeros((4, 4, 4), np.uint8))


@pytest.mark.parametrize("n", [0, 1, 65534, 65535, 65536, 2 * 65535, 2 * 65535 + 7])
def test_stored_zlib_stream_decompresses(n):
    """The stored-block zlib writer (noise frames) around its 65535-byte block boundaries."""
    from rvoskit.corrupt.video import _zlib_stored

    import zlib

    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    assert zlib.decompress(bytes(_zlib_stored(data))) == data.tobytes()


def test_noise_frame_is_stored_and_smooth_frame_compressed():
    """The entropy rule: white noise is written stored (about its raw size), a smooth frame compressed."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    assert len(png_bytes(noise)) > noise.size
    yy, xx = np.mgrid[:90, :160]
    smooth = np.repeat(((xx + yy) % 256).astype(np.uint8)[..., None], 3, axis=2)
    assert len(png_bytes(smooth)) < 0.5 * smooth.size


@pytest.mark.parametrize("shape", [(3, 70_000), (5, 30_000), (9, 7_000, 3)])
def test_stored_png_with_long_scanlines(shape):
    """Noise PNGs are stored as blocks of whole scanlines; a scanline longer than a block (65535 bytes)
    falls back to blocks cut anywhere. Both read back exactly."""
    img = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = png_bytes(img)
    assert len(data) > img.size  # stored
    assert np.array_equal(np.array(Image.open(io.BytesIO(data))), img)
