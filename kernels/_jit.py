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

#: For small helpers that allocate nothing and are called in a kernel's hot loop (a heap push, a
#: union-find walk, a distance between two rows).  Compiled without Numba's runtime (``_nrt=False``),
#: they do not count references to their array arguments: with it, every call increments and
#: decrements the count of each array argument on entry and exit, two atomic (``lock``-prefixed)
#: updates per array per call, which the reference-count pruning pass leaves in place across the
#: helpers' branches.  In the segmentation's merge they took about 30 % of the time (perf: the two
#: hottest instructions of the whole merge were NRT_incref's and NRT_decref's ``lock incq/decq``).
#: A helper compiled this way cannot make an array (Numba refuses to compile it) and gives the
#: same results: only the bookkeeping goes.
jit_leaf = numba.njit(**JIT_OPTIONS, _nrt=False)


def jit_with(**overrides):
    """Return a decorator with :data:`JIT_OPTIONS` updated by ``overrides``."""
    options = dict(JIT_OPTIONS)
    options.update(overrides)
    return numba.njit(**options)
