"""BLAS products callable from inside Numba kernels, with the GIL released.

Numba's ``np.dot`` needs contiguous operands and cannot form a symmetric rank-k
update, so the few kernels that run whole iterative solvers in one compiled
call (no return to Python, hence no GIL hand-over per product) reach LAPACK's
sibling BLAS directly: the double-precision routines that SciPy exports in
``scipy.linalg.cython_blas`` (the same library Numba's own ``np.linalg``
functions use).  Their addresses are registered once with LLVM under our own
symbol names, so compiled kernels that call them can be cached on disk like
every other kernel.

Both helpers work on C-order (row-major) views whose rows may be longer than
the block used (a block of columns of a wider matrix): BLAS sees the transposed,
column-major matrices with the row stride as leading dimension.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from numba import types
from numba.extending import get_cython_function_address

from kernels._jit import jit

__all__ = ["gemm_rows", "syrk_rows"]

for _name in ("dgemm", "dsyrk"):
    llvm.add_symbol(f"cinemagraph_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name))

# Every argument of the Fortran interface is a pointer; passed as an address (intp), same ABI.
_dgemm = types.ExternalFunction("cinemagraph_dgemm", types.void(*([types.intp] * 13)))
_dsyrk = types.ExternalFunction("cinemagraph_dsyrk", types.void(*([types.intp] * 10)))

_N, _T, _U = 78, 84, 85  # 'N', 'T', 'U'


@jit
def gemm_rows(W, X, out, scratch_i, scratch_f):
    """``out = W @ X`` for C-order float64 views ``W`` (p x q), ``X`` (q x b), ``out`` (p x b).

    Rows must be contiguous (unit column stride); row strides may exceed the widths.
    ``scratch_i`` (int32, 8) and ``scratch_f`` (float64, 2) hold the by-reference arguments.
    """
    p, q = W.shape
    b = X.shape[1]
    scratch_i[0] = _N
    scratch_i[1] = b
    scratch_i[2] = p
    scratch_i[3] = q
    scratch_i[4] = X.strides[0] // 8
    scratch_i[5] = W.strides[0] // 8
    scratch_i[6] = out.strides[0] // 8
    scratch_f[0] = 1.0
    scratch_f[1] = 0.0
    pi = scratch_i.ctypes.data
    pf = scratch_f.ctypes.data
    # column-major: out^T (b x p) = X^T (b x q) @ W^T (q x p)
    _dgemm(pi, pi, pi + 4, pi + 8, pi + 12, pf, X.ctypes.data, pi + 16, W.ctypes.data, pi + 20, pf + 8,
           out.ctypes.data, pi + 24)


@jit
def syrk_rows(X, gram, accumulate, scratch_i, scratch_f):
    """``gram = X @ X.T`` (``+=`` when ``accumulate``) for a C-order float64 view ``X`` (m x b).

    Only the lower triangle of the C-order ``gram`` (m x m, contiguous) is written.
    """
    m, b = X.shape
    scratch_i[0] = _U
    scratch_i[1] = _T
    scratch_i[2] = m
    scratch_i[3] = b
    scratch_i[4] = X.strides[0] // 8
    scratch_i[5] = m
    scratch_f[0] = 1.0
    scratch_f[1] = 1.0 if accumulate else 0.0
    pi = scratch_i.ctypes.data
    pf = scratch_f.ctypes.data
    # column-major: C (m x m, upper = our lower) = (X^T)^T X^T, X^T being b x m with leading dimension = row stride
    _dsyrk(pi, pi + 4, pi + 8, pi + 12, pf, X.ctypes.data, pi + 16, pf + 8, gram.ctypes.data, pi + 20)
