"""Hierarchical bottom-up segmentation of a video into regions that change alike (Yan et al., CVPR 2017, Sec. 4.2).

Every pixel is treated as a 1-D signal over time.  Starting from single pixels
on the 4-connected grid graph, the closest pair of neighbouring regions is
merged greedily while its distance

    D = D_T + colour_weight * D_A

is below the current threshold, in the manner of Felzenszwalb and
Huttenlocher's graph-based segmentation and Grundmann et al.'s hierarchical
video segmentation.

* ``D_T`` is the normalised, visibility-masked Hamming distance between the
  regions' temporal binary patterns (:mod:`kernels.binary_patterns`).  A merged
  region's pattern is recomputed from its mean colour over time, so each region
  keeps its per-frame colour sums and visible-pixel counts.
* ``D_A = 1 - NCC(h_1, h_2)`` where ``h`` is the region's CIELAB colour
  histogram over all its visible pixels in all frames and NCC is the
  zero-mean normalised cross-correlation (Pearson) of the two bin vectors,
  ``sum((h1 - mean h1)(h2 - mean h2)) / sqrt(sum((h1 - mean h1)^2) sum((h2 - mean h2)^2))``,
  clipped to [-1, 1]; NCC is taken as 0 (``D_A = 1``) when either histogram
  has zero variance (e.g. a region never visible).  ``D_A`` is in [0, 2].

Histogram: **3 x 8 = 24 bins**, the three marginal histograms of L, a and b
with 8 bins each, concatenated (not the 512-bin joint histogram: at 640x360
pixels a 512-bin histogram per initial region would need ~1 GB).  Bin edges
are uniform over L in [0, 100], a in [-88, 100], b in [-108, 96] (the sRGB
gamut rounded outwards), values outside are clipped into the end bins.

CIELAB conversion (:func:`srgb_to_lab`): sRGB (0-255) -> linear RGB with
``c/12.92`` for ``c <= 0.04045`` else ``((c + 0.055)/1.055)^2.4`` -> XYZ with the
sRGB/D65 matrix (IEC 61966-2-1) -> L*a*b* relative to the D65 white
``(0.95047, 1, 1.08883)`` with ``f(t) = t^(1/3)`` above ``(6/29)^3`` and
``t / (3 (6/29)^2) + 4/29`` below.

Hierarchy.  The threshold starts at ``start_threshold`` and is multiplied by
``growth`` after each level; each level merges (closest pair first) until the
closest pair is at distance ``>= threshold`` and then records the label map.
It stops after the level at which one region remains (the grid graph is
connected, so that happens once the threshold exceeds ``1 + 2 colour_weight``,
the largest possible ``D``).  With ``L`` levels recorded, the kept level for a
fraction ``q`` is the ``ceil(q L)``-th (1-based), i.e. the first level by which
at least ``q`` of the hierarchy is built; two fractions may select the same
level when ``L`` is small.  With the paper's values (0.2, x1.5, weight 0.1,
so ``D <= 1.2``) there are at most 6 levels (thresholds 0.2 .. 1.519) and
the 70 % and 80 % levels coincide whenever ``L`` is 5 or 6.  That is why
the display stage keeps lower levels by default
(:class:`schemas.displays.DisplayParams`): at 60 % (threshold >= 0.45) the
displays of the synthetic clips have merged into the static facade.  A
Felzenszwalb-Huttenlocher reading of the threshold -- merge when
``D < Int(C) + k / |C|`` for both regions, ``k`` the level's threshold,
``Int`` the largest merge inside ``C``, Grundmann's per-level criterion --
gives 20-30 levels, but its 60 % level has merged the displays as well, so
this kernel keeps the plain threshold the issue states.

Determinism.  Regions are named by their smallest pixel index (raster order),
and ties in ``D`` are broken by the pair of names ``(lower, higher)``
lexicographically, so the result does not depend on heap internals.  A slow
``O(n^2)`` reference in ``tests/kernels/naive_segmentation.py`` reproduces the
same hierarchy.

Algorithm and cost.  Candidate merges are records ``(D, lower, higher)``
stamped with the merge counter at which they were computed; a record is stale
once either region has changed since (lazy invalidation) and is dropped when
met.  Records below the current threshold sit in a 4-ary min-heap (an
array of 24-byte records), records at or above it wait unsorted in a pending
list and enter the heap only when a later level's threshold reaches them, by
which time most of them are stale; when the heap fills up with stale records
it is compacted and re-heapified in O(n).  After a merge the distances to all
neighbours of the merged region are recomputed; the neighbours are found by
walking a linked list of the grid half-edges on the region's boundary, which
is pruned during the walk to one half-edge per neighbouring region.  The whole
hierarchy costs O(M log M) for the M records computed, M being the sum over
merges of the merged region's number of neighbours (about 50 per merge at
640x360).  The segmentation starts from single pixels (no super-pixel
pre-pass), so it is exactly the definition above.  Memory: ``H W T`` int32
colour sums (x3) and visible counts, ~370 MB for 640x360x100, plus a 32 MB
colour-to-bin memo for uint8 video.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from kernels._jit import jit, jit_leaf
from kernels.binary_patterns import (
    _check_theta,
    _check_video,
    _check_visible,
    _descriptor_from_sums,
    _hamming_one,
    _layout,
    _popcount64,
)

__all__ = [
    "hierarchical_segmentation",
    "tiled_hierarchical_segmentation",
    "merge_below",
    "first_level_segments",
    "lab_bin_codes",
    "lab_memo",
    "srgb_to_lab", "lab_histogram_bins", "N_BINS", "LAB_RANGES"]

#: Bins per LAB channel; the histogram has ``3 * N_BINS`` entries.
N_BINS = 8
#: (low, high) of the uniform bins of L, a and b.
LAB_RANGES = ((0.0, 100.0), (-88.0, 100.0), (-108.0, 96.0))

_XN, _YN, _ZN = 0.95047, 1.0, 1.08883

# Spare records of the merge's two fixed-size buffers beyond the one more than the pairs of
# neighbouring regions that always suffices (speed only; None: as many again; the tests set 0
# to compact the buffers as often as possible).
_SPARE_RECORDS = None
_DELTA = 6.0 / 29.0


# --------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------


@jit
def _linearise(v):
    c = v / 255.0
    if c <= 0.04045:
        return c / 12.92
    return ((c + 0.055) / 1.055) ** 2.4


@jit
def _lab_f(t):
    if t > _DELTA * _DELTA * _DELTA:
        return t ** (1.0 / 3.0)
    return t / (3.0 * _DELTA * _DELTA) + 4.0 / 29.0


@jit
def _lab_from_linear(r, g, b):
    x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b
    fx = _lab_f(x / _XN)
    fy = _lab_f(y / _YN)
    fz = _lab_f(z / _ZN)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


@jit
def _bin(value, low, high):
    i = int(math.floor((value - low) / (high - low) * N_BINS))
    if i < 0:
        return 0
    if i >= N_BINS:
        return N_BINS - 1
    return i


@jit
def _lab_many(rgb, out):
    """(P, 3) RGB 0-255 -> (P, 3) LAB float64."""
    for p in range(rgb.shape[0]):
        lab = _lab_from_linear(
            _linearise(np.float64(rgb[p, 0])),
            _linearise(np.float64(rgb[p, 1])),
            _linearise(np.float64(rgb[p, 2])),
        )
        for c in range(3):
            out[p, c] = lab[c]


@jit
def _bins_many(lab, out):
    """(P, 3) LAB -> (P, 3) int64 bin indices."""
    for p in range(lab.shape[0]):
        out[p, 0] = _bin(lab[p, 0], LAB_RANGES[0][0], LAB_RANGES[0][1])
        out[p, 1] = _bin(lab[p, 1], LAB_RANGES[1][0], LAB_RANGES[1][1])
        out[p, 2] = _bin(lab[p, 2], LAB_RANGES[2][0], LAB_RANGES[2][1])


# --------------------------------------------------------------------------
# region statistics
# --------------------------------------------------------------------------


@jit
def _lab_hist_index(r, g, b):
    """Packed bins ``iL * 64 + ia * 8 + ib`` of a linear-RGB colour."""
    lab = _lab_from_linear(r, g, b)
    il = _bin(lab[0], LAB_RANGES[0][0], LAB_RANGES[0][1])
    ia = _bin(lab[1], LAB_RANGES[1][0], LAB_RANGES[1][1])
    ib = _bin(lab[2], LAB_RANGES[2][0], LAB_RANGES[2][1])
    return il * N_BINS * N_BINS + ia * N_BINS + ib


@jit
def _lab_codes(video, lut, memo, use_memo, out):
    """Packed LAB bins ``iL * 64 + ia * 8 + ib`` of every sample of ``video`` (T, H, W, 3) into ``out`` (T, H, W).

    For uint8 video (``use_memo``) the code of each distinct colour is computed
    once and kept in ``memo`` (2**24,) int16, initialised to -1.  A sample with
    the colour of the same pixel in the frame before takes that sample's code
    (a steady clip repeats about half of its samples; the frame before is read
    in order, the memo at random).
    """
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    for t in range(n_frames):
        for y in range(height):
            for x in range(width):
                if (
                    t > 0
                    and video[t, y, x, 0] == video[t - 1, y, x, 0]
                    and video[t, y, x, 1] == video[t - 1, y, x, 1]
                    and video[t, y, x, 2] == video[t - 1, y, x, 2]
                ):
                    out[t, y, x] = out[t - 1, y, x]
                elif use_memo:
                    colour = (
                        (int(video[t, y, x, 0]) << 16)
                        | (int(video[t, y, x, 1]) << 8)
                        | int(video[t, y, x, 2])
                    )
                    packed = memo[colour]
                    if packed < 0:
                        packed = np.int16(
                            _lab_hist_index(
                                lut[int(video[t, y, x, 0])],
                                lut[int(video[t, y, x, 1])],
                                lut[int(video[t, y, x, 2])],
                            )
                        )
                        memo[colour] = packed
                    out[t, y, x] = packed
                else:
                    out[t, y, x] = _lab_hist_index(
                        _linearise(np.float64(video[t, y, x, 0])),
                        _linearise(np.float64(video[t, y, x, 1])),
                        _linearise(np.float64(video[t, y, x, 2])),
                    )


@jit
def _init_regions(video, visible, has_visible, codes, slot, single, sums, counts, hist):
    """Colour sums (R, T, 3), visible counts (R, T) and LAB histograms (R, 24) of the regions of ``slot``.

    Pixel ``(y, x)`` adds to row ``slot[y * W + x]``; ``codes`` (T, H, W) are
    the samples' packed LAB bins (:func:`_lab_codes`).  With ``single`` (every
    pixel has a row of its own) the sums and counts are written once instead of
    zeroed and then added to (the same numbers).
    """
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    nb2 = N_BINS * N_BINS
    for k in range(sums.shape[0]):
        if not single:
            for t in range(n_frames):
                counts[k, t] = 0
                for c in range(3):
                    sums[k, t, c] = 0
        for j in range(hist.shape[1]):
            hist[k, j] = 0
    for y in range(height):
        for x in range(width):
            k = slot[y * width + x]
            for t in range(n_frames):
                if has_visible and not visible[t, y, x]:
                    if single:
                        counts[k, t] = 0
                        for c in range(3):
                            sums[k, t, c] = 0
                    continue
                if single:
                    counts[k, t] = 1
                    for c in range(3):
                        sums[k, t, c] = video[t, y, x, c]
                else:
                    counts[k, t] += 1
                    for c in range(3):
                        sums[k, t, c] += video[t, y, x, c]
                packed = np.int64(codes[t, y, x])
                hist[k, packed // nb2] += 1
                hist[k, N_BINS + (packed // N_BINS) % N_BINS] += 1
                hist[k, 2 * N_BINS + packed % N_BINS] += 1


@jit_leaf
def _ncc(ha, hb):
    n = ha.shape[0]
    ma = 0.0
    mb = 0.0
    for k in range(n):
        ma += np.float64(ha[k])
        mb += np.float64(hb[k])
    ma /= n
    mb /= n
    num = 0.0
    va = 0.0
    vb = 0.0
    for k in range(n):
        da = np.float64(ha[k]) - ma
        db = np.float64(hb[k]) - mb
        num += da * db
        va += da * da
        vb += db * db
    if va == 0.0 or vb == 0.0:
        return 0.0
    r = num / math.sqrt(va * vb)
    if r > 1.0:
        return 1.0
    if r < -1.0:
        return -1.0
    return r


@jit_leaf
def _distance(a, b, bits, valid, hist, colour_weight):
    """D of the regions in rows ``a`` and ``b`` of the statistics."""
    dt = _hamming_one(bits[a], valid[a], bits[b], valid[b])
    da = 1.0 - _ncc(hist[a], hist[b])
    return dt + colour_weight * da


@jit_leaf
def _moments(h, k, centred, var):
    """Deviations from the mean and their sum of squares of histogram row ``k``, summed exactly as :func:`_ncc` does.

    ``centred[k, j] = h[k, j] - mean`` (float64), the terms :func:`_ncc` forms for every pair.
    """
    n = h.shape[1]
    m = 0.0
    for j in range(n):
        m += np.float64(h[k, j])
    m /= n
    v = 0.0
    for j in range(n):
        d = np.float64(h[k, j]) - m
        centred[k, j] = d
        v += d * d
    var[k] = v


@jit_leaf
def _distance_cached(a, b, bits, valid, centred, var, colour_weight, limit):
    """:func:`_distance` with each histogram's deviations and variance from :func:`_moments` (the same bits).

    When ``D_T`` alone reaches ``limit`` the colour term, which cannot lower ``D``, is skipped and ``D_T``
    is returned (a caller that only keeps distances below ``limit`` passes it; others pass infinity).
    The Hamming distance is :func:`kernels.binary_patterns._hamming_one` on the rows, indexed in place.
    """
    n_diff = 0
    n_common = 0
    for w in range(bits.shape[1]):
        common = valid[a, w] & valid[b, w]
        n_common += _popcount64(common)
        n_diff += _popcount64((bits[a, w] ^ bits[b, w]) & common)
    dt = 1.0 if n_common == 0 else n_diff / n_common
    if dt >= limit:
        return dt
    va = var[a]
    vb = var[b]
    if va == 0.0 or vb == 0.0:
        r = 0.0
    else:
        num = 0.0
        for j in range(centred.shape[1]):
            num += centred[a, j] * centred[b, j]
        r = num / math.sqrt(va * vb)
        if r > 1.0:
            r = 1.0
        elif r < -1.0:
            r = -1.0
    return dt + colour_weight * (1.0 - r)


# --------------------------------------------------------------------------
# 4-ary min-heap of records (key, pair, time) in one (capacity, 3) float64 array
# (array of structures: one record is one 24-byte row, so a sift touches few
# cache lines); pair = a * n_pix + b with a < b and time (the merge counter at
# insertion) are integers below 2**53, exact in float64.  Order: (key, pair).
# --------------------------------------------------------------------------


@jit_leaf
def _less(heap, i, j):
    if heap[i, 0] != heap[j, 0]:
        return heap[i, 0] < heap[j, 0]
    return heap[i, 1] < heap[j, 1]


@jit_leaf
def _push(heap, n, key, pair, time):
    """Insert (capacity must allow it); return the new size."""
    i = n
    while i > 0:
        parent = (i - 1) >> 2
        pk = heap[parent, 0]
        if key < pk or (key == pk and pair < heap[parent, 1]):
            heap[i, 0] = pk
            heap[i, 1] = heap[parent, 1]
            heap[i, 2] = heap[parent, 2]
            i = parent
        else:
            break
    heap[i, 0] = key
    heap[i, 1] = pair
    heap[i, 2] = time
    return n + 1


@jit_leaf
def _sift_down(heap, n, i, key, pair, time):
    """Place the record (key, pair, time) at position ``i`` or below in ``heap[:n]``."""
    while True:
        first = 4 * i + 1
        if first >= n:
            break
        best = first
        last = min(first + 4, n)
        for c in range(first + 1, last):
            if _less(heap, c, best):
                best = c
        bk = heap[best, 0]
        if bk < key or (bk == key and heap[best, 1] < pair):
            heap[i, 0] = bk
            heap[i, 1] = heap[best, 1]
            heap[i, 2] = heap[best, 2]
            i = best
        else:
            break
    heap[i, 0] = key
    heap[i, 1] = pair
    heap[i, 2] = time


@jit_leaf
def _pop(heap, n):
    """Remove the top; return the new size."""
    n -= 1
    if n > 0:
        _sift_down(heap, n, 0, heap[n, 0], heap[n, 1], heap[n, 2])
    return n


@jit_leaf
def _rebuild(heap, n, parent, changed, n_pix):
    """Drop the stale records of ``heap[:n]`` and re-heapify (Floyd); return the new size."""
    n = _compact(heap, n, parent, changed, n_pix)
    if n > 1:
        for i in range((n - 2) // 4, -1, -1):
            _sift_down(heap, n, i, heap[i, 0], heap[i, 1], heap[i, 2])
    return n


@jit_leaf
def _is_valid(record_pair, record_time, parent, changed, n_pix):
    pair = np.int64(record_pair)
    a = pair // n_pix
    b = pair - a * n_pix
    t0 = np.int64(record_time)
    return parent[a] == a and parent[b] == b and changed[a] <= t0 and changed[b] <= t0


@jit_leaf
def _compact(pending, pn, parent, changed, n_pix):
    """Drop the stale records of ``pending[:pn]`` in place; return how many remain."""
    kept = 0
    for i in range(pn):
        if _is_valid(pending[i, 1], pending[i, 2], parent, changed, n_pix):
            pending[kept, 0] = pending[i, 0]
            pending[kept, 1] = pending[i, 1]
            pending[kept, 2] = pending[i, 2]
            kept += 1
    return kept


@jit
def _minus_ones(n):
    out = np.empty(n, np.int64)
    for i in range(n):  # a loop compiles much faster than np.full
        out[i] = -1
    return out


@jit_leaf
def _append(head, tail, nxt, owner, h):
    if head[owner] == -1:
        head[owner] = h
    else:
        nxt[tail[owner]] = h
    tail[owner] = h


@jit_leaf
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]
        p = parent[p]
    return p


# --------------------------------------------------------------------------
# the hierarchy
# --------------------------------------------------------------------------


@jit_leaf
def _file_record(heap, hn, pending, pn, key, pair, time, threshold, keep_pending, parent, changed, n_pix):
    """File one candidate merge: into the heap below ``threshold``, else into ``pending`` (dropped unless ``keep_pending``).

    A full buffer first drops its stale records in place (the heap is re-heapified); the
    buffers are sized so that this always leaves room (:func:`_hierarchy`).  Returns the new sizes.
    """
    if key < threshold:
        if hn == heap.shape[0]:
            hn = _rebuild(heap, hn, parent, changed, n_pix)
        hn = _push(heap, hn, key, pair, time)
    elif keep_pending:
        if pn == pending.shape[0]:
            pn = _compact(pending, pn, parent, changed, n_pix)
        pending[pn, 0] = key
        pending[pn, 1] = pair
        pending[pn, 2] = time
        pn += 1
    return hn, pn


@jit_leaf
def _add_row(rows, sa, sb):
    """``rows[sa] += rows[sb]`` for two different rows of a 2-D array (one flat loop, which LLVM vectorises)."""
    for j in range(rows.shape[1]):
        rows[sa, j] += rows[sb, j]


@jit_leaf
def _unite_rows(sums, counts, hist, sa, sb):
    """Add the statistics of row ``sb`` into row ``sa`` (``sums`` flat: (R, T * 3))."""
    _add_row(counts, sa, sb)
    _add_row(sums, sa, sb)
    _add_row(hist, sa, sb)


@jit_leaf
def _close(slot, a, b, bits, valid, centred, var, colour_weight, limit):
    return _distance_cached(slot[a], slot[b], bits, valid, centred, var, colour_weight, limit) < limit


@jit
def _merge_close_blocks(
    sums, counts, hist, slot, parent, height, width, block, limit, theta2, n1, n2, bits, valid, centred, var, colour_weight
):
    """Unite close blocks of pixels before the merge, in a quadtree; return how many regions fewer there are.

    Blocks of 2 x 2 pixels, then of 2 x 2 such blocks (4 x 4 pixels), and so on up to
    ``block`` (aligned to the grid, cut at its edges): a block becomes one region when
    its four parts (pixels, then blocks of the size before) are each one region and
    every two side by side (left-right, top-bottom) are at a distance ``D`` below
    ``limit``.  A united block is named by its first (top-left, smallest) pixel: the
    parts' statistics are added into that pixel's row, whose descriptor and histogram
    moments are recomputed, and every pixel of the block points to it.  Runs on
    single pixels (row ``p`` of the statistics is pixel ``p``).
    """
    n_joined = 0
    flat_sums = sums.reshape((sums.shape[0], sums.shape[1] * 3))
    size = 1
    # whole[i, j]: the part of the current size at (i * size, j * size) is one region
    whole = np.ones(((height + size - 1) // size, (width + size - 1) // size), np.bool_)
    while 2 * size <= block:
        half = size
        size *= 2
        rows = (height + size - 1) // size
        cols = (width + size - 1) // size
        united = np.zeros((rows, cols), np.bool_)
        for i in range(rows):
            for j in range(cols):
                y0 = i * size
                x0 = j * size
                has_right = x0 + half < width
                has_below = y0 + half < height
                if not (has_right or has_below):
                    # a single part at the edge: nothing to unite, whole if it was
                    united[i, j] = whole[2 * i, 2 * j]
                    continue
                ok = whole[2 * i, 2 * j]
                if ok and has_right:
                    ok = whole[2 * i, 2 * j + 1]
                if ok and has_below:
                    ok = whole[2 * i + 1, 2 * j]
                if ok and has_right and has_below:
                    ok = whole[2 * i + 1, 2 * j + 1]
                if not ok:
                    continue
                tl = y0 * width + x0
                tr = tl + half
                bl = tl + half * width
                br = bl + half
                if has_right and not _close(slot, tl, tr, bits, valid, centred, var, colour_weight, limit):
                    continue
                if has_below and not _close(slot, tl, bl, bits, valid, centred, var, colour_weight, limit):
                    continue
                if has_right and has_below:
                    if not _close(slot, bl, br, bits, valid, centred, var, colour_weight, limit):
                        continue
                    if not _close(slot, tr, br, bits, valid, centred, var, colour_weight, limit):
                        continue
                united[i, j] = True
                sa = slot[tl]
                if has_right:
                    _unite_rows(flat_sums, counts, hist, sa, slot[tr])
                    n_joined += 1
                if has_below:
                    _unite_rows(flat_sums, counts, hist, sa, slot[bl])
                    n_joined += 1
                if has_right and has_below:
                    _unite_rows(flat_sums, counts, hist, sa, slot[br])
                    n_joined += 1
                for y in range(y0, min(y0 + size, height)):
                    for x in range(x0, min(x0 + size, width)):
                        parent[y * width + x] = tl
                _descriptor_from_sums(sums, counts, sa, theta2, n1, n2, bits, valid)
                _moments(hist, sa, centred, var)
        whole = united
    return n_joined


@jit
def _hierarchy(
    sums,
    counts,
    hist,
    slot,
    height,
    width,
    theta2,
    start,
    growth,
    colour_weight,
    level_roots,
    level_thresholds,
    spare,
    can_stop,
    block,
    block_limit,
):
    """Run all levels; fill ``level_roots`` (max_levels, N) and return the number of levels.

    ``can_stop[m]`` (bool, index ``m`` = levels recorded) says that once ``m``
    levels are recorded and another would follow, the caller's kept levels no
    longer depend on how many: the merge then stops and returns ``m + 1``
    (levels beyond ``m`` are left unfilled).

    The merge starts from the regions of ``slot`` (N,) int64: pixel ``p`` belongs
    to the region named ``r`` (its smallest pixel index) when ``slot[p] ==
    slot[r]``, and ``sums[slot[r]]``, ``counts[slot[r]]``, ``hist[slot[r]]``
    hold that region's statistics (they are updated in place by the merges).
    Single pixels are ``slot = arange(N)``.  Every initial region must be
    4-connected.

    Both record buffers (the heap and the pending list) have a fixed size, one
    more than the number of pairs of initial regions that can be neighbours
    (at most the grid edges, and at most every pair) plus ``spare`` (negative:
    as many again), and drop their stale records in place when full.  At most
    one record of a pair of regions is valid (a merge re-keys each neighbour
    of the merged region once and makes the older records stale), so a
    compaction always leaves room; ``spare`` only changes how often it
    happens, never the result.  The buffers are never reallocated: Numba
    counts references at every assignment of an array variable (an atomic
    update each), and a loop that could reassign them paid that for every
    record.
    """
    n_pix = height * width
    n_slots = sums.shape[0]
    n_frames = sums.shape[1]
    flat_sums = sums.reshape((n_slots, n_frames * 3))
    n1, n2, n_words = _layout(n_frames)
    bits = np.empty((n_slots, n_words), np.uint64)
    valid = np.empty((n_slots, n_words), np.uint64)
    hcentred = np.empty((n_slots, hist.shape[1]), np.float64)
    hvar = np.empty(n_slots, np.float64)
    for k in range(n_slots):
        _descriptor_from_sums(sums, counts, k, theta2, n1, n2, bits, valid)
        _moments(hist, k, hcentred, hvar)

    # the name (smallest pixel) of every slot's region
    parent = np.empty(n_pix, np.int64)
    name = _minus_ones(n_slots)
    for p in range(n_pix):
        if name[slot[p]] == -1:
            name[slot[p]] = p
        parent[p] = name[slot[p]]
    n_regions = n_slots
    changed = np.zeros(n_pix, np.int64)  # merge counter when the region last changed
    if block > 1 and n_slots == n_pix:
        n_regions -= _merge_close_blocks(
            sums, counts, hist, slot, parent, height, width, block, block_limit, theta2, n1, n2,
            bits, valid, hcentred, hvar, colour_weight,
        )

    # grid edges between different regions as half-edges: 2e belongs to its left/top
    # pixel's region, 2e+1 to the other's; he_other[h] is (a pixel of) the region on the
    # far side, compressed to its root on each walk
    n_edges = height * (width - 1) + (height - 1) * width
    he_other = np.empty(2 * n_edges, np.int64)
    # only the half-edges between different regions are used: each is set when made (a
    # whole-frame level has few of the grid's edges, and untouched memory is not mapped)
    nxt = np.empty(2 * n_edges, np.int64)
    head = _minus_ones(n_pix)
    tail = _minus_ones(n_pix)
    e = 0
    for y in range(height):
        for x in range(width):
            p = y * width + x
            for d in range(2):
                if d == 0:
                    if x + 1 >= width:
                        continue
                    q = p + 1
                else:
                    if y + 1 >= height:
                        continue
                    q = p + width
                if parent[p] == parent[q]:
                    continue
                he_other[2 * e] = parent[q]
                he_other[2 * e + 1] = parent[p]
                nxt[2 * e] = -1
                nxt[2 * e + 1] = -1
                _append(head, tail, nxt, parent[p], 2 * e)
                _append(head, tail, nxt, parent[q], 2 * e + 1)
                e += 1

    n_pairs = min(n_slots * (n_slots - 1) // 2, n_edges)  # neighbouring pairs of regions, at most
    capacity = n_pairs + 1 + (n_pairs + 16 if spare < 0 else spare)
    heap = np.empty((capacity, 3), np.float64)
    hn = 0
    # Entries at or above the current threshold wait unsorted in `pending`; most of
    # them go stale (their region changes again) before the threshold reaches them,
    # so they never pay for a heap sift.  The heap holds only keys below the
    # threshold, hence its valid top is the global minimum while it is not empty.
    # a single level never uses the records at or above its threshold: they are not kept
    keep_pending = level_roots.shape[0] > 1
    # without the pending records, a distance at or above the threshold is dropped, so its exact value is not needed
    limit = np.inf if keep_pending else start
    pending = np.empty((capacity if keep_pending else 1, 3), np.float64)
    pn = 0
    threshold = start
    # the first candidate of every pair of neighbouring regions, once per pair
    # (walked from its lower name); the walks prune duplicate half-edges as below
    mark = _minus_ones(n_pix)
    for a in range(n_pix):
        if parent[a] != a:
            continue
        stamp = -2 - a
        prev = -1
        h = head[a]
        while h != -1:
            nh = nxt[h]
            o = he_other[h]
            if mark[o] == stamp:
                if prev == -1:
                    head[a] = nh
                else:
                    nxt[prev] = nh
            else:
                mark[o] = stamp
                if a < o:
                    key = _distance_cached(slot[a], slot[o], bits, valid, hcentred, hvar, colour_weight, limit)
                    hn, pn = _file_record(
                        heap, hn, pending, pn, key, np.float64(a * n_pix + o), 0.0, threshold, keep_pending, parent, changed, n_pix
                    )
                prev = h
            h = nh
        tail[a] = prev
        if prev != -1:
            nxt[prev] = -1

    n_merges = 0
    n_levels = 0
    max_levels = level_roots.shape[0]
    while True:
        while hn > 0:
            pair = np.int64(heap[0, 1])
            a = pair // n_pix
            b = pair - a * n_pix
            valid_top = _is_valid(heap[0, 1], heap[0, 2], parent, changed, n_pix)
            if valid_top and not heap[0, 0] < threshold:
                break
            # pop the top (written out rather than calling _pop, which would count a reference to the heap)
            hn -= 1
            if hn > 0:
                _sift_down(heap, hn, 0, heap[hn, 0], heap[hn, 1], heap[hn, 2])
            if not valid_top:
                continue
            # merge b into a (a < b, so the merged region keeps the smaller name)
            n_merges += 1
            parent[b] = a
            changed[a] = n_merges
            n_regions -= 1
            sa = slot[a]
            sb = slot[b]
            _unite_rows(flat_sums, counts, hist, sa, sb)
            _descriptor_from_sums(sums, counts, sa, theta2, n1, n2, bits, valid)
            _moments(hist, sa, hcentred, hvar)
            if head[b] != -1:
                if head[a] == -1:
                    head[a] = head[b]
                else:
                    nxt[tail[a]] = head[b]
                tail[a] = tail[b]
                head[b] = -1
                tail[b] = -1
            # Walk the merged boundary list: unlink internal half-edges and duplicates
            # (one half-edge per neighbouring region is enough to know the adjacency,
            # and the neighbour keeps its own half-edges back), re-key each neighbour once.
            prev = -1
            h = head[a]
            while h != -1:
                nh = nxt[h]
                o = _find(parent, he_other[h])
                he_other[h] = o
                if o == a or mark[o] == n_merges:
                    if prev == -1:
                        head[a] = nh
                    else:
                        nxt[prev] = nh
                else:
                    mark[o] = n_merges
                    lo = min(a, o)
                    hi = max(a, o)
                    key = _distance_cached(slot[lo], slot[hi], bits, valid, hcentred, hvar, colour_weight, limit)
                    hn, pn = _file_record(
                        heap, hn, pending, pn, key, np.float64(lo * n_pix + hi), np.float64(n_merges), threshold, keep_pending, parent, changed, n_pix
                    )
                    prev = h
                h = nh
            tail[a] = prev
            if prev != -1:
                nxt[prev] = -1
        for p in range(n_pix):
            level_roots[n_levels, p] = _find(parent, p)
        level_thresholds[n_levels] = threshold
        n_levels += 1
        if n_regions == 1 or pn == 0 or n_levels == max_levels:
            break
        if can_stop[n_levels]:
            return n_levels + 1
        threshold *= growth
        # move the valid pending records now below the threshold into the heap
        kept = 0
        for i in range(pn):
            if not _is_valid(pending[i, 1], pending[i, 2], parent, changed, n_pix):
                continue
            if pending[i, 0] < threshold:
                if hn == heap.shape[0]:
                    hn = _rebuild(heap, hn, parent, changed, n_pix)
                hn = _push(heap, hn, pending[i, 0], pending[i, 1], pending[i, 2])
            else:
                pending[kept, 0] = pending[i, 0]
                pending[kept, 1] = pending[i, 1]
                pending[kept, 2] = pending[i, 2]
                kept += 1
        pn = kept
    return n_levels


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB colours (0-255) to CIELAB under D65.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3), uint8 or float
        sRGB colours in 0-255 units.

    Returns
    -------
    ndarray, shape (..., 3), float64
        ``L`` in [0, 100], ``a`` and ``b`` roughly in [-110, 100].

    Notes
    -----
    Formula in the module docstring (sRGB companding, IEC 61966-2-1 matrix,
    D65 white ``(0.95047, 1, 1.08883)``).  Agrees with
    ``skimage.color.rgb2lab`` to within 0.01 (it rounds the matrix differently).

    Examples
    --------
    >>> np.round(srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0]], np.uint8)), 1) + 0.0
    array([[100. ,   0. ,   0. ],
           [ 53.2,  80.1,  67.2]])
    """
    rgb = np.asarray(rgb)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (..., 3); got {rgb.shape}")
    if rgb.dtype != np.uint8 and (rgb.dtype == np.bool_ or not np.issubdtype(rgb.dtype, np.floating)):
        raise TypeError(f"rgb must be uint8 or float; got {rgb.dtype}")
    flat = np.ascontiguousarray(rgb.reshape(-1, 3))
    out = np.empty(flat.shape, np.float64)
    _lab_many(flat, out)
    return out.reshape(rgb.shape)


