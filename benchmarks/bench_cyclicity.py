"""Cyclicity kernel against the naive per-interval FFT, and its throughput on a 640x360x100 clip.

Run: python benchmarks/bench_cyclicity.py [--quick]

Prints, from one run on this machine:
  * the kernel's time and the naive search's time (one batched FFT per interval, the
    reference in tests/kernels/naive_cyclicity.py vectorised over pixels) on the same pixels,
    and their ratio;
  * pixels per second of the kernel on a whole 640x360 clip of 100 frames, single-threaded and
    through dask over 64x64 tiles on all cores (the way the pipeline runs it).
Numba compilation is excluded (a warm-up call first).  Everything runs with BLAS limited to one
thread, as in the pipeline's cyclicity stage (the kernel's first-interval DFTs are matrix
products, the naive search's are one-thread FFTs; Dask's threads are the parallelism, and BLAS
threads beside them oversubscribe the cores), so the ratio compares one core with one core; wall
and CPU time are both printed, and the load average.
"""

from __future__ import annotations

import argparse
import os
import time

import dask.array as da
import numpy as np
from threadpoolctl import threadpool_limits

from kernels.cyclicity import dft_cyclicity, min_interval_length


def naive_batched(signals: np.ndarray, tau: int = 4, eps: float = 1e-3):
    """One FFT per interval, over all pixels at once: O(N^2) FFTs of length <= N."""
    x = np.asarray(signals, np.float64)
    n = x.shape[1]
    best = np.full(x.shape[0], -1.0)
    for length in range(min_interval_length(n), n + 1):
        half = length // 2
        if half <= tau:
            continue
        for i in range(n - length + 1):
            mag = np.abs(np.fft.rfft(x[:, i : i + length], axis=1))[:, 1 : half + 1]
            score = mag[:, tau:].max(axis=1) / (mag[:, :tau].max(axis=1) + eps)
            np.maximum(best, score, out=best)
    return best


def synthetic_luma(n_frames, height, width, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None, None]
    base = rng.uniform(20, 200, size=(1, height, width))
    period = rng.uniform(4, 20, size=(1, height, width))
    blink = (rng.random((1, height, width)) < 0.1) * 80 * np.cos(2 * np.pi * t / period)
    return (base + blink + rng.normal(0, 3, size=(n_frames, height, width))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    n = args.frames
    height, width = (90, 160) if args.quick else (360, 640)
    sample = 256 if args.quick else 2048

    video = synthetic_luma(n, height, width)
    pixels = video.reshape(n, -1).T.copy()
    with threadpool_limits(1, user_api="blas"):
        run(pixels, video, n, sample, height, width)


def run(pixels: np.ndarray, video: np.ndarray, n: int, sample: int, height: int, width: int) -> None:
    """The measurements (BLAS already limited by the caller)."""
    dft_cyclicity(pixels[:4])  # compile (with BLAS on one thread already: no idle BLAS threads spin afterwards)
    sub = pixels[:sample]
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    t0, c0 = time.perf_counter(), time.process_time()
    score, _, _ = dft_cyclicity(sub)
    t_kernel, c_kernel = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ref = naive_batched(sub)
    t_naive, c_naive = time.perf_counter() - t0, time.process_time() - c0
    np.testing.assert_allclose(score, ref, rtol=1e-4, atol=1e-6)
    print(f"same {sample} pixels x {n} frames, results equal to 1e-4, one thread:")
    print(f"  kernel (sliding DFT)        {t_kernel:8.3f} s wall {c_kernel:8.3f} s CPU")
    print(f"  naive (FFT per interval)    {t_naive:8.3f} s wall {c_naive:8.3f} s CPU")
    print(f"  ratio naive / kernel        {t_naive / t_kernel:8.1f} x wall {c_naive / c_kernel:6.1f} x CPU")

    total = pixels.shape[0]
    t0, c0 = time.perf_counter(), time.process_time()
    dft_cyclicity(pixels)
    t_one, c_one = time.perf_counter() - t0, time.process_time() - c0
    lum = da.from_array(video, chunks=(n, 64, 64))
    blocks = lum.map_blocks(
        lambda b: dft_cyclicity(b.reshape(n, -1).T)[0].reshape(b.shape[1:])[None],
        chunks=((1,), lum.chunks[1], lum.chunks[2]),
        dtype=np.float32,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    blocks.compute(scheduler="threads")
    t_dask, c_dask = time.perf_counter() - t0, time.process_time() - c0
    cores = os.cpu_count()
    print(f"whole clip {width}x{height}x{n} ({total} pixels):")
    print(f"  one thread                  {t_one:8.2f} s wall {c_one:8.2f} s CPU {total / t_one:10.0f} pixels/s")
    print(f"  dask, 64x64 tiles, {cores} cores  {t_dask:8.2f} s wall {c_dask:8.2f} s CPU {total / t_dask:10.0f} pixels/s")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
