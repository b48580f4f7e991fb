"""Step 1 of the method: the inputs (an image, an optional mask, an optional direction), checked and loaded.

Light on imports (numpy and Pillow only at module level) so that the CLI can
refuse bad input in one line before Prefect, Dask or OpenCV are imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from schemas.still import IMAGE_SUFFIXES


class StillImageError(ValueError):
    """Bad input of the still-image flow; the message names the file and the problem."""


def is_image_path(path: str | Path) -> bool:
    """True for a JPEG, PNG or WebP file name (what the corpus flow sends to ``make_endless_loop``)."""
    return Path(str(path)).suffix.lower() in IMAGE_SUFFIXES


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, without decoding it all.  Raises :class:`StillImageError`."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise StillImageError(f"{path}: file not found")
    if not p.is_file():
        raise StillImageError(f"{path}: not a file")
    try:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise StillImageError(f"{path}: not an image ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if h < 16 or w < 16:
        raise StillImageError(f"{path}: image is {w}x{h} pixels, too small (at least 16x16)")
    return h, w


def scaled_shape(height: int, width: int, max_long_side: int | None) -> tuple[int, int]:
    if max_long_side is None or max(height, width) <= max_long_side:
        return height, width
    s = max_long_side / max(height, width)
    return max(16, int(round(height * s))), max(16, int(round(width * s)))


def read_image(path: str | Path, max_long_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB uint8 (H, W, 3), downscaled to ``max_long_side``; and the file's (height, width)."""
    from PIL import Image

    source = image_size(path)
    with Image.open(path) as im:
        im = im.convert("RGB")
        h, w = scaled_shape(*source, max_long_side)
        if (h, w) != source:
            im = im.resize((w, h), Image.Resampling.BOX)
        return np.asarray(im, dtype=np.uint8).copy(), source


def read_mask(path: str | Path, source_size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A mask PNG (white/non-zero = may move) of the image's file size, resized to ``shape``; bool.

    Raises :class:`StillImageError` for an unreadable file, a mask of another size, or an empty mask.
    """
    from PIL import Image

    h, w = image_size(path)
    if (h, w) != tuple(source_size):
        raise StillImageError(
            f"{path}: mask is {w}x{h} pixels but the image is {source_size[1]}x{source_size[0]}"
        )
    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA") or "transparency" in im.info:
            a = np.asarray(im.convert("RGBA"))
            values = (a[..., 3] > 127) & (a[..., :3].max(axis=2) > 127)
        else:
            values = np.asarray(im.convert("L")) > 127
        if values.shape != tuple(shape):
            values = np.asarray(Image.fromarray(values.astype(np.uint8) * 255).resize(
                (shape[1], shape[0]), Image.Resampling.NEAREST)) > 127
    if not values.any():
        raise StillImageError(f"{path}: mask is empty (no white pixel): nothing may move")
    return values


def parse_direction(text: str) -> tuple[float, float]:
    """``"DX,DY"`` -> (dx, dy); raises ValueError with a clear message."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        dx, dy = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"direction must be DX,DY (two numbers), got {text!r}") from None
    if not (np.isfinite(dx) and np.isfinite(dy)) or dx * dx + dy * dy < 1e-12:
        raise ValueError(f"direction must be a non-zero finite vector, got {text!r}")
    return dx, dy


def validate_inputs(source: str | Path, mask_path: str | Path | None = None) -> tuple[int, int]:
    """Check the image and the mask before any work; returns the image's (height, width).

    Raises :class:`StillImageError` naming the file: not found, not an image, too small, a mask of
    another size, an empty mask.
    """
    size = image_size(source)
    if mask_path is not None:
        read_mask(mask_path, size, size)
    return size
