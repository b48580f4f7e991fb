"""Corpus-scale figures of process_corpus, measured side by side in one run.

Run: python benchmarks/bench_corpus.py [--quick] [--skip-memory] [--rounds N] [--bind on|off|both] [--per-worker N]
                                       [--clips blinking|handheld] [--items N] [--frames N]
                                       [--server-defaults project|prefect]

Prints:
  1. throughput of process_corpus on the same manifest with a LocalCluster of 1 and of 2
     worker processes of one thread each (OpenCV, BLAS, OpenMP and Numba pools pinned to one
     thread per worker) and ``--per-worker`` items in flight per worker (default 2, so that
     one item's Prefect hand-offs between stages are filled by another item's work on every
     worker alike), run alternately 1, 2, 2, 1, 1, 2, ... (``--rounds`` pairs; the order flips
     every round) so that a shared machine's changing load hits both alike and a steady drift of
     its speed cancels over each two rounds.  Per run: wall and CPU seconds of the whole process
     tree, the load average before and after, the CPU split between the flow's process (Prefect
     coordination and the Dask scheduler: one GIL), the Prefect server and each worker, how busy
     each worker was over the run (tenths of the run), and the CPU-based ideal wall time
     ``max(total CPU / cores, flow-process CPU, busiest worker's CPU)`` against the measured one.
     Per item (from the Prefect API): when its subflow started and ended, and how much of it was
     not spent inside its stage tasks; per run the throughput while items run (first item's
     start to last item's end), printed beside the end-to-end figure, with the fixed cost
     before and after it (cluster start, planning; closing), and how many of the flow process's
     requests the Prefect server answered 503 ("database is locked": the client waits 2 s, then 4,
     8, ... s).  ``--bind both`` also runs every configuration with
     ``CorpusConfig.bind_items_to_workers`` off (each stage's tiles spread over the cluster);
  2. Prefect's own overhead per item: a flow with the same shape (one subflow per item, six
     trivial tasks) against the real items' mean time;
  3. peak memory of a make_cinemagraph run on a long synthetic clip (2 minutes of 1280x720 at
     24 fps, full resolution) against the clip's raw size; the run is a separate process and
     its peak resident set (ru_maxrss) is what a worker would need.
Prefect runs against one temporary local server (started once), with a fresh Prefect home
(``PREFECT_HOME``, a temporary folder unless you set one): worker processes do not see the test
harness's server and open the home's database themselves, and a grown ``~/.prefect/prefect.db``
(102 MB after a day of test runs here) added about 2 s before every timed run's first item.
The server is the CLI's (:mod:`flows.local_server`'s write batching, :mod:`flows.prefect_server`'s
``IMMEDIATE`` SQLite transactions) unless ``--server-defaults prefect``: then Prefect's test harness
starts Prefect's own, with Prefect's settings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

if not os.environ.get("PREFECT_HOME"):  # before Prefect is imported, here and in the worker processes
    _PREFECT_HOME = tempfile.TemporaryDirectory(prefix="bench-corpus-prefect-")
    os.environ["PREFECT_HOME"] = _PREFECT_HOME.name
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _RetryCounter(logging.Handler):
    """Counts the Prefect client's requests answered 503 (the server's "retry later"; the client
    then waits 2 s, 4 s, ... before it tries again)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if " 503 " in record.getMessage():
            self.count += 1


def count_server_retries() -> _RetryCounter:
    """Attach a :class:`_RetryCounter` to httpx's request log in this (the flow's) process."""
    counter = _RetryCounter()
    log = logging.getLogger("httpx")
    log.setLevel(logging.INFO)
    log.addHandler(counter)
    log.propagate = False  # the counter only: no request lines on the console
    return counter


