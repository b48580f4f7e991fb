"""Energy terms and time-mapping renderer of per-pixel video loops (Liao, Joshi and Hoppe 2013).

A loop assigns to every pixel ``x`` a period ``p_x`` (1 = static) and a start
frame ``s_x``; the looping video is ``L(x, t) = V(x, phi(x, t))`` with the time
map ``phi(x, t) = s_x + ((t - s_x) mod p_x)``.

Data layout: every kernel takes a pixel-major feature video ``feat`` of shape
(N, T, C) float32 (pixel, frame, channel; colours in [0, 1], semantic channels
appended by the caller).  The spatial term is evaluated in constant time per
pair from per-pixel prefix sums over time (:func:`loop_prefix_sums`), the
1-D analogue of an integral image.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kernels._jit import jit

__all__ = [
    "LoopPrefix",
    "lag_differences",
    "loop_prefix_sums",
    "loop_pair_cost",
    "period_shifts",
    "render_time_map",
    "spatial_attenuation",
    "spatial_cost",
    "spatial_costs",
    "temporal_attenuation",
    "temporal_cost",
    "temporal_cost_labels",
    "time_map",
]


class LoopPrefix(NamedTuple):
    """Prefix sums over time of one feature video (see :func:`loop_prefix_sums`).

    Attributes
    ----------
    p1 : ndarray, (N, T + 1, C) float64
        ``p1[i, t] = sum_{u < t} F(i, u)``.
    p2 : ndarray, (N, T + 1) float64
        ``p2[i, t] = sum_{u < t} ||F(i, u)||^2``.
    q : ndarray, (S, N, T + 1) float64
        ``q[j, i, t] = sum_{u < t, u + m_j < T} ||F(i, u) - F(i, u + m_j)||^2`` for shift ``m_j``.
    slot : ndarray, (T + 1,) int64
        ``slot[m]`` is the row of ``q`` for shift ``m``, -1 when not tabulated.
    """

    p1: np.ndarray
    p2: np.ndarray
    q: np.ndarray
    slot: np.ndarray


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------


def _check_feat(feat, name="feat"):
    arr = np.asarray(feat)
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (N, T, C), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 2 or arr.shape[2] < 1:
        raise ValueError(f"{name} needs N >= 1 pixels, T >= 2 frames and C >= 1 channels, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_loop(period, start, n_frames, name=""):
    p, s = int(period), int(start)
    if not 1 <= p < n_frames:
        raise ValueError(f"period{name} must lie in [1, {n_frames - 1}], got {p}")
    if not 0 <= s <= n_frames - p:
        raise ValueError(f"start{name} must lie in [0, {n_frames - p}] for period {p}, got {s}")
    return p, s


# --------------------------------------------------------------------------
# time map
# --------------------------------------------------------------------------


def time_map(period, start, t):
    """Input frame shown at output time ``t``: ``phi = s + ((t - s) mod p)``.

    Parameters
    ----------
    period, start : int or ndarray of int
        ``p >= 1`` (frames) and ``s >= 0`` (frame index).
    t : int or ndarray of int
        Output time (frames); any integer, negative included.

    Returns
    -------
    int or ndarray of int
        A frame in ``[s, s + p)``.

    Notes
    -----
    Liao et al. 2013, Eq. (1), in the simpler form of the authors' erratum;
    ``mod`` is the mathematical modulo (non-negative for negative ``t - s``).

    Examples
    --------
    >>> [int(time_map(4, 6, t)) for t in range(6)]
    [8, 9, 6, 7, 8, 9]
    """
    period = np.asarray(period)
    if np.any(period < 1):
        raise ValueError("period must be >= 1")
    return start + np.mod(np.asarray(t) - start, period)


# --------------------------------------------------------------------------
# attenuation factors (numpy level)
# --------------------------------------------------------------------------


def temporal_attenuation(feat, lam):
    """gamma_t(x) = 1 / (1 + lam * MAD_t ||F(x, t) - F(x, t + 1)||).

    Parameters
    ----------
    feat : ndarray, (N, T, C) float
        Colour video, pixel-major, values in [0, 1].
    lam : float
        lambda_t >= 0 (per colour unit); the paper uses 400.

    Returns
    -------
    ndarray, (N,) float64
        In (0, 1]; small where the pixel changes a lot from frame to frame.

    Notes
    -----
    Liao et al. 2013, Sec. 3.1: a seam is less visible where the pixel moves a
    lot anyway.  "MAD" is the median over t of the absolute (Euclidean)
    consecutive change.

    Examples
    --------
    >>> f = np.zeros((2, 5, 1), np.float32); f[1, ::2] = 0.1
    >>> np.round(temporal_attenuation(f, 400.0), 3).tolist()
    [1.0, 0.024]
    """
    feat = _check_feat(feat)
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    step = np.sqrt(((feat[:, 1:] - feat[:, :-1]).astype(np.float64) ** 2).sum(axis=2))
    return 1.0 / (1.0 + lam * np.median(step, axis=1))


def spatial_attenuation(video, lam):
    """gamma_s of every 4-neighbour pair of a grid video.

    Parameters
    ----------
    video : ndarray, (H, W, T, C) float
        Colour video, values in [0, 1].
    lam : float
        lambda_s >= 0 (per colour unit); the paper uses 100.

    Returns
    -------
    horizontal : ndarray, (H, W - 1) float64
        gamma_s between (i, j) and (i, j + 1).
    vertical : ndarray, (H - 1, W) float64
        gamma_s between (i, j) and (i + 1, j).

    Notes
    -----
    Liao et al. 2013, Sec. 3.1: gamma_s(x, z) = 1 / (1 + lambda_s MAD_t
    ||V(x, t) - V(z, t)||) lowers the spatial cost across strong, persistent
    edges, where a seam hides.

    Examples
    --------
    >>> v = np.zeros((1, 2, 3, 1)); v[0, 1] = 0.5
    >>> h, _ = spatial_attenuation(v, 100.0)
    >>> round(float(h[0, 0]), 4)
    0.0196
    """
    v = np.asarray(video, dtype=np.float64)
    if v.ndim != 4:
        raise ValueError(f"video must have shape (H, W, T, C), got {v.shape}")
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    dh = np.sqrt(((v[:, 1:] - v[:, :-1]) ** 2).sum(axis=3))
    dv = np.sqrt(((v[1:] - v[:-1]) ** 2).sum(axis=3))
    return 1.0 / (1.0 + lam * np.median(dh, axis=2)), 1.0 / (1.0 + lam * np.median(dv, axis=2))


# --------------------------------------------------------------------------
# temporal term
# --------------------------------------------------------------------------


@jit
def _pair_sq(feat, i, a, b):
    total = 0.0
    for k in range(feat.shape[2]):
        d = np.float64(feat[i, a, k]) - np.float64(feat[i, b, k])
        total += d * d
    return total


@jit
def _temporal(feat, weight, period, starts, out):
    n, t_len, _ = feat.shape
    for i in range(n):
        w = np.float64(weight[i])
        for j in range(starts.shape[0]):
            s = starts[j]
            if period == 1:
                out[i, j] = 0.0
                continue
            after = s + period < t_len  # pair (s, s + p)
            before = s >= 1  # pair (s - 1, s + p - 1)
            if after and before:
                total = _pair_sq(feat, i, s, s + period) + _pair_sq(feat, i, s - 1, s + period - 1)
            elif after:  # s = 0: the pair one frame later stands in for the missing one
                total = _pair_sq(feat, i, s, s + period)
                if s + period + 1 < t_len:
                    total += _pair_sq(feat, i, s + 1, s + period + 1)
                else:
                    total *= 2.0
            else:  # s = T - p: the pair one frame earlier stands in
                total = _pair_sq(feat, i, s - 1, s + period - 1)
                if s >= 2:
                    total += _pair_sq(feat, i, s - 2, s + period - 2)
                else:
                    total *= 2.0
            out[i, j] = w * total
    return out


def temporal_cost(feat, weight, period, starts):
    """Temporal consistency cost of looping every pixel with ``period`` from each of ``starts``.

    Parameters
    ----------
    feat : ndarray, (N, T, C) float
        Pixel-major feature video (colours in [0, 1], optionally semantic channels).
    weight : ndarray, (N,) float
        Per-pixel factor, e.g. gamma_t (>= 0).
    period : int
        Loop period ``p`` in [1, T - 1] (frames); 1 (static) costs 0.
    starts : ndarray, (S,) int
        Start frames, each in [0, T - p].

    Returns
    -------
    ndarray, (N, S) float64
        ``weight * (||F(s) - F(s + p)||^2 + ||F(s - 1) - F(s + p - 1)||^2)``.
        At the window's ends one pair does not exist: for ``s = 0`` the pair
        ``(s + 1, s + p + 1)`` replaces ``(s - 1, s + p - 1)``, for
        ``s = T - p`` the pair ``(s - 2, s + p - 2)`` replaces ``(s, s + p)``
        (the seam's continuity one frame further inside the window); when
        that one is missing too (p = T - 1) the remaining pair counts twice.

    Notes
    -----
    Liao et al. 2013, Eq. (3): the loop's last frame must flow into its first
    both in value (``s + p`` vs ``s``) and in the frame before (``s + p - 1``
    vs ``s - 1``).

    Examples
    --------
    >>> f = np.sin(2 * np.pi * np.arange(12) / 4).reshape(1, 12, 1).astype(np.float32)
    >>> np.round(temporal_cost(f, np.ones(1), 4, np.array([2])), 6).tolist()
    [[0.0]]
    >>> bool(temporal_cost(f, np.ones(1), 3, np.array([2]))[0, 0] > 0.5)
    True
    """
    feat = _check_feat(feat)
    n, t_len, _ = feat.shape
    w = np.ascontiguousarray(weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weight must be finite and >= 0")
    period = int(period)
    if not 1 <= period < t_len:
        raise ValueError(f"period must lie in [1, {t_len - 1}], got {period}")
    st = np.ascontiguousarray(starts, dtype=np.int64)
    if st.ndim != 1:
        raise ValueError("starts must be 1-D")
    if st.size and (st.min() < 0 or st.max() > t_len - period):
        raise ValueError(f"starts must lie in [0, {t_len - period}] for period {period}")
    out = np.empty((n, st.size), dtype=np.float64)
    return _temporal(feat, w, period, st, out)


@jit
def _temporal_labels(feat, weight, lab_p, lab_s, out):
    n, t_len, _ = feat.shape
    starts = np.empty(1, np.int64)
    one = np.empty((1, 1), np.float64)
    for i in range(n):
        for k in range(lab_p.shape[1]):
            p = lab_p[i, k]
            if p == 1:
                out[i, k] = 0.0
                continue
            starts[0] = lab_s[i, k]
            _temporal(feat[i : i + 1], weight[i : i + 1], p, starts, one)
            out[i, k] = one[0, 0]
    return out


def temporal_cost_labels(feat, weight, lab_p, lab_s):
    """Temporal cost of every pixel under each of its own candidate loops.

    Parameters
    ----------
    feat : ndarray, (N, T, C) float
        Pixel-major feature video.
    weight : ndarray, (N,) float
        Per-pixel factor (gamma_t), >= 0.
    lab_p, lab_s : ndarray, (N, K) int
        Period (frames, 1 = static) and start of candidate ``k`` of pixel ``i``.

    Returns
    -------
    ndarray, (N, K) float64
        ``out[i, k]`` = :func:`temporal_cost` of pixel ``i`` for ``(lab_p[i, k], lab_s[i, k])``.

    Examples
    --------
    >>> f = np.sin(2 * np.pi * np.arange(12) / 4).reshape(1, 12, 1).astype(np.float32)
    >>> np.round(temporal_cost_labels(f, np.ones(1), np.array([[1, 4, 3]]), np.array([[0, 2, 2]])), 3).tolist()
    [[0.0, 0.0, 2.0]]
    """
    feat = _check_feat(feat)
    n, t_len, _ = feat.shape
    w = np.ascontiguousarray(weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weight must be finite, >= 0 and of shape ({n},)")
    lab_p = np.ascontiguousarray(lab_p, dtype=np.int64)
    lab_s = np.ascontiguousarray(lab_s, dtype=np.int64)
    if lab_p.ndim != 2 or lab_p.shape[0] != n or lab_s.shape != lab_p.shape:
        raise ValueError(f"lab_p and lab_s must both have shape ({n}, K)")
    if lab_p.size and (
        lab_p.min() < 1 or lab_p.max() >= t_len or lab_s.min() < 0 or (lab_p + lab_s).max() > t_len
    ):
        raise ValueError(f"every label must satisfy 1 <= p < {t_len} and 0 <= s <= {t_len} - p")
    return _temporal_labels(feat, w, lab_p, lab_s, np.empty(lab_p.shape, np.float64))


@jit
def _lag_diff(feat, lags, out):
    n, t_len, c = feat.shape
    for i in range(n):
        for j in range(lags.shape[0]):
            lag = lags[j]
            total = 0.0
            for t in range(t_len - lag):
                total += _pair_sq(feat, i, t, t + lag)
            out[i, j] = total / (t_len - lag)
    return out


def lag_differences(feat, lags):
    """Mean squared change of every pixel over time lags: a periodicity profile.

    Parameters
    ----------
    feat : ndarray, (N, T, C) float
        Pixel-major feature video.
    lags : int or sequence of int
        An int ``m`` means the lags 1..m; otherwise the lags themselves
        (frames), each in [1, T - 1].

    Returns
    -------
    ndarray, (N, number of lags) float64
        ``out[i, j] = mean_t ||F(i, t + lag_j) - F(i, t)||^2``; content of
        period ``p`` has (near) zero at ``lag = p`` and its multiples.

    Examples
    --------
    >>> f = (np.arange(12) % 3 == 0).astype(np.float32).reshape(1, 12, 1)
    >>> np.round(lag_differences(f, 4), 3).tolist()
    [[0.636, 0.7, 0.0, 0.625]]
    >>> np.round(lag_differences(f, [3, 2]), 3).tolist()
    [[0.0, 0.7]]
    """
    feat = _check_feat(feat)
    if np.ndim(lags) == 0:
        lags = np.arange(1, int(lags) + 1)
    lags = np.ascontiguousarray(lags, dtype=np.int64).reshape(-1)
    if lags.size == 0 or lags.min() < 1 or lags.max() >= feat.shape[1]:
        raise ValueError(f"lags must lie in [1, {feat.shape[1] - 1}], got {lags.tolist()}")
    return _lag_diff(feat, lags, np.empty((feat.shape[0], lags.size), np.float64))


# --------------------------------------------------------------------------
# prefix sums (integral images over time)
# --------------------------------------------------------------------------


def period_shifts(periods, n_frames):
    """Frame shifts the same-period spatial case needs: all multiples ``k p < T`` of every period.

    Examples
    --------
    >>> period_shifts([1, 4, 6], 14).tolist()
    [4, 6, 8, 12]
    """
    shifts = set()
    for p in periods:
        p = int(p)
        if p < 2:
            continue
        shifts.update(range(p, n_frames, p))
    return np.array(sorted(shifts), dtype=np.int64)


@jit
def _prefix(feat, shifts, p1, p2, q):
    n, t_len, c = feat.shape
    for i in range(n):
        for k in range(c):
            p1[i, 0, k] = 0.0
        p2[i, 0] = 0.0
        for t in range(t_len):
            s2 = 0.0
            for k in range(c):
                v = np.float64(feat[i, t, k])
                p1[i, t + 1, k] = p1[i, t, k] + v
                s2 += v * v
            p2[i, t + 1] = p2[i, t] + s2
        for j in range(shifts.shape[0]):
            m = shifts[j]
            q[j, i, 0] = 0.0
            for u in range(t_len):
                d = 0.0
                if u + m < t_len:
                    for k in range(c):
                        e = np.float64(feat[i, u, k]) - np.float64(feat[i, u + m, k])
                        d += e * e
                q[j, i, u + 1] = q[j, i, u] + d
    return 0


def loop_prefix_sums(feat, periods):
    """Per-pixel prefix sums over time that make the spatial term O(C) per pair.

    Parameters
    ----------
    feat : ndarray, (N, T, C) float
        Pixel-major feature video.
    periods : sequence of int
        Candidate periods (frames); shifted differences are tabulated for every
        multiple of every period below T (:func:`period_shifts`).

    Returns
    -------
    LoopPrefix
        ``p1`` (N, T+1, C), ``p2`` (N, T+1), ``q`` (S, N, T+1), all float64,
        and ``slot`` (T+1,) int64.  Memory: 8 N (T+1) (C + 1 + S) bytes.

    Notes
    -----
    The spatial cost of Liao et al. 2013 (Eq. 4 and the four cases of their
    Sec. 3.2) averages squared differences over the loop; every case is a sum
    over a contiguous frame range of either F, ||F||^2 or ||F(u) - F(u + kp)||^2,
    so it is a difference of two prefix sums, as with an integral image.

    Examples
    --------
    >>> f = np.arange(6, dtype=np.float32).reshape(1, 6, 1)
    >>> pre = loop_prefix_sums(f, [2])
    >>> pre.p1[0, :, 0].tolist()
    [0.0, 0.0, 1.0, 3.0, 6.0, 10.0, 15.0]
    >>> int(pre.slot[4]), float(pre.q[pre.slot[4], 0, -1])   # (0-4)^2 + (1-5)^2
    (1, 32.0)
    """
    feat = _check_feat(feat)
    n, t_len, c = feat.shape
    shifts = period_shifts(periods, t_len)
    p1 = np.empty((n, t_len + 1, c), dtype=np.float64)
    p2 = np.empty((n, t_len + 1), dtype=np.float64)
    q = np.empty((max(shifts.size, 1), n, t_len + 1), dtype=np.float64)
    if shifts.size == 0:
        q[:] = 0.0
    slot = np.full(t_len + 1, -1, dtype=np.int64)
    slot[shifts] = np.arange(shifts.size)
    _prefix(feat, shifts, p1, p2, q)
    return LoopPrefix(p1, p2, q, slot)


# --------------------------------------------------------------------------
# spatial term
# --------------------------------------------------------------------------


@jit
def _psi_pixel(i, px, sx, pz, sz, p1, p2, q, slot):
    """Mean over the loop of ||F(i, phi_x(t)) - F(i, phi_z(t))||^2 (one pixel's half of Psi)."""
    c = p1.shape[2]
    if px == pz and sx == sz:
        return 0.0
    if px == 1 and pz == 1:
        total = 0.0
        for k in range(c):
            a = p1[i, sx + 1, k] - p1[i, sx, k]
            b = p1[i, sz + 1, k] - p1[i, sz, k]
            total += (a - b) * (a - b)
        return total
    if px == 1 or pz == 1:
        if px == 1:
            f, s, p = sx, sz, pz
        else:
            f, s, p = sz, sx, px
        a2 = 0.0
        cross = 0.0
        for k in range(c):
            a = p1[i, f + 1, k] - p1[i, f, k]
            a2 += a * a
            cross += a * (p1[i, s + p, k] - p1[i, s, k])
        v = a2 - 2.0 * cross / p + (p2[i, s + p] - p2[i, s]) / p
        return v if v > 0.0 else 0.0
    if px == pz:
        p = px
        a = sx if sx < sz else sz
        d = (sz - sx) if sx < sz else (sx - sz)
        k = d // p
        r = d - k * p
        total = 0.0
        if r > 0:
            j1 = slot[(k + 1) * p]
            total += q[j1, i, a + r] - q[j1, i, a]
        if k > 0:
            j0 = slot[k * p]
            total += q[j0, i, a + p] - q[j0, i, a + r]
        v = total / p
        return v if v > 0.0 else 0.0
    # different periods: all pairs (exact over the lcm when gcd(px, pz) = 1)
    mx2 = (p2[i, sx + px] - p2[i, sx]) / px
    mz2 = (p2[i, sz + pz] - p2[i, sz]) / pz
    cross = 0.0
    for k in range(c):
        cross += ((p1[i, sx + px, k] - p1[i, sx, k]) / px) * ((p1[i, sz + pz, k] - p1[i, sz, k]) / pz)
    v = mx2 + mz2 - 2.0 * cross
    return v if v > 0.0 else 0.0


@jit
def _psi(x, z, px, sx, pz, sz, p1, p2, q, slot):
    return _psi_pixel(x, px, sx, pz, sz, p1, p2, q, slot) + _psi_pixel(z, px, sx, pz, sz, p1, p2, q, slot)


def _check_prefix(prefix):
    if not isinstance(prefix, LoopPrefix):
        raise TypeError("prefix must be a LoopPrefix from loop_prefix_sums")
    return prefix.p1.shape[0], prefix.p1.shape[1] - 1


def _check_pair_loop(prefix, px, sx, pz, sz):
    _, t_len = _check_prefix(prefix)
    px, sx = _check_loop(px, sx, t_len, " of x")
    pz, sz = _check_loop(pz, sz, t_len, " of z")
    if px == pz and px > 1 and sx != sz:
        d = abs(sx - sz)
        for m in {(d // px) * px, (d // px + 1) * px} - {0}:
            if m < t_len and prefix.slot[m] < 0:
                raise ValueError(f"period {px} was not among the periods given to loop_prefix_sums")
    return px, sx, pz, sz


def spatial_cost(prefix, x, z, px, sx, pz, sz):
    """Spatial consistency Psi(x, z) of two neighbours' loops, in O(C) time.

    Parameters
    ----------
    prefix : LoopPrefix
        From :func:`loop_prefix_sums` on the feature video, with ``px`` and
        ``pz`` among its periods.
    x, z : int
        Flat pixel indices (rows of the feature video).
    px, sx, pz, sz : int
        Period (frames, >= 1) and start (frame) of x and of z.

    Returns
    -------
    float
        ``Psi = mean_t ||F(x, phi_x) - F(x, phi_z)||^2 + ||F(z, phi_x) - F(z, phi_z)||^2``
        where the mean runs over the loop's time span (the lcm of the periods).

    Notes
    -----
    Liao et al. 2013, Eq. (4) with the four cases of Sec. 3.2 (and the
    authors' erratum for case 4).  Exact for two static pixels, one static
    pixel, and equal periods (any starts: the two time maps differ by a
    multiple of p, so only the ranges where they differ contribute, read from
    the shifted-difference prefix sums).  For different periods the mean over
    all pairs of frames is used, which equals the mean over the lcm exactly
    when the periods are coprime (Chinese remainder theorem) and is the
    paper's approximation otherwise.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.random((2, 20, 3)).astype(np.float32)
    >>> pre = loop_prefix_sums(f, [5])
    >>> spatial_cost(pre, 0, 1, 5, 3, 5, 3)
    0.0
    >>> spatial_cost(pre, 0, 1, 5, 3, 5, 4) > 0
    True
    """
    n, _ = _check_prefix(prefix)
    if not (0 <= int(x) < n and 0 <= int(z) < n):
        raise ValueError(f"pixel indices must lie in [0, {n})")
    px, sx, pz, sz = _check_pair_loop(prefix, px, sx, pz, sz)
    return float(_psi(int(x), int(z), px, sx, pz, sz, prefix.p1, prefix.p2, prefix.q, prefix.slot))


@jit
def _psi_edges(ep, eq, period, start, p1, p2, q, slot, out):
    for e in range(ep.shape[0]):
        x = ep[e]
        z = eq[e]
        out[e] = _psi(x, z, period[x], start[x], period[z], start[z], p1, p2, q, slot)
    return out


def spatial_costs(prefix, period, start, ep, eq):
    """Psi of many pixel pairs under one labeling.

    Parameters
    ----------
    prefix : LoopPrefix
        As in :func:`spatial_cost`.
    period, start : ndarray, (N,) int
        Period (frames) and start (frame) of every pixel.
    ep, eq : ndarray, (E,) int
        Flat indices of the two ends of every pair.

    Returns
    -------
    ndarray, (E,) float64

    Examples
    --------
    >>> f = np.zeros((3, 10, 1), np.float32); f[1, 5:] = 1.0
    >>> pre = loop_prefix_sums(f, [])
    >>> spatial_costs(pre, np.ones(3, int), np.array([0, 7, 0]), np.array([0]), np.array([1])).tolist()
    [1.0]
    """
    n, t_len = _check_prefix(prefix)
    period = np.ascontiguousarray(period, dtype=np.int64).reshape(-1)
    start = np.ascontiguousarray(start, dtype=np.int64).reshape(-1)
    if period.shape != (n,) or start.shape != (n,):
        raise ValueError(f"period and start must have {n} entries")
    if np.any(period < 1) or np.any(period >= t_len) or np.any(start < 0) or np.any(start + period > t_len):
        raise ValueError("every loop must satisfy 1 <= p < T and 0 <= s <= T - p")
    for p in np.unique(period[period > 1]):
        if prefix.slot[p] < 0:
            raise ValueError(f"period {p} was not among the periods given to loop_prefix_sums")
    ep = np.ascontiguousarray(ep, dtype=np.int64)
    eq = np.ascontiguousarray(eq, dtype=np.int64)
    if ep.shape != eq.shape or ep.ndim != 1:
        raise ValueError("ep and eq must be 1-D of one length")
    if ep.size and (min(ep.min(), eq.min()) < 0 or max(ep.max(), eq.max()) >= n):
        raise ValueError(f"pair indices must lie in [0, {n})")
    out = np.empty(ep.size, dtype=np.float64)
    return _psi_edges(ep, eq, period, start, prefix.p1, prefix.p2, prefix.q, prefix.slot, out)


# --------------------------------------------------------------------------
# pairwise callback for kernels.alpha_expansion
# --------------------------------------------------------------------------


@jit
def loop_pair_cost(p, q, a, b, data):
    """Pixel-dependent pair cost of labels ``a`` (pixel p) and ``b`` (pixel q), for alpha_expansion.

    ``data = (width, lab_period (N, L) int64, lab_start (N, L) int64,
    w_h (N,), w_v (N,), potts_h (N,), potts_v (N,), p1, p2, q, slot)``:
    a label is resolved per pixel to a (period, start) pair through the two
    tables, so one callback serves every stage (labels = starts of a fixed
    period, periods with their paired starts, or starts under fixed periods).
    ``w_h[p]`` / ``w_v[p]`` weight the edge from p to its right / lower
    neighbour (``beta * gamma_s``); ``potts_*`` are added when the two loops
    differ (semantic object coherence).  Returns ``w * Psi + potts * [loops differ]``.
    """
    width, lab_p, lab_s, w_h, w_v, potts_h, potts_v, p1, p2, qq, slot = data
    px = lab_p[p, a]
    sx = lab_s[p, a]
    pz = lab_p[q, b]
    sz = lab_s[q, b]
    if px == pz and sx == sz:
        return 0.0
    if q - p == 1 and width > 1:
        w = w_h[p]
        c = potts_h[p]
    else:
        w = w_v[p]
        c = potts_v[p]
    if w == 0.0:
        return c
    return w * _psi(p, q, px, sx, pz, sz, p1, p2, qq, slot) + c


# --------------------------------------------------------------------------
# renderer
# --------------------------------------------------------------------------


@jit
def retimed_phase(t, p, s, t_out):
    """Phase of a retimed pixel at output time ``t``: (whole frames i0 in [0, p), remainder in 1/t_out frame).

    The pixel plays ``round(t_out / p)`` (halves up) whole cycles in ``t_out``
    frames; the exact phase in units of 1/t_out frame is
    ``(t * cycles * p - s * t_out) mod (p * t_out)``.
    """
    cycles = max(1, (2 * t_out + p) // (2 * p))
    num = (t * cycles * p - s * t_out) % (p * t_out)
    i0 = num // t_out
    return i0, num - i0 * t_out


@jit
def loop_phase(t, p, s, t_out, divides):
    """Frames a pixel of period ``p`` and start ``s`` shows at output time ``t`` of a ``t_out``-frame loop.

    ``divides`` is ``t_out % p == 0`` (true for a static pixel, ``p == 1``), passed in so that a
    caller walking one pixel over time tests it once.  Returns ``(f0, f1, rest)``: the pixel shows
    ``f0``, blended towards ``f1`` by ``rest / t_out``.  A pixel whose period divides ``t_out``
    follows Liao et al.'s ``s + ((t - s) mod p)`` with ``rest == 0``; a retimed one sits between
    two frames of :func:`retimed_phase`.
    """
    if divides:
        f = s + (t - s) % p
        return f, f, 0
    i0, rest = retimed_phase(t, p, s, t_out)
    return s + i0, s + (i0 + 1) % p, rest


@jit
def _render(video, period, start, out):
    t_in, h, w, c = video.shape
    t_out = out.shape[0]
    for y in range(h):
        for x in range(w):
            p = period[y, x]
            s = start[y, x]
            divides = t_out % p == 0
            for t in range(t_out):
                f0, f1, rest = loop_phase(t, p, s, t_out, divides)
                if rest == 0:
                    for k in range(c):
                        out[t, y, x, k] = video[f0, y, x, k]
                    continue
                frac = rest / t_out
                for k in range(c):
                    v = (1.0 - frac) * video[f0, y, x, k] + frac * video[f1, y, x, k]
                    iv = int(v + 0.5)
                    out[t, y, x, k] = 255 if iv > 255 else (0 if iv < 0 else iv)
    return out


def render_time_map(video, period, start, loop_frames):
    """Frames of a per-pixel loop, ``L(x, t) = V(x, phi(x, t))``.

    Parameters
    ----------
    video : ndarray, (T, h, w, C) uint8
        The aligned window.
    period, start : ndarray, (h, w) int
        Loop period (frames, 1 = static) and start frame of every pixel, with
        ``start + period <= T``.
    loop_frames : int
        Output length (frames, >= 1).

    Returns
    -------
    ndarray, (loop_frames, h, w, C) uint8

    Notes
    -----
    Pixels whose period divides ``loop_frames`` use the time map of Liao et
    al. 2013, Eq. (1), exactly.  Any other looping pixel plays
    ``n = max(1, round(loop_frames / p))`` whole cycles in ``loop_frames``
    output frames: its phase advances by ``n p / loop_frames`` frames per
    output frame (slightly faster or slower playback), and the shown value is
    the linear interpolation of the two nearest frames of its cycle (frame
    ``s + p`` counts as frame ``s``), so the output still wraps seamlessly.

    Examples
    --------
    >>> v = (np.arange(8, dtype=np.uint8) * 10).reshape(8, 1, 1, 1)
    >>> out = render_time_map(v, np.array([[3]]), np.array([[2]]), 6)
    >>> out[:, 0, 0, 0].tolist()
    [30, 40, 20, 30, 40, 20]
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.dtype != np.uint8:
        raise ValueError(f"video must be (T, h, w, C) uint8, got {video.shape} {video.dtype}")
    t_in, h, w, _ = video.shape
    period = np.ascontiguousarray(period, dtype=np.int64)
    start = np.ascontiguousarray(start, dtype=np.int64)
    if period.shape != (h, w) or start.shape != (h, w):
        raise ValueError(f"period and start must have shape {(h, w)}, got {period.shape} and {start.shape}")
    if period.size and (period.min() < 1 or start.min() < 0 or (start + period).max() > t_in):
        raise ValueError(f"every loop must satisfy p >= 1, s >= 0 and s + p <= {t_in}")
    loop_frames = int(loop_frames)
    if loop_frames < 1:
        raise ValueError(f"loop_frames must be >= 1, got {loop_frames}")
    out = np.empty((loop_frames, h, w, video.shape[3]), dtype=np.uint8)
    return _render(np.ascontiguousarray(video), period, start, out)
