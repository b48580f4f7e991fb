"""Corpus-scale figures of process_corpus, measured side by side in one run.

Run: python benchmarks/bench_corpus.py [--quick] [--skip-memory]

Prints:
  1. throughput of process_corpus on the same manifest with a LocalCluster of 1 and of 2
     worker processes of one thread each (OpenCV, BLAS, OpenMP and Numba pools pinned to one
     thread per worker): items per minute, the ratio, CPU seconds of the whole process tree, and
     the load average before and after;
  2. Prefect's own overhead per item: a flow with the same shape (one subflow per item, six
     trivial tasks) against the real items' mean time;
  3. peak memory of a make_cinemagraph run on a long synthetic clip (2 minutes of 1280x720 at
     24 fps, full resolution) against the clip's raw size; the run is a separate process and
     its peak resident set (ru_maxrss) is what a worker would need.
Prefect runs against one temporary local server (started once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_manifest(folder: Path, n: int, frames: int) -> Path:
    from tasks.synthetic import make_blinking_clip

    rows = []
    for k in range(n):
        make_blinking_clip(folder / f"clip{k}.mp4", seed=k, n_frames=frames)
        rows.append({"source": f"clip{k}.mp4"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def corpus_run(manifest: Path, out: Path, workers: int) -> tuple[float, object, float]:
    from flows.process_corpus import run_process_corpus
    from schemas.config import ExecutionParams, PipelineConfig
    from schemas.corpus import CorpusConfig, ShotParams

    config = CorpusConfig(
        pipeline=PipelineConfig(
            execution=ExecutionParams(n_workers=workers, threads_per_worker=1, processes=True)
        ),
        shots=ShotParams(detect=False),
        max_in_flight=2,
    )
    t0, c0 = time.perf_counter(), cpu_seconds()
    state = run_process_corpus(manifest, out, config)
    return time.perf_counter() - t0, state.result(raise_on_failure=False), cpu_seconds() - c0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its (finished and live) children, the
    Prefect server included."""
    import resource

    import psutil

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def trivial_overhead(n_items: int) -> float:
    """Wall time per item of a corpus-shaped flow whose items do nothing."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def noop(k: int) -> int:
        return k

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def item(k: int) -> int:
        for _ in range(6):
            noop.submit(k).result()
        return k

    @task
    def run_item(k: int) -> int:
        return item(k)

    @flow
    def corpus(n: int) -> list[int]:
        return [f.result() for f in [run_item.submit(k) for k in range(n)]]

    corpus(1)  # warm
    t0 = time.perf_counter()
    corpus(n_items)
    return (time.perf_counter() - t0) / n_items


MEMORY_CHILD = r"""
import json, resource, sys, time
from flows.make_cinemagraph import run_make_cinemagraph
from schemas.config import PipelineConfig
cfg = PipelineConfig.model_validate({"ingest": {"max_long_side": None}, "render": {"write_gif": False}})
t0 = time.perf_counter()
r = run_make_cinemagraph(sys.argv[1], sys.argv[2], cfg)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "n_frames": r.n_frames, "width": r.width, "height": r.height, "timings": r.timings}))
"""


def long_clip_memory(folder: Path, seconds: float, height: int, width: int) -> dict:

    fps = 24.0
    n = int(seconds * fps)
    clip = folder / "long.mp4"
    t0 = time.perf_counter()
    # render in pieces so that making the clip does not itself need the raw size in memory
    import av

    from tasks.synthetic import default_lights, textured_background

    rng = np.random.default_rng(0)
    background = textured_background(height, width, rng)
    lights = default_lights(height, width)
    masks = [light.mask(height, width) for light in lights]
    with av.open(str(clip), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "ultrafast"}
        for t in range(n):
            img = background.copy()
            for light, m in zip(lights, masks, strict=True):
                img[m] = np.asarray(light.color, np.float32) * light.brightness(t)
            frame = np.clip(img + rng.normal(0, 2, size=img.shape).astype(np.float32), 0, 255).astype(np.uint8)
            for p in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(p)
        for p in stream.encode():
            container.mux(p)
    made = time.perf_counter() - t0
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(clip), str(folder / "long-out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["raw_bytes"] = n * height * width * 3
    figures["clip_seconds_to_make"] = made
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter clips and a short 'long' clip")
    ap.add_argument("--skip-memory", action="store_true", help="skip the long-clip memory figure")
    args = ap.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=90):
        tmp = Path(tmp)
        n_items, frames = (2, 40) if args.quick else (6, 72)
        manifest = make_manifest(tmp, n_items, frames)
        corpus_run(manifest, tmp / "warm", 1)  # compile kernels, warm caches
        load0 = os.getloadavg()
        t1, r1, c1 = corpus_run(manifest, tmp / "w1", 1)
        t2, r2, c2 = corpus_run(manifest, tmp / "w2", 2)
        load1 = os.getloadavg()
        assert r1.succeeded == r2.succeeded == n_items, (r1, r2)
        print(f"process_corpus, {n_items} items of 320x180x{frames}, max_in_flight 2, worker processes of 1 thread:")
        print(f"  1 worker   {t1:7.1f} s wall  {c1:7.1f} s CPU   {60 * n_items / t1:6.2f} items/min")
        print(f"  2 workers  {t2:7.1f} s wall  {c2:7.1f} s CPU   {60 * n_items / t2:6.2f} items/min")
        print(f"  throughput ratio 2/1 workers: {t1 / t2:.2f} x  (machine: {os.cpu_count()} cores)")
        print("  load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(*load0, *load1))
        per_item = float(np.mean([o.seconds for o in r1.items]))
        overhead = trivial_overhead(n_items)
        print("Prefect overhead per item (subflow + 6 trivial tasks, same shape):")
        print(f"  trivial item {overhead:6.2f} s   real item {per_item:6.2f} s   overhead share {overhead / per_item:5.1%}")
        if not args.skip_memory:
            secs, (h, w) = (10.0, (360, 640)) if args.quick else (120.0, (720, 1280))
            fig = long_clip_memory(tmp, secs, h, w)
            print(f"long clip {w}x{h}, {fig['n_frames']} frames ({secs:.0f} s at 24 fps), full resolution:")
            print(f"  raw size          {fig['raw_bytes'] / 2**30:7.2f} GiB")
            print(f"  peak RSS of run   {fig['peak_rss'] / 2**30:7.2f} GiB   ({fig['peak_rss'] / fig['raw_bytes']:.1%} of raw)")
            print(f"  run time          {fig['seconds']:7.1f} s   stages: "
                  + ", ".join(f"{k} {v:.1f}s" for k, v in fig["timings"].items()))



if __name__ == "__main__":
    main()
