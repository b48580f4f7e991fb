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
import contextvars
import functools
import inspect
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, ClassVar

import dask
from prefect.context import FlowRunContext, SettingsContext
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from schemas.config import ExecutionParams
from tasks.threads import usable_cpus

#: Project defaults of Dask's own config (a user's dask config or DASK_* variables still win):
#: an event-loop pause is worth a log line only when it is long, so the loop is checked every
#: 0.5 s instead of every 20 ms.
#: Local worker processes fork from a server process that imported the project once
#: (:data:`WORKER_MODULES`) instead of each importing it anew (``spawn``): the imports cost several
#: CPU-seconds per worker, paid again by every worker of every cluster.
#: The workers' statistical profiler (a stack sample every 10 ms) and the 0.5 s system monitor feed
#: only Dask's dashboard, which a project cluster does not start unless asked: profiler off, monitor
#: every 2 s.  Measured on an idle 2-worker cluster: the flow's process 0.91 -> 0.26 CPU-s per 30 s,
#: the two workers 1.15 -> 0.18 -- CPU the stages get back (a tenth of a small corpus run's CPU).
dask.config.update_defaults(
    {
        "distributed": {
            "admin": {"tick": {"limit": "15s", "interval": "500ms"}, "system-monitor": {"interval": "2s"}},
            "worker": {"multiprocessing-method": "forkserver", "profile": {"enabled": False}},
        }
    }
)

@contextlib.contextmanager
def _heartbeats_that_stop_at_once(engine, join_on_exit: bool = True) -> Iterator[None]:
    """A flow run's heartbeats (as Prefect sends them), in a thread that ends as soon as the run does.

    Prefect 3.8's own heartbeat thread sleeps in steps of one second and the flow run's end waits
    for it: 0-1 s (0.5 s on average) at the end of every flow run, measured as the largest part
    of a corpus run's cost after its last item (the item's subflow, then the corpus flow, each
    wait).  This one waits on its stop event instead.  The events are Prefect's own
    (``engine._emit_flow_run_heartbeat``), at the interval the settings give.
    """
    seconds = engine.heartbeat_seconds
    if seconds is None:
        yield
        return
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            state = engine.flow_run.state if engine.flow_run else None
            if state is not None and state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop.wait(seconds)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)


def install_prompt_heartbeats() -> bool:
    """Use :func:`_heartbeats_that_stop_at_once` for the flow runs of this process (once).

    Only where Prefect's flow engine has the parts it needs (``_send_heartbeats`` and the engine's
    heartbeat event methods); otherwise Prefect's own heartbeats stay and False is returned.
    """
    from prefect import flow_engine

    engine = flow_engine.FlowRunEngine
    needed = ("heartbeat_seconds", "_build_heartbeat_event_template", "_emit_flow_run_heartbeat")
    if not hasattr(flow_engine, "_send_heartbeats") or not all(hasattr(engine, n) for n in needed):
        return False
    flow_engine._send_heartbeats = _heartbeats_that_stop_at_once
    return True


install_prompt_heartbeats()


class _SslWithSharedContexts:
    """The :mod:`ssl` module as Prefect's API client module sees it, with one SSL context per CA source.

    Every Prefect API client builds an SSL context when it is made, loading the whole CA bundle
    (``ssl.create_default_context(cafile=certifi.where())``, 30 ms on an idle core here), whether
    or not the API is served over TLS, and Prefect makes a new client for every subflow run's parent
    task run and every task run started on a Dask worker: 0.47 CPU-s of the flow's process in a
    six-item corpus run (py-spy), the largest single cost left there.  An SSL context is meant to be
    shared by many connections, so a context made for the same purpose and CA file (and the file's
    same modification time) is made once per process.
    """

    def __init__(self, module) -> None:
        self._ssl = module
        self._made: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self._ssl, name)

    def create_default_context(self, purpose=None, *, cafile=None, capath=None, cadata=None):
        purpose = self._ssl.Purpose.SERVER_AUTH if purpose is None else purpose
        if cafile is None or capath is not None or cadata is not None:  # only the CA-file form is shared
            return self._ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
        try:
            stamp = os.stat(cafile).st_mtime_ns
        except OSError:
            stamp = None
        key = (purpose, os.fspath(cafile), stamp)
        with self._lock:
            ctx = self._made.get(key)
            if ctx is None:
                ctx = self._made[key] = self._ssl.create_default_context(purpose, cafile=cafile)
        return ctx


