"""Corpus items bound to one Dask worker: real Prefect runs on a real LocalCluster of worker processes."""

import contextlib
import logging
import os
import subprocess
import sys
import textwrap

import dask
import pytest
from prefect import flow, task

from flows.execution import (
    corpus_cluster,
    dask_cluster,
    on_worker,
    runs_on_cluster,
    tasks_on,
    worker_addresses,
)
from flows.make_cinemagraph import StageRunner, call_with_retries
from flows.process_corpus import _WorkerChooser, largest_first
from schemas.config import ExecutionParams
from schemas.corpus import ItemPlan
from tasks.runtime import cluster_compute, retry_on_io_only
from tasks.video import VideoError


def _address(_: int) -> str:
    from distributed import get_worker

    return get_worker().address


@task
def where_it_runs(n_tiles: int) -> tuple[str, list[str], bool]:
    """The task's worker, the workers its dask tiles ran on, and whether they were kept local."""
    with cluster_compute() as client:
        tiles = dask.compute(*[dask.delayed(_address, pure=False)(k) for k in range(n_tiles)])
    return _address(0), sorted(set(tiles)), client is None


@flow
@runs_on_cluster(lambda arguments: ExecutionParams(scheduler_address="tcp://127.0.0.1:1"))  # unused when bound
def item_flow(n_tiles: int) -> tuple[str, list[str], bool]:
    return where_it_runs.submit(n_tiles).result()


@flow
def corpus_like_flow():
    params = ExecutionParams(n_workers=2, threads_per_worker=1, processes=True)
    with dask_cluster(params) as runner:
        workers = worker_addresses(runner)
        bound = {}
        with corpus_cluster(runner):
            for worker in workers:
                with on_worker(worker):
                    bound[worker] = item_flow(12)
            with on_worker("tcp://127.0.0.1:9"):  # no such worker: placed loosely, it runs elsewhere
                moved = item_flow(12)
        with tasks_on(runner):
            spread = where_it_runs.submit(12).result()
    return workers, bound, spread, moved


@pytest.fixture(scope="module")
def corpus_like(prefect_harness):
    return corpus_like_flow()


def test_a_bound_item_runs_its_tasks_and_tiles_on_its_worker(corpus_like):
    workers, bound, _, _ = corpus_like
    assert len(workers) == 2
    for worker, (task_worker, tile_workers, local) in bound.items():
        assert task_worker == worker
        assert tile_workers == [worker]
        assert local, "a task placed on its worker computes its tiles there, not through the scheduler"


def test_a_bound_task_run_elsewhere_keeps_its_tiles_where_it_runs(corpus_like):
    """Dask may move a loosely placed task off its worker (gone, or work stealing to an idle worker):
    its tiles still stay in the process that runs it."""
    workers, _, _, (task_worker, tile_workers, local) = corpus_like
    assert task_worker in workers and tile_workers == [task_worker] and local


def test_an_unbound_task_computes_on_the_cluster(corpus_like):
    workers, _, (task_worker, tile_workers, local), _ = corpus_like
    assert task_worker in workers
    assert not local
    assert set(tile_workers) <= set(workers)


@task
def plain_compute(n_tiles: int, kept: bool) -> tuple[str, list[str], bool]:
    """The task's worker, the workers its dask tiles ran on (a plain ``dask.compute``, outside
    ``cluster_compute``) and whether the task seceded from its worker's pool meanwhile."""
    from distributed import get_worker
    from distributed.worker import thread_state

    from tasks.runtime import kept_on_worker

    with kept_on_worker() if kept else contextlib.nullcontext():
        tiles = dask.compute(*[dask.delayed(_address, pure=False)(k) for k in range(n_tiles)])
    worker = get_worker()
    seceded = thread_state.key in {ts.key for ts in worker.state.long_running}
    return worker.address, sorted(set(tiles)), seceded


