"""Space-time Laplacian in-painting of the holes of a warped video.

Samples of the warped video that the reference view cannot see are filled by
the harmonic interpolant of the visible ones over space and time: the
discrete Laplace equation on the 6-neighbourhood of the (T, H, W) grid is
solved for the invisible samples with the visible samples as Dirichlet
boundary values.  The linear system (the graph Laplacian of the unknowns,
symmetric positive definite) is solved matrix-free by Jacobi-preconditioned
conjugate gradients in Numba, started from a coarse-to-fine initial guess
(the same problem solved on a grid halved in every axis, recursively), which
removes the slowly converging low frequencies before CG starts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kernels._jit import jit

__all__ = ["InpaintInfo", "inpaint_spacetime"]

#: Below this many unknowns the coarse-to-fine initial guess is not worth it.
_COARSE_MIN_UNKNOWNS = 4096

_OFFSETS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64)


class InpaintInfo(NamedTuple):
    """Solver report of :func:`inpaint_spacetime` (``return_info=True``).

    Attributes
    ----------
    n_unknown : int
        Number of invisible samples (per channel) that were solved for.
    n_iter : ndarray, shape (C,), int64
        CG iterations per channel on the finest grid.
    residual : ndarray, shape (C,), float64
        Final relative residual ``||b - K x|| / ||b||`` per channel.
    converged : bool
        True when every channel reached ``tol``.
    """

    n_unknown: int
    n_iter: np.ndarray
    residual: np.ndarray
    converged: bool


# --------------------------------------------------------------------------
# Numba kernels.


@jit
def _number_unknowns(visible):
    """Index (T, H, W) int64 of the invisible samples in C order, -1 where
    visible; also returns their count."""
    T, H, W = visible.shape
    index = np.empty((T, H, W), dtype=np.int64)
    count = 0
    for t in range(T):
        for y in range(H):
            for x in range(W):
                if visible[t, y, x]:
                    index[t, y, x] = -1
                else:
                    index[t, y, x] = count
                    count += 1
    return index, count


@jit
def _assemble(video, index, n_unknown, offsets):
    """Neighbour table, diagonal and right-hand side of the Laplace system.

    For unknown ``i``: ``deg_i x_i - sum_{unknown j ~ i} x_j = sum_{visible
    j ~ i} v_j`` where ``deg_i`` counts the in-grid neighbours (neighbours
    outside the grid are absent: a zero-flux boundary).  Returns
    ``nbr (n, 6)`` (index of an unknown neighbour or -1), ``diag (n,)``,
    ``rhs (n, C)`` and the initial values ``x0 (n, C)`` read from ``video``.
    """
    T, H, W, C = video.shape
    nbr = np.full((n_unknown, 6), -1, dtype=np.int64)
    diag = np.zeros(n_unknown)
    rhs = np.zeros((n_unknown, C))
    for t in range(T):
        for y in range(H):
            for x in range(W):
                i = index[t, y, x]
                if i < 0:
                    continue
                deg = 0
                for k in range(6):
                    tt = t + offsets[k, 0]
                    yy = y + offsets[k, 1]
                    xx = x + offsets[k, 2]
                    if tt < 0 or tt >= T or yy < 0 or yy >= H or xx < 0 or xx >= W:
                        continue
                    deg += 1
                    j = index[tt, yy, xx]
                    if j >= 0:
                        nbr[i, k] = j
                    else:
                        for c in range(C):
                            rhs[i, c] += video[tt, yy, xx, c]
                diag[i] = deg
    return nbr, diag, rhs


@jit
def _gather_unknowns(values, index, n_unknown):
    """Rows ``values[t, y, x, :]`` of the unknowns, in index order."""
    T, H, W, C = values.shape
    out = np.empty((n_unknown, C))
    for t in range(T):
        for y in range(H):
            for x in range(W):
                i = index[t, y, x]
                if i >= 0:
                    for c in range(C):
                        out[i, c] = values[t, y, x, c]
    return out


@jit
def _scatter_unknowns(out, index, x_unknown):
    """``out[t, y, x, :] = x_unknown[index[t, y, x]]`` for the unknowns."""
    T, H, W, C = out.shape
    for t in range(T):
        for y in range(H):
            for x in range(W):
                i = index[t, y, x]
                if i >= 0:
                    for c in range(C):
                        out[t, y, x, c] = x_unknown[i, c]


@jit
def _apply(nbr, diag, x, out):
    """``out = K x`` for the Laplace system."""
    n = diag.shape[0]
    for i in range(n):
        acc = diag[i] * x[i]
        for k in range(6):
            j = nbr[i, k]
            if j >= 0:
                acc -= x[j]
        out[i] = acc


@jit
def _pcg(nbr, diag, b, x, tol, max_iter):
    """Jacobi-preconditioned CG for ``K x = b`` in place from the initial
    ``x``; stops when ``||b - K x|| <= tol ||b||``.  Returns (iterations,
    relative residual)."""
    n = b.shape[0]
    b_norm = np.sqrt(np.sum(b * b))
    if b_norm == 0.0:
        x[:] = 0.0
        return 0, 0.0
    r = np.empty(n)
    _apply(nbr, diag, x, r)
    for i in range(n):
        r[i] = b[i] - r[i]
    r_norm = np.sqrt(np.sum(r * r))
    if r_norm <= tol * b_norm:
        return 0, r_norm / b_norm
    z = r / diag
    p = z.copy()
    q = np.empty(n)
    rz = np.sum(r * z)
    it = 0
    while it < max_iter:
        it += 1
        _apply(nbr, diag, p, q)
        alpha = rz / np.sum(p * q)
        for i in range(n):
            x[i] += alpha * p[i]
            r[i] -= alpha * q[i]
        r_norm = np.sqrt(np.sum(r * r))
        if r_norm <= tol * b_norm:
            break
        for i in range(n):
            z[i] = r[i] / diag[i]
        rz_new = np.sum(r * z)
        beta = rz_new / rz
        rz = rz_new
        for i in range(n):
            p[i] = z[i] + beta * p[i]
    return it, r_norm / b_norm


@jit
def _restrict(video, visible, ft, fy, fx):
    """Average the visible samples of each ft x fy x fx cell; a coarse
    sample is visible when its cell holds any visible sample."""
    T, H, W, C = video.shape
    T2 = (T + ft - 1) // ft
    H2 = (H + fy - 1) // fy
    W2 = (W + fx - 1) // fx
    total = np.zeros((T2, H2, W2, C))
    count = np.zeros((T2, H2, W2))
    for t in range(T):
        for y in range(H):
            for x in range(W):
                if visible[t, y, x]:
                    count[t // ft, y // fy, x // fx] += 1.0
                    for c in range(C):
                        total[t // ft, y // fy, x // fx, c] += video[t, y, x, c]
    coarse_visible = count > 0
    for t in range(T2):
        for y in range(H2):
            for x in range(W2):
                if count[t, y, x] > 0:
                    for c in range(C):
                        total[t, y, x, c] /= count[t, y, x]
    return total, coarse_visible


@jit
def _prolong_into(fine, fine_visible, coarse, ft, fy, fx):
    """Copy each coarse sample to the invisible samples of its cell."""
    T, H, W, C = fine.shape
    for t in range(T):
        for y in range(H):
            for x in range(W):
                if not fine_visible[t, y, x]:
                    for c in range(C):
                        fine[t, y, x, c] = coarse[t // ft, y // fy, x // fx, c]


# --------------------------------------------------------------------------
# Solver driver.


def _solve(video, visible, tol, max_iter):
    """Fill ``video`` (float64, C-contiguous, modified in place) where not
    ``visible``; returns (n_unknown, n_iter, residual)."""
    index, n_unknown = _number_unknowns(visible)
    C = video.shape[3]
    if n_unknown == 0:
        return 0, np.zeros(C, dtype=np.int64), np.zeros(C)
    # Initial guess: the problem on a grid halved along every axis longer
    # than one sample, solved recursively, copied to the fine cells.
    factors = tuple(2 if s > 1 else 1 for s in visible.shape)
    if n_unknown >= _COARSE_MIN_UNKNOWNS and factors != (1, 1, 1):
        coarse, coarse_visible = _restrict(video, visible, *factors)
        if not coarse_visible.all():
            _solve(coarse, coarse_visible, tol, max_iter)
        _prolong_into(video, visible, coarse, *factors)
    else:
        mean = _visible_mean(video, visible)
        video[~visible] = mean
    nbr, diag, rhs = _assemble(video, index, n_unknown, _OFFSETS)
    x = _gather_unknowns(video, index, n_unknown)
    n_iter = np.zeros(C, dtype=np.int64)
    residual = np.zeros(C)
    for c in range(C):
        xc = np.ascontiguousarray(x[:, c])
        n_iter[c], residual[c] = _pcg(nbr, diag, np.ascontiguousarray(rhs[:, c]), xc, tol, max_iter)
        x[:, c] = xc
    _scatter_unknowns(video, index, x)
    return n_unknown, n_iter, residual


def _visible_mean(video, visible):
    return video[visible].mean(axis=0)


# --------------------------------------------------------------------------
# Public API.


def inpaint_spacetime(video, visible, *, tol=1e-4, max_iter=5000, return_info=False):
    """Fill the invisible samples of a video by space-time Laplace smoothing.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, C), float32 or float64
        Frames (any units, e.g. intensities in [0, 255]).  Values at the
        invisible samples are ignored (they may be NaN).
    visible : ndarray, shape (T, H, W), bool
        True where ``video`` holds data.  At least one sample must be
        visible.
    tol : float, optional
        Relative residual ``||b - K x||_2 / ||b||_2`` at which CG stops, per
        channel, on the finest grid; default 1e-4.  Here ``K`` is the
        Laplace operator restricted to the unknowns and ``b`` collects the
        boundary values.
    max_iter : int, optional
        Maximum CG iterations per channel and grid level, default 5000; the
        result then simply holds the last iterate (see ``return_info``).
    return_info : bool, optional
        Also return an :class:`InpaintInfo` solver report (default False).

    Returns
    -------
    filled : ndarray, shape (T, H, W, C), same dtype as ``video``
        Copy of ``video`` whose visible samples are unchanged bit for bit
        and whose invisible samples solve the discrete Laplace equation.
    info : InpaintInfo
        Only when ``return_info`` is True.

    Raises
    ------
    ValueError
        On shape mismatches, non-finite visible values, a non-positive
        ``tol`` or ``max_iter``, or when no sample is visible (nothing to
        interpolate from).
    TypeError
        If ``video`` is not floating point or ``visible`` not boolean.

    Notes
    -----
    Yan et al., CVPR 2017, Sec. 5: holes of the warped video (samples the
    reference camera does not see) are in-painted by Laplacian smoothing in
    space and time before stabilisation and RPCA.  Every invisible sample
    ``u`` satisfies ``sum_{v ~ u} (f(v) - f(u)) = 0`` over its 6 neighbours
    ``(t +- 1, y, x), (t, y +- 1, x), (t, y, x +- 1)`` inside the grid, with
    ``f`` fixed at the visible samples.  Neighbours beyond the grid's faces
    are left out, i.e. a zero normal derivative (Neumann) there.  Since the
    grid is connected and one sample is visible, the system is symmetric
    positive definite and the solution unique.  Channels are independent.

    Examples
    --------
    >>> t, y, x = np.meshgrid(np.arange(3), np.arange(5), np.arange(6), indexing="ij")
    >>> video = (2.0 * x + y - t)[..., None]           # linear: harmonic
    >>> visible = np.ones(video.shape[:3], dtype=bool)
    >>> visible[1, 1:4, 2:5] = False
    >>> holes = np.where(visible[..., None], video, np.nan)
    >>> filled = inpaint_spacetime(holes, visible, tol=1e-12)
    >>> bool(np.allclose(filled, video))
    True
    """
    video = np.asarray(video)
    visible = np.asarray(visible)
    if video.ndim != 4:
        raise ValueError(f"video must have shape (T, H, W, C), got {video.shape}")
    if not np.issubdtype(video.dtype, np.floating):
        raise TypeError(f"video must be float32 or float64, got {video.dtype}")
    if visible.dtype != np.bool_:
        raise TypeError(f"visible must be a boolean mask, got {visible.dtype}")
    if visible.shape != video.shape[:3]:
        raise ValueError(f"visible must have shape {video.shape[:3]} (T, H, W of video), got {visible.shape}")
    if video.size == 0:
        raise ValueError(f"video must not be empty, got shape {video.shape}")
    tol = float(tol)
    if not tol > 0.0:
        raise ValueError(f"tol must be positive, got {tol}")
    max_iter = int(max_iter)
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if not visible.any():
        raise ValueError("no sample is visible: nothing to in-paint from")
    if not np.isfinite(video[visible]).all():
        raise ValueError("video must be finite at the visible samples")

    work = np.ascontiguousarray(video, dtype=np.float64).copy()
    vis = np.ascontiguousarray(visible)
    n_unknown, n_iter, residual = _solve(work, vis, tol, max_iter)
    filled = video.copy()
    filled[~vis] = work[~vis].astype(video.dtype)
    if return_info:
        converged = bool(np.all(residual <= tol))
        return filled, InpaintInfo(int(n_unknown), n_iter, residual, converged)
    return filled
