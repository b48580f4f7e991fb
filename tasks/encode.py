"""Encode the stored ``loop`` as cinemagraph.mp4 (H.264), .gif and optionally .webp.

Files are written under a temporary name and renamed when complete, so a
killed encode never leaves a truncated file under the final name.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from prefect import task

from schemas import names as N
from schemas.config import RenderParams
from schemas.results import EncodeResult
from tasks.runtime import stage_logger
from tasks.store import open_store, read_attrs, require
from tasks.video import resize, scaled_size

STAGE = "encode"


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad to even height and width by repeating the last row/column (yuv420p needs even sizes)."""
    _, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return frames


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """H.264 in MP4, yuv420p (plays everywhere); loops seamlessly with the player's loop option."""
    path = Path(path)
    tmp = _tmp(path)
    frames = _even(frames)
    _, h, w, _ = frames.shape
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "movflags": "+faststart"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def _images(frames: np.ndarray, max_long_side: int | None) -> list[Image.Image]:
    size = scaled_size(frames.shape[1], frames.shape[2], max_long_side)
    return [Image.fromarray(resize(f, size)) for f in frames]


def write_gif(path: str | Path, frames: np.ndarray, fps: float, max_long_side: int | None = 480) -> Path:
    """Looping GIF with one palette for all frames and no dithering, so frozen pixels stay identical."""
    path = Path(path)
    tmp = _tmp(path)
    images = _images(frames, max_long_side)
    # palette from a mosaic of up to 8 frames spread over the loop
    picks = images[:: max(1, len(images) // 8)][:8]
    mosaic = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
    for k, im in enumerate(picks):
        mosaic.paste(im, (0, k * im.height))
    palette = mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    quantized = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    duration = max(20, int(round(1000 / fps)))
    quantized[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=quantized[1:],
        loop=0,
        duration=duration,
        disposal=1,
        optimize=False,
    )
    os.replace(tmp, path)
    return path


def write_webp(path: str | Path, frames: np.ndarray, fps: float, max_long_side: int | None = None) -> Path:
    path = Path(path)
    tmp = _tmp(path)
    images = _images(frames, max_long_side)
    images[0].save(
        tmp,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=int(round(1000 / fps)),
        quality=85,
    )
    os.replace(tmp, path)
    return path


def encode_outputs(store: str, out_dir: str, params: RenderParams) -> EncodeResult:
    ds = open_store(store)
    require(ds, store, [N.LOOP])
    frames = ds[N.LOOP].values
    fps = params.fps or float(read_attrs(store).get("fps", 25.0))
    out = Path(out_dir)
    result = EncodeResult(mp4=str(write_mp4(out / N.MP4_NAME, frames, fps, params.crf)))
    if params.write_gif:
        result.gif = str(write_gif(out / N.GIF_NAME, frames, fps, params.gif_max_long_side))
    if params.write_webp:
        result.webp = str(write_webp(out / N.WEBP_NAME, frames, fps))
    return result


@task(name="encode_outputs", retries=2, retry_delay_seconds=[2, 10])
def encode_outputs_task(store: str, out_dir: str, params: RenderParams) -> EncodeResult:
    """Prefect task: write the loop as MP4/GIF/WebP next to the store."""
    result = encode_outputs(store, out_dir, params)
    stage_logger(STAGE).info(
        "stage encode finished: %s", ", ".join(v for v in result.model_dump().values() if v)
    )
    return result
