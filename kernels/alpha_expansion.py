"""Multi-label energy minimisation on a pixel grid by alpha-expansion.

Minimises

    E(l) = sum_p D[p, l_p] + sum_{(p, q)} lambda * w_pq * V(l_p, l_q)

over labelings ``l`` of an (H, W) grid with 4- or 8-connectivity, by
alpha-expansion moves (Boykov, Veksler and Zabih 2001), each solved exactly as
a minimum cut with our Boykov-Kolmogorov max-flow (:mod:`kernels.maxflow`).

The graph of one expansion move uses a fixed topology (every grid edge, both
directions, in CSR arrays built once per call); only the capacities change
from move to move, so nothing is allocated inside the cycle loop.  Pixels that
already carry label ``alpha`` get zero capacities and never enter the search
trees.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from kernels._jit import jit, jit_with
from kernels.maxflow import _FLAGS, _SINK, _bk_maxflow, allocate_workspace, arc_table, build_csr

__all__ = ["ExpansionResult", "alpha_expansion", "grid_energy"]

_FAMILIES = {"potts": 1, "truncated_linear": 2, "truncated_quadratic": 3}
_MODE_MATRIX = 0
_MODE_TABLE = 4
# named families with at most this many labels are tabulated as an (L, L) float32 matrix
_MAX_MATRIX_LABELS = 2048
_EPS_REL = 1e-12

# compiled once per callback object (dispatcher arguments cannot be cached on disk)
_jit_nocache = jit_with(cache=False)
# small helpers called once per edge: inlined at Numba IR level
_jit_inline = jit_with(inline="always")


class ExpansionResult(NamedTuple):
    """Result of :func:`alpha_expansion`.

    Attributes
    ----------
    labels : ndarray of int32, shape (H, W)
        Final labeling.
    energy : float
        Energy of ``labels`` (same value as :func:`grid_energy`).
    energies : list of float
        Energy before the first cycle, then after every cycle; never increasing.
    n_cycles : int
        Number of expansion cycles run (one cycle visits every label once).
    """

    labels: np.ndarray
    energy: float
    energies: list
    n_cycles: int


# --------------------------------------------------------------------------
# jitted kernels
# --------------------------------------------------------------------------


@_jit_inline
def _family_value(family, trunc, a, b):
    """Unweighted V(a, b) of the named families (1 Potts, 2 linear, 3 quadratic)."""
    if family == 1:
        return 0.0 if a == b else 1.0
    d = np.float64(a) - np.float64(b)
    if family == 2:
        v = abs(d)
    else:
        v = d * d
    return v if v < trunc else trunc


@_jit_inline
def _edge_terms(e, mode, vmat, ew, tab_a, tab_b, tab_c, tab_d, lp, lq, alpha):
    """(A, B, C, D) = weighted V of (l_p, l_q), (l_p, alpha), (alpha, l_q), (alpha, alpha)."""
    if mode == _MODE_TABLE:
        return tab_a[e], tab_b[e], tab_c[e], tab_d[e]
    w = np.float64(ew[e])
    return w * vmat[lp, lq], w * vmat[lp, alpha], w * vmat[alpha, lq], w * vmat[alpha, alpha]


@jit
def _expand_move(
    alpha,
    labels,
    dcur,
    uvol,
    ucol,
    ep,
    eq,
    ew,
    fwd,
    arc_edge,
    first,
    arcs,
    mode,
    vmat,
    tab_a,
    tab_b,
    tab_c,
    tab_d,
    cap,
    tr_cap,
    state,
    queue,
    orphans,
    switched,
):
    """One expansion move on ``alpha``; returns (energy change, pixels changed).

    Binary move variable x_p = 1 means "p takes alpha" and puts p on the sink
    side of the cut.  Non-submodular pair terms are truncated (the mixed
    terms are raised), which keeps the current labeling's move energy
    unchanged and bounds the true move energy from above.
    """
    n = labels.shape[0]
    m = ep.shape[0]
    # unary part of the terminal capacities: tr = E_p(1) - E_p(0)
    for i in range(n):
        if labels[i] == alpha:
            tr_cap[i] = 0
        else:
            tr_cap[i] = np.float64(uvol[i, ucol]) - np.float64(dcur[i])
    # pairwise part
    for e in range(m):
        p = ep[e]
        q = eq[e]
        a = fwd[e]
        cap[a] = 0
        cap[arcs[2 * a + 1]] = 0
        lp = labels[p]
        lq = labels[q]
        if lp == alpha and lq == alpha:
            continue
        va, vb, vc, vd = _edge_terms(e, mode, vmat, ew, tab_a, tab_b, tab_c, tab_d, lp, lq, alpha)
        if lp == alpha:
            tr_cap[q] += vd - vc
        elif lq == alpha:
            tr_cap[p] += vd - vb
        else:
            s = vb + vc - va - vd
            if s < 0.0:
                # truncation: raise E(0,1) and E(1,0) by half the excess each
                vb -= 0.5 * s
                vc -= 0.5 * s
                s = 0.0
            cap[a] = s
            tr_cap[p] += vc - va
            tr_cap[q] += vd - vc
    _bk_maxflow(first, arcs, cap, tr_cap, state, queue, orphans)
    # pixels that can reach the sink take alpha (smallest sink side: ties keep labels)
    n_switch = 0
    delta = 0.0
    for i in range(n):
        if (state[4 * i + _FLAGS] & 3) == _SINK and labels[i] != alpha:
            switched[i] = 1
            n_switch += 1
            delta += np.float64(uvol[i, ucol]) - np.float64(dcur[i])
        else:
            switched[i] = 0
    if n_switch == 0:
        return 0.0, 0
    # pair terms that change: edges with a switched end, each counted once
    for i in range(n):
        if switched[i] == 0:
            continue
        for a in range(first[i], first[i + 1]):
            e = arc_edge[a]
            p = ep[e]
            q = eq[e]
            other = q if p == i else p
            if switched[other] != 0 and other > i:
                continue  # counted when visiting `other`
            va, vb, vc, vd = _edge_terms(
                e, mode, vmat, ew, tab_a, tab_b, tab_c, tab_d, labels[p], labels[q], alpha
            )
            if switched[other] != 0:
                delta += vd - va
            elif p == i:
                delta += vc - va
            else:
                delta += vb - va
    if not delta < 0.0:
        return 0.0, 0
    for i in range(n):
        if switched[i] != 0:
            labels[i] = alpha
            dcur[i] = uvol[i, ucol]
    return delta, n_switch


@jit
def _matrix_energy(labels, ep, eq, ew, vmat):
    """Sum over grid edges of w_pq * V[l_p, l_q]."""
    total = 0.0
    for e in range(ep.shape[0]):
        total += np.float64(ew[e]) * np.float64(vmat[labels[ep[e]], labels[eq[e]]])
    return total


@jit
def _family_energy(labels, ep, eq, ew, family, trunc):
    """Sum over grid edges of w_pq * V(l_p, l_q) for a named family."""
    total = 0.0
    for e in range(ep.shape[0]):
        total += np.float64(ew[e]) * _family_value(family, trunc, labels[ep[e]], labels[eq[e]])
    return total


@jit
def _family_tables(family, trunc, alpha, labels, ep, eq, ew, tab_a, tab_b, tab_c, tab_d):
    for e in range(ep.shape[0]):
        lp = labels[ep[e]]
        lq = labels[eq[e]]
        w = np.float64(ew[e])
        tab_a[e] = w * _family_value(family, trunc, lp, lq)
        tab_b[e] = w * _family_value(family, trunc, lp, alpha)
        tab_c[e] = w * _family_value(family, trunc, alpha, lq)
        tab_d[e] = w * _family_value(family, trunc, alpha, alpha)


@jit
def _gather_current(labels, uvol):
    """D[p, l_p] for a flat (N, L) cost volume."""
    out = np.empty(labels.shape[0], dtype=np.float32)
    for i in range(labels.shape[0]):
        out[i] = uvol[i, labels[i]]
    return out


@_jit_nocache
def _cb_tables(cost_fn, alpha, labels, ep, eq, ew, tab_a, tab_b, tab_c, tab_d):
    for e in range(ep.shape[0]):
        p = np.int64(ep[e])
        q = np.int64(eq[e])
        lp = np.int64(labels[p])
        lq = np.int64(labels[q])
        w = np.float64(ew[e])
        tab_a[e] = w * cost_fn(p, q, lp, lq)
        tab_b[e] = w * cost_fn(p, q, lp, alpha)
        tab_c[e] = w * cost_fn(p, q, alpha, lq)
        tab_d[e] = w * cost_fn(p, q, alpha, alpha)


@_jit_nocache
def _cb_tables_data(cost_fn, data, alpha, labels, ep, eq, ew, tab_a, tab_b, tab_c, tab_d):
    for e in range(ep.shape[0]):
        p = np.int64(ep[e])
        q = np.int64(eq[e])
        lp = np.int64(labels[p])
        lq = np.int64(labels[q])
        w = np.float64(ew[e])
        tab_a[e] = w * cost_fn(p, q, lp, lq, data)
        tab_b[e] = w * cost_fn(p, q, lp, alpha, data)
        tab_c[e] = w * cost_fn(p, q, alpha, lq, data)
        tab_d[e] = w * cost_fn(p, q, alpha, alpha, data)


@_jit_nocache
def _cb_energy(cost_fn, labels, ep, eq, ew):
    total = 0.0
    for e in range(ep.shape[0]):
        p = np.int64(ep[e])
        q = np.int64(eq[e])
        total += np.float64(ew[e]) * cost_fn(p, q, np.int64(labels[p]), np.int64(labels[q]))
    return total


@_jit_nocache
def _cb_energy_data(cost_fn, data, labels, ep, eq, ew):
    total = 0.0
    for e in range(ep.shape[0]):
        p = np.int64(ep[e])
        q = np.int64(eq[e])
        total += np.float64(ew[e]) * cost_fn(p, q, np.int64(labels[p]), np.int64(labels[q]), data)
    return total


# --------------------------------------------------------------------------
# validation and problem set-up (numpy level)
# --------------------------------------------------------------------------


def _is_jitted(obj):
    return isinstance(obj, numba.core.registry.CPUDispatcher)


class _Problem:
    """Validated problem description shared by alpha_expansion and grid_energy."""

    def __init__(
        self,
        unary,
        pairwise,
        pairwise_weight,
        truncation,
        label_costs,
        edge_weights,
        connectivity,
        pairwise_data,
        n_labels=None,
        shape=None,
    ):
        # ---- unary ---------------------------------------------------------
        if callable(unary) and not isinstance(unary, np.ndarray):
            if n_labels is None:
                raise ValueError("a callable unary needs n_labels")
            self.unary_fn = unary
            self.volume = None
            self.n_labels = int(n_labels)
            if shape is None:
                shape = np.shape(unary(0))
            if len(shape) != 2:
                raise ValueError(f"shape must be (H, W), got {shape}")
            height, width = (int(s) for s in shape)
        else:
            arr = np.asarray(unary)
            if arr.ndim != 3:
                raise ValueError(f"unary must have shape (H, W, L), got {arr.shape}")
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"unary must be a real float array, got dtype {arr.dtype}")
            if arr.dtype != np.float32:
                arr = arr.astype(np.float32)
            arr = np.ascontiguousarray(arr)
            if not np.all(np.isfinite(arr)):
                raise ValueError("unary contains NaN or infinite values (or overflows float32)")
            self.unary_fn = None
            self.volume = arr
            height, width, self.n_labels = arr.shape
        if height < 1 or width < 1 or self.n_labels < 1:
            raise ValueError(
                f"grid and label count must be non-empty, got H={height}, W={width}, L={self.n_labels}"
            )
        self.height, self.width = height, width
        n_labels = self.n_labels
        # ---- pairwise ------------------------------------------------------
        weight = float(pairwise_weight)
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"pairwise_weight must be finite and >= 0, got {pairwise_weight}")
        self.weight = weight
        self.trunc = np.inf
        self.vmat = np.zeros((1, 1), dtype=np.float32)
        self.family = 0
        self.callback = None
        self.data = pairwise_data
        if isinstance(pairwise, str):
            if pairwise not in _FAMILIES:
                raise ValueError(
                    f"pairwise must be one of {sorted(_FAMILIES)}, an (L, L) array or a jitted callback; got {pairwise!r}"
                )
            self.family = _FAMILIES[pairwise]
            if truncation is not None:
                t = float(truncation)
                if not t >= 0 or np.isnan(t):
                    raise ValueError(f"truncation must be >= 0, got {truncation}")
                self.trunc = t
            if n_labels <= _MAX_MATRIX_LABELS:
                # small label sets: tabulate V once, the move kernel then does lookups only
                lab = np.arange(n_labels, dtype=np.float64)
                if self.family == 1:
                    vmat = (lab[:, None] != lab[None, :]).astype(np.float64)
                elif self.family == 2:
                    vmat = np.minimum(np.abs(lab[:, None] - lab[None, :]), self.trunc)
                else:
                    vmat = np.minimum((lab[:, None] - lab[None, :]) ** 2, self.trunc)
                self.vmat = vmat.astype(np.float32)
                self.mode = _MODE_MATRIX
            else:
                self.mode = _MODE_TABLE
        elif _is_jitted(pairwise):
            self.mode = _MODE_TABLE
            self.callback = pairwise
        elif callable(pairwise):
            raise TypeError(
                "a pairwise callback must be a Numba-jitted function (decorate it with numba.njit)"
            )
        else:
            vmat = np.asarray(pairwise)
            if vmat.shape != (n_labels, n_labels):
                raise ValueError(
                    f"pairwise matrix must have shape ({n_labels}, {n_labels}), got {vmat.shape}"
                )
            if not (np.issubdtype(vmat.dtype, np.floating) or np.issubdtype(vmat.dtype, np.integer)):
                raise TypeError(f"pairwise matrix must be real, got dtype {vmat.dtype}")
            vmat = np.ascontiguousarray(vmat, dtype=np.float32)
            if not np.all(np.isfinite(vmat)):
                raise ValueError("pairwise matrix contains NaN or infinite values (or overflows float32)")
            self.vmat = vmat
            self.mode = _MODE_MATRIX
        if self.callback is None and pairwise_data is not None:
            raise ValueError("pairwise_data is only used with a callback pairwise")
        # ---- label costs ---------------------------------------------------
        if label_costs is not None:
            raise NotImplementedError("label_costs are not supported yet")
        # ---- edges ---------------------------------------------------------
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        self.connectivity = connectivity
        self.ep, self.eq, self.ew = _grid_edges(height, width, connectivity, edge_weights, weight)

    # -- energies ---------------------------------------------------------
    def pair_energy(self, flat_labels):
        if self.callback is not None:
            if self.data is None:
                return float(_cb_energy(self.callback, flat_labels, self.ep, self.eq, self.ew))
            return float(_cb_energy_data(self.callback, self.data, flat_labels, self.ep, self.eq, self.ew))
        if self.mode == _MODE_MATRIX:
            return float(_matrix_energy(flat_labels, self.ep, self.eq, self.ew, self.vmat))
        return float(_family_energy(flat_labels, self.ep, self.eq, self.ew, self.family, self.trunc))

    def fill_tables(self, alpha, flat_labels, tabs):
        """Per-edge weighted (A, B, C, D) of the move on ``alpha`` (table mode only)."""
        if self.callback is None:
            _family_tables(self.family, self.trunc, alpha, flat_labels, self.ep, self.eq, self.ew, *tabs)
        elif self.data is None:
            _cb_tables(self.callback, alpha, flat_labels, self.ep, self.eq, self.ew, *tabs)
        else:
            _cb_tables_data(self.callback, self.data, alpha, flat_labels, self.ep, self.eq, self.ew, *tabs)

    def unary_column(self, label):
        """(N, 1) float32 costs of one label from the callable producer, validated."""
        col = np.asarray(self.unary_fn(int(label)))
        if col.shape != (self.height, self.width):
            raise ValueError(
                f"unary_fn({label}) must return shape {(self.height, self.width)}, got {col.shape}"
            )
        col = np.ascontiguousarray(col, dtype=np.float32).reshape(-1, 1)
        if not np.all(np.isfinite(col)):
            raise ValueError(f"unary_fn({label}) returned NaN or infinite values")
        return col


def _check_weight(name, arr, shape):
    w = np.asarray(arr)
    if w.shape != shape:
        raise ValueError(f"edge weights {name} must have shape {shape}, got {w.shape}")
    if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"edge weights {name} must be real, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"edge weights {name} contain NaN or infinite values")
    if np.any(w < 0):
        raise ValueError(f"edge weights {name} must be non-negative")
    return w.reshape(-1)


def _grid_edges(height, width, connectivity, edge_weights, weight):
    """Edge list (p < q, flat indices) and per-edge weights times ``weight``."""
    idx = np.arange(height * width, dtype=np.int32).reshape(height, width)
    families = [
        ("horizontal", idx[:, :-1], idx[:, 1:], (height, width - 1)),
        ("vertical", idx[:-1, :], idx[1:, :], (height - 1, width)),
    ]
    if connectivity == 8:
        families += [
            ("diagonal_down_right", idx[:-1, :-1], idx[1:, 1:], (height - 1, width - 1)),
            ("diagonal_down_left", idx[:-1, 1:], idx[1:, :-1], (height - 1, width - 1)),
        ]
    names = [f[0] for f in families]
    if edge_weights is None:
        given = [None] * len(families)
    elif isinstance(edge_weights, dict):
        unknown = set(edge_weights) - set(names)
        if unknown:
            raise ValueError(f"unknown edge weight keys {sorted(unknown)}; expected {names}")
        given = [edge_weights.get(n) for n in names]
    else:
        given = list(edge_weights)
        if len(given) != len(families):
            raise ValueError(
                f"edge_weights must be a sequence of {len(families)} arrays {names} for connectivity {connectivity}"
            )
    eps, eqs, ews = [], [], []
    for (name, p, q, shape), w in zip(families, given, strict=True):
        eps.append(p.reshape(-1))
        eqs.append(q.reshape(-1))
        if w is None:
            ews.append(np.full(p.size, weight, dtype=np.float64))
        else:
            ews.append(_check_weight(name, w, shape) * weight)
    ep = np.ascontiguousarray(np.concatenate(eps), dtype=np.int32)
    eq = np.ascontiguousarray(np.concatenate(eqs), dtype=np.int32)
    ew = np.concatenate(ews).astype(np.float32)
    return ep, eq, ew


def _check_labels(labels, shape, n_labels, name="labels"):
    lab = np.asarray(labels)
    if lab.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() >= n_labels):
        raise ValueError(f"{name} must lie in [0, {n_labels}), got range [{lab.min()}, {lab.max()}]")
    return np.ascontiguousarray(lab, dtype=np.int32).reshape(-1)


def _unary_setup(problem, init_labels):
    """Flat labels and D[p, l_p] (float32) for the initial labeling."""
    shape = (problem.height, problem.width)
    n = problem.height * problem.width
    if problem.volume is not None:
        flat = problem.volume.reshape(n, problem.n_labels)
        if init_labels is None:
            labels = np.argmin(flat, axis=1).astype(np.int32)
        else:
            labels = _check_labels(init_labels, shape, problem.n_labels, "init_labels")
        return labels, _gather_current(labels, flat)
    if init_labels is not None:
        labels = _check_labels(init_labels, shape, problem.n_labels, "init_labels").copy()
        dcur = np.empty(n, dtype=np.float32)
        for label in np.unique(labels):
            col = problem.unary_column(label)[:, 0]
            sel = labels == label
            dcur[sel] = col[sel]
        return labels, dcur
    labels = np.zeros(n, dtype=np.int32)
    dcur = np.full(n, np.inf, dtype=np.float32)
    for label in range(problem.n_labels):
        col = problem.unary_column(label)[:, 0]
        better = col < dcur
        labels[better] = label
        dcur[better] = col[better]
    return labels, dcur


def _label_order(label_order, n_labels, rng):
    if isinstance(label_order, str):
        if label_order == "sequential":
            return np.arange(n_labels)
        if label_order == "random":
            return rng.permutation(n_labels)
        raise ValueError(
            f"label_order must be 'sequential', 'random' or an array of labels, got {label_order!r}"
        )
    order = np.asarray(label_order)
    if order.ndim != 1 or order.size == 0 or not np.issubdtype(order.dtype, np.integer):
        raise ValueError("an explicit label_order must be a non-empty 1-D integer array")
    if order.min() < 0 or order.max() >= n_labels:
        raise ValueError(f"label_order entries must lie in [0, {n_labels})")
    return order.astype(np.int64)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def alpha_expansion(
    unary,
    pairwise="potts",
    *,
    pairwise_weight=1.0,
    truncation=None,
    label_costs=None,
    edge_weights=None,
    connectivity=4,
    init_labels=None,
    max_cycles=10,
    tol=1e-4,
    label_order="sequential",
    seed=None,
    n_labels=None,
    shape=None,
    pairwise_data=None,
):
    """Minimise a multi-label grid energy by alpha-expansion moves.

    The energy of a labeling ``l`` of the (H, W) grid is

        E(l) = sum_p D[p, l_p] + sum_{(p, q)} lambda * w_pq * V(l_p, l_q)

    with ``lambda = pairwise_weight`` and the sum over the 4- or 8-connected
    grid edges.

    Parameters
    ----------
    unary : ndarray, shape (H, W, L), or callable
        Data costs ``D``.  float32 is used as is; other real dtypes are
        converted to float32 (a copy).  A callable ``unary(label) -> (H, W)``
        array is called once per expansion move for the costs of that label
        only (for volumes too large to hold); it then needs ``n_labels`` and
        ``shape`` (default: the shape of ``unary(0)``).  Costs must be finite.
    pairwise : str, ndarray of shape (L, L), or numba-jitted function, default "potts"
        ``V``.  Families: ``"potts"`` (``[a != b]``), ``"truncated_linear"``
        (``min(|a - b|, truncation)``), ``"truncated_quadratic"``
        (``min((a - b)**2, truncation)``).  A matrix gives ``V(a, b) =
        pairwise[a, b]`` with ``a`` the label of the first pixel of the edge
        (the one with the smaller flat index).  A callback ``cost(p, q, a, b)
        -> float`` (``p < q`` flat pixel indices ``y * W + x``, ``a``, ``b``
        their labels, all int64) gives pixel-dependent costs; see Notes.
    pairwise_weight : float, default 1.0
        ``lambda >= 0``, multiplies every pairwise term (all kinds of V).
    truncation : float, optional
        Truncation of the linear/quadratic families (in label units, squared
        units for the quadratic one); ``None`` means no truncation.
    label_costs : None
        Reserved for per-label costs (Delong et al. 2012); not supported yet,
        anything but ``None`` raises ``NotImplementedError``.
    edge_weights : sequence or dict of ndarray, optional
        Non-negative ``w_pq``: ``(horizontal (H, W-1), vertical (H-1, W))``
        and, for 8-connectivity, also ``diagonal_down_right (H-1, W-1)``
        (pixel (i, j) to (i+1, j+1)) and ``diagonal_down_left (H-1, W-1)``
        ((i, j+1) to (i+1, j)); a dict may give any subset of these names.
        Missing weights are 1.
    connectivity : {4, 8}, default 4
        Grid neighbourhood.
    init_labels : ndarray of int, shape (H, W), optional
        Starting labeling; default the per-pixel argmin of ``unary``.
    max_cycles : int, default 10
        Maximum number of cycles (a cycle tries every label of the order once).
    tol : float, default 1e-4
        Stop when a whole cycle lowers the energy by less than
        ``tol * |E|`` (relative); ``0`` runs until a cycle changes nothing.
    label_order : {"sequential", "random"} or array of int, default "sequential"
        Order in which labels are expanded in every cycle.  "random" draws a
        new permutation each cycle from ``seed``; an explicit array is used
        as given every cycle.
    seed : int, optional
        Seed of the random label order.
    n_labels : int, optional
        Number of labels ``L``, only for a callable ``unary``.
    shape : tuple of int, optional
        Grid shape ``(H, W)``, only for a callable ``unary``.
    pairwise_data : object, optional
        Extra argument handed to a callback as ``cost(p, q, a, b, pairwise_data)``
        (any Numba-typable object, e.g. an array or a tuple of arrays).

    Returns
    -------
    ExpansionResult
        ``labels`` (H, W) int32, ``energy`` float, ``energies`` (initial
        energy, then one entry per cycle, never increasing), ``n_cycles``.

    Raises
    ------
    ValueError, TypeError
        For malformed shapes or dtypes, NaN/infinite costs, negative weights
        or truncation, labels out of range.

    Notes
    -----
    Each move "expand alpha" lets every pixel either keep its label or take
    ``alpha`` and is solved exactly by one minimum cut (Boykov, Veksler and
    Zabih, "Fast approximate energy minimization via graph cuts", TPAMI
    23(11), 2001, Sec. 4), built as in Kolmogorov and Zabih (TPAMI 2004):
    a pair term with move values A = V(l_p, l_q), B = V(l_p, alpha),
    C = V(alpha, l_q), D = V(alpha, alpha) becomes an arc of capacity
    B + C - A - D plus terminal terms.  The max-flow is our Boykov-Kolmogorov
    implementation (:func:`kernels.maxflow.maxflow_graph`).

    For a metric V (Potts, truncated linear, metric matrices) every move is
    exact and the local minimum is within a factor 2 max(V)/min(V != 0) of
    the optimum.  For V that is not a metric (truncated quadratic, general
    matrices, callbacks) a pair term with B + C < A + D is not submodular;
    it is *truncated* as in Rother, Kumar, Kolmogorov and Blake ("Digital
    tapestry", CVPR 2005): B and C are each raised by half of the excess
    ``A + D - B - C``.  The move energy of the current labeling (all pixels
    keep their label) is unchanged and the modified move energy is an upper
    bound of the true one, so the chosen move never increases E.  On top,
    every move's exact energy change is evaluated and a move that would not
    lower E (possible only through float rounding) is rejected, so the
    energy never increases from cycle to cycle.

    Capacities are float32 and V is applied in float32 (named families with
    at most 2048 labels are tabulated once as an (L, L) float32 matrix, larger
    ones and callbacks are evaluated per edge and move); energies are
    accumulated in float64.  One max-flow per label per cycle, like gco.

    Writing a callback: it must be compiled with ``numba.njit`` and return
    a float, e.g.::

        @numba.njit
        def cost(p, q, a, b, frames):       # frames: (T, N) float32
            if a == b:
                return 0.0
            return abs(frames[a, p] - frames[b, p]) + abs(frames[a, q] - frames[b, q])

        alpha_expansion(unary, cost, pairwise_data=frames)

    Pass large arrays through ``pairwise_data``, not as globals or closure
    variables (Numba freezes those into the compiled code).  A callback is
    compiled once per function object and per process (it cannot be cached).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((8, 8), dtype=np.int32); truth[:, 4:] = 1
    >>> unary = np.stack([truth != 0, truth != 1], axis=-1).astype(np.float32)
    >>> unary += 0.8 * rng.random(unary.shape, dtype=np.float32)
    >>> result = alpha_expansion(unary, "potts", pairwise_weight=0.5)
    >>> bool((result.labels == truth).all())
    True
    >>> result.energies[-1] <= result.energies[0]
    True
    """
    problem = _Problem(
        unary,
        pairwise,
        pairwise_weight,
        truncation,
        label_costs,
        edge_weights,
        connectivity,
        pairwise_data,
        n_labels,
        shape,
    )
    max_cycles = int(max_cycles)
    if max_cycles < 0:
        raise ValueError(f"max_cycles must be >= 0, got {max_cycles}")
    tol = float(tol)
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    rng = np.random.default_rng(seed)
    _label_order(label_order, problem.n_labels, rng)  # validate early
    height, width, n_lab = problem.height, problem.width, problem.n_labels
    n = height * width
    labels, dcur = _unary_setup(problem, init_labels)

    energy = float(dcur.astype(np.float64).sum()) + problem.pair_energy(labels)
    energies = [energy]
    n_cycles = 0
    if n_lab > 1 and max_cycles > 0 and problem.ep.size + n > 0:
        first, head, sister, fwd = build_csr(n, problem.ep, problem.eq)
        m = problem.ep.shape[0]
        cap = np.zeros(2 * m, dtype=np.float32)
        tr_cap = np.zeros(n, dtype=np.float32)
        arcs = arc_table(head, sister)
        arc_edge = np.empty(2 * m, dtype=np.int32)
        arc_edge[fwd] = np.arange(m, dtype=np.int32)
        arc_edge[sister[fwd]] = np.arange(m, dtype=np.int32)
        work = allocate_workspace(n)
        switched = np.zeros(n, dtype=np.int8)
        if problem.mode == _MODE_TABLE:
            tabs = tuple(np.zeros(m, dtype=np.float64) for _ in range(4))
        else:
            tabs = tuple(np.zeros(1, dtype=np.float64) for _ in range(4))
        flat_volume = problem.volume.reshape(n, n_lab) if problem.volume is not None else None
        for _ in range(max_cycles):
            order = _label_order(label_order, n_lab, rng)
            changed = 0
            for alpha in order:
                alpha = int(alpha)
                if flat_volume is not None:
                    uvol, ucol = flat_volume, alpha
                else:
                    uvol, ucol = problem.unary_column(alpha), 0
                if problem.mode == _MODE_TABLE:
                    problem.fill_tables(alpha, labels, tabs)
                _, n_changed = _expand_move(
                    alpha,
                    labels,
                    dcur,
                    uvol,
                    ucol,
                    problem.ep,
                    problem.eq,
                    problem.ew,
                    fwd,
                    arc_edge,
                    first,
                    arcs,
                    problem.mode,
                    problem.vmat,
                    *tabs,
                    cap,
                    tr_cap,
                    *work,
                    switched,
                )
                changed += n_changed
            n_cycles += 1
            new_energy = float(dcur.astype(np.float64).sum()) + problem.pair_energy(labels)
            # every accepted move lowered E; an exact re-evaluation can only differ by rounding
            new_energy = min(new_energy, energy)
            energies.append(new_energy)
            decrease = energy - new_energy
            energy = new_energy
            if changed == 0 or decrease < tol * abs(energy) or decrease <= _EPS_REL * abs(energy):
                break
    return ExpansionResult(labels.reshape(height, width), energy, energies, n_cycles)


def grid_energy(
    labels,
    unary,
    pairwise="potts",
    *,
    pairwise_weight=1.0,
    truncation=None,
    label_costs=None,
    edge_weights=None,
    connectivity=4,
    n_labels=None,
    pairwise_data=None,
):
    """Energy of a labeling under the model of :func:`alpha_expansion`.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Labeling to evaluate, values in ``[0, L)``.
    unary, pairwise, pairwise_weight, truncation, label_costs, edge_weights, connectivity, pairwise_data
        As in :func:`alpha_expansion`.
    n_labels : int, optional
        Number of labels, needed only for a callable ``unary``.

    Returns
    -------
    float
        ``sum_p D[p, l_p] + sum_(p,q) lambda w_pq V(l_p, l_q)``, accumulated in
        float64 (costs taken as float32, like the solver).

    Notes
    -----
    Same energy as Boykov, Veksler and Zabih (TPAMI 2001), Eq. (1), with
    the 4- or 8-connected grid as neighbourhood system.

    Examples
    --------
    >>> unary = np.zeros((1, 2, 2), dtype=np.float32); unary[0, 0, 1] = 3.0
    >>> grid_energy(np.array([[1, 0]]), unary, "potts", pairwise_weight=0.5)
    3.5
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must have shape (H, W), got {lab.shape}")
    problem = _Problem(
        unary,
        pairwise,
        pairwise_weight,
        truncation,
        label_costs,
        edge_weights,
        connectivity,
        pairwise_data,
        n_labels,
        lab.shape,
    )
    flat = _check_labels(lab, (problem.height, problem.width), problem.n_labels)
    if problem.volume is not None:
        dcur = _gather_current(flat, problem.volume.reshape(flat.size, problem.n_labels))
    else:
        dcur = np.empty(flat.size, dtype=np.float32)
        for label in np.unique(flat):
            sel = flat == label
            dcur[sel] = problem.unary_column(label)[:, 0][sel]
    return float(dcur.astype(np.float64).sum()) + problem.pair_energy(flat)
