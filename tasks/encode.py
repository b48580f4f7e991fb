"""Encode the stored ``loop`` as cinemagraph.mp4 (H.264), .gif and optionally .webp.

Files are written under a temporary name and renamed when complete, so a
killed encode never leaves a truncated file under the final name.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from PIL import Image
from prefect import task
from scipy import ndimage
from scipy.spatial import cKDTree

from schemas import names as N
from schemas.config import RenderParams
from schemas.results import EncodeResult
from tasks.runtime import stage_logger
from tasks.store import open_store, read_attrs, require
from tasks.threads import pin_codec_threads
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
        pin_codec_threads(stream.codec_context)  # a one-thread corpus worker: one libx264 thread
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


#: Palette entries of a GIF; index 255 is transparent (pixels unchanged since the previous frame).
_COLOURS = 255
_TRANSPARENT = 255
#: Share of the palette given to the animated content when there is a frozen part too.
_ANIMATED_SHARE = 0.625
#: Pixels sampled (from all frames) to fit the animated part of the palette.
_PALETTE_SAMPLES = 60000


class GifStats(NamedTuple):
    """What :func:`write_gif` measured on the indices it wrote (at the GIF's size)."""

    path: Path
    mean_abs_error: float | None  # inside the animated pixels, 0-255
    max_abs_error: float | None
    dithered: list[str]  # parts dithered: "frozen", "animated"


def _cluster_colours(pixels: np.ndarray, n: int, iterations: int = 10) -> np.ndarray:
    """Up to ``n`` colours (k, 3) float64 that lower the squared error of ``pixels`` (m, 3): Pillow's median
    cut, then Lloyd (k-means) iterations with exact nearest-colour assignment (looked up once per distinct
    colour: a loop's pixels repeat their colours)."""
    pixels = pixels.reshape(-1, 3)
    keys = _colour_keys(pixels)
    unique = _distinct(keys)
    unique_rgb = _key_rgb(unique).astype(np.float64)
    if len(unique) <= n:  # every colour its own entry, in (r, g, b) order
        return unique_rgb
    which = np.searchsorted(unique, keys)  # pixel -> its colour's row in unique_rgb
    strip = Image.fromarray(np.ascontiguousarray(pixels[None].astype(np.uint8)))
    quantized = strip.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    used = len(quantized.getcolors(n) or [])
    centres = np.asarray(quantized.getpalette()[: 3 * used], np.float64).reshape(-1, 3)
    x = pixels.astype(np.float64)
    for _ in range(iterations):
        _, nearest = cKDTree(centres).query(unique_rgb)
        label = nearest[which]
        counts = np.bincount(label, minlength=len(centres))
        keep = counts > 0
        for c in range(3):
            sums = np.bincount(label, weights=x[:, c], minlength=len(centres))
            centres[keep, c] = sums[keep] / counts[keep]
    return centres


def gif_palette(frames: np.ndarray, animated: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 255-colour palette (k, 3) uint8 for a loop whose pixels outside ``animated`` never change.

    The frozen part gets colours fitted to the first frame's frozen pixels, the
    animated part (``_ANIMATED_SHARE`` of the palette, or all of it) colours
    fitted to the animated pixels of all frames (median cut refined by k-means, on a sample), so a
    small blinking light keeps its own lit and dark colours instead of
    sharing the few a palette of the whole picture would give it.
    """
    rng = np.random.default_rng(seed)
    anim_px = frames[:, animated].reshape(-1, 3)
    frozen_px = frames[0][~animated].reshape(-1, 3)
    if anim_px.size == 0:
        n_anim = 0
    else:
        n_anim = _COLOURS if frozen_px.size == 0 else int(_COLOURS * _ANIMATED_SHARE)
    parts = []
    if n_anim:
        if len(anim_px) > _PALETTE_SAMPLES:
            anim_px = anim_px[rng.choice(len(anim_px), _PALETTE_SAMPLES, replace=False)]
        parts.append(_cluster_colours(anim_px, n_anim))
    if frozen_px.size:
        if len(frozen_px) > _PALETTE_SAMPLES:
            frozen_px = frozen_px[rng.choice(len(frozen_px), _PALETTE_SAMPLES, replace=False)]
        parts.append(_cluster_colours(frozen_px, _COLOURS - sum(len(p) for p in parts)))
    palette = np.concatenate(parts) if parts else np.zeros((1, 3))
    return np.clip(np.rint(palette), 0, 255).astype(np.uint8)


def _palette_image(palette: np.ndarray) -> Image.Image:
    im = Image.new("P", (1, 1))
    flat = np.zeros((256, 3), np.uint8)
    flat[: len(palette)] = palette
    flat[len(palette) :] = palette[0]  # unused entries (and the transparent one) repeat a used colour
    im.putpalette(flat.ravel().tolist())
    return im


def _index(frame: np.ndarray, palette_im: Image.Image, dither: bool) -> np.ndarray:
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    idx = np.array(Image.fromarray(frame).quantize(palette=palette_im, dither=mode))
    idx[idx == _TRANSPARENT] = 0  # same colour; index 255 means "unchanged"
    return idx


def _colour_keys(pixels: np.ndarray) -> np.ndarray:
    """Each row of ``pixels`` (n, 3) uint8 as one integer ``r << 16 | g << 8 | b`` (int32): ordering the
    keys orders the colours as rows (r first)."""
    return (pixels[:, 0].astype(np.int32) << 16) | (pixels[:, 1].astype(np.int32) << 8) | pixels[:, 2]


def _key_rgb(keys: np.ndarray) -> np.ndarray:
    """The colours (k, 3) int32 of :func:`_colour_keys` keys."""
    return np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct colour keys, ascending: marks in a table of all 2**24 colours (16 MiB), no sort."""
    present = np.zeros(1 << 24, bool)
    present[keys] = True
    return np.flatnonzero(present).astype(np.int32)


def _nearest_colours(palette: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Index of the nearest ``palette`` colour (at most 256 of them) of every row of ``pixels`` (n, 3) uint8,
    as uint8.

    The nearest colour is a function of the colour alone, so each distinct colour is looked up once
    (a loop repeats its colours many times: a forward-backward display shows every frame twice) and the
    answers are read back through a table of all 2**24 colours.
    """
    if len(palette) > 256:
        raise ValueError(f"a GIF palette has at most 256 colours, not {len(palette)}")
    keys = _colour_keys(pixels)
    colours = _distinct(keys)
    _, nearest = cKDTree(palette.astype(np.float64)).query(_key_rgb(colours).astype(np.float64))
    table = np.zeros(1 << 24, np.uint8)
    table[colours] = nearest
    return table[keys]


def _abs_error(palette: np.ndarray, idx: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error of the indexed image ``idx`` against ``truth`` inside ``mask`` (0-255)."""
    return float(np.abs(palette[idx[mask]].astype(np.int16) - truth[mask]).mean())


def _blurred_error(shown: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error after a 3x3 box blur of both (what the eye sees of a dithered pattern), in ``mask``."""
    import cv2

    def blur(x):
        return cv2.blur(x.astype(np.float32), (3, 3))

    return float(np.abs(blur(shown) - blur(truth))[mask].mean())


def _changed_pixels(frames: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of ``frames`` (T, H, W, 3) that differ from the first frame in some frame.

    Frame by frame, so no (T, H, W, 3) temporary is made (a 264-frame loop at 480x270 would need 100 MB).
    """
    first = frames[0]
    differs = np.zeros(first.shape, bool)
    for frame in frames[1:]:
        differs |= frame != first
    return differs.any(axis=2)


def write_gif(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    max_long_side: int | None = 480,
    animated: np.ndarray | None = None,
) -> GifStats:
    """Looping GIF: a palette fitted to the animated content and the frozen frame, frames after the first
    stored as the rectangles that changed.

    Parameters
    ----------
    path : path-like
    frames : ndarray, (T, H, W, 3) uint8
        The loop; pixels outside the animated mask are the same in every frame.
    fps : float
        Frames per second (GIF delays are whole hundredths of a second, at least 20 ms here).
    max_long_side : int, optional
        Downscale so the longer side is at most this (pixels).
    animated : ndarray, (H, W) bool, optional
        The animated mask; default: the pixels that change over the loop.

    Notes
    -----
    The frozen pixels are indexed once (from the first frame) and reused in
    every frame, so they stay identical.  After the first frame a frame is
    stored as the rectangle that changed since the previous one (Pillow's
    writer crops it), its unchanged pixels transparent (index 255), so the
    frozen part costs nothing after the first frame.  Floyd-Steinberg dithering is used for the frozen part and for the
    animated part (decided once for all frames) only when it lowers that
    part's error after a 3x3 blur.  The mean and largest absolute error
    against ``frames`` (at the GIF's size) inside the animated pixels are
    returned.
    """
    path = Path(path)
    tmp = _tmp(path)
    size = scaled_size(frames.shape[1], frames.shape[2], max_long_side)
    small = np.stack([resize(f, size) for f in frames])
    changed = _changed_pixels(small)
    if animated is not None:
        mask = resize(animated.astype(np.uint8), size).astype(bool) if animated.shape != size else animated
        changed |= mask  # the resize mixes animated pixels into their neighbours
    else:
        mask = changed
    palette = gif_palette(small, changed)
    pal_im = _palette_image(palette)
    dithered = []
    frozen = ~changed
    static = _index(small[0], pal_im, False)
    if frozen.any():
        plain_err = _blurred_error(palette[static], small[0], frozen)
        dith = _index(small[0], pal_im, True)
        if _blurred_error(palette[dith], small[0], frozen) < plain_err:
            static, dithered = dith, ["frozen"]
    indices = np.broadcast_to(static, small.shape[:3]).copy()
    # the box of the changed pixels: outside it every frame holds the same indices
    changed_box = ndimage.find_objects(changed.astype(np.uint8))
    if changed_box:
        # the animated pixels: exact nearest colours, or Floyd-Steinberg on the animated part's box when
        # that lowers their error (measured on up to 8 frames spread over the loop)
        nearest = _nearest_colours(palette, small[:, changed].reshape(-1, 3))
        indices[:, changed] = nearest.reshape(len(small), -1)
        ys, xs = changed_box[0]
        inside = changed[ys, xs]
        probe = np.linspace(0, len(small) - 1, min(8, len(small))).astype(int)
        plain = np.mean([_abs_error(palette, indices[t, ys, xs], small[t, ys, xs], inside) for t in probe])
        dith = np.mean(
            [
                _abs_error(palette, _index(small[t, ys, xs], pal_im, True), small[t, ys, xs], inside)
                for t in probe
            ]
        )
        if dith < plain:
            dithered.append("animated")
            for t in range(len(small)):
                box = indices[t, ys, xs]
                box[inside] = _index(small[t, ys, xs], pal_im, True)[inside]
    err = None
    if mask.any():
        diff = np.abs(palette[indices[:, mask]].astype(np.int16) - small[:, mask])
        err = (float(diff.mean()), float(diff.max()))
    # after the first frame, what did not change since the previous frame is transparent (the viewer keeps
    # it) inside the box of the change; outside it, the true indices, so that Pillow's writer, which
    # compares consecutive frames as given, crops every frame to (the union of two) boxes of change
    # (only the box of the changed pixels is compared)
    shown = indices.copy()
    if changed_box:
        cy, cx = changed_box[0]
        for t in range(1, len(indices)):
            same = indices[t, cy, cx] == indices[t - 1, cy, cx]
            box = ndimage.find_objects((~same).astype(np.uint8))
            if box:
                ys, xs = box[0]
                shown[t, cy, cx][ys, xs][same[ys, xs]] = _TRANSPARENT
    images = []
    for idx in shown:
        im = Image.fromarray(idx, mode="P")
        im.putpalette(pal_im.getpalette())
        images.append(im)
    duration = max(20, int(round(1000 / fps)))
    images[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=duration,
        disposal=1,  # keep the canvas: a frame draws only the rectangle that changed
        optimize=False,  # one palette for every frame, never reordered
        transparency=_TRANSPARENT,
    )
    os.replace(tmp, path)
    return GifStats(path, None if err is None else err[0], None if err is None else err[1], dithered)


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
    mp4 = write_mp4(out / N.MP4_NAME, frames, fps, params.crf)
    result = EncodeResult(mp4=str(mp4), mp4_bytes=mp4.stat().st_size)
    if params.write_gif:
        animated = ds[N.ANIMATED_MASK].values.astype(bool) if N.ANIMATED_MASK in ds else None
        gif = write_gif(out / N.GIF_NAME, frames, fps, params.gif_max_long_side, animated)
        result.gif, result.gif_bytes = str(gif.path), gif.path.stat().st_size
        result.gif_mean_abs_error = None if gif.mean_abs_error is None else round(gif.mean_abs_error, 3)
        result.gif_max_abs_error = gif.max_abs_error
        result.gif_dither = gif.dithered
    if params.write_webp:
        result.webp = str(write_webp(out / N.WEBP_NAME, frames, fps))
    return result


@task(name="encode_outputs", retries=2, retry_delay_seconds=[2, 10])
def encode_outputs_task(store: str, out_dir: str, params: RenderParams) -> EncodeResult:
    """Prefect task: write the loop as MP4/GIF/WebP next to the store."""
    result = encode_outputs(store, out_dir, params)
    files = ", ".join(v for v in (result.mp4, result.gif, result.webp) if v)
    gif = "" if result.gif_mean_abs_error is None else f"; GIF error {result.gif_mean_abs_error:.2f} levels"
    stage_logger(STAGE).info("stage encode finished: %s%s", files, gif)
    return result
