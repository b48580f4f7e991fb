"""Slow, readable references of the gradient-domain loop blending (:mod:`kernels.loop_blend`).

The blending energy is written out edge by edge, its normal equations are
assembled as a sparse matrix and solved directly (scipy's sparse LU).  Only
for tiny grids.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def naive_frame_map(period, start, loop_frames):
    """Frame shown per output pixel: the time map, or for retimed pixels the nearest frame of the phase
    that advances ``round(L / p) * p / L`` frames per output frame (phase 0 at output time s * L / (n p))."""
    h, w = period.shape
    out = np.empty((loop_frames, h, w), np.int64)
    for y in range(h):
        for x in range(w):
            p, s = int(period[y, x]), int(start[y, x])
            for t in range(loop_frames):
                if p == 1:
                    out[t, y, x] = s
                elif loop_frames % p == 0:
                    out[t, y, x] = s + (t - s) % p
                else:
                    n = max(1, int(np.floor(loop_frames / p + 0.5)))
                    phase = (t * n * p / loop_frames - s) % p  # in frames, in [0, p)
                    out[t, y, x] = s + int(np.floor(phase + 0.5)) % p
    return out


def _edges(h, w, n_frames):
    """Spatial edges (t, y, x) -> (t, y', x') right and down; temporal edges t -> t + 1 mod L."""
    spatial, temporal = [], []
    for t in range(n_frames):
        for y in range(h):
            for x in range(w):
                if x + 1 < w:
                    spatial.append(((t, y, x), (t, y, x + 1)))
                if y + 1 < h:
                    spatial.append(((t, y, x), (t, y + 1, x)))
                if n_frames >= 2:
                    temporal.append(((t, y, x), ((t + 1) % n_frames, y, x)))
    return spatial, temporal


def naive_desired_changes(video, base, fmap, active):
    """{edge: change of d(z) - d(x) per channel} for spatial and temporal discontinuities."""
    n_out, h, w = fmap.shape
    t_in = video.shape[0]
    v = video.astype(np.float64)
    f = base.astype(np.float64)
    spatial, temporal = _edges(h, w, n_out)
    changes = {}
    for a, b in spatial:
        if not (active[a[1:]] or active[b[1:]]):
            continue
        fa, fb = fmap[a], fmap[b]
        if fa == fb:
            continue
        want = 0.5 * ((v[fa][b[1:]] - v[fa][a[1:]]) + (v[fb][b[1:]] - v[fb][a[1:]]))
        changes[("s", a, b)] = want - (f[b] - f[a])
    for a, b in temporal:
        if not active[a[1:]]:
            continue
        f0, f1 = fmap[a], fmap[b]
        if f1 == f0 + 1:
            continue
        options = []
        if f0 + 1 < t_in:
            options.append(v[f0 + 1][a[1:]] - v[f0][a[1:]])
        if f1 >= 1:
            options.append(v[f1][a[1:]] - v[f1 - 1][a[1:]])
        if options:
            changes[("t", a, b)] = np.mean(options, axis=0) - (f[b] - f[a])
    return changes


def naive_energy(d, changes, active, screening, temporal_weight):
    """The blending energy of offsets d (L, H, W, C), frozen pixels read as 0."""
    d = np.where(active[None, :, :, None], d, 0.0)
    n_out, h, w, _ = d.shape
    spatial, temporal = _edges(h, w, n_out)
    e = screening * float((d[:, active] ** 2).sum())
    for a, b in spatial:
        if active[a[1:]] or active[b[1:]]:
            c = changes.get(("s", a, b), 0.0)
            e += float(np.sum((d[b] - d[a] - c) ** 2))
    for a, b in temporal:
        if active[a[1:]]:
            c = changes.get(("t", a, b), 0.0)
            e += temporal_weight * float(np.sum((d[b] - d[a] - c) ** 2))
    return e


def naive_solve(video, base, fmap, active, screening=1e-3, temporal_weight=1.0):
    """Minimise :func:`naive_energy` exactly: sparse normal equations, direct solve per channel."""
    n_out, h, w, c = base.shape
    changes = naive_desired_changes(video, base, fmap, active)
    index = -np.ones((n_out, h, w), np.int64)
    cells = [(t, y, x) for t in range(n_out) for y in range(h) for x in range(w) if active[y, x]]
    for i, v in enumerate(cells):
        index[v] = i
    n = len(cells)
    a = sp.lil_matrix((n, n))
    rhs = np.zeros((n, c))
    for i in range(n):
        a[i, i] += screening
    spatial, temporal = _edges(h, w, n_out)
    for kind, edges, wgt in (("s", spatial, 1.0), ("t", temporal, temporal_weight)):
        for p, q in edges:
            if kind == "t" and not active[p[1:]]:
                continue
            ip, iq = index[p], index[q]
            if ip < 0 and iq < 0:
                continue
            ch = changes.get((kind, p, q), np.zeros(c))
            # wgt * (d_q - d_p - ch)^2, frozen ends fixed at 0
            if ip >= 0:
                a[ip, ip] += wgt
                rhs[ip] -= wgt * ch
            if iq >= 0:
                a[iq, iq] += wgt
                rhs[iq] += wgt * ch
            if ip >= 0 and iq >= 0:
                a[ip, iq] -= wgt
                a[iq, ip] -= wgt
    sol = spla.splu(a.tocsc()).solve(rhs)
    d = np.zeros(base.shape)
    for i, v in enumerate(cells):
        d[v] = sol[i]
    return d, rhs, index, changes


def naive_seam_energy(video, loop, fmap, active):
    """Mean over discontinuous spatial pairs of ||loop difference - desired difference||^2."""
    n_out, h, w = fmap.shape
    v = video.astype(np.float64)
    lp = loop.astype(np.float64)
    total, n = 0.0, 0
    for a, b in _edges(h, w, n_out)[0]:
        if not (active[a[1:]] or active[b[1:]]) or fmap[a] == fmap[b]:
            continue
        fa, fb = fmap[a], fmap[b]
        want = 0.5 * ((v[fa][b[1:]] - v[fa][a[1:]]) + (v[fb][b[1:]] - v[fb][a[1:]]))
        total += float(np.sum((lp[b] - lp[a] - want) ** 2))
        n += 1
    return (total / n if n else 0.0), n
