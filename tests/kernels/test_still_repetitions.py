"""The bounded-slope path kernel and the self-similarity matrix against slow references."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.still.repetitions import min_cost_path, reflect_indices, self_similarity
from tests.kernels.naive_still import _runs_ok, naive_min_cost_path, naive_self_similarity


@pytest.mark.parametrize("seed", range(40))
def test_path_equals_enumeration_on_random_matrices(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 7, 2)
    cost = rng.random((n, m))
    if seed % 3 == 0:  # forbidden cells
        cost[rng.random((n, m)) < 0.2] = np.inf
    si, sj = rng.integers(0, n), rng.integers(0, m)
    ei, ej = rng.integers(si, n), rng.integers(sj, m)
    cost[si, sj] = rng.random()
    max_run = 2 if seed % 4 else 3
    total, path = min_cost_path(cost, (si, sj), (ei, ej), max_run=max_run)
    ref_total, ref_path = naive_min_cost_path(cost.tolist(), (si, sj), (ei, ej), max_run=max_run)
    if np.isinf(ref_total):
        assert np.isinf(total) and path.shape == (0, 2)
        return
    assert total == pytest.approx(ref_total, rel=1e-12, abs=1e-12)
    assert [tuple(p) for p in path.tolist()] == ref_path


def test_bounded_slope_is_enforced_where_the_free_path_would_run_flat():
    # cheap cells along row 0 tempt a long horizontal run; with max_run=2 it is impossible
    cost = np.full((4, 8), 10.0)
    cost[0, :] = 0.0
    cost[:, 7] = 0.0
    total, path = min_cost_path(cost, (0, 0), (3, 7), max_run=2)
    ref_total, ref_path = naive_min_cost_path(cost.tolist(), (0, 0), (3, 7), max_run=2)
    assert total == pytest.approx(ref_total)
    assert _runs_ok([tuple(p) for p in path.tolist()], 2)
    # unconstrained (a run as long as the matrix) the flat route is free
    free_total, free_path = min_cost_path(cost, (0, 0), (3, 7), max_run=8)
    assert free_total == 0.0 and free_total < total
    rows = [i for i, _ in free_path.tolist()]
    assert rows.count(0) >= 7  # a flat run the constrained path cannot take


def test_unreachable_end_and_bad_arguments():
    cost = np.ones((3, 3))
    cost[1, :] = np.inf
    total, path = min_cost_path(cost, (0, 0), (2, 2))
    assert np.isinf(total) and path.shape == (0, 2)
    with pytest.raises(ValueError, match="above or left"):
        min_cost_path(np.ones((3, 3)), (2, 2), (0, 0))
    with pytest.raises(ValueError, match="max_run"):
        min_cost_path(np.ones((3, 3)), (0, 0), (2, 2), max_run=1)
    with pytest.raises(ValueError, match="outside"):
        min_cost_path(np.ones((3, 3)), (0, 0), (3, 3))
    with pytest.raises(ValueError, match="NaN"):
        min_cost_path(np.full((2, 2), np.nan), (0, 0), (1, 1))


def test_single_cell_and_single_row():
    assert min_cost_path(np.array([[2.5]]), (0, 0), (0, 0))[0] == 2.5
    total, path = min_cost_path(np.ones((1, 3)), (0, 0), (0, 2))
    assert np.isinf(total)  # three entries on one row
    total, path = min_cost_path(np.ones((1, 2)), (0, 0), (0, 1))
    assert total == 2.0


def test_self_similarity_and_reflection():
    rng = np.random.default_rng(3)
    cols = rng.random((7, 4))
    np.testing.assert_allclose(self_similarity(cols), naive_self_similarity(cols.tolist()), atol=1e-7)
    idx = reflect_indices(5, 3)
    assert idx.tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    np.testing.assert_array_equal(np.arange(5)[idx], np.pad(np.arange(5), 3, mode="reflect"))