@flow
@runs_on_cluster(lambda arguments: ExecutionParams(scheduler_address="tcp://127.0.0.1:1"))  # unused when bound
def plain_item_flow(n_tiles: int, kept: bool) -> tuple[str, list[str], bool]:
    return plain_compute.submit(n_tiles, kept).result()


@flow
def plain_compute_flow():
    with dask_cluster(ExecutionParams(n_workers=2, threads_per_worker=1, processes=True)) as runner:
        worker = worker_addresses(runner)[0]
        with corpus_cluster(runner), on_worker(worker):
            return worker, plain_item_flow(12, True), plain_item_flow(12, False)


def test_a_bound_item_keeps_even_its_plain_computations_on_its_worker(prefect_harness):
    """Inside ``kept_on_worker`` (a corpus item's stages) a computation outside ``cluster_compute``
    stays in the worker and does not secede, so a one-thread worker never starts a queued item
    beside a running one; without it the same computation goes to the cluster and secedes."""
    worker, (kept_worker, kept_tiles, kept_seceded), (_, _, free_seceded) = plain_compute_flow()
    assert kept_worker == worker and kept_tiles == [worker] and not kept_seceded
    assert free_seceded, "the control: a plain compute on a worker thread goes through the cluster's client"


def _strided_sum(values, offset, k):
    from distributed import get_worker

    return float(values[k::4].sum()) + offset, get_worker().address


