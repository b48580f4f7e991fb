"""Step 2 of the method: 1-D repetitions along the main direction (Halperin et al. 2021, Sec. 4.1).

A band of feature pixels is sampled along the line through the region's centre
of mass in the main direction; every position on the line gives one column
vector.  The columns' self-similarity matrix, extended by reflection so that the
path spans the sample (and its mirror images) and with the trivial diagonal
band set to infinity, is crossed by the bounded-slope minimum-cost path of
:func:`kernels.still.repetitions.min_cost_path`.  The middle part of the path,
away from its fixed start and end, gives at every position the 1-D displacement
to the next repetition.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kernels.still.repetitions import min_cost_path, reflect_indices, self_similarity
from schemas.still import RepetitionParams
from tasks.still.mask import mask_points

#: Samples along the line at most; longer lines are sampled every ceil(length / this) pixels.
MAX_SAMPLES = 400
#: The line's extent and the band's width are measured on at most about this many mask pixels.
MAX_MASK_POINTS = 250_000


class NoRepetitionError(ValueError):
    """The image does not repeat along the direction (the CLI names the file)."""


@dataclass
class Repetition:
    """The 1-D repetitions of one region."""

    centre: np.ndarray  # (2,) x, y of the line's centre (pixels)
    direction: np.ndarray  # (2,) unit vector
    positions: np.ndarray  # (n,) signed distance of each sample from the centre along the direction (pixels)
    displacements: np.ndarray  # (n,) displacement to the next repetition at each sample (pixels)
    period: float  # median displacement (pixels)
    cost_ratio: float  # the path's mean cost over the median off-diagonal cost
    step: float  # spacing of the samples (pixels)
    strength: float = 0.0  # depth of the offset profile's dip at the period (repetition_strength)


def line_extent(mask: np.ndarray, centre, direction, half_width):
    """(t_min, t_max) of the masked pixels within ``half_width`` of the line, along the direction."""
    ys, xs = mask_points(mask, MAX_MASK_POINTS)
    dx, dy = direction
    rx, ry = xs - centre[0], ys - centre[1]
    t = rx * dx + ry * dy
    s = -rx * dy + ry * dx
    near = np.abs(s) <= max(half_width, 1.0)
    if not near.any():
        return 0.0, 0.0
    return float(t[near].min()), float(t[near].max())


def perpendicular_half_width(mask: np.ndarray, centre, direction, limit: float) -> float:
    ys, xs = mask_points(mask, MAX_MASK_POINTS)
    dx, dy = direction
    s = -(xs - centre[0]) * dy + (ys - centre[1]) * dx
    # the band keeps to the region: its extent across the line, at most the limit
    return float(min(limit, max(2.0, 0.5 * (np.percentile(s, 95) - np.percentile(s, 5)))))


def sample_band(features, mask, centre, direction, positions, half_width, step):
    """Columns (n, n_across * C) of features sampled across the line (zero outside the mask)."""
    dx, dy = (float(v) for v in direction)
    across = np.arange(-half_width, half_width + 1e-9, step, dtype=np.float32)
    t = positions.astype(np.float32)[:, None]
    mapx = (centre[0] + t * dx - across[None, :] * dy).astype(np.float32)
    mapy = (centre[1] + t * dy + across[None, :] * dx).astype(np.float32)
    vals = cv2.remap(features, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    inside = cv2.remap(mask.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if vals.ndim == 2:
        vals = vals[..., None]
    vals = vals * inside[..., None]
    return vals.reshape(len(positions), -1)


def path_displacements(cost_ext, n, pad, exclusion, max_offset, max_run):
    """Run the DP on the extended matrix; per original sample: mean j - i on the path, and the path's cells."""
    big = cost_ext.copy()
    size = big.shape[0]
    big[~_offset_band(size, exclusion, max_offset)] = np.inf
    start = (0, exclusion + 1)
    end = (size - 1 - (exclusion + 1), size - 1)
    total, path = min_cost_path(big, start, end, max_run=max_run)
    if path.shape[0] == 0:
        return None, path
    rows = path[:, 0] - pad
    keep = (rows >= 0) & (rows < n)
    sums = np.bincount(rows[keep], weights=(path[keep, 1] - path[keep, 0]).astype(np.float64), minlength=n)
    counts = np.bincount(rows[keep], minlength=n)
    disp = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return disp, path