def lab_histogram_bins(lab: np.ndarray) -> np.ndarray:
    """Bin indices (0 .. N_BINS-1) of LAB colours in the segmentation's histograms.

    Parameters
    ----------
    lab : ndarray, shape (..., 3), float
        Output of :func:`srgb_to_lab`.

    Returns
    -------
    ndarray, shape (..., 3), int64
        Index of the L, a and b bin; the histogram entry is ``c * N_BINS + index``.

    Examples
    --------
    >>> lab_histogram_bins(np.array([0.0, 0.0, 0.0])).tolist()
    [0, 3, 4]
    """
    lab = np.asarray(lab, dtype=np.float64)
    if lab.ndim < 1 or lab.shape[-1] != 3:
        raise ValueError(f"lab must have shape (..., 3); got {lab.shape}")
    flat = np.ascontiguousarray(lab.reshape(-1, 3))
    out = np.empty(flat.shape, np.int64)
    _bins_many(flat, out)
    return out.reshape(lab.shape)


def hierarchical_segmentation(
    video: np.ndarray,
    visible: np.ndarray | None = None,
    *,
    theta: float = 100.0,
    start_threshold: float = 0.2,
    growth: float = 1.5,
    keep_levels: tuple[float, ...] = (0.6, 0.7, 0.8),
    colour_weight: float = 0.1,
    initial_labels: np.ndarray | None = None,
    lab_codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hierarchical segmentation by temporal pattern and colour; a few levels of it.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
        RGB frames, 0-255 units (the warped analysis window).
    visible : ndarray of bool, shape (T, H, W), optional
        Visibility from the warp stage; invisible samples are left out of the
        colour sums, the patterns (as invalid bits) and the histograms.
        Default all visible.
    theta : float, default 100.0
        Change threshold of the temporal patterns, RGB distance in 0-255 units.
    start_threshold : float, default 0.2
        Merge threshold on ``D`` at the first level, > 0.
    growth : float, default 1.5
        Factor applied to the threshold after each level, > 1.
    keep_levels : tuple of float, default (0.6, 0.7, 0.8)
        Fractions in (0, 1] of the hierarchy's levels to return.
    colour_weight : float, default 0.1
        Weight of ``D_A`` in ``D = D_T + colour_weight * D_A``, >= 0.
    initial_labels : ndarray of int, shape (H, W), optional
        Regions to start the merge from instead of single pixels, each
        4-connected (any integer names).  With the first level of the whole
        frame (:func:`first_level_segments`) the result is the same as from
        single pixels; with the first levels of tiles (the display stage cuts
        the frame into tiles and segments them in parallel) the merges inside
        a tile happen before those across its border.
    lab_codes : ndarray of int16, shape (T, H, W), optional
        :func:`lab_bin_codes` of ``video``, when already computed (a tiled
        caller computes them once for all tiles); computed here otherwise.

    Returns
    -------
    segments : ndarray, shape (len(keep_levels), H, W), int32
        Label maps, labels ``0 .. K-1`` per level numbered in raster order of
        each region's first pixel.  Regions are 4-connected.
    thresholds : ndarray, shape (len(keep_levels),), float64
        Merge threshold of each returned level.

    Notes
    -----
    Yan et al., CVPR 2017, Sec. 4.2 (after Grundmann et al., CVPR 2010):
    ``D = D_T + 0.1 D_A``, threshold 0.2 grown by 1.5 per level, levels at 60,
    70 and 80 % of the hierarchy.  Definitions, tie-breaking and cost in the
    module docstring.

    Examples
    --------
    >>> video = np.zeros((8, 2, 4, 3), np.uint8)
    >>> video[4:, :, 2:] = 255                 # the right half switches on
    >>> segments, thresholds = hierarchical_segmentation(video, keep_levels=(0.2, 1.0))
    >>> segments[0].tolist(), segments[1].tolist()
    ([[0, 0, 1, 1], [0, 0, 1, 1]], [[0, 0, 0, 0], [0, 0, 0, 0]])
    >>> thresholds.round(3).tolist()
    [0.2, 1.013]
    """
    o = _check_options(video, visible, theta, start_threshold, growth, keep_levels, colour_weight, lab_codes)
    height, width = o.video.shape[1:3]
    slot = _slots(initial_labels, (height, width))
    level_roots, level_thresholds, n_levels = _segment(
        o.video, o.visible, o.has_visible, o.codes, slot, o.theta2, o.start, o.growth, o.colour_weight,
        o.max_levels, o.can_stop,
    )
    segments = np.empty((len(o.fractions), height, width), np.int32)
    thresholds = np.empty(len(o.fractions), np.float64)
    for i, level in enumerate(o.kept(n_levels)):
        segments[i] = _relabel(level_roots[level - 1]).reshape(height, width)
        thresholds[i] = level_thresholds[level - 1]
    return segments, thresholds


def first_level_segments(
    video: np.ndarray,
    visible: np.ndarray | None = None,
    *,
    theta: float = 100.0,
    threshold: float = 0.2,
    colour_weight: float = 0.1,
    lab_codes: np.ndarray | None = None,
) -> np.ndarray:
    """The first level of :func:`hierarchical_segmentation`: greedy merges of single pixels while ``D < threshold``.

    Parameters
    ----------
    video, visible, theta, colour_weight, lab_codes
        As for :func:`hierarchical_segmentation`.
    threshold : float, default 0.2
        The first level's merge threshold (``start_threshold``), > 0.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels ``0 .. K-1`` in raster order of each region's first pixel.

    Examples
    --------
    >>> video = np.zeros((8, 2, 4, 3), np.uint8)
    >>> video[4:, :, 2:] = 255
    >>> first_level_segments(video).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    return merge_below(video, visible, None, threshold, theta=theta, colour_weight=colour_weight, lab_codes=lab_codes)


def merge_below(
    video: np.ndarray,
    visible: np.ndarray | None,
    labels: np.ndarray | None,
    threshold: float,
    *,
    theta: float = 100.0,
    colour_weight: float = 0.1,
    lab_codes: np.ndarray | None = None,
) -> np.ndarray:
    """One level of the hierarchy: merge neighbouring regions, closest first, while ``D < threshold``.

    Parameters
    ----------
    video, visible, theta, colour_weight, lab_codes
        As for :func:`hierarchical_segmentation`.
    labels : ndarray of int, shape (H, W), or None
        The regions to start from (each 4-connected); None = single pixels.
    threshold : float
        Merge threshold on ``D``, > 0.

    Returns
    -------
    ndarray, shape (H, W), int32
        Labels ``0 .. K-1`` in raster order of each region's first pixel.
    """
    video = _check_video(video)
    n_frames, height, width = video.shape[:3]
    has_visible, visible = _check_visible(visible, (n_frames, height, width))
    theta2 = _check_theta(theta) ** 2
    start, _, colour_weight = _check_merge_parameters(threshold, 2.0, colour_weight)
    slot = _slots(labels, (height, width))
    codes = _check_codes(lab_codes, video)
    level_roots, _, _ = _segment(
        video,
        visible,
        has_visible,
        codes,
        slot,
        theta2,
        start,
        2.0,
        colour_weight,
        1,
        np.zeros(2, bool),
    )
    return _relabel(level_roots[0]).reshape(height, width)


def tiled_hierarchical_segmentation(
    video: np.ndarray,
    visible: np.ndarray | None = None,
    *,
    tile: int = 32,
    theta: float = 100.0,
    start_threshold: float = 0.2,
    growth: float = 1.5,
    keep_levels: tuple[float, ...] = (0.6, 0.7, 0.8),
    colour_weight: float = 0.1,
    lab_codes: np.ndarray | None = None,
    map_tiles=map,
    block: int = 1,
    block_distance: float | None = None,
    return_sums: bool = False,
    on_level: Callable | None = None,
):
    """:func:`hierarchical_segmentation` with each level merged tile by tile first, then over the frame.

    Level ``l`` (threshold ``t_l``) starts from level ``l - 1`` (single pixels
    for the first).  Every ``tile`` x ``tile`` tile merges, closest pair first
    while ``D < t_l``, the regions it holds along the edges inside it; the
    regions carry their statistics over the whole frame, so a region that
    crosses tiles may merge with a neighbour in each of them, and the merges
    of all tiles are united.  The frame then merges what is left below
    ``t_l`` across tile borders (:func:`merge_below`).  A level is again a
    partition into 4-connected regions in which no two neighbours are closer
    than its threshold, and the levels are nested, but the merge order is
    not the global greedy one, so regions can differ from
    :func:`hierarchical_segmentation`'s (with one tile they are the same).
    The cost of a merge grows with the merged region's boundary, which a tile
    bounds; the tiles are independent.

    Parameters
    ----------
    video, visible, theta, start_threshold, growth, keep_levels, colour_weight, lab_codes
        As for :func:`hierarchical_segmentation`.
    tile : int, default 32
        Tile edge (pixels), >= 2.
    map_tiles : callable, default ``map``
        ``map_tiles(function, items)`` returning the results in order, for the
        first level's tiles (most of the work); the display stage passes one
        that runs them on threads (the kernels release the GIL).  The coarser
        levels' tiles, a few regions each, run in the calling thread.
    block : int, default 1
        Edge of the square blocks of pixels (aligned to the tile, cut at
        its edges) the first level starts from, >= 1.  Without
        ``block_distance``, a block whose pixels change alike
        (:func:`_alike_blocks`: each pixel's colour difference to the
        block's first pixel moves by more than ``theta`` from its value in
        the first frame in at most a tenth of the frames) is one initial
        region, the pixels of any other block are regions of their own.
        Blocks of 2 leave far fewer merges, which are most of the
        segmentation's work.  1 = single pixels.
    block_distance : float or None, default None
        With ``block`` >= 2, instead of the alike test: close blocks, united
        in a quadtree up to ``block`` (:func:`_merge_close_blocks`).  A 2x2
        block is one initial region when every two side-by-side pixels in it
        are at a distance ``D`` below this (the merge's own distance, between
        single pixels); a 4x4 block when its four 2x2 blocks are whole and
        every two side by side are that close as regions; and so on.  The
        blocks are united inside the merge's kernel, from the pixels' own
        statistics, before the first pair is merged.
    return_sums : bool, default False
        Also return each kept level's per-frame colour sums and visible
        counts, which the merge keeps anyway.
    on_level : callable, optional
        Called in this thread as ``on_level(labels, (sums, counts))`` as soon as
        a level that may be one of the kept ones is merged (which are kept is
        known at the end): its labels (H, W) int32 and the sums and counts
        ``return_sums`` gives for it.  The display stage starts that level's
        features meanwhile.  The arrays must not be modified.

    Returns
    -------
    segments, thresholds
        As for :func:`hierarchical_segmentation`.
    sums : list of (ndarray (K, T, 3) float64, ndarray (K, T) int64)
        Only with ``return_sums``: per kept level, the colour sums over the
        visible pixels of every segment in every frame and their counts
        (the numbers :func:`kernels.segment_statistics.level_frame_sums`
        gives for ``segments``).

    Examples
    --------
    >>> video = np.zeros((8, 4, 8, 3), np.uint8)
    >>> video[4:, :, 3:] = 255                 # a block across the tile border switches on
    >>> segments, _ = tiled_hierarchical_segmentation(video, tile=4, keep_levels=(0.2,))
    >>> segments[0].tolist()
    [[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1]]
    """
    o = _check_options(video, visible, theta, start_threshold, growth, keep_levels, colour_weight, lab_codes)
    tile = int(tile)
    if tile < 2:
        raise ValueError(f"tile must be >= 2; got {tile}")
    block = int(block)
    if block < 1:
        raise ValueError(f"block must be >= 1; got {block}")
    video, visible, has_visible, theta2, colour_weight, fractions = (
        o.video, o.visible, o.has_visible, o.theta2, o.colour_weight, o.fractions
    )
    start, growth, max_levels, can_stop, kept = o.start, o.growth, o.max_levels, o.can_stop, o.kept
    may_keep = {level for n in range(1, max_levels + 1) for level in kept(n)}
    n_frames, height, width = video.shape[:3]
    # uint8 video without given codes: each tile converts its own samples (one colour memo shared
    # by all tiles, also across threads), so no whole-window array of codes is made
    memo = lab_memo() if o.codes is None and video.dtype == np.uint8 else None
    codes = o.codes if o.codes is not None or memo is not None else lab_bin_codes(video)
    corners = [(y, x) for y in range(0, height, tile) for x in range(0, width, tile)]
    # Integer colour sums (uint8 video) add up exactly in any order, so the statistics of a
    # merged region are the sums of its parts' and no level goes back to the pixels; float
    # video recomputes them from the pixels (in raster order, as the exact merge does).
    additive = np.issubdtype(video.dtype, np.integer)
    # close blocks are united inside the merge, from single pixels; alike blocks before it
    alike_block, close_block = (block, 1) if block_distance is None else (1, block)

    def first_level(item):
        (y, x), threshold = item
        window = (slice(None), slice(y, y + tile), slice(x, x + tile))
        crop = np.ascontiguousarray(video[window])
        crop_visible = np.ascontiguousarray(visible[window]) if has_visible else visible
        slot, n = _block_slots(crop, crop_visible, has_visible, alike_block, theta2)
        crop_codes = lab_bin_codes(crop, memo=memo) if codes is None else np.ascontiguousarray(codes[window])
        statistics = _region_statistics(crop, crop_visible, has_visible, crop_codes, slot, n)
        roots, _, _ = _merge(
            crop.shape[:3], slot, statistics, theta2, threshold, 2.0, colour_weight, 1, _NO_STOP,
            block=close_block, block_limit=block_distance or 0.0,
        )
        names, merged = _names_and_labels(roots[0])
        # each region's statistics are left in its name's slot's row
        return merged.reshape(crop.shape[1:3]), tuple(a[slot[names]] for a in statistics)

    def next_level(item):
        # the tile's regions with their statistics over the whole frame; only the tile's
        # edges are candidates, so a region crossing tiles may merge in several of them
        (y, x), slot, statistics, threshold = item
        present, local = np.unique(slot[y : y + tile, x : x + tile], return_inverse=True)
        local = local.reshape(-1).astype(np.int64)
        roots, _, _ = _merge(
            (n_frames, min(tile, height - y), min(tile, width - x)),
            local,
            tuple(np.ascontiguousarray(a[present]) for a in statistics),
            theta2,
            threshold,
            2.0,
            colour_weight,
            1,
            _NO_STOP,
        )
        # the group of each present region: the local slot of its root pixel
        return present, local[roots[0]][_first_pixels(local, present.size)]

    def whole_frame(slot, statistics, threshold):
        """Merge below ``threshold`` over the whole frame: (labels (H, W) int32, their statistics)."""
        if not additive:
            statistics = _region_statistics(video, visible, has_visible, codes, slot, len(statistics[0]))
        roots, _, _ = _merge((n_frames, height, width), slot, statistics, theta2, threshold, 2.0, colour_weight, 1, _NO_STOP)
        names, labels = _names_and_labels(roots[0])
        labels = labels.reshape(height, width).astype(np.int32)
        if not additive:
            return labels, _region_statistics(video, visible, has_visible, codes, labels.reshape(-1).astype(np.int64), len(names))
        return labels, tuple(a[slot[names]] for a in statistics)

    levels, thresholds, level_sums = [], [], []
    labels = statistics = None
    threshold = start
    while True:
        if labels is None:
            tiled = np.empty((height, width), np.int64)
            parts = []
            offset = 0
            for (y, x), (merged, part) in zip(corners, map_tiles(first_level, [(c, threshold) for c in corners]), strict=True):
                h, w = merged.shape
                tiled[y : y + h, x : x + w] = merged + offset
                offset += len(part[0])
                parts.append(part)
            tiled_statistics = tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))
            slot = tiled.reshape(-1)
        else:
            groups = np.arange(len(statistics[0]))
            # a tile inside one region has nothing to merge (most tiles of the coarser levels)
            busy = [(y, x) for y, x in corners if _holds_two_labels(labels[y : y + tile, x : x + tile])]
            # in this thread: a coarser level's tile holds few regions, and its NumPy steps around a short
            # merge hold the GIL, so on threads the tiles waited for each other (about 6 % of the display
            # stage's wall time on the steady benchmark window)
            for present, group in map(next_level, [(c, labels, statistics, threshold) for c in busy]):
                _union_groups(groups, present, group)
            _, region_slot = _names_and_labels(_roots_of(groups))
            n_slots = int(region_slot.max()) + 1
            tiled_statistics = tuple(_add_rows(a, region_slot, n_slots) for a in statistics)
            slot = region_slot[labels.reshape(-1)].astype(np.int64)
        labels, statistics = whole_frame(slot, tiled_statistics, threshold)
        levels.append(labels)
        thresholds.append(threshold)
        level_sums.append((statistics[0], statistics[1]))
        if on_level is not None and len(levels) in may_keep:
            level_sums[-1] = tuple(a.astype(t, copy=False) for a, t in zip(level_sums[-1], (np.float64, np.int64), strict=True))
            on_level(labels, level_sums[-1])
        if int(labels.max()) == 0 or len(levels) == max_levels:
            n_levels = len(levels)
            break
        if can_stop[len(levels)]:
            n_levels = len(levels) + 1
            break
        threshold *= growth
    segments = np.empty((len(fractions), height, width), np.int32)
    out_thresholds = np.empty(len(fractions), np.float64)
    for i, level in enumerate(kept(n_levels)):
        segments[i] = levels[level - 1]
        out_thresholds[i] = thresholds[level - 1]
    if return_sums:
        sums = [level_sums[level - 1] for level in kept(n_levels)]
        return segments, out_thresholds, [(a.astype(np.float64, copy=False), b.astype(np.int64, copy=False)) for a, b in sums]
    return segments, out_thresholds


