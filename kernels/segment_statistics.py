"""One-pass reductions behind the display classifier's segment features (``tasks.display_features``).

The features of a segment are sums over its pixels of per-pixel statistics
(colour moments, frame-to-frame change), its mean colour in every frame, and
its outline.  These kernels compute each of them for every pixel or every
segment in one pass over the window instead of one pass per segment:

* :func:`pixel_statistics` -- per pixel, over the visible frames of a block of
  the window: sample count, sums and sums of squares of CIELAB and RGB, sums of
  HSV saturation and value, and the sum and count of the channel-mean absolute
  change between consecutive visible frames;
* :func:`segment_frame_sums` -- per segment and frame, the RGB sum and count of
  its visible pixels (the segment's mean colour over time);
* :func:`segment_row_extents` -- per segment and image row, the leftmost and
  rightmost pixel (the outline's convex hull and bounding box come from these).
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = [
    "PIXEL_COLUMNS",
    "pixel_statistics",
    "segment_frame_sums",
    "level_frame_sums",
    "level_change_sums",
    "change_map",
    "flow_channels",
    "segment_row_extents",
    "written_zeros",
]

#: Columns of :func:`pixel_statistics`.
PIXEL_COLUMNS: tuple[str, ...] = (
    "n",
    "lab_0",
    "lab_1",
    "lab_2",
    "lab_sq_0",
    "lab_sq_1",
    "lab_sq_2",
    "sat",
    "val",
    "rgb_0",
    "rgb_1",
    "rgb_2",
    "rgb_sq_0",
    "rgb_sq_1",
    "rgb_sq_2",
    "diff",
    "n_diff",
)


def written_zeros(shape, dtype=np.float64) -> np.ndarray:
    """A zeroed array whose memory is written before anything reads it (``np.empty`` then ``fill(0)``),
    for the sums these kernels add into.

    ``np.zeros`` of a large array gets fresh pages that the kernel maps lazily to its one shared zero
    page.  A kernel that adds into such an array (``out[p] += ...``) reads each page first, so the
    write that follows is a copy-on-write fault, and in a process with threads on other cores every
    such fault also flushes their TLBs (an inter-processor interrupt, costly in a virtual machine).
    Written first, each page takes one ordinary fault instead.  In the display stage's per-pixel sums
    (two 31 MB arrays at 640x360) this cut the stage's system time from about 0.45 to 0.17 s and its
    wall time by about 16 % (fresh processes, idle 2-core machine).  The values are the same +0.0.
    """
    out = np.empty(shape, dtype)
    out.fill(0)
    return out


@jit
def _pixel_statistics(video, visible, lab, previous, previous_visible, has_previous, out):
    """Per-pixel sums of the block added to ``out`` (H W, 17).

    Each column is summed over the block's frames from 0.0 first and then
    added, so a window cut into blocks gives the same bits as summing each
    block into its own array and adding the arrays (a sum that starts at
    +0.0 is never -0.0, so adding it to a zeroed ``out`` stores it exactly).
    """
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    # the 17 sums are scalars, not an array: kept in registers, not stored and reloaded per sample
    for y in range(height):
        for x in range(width):
            p = y * width + x
            n = l0 = l1 = l2 = q0 = q1 = q2 = sat = val = 0.0
            s0 = s1 = s2 = r2 = g2 = b2 = diff = n_diff = 0.0
            prev_seen = has_previous and previous_visible[y, x]
            if has_previous:
                pr = np.float64(previous[y, x, 0])
                pg = np.float64(previous[y, x, 1])
                pb = np.float64(previous[y, x, 2])
            else:
                pr = pg = pb = 0.0
            for t in range(n_frames):
                seen = visible[t, y, x]
                r = np.float64(video[t, y, x, 0])
                g = np.float64(video[t, y, x, 1])
                b = np.float64(video[t, y, x, 2])
                if seen:
                    n += 1.0
                    v = np.float64(lab[t, y, x, 0])
                    l0 += v
                    q0 += v * v
                    v = np.float64(lab[t, y, x, 1])
                    l1 += v
                    q1 += v * v
                    v = np.float64(lab[t, y, x, 2])
                    l2 += v
                    q2 += v * v
                    vmax = max(r, max(g, b))
                    vmin = min(r, min(g, b))
                    if vmax > 0:
                        sat += (vmax - vmin) / vmax
                    val += vmax / 255.0
                    s0 += r
                    s1 += g
                    s2 += b
                    r2 += r * r
                    g2 += g * g
                    b2 += b * b
                    if prev_seen:
                        diff += (abs(r - pr) + abs(g - pg) + abs(b - pb)) / 3.0
                        n_diff += 1.0
                prev_seen = seen
                pr = r
                pg = g
                pb = b
            out[p, 0] += n
            out[p, 1] += l0
            out[p, 2] += l1
            out[p, 3] += l2
            out[p, 4] += q0
            out[p, 5] += q1
            out[p, 6] += q2
            out[p, 7] += sat
            out[p, 8] += val
            out[p, 9] += s0
            out[p, 10] += s1
            out[p, 11] += s2
            out[p, 12] += r2
            out[p, 13] += g2
            out[p, 14] += b2
            out[p, 15] += diff
            out[p, 16] += n_diff


@jit
def _segment_frame_sums(video, visible, labels, sums, counts):
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    for t in range(n_frames):
        for y in range(height):
            for x in range(width):
                if visible[t, y, x]:
                    k = labels[y, x]
                    counts[k, t] += 1
                    for c in range(3):
                        sums[k, t, c] += video[t, y, x, c]


@jit
def _level_frame_sums(values, valid, segments, offsets, sums, counts):
    n_frames, height, width = values.shape[0], values.shape[1], values.shape[2]
    n_levels = segments.shape[0]
    if values.shape[3] != 3:
        for t in range(n_frames):
            for y in range(height):
                for x in range(width):
                    if valid[t, y, x]:
                        for level in range(n_levels):
                            k = offsets[level] + segments[level, y, x]
                            counts[k, t] += 1
                            for c in range(values.shape[3]):
                                sums[k, t, c] += values[t, y, x, c]
        return
    # Three channels: along a row, a run of pixels of one segment adds into scalars
    # (the segment's sums so far, read once) and stores them when the run ends.  Each
    # sum still takes its samples one at a time in raster order: the same additions.
    for t in range(n_frames):
        for y in range(height):
            for level in range(n_levels):
                base = offsets[level]
                k = -1
                n = 0
                s0 = s1 = s2 = 0.0
                for x in range(width):
                    if not valid[t, y, x]:
                        continue
                    j = base + segments[level, y, x]
                    if j != k:
                        if k >= 0:
                            counts[k, t] += n
                            sums[k, t, 0] = s0
                            sums[k, t, 1] = s1
                            sums[k, t, 2] = s2
                        k = j
                        n = 0
                        s0 = sums[k, t, 0]
                        s1 = sums[k, t, 1]
                        s2 = sums[k, t, 2]
                    n += 1
                    s0 += values[t, y, x, 0]
                    s1 += values[t, y, x, 1]
                    s2 += values[t, y, x, 2]
                if k >= 0:
                    counts[k, t] += n
                    sums[k, t, 0] = s0
                    sums[k, t, 1] = s1
                    sums[k, t, 2] = s2


@jit
def _level_change_sums(changed, valid, segments, offsets, sums):
    n_pairs, height, width = changed.shape[0], changed.shape[1], changed.shape[2]
    n_levels = segments.shape[0]
    for i in range(n_pairs):
        for y in range(height):
            for x in range(width):
                if valid[i, y, x] and changed[i, y, x]:
                    for level in range(n_levels):
                        k = offsets[level] + segments[level, y, x]
                        sums[k, i, 0] += 1.0
                        sums[k, i, 1] += np.float64(x)
                        sums[k, i, 2] += np.float64(y)


@jit
def _change_map(before, after, level, out):
    height, width = out.shape
    for y in range(height):
        for x in range(width):
            total = np.float32(0.0)
            for c in range(3):
                total += np.float32(abs(np.float32(after[y, x, c]) - np.float32(before[y, x, c])))
            out[y, x] = np.float64(total) / 3.0 > level


@jit
def _segment_row_extents(labels, first, last):
    height, width = labels.shape
    for y in range(height):
        for x in range(width):
            k = labels[y, x]
            if first[k, y] < 0:
                first[k, y] = x
            last[k, y] = x


def pixel_statistics(
    video: np.ndarray,
    visible: np.ndarray,
    lab: np.ndarray,
    previous: np.ndarray | None = None,
    previous_visible: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel sums over the visible samples of a block of frames.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
        RGB 0-255.
    visible : ndarray of bool, shape (T, H, W)
    lab : ndarray, shape (T, H, W, 3), float
        CIELAB of ``video`` (the caller's conversion).
    previous, previous_visible : ndarray, shapes (H, W, 3) and (H, W), optional
        The frame before the block and its visibility, so that a window cut
        into blocks counts the change across every block border once.
    out : ndarray, shape (H W, 17), float64, optional
        Sums of earlier blocks: this block's sums (each summed over its frames
        first) are added to it in place and it is returned.  Default a new array.

    Returns
    -------
    ndarray, shape (H W, 17), float64
        Columns :data:`PIXEL_COLUMNS`: visible samples; sums of L, a, b and of
        their squares; sums of HSV saturation ``(max - min) / max`` (0 for
        black) and value ``max / 255``; sums of R, G, B and of their squares;
        the sum of ``mean_c |I_c(t) - I_c(t-1)|`` over the frames visible in
        both and how many such pairs.

    Examples
    --------
    >>> video = np.zeros((3, 1, 1, 3), np.uint8); video[1] = 30
    >>> out = pixel_statistics(video, np.ones((3, 1, 1), bool), np.zeros((3, 1, 1, 3)))
    >>> out[0, [0, 9, 15, 16]].tolist()
    [3.0, 30.0, 60.0, 2.0]
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[3] != 3:
        raise ValueError(f"video must have shape (T, H, W, 3); got {video.shape}")
    shape = video.shape[:3]
    visible = np.asarray(visible)
    if visible.shape != shape or visible.dtype != np.bool_:
        raise ValueError(f"visible must be bool of shape {shape}; got {visible.dtype} {visible.shape}")
    lab = np.asarray(lab)
    if lab.shape != video.shape:
        raise ValueError(f"lab must have shape {video.shape}; got {lab.shape}")
    has_previous = previous is not None
    if has_previous:
        previous = np.asarray(previous)
        previous_visible = np.asarray(previous_visible, bool)
        if previous.shape != video.shape[1:] or previous_visible.shape != shape[1:]:
            raise ValueError("previous must have shape (H, W, 3) and previous_visible (H, W)")
    else:
        previous = np.zeros((1, 1, 3), video.dtype)
        previous_visible = np.zeros((1, 1), bool)
    if out is None:
        out = written_zeros((shape[1] * shape[2], len(PIXEL_COLUMNS)))
    elif out.shape != (shape[1] * shape[2], len(PIXEL_COLUMNS)) or out.dtype != np.float64:
        raise ValueError(f"out must be float64 of shape {(shape[1] * shape[2], len(PIXEL_COLUMNS))}")
    _pixel_statistics(video, visible, lab, previous, previous_visible, has_previous, out)
    return out


def segment_frame_sums(
    video: np.ndarray, visible: np.ndarray, labels: np.ndarray, n_segments: int
) -> tuple[np.ndarray, np.ndarray]:
    """RGB sum and count of every segment's visible pixels in every frame.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
    visible : ndarray of bool, shape (T, H, W)
    labels : ndarray of int, shape (H, W)
        Labels ``0 .. n_segments-1``.
    n_segments : int

    Returns
    -------
    sums : ndarray, shape (n_segments, T, 3), float64
    counts : ndarray, shape (n_segments, T), int64

    Examples
    --------
    >>> video = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    >>> sums, counts = segment_frame_sums(video, np.ones((1, 2, 2), bool), np.array([[0, 1], [1, 1]]), 2)
    >>> sums[:, 0].tolist(), counts.tolist()
    ([[0.0, 1.0, 2.0], [18.0, 21.0, 24.0]], [[1], [3]])
    """
    video = np.asarray(video)
    labels = np.asarray(labels)
    visible = np.asarray(visible)
    if video.ndim != 4 or labels.shape != video.shape[1:3] or visible.shape != video.shape[:3]:
        raise ValueError(
            f"need video (T, H, W, 3), visible (T, H, W), labels (H, W); got {video.shape}, "
            f"{visible.shape}, {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_segments):
        raise ValueError(f"labels must be in 0 .. {n_segments - 1}")
    sums = written_zeros((n_segments, video.shape[0], 3))
    counts = written_zeros((n_segments, video.shape[0]), np.int64)
    _segment_frame_sums(video, visible.astype(bool, copy=False), labels.astype(np.int64, copy=False), sums, counts)
    return sums, counts


def _level_offsets(segments, shape):
    segments = np.asarray(segments)
    if segments.ndim != 3 or segments.shape[1:] != tuple(shape):
        raise ValueError(f"segments must have shape (levels, {shape[0]}, {shape[1]}); got {segments.shape}")
    if not np.issubdtype(segments.dtype, np.integer) or (segments.size and segments.min() < 0):
        raise ValueError("segments must be integer labels >= 0")
    n_segments = segments.reshape(len(segments), -1).max(axis=1).astype(np.int64) + 1
    offsets = np.concatenate([[0], np.cumsum(n_segments)]).astype(np.int64)
    return segments.astype(np.int64, copy=False), n_segments, offsets


def level_frame_sums(
    values: np.ndarray, valid: np.ndarray, segments: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`segment_frame_sums` of every level of a segmentation, in one pass over ``values``.

    Parameters
    ----------
    values : ndarray, shape (T, H, W, C), uint8 or float
        Per-frame (or per frame pair) values, e.g. RGB or flow vectors.
    valid : ndarray of bool, shape (T, H, W)
        Samples to count.
    segments : ndarray of int, shape (L, H, W)
        Labels ``0 .. K_l-1`` of each level.

    Returns
    -------
    list of (sums (K_l, T, C) float64, counts (K_l, T) int64), one per level
        The same numbers (same summation order) as :func:`segment_frame_sums`
        level by level.

    Examples
    --------
    >>> values = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    >>> [(s[:, 0, 0].tolist(), c[:, 0].tolist()) for s, c in level_frame_sums(
    ...     values, np.ones((1, 2, 2), bool), np.array([[[0, 1], [1, 1]], [[0, 0], [0, 0]]]))]
    [([0.0, 6.0], [1, 3]), ([6.0], [4])]
    """
    values = np.asarray(values)
    valid = np.asarray(valid)
    if values.ndim != 4 or valid.shape != values.shape[:3] or valid.dtype != np.bool_:
        raise ValueError(f"need values (T, H, W, C) and valid bool (T, H, W); got {values.shape}, {valid.dtype} {valid.shape}")
    segments, n_segments, offsets = _level_offsets(segments, values.shape[1:3])
    sums = written_zeros((offsets[-1], values.shape[0], values.shape[3]))
    counts = written_zeros((offsets[-1], values.shape[0]), np.int64)
    _level_frame_sums(values, valid, segments, offsets, sums, counts)
    return [(sums[a:b], counts[a:b]) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def level_change_sums(changed: np.ndarray, valid: np.ndarray, segments: np.ndarray) -> list[np.ndarray]:
    """Per level, segment and frame pair: how many valid pixels changed, and the sums of their x and y.

    Parameters
    ----------
    changed, valid : ndarray of bool, shape (P, H, W)
    segments : ndarray of int, shape (L, H, W)

    Returns
    -------
    list of ndarray (K_l, P, 3) float64
        Columns: count, sum of x, sum of y (pixel indices) of the changed valid pixels.

    Examples
    --------
    >>> changed = np.array([[[True, False], [False, True]]])
    >>> level_change_sums(changed, np.ones((1, 2, 2), bool), np.zeros((1, 2, 2), int))[0].tolist()
    [[[2.0, 1.0, 1.0]]]
    """
    changed = np.asarray(changed)
    valid = np.asarray(valid)
    if changed.ndim != 3 or changed.dtype != np.bool_ or valid.shape != changed.shape or valid.dtype != np.bool_:
        raise ValueError(f"changed and valid must be bool of one shape (P, H, W); got {changed.shape}, {valid.shape}")
    segments, _, offsets = _level_offsets(segments, changed.shape[1:3])
    sums = written_zeros((offsets[-1], changed.shape[0], 3))
    _level_change_sums(changed, valid, segments, offsets, sums)
    return [sums[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def change_map(before: np.ndarray, after: np.ndarray, level: float) -> np.ndarray:
    """Pixels whose channel-mean absolute change ``mean_c |after_c - before_c|`` exceeds ``level``.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), uint8 or float
        Two frames, 0-255.
    level : float

    Returns
    -------
    ndarray of bool, shape (H, W)
        The channel differences are taken and added in float32, as NumPy does
        for ``abs(after.astype(float32) - before.astype(float32)).mean(axis=2)``
        (exactly so for integer colours).

    Examples
    --------
    >>> change_map(np.zeros((1, 2, 3), np.uint8), np.array([[[30, 30, 15], [30, 30, 16]]], np.uint8), 25.0).tolist()
    [[False, True]]
    """
    before = np.asarray(before)
    after = np.asarray(after)
    if before.ndim != 3 or before.shape[2] != 3 or after.shape != before.shape:
        raise ValueError(f"before and after must have one shape (H, W, 3); got {before.shape}, {after.shape}")
    out = np.empty(before.shape[:2], np.bool_)
    _change_map(before, after, float(level), out)
    return out


def flow_channels(flow: np.ndarray, scale: float, moving_speed: float, out: np.ndarray | None = None) -> np.ndarray:
    """A dense flow's motion channels: x and y flow where the speed exceeds ``moving_speed`` (else 0), and the speed.

    Parameters
    ----------
    flow : ndarray, shape (H, W, 2), float32
    scale : float
        Multiplies the flow first (e.g. pixels per frame from pixels per frame pair).
    moving_speed : float
    out : ndarray, shape (H, W, 3), float32, optional
        Written in place (e.g. one pair of a stack) and returned; default a new array.

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        In float32 throughout, as NumPy 2 computes ``f = flow * scale``,
        ``speed = np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2)`` and
        ``np.where(speed > moving_speed, f[..., c], 0.0)``: the scalars are taken as float32 (NEP 50), so
        the bits are NumPy's wherever ``moving_speed`` is a float32 value; one pass instead of a dozen
        whole-frame temporaries.

    Examples
    --------
    >>> flow_channels(np.array([[[3.0, 4.0], [0.3, 0.0]]], np.float32), 1.0, 0.5).tolist()
    [[[3.0, 4.0, 5.0], [0.0, 0.0, 0.30000001192092896]]]
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.dtype != np.float32:
        raise ValueError(f"flow must be float32 of shape (H, W, 2); got {flow.dtype} {flow.shape}")
    if out is None:
        out = np.empty((*flow.shape[:2], 3), np.float32)
    elif not isinstance(out, np.ndarray) or out.shape != (*flow.shape[:2], 3) or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {(*flow.shape[:2], 3)}")
    _flow_channels(flow, np.float32(scale), np.float32(moving_speed), out)
    return out


@jit
def _flow_channels(flow, scale, moving_speed, out):
    for y in range(flow.shape[0]):
        for x in range(flow.shape[1]):
            fx = flow[y, x, 0] * scale
            fy = flow[y, x, 1] * scale
            speed = np.sqrt(fx * fx + fy * fy)
            if speed > moving_speed:
                out[y, x, 0] = fx
                out[y, x, 1] = fy
            else:
                out[y, x, 0] = 0.0
                out[y, x, 1] = 0.0
            out[y, x, 2] = speed


def segment_row_extents(labels: np.ndarray, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Leftmost and rightmost column of every segment in every row (-1 where the row misses it).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Labels ``0 .. n_segments-1``.
    n_segments : int

    Returns
    -------
    first, last : ndarray, shape (n_segments, H), int64

    Examples
    --------
    >>> first, last = segment_row_extents(np.array([[0, 1, 1], [1, 1, 0]]), 2)
    >>> first.tolist(), last.tolist()
    ([[0, 2], [1, 0]], [[0, 2], [2, 1]])
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (H, W); got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_segments):
        raise ValueError(f"labels must be in 0 .. {n_segments - 1}")
    first = np.full((n_segments, labels.shape[0]), -1, np.int64)
    last = np.full((n_segments, labels.shape[0]), -1, np.int64)
    _segment_row_extents(labels.astype(np.int64, copy=False), first, last)
    return first, last
