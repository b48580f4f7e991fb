"""Tests for kernels.rpca (APG robust PCA)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from kernels.rpca import DEFAULT_GAMMA, RPCAResult, display_lambda, rpca_apg
from tests.kernels.naive_render import naive_rpca_apg


@pytest.fixture(autouse=True, scope="module")
def single_threaded_blas():
    """One BLAS thread: the SVDs here are small, and a multi-threaded BLAS on
    a loaded machine spends its time waiting (as inside Dask workers)."""
    with threadpool_limits(limits=1):
        yield


def low_rank_plus_sparse(m, n, rank, fraction, seed, magnitude=500.0):
    """The standard synthetic set-up of Lin et al. (2009) / Candes et al.:
    A = L R with Gaussian factors, E with a random ``fraction`` of entries
    uniform in [-magnitude, magnitude]."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    E = np.zeros((m, n))
    where = rng.random((m, n)) < fraction
    E[where] = rng.uniform(-magnitude, magnitude, int(where.sum()))
    return A, E


def rel(x, ref):
    return np.linalg.norm(x - ref) / np.linalg.norm(ref)


# ---------------------------------------------------------------- recovery


@pytest.fixture(scope="module")
def standard_problem():
    A, E = low_rank_plus_sparse(200, 200, 10, 0.05, seed=7)
    return A, E, 1.0 / math.sqrt(200)


@pytest.fixture(scope="module")
def standard_solution(standard_problem):
    A, E, lam = standard_problem
    return rpca_apg(A + E, lam)


def test_standard_setup_recovers_low_rank(standard_problem, standard_solution):
    A, E, _ = standard_problem
    res = standard_solution
    assert isinstance(res, RPCAResult)
    assert res.converged
    assert rel(res.low_rank, A) < 1e-5
    assert rel(res.sparse, E) < 1e-5
    assert np.linalg.matrix_rank(res.low_rank, tol=1e-6 * np.linalg.norm(A, 2)) == 10


def test_standard_setup_full_svd_matches_partial(standard_problem, standard_solution):
    A, E, lam = standard_problem
    full = rpca_apg(A + E, lam, svd="full")
    assert full.converged
    assert rel(full.low_rank, A) < 1e-5
    # The partial SVD keeps every SVT within svd_tol of the exact one.
    assert rel(standard_solution.low_rank, full.low_rank) < 1e-7
    assert full.n_iter == standard_solution.n_iter


def test_matches_inexact_alm_from_pyrpca(standard_problem, standard_solution):
    pyrpca = pytest.importorskip("pyrpca")
    A, E, lam = standard_problem
    L_ialm, S_ialm = pyrpca.rpca_pcp_ialm(A + E, lam, verbose=False)
    # Both solve the same convex programme; IALM stops at a relative
    # residual of 1e-7, which leaves it about 1e-6 from the truth here.
    assert rel(L_ialm, A) < 1e-5
    assert rel(standard_solution.low_rank, L_ialm) < 1e-5
    assert rel(standard_solution.sparse, S_ialm) < 1e-5


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_inexact_alm_on_other_matrices(seed):
    pyrpca = pytest.importorskip("pyrpca")
    A, E = low_rank_plus_sparse(120, 90, 4, 0.08, seed=seed, magnitude=50.0)
    lam = 1.0 / math.sqrt(120)
    res = rpca_apg(A + E, lam)
    L_ialm, _ = pyrpca.rpca_pcp_ialm(A + E, lam, verbose=False)
    assert rel(res.low_rank, A) < 1e-5
    assert rel(res.low_rank, L_ialm) < 1e-5


def test_rank_guess_too_small_grows():
    A, E = low_rank_plus_sparse(150, 160, 12, 0.05, seed=3)
    res = rpca_apg(A + E, svd="partial", rank_guess=1)
    ref = rpca_apg(A + E, svd="full")
    assert rel(res.low_rank, A) < 1e-5
    assert rel(res.low_rank, ref.low_rank) < 1e-7


