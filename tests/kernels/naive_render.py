"""Slow, readable reference implementations for the render building blocks.

Each function follows its paper's description line by line, with no attention
to speed, so that the fast kernels in ``kernels.rpca`` and ``kernels.inpaint``
can be checked against them on small inputs.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def soft_threshold(X, tau):
    """Element-wise shrinkage ``sign(x) max(|x| - tau, 0)``."""
    return np.sign(X) * np.maximum(np.abs(X) - tau, 0.0)


def singular_value_threshold(X, tau):
    """``U S_tau[Sigma] V^T`` from a full SVD."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    return U @ np.diag(soft_threshold(s, tau)) @ Vt


def naive_rpca_apg(P, lam=None, tol=1e-7, max_iter=1000, eta=0.9, mu_ratio=1e-9, mu_0=None, callback=None):
    """APG for RPCA, Algorithm 2 of Lin et al. (2009), with a full SVD.

    Same parameters and stopping rule as :func:`kernels.rpca.rpca_apg`
    (stop when ``||S||_F <= 2 tol max(1, ||(A, E)||_F)`` once ``mu`` has
    reached ``mu_bar``).  ``mu_0`` defaults to ``0.99 ||P||_2``.  Returns
    ``(A, E, n_iter, converged)``.
    """
    P = np.asarray(P, dtype=np.float64)
    m, n = P.shape
    if lam is None:
        lam = 1.0 / math.sqrt(max(m, n))
    if mu_0 is None:
        mu_0 = 0.99 * np.linalg.norm(P, 2)
    if mu_0 == 0.0:
        return np.zeros_like(P), np.zeros_like(P), 0, True
    mu = mu_0
    mu_bar = mu_ratio * mu_0
    L_f = 2.0
    A_k = np.zeros_like(P)
    A_km1 = np.zeros_like(P)
    E_k = np.zeros_like(P)
    E_km1 = np.zeros_like(P)
    t_k = 1.0
    t_km1 = 1.0
    for k in range(1, max_iter + 1):
        Y_A = A_k + (t_km1 - 1.0) / t_k * (A_k - A_km1)
        Y_E = E_k + (t_km1 - 1.0) / t_k * (E_k - E_km1)
        G_A = Y_A - (1.0 / L_f) * (Y_A + Y_E - P)
        A_next = singular_value_threshold(G_A, mu / L_f)
        G_E = Y_E - (1.0 / L_f) * (Y_A + Y_E - P)
        E_next = soft_threshold(G_E, lam * mu / L_f)
        # Stopping criterion of Lin et al., Sec. 3: S = L_f (Y - X_next)
        # + (A_next + E_next - Y_A - Y_E) for both blocks.
        common = A_next + E_next - Y_A - Y_E
        S_A = L_f * (Y_A - A_next) + common
        S_E = L_f * (Y_E - E_next) + common
        S_norm = math.sqrt(np.sum(S_A**2) + np.sum(S_E**2))
        X_norm = math.sqrt(np.sum(A_next**2) + np.sum(E_next**2))
        A_km1, A_k = A_k, A_next
        E_km1, E_k = E_k, E_next
        if callback is not None:
            callback(k)
        if mu <= mu_bar and S_norm <= L_f * tol * max(1.0, X_norm):
            return A_k, E_k, k, True
        t_km1, t_k = t_k, (1.0 + math.sqrt(4.0 * t_k**2 + 1.0)) / 2.0
        mu = max(eta * mu, mu_bar)
    return A_k, E_k, max_iter, False


def naive_inpaint(video, visible):
    """Space-time Laplacian in-painting by one sparse direct solve.

    Builds the graph Laplacian of the 6-neighbourhood on the (T, H, W) grid
    (neighbours outside the grid simply absent), keeps the rows of the
    invisible samples, moves the visible neighbours to the right-hand side
    (Dirichlet values) and solves with SuperLU.  ``video`` is (T, H, W, C).
    """
    video = np.asarray(video, dtype=np.float64)
    T, H, W, C = video.shape
    unknown = ~np.asarray(visible, dtype=bool)
    index = -np.ones((T, H, W), dtype=np.int64)
    coords = np.argwhere(unknown)
    index[unknown] = np.arange(len(coords))
    rows, cols, vals = [], [], []
    rhs = np.zeros((len(coords), C))
    for i, (t, y, x) in enumerate(coords):
        degree = 0
        for dt, dy, dx in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            tt, yy, xx = t + dt, y + dy, x + dx
            if not (0 <= tt < T and 0 <= yy < H and 0 <= xx < W):
                continue
            degree += 1
            j = index[tt, yy, xx]
            if j >= 0:
                rows.append(i)
                cols.append(j)
                vals.append(-1.0)
            else:
                rhs[i] += video[tt, yy, xx]
        rows.append(i)
        cols.append(i)
        vals.append(float(degree))
    K = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(len(coords), len(coords)))
    out = video.copy()
    if len(coords):
        solution = scipy.sparse.linalg.splu(K).solve(rhs)
        out[unknown] = solution
    return out