_NO_STOP = np.zeros(2, bool)


def _block_slots(video, visible, has_visible, block, theta2):
    """(slot (H W,) int64, n): the initial regions of a tile, alike blocks whole and the other pixels alone."""
    height, width = video.shape[1:3]
    if block == 1:
        return np.arange(height * width, dtype=np.int64), height * width
    slot = np.empty(height * width, np.int64)
    return slot, _alike_blocks(video, visible, has_visible, block, theta2, slot)


@jit
def _alike_blocks(video, visible, has_visible, block, theta2, slot):
    """Fill ``slot`` (H W,) with the initial regions of ``block`` x ``block`` blocks; return their number.

    A block is one region when each of its pixels keeps its colour
    difference to the block's first (top-left) pixel: they are visible in the
    same frames and, over those frames, the squared RGB distance between
    ``I_q(t) - I_p(t)`` and its value in their first visible frame exceeds
    ``theta2`` in at most a tenth of the frames.  Otherwise each of its
    pixels is a region of its own, so a block never straddles the edge of
    something that changes differently.  Regions are numbered in raster
    order of the blocks.
    """
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    n = 0
    for y0 in range(0, height, block):
        for x0 in range(0, width, block):
            y1 = min(y0 + block, height)
            x1 = min(x0 + block, width)
            whole = True
            for y in range(y0, y1):
                for x in range(x0, x1):
                    if not whole or (y == y0 and x == x0):
                        continue
                    bad = 0
                    seen = 0
                    first = -1
                    for t in range(n_frames):
                        if has_visible:
                            if visible[t, y, x] != visible[t, y0, x0]:
                                whole = False
                                break
                            if not visible[t, y, x]:
                                continue
                        if first < 0:
                            first = t
                        seen += 1
                        d2 = 0.0
                        for c in range(3):
                            d = (np.float64(video[t, y, x, c]) - np.float64(video[t, y0, x0, c])) - (
                                np.float64(video[first, y, x, c]) - np.float64(video[first, y0, x0, c])
                            )
                            d2 += d * d
                        if d2 > theta2:
                            bad += 1
                            if 10 * bad > n_frames:
                                whole = False
                                break
                    if whole and 10 * bad > seen:
                        whole = False
            if whole:
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        slot[y * width + x] = n
                n += 1
            else:
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        slot[y * width + x] = n
                        n += 1
    return n


