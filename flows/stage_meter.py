"""Wall time, CPU time and peak memory of each stage of a flow run (``result.json``'s ``usage``).

Prefect tasks run on Dask worker threads -- in the flow's own process with the local default
cluster (``processes=False``), in child processes when ``ExecutionParams.processes`` is set -- so
the CPU time of one stage is the change of the *process* CPU time (user + system, all threads) of
the flow's process and of its child processes between the start and the end of the stage.  The
flow runs its stages one after another, so nothing else of the run is counted in a stage.  Peak
memory: on Linux, writing ``5`` to ``/proc/<pid>/clear_refs`` resets a process's peak resident
size (``VmHWM`` in ``/proc/<pid>/status``) to its current size, so the peak read when the stage
ends is the stage's own; it is summed over the processes.  Work done on a remote Dask cluster is
not seen (the figures then describe the flow's process only).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psutil

from schemas.results import StageUsage

__all__ = ["StageMeter"]


def _processes() -> list[psutil.Process]:
    me = psutil.Process()
    try:
        return [me, *me.children(recursive=True)]
    except psutil.Error:
        return [me]


def _cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def _reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")


def _peak_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class StageMeter:
    """Collects a :class:`~schemas.results.StageUsage` per stage name.

    Examples
    --------
    >>> meter = StageMeter()
    >>> with meter.measure("sum"):
    ...     _ = sum(range(1000))
    >>> meter.usage["sum"].wall_s >= 0
    True
    """

    def __init__(self) -> None:
        self.usage: dict[str, StageUsage] = {}

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        procs = _processes()
        for p in procs:
            _reset_peak(p.pid)
        cpu0 = _cpu_seconds(procs)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - t0
            procs = _processes()  # a child started during the stage counts from zero
            cpu1 = _cpu_seconds(procs)
            cpu = sum(v - cpu0.get(pid, 0.0) for pid, v in cpu1.items())
            peak = sum(_peak_bytes(p.pid) for p in procs)
            self.usage[stage] = StageUsage(
                wall_s=round(wall, 3), cpu_s=round(max(cpu, 0.0), 3), peak_rss_mb=round(peak / 2**20, 1)
            )
