"""The one place where Numba options are chosen.

Every kernel module compiles through :data:`jit`, so caching, GIL release and
floating-point strictness are the same everywhere.  Kernels are serial inside
one call and release the GIL: parallelism comes from Dask running many blocks
at once (threads or processes), which avoids nesting Numba's thread pool inside
Dask's.  ``NUMBA_DISABLE_JIT=1`` turns every kernel into plain Python for
coverage and debugging.
"""

from __future__ import annotations

import numba

#: Options shared by every kernel.  ``fastmath`` stays off: results must match
#: the slow reference implementations in the tests bit for bit where possible.
JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

jit = numba.njit(**JIT_OPTIONS)


def jit_with(**overrides):
    """Return a decorator with :data:`JIT_OPTIONS` updated by ``overrides``."""
    options = dict(JIT_OPTIONS)
    options.update(overrides)
    return numba.njit(**options)
