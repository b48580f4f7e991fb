"""Video sources: decode any container FFmpeg reads (through PyAV) into RGB frames.

One small class with one job, in the manner of PySceneDetect's ``VideoStream``:
open and probe, then iterate frames as ``(H, W, 3)`` uint8 arrays.  Every problem
becomes a :class:`VideoError` whose message names the file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import av
import av.logging
import cv2
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from schemas.config import Downscale
from tasks.threads import pin_codec_threads

# FFmpeg's own chatter (encoder statistics, decoder warnings) stays out of the console;
# problems reach the user through VideoError and the run's warnings instead.
# (PyAV routes FFmpeg's messages to the "libav" loggers; the last one is quoted in PyAV's exceptions).
av.logging.set_level(av.logging.ERROR)
logging.getLogger("libav").setLevel(logging.CRITICAL)


#: FFmpeg demuxers whose containers keep a table of the stored frames (see
#: :meth:`VideoSource.indexed_frame_count`).
INDEXED_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "avi"})


class VideoError(RuntimeError):
    """A source that cannot be used; the message names the file and the problem."""


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frames_hint: int  # from the container; 0 when unknown
    codec: str


@dataclass
class VideoSource:
    """A decodable video file.

    Parameters
    ----------
    path : path-like
        Any container and codec FFmpeg decodes.
    frame_threads : bool, default False
        Decode with FFmpeg's frame threads as well as slice threads (several
        frames in flight, one per core: 2-3x faster on H.264 from a single
        encoder slice).  Only for a decode that runs to the end of the
        stream: closing a frame-threaded decoder that stopped mid-stream was
        seen to hang.

    Examples
    --------
    >>> with VideoSource("clip.mp4") as video:  # doctest: +SKIP
    ...     for frame in video.frames():
    ...         ...
    """

    path: Path
    warnings: list[str] = field(default_factory=list)
    frame_threads: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise VideoError(f"{self.path}: file not found")
        if self.path.is_dir():
            raise VideoError(f"{self.path}: is a folder, not a video file")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path}: file is empty")
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"{self.path}: not a readable video ({_reason(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: contains no video stream")
        self._stream = self._container.streams.video[0]
        # Slice threading only: with frame threading ("AUTO"), closing a decoder that stopped
        # mid-stream (a frame range, a preflight check) was seen to hang in avcodec_free_context.
        self._stream.thread_type = "AUTO" if self.frame_threads else "SLICE"
        ctx = self._stream.codec_context
        pin_codec_threads(ctx)  # a one-thread corpus worker: one decoder thread
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            self.warnings.append(f"{self.path}: frame rate unknown, assuming 25 fps")
            fps = 25.0
        self.info = VideoInfo(
            path=self.path,
            width=int(ctx.width or 0),
            height=int(ctx.height or 0),
            fps=fps,
            frames_hint=int(self._stream.frames or 0),
            codec=str(ctx.name),
        )

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in order, as FFmpeg gives them (any pixel format; see :func:`to_rgb`).

        A container that fails part-way stops the iteration with a warning in
        :attr:`warnings` (the frames decoded so far are kept).
        """
        n = 0
        try:
            for frame in self._container.decode(self._stream):
                yield frame
                n += 1
        except (av.FFmpegError, OSError, ValueError) as exc:
            if n == 0:
                raise VideoError(f"{self.path}: cannot decode any frame ({_reason(exc)})") from None
            self.warnings.append(
                f"{self.path}: decoding stopped after {n} frames ({_reason(exc)}); using the frames decoded"
            )

    def indexed_frame_count(self) -> int | None:
        """The number of frames, from the container's packets without decoding, when the container
        keeps a table of its frames (MP4/QuickTime sample table, AVI index) and its packets agree
        with that table; None when it keeps none, they disagree, or a packet is flagged corrupt or
        to be discarded (an edit list).  Call it before decoding: it reads the stream to its end.

        Such a container stores one frame per packet, so the count is the decoder's, about a
        hundredth of a decode's time (bikes.mp4: 1.3 ms against 145 ms).  A header's own count
        can be wrong (tree.avi states 444 frames and holds 68 packets, 68 decodable frames):
        that disagreement is why the packets are counted and compared.
        """
        stated = self.info.frames_hint
        if stated <= 0 or self._container.format.name not in INDEXED_CONTAINERS:
            return None
        packets = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # the demuxer's end-of-stream packet
                    continue
                if packet.is_corrupt or packet.is_discard:
                    return None
                packets += 1
        except (av.FFmpegError, OSError, ValueError):
            return None
        return packets if packets == stated else None

    def frames(self) -> Iterator[np.ndarray]:
        """Decoded frames in order, RGB uint8 (grayscale and other pixel formats converted), at the
        source's size; a failing container stops as in :meth:`decoded`."""
        converter = FrameConverter()
        for frame in self.decoded():
            yield converter(frame)