@task
def shared_input_sums(scatter: bool) -> tuple[list[float], list[str], list[str]]:
    """Four tiles of one graph that share a 16 MB array (Dask warns above 10 MB): their sums, the
    workers they ran on, and the warnings the graph's submission raised.  With ``scatter`` the array
    goes through :func:`tasks.runtime.shared_inputs`, else it is one key inside the graph."""
    import warnings

    import numpy as np

    from tasks.runtime import shared_inputs

    values = np.arange(2_000_000, dtype=np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cluster_compute() as client:
            assert client is not None, "an unbound task on a worker computes on the cluster"
            shared = shared_inputs(client, (values, 1.0)) if scatter else shared_inputs(None, (values, 1.0))
            parts = dask.compute(*[dask.delayed(_strided_sum, pure=True)(*shared, k) for k in range(4)])
    return [p[0] for p in parts], sorted({p[1] for p in parts}), [str(w.message) for w in caught]


@flow
def shared_inputs_flow():
    with dask_cluster(ExecutionParams(n_workers=2, threads_per_worker=1, processes=True)) as runner:
        with tasks_on(runner):
            return shared_input_sums.submit(True).result(), shared_input_sums.submit(False).result()


def test_inputs_shared_by_a_graphs_tasks_reach_the_cluster_without_a_large_graph(prefect_harness):
    """``shared_inputs`` scatters the inputs that every tile takes (the depth stage's grey neighbours,
    about 90 MB at 640x360x100): the tiles compute the same numbers as with the inputs inside the
    graph, and Dask no longer warns of a large graph, as it does for the same inputs inside it."""
    import numpy as np

    (sums, workers, warned), (graph_sums, _, graph_warned) = shared_inputs_flow()
    values = np.arange(2_000_000, dtype=np.float64)
    assert sums == graph_sums == [float(values[k::4].sum()) + 1.0 for k in range(4)]
    assert workers, "the tiles ran on the cluster's workers"
    assert not [w for w in warned if "large graph" in w]
    assert [w for w in graph_warned if "large graph" in w], "the control: the same inputs inside the graph"


def test_on_worker_outside_a_corpus_changes_nothing():
    with on_worker("tcp://127.0.0.1:9") as runner:
        assert runner is None


def test_largest_items_first_ties_in_manifest_order():
    def plan(name, start, end):
        return ItemPlan(item_id=name, source=f"{name}.mp4", shot=0, start_frame=start, end_frame=end,
                        reference_frame=start)

    plans = [plan("a", 0, 50), plan("b", 10, 110), plan("c", 0, 50), plan("d", 0, 300)]
    assert [p.item_id for p in largest_first(plans)] == ["d", "b", "a", "c"]


def test_items_go_to_the_worker_with_the_least_outstanding_work():
    """Six equal items, two one-thread workers, two in flight per worker: three items each, whatever
    order they end in; unequal items: the next goes where the fewest frames are still to do."""
    with dask_cluster(ExecutionParams(n_workers=2, threads_per_worker=1)) as runner:
        a, b = worker_addresses(runner)
        chooser = _WorkerChooser(runner, enabled=True)
        placed = [chooser.take(72) for _ in range(4)]
        assert [w for w, _ in placed] == [a, b, a, b]
        # an item bound to a one-thread worker waits behind the one before it: each worker's first ends first
        chooser.give_back(*placed[0])
        fifth = chooser.take(72)
        chooser.give_back(*placed[1])
        sixth = chooser.take(72)
        assert (fifth[0], sixth[0]) == (a, b), "the batch's last items do not pile up on one worker"
        chooser.give_back(*placed[3])  # b's second item ended before a's: a still has two to do, b one
        assert chooser.take(72)[0] == b
        assert chooser.take(1)[0] is not None and not _WorkerChooser(runner, enabled=False).take(5)[0]

        chooser = _WorkerChooser(runner, enabled=True)
        sizes = [100, 60, 50, 40]
        assert [chooser.take(n)[0] for n in sizes] == [a, b, b, a]  # 100 | 60+50 -> 140 | 110


def test_an_inline_stage_is_retried_as_its_task_would_be():
    calls = []

    @task(retries=1, retry_delay_seconds=0, retry_condition_fn=retry_on_io_only)
    def flaky(kind: type[Exception]) -> int:
        calls.append(kind)
        if len(calls) == 1:
            raise kind("first try fails")
        return len(calls)

    log = logging.getLogger("test")
    assert call_with_retries(flaky, (OSError,), log) == 2  # I/O: retried
    calls.clear()
    with pytest.raises(VideoError):
        call_with_retries(flaky, (VideoError,), log)  # bad input: not retried
    assert calls == [VideoError]


@task
def stage_work(x: int) -> int:
    return 2 * x


@task(task_run_name="stages of demo")
def two_inline_stages(store: str) -> tuple[list[int], list[str]]:
    run = StageRunner(store, inline=True)
    return [run(stage, stage_work, k, resumable=False) for k, stage in enumerate(("ingest", "render"))], run.skipped


@flow
def inline_stages_flow(store: str):
    return two_inline_stages.submit(store).result()


def test_inline_stages_say_in_their_task_runs_log_which_stage_runs(prefect_harness, tmp_path, caplog):
    """One task run for several stages: its log (shown by the UI under the task run) names each stage."""
    caplog.set_level(logging.INFO, logger="prefect.task_runs")
    values, skipped = inline_stages_flow(str(tmp_path / "store.zarr"))
    assert values == [0, 2] and skipped == []
    lines = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    assert lines[0] == "stage ingest started" and lines[2] == "stage render started", lines
    assert lines[1].startswith("stage ingest finished in ") and lines[3].startswith("stage render finished in ")
    assert all(getattr(r, "task_run_name", None) == "stages of demo" for r in caplog.records if r.name == "prefect.task_runs")


def test_a_cluster_started_in_the_background_is_usable_and_its_failure_is_raised():
    """``starting_cluster`` lets the caller work while the cluster starts; ``started()`` gives the
    running cluster, and a cluster that cannot start raises -- from ``started()`` and, when the
    block never asked, when the block ends."""
    from flows.execution import starting_cluster

    with starting_cluster(ExecutionParams(n_workers=1, threads_per_worker=1, processes=False)) as started:
        runner = started()
        assert runner.client.submit(sum, [1, 2, 3]).result() == 6
    bad = ExecutionParams(cluster_class="tests.flows.test_execution.NoSuchCluster")
    with pytest.raises(Exception, match="NoSuchCluster"):
        with starting_cluster(bad) as started:
            started()
    with pytest.raises(Exception, match="NoSuchCluster"):
        with starting_cluster(bad):
            pass


def test_a_flow_run_sends_its_heartbeats_and_its_end_does_not_wait_for_the_next_one(prefect_harness):
    """Heartbeats on (every 30 s): the run sends Prefect's heartbeat event, and its end waits for
    no sleeping heartbeat thread (Prefect's own slept in 1-s steps: 0-1 s more per flow run)."""
    import time

    from prefect import flow_engine, get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.execution import _heartbeats_that_stop_at_once

    assert flow_engine._send_heartbeats is _heartbeats_that_stop_at_once
    ended: list[float] = []

    @flow
    def short() -> str:
        from prefect.runtime import flow_run

        ended.append(time.perf_counter())
        return flow_run.id

    waits, ids = [], []
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        for _ in range(3):
            ids.append(short())
            waits.append(time.perf_counter() - ended[-1])
    assert max(waits) < 0.6, waits  # state Completed and the engine's exit; no heartbeat sleep
    events = []
    with get_client(sync_client=True) as client:
        for _ in range(40):  # events reach the server asynchronously
            events = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                    resource=EventResourceFilter(id=[f"prefect.flow-run.{i}" for i in ids]),
                ),
                limit=50,
            ).events
            if len(events) >= len(ids):
                break
            time.sleep(0.25)
    assert {e.resource.id for e in events} == {f"prefect.flow-run.{i}" for i in ids}


