"""Per-pixel video loops for steady footage: period and start by staged alpha-expansion.

Reads ``warped`` (window_time, y, x, channel) uint8; writes ``loop_period`` and
``loop_start`` (y, x) int32, ``animated_mask`` (y, x) bool (period > 1) and
``loop`` (loop_time, y, x, channel) uint8.  With a label video it also writes
the candidates (see below).

Energy (Liao, Joshi and Hoppe, SIGGRAPH 2013, Sec. 3), colours in [0, 1]::

    E(p, s) = sum_x [p_x > 1] (gamma_t(x) e_t(x) + e_anim(x))  +  sum_x [p_x = 1] e_static(x)
              + beta sum_{x~z} gamma_s(x, z) Psi(x, z)

* ``e_t`` compares the loop's ends (frames s+p vs s and s+p-1 vs s-1);
  ``gamma_t`` attenuates it by the pixel's median consecutive change (MAD).
* ``Psi`` is the mean over the loop of the squared difference between the two
  neighbours' time maps, evaluated in O(C) per pair from prefix sums over time
  (:func:`kernels.video_loop.loop_prefix_sums`); ``gamma_s`` attenuates it
  across persistent edges.
* ``e_anim = c_anim max(0, 1 - lambda_static max(0, MAD_N(x) - floor))`` on
  every looping pixel (our addition, ``animation_cost``): a pixel with no
  motion above the noise stays still; without it Liao's optimum loops the
  whole still background along with its neighbours (one common period has no
  seam), which is not a cinemagraph.  ``animation_cost = 0`` is the paper.
* ``e_static = c_static min(1, lambda_static max(0, MAD_N(x) - floor))`` with
  ``N`` the window smoothed by a spatial Gaussian.  The noise ``floor`` (our
  addition, ``static_noise_factor`` times a low percentile of MAD_N over the
  frame) keeps sensor noise from counting as motion: without it a still but
  noisy background is cheaper to loop than to freeze.

Optimisation (Oh et al., ICCV 2017, Algorithm 1; also Liao et al. Sec. 4),
every stage a multi-label graph cut by :func:`kernels.alpha_expansion.alpha_expansion`
with the pixel-dependent pairwise callback :func:`kernels.video_loop.loop_pair_cost`:

1. for every candidate period p (including 1 = static): the best start per
   pixel with every pixel on period p (labels = starts);
2. the period per pixel, each period label paired with that pixel's stage-1
   start (labels = periods);
3. the start per pixel again, periods fixed (labels = starts).

Scale: the energy is built on the window box-averaged by an integer factor
(``downscale``; by default the smallest one that brings the longer side to at
most ``max_grid_side`` cells), and the labels are replicated back to full
resolution.  Memory of the prefix sums: 8 N (T + 1) (C + 1 + S) bytes for N
grid cells, T frames, C channels and S tabulated shifts (all multiples of all
periods below T; about 20 for the default periods and T = 150).

Periods: explicit ``periods``, or the paper's {32, 36, ..., 60} (for ~5 s at
30 frames/s); when the window is shorter than 60 / ``max_period_fraction``
frames, the set is scaled by ``max_period_fraction * T / 60`` and rounded, so
the longest loop still leaves starts to choose from (e.g. T = 60 gives
{26, 29, 32, 35, 38, 42, 45, 48}).

Loop length: ``loop_frames`` if given; else the lcm of the periods in use if it
is at most ``max_loop_frames``, else the longest period in use.  Pixels whose
period does not divide the length are retimed (whole cycles, linear
interpolation between frames; :func:`kernels.video_loop.render_time_map`).
Poisson blending is not implemented.

Semantics (Oh et al. 2017), when ``label_video`` is given: label-occurrence
histograms per pixel; one-hot label channels (scaled so that one label change
costs ``semantic_weight_natural`` or ``semantic_weight_object`` according to the
pixel's dominant class) are added to both the temporal and the spatial terms
(the temporal one without the gamma_t attenuation); neighbours of the same
dominant class pay a Potts cost times their histogram intersection when their
loops differ (strong for objects, none for natural classes by default), which
keeps an object on one period and start.  The unrestricted solution is
``loop``; in addition, for each of the top-K dynamic classes (ranked by their
number of cells moving above the noise, see :func:`dynamic_classes`) stages 2 and 3 are rerun with every
other pixel forced static, and the candidates are stored as
``loop_candidates`` (candidate, candidate_loop_time, y, x, channel) uint8,
``candidate_period`` / ``candidate_start`` (candidate, y, x) int32 and
``candidate_class`` (candidate) int32, all candidates sharing one loop length.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from prefect import task
from scipy import ndimage

from kernels.alpha_expansion import alpha_expansion
from kernels.loop_blend import blend_rhs, loop_frame_map, screened_poisson_loop, seam_energy
from kernels.video_loop import (
    LoopPrefix,
    lag_differences,
    loop_pair_cost,
    loop_prefix_sums,
    render_time_map,
    spatial_attenuation,
    spatial_costs,
    temporal_attenuation,
    temporal_cost,
    temporal_cost_labels,
)
from schemas import names as N
from schemas.video_loop import VideoLoopParams, VideoLoopResult
from tasks.render import bounded_lcm, loop_quality, reference_in_window
from tasks.runtime import cluster_compute, finished_stage, shared_inputs, stage_logger
from tasks.store import (
    aligned_digest,
    config_values,
    digest,
    open_store,
    record_stage,
    require,
    write_variables,
)

STAGE = "video_loop"
CANDIDATE = "candidate"
CANDIDATE_LOOP_TIME = "candidate_loop_time"
LOOP_CANDIDATES = "loop_candidates"
CANDIDATE_PERIOD = "candidate_period"
CANDIDATE_START = "candidate_start"
CANDIDATE_CLASS = "candidate_class"

#: Unary cost of a label a pixel may not take (a start that does not fit its period,
#: a loop outside a candidate's class).  Large against every other term, finite in float32.
FORBIDDEN = 1e6


class VideoLoopError(ValueError):
    """Inputs that the video-loop stage cannot work with."""


# --------------------------------------------------------------------------
# small pure helpers
# --------------------------------------------------------------------------


def candidate_periods(n_frames: int, params: VideoLoopParams, detected=()) -> list[int]:
    """Candidate periods (frames) for a window of ``n_frames``, static period 1 first.

    Explicit ``params.periods`` are kept as given (those >= n_frames dropped);
    otherwise ``params.base_periods`` are scaled down by
    ``max_period_fraction * n_frames / max(base)`` when that is below 1 (see the
    module notes), and the ``detected`` fundamental periods are added with their
    multiples that divide :func:`periodic_loop_length` (at most
    ``max_period_fraction * n_frames``); base periods that are multiples of a
    fundamental without dividing that length are dropped.
    """
    if n_frames < 3:
        raise VideoLoopError(f"a loop needs a window of at least 3 frames, got {n_frames}")
    if params.periods is not None:
        chosen = sorted({int(p) for p in params.periods if 1 < int(p) < n_frames})
    else:
        base = [int(p) for p in params.base_periods if int(p) > 1]
        longest = max(base) if base else 0
        factor = min(1.0, params.max_period_fraction * n_frames / longest) if longest else 1.0
        chosen = {q for q in (int(round(p * factor)) for p in base) if params.min_period <= q < n_frames}
        fundamentals = sorted({int(f) for f in detected if 1 < int(f) < n_frames})
        if fundamentals:
            common = periodic_loop_length(fundamentals, params)
            longest_fit = max(max(fundamentals), int(params.max_period_fraction * n_frames))
            # a base period that is a multiple of a fundamental but does not divide the loop
            # length would be retimed, and periodic content loses its rhythm: drop it
            chosen = {q for q in chosen if common % q == 0 or all(q % f for f in fundamentals)}
            for f in fundamentals:
                chosen.update(
                    k * f for k in range(1, longest_fit // f + 1) if k == 1 or common % (k * f) == 0
                )
        chosen = sorted(q for q in chosen if q < n_frames)
    if not chosen:
        raise VideoLoopError(f"no candidate period fits a window of {n_frames} frames")
    return [1, *chosen]


def periodic_loop_length(fundamentals, params: VideoLoopParams) -> int:
    """Least common multiple of the detected fundamental periods, or the longest one when it exceeds
    ``max_loop_frames`` (frames)."""
    return bounded_lcm(sorted({int(f) for f in fundamentals}), params.max_loop_frames)


def grid_factor(height: int, width: int, params: VideoLoopParams) -> int:
    """Pixels per optimisation-grid cell along y and x."""
    if params.downscale is not None:
        return int(params.downscale)
    return max(1, math.ceil(max(height, width) / params.max_grid_side))


def downscale_video(video: np.ndarray, factor: int) -> np.ndarray:
    """Box average of a (T, H, W, C) video over ``factor`` x ``factor`` cells -> (h, w, T, C) float32 in [0, 1].

    Edge cells average the pixels they hold (H and W need not be multiples).
    """
    v = np.asarray(video)
    t, height, width, c = v.shape
    h, w = -(-height // factor), -(-width // factor)
    pad = ((0, 0), (0, h * factor - height), (0, w * factor - width), (0, 0))
    sums = np.pad(v, pad).reshape(t, h, factor, w, factor, c).sum(axis=(2, 4), dtype=np.float64)
    counts = np.full((h, w), float(factor * factor))
    counts[-1, :] = factor * (height - (h - 1) * factor)
    counts[:, -1] = (width - (w - 1) * factor) * factor
    counts[-1, -1] = (height - (h - 1) * factor) * (width - (w - 1) * factor)
    out = (sums / (255.0 * counts[None, :, :, None])).astype(np.float32)
    return np.ascontiguousarray(out.transpose(1, 2, 0, 3))


def upsample_labels(labels: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Replicate grid labels (h, w) to the full (height, width) image."""
    if factor == 1:
        return np.ascontiguousarray(labels[:height, :width])
    return np.ascontiguousarray(np.repeat(np.repeat(labels, factor, 0), factor, 1)[:height, :width])


