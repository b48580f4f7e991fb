"""Slow, readable references for the graph-cut kernels (brute force).

Nothing here is fast; everything enumerates.  Only for tiny problems:
min-cuts of graphs with <= ~12 nodes, labelings of grids with <= ~10 pixels.
"""

from __future__ import annotations

import itertools

import numpy as np


def cut_value(side, edges, cap, rev_cap, source_cap, sink_cap):
    """Capacity of the s-t cut whose source side is the boolean mask ``side``."""
    side = np.asarray(side, dtype=bool)
    total = 0.0
    for i in range(side.size):
        if side[i]:
            total += sink_cap[i]  # arc i -> sink is cut
        else:
            total += source_cap[i]  # arc source -> i is cut
    for (u, v), c, r in zip(edges, cap, rev_cap, strict=True):
        if side[u] and not side[v]:
            total += c
        if side[v] and not side[u]:
            total += r
    return total


def brute_force_mincut(n_nodes, edges, cap, rev_cap, source_cap, sink_cap):
    """Minimum s-t cut by enumerating all 2**n_nodes source sides."""
    best = np.inf
    best_side = None
    for bits in itertools.product([False, True], repeat=n_nodes):
        value = cut_value(bits, edges, cap, rev_cap, source_cap, sink_cap)
        if value < best:
            best = value
            best_side = np.array(bits)
    return best, best_side


def grid_edges(height, width, connectivity=4):
    """List of ((y0, x0), (y1, x1), family) for every grid edge, first pixel first in raster order."""
    edges = []
    for y in range(height):
        for x in range(width):
            if x + 1 < width:
                edges.append(((y, x), (y, x + 1), "horizontal"))
            if y + 1 < height:
                edges.append(((y, x), (y + 1, x), "vertical"))
            if connectivity == 8 and y + 1 < height and x + 1 < width:
                edges.append(((y, x), (y + 1, x + 1), "diagonal_down_right"))
            if connectivity == 8 and y + 1 < height and x >= 1:
                edges.append(((y, x), (y + 1, x - 1), "diagonal_down_left"))
    return edges


def edge_weight(weights, p, q, family):
    """w_pq from the per-family arrays (dict) or 1 when absent."""
    if weights is None or weights.get(family) is None:
        return 1.0
    (y0, x0), (_, x1) = p, q
    if family == "horizontal":
        return float(weights[family][y0, x0])
    if family == "vertical":
        return float(weights[family][y0, x0])
    if family == "diagonal_down_right":
        return float(weights[family][y0, x0])
    # diagonal_down_left: array index (i, j) is the edge (i, j+1)-(i+1, j)
    return float(weights[family][y0, x1])


def pair_cost(kind, a, b, truncation=None, matrix=None):
    """V(a, b) for the families, written out plainly."""
    if kind == "potts":
        return 0.0 if a == b else 1.0
    if kind == "truncated_linear":
        v = abs(a - b)
        return v if truncation is None else min(v, truncation)
    if kind == "truncated_quadratic":
        v = (a - b) ** 2
        return v if truncation is None else min(v, truncation)
    if kind == "matrix":
        return float(matrix[a, b])
    raise ValueError(kind)


def naive_energy(labels, unary, V, weight=1.0, connectivity=4, weights=None):
    """E = sum D[p, l_p] + sum weight * w_pq * V(p, q, l_p, l_q) with plain loops.

    ``V`` is a Python function ``V(p_flat, q_flat, a, b)``.
    """
    height, width = labels.shape
    total = 0.0
    for y in range(height):
        for x in range(width):
            total += float(np.float32(unary[y, x, labels[y, x]]))
    for p, q, family in grid_edges(height, width, connectivity):
        pf = p[0] * width + p[1]
        qf = q[0] * width + q[1]
        total += weight * edge_weight(weights, p, q, family) * V(pf, qf, int(labels[p]), int(labels[q]))
    return total


def all_energies(unary, V, weight=1.0, connectivity=4, weights=None):
    """Energies of every labeling of a tiny grid, vectorised over labelings.

    Returns ``(labelings (L**N, N) int, energies (L**N,))``.
    """
    height, width, n_labels = unary.shape
    n = height * width
    labelings = np.array(list(itertools.product(range(n_labels), repeat=n)), dtype=np.int64)
    flat_unary = unary.reshape(n, n_labels).astype(np.float64)
    energies = flat_unary[np.arange(n)[None, :], labelings].sum(axis=1)
    table = None
    for p, q, family in grid_edges(height, width, connectivity):
        pf = p[0] * width + p[1]
        qf = q[0] * width + q[1]
        table = np.array([[V(pf, qf, a, b) for b in range(n_labels)] for a in range(n_labels)])
        energies = (
            energies + weight * edge_weight(weights, p, q, family) * table[labelings[:, pf], labelings[:, qf]]
        )
    return labelings, energies


def brute_force_optimum(unary, V, **kw):
    """Global minimum energy and one minimiser (H, W) of a tiny grid problem."""
    labelings, energies = all_energies(unary, V, **kw)
    k = int(np.argmin(energies))
    return float(energies[k]), labelings[k].reshape(unary.shape[:2])


def best_expansion_move(labels, alpha, unary, V, **kw):
    """Lowest energy reachable from ``labels`` by one expansion of ``alpha`` (enumerates 2**N moves)."""
    height, width, _ = unary.shape
    flat = labels.reshape(-1)
    best = np.inf
    for mask in itertools.product([False, True], repeat=flat.size):
        cand = np.where(np.array(mask), alpha, flat).reshape(height, width)
        best = min(best, naive_energy(cand, unary, V, **kw))
    return best