@task
def page_advice_here() -> tuple[bool, int]:
    import os

    from numpy._core import multiarray

    return multiarray._get_madvise_hugepage(), os.getpid()


@flow
@runs_on_cluster(lambda arguments: ExecutionParams(n_workers=1, threads_per_worker=1, processes=True))
def page_advice_flow() -> tuple[bool, tuple[bool, int]]:
    from numpy._core import multiarray

    return multiarray._get_madvise_hugepage(), page_advice_here.submit().result()


def test_a_flow_runs_without_numpys_huge_page_advice_in_its_process_and_its_workers(prefect_harness):
    """``ExecutionParams.numpy_huge_pages`` (False by default) holds in the flow's process while the
    flow runs and in its local worker processes (which fork from a process that imported NumPy with
    the advice on); the test process gets its earlier setting back."""
    import os

    from numpy._core import multiarray

    earlier = multiarray._set_madvise_hugepage(True)
    try:
        in_flow, (in_worker, worker_pid) = page_advice_flow()
        assert worker_pid != os.getpid()
        assert in_flow is False and in_worker is False
        assert multiarray._get_madvise_hugepage() is True
    finally:
        multiarray._set_madvise_hugepage(earlier)


def test_local_worker_processes_report_to_this_process_prefect_api(prefect_harness):
    """Worker processes get this process's API (here the test harness's server, which exists only in
    a settings context, not in the environment), so none of them starts a temporary Prefect server
    of its own; the cluster start in a background thread sees the same settings."""
    from prefect.settings import PREFECT_API_URL

    from flows.execution import local_cluster_kwargs, prefect_api_for_workers, starting_cluster

    url = PREFECT_API_URL.value()
    assert url and "PREFECT_API_URL" not in os.environ  # the situation this is for
    assert prefect_api_for_workers() == url
    assert local_cluster_kwargs(ExecutionParams(n_workers=1, processes=True))["env"]["PREFECT_API_URL"] == url
    assert "env" not in local_cluster_kwargs(ExecutionParams(n_workers=1, processes=False))
    with starting_cluster(ExecutionParams(n_workers=1, threads_per_worker=1, processes=True)) as started:
        runner = started()
        seen = runner.client.run(lambda: os.environ.get("PREFECT_API_URL"))
    assert list(seen.values()) == [url]


@task
def setting_on_worker() -> tuple[str, int]:
    from prefect.settings import PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS

    return str(PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS.value()), os.getpid()