def install_shared_ssl_contexts() -> bool:
    """Share SSL contexts between the Prefect API clients of this process (:class:`_SslWithSharedContexts`),
    and with the API version check a process makes once, before its first client request.

    Only the verified form (a CA file, as Prefect 3.8 builds it) is shared; the unverified one
    (``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``) is changed after it is made and stays per client.
    Returns False, changing nothing, where Prefect's client module does not build its contexts
    through its ``ssl`` name.
    """
    import ssl

    from prefect.client import orchestration

    current = getattr(orchestration, "ssl", None)
    if isinstance(current, _SslWithSharedContexts):
        return True
    if current is not ssl:
        return False
    shared = _SslWithSharedContexts(ssl)
    orchestration.ssl = shared
    try:
        from prefect._internal import version_checking
    except ImportError:  # another Prefect: its check keeps its own contexts
        version_checking = None
    if getattr(version_checking, "ssl", None) is ssl:
        version_checking.ssl = shared
    return True


def warm_shared_ssl_context() -> bool:
    """Make now the SSL context this process's Prefect API clients will ask for (the CA file of
    ``PREFECT_API_SSL_CERT_FILE``, else certifi's bundle), so that processes forked afterwards (local
    Dask workers, from the forkserver: :mod:`flows.worker_warmup`) start with it instead of loading the
    whole CA bundle in their first task run.  Returns whether a context is shared now (False under
    ``PREFECT_API_TLS_INSECURE_SKIP_VERIFY`` or where sharing is not installed)."""
    import certifi
    from prefect.client import orchestration
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    shared = getattr(orchestration, "ssl", None)
    if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value() or not isinstance(shared, _SslWithSharedContexts):
        return False
    shared.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())
    return True


install_shared_ssl_contexts()


#: What a local worker process runs: imported once by the forkserver the workers fork from.
WORKER_MODULES = ("flows.make_cinemagraph", "flows.process_corpus")

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
    threads = params.threads_per_worker or usable_cpus()
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
        api_url = prefect_api_for_workers()
        if api_url:
            kwargs["env"]["PREFECT_API_URL"] = api_url
    kwargs.update(params.cluster_kwargs)
    return kwargs


def prefect_api_for_workers() -> str | None:
    """The Prefect API that local worker processes should report to: this process's own.

    That is ``PREFECT_API_URL`` when it is set (environment, profile or a settings context such as
    a test harness's), else the temporary server this process started (embedded defaults, no
    server), else None.  Without it, a worker process's first task run started a temporary server
    of its own on the same database, which took seconds, and the worker, stopped with the cluster,
    left it running: every ``cinemagraph corpus`` run with 2 worker processes left 2 orphaned
    Prefect servers of about 220 MB each.
    """
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        return str(url)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # this process's default temporary server (made, not started, if none)
    return server.api_url if server.running else None


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
    from tasks.runtime import NumpyPageAdvice, PinnedThreads

    quiet_dask_logs()
    if params.processes and not params.scheduler_address and not params.cluster_class:
        preload_worker_modules()
    with dask_task_runner(params) as runner:
        runner.client.register_plugin(PinnedThreads(), name="cinemagraph-pinned-threads")
        runner.client.register_plugin(NumpyPageAdvice(params.numpy_huge_pages), name="cinemagraph-numpy-pages")
        yield runner


@contextlib.contextmanager
def starting_cluster(params: ExecutionParams) -> Iterator[Callable[[], DaskTaskRunner]]:
    """:func:`dask_cluster`, started in a background thread while the block goes on.

    Yields ``started()``, which waits for the cluster and returns its started runner (or raises
    what starting it raised).  The block can do work that needs no cluster meanwhile (a corpus
    plans its sources): starting local worker processes takes seconds.  The cluster is closed
    when the block ends, once it has finished starting.
    """
    from concurrent.futures import ThreadPoolExecutor

    stack = contextlib.ExitStack()
    # the start runs in this thread's context, so it sees the same Prefect settings (e.g. the API
    # that local workers are given, prefect_api_for_workers)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="cinemagraph-cluster-start") as pool:
        future = pool.submit(context.run, stack.enter_context, dask_cluster(params))
        try:
            yield future.result
        finally:
            error = future.exception()  # waits until the cluster has started (or failed to)
            stack.close()
    if error is not None:
        raise error


def preload_worker_modules() -> None:
    """With Dask's ``forkserver`` start method, have the forkserver import :data:`WORKER_MODULES`, then
    :mod:`flows.worker_warmup` (Prefect's settings built once after those imports: warm type-check caches
    in every forked worker).

    Only before the forkserver of this process starts (its first local worker process); later
    calls change nothing.  With ``spawn`` or ``fork`` (a user's Dask config) nothing is done.
    """

    from distributed.utils import get_mp_context

    if dask.config.get("distributed.worker.multiprocessing-method") != "forkserver":
        return
    get_mp_context().set_forkserver_preload(["distributed", *WORKER_MODULES, "flows.worker_warmup"])


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
    with ctx.model_copy(update={"task_runner": runner}), SettingsSentOnce.of_current():
        yield runner