#: How :class:`FrameConverter` downscales (``IngestParams.downscale``).
DOWNSCALES = get_args(Downscale)


class FrameConverter:
    """Decoded frames to RGB uint8 arrays, optionally downscaled, with one swscale context per stream.

    ``frame.to_ndarray(format="rgb24")`` builds a new swscale context, with its own threads, for
    every frame; one converter on one slice thread gives the same pixels.

    Parameters
    ----------
    downscale : {"yuv-area", "rgb-area"}
        How a frame gets to a smaller ``size`` (a frame at ``size`` is only converted to RGB, the
        same either way).  ``yuv-area``: swscale's area averaging in the frame's own pixel format
        (for most videos YUV 4:2:0, so colour at half the output size, as in a video made at that
        size), then RGB at the output size; about 3x cheaper.  ``rgb-area``: RGB at the source
        size, then OpenCV's INTER_AREA (full colour resolution; how ingest downscaled before).
    """

    def __init__(self, downscale: str = "rgb-area") -> None:
        if downscale not in DOWNSCALES:
            raise ValueError(f"downscale {downscale!r}: expected one of {DOWNSCALES}")
        self.downscale = downscale
        self._rgb = VideoReformatter()
        self._scale = VideoReformatter()

    def __call__(
        self, frame: av.VideoFrame, size: tuple[int, int] | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """``frame`` as (y, x, channel) RGB uint8 at ``size`` (height, width; None = the frame's),
        written into ``out`` (C-contiguous, of the output's shape) when given."""
        h, w = size if size is not None else (frame.height, frame.width)
        if (h, w) != (frame.height, frame.width) and self.downscale == "yuv-area":
            frame = self._scale.reformat(
                frame, width=w, height=h, interpolation=Interpolation.AREA, threads=1
            )
        rgb = self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
        return resize(rgb, (h, w), out=out)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def scaled_size(height: int, width: int, max_long_side: int | None) -> tuple[int, int]:
    """Output (height, width) after fitting the long side into ``max_long_side``.

    Downscaled sizes are rounded to even numbers (what H.264 wants); a frame
    that is not downscaled keeps its size, odd or not.
    """
    if max_long_side is None or max(height, width) <= max_long_side:
        return height, width
    scale = max_long_side / max(height, width)
    return max(2, 2 * round(height * scale / 2)), max(2, 2 * round(width * scale / 2))


def resize(frame: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """``frame`` (y, x, channel) at ``size`` (height, width), by pixel-area averaging (OpenCV's INTER_AREA).

    With ``out`` (a C-contiguous uint8 array of the output's shape) the result is written there and
    ``out`` is returned; without it a frame already at ``size`` is returned as it is.
    """
    h, w = size
    if frame.shape[:2] == (h, w):
        if out is None:
            return frame
        out[...] = frame
        return out
    if out is None:
        return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.resize(frame, (w, h), dst=out, interpolation=cv2.INTER_AREA)
