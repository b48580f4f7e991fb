"""A synthetic tripod clip of a street at night whose truth is known.

The scene of issue 18, made to test video loops (``loop_method = "video_loop"``)
and to benchmark them:

* a brick facade (:func:`tasks.synthetic.textured_background`) with mild
  per-frame sensor noise: the *static background*, which must stay still;
* three neon signs made of **thin strokes** (3, 4 and 5 pixels wide, whatever
  the frame size) that blink on and off with periods of **8, 10 and 12
  frames**: content that loops seamlessly in any multiple of its period;
* a billboard slideshow of photographs (scikit-image's sample images, via
  :func:`tasks.synthetic_displays._slideshow`);
* a scrolling ticker (:func:`tasks.synthetic_displays._ticker`);
* walkers crossing the ground (:class:`tasks.synthetic_displays._Walker`).

Rendered in float, quantised, and encoded as real H.264 by
:func:`tasks.synthetic.write_clip`.  Cheap at small sizes (160x96, 48 frames:
well under a second) so the tests can afford it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from tasks.synthetic import textured_background, write_clip
from tasks.synthetic_displays import _slideshow, _ticker, _Walker

__all__ = ["NEON_PERIODS", "NeonSign", "CityNightClip", "make_city_night_clip"]

#: Blink periods of the three neon signs (frames).
NEON_PERIODS: tuple[int, ...] = (8, 10, 12)

# Stroke shapes in the unit box of a sign, (x, y) in [0, 1]; drawn as open polylines.
_GLYPHS: tuple[tuple[tuple[tuple[float, float], ...], ...], ...] = (
    # a framed sign: the rectangle outline (long thin horizontal and vertical strokes) and a bar
    (((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)), ((0.22, 0.5), (0.78, 0.5))),
    # a zigzag tube
    (((0, 0.1), (0.25, 0.9), (0.5, 0.1), (0.75, 0.9), (1, 0.1)),),
    # a long bracket-shaped tube
    (((0, 1), (0, 0), (1, 0), (1, 1)), ((0.5, 0), (0.5, 1))),
)


@dataclass
class NeonSign:
    """One blinking neon sign: strokes of one width that are lit for half of every period."""

    period: int  # frames
    phase: int  # frames; lit when (t + phase) % period < period // 2
    stroke_width: int  # pixels
    color: tuple[float, float, float]  # RGB when lit
    mask: np.ndarray  # (H, W) bool, the stroke pixels

    def lit(self, t: np.ndarray | int) -> np.ndarray | bool:
        """Whether the sign is lit in frame ``t`` (array or scalar)."""
        return (np.asarray(t) + self.phase) % self.period < self.period // 2


@dataclass
class CityNightClip:
    """What :func:`make_city_night_clip` wrote, and its truth (all masks ``(H, W)`` bool)."""

    path: Path
    fps: float
    n_frames: int
    signs: list[NeonSign]
    billboard_mask: np.ndarray
    ticker_mask: np.ndarray
    walker_mask: np.ndarray  # every pixel a walker covers in some frame (bounding region of its path)
    static_mask: np.ndarray  # facade pixels at least ``margin`` pixels from anything that moves
    noise_sigma: float
    margin: int
    meta: dict = field(default_factory=dict)

    @property
    def stroke_mask(self) -> np.ndarray:
        """Union of the neon strokes."""
        out = np.zeros_like(self.static_mask)
        for s in self.signs:
            out |= s.mask
        return out

    @property
    def moving_mask(self) -> np.ndarray:
        """Everything that changes beyond noise: strokes, billboard, ticker, walkers."""
        return self.stroke_mask | self.billboard_mask | self.ticker_mask | self.walker_mask

    @property
    def periods(self) -> dict[int, np.ndarray]:
        """Blink period (frames) -> stroke mask of that sign."""
        return {s.period: s.mask for s in self.signs}


def _rect_mask(height: int, width: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((height, width), bool)
    m[y0 : y0 + h, x0 : x0 + w] = True
    return m


def _draw_strokes(
    height: int, width: int, box: tuple[int, int, int, int], glyph, thickness: int
) -> np.ndarray:
    """Hard-edged polylines of ``glyph`` scaled into ``box`` = (y0, x0, h, w), exactly ``thickness`` wide.

    A pixel is on the stroke when its centre lies within ``thickness / 2`` of a
    segment (round caps and joins).  Segment ends sit on pixel centres for odd
    widths and between them for even ones, so a straight stroke covers exactly
    ``thickness`` pixels across (OpenCV's ``thickness`` gives 5 pixels for 3 or 4).
    """
    y0, x0, h, w = box
    inset = thickness / 2 + 1  # keep the stroke's full width inside the box
    shift = 0.5 if thickness % 2 == 0 else 0.0
    yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
    dist = np.full((h, w), np.inf)
    for line in glyph:
        pts = [
            (
                x0 + shift + round(inset + u * (w - 1 - 2 * inset)),
                y0 + shift + round(inset + v * (h - 1 - 2 * inset)),
            )
            for u, v in line
        ]
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
            dx, dy = bx - ax, by - ay
            along = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            dist = np.minimum(dist, np.hypot(xx - ax - along * dx, yy - ay - along * dy))
    out = np.zeros((height, width), bool)
    out[y0 : y0 + h, x0 : x0 + w] = dist <= thickness / 2 - 1e-6 + (0.0 if thickness % 2 == 0 else 1e-3)
    return out


def _draw_walker(img: np.ndarray, walker: _Walker, t: int) -> None:
    """Draw ``walker`` into ``img`` through a crop around it (the full-frame draw is 20x slower)."""
    s = walker.size
    x = walker.x0 + walker.speed * t
    y0, y1 = max(0, int(walker.y - 1.2 * s) - 2), min(img.shape[0], int(walker.y + 0.1 * s) + 4)
    x0, x1 = max(0, int(x - 0.6 * s) - 2), min(img.shape[1], int(x + 0.6 * s) + 3)
    if y1 > y0 and x1 > x0:
        replace(walker, y=walker.y - y0, x0=walker.x0 - x0).draw(img[y0:y1, x0:x1], t)


def make_city_night_clip(
    path: str | Path,
    *,
    width: int = 640,
    height: int = 360,
    n_frames: int = 120,
    seed: int = 0,
    noise_sigma: float = 2.0,
    fps: float = 24.0,
    n_walkers: int = 2,
    margin: int = 3,
    crf: int = 12,
) -> CityNightClip:
    """Render and encode (H.264) a tripod clip of a street at night with known truth.

    Parameters
    ----------
    path : path-like
        Where to write the clip (``.mp4``).
    width, height : int, default 640, 360
        Frame size (pixels); at least 96x64.
    n_frames : int, default 120
        Length (frames); at least 24 (two periods of the slowest sign).
    seed : int, default 0
        Seed of the facade, the photographs, the ticker text, the walkers, the
        signs' phases and the noise: one seed, one clip.
    noise_sigma : float, default 2.0
        Standard deviation of the per-frame Gaussian sensor noise (intensity
        levels), on every pixel.
    fps : float, default 24.0
        Frame rate (frames/s).
    n_walkers : int, default 2
        Number of walkers crossing the ground.
    margin : int, default 3
        Pixels between anything that moves and :attr:`CityNightClip.static_mask`
        (H.264 rings a few pixels around sharp moving edges).
    crf : int, default 12
        H.264 quality of the written file.

    Returns
    -------
    CityNightClip
        The path and the truth: one :class:`NeonSign` per period of
        :data:`NEON_PERIODS` (stroke masks of widths 3, 4 and 5 pixels), the
        billboard, ticker and walker masks and the static background mask.

    Examples
    --------
    >>> clip = make_city_night_clip("city.mp4", width=160, height=96, n_frames=24)  # doctest: +SKIP
    >>> sorted(clip.periods), clip.stroke_mask.shape  # doctest: +SKIP
    ([8, 10, 12], (96, 160))
    """
    if width < 96 or height < 64:
        raise ValueError(f"clip must be at least 96x64 pixels; got {width}x{height}")
    if n_frames < 2 * max(NEON_PERIODS):
        raise ValueError(f"n_frames must be >= {2 * max(NEON_PERIODS)}; got {n_frames}")
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be >= 0; got {noise_sigma}")
    rng = np.random.default_rng(seed)
    H, W = height, width
    background = textured_background(H, W, rng)

    def box(fy0, fx0, fy1, fx1):
        y0, x0 = int(fy0 * H), int(fx0 * W)
        return y0, x0, int(fy1 * H) - y0, int(fx1 * W) - x0

    # the billboard, upper left, with a dark frame around it (part of the facade)
    by0, bx0, bh, bw = box(0.06, 0.04, 0.46, 0.36)
    billboard = np.clip(_slideshow(rng, n_frames, bh, bw) * rng.uniform(0.85, 1.0), 0, 255)
    background[max(0, by0 - 2) : by0 + bh + 2, max(0, bx0 - 2) : bx0 + bw + 2] = 18.0
    # the neon signs: thin strokes on dark panels
    sign_boxes = (box(0.07, 0.42, 0.33, 0.62), box(0.07, 0.68, 0.33, 0.96), box(0.38, 0.44, 0.53, 0.94))
    colors = ((255.0, 60.0, 140.0), (80.0, 220.0, 255.0), (255.0, 200.0, 60.0))
    signs = []
    for period, glyph, (y0, x0, h, w), thickness, color in zip(
        NEON_PERIODS, _GLYPHS, sign_boxes, (3, 4, 5), colors, strict=True
    ):
        background[y0 : y0 + h, x0 : x0 + w] *= 0.45  # dark backing board
        mask = _draw_strokes(H, W, (y0, x0, h, w), glyph, thickness)
        signs.append(NeonSign(period, int(rng.integers(period)), thickness, color, mask))
    # the ticker, a strip across the middle
    ty0, tx0, th, tw = box(0.545, 0.04, 0.545, 0.96)
    th = max(8, int(0.1 * H))
    ticker = np.clip(_ticker(rng, n_frames, th, tw), 0, 255)
    # walkers on the ground (lower part), crossing the frame
    walkers = []
    for _ in range(n_walkers):
        size = rng.uniform(0.2, 0.24) * H
        direction = 1 if rng.random() < 0.5 else -1
        walkers.append(
            _Walker(
                y=float(rng.uniform(0.93, 0.98) * H),
                x0=float(rng.uniform(0.15, 0.85) * W),
                speed=float(direction * rng.uniform(0.4, 1.2) * W / 320),
                size=float(size),
                colour=rng.uniform(40, 230, 3).astype(np.float32),
                phase=float(rng.random()),
            )
        )

    frames = np.empty((n_frames, H, W, 3), np.uint8)
    for t in range(n_frames):
        img = background.copy()
        img[by0 : by0 + bh, bx0 : bx0 + bw] = billboard[t]
        img[ty0 : ty0 + th, tx0 : tx0 + tw] = ticker[t]
        for s in signs:
            colour = np.asarray(s.color, np.float32)
            img[s.mask] = colour if s.lit(t) else 0.12 * colour + 8.0  # a dark tube when off
        for w in walkers:
            _draw_walker(img, w, t)
        if noise_sigma > 0:
            img += noise_sigma * rng.standard_normal(size=img.shape, dtype=np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    path = write_clip(path, frames, fps, crf=crf)

    billboard_mask = _rect_mask(H, W, by0, bx0, bh, bw)
    ticker_mask = _rect_mask(H, W, ty0, tx0, th, tw)
    walker_mask = np.zeros((H, W), bool)
    for w in walkers:
        walker_mask |= w.footprint(H, W, n_frames)
    moving = billboard_mask | ticker_mask | walker_mask
    for s in signs:
        moving |= s.mask
    near = cv2.dilate(moving.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0
    return CityNightClip(
        path=path,
        fps=fps,
        n_frames=n_frames,
        signs=signs,
        billboard_mask=billboard_mask,
        ticker_mask=ticker_mask,
        walker_mask=walker_mask,
        static_mask=~near,
        noise_sigma=float(noise_sigma),
        margin=margin,
        meta={"seed": seed, "width": W, "height": H, "crf": crf},
    )
