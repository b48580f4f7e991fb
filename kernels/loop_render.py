"""Composite the frames of a loop from per-region time tables (one spatial tile at a time).

Every animated region ``r`` (label ``r >= 1``) has, for each output frame
``t``, two window frames ``a[r, t]`` and ``b[r, t]`` and a weight
``wb[r, t]``: the region shows ``(1 - wb) V[a] + wb V[b]`` (a cross-fade, or
a retimed region's position between two frames).  Label 0 is the
frozen part.  A per-pixel ``alpha`` feathers the regions' edges against the
reference frame; where ``alpha`` is 0 the output is the reference exactly.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = ["composite_loop"]


def composite_loop(
    video: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    alpha: np.ndarray,
    frame_a: np.ndarray,
    frame_b: np.ndarray,
    weight_b: np.ndarray,
) -> np.ndarray:
    """Frames of the loop for one tile.

    Parameters
    ----------
    video : ndarray, (T_in, h, w, C) uint8
        The aligned window (``warped``).
    reference : ndarray, (h, w, C) uint8
        The frozen frame.
    labels : ndarray, (h, w) int
        Region of every pixel, 0 = frozen, 1..R animated.
    alpha : ndarray, (h, w) float
        Opacity of the animation over the reference, in [0, 1].
    frame_a, frame_b : ndarray, (R + 1, T_out) int
        Window frame indices per region and output frame (row 0 unused).
    weight_b : ndarray, (R + 1, T_out) float
        Weight of ``frame_b``, in [0, 1].

    Returns
    -------
    ndarray, (T_out, h, w, C) uint8

    Examples
    --------
    >>> v = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1) * 10
    >>> out = composite_loop(v, v[0], np.ones((1, 1), int), np.ones((1, 1)),
    ...                      np.array([[0, 0], [3, 2]]), np.zeros((2, 2), int), np.zeros((2, 2)))
    >>> out[:, 0, 0, 0].tolist()
    [30, 20]
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.dtype != np.uint8:
        raise ValueError(f"video must be (T, h, w, C) uint8, got {video.shape} {video.dtype}")
    t_in, h, w, c = video.shape
    if reference.shape != (h, w, c) or reference.dtype != np.uint8:
        raise ValueError(f"reference must be {(h, w, c)} uint8, got {reference.shape} {reference.dtype}")
    if labels.shape != (h, w) or alpha.shape != (h, w):
        raise ValueError("labels and alpha must have the tile's (h, w) shape")
    if frame_a.shape != frame_b.shape or frame_a.shape != weight_b.shape or frame_a.ndim != 2:
        raise ValueError("frame_a, frame_b and weight_b must share one (R + 1, T_out) shape")
    n_regions = frame_a.shape[0] - 1
    lab = np.ascontiguousarray(labels, np.int64)
    if lab.size and (lab.min() < 0 or lab.max() > n_regions):
        raise ValueError(f"labels must be in [0, {n_regions}]")
    fa = np.ascontiguousarray(frame_a, np.int64)
    fb = np.ascontiguousarray(frame_b, np.int64)
    if fa.size and (min(fa[1:].min(initial=0), fb[1:].min(initial=0)) < 0 or max(fa.max(), fb.max()) >= t_in):
        raise ValueError(f"frame indices must be in [0, {t_in})")
    out = np.empty((frame_a.shape[1], h, w, c), np.uint8)
    _composite(
        np.ascontiguousarray(video),
        np.ascontiguousarray(reference),
        lab,
        np.ascontiguousarray(alpha, np.float32),
        fa,
        fb,
        np.ascontiguousarray(weight_b, np.float32),
        out,
    )
    return out


@jit
def _composite(video, reference, labels, alpha, fa, fb, wb, out):
    t_out = out.shape[0]
    h, w, c = reference.shape
    for y in range(h):
        for x in range(w):
            r = labels[y, x]
            al = alpha[y, x]
            if r == 0 or al <= 0.0:
                for t in range(t_out):
                    for k in range(c):
                        out[t, y, x, k] = reference[y, x, k]
                continue
            for t in range(t_out):
                a = fa[r, t]
                b = fb[r, t]
                wt = wb[r, t]
                for k in range(c):
                    v = (1.0 - wt) * video[a, y, x, k] + wt * video[b, y, x, k]
                    v = al * v + (1.0 - al) * reference[y, x, k]
                    iv = int(v + 0.5)
                    out[t, y, x, k] = 255 if iv > 255 else (0 if iv < 0 else iv)
    return 0
