from pathlib import Path

import av
import numpy as np
import pytest
import xarray as xr

from schemas import names as N
from schemas.config import IngestParams
from tasks.ingest import ingest, preflight
from tasks.store import read_attrs, stage_record
from tasks.synthetic import write_clip
from tasks.video import VideoError, VideoSource


def decode_all(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def gradient_frames(t=20, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h, w, 3))
    return np.stack([(base + 7 * i) % 256 for i in range(t)]).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ingest") / "clip.mp4"
    write_clip(path, gradient_frames(), 24.0)
    return path


def test_frames_equal_decoded_video_and_attrs(clip, tmp_path):
    params = IngestParams(time_chunk=6, tile=32, max_long_side=None)
    result = ingest(clip, tmp_path / "s.zarr", params)
    ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    truth = decode_all(clip)
    assert ds[N.FRAMES].dims == (N.TIME, N.Y, N.X, N.CHANNEL)
    assert ds[N.FRAMES].dtype == np.uint8
    np.testing.assert_array_equal(ds[N.FRAMES].values, truth)
    # chunked over time and space as asked, written batch by batch
    assert ds[N.FRAMES].chunks[0][:3] == (6, 6, 6) and ds[N.FRAMES].chunks[1][0] == 32
    attrs = read_attrs(tmp_path / "s.zarr")
    assert attrs["n_frames"] == 20 == result.n_frames
    assert (attrs["height"], attrs["width"]) == (48, 64)
    assert attrs["fps"] == pytest.approx(24.0)
    assert attrs["source"] == str(clip.resolve())
    assert stage_record(tmp_path / "s.zarr", "ingest") is not None
    assert not (tmp_path / "s.zarr.partial").exists()


def test_range_stride_and_downscale(clip, tmp_path):
    params = IngestParams(start_frame=3, end_frame=15, stride=4, max_long_side=32, time_chunk=2)
    result = ingest(clip, tmp_path / "s.zarr", params)
    ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    assert result.n_frames == 3  # frames 3, 7, 11
    assert ds[N.FRAMES].shape == (3, 24, 32, 3)
    assert result.fps == pytest.approx(6.0)
    truth = decode_all(clip)[[3, 7, 11]]
    import cv2

    expected = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in truth])
    np.testing.assert_array_equal(ds[N.FRAMES].values, expected)


def test_odd_size_and_grayscale(tmp_path):
    odd = tmp_path / "odd.mp4"
    write_clip(odd, gradient_frames(h=37, w=51), 25.0)
    r = ingest(odd, tmp_path / "a.zarr", IngestParams())
    assert (r.height, r.width) == (37, 51)
    gray = tmp_path / "gray.mkv"
    with av.open(str(gray), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 40, 30, "gray"
        for i in range(12):
            img = np.full((30, 40), 10 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    r = ingest(gray, tmp_path / "g.zarr", IngestParams())
    frames = xr.open_zarr(tmp_path / "g.zarr", consolidated=False)[N.FRAMES].values
    assert frames.shape == (12, 30, 40, 3)
    np.testing.assert_array_equal(frames[5, :, :, 0], frames[5, :, :, 2])
    assert frames[5, 0, 0, 0] == 50


def test_memory_does_not_hold_the_whole_video(tmp_path):
    """Ingest keeps one batch in memory: the peak traced allocation stays far below the video's size."""
    import tracemalloc

    path = tmp_path / "long.mp4"
    frames = gradient_frames(t=240, h=120, w=160)
    write_clip(path, frames, 24.0)
    tracemalloc.start()
    ingest(path, tmp_path / "l.zarr", IngestParams(time_chunk=8, max_long_side=None))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < frames.nbytes / 4, f"peak {peak} bytes vs video {frames.nbytes} bytes"


def test_partly_corrupt_container_uses_what_decodes(tmp_path):
    good = tmp_path / "good.ts"
    write_clip(good, gradient_frames(t=60, h=64, w=64), 24.0, crf=30)
    data = good.read_bytes()
    bad = tmp_path / "cut.ts"
    bad.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 4000)
    with VideoSource(bad) as v:
        n = sum(1 for _ in v.frames())
    assert 5 < n < 60
    r = ingest(bad, tmp_path / "c.zarr", IngestParams())
    assert 5 < r.n_frames < 60


def test_truncated_mp4_gives_clear_error(tmp_path, clip):
    bad = tmp_path / "trunc.mp4"
    bad.write_bytes(clip.read_bytes()[:300])
    with pytest.raises(VideoError, match="trunc.mp4"):
        ingest(bad, tmp_path / "t.zarr", IngestParams())
    assert not (tmp_path / "t.zarr").exists()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_text("this is not a video\n" * 10), "not a readable video"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.mkdir(), "folder"),
    ],
)
def test_bad_files_are_named_in_the_error(tmp_path, make, message):
    path = tmp_path / "input.mp4"
    make(path)
    with pytest.raises(VideoError, match=message) as err:
        ingest(path, tmp_path / "x.zarr", IngestParams())
    assert str(path) in str(err.value)


def write_n_frames(path: Path, n: int) -> Path:
    """An AVI (MPEG-4 part 2) with exactly n frames; n = 0 gives a valid container with an empty stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
        for i in range(n):
            for p in s.encode(
                av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
            ):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_frame_videos_are_refused_before_work(tmp_path, n):
    path = write_n_frames(tmp_path / f"n{n}.avi", n)
    with pytest.raises(VideoError, match=f"n{n}.avi") as err:
        preflight(path, IngestParams(), 10)
    assert ("no frames" in str(err.value)) if n == 0 else ("only 1 usable frame" in str(err.value))


def test_preflight_accepts_enough_frames_and_respects_stride(tmp_path):
    path = write_n_frames(tmp_path / "n12.avi", 12)
    preflight(path, IngestParams(), 10)
    with pytest.raises(VideoError, match="only 6 usable frames"):
        preflight(path, IngestParams(stride=2), 10)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="end_frame"):
        IngestParams(start_frame=10, end_frame=5)
    with pytest.raises(ValueError):
        IngestParams(stride=0)
    with pytest.raises(ValueError):
        IngestParams(unknown_option=1)
