"""Name the Numba kernels in ``perf`` profiles: a perf map of this process's compiled kernels.

``perf`` shows Numba's machine code as ``[JIT] tid N`` with bare addresses.  It reads names for such
code from ``/tmp/perf-<pid>.map`` (lines ``START SIZE NAME``, hexadecimal), which :func:`write_perf_map`
writes from the kernels compiled so far in this process: every compiled signature of every Numba
dispatcher in the loaded modules under ``kernels`` and ``tasks``.

Run ``python benchmarks/perf_map.py --store DIR/out_steady/store.zarr`` (a store kept by
``bench_pipeline.py --clip steady --keep DIR``): it compiles the display stage on a corner of the
store's window, writes the map, prints its pid and then runs the whole window's display stage
``--runs`` times.  Meanwhile, in another shell::

    perf record -F 1999 -a -o perf.data -- sleep 12
    perf report -i perf.data --no-children --sort symbol -g none

Limits: the size of each entry is the distance to the next known kernel (clipped to its memory
mapping), so a kernel's helpers that Numba linked next to it (the ``jit_leaf`` helpers of the
segmentation's merge, for example) count as that kernel; ``perf`` must run while the process is alive
or read the map file afterwards (it is left in ``/tmp``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mappings() -> list[tuple[int, int]]:
    spans = []
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            spans.append((lo, hi))
    return spans


def kernel_addresses(prefixes: tuple[str, ...] = ("kernels", "tasks")) -> list[tuple[int, str]]:
    """(entry address, ``module.function``) of every compiled signature of the Numba dispatchers in the
    loaded modules whose names start with one of ``prefixes``, sorted by address."""
    from numba.core.registry import CPUDispatcher

    found = set()
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(prefixes):
            continue
        for name, obj in list(vars(module).items()):
            if not isinstance(obj, CPUDispatcher):
                continue
            for compiled in obj.overloads.values():
                address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
                if address:
                    found.add((address, f"{module_name}.{name}"))
    return sorted(found)


def write_perf_map(prefixes: tuple[str, ...] = ("kernels", "tasks"), path: str | os.PathLike | None = None) -> Path:
    """Write the perf map of :func:`kernel_addresses` (default ``/tmp/perf-<pid>.map``) and return its path."""
    starts = kernel_addresses(prefixes)
    spans = _mappings()
    path = Path(path or f"/tmp/perf-{os.getpid()}.map")
    lines = []
    for i, (address, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else address + (1 << 20)
        for lo, hi in spans:
            if lo <= address < hi:
                end = min(end, hi)
        lines.append(f"{address:x} {end - address:x} {name}\n")
    path.write_text("".join(lines))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="a pipeline store (bench_pipeline.py --keep DIR: DIR/out_steady/store.zarr)")
    ap.add_argument("--runs", type=int, default=8, help="display-stage calls on the whole window (default 8)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from schemas.displays import DisplayParams
    from tasks.displays import detect_displays, load_display_model
    from tasks.store import open_store

    ds = open_store(args.store)
    video, visible = np.asarray(ds["warped"].values), np.asarray(ds["visible"].values)
    params = DisplayParams()
    model, _, _ = load_display_model(params)
    detect_displays(video[:8, :48, :48].copy(), visible[:8, :48, :48].copy(), model, params)  # compile
    path = write_perf_map()
    print(f"pid {os.getpid()}: {len(path.read_text().splitlines())} kernels in {path}; profiling runs follow", flush=True)
    for _ in range(args.runs):
        wall, cpu = time.perf_counter(), time.process_time()
        detect_displays(video, visible, model, params)
        print(f"  display stage: {time.perf_counter() - wall:.3f} s wall, {time.process_time() - cpu:.3f} CPU-s", flush=True)


if __name__ == "__main__":
    main()