def make_manifest(folder: Path, n: int, frames: int, kind: str = "blinking") -> Path:
    """``n`` clips of 320x180x``frames`` and their manifest: steady blinking lights
    (:func:`tasks.synthetic.make_blinking_clip`) or hand-held shots of a scene with known geometry
    (:func:`tasks.synthetic_scene.render_synthetic_clip`: the sfm and depth stages run)."""
    from tasks.synthetic import make_blinking_clip
    from tasks.synthetic_scene import render_synthetic_clip, write_mp4

    rows = []
    for k in range(n):
        if kind == "handheld":
            clip = render_synthetic_clip(n_frames=frames, height=180, width=320, seed=k)
            write_mp4(clip.frames, folder / f"clip{k}.mp4", fps=24.0, crf=18)
        else:
            make_blinking_clip(folder / f"clip{k}.mp4", seed=k, n_frames=frames)
        rows.append({"source": f"clip{k}.mp4"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _role(proc, me: int) -> str:
    """What a process of this benchmark's tree is: the flow's own, the Prefect server, a Dask worker."""
    import psutil

    if proc.pid == me:
        return "flow"
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "uvicorn" in cmd:
        return "server"
    if "forkserver" in cmd and proc.ppid() == me:
        return "forkserver"  # imports the project once; the workers fork from it
    if "spawn_main" in cmd or "forkserver" in cmd:
        return "worker"
    return "other"


@dataclass
class Sampler:
    """Samples the CPU seconds of every process of this tree every ``period`` seconds (a thread)."""

    period: float = 0.5
    samples: list[tuple[float, dict[int, tuple[str, float]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.own_cpu = 0.0  # this thread's CPU seconds: the benchmark's, not the flow's
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]  # forkserver-made workers are grandchildren
        row = {}
        for p in procs:
            try:
                t = p.cpu_times()
                if p.pid not in self._roles:  # a dying process has no command line any more
                    self._roles[p.pid] = _role(p, me.pid)
                row[p.pid] = (self._roles[p.pid], t.user + t.system)
            except psutil.Error:
                pass
        self.samples.append((time.perf_counter(), row))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            t0 = time.thread_time()
            self._sample()
            self.own_cpu += time.thread_time() - t0

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def by_role(self) -> dict[str, float]:
        """CPU seconds of the run per role (workers separately, as ``worker <pid>``)."""
        first, last = self.samples[0][1], {}
        for _, row in self.samples:  # a process that ended keeps its last sample
            last.update(row)
        out: dict[str, float] = {}
        for pid, (role, cpu) in last.items():
            name = f"worker {pid}" if role == "worker" else role
            out[name] = out.get(name, 0.0) + cpu - first.get(pid, (role, 0.0))[1]
        if "flow" in out:  # the sampling thread runs in the flow's process
            out["flow"] -= self.own_cpu
            out["bench sampler"] = self.own_cpu
        return out

    def busy_tenths(self) -> dict[str, list[float]]:
        """Each worker's CPU use (cores) in ten equal parts of the run."""
        t0, t1 = self.samples[0][0], self.samples[-1][0]
        edges = np.linspace(t0, t1, 11)
        out: dict[str, list[float]] = {}
        pids = {pid for _, row in self.samples for pid, (role, _) in row.items() if role == "worker"}
        for pid in sorted(pids):
            series = [(t, row[pid][1]) for t, row in self.samples if pid in row]
            if len(series) < 2:
                continue
            ts, cs = np.array(series).T
            at = np.interp(edges, ts, cs, left=cs[0], right=cs[-1])
            out[f"worker {pid}"] = list(np.diff(at) / np.diff(edges))
        return out


@dataclass
class Run:
    workers: int
    bind: bool
    wall: float
    cpu: float
    load0: tuple[float, float, float]
    load1: tuple[float, float, float]
    result: object
    roles: dict[str, float]
    busy: dict[str, list[float]]
    items: list[dict]
    server_retries: int = 0  # requests the Prefect server answered 503 (see count_server_retries)

    @property
    def label(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ' '} {'bound' if self.bind else 'spread'}"

    def span(self) -> tuple[float, float]:
        """When the first item's subflow started and the last one's ended (s after the run began)."""
        if not self.items:
            return 0.0, 0.0
        return min(it["start"] for it in self.items), max(it["end"] for it in self.items)

    def span_seconds(self) -> float:
        """How long items ran: the first item's start to the last one's end (s)."""
        first, last = self.span()
        return last - first

    def ideal(self, cores: int) -> float:
        """CPU-based lower bound of the wall time: all CPU spread on the cores, but never below the
        flow process's CPU (one GIL) nor the busiest worker's (one thread)."""
        worker_cpu = [v for k, v in self.roles.items() if k.startswith("worker")]
        cpu = self.cpu - self.roles.get("bench sampler", 0.0)
        return max(cpu / cores, self.roles.get("flow", 0.0), max(worker_cpu, default=0.0))


def corpus_run(manifest: Path, out: Path, workers: int, bind: bool = True, per_worker: int = 2) -> Run:
    from flows.process_corpus import run_process_corpus
    from schemas.config import ExecutionParams, PipelineConfig
    from schemas.corpus import CorpusConfig, ShotParams

    config = CorpusConfig(
        pipeline=PipelineConfig(
            execution=ExecutionParams(n_workers=workers, threads_per_worker=1, processes=True)
        ),
        shots=ShotParams(detect=False),
        max_in_flight=per_worker * workers,
        bind_items_to_workers=bind,
    )
    load0 = os.getloadavg()
    started = dt.datetime.now(dt.UTC)
    t0, c0 = time.perf_counter(), cpu_seconds()
    with Sampler() as sampler:
        state = run_process_corpus(manifest, out, config)
    wall = time.perf_counter() - t0
    # the sampled tree's CPU: workers forked by a forkserver are reaped by it, not by this process,
    # so rusage of children misses them; a process's CPU after its last sample (< 0.5 s) is lost
    cpu = max(cpu_seconds() - c0, sum(sampler.by_role().values()))
    return Run(
        workers, bind, wall, cpu, load0, os.getloadavg(), state.result(raise_on_failure=False),
        sampler.by_role(), sampler.busy_tenths(), item_timeline(started),
    )


def item_timeline(since: dt.datetime) -> list[dict]:
    """Each make_cinemagraph subflow run started after ``since``: start, end (s after ``since``) and
    the seconds spent inside its stage tasks (from the Prefect API)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
    )

    time.sleep(2.0)  # the local server records task-run states once a second (flows/local_server.py)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["make_cinemagraph"])),
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in runs]))
        ) if runs else []
    inside: dict = {}
    for t in tasks:
        if t.start_time and t.end_time:
            inside[t.flow_run_id] = inside.get(t.flow_run_id, 0.0) + (t.end_time - t.start_time).total_seconds()
    rows = []
    for r in runs:
        if r.start_time is None or r.end_time is None:
            continue
        rows.append({
            "item": r.name,
            "start": (r.start_time - since).total_seconds(),
            "end": (r.end_time - since).total_seconds(),
            "in_tasks": inside.get(r.id, 0.0),
        })
    return sorted(rows, key=lambda x: x["start"])


def print_run(run: Run, n_items: int, cores: int) -> None:
    print(f"  {run.label}  {run.wall:7.1f} s wall  {run.cpu:7.1f} s CPU   {60 * n_items / run.wall:6.2f} items/min"
          "   load {:.2f} {:.2f} {:.2f} -> {:.2f} {:.2f} {:.2f}".format(*run.load0, *run.load1))
    roles = ", ".join(f"{k} {v:.1f}" for k, v in sorted(run.roles.items()))
    print(f"      Prefect server answered 503 (retry after 2 s, 4 s, ...) to {run.server_retries} request(s)")
    print(f"      CPU s by process: {roles}")
    print(f"      CPU-based ideal wall {run.ideal(cores):6.1f} s  (measured {run.wall:.1f} s, "
          f"{run.ideal(cores) / run.wall:5.1%} of it)")
    for name, tenths in run.busy.items():
        print(f"      {name} cores used per tenth of the run: " + " ".join(f"{x:4.2f}" for x in tenths)
              + f"   (mean {run.roles.get(name, 0.0) / run.wall:4.2f})")
    first, last = run.span()
    if last > first:
        print(f"      items from {first:.1f} to {last:.1f} s: {60 * n_items / (last - first):6.2f} items/min while items run"
              f" (fixed cost: {first:.1f} s before the first item starts, {run.wall - last:.1f} s after the last ends)")
    for it in run.items:
        wall = it["end"] - it["start"]
        print(f"      item {it['item']:8s} {it['start']:7.1f} -> {it['end']:7.1f} s  ({wall:5.1f} s, "
              f"{wall - it['in_tasks']:5.1f} s outside stage tasks)")


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
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs, 1 then 2 workers (default 2)")
    ap.add_argument("--bind", choices=("on", "off", "both"), default="on",
                    help="CorpusConfig.bind_items_to_workers of the timed runs (both: each pair with it on and off)")
    ap.add_argument("--items", type=int, help="number of clips (default 6, --quick 2)")
    ap.add_argument("--frames", type=int, help="frames per clip (default 72, --quick 40)")
    ap.add_argument("--clips", choices=("blinking", "handheld"), default="blinking",
                    help="steady clips of blinking lights (default) or hand-held clips of a synthetic scene, "
                    "whose items also run the sfm and depth stages (use fewer --items, e.g. 4 of 48 frames)")
    ap.add_argument("--per-worker", type=int, default=2,
                    help="items in flight per worker (max_in_flight = this x workers; default 2)")
    ap.add_argument("--server-defaults", choices=("project", "prefect"), default="project",
                    help="the temporary Prefect server: the CLI's (write batching of flows/local_server.py, "
                    "IMMEDIATE SQLite transactions of flows/prefect_server.py; default) or Prefect's own")
    args = ap.parse_args()
    if args.server_defaults == "project":  # the CLI's temporary server: its settings, its app
        from flows.local_server import apply_local_server_defaults

        apply_local_server_defaults()
        from flows.local_server import use_project_local_server

        use_project_local_server()  # started by the first flow run, on the fresh PREFECT_HOME's database
        server = contextlib.nullcontext()
    else:  # Prefect's own temporary server, as its test harness starts it
        from prefect.testing.utilities import prefect_test_harness

        server = prefect_test_harness(server_startup_timeout=90)
    retries = count_server_retries()

    cores = os.cpu_count() or 1
    binds = {"on": [True], "off": [False], "both": [True, False]}[args.bind]
    with tempfile.TemporaryDirectory() as tmp, server:
        tmp = Path(tmp)
        n_items, frames = (2, 40) if args.quick else (6, 72)
        n_items, frames = args.items or n_items, args.frames or frames
        manifest = make_manifest(tmp, n_items, frames, args.clips)
        corpus_run(manifest, tmp / "warm", 1, per_worker=args.per_worker)  # compile kernels, warm caches
        print(f"process_corpus, {n_items} {args.clips} items of 320x180x{frames}, max_in_flight {args.per_worker} x workers, "
              "worker processes of 1 thread,"
              f" {cores} cores, runs alternating:")
        runs: list[Run] = []
        for k in range(args.rounds):
            for bind in binds:
                for workers in (1, 2) if k % 2 == 0 else (2, 1):  # 1 2 2 1 1 2 ...: drift cancels
                    before = retries.count
                    run = corpus_run(manifest, tmp / f"r{k}-{workers}-{bind}", workers, bind, args.per_worker)
                    run.server_retries = retries.count - before
                    assert run.result.succeeded == n_items, run.result
                    runs.append(run)
                    print_run(run, n_items, cores)
                    sys.stdout.flush()
        for bind in binds:
            one = [r for r in runs if r.workers == 1 and r.bind == bind]
            two = [r for r in runs if r.workers == 2 and r.bind == bind]
            pairs = " ".join(f"{a.wall / b.wall:.2f}" for a, b in zip(one, two, strict=True))
            w1, w2 = sum(r.wall for r in one), sum(r.wall for r in two)
            i1, i2 = sum(r.ideal(cores) for r in one), sum(r.ideal(cores) for r in two)
            label = "bound" if bind else "spread"
            print(f"  throughput ratio 2/1 workers, items {label}: {w1 / w2:.2f} x over all runs "
                  f"(per pair: {pairs}); CPU-based ideal {i1 / i2:.2f} x; "
                  f"measured 1-worker wall / ideal 2-worker wall {w1 / i2:.2f} x")
            s1, s2 = (sum(r.span_seconds() for r in rs) for rs in (one, two))
            if s1 > 0 and s2 > 0:  # beside, never instead of, the end-to-end ratio above
                spans = " ".join(f"{a.span_seconds() / b.span_seconds():.2f}" for a, b in zip(one, two, strict=True))
                print(f"  while items run (first item start to last item end, the fixed start-up and close left out): "
                      f"{s1 / s2:.2f} x (per pair: {spans})")
        per_item = float(np.mean([o.seconds for o in runs[0].result.items]))
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