def _add_rows(array, index, n):
    """``out[index[i]] += array[i]`` for every row ``i``: (n, ...) of ``array``'s dtype."""
    out = np.zeros((n,) + array.shape[1:], array.dtype)
    _add_rows_into(array.reshape(len(array), -1), index.astype(np.int64), out.reshape(n, -1))
    return out


@jit
def _add_rows_into(array, index, out):
    for i in range(array.shape[0]):
        k = index[i]
        for j in range(array.shape[1]):
            out[k, j] += array[i, j]


@jit
def _holds_two_labels(labels):
    """Whether the 2-D ``labels`` hold two different values."""
    first = labels[0, 0]
    for y in range(labels.shape[0]):
        for x in range(labels.shape[1]):
            if labels[y, x] != first:
                return True
    return False


def _first_pixels(local, n):
    """Index of the first pixel of each of the ``n`` local slots in ``local`` (flat)."""
    first = np.full(n, local.size, np.int64)
    np.minimum.at(first, local, np.arange(local.size))
    return first


@jit
def _union_groups(parent, present, group):
    """Unite, in the union-find forest ``parent``, the regions ``present`` that share a ``group``."""
    head = np.full(group.max() + 1 if group.size else 1, -1, np.int64)
    for i in range(present.size):
        g = group[i]
        if head[g] < 0:
            head[g] = present[i]
        else:
            ra = _find(parent, head[g])
            rb = _find(parent, present[i])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)


