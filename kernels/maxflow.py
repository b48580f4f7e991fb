"""Boykov-Kolmogorov max-flow / min-cut on flat arrays.

The graph is stored in a compressed-sparse-row layout that never changes
during a solve: the arcs leaving node ``i`` are ``first[i]:first[i + 1]``;
``arcs[2 a]`` is the node arc ``a`` points to and ``arcs[2 a + 1]`` its
reverse arc (sister).  Residual capacities live in ``cap`` (one entry per arc)
and the terminal arcs in one signed array ``tr_cap`` (positive: residual
capacity from the source, negative: residual capacity to the sink).  The
search-tree state of a node (parent arc, timestamp, distance, tree and
active flags) is one 16-byte record of a flat int32 array, and the active-node
and orphan queues are preallocated ring buffers, so a caller that solves many
graphs with the same topology (alpha-expansion) allocates nothing per solve.

The public entry point :func:`maxflow_graph` takes an edge list; the private
kernels are shared with :mod:`kernels.alpha_expansion`.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit, jit_with

__all__ = ["maxflow_graph"]

# tree membership
_FREE = 0
_SOURCE = 1
_SINK = 2
# special parent values (real parents are arc indices >= 0)
_TERMINAL = -1
_ORPHAN = -2
_NO_PARENT = -3
_INF_DIST = 1 << 30
# columns of the per-node state record
_P = 0  # parent arc
_TS = 1  # timestamp of the distance mark
_D = 2  # distance to the terminal
_F = 3  # flags: tree + 4 * in_queue
_FLAGS = _F


def build_csr(n_nodes, tails, heads):
    """Arrange the arcs of an undirected-edge list into CSR arrays.

    Each edge ``e`` (``tails[e]`` -> ``heads[e]``) yields two arcs: the forward
    arc and its sister (the reverse arc).

    Parameters
    ----------
    n_nodes : int
        Number of nodes.
    tails, heads : ndarray of int, shape (E,)
        End points of each edge, ``0 <= tails, heads < n_nodes``.

    Returns
    -------
    first : ndarray of int32, shape (n_nodes + 1,)
        Arcs leaving node ``i`` are ``first[i]:first[i + 1]``.
    head : ndarray of int32, shape (2 E,)
        Node each arc points to.
    sister : ndarray of int32, shape (2 E,)
        Index of the reverse arc.
    forward : ndarray of int32, shape (E,)
        Arc index of edge ``e`` in the direction ``tails[e] -> heads[e]``;
        ``sister[forward[e]]`` is the direction ``heads[e] -> tails[e]``.
    """
    tails = np.asarray(tails, dtype=np.int64)
    heads = np.asarray(heads, dtype=np.int64)
    n_edges = tails.shape[0]
    arc_tail = np.concatenate([tails, heads])
    arc_head = np.concatenate([heads, tails])
    order = np.argsort(arc_tail, kind="stable")
    position = np.empty(2 * n_edges, dtype=np.int64)
    position[order] = np.arange(2 * n_edges)
    counts = np.bincount(arc_tail, minlength=n_nodes)
    first = np.zeros(n_nodes + 1, dtype=np.int32)
    np.cumsum(counts, out=first[1:])
    head = arc_head[order].astype(np.int32)
    original_sister = np.concatenate([np.arange(n_edges, 2 * n_edges), np.arange(n_edges)])
    sister = position[original_sister[order]].astype(np.int32)
    forward = position[:n_edges].astype(np.int32)
    return first, head, sister, forward


def allocate_workspace(n_nodes):
    """Work arrays of the search trees for ``n_nodes`` nodes.

    Returns
    -------
    state : ndarray of int32, shape (4 * n_nodes,)
        Record ``state[4 i : 4 i + 4]`` of node ``i``: parent arc (or -1
        terminal, -2 orphan, -3 none), timestamp,
        distance to the terminal, flags (tree in the low two bits: 0 free,
        1 source, 2 sink; bit 2 set while the node is in the active queue).
        One 16-byte record per node keeps a node's state in one cache line.
    queue, orphans : ndarray of int32, shape (n_nodes,)
        Ring buffers of the active nodes and of the orphans.
    """
    size = max(n_nodes, 1)
    return (
        np.zeros(4 * n_nodes, dtype=np.int32),
        np.zeros(size, dtype=np.int32),
        np.zeros(size, dtype=np.int32),
    )


def arc_table(head, sister):
    """Flat int32 array ``[head[0], sister[0], head[1], sister[1], ...]`` read by the kernel."""
    return np.ascontiguousarray(np.column_stack([head, sister]), dtype=np.int32).reshape(-1)


@jit_with(inline="always")
def _ring(pos, n):
    """Index ``pos`` (< 2 n) wrapped into a ring buffer of size ``n``."""
    return pos - n if pos >= n else pos


@jit
def _bk_maxflow(first, arcs, cap, tr_cap, state, queue, orphans):
    """Boykov-Kolmogorov max-flow; returns the flow pushed through paths.

    ``cap`` (per arc) and ``tr_cap`` (per node, signed) are residual
    capacities, modified in place.  On return ``state[4 i + 3] & 3 == 1`` marks
    the nodes reachable from the source in the residual graph (the source
    side of a minimum cut) and ``== 2`` the nodes that still reach the sink;
    free nodes (0) belong to neither tree.  The flow through the terminal
    arcs of a node that has both (the ``min(source, sink)`` part) is not
    counted: callers fold it in.
    """
    n = tr_cap.shape[0]
    flow = 0.0
    q_head = 0
    q_len = 0
    for i in range(n):
        r = tr_cap[i]
        if r > 0:
            state[4 * i + _P] = _TERMINAL
            state[4 * i + _TS] = 0
            state[4 * i + _D] = 1
            state[4 * i + _F] = _SOURCE + 4
            queue[q_len] = i
            q_len += 1
        elif r < 0:
            state[4 * i + _P] = _TERMINAL
            state[4 * i + _TS] = 0
            state[4 * i + _D] = 1
            state[4 * i + _F] = _SINK + 4
            queue[q_len] = i
            q_len += 1
        else:
            state[4 * i + _P] = _NO_PARENT
            state[4 * i + _F] = _FREE
    time = 0
    o_head = 0
    o_len = 0
    while q_len > 0:
        i = queue[q_head]
        fi = state[4 * i + _F]
        ti = fi & 3
        if ti == _FREE:
            q_head += 1
            if q_head == n:
                q_head = 0
            q_len -= 1
            state[4 * i + _F] = fi & 3
            continue
        s_node = -1
        t_node = -1
        mid = -1
        tsi = state[4 * i + _TS]
        di = state[4 * i + _D]
        if ti == _SOURCE:
            for a in range(first[i], first[i + 1]):
                if cap[a] > 0:
                    j = arcs[2 * a]
                    fj = state[4 * j + _F]
                    tj = fj & 3
                    if tj == _FREE:
                        state[4 * j + _P] = arcs[2 * a + 1]
                        state[4 * j + _TS] = tsi
                        state[4 * j + _D] = di + 1
                        if fj & 4 == 0:
                            queue[_ring(q_head + q_len, n)] = j
                            q_len += 1
                        state[4 * j + _F] = _SOURCE + 4
                    elif tj == _SINK:
                        s_node = i
                        t_node = j
                        mid = a
                        break
                    elif state[4 * j + _TS] <= tsi and state[4 * j + _D] > di:
                        state[4 * j + _P] = arcs[2 * a + 1]
                        state[4 * j + _TS] = tsi
                        state[4 * j + _D] = di + 1
        else:
            for a in range(first[i], first[i + 1]):
                sa = arcs[2 * a + 1]
                if cap[sa] > 0:
                    j = arcs[2 * a]
                    fj = state[4 * j + _F]
                    tj = fj & 3
                    if tj == _FREE:
                        state[4 * j + _P] = sa
                        state[4 * j + _TS] = tsi
                        state[4 * j + _D] = di + 1
                        if fj & 4 == 0:
                            queue[_ring(q_head + q_len, n)] = j
                            q_len += 1
                        state[4 * j + _F] = _SINK + 4
                    elif tj == _SOURCE:
                        s_node = j
                        t_node = i
                        mid = sa
                        break
                    elif state[4 * j + _TS] <= tsi and state[4 * j + _D] > di:
                        state[4 * j + _P] = sa
                        state[4 * j + _TS] = tsi
                        state[4 * j + _D] = di + 1
        if mid < 0:
            q_head += 1
            if q_head == n:
                q_head = 0
            q_len -= 1
            state[4 * i + _F] = state[4 * i + _F] & 3
            continue
        time += 1
        bottleneck = cap[mid]
        k = s_node
        while True:
            pa = state[4 * k + _P]
            if pa == _TERMINAL:
                break
            c = cap[arcs[2 * pa + 1]]
            if c < bottleneck:
                bottleneck = c
            k = arcs[2 * pa]
        if tr_cap[k] < bottleneck:
            bottleneck = tr_cap[k]
        k = t_node
        while True:
            pa = state[4 * k + _P]
            if pa == _TERMINAL:
                break
            c = cap[pa]
            if c < bottleneck:
                bottleneck = c
            k = arcs[2 * pa]
        if -tr_cap[k] < bottleneck:
            bottleneck = -tr_cap[k]
        cap[arcs[2 * mid + 1]] += bottleneck
        cap[mid] -= bottleneck
        k = s_node
        while True:
            pa = state[4 * k + _P]
            if pa == _TERMINAL:
                break
            sa = arcs[2 * pa + 1]
            cap[pa] += bottleneck
            cap[sa] -= bottleneck
            nxt = arcs[2 * pa]
            if cap[sa] <= 0:
                state[4 * k + _P] = _ORPHAN
                orphans[_ring(o_head + o_len, n)] = k
                o_len += 1
            k = nxt
        tr_cap[k] -= bottleneck
        if tr_cap[k] <= 0:
            state[4 * k + _P] = _ORPHAN
            orphans[_ring(o_head + o_len, n)] = k
            o_len += 1
        k = t_node
        while True:
            pa = state[4 * k + _P]
            if pa == _TERMINAL:
                break
            cap[arcs[2 * pa + 1]] += bottleneck
            cap[pa] -= bottleneck
            nxt = arcs[2 * pa]
            if cap[pa] <= 0:
                state[4 * k + _P] = _ORPHAN
                orphans[_ring(o_head + o_len, n)] = k
                o_len += 1
            k = nxt
        tr_cap[k] += bottleneck
        if tr_cap[k] >= 0:
            state[4 * k + _P] = _ORPHAN
            orphans[_ring(o_head + o_len, n)] = k
            o_len += 1
        flow += bottleneck
        while o_len > 0:
            i2 = orphans[o_head]
            o_head += 1
            if o_head == n:
                o_head = 0
            o_len -= 1
            t = state[4 * i2 + _F] & 3
            best_arc = -1
            best_d = _INF_DIST
            for a in range(first[i2], first[i2 + 1]):
                j = arcs[2 * a]
                if state[4 * j + _F] & 3 != t:
                    continue
                if t == _SOURCE:
                    if not cap[arcs[2 * a + 1]] > 0:
                        continue
                else:
                    if not cap[a] > 0:
                        continue
                k = j
                d = 0
                while True:
                    if state[4 * k + _TS] == time:
                        d += state[4 * k + _D]
                        break
                    pa = state[4 * k + _P]
                    d += 1
                    if pa == _TERMINAL:
                        state[4 * k + _TS] = time
                        state[4 * k + _D] = 1
                        break
                    if pa == _ORPHAN:
                        d = _INF_DIST
                        break
                    k = arcs[2 * pa]
                if d < _INF_DIST:
                    if d < best_d:
                        best_arc = a
                        best_d = d
                    k = j
                    while state[4 * k + _TS] != time:
                        state[4 * k + _TS] = time
                        state[4 * k + _D] = d
                        d -= 1
                        k = arcs[2 * state[4 * k + _P]]
            if best_arc >= 0:
                state[4 * i2 + _P] = best_arc
                state[4 * i2 + _TS] = time
                state[4 * i2 + _D] = best_d + 1
                continue
            for a in range(first[i2], first[i2 + 1]):
                j = arcs[2 * a]
                fj = state[4 * j + _F]
                if fj & 3 != t:
                    continue
                if t == _SOURCE:
                    residual = cap[arcs[2 * a + 1]] > 0
                else:
                    residual = cap[a] > 0
                if residual and fj & 4 == 0:
                    queue[_ring(q_head + q_len, n)] = j
                    q_len += 1
                    state[4 * j + _F] = fj | 4
                pj = state[4 * j + _P]
                if pj >= 0 and arcs[2 * pj] == i2:
                    state[4 * j + _P] = _ORPHAN
                    orphans[_ring(o_head + o_len, n)] = j
                    o_len += 1
            state[4 * i2 + _F] = state[4 * i2 + _F] & 4
            state[4 * i2 + _P] = _NO_PARENT
    return flow


def maxflow_graph(n_nodes, edges, cap, rev_cap, source_cap, sink_cap):
    """Maximum flow and a minimum cut of a general graph (Boykov-Kolmogorov).

    Parameters
    ----------
    n_nodes : int
        Number of non-terminal nodes, ``>= 1``.
    edges : array_like of int, shape (E, 2)
        Edge ``e`` joins ``edges[e, 0]`` to ``edges[e, 1]`` (node indices in
        ``[0, n_nodes)``; parallel edges are allowed, self-loops are not).
    cap : array_like of float, shape (E,)
        Capacity of ``edges[e, 0] -> edges[e, 1]``, non-negative.
    rev_cap : array_like of float, shape (E,)
        Capacity of ``edges[e, 1] -> edges[e, 0]``, non-negative.
    source_cap : array_like of float, shape (n_nodes,)
        Capacity of the arc source -> node, non-negative.
    sink_cap : array_like of float, shape (n_nodes,)
        Capacity of the arc node -> sink, non-negative.

    Returns
    -------
    flow : float
        Value of the maximum flow, equal to the capacity of the minimum cut.
    source_side : ndarray of bool, shape (n_nodes,)
        ``True`` for the nodes on the source side of a minimum cut (those
        reachable from the source in the final residual graph).

    Notes
    -----
    Augmenting paths are found by growing two search trees, one from the
    source and one from the sink, that are kept between augmentations; after
    each augmentation the nodes cut from their tree (orphans) are re-attached
    or freed (Boykov and Kolmogorov, "An experimental comparison of
    min-cut/max-flow algorithms for energy minimization in vision", TPAMI
    26(9), 2004, Sec. 3).  Orphans are re-attached to the candidate parent
    closest to its terminal, using distance and timestamp marks.  Capacities
    are handled as float64.

    Examples
    --------
    >>> flow, side = maxflow_graph(2, [[0, 1]], [1.0], [0.0], [3.0, 0.0], [0.0, 2.0])
    >>> flow
    1.0
    >>> side.tolist()
    [True, False]
    """
    n_nodes = int(n_nodes)
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    edges = np.asarray(edges)
    if edges.size == 0:
        edges = edges.reshape(0, 2)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must have shape (E, 2), got {edges.shape}")
    if not np.issubdtype(edges.dtype, np.integer):
        raise TypeError(f"edges must be integers, got dtype {edges.dtype}")
    n_edges = edges.shape[0]
    arrays = {}
    for name, value, size in (
        ("cap", cap, n_edges),
        ("rev_cap", rev_cap, n_edges),
        ("source_cap", source_cap, n_nodes),
        ("sink_cap", sink_cap, n_nodes),
    ):
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        if arr.shape != (size,):
            raise ValueError(f"{name} must have shape ({size},), got {np.shape(value)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        if np.any(arr < 0):
            raise ValueError(f"{name} must be non-negative")
        arrays[name] = arr
    if n_edges and (edges.min() < 0 or edges.max() >= n_nodes):
        raise ValueError(f"edge end points must lie in [0, {n_nodes})")
    if n_edges and np.any(edges[:, 0] == edges[:, 1]):
        raise ValueError("self-loops are not allowed")
    first, head, sister, forward = build_csr(n_nodes, edges[:, 0], edges[:, 1])
    arc_cap = np.zeros(2 * n_edges, dtype=np.float64)
    arc_cap[forward] = arrays["cap"]
    arc_cap[sister[forward]] = arrays["rev_cap"]
    src = arrays["source_cap"]
    snk = arrays["sink_cap"]
    tr_cap = src - snk
    constant = float(np.minimum(src, snk).sum())
    state, queue, orphans = allocate_workspace(n_nodes)
    flow = _bk_maxflow(first, arc_table(head, sister), arc_cap, tr_cap, state, queue, orphans)
    return constant + float(flow), (state.reshape(-1, 4)[:, _FLAGS] & 3) == _SOURCE
