"""Alpha-expansion: our Numba solver against gco-wrapper and PyMaxflow.

Two synthetic problems, solved by all three in one run on identical integer
costs (gco works in integers, so costs are scaled and rounded once and every
solver gets the same numbers; the energies are all evaluated with our
``grid_energy``):

1. stereo-like: a piecewise-planar disparity truth, a textured right image, the
   left image warped from it with noise; 3x3 SAD of truncated absolute
   differences for each of 128 disparities; truncated-linear smoothness
   (truncation 4, weight 0.15).
2. Potts: 16 labels, piecewise-constant truth, noisy unary.

Run ``python benchmarks/bench_alpha_expansion.py [--size 640x360] [--cycles 5]``.
Numba compile time is excluded: every kernel is warmed up on a tiny problem
first.  Each solver runs until convergence or ``--cycles`` cycles.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kernels.alpha_expansion import alpha_expansion, grid_energy

SCALE = 1000  # float costs -> integers for gco (and the same integers for everyone)


def _smooth(img, passes=3):
    out = img.astype(np.float64)
    for _ in range(passes):
        out = (
            np.roll(out, 1, 0) + np.roll(out, -1, 0) + np.roll(out, 1, 1) + np.roll(out, -1, 1) + out
        ) / 5.0
    return out


def _regions(height, width, n_regions, rng):
    seeds = np.column_stack([rng.uniform(0, height, n_regions), rng.uniform(0, width, n_regions)])
    yy, xx = np.mgrid[0:height, 0:width]
    d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return np.argmin(d2, axis=-1)


def stereo_problem(height, width, n_labels=128, seed=0):
    """Integer cost volume (H, W, L) and disparity truth of a synthetic stereo pair."""
    rng = np.random.default_rng(seed)
    region = _regions(height, width, 10, rng)
    yy, xx = np.mgrid[0:height, 0:width]
    truth = np.zeros((height, width))
    for r in range(10):
        base = rng.uniform(0.1, 0.9) * (n_labels - 1)
        gx, gy = rng.uniform(-0.05, 0.05, 2) * n_labels / max(width, height)
        plane = base + gx * (xx - width / 2) + gy * (yy - height / 2)
        truth[region == r] = plane[region == r]
    truth = np.clip(truth, 0, n_labels - 1)
    right = _smooth(rng.random((height, width)), 2)
    right = (right - right.min()) / (right.max() - right.min())
    src_x = xx - truth
    x0 = np.clip(np.floor(src_x).astype(int), 0, width - 1)
    x1 = np.clip(x0 + 1, 0, width - 1)
    f = src_x - np.floor(src_x)
    left = (1 - f) * right[yy, x0] + f * right[yy, x1] + rng.normal(0, 0.02, (height, width))
    cost = np.empty((height, width, n_labels), dtype=np.float32)
    for d in range(n_labels):
        shifted = np.full((height, width), np.nan)
        shifted[:, d:] = right[:, : width - d]
        diff = np.minimum(np.abs(left - shifted), 0.3)
        diff[np.isnan(diff)] = 0.3
        box = sum(np.roll(np.roll(diff, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
        cost[:, :, d] = box
    unary = np.rint(cost * SCALE).astype(np.int32)
    lab = np.arange(n_labels)
    pairwise = np.rint(0.15 * SCALE * np.minimum(np.abs(lab[:, None] - lab[None, :]), 4)).astype(np.int32)
    return unary, pairwise, np.rint(truth).astype(np.int32)


def potts_problem(height, width, n_labels=16, seed=1):
    rng = np.random.default_rng(seed)
    truth = _regions(height, width, 40, rng) % n_labels
    cost = rng.random((height, width, n_labels)) * 0.6
    cost[np.arange(height)[:, None], np.arange(width)[None, :], truth] *= 0.4
    unary = np.rint(cost * SCALE).astype(np.int32)
    pairwise = (np.rint(0.25 * SCALE) * (1 - np.eye(n_labels))).astype(np.int32)
    return unary, pairwise, truth


class _Clock:
    """Wall time and CPU time of this process (all three solvers are single-threaded)."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def run_ours(unary, pairwise, cycles, **kw):
    u = unary.astype(np.float32)
    v = pairwise.astype(np.float32)
    with _Clock() as clock:
        res = alpha_expansion(u, v, max_cycles=cycles, **kw)
    return clock, res.labels, res.n_cycles