def _names_and_labels(roots):
    """``np.unique(roots, return_inverse=True)`` of region roots (pixel indices in ``[0, roots.size)``), in O(n).

    Returns the names (the distinct roots, increasing) and every pixel's label, the rank of its
    root among them (int64 both), as ``np.unique`` gives them; the merges' roots are pixel
    indices, so two passes over the pixels replace a sort of them.
    """
    roots = np.ascontiguousarray(roots, dtype=np.int64).reshape(-1)
    if roots.size and (roots.min() < 0 or roots.max() >= roots.size):
        raise ValueError("roots must be pixel indices in [0, roots.size)")
    rank = np.empty(roots.size, np.int64)
    labels = np.empty(roots.size, np.int64)
    _rank_roots(roots, rank, labels)
    return np.flatnonzero(rank >= 0), labels


@jit
def _rank_roots(roots, rank, labels):
    """``rank[r]``: the rank of pixel ``r`` among the distinct ``roots`` (-1 if no pixel has it); ``labels[p] = rank[roots[p]]``."""
    n_pix = roots.size
    for p in range(n_pix):
        rank[p] = -1
    for p in range(n_pix):
        rank[roots[p]] = 0
    n = 0
    for p in range(n_pix):  # in increasing order: a marked pixel (0) gets its rank, the others stay -1
        if rank[p] == 0:
            rank[p] = n
            n += 1
    for p in range(n_pix):
        labels[p] = rank[roots[p]]


