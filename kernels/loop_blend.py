"""Gradient-domain blending of per-pixel video loops: a screened Poisson solve, periodic in time.

A per-pixel loop (:mod:`kernels.video_loop`) shows pixel ``x`` at output time
``t`` the input frame ``phi_x(t)``.  Where two neighbours have different time
maps, or where a pixel's loop wraps, the rendered loop ``f`` has gradients that
the input never had: seams.  Following Liao, Joshi and Hoppe (2013, Sec. 5) we
look for offsets ``d`` (the blended loop is ``f + d``) minimising

    sum_{x~z, t} (d(z,t) - d(x,t) - c_s)^2  +  w_t sum_{x, t} (d(x,t+1) - d(x,t) - c_t)^2
        + eps sum_{x, t} d(x,t)^2

where time is periodic (output frame ``L - 1`` is followed by frame 0), the
desired changes ``c`` are non-zero only across discontinuities (spatial: the
mean of the two neighbours' time maps' differences replaces the rendered one;
temporal: the mean of the two ways to continue the input across a wrap), and
``eps`` is a weak screening.  Pixels outside the ``active`` mask (the frozen
reference frame) keep ``d = 0``: they are Dirichlet boundary values, so the
frozen part of a cinemagraph stays exactly the reference.

The normal equations ``A d = b`` are solved by conjugate gradients
preconditioned with one multigrid V-cycle (aggregation by 2x2 pixels, and by 2
frames while the loop length is even; Galerkin coarse operators, which for
piecewise-constant prolongation are again weighted grid graphs; damped Jacobi
smoothing, so the V-cycle is a symmetric preconditioner).  Every operator is
time-invariant, so edge weights are stored per pixel, not per voxel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels._jit import jit
from kernels.video_loop import loop_phase

__all__ = [
    "BlendLevel",
    "blend_levels",
    "blend_rhs",
    "loop_frame_map",
    "poisson_apply",
    "screened_poisson_loop",
    "seam_energy",
]


# --------------------------------------------------------------------------
# time map of the output loop (frame index per output pixel)
# --------------------------------------------------------------------------


@jit
def _frame_map(period, start, out):
    t_out, h, w = out.shape
    for y in range(h):
        for x in range(w):
            p = period[y, x]
            s = start[y, x]
            divides = t_out % p == 0
            for t in range(t_out):
                f0, f1, rest = loop_phase(t, p, s, t_out, divides)
                out[t, y, x] = f1 if 2 * rest >= t_out else f0  # nearest frame of the phase
    return out


def loop_frame_map(period, start, loop_frames):
    """Input frame shown by every pixel at every output time, (L, H, W) int32.

    Pixels whose period divides ``loop_frames`` follow Liao et al.'s time map
    ``s + ((t - s) mod p)`` exactly; retimed pixels (see
    :func:`kernels.video_loop.render_time_map`) show the nearest frame of their
    retimed phase.

    Examples
    --------
    >>> loop_frame_map(np.array([[4]]), np.array([[2]]), 8)[:, 0, 0].tolist()
    [4, 5, 2, 3, 4, 5, 2, 3]
    """
    period = np.ascontiguousarray(period, dtype=np.int64)
    start = np.ascontiguousarray(start, dtype=np.int64)
    if period.ndim != 2 or period.shape != start.shape:
        raise ValueError(f"period and start must be 2-D of one shape, got {period.shape} and {start.shape}")
    if period.size and (period.min() < 1 or start.min() < 0):
        raise ValueError("period must be >= 1 and start >= 0")
    loop_frames = int(loop_frames)
    if loop_frames < 1:
        raise ValueError(f"loop_frames must be >= 1, got {loop_frames}")
    out = np.empty((loop_frames, *period.shape), np.int32)
    return _frame_map(period, start, out)


# --------------------------------------------------------------------------
# right-hand side: desired changes across discontinuities
# --------------------------------------------------------------------------


@jit
def _desired(video, fx, fz, y, x, y2, x2, k):
    """Desired spatial difference (z minus x) across a time-map discontinuity: the mean of both maps'."""
    return 0.5 * (
        np.float64(video[fx, y2, x2, k])
        - np.float64(video[fx, y, x, k])
        + np.float64(video[fz, y2, x2, k])
        - np.float64(video[fz, y, x, k])
    )


