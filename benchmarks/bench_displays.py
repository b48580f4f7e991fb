"""Display stage before and after, side by side in one run: wall time, CPU time, segments and masks.

Run ``python benchmarks/bench_displays.py`` from the repository root (640x360,
100 frames) or with ``--quick`` (320x180, 50 frames).  ``--before REF`` names
the git commit whose display stage is the baseline (default ``0fcad5c``, the
commit before the tiled segmentation); its tree is exported with ``git
archive`` into a temporary directory.  Each measurement runs in its own
Python process (``PYTHONPATH`` = that tree or this one) on the same decoded
window, one after the other; kernels are compiled by an untimed call on a
small window first.  Wall and CPU time (user + system of the whole process,
all threads) cover :func:`tasks.displays.detect_displays` alone: segmentation,
features and classification, each with the model packaged in its own tree.

Windows: a synthetic street at night (:func:`tasks.synthetic_displays.make_display_clip`,
seed 20, displays, walkers, lit windows, blinkers, foliage) and the first
frames of ``vtest.avi`` (opencv-doc; people walking), each resized to the
benchmark size and fully visible.

Printed per window: wall and CPU seconds before and after with their ratios,
segments per kept level, display pixels, and the IoU of the two display
masks.  Note the load average printed first: on a shared machine read the
ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def windows(width: int, height: int, n_frames: int) -> dict[str, np.ndarray]:
    """The benchmark's decoded windows, (T, H, W, 3) uint8 RGB each."""
    import cv2

    from tasks.synthetic_displays import make_display_clip

    out = {
        "synthetic_street": make_display_clip(
            None, height=height, width=width, n_frames=n_frames, seed=20, n_walkers=4, n_blinkers=3
        ).frames
    }
    if VTEST.is_file():
        cap = cv2.VideoCapture(str(VTEST))
        frames = []
        while len(frames) < n_frames:
            ok, frame = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
        cap.release()
        out["vtest"] = np.stack(frames)
    return out


def worker(video_path: str, out_path: str) -> None:
    """Time ``detect_displays`` on one saved window with the code on ``sys.path``; write a JSON + mask."""
    from schemas.displays import DisplayParams
    from tasks.displays import detect_displays, load_display_model

    video = np.load(video_path)
    visible = np.ones(video.shape[:3], bool)
    params = DisplayParams()
    model, _, _ = load_display_model(params)
    detect_displays(video[:8, :48, :48].copy(), visible[:8, :48, :48].copy(), model, params)  # compile
    t0, c0 = time.perf_counter(), _cpu()
    segments, _, mask, n_positive = detect_displays(video, visible, model, params)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    np.save(out_path + ".npy", mask)
    Path(out_path).write_text(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "segments": [int(s.max()) + 1 for s in segments],
                "display_pixels": int(mask.sum()),
                "positive": int(n_positive),
            }
        )
    )


def _run(code: Path, video_path: Path, out_path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(video_path), str(out_path)],
        check=True,
        env=env,
        cwd=str(code),
    )
    result = json.loads(out_path.read_text())
    result["mask"] = np.load(str(out_path) + ".npy")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320x180, 50 frames")
    parser.add_argument("--before", default="0fcad5c", help="git commit of the baseline display stage")
    parser.add_argument("--worker", nargs=2, metavar=("VIDEO", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    width, height, n_frames = (320, 180, 50) if args.quick else (640, 360, 100)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {os.cpu_count()} CPUs")
    print(f"window {width}x{height}x{n_frames}; before = {args.before}, after = working tree {ROOT}")
    with tempfile.TemporaryDirectory(prefix="bench-displays-") as tmp:
        tmp = Path(tmp)
        before = tmp / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        header = f"{'window':18s} {'':6s} {'wall s':>8s} {'CPU s':>8s} {'segments per level':>22s} {'display px':>10s}"
        print(header)
        for name, video in windows(width, height, n_frames).items():
            video_path = tmp / f"{name}.npy"
            np.save(video_path, video)
            old = _run(before, video_path, tmp / f"{name}-before.json")
            new = _run(ROOT, video_path, tmp / f"{name}-after.json")
            for label, r in (("before", old), ("after", new)):
                print(
                    f"{name:18s} {label:6s} {r['wall']:8.2f} {r['cpu']:8.2f} "
                    f"{str(r['segments']):>22s} {r['display_pixels']:10d}"
                )
            union = (old["mask"] | new["mask"]).sum()
            iou = (old["mask"] & new["mask"]).sum() / union if union else 1.0
            print(
                f"{name:18s} ratio  {old['wall'] / new['wall']:8.1f}x {old['cpu'] / new['cpu']:7.1f}x"
                f"   display-mask IoU before/after {iou:.3f}"
            )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end")


if __name__ == "__main__":
    main()