@jit
def _roots_of(parent):
    out = np.empty(parent.size, np.int64)
    for i in range(parent.size):
        out[i] = _find(parent, i)
    return out


def _level_plan(start, growth, colour_weight, fractions):
    """(max_levels, can_stop, kept): the hierarchy's height bound and its choice of levels.

    ``kept(L)`` are the 1-based levels kept for fractions ``q`` of ``L``
    levels, ``ceil(q L)``; ``can_stop[m]`` says that once ``m`` levels are
    recorded and more follow (so ``L`` is in ``m + 1 .. max_levels``), the kept
    levels are known already and the rest of the hierarchy need not be built.
    """
    # every level below the one whose threshold exceeds max D = 1 + 2 w, plus that one
    max_levels = 1
    t = start
    while not t > 1.0 + 2.0 * colour_weight:
        t *= growth
        max_levels += 1

    def kept(n):
        return tuple(min(n, max(1, math.ceil(q * n - 1e-9))) for q in fractions)

    can_stop = np.array(
        [
            m >= 1 and len({kept(n) for n in range(m + 1, max_levels + 1)}) == 1 and max(kept(m + 1)) <= m
            for m in range(max_levels + 1)
        ]
    )
    return max_levels, can_stop, kept


def lab_bin_codes(video: np.ndarray, out: np.ndarray | None = None, memo: np.ndarray | None = None) -> np.ndarray:
    """Packed histogram bins ``iL * 64 + ia * 8 + ib`` of every sample (the segmentation's colour histograms).

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
        RGB 0-255.
    out : ndarray, shape (T, H, W), int16, optional
        Written in place and returned (e.g. a block of frames of a larger array, filled
        by several threads); default a new array.
    memo : ndarray, shape (2**24,), int16, optional
        For uint8 video: the code of every colour ``(R << 16) | (G << 8) | B`` met so
        far, -1 where not yet known (start from :func:`lab_memo`); read
        and filled in place, so calls on the blocks of frames of one window, also from
        several threads at once, compute each colour once (threads that meet a new colour
        together both store its one code).  Default: a memo of the call's own when the
        video has more than 2**20 samples, none below.  Ignored for float video.

    Returns
    -------
    ndarray, shape (T, H, W), int16
        Bins as :func:`lab_histogram_bins` of :func:`srgb_to_lab`, packed.

    Examples
    --------
    >>> lab_bin_codes(np.zeros((1, 1, 1, 3), np.uint8)).tolist()
    [[[28]]]
    """
    video = _check_video(video)
    n_frames, height, width = video.shape[:3]
    lut = _srgb_lut()
    if memo is not None and (not isinstance(memo, np.ndarray) or memo.shape != (2**24,) or memo.dtype != np.int16):
        raise ValueError("memo must be an int16 array of shape (2**24,)")
    use_memo = video.dtype == np.uint8 and (memo is not None or n_frames * height * width > 2**20)
    if memo is None or not use_memo:
        memo = lab_memo() if use_memo else np.full(1, -1, np.int16)  # one entry: a typed, unused stand-in
    if out is None:
        out = np.empty((n_frames, height, width), np.int16)
    elif not isinstance(out, np.ndarray) or out.shape != (n_frames, height, width) or out.dtype != np.int16:
        raise ValueError(f"out must be an int16 array of shape {(n_frames, height, width)}")
    _lab_codes(video, lut, memo, use_memo, out)
    return out