def test_wide_frames_by_pixels_matrix():
    # The render stage's shape: few frames, many pixels.  (With 40 rows the
    # convex programme itself no longer recovers A exactly; 60 rows do.)
    A, E = low_rank_plus_sparse(60, 3000, 3, 0.05, seed=4, magnitude=100.0)
    res = rpca_apg(A + E, svd="partial")
    full = rpca_apg(A + E, svd="full")
    assert res.converged
    assert rel(res.low_rank, A) < 1e-5
    assert rel(res.low_rank, full.low_rank) < 1e-7


def test_gram_svt_matches_full_on_wide_and_tall_matrices():
    # frames x pixels (the render stage's shape) and its transpose
    A, E = low_rank_plus_sparse(60, 3000, 3, 0.05, seed=4, magnitude=100.0)
    for P, truth in ((A + E, A), ((A + E).T, A.T)):
        gram = rpca_apg(P, svd="gram")
        full = rpca_apg(P, svd="full")
        assert gram.converged and gram.n_iter == full.n_iter
        assert rel(gram.low_rank, truth) < 1e-5
        assert rel(gram.low_rank, full.low_rank) < 1e-7
        assert rel(gram.sparse, full.sparse) < 1e-6


def test_gram_svt_on_display_like_matrix_with_many_kept_values():
    # tens of kept singular values (slideshow content) and the render stage's settings
    rng = np.random.default_rng(7)
    P = np.clip(rng.standard_normal((100, 30)) @ rng.standard_normal((30, 2000)) * 20 + 128, 0, 255)
    P[rng.random(P.shape) < 0.02] = 255.0  # flashes
    kw = dict(tol=1e-5, max_iter=300, mu_ratio=1e-4)
    gram = rpca_apg(P, display_lambda(), svd="gram", **kw)
    full = rpca_apg(P, display_lambda(), svd="full", **kw)
    assert gram.n_iter == full.n_iter
    assert np.abs(gram.low_rank - full.low_rank).max() < 1e-6 * np.abs(P).max()


# ------------------------------------------------ agreement with the naive


@pytest.mark.parametrize(
    "shape,rank,fraction,seed",
    [((12, 17), 2, 0.1, 0), ((25, 8), 1, 0.05, 1), ((30, 30), 3, 0.2, 2), ((9, 40), 0, 0.3, 3)],
)
def test_agrees_with_naive_reference(shape, rank, fraction, seed):
    A, E = low_rank_plus_sparse(*shape, rank, fraction, seed=seed, magnitude=10.0)
    P = A + E + 0.01 * np.random.default_rng(seed).standard_normal(shape)
    a, e, k, conv = naive_rpca_apg(P)
    res = rpca_apg(P, svd="full")
    assert res.n_iter == k
    assert res.converged == conv
    scale = np.abs(P).max()
    np.testing.assert_allclose(res.low_rank, a, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(res.sparse, e, rtol=0, atol=1e-9 * scale)
    # the Gram-matrix SVT: the same iterations, to the precision squaring leaves (see rpca_apg's Notes)
    gram = rpca_apg(P, svd="gram")
    assert gram.n_iter == k and gram.converged == conv
    np.testing.assert_allclose(gram.low_rank, a, rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(gram.sparse, e, rtol=0, atol=1e-7 * scale)


def test_agrees_with_naive_on_gaussian_noise_with_other_parameters():
    P = np.random.default_rng(11).standard_normal((20, 14))
    a, e, k, conv = naive_rpca_apg(P, lam=0.15, tol=1e-6, eta=0.8, mu_ratio=1e-6)
    res = rpca_apg(P, 0.15, tol=1e-6, eta=0.8, mu_ratio=1e-6, svd="full")
    assert res.n_iter == k
    np.testing.assert_allclose(res.low_rank, a, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.sparse, e, rtol=0, atol=1e-9)
    # Non-trivial split: both parts present.
    assert np.linalg.norm(res.low_rank) > 0.1 and np.count_nonzero(res.sparse) > 10


def test_max_iter_stops_early_and_reports_not_converged():
    A, E = low_rank_plus_sparse(30, 30, 2, 0.05, seed=5)
    res = rpca_apg(A + E, max_iter=7)
    a, e, k, conv = naive_rpca_apg(A + E, max_iter=7)
    assert (res.n_iter, res.converged) == (7, False) == (k, conv)
    np.testing.assert_allclose(res.low_rank, a, rtol=0, atol=1e-9 * np.abs(a).max())


# --------------------------------------------------------------- edge cases


def test_all_zero_matrix():
    res = rpca_apg(np.zeros((5, 7)))
    assert res.converged and res.n_iter == 0
    assert not res.low_rank.any() and not res.sparse.any()
    assert res.low_rank.shape == (5, 7) and res.low_rank.dtype == np.float64


def test_rank_zero_sparse_input_goes_to_sparse_part():
    E = np.zeros((30, 40))
    E[3, 4], E[10, 20], E[29, 0] = 80.0, -30.0, 5.0
    res = rpca_apg(E)
    assert res.converged
    np.testing.assert_allclose(res.low_rank, 0.0, atol=1e-6)
    np.testing.assert_allclose(res.sparse, E, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 25), (25, 1)])
