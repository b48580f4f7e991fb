"""Item leases: one run at a time writes an item, and a dead run's items are taken over.

A lease is the file ``<item folder>/.lease`` naming its holder: the Prefect flow run and task
run that hold it, their host and process, and when the holder last renewed it.  The holder
renews it every ``timeout / 4`` seconds from a background thread while the item runs.  Another
run may take the lease over when it is stale:

- its holder's flow run is no longer Running (Crashed, Failed, Cancelled, Completed ...),
  as the Prefect API reports it;
- or its holder's process on this host is gone;
- or it was not renewed for ``timeout`` seconds (a holder on another host whose machine died).

Otherwise the item is in progress elsewhere and :class:`ItemLocked` says by which run.  All
reads and writes of the lease happen under an ``flock`` on ``.lease.guard``, so two runs that
find the same stale lease cannot both take it.  :func:`crash_abandoned_runs` marks a taken-over
holder's runs Crashed when Prefect still shows them Running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import StateType

LEASE_NAME = ".lease"
GUARD_NAME = ".lease.guard"
#: Flow-run states in which a holder may still be working on its items.
LIVE_STATES = {StateType.RUNNING.value, StateType.PENDING.value}


class ItemLocked(RuntimeError):
    """Another live run holds the item."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def flow_run_state(flow_run_id: str | None) -> str | None:
    """The state type (``RUNNING``, ``CRASHED`` ...) of a flow run, or None when it cannot be read."""
    if not flow_run_id:
        return None
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(uuid.UUID(str(flow_run_id)))
        return run.state.type.value if run.state else None
    except Exception:
        return None


def current_run_ids() -> tuple[str | None, str | None]:
    """(flow run id, task run id) of the Prefect task or flow run this code runs in, else Nones."""
    from prefect.context import FlowRunContext, TaskRunContext

    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return str(task_ctx.task_run.flow_run_id), str(task_ctx.task_run.id)
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return str(flow_ctx.flow_run.id), None
    return None, None


class ItemLease:
    """``with ItemLease(folder) as lease:`` -- hold ``folder/.lease`` while working on the item.

    Parameters
    ----------
    folder : path
        The item's folder (created if missing).
    timeout : float
        Seconds without renewal after which the lease is stale (s).  Renewed every timeout / 4.
    run_state : callable, optional
        ``flow_run_id -> state type or None``; default :func:`flow_run_state` (the Prefect API).

    After entering, ``lease.taken_over`` is the stale holder it replaced (a dict) or None, and
    ``lease.stale_reason`` says why that holder was stale.
    """

    def __init__(self, folder: str | Path, timeout: float = 300.0, run_state=flow_run_state):
        self.folder = Path(folder)
        self.path = self.folder / LEASE_NAME
        self.guard = self.folder / GUARD_NAME
        self.timeout = float(timeout)
        self.run_state = run_state
        flow_run_id, task_run_id = current_run_ids()
        self.owner: dict[str, Any] = {
            "token": uuid.uuid4().hex,
            "flow_run_id": flow_run_id,
            "task_run_id": task_run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.time(),
            "renewed": time.time(),
            "timeout": self.timeout,
        }
        self.taken_over: dict[str, Any] | None = None
        self.stale_reason: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def _guarded(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.guard, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _write(self) -> None:
        tmp = self.path.with_name(f"{LEASE_NAME}.{self.owner['token']}")
        tmp.write_text(json.dumps(self.owner))
        os.replace(tmp, self.path)

    def stale(self, holder: dict[str, Any] | None) -> str | None:
        """Why ``holder``'s lease may be taken over, or None while it is live."""
        if holder is None:
            return "no readable lease"
        age = time.time() - float(holder.get("renewed", 0))
        if age > float(holder.get("timeout", self.timeout)):
            return f"not renewed for {age:.0f} s"
        if holder.get("host") == self.owner["host"] and not _alive(int(holder.get("pid", -1))):
            return f"its process {holder.get('pid')} is gone"
        state = self.run_state(holder.get("flow_run_id"))
        if state is not None and state not in LIVE_STATES:
            return f"its flow run {holder.get('flow_run_id')} is {state.title()}"
        return None

    def acquire(self) -> None:
        with self._guarded():
            holder = self.holder()
            if holder is not None:
                reason = self.stale(holder)
                if reason is None:
                    run = holder.get("flow_run_id") or "an unknown run"
                    raise ItemLocked(
                        f"{self.folder}: in progress in flow run {run} (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, renewed {time.time() - float(holder.get('renewed', 0)):.0f} s ago)"
                    )
                if self.path.exists():
                    self.taken_over, self.stale_reason = holder, reason
            self.owner["renewed"] = time.time()
            self._write()

    def renew(self) -> bool:
        """Renew the lease; False (and ``lost``) when another run has taken it over meanwhile."""
        with self._guarded():
            holder = self.holder()
            if holder is None or holder.get("token") != self.owner["token"]:
                self.lost = True
                return False
            self.owner["renewed"] = time.time()
            self._write()
            return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._guarded():
            holder = self.holder()
            if holder is not None and holder.get("token") == self.owner["token"]:
                self.path.unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.timeout / 4):
            try:
                if not self.renew():
                    return
            except OSError:
                continue

    def __enter__(self) -> ItemLease:
        self.acquire()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease {self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def crash_abandoned_runs(holder: dict[str, Any], reason: str) -> list[str]:
    """Mark the runs of a taken-over lease Crashed where Prefect still shows them live.

    A stale lease means the holder's flow run died (or Prefect already says it is over): that
    flow run, its subflow runs (item runs run in its process) and the task runs of all of them
    that are still Running or Pending.  Returns the ids marked; API errors are ignored.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.states import Crashed

    if not holder.get("flow_run_id"):
        return []
    live = [StateType.RUNNING, StateType.PENDING]
    message = f"Process died while running ({reason}); marked Crashed when its item lease was taken over."
    holder_id = uuid.UUID(holder["flow_run_id"])
    marked: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            runs = [
                run.id
                for run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[holder_id]))
                )
            ] + [holder_id]
            for task_run in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=live))),
            ):
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
                marked.append(str(task_run.id))
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=runs), state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))
                )
            ):
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                marked.append(str(run.id))
    except Exception:
        return marked
    return marked
