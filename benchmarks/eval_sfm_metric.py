"""Metric accuracy of structure from motion on synthetic hand-held scenes with known geometry.

Prints, for scenes with 2, 1 and 0 cards in front of the slanted wall (0 = one plane) and
several true focal lengths, the relative focal error, the largest camera-centre error (after
the best similarity, in % of the path length) and the largest rotation error (degrees).

    PYTHONPATH=. python benchmarks/eval_sfm_metric.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tasks.sfm import run_sfm
from tasks.synthetic_scene import camera_centres, render_synthetic_clip
from tests.tasks.test_sfm import rotation_error_degrees, similarity_from_poses


def errors(clip, sfm) -> tuple[float, float, float]:
    """(relative focal error, centre error in % of the path, rotation error in degrees)."""
    focal = abs(sfm.K[0, 0] / clip.K[0, 0] - 1)
    s, Q, u = similarity_from_poses(sfm.cam_from_world, clip.cam_from_world)
    centres = s * camera_centres(sfm.cam_from_world) @ Q.T + u
    centre = np.linalg.norm(centres - camera_centres(clip.cam_from_world), axis=1).max() / clip.path_length
    rot = rotation_error_degrees(sfm.cam_from_world[:, :, :3] @ Q.T, clip.cam_from_world[:, :, :3]).max()
    return focal, 100 * centre, float(rot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one focal length, smaller frames")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--prior-fov", type=float, default=60.0,
                        help="field of view of the focal COLMAP starts from (degrees); 0 = COLMAP's default start")
    args = parser.parse_args()
    size = (120, 160) if args.quick else (240, 320)
    factors = (0.85,) if args.quick else (0.6, 0.85, 1.2)
    print(f"{'cards':>5} {'f/W':>5} {'focal err %':>11} {'centre err %':>12} {'rot err deg':>11} {'s':>6}  "
          "focal profile (error ratio at 0.85 f, 1.15 f)")
    for cards in (2, 1, 0):
        for factor in factors:
            clip = render_synthetic_clip(n_frames=args.frames, height=size[0], width=size[1], focal_factor=factor,
                                         cards=cards, seed=0)
            t0 = time.perf_counter()
            sfm = run_sfm(clip.frames, step=2, always_include=(clip.reference_index,), max_num_features=2048,
                          focal_prior_fov_degrees=args.prior_fov or None)
            seconds = time.perf_counter() - t0
            focal, centre, rot = errors(clip, sfm)
            profile = " ".join(f"{v:.4f}" for v in sfm.focal_profile.values())
            print(f"{cards:>5} {factor:>5.2f} {100 * focal:>11.2f} {centre:>12.2f} {rot:>11.3f} {seconds:>6.1f}  "
                  f"{profile}", flush=True)


if __name__ == "__main__":
    main()