def test_single_row_or_column(shape):
    # For a vector ||A||_* = ||A||_2 < lam ||A||_1 when lam = 0.5 and the
    # entries are of similar size, so the whole vector is "low rank".
    rng = np.random.default_rng(0)
    P = (5.0 + rng.random(25)).reshape(shape)
    res = rpca_apg(P, 0.5)
    a, e, k, _ = naive_rpca_apg(P, 0.5)
    assert res.n_iter == k
    np.testing.assert_allclose(res.low_rank, a, atol=1e-9)
    np.testing.assert_allclose(res.low_rank, P, atol=1e-6)
    # And with a tiny lam everything goes to the sparse part.
    res = rpca_apg(P, 0.01)
    np.testing.assert_allclose(res.sparse, P, atol=1e-6)


def test_one_by_one():
    res = rpca_apg([[3.0]], 2.0)  # |a| < 2 |e|: all low rank
    assert res.low_rank[0, 0] == pytest.approx(3.0, abs=1e-7)
    res = rpca_apg([[3.0]], 0.5)  # all sparse
    assert res.sparse[0, 0] == pytest.approx(3.0, abs=1e-7)


def test_integer_input_and_low_rank_exact_input():
    u = np.arange(1, 21)
    P = np.outer(u, u % 7 + 1)  # int64, rank one, no corruption
    res = rpca_apg(P)
    assert res.low_rank.dtype == np.float64
    assert rel(res.low_rank, P.astype(float)) < 1e-6
    assert np.abs(res.sparse).max() < 1e-5 * np.abs(P).max()


def test_input_not_modified():
    A, E = low_rank_plus_sparse(20, 20, 2, 0.1, seed=9)
    P = A + E
    before = P.copy()
    rpca_apg(P)
    np.testing.assert_array_equal(P, before)


# --------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "P,kwargs,exc,match",
    [
        (np.zeros(5), {}, ValueError, "2-D"),
        (np.zeros((0, 3)), {}, ValueError, "empty"),
        (np.array([[1.0, np.nan]]), {}, ValueError, "finite"),
        (np.array([["a"]]), {}, TypeError, "numeric"),
        (np.ones((3, 3)), {"lam": 0.0}, ValueError, "lam"),
        (np.ones((3, 3)), {"lam": -1.0}, ValueError, "lam"),
        (np.ones((3, 3)), {"tol": 0.0}, ValueError, "tol"),
        (np.ones((3, 3)), {"max_iter": 0}, ValueError, "max_iter"),
        (np.ones((3, 3)), {"svd": "lanczos"}, ValueError, "svd"),
        (np.ones((3, 3)), {"eta": 1.0}, ValueError, "eta"),
        (np.ones((3, 3)), {"mu_ratio": 0.0}, ValueError, "mu_ratio"),
        (np.ones((3, 3)), {"rank_guess": 0}, ValueError, "rank_guess"),
    ],
)
def test_validation(P, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        rpca_apg(P, **kwargs)


def test_display_lambda():
    assert display_lambda(0.0) == pytest.approx(0.005)
    assert display_lambda(1.0) == pytest.approx(0.02)
    assert display_lambda(0.3) == pytest.approx(0.005 + 0.015 * 0.3)
    assert display_lambda() == pytest.approx(0.005 + 0.015 * DEFAULT_GAMMA)
    assert DEFAULT_GAMMA == 0.5
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="gamma"):
            display_lambda(bad)


