"""Slow, readable references of the video-loop energy terms and renderer, and a synthetic clip.

Everything here loops over frames in plain Python/numpy, straight from the
definitions in Liao, Joshi and Hoppe (SIGGRAPH 2013): the time map, the
temporal term, the spatial term as a mean over the loop's whole time span
(lcm of the two periods), its all-pairs form for different periods, and the
rendered loop.  Only for tiny inputs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def naive_phi(p, s, t):
    """Frame shown at output time t by a loop of period p starting at s (Python's % is a true modulo)."""
    return s + (t - s) % p


def naive_temporal(f, w, p, s):
    """w * (||F(s) - F(s+p)||^2 + ||F(s-1) - F(s+p-1)||^2); at the window's ends the missing pair is
    replaced by the same-offset pair one frame further inside, or the other pair is counted twice.

    f : (T, C) one pixel's features.
    """
    t_len = f.shape[0]
    if p == 1:
        return 0.0

    def sq(a, b):
        if 0 <= a and b < t_len:
            return float(np.sum((f[a].astype(np.float64) - f[b]) ** 2))
        return None

    after, before = sq(s, s + p), sq(s - 1, s + p - 1)
    if after is not None and before is not None:
        return w * (after + before)
    if after is not None:
        extra = sq(s + 1, s + p + 1)
        return w * (after + (extra if extra is not None else after))
    extra = sq(s - 2, s + p - 2)
    return w * (before + (extra if extra is not None else before))


def naive_psi(fx, fz, px, sx, pz, sz):
    """Psi(x, z) frame by frame over the loop's time span lcm(px, pz).

    fx, fz : (T, C) features of the two pixels.
    """
    span = math.lcm(px, pz)
    total = 0.0
    for t in range(span):
        a = naive_phi(px, sx, t)
        b = naive_phi(pz, sz, t)
        total += float(np.sum((fx[a].astype(np.float64) - fx[b]) ** 2))
        total += float(np.sum((fz[a].astype(np.float64) - fz[b]) ** 2))
    return total / span


def naive_psi_all_pairs(fx, fz, px, sx, pz, sz):
    """Psi as the mean over every pair (i in x's loop, j in z's loop): the paper's case of different periods."""
    total = 0.0
    for i in range(sx, sx + px):
        for j in range(sz, sz + pz):
            total += float(np.sum((fx[i].astype(np.float64) - fx[j]) ** 2))
            total += float(np.sum((fz[i].astype(np.float64) - fz[j]) ** 2))
    return total / (px * pz)


def naive_render(video, period, start, loop_frames):
    """L(x, t) = V(x, phi(x, t)), with whole-cycle retiming when p does not divide the loop length."""
    t_in, h, w, c = video.shape
    out = np.zeros((loop_frames, h, w, c), np.uint8)
    for y in range(h):
        for x in range(w):
            p, s = int(period[y, x]), int(start[y, x])
            for t in range(loop_frames):
                if p == 1:
                    out[t, y, x] = video[s, y, x]
                elif loop_frames % p == 0:
                    out[t, y, x] = video[naive_phi(p, s, t), y, x]
                else:
                    cycles = max(1, math.floor(loop_frames / p + 0.5))
                    phase = Fraction(t * cycles * p, loop_frames) - s  # exact rational frame position
                    pos = phase % p
                    i0 = math.floor(pos)
                    frac = float(pos - i0)
                    a = video[s + i0, y, x].astype(np.float64)
                    b = video[s + (i0 + 1) % p, y, x].astype(np.float64)
                    v = (1 - frac) * a + frac * b
                    out[t, y, x] = np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------
# a synthetic steady clip with regions of known periods
# --------------------------------------------------------------------------


def steady_loop_clip(height=48, width=64, n_frames=90, periods=(12, 20), noise=2.0, seed=0):
    """Static textured background with sensor noise and regions that repeat exactly with known periods.

    Region 0 is a rectangle on the left with a travelling wave (period periods[0]);
    region 1 a disc on the right whose phase varies across it (period periods[1]).

    Returns
    -------
    frames : (T, H, W, 3) uint8
    masks : list of (H, W) bool, one per region
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    coarse = rng.normal(0, 1, size=(height // 8 + 2, width // 8 + 2, 3))
    ky = np.linspace(0, coarse.shape[0] - 1, height)
    kx = np.linspace(0, coarse.shape[1] - 1, width)
    background = np.stack(
        [coarse[np.round(ky).astype(int)][:, np.round(kx).astype(int), c] for c in range(3)],
        axis=-1,
    )
    background = 90 + 20 * background + rng.normal(0, 6, size=(height, width, 3))
    rect = (yy >= 0.2 * height) & (yy < 0.8 * height) & (xx >= 0.08 * width) & (xx < 0.42 * width)
    cy, cx, r = 0.5 * height, 0.72 * width, 0.28 * min(height, width)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    colours = [np.array([1.0, 0.7, 0.4]), np.array([0.4, 0.8, 1.0])]
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        img = background.copy()
        wave0 = np.sin(2 * np.pi * (t / periods[0] + xx / 10.0))
        img[rect] = 120 + 80 * wave0[rect][:, None] * colours[0]
        phase = np.hypot(yy - cy, xx - cx) / 6.0
        wave1 = np.sin(2 * np.pi * (t / periods[1] + phase))
        img[disc] = 130 + 70 * wave1[disc][:, None] * colours[1]
        img += rng.normal(0, noise, size=img.shape)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames, [rect, disc]
