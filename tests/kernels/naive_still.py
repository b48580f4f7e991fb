"""Slow, obvious references of the still-image kernels: every path is enumerated."""

from __future__ import annotations

import math

STEPS = ((1, 1), (0, 1), (1, 0))  # diagonal, horizontal, vertical


def _runs_ok(path, max_run):
    """No more than ``max_run`` consecutive entries share a row, nor a column."""
    run_row = run_col = 1
    for (i0, j0), (i1, j1) in zip(path, path[1:], strict=False):
        run_row = run_row + 1 if i1 == i0 else 1
        run_col = run_col + 1 if j1 == j0 else 1
        if run_row > max_run or run_col > max_run:
            return False
    return True


def all_paths(start, end):
    """Every monotone 8-connected path from ``start`` to ``end`` (lists of (row, col))."""
    out = []

    def walk(path):
        i, j = path[-1]
        if (i, j) == tuple(end):
            out.append(list(path))
            return
        for di, dj in STEPS:
            ni, nj = i + di, j + dj
            if ni <= end[0] and nj <= end[1]:
                path.append((ni, nj))
                walk(path)
                path.pop()

    walk([tuple(start)])
    return out


def naive_min_cost_path(cost, start, end, max_run=2):
    """(total, path) of the cheapest allowed path, by enumeration; (inf, []) when none is finite."""
    best, best_path = math.inf, []
    for path in all_paths(start, end):
        if not _runs_ok(path, max_run):
            continue
        total = 0.0
        for i, j in path:
            total += float(cost[i][j])
        if total < best:
            best, best_path = total, path
    return best, best_path


def naive_self_similarity(columns):
    n = len(columns)
    return [[math.sqrt(sum((a - b) ** 2 for a, b in zip(columns[i], columns[j], strict=True))) for j in range(n)]
            for i in range(n)]