def find_repetitions(
    features: np.ndarray,
    mask: np.ndarray,
    direction,
    params: RepetitionParams | None = None,
    centre=None,
    source: str = "image",
) -> Repetition:
    """1-D repetitions of the masked area along ``direction``.

    Raises
    ------
    NoRepetitionError
        When the sample is too short or its best path is not much cheaper than
        the typical off-diagonal entry (no repeating structure).
    """
    params = params or RepetitionParams()
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    if centre is None:
        ys, xs = np.nonzero(mask)
        centre = np.array([xs.mean(), ys.mean()])
    centre = np.asarray(centre, np.float64)
    half = perpendicular_half_width(mask, centre, d, params.band_width / 2)
    t0, t1 = line_extent(mask, centre, d, half)
    length = t1 - t0
    step = max(1.0, float(np.ceil((length + 1) / MAX_SAMPLES)))
    positions = np.arange(t0, t1 + 1e-9, step)
    n = len(positions)
    e = int(np.ceil(params.exclusion / step))
    max_offset = int(np.floor(params.max_period_fraction * n))
    if n < 4 * e + 4 or max_offset <= e + 1:
        raise NoRepetitionError(
            f"{source}: no repeating structure found along direction ({d[0]:.3f}, {d[1]:.3f}): "
            f"the region is only {length:.0f} px long"
        )
    if step > 1:  # samples farther apart than a pixel: smooth first, so a period between samples still matches
        features = cv2.GaussianBlur(features, (0, 0), step) if features.shape[2] <= 4 else np.dstack(
            [cv2.GaussianBlur(np.ascontiguousarray(features[..., c : c + 4]), (0, 0), step).reshape(
                features.shape[0], features.shape[1], -1) for c in range(0, features.shape[2], 4)])
    cols = sample_band(features, mask, centre, d, positions, half, max(params.band_step, step))
    dmat = self_similarity(cols)
    peak, dip, strength = repetition_strength(offset_profile(dmat, max_offset))
    if strength < params.min_strength:
        raise NoRepetitionError(
            f"{source}: no repeating structure found along direction ({d[0]:.3f}, {d[1]:.3f}) "
            f"(repetition strength {strength:.2f}, at least {params.min_strength:.2f} needed)"
        )
    # shifts shorter than the profile's first peak are the sample's own smoothness, not a repetition
    e = max(e, peak)
    pad = n
    r = reflect_indices(n, pad)
    disp, path = path_displacements(dmat[np.ix_(r, r)], n, pad, e, max_offset, params.max_run)
    if disp is None or np.isnan(disp).all():
        raise NoRepetitionError(
            f"{source}: no repeating structure found along direction ({d[0]:.3f}, {d[1]:.3f}): no path"
        )
    # the path's cost in its middle part against the typical off-diagonal entry (reported)
    rows = path[:, 0] - pad
    mid = (rows >= 0) & (rows < n)
    ri, rj = r[path[mid, 0]], r[path[mid, 1]]
    path_cost = float(dmat[ri, rj].mean())
    band = _offset_band(len(dmat), e, max_offset)
    typical = float(np.median(dmat[band])) if band.any() else 0.0
    ratio = path_cost / typical if typical > 0 else 1.0
    disp = _fill_nan(disp) * step
    period = float(np.median(disp))
    return Repetition(centre, d, positions, disp, period, ratio, step, strength)


def first_repeating(features, mask, candidates, params: RepetitionParams | None = None, source: str = "image"):
    """(index, Repetition) of the direction among ``candidates`` along which the masked area repeats.

    The first candidate is taken when it repeats (at least ``params.min_strength``);
    otherwise every candidate is tried and the strongest repetition wins.  Raises
    :class:`NoRepetitionError` naming ``source`` when none repeats.
    """
    tried = []
    for k, d in enumerate(candidates):
        try:
            rep = find_repetitions(features, mask, d, params, source=source)
        except NoRepetitionError:
            continue
        if k == 0:
            return 0, rep
        tried.append((rep.strength, k, rep))
    if not tried:
        angles = ", ".join(f"{np.degrees(np.arctan2(d[1], d[0])) % 180:.0f}" for d in candidates)
        raise NoRepetitionError(f"{source}: no repeating structure found along any direction tried ({angles} deg)")
    _, k, rep = max(tried, key=lambda item: item[0])
    return k, rep


def offset_profile(dmat, max_offset):
    """c(k) = mean_i D(i, i + k) for k = 0 .. max_offset: how unlike the sample is to itself shifted by k."""
    return np.array([float(np.mean(np.diagonal(dmat, k))) for k in range(min(max_offset, len(dmat) - 1) + 1)])


def repetition_strength(profile):
    """(peak, dip, strength) of an offset profile c(k) (lightly smoothed).

    Shifting a repeating sample makes it first less like itself, up to a peak
    (about half a period), then more like itself again, down to a dip at the
    period: strength = 1 - c(dip) / c(peak), near 1 for a clean repetition.  A
    sample that does not repeat grows ever less like itself: no peak (strength
    0), or only shallow dips.  The dip is the lowest point between the peak and
    the last tenth of the shifts (too few pairs there to trust).  Peak and dip
    are offsets in samples.
    """
    c = np.asarray(profile, np.float64)
    n = len(c)
    if n < 4:
        return n - 1, n - 1, 0.0
    c = np.convolve(np.pad(c, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    peak = next((k for k in range(1, n - 1) if c[k] >= c[k - 1] and c[k] > c[k + 1]), n - 1)
    if peak >= n - 2 or c[peak] <= 0:
        return peak, n - 1, 0.0
    last = n - 1 - max(1, n // 10)
    if last <= peak:
        return peak, n - 1, 0.0
    dip = peak + 1 + int(np.argmin(c[peak + 1 : last + 1]))
    return peak, dip, float(1.0 - c[dip] / c[peak])


def _offset_band(size, exclusion, max_offset):
    """(size, size) bool: exclusion < j - i <= max_offset."""
    return np.tri(size, size, max_offset, dtype=bool) & ~np.tri(size, size, exclusion, dtype=bool)


def _fill_nan(values):
    v = np.asarray(values, np.float64)
    bad = np.isnan(v)
    if bad.any():
        idx = np.arange(len(v))
        v = v.copy()
        v[bad] = np.interp(idx[bad], idx[~bad], v[~bad])
    return v