# ------------------------------------------- the fused, GIL-free Gram loop


def _python_gram_loop(P, lam, tol, max_iter, eta, mu_ratio):
    """rpca_apg's Python loop with the Gram SVT (what the fused kernel replaces), from the same start."""
    from kernels.rpca import _apg_loop, _spectral_norm, _svt_gram

    mu = 0.99 * _spectral_norm(P, np.random.default_rng(0))
    return mu, _apg_loop(P, lam, tol, max_iter, eta, mu, mu_ratio * mu, _svt_gram)


def _display_like(m, n, rank, seed, flashes=0.02):
    rng = np.random.default_rng(seed)
    P = np.clip(rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) * 20 + 128, 0, 255)
    P[rng.random(P.shape) < flashes] = 255.0
    return P - np.median(P, axis=0)


@pytest.mark.parametrize(
    "P,lam,max_iter",
    [
        (_display_like(40, 301, 3, 0), 0.0125, 300),  # few kept values: the thin products
        (_display_like(40, 301, 30, 1), 0.005, 300),  # many kept values: the m x m shrink matrix
        (_display_like(40, 301, 30, 1), 0.005, 1),  # stopped after one iteration (not converged)
        (_display_like(40, 301, 30, 1), 0.005, 7),
        (np.pad(np.diag([80.0, -30.0, 5.0]), ((0, 27), (0, 37))), 1 / math.sqrt(40), 300),  # nothing kept
        (_display_like(12, 12, 2, 2), 0.02, 300),  # square
        (_display_like(3, 50, 1, 3), 0.02, 300),
    ],
    ids=["thin", "shrink", "one-iteration", "seven-iterations", "rank-zero", "square", "three-rows"],
)
@pytest.mark.parametrize("block", [1, 7, 64, 301, 4096])
def test_fused_gram_loop_follows_the_python_loop(P, lam, max_iter, block):
    from kernels.rpca import _apg_gram_fused

    P = np.ascontiguousarray(P, dtype=np.float64)
    mu, (a, e, k, conv) = _python_gram_loop(P, lam, 1e-5, max_iter, 0.9, 1e-4)
    A, E, k2, conv2 = _apg_gram_fused(P, lam, 1e-5, max_iter, 0.9, mu, 1e-4 * mu, block)
    assert (k2, conv2) == (k, conv)
    assert k == max_iter or conv
    scale = np.abs(P).max()
    # the Gram matrix is summed block by block: the same iterates up to rounding
    np.testing.assert_allclose(A, a, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(E, e, rtol=0, atol=1e-9 * scale)


def test_rpca_apg_uses_the_fused_loop_for_wide_gram_problems_only(monkeypatch):
    import kernels.rpca as K

    calls = []
    real = K._apg_gram_fused

    def spy(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(K, "_apg_gram_fused", spy)
    P = _display_like(20, 90, 4, 5)
    wide = rpca_apg(P, 0.01, svd="gram")
    tall = rpca_apg(P.T, 0.01, svd="gram")
    rpca_apg(P, 0.01, svd="full")
    assert calls == [(20, 90)]
    # transposing the problem transposes the solution (the programme is symmetric)
    assert tall.n_iter == wide.n_iter
    np.testing.assert_allclose(tall.low_rank, wide.low_rank.T, rtol=0, atol=1e-8 * np.abs(P).max())


def test_fused_loop_on_a_band_wider_than_a_block_matches_the_exact_svd():
    from kernels.rpca import GRAM_BLOCK

    P = _display_like(50, GRAM_BLOCK * 2 + 123, 12, 6)
    kw = dict(tol=1e-5, max_iter=300, mu_ratio=1e-4)
    gram = rpca_apg(P, display_lambda(), svd="gram", **kw)
    full = rpca_apg(P, display_lambda(), svd="full", **kw)
    assert gram.converged and gram.n_iter == full.n_iter
    assert np.abs(gram.low_rank - full.low_rank).max() < 1e-6 * np.abs(P).max()
