"""1-D repetitions of a still image: the self-similarity matrix and its bounded-slope minimum-cost path.

A band of pixels sampled along a line is a sequence of column vectors ``c_i``.
Its self-similarity matrix ``D_ij = ||c_i - c_j||`` is small wherever ``c_j``
repeats ``c_i``; a monotone path through the small entries off the diagonal
gives, at every ``i``, the 1-D displacement ``j - i`` to the next repetition
(Halperin et al., "Endless Loops: Detecting and Animating Periodic Patterns in
Still Images", SIGGRAPH 2021, Sec. 4.1).
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = ["min_cost_path", "self_similarity", "reflect_indices"]

_INF = np.inf


@jit
def _min_cost_path(cost, si, sj, ei, ej, max_run):
    """Bounded-slope DP; returns (total cost, path as (K, 2) int64, K).

    States per cell: 0 = arrived diagonally (or the start), 1..R-1 = arrived by
    k consecutive horizontal steps, R..2R-2 = by k consecutive vertical steps,
    with R = ``max_run`` (at most R entries in a row on one row or column).
    Ties keep the first state in that order.
    """
    n, m = cost.shape
    r1 = max_run - 1
    n_states = 1 + 2 * r1
    acc = np.full((n, m, n_states), _INF)
    back = np.full((n, m, n_states), -1, np.int8)
    acc[si, sj, 0] = cost[si, sj]
    for i in range(si, ei + 1):
        for j in range(sj, ej + 1):
            if i == si and j == sj:
                continue
            c = cost[i, j]
            if not c < _INF:
                continue
            # diagonal: from any state of (i-1, j-1)
            if i > si and j > sj:
                best = _INF
                arg = -1
                for s in range(n_states):
                    v = acc[i - 1, j - 1, s]
                    if v < best:
                        best = v
                        arg = s
                if arg >= 0:
                    acc[i, j, 0] = best + c
                    back[i, j, 0] = arg
            # horizontal: from (i, j-1)
            if j > sj:
                # first horizontal step: from diagonal or any vertical state
                best = acc[i, j - 1, 0]
                arg = 0 if best < _INF else -1
                for k in range(r1):
                    v = acc[i, j - 1, 1 + r1 + k]
                    if v < best:
                        best = v
                        arg = 1 + r1 + k
                if arg >= 0:
                    acc[i, j, 1] = best + c
                    back[i, j, 1] = arg
                for k in range(1, r1):
                    v = acc[i, j - 1, k]
                    if v < _INF:
                        acc[i, j, 1 + k] = v + c
                        back[i, j, 1 + k] = k
            # vertical: from (i-1, j)
            if i > si:
                best = acc[i - 1, j, 0]
                arg = 0 if best < _INF else -1
                for k in range(r1):
                    v = acc[i - 1, j, 1 + k]
                    if v < best:
                        best = v
                        arg = 1 + k
                if arg >= 0:
                    acc[i, j, 1 + r1] = best + c
                    back[i, j, 1 + r1] = arg
                for k in range(1, r1):
                    v = acc[i - 1, j, r1 + k]
                    if v < _INF:
                        acc[i, j, 1 + r1 + k] = v + c
                        back[i, j, 1 + r1 + k] = r1 + k
    best = _INF
    state = -1
    for s in range(n_states):
        if acc[ei, ej, s] < best:
            best = acc[ei, ej, s]
            state = s
    path = np.empty(((ei - si) + (ej - sj) + 1, 2), np.int64)
    if state < 0:
        return best, path, 0
    i, j = ei, ej
    k = 0
    while True:
        path[k, 0] = i
        path[k, 1] = j
        k += 1
        if i == si and j == sj:
            break
        prev = back[i, j, state]
        if state == 0:
            i -= 1
            j -= 1
        elif state <= r1:
            j -= 1
        else:
            i -= 1
        state = prev
    # reverse in place: start first
    for a in range(k // 2):
        b = k - 1 - a
        t0 = path[a, 0]
        t1 = path[a, 1]
        path[a, 0] = path[b, 0]
        path[a, 1] = path[b, 1]
        path[b, 0] = t0
        path[b, 1] = t1
    return best, path, k


def min_cost_path(cost, start, end, max_run=2):
    """Minimum-cost monotone 8-connected path from ``start`` to ``end`` with bounded slope.

    Parameters
    ----------
    cost : ndarray, shape (N, M)
        Non-negative cell costs; ``inf`` marks forbidden cells.  Converted to float64.
    start, end : tuple of int
        ``(row, col)`` of the first and last cell; ``end`` must not lie above or left of ``start``.
    max_run : int, default 2
        At least 2.  At most this many consecutive path entries on one row or one column
        (2: never two horizontal or two vertical steps in a row, so the slope
        stays within [1/2, 2]).

    Returns
    -------
    total : float
        Sum of ``cost`` over the path's cells (``inf`` when ``end`` cannot be reached).
    path : ndarray of int64, shape (K, 2)
        The path's cells, ``start`` first; empty when unreachable.

    Notes
    -----
    Steps are (1, 0), (0, 1) and (1, 1): indices never decrease.  The cheapest
    cost is kept per cell and per arrival direction and run length, which is
    what makes the run constraint exact (Halperin et al. 2021, Sec. 4.1).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[0., 5, 5], [5, 0, 5], [5, 5, 0]])
    >>> total, path = min_cost_path(c, (0, 0), (2, 2))
    >>> total, path.tolist()
    (0.0, [[0, 0], [1, 1], [2, 2]])
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.size == 0:
        raise ValueError(f"cost must be a non-empty 2-D array, got shape {cost.shape}")
    if np.isnan(cost).any() or (cost < 0).any():
        raise ValueError("cost must be non-negative and not NaN (inf marks forbidden cells)")
    max_run = int(max_run)
    if max_run < 2:
        raise ValueError(f"max_run must be >= 2 (1 would allow diagonal steps only), got {max_run}")
    n, m = cost.shape
    si, sj = (int(v) for v in start)
    ei, ej = (int(v) for v in end)
    for name, (a, b) in (("start", (si, sj)), ("end", (ei, ej))):
        if not (0 <= a < n and 0 <= b < m):
            raise ValueError(f"{name} {(a, b)} lies outside the {n}x{m} matrix")
    if ei < si or ej < sj:
        raise ValueError(f"end {(ei, ej)} lies above or left of start {(si, sj)}")
    total, path, k = _min_cost_path(cost, si, sj, ei, ej, max_run)
    if k == 0:
        return np.inf, np.empty((0, 2), np.int64)
    return float(total), path[:k].copy()


def reflect_indices(n, pad):
    """Indices into a length-``n`` sequence that extend it by ``pad`` reflected entries on each side.

    ``c[reflect_indices(n, pad)]`` is ``c`` mirrored about its first and last entries
    (the end entries are not repeated, as ``numpy.pad(mode="reflect")``).
    """
    if n < 2:
        raise ValueError(f"need at least 2 entries to reflect, got {n}")
    idx = np.arange(-pad, n + pad)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx).astype(np.int64)


def self_similarity(columns):
    """``D_ij = ||c_i - c_j||`` (Euclidean) of the rows of ``columns`` (shape (N, K)), float64 (N, N)."""
    c = np.asarray(columns, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"columns must be 2-D (N, K), got shape {c.shape}")
    sq = np.einsum("ij,ij->i", c, c)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (c @ c.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)