@jit
def _rhs(video, base, fmap, active, wt, b):
    t_out, h, w, c = b.shape
    t_in = video.shape[0]
    for t in range(t_out):
        for y in range(h):
            for x in range(w):
                fx = fmap[t, y, x]
                for dy, dx in ((0, 1), (1, 0)):
                    y2 = y + dy
                    x2 = x + dx
                    if y2 >= h or x2 >= w:
                        continue
                    if not (active[y, x] or active[y2, x2]):
                        continue
                    fz = fmap[t, y2, x2]
                    if fz == fx:
                        continue
                    for k in range(c):
                        want = _desired(video, fx, fz, y, x, y2, x2, k)
                        change = want - (np.float64(base[t, y2, x2, k]) - np.float64(base[t, y, x, k]))
                        if active[y, x]:
                            b[t, y, x, k] -= change
                        if active[y2, x2]:
                            b[t, y2, x2, k] += change
                if not active[y, x] or t_out < 2:
                    continue
                t1 = (t + 1) % t_out
                f1 = fmap[t1, y, x]
                if f1 == fx + 1:
                    continue
                for k in range(c):
                    want = 0.0
                    n = 0
                    if fx + 1 < t_in:
                        want += np.float64(video[fx + 1, y, x, k]) - np.float64(video[fx, y, x, k])
                        n += 1
                    if f1 >= 1:
                        want += np.float64(video[f1, y, x, k]) - np.float64(video[f1 - 1, y, x, k])
                        n += 1
                    if n == 0:
                        continue
                    change = want / n - (np.float64(base[t1, y, x, k]) - np.float64(base[t, y, x, k]))
                    b[t, y, x, k] -= wt * change
                    b[t1, y, x, k] += wt * change
    return b


def blend_rhs(video, base, frame_map, active, temporal_weight=1.0):
    """Right-hand side ``b`` of the blending system, (L, H, W, C) float64.

    Parameters
    ----------
    video : ndarray, (T, H, W, C)
        The input window (any real dtype, e.g. uint8).
    base : ndarray, (L, H, W, C)
        The rendered loop ``f`` (frozen pixels show the reference).
    frame_map : ndarray, (L, H, W) int
        :func:`loop_frame_map` of the loop (frames in ``[0, T)``).
    active : ndarray, (H, W) bool
        Pixels whose offsets are free (the animated ones).
    temporal_weight : float, default 1.0
        ``w_t`` (dimensionless).

    Returns
    -------
    ndarray, (L, H, W, C) float64
        For an edge ``x -> z`` with desired change ``c`` of ``d(z) - d(x)``:
        ``b[x] -= c``, ``b[z] += c`` (temporal edges weighted by ``w_t``),
        on active pixels only.

    Notes
    -----
    Spatial, for neighbours showing different frames ``phi_x != phi_z``:
    the desired difference is ``((V(z, phi_x) - V(x, phi_x)) + (V(z, phi_z) -
    V(x, phi_z))) / 2`` (Liao et al. 2013, Sec. 5).  Temporal, where a pixel's
    frame does not advance by one (its loop wraps, or it is retimed): the mean
    of the input's own continuations ``V(phi(t) + 1) - V(phi(t))`` and
    ``V(phi(t + 1)) - V(phi(t + 1) - 1)``, where they exist.
    """
    video = np.ascontiguousarray(video)
    base = np.ascontiguousarray(base)
    fmap = np.ascontiguousarray(frame_map, dtype=np.int32)
    active = np.ascontiguousarray(active, dtype=np.bool_)
    if video.ndim != 4 or base.ndim != 4 or video.shape[1:] != base.shape[1:]:
        raise ValueError(
            f"video (T, H, W, C) and base (L, H, W, C) must agree, got {video.shape}, {base.shape}"
        )
    if fmap.shape != base.shape[:3] or active.shape != base.shape[1:3]:
        raise ValueError("frame_map must be (L, H, W) and active (H, W) like base")
    if fmap.size and (fmap.min() < 0 or fmap.max() >= video.shape[0]):
        raise ValueError(f"frame_map must lie in [0, {video.shape[0]})")
    if not temporal_weight >= 0:
        raise ValueError(f"temporal_weight must be >= 0, got {temporal_weight}")
    b = np.zeros(base.shape, np.float64)
    return _rhs(video, base, fmap, active, float(temporal_weight), b)


