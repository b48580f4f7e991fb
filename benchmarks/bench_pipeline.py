"""The whole ``make_cinemagraph`` pipeline on 640x360 city-at-night clips, stage by stage.

    python benchmarks/bench_pipeline.py                    # steady and moving clips
    python benchmarks/bench_pipeline.py --clip steady      # one of them
    python benchmarks/bench_pipeline.py --source my.mp4    # any clip instead of the synthetic ones
    python benchmarks/bench_pipeline.py --quick            # 320x180, 60 frames (a smoke run)

Clips (written to a temporary folder, never kept):

``steady``
    a tripod shot of a city at night: :func:`tasks.synthetic_city.make_city_night_clip` when that
    module is present (a textured facade with many small details, a billboard with photographs, a
    scrolling ticker, lights, walkers), else :func:`tasks.synthetic_displays.make_display_clip`
    with the same ingredients (facade texture, photograph and ticker displays, lit windows,
    posters, blinking lights, walkers, foliage).
``moving``
    the hand-held scene of :mod:`tasks.synthetic_scene` (textured planes, blinking lights, a
    scrolling texture) rendered at the same size; the run includes structure from motion and depth.

Each clip is run through :func:`flows.make_cinemagraph.run_make_cinemagraph`, as a user runs it
(Prefect flow, the default local Dask cluster, a Zarr store on disk, H.264 decoding and
encoding), with a window of ``--window`` frames around the reference.  The per-stage figures are
the flow's own (``result.json`` -> ``usage``, :mod:`flows.stage_meter`): wall time, CPU time of
the flow's process and its children (user + system over all threads, so CPU / wall near the
number of busy cores), and peak resident memory during the stage.  "total" is the wall time of
the whole call including Prefect's start-up; "stages" their sum.  The load average is printed
before and after: on a shared machine the seconds are inflated by other users' work.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# on a loaded machine the temporary Prefect server answers slowly; the default 60 s client timeout failed a run
os.environ.setdefault("PREFECT_API_REQUEST_TIMEOUT", "600")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def steady_clip(path: Path, height: int, width: int, n_frames: int) -> str:
    """Write the steady city-night clip; return a one-line description."""
    if importlib.util.find_spec("tasks.synthetic_city") is not None:
        from tasks.synthetic_city import make_city_night_clip

        make_city_night_clip(path, height=height, width=width, n_frames=n_frames, seed=0)
        return "tasks.synthetic_city.make_city_night_clip"
    from tasks.synthetic_displays import make_display_clip

    make_display_clip(
        path,
        height=height,
        width=width,
        n_frames=n_frames,
        fps=24.0,
        seed=3,
        n_displays=2,
        kinds=("slideshow", "ticker"),
        n_walkers=3,
        n_foliage=1,
        n_windows=6,
        n_posters=2,
        n_blinkers=3,
    )
    return "tasks.synthetic_displays.make_display_clip (facade, photo billboard, ticker, lights, walkers)"


def moving_clip(path: Path, height: int, width: int, n_frames: int) -> str:
    from tasks.synthetic_scene import render_synthetic_clip, write_mp4

    clip = render_synthetic_clip(n_frames=n_frames, height=height, width=width, seed=0)
    write_mp4(clip.frames, path, fps=24.0, crf=18)
    return "tasks.synthetic_scene.render_synthetic_clip (hand-held, known geometry)"


def run_clip(name: str, source: Path, out: Path, window: int) -> float:
    from flows.make_cinemagraph import run_make_cinemagraph
    from schemas.config import PipelineConfig

    config = PipelineConfig.model_validate(
        {"window": {"frames_before": window // 2, "frames_after": window - window // 2 - 1}}
    )
    t0 = time.perf_counter()
    result = run_make_cinemagraph(source, out, config, existing="overwrite")
    total = time.perf_counter() - t0
    stages = result.usage
    wall = sum(u.wall_s for u in stages.values())
    cpu = sum(u.cpu_s for u in stages.values())
    print(f"\n[{name}] {result.width}x{result.height}, {result.n_frames} frames, window {result.window}, "
          f"mode {result.alignment.mode if result.alignment else '?'}, outcome {result.outcome}, "
          f"animated {result.masks.animated_fraction:.1%}")
    print(f"  {'stage':<11}{'wall s':>9}{'cpu s':>9}{'cpu/wall':>9}{'peak MiB':>10}{'% wall':>8}")
    for stage, u in stages.items():
        ratio = u.cpu_s / u.wall_s if u.wall_s > 0 else 0.0
        print(f"  {stage:<11}{u.wall_s:9.2f}{u.cpu_s:9.2f}{ratio:9.2f}{u.peak_rss_mb:10.0f}"
              f"{100 * u.wall_s / wall:7.1f}%")
    print(f"  {'stages':<11}{wall:9.2f}{cpu:9.2f}{cpu / wall:9.2f}")
    print(f"  {'total':<11}{total:9.2f}   (flow call incl. Prefect start-up)")
    from tasks.store import stage_record

    render = (stage_record(result.store, "render") or {}).get("summary", {})
    if render.get("steps"):
        display = [r for r in render.get("regions", []) if r.get("kind") == "display"]
        print(f"  render: {len(render.get('regions', []))} regions ({len(display)} display, "
              f"{sum(r['area'] for r in display)} px); steps (s; in-paint, stabilise, rpca summed over tasks): "
              + ", ".join(f"{k} {v:.2f}" for k, v in render["steps"].items()))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", choices=("steady", "moving", "both"), default="both")
    ap.add_argument("--source", type=Path, help="run this video instead of the synthetic clips")
    ap.add_argument("--frames", type=int, default=120, help="length of the synthetic clips (frames)")
    ap.add_argument("--window", type=int, default=100, help="analysis window (frames)")
    ap.add_argument("--quick", action="store_true", help="320x180, 60 frames, 40-frame window")
    ap.add_argument("--keep", type=Path, help="write clips and outputs (stores included) here and keep them")
    args = ap.parse_args()
    height, width = (180, 320) if args.quick else (360, 640)
    n_frames, window = (60, 40) if args.quick else (args.frames, args.window)

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}  ({os.cpu_count()} cores)")
    totals = {}
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        tmp = Path(tmp) if args.keep is None else args.keep
        tmp.mkdir(parents=True, exist_ok=True)
        if args.source is not None:
            clips = [("source", args.source)]
        else:
            clips = []
            for name, make in (("steady", steady_clip), ("moving", moving_clip)):
                if args.clip in (name, "both"):
                    path = tmp / f"{name}.mp4"
                    t0 = time.perf_counter()
                    what = make(path, height, width, n_frames)
                    print(f"{name} clip: {what}, {width}x{height}x{n_frames} in {time.perf_counter() - t0:.1f} s")
                    clips.append((name, path))
        for name, path in clips:
            totals[name] = run_clip(name, path, tmp / f"out_{name}", window)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process over the run: {peak:.0f} MiB")
    print("totals: " + ", ".join(f"{k} {v:.1f} s" for k, v in totals.items()))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
