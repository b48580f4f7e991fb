"""Alpha-expansion against brute force, its own invariants, gco-wrapper and PyMaxflow."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import kernels.alpha_expansion as ae
from kernels.alpha_expansion import ExpansionResult, alpha_expansion, grid_energy
from tests.kernels.naive_graphcut import (
    best_expansion_move,
    brute_force_optimum,
    naive_energy,
    pair_cost,
)

FAMILIES = ["potts", "truncated_linear", "truncated_quadratic"]


@numba.njit
def absdiff_cost(p, q, a, b):
    """Pixel-independent callback: |a - b| truncated at 2 (a metric)."""
    d = abs(a - b)
    return 2.0 if d > 2 else float(d)


@numba.njit
def contrast_cost(p, q, a, b, data):
    """Pixel-dependent callback in the style of video loops: label mismatch seen through data."""
    if a == b:
        return 0.0
    return abs(data[a, p] - data[b, p]) + abs(data[a, q] - data[b, q]) + 0.1


def _python_V(kind, truncation=None, matrix=None):
    return lambda p, q, a, b: pair_cost(kind, a, b, truncation, matrix)


def _random_weights(rng, height, width, connectivity):
    weights = {
        "horizontal": rng.random((height, width - 1)) * 2,
        "vertical": rng.random((height - 1, width)) * 2,
    }
    if connectivity == 8:
        weights["diagonal_down_right"] = rng.random((height - 1, width - 1))
        weights["diagonal_down_left"] = rng.random((height - 1, width - 1))
    return weights


def _structured_problem(rng, height, width, n_labels, noise=0.6, scale=100):
    """Integer costs with a piecewise-constant truth (for comparisons with peers)."""
    yy, xx = np.mgrid[0:height, 0:width]
    seeds = rng.uniform(0, 1, (6, 2)) * [height, width]
    region = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2, axis=-1)
    truth = rng.integers(0, n_labels, 6)[region]
    cost = rng.random((height, width, n_labels)) * noise
    cost[yy, xx, truth] *= 0.3
    return np.rint(cost * scale).astype(np.int32)


# ---------------------------------------------------------------- brute force


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("connectivity", [4, 8])
def test_two_labels_is_exact(seed, connectivity):
    rng = np.random.default_rng(seed)
    height, width = (3, 3) if seed % 2 == 0 else (2, 3)
    unary = rng.random((height, width, 2)).astype(np.float32) * 2
    weights = _random_weights(rng, height, width, connectivity)
    kind = FAMILIES[seed % 3]
    result = alpha_expansion(
        unary,
        kind,
        pairwise_weight=0.7,
        truncation=3.0,
        edge_weights=weights,
        connectivity=connectivity,
        tol=0.0,
    )
    best, _ = brute_force_optimum(
        unary, _python_V(kind, 3.0), weight=0.7, connectivity=connectivity, weights=weights
    )
    assert result.energy == pytest.approx(best, rel=1e-5)


@pytest.mark.parametrize("seed", range(10))
def test_potts_within_factor_two_of_optimum(seed):
    rng = np.random.default_rng(100 + seed)
    unary = rng.random((3, 3, 3)).astype(np.float32)
    weight = float(rng.uniform(0.2, 1.0))
    result = alpha_expansion(unary, "potts", pairwise_weight=weight, tol=0.0, label_order="random", seed=seed)
    best, _ = brute_force_optimum(unary, _python_V("potts"), weight=weight)
    assert best - 1e-6 <= result.energy <= 2.0 * best + 1e-6


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["potts", "truncated_linear", "matrix"])
def test_each_move_is_the_optimal_expansion_for_metrics(seed, kind):
    rng = np.random.default_rng(200 + seed)
    n_labels = 5
    unary = rng.random((3, 3, n_labels)).astype(np.float32)
    init = np.argmin(unary, axis=-1)  # a realistic start: moves then trade unary against smoothness
    alpha = int(rng.integers(0, n_labels))
    matrix = None
    pairwise = kind
    if kind == "matrix":  # a random metric: distances between points on a line, scaled
        pts = np.sort(rng.random(n_labels))
        matrix = np.abs(pts[:, None] - pts[None, :]).astype(np.float32) + 0.2 * (
            1 - np.eye(n_labels, dtype=np.float32)
        )
        pairwise = matrix
    result = alpha_expansion(
        unary,
        pairwise,
        pairwise_weight=0.25,
        truncation=2.5,
        init_labels=init,
        label_order=[alpha],
        max_cycles=1,
        tol=0.0,
    )
    best = best_expansion_move(init, alpha, unary, _python_V(kind, 2.5, matrix), weight=0.25)
    assert result.energy == pytest.approx(best, rel=1e-5)
    assert set(np.unique(result.labels)) <= set(np.unique(init)) | {alpha}
    assert np.all((result.labels == init) | (result.labels == alpha))


@pytest.mark.parametrize("seed", range(6))
def test_truncated_moves_never_increase_energy_nonmetric(seed):
    rng = np.random.default_rng(300 + seed)
    unary = rng.random((3, 3, 4)).astype(np.float32) * 3
    init = rng.integers(0, 4, (3, 3))
    alpha = int(rng.integers(0, 4))
    V = _python_V("truncated_quadratic", 5.0)
    start = naive_energy(init, unary, V, weight=1.0)
    result = alpha_expansion(
        unary,
        "truncated_quadratic",
        truncation=5.0,
        init_labels=init,
        label_order=[alpha],
        max_cycles=1,
        tol=0.0,
    )
    best = best_expansion_move(init, alpha, unary, V, weight=1.0)
    assert best - 1e-5 <= result.energy <= start + 1e-5
    assert result.energy == pytest.approx(naive_energy(result.labels, unary, V), rel=1e-6)


# ---------------------------------------------------------------- energy


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("kind", FAMILIES + ["matrix", "callback", "callback_data"])
def test_grid_energy_matches_naive(kind, connectivity):
    rng = np.random.default_rng(5)
    height, width, n_labels = 4, 5, 4
    unary = rng.random((height, width, n_labels)).astype(np.float32)
    labels = rng.integers(0, n_labels, (height, width))
    weights = _random_weights(rng, height, width, connectivity)
    kwargs = dict(pairwise_weight=0.8, edge_weights=weights, connectivity=connectivity)
    if kind in FAMILIES:
        got = grid_energy(labels, unary, kind, truncation=2.0, **kwargs)
        V = _python_V(kind, 2.0)
    elif kind == "matrix":
        matrix = rng.random((n_labels, n_labels)).astype(np.float32)
        got = grid_energy(labels, unary, matrix, **kwargs)
        V = _python_V("matrix", matrix=matrix)
    elif kind == "callback":
        got = grid_energy(labels, unary, absdiff_cost, **kwargs)
        V = _python_V("truncated_linear", 2)
    else:
        data = rng.random((n_labels, height * width))
        got = grid_energy(labels, unary, contrast_cost, pairwise_data=data, **kwargs)
        V = contrast_cost.py_func
        V = (lambda f: lambda p, q, a, b: f(p, q, a, b, data))(V)
    # edge weights are applied in float32 by the solver
    w32 = {k: v.astype(np.float32) * np.float32(0.8) for k, v in weights.items()}
    expected = naive_energy(labels, unary, V, weight=1.0, connectivity=connectivity, weights=w32)
    assert got == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("kind", FAMILIES + ["matrix", "callback", "callback_data"])
def test_energy_never_increases(kind, connectivity):
    rng = np.random.default_rng(11)
    height, width, n_labels = 12, 15, 5
    unary = rng.random((height, width, n_labels)).astype(np.float32)
    kwargs = dict(
        connectivity=connectivity,
        tol=0.0,
        max_cycles=6,
        label_order="random",
        seed=3,
        init_labels=rng.integers(0, n_labels, (height, width)),
    )
    if kind in FAMILIES:
        res = alpha_expansion(unary, kind, truncation=3.0, pairwise_weight=0.3, **kwargs)
        check = grid_energy(
            res.labels, unary, kind, truncation=3.0, pairwise_weight=0.3, connectivity=connectivity
        )
    elif kind == "matrix":  # arbitrary non-metric, non-symmetric
        matrix = rng.random((n_labels, n_labels)).astype(np.float32) * 0.6
        res = alpha_expansion(unary, matrix, **kwargs)
        check = grid_energy(res.labels, unary, matrix, connectivity=connectivity)
    elif kind == "callback":
        res = alpha_expansion(unary, absdiff_cost, pairwise_weight=0.3, **kwargs)
        check = grid_energy(res.labels, unary, absdiff_cost, pairwise_weight=0.3, connectivity=connectivity)
    else:
        data = rng.random((n_labels, height * width)).astype(np.float32)
        res = alpha_expansion(unary, contrast_cost, pairwise_weight=0.3, pairwise_data=data, **kwargs)
        check = grid_energy(
            res.labels,
            unary,
            contrast_cost,
            pairwise_weight=0.3,
            pairwise_data=data,
            connectivity=connectivity,
        )
    energies = np.asarray(res.energies)
    assert isinstance(res, ExpansionResult)
    assert len(energies) == res.n_cycles + 1
    assert np.all(np.diff(energies) <= 0)
    assert energies[-1] < energies[0]  # random init: something must improve
    assert res.energy == pytest.approx(check, rel=1e-9)
    assert res.labels.dtype == np.int32 and res.labels.shape == (height, width)


def test_callback_and_matrix_give_the_same_labels():
    rng = np.random.default_rng(12)
    unary = rng.integers(0, 50, (10, 12, 6)).astype(np.float32)
    lab = np.arange(6)
    matrix = np.minimum(np.abs(lab[:, None] - lab[None, :]), 2).astype(np.float32)
    a = alpha_expansion(unary, absdiff_cost, pairwise_weight=7.0, tol=0.0)
    b = alpha_expansion(unary, matrix, pairwise_weight=7.0, tol=0.0)
    c = alpha_expansion(unary, "truncated_linear", truncation=2, pairwise_weight=7.0, tol=0.0)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(b.labels, c.labels)
    assert a.energies == b.energies == c.energies


def test_table_path_for_large_label_sets_matches_matrix_path(monkeypatch):
    rng = np.random.default_rng(13)
    unary = rng.integers(0, 40, (9, 11, 7)).astype(np.float32)
    for kind in FAMILIES:
        matrix_res = alpha_expansion(unary, kind, truncation=4, pairwise_weight=3.0, tol=0.0)
        with monkeypatch.context() as m:
            m.setattr(ae, "_MAX_MATRIX_LABELS", 2)
            table_res = alpha_expansion(unary, kind, truncation=4, pairwise_weight=3.0, tol=0.0)
            table_energy = grid_energy(table_res.labels, unary, kind, truncation=4, pairwise_weight=3.0)
        assert np.array_equal(matrix_res.labels, table_res.labels)
        assert table_energy == pytest.approx(matrix_res.energy)


def test_callable_unary_matches_array_unary():
    rng = np.random.default_rng(14)
    unary = rng.random((10, 13, 5)).astype(np.float32)
    calls = []

    def unary_fn(label):
        calls.append(label)
        return unary[:, :, label]

    for init in (None, rng.integers(0, 5, (10, 13))):
        a = alpha_expansion(unary, "potts", pairwise_weight=0.2, init_labels=init, tol=0.0)
        b = alpha_expansion(unary_fn, "potts", pairwise_weight=0.2, init_labels=init, tol=0.0, n_labels=5)
        assert np.array_equal(a.labels, b.labels)
        assert a.energies == pytest.approx(b.energies)
    assert grid_energy(a.labels, unary_fn, "potts", pairwise_weight=0.2, n_labels=5) == pytest.approx(
        a.energy
    )
    assert len(calls) > 0


def test_label_orders_and_stopping():
    rng = np.random.default_rng(15)
    unary = rng.random((15, 15, 6)).astype(np.float32)
    r1 = alpha_expansion(unary, "potts", pairwise_weight=0.4, label_order="random", seed=4, tol=0.0)
    r2 = alpha_expansion(unary, "potts", pairwise_weight=0.4, label_order="random", seed=4, tol=0.0)
    assert np.array_equal(r1.labels, r2.labels)
    seq = alpha_expansion(unary, "potts", pairwise_weight=0.4, tol=0.0)
    explicit = alpha_expansion(unary, "potts", pairwise_weight=0.4, label_order=np.arange(6), tol=0.0)
    assert np.array_equal(seq.labels, explicit.labels)
    # label_order restricted to one label: only that label can be gained
    init = rng.integers(0, 6, (15, 15))
    only3 = alpha_expansion(unary, "potts", pairwise_weight=0.4, init_labels=init, label_order=[3])
    assert np.all((only3.labels == init) | (only3.labels == 3))
    one = alpha_expansion(unary, "potts", pairwise_weight=0.4, max_cycles=1, init_labels=init)
    assert one.n_cycles == 1 and len(one.energies) == 2
    zero = alpha_expansion(unary, "potts", pairwise_weight=0.4, max_cycles=0, init_labels=init)
    assert zero.n_cycles == 0 and np.array_equal(zero.labels, init)
    # stopping rule: every cycle but the last lowered E by at least tol * |E|
    for tol in (0.5, 1e-2, 1e-3):
        run = alpha_expansion(unary, "potts", pairwise_weight=0.4, tol=tol, init_labels=init, max_cycles=50)
        e = np.asarray(run.energies)
        drops = e[:-1] - e[1:]
        assert np.all(drops[:-1] >= tol * np.abs(e[1:-1]))
        assert drops[-1] < tol * abs(e[-1]) or drops[-1] == 0
    default_init = alpha_expansion(unary, "potts", pairwise_weight=0.0, max_cycles=0)
    assert np.array_equal(default_init.labels, np.argmin(unary, axis=-1))


def test_degenerate_shapes():
    rng = np.random.default_rng(16)
    one_label = alpha_expansion(rng.random((4, 5, 1)), "potts")
    assert np.all(one_label.labels == 0)
    row = rng.random((1, 7, 3)).astype(np.float32)
    res = alpha_expansion(row, "potts", pairwise_weight=0.3, tol=0.0)
    best, _ = brute_force_optimum(row, _python_V("potts"), weight=0.3)
    assert res.energy <= 2 * best + 1e-6
    single = alpha_expansion(np.array([[[3.0, 1.0, 2.0]]]), "potts", connectivity=8)
    assert single.labels.tolist() == [[1]] and single.energy == pytest.approx(1.0)


def test_input_not_modified_and_float64_accepted():
    rng = np.random.default_rng(17)
    unary = rng.random((5, 6, 3))
    copy = unary.copy()
    init = rng.integers(0, 3, (5, 6))
    init_copy = init.copy()
    res = alpha_expansion(unary, "potts", init_labels=init, pairwise_weight=0.3)
    assert np.array_equal(unary, copy) and np.array_equal(init, init_copy)
    res32 = alpha_expansion(unary.astype(np.float32), "potts", init_labels=init, pairwise_weight=0.3)
    assert np.array_equal(res.labels, res32.labels)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(unary=np.zeros((3, 3))), ValueError),
        (dict(unary=np.zeros((3, 3, 2), dtype=complex)), TypeError),
        (dict(unary=np.full((3, 3, 2), np.nan)), ValueError),
        (dict(pairwise="quadratic"), ValueError),
        (dict(pairwise=np.zeros((3, 3))), ValueError),
        (dict(pairwise=lambda p, q, a, b: 0.0), TypeError),
        (dict(pairwise_weight=-1.0), ValueError),
        (dict(pairwise="truncated_linear", truncation=-2), ValueError),
        (dict(edge_weights=(np.ones((3, 2)), -np.ones((2, 3)))), ValueError),
        (dict(edge_weights=(np.ones((3, 3)), np.ones((2, 3)))), ValueError),
        (dict(edge_weights={"diagonal": np.ones((2, 2))}), ValueError),
        (dict(connectivity=6), ValueError),
        (dict(init_labels=np.full((3, 3), 2)), ValueError),
        (dict(init_labels=np.zeros((3, 3)) + 0.5), TypeError),
        (dict(init_labels=np.zeros((2, 3), dtype=int)), ValueError),
        (dict(label_order="backwards"), ValueError),
        (dict(label_order=[0, 5]), ValueError),
        (dict(max_cycles=-1), ValueError),
        (dict(tol=-1.0), ValueError),
        (dict(pairwise_data=np.zeros(3)), ValueError),
        (dict(label_costs=np.ones(2)), NotImplementedError),
    ],
)
def test_validation(kwargs, error):
    args = dict(unary=np.zeros((3, 3, 2), dtype=np.float32))
    args.update(kwargs)
    unary = args.pop("unary")
    pairwise = args.pop("pairwise", "potts")
    with pytest.raises(error):
        alpha_expansion(unary, pairwise, **args)


def test_callable_unary_validation():
    with pytest.raises(ValueError, match="n_labels"):
        alpha_expansion(lambda label: np.zeros((3, 3)), "potts")
    with pytest.raises(ValueError, match="shape"):
        alpha_expansion(
            lambda label: np.zeros((3, 3)) if label == 0 else np.zeros((2, 2)), "potts", n_labels=2
        )
    with pytest.raises(ValueError, match="NaN"):
        alpha_expansion(lambda label: np.full((3, 3), np.nan), "potts", n_labels=2)


# ---------------------------------------------------------------- public peers


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("kind", ["potts", "truncated_linear"])
@pytest.mark.parametrize("seed", range(3))
def test_against_gco(kind, connectivity, seed):
    gco = pytest.importorskip("gco")
    rng = np.random.default_rng(400 + seed)
    height, width, n_labels = 30, 40, int(rng.integers(5, 9))
    unary = _structured_problem(rng, height, width, n_labels)
    lab = np.arange(n_labels)
    if kind == "potts":
        pairwise = (25 * (lab[:, None] != lab[None, :])).astype(np.int32)
    else:
        pairwise = (12 * np.minimum(np.abs(lab[:, None] - lab[None, :]), 3)).astype(np.int32)
    peer = gco.cut_grid_graph_simple(
        unary, pairwise, n_iter=-1, connect=connectivity, algorithm="expansion"
    ).reshape(height, width)
    ours = alpha_expansion(
        unary.astype(np.float32),
        pairwise.astype(np.float32),
        connectivity=connectivity,
        tol=0.0,
        max_cycles=20,
    )
    kw = dict(connectivity=connectivity)
    e_peer = grid_energy(peer, unary.astype(np.float32), pairwise.astype(np.float32), **kw)
    assert ours.energy == pytest.approx(grid_energy(ours.labels, unary, pairwise, **kw))
    assert ours.energy <= 1.005 * e_peer


@pytest.mark.parametrize("kind", ["potts", "truncated_linear"])
@pytest.mark.parametrize("seed", range(3))
def test_against_pymaxflow(kind, seed):
    fastmin = pytest.importorskip("maxflow.fastmin")
    rng = np.random.default_rng(500 + seed)
    height, width, n_labels = 30, 40, int(rng.integers(5, 9))
    unary = _structured_problem(rng, height, width, n_labels).astype(np.float64)
    lab = np.arange(n_labels)
    if kind == "potts":
        pairwise = 25.0 * (lab[:, None] != lab[None, :])
    else:
        pairwise = 12.0 * np.minimum(np.abs(lab[:, None] - lab[None, :]), 3)
    peer = fastmin.aexpansion_grid(unary, pairwise, max_cycles=20)
    ours = alpha_expansion(unary, pairwise, tol=0.0, max_cycles=20)
    e_peer = grid_energy(np.asarray(peer).astype(np.int32), unary, pairwise)
    assert ours.energy <= 1.005 * e_peer
