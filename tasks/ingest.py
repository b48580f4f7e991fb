"""Ingest: decode a video into the store's ``frames`` (time, y, x, channel) uint8.

Frames are written in batches of ``time_chunk`` (one Zarr chunk along time), so
memory stays at one batch whatever the video's length.  The store is built
under a temporary name and renamed into place when complete: a killed ingest
leaves no store that looks finished.

Two threads share the work (:func:`prefetched`): one decodes, converts to RGB
and downscales the kept frames into a queue of at most ``time_chunk`` frames,
while the calling thread stacks batches and compresses and writes them (the
decoder, swscale, OpenCV and the Zarr codecs release the GIL).  A full decode
uses FFmpeg's frame threads as well (see :class:`tasks.video.VideoSource`).
The first batch creates ``frames`` through xarray (its dimension names and
encoding); later batches are appended with Zarr directly (:class:`FrameWriter`),
which skips xarray's per-append reopening and validation of the store.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from prefect import task
from zarr.codecs import ZstdCodec

from schemas import names as N
from schemas.config import IngestParams
from schemas.results import IngestResult
from tasks.runtime import retry_on_io_only, stage_logger
from tasks.store import digest, read_attrs, record_stage, remove_store, stage_done, update_attrs
from tasks.video import VideoError, VideoSource, resize, scaled_size

STAGE = "ingest"


def source_stamp(source: str | Path) -> dict:
    """What identifies the source for the stage record: path, size and modification time."""
    p = Path(source)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ingest_digest(source: str | Path, params: IngestParams) -> str:
    return digest(STAGE, source_stamp(source), params.model_dump(mode="json"))


#: Codec of ``frames``: Zstandard at level 1 compresses decoded video about 1.5x at ~2.5x the speed
#: of Zarr's default level (which gains ~25 % more), so writing keeps up with decoding.
FRAMES_CODEC = ZstdCodec(level=1)


def _frames_encoding(params: IngestParams, height: int, width: int) -> dict:
    chunks = (params.time_chunk, min(params.tile, height), min(params.tile, width), 3)
    return {N.FRAMES: {"chunks": chunks, "compressors": [FRAMES_CODEC]}}


def preflight(source: str | Path, params: IngestParams, min_frames: int) -> None:
    """Fail fast, before any work, on a source that cannot give ``min_frames`` frames.

    Opens the file and decodes only as far as needed to count ``min_frames``
    frames in the requested range and stride.

    Raises
    ------
    VideoError
        Naming the file and the problem.
    """
    kept = 0
    decoded = 0
    with VideoSource(source) as video:
        for index, _ in enumerate(video.frames()):
            decoded = index + 1
            if params.end_frame is not None and index >= params.end_frame:
                break
            if index >= params.start_frame and (index - params.start_frame) % params.stride == 0:
                kept += 1
                if kept >= min_frames:
                    return
    if decoded == 0:
        raise VideoError(f"{source}: the video has no frames")
    raise VideoError(
        f"{source}: only {kept} usable frame{'s' if kept != 1 else ''} (of {decoded} decoded, with "
        f"start_frame={params.start_frame}, end_frame={params.end_frame}, stride={params.stride}); "
        f"a cinemagraph needs at least {min_frames}"
    )


def ingest(source: str | Path, store: str | Path, params: IngestParams, progress=None) -> IngestResult:
    """Decode ``source`` into a new store at ``store`` (replacing any store there).

    Parameters
    ----------
    source : path-like
        The video file.
    store : path-like
        Where ``store.zarr`` goes.
    params : IngestParams
        Frame range, stride, downscaling and chunking.
    progress : callable, optional
        Called as ``progress(n_frames_written)`` after every batch.

    Raises
    ------
    VideoError
        The file is missing, not a video, or yields no frame in the range.
    """
    store = Path(store)
    tmp = store.with_name(store.name + ".partial")
    remove_store(tmp)
    t0 = time.perf_counter()
    # frame threads only when decoding to the end (see VideoSource: closing mid-stream may hang)
    with VideoSource(source, frame_threads=params.end_frame is None) as video:
        info = video.info
        kept = _KeptFrames(video, params)
        writer = FrameWriter(tmp, params)
        batch: list[np.ndarray] = []
        for frame in prefetched(kept, depth=params.time_chunk):
            batch.append(frame)
            if len(batch) == params.time_chunk:
                writer.write(batch)
                batch = []
                if progress is not None:
                    progress(writer.written)
        if batch:
            writer.write(batch)
            if progress is not None:
                progress(writer.written)
        written, decoded, size, source_hw = writer.written, kept.decoded, kept.size, kept.source_hw
        warnings = list(video.warnings)
    if written == 0:
        remove_store(tmp)
        if decoded == 0:
            raise VideoError(f"{source}: the video has no frames")
        raise VideoError(
            f"{source}: no frame in the requested range (start_frame={params.start_frame}, "
            f"end_frame={params.end_frame}); the video has {decoded} decodable frames"
        )
    fps = info.fps / params.stride
    height, width = size
    attrs = {
        "source": str(Path(source).resolve()),
        "fps": fps,
        "n_frames": written,
        "height": height,
        "width": width,
        "source_height": int(source_hw[0]),
        "source_width": int(source_hw[1]),
        "codec": info.codec,
        "ingest_warnings": warnings,
    }
    update_attrs(tmp, attrs)
    record_stage(tmp, STAGE, ingest_digest(source, params), time.perf_counter() - t0, {"n_frames": written})
    remove_store(store)
    tmp.rename(store)
    return IngestResult(
        store=str(store),
        source=str(source),
        n_frames=written,
        height=height,
        width=width,
        fps=fps,
        source_height=int(source_hw[0]),
        source_width=int(source_hw[1]),
        warnings=warnings,
    )


class _KeptFrames:
    """The frames ``params`` keeps (range, stride), downscaled; counts what was decoded on the way."""

    def __init__(self, video: VideoSource, params: IngestParams) -> None:
        self.video, self.params = video, params
        self.decoded = 0
        self.size: tuple[int, int] | None = None
        self.source_hw: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        p = self.params
        for index, frame in enumerate(self.video.frames()):
            self.decoded = index + 1
            if p.end_frame is not None and index >= p.end_frame:
                break
            if index < p.start_frame or (index - p.start_frame) % p.stride:
                continue
            if self.size is None:
                self.size = scaled_size(frame.shape[0], frame.shape[1], p.max_long_side)
                self.source_hw = frame.shape[:2]
            yield resize(frame, self.size)


def prefetched(items: Iterable, depth: int) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer.

    An exception in the producer is raised in the consumer at the point it
    happened; a consumer that stops early (an error while writing) stops the
    producer, and the thread has ended when this generator is closed.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer
            put((done, exc))
            return
        put((done, None))

    thread = threading.Thread(target=produce, name="ingest-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        thread.join()


class FrameWriter:
    """Appends batches of frames to ``frames`` of the store at ``path`` (created by the first batch)."""

    def __init__(self, path: Path, params: IngestParams) -> None:
        self.path, self.params = path, params
        self.written = 0
        self._array = None

    def write(self, batch: list[np.ndarray]) -> None:
        data = np.stack(batch)
        if self._array is None:
            h, w = data.shape[1:3]
            xr.Dataset({N.FRAMES: ((N.TIME, N.Y, N.X, N.CHANNEL), data)}).to_zarr(
                str(self.path), mode="w", zarr_format=3, consolidated=False, encoding=_frames_encoding(self.params, h, w)
            )
            self._array = zarr.open_array(store=str(self.path / N.FRAMES), mode="r+")
        else:
            self._array.append(data, axis=0)
        self.written += len(batch)


def stored_ingest_result(store: str | Path) -> IngestResult:
    """The :class:`IngestResult` of a store whose ingest is already complete."""
    a = read_attrs(store)
    return IngestResult(
        store=str(store),
        source=a["source"],
        n_frames=a["n_frames"],
        height=a["height"],
        width=a["width"],
        fps=a["fps"],
        source_height=a["source_height"],
        source_width=a["source_width"],
        warnings=list(a.get("ingest_warnings", [])),
    )


@task(name="ingest_video", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io_only)
def ingest_video(source: str, store: str, params: IngestParams, min_frames: int = 1) -> IngestResult:
    """Prefect task: decode ``source`` into ``store`` unless an identical ingest is already stored."""
    log = stage_logger(STAGE)
    if stage_done(store, STAGE, ingest_digest(source, params)):
        log.info("stage ingest already complete in %s; skipped", store)
        return stored_ingest_result(store)
    preflight(source, params, min_frames)
    result = ingest(source, store, params, progress=lambda n: log.debug("ingest: %d frames written", n))
    for w in result.warnings:
        log.warning(w)
    log.info(
        "stage ingest finished: %d frames %dx%d at %.2f fps",
        result.n_frames,
        result.width,
        result.height,
        result.fps,
    )
    return result