@jit
def _seam(video, loop, fmap, active, out):
    t_out, h, w, c = loop.shape
    total = 0.0
    n = 0
    for t in range(t_out):
        for y in range(h):
            for x in range(w):
                fx = fmap[t, y, x]
                for dy, dx in ((0, 1), (1, 0)):
                    y2 = y + dy
                    x2 = x + dx
                    if y2 >= h or x2 >= w or not (active[y, x] or active[y2, x2]):
                        continue
                    fz = fmap[t, y2, x2]
                    if fz == fx:
                        continue
                    e = 0.0
                    for k in range(c):
                        want = _desired(video, fx, fz, y, x, y2, x2, k)
                        got = np.float64(loop[t, y2, x2, k]) - np.float64(loop[t, y, x, k])
                        e += (got - want) * (got - want)
                    total += e
                    n += 1
    out[0] = total
    out[1] = n
    return out


def seam_energy(video, loop, frame_map, active):
    """Spatial seam energy of a loop: mean squared gradient error across time-map discontinuities.

    Over every 4-neighbour pair (with at least one ``active`` pixel) and
    output frame where the two pixels show different input frames, the squared
    difference (summed over channels, intensity levels squared) between the
    loop's spatial difference and the desired one of :func:`blend_rhs`.

    Returns
    -------
    (float, int)
        Mean energy per discontinuous pair (0.0 when there is none) and the number of pairs.
    """
    video = np.ascontiguousarray(video)
    loop = np.ascontiguousarray(loop)
    fmap = np.ascontiguousarray(frame_map, dtype=np.int32)
    active = np.ascontiguousarray(active, dtype=np.bool_)
    if loop.shape[:3] != fmap.shape or active.shape != loop.shape[1:3] or video.shape[1:] != loop.shape[1:]:
        raise ValueError(
            "video (T, H, W, C), loop (L, H, W, C), frame_map (L, H, W), active (H, W) must agree"
        )
    out = _seam(video, loop, fmap, active, np.zeros(2))
    n = int(out[1])
    return (float(out[0]) / n if n else 0.0), n


# --------------------------------------------------------------------------
# the operator on a level: a weighted grid graph, periodic in time
# --------------------------------------------------------------------------


@dataclass
class BlendLevel:
    """One level of the multigrid hierarchy (all weights per pixel, the same in every frame).

    ``wx[y, x]``: edge (y, x)-(y, x+1); ``wy[y, x]``: edge (y, x)-(y+1, x);
    ``wt[y, x]``: each of the edges (t, y, x)-(t+1 mod T, y, x); ``dg``: the
    diagonal's screening plus Dirichlet part.  All zero off ``active``.
    """

    n_frames: int
    active: np.ndarray  # (H, W) bool
    wx: np.ndarray  # (H, W) float64
    wy: np.ndarray
    wt: np.ndarray
    dg: np.ndarray
    time_factor: int = 1  # frames of this level per frame of the next coarser one

    @property
    def diag(self) -> np.ndarray:
        d = self.dg + self.wx + self.wy + 2.0 * self.wt
        d[:, 1:] += self.wx[:, :-1]
        d[1:, :] += self.wy[:-1, :]
        return d


def _finest(active, n_frames, screening, temporal_weight) -> BlendLevel:
    a = np.asarray(active, bool)
    h, w = a.shape
    wx = np.zeros((h, w))
    wy = np.zeros((h, w))
    wx[:, :-1] = a[:, :-1] & a[:, 1:]
    wy[:-1, :] = a[:-1, :] & a[1:, :]
    # edges from an active pixel to a frozen one: Dirichlet (d = 0) terms on the diagonal
    frozen_nbrs = np.zeros((h, w))
    frozen_nbrs[:, :-1] += ~a[:, 1:]
    frozen_nbrs[:, 1:] += ~a[:, :-1]
    frozen_nbrs[:-1, :] += ~a[1:, :]
    frozen_nbrs[1:, :] += ~a[:-1, :]
    dg = np.where(a, screening + frozen_nbrs, 0.0)
    wt = np.where(a, temporal_weight if n_frames >= 2 else 0.0, 0.0)
    return BlendLevel(n_frames, a, wx, wy, wt, dg)


