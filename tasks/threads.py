"""How many threads a stage may use for its own inner parallelism (no Prefect, light to import)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (``taskset``, a cgroup's cpuset), which can be
    fewer than the machine's cores (``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def thread_budget() -> int:
    """Threads a stage may use for its own inner parallelism (Dask's threaded scheduler, OpenCV, COLMAP).

    Inside a Dask worker process it is that worker's thread count, so that a corpus run's
    one-thread workers stay on one core each; in a plain call or a worker of the flow's own
    process (``inproc://``) it is :func:`usable_cpus`.
    """
    threads = worker_threads()
    return usable_cpus() if threads is None else threads


def worker_process_threads(worker) -> int | None:
    """A Dask worker process's thread count; None for a worker in the client's own process.

    A worker of an in-process cluster (``inproc://``) is a set of threads of the flow's process,
    so the process's thread pools are not its own to size.
    """
    if str(worker.address).startswith("inproc://"):
        return None
    return max(1, int(worker.state.nthreads))


def worker_threads() -> int | None:
    """The thread count of the Dask worker process running this; None anywhere else (a plain call,
    a worker of the flow's own process: :func:`worker_process_threads`)."""
    if "distributed" not in sys.modules:  # no Dask worker can run here; do not pay distributed's import
        return None
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    return worker_process_threads(worker)


def pin_codec_threads(codec_context) -> None:
    """Set a PyAV codec context's (FFmpeg decoder or encoder, libx264 included) ``thread_count`` to
    :func:`worker_threads` before the first frame: a one-thread corpus worker gets a one-thread codec,
    where FFmpeg would start one thread per core.  Outside a Dask worker process FFmpeg picks, as it
    always did."""
    n = worker_threads()
    if n is not None:
        codec_context.thread_count = n


class SharedSetting:
    """A process-wide setting held while any block holds it, for blocks that may nest or overlap in
    threads: the first to enter applies it, the last to leave restores what was there before (an
    overlapping block meanwhile does not change it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._before = None

    @contextmanager
    def held(self, apply: Callable[[], Any], restore: Callable[[Any], Any]) -> Iterator[None]:
        """``apply()`` (returns the earlier setting) on the first entry, ``restore(earlier)`` on the last exit."""
        with self._lock:
            if self._users == 0:
                self._before = apply()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    restore(self._before)


_NUMPY_PAGES = SharedSetting()


def _numpy_page_setter():
    """NumPy's switch of its huge-page advice (returns the previous setting), or None in a NumPy without one."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, "_set_madvise_hugepage", None)


@contextmanager
def numpy_page_advice(huge: bool) -> Iterator[None]:
    """NumPy's transparent-huge-page advice set to ``huge`` in this process while the block runs.

    NumPy asks the kernel (``madvise(MADV_HUGEPAGE)``) to back every array of 4 MiB or more with
    2 MiB pages.  The pipeline makes many short-lived arrays of that size, and where the kernel's
    THP ``defrag`` setting is ``madvise`` (the common default) and free memory is fragmented, each
    such page fault compacts memory synchronously: a steady 640x360 run spent 9.9-11.3 s of system
    time with the advice and 3.4-3.8 s without, with the same user time and the same results (only
    where the bytes live changes).  The setting is process-wide, so blocks may nest or overlap in
    threads: the first to enter sets it, the last to leave restores the earlier one (an overlapping
    block that asks for the other setting does not change it meanwhile).
    """
    setter = _numpy_page_setter()
    if setter is None:
        yield
        return
    with _NUMPY_PAGES.held(lambda: setter(huge), setter):
        yield

