"""Tests for tasks.threads.thread_budget (a stage's own thread count)."""

from __future__ import annotations

import os

from distributed import Client, LocalCluster

from tasks.threads import thread_budget


def test_plain_call_may_use_every_core():
    assert thread_budget() == (os.cpu_count() or 1)


def test_worker_processes_get_their_own_thread_count_and_in_process_workers_the_machine():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert client.submit(thread_budget, pure=False).result() == 1
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert client.submit(thread_budget, pure=False).result() == (os.cpu_count() or 1)
