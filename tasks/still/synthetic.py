"""Synthetic still images with known repetition, for tests, the benchmark and demos.

Each generator draws a motif on a lattice whose vectors are known exactly, adds
texture noise that does not repeat, and returns a :class:`SyntheticStill`
holding the image, the area that repeats and the lattice vectors (image axes:
x right, y down, pixels).  The first lattice vector is the main direction of
repetition: the displacement a loop should find.

- :func:`stripes`: an awning, periodic along one vector only (wavy stripe edges, studs);
- :func:`window_grid`: a facade, a rectangular lattice of windows;
- :func:`rotated_lattice`: tiles on a lattice turned by an angle;
- :func:`staircase`: steps repeating along an oblique vector (one vector only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SyntheticStill", "stripes", "window_grid", "rotated_lattice", "staircase", "noise_image", "GENERATORS"]


@dataclass
class SyntheticStill:
    """A synthetic image and its truth."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool: where the pattern is
    lattice: np.ndarray  # (K, 2) float: lattice vectors (dx, dy), the first is the main one
    extra: dict = field(default_factory=dict)

    @property
    def vector(self) -> np.ndarray:
        """The main lattice vector (dx, dy) in pixels."""
        return self.lattice[0]

    @property
    def direction(self) -> np.ndarray:
        return self.lattice[0] / np.linalg.norm(self.lattice[0])

    @property
    def period(self) -> float:
        return float(np.linalg.norm(self.lattice[0]))


