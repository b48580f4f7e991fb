"""Synthetic steady clips whose truth is known: blinking lights on a textured, noisy background.

Used by ``cinemagraph demo`` (so the first command works with no data), by the
tests (recall and false-positive figures against the truth) and by benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from scipy import ndimage


@dataclass
class Light:
    """A blinking light: a disc or a rectangle whose brightness follows a raised cosine."""

    shape: str  # "disc" or "rect"
    center: tuple[float, float]  # (y, x), pixels
    size: tuple[float, float]  # radius (disc, both equal) or half height/width (rect), pixels
    period: float  # frames
    phase: float = 0.0  # fraction of a period
    color: tuple[int, int, int] = (255, 220, 120)
    glow_px: float = 0.0  # soft glow outside the light: Gaussian fall-off of this width (pixels); 0 = none
    glow_strength: float = 0.6  # the glow's brightness at the light's edge, as a fraction of the light's

    def mask(self, height: int, width: int) -> np.ndarray:
        yy, xx = np.mgrid[0:height, 0:width]
        cy, cx = self.center
        if self.shape == "disc":
            return (yy - cy) ** 2 + (xx - cx) ** 2 <= self.size[0] ** 2
        return (np.abs(yy - cy) <= self.size[0]) & (np.abs(xx - cx) <= self.size[1])

    def brightness(self, t: np.ndarray | float) -> np.ndarray | float:
        """Between 0.1 (off) and 1 (on); smooth, so consecutive frames change gradually."""
        return 0.1 + 0.9 * (0.5 + 0.5 * np.cos(2 * np.pi * (np.asarray(t) / self.period + self.phase))) ** 2

    def glow(self, mask: np.ndarray) -> np.ndarray | None:
        """(H, W) float32 weight of the glow outside ``mask``: ``glow_strength exp(-d^2 / (2 glow_px^2))``
        with ``d`` the distance to the light (pixels); None without glow.  The glow adds light, so it
        blinks with the light and is what a halo around a real lamp looks like."""
        if self.glow_px <= 0:
            return None
        d = ndimage.distance_transform_edt(~mask)
        weight = self.glow_strength * np.exp(-(d**2) / (2.0 * self.glow_px**2))
        weight[mask] = 0.0
        return weight.astype(np.float32)


@dataclass
class SyntheticClip:
    frames: np.ndarray  # (T, H, W, 3) uint8, before encoding
    lights: list[Light]
    fps: float
    path: Path | None = None
    masks: list[np.ndarray] = field(default_factory=list)  # one (H, W) bool per light

    @property
    def animated_truth(self) -> np.ndarray:
        out = np.zeros(self.frames.shape[1:3], bool)
        for m in self.masks:
            out |= m
        return out


def textured_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A static 'facade': smooth colour noise, bricks and window frames; mid-dark values."""
    base = rng.normal(0, 1, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    base = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    img = 70 + 25 * base
    yy, xx = np.mgrid[0:height, 0:width]
    bricks = ((yy % 12) < 1) | (((xx + 10 * ((yy // 12) % 2)) % 20) < 1)
    img[bricks] -= 30
    fine = rng.normal(0, 8, size=(height, width, 1)).astype(np.float32)
    img += fine
    return np.clip(img, 0, 255)


def default_lights(height: int, width: int, glow_px: float = 0.0) -> list[Light]:
    """The demo's three lights (periods 6, 8 and 11 frames); ``glow_px`` > 0 gives each a soft glow."""
    s = min(height, width)
    return [
        Light(
            "disc",
            (0.30 * height, 0.22 * width),
            (0.09 * s, 0.09 * s),
            period=6.0,
            color=(255, 230, 140),
            glow_px=glow_px,
        ),
        Light(
            "rect",
            (0.62 * height, 0.55 * width),
            (0.10 * s, 0.16 * s),
            period=8.0,
            phase=0.3,
            color=(150, 255, 170),
            glow_px=glow_px,
        ),
        Light(
            "disc",
            (0.35 * height, 0.80 * width),
            (0.07 * s, 0.07 * s),
            period=11.0,
            phase=0.6,
            color=(255, 170, 160),
            glow_px=glow_px,
        ),
    ]


def period_lights(height: int, width: int, glow_px: float = 4.0) -> list[Light]:
    """Four lights with soft glow, as neon signs of a night street: periods 8, 10 and 12 frames, and
    9.5 frames (not a whole number of frames, so no window length is a whole number of its periods)."""
    s = min(height, width)
    r = 0.08 * s
    spec = [
        ((0.28, 0.18), 8.0, 0.0, (255, 230, 140)),
        ((0.28, 0.62), 10.0, 0.25, (255, 120, 200)),
        ((0.70, 0.30), 12.0, 0.5, (120, 220, 255)),
        ((0.70, 0.78), 9.5, 0.75, (255, 170, 90)),
    ]
    return [
        Light("disc", (fy * height, fx * width), (r, r), period=p, phase=ph, color=c, glow_px=glow_px)
        for (fy, fx), p, ph, c in spec
    ]


def make_blinking_clip(
    path: str | Path | None = None,
    *,
    height: int = 180,
    width: int = 320,
    n_frames: int = 72,
    fps: float = 24.0,
    noise: float = 2.0,
    lights: list[Light] | None = None,
    seed: int = 0,
    crf: int = 12,
) -> SyntheticClip:
    """Render (and optionally encode to H.264) a steady clip with blinking lights.

    Parameters
    ----------
    path : path-like, optional
        Where to write the clip (any container PyAV writes; ``.mp4`` recommended).
    height, width : int
        Frame size (pixels).
    n_frames : int
        Length (frames).
    fps : float
        Frame rate (frames/s).
    noise : float
        Standard deviation of the per-frame sensor noise (intensity levels).
    lights : list of Light, optional
        Default: three lights with periods 6, 8 and 11 frames (:func:`default_lights`);
        :func:`period_lights` gives periods 8, 10, 12 and 9.5 with soft glow.
    seed : int
        Seed of the texture and noise.
    crf : int
        H.264 quality of the written file.

    Returns
    -------
    SyntheticClip
        The frames before encoding, the lights, and their masks (the truth).
    """
    rng = np.random.default_rng(seed)
    lights = default_lights(height, width) if lights is None else lights
    background = textured_background(height, width, rng)
    masks = [light.mask(height, width) for light in lights]
    glows = [light.glow(m) for light, m in zip(lights, masks, strict=True)]
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        img = background.copy()
        for light, m, g in zip(lights, masks, glows, strict=True):
            lit = np.asarray(light.color, np.float32) * light.brightness(t)
            if g is not None:
                img += g[..., None] * lit
            img[m] = lit
        img += rng.normal(0, noise, size=img.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    clip = SyntheticClip(frames=frames, lights=lights, fps=fps, masks=masks)
    if path is not None:
        clip.path = Path(path)
        write_clip(clip.path, frames, fps, crf=crf)
    return clip


def write_clip(path: str | Path, frames: np.ndarray, fps: float, *, crf: int = 12) -> Path:
    """Encode (T, H, W, 3) uint8 frames as H.264 (yuv444 when the size is odd, else yuv420)."""
    from fractions import Fraction

    path = Path(path)
    height, width = frames.shape[1:3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        stream.options = {"crf": str(crf), "preset": "fast"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
