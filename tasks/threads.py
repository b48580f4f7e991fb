"""How many threads a stage may use for its own inner parallelism (no Prefect, light to import)."""

from __future__ import annotations

import os


def thread_budget() -> int:
    """Threads a stage may use for its own inner parallelism (Dask's threaded scheduler, OpenCV).

    Inside a Dask worker process it is that worker's thread count, so that a corpus run's
    one-thread workers stay on one core each; in a plain call or a worker of the flow's own
    process (``inproc://``) it is the machine's core count.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return os.cpu_count() or 1
    if str(worker.address).startswith("inproc://"):
        return os.cpu_count() or 1
    return max(1, int(worker.state.nthreads))