def lab_memo() -> np.ndarray:
    """An empty colour memo for :func:`lab_bin_codes` (``memo=``): one int16 code per 24-bit colour
    ``(R << 16) | (G << 8) | B``, all -1 (not yet known); 32 MiB."""
    return np.full(2**24, -1, np.int16)


@functools.cache
def _srgb_lut() -> np.ndarray:
    """:func:`_linearise` of every 8-bit value (read only; made once, not per call of :func:`lab_bin_codes`)."""
    lut = np.array([_linearise(float(v)) for v in range(256)], np.float64)
    lut.flags.writeable = False
    return lut


class _Options(NamedTuple):
    """The checked inputs of a hierarchy and its plan of levels (:func:`_check_options`)."""

    video: np.ndarray
    visible: np.ndarray
    has_visible: bool
    theta2: float
    start: float
    growth: float
    colour_weight: float
    fractions: tuple[float, ...]
    codes: np.ndarray | None
    max_levels: int
    can_stop: np.ndarray
    kept: Callable[[int], tuple[int, ...]]


def _check_options(video, visible, theta, start_threshold, growth, keep_levels, colour_weight, lab_codes) -> _Options:
    """The one parameter check of :func:`hierarchical_segmentation` and :func:`tiled_hierarchical_segmentation`."""
    video = _check_video(video)
    has_visible, visible = _check_visible(visible, video.shape[:3])
    if has_visible and visible.all():
        # every sample visible is no visibility at all: the same segments, without reading or copying it
        has_visible, visible = _check_visible(None, video.shape[:3])
    theta2 = _check_theta(theta) ** 2
    start, growth, colour_weight = _check_merge_parameters(start_threshold, growth, colour_weight)
    fractions = _check_fractions(keep_levels)
    codes = _check_codes(lab_codes, video)
    max_levels, can_stop, kept = _level_plan(start, growth, colour_weight, fractions)
    return _Options(
        video, visible, has_visible, theta2, start, growth, colour_weight, fractions, codes, max_levels, can_stop, kept
    )