@flow
@runs_on_cluster(lambda arguments: ExecutionParams(n_workers=1, threads_per_worker=1, processes=True))
def settings_flow() -> dict:
    from prefect.context import SettingsContext, serialize_context
    from prefect.settings import PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS, temporary_settings

    from flows.execution import SettingsSentOnce

    out = {"current": type(SettingsContext.get()), "same": serialize_context()["settings_context"]
           is serialize_context()["settings_context"]}
    out["before"] = [setting_on_worker.submit().result() for _ in range(2)]
    with temporary_settings({PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS: 7}):
        out["changed"] = setting_on_worker.submit().result()
    out["after"] = setting_on_worker.submit().result()
    out["sent_once"] = SettingsSentOnce
    return out


def test_settings_go_to_the_workers_serialized_once_and_changed_settings_anew(prefect_harness):
    """Inside a flow body's tasks_on block the settings sent with every task are serialized once
    (the same object each time), the worker runs each task with the flow's settings, and settings
    changed for part of the block reach the worker with the tasks submitted under them."""
    out = settings_flow()
    assert out["current"] is out["sent_once"] and out["same"]
    (before1, pid), (before2, pid2) = out["before"]
    assert pid != os.getpid() and pid2 == pid
    assert before1 == before2 == out["after"][0] != "7"
    assert out["changed"][0] == "7"


def test_prefect_api_clients_share_one_ssl_context_per_ca_file(prefect_harness, tmp_path):
    """Every Prefect API client made in this process uses the same verified SSL context for the same
    CA file (made once, not per client), the clients still reach the API, a changed CA file gets a
    context of its own, and the unverified form (insecure setting) stays per client and unshared."""
    import shutil
    import ssl
    import time

    import certifi
    from prefect import get_client
    from prefect.client import orchestration
    from prefect.settings import (
        PREFECT_API_SSL_CERT_FILE,
        PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
        temporary_settings,
    )

    from flows.execution import _SslWithSharedContexts, install_shared_ssl_contexts

    def context_of(client) -> ssl.SSLContext:
        return client._client._transport._pool._ssl_context

    assert install_shared_ssl_contexts() and isinstance(orchestration.ssl, _SslWithSharedContexts)
    with get_client(sync_client=True) as a, get_client(sync_client=True) as b:
        assert a is not b and context_of(a) is context_of(b)
        assert context_of(a).verify_mode == ssl.CERT_REQUIRED
        assert a.api_healthcheck() is None and b.api_healthcheck() is None  # None: the API answered
    bundle = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), bundle)
    with temporary_settings({PREFECT_API_SSL_CERT_FILE: str(bundle)}):
        with get_client(sync_client=True) as c, get_client(sync_client=True) as d:
            first = context_of(c)
            assert context_of(d) is first and first is not context_of(a)
        time.sleep(0.01)
        bundle.write_bytes(bundle.read_bytes())  # a new modification time: the file may have changed
        with get_client(sync_client=True) as e:
            assert context_of(e) is not first
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        with get_client(sync_client=True) as f, get_client(sync_client=True) as g:
            assert context_of(f) is not context_of(g)
            assert context_of(f).verify_mode == ssl.CERT_NONE
    assert context_of(a).verify_mode == ssl.CERT_REQUIRED and context_of(a).check_hostname


def _thread_pools() -> dict:
    """What a worker process's thread pools are sized to, after a Zarr write and read in it."""
    import tempfile

    import cv2
    import numpy as np
    import zarr
    from threadpoolctl import threadpool_info
    from zarr.core import sync as zarr_sync

    with tempfile.TemporaryDirectory() as folder:
        z = zarr.create_array(f"{folder}/a.zarr", shape=(64, 64), chunks=(8, 8), dtype="u1", zarr_format=3)
        z[...] = np.arange(64 * 64).reshape(64, 64) % 251
        same = bool((z[...] == np.arange(64 * 64).reshape(64, 64) % 251).all())
    return {
        "opencv": cv2.getNumThreads(),
        "blas": sorted({p["num_threads"] for p in threadpool_info()}),
        "zarr_config": zarr.config.get("threading.max_workers"),
        "zarr_pool": zarr_sync._executor._max_workers if zarr_sync._executor else None,
        "zarr_ok": same,
    }


