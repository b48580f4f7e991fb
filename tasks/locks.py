"""A lock per item, so that two runs over the same manifest never write one item at once."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


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


class ItemLock:
    """``with ItemLock(folder):`` -- an exclusive lock file ``folder/.lock``.

    Created with O_EXCL, so only one process gets it.  A lock left by a process that no
    longer runs on this host (a killed worker) is taken over; one held by a live process, or
    by another host younger than ``stale_after`` seconds, raises :class:`ItemLocked`.
    """

    def __init__(self, folder: str | Path, stale_after: float = 6 * 3600):
        self.path = Path(folder) / ".lock"
        self.stale_after = stale_after
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self, holder: dict | None) -> bool:
        if holder is None:
            return True
        if holder.get("host") == self.owner["host"]:
            return not _alive(int(holder.get("pid", -1)))
        return time.time() - float(holder.get("since", 0)) > self.stale_after

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if self._stale(holder):
                    self.path.unlink(missing_ok=True)
                    continue
                raise ItemLocked(
                    f"{self.path.parent}: being processed by pid {holder.get('pid')} on {holder.get('host')}"
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(self.owner, fh)
            return
        raise ItemLocked(f"{self.path.parent}: could not take the lock")

    def release(self) -> None:
        if self._holder() == self.owner:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> ItemLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
