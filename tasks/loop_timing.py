"""Loops of whole periods: when each cyclic region's loop starts, how long it is, how it fits the output loop.

The cyclicity kernel finds, per region, the interval ``[i, j)`` whose DFT is
most cyclic; ``j - i`` need not be a whole number of the signal's periods, and
repeating it then jumps in phase at every wrap (a seam).  Here a cyclic region
instead plays a *whole number of its periods*:

1. **Period.**  The winning frequency of the region's mean luminance over
   ``[i, j)`` (the largest DFT magnitude above ``tau`` cycles) gives a period
   ``p0 = (j - i) / k``.  It is refined below the frame by maximising the
   periodogram of the whole (linearly detrended, Hann-tapered) window signal over
   frequencies within one DFT bin of ``k / (j - i)``, and doubled when the
   frequency at half of it is nearly as strong (the winner was the second
   harmonic of a non-sinusoidal blink).
2. **Cycle.**  The *cycle* is the shortest whole number of periods within
   ``period_tolerance_frames`` of a whole number of frames, ``Q = round(m p)``
   (for ``p = 9.5`` the cycle is 19 frames, 2 periods); when no ``m`` is close
   enough, the one closest.
3. **Output loop length** (unless ``loop_frames`` is given): the least common
   multiple of the cycles (and of the display segments' playback periods) when
   it is at most ``max_loop_frames``, raised to its smallest multiple of at
   least the shortest searched interval; otherwise, among the lengths in
   ``[shortest interval, max_loop_frames]``, those that leave the least area
   cross-faded, then the least area retimed, and of those the shortest whose
   area-weighted mean speed change is within 1 % of the least.
4. **Fit.**  A region whose cycle divides the loop length plays whole cycles
   (``timing = "whole"``).  Otherwise it plays ``n = round(L / Q)`` cycles in
   the ``L`` output frames, slightly faster or slower (``"retimed"``: output
   frame ``t`` shows source position ``t n Q / L``, blended linearly between
   the two nearest frames) when the speed changes by at most ``max_retime``;
   else it keeps its length and cross-fades at the end of the loop
   (``"crossfade"``, as before).
5. **Interval.**  The region's source interval has length ``m Q`` for a
   divisor ``m`` of its ``n`` cycles (at most the window less one frame,
   at least the shortest searched interval when possible), and among those
   lengths and every start ``i`` the one whose wrap difference -- the mean
   absolute difference, over up to ``max_wrap_pixels`` pixels of the region
   and the 3 colours, between frame ``i`` (what the loop shows after its last
   frame) and frame ``i + m Q`` (what the video showed there) -- plus the change
   the wrap shows (frame ``i + m Q - 1`` to frame ``i``) is smallest: a
   consistent wrap, placed at a slow phase of the cycle.  Lengths whose best
   such figure is within 1 level of the least count as equal, and the longest
   of them is played (more of the source's own variation, fewer exact repeats).

Everything here is numpy on small arrays (a signal per region, a few thousand
sampled pixels); the render stage reads the samples and calls
:func:`plan_whole_periods`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from scipy import ndimage

from schemas.config import RenderParams

WHOLE = "whole"
RETIMED = "retimed"
CROSSFADE = "crossfade"

#: Frequencies tried when refining a period below the frame (per search).
_GRID = 257
#: Loop lengths whose mean speed change is within this of the least are equally good; the shortest wins.
_CHANGE_SLACK = 0.01
#: Intervals whose wrap is within this of the best (0-255 levels) are as good; the longest wins.
_LENGTH_SLACK = 1.0
#: A frequency at half the winner is the fundamental when its periodogram is at least this fraction of the winner's.
_SUBHARMONIC = 0.3


@dataclass
class RegionTiming:
    """How one cyclic region plays in the output loop."""

    period: float  # dominant period (frames, sub-frame)
    cycle: int  # whole periods in whole frames (frames)
    start: int  # source interval [start, stop) (window frames)
    stop: int
    cycles_out: int  # cycles played in the output loop
    speed: float  # source frames per output frame (1 = unchanged)
    timing: str  # "whole", "retimed" or "crossfade"
    wrap_cost: float  # mean |V[start + length] - V[start]| over the sampled pixels (0-255)


def _periodogram(x: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    t = np.arange(x.size)
    phase = np.exp(-2j * np.pi * np.outer(freqs, t))
    return np.abs(phase @ x) ** 2


def _detrend(signal: np.ndarray) -> np.ndarray:
    x = np.asarray(signal, np.float64)
    t = np.arange(x.size)
    if x.size < 2:
        return x - x.mean()
    slope, intercept = np.polyfit(t, x, 1)
    return x - (slope * t + intercept)


def dominant_period(signal: np.ndarray, start: int, stop: int, tau: int) -> float:
    """Period (frames, sub-frame) of the winning cyclic DFT frequency of ``signal[start:stop]``.

    Parameters
    ----------
    signal : ndarray, (N,)
        The region's mean luminance over the window.
    start, stop : int
        The region's best DFT interval.
    tau : int
        Frequencies up to ``tau`` cycles per interval are slow change (as in the kernel).

    Returns
    -------
    float
        The period; ``stop - start`` when the interval has no cyclic band.

    Examples
    --------
    >>> t = np.arange(96)
    >>> round(dominant_period(np.cos(2 * np.pi * t / 9.5), 0, 96, 4), 1)
    9.5
    """
    x = np.asarray(signal, np.float64)
    length = stop - start
    seg = x[start:stop] - x[start:stop].mean()
    spec = np.abs(np.fft.rfft(seg))[1 : length // 2 + 1]
    if spec.size <= tau:
        return float(length)
    k = int(np.argmax(spec[tau:])) + tau + 1  # cycles per interval
    whole = _detrend(x) * np.hanning(x.size)  # tapered: less leakage from the negative frequency
    lo, hi = max(k - 1, 0.5) / length, min(k + 1, length / 2) / length
    freqs = np.linspace(lo, hi, _GRID)
    power = _periodogram(whole, freqs)
    f = float(freqs[np.argmax(power)])
    best = float(power.max())
    # the winner may be the second harmonic of a non-sinusoidal blink
    half = np.linspace(f / 2 - 0.5 / x.size, f / 2 + 0.5 / x.size, 33)
    half = half[half > 0]
    if half.size and 1.0 / half.min() <= x.size:
        sub = _periodogram(whole, half)
        if sub.max() >= _SUBHARMONIC * best:
            f = float(half[np.argmax(sub)])
    return 1.0 / f


def whole_cycle(period: float, max_frames: int, tolerance: float) -> int:
    """Shortest whole number of periods within ``tolerance`` frames of whole frames, in frames.

    The closest to whole frames (shortest on ties) when none is within
    ``tolerance``; at least 2 frames and at most ``max_frames`` (when a single
    period is longer, ``max_frames``).

    Examples
    --------
    >>> whole_cycle(9.5, 95, 0.15), whole_cycle(8.03, 95, 0.15), whole_cycle(7.0, 95, 0.15)
    (19, 8, 7)
    """
    if period >= max_frames:
        return int(max_frames)
    best, best_err = max(2, round(period)), math.inf
    for m in range(1, int(max_frames // period) + 1):
        frames = m * period
        err = abs(frames - round(frames))
        if round(frames) < 2:
            continue
        if err <= tolerance:
            return int(round(frames))
        if err < best_err - 1e-9:
            best, best_err = int(round(frames)), err
    return int(best)


def wrap_costs(samples: np.ndarray, length: int) -> np.ndarray:
    """Mean absolute difference between frame ``i`` and frame ``i + length`` for every start ``i``
    (how far the loop's start is from the frame the video showed after the interval's last frame).

    Parameters
    ----------
    samples : ndarray, (T, n, C) or (T, n)
        Sampled pixels of a region over the window.
    length : int
        Played interval length (frames), ``1 <= length <= T - 1``.

    Returns
    -------
    ndarray, (T - length,) float64
    """
    v = np.asarray(samples, np.float32).reshape(samples.shape[0], -1)
    return np.abs(v[length:] - v[: v.shape[0] - length]).mean(axis=1).astype(np.float64)


def speed_change(loop_frames: int, cycle: int) -> tuple[int, float]:
    """Cycles of ``cycle`` frames that best fill ``loop_frames``, and the relative speed change that needs."""
    n = max(1, round(loop_frames / cycle))
    return n, abs(n * cycle - loop_frames) / loop_frames


def choose_output_length(
    cycles: list[int],
    areas: list[int],
    retimable: list[bool],
    *,
    loop_frames: int | None,
    max_loop_frames: int,
    min_frames: int,
    max_retime: float,
) -> int:
    """Output loop length (frames) for regions of the given cycles (see the module's step 3)."""
    if loop_frames is not None:
        return int(loop_frames)
    if not cycles:
        return max(2, min(min_frames, max_loop_frames))
    common = 1
    for q in cycles:
        common = math.lcm(common, int(q))
        if common > max_loop_frames:
            break
    if common <= max_loop_frames:
        multiple = common * max(1, -(-min(min_frames, max_loop_frames) // common))
        return max(2, multiple if multiple <= max_loop_frames else common)
    lo = max(2, min(min_frames, max_loop_frames))
    total = max(sum(areas), 1)
    rows = []  # (cross-faded area, retimed area, mean speed change, length)
    for length in range(lo, max_loop_frames + 1):
        faded = retimed = change = 0.0
        for q, area, ok in zip(cycles, areas, retimable, strict=True):
            if length % q == 0:
                continue
            _, dev = speed_change(length, q)
            if ok and dev <= max_retime:
                retimed += area
                change += area * dev / total
            else:
                faded += area
        rows.append((faded, retimed, change, length))
    best = min(r[:2] for r in rows)
    fitting = [r for r in rows if r[:2] == best]
    least = min(r[2] for r in fitting)
    return int(min(r[3] for r in fitting if r[2] <= least + _CHANGE_SLACK))


def fit_region(
    samples: np.ndarray,
    cycle: int,
    period: float,
    loop_frames: int,
    *,
    min_frames: int,
    max_retime: float,
) -> RegionTiming:
    """Interval, cycles and timing of one cyclic region in a loop of ``loop_frames`` (module steps 4-5).

    ``samples`` (T, n, C) are the region's sampled pixels over the window.
    """
    n_window = samples.shape[0]
    cycle = int(min(cycle, n_window - 1))
    n_out, dev = speed_change(loop_frames, cycle)
    if loop_frames % cycle == 0:
        timing, speed = WHOLE, 1.0
    elif dev <= max_retime:
        timing, speed = RETIMED, n_out * cycle / loop_frames
    else:
        timing, speed, n_out = CROSSFADE, 1.0, 1
    # source lengths: m whole cycles, m dividing the cycles played (any m for a cross-fade)
    ms = [m for m in range(1, (n_window - 1) // cycle + 1) if timing == CROSSFADE or n_out % m == 0]
    long_enough = [m for m in ms if m * cycle >= min_frames]
    v = np.asarray(samples, np.float32).reshape(n_window, -1)
    found = []  # (wrap cost + shown change, m, start, wrap cost)
    for m in long_enough or ms:
        length = m * cycle
        costs = wrap_costs(samples, length)
        # plus the change the wrap shows (last frame -> first): among consistent starts, a slow phase
        shown = np.abs(v[length - 1 : n_window - 1] - v[: n_window - length]).mean(axis=1)
        i = int(np.argmin(costs + shown))
        found.append((float(costs[i] + shown[i]), m, i, float(costs[i])))
    # the longest interval (more of the source's own variation) within _LENGTH_SLACK of the best wrap
    least = min(f[0] for f in found)
    _, m, i, cost = max((f for f in found if f[0] <= least + _LENGTH_SLACK), key=lambda f: f[1])
    return RegionTiming(
        period=float(period),
        cycle=cycle,
        start=i,
        stop=i + m * cycle,
        cycles_out=n_out,
        speed=speed,
        timing=timing,
        wrap_cost=cost,
    )


def timing_tables(t: RegionTiming, loop_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame tables ``(a, b, weight_b)`` of a whole or retimed region over ``loop_frames`` output frames.

    Output frame ``t`` shows source position ``u = t n Q / L`` modulo the
    interval's length ``l``: ``(1 - w) V[start + floor(u)] + w V[start + next]``
    with ``w`` the fractional part and ``next`` the following position
    (``0`` after ``l - 1``: the loop's start stands for frame ``start + l``).
    Integer arithmetic, so a whole region's table is exact.
    """
    length = t.stop - t.start
    out = np.arange(loop_frames, dtype=np.int64)
    num = out * (t.cycles_out * t.cycle) % (length * loop_frames)
    a = num // loop_frames
    w = (num % loop_frames) / loop_frames
    b = (a + 1) % length
    return (t.start + a).astype(np.int32), (t.start + b).astype(np.int32), w.astype(np.float32)


@dataclass
class WholePeriodPlan:
    loop_frames: int
    timings: dict[int, RegionTiming]  # region label -> timing (cyclic regions only)


def plan_whole_periods(
    signals: dict[int, np.ndarray],
    intervals: dict[int, tuple[int, int]],
    samples: dict[int, np.ndarray],
    areas: dict[int, int],
    other_periods: list[int],
    *,
    tau: int,
    loop_frames: int | None,
    max_loop_frames: int,
    min_frames: int,
    max_retime: float,
    tolerance: float,
) -> WholePeriodPlan:
    """Periods, output loop length and per-region timing of the cyclic regions.

    Parameters
    ----------
    signals : {label: ndarray (N,)}
        Mean luminance of each cyclic region over the window.
    intervals : {label: (start, stop)}
        Each region's best DFT interval.
    samples : {label: ndarray (N, n, C)}
        Sampled pixels of each region (the wrap difference is measured on them).
    areas : {label: int}
        Pixels of each region (weights of the loop-length choice).
    other_periods : list of int
        Playback periods of the other regions (display segments), which are
        not retimed and count towards the common multiple.
    tau, loop_frames, max_loop_frames, min_frames, max_retime, tolerance
        See :class:`schemas.config.RenderParams` and the module docstring.
    """
    periods, cycles = {}, {}
    for r, sig in signals.items():
        a, b = intervals[r]
        n = sig.shape[0]
        periods[r] = dominant_period(sig, a, b, tau)
        cycles[r] = whole_cycle(periods[r], n - 1, tolerance)
    labels = list(signals)
    length = choose_output_length(
        [cycles[r] for r in labels] + [int(p) for p in other_periods],
        [areas[r] for r in labels] + [1] * len(other_periods),
        [True] * len(labels) + [False] * len(other_periods),
        loop_frames=loop_frames,
        max_loop_frames=max_loop_frames,
        min_frames=min_frames,
        max_retime=max_retime,
    )
    timings = {
        r: fit_region(samples[r], cycles[r], periods[r], length, min_frames=min_frames, max_retime=max_retime)
        for r in labels
    }
    return WholePeriodPlan(loop_frames=length, timings=timings)


def region_samples(video: np.ndarray, mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """(T, n, C) float32 samples of the pixels of ``mask`` in ``video`` (T, h, w, C); at most ``max_pixels``,
    evenly spaced in raster order."""
    ys, xs = np.nonzero(mask)
    step = max(1, -(-ys.size // max_pixels))
    return np.asarray(video)[:, ys[::step], xs[::step]].astype(np.float32)


def wrap_figures(loop: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The wrap change and the largest ordinary step of a region in a rendered loop.

    Parameters
    ----------
    loop : ndarray, (T, h, w, C) uint8
        The loop (or a crop of it holding the region).
    mask : ndarray, (h, w) bool
        The region.

    Returns
    -------
    wrap, largest_step : float
        The mean absolute change (over the region's pixels and colours, 0-255)
        from the last frame to the first, and the largest such mean change
        between consecutive frames; 0 for an empty region.  Computed from exact
        integer sums (:func:`wrap_sums`).
    """
    labels = np.asarray(mask).astype(np.int32)
    return wraps_from_sums(wrap_sums(loop, labels, 1), np.asarray(loop).shape[3])[0]


def wrap_sums(loop: np.ndarray, labels: np.ndarray, n_regions: int) -> np.ndarray:
    """Integer sums behind :func:`wrap_figures`, per region of ``labels``, for a tile of a loop.

    ``loop`` (T, h, w, C) uint8, ``labels`` (h, w) int (0: no region).  Row ``r`` of the (n_regions + 1,
    T + 1) int64 result holds region ``r``'s pixel count, the sum of ``|L[-1] - L[0]|`` over its pixels and
    colours, and the same sum of ``|L[t+1] - L[t]|`` for every t.  Sums of tiles add up to the sums of the
    whole loop, so the figures of a loop read tile by tile are exact.
    """
    loop = np.asarray(loop)
    out = np.zeros((n_regions + 1, loop.shape[0] + 1), np.int64)
    for r in np.unique(labels):
        if r == 0:
            continue
        v = loop[:, labels == r].astype(np.int16)  # (T, n, C)
        out[r, 0] = v.shape[1]
        out[r, 1] = np.abs(v[-1] - v[0]).sum(dtype=np.int64)
        out[r, 2:] = np.abs(v[1:] - v[:-1]).sum(axis=(1, 2), dtype=np.int64)
    return out


def wraps_from_sums(sums: np.ndarray, channels: int) -> list[tuple[float, float]]:
    """``(wrap, largest_step)`` of regions 1..R from :func:`wrap_sums` (summed over tiles); (0, 0) when empty."""
    out = []
    for row in sums[1:]:
        values = row[0] * channels
        if values == 0:
            out.append((0.0, 0.0))
            continue
        step = float(row[2:].max()) / values if row.size > 2 else 0.0
        out.append((float(row[1]) / values, step))
    return out


def read_region_samples(
    warped: da.Array,
    regions: np.ndarray,
    labels: list[int],
    processed: dict,
    max_pixels: int,
) -> dict[int, np.ndarray]:
    """Sampled pixels (T, n, C) of each region in ``labels``: from its processed crop when the render's
    chain made one (``processed``: label -> crop slices and video, an array or a Dask delayed one), else
    read from ``warped``; one Dask computation for all."""
    boxes = ndimage.find_objects(regions)
    lazy = {}
    for r in labels:
        if r in processed:
            ys, xs, video = processed[r]
        else:
            ys, xs = boxes[r - 1]
            video = warped[:, ys, xs, :]
        lazy[r] = dask.delayed(region_samples)(video, regions[ys, xs] == r, max_pixels)
    return dict(zip(lazy, dask.compute(*lazy.values()), strict=True))


def plan_for_render(
    signals: np.ndarray,
    intervals: list[tuple[int, int]],
    kinds: list[str],
    periods: list[int],
    regions: np.ndarray,
    warped: da.Array,
    processed: dict,
    params: RenderParams,
    *,
    tau: int,
    min_frames: int,
) -> WholePeriodPlan | None:
    """:func:`plan_whole_periods` for the render stage's regions (``kinds[r - 1] == "cyclic"``); None when
    ``params.whole_periods`` is off or there is no cyclic region."""
    cyc = [r for r in range(1, len(kinds) + 1) if kinds[r - 1] == "cyclic"]
    if not params.whole_periods or not cyc:
        return None
    areas = np.bincount(regions.ravel(), minlength=len(kinds) + 1)
    samples = read_region_samples(warped, regions, cyc, processed, params.max_wrap_pixels)
    return plan_whole_periods(
        {r: signals[r - 1] for r in cyc},
        {r: intervals[r - 1] for r in cyc},
        samples,
        {r: int(areas[r]) for r in cyc},
        [p for r, p in enumerate(periods, start=1) if r not in cyc],
        tau=tau,
        loop_frames=params.loop_frames,
        max_loop_frames=params.max_loop_frames,
        min_frames=min_frames,
        max_retime=params.max_retime,
        tolerance=params.period_tolerance_frames,
    )


def apply_plan(
    plan: WholePeriodPlan, fa: np.ndarray, fb: np.ndarray, wb: np.ndarray, fades: list[bool]
) -> None:
    """Overwrite the frame tables (and cross-fade flags) of the whole and retimed regions, in place.

    Cross-faded regions keep the rows the render built for their (whole-period) interval."""
    for r, t in plan.timings.items():
        if t.timing == CROSSFADE:
            continue
        fa[r], fb[r], wb[r] = timing_tables(t, fa.shape[1])
        fades[r - 1] = False


def loop_wrap_figures(loop: da.Array, regions: np.ndarray, n_regions: int) -> list[tuple[float, float]]:
    """:func:`wrap_figures` of every region of a stored loop, read crop by crop (one Dask computation)."""
    boxes = ndimage.find_objects(regions, max_label=n_regions)
    present = [(r, b) for r, b in enumerate(boxes, start=1) if b is not None]
    crops = dask.compute(*[loop[:, ys, xs, :] for _, (ys, xs) in present])
    out = [(0.0, 0.0)] * n_regions
    for (r, (ys, xs)), crop in zip(present, crops, strict=True):
        out[r - 1] = wrap_figures(crop, regions[ys, xs] == r)
    return out


def timing_fields(t: RegionTiming | None, wrap: tuple[float, float]) -> dict:
    """The :class:`schemas.results.RegionLoop` fields of a region's timing and measured wrap."""
    fields = {"wrap_change": round(wrap[0], 4), "largest_step": round(wrap[1], 4)}
    if t is not None:
        fields.update(
            dominant_period=round(t.period, 4), cycle_frames=t.cycle, timing=t.timing, speed=round(t.speed, 6)
        )
    return fields
