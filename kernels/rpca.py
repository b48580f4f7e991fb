"""Robust PCA by the Accelerated Proximal Gradient method (APG).

The render stage regularises each display segment by splitting the matrix of
its pixels (one frame per row, one matrix per colour channel) into a low-rank
part, which keeps the repetitive motion, and a sparse part, which takes the
flicker, ghosts of occluders and warping errors.  This module solves

    minimise ||A||_* + lambda ||E||_1   subject to   A + E = P

with Algorithm 2 of Lin et al. (2009): proximal gradient steps on the relaxed
objective ``mu (||A||_* + lambda ||E||_1) + ||P - A - E||_F^2 / 2`` with
Nesterov momentum and continuation ``mu_{k+1} = max(eta mu_k, mu_bar)``.

The singular value thresholding (SVT) uses an exact thin SVD (LAPACK
``gesdd`` through :func:`numpy.linalg.svd`), the eigendecomposition of the
small Gram matrix, or a partial SVD computed by a warm-started randomised
subspace iteration whose rank grows when needed; the element-wise parts of an
iteration run in one fused Numba kernel.  With the Gram SVT on a wide matrix
(frames x pixels, the render stage's case) the whole loop is one Numba call
(:func:`_apg_gram_fused`, BLAS through :mod:`kernels._blas`): it holds no GIL,
so RPCA tasks run beside Python work in the same process at full speed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from kernels._blas import gemm_rows, syrk_rows
from kernels._jit import jit

__all__ = ["RPCAResult", "display_lambda", "rpca_apg", "DEFAULT_GAMMA"]

#: Fraction of ones assumed for a segment's Delta1 temporal binary descriptor
#: when the descriptors are not available; gives ``display_lambda() == 0.0125``.
DEFAULT_GAMMA = 0.5


class RPCAResult(NamedTuple):
    """Output of :func:`rpca_apg`.

    Attributes
    ----------
    low_rank : ndarray, shape (m, n), float64
        Recovered low-rank matrix ``A``.
    sparse : ndarray, shape (m, n), float64
        Recovered sparse matrix ``E`` (``A + E`` equals ``P`` up to the
        tolerance).
    n_iter : int
        Number of APG iterations run.
    converged : bool
        True when the stopping criterion was met before ``max_iter``.
    """

    low_rank: np.ndarray
    sparse: np.ndarray
    n_iter: int
    converged: bool


def display_lambda(gamma: float = DEFAULT_GAMMA) -> float:
    """Sparsity weight ``lambda`` of a display segment from its descriptor.

    Parameters
    ----------
    gamma : float, optional
        Fraction of ones, in [0, 1], in the segment's Delta1 temporal binary
        descriptor (how often its pixels change between neighbouring frames).
        Defaults to :data:`DEFAULT_GAMMA` = 0.5, the value to use when the
        descriptors are not available (mid-range: neither a static nor a
        constantly flickering segment).

    Returns
    -------
    float
        ``0.005 + 0.015 * gamma``, in [0.005, 0.02].

    Notes
    -----
    Yan et al., CVPR 2017, Sec. 5 (rendering): segments that change more
    often get a larger ``lambda``, i.e. a sparser error term and a low-rank
    part closer to the input.

    Examples
    --------
    >>> display_lambda(0.0), display_lambda(1.0)
    (0.005, 0.02)
    >>> display_lambda()
    0.0125
    """
    gamma = float(gamma)
    if not (0.0 <= gamma <= 1.0) or math.isnan(gamma):
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    return 0.005 + 0.015 * gamma


# --------------------------------------------------------------------------
# Numba kernels: the element-wise parts of an APG iteration, and the whole loop with the Gram SVT.


#: Columns per block of the fused Gram iteration (:func:`_apg_gram_fused`).
GRAM_BLOCK = 4096


@jit
def _gradient_block(P, A, A_prev, E, E_prev, beta, thresh, G, j0, j1):
    """One APG step, element-wise part (Lin et al. 2009, Alg. 2, lines 3-7), on the columns ``j0:j1``.

    Writes ``G = G^A`` (the gradient step for the low-rank part) and
    overwrites ``E_prev`` with the new sparse iterate
    ``E_{k+1} = S_thresh(G^E)``, using ``G^E = P - G^A`` which follows from
    ``G^A = Y^A - (Y^A + Y^E - P) / 2`` and ``G^E = Y^E - (Y^A + Y^E - P) / 2``.
    Row slices keep the inner loops contiguous.
    """
    for i in range(P.shape[0]):
        p = P[i, j0:j1]
        a = A[i, j0:j1]
        ap = A_prev[i, j0:j1]
        e = E[i, j0:j1]
        ep = E_prev[i, j0:j1]
        g = G[i, j0:j1]
        for j in range(j1 - j0):
            ya = a[j] + beta * (a[j] - ap[j])
            ye = e[j] + beta * (e[j] - ep[j])
            ga = 0.5 * (ya - ye + p[j])
            g[j] = ga
            ge = p[j] - ga
            if ge > thresh:
                ep[j] = ge - thresh
            elif ge < -thresh:
                ep[j] = ge + thresh
            else:
                ep[j] = 0.0


@jit
def _stopping_block(P, G, A_new, E_new, j0, j1):
    """Sums for the stopping test of Lin et al. (2009), Sec. 3, over the columns ``j0:j1``.

    The subgradient ``S_{k+1} = 2 (Y_k - X_{k+1}) + (A_{k+1} + E_{k+1} - Y^A_k
    - Y^E_k)`` of the relaxed objective has identical halves up to sign,
    ``S^A = -S^E = 2 G^A - P - A_{k+1} + E_{k+1}``; returns
    ``(||S^A||_F^2, ||(A_{k+1}, E_{k+1})||_F^2)`` over the block (``||S||_F^2`` is twice the first).
    """
    s2 = 0.0
    x2 = 0.0
    for i in range(P.shape[0]):
        p = P[i, j0:j1]
        g = G[i, j0:j1]
        an = A_new[i, j0:j1]
        en = E_new[i, j0:j1]
        for j in range(j1 - j0):
            a = an[j]
            e = en[j]
            s = 2.0 * g[j] - p[j] - a + e
            s2 += s * s
            x2 += a * a + e * e
    return s2, x2


@jit
def _gram_shrinker(gram, tau, W, Ukt, scaled):
    """SVT factors from ``gram = G G^T`` (lower triangle filled): the number ``r`` of singular values above
    ``tau``; ``Ukt[:r]`` (their left vectors as rows) and ``scaled[:, :r]`` (the vectors times
    ``1 - tau / s``); and, when ``2 r >= m``, ``W = scaled Ukt`` (m x m) so that ``SVT(G) = W G``."""
    m = gram.shape[0]
    for i in range(m):
        for j in range(i + 1, m):
            gram[i, j] = gram[j, i]
    w, U = np.linalg.eigh(gram)  # ascending
    r = 0
    for i in range(m):
        if math.sqrt(max(w[i], 0.0)) > tau:
            r += 1
    for j in range(r):
        c = m - r + j
        f = 1.0 - tau / math.sqrt(max(w[c], 0.0))
        for i in range(m):
            Ukt[j, i] = U[i, c]
            scaled[i, j] = U[i, c] * f
    if r > 0 and 2 * r >= m:
        W[:, :] = np.ascontiguousarray(scaled[:, :r]) @ np.ascontiguousarray(Ukt[:r])
    return r


@jit
def _apg_gram_fused(P, lam, tol, max_iter, eta, mu, mu_bar, block):
    """The APG loop of :func:`rpca_apg` with the Gram SVT, for a wide ``P`` (m <= n), in one GIL-free call.

    Same iterates as the Python loop with ``svd="gram"`` up to rounding (the Gram matrix is summed block by
    block).  One pass over the columns per iteration: for each block of ``block`` columns, ``A_{k+1} = SVT(G_k)``
    (from the factors of the previous Gram matrix), the stopping sums of iteration ``k`` and then iteration
    ``k + 1``'s gradient step and its Gram contribution.  Returns ``(A, E, n_iter, converged)``.
    """
    m, n = P.shape
    A = np.zeros_like(P)
    A_prev = np.zeros_like(P)
    E = np.zeros_like(P)
    E_prev = np.zeros_like(P)
    G = np.empty_like(P)
    gram = np.zeros((m, m))
    W = np.empty((m, m))
    Ukt = np.empty((m, m))
    scaled = np.empty((m, m))
    T = np.empty((m, block))
    si = np.empty(8, np.int32)
    sf = np.empty(2)
    # iteration 0's gradient step (A_0 = A_-1 = E_0 = E_-1 = 0, beta_0 = 0) and Gram matrix
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        _gradient_block(P, A, A_prev, E, E_prev, 0.0, lam * mu / 2.0, G, j0, j1)
        syrk_rows(G[:, j0:j1], gram, j0 > 0, si, sf)
    E, E_prev = E_prev, E
    # loop invariant at iteration k: G = G_k with its Gram matrix, A = A_k, A_prev = A_{k-1},
    # E = E_{k+1} (from G_k), E_prev = E_k; t = t_k, mu = mu_k
    t = 1.0
    k = 0
    converged = False
    while True:
        r = _gram_shrinker(gram, mu / 2.0, W, Ukt, scaled)
        at_floor = mu <= mu_bar
        t_next = (1.0 + math.sqrt(4.0 * t * t + 1.0)) / 2.0
        mu_next = max(eta * mu, mu_bar)
        beta_next = (t - 1.0) / t_next
        last = k + 1 >= max_iter
        s2 = 0.0
        x2 = 0.0
        for j0 in range(0, n, block):
            j1 = min(n, j0 + block)
            # A_{k+1} = SVT(G_k) on this block, into A_prev (A_{k-1} is no longer needed)
            if r == 0:
                A_prev[:, j0:j1] = 0.0
            elif 2 * r < m:
                # few kept values: two thin products, as _svt_gram
                gemm_rows(Ukt[:r], G[:, j0:j1], T[:r, : j1 - j0], si, sf)
                gemm_rows(scaled[:, :r], T[:r, : j1 - j0], A_prev[:, j0:j1], si, sf)
            else:
                gemm_rows(W, G[:, j0:j1], A_prev[:, j0:j1], si, sf)
            if at_floor:
                a2, b2 = _stopping_block(P, G, A_prev, E, j0, j1)
                s2 += a2
                x2 += b2
            if not last:
                # iteration k + 1: G_{k+1} over G_k, E_{k+2} over E_k
                _gradient_block(P, A_prev, A, E, E_prev, beta_next, lam * mu_next / 2.0, G, j0, j1)
                syrk_rows(G[:, j0:j1], gram, j0 > 0, si, sf)
        A, A_prev = A_prev, A
        k += 1
        if at_floor and math.sqrt(2.0 * s2) <= 2.0 * tol * max(1.0, math.sqrt(x2)):
            converged = True
            break
        if last:
            break
        E, E_prev = E_prev, E
        t = t_next
        mu = mu_next
    return A, E, k, converged


# --------------------------------------------------------------------------
# Singular value thresholding.


def _thin_svd(G):
    """Thin SVD ``G = U diag(s) Vt``; wide matrices are passed to LAPACK
    transposed, which is several times faster for frames x pixels data."""
    if G.shape[0] < G.shape[1]:
        V, s, Ut = np.linalg.svd(G.T, full_matrices=False)
        return Ut.T, s, V.T
    return np.linalg.svd(G, full_matrices=False)


def _svt_full(G, tau, out):
    """Exact SVT by a thin LAPACK SVD; returns the number of kept values."""
    U, s, Vt = _thin_svd(G)
    r = int(np.count_nonzero(s > tau))
    if r == 0:
        out[...] = 0.0
    else:
        np.matmul(U[:, :r] * (s[:r] - tau), Vt[:r], out=out)
    return r


def _svt_gram(G, tau, out):
    """Exact SVT through the eigendecomposition of the small Gram matrix; returns the number of kept values.

    For a wide ``G`` (m <= n), ``G G^T = U diag(s^2) U^T`` and
    ``SVT_tau(G) = U diag(max(1 - tau / s, 0)) U^T G``: one (m x m) symmetric
    eigenproblem and two matrix products, instead of a bidiagonalisation of
    ``G``.  The thresholded matrix is a continuous function of ``G G^T``, so
    clustered singular values do not make it ill-defined.  Squaring costs
    precision only for singular values far below ``s_1``: a value near the
    threshold is off by about ``1e-16 s_1^2 / tau``, i.e. ``1e-12 s_1`` when
    ``tau = 1e-4 s_1`` (the render stage's floor).  Tall matrices use
    ``G^T G`` alike.
    """
    m, n = G.shape
    wide = m <= n
    gram = G @ G.T if wide else G.T @ G
    w, U = np.linalg.eigh(gram)
    s = np.sqrt(np.maximum(w, 0.0))
    keep = s > tau
    r = int(np.count_nonzero(keep))
    if r == 0:
        out[...] = 0.0
        return 0
    Uk = U[:, keep]
    scaled = Uk * (1.0 - tau / s[keep])
    if 2 * r < min(m, n):
        # few kept values: apply U_k D U_k^T as two thin products (2 r min(m, n) max(m, n) flops
        # instead of min(m, n)^2 max(m, n)); the same matrix up to rounding
        if wide:
            np.matmul(scaled, Uk.T @ G, out=out)
        else:
            np.matmul(G @ Uk, scaled.T, out=out)
        return r
    shrink = scaled @ Uk.T
    if wide:
        np.matmul(shrink, G, out=out)
    else:
        np.matmul(G, shrink, out=out)
    return r


class _PartialSVD:
    """Warm-started randomised subspace iteration for SVT of a stream of
    slowly changing matrices.

    For a rank guess ``k`` (kept values plus ``oversample``), the basis ``V``
    (n x k, the previous iteration's right singular vectors, padded with
    Gaussian columns) is refined by subspace iteration with a Rayleigh-Ritz
    step ``B = Q^T G`` (exact SVD of the small k x n matrix) until the Ritz
    triplets ``(u_i, s_i, v_i)`` of the kept singular values satisfy
    ``||G v_i - s_i u_i||_F <= svd_tol * s_1`` jointly (the other residual
    ``G^T u_i - s_i v_i`` is zero by construction); with nothing to keep, the
    top Ritz value must be below ``zero_margin`` times the threshold after a
    power step.  When every computed value is above the threshold the width
    doubles and the iteration restarts; beyond ``max_fraction * min(m, n)``,
    or without convergence in ``max_power`` steps, the exact SVD is used.
    """

    def __init__(self, shape, rank_guess, oversample, svd_tol, max_power, max_fraction, seed):
        self.m, self.n = shape
        self.p = min(shape)
        self.k = max(1, min(int(rank_guess), self.p))
        self.oversample = int(oversample)
        self.svd_tol = float(svd_tol)
        self.max_power = int(max_power)
        self.max_fraction = float(max_fraction)
        self.rng = np.random.default_rng(seed)
        self.V = None
        self.n_full = 0
        self.zero_margin = 0.9

    def _basis(self, width):
        if self.V is None:
            return self.rng.standard_normal((self.n, width))
        have = self.V.shape[1]
        if have >= width:
            return self.V[:, :width]
        extra = self.rng.standard_normal((self.n, width - have))
        return np.concatenate([self.V, extra], axis=1)

    def __call__(self, G, tau, out):
        width = min(self.k + self.oversample, self.p)
        while True:
            if width > self.max_fraction * self.p:
                self.n_full += 1
                r = _svt_full(G, tau, out)
                self.V = None
                self.k = max(1, r)
                return r
            result = self._iterate(G, tau, self._basis(width))
            if result is None:  # width too small for the values above tau
                width = min(2 * width, self.p)
                continue
            if result is False:  # no convergence (no spectral gap): exact SVD
                self.n_full += 1
                return _svt_full(G, tau, out)
            U, s, Vt, r = result
            break
        if r == 0:
            out[...] = 0.0
        else:
            np.matmul(U[:, :r] * (s[:r] - tau), Vt[:r], out=out)
        self.V = Vt.T.copy()
        self.k = max(1, r)
        return r

    def _iterate(self, G, tau, V):
        """Subspace iteration: ``(U, s, Vt, r)`` on success, None when the
        width cannot hold every value above ``tau``, False when the triplets
        do not converge within ``max_power`` steps."""
        width = V.shape[1]
        Y = G @ V
        for step in range(self.max_power):
            Q, _ = np.linalg.qr(Y)
            B = Q.T @ G
            Ub, s, Vt = _thin_svd(B)
            U = Q @ Ub
            r = int(np.count_nonzero(s > tau))
            if r >= width and width < self.p:
                return None  # possibly more values above tau than columns
            if r == 0 and step >= 1 and s[0] <= self.zero_margin * tau:
                # Nothing to keep: the top Ritz value, after a power step,
                # lies clearly below the threshold (a flat top spectrum makes
                # its triplet converge slowly, but it need not be accurate).
                return U, s, Vt, 0
            n_check = min(max(r, 1), width)
            Y = G @ Vt.T
            R = Y[:, :n_check] - U[:, :n_check] * s[:n_check]
            if s[0] == 0.0 or np.linalg.norm(R) <= self.svd_tol * s[0]:
                return U, s, Vt, r
        return False


#: Up to this many rows (or columns) ``||P||_2`` comes from the eigenvalues of the small Gram matrix.
_GRAM_NORM_MAX = 512


def _spectral_norm(P, rng, n_iter=30):
    """Largest singular value of ``P``: exact (to rounding) when ``min(m, n) <= 512``, else to about
    1e-3 relative accuracy by power iteration.

    Only used for the continuation's starting value ``mu_0``, which need not
    be exact."""
    m, n = P.shape
    if min(m, n) <= 64:
        return float(np.linalg.norm(P, 2))
    if min(m, n) <= _GRAM_NORM_MAX:
        # exact: the largest eigenvalue of the small Gram matrix (one product, one small eigenproblem;
        # cheaper than the power iteration below for frames x pixels matrices)
        gram = P @ P.T if m <= n else P.T @ P
        return float(math.sqrt(max(np.linalg.eigvalsh(gram)[-1], 0.0)))
    k = 4
    Y = P @ rng.standard_normal((n, k))
    for _ in range(n_iter):
        Q, _ = np.linalg.qr(Y)
        Z = P.T @ Q
        Q2, _ = np.linalg.qr(Z)
        Y = P @ Q2
    return float(np.linalg.svd(Y, compute_uv=False)[0])


# --------------------------------------------------------------------------
# Public API.


def rpca_apg(
    P,
    lam=None,
    *,
    tol=1e-7,
    max_iter=1000,
    svd="auto",
    eta=0.9,
    mu_ratio=1e-9,
    rank_guess=None,
    svd_tol=1e-10,
    seed=0,
):
    """Split ``P`` into low-rank plus sparse parts by APG with continuation.

    Parameters
    ----------
    P : array_like, shape (m, n)
        Real finite data matrix; converted to float64.  In the render stage a
        row holds one frame of a segment's pixels in one colour channel
        (frames x pixels), values in [0, 255] or [0, 1].
    lam : float, optional
        Weight ``lambda`` > 0 of the l1 term.  Defaults to
        ``1 / sqrt(max(m, n))``, the value of the exact-recovery theory;
        the render stage passes :func:`display_lambda`.
    tol : float, optional
        Stopping tolerance, default 1e-7 (see Notes).
    max_iter : int, optional
        Maximum number of iterations, default 1000.
    svd : {"auto", "full", "gram", "partial"}, optional
        How the singular value thresholding is computed.  "full" uses an
        exact thin SVD every iteration; "gram" the eigendecomposition of the
        small Gram matrix (``G G^T`` for a wide matrix), exact up to the
        precision lost by squaring and about ten times faster for a frames x
        pixels matrix of a display segment (see Notes); "partial" a
        warm-started randomised subspace iteration of growing rank (see
        Notes); "auto" (default) takes "partial" when ``min(m, n) >= 100``
        and "full" otherwise.
    eta : float, optional
        Continuation factor in (0, 1), default 0.9.
    mu_ratio : float, optional
        ``mu_bar / mu_0``, default 1e-9.  ``mu_0 = 0.99 ||P||_2``.
    rank_guess : int, optional
        Initial predicted rank for the partial SVD, default
        ``max(1, min(m, n) // 20)``.
    svd_tol : float, optional
        Accuracy of the partial SVD's kept triplets relative to the largest
        singular value, default 1e-10.
    seed : int, optional
        Seed of the random starting basis of the partial SVD (default 0), so
        results are reproducible.

    Returns
    -------
    RPCAResult
        ``(low_rank, sparse, n_iter, converged)``; both matrices float64 of
        shape (m, n).

    Raises
    ------
    ValueError
        If ``P`` is not a finite 2-D matrix with at least one element, or a
        parameter is out of range.

    Notes
    -----
    Algorithm 2 of Z. Lin, A. Ganesh, J. Wright, L. Wu, M. Chen and Y. Ma,
    "Fast convex optimization algorithms for exact recovery of a corrupted
    low-rank matrix", UIUC tech. rep. UILU-ENG-09-2214 (2009), with Lipschitz
    constant ``L_f = 2``:

    * ``Y_k = X_k + (t_{k-1} - 1) / t_k (X_k - X_{k-1})`` for ``X = A, E``;
    * ``G^A = Y^A - (Y^A + Y^E - P) / 2`` and likewise ``G^E``;
    * ``A_{k+1} = U S_{mu_k/2}[Sigma] V^T`` for ``G^A = U Sigma V^T`` and
      ``E_{k+1} = S_{lambda mu_k / 2}[G^E]`` with the soft threshold ``S``;
    * ``t_{k+1} = (1 + sqrt(4 t_k^2 + 1)) / 2``,
      ``mu_{k+1} = max(eta mu_k, mu_bar)``.

    It stops when ``||S_{k+1}||_F <= 2 tol max(1, ||(A_{k+1}, E_{k+1})||_F)``
    where ``S_{k+1} = 2 (Y_k - X_{k+1}) + (A_{k+1} + E_{k+1} - Y^A_k -
    Y^E_k)`` (the paper's criterion), and only once ``mu`` has reached
    ``mu_bar``: before that the iterates approach the solution of a more
    strongly relaxed problem.  With the defaults (``tol = 1e-7``, ``mu_bar =
    1e-9 mu_0``) the standard test (m = 200, rank 10, 5 % corruptions in
    [-500, 500], ``lambda = 1 / sqrt(m)``) recovers ``A`` to a relative
    Frobenius error near 1e-7, well below 1e-5.

    Large matrices: the partial SVD never forms a full decomposition of
    ``G``.  It refines a block of ``r + 10`` vectors (``r`` = values kept at
    the previous iteration) by subspace iteration, warm-started from the
    previous right singular vectors, and thresholds the Ritz values of
    ``Q^T G``.  The kept triplets are accepted when their residuals satisfy
    ``||G v_i - s_i u_i||_F <= svd_tol * s_1`` jointly (``svd_tol = 1e-10``),
    so each SVT is within about ``svd_tol ||G||_2`` of the exact one (SVT is
    non-expansive), far below ``tol``.  If every Ritz value of the block is
    above the threshold, the block doubles and the step restarts, so no
    value above the threshold is silently dropped (short of the iteration
    missing a direction altogether, which warm start plus Gaussian
    oversampling make improbable); if nothing is above it, the largest Ritz
    value must lie below 0.9 times the threshold after a power step.  When
    the kept triplets do not converge within 20 power steps (no spectral
    gap) or the block exceeds half of ``min(m, n)``, that iteration uses the
    exact SVD instead.  The tests check that "partial" and "full" agree to
    1e-7 relative on the standard set-up and on 60 x 3000 and 150 x 160
    matrices.

    Gram SVT: for ``m <= n`` the SVT is ``U diag(max(1 - tau / s, 0)) U^T G``
    with ``G G^T = U diag(s^2) U^T``; it costs two (m x m x n) matrix products
    and an (m x m) eigenproblem per iteration instead of an SVD of ``G``, and
    squaring the singular values loses precision only far below ``s_1``
    (about ``1e-16 s_1^2 / s`` absolute on a value ``s``).  The tests check it
    against the exact SVD and the naive reference.  For ``m <= n`` the Gram variant runs as one compiled
    loop (one pass over the columns per iteration, the Gram matrix summed in blocks of 4096 columns, so
    iterates equal the Python loop's to rounding, about 1e-9 relative in the tests) that releases the GIL.
    No tiling is done: a segment matrix is frames x pixels with at
    most a few hundred rows, so the cost per iteration grows linearly with
    the number of pixels (memory: about seven float64 copies of ``P``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> L = rng.standard_normal((40, 2)) @ rng.standard_normal((2, 30))
    >>> S = np.zeros_like(L); S[3, 7] = 50.0; S[20, 1] = -40.0
    >>> res = rpca_apg(L + S)
    >>> res.converged, bool(np.allclose(res.low_rank, L, atol=1e-4))
    (True, True)
    >>> bool(np.allclose(res.sparse, S, atol=1e-4))
    True
    """
    P = np.asarray(P)
    if P.ndim != 2:
        raise ValueError(f"P must be a 2-D matrix, got shape {P.shape}")
    if P.size == 0:
        raise ValueError(f"P must not be empty, got shape {P.shape}")
    if not (np.issubdtype(P.dtype, np.floating) or np.issubdtype(P.dtype, np.integer) or P.dtype == np.bool_):
        raise TypeError(f"P must be a real numeric matrix, got dtype {P.dtype}")
    P = np.ascontiguousarray(P, dtype=np.float64)
    if not np.all(np.isfinite(P)):
        raise ValueError("P must be finite (no NaN or inf)")
    m, n = P.shape
    if lam is None:
        lam = 1.0 / math.sqrt(max(m, n))
    lam = float(lam)
    if not lam > 0.0 or not math.isfinite(lam):
        raise ValueError(f"lam must be a positive finite number, got {lam}")
    tol = float(tol)
    if not tol > 0.0:
        raise ValueError(f"tol must be positive, got {tol}")
    max_iter = int(max_iter)
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if svd not in ("auto", "full", "gram", "partial"):
        raise ValueError(f"svd must be 'auto', 'full', 'gram' or 'partial', got {svd!r}")
    eta = float(eta)
    if not 0.0 < eta < 1.0:
        raise ValueError(f"eta must lie in (0, 1), got {eta}")
    mu_ratio = float(mu_ratio)
    if not 0.0 < mu_ratio <= 1.0:
        raise ValueError(f"mu_ratio must lie in (0, 1], got {mu_ratio}")
    if rank_guess is None:
        rank_guess = max(1, min(m, n) // 20)
    rank_guess = int(rank_guess)
    if rank_guess < 1:
        raise ValueError(f"rank_guess must be at least 1, got {rank_guess}")

    rng = np.random.default_rng(seed)
    norm2 = _spectral_norm(P, rng)
    if norm2 == 0.0:  # all-zero input: A = E = 0 is the solution
        return RPCAResult(np.zeros_like(P), np.zeros_like(P), 0, True)

    if svd == "auto":
        svd = "partial" if min(m, n) >= 100 else "full"
    if svd == "partial":
        svt = _PartialSVD(
            (m, n), rank_guess, oversample=10, svd_tol=svd_tol, max_power=20, max_fraction=0.5, seed=seed
        )
    elif svd == "gram":
        svt = _svt_gram
    else:
        svt = _svt_full

    mu = 0.99 * norm2
    mu_bar = mu_ratio * mu
    if svt is _svt_gram and m <= n and not numba.config.DISABLE_JIT:
        A, E, k, converged = _apg_gram_fused(P, lam, tol, max_iter, eta, mu, mu_bar, GRAM_BLOCK)
    else:
        A, E, k, converged = _apg_loop(P, lam, tol, max_iter, eta, mu, mu_bar, svt)
    return RPCAResult(A, E, int(k), bool(converged))


def _apg_loop(P, lam, tol, max_iter, eta, mu, mu_bar, svt):
    """The APG loop of :func:`rpca_apg` in Python, with any SVT callable ``svt(G, tau, out) -> rank``;
    returns ``(A, E, n_iter, converged)``."""
    A = np.zeros_like(P)
    A_prev = np.zeros_like(P)
    E = np.zeros_like(P)
    E_prev = np.zeros_like(P)
    G = np.empty_like(P)
    t, t_prev = 1.0, 1.0
    converged = False
    k = 0
    while k < max_iter:
        beta = (t_prev - 1.0) / t
        # E_prev becomes E_{k+1}; A_prev becomes A_{k+1}.
        _gradient_block(P, A, A_prev, E, E_prev, beta, lam * mu / 2.0, G, 0, P.shape[1])
        svt(G, mu / 2.0, A_prev)
        at_floor = mu <= mu_bar
        if at_floor:  # the test applies only at the floor: no pass over the matrices before
            s2, x2 = _stopping_block(P, G, A_prev, E_prev, 0, P.shape[1])
            s2 *= 2.0
        A, A_prev = A_prev, A
        E, E_prev = E_prev, E
        k += 1
        if at_floor and math.sqrt(s2) <= 2.0 * tol * max(1.0, math.sqrt(x2)):
            converged = True
            break
        t_prev, t = t, (1.0 + math.sqrt(4.0 * t * t + 1.0)) / 2.0
        mu = max(eta * mu, mu_bar)
    return A, E, k, converged
