"""Step 5 of the method: the main direction of repetition, found automatically (Halperin et al. 2021, Sec. 4.3).

Shi-Tomasi corners are described by a small patch of the per-pixel features;
pairs of corners that are each other's nearest neighbour in that description
(best buddies) are two copies of one thing, and each pair votes for the
direction of its offset (modulo 180 degrees).  The most voted direction wins;
its votes and those of the opposite direction are removed and the vote is
repeated, for at most ``max_suggestions`` directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.still import DirectionParams


@dataclass
class DirectionSuggestion:
    direction: np.ndarray  # (2,) unit vector (dx, dy), image axes
    angle: float  # degrees in [0, 180)
    votes: int


def corner_descriptors(features, corners, radius):
    """Feature patches around ``corners`` (N, 2) x, y, sampled every 3 px: (N, n_samples * C)."""
    h, w, _ = features.shape
    offs = np.arange(-radius, radius + 1, 3)
    oy, ox = np.meshgrid(offs, offs, indexing="ij")
    xs = np.clip(np.rint(corners[:, 0:1] + ox.ravel()[None, :]).astype(int), 0, w - 1)
    ys = np.clip(np.rint(corners[:, 1:2] + oy.ravel()[None, :]).astype(int), 0, h - 1)
    return features[ys, xs].reshape(len(corners), -1)


def best_buddies(desc, points, min_offset, max_offset=np.inf):
    """Index pairs (i, j), i < j, mutual nearest neighbours among points min_offset to max_offset apart."""
    sq = np.einsum("ij,ij->i", desc, desc)
    dist = sq[:, None] + sq[None, :] - 2 * desc @ desc.T
    gap = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    # exact copies (noise-free images) tie: the nearer one in the image wins, then a symmetric
    # random order (the same for both ends of a pair), so that ties can still be mutual
    scale = float(np.median(np.abs(dist))) + 1e-12
    jitter = np.random.default_rng(0).random(dist.shape)
    dist = dist + scale * (1e-6 * gap / max(float(gap.max()), 1e-12) + 1e-9 * (jitter + jitter.T))
    dist[(gap < min_offset) | (gap > max_offset)] = np.inf
    nn = np.argmin(dist, axis=1)
    ok = np.isfinite(dist[np.arange(len(nn)), nn])
    i = np.nonzero(ok & (nn[nn] == np.arange(len(nn))))[0]
    j = nn[i]
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1)


def vote_directions(offsets, params: DirectionParams) -> list[DirectionSuggestion]:
    """Winners of the angle vote of ``offsets`` (K, 2), each refined by the mean of its nearby votes."""
    ang = np.mod(np.degrees(np.arctan2(offsets[:, 1], offsets[:, 0])), 180.0)
    alive = np.ones(len(ang), bool)
    n_bins = int(np.ceil(180.0 / params.bin_degrees))
    out: list[DirectionSuggestion] = []
    while len(out) < params.max_suggestions and alive.sum() >= params.min_votes:
        hist = np.bincount((ang[alive] / params.bin_degrees).astype(int) % n_bins, minlength=n_bins)
        # a bin and its two neighbours (circular), so a direction on a bin edge is not split
        smooth = hist + np.roll(hist, 1) + np.roll(hist, -1)
        peak = (np.argmax(smooth) + 0.5) * params.bin_degrees
        diff = np.abs((ang - peak + 90.0) % 180.0 - 90.0)
        near = alive & (diff <= 1.5 * params.bin_degrees)
        if near.sum() < params.min_votes:
            break
        # mean of doubled angles: circular mean modulo 180 degrees
        rad = np.radians(2 * ang[near])
        mean = np.mod(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())) / 2.0, 180.0)
        vec = np.array([np.cos(np.radians(mean)), np.sin(np.radians(mean))])
        out.append(DirectionSuggestion(vec, float(mean), int(near.sum())))
        diff = np.abs((ang - mean + 90.0) % 180.0 - 90.0)
        alive &= diff > params.suppress_degrees
    return out


def find_directions(image, features, mask=None, params: DirectionParams | None = None) -> list[DirectionSuggestion]:
    """Up to ``max_suggestions`` directions of repetition, the most voted first (empty when none)."""
    params = params or DirectionParams()
    h, w = image.shape[:2]
    factor = min(1.0, params.work_long_side / max(h, w))
    if factor < 1.0:  # corners and their patches at a fixed scale: the descriptor sees a part of a unit
        size = (max(16, int(round(w * factor))), max(16, int(round(h * factor))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        features = np.dstack([cv2.resize(features[..., c : c + 4], size, interpolation=cv2.INTER_AREA).reshape(
            size[1], size[0], -1) for c in range(0, features.shape[2], 4)])
        if mask is not None:
            mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    m = None if mask is None else mask.astype(np.uint8) * 255
    pts = cv2.goodFeaturesToTrack(
        gray, maxCorners=params.max_corners, qualityLevel=params.corner_quality,
        minDistance=params.min_corner_distance, mask=m, blockSize=5,
    )
    if pts is None or len(pts) < 2:
        return []
    pts = pts.reshape(-1, 2).astype(np.float64)
    # blurred features: copies at different sub-pixel phases still look alike
    smooth = cv2.GaussianBlur(features, (0, 0), params.descriptor_blur) if params.descriptor_blur > 0 else features
    desc = corner_descriptors(smooth, pts, params.descriptor_radius)
    max_offset = params.max_offset_fraction * min(gray.shape)
    pairs = best_buddies(desc, pts, params.min_offset, max_offset)
    if len(pairs) == 0:
        return []
    return vote_directions(pts[pairs[:, 1]] - pts[pairs[:, 0]], params)


#: Directions also tried when none of the voted ones repeats: the image axes (walls and facades are
#: often photographed square to their rows or columns).
AXES = ((1.0, 0.0), (0.0, 1.0))


def candidate_directions(suggestions: list[DirectionSuggestion], suppress_degrees: float) -> list[np.ndarray]:
    """The voted directions in order, then the image axes that are not within ``suppress_degrees`` of one."""
    out = [s.direction for s in suggestions]
    for axis in AXES:
        a = np.asarray(axis)
        if all(np.degrees(np.arccos(min(1.0, abs(float(a @ d))))) > suppress_degrees for d in out):
            out.append(a)
    return out
