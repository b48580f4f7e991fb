"""Boykov-Kolmogorov max-flow against brute-force min-cuts and PyMaxflow."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.maxflow import build_csr, maxflow_graph
from tests.kernels.naive_graphcut import brute_force_mincut, cut_value


def _random_graph(rng, n_nodes, n_edges, integer=True, density=0.7):
    edges = []
    for _ in range(n_edges):
        u, v = rng.choice(n_nodes, 2, replace=False)
        edges.append((u, v))
    edges = np.array(edges, dtype=np.int64).reshape(-1, 2)

    def draw(size):
        values = rng.integers(0, 8, size).astype(float) if integer else rng.random(size) * 5
        return values * (rng.random(size) < density)

    return edges, draw(len(edges)), draw(len(edges)), draw(n_nodes), draw(n_nodes)


@pytest.mark.parametrize("seed", range(60))
def test_flow_equals_brute_force_min_cut(seed):
    rng = np.random.default_rng(seed)
    n_nodes = int(rng.integers(1, 11))
    n_edges = int(rng.integers(0, 3 * n_nodes)) if n_nodes > 1 else 0
    graph = _random_graph(rng, n_nodes, n_edges, integer=seed % 2 == 0)
    flow, side = maxflow_graph(n_nodes, *graph)
    best, _ = brute_force_mincut(n_nodes, *graph)
    assert flow == pytest.approx(best, rel=1e-12, abs=1e-9)
    # the returned side is a minimum cut, not just any cut
    assert cut_value(side, *graph) == pytest.approx(best, rel=1e-12, abs=1e-9)


def test_dense_graph_with_parallel_edges():
    rng = np.random.default_rng(7)
    n_nodes = 9
    pairs = [(u, v) for u in range(n_nodes) for v in range(n_nodes) if u != v]
    edges = np.array(pairs + pairs[:10], dtype=np.int64)  # parallel edges too
    cap = rng.random(len(edges)) * 3
    rev = rng.random(len(edges)) * 3
    src = rng.random(n_nodes) * 10
    snk = rng.random(n_nodes) * 10
    flow, side = maxflow_graph(n_nodes, edges, cap, rev, src, snk)
    best, _ = brute_force_mincut(n_nodes, edges, cap, rev, src, snk)
    assert flow == pytest.approx(best, rel=1e-12)
    assert cut_value(side, edges, cap, rev, src, snk) == pytest.approx(best, rel=1e-12)


def test_edge_cases():
    # single node: flow is min(source, sink), node on the source side only if reachable
    flow, side = maxflow_graph(1, np.zeros((0, 2), dtype=int), [], [], [5.0], [3.0])
    assert flow == 3.0 and side.tolist() == [True]
    flow, side = maxflow_graph(1, np.zeros((0, 2), dtype=int), [], [], [2.0], [3.0])
    assert flow == 2.0 and side.tolist() == [False]
    # all capacities zero
    flow, side = maxflow_graph(3, [[0, 1], [1, 2]], [0, 0], [0, 0], [0, 0, 0], [0, 0, 0])
    assert flow == 0.0 and not side.any()
    # a chain: bottleneck in the middle
    flow, side = maxflow_graph(3, [[0, 1], [1, 2]], [4.0, 1.0], [0, 0], [9, 0, 0], [0, 0, 9])
    assert flow == 1.0 and side.tolist() == [True, True, False]
    # reverse capacity only: no flow can pass forward
    flow, _ = maxflow_graph(2, [[0, 1]], [0.0], [5.0], [5, 0], [0, 5])
    assert flow == 0.0


def test_grid_graph_matches_pymaxflow():
    maxflow = pytest.importorskip("maxflow")
    rng = np.random.default_rng(3)
    height, width = 30, 40
    idx = np.arange(height * width).reshape(height, width)
    edges = np.concatenate(
        [
            np.column_stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()]),
            np.column_stack([idx[:-1, :].ravel(), idx[1:, :].ravel()]),
        ]
    )
    cap = rng.integers(0, 20, len(edges)).astype(float)
    rev = rng.integers(0, 20, len(edges)).astype(float)
    src = rng.integers(0, 60, height * width) * (rng.random(height * width) < 0.5)
    snk = rng.integers(0, 60, height * width) * (rng.random(height * width) < 0.5)
    flow, side = maxflow_graph(height * width, edges, cap, rev, src, snk)

    g = maxflow.Graph[float]()
    nodes = g.add_nodes(height * width)
    for (u, v), c, r in zip(edges, cap, rev, strict=True):
        g.add_edge(nodes[u], nodes[v], c, r)
    for i in range(height * width):
        g.add_tedge(nodes[i], float(src[i]), float(snk[i]))
    peer = g.maxflow()
    assert flow == pytest.approx(peer, rel=1e-12)
    assert cut_value(side, edges, cap, rev, src, snk) == pytest.approx(peer, rel=1e-12)


def test_build_csr_sisters_and_forward_arcs():
    tails = np.array([0, 1, 2, 0])
    heads = np.array([1, 2, 0, 2])
    first, head, sister, forward = build_csr(3, tails, heads)
    assert first.tolist() == [0, 3, 5, 8]
    for e, (t, h) in enumerate(zip(tails, heads, strict=True)):
        a = forward[e]
        assert first[t] <= a < first[t + 1] and head[a] == h
        b = sister[a]
        assert first[h] <= b < first[h + 1] and head[b] == t and sister[b] == a


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(n_nodes=0), ValueError),
        (dict(edges=[[0, 1, 2]]), ValueError),
        (dict(edges=[[0.0, 1.0]]), TypeError),
        (dict(edges=[[0, 5]]), ValueError),
        (dict(edges=[[1, 1]]), ValueError),
        (dict(cap=[-1.0]), ValueError),
        (dict(rev_cap=[np.nan]), ValueError),
        (dict(source_cap=[1.0]), ValueError),
        (dict(sink_cap=[1.0, -2.0]), ValueError),
    ],
)
def test_validation(kwargs, error):
    args = dict(
        n_nodes=2, edges=[[0, 1]], cap=[1.0], rev_cap=[0.0], source_cap=[1.0, 0.0], sink_cap=[0.0, 1.0]
    )
    args.update(kwargs)
    with pytest.raises(error):
        maxflow_graph(**args)