def run_gco(unary, pairwise, cycles):
    import gco

    with _Clock() as clock:
        labels = gco.cut_grid_graph_simple(unary, pairwise, n_iter=cycles, algorithm="expansion")
    return clock, labels.reshape(unary.shape[:2])


def run_pymaxflow(unary, pairwise, cycles):
    from maxflow import fastmin

    u = unary.astype(np.float64)
    v = pairwise.astype(np.float64)
    with _Clock() as clock:
        labels = fastmin.aexpansion_grid(u, v, max_cycles=cycles)
    return clock, np.asarray(labels).astype(np.int32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360)")
    parser.add_argument("--cycles", type=int, default=5, help="max expansion cycles for every solver")
    parser.add_argument("--skip-pymaxflow", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    # warm-up: compile every kernel used below on a tiny problem (cached on disk afterwards)
    t0 = time.perf_counter()
    tiny_u, tiny_v, _ = potts_problem(6, 7, 3)
    run_ours(tiny_u, tiny_v, 2)
    grid_energy(np.zeros((6, 7), dtype=np.int32), tiny_u.astype(np.float32), tiny_v.astype(np.float32))
    print(f"numba warm-up (compile or cache load, excluded from timings): {time.perf_counter() - t0:.2f} s")

    problems = [
        ("stereo 128 labels, truncated linear (T=4, w=0.15)", stereo_problem(height, width)),
        ("potts 16 labels", potts_problem(height, width)),
    ]
    print(
        f"grid {width}x{height}, max {args.cycles} cycles, sequential label order, "
        f"costs scaled by {SCALE} and rounded to integers for all solvers"
    )
    print(
        "times: wall and CPU of this process (the machine may be shared; ratios use CPU time); "
        "energies all from our grid_energy"
    )
    for name, (unary, pairwise, truth) in problems:
        vf = pairwise.astype(np.float32)
        uf = unary.astype(np.float32)

        def energy(labels, uf=uf, vf=vf):
            return grid_energy(labels, uf, vf)

        print(f"\n== {name} ==")
        e_init = energy(np.argmin(unary, axis=-1))
        print(f"  initial energy (argmin unary): {e_init:.8g}")
        rows = []
        clock, labels, n_cyc = run_ours(unary, pairwise, args.cycles, tol=0.0)
        rows.append(("ours (tol=0)", clock, energy(labels), n_cyc, labels))
        clock, labels, n_cyc = run_ours(unary, pairwise, args.cycles)
        rows.append(("ours (default tol=1e-4)", clock, energy(labels), n_cyc, labels))
        clock, labels = run_gco(unary, pairwise, args.cycles)
        rows.append(("gco-wrapper", clock, energy(labels), None, labels))
        if not args.skip_pymaxflow:
            clock, labels = run_pymaxflow(unary, pairwise, args.cycles)
            rows.append(("PyMaxflow aexpansion_grid", clock, energy(labels), None, labels))
        print(
            f"  {'solver':26s} {'wall [s]':>9s} {'CPU [s]':>9s} {'energy':>14s} {'cycles':>6s} {'|l-truth|<=1':>13s}"
        )
        for label, clock, e, c, lab in rows:
            acc = float(np.mean(np.abs(lab.astype(int) - truth) <= 1))
            print(
                f"  {label:26s} {clock.wall:9.2f} {clock.cpu:9.2f} {e:14.8g} {'-' if c is None else c:>6} {acc:13.3f}"
            )
        for ours_label, ours_clock, ours_e, _, _ in rows[:2]:
            for label, clock, e, _, _ in rows[2:]:
                print(
                    f"  {ours_label} / {label}: CPU time ratio {ours_clock.cpu / clock.cpu:.3f} "
                    f"(wall {ours_clock.wall / clock.wall:.3f}), energy ratio {ours_e / e:.6f}"
                )


if __name__ == "__main__":
    main()
