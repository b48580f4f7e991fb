"""kernels._jit: the shared Numba options and the runtime-free helpers (jit_leaf)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from kernels._jit import JIT_OPTIONS, jit_leaf

# the same options, uncached, so that the compiled code can be inspected
_LEAF = numba.njit(**dict(JIT_OPTIONS, cache=False), _nrt=False)
_FULL = numba.njit(**dict(JIT_OPTIONS, cache=False))


def _first_above(values, limit):
    for i in range(values.shape[0]):
        if values[i] > limit and values[i] != 7:  # two branches, as in the merge's helpers
            return i
    return -1


def test_leaf_helpers_do_not_count_references_to_their_array_arguments():
    values = np.array([1.0, 3.0, 7.0, 9.0])
    leaf, full = _LEAF(_first_above), _FULL(_first_above)
    assert leaf(values, 2.0) == full(values, 2.0) == _first_above(values, 2.0) == 1
    assert leaf(values, 8.0) == _first_above(values, 8.0) == 3
    assert leaf(values, 10.0) == -1

    def counts(dispatcher):
        ir = dispatcher.inspect_llvm(dispatcher.signatures[0])
        return ir.count("@NRT_incref("), ir.count("@NRT_decref(")

    assert counts(leaf) == (0, 0)
    # the bookkeeping the leaf drops: the runtime's version counts references on entry and exit
    assert sum(counts(full)) > 0


def test_a_leaf_helper_cannot_make_an_array():
    def makes_an_array(n):
        return np.zeros(n)

    with pytest.raises(numba.core.errors.TypingError):
        _LEAF(makes_an_array)(3)
    assert _FULL(makes_an_array)(3).tolist() == [0.0, 0.0, 0.0]


def test_merge_helpers_are_leaves():
    assert jit_leaf(_first_above).targetoptions.get("_nrt") is False

    from kernels import binary_patterns, segmentation

    for module, names in (
        (segmentation, ("_find", "_push", "_sift_down", "_is_valid", "_file_record", "_distance_cached", "_moments")),
        (binary_patterns, ("_descriptor_from_sums", "_hamming_one")),
    ):
        for name in names:
            assert getattr(module, name).targetoptions.get("_nrt") is False, f"{module.__name__}.{name}"


def test_perf_map_names_the_compiled_kernels(tmp_path):
    import importlib.util
    from pathlib import Path

    from kernels import segmentation

    spec = importlib.util.spec_from_file_location(
        "perf_map", Path(__file__).resolve().parents[2] / "benchmarks" / "perf_map.py"
    )
    perf_map = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(perf_map)
    segmentation.srgb_to_lab(np.zeros((2, 3), np.uint8))  # compiles segmentation._lab_many
    path = perf_map.write_perf_map(("kernels",), tmp_path / "perf.map")
    entries = {}
    for line in path.read_text().splitlines():
        start, size, name = line.split()
        entries[name] = (int(start, 16), int(size, 16))
    assert "kernels.segmentation._lab_many" in entries
    start, size = entries["kernels.segmentation._lab_many"]
    executable = []
    with open("/proc/self/maps") as f:
        for row in f:
            span, perms = row.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if "x" in perms:
                executable.append((lo, hi))
    # the entry is machine code: it starts in an executable mapping and does not run past it
    assert any(lo <= start and start + size <= hi for lo, hi in executable)
    assert size > 0
