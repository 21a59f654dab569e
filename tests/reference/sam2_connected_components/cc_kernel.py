"""A serial, line-by-line Python port of SAM2's CUDA connected-components kernel
(``connected_components.cu`` next to this file, facebookresearch/sam2 @ 2b90b9f, Apache-2.0,
adapted there from zsef123/Connected_components_PyTorch, BSD-3-Clause: see LICENSE and
LICENSE_cctorch here).

It exists only so that the tests can check rvoskit's OpenCV version against the kernel's
algorithm on a machine without CUDA. Every kernel of ``get_connected_componnets`` is run for each
of its threads in turn; the kernels' atomics become plain reads and writes, which gives the same
result because the union-find roots are the smallest block index whatever the order of the unions.
"""

from __future__ import annotations

import numpy as np


def _has_bit(bitmap: int, pos: int) -> int:
    return (bitmap >> pos) & 1


def _find(s_buf: np.ndarray, n: int) -> int:
    while s_buf[n] != n:
        n = int(s_buf[n])
    return n


def _find_n_compress(s_buf: np.ndarray, n: int) -> int:
    id_ = n
    while s_buf[n] != n:
        n = int(s_buf[n])
        s_buf[id_] = n
    return n


def _union(s_buf: np.ndarray, a: int, b: int) -> None:
    done = False
    while not done:
        a = _find(s_buf, a)
        b = _find(s_buf, b)
        if a < b:
            old = int(s_buf[b])  # atomicMin(s_buf + b, a)
            s_buf[b] = min(old, a)
            done = old == b
            b = old
        elif b < a:
            old = int(s_buf[a])  # atomicMin(s_buf + a, b)
            s_buf[a] = min(old, b)
            done = old == a
            a = old
        else:
            done = True


def get_connected_componnets(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``inputs``: uint8 ``(N, 1, H, W)`` with even H, W. Returns int32 ``(labels, counts)``."""
    assert inputs.ndim == 4 and inputs.shape[1] == 1 and inputs.dtype == np.uint8
    N, _, H, W = inputs.shape
    assert H % 2 == 0 and W % 2 == 0
    labels = np.zeros((N, 1, H, W), np.int32)
    counts_final = np.zeros((N, 1, H, W), np.int32)
    blocks = [(row, col) for row in range(0, H, 2) for col in range(0, W, 2)]
    for n in range(N):
        img = inputs[n, 0].ravel()
        label = np.zeros(H * W, np.int64)
        for row, col in blocks:  # init_labeling
            idx = row * W + col
            label[idx] = idx
        for row, col in blocks:  # merge
            idx = row * W + col
            P = 0
            if img[idx]:
                P |= 0x777
            if row + 1 < H and img[idx + W]:
                P |= 0x777 << 4
            if col + 1 < W and img[idx + 1]:
                P |= 0x777 << 1
            if col == 0:
                P &= 0xEEEE
            if col + 1 >= W:
                P &= 0x3333
            elif col + 2 >= W:
                P &= 0x7777
            if row == 0:
                P &= 0xFFF0
            if row + 1 >= H:
                P &= 0xFF
            if P > 0:
                if _has_bit(P, 0) and img[idx - W - 1]:
                    _union(label, idx, idx - 2 * W - 2)
                if (_has_bit(P, 1) and img[idx - W]) or (_has_bit(P, 2) and img[idx - W + 1]):
                    _union(label, idx, idx - 2 * W)
                if _has_bit(P, 3) and img[idx + 2 - W]:
                    _union(label, idx, idx - 2 * W + 2)
                if (_has_bit(P, 4) and img[idx - 1]) or (_has_bit(P, 8) and img[idx + W - 1]):
                    _union(label, idx, idx - 2)
        for row, col in blocks:  # compression
            _find_n_compress(label, row * W + col)
        for row, col in blocks:  # final_labeling
            idx = row * W + col
            y = label[idx] + 1
            label[idx] = y if img[idx] else 0
            if col + 1 < W:
                label[idx + 1] = y if img[idx + 1] else 0
                if row + 1 < H:
                    label[idx + W + 1] = y if img[idx + W + 1] else 0
            if row + 1 < H:
                label[idx + W] = y if img[idx + W] else 0
        count_init = np.zeros(H * W, np.int64)
        for idx in range(H * W):  # init_counting
            if label[idx] > 0:
                count_init[label[idx] - 1] += 1
        count = np.where(label > 0, count_init[np.maximum(label - 1, 0)], 0)  # final_counting
        labels[n, 0] = label.reshape(H, W)
        counts_final[n, 0] = count.reshape(H, W)
    return labels, counts_final