def downscale_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Label video (T, H, W) -> (T, h, w): the label at each cell's centre pixel (clipped at the border)."""
    _, height, width = labels.shape
    h, w = -(-height // factor), -(-width // factor)
    yy = np.minimum(np.arange(h) * factor + factor // 2, height - 1)
    xx = np.minimum(np.arange(w) * factor + factor // 2, width - 1)
    return np.ascontiguousarray(labels[:, yy][:, :, xx])


def choose_loop_frames(periods_in_use, params: VideoLoopParams, detected=()) -> int:
    """Output loop length (frames) for the set of periods in use (static 1 ignored).

    ``loop_frames`` if set; else the lcm of the periods in use when it is at
    most ``max_loop_frames``; else, when short periodic content was detected,
    the smallest multiple of the detected fundamentals' lcm that is at least
    the longest period in use (so periodic content is never retimed; other
    periods are); else the longest period in use.
    """
    if params.loop_frames is not None:
        return int(params.loop_frames)
    used = sorted({int(p) for p in periods_in_use if int(p) > 1})
    length = bounded_lcm(used, params.max_loop_frames)
    if not used or length % max(used) == 0 and all(length % p == 0 for p in used):
        return length
    if detected:
        common = periodic_loop_length(detected, params)
        return common * max(1, -(-max(used) // common))
    return length


# --------------------------------------------------------------------------
# the energy
# --------------------------------------------------------------------------


@dataclass
class SemanticInfo:
    """Per-cell semantic summaries on the optimisation grid."""

    classes: np.ndarray  # (K,) label values with a one-hot channel (the last channel may be 'other')
    hist: np.ndarray  # (N, C_sem) label-occurrence fractions per channel
    dominant: np.ndarray  # (N,) most frequent label value of each cell
    natural: np.ndarray  # (N,) bool, dominant class is natural


@dataclass
class LoopEnergy:
    """Everything the stages need, on the optimisation grid (N = h * w cells, T frames)."""

    shape: tuple[int, int]
    n_frames: int
    periods: list[int]
    colour: np.ndarray  # (N, T, 3) float32 in [0, 1]
    semantic: np.ndarray | None  # (N, T, C_sem) float32, scaled one-hot, or None
    gamma_t: np.ndarray  # (N,) float64
    static: np.ndarray  # (N,) float64: e_static
    animate: np.ndarray  # (N,) float64: e_anim, added to every loop label
    motion: np.ndarray  # (N,) float64: MAD_N above the noise floor (colour units)
    prefix: LoopPrefix
    w_h: np.ndarray  # (N,) beta * gamma_s to the right neighbour (0 on the last column)
    w_v: np.ndarray  # (N,) beta * gamma_s to the lower neighbour (0 on the last row)
    potts_h: np.ndarray  # (N,) semantic Potts cost to the right neighbour
    potts_v: np.ndarray  # (N,)
    sem_info: SemanticInfo | None = None
    noise_floor: float = 0.0
    noise_sigma: float = 0.0
    detected: list[int] = field(default_factory=list)
    rhythm: np.ndarray | None = None  # (N, len(periods)) repetition cost, column 0 (static) zero
    _temporal_cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def edges(self):
        """Flat indices (ep, eq) of the 4-connected grid edges (right, then down), and their weights."""
        h, w = self.shape
        idx = np.arange(h * w).reshape(h, w)
        ep = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
        eq = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
        wt = np.concatenate([self.w_h.reshape(h, w)[:, :-1].ravel(), self.w_v.reshape(h, w)[:-1, :].ravel()])
        pt = np.concatenate(
            [self.potts_h.reshape(h, w)[:, :-1].ravel(), self.potts_v.reshape(h, w)[:-1, :].ravel()]
        )
        return ep, eq, wt, pt

    def temporal(self, period: int, starts: np.ndarray) -> np.ndarray:
        """(N, S) temporal cost of ``period`` from each start: gamma_t * colour term + semantic term."""
        key = (int(period), starts.tobytes())
        if key not in self._temporal_cache:
            cost = temporal_cost(self.colour, self.gamma_t, period, starts)
            if self.semantic is not None:
                cost += temporal_cost(self.semantic, np.ones(self.n_cells), period, starts)
            self._temporal_cache[key] = cost
        return self._temporal_cache[key]

    def rhythm_cost(self, period: int) -> np.ndarray:
        """(N,) repetition cost of looping with ``period`` (0 for the static period or without rhythm)."""
        if period == 1 or self.rhythm is None:
            return np.zeros(self.n_cells)
        return self.rhythm[:, self.periods.index(int(period))]

    def unary(self, period: int, starts: np.ndarray) -> np.ndarray:
        """(N, S) data cost: temporal (+ repetition) for loops, e_static for the static period."""
        if period == 1:
            return np.repeat(self.static[:, None], starts.size, axis=1)
        return self.temporal(period, starts) + (self.animate + self.rhythm_cost(period))[:, None]

    def pair_data(self, lab_period: np.ndarray, lab_start: np.ndarray):
        """The ``pairwise_data`` tuple of :func:`kernels.video_loop.loop_pair_cost`."""
        return (
            np.int64(self.shape[1]),
            np.ascontiguousarray(lab_period, np.int64),
            np.ascontiguousarray(lab_start, np.int64),
            self.w_h,
            self.w_v,
            self.potts_h,
            self.potts_v,
            self.prefix.p1,
            self.prefix.p2,
            self.prefix.q,
            self.prefix.slot,
        )


def _gaussian_video(video: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return video
    return ndimage.gaussian_filter(video, sigma=(sigma, sigma, 0, 0), mode="nearest")


def semantic_summary(labels: np.ndarray, params: VideoLoopParams) -> tuple[SemanticInfo, np.ndarray]:
    """Histograms, dominant class and scaled one-hot channels of a grid label video (T, h, w).

    Returns the :class:`SemanticInfo` and the feature video (N, T, C_sem) float32.
    """
    t, h, w = labels.shape
    flat = labels.reshape(t, h * w).T  # (N, T)
    values, counts = np.unique(flat, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    keep = values[order[: params.max_semantic_channels]]
    n_chan = keep.size + (1 if values.size > keep.size else 0)
    channel = np.full(flat.shape, n_chan - 1, dtype=np.int64)
    for i, v in enumerate(keep):
        channel[flat == v] = i
    onehot = np.zeros((*flat.shape, n_chan), np.float32)
    np.put_along_axis(onehot, channel[..., None], 1.0, axis=2)
    hist = onehot.mean(axis=1)
    # dominant class over all label values (not only the kept channels)
    best = np.zeros(h * w, np.int64)
    best_count = np.full(h * w, -1)
    for v in values:
        c = (flat == v).sum(axis=1)
        better = c > best_count
        best[better] = v
        best_count[better] = c[better]
    natural = np.isin(best, np.asarray(params.natural_classes, dtype=np.int64))
    weight = np.where(natural, params.semantic_weight_natural, params.semantic_weight_object)
    # ||onehot(a) - onehot(b)||^2 = 2 for a != b: scale so that one change costs `weight`
    feats = onehot * np.sqrt(weight / 2.0).astype(np.float32)[:, None, None]
    info = SemanticInfo(classes=keep.astype(np.int64), hist=hist, dominant=best, natural=natural)
    return info, np.ascontiguousarray(feats, np.float32)


def _chi_median(channels: int) -> float:
    """Median of the Euclidean norm of ``channels`` unit Gaussians (Wilson-Hilferty)."""
    return math.sqrt(channels * (1.0 - 2.0 / (9.0 * channels)) ** 3)


def motion_measures(colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median consecutive change and spread (colour units), two (N,) float64 arrays.

    ``colour`` (N, T, C) float in [0, 1].  The first is Liao et al.'s MAD of
    consecutive frames, which misses content that changes seldom but a lot (a
    light blinking every 8 frames changes in only 2 of 8 steps); the spread, the
    norm over channels of the 90th minus the 10th percentile over time, catches
    it, and ignores what covers a pixel only briefly (a walker passing by).
    """
    c = np.asarray(colour, np.float32)
    consec = np.median(np.sqrt(((c[:, 1:] - c[:, :-1]).astype(np.float64) ** 2).sum(axis=2)), axis=1)
    lo, hi = np.percentile(c, [10.0, 90.0], axis=1)
    spread = np.sqrt(((hi - lo).astype(np.float64) ** 2).sum(axis=1))
    return consec, spread


def estimate_noise(colour: np.ndarray) -> float:
    """Noise sigma per channel (colour units) of a (N, T, C) video: the 25th percentile over pixels of the
    temporal standard deviation (mean over channels).

    Robust as long as a quarter of the pixels is still; compressed video has
    many pixels quieter than its sensor noise (skipped blocks), hence a low
    percentile rather than the minimum or the median.
    """
    c = np.asarray(colour, np.float32)
    return float(np.percentile(c.std(axis=1, dtype=np.float64).mean(axis=1), 25.0))


def noise_floors(sigma: float, channels: int, params: VideoLoopParams) -> tuple[float, float]:
    """(consecutive-change floor, spread floor) (colour units): what Gaussian noise of ``sigma`` per
    channel gives (median of a chi norm of two frames' difference; 10-90 percentile range, 2 x 1.2816
    sigma per channel), times ``noise_floor_factor``."""
    k = params.noise_floor_factor * sigma
    return k * _chi_median(channels) * math.sqrt(2.0), k * 2.0 * 1.2816 * math.sqrt(channels)


def motion_above_noise(consec, spread, floors) -> np.ndarray:
    """max(0, consec - floor_c, spread - floor_s) per pixel (colour units)."""
    return np.maximum(np.maximum(consec - floors[0], spread - floors[1]), 0.0)


def detect_periods(colour: np.ndarray, moving: np.ndarray, params: VideoLoopParams) -> list[int]:
    """Fundamental periods (frames) of short periodic content among the ``moving`` pixels.

    A pixel is periodic with fundamental ``p`` when its lag profile
    (:func:`kernels.video_loop.lag_differences`) at ``p`` is below
    ``periodicity_threshold`` times its mean, at ``2 p`` too when that fits, and
    at no shorter lag of at least 2 frames.  Periods with at least
    ``min_period_votes`` pixels are returned, smallest first.
    """
    colour = np.asarray(colour, np.float32)
    n, t, _ = colour.shape
    max_lag = min(int(params.max_detect_period), t // 2)
    idx = np.flatnonzero(moving)
    if max_lag < 2 or idx.size == 0:
        return []
    prof = lag_differences(colour[idx], min(2 * max_lag, t - 1))
    ratio = prof / np.maximum(prof[:, :max_lag].mean(axis=1, keepdims=True), 1e-12)
    low = ratio < params.periodicity_threshold
    low[:, 0] = False  # lag 1: slow drift, not a period
    first = np.where(low[:, :max_lag].any(axis=1), low[:, :max_lag].argmax(axis=1) + 1, 0)
    votes: dict[int, int] = {}
    for p in first[first >= max(2, params.min_period)]:
        p = int(p)
        if 2 * p <= prof.shape[1] and not low[np.flatnonzero(first == p), 2 * p - 1].any():
            continue
        votes[p] = votes.get(p, 0) + 1
    return sorted(p for p, v in votes.items() if v >= params.min_period_votes)


def rhythm_costs(colour: np.ndarray, periods: list[int], params: VideoLoopParams) -> np.ndarray | None:
    """(N, len(periods)) repetition cost: rhythm_weight * (D_x(p) - min_q D_x(q)), static column 0.

    ``D_x(p)`` is pixel x's mean squared change over lag ``p`` in the whole
    window (:func:`kernels.video_loop.lag_differences`), ``q`` runs over the
    looping candidates.  Zero for every multiple of a periodic pixel's period,
    large for the others; about equal for all periods of stochastic content, so
    the term leaves Liao et al.'s choice there alone.  None when the weight is 0
    or there is no looping candidate.
    """
    loops = [int(p) for p in periods if int(p) > 1]
    if params.rhythm_weight == 0 or not loops:
        return None
    d = lag_differences(colour, loops)
    out = np.zeros((colour.shape[0], len(periods)))
    out[:, [periods.index(p) for p in loops]] = params.rhythm_weight * (d - d.min(axis=1, keepdims=True))
    return out


def prepare_energy(
    video: np.ndarray, params: VideoLoopParams, labels: np.ndarray | None = None, noise: float | None = None
) -> LoopEnergy:
    """Build the energy of Liao et al. (plus Oh et al.'s semantic terms) on a grid video.

    Parameters
    ----------
    video : ndarray, (h, w, T, 3) float
        Grid video, colours in [0, 1] (see :func:`downscale_video`).
    params : VideoLoopParams
    labels : ndarray, (T, h, w) int, optional
        Label video on the same grid.
    noise : float, optional
        Noise sigma per channel of this grid video (colour units); default estimated from it.
    """
    video = np.asarray(video, np.float32)
    if video.ndim != 4:
        raise VideoLoopError(f"video must be (h, w, T, C), got {video.shape}")
    h, w, t, c = video.shape
    n = h * w
    colour = np.ascontiguousarray(video.reshape(n, t, c))
    gamma_t = temporal_attenuation(colour, params.lambda_t)
    gh, gv = spatial_attenuation(video, params.lambda_s)
    smooth = _gaussian_video(video, params.static_sigma).reshape(n, t, c)
    mad, dev = motion_measures(smooth)
    sigma = estimate_noise(smooth) if noise is None else float(noise)
    floor_c, floor_d = noise_floors(sigma, c, params)
    floor = max(
        params.static_noise_factor * float(np.percentile(mad, params.static_noise_percentile)), floor_c
    )
    motion = motion_above_noise(mad, dev, (floor, floor_d))
    detected = []
    if params.periods is None and params.detect_periods:
        detected = detect_periods(colour, params.lambda_static * motion >= 1.0, params)
    periods = candidate_periods(t, params, detected)
    rhythm = rhythm_costs(colour, periods, params)
    static = params.static_cost * np.minimum(1.0, params.lambda_static * motion)
    animate = params.animation_cost * np.maximum(0.0, 1.0 - params.lambda_static * motion)

    w_h = np.zeros((h, w))
    w_v = np.zeros((h, w))
    w_h[:, :-1] = params.beta * gh
    w_v[:-1, :] = params.beta * gv
    potts_h = np.zeros((h, w))
    potts_v = np.zeros((h, w))
    semantic = None
    info = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (t, h, w):
            raise VideoLoopError(f"label video must have shape {(t, h, w)} on the grid, got {labels.shape}")
        info, semantic = semantic_summary(labels, params)
        dom = info.dominant.reshape(h, w)
        nat = info.natural.reshape(h, w)
        hist = info.hist.reshape(h, w, -1)
        coh = np.where(nat, params.natural_coherence_weight, params.object_coherence_weight)
        same_h = dom[:, :-1] == dom[:, 1:]
        same_v = dom[:-1, :] == dom[1:, :]
        inter_h = np.minimum(hist[:, :-1], hist[:, 1:]).sum(axis=2)
        inter_v = np.minimum(hist[:-1, :], hist[1:, :]).sum(axis=2)
        potts_h[:, :-1] = np.where(same_h, coh[:, :-1] * inter_h, 0.0)
        potts_v[:-1, :] = np.where(same_v, coh[:-1, :] * inter_v, 0.0)
        features = np.ascontiguousarray(np.concatenate([colour, semantic], axis=2))
    else:
        features = colour
    prefix = loop_prefix_sums(features, periods)
    return LoopEnergy(
        shape=(h, w),
        n_frames=t,
        periods=periods,
        colour=colour,
        semantic=semantic,
        gamma_t=gamma_t,
        static=static,
        animate=animate,
        motion=motion,
        prefix=prefix,
        w_h=w_h.ravel(),
        w_v=w_v.ravel(),
        potts_h=potts_h.ravel(),
        potts_v=potts_v.ravel(),
        sem_info=info,
        noise_floor=floor,
        noise_sigma=sigma,
        detected=detected,
        rhythm=rhythm,
    )


def loop_energy(energy: LoopEnergy, period: np.ndarray, start: np.ndarray) -> dict[str, float]:
    """Terms of E(p, s) for a grid labeling: temporal, static, animation, spatial (with the Potts part), total."""
    period = np.asarray(period, np.int64).ravel()
    start = np.asarray(start, np.int64).ravel()
    n = energy.n_cells
    if period.shape != (n,) or start.shape != (n,):
        raise VideoLoopError(f"period and start must hold {n} grid cells")
    temporal = 0.0
    for p in np.unique(period):
        sel = np.flatnonzero(period == p)
        if p == 1:
            continue
        st = start[sel]
        uniq, inv = np.unique(st, return_inverse=True)
        cost = energy.temporal(int(p), uniq)
        temporal += float(cost[sel, inv].sum())
    static = float(energy.static[period == 1].sum())
    animation = float(energy.animate[period > 1].sum())
    rhythm = 0.0
    if energy.rhythm is not None:
        for p in np.unique(period[period > 1]):
            rhythm += float(energy.rhythm_cost(int(p))[period == p].sum())
    ep, eq, wt, pt = energy.edges()
    psi = spatial_costs(energy.prefix, period, start, ep, eq)
    differ = (period[ep] != period[eq]) | (start[ep] != start[eq])
    spatial = float((wt * psi).sum() + (pt * differ).sum())
    return {
        "temporal": temporal,
        "static": static,
        "animation": animation,
        "rhythm": rhythm,
        "spatial": spatial,
        "total": temporal + static + animation + rhythm + spatial,
    }


# --------------------------------------------------------------------------
# the staged optimisation (Oh et al. 2017, Algorithm 1)
# --------------------------------------------------------------------------


@dataclass
class LoopSolution:
    period: np.ndarray  # (h, w) int32 on the grid
    start: np.ndarray  # (h, w) int32
    energies: dict[str, float]
    timings: dict[str, float]
    best_starts: dict[int, np.ndarray] = field(default_factory=dict)  # stage 1: period -> (N,) start


def _starts(n_frames: int, period: int, step: int) -> np.ndarray:
    return np.arange(0, n_frames - period + 1, step, dtype=np.int64)


def _expand(
    energy: LoopEnergy,
    unary: np.ndarray,
    lab_p: np.ndarray,
    lab_s: np.ndarray,
    params: VideoLoopParams,
    init: np.ndarray | None = None,
):
    """Alpha-expansion over the grid: (N, S) unary costs, label ``k`` of cell ``x`` = (lab_p[x, k], lab_s[x, k])."""
    h, w = energy.shape
    return alpha_expansion(
        unary.reshape(h, w, -1).astype(np.float32),
        loop_pair_cost,
        pairwise_data=energy.pair_data(lab_p, lab_s),
        max_cycles=params.max_cycles,
        tol=params.tol,
        init_labels=init,
    )


def solve_fixed_period(energy: LoopEnergy, period: int, params: VideoLoopParams):
    """Stage 1 for one period: the best start per cell with every cell on ``period``.

    Returns (starts (N,) int64, energy of the fixed-period problem).
    """
    n = energy.n_cells
    starts = _starts(energy.n_frames, period, params.start_step)
    unary = energy.unary(period, starts)
    lab_p = np.full((n, starts.size), period, np.int64)
    lab_s = np.ascontiguousarray(np.broadcast_to(starts, (n, starts.size)))
    res = _expand(energy, unary, lab_p, lab_s, params)
    return starts[res.labels.ravel()], res.energy


def solve_periods(
    energy: LoopEnergy,
    best_starts: dict[int, np.ndarray],
    params: VideoLoopParams,
    allowed: np.ndarray | None = None,
):
    """Stage 2: the period per cell, each period label paired with the cell's stage-1 start.

    ``allowed`` (N,) bool: cells that may loop (others are forced static).
    Returns (period (N,), start (N,), energy).
    """
    n = energy.n_cells
    periods = energy.periods
    lab_p = np.repeat(np.asarray(periods, np.int64)[None, :], n, axis=0)
    lab_s = np.stack([best_starts[p] for p in periods], axis=1).astype(np.int64)
    unary = np.empty((n, len(periods)), np.float64)
    rows = np.arange(n)
    for i, p in enumerate(periods):
        starts = _starts(energy.n_frames, p, params.start_step)
        col = np.searchsorted(starts, lab_s[:, i])
        unary[:, i] = energy.unary(p, starts)[rows, col]
        if allowed is not None and p > 1:
            unary[~allowed, i] = FORBIDDEN
    res = _expand(energy, unary, lab_p, lab_s, params)
    lab = res.labels.ravel()
    return lab_p[rows, lab], lab_s[rows, lab], res.energy


def solve_starts(energy: LoopEnergy, period: np.ndarray, start: np.ndarray, params: VideoLoopParams):
    """Stage 3: the start per cell again, periods fixed; starts out of range are forbidden.

    Returns (start (N,), energy).
    """
    n = energy.n_cells
    h, w = energy.shape
    period = np.asarray(period, np.int64)
    starts = _starts(energy.n_frames, 1, params.start_step)
    unary = np.full((n, starts.size), FORBIDDEN, np.float64)
    lab_s = np.empty((n, starts.size), np.int64)
    for p in np.unique(period):
        sel = period == p
        valid = starts <= energy.n_frames - p
        unary[np.ix_(sel, valid)] = energy.unary(int(p), starts[valid])[sel]
        lab_s[sel] = np.minimum(starts, energy.n_frames - p)[None, :]
    lab_p = np.repeat(period[:, None], starts.size, axis=1)
    init = np.searchsorted(starts, start).reshape(h, w)
    res = _expand(energy, unary, lab_p, lab_s, params, init)
    return lab_s[np.arange(n), res.labels.ravel()], res.energy


def optimise_loops(
    energy: LoopEnergy,
    params: VideoLoopParams,
    allowed: np.ndarray | None = None,
    best_starts: dict[int, np.ndarray] | None = None,
) -> LoopSolution:
    """The three stages on one energy; ``best_starts`` reuses a previous stage 1."""
    timings: dict[str, float] = {}
    energies: dict[str, float] = {}
    t0 = time.perf_counter()
    if best_starts is None:
        best_starts = {}
        total = 0.0
        for p in energy.periods:
            best_starts[p], e = solve_fixed_period(energy, p, params)
            total += e
        energies["stage1"] = total
        timings["stage1"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    period, start, e2 = solve_periods(energy, best_starts, params, allowed)
    energies["stage2"] = e2
    timings["stage2"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    start, e3 = solve_starts(energy, period, start, params)
    energies["stage3"] = e3
    timings["stage3"] = time.perf_counter() - t2
    parts = loop_energy(energy, period, start)
    energies.update({k: parts[k] for k in ("temporal", "spatial", "static", "animation", "rhythm")})
    h, w = energy.shape
    return LoopSolution(
        period=period.reshape(h, w).astype(np.int32),
        start=start.reshape(h, w).astype(np.int32),
        energies=energies,
        timings=timings,
        best_starts=best_starts,
    )


def dynamic_classes(energy: LoopEnergy, params: VideoLoopParams) -> list[int]:
    """Top-K label values by moving cells among the cells they dominate.

    A cell counts ``min(1, lambda_static * motion)`` (1 = clearly moving above the
    noise floor); a class qualifies with at least ``min_class_cells`` moving cells
    and a moving share of at least ``min_dynamic_share``.
    """
    info = energy.sem_info
    if info is None or params.n_candidates == 0:
        return []
    moving = np.minimum(1.0, params.lambda_static * energy.motion)
    scores = []
    for v in np.unique(info.dominant):
        sel = info.dominant == v
        score = float(moving[sel].sum())
        if score >= params.min_class_cells and score >= params.min_dynamic_share * sel.sum():
            scores.append((score, int(v)))
    scores.sort(key=lambda s: (-s[0], s[1]))
    return [v for _, v in scores[: params.n_candidates]]


# --------------------------------------------------------------------------
# coarse-to-fine refinement at full resolution
# --------------------------------------------------------------------------

#: Coarse cells whose loops a pixel may take: its own cell first, then the 8 neighbours.
_NEIGHBOUR_CELLS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass
class RefineSetup:
    """What every refinement tile needs besides its pixels (all full-resolution, colour units)."""

    periods: list[int]  # candidate periods of the coarse solve, static 1 first
    reference: int  # window frame shown by static pixels
    floors: tuple[float, float]  # noise floors (consecutive change, spread) at full resolution
    noise_sigma: float


def candidate_tables(coarse_period, coarse_start, factor, height, width, reference):
    """Per-pixel candidate loops from the coarse solve, (H, W, 10) period and start tables.

    Slot 0 is static (the reference frame); slots 1-9 the loops of the pixel's
    coarse cell and its 8 neighbours (clipped at the border; a static coarse
    label becomes the reference frame).  The caller appends each pixel's own
    best loop as slot 10.
    """
    h, w = coarse_period.shape
    cy = np.minimum(np.arange(height) // factor, h - 1)
    cx = np.minimum(np.arange(width) // factor, w - 1)
    k = 1 + len(_NEIGHBOUR_CELLS)
    lab_p = np.empty((height, width, k), np.int64)
    lab_s = np.empty((height, width, k), np.int64)
    lab_p[..., 0], lab_s[..., 0] = 1, reference
    for j, (dy, dx) in enumerate(_NEIGHBOUR_CELLS, start=1):
        yy = np.clip(cy + dy, 0, h - 1)[:, None]
        xx = np.clip(cx + dx, 0, w - 1)[None, :]
        p = coarse_period[yy, xx]
        lab_p[..., j] = p
        lab_s[..., j] = np.where(p == 1, reference, coarse_start[yy, xx])
    return lab_p, lab_s


def refine_tile(video, lab_p, lab_s, init, setup: RefineSetup, params: VideoLoopParams):
    """Full-resolution labels of one tile: alpha-expansion over per-pixel candidate loops.

    Parameters
    ----------
    video : ndarray, (T, th, tw, C) uint8
        The tile of the window (with its overlap).
    lab_p, lab_s : ndarray, (th, tw, K) int
        Candidate tables of :func:`candidate_tables`; slot K (the pixel's own
        best loop over every candidate period and start) is added here.
    init : ndarray, (th, tw) int
        Starting slot per pixel (the coarse cell's own loop).

    Returns
    -------
    (period, start, solved) : two (th, tw) int32 arrays, and False when nothing needed deciding.
    """
    t, th, tw, c = video.shape
    n = th * tw
    grid = np.ascontiguousarray(np.asarray(video, np.float32).transpose(1, 2, 0, 3) / 255.0)
    colour = grid.reshape(n, t, c)
    consec, spread = motion_measures(colour)
    motion = motion_above_noise(consec, spread, setup.floors)
    moving = params.lambda_static * motion > 0
    lab_p = lab_p.reshape(n, -1)
    lab_s = lab_s.reshape(n, -1)
    if not moving.any() and np.all(lab_p == 1):
        return np.ones((th, tw), np.int32), np.full((th, tw), setup.reference, np.int32), False
    gamma_t = temporal_attenuation(colour, params.lambda_t)
    loops = [p for p in setup.periods if p > 1]
    own_p = np.ones(n, np.int64)
    own_s = np.full(n, setup.reference, np.int64)
    rhythm = None
    if loops:
        rhythm = rhythm_costs(colour, setup.periods, params)
    idx = np.flatnonzero(moving)
    if idx.size and loops:
        best = np.full(idx.size, np.inf)
        sub = np.ascontiguousarray(colour[idx])
        for p in loops:
            starts = _starts(t, p, params.start_step)
            cost = temporal_cost(sub, gamma_t[idx], p, starts)
            if rhythm is not None:
                cost += rhythm[idx, setup.periods.index(p)][:, None]
            j = cost.argmin(axis=1)
            val = cost[np.arange(idx.size), j]
            better = val < best
            best[better] = val[better]
            own_p[idx[better]] = p
            own_s[idx[better]] = starts[j[better]]
    lab_p = np.ascontiguousarray(np.concatenate([lab_p, own_p[:, None]], axis=1))
    lab_s = np.ascontiguousarray(np.concatenate([lab_s, own_s[:, None]], axis=1))
    static = params.static_cost * np.minimum(1.0, params.lambda_static * motion)
    animate = params.animation_cost * np.maximum(0.0, 1.0 - params.lambda_static * motion)
    unary = temporal_cost_labels(colour, gamma_t, lab_p, lab_s)
    looping = lab_p > 1
    unary += np.where(looping, animate[:, None], static[:, None])
    if rhythm is not None:
        col = np.searchsorted(np.asarray(setup.periods), lab_p)
        unary += np.take_along_axis(rhythm, col, axis=1)
    gh, gv = spatial_attenuation(grid, params.lambda_s)
    w_h = np.zeros((th, tw))
    w_v = np.zeros((th, tw))
    w_h[:, :-1] = params.beta * gh
    w_v[:-1, :] = params.beta * gv
    prefix = loop_prefix_sums(colour, sorted({int(p) for p in np.unique(lab_p) if p > 1}))
    data = (
        np.int64(tw),
        lab_p,
        lab_s,
        w_h.ravel(),
        w_v.ravel(),
        np.zeros(n),
        np.zeros(n),
        prefix.p1,
        prefix.p2,
        prefix.q,
        prefix.slot,
    )
    res = alpha_expansion(
        unary.reshape(th, tw, -1).astype(np.float32),
        loop_pair_cost,
        pairwise_data=data,
        max_cycles=params.refine_cycles,
        tol=params.tol,
        init_labels=np.asarray(init, np.int64),
    )
    lab = res.labels.ravel()
    rows = np.arange(n)
    return (
        lab_p[rows, lab].reshape(th, tw).astype(np.int32),
        lab_s[rows, lab].reshape(th, tw).astype(np.int32),
        True,
    )


def tiles(height: int, width: int, size: int, overlap: int):
    """(kept y0, y1, x0, x1, solved y0, y1, x0, x1) of the refinement tiles covering the frame."""
    out = []
    for y0 in range(0, height, size):
        for x0 in range(0, width, size):
            y1, x1 = min(y0 + size, height), min(x0 + size, width)
            out.append(
                (
                    y0,
                    y1,
                    x0,
                    x1,
                    max(0, y0 - overlap),
                    min(height, y1 + overlap),
                    max(0, x0 - overlap),
                    min(width, x1 + overlap),
                )
            )
    return out


def _refine_tile_at(video, lab_p, lab_s, window, setup: RefineSetup, params: VideoLoopParams):
    """:func:`refine_tile` on the (rows, columns) ``window`` of the whole arrays, slot 1 (the pixel's
    own coarse cell) as every pixel's start."""
    rows, cols = window
    init = np.ones((rows.stop - rows.start, cols.stop - cols.start), np.int64)
    return refine_tile(video[:, rows, cols], lab_p[rows, cols], lab_s[rows, cols], init, setup, params)


def refine_labels(video, coarse_period, coarse_start, factor, setup: RefineSetup, params: VideoLoopParams):
    """Coarse-to-fine: full-resolution period and start, tile by tile in Dask tasks.

    Returns (period (H, W) int32, start (H, W) int32, number of tiles solved).
    """
    import dask

    _, height, width, _ = video.shape
    lab_p, lab_s = candidate_tables(coarse_period, coarse_start, factor, height, width, setup.reference)
    period = np.ones((height, width), np.int32)
    start = np.full((height, width), setup.reference, np.int32)
    jobs, where = [], []
    with cluster_compute() as client:
        # the video and the label tables go to the cluster once; each tile's task slices its part
        shared = shared_inputs(client, (video, lab_p, lab_s))
        for y0, y1, x0, x1, sy0, sy1, sx0, sx1 in tiles(height, width, params.refine_tile, params.refine_overlap):
            jobs.append(
                dask.delayed(_refine_tile_at, pure=False)(
                    *shared, (slice(sy0, sy1), slice(sx0, sx1)), setup, params
                )
            )
            where.append((y0, y1, x0, x1, sy0, sx0))
        results = dask.compute(*jobs)
    solved = 0
    for (y0, y1, x0, x1, sy0, sx0), (p, s, done) in zip(where, results, strict=True):
        period[y0:y1, x0:x1] = p[y0 - sy0 : y1 - sy0, x0 - sx0 : x1 - sx0]
        start[y0:y1, x0:x1] = s[y0 - sy0 : y1 - sy0, x0 - sx0 : x1 - sx0]
        solved += int(done)
    return period, start, solved


# --------------------------------------------------------------------------
# I/O of the label video
# --------------------------------------------------------------------------


def read_label_video(path: str | Path, frame_index: np.ndarray, n_total: int | None, shape) -> np.ndarray:
    """Label frames of the window: (T_window, H, W) int64.

    ``path`` is a Zarr array (time, y, x) or a folder of label PNGs.  Its frame
    count must equal the window's (used as is) or the ingested clip's
    ``n_total`` (the window's ``frame_index`` are picked).
    """
    path = Path(path)
    if not path.exists():
        raise VideoLoopError(f"{path}: label video not found")
    if path.is_dir() and not (path / "zarr.json").exists() and not (path / ".zarray").exists():
        import cv2

        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise VideoLoopError(f"{path}: no .png label frames")
        n_frames = len(files)

        def load(i):
            img = cv2.imread(str(files[i]), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise VideoLoopError(f"{files[i]}: unreadable PNG")
            return img if img.ndim == 2 else img[..., 0]
    else:
        import zarr

        try:
            arr = zarr.open_array(str(path), mode="r")
        except Exception as exc:
            raise VideoLoopError(f"{path}: not a readable Zarr array ({exc})") from None
        if arr.ndim != 3:
            raise VideoLoopError(f"{path}: label array must be (time, y, x), got shape {arr.shape}")
        n_frames = arr.shape[0]

        def load(i):
            return np.asarray(arr[i])

    t_window = len(frame_index)
    if n_frames == t_window:
        picks = np.arange(t_window)
    elif n_total is not None and n_frames == n_total:
        picks = np.asarray(frame_index)
    else:
        raise VideoLoopError(
            f"{path}: {n_frames} label frames match neither the window ({t_window}) nor the clip ({n_total})"
        )
    out = np.stack([load(int(i)) for i in picks]).astype(np.int64)
    if out.shape[1:] != tuple(shape):
        raise VideoLoopError(f"{path}: label frames are {out.shape[1:]}, the frames {tuple(shape)}")
    return out


def _label_stamp(path: str | None):
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return str(p)
    st = p.stat()
    return [str(p), st.st_mtime_ns, st.st_size]


# --------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------


def video_loop_digest(store, params: VideoLoopParams) -> str:
    upstream = aligned_digest(store)
    return digest(STAGE, upstream, config_values(params), _label_stamp(params.label_video))


def _render_lazy(warped: da.Array, period: np.ndarray, start: np.ndarray, loop_frames: int, client=None) -> da.Array:
    """The loop drawn from ``warped`` by the per-pixel ``period`` and ``start`` maps, one task per tile.

    Call it inside :func:`cluster_compute` with the client it yielded and compute it there: the two maps
    go to the cluster once (:func:`tasks.runtime.shared_inputs`) and each tile's task slices its part,
    so that no map travels inside the graph (Dask's "Sending large graph" for a large frame).
    """
    def block(v, p, s, block_info=None):
        (y0, y1), (x0, x1) = block_info[0]["array-location"][1:3]
        return render_time_map(v, p[y0:y1, x0:x1], s[y0:y1, x0:x1], loop_frames)

    return da.map_blocks(
        block,
        warped.rechunk({0: -1, 3: -1}),
        *shared_inputs(client, (period, start)),  # futures on a cluster, else delayed values: both taken whole
        chunks=((loop_frames,), *warped.chunks[1:3], (warped.shape[3],)),
        dtype=np.uint8,
        meta=np.empty((0, 0, 0, 0), np.uint8),
    )


def _retimed(period: np.ndarray, loop_frames: int) -> int:
    anim = period > 1
    return int((anim & (loop_frames % np.maximum(period, 1) != 0)).sum())


def visible_cells(ds: xr.Dataset, factor: int) -> np.ndarray | None:
    """(h * w,) bool: grid cells whose pixels are visible in every window frame; None when all are."""
    if N.VISIBLE not in ds:
        return None
    with cluster_compute():
        always = np.asarray(ds[N.VISIBLE].data.all(axis=0).compute())
    if always.all():
        return None
    height, width = always.shape
    h, w = -(-height // factor), -(-width // factor)
    cells = np.ones((h, w), bool)
    np.logical_and.at(
        cells, (np.arange(height)[:, None] // factor, np.arange(width)[None, :] // factor), always
    )
    return cells.ravel()


def full_resolution_noise(video: np.ndarray, params: VideoLoopParams) -> float:
    """Noise sigma per channel at full resolution (colour units): given, or estimated on every 4th pixel."""
    if params.noise_sigma is not None:
        return float(params.noise_sigma) / 255.0
    sub = np.asarray(video[:, ::4, ::4], np.float32) / 255.0
    t, h, w, c = sub.shape
    return estimate_noise(sub.transpose(1, 2, 0, 3).reshape(h * w, t, c))


@dataclass
class BlendOutcome:
    loop: np.ndarray  # (L, H, W, C) uint8
    seam_before: float | None
    seam_after: float | None
    iterations: int


def blend_region(video, base, period, start, active, params: VideoLoopParams):
    """Blend one connected animated region (crops with a 1-pixel margin); returns (crop uint8, iterations)."""
    fmap = loop_frame_map(period, start, base.shape[0])
    rhs = blend_rhs(video, base, fmap, active, params.blend_temporal_weight)
    d, info = screened_poisson_loop(
        rhs,
        active,
        screening=params.blend_screening,
        temporal_weight=params.blend_temporal_weight,
        tol=params.blend_tol,
        max_iter=params.blend_max_iter,
        dtype=np.float32,
    )
    out = np.clip(np.rint(base + d), 0, 255).astype(np.uint8)
    out[:, ~active] = base[:, ~active]
    return out, int(info["iterations"])


def _blend_region_at(video, loop, period, start, box, active, params: VideoLoopParams):
    """:func:`blend_region` on the (rows, columns) ``box`` of the whole arrays."""
    rows, cols = box
    return blend_region(video[:, rows, cols], loop[:, rows, cols], period[rows, cols], start[rows, cols], active, params)


def blend_loop(video, loop, period, start, params: VideoLoopParams) -> BlendOutcome:
    """Gradient-domain blending of the animated pixels, one 8-connected region per Dask task.

    Regions are independent: the frozen pixels between them are fixed
    boundary values.  The seam energy (:func:`kernels.loop_blend.seam_energy`)
    is measured on the whole frame before and after.
    """
    import dask

    animated = period > 1
    if not animated.any():
        return BlendOutcome(loop, None, None, 0)
    fmap = loop_frame_map(period, start, loop.shape[0])
    before = seam_energy(video, loop, fmap, animated)[0]
    if params.blend == "none":
        return BlendOutcome(loop, before, None, 0)
    regions, _ = ndimage.label(animated, structure=np.ones((3, 3), bool))
    jobs, where = [], []
    height, width = animated.shape
    with cluster_compute() as client:
        # the video, the loop and the maps go to the cluster once; each region's task slices its box
        shared = shared_inputs(client, (video, loop, period, start))
        for k, sl in enumerate(ndimage.find_objects(regions), start=1):
            y0, y1 = max(0, sl[0].start - 1), min(height, sl[0].stop + 1)
            x0, x1 = max(0, sl[1].start - 1), min(width, sl[1].stop + 1)
            active = regions[y0:y1, x0:x1] == k
            jobs.append(
                dask.delayed(_blend_region_at, pure=False)(*shared, (slice(y0, y1), slice(x0, x1)), active, params)
            )
            where.append((y0, y1, x0, x1, active))
        results = dask.compute(*jobs)
    out = loop.copy()
    iterations = 0
    for (y0, y1, x0, x1, active), (crop, its) in zip(where, results, strict=True):
        out[:, y0:y1, x0:x1][:, active] = crop[:, active]
        iterations += its
    after = seam_energy(video, out, fmap, animated)[0]
    return BlendOutcome(out, before, after, iterations)


def period_regions(period: np.ndarray, loop_frames: int, detected) -> list[dict]:
    """Where each period > 1 is used: pixels, 8-connected regions, bounding box, retimed, detected."""
    out = []
    for p in np.unique(period[period > 1]):
        m = period == p
        ys, xs = np.nonzero(m)
        n_regions = ndimage.label(m, structure=np.ones((3, 3), bool))[1]
        out.append(
            {
                "period": int(p),
                "pixels": int(m.sum()),
                "regions": int(n_regions),
                "bbox": [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1],
                "retimed": bool(loop_frames % int(p) != 0),
                "detected": bool(any(int(p) % int(f) == 0 for f in detected)),
            }
        )
    return out


def video_loop_stage(store: str, params: VideoLoopParams) -> VideoLoopResult:
    """Compute and write ``loop_period``, ``loop_start``, ``animated_mask``, ``loop`` (and candidates); record the stage."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = open_store(store)
    require(ds, store, [N.WARPED])
    warped = ds[N.WARPED].data
    t_win, height, width, _ = warped.shape
    factor = grid_factor(height, width, params)
    with cluster_compute():
        video = np.asarray(warped.compute())
    grid = downscale_video(video, factor)
    labels = None
    if params.label_video is not None:
        frame_index = ds[N.WINDOW_TIME].values if N.WINDOW_TIME in ds.coords else np.arange(t_win)
        n_total = ds.sizes.get(N.TIME)
        labels = downscale_labels(
            read_label_video(params.label_video, frame_index, n_total, (height, width)), factor
        )
    timings["read"] = time.perf_counter() - t0

    # a moving camera's window has samples outside the frame or occluded: cells with any such
    # sample may not loop, and static pixels show the reference frame (always visible)
    seen = visible_cells(ds, factor)
    t1 = time.perf_counter()
    energy = prepare_energy(grid, params, labels)
    timings["prepare"] = time.perf_counter() - t1
    coarse = params
    if params.refine and params.coarse_start_step is not None:
        coarse = params.model_copy(update={"start_step": max(params.start_step, params.coarse_start_step)})
    solution = optimise_loops(energy, coarse, allowed=seen)
    timings.update(solution.timings)

    timings["coarse"] = timings["prepare"] + sum(solution.timings.values())

    # full resolution: refine, force what may not loop static, static pixels show the reference
    reference = reference_in_window(store, ds, t_win)
    sigma = full_resolution_noise(video, params)
    t1 = time.perf_counter()
    n_tiles = 0
    if params.refine:
        setup = RefineSetup(energy.periods, reference, noise_floors(sigma, video.shape[3], params), sigma)
        period, start, n_tiles = refine_labels(video, solution.period, solution.start, factor, setup, params)
    else:
        period = upsample_labels(solution.period, factor, height, width).astype(np.int32)
        start = upsample_labels(solution.start, factor, height, width).astype(np.int32)
    timings["refine"] = time.perf_counter() - t1
    if seen is not None:
        period[~upsample_labels(seen.reshape(energy.shape), factor, height, width)] = 1
    start[period == 1] = reference
    loop_frames = choose_loop_frames(np.unique(period), params, energy.detected)

    candidates = []
    t2 = time.perf_counter()
    for cls in dynamic_classes(energy, params):
        allowed = energy.sem_info.dominant == cls
        if seen is not None:
            allowed = allowed & seen
        sol = optimise_loops(energy, params, allowed=allowed, best_starts=solution.best_starts)
        candidates.append(
            (
                cls,
                upsample_labels(sol.period, factor, height, width).astype(np.int32),
                upsample_labels(sol.start, factor, height, width).astype(np.int32),
            )
        )
    timings["candidates"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    chunks2 = warped.chunks[1:3]
    dims2 = (N.Y, N.X)
    with cluster_compute() as client:
        loop = np.asarray(_render_lazy(warped, period, start, loop_frames, client).compute())
    if N.REFERENCE in ds:  # the frozen part is the stored reference frame, exactly
        frozen = period == 1
        loop[:, frozen] = ds[N.REFERENCE].values[frozen]
    timings["render"] = time.perf_counter() - t3
    t4 = time.perf_counter()
    blend = blend_loop(video, loop, period, start, params)
    loop = blend.loop
    timings["blend"] = time.perf_counter() - t4
    animated = period > 1

    t5 = time.perf_counter()
    # the in-memory maps and loop are written from this thread in the tiles of `warped` (a task on the
    # cluster would send them through the scheduler inside a write graph: tasks.store.write_variables)
    tile = {N.Y: chunks2[0][0], N.X: chunks2[1][0], CANDIDATE: 1}
    out = {
        N.LOOP_PERIOD: (dims2, period),
        N.LOOP_START: (dims2, start),
        N.ANIMATED_MASK: (dims2, animated),
        N.LOOP: ((N.LOOP_TIME, N.Y, N.X, N.CHANNEL), loop),
    }
    whole = {}
    if candidates:
        out[CANDIDATE_PERIOD] = ((CANDIDATE, *dims2), np.stack([c[1] for c in candidates]))
        out[CANDIDATE_START] = ((CANDIDATE, *dims2), np.stack([c[2] for c in candidates]))
        out[CANDIDATE_CLASS] = ((CANDIDATE,), np.array([c[0] for c in candidates], np.int32))
        whole[CANDIDATE_CLASS] = {"chunks": (len(candidates),)}
    with cluster_compute() as client:
        if candidates:  # rendered tile by tile as the write computes them, not held in memory whole
            cand_frames = choose_loop_frames(
                np.unique(np.concatenate([c[1].ravel() for c in candidates])), params
            )
            out[LOOP_CANDIDATES] = (
                (CANDIDATE, CANDIDATE_LOOP_TIME, N.Y, N.X, N.CHANNEL),
                da.stack([_render_lazy(warped, c[1], c[2], cand_frames, client) for c in candidates]),
            )
        write_variables(xr.Dataset(out), store, chunks=tile, encoding=whole)
        quality = loop_quality(open_store(store)[N.LOOP].data, animated)
    timings["render_write"] = time.perf_counter() - t5

    values, counts = np.unique(period, return_counts=True)
    result = VideoLoopResult(
        height=height,
        width=width,
        window_frames=t_win,
        grid_height=energy.shape[0],
        grid_width=energy.shape[1],
        downscale=factor,
        periods=energy.periods,
        period_histogram={str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
        animated_pixels=int(animated.sum()),
        loop_frames=loop_frames,
        retimed_pixels=_retimed(period, loop_frames),
        energies={k: float(v) for k, v in solution.energies.items()},
        timings={k: round(float(v), 4) for k, v in timings.items()},
        candidate_classes=[int(c[0]) for c in candidates],
        candidate_animated_pixels=[int((c[1] > 1).sum()) for c in candidates],
        noise_sigma=round(255.0 * sigma, 4),
        detected_periods=list(energy.detected),
        period_regions=period_regions(period, loop_frames, energy.detected),
        refined=params.refine,
        refine_tiles=n_tiles,
        seam_energy_before=blend.seam_before,
        seam_energy_after=blend.seam_after,
        blend_iterations=blend.iterations,
        quality=quality.model_dump(),
    )
    record_stage(
        store, STAGE, video_loop_digest(store, params), time.perf_counter() - t0, result.model_dump()
    )
    return result


@task(name="video_loop")
def video_loop_task(store: str, params: VideoLoopParams) -> VideoLoopResult:
    """Prefect task: per-pixel loop periods and starts, and the rendered `loop`."""
    done = finished_stage(store, STAGE, video_loop_digest(store, params), VideoLoopResult)
    if done is not None:
        return done
    log = stage_logger(STAGE)
    result = video_loop_stage(store, params)
    log.info(
        "stage video_loop finished: %d animated pixels, loop of %d frames, energy %.3f",
        result.animated_pixels,
        result.loop_frames,
        result.energies.get("stage3", float("nan")),
    )
    return result
