"""Display segmentation kernels: hierarchical segmentation time, and descriptor + Hamming vs numpy.

Run ``python benchmarks/bench_segmentation.py`` (640x360x100) or with
``--quick`` (320x180x50).  The synthetic clip is a textured static background
(smooth random texture plus +-10 noise) with a rectangle showing new blocky
content every 5 frames, i.e. a billboard.  All figures come from one run;
kernels are compiled (and cached) by a warm-up call that is not timed.

Printed: wall time of ``hierarchical_segmentation`` (from single pixels, no
super-pixel pre-pass) with the number of regions per kept level; wall time of
``temporal_descriptors`` and of ``hamming_distance`` over every 4-neighbour
pixel pair against a vectorised numpy version of each (``np.packbits`` /
``np.bitwise_count``), with their ratio, after checking that both give the
same bits and distances.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from kernels.binary_patterns import descriptor_layout, hamming_distance, temporal_descriptors
from kernels.segmentation import hierarchical_segmentation


def synthetic_billboard(n_frames: int, height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    background = cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    background = np.clip(background + rng.integers(-10, 11, (height, width, 3)), 0, 255).astype(np.uint8)
    video = np.repeat(background[None], n_frames, axis=0)
    y0, y1, x0, x1 = height // 4, height // 2, width // 4, width // 2
    for t in range(0, n_frames, 5):
        blocks = rng.integers(0, 256, ((y1 - y0) // 10 + 1, (x1 - x0) // 10 + 1, 3)).astype(np.uint8)
        video[t : t + 5, y0:y1, x0:x1] = cv2.resize(
            blocks, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST
        )
    visible = np.ones(video.shape[:3], bool)
    visible[:, :, : width // 20] = rng.random((n_frames, height, width // 20)) > 0.5  # a ragged warp border
    return video, visible


def numpy_descriptors(video, visible, theta=100.0):
    """Vectorised numpy version of ``temporal_descriptors`` (same layout)."""
    n_frames = video.shape[0]
    n1, n2, n_words = descriptor_layout(n_frames)
    f0 = np.r_[4 * np.arange(n1), 2 * np.arange(n2)]
    f1 = np.r_[4 * np.arange(n1) + 4, 2 * np.arange(n2) + n_frames // 2]
    diff = video[f1].astype(np.float64) - video[f0].astype(np.float64)
    bits = (diff**2).sum(axis=-1) > theta**2  # (n_bits, H, W)
    valid = visible[f0] & visible[f1]
    bits &= valid

    def pack(flags):
        padded = np.zeros((64 * n_words,) + flags.shape[1:], bool)
        padded[: flags.shape[0]] = flags
        packed = np.packbits(np.moveaxis(padded, 0, -1), axis=-1, bitorder="little")
        return np.ascontiguousarray(packed).view("<u8").astype(np.uint64)

    return pack(bits), pack(valid)


def numpy_hamming(a, va, b, vb):
    common = va & vb
    n_common = np.bitwise_count(common).sum(axis=-1)
    n_diff = np.bitwise_count((a ^ b) & common).sum(axis=-1)
    return np.where(n_common > 0, n_diff / np.maximum(n_common, 1), 1.0)


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320x180x50 instead of 640x360x100")
    args = parser.parse_args()
    n_frames, height, width = (50, 180, 320) if args.quick else (100, 360, 640)
    video, visible = synthetic_billboard(n_frames, height, width)

    # warm-up (compilation or cache load), not timed
    hierarchical_segmentation(video[:6, :8, :8], visible[:6, :8, :8])
    temporal_descriptors(video[:6, :4, :4], visible[:6, :4, :4])
    hamming_distance(*[np.zeros((2, 1), np.uint64)] * 4)

    print(
        f"synthetic billboard clip: {n_frames} frames x {height} x {width}, uint8, ragged visibility border"
    )
    start = time.perf_counter()
    segments, thresholds = hierarchical_segmentation(video, visible)
    seg_time = time.perf_counter() - start
    n_regions = [int(level.max()) + 1 for level in segments]
    rect = segments[:, height // 4 : height // 2, width // 4 : width // 2]
    print(
        f"hierarchical_segmentation (pixel start): {seg_time:8.2f} s   "
        f"kept levels thresholds {np.round(thresholds, 3).tolist()}, regions {n_regions}, "
        f"labels inside the billboard per level {[int(np.unique(r).size) for r in rect]}"
    )

    repeats = 3
    t_kernel, (bits, valid, _) = best_of(repeats, lambda: temporal_descriptors(video, visible))
    t_numpy, (nbits, nvalid) = best_of(repeats, lambda: numpy_descriptors(video, visible))
    assert np.array_equal(bits, nbits) and np.array_equal(valid, nvalid), "descriptor mismatch"
    print(
        f"temporal_descriptors:  numba {t_kernel * 1e3:8.1f} ms   numpy {t_numpy * 1e3:8.1f} ms   "
        f"numpy/numba {t_numpy / t_kernel:5.1f}x"
    )

    # every 4-neighbour pair, as in the segmentation's first step
    a = np.concatenate([bits[:, :-1].reshape(-1, bits.shape[2]), bits[:-1].reshape(-1, bits.shape[2])])
    b = np.concatenate([bits[:, 1:].reshape(-1, bits.shape[2]), bits[1:].reshape(-1, bits.shape[2])])
    va = np.concatenate([valid[:, :-1].reshape(-1, bits.shape[2]), valid[:-1].reshape(-1, bits.shape[2])])
    vb = np.concatenate([valid[:, 1:].reshape(-1, bits.shape[2]), valid[1:].reshape(-1, bits.shape[2])])
    t_kernel, d_kernel = best_of(repeats, lambda: hamming_distance(a, va, b, vb))
    t_numpy, d_numpy = best_of(repeats, lambda: numpy_hamming(a, va, b, vb))
    assert np.array_equal(d_kernel, d_numpy), "hamming mismatch"
    print(
        f"hamming_distance ({a.shape[0]} pairs): numba {t_kernel * 1e3:8.1f} ms   numpy {t_numpy * 1e3:8.1f} ms   "
        f"numpy/numba {t_numpy / t_kernel:5.1f}x"
    )


if __name__ == "__main__":
    main()
