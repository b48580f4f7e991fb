"""Slow, readable references for ``kernels.binary_patterns`` and ``kernels.segmentation``.

Plain Python on lists and sets, written from the definitions (Yan et al., CVPR
2017, Sec. 4.2) rather than from the kernels: one bit at a time, one region
pair at a time.  Only meant for tiny inputs (a few frames, 4x5 pixels).

Floating-point expressions that decide comparisons (the histogram NCC) are
evaluated in the documented order, so that exact ties in ``D`` are ties here
too and the greedy merge order can be compared with the kernel's.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------
# temporal binary patterns
# --------------------------------------------------------------------------


def naive_pairs(n_frames: int) -> list[tuple[int, int]]:
    """The (earlier, later) frame pairs of the descriptor's bits, in bit order."""
    pairs = []
    for alpha, beta in ((4, 4), (2, n_frames // 2)):
        if beta == 0:
            continue  # a zero shift compares a frame with itself: no bits
        i = 0
        while alpha * i + beta < n_frames:
            pairs.append((alpha * i, alpha * i + beta))
            i += 1
    return pairs


def naive_n_delta1(n_frames: int) -> int:
    i = 0
    while 4 * i + 4 < n_frames:
        i += 1
    return i


def naive_descriptor(colours, usable, theta: float = 100.0) -> tuple[list[int], list[int]]:
    """Bits and validity flags (lists of 0/1) of a colour sequence.

    ``colours[f]`` is an RGB triple, ``usable[f]`` says whether frame ``f`` was seen.
    """
    n_frames = len(colours)
    bits, valid = [], []
    for f0, f1 in naive_pairs(n_frames):
        if usable[f0] and usable[f1]:
            distance = math.sqrt(sum((float(colours[f1][c]) - float(colours[f0][c])) ** 2 for c in range(3)))
            bits.append(1 if distance > theta else 0)
            valid.append(1)
        else:
            bits.append(0)
            valid.append(0)
    return bits, valid


def unpack(words, n_bits: int) -> list[int]:
    """Bits ``0 .. n_bits-1`` of a packed uint64 word array, least significant first."""
    return [(int(words[k // 64]) >> (k % 64)) & 1 for k in range(n_bits)]


def naive_hamming(a_bits, a_valid, b_bits, b_valid) -> float:
    """Differing bits among those valid in both, over how many are valid in both (1.0 if none)."""
    common = [i for i in range(len(a_bits)) if a_valid[i] and b_valid[i]]
    if not common:
        return 1.0
    return sum(1 for i in common if a_bits[i] != b_bits[i]) / len(common)


def naive_fraction(bits, valid, start: int, stop: int) -> float:
    chosen = [bits[i] for i in range(start, stop) if valid[i]]
    return sum(chosen) / len(chosen) if chosen else 0.0


# --------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------


def naive_lab(rgb) -> tuple[float, float, float]:
    """CIELAB (D65) of one sRGB colour in 0-255."""

    def linear(v):
        c = v / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def f(t):
        delta = 6.0 / 29.0
        return t ** (1.0 / 3.0) if t > delta * delta * delta else t / (3.0 * delta * delta) + 4.0 / 29.0

    r, g, b = (linear(float(v)) for v in rgb)
    x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b
    fx, fy, fz = f(x / 0.95047), f(y / 1.0), f(z / 1.08883)
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


LAB_RANGES = ((0.0, 100.0), (-88.0, 100.0), (-108.0, 96.0))


def naive_bins(lab) -> list[int]:
    out = []
    for value, (low, high) in zip(lab, LAB_RANGES, strict=True):
        index = int(math.floor((value - low) / (high - low) * 8))
        out.append(min(7, max(0, index)))
    return out


def naive_ncc(h1, h2) -> float:
    n = len(h1)
    m1 = 0.0
    m2 = 0.0
    for k in range(n):
        m1 += float(h1[k])
        m2 += float(h2[k])
    m1 /= n
    m2 /= n
    num = v1 = v2 = 0.0
    for k in range(n):
        d1 = float(h1[k]) - m1
        d2 = float(h2[k]) - m2
        num += d1 * d2
        v1 += d1 * d1
        v2 += d2 * d2
    if v1 == 0.0 or v2 == 0.0:
        return 0.0
    return min(1.0, max(-1.0, num / math.sqrt(v1 * v2)))


# --------------------------------------------------------------------------
# hierarchical segmentation
# --------------------------------------------------------------------------


def _region_stats(video, visible, members, theta):
    """Pattern and 24-bin LAB histogram of a set of (y, x) pixels, from scratch."""
    n_frames = video.shape[0]
    colours, usable = [], []
    hist = [0] * 24
    for t in range(n_frames):
        seen = [(y, x) for (y, x) in members if visible[t, y, x]]
        if seen:
            sums = [sum(int(video[t, y, x, c]) for (y, x) in seen) for c in range(3)]
            colours.append([s / len(seen) for s in sums])
            usable.append(True)
        else:
            colours.append([0.0, 0.0, 0.0])
            usable.append(False)
        for y, x in seen:
            bins = naive_bins(naive_lab(video[t, y, x]))
            for c in range(3):
                hist[8 * c + bins[c]] += 1
    bits, valid = naive_descriptor(colours, usable, theta)
    return bits, valid, hist


def naive_hierarchy(video, visible=None, *, theta=100.0, start=0.2, growth=1.5, colour_weight=0.1):
    """Every level of the hierarchy as (label maps (L, H, W), thresholds (L,)).

    ``video`` must be uint8 (integer colour sums are exact whatever the merge order).
    Regions are named by their smallest raster index; at each step the pair of
    neighbouring regions with the smallest ``(D, lower name, higher name)`` is
    merged while ``D < threshold``; labels are numbered in order of the names.
    """
    n_frames, height, width = video.shape[:3]
    if visible is None:
        visible = np.ones((n_frames, height, width), bool)
    name = {(y, x): y * width + x for y in range(height) for x in range(width)}
    members = {y * width + x: {(y, x)} for y in range(height) for x in range(width)}
    stats = {r: _region_stats(video, visible, m, theta) for r, m in members.items()}

    def distance(a, b):
        bits_a, valid_a, hist_a = stats[a]
        bits_b, valid_b, hist_b = stats[b]
        dt = naive_hamming(bits_a, valid_a, bits_b, valid_b)
        da = 1.0 - naive_ncc(hist_a, hist_b)
        return dt + colour_weight * da

    levels, thresholds = [], []
    threshold = start
    while True:
        while True:
            pairs = set()
            for y in range(height):
                for x in range(width):
                    for yy, xx in ((y, x + 1), (y + 1, x)):
                        if yy < height and xx < width and name[(y, x)] != name[(yy, xx)]:
                            a, b = sorted((name[(y, x)], name[(yy, xx)]))
                            pairs.add((a, b))
            if not pairs:
                break
            d, a, b = min((distance(a, b), a, b) for a, b in pairs)
            if not d < threshold:
                break
            for pixel in members[b]:
                name[pixel] = a
            members[a] |= members.pop(b)
            del stats[b]
            stats[a] = _region_stats(video, visible, members[a], theta)
        order = {r: i for i, r in enumerate(sorted(members))}
        labels = np.array([[order[name[(y, x)]] for x in range(width)] for y in range(height)], np.int32)
        levels.append(labels)
        thresholds.append(threshold)
        if len(members) == 1:
            break
        threshold *= growth
    return np.stack(levels), np.array(thresholds)


def naive_region_distance(video, visible, members_a, members_b, *, theta=100.0, colour_weight=0.1) -> float:
    """``D`` of two regions given as sets of (y, x) pixels, from scratch."""
    bits_a, valid_a, hist_a = _region_stats(video, visible, members_a, theta)
    bits_b, valid_b, hist_b = _region_stats(video, visible, members_b, theta)
    return naive_hamming(bits_a, valid_a, bits_b, valid_b) + colour_weight * (1.0 - naive_ncc(hist_a, hist_b))


# --------------------------------------------------------------------------
# segment statistics (kernels.segment_statistics)
# --------------------------------------------------------------------------


def naive_pixel_statistics(video, visible, lab, previous=None, previous_visible=None):
    """Rows of ``pixel_statistics``, one pixel and one frame at a time."""
    n_frames, height, width = video.shape[:3]
    out = np.zeros((height * width, 17))
    for y in range(height):
        for x in range(width):
            row = out[y * width + x]
            for t in range(n_frames):
                rgb = [float(v) for v in video[t, y, x]]
                if visible[t, y, x]:
                    row[0] += 1
                    for c in range(3):
                        row[1 + c] += float(lab[t, y, x, c])
                        row[4 + c] += float(lab[t, y, x, c]) ** 2
                        row[9 + c] += rgb[c]
                        row[12 + c] += rgb[c] ** 2
                    row[7] += (max(rgb) - min(rgb)) / max(rgb) if max(rgb) > 0 else 0.0
                    row[8] += max(rgb) / 255.0
                if t == 0:
                    if previous is None or not (previous_visible[y, x] and visible[t, y, x]):
                        continue
                    before = [float(v) for v in previous[y, x]]
                elif visible[t, y, x] and visible[t - 1, y, x]:
                    before = [float(v) for v in video[t - 1, y, x]]
                else:
                    continue
                row[15] += sum(abs(a - b) for a, b in zip(rgb, before, strict=True)) / 3.0
                row[16] += 1
    return out


def naive_segment_frame_sums(video, visible, labels, n_segments):
    """(sums (n_segments, T, C), counts (n_segments, T)) of the visible samples, added in raster order."""
    n_channels = video.shape[3]
    sums = np.zeros((n_segments, video.shape[0], n_channels))
    counts = np.zeros((n_segments, video.shape[0]), np.int64)
    for t in range(video.shape[0]):
        for y in range(labels.shape[0]):
            for x in range(labels.shape[1]):
                if visible[t, y, x]:
                    counts[labels[y, x], t] += 1
                    for c in range(n_channels):
                        sums[labels[y, x], t, c] += float(video[t, y, x, c])
    return sums, counts


def naive_level_change_sums(changed, valid, labels, n_segments):
    """(n_segments, P, 3): count, x sum and y sum of the changed valid pixels of each segment and pair."""
    out = np.zeros((n_segments, changed.shape[0], 3))
    for i, y, x in zip(*np.nonzero(changed & valid), strict=True):
        out[labels[y, x], i] += (1.0, float(x), float(y))
    return out


def naive_change_map(before, after, level):
    """The display features' first definition: ``abs(after - before)`` in float32, averaged over channels."""
    step = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    return step > level


def naive_flow_channels(flow, scale, moving_speed):
    """The display features' first definition of the motion channels, whole-array NumPy (NEP 50 scalars)."""
    f = flow * scale
    speed = np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2)
    moving = speed > moving_speed
    return np.stack([np.where(moving, f[..., 0], 0.0), np.where(moving, f[..., 1], 0.0), speed], axis=-1)


def tiled_from_pixels(video, visible=None, *, tile, theta=100.0, start=0.2, growth=1.5, keep_levels, colour_weight=0.1):
    """The tiled hierarchy as first written: every level's region statistics summed again from the pixels.

    Reference for :func:`kernels.segmentation.tiled_hierarchical_segmentation`,
    which carries the statistics from level to level instead.  Level ``l``:
    each tile merges (closest first, below the level's threshold) the regions it
    holds, with their statistics over the whole frame, along its own edges; the
    merges of all tiles are united; the whole frame then merges below the
    threshold (:func:`kernels.segmentation.merge_below`, statistics from pixels).
    """
    from kernels import segmentation as s

    video = np.asarray(video)
    n_frames, height, width = video.shape[:3]
    has_visible = visible is not None
    vis = np.asarray(visible, bool) if has_visible else np.ones((1, 1, 1), bool)
    codes = s.lab_bin_codes(video)
    max_levels, can_stop, kept = s._level_plan(start, growth, colour_weight, tuple(keep_levels))
    corners = [(y, x) for y in range(0, height, tile) for x in range(0, width, tile)]
    levels, thresholds, labels, threshold = [], [], None, start
    while True:
        if labels is None:
            tiled = np.empty((height, width), np.int64)
            for y, x in corners:
                window = (slice(None), slice(y, y + tile), slice(x, x + tile))
                merged = s.merge_below(
                    video[window], vis[window] if has_visible else None, None, threshold,
                    theta=theta, colour_weight=colour_weight,
                )
                h, w = merged.shape
                tiled[y : y + h, x : x + w] = merged.astype(np.int64) + (y * width + x) * tile * tile
        else:
            slot = labels.astype(np.int64)
            n_regions = int(slot.max()) + 1
            statistics = s._region_statistics(video, vis, has_visible, codes, slot.ravel(), n_regions)
            groups = np.arange(n_regions)
            for y, x in corners:
                present, local = np.unique(slot[y : y + tile, x : x + tile], return_inverse=True)
                local = local.ravel().astype(np.int64)
                roots, _, _ = s._segment(
                    video[:, y : y + tile, x : x + tile], None, has_visible, None, local, theta**2, threshold,
                    2.0, colour_weight, 1, np.zeros(2, bool), tuple(a[present].copy() for a in statistics),
                )
                first = np.array([np.flatnonzero(local == j)[0] for j in range(present.size)])
                group = local[roots[0]][first]
                for j in range(present.size):  # union the regions of one group
                    for i in range(j):
                        if group[i] == group[j]:
                            ra, rb = s._find(groups, present[i]), s._find(groups, present[j])
                            groups[max(ra, rb)] = min(ra, rb)
                            break
            tiled = np.array([s._find(groups, i) for i in range(n_regions)])[slot]
        labels = s.merge_below(
            video, visible, tiled, threshold, theta=theta, colour_weight=colour_weight, lab_codes=codes
        )
        levels.append(labels)
        thresholds.append(threshold)
        if int(labels.max()) == 0 or len(levels) == max_levels:
            n_levels = len(levels)
            break
        if can_stop[len(levels)]:
            n_levels = len(levels) + 1
            break
        threshold *= growth
    chosen = kept(n_levels)
    return np.array([levels[k - 1] for k in chosen]), np.array([thresholds[k - 1] for k in chosen])


def naive_alike_blocks(video, visible, block, theta):
    """Initial regions of a tile from ``block`` x ``block`` blocks, (H, W) int labels.

    A block is one region when every pixel of it, compared with the block's
    top-left pixel, is visible in the same frames and, over those frames, the
    squared RGB distance between the two pixels' colour difference and that
    difference in their first visible frame exceeds ``theta ** 2`` in at most
    a tenth of the frames; otherwise its pixels are regions of their own.
    """
    video = np.asarray(video, np.float64)
    n_frames, height, width = video.shape[:3]
    if visible is None:
        visible = np.ones((n_frames, height, width), bool)
    labels = np.zeros((height, width), np.int64)
    n = 0
    for y0 in range(0, height, block):
        for x0 in range(0, width, block):
            pixels = [(y, x) for y in range(y0, min(y0 + block, height)) for x in range(x0, min(x0 + block, width))]
            whole = True
            for y, x in pixels[1:]:
                if any(visible[t, y, x] != visible[t, y0, x0] for t in range(n_frames)):
                    whole = False
                    continue
                frames = [t for t in range(n_frames) if visible[t, y, x]]
                bad = 0
                for t in frames:
                    drift = (video[t, y, x] - video[t, y0, x0]) - (video[frames[0], y, x] - video[frames[0], y0, x0])
                    if float((drift**2).sum()) > theta**2:
                        bad += 1
                if 10 * bad > len(frames):
                    whole = False
            for y, x in pixels:
                labels[y, x] = n
                if not whole:
                    n += 1
            if whole:
                n += 1
    return labels


def naive_close_blocks(video, visible, block, theta, colour_weight, limit):
    """Initial regions of a tile from close blocks in a quadtree, (H, W) int labels.

    Blocks of 2 x 2 pixels, then of 2 x 2 such blocks, and so on while the
    block edge is at most ``block`` (aligned to the top-left corner, cut at the
    edges): a block is one region when each of its parts (pixels, then blocks
    of the size before) is one region and every two parts side by side are at
    a distance ``D`` (:func:`naive_region_distance` of their pixel sets) below
    ``limit``.  Labels follow the raster order of the regions' first pixels.
    """
    n_frames, height, width = video.shape[:3]
    if visible is None:
        visible = np.ones((n_frames, height, width), bool)
    # the regions of the current size: their pixel sets, keyed by their top-left corner
    regions = {(y, x): {(y, x)} for y in range(height) for x in range(width)}
    size = 1
    while 2 * size <= block:
        half, size = size, 2 * size
        for y0 in range(0, height, size):
            for x0 in range(0, width, size):
                corners = [(y0 + dy, x0 + dx) for dy in (0, half) for dx in (0, half) if y0 + dy < height and x0 + dx < width]
                if len(corners) < 2:
                    continue
                # each part must be one region: a whole part of the size before is keyed by its corner
                # and holds all of its pixels
                parts = [regions.get(c) for c in corners]
                if any(p is None or len(p) != min(half, height - c[0]) * min(half, width - c[1]) for p, c in zip(parts, corners, strict=True)):
                    continue
                side_by_side = [(a, b) for a in corners for b in corners if b in ((a[0], a[1] + half), (a[0] + half, a[1]))]
                if all(
                    naive_region_distance(video, visible, regions[a], regions[b], theta=theta, colour_weight=colour_weight) < limit
                    for a, b in side_by_side
                ):
                    united = set().union(*parts)
                    for c in corners[1:]:
                        del regions[c]
                    regions[corners[0]] = united
    labels = np.zeros((height, width), np.int64)
    for n, corner in enumerate(sorted(regions, key=lambda c: c[0] * width + c[1])):
        for y, x in regions[corner]:
            labels[y, x] = n
    return labels


def naive_names_and_labels(roots):
    """The distinct roots in increasing order, and the index of each pixel's root among them."""
    names = sorted(set(int(r) for r in roots))
    index = {name: i for i, name in enumerate(names)}
    return names, [index[int(r)] for r in roots]
