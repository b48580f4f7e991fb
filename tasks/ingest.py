"""Ingest: decode a video into the store's ``frames`` (time, y, x, channel) uint8.

Frames are written in batches of ``time_chunk`` (one Zarr chunk along time), so
memory stays at a few batches whatever the video's length.  The store is built
under a temporary name and renamed into place when complete: a killed or failed
ingest leaves no store that looks finished.

The work is spread over threads (the decoder, swscale, OpenCV and the codecs
release the GIL):

* one thread (:func:`prefetched`) decodes, converts to RGB and downscales the
  kept frames straight into a batch buffer (FFmpeg's frame threads help a full
  decode, see :class:`tasks.video.VideoSource`);
* a pool of writer threads (:class:`FrameWriter`) compresses the batch's chunks
  and writes them to the store as whole chunk files, while the next batch is
  decoded.  ``frames`` is extended over a batch only once every chunk of that
  batch and of the batches before it is on disk.

Zarr's own write path (per-chunk async tasks, a read-modify-write of edge
chunks, a scan for empty chunks) cost about three times the compression itself;
writing whole chunks with the array's own codec avoids it and gives the same
store.  The codec is ``IngestParams.compression`` (Zarr records it per array,
so stores written with another codec still read).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import xarray as xr
import zarr
from prefect import task
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

from schemas import names as N
from schemas.config import IngestParams
from schemas.results import IngestResult
from tasks.runtime import retry_on_io_only, stage_logger
from tasks.store import (
    config_values,
    digest,
    read_attrs,
    record_stage,
    remove_store,
    stage_done,
    update_attrs,
)
from tasks.threads import thread_budget
from tasks.video import FrameConverter, VideoError, VideoSource, scaled_size

STAGE = "ingest"
_EARLIER_TILE = 256  # IngestParams.tile's default before 128, as stage records of that time hold it
_EARLIER_CODEC = ("zstd", 1)  # the codec of stores written before IngestParams.compression existed


def source_stamp(source: str | Path) -> dict:
    """What identifies the source for the stage record: path, size and modification time."""
    p = Path(source)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ingest_digest(source: str | Path, params: IngestParams, source_hw: tuple[int, int] | None = None) -> str:
    """What the stored ``frames`` depend on.

    ``write_threads`` and ``tile`` (the chunk layout; it enters as its earlier default, 256) change
    no stored pixel.  Neither the default codec nor Zstandard level 1 (what the ingest wrote before
    the codec became an option, and its default until level -3) enters the digest.
    ``downscale`` enters it only when it is ``yuv-area`` and the frames are downscaled (the source's
    ``source_hw``, probed from the file when not given): ``rgb-area`` and frames kept at their size
    give the pixels of the ingest before that option.  So stores ingested before still count as
    done unless today's default would store other pixels.
    """
    recorded = config_values(params)
    recorded.pop("write_threads", None)
    recorded["tile"] = _EARLIER_TILE  # the chunk layout changes no pixel
    default = IngestParams()
    codec = (params.compression, params.compression_level)
    if codec in {_EARLIER_CODEC, (default.compression, default.compression_level)}:
        del recorded["compression"], recorded["compression_level"]
    if params.downscale == "rgb-area" or not _downscaled(source, params, source_hw):
        del recorded["downscale"]
    return digest(STAGE, source_stamp(source), recorded)


def _downscaled(source: str | Path, params: IngestParams, source_hw: tuple[int, int] | None) -> bool:
    """Whether ingest downscales the frames of ``source`` (True when the file cannot tell its size)."""
    if source_hw is None:
        try:
            with VideoSource(source) as video:
                source_hw = (video.info.height, video.info.width)
        except VideoError:
            return True
    if min(source_hw) <= 0:
        return True
    return scaled_size(*source_hw, params.max_long_side) != tuple(source_hw)


def frames_codec(params: IngestParams) -> ZstdCodec | BloscCodec:
    """The Zarr codec of ``frames`` that ``params`` asks for (see ``IngestParams.compression``)."""
    if params.compression == "zstd":
        return ZstdCodec(level=params.compression_level)
    return BloscCodec(cname="lz4", clevel=params.compression_level, shuffle="noshuffle", typesize=1)


def _frames_encoding(params: IngestParams, height: int, width: int) -> dict:
    chunks = (params.time_chunk, min(params.tile, height), min(params.tile, width), 3)
    return {N.FRAMES: {"chunks": chunks, "compressors": [frames_codec(params)]}}


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
        for index, _ in enumerate(video.decoded()):
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
    try:
        # frame threads only when decoding to the end (see VideoSource: closing mid-stream may hang)
        with VideoSource(source, frame_threads=params.end_frame is None) as video:
            info = video.info
            kept = _KeptFrames(video, params)
            with (
                FrameWriter(tmp, params) as writer,
                contextlib.closing(prefetched(kept.batches(), depth=1)) as batches,
            ):
                for batch in batches:
                    writer.write(batch)
                    if progress is not None:
                        progress(writer.written)
            written, decoded, size, source_hw = writer.written, kept.decoded, kept.size, kept.source_hw
            warnings = list(video.warnings)
    except BaseException:
        remove_store(tmp)
        raise
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
    record_stage(
        tmp, STAGE, ingest_digest(source, params, source_hw), time.perf_counter() - t0, {"n_frames": written}
    )
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
    """The frames ``params`` keeps (range, stride), in RGB at the stored size; counts what was decoded
    on the way.  Only the kept frames are converted."""

    def __init__(self, video: VideoSource, params: IngestParams) -> None:
        self.video, self.params = video, params
        self.decoded = 0
        self.size: tuple[int, int] | None = None
        self.source_hw: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[av.VideoFrame]:
        p = self.params
        for index, frame in enumerate(self.video.decoded()):
            self.decoded = index + 1
            if p.end_frame is not None and index >= p.end_frame:
                break
            if index < p.start_frame or (index - p.start_frame) % p.stride:
                continue
            if self.size is None:
                self.size = scaled_size(frame.height, frame.width, p.max_long_side)
                self.source_hw = (frame.height, frame.width)
            yield frame

    def batches(self) -> Iterator[np.ndarray]:
        """The kept frames, converted and downscaled into arrays of ``time_chunk`` frames (the last one
        may be shorter).

        Each yielded array is new: the consumer may keep it while the next one is filled.
        """
        convert = FrameConverter(self.params.downscale)
        batch, n = None, 0
        for frame in self:
            if batch is None:
                batch = np.empty((self.params.time_chunk, *self.size, 3), np.uint8)
            convert(frame, self.size, out=batch[n])
            n += 1
            if n == len(batch):
                yield batch
                batch, n = None, 0
        if n:
            yield batch[:n]


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
    """Writes batches of frames to ``frames`` of the store at ``path`` as whole, compressed chunks.

    The first batch creates the store (through xarray: dimension names, chunks,
    codec) with an empty ``frames``.  Every batch is cut into its chunks, which
    a pool of ``threads`` threads compresses with the array's codec and writes
    as chunk files; at most ``depth`` batches are in flight.  ``frames`` grows
    over a batch (its shape in the metadata) only when all chunks of that batch
    and of the batches before it are written, so :attr:`written` never counts a
    half-written batch.  Every batch but the last must hold ``time_chunk``
    frames.  Use as a context manager: leaving normally waits for every write
    (raising a writer's error), leaving on an error drops what is queued and
    waits for the running writes to end.
    """

    def __init__(self, path: Path, params: IngestParams, threads: int | None = None, depth: int = 2) -> None:
        self.path, self.params = path, params
        self.written = 0
        self._queued = 0
        self._depth = max(1, depth)
        # by default one core's worth goes to the decoding thread and FFmpeg's frame threads
        self._threads = threads or params.write_threads or max(1, thread_budget() - 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[int, list[Future]]] = deque()
        self._scratch = threading.local()
        self._array = None

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, batch: np.ndarray) -> None:
        """Queue ``batch`` (n, y, x, channel) uint8; the writer owns it from now on."""
        if self._array is None:
            self._create(batch.shape[1], batch.shape[2])
        if self._queued % self.params.time_chunk:
            raise ValueError(
                f"only the last batch may hold fewer than time_chunk={self.params.time_chunk} frames"
            )
        t = self._queued // self.params.time_chunk
        _, cy, cx, _ = self._chunks
        futures = [
            self._pool.submit(self._put_chunk, batch, (t, y // cy, x // cx, 0))
            for y in range(0, batch.shape[1], cy)
            for x in range(0, batch.shape[2], cx)
        ]
        self._queued += len(batch)
        self._pending.append((self._queued, futures))
        while len(self._pending) > self._depth:
            self._settle()

    def close(self) -> None:
        """Wait for every queued chunk and extend ``frames`` over them."""
        try:
            while self._pending:
                self._settle()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the queued chunks and wait for the ones being written; ``frames`` stays as it is."""
        for _, futures in self._pending:
            for f in futures:
                f.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _create(self, height: int, width: int) -> None:
        empty = np.empty((0, height, width, 3), np.uint8)
        xr.Dataset({N.FRAMES: ((N.TIME, N.Y, N.X, N.CHANNEL), empty)}).to_zarr(
            str(self.path),
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=_frames_encoding(self.params, height, width),
        )
        self._array = zarr.open_array(store=str(self.path / N.FRAMES), mode="r+")
        self._chunks = self._array.metadata.chunk_grid.chunk_shape
        self._encode = chunk_encoder(self._array.metadata.codecs)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="ingest-write")

    def _put_chunk(self, batch: np.ndarray, coords: tuple[int, int, int, int]) -> None:
        _, cy, cx, _ = self._chunks
        y, x = coords[1] * cy, coords[2] * cx
        block = batch[:, y : y + cy, x : x + cx]
        # A chunk is stored whole, an edge chunk padded with the fill value (0).  Each thread copies
        # into a zeroed buffer of its own per block shape: outside the block it stays zero.
        scratch = self._scratch.__dict__.setdefault("buffers", {})
        if block.shape not in scratch:
            scratch[block.shape] = np.zeros(self._chunks, np.uint8)
        whole = scratch[block.shape]
        whole[: block.shape[0], : block.shape[1], : block.shape[2]] = block
        data = self._encode(whole)
        target = self.path / N.FRAMES / self._array.metadata.encode_chunk_key(coords)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def _settle(self) -> None:
        end, futures = self._pending.popleft()
        for f in futures:
            f.result()
        self._array.resize((end, *self._array.shape[1:]))
        self.written = end


def chunk_encoder(codecs) -> Callable[[np.ndarray], bytes]:
    """Bytes of one whole chunk (C order) as Zarr stores it, for an array whose ``codecs`` are
    ``bytes`` then one Zstandard or Blosc codec (what :func:`frames_codec` makes)."""
    import numcodecs

    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec):
        raise ValueError(f"frames codecs {codecs}: expected bytes then one compressor")
    codec = codecs[1]
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum).encode
    if isinstance(codec, BloscCodec):
        shuffle = {
            "noshuffle": numcodecs.Blosc.NOSHUFFLE,
            "shuffle": numcodecs.Blosc.SHUFFLE,
            "bitshuffle": numcodecs.Blosc.BITSHUFFLE,
        }[codec.shuffle.name]
        return numcodecs.Blosc(
            cname=codec.cname.name,
            clevel=codec.clevel,
            shuffle=shuffle,
            blocksize=codec.blocksize,
            typesize=codec.typesize,
        ).encode
    raise ValueError(f"frames codec {codec}: no direct chunk writer for it")


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