def test_worker_processes_size_opencv_blas_and_zarr_pools_to_their_threads():
    """The PinnedThreads plugin in a local worker process of one thread: OpenCV, every BLAS/OpenMP
    pool and Zarr's codec pool (made on the worker's first Zarr use) have one thread, and Zarr
    still writes and reads; the flow's own process keeps its own sizes."""
    import zarr

    before = zarr.config.get("threading.max_workers")
    with dask_cluster(ExecutionParams(n_workers=1, threads_per_worker=1, processes=True)) as runner:
        (pools,) = runner.client.run(_thread_pools).values()
    assert pools == {"opencv": 1, "blas": [1], "zarr_config": 1, "zarr_pool": 1, "zarr_ok": True}
    assert zarr.config.get("threading.max_workers") == before


def _nested_abc_checks_building_settings() -> int:
    """How many ``collections.abc`` subclass checks building Prefect's settings makes inside another
    one: each is a cache miss walking a class's subclasses (none when the caches are warm)."""
    import abc
    import sys

    from prefect.settings import Settings

    code = abc.ABCMeta.__subclasscheck__.__code__
    nested = 0

    def count(frame, event, arg):
        nonlocal nested
        if event == "call" and frame.f_code is code and frame.f_back is not None and frame.f_back.f_code is code:
            nested += 1

    sys.setprofile(count)
    try:
        Settings()
    finally:
        sys.setprofile(None)
    return nested


COLD_SETTINGS = textwrap.dedent(
    """
    import flows.make_cinemagraph, flows.process_corpus  # the worker modules, nothing built after them
    from tests.flows.test_execution import _nested_abc_checks_building_settings
    print(_nested_abc_checks_building_settings())
    """
)


def test_local_workers_build_prefects_settings_with_warm_caches():
    """A task run on a worker starts by building Prefect's settings (``hydrated_context``).  After the
    project's imports that re-derives pydantic-settings' type checks (about a second of CPU in the first
    task run of each fresh worker); the forkserver builds them once (flows.worker_warmup), so a forked
    worker starts warm.  The control, a fresh interpreter with the same imports, shows the cold case."""
    cold = subprocess.run([sys.executable, "-c", COLD_SETTINGS], capture_output=True, text=True, timeout=240)
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert int(cold.stdout.split()[-1]) > 100
    with dask_cluster(ExecutionParams(n_workers=1, threads_per_worker=1, processes=True)) as runner:
        (nested,) = runner.client.run(_nested_abc_checks_building_settings).values()
    assert nested == 0


def _shared_ssl_contexts() -> tuple[int, bool]:
    """How many SSL contexts this process's Prefect clients share already, and whether the API version
    check uses the same sharing."""
    from prefect._internal import version_checking
    from prefect.client import orchestration

    return len(orchestration.ssl._made), version_checking.ssl is orchestration.ssl


def test_local_workers_start_with_the_api_clients_ssl_context():
    """A fresh worker's first task run makes a Prefect API client, whose SSL context loads the whole CA
    bundle; the forkserver makes it once (flows.worker_warmup), so a forked worker has it before any task
    has run, and its API version check shares it.  The control, a fresh interpreter importing the worker
    modules, has none yet."""
    cold = subprocess.run(
        [sys.executable, "-c", "import flows.make_cinemagraph, flows.process_corpus\n"
         "from tests.flows.test_execution import _shared_ssl_contexts\nprint(*_shared_ssl_contexts())"],
        capture_output=True, text=True, timeout=240,
    )
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert cold.stdout.split()[-2:] == ["0", "True"]
    with dask_cluster(ExecutionParams(n_workers=1, threads_per_worker=1, processes=True)) as runner:
        (warm,) = runner.client.run(_shared_ssl_contexts).values()
    assert warm == (1, True)
