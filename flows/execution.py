"""Where a flow's Dask work runs, chosen from :class:`schemas.config.ExecutionParams` without code changes."""

from __future__ import annotations

import os

from prefect_dask import DaskTaskRunner

from schemas.config import ExecutionParams


def dask_task_runner(params: ExecutionParams) -> DaskTaskRunner:
    """A ``DaskTaskRunner`` for an existing scheduler, a cluster class, or a local cluster.

    The local default is one worker of threads in this process (``processes=False``): the Numba
    kernels release the GIL, and no worker process has to start its own Prefect client or
    temporary server (see the team's stack notes).
    """
    if params.scheduler_address:
        return DaskTaskRunner(address=params.scheduler_address)
    if params.cluster_class:
        return DaskTaskRunner(
            cluster_class=params.cluster_class,
            cluster_kwargs=dict(params.cluster_kwargs),
            adapt_kwargs=dict(params.adapt_kwargs) or None,
        )
    threads = params.threads_per_worker or os.cpu_count() or 1
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": params.n_workers,
            "threads_per_worker": threads,
            "processes": params.processes,
            "dashboard_address": None,
            **params.cluster_kwargs,
        }
    )