class SettingsSentOnce(SettingsContext):
    """The current Prefect settings, serialized once for all the tasks a block sends to Dask workers.

    ``DaskTaskRunner`` serializes the whole settings context again for every task it submits, so
    that the worker runs the task with the same settings (``prefect.context.serialize_context``):
    26 ms per task on an idle core here, 70 ms per corpus item in py-spy of a 2-worker
    ``bench_corpus`` run, in the flow's one process that coordinates every item.  Settings do not
    change inside a flow body's block, so this context (the same profile and settings, entered by
    :func:`tasks_on`) keeps the first serialization and hands it out again while its settings
    object is the same one (nothing in a run's body changes them; Prefect makes a new settings
    object for other settings).
    """

    #: include_secrets -> (settings object, its serialization), the latest, shared by every block of
    #: the process (a corpus's items run their subflows with the corpus run's one settings object)
    _sent: ClassVar[dict[bool, tuple[Any, dict[str, Any]]]] = {}

    def serialize(self, include_secrets: bool = True) -> dict[str, Any]:
        settings, serialized = self._sent.get(include_secrets, (None, None))
        if settings is not self.settings:
            serialized = super().serialize(include_secrets=include_secrets)
            self._sent[include_secrets] = (self.settings, serialized)
        return serialized

    @classmethod
    def of_current(cls) -> contextlib.AbstractContextManager:
        """This context for the current settings (nothing new when one is already current)."""
        current = SettingsContext.get()
        if isinstance(current, cls):
            return contextlib.nullcontext(current)
        return cls(profile=current.profile, settings=current.settings)


@contextlib.contextmanager
def run_tasks_on(params: ExecutionParams) -> Iterator[DaskTaskRunner]:
    """Inside a flow run: start the cluster ``params`` names and run the block's tasks there, with
    NumPy's huge-page advice in this process as ``params.numpy_huge_pages`` says (the earlier setting
    comes back after the block; :func:`tasks.threads.numpy_page_advice`)."""
    from tasks.threads import numpy_page_advice

    with numpy_page_advice(params.numpy_huge_pages), dask_cluster(params) as runner, tasks_on(runner):
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


class WorkerBoundRunner(DaskTaskRunner):
    """A started runner's cluster, with every task it submits placed on one worker.

    The restriction is loose (``allow_other_workers=True``): while the worker lives the scheduler
    runs the task there; if it is gone (restarted, scaled down) the task runs elsewhere instead of
    waiting forever.  A task that lands on its worker keeps its own Dask work there
    (:func:`tasks.runtime.cluster_compute`), so a corpus item's stages and their tiles all run in
    one worker process: no tile crosses processes and the scheduler sees one task per stage.
    The runner shares ``runner``'s client and never closes it.  ``stages_in_one_task`` tells a
    flow using it to run all its stages in one task run (see ``flows.make_cinemagraph.item_stages``).
    """

    def __init__(self, runner: DaskTaskRunner, worker: str, stages_in_one_task: bool = False) -> None:
        super().__init__(address=scheduler_address(runner))
        self._client = runner.client
        self._started = True
        self.worker = worker
        self.stages_in_one_task = stages_in_one_task

    def duplicate(self) -> WorkerBoundRunner:
        return WorkerBoundRunner(self, self.worker, self.stages_in_one_task)

    def __enter__(self) -> WorkerBoundRunner:
        self._started = True
        return self

    def __exit__(self, *args: Any) -> None:
        pass  # the client belongs to the corpus's runner

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        future = self.client.submit(
            task,
            # a key of its own: without one, Dask tokenizes the task and all its parameters (the
            # item's whole config, 0.02-0.05 s per item) into a key that a fresh task run id already
            # makes unique
            key=f"{task.name}-{uuid.uuid4().hex}",
            parameters=self._optimize_futures(parameters),
            wait_for=self._optimize_futures(wait_for) if wait_for else None,
            dependencies=dependencies,
            return_type="state",
            workers=[self.worker],
            allow_other_workers=True,
        )
        return PrefectDaskFuture(wrapped_future=future, task_run_id=future.task_run_id)


#: The started cluster of the corpus run this thread works for (set by :func:`corpus_cluster`).
_CORPUS_RUNNER: ContextVar[DaskTaskRunner | None] = ContextVar("cinemagraph_corpus_runner", default=None)
#: The runner a flow called in this thread uses instead of starting its own (set by :func:`on_worker`).
_BOUND_RUNNER: ContextVar[DaskTaskRunner | None] = ContextVar("cinemagraph_bound_runner", default=None)


