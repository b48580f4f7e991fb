"""Synthetic steady clips with digital displays and billboards whose outlines are known.

A textured static facade (:func:`tasks.synthetic.textured_background`) carries
rectangular *displays* that show real photographs (scikit-image's bundled
images: ``astronaut``, ``coffee``, ``chelsea``, ``rocket``, ...) and text drawn
with OpenCV, in four styles:

``slideshow``
    photo crops that switch every few frames (hard cut or a short cross-fade),
    each with a caption;
``video``
    a slow pan across a photo (every pixel changes every frame), cut to
    another photo now and then;
``ticker``
    large text scrolling sideways over a coloured strip;
``text``
    text screens (prices, slogans) that change together with their background
    colour.

Distractors that are *not* displays (the negatives the classifier must learn):
walkers (figures crossing the ground), swaying foliage (textured blobs moving
sinusoidally), lit windows (bright, flicker-free rectangles), printed posters
(static photographs), blinking lights (periodic, as in
:mod:`tasks.synthetic`), sensor noise and, optionally, a gentle camera jitter.

Displays and the static facade items (windows, posters, blinkers) are placed
anywhere in the frame; only the walkers keep to the lower part (the ground), so
the vertical position of a segment is not a shortcut for its class.

Used to train the packaged default classifier
(``flows/train_display_classifier.py``) and by the tests, which evaluate on
seeds the training never saw.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tasks.synthetic import Light, textured_background, write_clip

__all__ = [
    "PHOTO_NAMES",
    "DISPLAY_KINDS",
    "Display",
    "SyntheticDisplayClip",
    "photo",
    "make_display_clip",
]

#: scikit-image sample images used as display content (all ship inside its wheel).
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
)

DISPLAY_KINDS: tuple[str, ...] = ("slideshow", "video", "ticker", "text")

_WORDS = (
    "SALE",
    "OPEN 24H",
    "NEWS",
    "50% OFF",
    "COFFEE",
    "TICKETS",
    "LIVE",
    "$4.99",
    "NEW",
    "CINEMA",
    "METRO",
    "HOTEL",
    "BANK",
    "SUSHI",
    "12:45",
    "EXIT",
    "TODAY",
    "MUSIC",
)

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX)


@functools.cache
def photo(name: str) -> np.ndarray:
    """An RGB uint8 sample image of scikit-image by name (read-only, cached)."""
    import skimage.data

    if name not in PHOTO_NAMES:
        raise ValueError(f"unknown photo {name!r}; choose from {PHOTO_NAMES}")
    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
    img.setflags(write=False)
    return img


@dataclass
class Display:
    """One display: its kind and rectangle ``(y0, x0, height, width)`` in pixels."""

    kind: str
    rect: tuple[int, int, int, int]

    def mask(self, height: int, width: int) -> np.ndarray:
        y0, x0, h, w = self.rect
        m = np.zeros((height, width), bool)
        m[y0 : y0 + h, x0 : x0 + w] = True
        return m


@dataclass
class SyntheticDisplayClip:
    frames: np.ndarray  # (T, H, W, 3) uint8, before encoding
    displays: list[Display]
    display_masks: list[np.ndarray]  # one (H, W) bool per display
    distractor_mask: np.ndarray  # (H, W) bool: pixels any moving distractor covers in some frame
    fps: float
    seed: int
    path: Path | None = None
    distractors: dict[str, int] = field(default_factory=dict)  # kind -> count

    @property
    def display_mask(self) -> np.ndarray:
        """Union of the display rectangles (the truth), (H, W) bool."""
        out = np.zeros(self.frames.shape[1:3], bool)
        for m in self.display_masks:
            out |= m
        return out

    @property
    def static_mask(self) -> np.ndarray:
        """Pixels that belong to neither a display nor a moving distractor, (H, W) bool."""
        return ~self.display_mask & ~self.distractor_mask


# --------------------------------------------------------------------------
# display content
# --------------------------------------------------------------------------


def _crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random crop of a random photo with the aspect of ``(h, w)``, resized to it; float32 0-255."""
    img = photo(PHOTO_NAMES[int(rng.integers(len(PHOTO_NAMES)))])
    ih, iw = img.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    ch = int(min(ih, iw * h / w) * scale)
    cw = max(2, int(ch * w / h))
    ch = max(2, ch)
    y = int(rng.integers(0, ih - ch + 1))
    x = int(rng.integers(0, iw - cw + 1))
    return cv2.resize(img[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


def _put_text(img: np.ndarray, text: str, colour, rng: np.random.Generator, *, fill: float = 0.8) -> None:
    """Draw ``text`` centred in ``img`` (float32, in place), as large as fits ``fill`` of the box."""
    h, w = img.shape[:2]
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    thickness = int(rng.integers(1, 3))
    (tw, th), base = cv2.getTextSize(text, font, 1.0, thickness)
    scale = fill * min(w / max(tw, 1), h / max(th + base, 1))
    scale = max(scale, 0.25)
    thickness = max(1, int(round(thickness * scale)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    org = ((w - tw) // 2, (h + th) // 2 - base // 2)
    ink = np.zeros((h, w), np.uint8)
    cv2.putText(ink, text, org, font, scale, 255, thickness, cv2.LINE_AA)
    _blend(img, ink, colour)


def _blend(img: np.ndarray, ink: np.ndarray, colour) -> None:
    """Paint ``colour`` into float ``img`` (in place) with the uint8 coverage ``ink`` (0-255).

    OpenCV draws anti-aliased text and shapes into 8-bit images only, so shapes
    are drawn as coverage and blended here.
    """
    a = ink.astype(np.float32)[..., None] / 255.0
    img *= 1 - a
    img += a * np.asarray(colour, np.float32)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(0, 255, 3)
    c[int(rng.integers(3))] = rng.uniform(200, 255)
    return c.astype(np.float32)


def _dark_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 90, 3).astype(np.float32)


def _slideshow(rng, n_frames: int, h: int, w: int) -> np.ndarray:
    out = np.empty((n_frames, h, w, 3), np.float32)
    fade = int(rng.integers(0, 3))
    t = 0
    previous = None
    while t < n_frames:
        hold = int(rng.integers(5, 16))
        slide = _crop(rng, h, w)
        if rng.random() < 0.6 and h >= 16:
            band = slide[int(h * 0.7) :]
            band[:] = 0.35 * band + 0.65 * _dark_colour(rng)
            _put_text(band, _WORDS[int(rng.integers(len(_WORDS)))], _bright_colour(rng), rng)
        for k in range(hold):
            if t >= n_frames:
                break
            if previous is not None and k < fade:
                a = (k + 1) / (fade + 1)
                out[t] = (1 - a) * previous + a * slide
            else:
                out[t] = slide
            t += 1
        previous = slide
    return out


def _video(rng, n_frames: int, h: int, w: int) -> np.ndarray:
    out = np.empty((n_frames, h, w, 3), np.float32)
    t = 0
    while t < n_frames:
        shot = int(rng.integers(15, 40))
        img = photo(PHOTO_NAMES[int(rng.integers(len(PHOTO_NAMES)))])
        ih, iw = img.shape[:2]
        zoom = rng.uniform(1.5, 3.0)  # photo pixels per display pixel... at the start
        ch, cw = min(ih - 2, int(h * zoom)), min(iw - 2, int(w * zoom))
        cw = min(cw, int(ch * w / h))
        ch = min(ch, int(cw * h / w))
        y0, x0 = rng.uniform(0, ih - ch), rng.uniform(0, iw - cw)
        vy, vx = rng.uniform(-2.5, 2.5, 2) * zoom
        for _ in range(shot):
            if t >= n_frames:
                break
            y = float(np.clip(y0, 0, ih - ch))
            x = float(np.clip(x0, 0, iw - cw))
            # sub-pixel crop by an affine map from display pixels to photo pixels
            m = np.array([[cw / w, 0, x], [0, ch / h, y]], np.float32)
            out[t] = cv2.warpAffine(
                img, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
            ).astype(np.float32)
            y0, x0 = y0 + vy, x0 + vx
            t += 1
    return out


def _ticker(rng, n_frames: int, h: int, w: int) -> np.ndarray:
    """Words scrolling sideways, each on its own coloured block, text about 0.8 of the strip high."""
    palette = [_dark_colour(rng) for _ in range(2)] + [_bright_colour(rng) * 0.6]
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    thickness_unit = int(rng.integers(1, 3))
    (_, th), base = cv2.getTextSize("SALE", font, 1.0, thickness_unit)
    scale = 0.8 * h / (th + base)
    thickness = max(1, int(round(thickness_unit * scale)))
    speed = rng.uniform(1.5, 4.0)
    length = int(speed * n_frames) + w + 2
    tiles = []
    total = 0
    while total < length:
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        (tw, th), base = cv2.getTextSize(word, font, scale, thickness)
        pad = max(2, int(0.3 * h))
        tile = np.empty((h, tw + 2 * pad, 3), np.float32)
        tile[:] = palette[int(rng.integers(len(palette)))]
        ink = np.zeros((h, tw + 2 * pad), np.uint8)
        cv2.putText(ink, word, (pad, (h + th) // 2 - base // 2), font, scale, 255, thickness, cv2.LINE_AA)
        _blend(tile, ink, _bright_colour(rng))
        tiles.append(tile)
        total += tile.shape[1]
    strip = np.concatenate(tiles, axis=1)
    offset = rng.uniform(0, max(1.0, total - length))
    out = np.empty((n_frames, h, w, 3), np.float32)
    for t in range(n_frames):
        m = np.array([[1, 0, offset + t * speed], [0, 1, 0]], np.float32)
        out[t] = cv2.warpAffine(strip, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return out


def _text(rng, n_frames: int, h: int, w: int) -> np.ndarray:
    out = np.empty((n_frames, h, w, 3), np.float32)
    t = 0
    while t < n_frames:
        hold = int(rng.integers(6, 18))
        screen = np.empty((h, w, 3), np.float32)
        screen[:] = _dark_colour(rng) if rng.random() < 0.5 else _bright_colour(rng)
        ink = _bright_colour(rng) if screen.mean() < 128 else _dark_colour(rng)
        lines = int(rng.integers(1, 3)) if h >= 24 else 1
        for i in range(lines):
            band = screen[i * h // lines : (i + 1) * h // lines]
            _put_text(band, _WORDS[int(rng.integers(len(_WORDS)))], ink, rng)
        out[t : t + hold] = screen
        t += hold
    return out


_CONTENT = {"slideshow": _slideshow, "video": _video, "ticker": _ticker, "text": _text}


# --------------------------------------------------------------------------
# distractors
# --------------------------------------------------------------------------


@dataclass
class _Walker:
    y: float  # feet, pixels
    x0: float
    speed: float  # pixels per frame
    size: float  # figure height, pixels
    colour: np.ndarray
    phase: float

    def draw(self, img: np.ndarray, t: int) -> None:
        x = self.x0 + self.speed * t
        s = self.size
        bob = 0.03 * s * np.sin(2 * np.pi * (t / 12.0 + self.phase))
        feet = self.y + bob
        shape = img.shape[:2]
        swing = 0.18 * s * np.sin(2 * np.pi * (t / 10.0 + self.phase))
        hip = (int(round(x)), int(round(feet - 0.35 * s)))
        legs = np.zeros(shape, np.uint8)
        for sign in (-1, 1):
            foot = (int(round(x + sign * swing)), int(round(feet)))
            cv2.line(legs, hip, foot, 255, max(1, int(0.07 * s)), cv2.LINE_AA)
        _blend(img, legs, (40.0, 40.0, 60.0))
        body = np.zeros(shape, np.uint8)
        centre = (int(round(x)), int(round(feet - 0.55 * s)))
        cv2.ellipse(
            body, centre, (max(1, int(0.16 * s)), max(1, int(0.25 * s))), 0, 0, 360, 255, -1, cv2.LINE_AA
        )
        _blend(img, body, self.colour)
        head = np.zeros(shape, np.uint8)
        cv2.circle(
            head, (int(round(x)), int(round(feet - 0.88 * s))), max(1, int(0.1 * s)), 255, -1, cv2.LINE_AA
        )
        _blend(img, head, (205.0, 170.0, 140.0))

    def footprint(self, height: int, width: int, n_frames: int) -> np.ndarray:
        m = np.zeros((height, width), np.uint8)
        xs = (self.x0, self.x0 + self.speed * (n_frames - 1))
        x_lo, x_hi = min(xs) - 0.4 * self.size, max(xs) + 0.4 * self.size
        y_lo, y_hi = self.y - 1.05 * self.size, self.y + 0.1 * self.size + 2
        m[max(0, int(y_lo)) : max(0, int(np.ceil(y_hi))), max(0, int(x_lo)) : max(0, int(np.ceil(x_hi)))] = 1
        return m.astype(bool)


@dataclass
class _Foliage:
    centre: tuple[float, float]  # (y, x)
    texture: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w) float32
    amplitude: float  # pixels
    period: float  # frames
    phase: float

    def draw(self, img: np.ndarray, t: int) -> None:
        h, w = self.alpha.shape
        H, W = img.shape[:2]
        dx = self.amplitude * np.sin(2 * np.pi * (t / self.period + self.phase))
        dy = 0.3 * self.amplitude * np.sin(2 * np.pi * (t / (1.7 * self.period) + self.phase))
        x0 = self.centre[1] - w / 2 + dx
        y0 = self.centre[0] - h / 2 + dy
        m = np.array([[1, 0, x0], [0, 1, y0]], np.float32)
        tex = cv2.warpAffine(self.texture, m, (W, H), borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(self.alpha, m, (W, H), borderMode=cv2.BORDER_CONSTANT)[..., None]
        img *= 1 - alpha
        img += alpha * tex

    def footprint(self, height: int, width: int) -> np.ndarray:
        h, w = self.alpha.shape
        pad = int(np.ceil(1.1 * self.amplitude)) + 1
        m = np.zeros((height, width), bool)
        y0 = int(self.centre[0] - h / 2) - pad
        x0 = int(self.centre[1] - w / 2) - pad
        m[max(0, y0) : max(0, y0 + h + 2 * pad), max(0, x0) : max(0, x0 + w + 2 * pad)] = True
        return m


def _make_foliage(rng, centre, radius) -> _Foliage:
    size = int(2 * radius) + 2
    cover = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(4, 9))):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.2, 0.35) * size
        cv2.circle(cover, (int(cx), int(cy)), int(r), 255, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(cover.astype(np.float32) / 255.0, (0, 0), 1.0)
    leaves = rng.normal(0, 1, (size, size)).astype(np.float32)
    leaves = cv2.GaussianBlur(leaves, (0, 0), 1.2)
    leaves = (leaves - leaves.mean()) / (leaves.std() + 1e-6)
    base = np.array([rng.uniform(30, 80), rng.uniform(90, 160), rng.uniform(20, 60)], np.float32)
    texture = base[None, None] * (1 + 0.35 * leaves[..., None])
    return _Foliage(
        centre=centre,
        texture=np.clip(texture, 0, 255).astype(np.float32),
        alpha=np.clip(alpha, 0, 1),
        amplitude=float(rng.uniform(1.0, 4.0)),
        period=float(rng.uniform(18.0, 45.0)),
        phase=float(rng.random()),
    )


# --------------------------------------------------------------------------
# layout and rendering
# --------------------------------------------------------------------------


def _place(rng, taken: np.ndarray, h: int, w: int, y_range, x_range, tries: int = 200):
    """A free (y0, x0) for an h x w rectangle (1-pixel margin around taken ones), or None."""
    for _ in range(tries):
        y0 = int(rng.integers(y_range[0], max(y_range[0] + 1, y_range[1] - h)))
        x0 = int(rng.integers(x_range[0], max(x_range[0] + 1, x_range[1] - w)))
        if y0 + h > taken.shape[0] or x0 + w > taken.shape[1]:
            continue
        if not taken[max(0, y0 - 3) : y0 + h + 3, max(0, x0 - 3) : x0 + w + 3].any():
            taken[y0 : y0 + h, x0 : x0 + w] = True
            return y0, x0
    return None


def _count(value: int | None, rng, low: int, high: int) -> int:
    return int(rng.integers(low, high + 1)) if value is None else int(value)


def make_display_clip(
    path: str | Path | None = None,
    *,
    height: int = 180,
    width: int = 320,
    n_frames: int = 72,
    fps: float = 24.0,
    seed: int = 0,
    n_displays: int | None = None,
    kinds: tuple[str, ...] | None = None,
    n_walkers: int | None = None,
    n_foliage: int | None = None,
    n_windows: int | None = None,
    n_posters: int | None = None,
    n_blinkers: int | None = None,
    noise: float = 2.0,
    jitter: float = 0.0,
    crf: int = 12,
) -> SyntheticDisplayClip:
    """Render (and optionally encode to H.264) a steady clip with displays and distractors.

    Parameters
    ----------
    path : path-like, optional
        Where to write the clip (``.mp4``), via :func:`tasks.synthetic.write_clip`.
    height, width : int, default 180, 320
        Frame size (pixels).
    n_frames : int, default 72
        Length (frames).
    fps : float, default 24.0
        Frame rate (frames/s).
    seed : int, default 0
        Seed of the layout, the content and the noise: one seed, one clip.
    n_displays : int, optional
        Number of displays; default 1-3 at random.  Fewer may fit.
    kinds : tuple of str, optional
        Kinds to draw the displays from (:data:`DISPLAY_KINDS`); default all.
    n_walkers, n_foliage, n_windows, n_posters, n_blinkers : int, optional
        Number of each distractor; default a random count (1-4, 0-2, 2-6, 0-2, 1-3).
        Fewer may fit (a walker's path never crosses a display).
    noise : float, default 2.0
        Standard deviation of the per-frame sensor noise (intensity levels).
    jitter : float, default 0.0
        Standard deviation of a smooth random camera translation (pixels); 0 = a
        tripod.  The masks are in the unjittered frame.
    crf : int, default 12
        H.264 quality of the written file.

    Returns
    -------
    SyntheticDisplayClip
        Frames before encoding, the displays and their masks, and the footprint
        of the moving distractors.

    Examples
    --------
    >>> clip = make_display_clip(height=60, width=96, n_frames=12, seed=3, n_displays=1)
    >>> clip.frames.shape, clip.display_mask.dtype, len(clip.displays)
    ((12, 60, 96, 3), dtype('bool'), 1)
    """
    if height < 32 or width < 32:
        raise ValueError(f"clip must be at least 32x32 pixels; got {width}x{height}")
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2; got {n_frames}")
    kinds = DISPLAY_KINDS if kinds is None else tuple(kinds)
    unknown = set(kinds) - set(DISPLAY_KINDS)
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {DISPLAY_KINDS}; got {kinds}")
    rng = np.random.default_rng(seed)
    background = textured_background(height, width, rng)
    taken = np.zeros((height, width), bool)
    ground = int(0.62 * height)  # walkers' feet below this line
    # Displays, windows, posters and blinkers may sit anywhere in the frame (shop screens at
    # street level as well as billboards above it): were displays kept above the walkers, a
    # segment's height in the frame would tell the classifier its class.
    anywhere = (2, height - 2)
    s = min(height, width)

    displays: list[Display] = []
    contents: list[np.ndarray] = []
    for _ in range(_count(n_displays, rng, 1, 3)):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "ticker":
            h, w = int(rng.uniform(0.09, 0.16) * s), int(rng.uniform(0.45, 0.9) * width)
        else:
            h = int(rng.uniform(0.18, 0.42) * s)
            w = int(h * rng.uniform(0.6, 2.2))
        h, w = max(h, 8), min(max(w, 8), width - 4)
        at = _place(rng, taken, h, w, anywhere, (2, width - 2))
        if at is None:
            continue
        displays.append(Display(kind, (at[0], at[1], h, w)))
        content = _CONTENT[kind](rng, n_frames, h, w)
        contents.append(np.clip(content * rng.uniform(0.85, 1.1), 0, 255))
        # a dark bezel around the screen (static, part of the facade)
        y0, x0 = at
        background[max(0, y0 - 2) : y0 + h + 2, max(0, x0 - 2) : x0 + w + 2] = rng.uniform(10, 35)

    counts = {}
    # lit windows: bright, static, flicker-free rectangles
    counts["windows"] = _count(n_windows, rng, 2, 6)
    for _ in range(counts["windows"]):
        h, w = int(rng.uniform(0.06, 0.16) * s), int(rng.uniform(0.05, 0.14) * s)
        at = _place(rng, taken, h, w, anywhere, (2, width - 2))
        if at is not None:
            warm = np.array([rng.uniform(220, 255), rng.uniform(180, 240), rng.uniform(90, 170)], np.float32)
            background[at[0] : at[0] + h, at[1] : at[1] + w] = warm
    # printed posters: static photographs
    counts["posters"] = _count(n_posters, rng, 0, 2)
    for _ in range(counts["posters"]):
        h = int(rng.uniform(0.18, 0.35) * s)
        w = int(h * rng.uniform(0.6, 1.6))
        at = _place(rng, taken, h, w, anywhere, (2, width - 2))
        if at is not None:
            background[at[0] : at[0] + h, at[1] : at[1] + w] = _crop(rng, h, w)

    distractor = np.zeros((height, width), bool)
    # blinking lights (periodic: cyclic, not displays)
    blinkers: list[tuple[Light, np.ndarray]] = []
    counts["blinkers"] = _count(n_blinkers, rng, 1, 3)
    for _ in range(counts["blinkers"]):
        if rng.random() < 0.5:
            shape, ry, rx = "disc", *([int(rng.uniform(0.04, 0.1) * s)] * 2)
        else:
            shape, ry, rx = "rect", int(rng.uniform(0.04, 0.12) * s), int(rng.uniform(0.05, 0.18) * s)
        at = _place(rng, taken, 2 * ry + 1, 2 * rx + 1, anywhere, (2, width - 2))
        if at is not None:
            light = Light(
                shape,
                (at[0] + ry, at[1] + rx),
                (ry, rx),
                period=float(rng.uniform(5, 14)),
                phase=float(rng.random()),
                color=tuple(int(c) for c in _bright_colour(rng)),
            )
            m = light.mask(height, width)
            blinkers.append((light, m))
            distractor |= m
    # swaying foliage
    foliage = []
    counts["foliage"] = _count(n_foliage, rng, 0, 2)
    for _ in range(counts["foliage"]):
        radius = rng.uniform(0.08, 0.16) * s
        box = int(2 * radius) + 12  # the blob and its sway
        at = _place(rng, taken, box, box, (0, height), (0, width))
        if at is None:
            continue
        f = _make_foliage(rng, (at[0] + box / 2, at[1] + box / 2), radius)
        foliage.append(f)
        distractor |= f.footprint(height, width)
    # walkers
    # walkers: on the ground, along paths that pass no display (displays may be low too), so
    # the truth stays clean: a pixel is display, distractor or static facade
    walkers = []
    on_screen = np.zeros((height, width), bool)
    for d in displays:
        on_screen |= d.mask(height, width)
    counts["walkers"] = _count(n_walkers, rng, 1, 4)
    for _ in range(counts["walkers"]):
        for _try in range(20):
            size = rng.uniform(0.18, 0.3) * height
            direction = 1 if rng.random() < 0.5 else -1
            speed = direction * rng.uniform(0.6, 2.5)
            x0 = rng.uniform(0.1, 0.9) * width
            w = _Walker(
                y=float(rng.uniform(min(ground + size, height - 2), height - 1)),
                x0=float(x0),
                speed=float(speed),
                size=float(size),
                colour=rng.uniform(20, 230, 3).astype(np.float32),
                phase=float(rng.random()),
            )
            footprint = w.footprint(height, width, n_frames)
            if not (footprint & on_screen).any():
                walkers.append(w)
                distractor |= footprint
                break

    offsets = np.zeros((n_frames, 2))
    if jitter > 0:
        raw = rng.normal(0, 1, (n_frames + 8, 2))
        kernel = np.hanning(9)
        smooth = np.stack([np.convolve(raw[:, i], kernel, mode="valid") for i in range(2)], 1)[:n_frames]
        offsets = jitter * smooth / (smooth.std(axis=0, keepdims=True) + 1e-9)

    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        img = background.copy()
        for d, content in zip(displays, contents, strict=True):
            y0, x0, h, w = d.rect
            img[y0 : y0 + h, x0 : x0 + w] = content[t]
        for light, m in blinkers:
            img[m] = np.asarray(light.color, np.float32) * light.brightness(t)
        for f in foliage:
            f.draw(img, t)
        for w in walkers:
            w.draw(img, t)
        if jitter > 0:
            m = np.array([[1, 0, offsets[t, 1]], [0, 1, offsets[t, 0]]], np.float32)
            img = cv2.warpAffine(
                img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        img += rng.normal(0, noise, size=img.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    clip = SyntheticDisplayClip(
        frames=frames,
        displays=displays,
        display_masks=[d.mask(height, width) for d in displays],
        distractor_mask=distractor,
        fps=fps,
        seed=seed,
        distractors=counts,
    )
    if path is not None:
        clip.path = Path(path)
        write_clip(clip.path, frames, fps, crf=crf)
    return clip


def write_training_set(
    out_dir: str | Path,
    n_clips: int = 12,
    *,
    seed: int = 1000,
    height: int = 180,
    width: int = 320,
    n_frames: int = 64,
) -> Path:
    """Write ``n_clips`` varied display clips, their mask PNGs and a ``DisplayAnnotations`` JSON.

    Clip ``i`` uses seed ``seed + i``; the variations cycle through the sensor
    noise (1-4 levels), the H.264 quality (crf 12-26) and the display kinds (all
    kinds, then clips of one kind each), so that every kind appears several
    times.  Returns the path of ``annotations.json`` in ``out_dir``.
    """
    from schemas.annotations import AnnotatedClip, DisplayAnnotations

    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1; got {n_clips}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    noises = (2.0, 1.0, 3.0, 4.0)
    crfs = (12, 18, 23, 26)
    kind_sets = (None, ("slideshow",), ("video",), ("ticker", "text"), None, ("text",))
    entries = []
    for i in range(n_clips):
        clip = make_display_clip(
            out / f"clip_{i:03d}.mp4",
            height=height,
            width=width,
            n_frames=n_frames,
            seed=seed + i,
            kinds=kind_sets[i % len(kind_sets)],
            noise=noises[i % len(noises)],
            crf=crfs[(i // 2) % len(crfs)],
        )
        mask_path = out / f"clip_{i:03d}_mask.png"
        cv2.imwrite(str(mask_path), clip.display_mask.astype(np.uint8) * 255)
        entries.append(
            AnnotatedClip(
                clip=Path(clip.path.name),
                mask=Path(mask_path.name),
                window_size=(width, height),
                notes=f"synthetic, seed {seed + i}: {[d.kind for d in clip.displays]}, {clip.distractors}",
            )
        )
    path = out / "annotations.json"
    path.write_text(DisplayAnnotations(clips=entries).model_dump_json(indent=2))
    return path
