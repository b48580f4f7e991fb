"""What every Prefect task shares: its logger, its skip on rerun, its retry rule, and the Dask client to compute on."""

from __future__ import annotations

import contextlib
import logging
import threading

import dask
from distributed.diagnostics.plugin import WorkerPlugin
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from tasks.store import stage_done, stage_record
from tasks.threads import worker_process_threads


def stage_logger(stage: str) -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run (shown in the UI), a plain logger outside one."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(f"cinemagraph.{stage}")


def finished_stage(store, stage: str, inputs_digest: str, model):
    """The stage's recorded summary as ``model`` when it already finished with these inputs, else None.

    A stage task calls this first: on a rerun with unchanged inputs it logs
    ``stage X already complete; skipped`` and returns what the finished run returned.
    """
    if not stage_done(store, stage, inputs_digest):
        return None
    stage_logger(stage).info("stage %s already complete; skipped", stage)
    return model.model_validate(stage_record(store, stage)["summary"])


def retry_on_io_only(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry transient I/O failures, never bad input."""
    from schemas.config import ConfigError
    from tasks.store import StoreError
    from tasks.video import VideoError

    try:
        state.result()
    except (VideoError, ConfigError, StoreError, ValueError, TypeError):
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


@contextlib.contextmanager
def cluster_compute():
    """Compute dask collections on the flow's Dask cluster when running on one.

    A task run by a ``DaskTaskRunner`` executes on a Dask worker thread.  There
    ``distributed.worker_client`` makes the whole cluster the scheduler of the
    task's own dask graphs *and* secedes the thread from the worker's pool while
    it waits, so a task that waits on its tiles never holds the thread those
    tiles need (no deadlock however many tasks run at once).

    A task placed on a worker (``workers=[...]``, as a corpus item's stages
    are: :class:`flows.execution.WorkerBoundRunner`) keeps its graphs in the
    worker that runs it instead: they run on the task's own thread (Dask's
    synchronous scheduler, or a pool of the worker's thread count when it has
    more than one), so no tile is shipped between processes or passes through
    the scheduler, and two workers each busy with their own item do not wait
    for each other.  That holds too when Dask's work stealing moved the task
    (its placement is loose) from a busy worker's queue to an idle one.

    Anywhere else (plain calls, ``.fn`` in tests, another task runner) dask's
    default scheduler is used; no cluster is started.
    """
    from distributed import get_worker, worker_client

    try:
        worker = get_worker()
    except ValueError:
        yield None
        return
    if _placed_on(worker):
        with _local_scheduler(worker.state.nthreads):
            yield None
        return
    with worker_client() as client:
        yield client


def shared_inputs(client, values) -> list:
    """``values`` that many tasks of one graph take, each sent to the cluster once.

    ``client`` is what :func:`cluster_compute` yielded.  On a cluster the values are scattered to its
    workers straight from this process and the tasks take their futures; elsewhere each value is one
    key of the graph (never traversed).  Large inputs inside a graph go through the scheduler, and
    Dask warns of every graph above 10 MB ("Sending large graph").
    """
    if client is None:
        return [dask.delayed(value, traverse=False) for value in values]
    return client.scatter(list(values), hash=False)


@contextlib.contextmanager
def kept_on_worker():
    """Inside a task placed on a worker (a corpus item's stages): every dask computation of the
    block runs in this worker process, whether or not it is inside :func:`cluster_compute`.

    Without it a computation outside ``cluster_compute`` (e.g. ``to_zarr`` of a stage's write)
    goes to the worker's default scheduler, the cluster: its tiles are shipped between processes
    and the thread *secedes* while it waits (``Client.get`` on a worker thread), so the worker
    starts the next queued item beside this one -- a one-thread worker then runs two items at
    once, on two cores.  Elsewhere (not on a worker, or a task not placed) a no-op.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        yield
        return
    if not _placed_on(worker):
        yield
        return
    with _local_scheduler(worker.state.nthreads):
        yield


def _placed_on(worker) -> bool:
    """Whether the task running on this thread was submitted for a worker (``workers=[...]``): this one,
    or another whose queue it was stolen from."""
    from distributed.worker import thread_state

    state = worker.state.tasks.get(getattr(thread_state, "key", None))
    return bool(((state.annotations or {}).get("workers") or ()) if state is not None else ())


_local_lock = threading.Lock()
_local_users = 0
_local_config: contextlib.AbstractContextManager | None = None


@contextlib.contextmanager
def _local_scheduler(nthreads: int):
    """This process's dask scheduler is a local one of ``nthreads`` while any task is inside the block.

    Dask's config is process-wide (inside a worker plain ``dask.compute`` would go to the cluster),
    so concurrent tasks of one worker share one setting, reverted when the last one leaves.
    """
    global _local_users, _local_config
    with _local_lock:
        if _local_users == 0:
            import dask

            n = max(1, int(nthreads))
            settings = {"scheduler": "sync"} if n == 1 else {"scheduler": "threads", "num_workers": n}
            _local_config = dask.config.set(settings)
        _local_users += 1
    try:
        yield
    finally:
        with _local_lock:
            _local_users -= 1
            if _local_users == 0 and _local_config is not None:
                _local_config.__exit__(None, None, None)
                _local_config = None


@contextlib.contextmanager
def seceded():
    """Free this task's worker thread while it only coordinates (e.g. waits on a subflow).

    On a Dask worker thread the thread leaves the worker's pool and rejoins at
    the end, so the work it waits for can run on that worker.  Elsewhere a no-op.
    """
    from distributed import get_worker, rejoin, secede

    try:
        get_worker()
    except ValueError:
        yield
        return
    secede()
    try:
        yield
    finally:
        rejoin()



class NumpyPageAdvice(WorkerPlugin):
    """Dask worker plugin: NumPy's huge-page advice set as ``ExecutionParams.numpy_huge_pages`` says.

    Local worker processes fork from a process that has imported NumPy already, so the
    ``NUMPY_MADVISE_HUGEPAGE`` variable cannot reach them: the plugin sets NumPy's switch in each
    worker process.  Workers of an in-process cluster are left alone (the flow sets its own process:
    :func:`tasks.threads.numpy_page_advice`).  Registering it again (a later flow on a shared
    cluster) replaces it, so the latest flow's setting holds.
    """

    def __init__(self, huge: bool = False) -> None:
        self.huge = huge

    def setup(self, worker) -> None:
        if worker_process_threads(worker) is None:
            return
        from tasks.threads import _numpy_page_setter

        setter = _numpy_page_setter()
        if setter is not None:
            setter(self.huge)


class PinnedThreads(WorkerPlugin):
    """Dask worker plugin: OpenCV's, the BLAS/OpenMP and Zarr's codec thread pools get as many threads as the worker.

    Without it every worker process lets OpenCV (and an unlimited BLAS) start one thread per core,
    so two one-thread workers on two cores fight over four or more threads.  Numba's pool is
    sized by ``NUMBA_NUM_THREADS`` in the worker's environment (set for local worker processes
    by :func:`flows.execution.local_cluster_kwargs`; set it yourself for ``dask worker``).
    Workers of an in-process cluster (threads of the flow's process) are left alone.
    """

    idempotent = True

    def setup(self, worker) -> None:
        n = worker_process_threads(worker)
        if n is None:
            return  # a worker in the client's own process: its pools are the process's, left alone
        import cv2
        from threadpoolctl import threadpool_limits

        cv2.setNumThreads(n)
        threadpool_limits(limits=n)
        pin_zarr_threads(n)


def pin_zarr_threads(n: int) -> bool:
    """Zarr's codec pool (chunks compressed and decompressed in parallel) gets ``n`` threads.

    Without it Zarr takes asyncio's default pool, up to cores + 4 threads, so a worker of one thread
    decompressed on every core: a one-worker corpus run's worker used more than one core in most
    tenths of the run (up to 1.05; ``bench_corpus``), time on a core that a second worker would
    have, and two such workers crowd each other's cores.  Zarr makes its pool once per process, on
    first use; returns False when it exists already (its size then stays).
    """
    import zarr
    from zarr.core import sync as zarr_sync

    zarr.config.set({"threading.max_workers": int(n)})
    return getattr(zarr_sync, "_executor", None) is None
