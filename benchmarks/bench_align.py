"""The alignment stages as the flow runs them, on a synthetic hand-held clip: time, memory, accuracy.

    python benchmarks/bench_align.py            # 640 x 360, 120 frames, default (paper) parameters
    python benchmarks/bench_align.py --quick    # 320 x 180, 60 frames

The clip is encoded losslessly, ingested into a real Zarr store, and the stage
functions of ``tasks.align`` run one after the other (motion -> sfm -> depth ->
warp) with dask's threaded scheduler on this machine's cores, exactly as inside
``make_cinemagraph`` minus Prefect.  The depth stage reports its cost-volume
(parallel label slabs) and graph-cut parts separately.  Peak memory is the
process's ``ru_maxrss``; figures against the synthetic truth are printed so a
fast but wrong run cannot pass unnoticed.  ``benchmarks/bench_warp.py`` times
the same building blocks called directly.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import names as N  # noqa: E402
from schemas.config import AlignParams, IngestParams, WindowParams  # noqa: E402
from tasks.align import classify_motion, compute_reference_depth, structure_from_motion, warp_window  # noqa: E402
from tasks.ingest import ingest  # noqa: E402
from tasks.store import open_store  # noqa: E402
from tasks.synthetic_scene import camera_centres, render_synthetic_clip, write_mp4  # noqa: E402
from tasks.window import select_window  # noqa: E402


def _similarity(est, true):
    m = np.einsum("nji,njk->ik", true[:, :, :3], est[:, :, :3])
    U, _, Vt = np.linalg.svd(m)
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    Q = U @ D @ Vt
    src, dst = camera_centres(est) @ Q.T, camera_centres(true)
    a, b = src - src.mean(0), dst - dst.mean(0)
    s = float((a * b).sum() / (a * a).sum())
    return s, Q, dst.mean(0) - s * src.mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320x180, 60 frames")
    args = parser.parse_args()
    width, height, n_frames = (320, 180, 60) if args.quick else (640, 360, 120)
    clip = render_synthetic_clip(n_frames=n_frames, height=height, width=width, path_length=1.2,
                                 bright_lights=True, seed=0)
    params = AlignParams()
    print(f"clip {width}x{height}, {n_frames} frames; window 50 + 50 around frame {clip.reference_index}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        source = write_mp4(clip.frames, Path(tmp) / "clip.mp4", lossless=True)
        store = str(Path(tmp) / "store.zarr")
        ingest(source, store, IngestParams(max_long_side=None))
        window = select_window(store, WindowParams())
        start = window.window_start
        ref = window.reference_index - start
        rows = []

        def timed(name, fn, *a):
            t0, c0 = time.perf_counter(), time.process_time()
            value = fn(*a)
            rows.append((name, time.perf_counter() - t0, time.process_time() - c0))
            return value

        motion = timed("motion (KLT + homographies)", classify_motion, store, params)
        sfm = timed("sfm (pycolmap)", structure_from_motion, store, params)
        depth = timed("depth (cost volume + graph cut)", compute_reference_depth, store, params)
        warp = timed("warp (z-buffer)", warp_window, store, params, "moving", 64)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        ds = open_store(store)
        poses = ds[N.CAM_FROM_WORLD].values
        true_poses = clip.cam_from_world[start : window.window_stop]
        s, Q, u = _similarity(poses, true_poses)
        centres = camera_centres(poses) @ Q.T * s + u
        true_centres = camera_centres(true_poses)
        path = np.linalg.norm(np.diff(true_centres, axis=0), axis=1).sum()
        truth = clip.depth[clip.reference_index]
        rel = np.abs(ds[N.DEPTH].values * s - truth) / truth
        warped, visible = ds[N.WARPED].values, ds[N.VISIBLE].values
        static = clip.static_mask
        mse = [((warped[t][visible[t] & static].astype(float) - clip.frames[clip.reference_index][visible[t] & static])
                ** 2).mean() for t in range(warped.shape[0]) if t != ref]
        print(f"motion: mode {motion.mode} ({motion.reason})")
        print(f"sfm: {sfm.frames_registered} of {sfm.frames_reconstructed} frames registered, {sfm.n_points} points, "
              f"reprojection {sfm.mean_reprojection_error:.2f} px; centre error {100 * np.linalg.norm(centres - true_centres, axis=1).max() / path:.2f} % of the path")
        print(f"depth: {depth.n_labels} labels, {depth.n_neighbours} neighbours; median relative error "
              f"{np.median(rel):.4f}; energy {depth.energy:.1f}")
        print(f"warp: visible {100 * warp.visible_fraction:.1f} % of samples; PSNR of static visible pixels vs the "
              f"reference {10 * np.log10(255**2 / np.mean(mse)):.1f} dB")
        print(f"{'stage':<34}{'wall s':>9}{'cpu s':>9}")
        for name, wall, cpu in rows:
            print(f"{name:<34}{wall:9.2f}{cpu:9.2f}")
            if name.startswith("depth"):
                print(f"{'  of which cost volume':<34}{depth.seconds_cost_volume:9.2f}")
                print(f"{'  of which graph cut':<34}{depth.seconds_graph_cut:9.2f}")
        print(f"{'total':<34}{sum(r[1] for r in rows):9.2f}{sum(r[2] for r in rows):9.2f}")
        print(f"peak memory (ru_maxrss of the process): {maxrss:.0f} MiB; raw window "
              f"{warped.nbytes / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