def _check_codes(codes, video) -> np.ndarray | None:
    if codes is None:
        return None
    codes = np.asarray(codes)
    if codes.shape != video.shape[:3] or codes.dtype != np.int16:
        raise ValueError(f"lab_codes must be int16 of shape {video.shape[:3]}; got {codes.dtype} {codes.shape}")
    return codes


def _check_fractions(keep_levels) -> tuple[float, ...]:
    fractions = tuple(float(q) for q in keep_levels)
    if len(fractions) == 0 or any(not (0 < q <= 1) for q in fractions):
        raise ValueError(f"keep_levels must be a non-empty sequence of fractions in (0, 1]; got {keep_levels}")
    return fractions


def _check_merge_parameters(start_threshold, growth, colour_weight) -> tuple[float, float, float]:
    start = float(start_threshold)
    growth = float(growth)
    colour_weight = float(colour_weight)
    if not np.isfinite(start) or start <= 0:
        raise ValueError(f"start_threshold must be finite and > 0; got {start_threshold}")
    if not np.isfinite(growth) or growth <= 1:
        raise ValueError(f"growth must be finite and > 1; got {growth}")
    if not np.isfinite(colour_weight) or colour_weight < 0:
        raise ValueError(f"colour_weight must be finite and >= 0; got {colour_weight}")
    return start, growth, colour_weight


def _relabel(roots: np.ndarray) -> np.ndarray:
    """Labels 0 .. K-1 (int32) in order of the region names, from each pixel's root."""
    _, labels = _names_and_labels(roots)
    return labels.astype(np.int32)


def _slots(initial_labels, shape) -> np.ndarray:
    """Row of each pixel's region in the region statistics, (H W,) int64; single pixels when None."""
    height, width = shape
    if initial_labels is None:
        return np.arange(height * width, dtype=np.int64)
    labels = np.asarray(initial_labels)
    if labels.shape != (height, width):
        raise ValueError(f"initial_labels must have shape {(height, width)}; got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"initial_labels must be integers; got {labels.dtype}")
    _, slot = np.unique(labels.ravel(), return_inverse=True)
    slot = slot.astype(np.int64)
    n_regions = int(slot.max()) + 1
    if _n_components(slot, height, width) != n_regions:
        raise ValueError("initial_labels: every region must be 4-connected")
    return slot


@jit
def _n_components(slot, height, width):
    """Number of 4-connected components of equal ``slot`` on the (height, width) grid."""
    parent = np.arange(height * width)
    n = height * width
    for y in range(height):
        for x in range(width):
            p = y * width + x
            for q in (p + 1 if x + 1 < width else -1, p + width if y + 1 < height else -1):
                if q >= 0 and slot[p] == slot[q]:
                    rp = _find(parent, p)
                    rq = _find(parent, q)
                    if rp != rq:
                        parent[max(rp, rq)] = min(rp, rq)
                        n -= 1
    return n


def _region_statistics(video, visible, has_visible, codes, slot, n_slots):
    """(sums, counts, hist) of the regions of ``slot``: (R, T, 3), (R, T), (R, 24)."""
    n_frames, height, width = video.shape[:3]
    n_pix = height * width
    if video.dtype == np.uint8 and 255 * n_pix < 2**31:
        sums = np.empty((n_slots, n_frames, 3), np.int32)
    elif video.dtype == np.uint8:
        sums = np.empty((n_slots, n_frames, 3), np.int64)
    else:
        sums = np.empty((n_slots, n_frames, 3), np.float64)
    counts = np.empty((n_slots, n_frames), np.int32 if n_pix < 2**31 else np.int64)
    hist = np.empty((n_slots, 3 * N_BINS), np.int64)
    if codes is None:
        codes = lab_bin_codes(video)
    # integer colours only: a float sum that starts at 0.0 turns a -0.0 sample into +0.0
    single = n_slots == n_pix and video.dtype == np.uint8 and bool(np.array_equal(slot, np.arange(n_pix)))
    _init_regions(video, visible, has_visible, codes, slot, single, sums, counts, hist)
    return sums, counts, hist


def _segment(
    video,
    visible,
    has_visible,
    codes,
    slot,
    theta2,
    start,
    growth,
    colour_weight,
    max_levels,
    can_stop,
    statistics=None,
):
    """Region statistics of ``slot`` and the merge of up to ``max_levels`` levels: (roots, thresholds, n)."""
    n_slots = int(slot.max()) + 1
    if statistics is None:
        statistics = _region_statistics(video, visible, has_visible, codes, slot, n_slots)
    return _merge(video.shape[:3], slot, statistics, theta2, start, growth, colour_weight, max_levels, can_stop)


def _merge(shape, slot, statistics, theta2, start, growth, colour_weight, max_levels, can_stop, block=1, block_limit=0.0):
    """The merge of up to ``max_levels`` levels from the regions of ``slot`` and their statistics (updated in place)."""
    _, height, width = shape
    n_pix = height * width
    sums, counts, hist = statistics
    level_roots = np.empty((max_levels, n_pix), np.int64)
    level_thresholds = np.empty(max_levels, np.float64)
    n_levels = _hierarchy(
        sums,
        counts,
        hist,
        slot,
        height,
        width,
        theta2,
        start,
        growth,
        colour_weight,
        level_roots,
        level_thresholds,
        -1 if _SPARE_RECORDS is None else _SPARE_RECORDS,
        can_stop,
        int(block),
        float(block_limit),
    )
    return level_roots, level_thresholds, n_levels