@contextlib.contextmanager
def corpus_cluster(runner: DaskTaskRunner) -> Iterator[DaskTaskRunner]:
    """Inside the block (and the threads Prefect starts from it) :func:`on_worker` binds to ``runner``."""
    token = _CORPUS_RUNNER.set(runner)
    try:
        yield runner
    finally:
        _CORPUS_RUNNER.reset(token)


def worker_addresses(runner: DaskTaskRunner) -> list[str]:
    """The addresses of the cluster's workers now, sorted (empty while an adaptive cluster has none)."""
    return sorted(runner.client.scheduler_info(n_workers=-1).get("workers", {}))


@contextlib.contextmanager
def on_worker(worker: str | None, stages_in_one_task: bool = False) -> Iterator[DaskTaskRunner | None]:
    """Flows called in the block run their stage tasks on the corpus cluster's ``worker``.

    A :func:`runs_on_cluster` flow then uses a :class:`WorkerBoundRunner` on the cluster of the
    enclosing :func:`corpus_cluster` block (no client of its own is started); with
    ``stages_in_one_task`` it runs all its stages in one task run there.  With ``worker=None``,
    or outside a corpus, nothing changes.
    """
    runner = _CORPUS_RUNNER.get()
    if worker is None or runner is None:
        yield None
        return
    token = _BOUND_RUNNER.set(WorkerBoundRunner(runner, worker, stages_in_one_task))
    try:
        yield _BOUND_RUNNER.get()
    finally:
        _BOUND_RUNNER.reset(token)


def bound_runner() -> DaskTaskRunner | None:
    """The runner :func:`on_worker` set for this thread, if any.

    (A function, not the context variable itself, is what flow bodies refer to: a flow function
    pickled by value takes the globals it names along, and a context variable cannot be pickled.)
    """
    return _BOUND_RUNNER.get()


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
            on_worker_runner = bound_runner()
            if on_worker_runner is not None:  # a corpus item bound to one worker (see on_worker)
                with tasks_on(on_worker_runner):
                    return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with run_tasks_on(execution_of(dict(bound.arguments))):
                return fn(*args, **kwargs)

        return body

    return decorate


def item_run_name() -> str:
    """A corpus item subflow's run name (``flow_run_name=item_run_name``): its item's id, which is the
    name of its output folder (the run's ``out_dir`` parameter).

    With the name taken from the run's own parameters, one ``Flow.with_options`` serves every item;
    made per item, ``with_options`` builds the flow's parameter schema again each time (pydantic,
    about 0.08 CPU-s per item for ``make_cinemagraph``, py-spy of bench_corpus).
    """
    from pathlib import Path

    from prefect.runtime import flow_run

    return Path(flow_run.parameters["out_dir"]).name


class SubflowStart:
    """One corpus item's subflow is created at a time: the gate is held from just before an item's
    ``make_cinemagraph`` call until that subflow run is Running (its ``on_running`` hook) or has
    ended, whichever comes first.

    Measured reason: two subflow runs created at the same moment against the local Prefect server
    (SQLite) took 0.06 s and 1.8 s; one at a time, each took 0.06-0.08 s.  At a batch's start that
    1.8 s was the second worker's idle time.  A creation still hanging after ``timeout`` seconds lets
    the next one go anyway: one that the server answered 503 ("database is locked") waits 2 s before
    Prefect's client tries again, and with a 30 s timeout every item queued behind it waited too
    (``bench_corpus``: items 2-4 of a batch started at 3.2-3.5 s instead of 0.6-1.2 s, one worker
    idle until then).  A creation normally takes 0.06-0.3 s, so after 1 s the next one goes."""

    _gate = threading.Lock()
    _waiting: dict[str, SubflowStart] = {}  # flow run name -> its gate, for the hook

    def __init__(self, run_name: str, timeout: float = 1.0) -> None:
        self.run_name = run_name
        self._held = self._gate.acquire(timeout=timeout)
        self._guard = threading.Lock()
        self._waiting[run_name] = self

    def release(self) -> None:
        """Open the gate (once)."""
        self._waiting.pop(self.run_name, None)
        with self._guard:
            if self._held:
                self._held = False
                self._gate.release()

    @staticmethod
    def on_running(flow, flow_run, state) -> None:
        """Prefect ``on_running`` hook of the item's subflow.  It lives here, in a module imported by
        its name everywhere, so that it pickles by reference: a flow loaded from a deployment's
        entrypoint is not importable by name, and pickled by value its hook would take the lock along."""
        gate = SubflowStart._waiting.get(flow_run.name)
        if gate is not None:
            gate.release()
