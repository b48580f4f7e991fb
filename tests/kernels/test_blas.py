"""Tests for kernels._blas (BLAS products inside Numba kernels) against plain loops and NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from kernels._blas import gemm_rows, syrk_rows
from kernels._jit import jit


def naive_matmul(W, X):
    """Triple loop: the readable reference."""
    p, q = W.shape
    out = np.zeros((p, X.shape[1]))
    for i in range(p):
        for j in range(X.shape[1]):
            for k in range(q):
                out[i, j] += W[i, k] * X[k, j]
    return out


@jit
def _gemm_block(W, X, out, j0, j1):
    si = np.empty(8, np.int32)
    sf = np.empty(2)
    gemm_rows(W, X[:, j0:j1], out[:, j0:j1], si, sf)


@jit
def _syrk_blocks(X, gram, block):
    si = np.empty(8, np.int32)
    sf = np.empty(2)
    for j0 in range(0, X.shape[1], block):
        syrk_rows(X[:, j0 : min(X.shape[1], j0 + block)], gram, j0 > 0, si, sf)


@pytest.mark.parametrize("p,q,n,j0,j1", [(1, 1, 1, 0, 1), (3, 5, 9, 2, 7), (7, 4, 30, 0, 30), (5, 1, 6, 5, 6), (40, 40, 300, 17, 211)])
def test_gemm_rows_on_column_blocks(p, q, n, j0, j1):
    rng = np.random.default_rng(p * 100 + n)
    W = rng.standard_normal((p, q))
    X = rng.standard_normal((q, n))
    out = np.full((p, n), 7.0)
    _gemm_block(W, X, out, j0, j1)
    np.testing.assert_allclose(out[:, j0:j1], naive_matmul(W, X[:, j0:j1]), rtol=0, atol=1e-12 * q)
    np.testing.assert_allclose(out[:, j0:j1], W @ X[:, j0:j1], rtol=0, atol=1e-12 * q)
    # columns outside the block are left alone
    assert (out[:, :j0] == 7.0).all() and (out[:, j1:] == 7.0).all()


@pytest.mark.parametrize("m,n,block", [(1, 1, 1), (4, 9, 2), (6, 30, 30), (6, 31, 8), (30, 500, 64)])
def test_syrk_rows_accumulates_column_blocks_into_the_lower_triangle(m, n, block):
    rng = np.random.default_rng(m + n)
    X = rng.standard_normal((m, n))
    gram = np.full((m, m), 3.0)
    _syrk_blocks(X, gram, block)
    ref = naive_matmul(X, X.T)
    lower = np.tril_indices(m)
    np.testing.assert_allclose(gram[lower], ref[lower], rtol=0, atol=1e-12 * n)
    upper = np.triu_indices(m, 1)
    assert (gram[upper] == 3.0).all()  # not written
