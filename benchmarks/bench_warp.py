"""Moving-camera stage end to end on a synthetic clip: time of each sub-stage and peak memory.

    python benchmarks/bench_warp.py            # 640 x 360, 120 frames, paper parameters
    python benchmarks/bench_warp.py --quick    # 320 x 180, 40 frames, 64 labels

Sub-stages: SfM (pycolmap), plane-sweep cost volume (128 labels, up to 50 + 50
neighbours), graph cut (our alpha-expansion; ``--solver maxflow`` times
PyMaxflow's instead), z-buffer warp of every frame into the reference view.
Quality figures against the synthetic truth are printed alongside.  Peak
memory: ``ru_maxrss`` of the process (includes Numba's allocations) and the
tracemalloc peak of Python/numpy allocations during the measured stages.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.warp import warp_to_reference  # noqa: E402
from tasks.depth import depth_range_from_points, reference_depth, relative_pose, select_neighbours  # noqa: E402
from tasks.sfm import run_sfm  # noqa: E402
from tasks.synthetic_scene import camera_centres, render_synthetic_clip  # noqa: E402


def _similarity_scale(src, dst):
    a, b = src - src.mean(0), dst - dst.mean(0)
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    return np.trace(np.diag(S) @ D) / (a**2).sum(1).mean()


def _maxflow_solver(unary, pairwise, *, pairwise_weight, truncation, max_cycles=5):
    import maxflow

    labels = np.arange(unary.shape[2])
    binary = pairwise_weight * np.minimum(np.abs(labels[:, None] - labels[None, :]), truncation).astype(np.float64)
    result = maxflow.fastmin.aexpansion_grid(unary.astype(np.float64), binary, max_cycles=max_cycles)
    energy = maxflow.fastmin.energy_of_grid_labeling(unary.astype(np.float64), binary, result)
    return SimpleNamespace(labels=result.astype(np.int32), energy=float(energy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320x180, 40 frames, 64 labels")
    parser.add_argument("--solver", choices=["ours", "maxflow"], default="ours")
    parser.add_argument("--max-cycles", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        width, height, n_frames, n_labels, sfm_step = 320, 180, 40, 64, 2
    else:
        width, height, n_frames, n_labels, sfm_step = 640, 360, 120, 128, 3

    t0 = time.perf_counter()
    clip = render_synthetic_clip(n_frames=n_frames, height=height, width=width, path_length=1.2, seed=0)
    ref = clip.reference_index
    print(f"clip: {width}x{height}, {n_frames} frames, reference {ref}, "
          f"rendered in {time.perf_counter() - t0:.1f} s (setup, not measured below)")

    tracemalloc.start()
    times = {}
    cpu = {}

    t0, c0 = time.perf_counter(), time.process_time()
    sfm = run_sfm(clip.frames, step=sfm_step, always_include=[ref], max_num_features=4096)
    times["sfm"], cpu["sfm"] = time.perf_counter() - t0, time.process_time() - c0
    scale = _similarity_scale(camera_centres(sfm.cam_from_world), camera_centres(clip.cam_from_world))
    near, far = depth_range_from_points(sfm.points3d[sfm.points_seen_in(ref)], sfm.cam_from_world[ref])
    neighbours = select_neighbours(n_frames, ref, 50)
    print(f"sfm: {sfm.registered.sum()} of {n_frames} frames registered (step {sfm_step}), "
          f"{len(sfm.points3d)} points, focal {sfm.K[0, 0]:.1f} (true {clip.K[0, 0]:.1f}), "
          f"depth range {near * scale:.2f}-{far * scale:.2f} m (true {clip.depth[ref].min():.2f}-"
          f"{clip.depth[ref].max():.2f})")

    # Cost volume and graph cut timed separately: run the sweep inside reference_depth with a
    # solver wrapper that records its own time.
    solver = _maxflow_solver if args.solver == "maxflow" else None
    solver_time = {}

    def timed_solver(unary, pairwise, **kwargs):
        from kernels.alpha_expansion import alpha_expansion

        start, cstart = time.perf_counter(), time.process_time()
        fn = solver or alpha_expansion
        result = fn(unary, pairwise, max_cycles=args.max_cycles, **kwargs)
        solver_time["t"] = time.perf_counter() - start
        solver_time["c"] = time.process_time() - cstart
        return result

    t0, c0 = time.perf_counter(), time.process_time()
    depth = reference_depth(
        clip.frames, sfm.K, sfm.cam_from_world, ref, neighbours, depth_range=(near, far),
        n_labels=n_labels, solver=timed_solver,
    )
    total, ctotal = time.perf_counter() - t0, time.process_time() - c0
    times["graph cut"], cpu["graph cut"] = solver_time["t"], solver_time["c"]
    times["cost volume"], cpu["cost volume"] = total - solver_time["t"], ctotal - solver_time["c"]
    truth = clip.depth[ref]
    rel = np.abs(depth.depth * scale - truth) / truth
    print(f"depth: {len(neighbours)} neighbours, {n_labels} labels, solver "
          f"{'PyMaxflow (fallback)' if solver else 'kernels.alpha_expansion'} (max_cycles {args.max_cycles}); "
          f"median relative error {np.median(rel):.4f}, fraction > 5 %: {(rel > 0.05).mean():.3f}")

    t0, c0 = time.perf_counter(), time.process_time()
    warped = np.empty_like(clip.frames)
    visible = np.empty(clip.frames.shape[:3], bool)
    for k in range(n_frames):
        pose = relative_pose(sfm.cam_from_world[ref], sfm.cam_from_world[k])
        warped[k], visible[k] = warp_to_reference(clip.frames[k], depth.depth, sfm.K, pose)
    times["warping"], cpu["warping"] = time.perf_counter() - t0, time.process_time() - c0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    static = clip.static_mask
    errs = []
    for k in range(n_frames):
        m = visible[k] & static
        if k != ref and m.any():
            errs.append(np.mean((warped[k][m].astype(float) - clip.frames[ref][m].astype(float)) ** 2))
    psnr = 10 * np.log10(255.0**2 / np.median(errs))
    print(f"warp: {n_frames} frames; mean visible fraction {visible.mean():.3f}; "
          f"median PSNR of static visible pixels vs reference {psnr:.1f} dB")

    print("stage          wall s    cpu s   (cpu: all threads of this process; the machine is shared)")
    for name in ("sfm", "cost volume", "graph cut", "warping"):
        print(f"{name:<14} {times[name]:8.2f} {cpu[name]:8.2f}")
    print(f"{'total':<14} {sum(times.values()):8.2f} {sum(cpu.values()):8.2f}")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak memory: maxrss {maxrss:.0f} MiB (whole process); tracemalloc peak {traced_peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
