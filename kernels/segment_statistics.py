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

__all__ = ["PIXEL_COLUMNS", "pixel_statistics", "segment_frame_sums", "segment_row_extents"]

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


@jit
def _pixel_statistics(video, visible, lab, previous, previous_visible, has_previous, out):
    n_frames, height, width = video.shape[0], video.shape[1], video.shape[2]
    for y in range(height):
        for x in range(width):
            p = y * width + x
            for k in range(out.shape[1]):
                out[p, k] = 0.0
            prev_seen = has_previous and previous_visible[y, x]
            for t in range(n_frames):
                seen = visible[t, y, x]
                r = np.float64(video[t, y, x, 0])
                g = np.float64(video[t, y, x, 1])
                b = np.float64(video[t, y, x, 2])
                if seen:
                    out[p, 0] += 1.0
                    for c in range(3):
                        v = np.float64(lab[t, y, x, c])
                        out[p, 1 + c] += v
                        out[p, 4 + c] += v * v
                    vmax = max(r, max(g, b))
                    vmin = min(r, min(g, b))
                    if vmax > 0:
                        out[p, 7] += (vmax - vmin) / vmax
                    out[p, 8] += vmax / 255.0
                    out[p, 9] += r
                    out[p, 10] += g
                    out[p, 11] += b
                    out[p, 12] += r * r
                    out[p, 13] += g * g
                    out[p, 14] += b * b
                if seen and prev_seen:
                    if t == 0:
                        pr = np.float64(previous[y, x, 0])
                        pg = np.float64(previous[y, x, 1])
                        pb = np.float64(previous[y, x, 2])
                    else:
                        pr = np.float64(video[t - 1, y, x, 0])
                        pg = np.float64(video[t - 1, y, x, 1])
                        pb = np.float64(video[t - 1, y, x, 2])
                    out[p, 15] += (abs(r - pr) + abs(g - pg) + abs(b - pb)) / 3.0
                    out[p, 16] += 1.0
                prev_seen = seen


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
    out = np.empty((shape[1] * shape[2], len(PIXEL_COLUMNS)), np.float64)
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
    ([[0.0, 1.0, 2.0], [27.0, 30.0, 33.0]], [[1], [3]])
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
    sums = np.zeros((n_segments, video.shape[0], 3), np.float64)
    counts = np.zeros((n_segments, video.shape[0]), np.int64)
    _segment_frame_sums(video, visible.astype(bool, copy=False), labels.astype(np.int64, copy=False), sums, counts)
    return sums, counts


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
