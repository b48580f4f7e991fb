"""How many threads a stage may use for its own inner parallelism (no Prefect, light to import)."""

from __future__ import annotations

import os
import sys


def thread_budget() -> int:
    """Threads a stage may use for its own inner parallelism (Dask's threaded scheduler, OpenCV).

    Inside a Dask worker process it is that worker's thread count, so that a corpus run's
    one-thread workers stay on one core each; in a plain call or a worker of the flow's own
    process (``inproc://``) it is the machine's core count.
    """
    threads = worker_threads()
    return (os.cpu_count() or 1) if threads is None else threads


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