def _grid(height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    return xx, yy


def _finish(rgb, rng, noise, region, background_seed):
    """Add non-repeating texture noise, and a non-periodic background outside ``region``."""
    h, w, _ = rgb.shape
    mask = np.ones((h, w), bool)
    if region is not None:
        y0, y1, x0, x1 = region
        mask[:] = False
        mask[y0:y1, x0:x1] = True
        bg = noise_image(h, w, seed=background_seed).astype(np.float64)
        rgb = np.where(mask[..., None], rgb, bg)
    if noise > 0:
        import cv2

        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
        grain *= noise * 1.5 / max(float(grain.std()), 1e-6)
        rgb = rgb + grain[..., None] + rng.normal(0, noise, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mask


def _palette(*colours):
    return [np.array(c, np.float64) for c in colours]


def stripes(height=160, width=208, period=26.0, angle=0.0, noise=5.0, seed=0, region=None):
    """An awning: stripes perpendicular to a = period * (cos angle, sin angle), wavy edges and studs."""
    rng = np.random.default_rng(seed)
    xx, yy = _grid(height, width)
    th = np.deg2rad(angle)
    d = np.array([np.cos(th), np.sin(th)])
    u = (xx * d[0] + yy * d[1]) / period
    v = -xx * d[1] + yy * d[0]
    phase = u - np.floor(u)
    edge = 0.5 + 0.12 * np.sin(2 * np.pi * v / 23.0) + 0.06 * np.sin(2 * np.pi * v / 9.0)
    red, cream, dark = _palette((190, 40, 45), (235, 225, 200), (60, 30, 30))
    rgb = np.where((phase < edge)[..., None], red, cream)
    studs = rng.uniform(0, max(height, width), 6)
    for s in studs:
        r2 = ((phase - 0.25) * period) ** 2 + (v - s) ** 2
        rgb = np.where((r2 < 9.0)[..., None], dark, rgb)
    img, mask = _finish(rgb, rng, noise, region, seed + 1)
    return SyntheticStill("stripes", img, mask, np.array([period * d]))


def _lattice_coords(xx, yy, a, b):
    m = np.array([[a[0], b[0]], [a[1], b[1]]], np.float64)
    inv = np.linalg.inv(m)
    s = inv[0, 0] * xx + inv[0, 1] * yy
    t = inv[1, 0] * xx + inv[1, 1] * yy
    return s - np.floor(s), t - np.floor(t)


def window_grid(height=176, width=224, a=(34.0, 0.0), b=(0.0, 48.0), noise=5.0, seed=0, region=None):
    """A facade: windows (frame, glass, sill) on the lattice spanned by ``a`` and ``b``."""
    rng = np.random.default_rng(seed)
    xx, yy = _grid(height, width)
    s, t = _lattice_coords(xx, yy, a, b)
    wall, frame, glass, sill = _palette((200, 170, 130), (245, 245, 240), (50, 70, 110), (120, 100, 80))
    rgb = np.broadcast_to(wall, (height, width, 3)).copy()
    in_frame = (s > 0.2) & (s < 0.8) & (t > 0.15) & (t < 0.75)
    in_glass = (s > 0.27) & (s < 0.73) & (t > 0.22) & (t < 0.68)
    in_sill = (s > 0.15) & (s < 0.85) & (t >= 0.75) & (t < 0.82)
    bar = in_glass & (np.abs(s - 0.5) < 0.03)
    rgb[in_frame] = frame
    rgb[in_glass] = glass
    rgb[bar] = frame
    rgb[in_sill] = sill
    img, mask = _finish(rgb, rng, noise, region, seed + 1)
    return SyntheticStill("window_grid", img, mask, np.array([a, b], np.float64))


def rotated_lattice(height=176, width=224, period=(30.0, 40.0), angle=12.0, noise=5.0, seed=0, region=None):
    """Tiles (a disc and a bar on a plate) on a rectangular lattice turned by ``angle`` degrees."""
    th = np.deg2rad(angle)
    a = period[0] * np.array([np.cos(th), np.sin(th)])
    b = period[1] * np.array([-np.sin(th), np.cos(th)])
    rng = np.random.default_rng(seed)
    xx, yy = _grid(height, width)
    s, t = _lattice_coords(xx, yy, a, b)
    grout, plate, disc, bar = _palette((90, 90, 95), (170, 200, 190), (200, 80, 40), (30, 60, 120))
    rgb = np.broadcast_to(grout, (height, width, 3)).copy()
    rgb[(s > 0.08) & (s < 0.92) & (t > 0.08) & (t < 0.92)] = plate
    rgb[((s - 0.35) * period[0]) ** 2 + ((t - 0.4) * period[1]) ** 2 < 36] = disc
    rgb[(s > 0.6) & (s < 0.8) & (t > 0.2) & (t < 0.8)] = bar
    img, mask = _finish(rgb, rng, noise, region, seed + 1)
    return SyntheticStill("rotated_lattice", img, mask, np.array([a, b]), {"angle": angle})


def staircase(height=176, width=224, step=(30.0, 18.0), noise=5.0, seed=0, region=None):
    """Steps of width step[0] rising by step[1]: periodic along (step[0], -step[1]) only."""
    w, h = step
    rng = np.random.default_rng(seed)
    xx, yy = _grid(height, width)
    k = np.floor(xx / w)
    xs = xx - k * w  # position within a step
    ys = yy + k * h  # height relative to the step's own tread
    c = 0.55 * height + (width / w) * h * 0.45
    sky, tread, stone, mortar, knob = _palette((150, 180, 210), (230, 220, 190), (140, 120, 100), (90, 80, 70),
                                               (40, 40, 40))
    rgb = np.where((ys < c)[..., None], sky, stone)
    rgb = np.where(((ys >= c) & (ys < c + 4))[..., None], tread, rgb)
    rgb = np.where(((ys >= c + 4) & (np.mod(ys - c, 12) < 2))[..., None], mortar, rgb)
    rgb = np.where(((ys >= c + 4) & (xs < 2))[..., None], mortar, rgb)
    rgb = np.where((((xs - w * 0.6) ** 2 + (ys - c + 9) ** 2) < 10)[..., None], knob, rgb)
    img, mask = _finish(rgb, rng, noise, region, seed + 1)
    return SyntheticStill("staircase", img, mask, np.array([[w, -h]], np.float64))


def noise_image(height=160, width=208, seed=0) -> np.ndarray:
    """Smooth random blobs and a gradient: an image with no repeating structure (uint8)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
    blobs = cv2.GaussianBlur(base, (0, 0), 9.0)
    blobs = (blobs - blobs.mean()) / max(float(blobs.std()), 1e-6)
    xx, yy = _grid(height, width)
    ramp = (xx / width * 60 + yy / height * 40)[..., None]
    fine = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), 1.2) * 25
    return np.clip(110 + ramp + 45 * blobs + fine, 0, 255).astype(np.uint8)


GENERATORS = {"stripes": stripes, "window_grid": window_grid, "rotated_lattice": rotated_lattice,
              "staircase": staircase}
