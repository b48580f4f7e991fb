"""3D cinemagraph: time per output frame at 640 x 360, splat points per second, share of the moving pipeline.

    python benchmarks/bench_render3d.py                 # 640 x 360, layers from 12 frames, 48 output frames
    python benchmarks/bench_render3d.py --quick         # 320 x 180, 16 output frames
    python benchmarks/bench_render3d.py --pipeline      # ... and one make_cinemagraph run with render3d enabled

Part 1 uses the synthetic hand-held clip's true geometry (depth, poses): the layered depth
image is built from it and drawn along a ``circle`` path, frame after frame in this process
(CPU and wall time).  The splat kernel is also timed alone (points per second).

Part 2 (``--pipeline``) runs the whole moving-camera flow with ``render3d.enabled`` on a
synthetic clip and prints every stage's wall time from ``result.json``: the 3D render's share
is measured side by side with the rest of the same run.  Note the load average: the machine
may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# before anything imports prefect: a quiet temporary server with time to start on a busy machine
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from kernels.splat import splat_points  # noqa: E402
from tasks.render3d import build_layers, named_path, render_frame  # noqa: E402
from tasks.render3d.layers import pick_back_frames  # noqa: E402
from tasks.synthetic_scene import render_synthetic_clip, write_mp4  # noqa: E402


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def bench_render(width: int, height: int, n_frames: int, n_out: int) -> None:
    clip = render_synthetic_clip(n_frames=n_frames, height=height, width=width, blink_periods=(8.0, 6.0),
                                 bright_lights=True, seed=0)
    ref = clip.reference_index
    animated = ~clip.static_mask
    # warm-up: compile the kernels outside the timings
    small = build_layers(clip.frames[ref][:16, :16], clip.depth[ref][:16, :16], clip.K, clip.cam_from_world, ref,
                         clip.frames[:, :16, :16], animated[:16, :16], back_frames=pick_back_frames(n_frames, ref, 1))
    render_frame(small, None, clip.K, clip.cam_from_world[ref], (16, 16))

    start = _clock()
    layers = build_layers(clip.frames[ref], clip.depth[ref], clip.K, clip.cam_from_world, ref, clip.frames, animated,
                          back_frames=pick_back_frames(n_frames, ref, 12))
    wall, cpu = _since(start)
    print(f"layers: {layers.points.shape[0]} points ({layers.n_back} behind edges / beyond the border) "
          f"in {wall:.2f} s wall, {cpu:.2f} s CPU")

    median = float(np.median(clip.depth[ref]))
    poses = named_path("circle", clip.cam_from_world[ref], median, 0.02, n_out)
    loop = np.repeat(clip.frames[ref][None], 4, axis=0)
    start = _clock()
    holes = [render_frame(layers, loop[k % 4], clip.K, poses[k], (height, width))[1].mean() for k in range(n_out)]
    wall, cpu = _since(start)
    print(f"render: {n_out} frames at {width}x{height}: {1000 * wall / n_out:.1f} ms wall, "
          f"{1000 * cpu / n_out:.1f} ms CPU per output frame (splat + pin-holes + in-painting); "
          f"in-painted up to {100 * max(holes):.2f} %")

    colours = layers.colours
    repeats = 5
    start = _clock()
    for k in range(repeats):
        splat_points(layers.points, colours, layers.radii, clip.K, poses[k % n_out], (height, width))
    wall, cpu = _since(start)
    n = layers.points.shape[0] * repeats
    print(f"splat kernel: {n / wall / 1e6:.2f} M points/s wall ({n / cpu / 1e6:.2f} M points/s CPU)")


def bench_pipeline(width: int, height: int, n_frames: int) -> None:
    from flows.make_cinemagraph import run_make_cinemagraph
    from schemas.config import PipelineConfig

    clip = render_synthetic_clip(n_frames=n_frames, height=height, width=width, blink_periods=(8.0, 6.0),
                                 bright_lights=True, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        source = write_mp4(clip.frames, Path(tmp) / "handheld.mp4", lossless=True)
        config = PipelineConfig()
        config.render3d.enabled = True
        start = _clock()
        result = run_make_cinemagraph(source, Path(tmp) / "out", config)
        wall, cpu = _since(start)
    timings = result.timings
    others = sum(v for k, v in timings.items() if k != "render3d")
    r3 = result.render3d
    print(f"pipeline {width}x{height}, {n_frames} frames (mode {result.alignment.mode}): {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU of this process")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"render3d {timings.get('render3d', 0):.1f} s for {r3.frames} frames ({r3.n_points} points) = "
          f"{100 * timings.get('render3d', 0) / others:.1f} % of the other stages ({others:.1f} s); "
          f"in-painted up to {100 * r3.max_inpainted_fraction:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320x180, 16 output frames")
    parser.add_argument("--pipeline", action="store_true", help="also one make_cinemagraph run with render3d")
    parser.add_argument("--skip-render", action="store_true", help="only the pipeline run")
    parser.add_argument("--pipeline-size", default="320x180", help="WxH of the pipeline run's clip")
    parser.add_argument("--pipeline-frames", type=int, default=48)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if args.skip_render:
        pass
    elif args.quick:
        bench_render(320, 180, 24, 16)
    else:
        bench_render(640, 360, 24, 48)
    if args.pipeline:
        w, h = (int(v) for v in args.pipeline_size.split("x"))
        bench_pipeline(w, h, args.pipeline_frames)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
