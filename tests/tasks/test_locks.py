"""Item leases on real files: who may take an item over, and when."""

import json
import os
import socket
import time

import pytest

from tasks.locks import ItemLease, ItemLocked


def unknown_run(_flow_run_id):
    return None


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def write_lease(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"token": "old", "flow_run_id": "run-a", "task_run_id": None, "host": socket.gethostname(),
              "pid": os.getpid(), "since": time.time(), "renewed": time.time(), "timeout": 60.0, **fields}
    (folder / ".lease").write_text(json.dumps(holder))


def test_a_live_lease_blocks_and_is_released(tmp_path):
    with ItemLease(tmp_path / "item", run_state=unknown_run) as lease:
        assert json.loads((tmp_path / "item" / ".lease").read_text())["token"] == lease.owner["token"]
        with pytest.raises(ItemLocked, match="in progress in flow run"):
            ItemLease(tmp_path / "item", run_state=unknown_run).acquire()
    assert not (tmp_path / "item" / ".lease").exists()


@pytest.mark.parametrize(
    ("fields", "state", "reason"),
    [
        ({"renewed": time.time() - 3600}, "RUNNING", "not renewed for"),  # a dead host's lease
        ({"pid": dead_pid()}, "RUNNING", "is gone"),  # its process died on this host
        ({}, "CRASHED", "is Crashed"),  # Prefect says the holder's run is over
        ({}, "COMPLETED", "is Completed"),
    ],
)
def test_a_stale_lease_is_taken_over(tmp_path, fields, state, reason):
    write_lease(tmp_path / "item", **fields)
    with ItemLease(tmp_path / "item", run_state=lambda run: state) as lease:
        assert lease.taken_over["token"] == "old" and reason in lease.stale_reason
    assert not (tmp_path / "item" / ".lease").exists()


def test_a_running_holder_keeps_its_lease(tmp_path):
    write_lease(tmp_path / "item")
    with pytest.raises(ItemLocked, match="run-a"):
        ItemLease(tmp_path / "item", run_state=lambda run: "RUNNING").acquire()
    assert json.loads((tmp_path / "item" / ".lease").read_text())["token"] == "old"


def test_the_holder_renews_and_notices_a_take_over(tmp_path):
    lease = ItemLease(tmp_path / "item", timeout=5.0, run_state=unknown_run)
    with lease:
        first = json.loads((tmp_path / "item" / ".lease").read_text())["renewed"]
        time.sleep(2.0)  # heartbeat every timeout / 4
        assert json.loads((tmp_path / "item" / ".lease").read_text())["renewed"] > first
        write_lease(tmp_path / "item", token="thief")
        assert not lease.renew() and lease.lost
    # releasing never removes another holder's lease
    assert json.loads((tmp_path / "item" / ".lease").read_text())["token"] == "thief"
