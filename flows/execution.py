"""Where a flow's Dask work runs, chosen from :class:`schemas.config.ExecutionParams` at run time.

A flow's task runner would normally be fixed when its module is imported (``@flow(task_runner=...)``),
so a deployment, a schedule or the UI form could not move the work to a cluster.  Instead the flows
of this project take the cluster from their ``config.execution`` parameter: the body runs its stage
tasks inside :func:`run_tasks_on`, which starts (or connects to) the Dask cluster the parameter names
and makes it the task runner of the current flow run.  Task runs keep their names and stay under the
flow run in the UI, whatever started the run (CLI, Python call, deployment, schedule, UI form).

Private by default: a local cluster listens on 127.0.0.1 only (scheduler, workers and their HTTP
servers) and has no dashboard unless ``cluster_kwargs`` asks for one.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import dask
from prefect.context import FlowRunContext
from prefect_dask import DaskTaskRunner

from schemas.config import ExecutionParams

#: Project defaults of Dask's own config (a user's dask config or DASK_* variables still win):
#: an event-loop pause is worth a log line only when it is long.
dask.config.update_defaults({"distributed": {"admin": {"tick": {"limit": "15s"}}}})

#: Environment of local worker processes: every native thread pool sized to the worker's threads.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class _RoutineShuffleChatter(logging.Filter):
    """Drop the WARNING lines Dask's P2P shuffle writes for every normal rechunk (start and end);
    restarts and failures still show."""

    ROUTINE = ("Shuffle %s initialized by task", "Shuffle %s deactivated due to stimulus")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.ROUTINE))


def quiet_dask_logs() -> None:
    """Install the shuffle-chatter filter once in this process (scheduler side of a local cluster)."""
    log = logging.getLogger("distributed.shuffle._scheduler_plugin")
    if not any(isinstance(f, _RoutineShuffleChatter) for f in log.filters):
        log.addFilter(_RoutineShuffleChatter())


def local_cluster_kwargs(params: ExecutionParams) -> dict[str, Any]:
    """``LocalCluster`` arguments of ``params``: 127.0.0.1 only, no dashboard, threads pinned per worker."""
    threads = params.threads_per_worker or os.cpu_count() or 1
    kwargs: dict[str, Any] = {
        "n_workers": params.n_workers,
        "threads_per_worker": threads,
        "processes": params.processes,
        "dashboard_address": None,
        # scheduler and workers start an HTTP server (health, metrics) even without a dashboard, on
        # the host of their address -- the machine's IP for in-process clusters: keep them local
        "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
        "worker_dashboard_address": "127.0.0.1:0",
    }
    if params.processes:
        kwargs["host"] = "127.0.0.1"
        kwargs["env"] = {name: str(threads) for name in THREAD_ENV_VARS}
    kwargs.update(params.cluster_kwargs)
    return kwargs


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
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(params))


@contextlib.contextmanager
def dask_cluster(params: ExecutionParams) -> Iterator[DaskTaskRunner]:
    """Start (or connect to) the cluster ``params`` names; yields the started runner, closes it after.

    Every worker gets the :class:`tasks.runtime.PinnedThreads` plugin, so OpenCV and BLAS use no
    more threads than the worker has.  Inside a Dask task (a flow called from a task running on a
    cluster) the runner connects to that same cluster.
    """
    from tasks.runtime import PinnedThreads

    quiet_dask_logs()
    with dask_task_runner(params) as runner:
        runner.client.register_plugin(PinnedThreads(), name="cinemagraph-pinned-threads")
        yield runner


def scheduler_address(runner: DaskTaskRunner) -> str:
    """The address of the scheduler a started runner talks to (to hand the cluster on to subflows)."""
    return runner.client.scheduler.address


@contextlib.contextmanager
def tasks_on(runner: DaskTaskRunner) -> Iterator[DaskTaskRunner]:
    """Inside a flow run: tasks submitted in this block (``task.submit``/``.map``) run on ``runner``.

    The task runs belong to the current flow run as usual (named per stage in the UI).
    """
    ctx = FlowRunContext.get()
    if ctx is None:
        raise RuntimeError("tasks_on() is for the body of a flow run")
    with ctx.model_copy(update={"task_runner": runner}):
        yield runner


@contextlib.contextmanager
def run_tasks_on(params: ExecutionParams) -> Iterator[DaskTaskRunner]:
    """Inside a flow run: start the cluster ``params`` names and run the block's tasks there."""
    with dask_cluster(params) as runner, tasks_on(runner):
        yield runner


def pickle_by_value_if_loaded_from_path(module_name: str) -> None:
    """Let a flow module loaded from its file path be sent to cluster workers.

    A deployment loads ``flows/make_cinemagraph.py`` as a top-level module ``make_cinemagraph``
    (Prefect's loader), which no scheduler or worker can import; the flow run's context, sent with
    every task, refers to it.  Such a module is pickled by value instead (``tasks.*`` and
    ``kernels.*`` stay by reference: workers have the project installed).
    """
    if module_name.startswith("flows.") or module_name == "__main__":
        return
    import sys

    import cloudpickle

    module = sys.modules.get(module_name)
    if module is not None:
        cloudpickle.register_pickle_by_value(module)


def runs_on_cluster(execution_of: Callable[[dict[str, Any]], ExecutionParams]):
    """Decorator (under ``@flow``): the flow body's tasks run on the cluster its parameters name.

    ``execution_of`` gets the call's arguments by name and returns the
    :class:`~schemas.config.ExecutionParams` to use, e.g. ``lambda a: a["config"].execution``.
    Signature, docstring and type hints stay the flow function's own, so the UI form and
    parameter validation are unchanged.
    """

    def decorate(fn):
        signature = inspect.signature(fn)
        pickle_by_value_if_loaded_from_path(fn.__module__)

        @functools.wraps(fn)
        def body(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with run_tasks_on(execution_of(dict(bound.arguments))):
                return fn(*args, **kwargs)

        return body

    return decorate
