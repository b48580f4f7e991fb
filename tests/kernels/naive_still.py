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


def _bilinear(features, qy, qx):
    h, w = len(features), len(features[0])
    x0 = min(int(math.floor(qx)), w - 2) if w > 1 else 0
    y0 = min(int(math.floor(qy)), h - 2) if h > 1 else 0
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = qx - x0, qy - y0
    return [
        (1 - fy) * ((1 - fx) * features[y0][x0][c] + fx * features[y0][x1][c])
        + fy * ((1 - fx) * features[y1][x0][c] + fx * features[y1][x1][c])
        for c in range(len(features[0][0]))
    ]


def naive_displacement_unary(features, valid, vectors, guess_norm, scale, length_weight, outside_cost):
    """U[y][x][k]: mean over the valid sides (p + x, p - x) of ||F(p) - F(q)||^2, times the length factor."""
    h, w = len(features), len(features[0])
    out = [[[0.0] * len(vectors) for _ in range(w)] for _ in range(h)]
    for y in range(h):
        for x in range(w):
            for k, (vx, vy) in enumerate(vectors):
                diffs = []
                for sign in (1, -1):
                    qx, qy = x + sign * vx * scale, y + sign * vy * scale
                    if 0 <= qx <= w - 1 and 0 <= qy <= h - 1 and valid[int(qy + 0.5)][int(qx + 0.5)]:
                        q = _bilinear(features, qy, qx)
                        diffs.append(sum((a - b) ** 2 for a, b in zip(features[y][x], q, strict=True)))
                d = sum(diffs) / len(diffs) if diffs else outside_cost
                out[y][x][k] = d * (1 + length_weight * abs(math.hypot(vx, vy) - guess_norm[y][x]))
    return out


def naive_compatibility(a, b):
    """sqrt((1 - cos) / 2) + | |a| - |b| | / (|a| + |b|), 0 for equal labels."""
    na, nb = math.hypot(*a), math.hypot(*b)
    cos = (a[0] * b[0] + a[1] * b[1]) / (na * nb)
    return math.sqrt(max(0.0, min(1.0, (1 - cos) / 2))) + abs(na - nb) / (na + nb)


def naive_edge_weight(image, comps, p, q, theta_alpha, theta_beta, pixel_size):
    (y0, x0), (y1, x1) = p, q
    if comps[y0][x0] <= 0 or comps[y0][x0] != comps[y1][x1]:
        return 0.0
    d2 = ((y1 - y0) ** 2 + (x1 - x0) ** 2) * pixel_size**2
    c2 = sum((float(a) - float(b)) ** 2 for a, b in zip(image[y0][x0], image[y1][x1], strict=True))
    return math.exp(-d2 / (2 * theta_alpha**2) - c2 / (2 * theta_beta**2))