def _coarser(fine: BlendLevel) -> BlendLevel:
    h, w = fine.active.shape
    hc, wc = -(-h // 2), -(-w // 2)
    kt = 2 if fine.n_frames >= 4 and fine.n_frames % 2 == 0 else 1
    fine.time_factor = kt
    pad = ((0, 2 * hc - h), (0, 2 * wc - w))

    def blocks(a):
        return np.pad(a, pad).reshape(hc, 2, wc, 2)

    active = blocks(fine.active).any(axis=(1, 3))
    wx_f = blocks(fine.wx)
    wy_f = blocks(fine.wy)
    wx = kt * wx_f[:, :, :, 1].sum(axis=1)  # edges leaving the right child column
    wy = kt * wy_f[:, 1, :, :].sum(axis=2)  # edges leaving the lower child row
    wx[:, -1] = 0.0
    wy[-1, :] = 0.0
    wt = blocks(fine.wt).sum(axis=(1, 3))  # one crossing temporal edge per spatial child
    dg = kt * blocks(fine.dg).sum(axis=(1, 3))
    if kt == 1:
        pass  # no temporal aggregation: every temporal edge keeps its weight
    return BlendLevel(fine.n_frames // kt, active, wx, wy, wt, dg)


def blend_levels(active, n_frames, *, screening=1e-3, temporal_weight=1.0, min_cells=64, max_levels=12):
    """The multigrid hierarchy of the blending operator (finest first)."""
    levels = [_finest(active, n_frames, screening, temporal_weight)]
    while len(levels) < max_levels:
        lev = levels[-1]
        h, w = lev.active.shape
        if int(lev.active.sum()) * lev.n_frames <= min_cells or (h <= 2 and w <= 2):
            break
        levels.append(_coarser(lev))
    return levels


# --------------------------------------------------------------------------
# jitted level operations (arrays (T, H, W, C))
# --------------------------------------------------------------------------


@jit
def _apply(d, active, wx, wy, wt, dg, out):
    t_len, h, w, c = d.shape
    for t in range(t_len):
        tp = (t + 1) % t_len
        tm = (t - 1) % t_len
        for y in range(h):
            for x in range(w):
                if not active[y, x]:
                    for k in range(c):
                        out[t, y, x, k] = 0.0
                    continue
                for k in range(c):
                    v = d[t, y, x, k]
                    s = dg[y, x] * v
                    if x + 1 < w:
                        s += wx[y, x] * (v - d[t, y, x + 1, k])
                    if x >= 1:
                        s += wx[y, x - 1] * (v - d[t, y, x - 1, k])
                    if y + 1 < h:
                        s += wy[y, x] * (v - d[t, y + 1, x, k])
                    if y >= 1:
                        s += wy[y - 1, x] * (v - d[t, y - 1, x, k])
                    if t_len >= 2:
                        s += wt[y, x] * (2.0 * v - d[tp, y, x, k] - d[tm, y, x, k])
                    out[t, y, x, k] = s
    return out


@jit
def _jacobi(d, b, active, wx, wy, wt, dg, diag, omega, sweeps, tmp):
    for _ in range(sweeps):
        _apply(d, active, wx, wy, wt, dg, tmp)
        t_len, h, w, c = d.shape
        for t in range(t_len):
            for y in range(h):
                for x in range(w):
                    if active[y, x] and diag[y, x] > 0.0:
                        g = omega / diag[y, x]
                        for k in range(c):
                            d[t, y, x, k] += g * (b[t, y, x, k] - tmp[t, y, x, k])
    return d


@jit
def _restrict(r, kt, out):
    t_len, h, w, c = r.shape
    for t in range(t_len):
        for y in range(h):
            for x in range(w):
                for k in range(c):
                    out[t // kt, y // 2, x // 2, k] += r[t, y, x, k]
    return out


@jit
def _prolong_add(dc, kt, active, d):
    t_len, h, w, c = d.shape
    for t in range(t_len):
        for y in range(h):
            for x in range(w):
                if active[y, x]:
                    for k in range(c):
                        d[t, y, x, k] += dc[t // kt, y // 2, x // 2, k]
    return d


def _vcycle(levels, diags, i, b, sweeps, omega, coarse_sweeps):
    lev = levels[i]
    d = np.zeros_like(b)
    tmp = np.empty_like(b)
    args = (lev.active, lev.wx, lev.wy, lev.wt, lev.dg, diags[i])
    if i == len(levels) - 1:
        return _jacobi(d, b, *args, omega, coarse_sweeps, tmp)
    _jacobi(d, b, *args, omega, sweeps, tmp)
    _apply(d, lev.active, lev.wx, lev.wy, lev.wt, lev.dg, tmp)
    r = b - tmp
    nxt = levels[i + 1]
    h, w = nxt.active.shape
    rc = _restrict(r, lev.time_factor, np.zeros((nxt.n_frames, h, w, b.shape[3]), b.dtype))
    dc = _vcycle(levels, diags, i + 1, rc, sweeps, omega, coarse_sweeps)
    _prolong_add(dc, lev.time_factor, lev.active, d)
    return _jacobi(d, b, *args, omega, sweeps, tmp)


@jit
def _dot(a, b):
    """sum(a * b) accumulated in float64 whatever the arrays' dtype."""
    fa = a.ravel()
    fb = b.ravel()
    total = 0.0
    for i in range(fa.size):
        total += np.float64(fa[i]) * np.float64(fb[i])
    return total


def poisson_apply(d, levels):
    """``A d`` on the finest level of ``levels`` (for checks), (L, H, W, C) float64."""
    lev = levels[0]
    d = np.ascontiguousarray(d, np.float64)
    return _apply(d, lev.active, lev.wx, lev.wy, lev.wt, lev.dg, np.empty_like(d))


def screened_poisson_loop(
    rhs,
    active,
    *,
    screening=1e-3,
    temporal_weight=1.0,
    tol=1e-4,
    max_iter=50,
    sweeps=2,
    omega=0.8,
    coarse_sweeps=40,
    dtype=np.float64,
):
    """Offsets ``d`` solving ``A d = rhs`` (see the module notes), by multigrid-preconditioned CG.

    Parameters
    ----------
    rhs : ndarray, (L, H, W, C) float
        From :func:`blend_rhs`; only active pixels are read.
    active : ndarray, (H, W) bool
        Free pixels; the others are Dirichlet ``d = 0``.
    screening : float, default 1e-3
        ``eps > 0`` pulls offsets weakly towards 0 (makes ``A`` definite).
    temporal_weight : float, default 1.0
        ``w_t`` of the temporal edges (dimensionless).
    tol : float, default 1e-4
        Stop when ``||rhs - A d|| <= tol ||rhs||``.
    max_iter : int, default 50
        Most CG iterations (each one V-cycle).
    sweeps, omega, coarse_sweeps : int, float, int
        Damped-Jacobi sweeps before and after the coarse correction, the
        damping, and sweeps on the coarsest level.
    dtype : numpy float type, default float64
        Of the work arrays (float32 halves memory and time; enough for tol >= 1e-4).

    Returns
    -------
    d : ndarray, (L, H, W, C) of ``dtype``
        Zero on frozen pixels.
    info : dict
        ``iterations``, ``residual`` (relative), ``levels``.

    Notes
    -----
    Liao, Joshi and Hoppe 2013, Sec. 5 (screened Poisson, periodic in time).
    Like the authors' ``GradientDomainLoop`` we solve for offsets, with the
    right-hand side non-zero only at discontinuities and a weak screening.

    Examples
    --------
    >>> b = np.zeros((4, 3, 3, 1)); b[0, 1, 1, 0] = 1.0
    >>> d, info = screened_poisson_loop(b, np.ones((3, 3), bool), tol=1e-10)
    >>> bool(info["residual"] < 1e-8), bool(d[0, 1, 1, 0] > d[2, 1, 1, 0])
    (True, True)
    """
    b = np.ascontiguousarray(rhs, dtype=dtype)
    active = np.ascontiguousarray(active, dtype=np.bool_)
    if b.ndim != 4 or active.shape != b.shape[1:3]:
        raise ValueError(f"rhs must be (L, H, W, C) and active (H, W), got {b.shape} and {active.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("rhs contains NaN or infinite values")
    if not screening > 0:
        raise ValueError(f"screening must be > 0, got {screening}")
    if not temporal_weight >= 0:
        raise ValueError(f"temporal_weight must be >= 0, got {temporal_weight}")
    b = b * active[None, :, :, None].astype(b.dtype)
    levels = blend_levels(active, b.shape[0], screening=screening, temporal_weight=temporal_weight)
    diags = [lev.diag for lev in levels]
    x = np.zeros_like(b)
    norm_b = math.sqrt(_dot(b, b))
    info = {"iterations": 0, "residual": 0.0, "levels": len(levels)}
    if norm_b == 0.0:
        return x, info
    r = b.copy()
    z = _vcycle(levels, diags, 0, r, sweeps, omega, coarse_sweeps)
    p = z.copy()
    rz = _dot(r, z)
    ap = np.empty_like(b)
    lev = levels[0]
    for it in range(1, max_iter + 1):
        _apply(p, lev.active, lev.wx, lev.wy, lev.wt, lev.dg, ap)
        alpha = rz / _dot(p, ap)
        x += np.asarray(alpha, x.dtype) * p
        r -= np.asarray(alpha, x.dtype) * ap
        res = math.sqrt(_dot(r, r)) / norm_b
        info["iterations"], info["residual"] = it, res
        if res <= tol:
            break
        z = _vcycle(levels, diags, 0, r, sweeps, omega, coarse_sweeps)
        rz_new = _dot(r, z)
        p = z + np.asarray(rz_new / rz, x.dtype) * p
        rz = rz_new
    return x, info
