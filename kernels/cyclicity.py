"""Per-pixel DFT cyclicity over the best interval (Yan et al., CVPR 2017, Sec. 4.1).

A pixel whose intensity repeats itself (a blinking light, a turning sign) has a
spectrum dominated by a frequency well above the slow drift of lighting and
noise.  For every interval ``[i, j)`` of at least ``min_length`` frames the
score is the largest DFT magnitude at a frequency above ``tau`` cycles per
interval divided by the largest at or below ``tau`` (the DC term excluded,
first half of the spectrum), and the pixel keeps the interval that maximises
it.

The naive search calls an FFT per interval: O(N^2) intervals times
O(N log N) each.  Here the DFT of a fixed length ``L`` is slid along the
signal with the exact recurrence of the sliding DFT,

    X_k(i + 1) = (X_k(i) + x[i + L] - x[i]) * exp(2 pi 1j k / L),

so that every interval of length ``L`` costs O(1) per frequency after the
first, and no array is allocated inside the loops.  Magnitudes are compared
squared; the square root is taken once per interval.

Where the time goes, and what keeps it short (all in float64, so the scores
match the per-interval FFT to rounding):

* the first interval of each length is transformed for a batch of signals at
  once as a matrix product with the length's (half x L) cosine and sine
  tables (cached per length): on these short, often prime, lengths it is
  about 3x cheaper than an FFT and lands directly in the (frequency, signal)
  layout the slide wants.  The product runs on BLAS threads; the caller pins
  BLAS to one thread when Dask provides the parallelism
  (:mod:`tasks.cyclicity` does), or the two pools oversubscribe the cores;
* the slide updates a frequency and folds its squared magnitude into the
  slow-band or cyclic-band maximum in the same pass (no second sweep over the
  spectra), with signals innermost so that the loop vectorises;
* signals go through in batches whose spectra stay in cache.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from kernels._jit import jit

__all__ = ["dft_cyclicity", "min_interval_length"]

#: Signals processed together: their spectra (frequencies x batch, float64) stay in cache.
_BATCH = 256


def min_interval_length(n_frames: int, fraction: float = 0.5) -> int:
    """Shortest interval searched: ``ceil(fraction * n_frames)`` frames.

    Parameters
    ----------
    n_frames : int
        Length of the analysed signal.
    fraction : float, default 0.5
        The paper searches intervals of at least half the window.

    Returns
    -------
    int
    """
    return max(1, int(math.ceil(fraction * n_frames - 1e-9)))


def dft_cyclicity(
    signals: np.ndarray,
    *,
    tau: int = 4,
    min_length: int | None = None,
    eps: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cyclicity score and best interval of many 1-D signals.

    Parameters
    ----------
    signals : ndarray, shape (P, N)
        One row per pixel (or region), ``N`` samples over time, any real dtype
        (intensities, typically 0-255).  Computed in float64.
    tau : int, default 4
        Frequencies ``1..tau`` (cycles per interval) count as slow change,
        ``tau+1 .. L//2`` as cyclic.
    min_length : int, optional
        Shortest interval searched, in frames.  Default ``ceil(N / 2)``.
        Must satisfy ``2 * tau + 2 <= N`` so that at least the whole-signal
        interval has a cyclic band; shorter intervals whose cyclic band is
        empty are skipped.
    eps : float, default 1e-3
        Added to the slow-band magnitude before dividing, in the signal's units
        times frames, so that a constant signal scores 0 and an exactly
        periodic one a large finite number.

    Returns
    -------
    score : ndarray, shape (P,), float32
        ``max_k>tau |X_k| / (max_k<=tau |X_k| + eps)`` at the best interval
        (0 for signals with no valid interval or a constant signal).
    interval : ndarray, shape (P, 2), int32
        ``[start, stop)`` of the best interval; ties keep the earliest start,
        then the shortest length.
    amplitude : ndarray, shape (P,), float32
        Amplitude of the winning cyclic component, ``2 |X_k| / L``, in the
        signal's units (the half peak-to-peak swing of a sinusoid).

    Notes
    -----
    Yan, Liu, Furukawa, "Turning an urban scene video into a cinemagraph",
    CVPR 2017, Sec. 4.1: cyclicity as the ratio of the DFT magnitudes above and
    below tau = 4, maximised over intervals of at least N/2 frames.  The DC term
    is dropped; removing the interval's mean therefore changes nothing
    (``X_k`` of a constant is 0 for ``0 < k < L``).  Cost per signal is
    ``sum_L (L/2) * N`` complex multiply-adds, O(N^3), against the naive
    O(N^3 log N) FFT per interval.

    Examples
    --------
    >>> t = np.arange(40)
    >>> blink = 128 + 100 * np.cos(2 * np.pi * t / 5)
    >>> score, interval, amp = dft_cyclicity(np.stack([blink, np.full(40, 7.0)]))
    >>> bool(score[0] > 2.5), float(score[1])
    (True, 0.0)
    >>> int(interval[0, 1] - interval[0, 0]) % 5
    0
    """
    x = np.asarray(signals)
    if x.ndim != 2:
        raise ValueError(f"signals must be 2-D (pixels, frames), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"signals must be real numbers, got dtype {x.dtype}")
    n = x.shape[1]
    tau = int(tau)
    if tau < 1:
        raise ValueError(f"tau must be >= 1, got {tau}")
    if n < 2 * tau + 2:
        raise ValueError(
            f"signals have {n} frames; the cyclicity score with tau={tau} needs at least {2 * tau + 2}"
        )
    if min_length is None:
        min_length = min_interval_length(n)
    min_length = int(min_length)
    if not 1 <= min_length <= n:
        raise ValueError(f"min_length must be in [1, {n}], got {min_length}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("signals contain NaN or infinite values")
    # The DC term is dropped, so removing the mean changes no score; it keeps a
    # constant signal at exactly zero and the sliding sums well scaled.
    x = np.ascontiguousarray(x - x.mean(axis=1, keepdims=True))
    n_sig = x.shape[0]
    # Every batch is exactly _BATCH signals wide (zero rows pad the last one; a zero signal scores 0
    # and is dropped): the matrix products below then have one shape whatever the number of
    # signals, so that a signal's spectrum, and its score, never depend on which batch or tile
    # it came in (a BLAS product's rounding may depend on the operands' shapes).
    n_pad = -(-n_sig // _BATCH) * _BATCH
    if n_pad != n_sig:
        x = np.concatenate([x, np.zeros((n_pad - n_sig, n), np.float64)])
    score = np.full(n_pad, -1.0, np.float64)
    start = np.zeros(n_pad, np.int64)
    stop = np.full(n_pad, n, np.int64)
    peak = np.zeros(n_pad, np.float64)
    lengths = [m for m in range(min_length, n + 1) if m // 2 > tau]
    tables = [_dft_tables(m) for m in lengths]
    d = np.empty(_BATCH, np.float64)
    lo = np.empty(_BATCH, np.float64)
    hi = np.empty(_BATCH, np.float64)
    # Signals go through in batches so that a batch's spectra stay in cache.
    for s0 in range(0, n_pad, _BATCH):
        s1 = s0 + _BATCH
        xt = np.ascontiguousarray(x[s0:s1].T)  # (N, batch): pixels innermost, so the updates vectorise
        for length, (cos_k, sin_k, cos_kt, msin_kt) in zip(lengths, tables, strict=True):
            # DFT of the first interval of this length (k = 1..L//2), for the batch at once; the kernel slides it
            head = xt[:length]
            _slide_length(
                xt,
                cos_kt @ head,
                msin_kt @ head,
                cos_k,
                sin_k,
                length,
                tau,
                float(eps),
                score[s0:s1],
                start[s0:s1],
                stop[s0:s1],
                peak[s0:s1],
                d,
                lo,
                hi,
            )
    score, start, stop, peak = score[:n_sig], start[:n_sig], stop[:n_sig], peak[:n_sig]
    np.maximum(score, 0.0, out=score)
    interval = np.stack([start, stop], axis=1).astype(np.int32)
    return score.astype(np.float32), interval, peak.astype(np.float32)


@functools.lru_cache(maxsize=512)
def _dft_tables(length: int):
    """Twiddles ``e^{2 pi j k / L}`` (k = 1..L//2) as (cos, sin), and the (L//2, L) DFT matrix
    ``e^{-2 pi j k t / L}`` as (cos, -sin); read only (cached and shared between threads)."""
    k = np.arange(1, length // 2 + 1)
    step = 2.0 * np.pi * k / length
    angle = 2.0 * np.pi * np.outer(k, np.arange(length)) / length
    tables = (np.cos(step), np.sin(step), np.cos(angle), -np.sin(angle))
    for table in tables:
        table.flags.writeable = False
    return tables


@jit
def _slide_length(xt, re, im, cos_k, sin_k, length, tau, eps, score, start, stop, peak, d, lo, hi):
    """Slide the length-``length`` DFT along a batch of signals; keep the best interval.

    ``xt`` is (N, P), time-major.  ``re, im`` (half, P) hold ``X_k`` for
    k = 1..half of the interval starting at 0 and are updated in place.
    ``score, start, stop, peak`` (P,) are updated where an interval of this
    length beats the best so far (ties: earlier start, then shorter interval --
    lengths arrive in increasing order).  ``d, lo, hi`` (P,) are scratch.
    """
    n, n_sig = xt.shape
    half = re.shape[0]
    for i in range(n - length + 1):
        for s in range(n_sig):
            lo[s] = 0.0
            hi[s] = 0.0
        if i == 0:
            _fold_band(re, im, 0, tau, lo)
            _fold_band(re, im, tau, half, hi)
        else:
            # X_k(i) = e^{+j 2 pi k / L} (X_k(i-1) - x[i-1] + x[i-1+L]), its |.|^2 folded into the band maximum
            for s in range(n_sig):
                d[s] = xt[i + length - 1, s] - xt[i - 1, s]
            _slide_band(re, im, cos_k, sin_k, d, 0, tau, lo)
            _slide_band(re, im, cos_k, sin_k, d, tau, half, hi)
        for s in range(n_sig):
            h = math.sqrt(hi[s])
            sc = h / (math.sqrt(lo[s]) + eps)
            if sc > score[s] or (sc == score[s] and i < start[s]):
                score[s] = sc
                start[s] = i
                stop[s] = i + length
                peak[s] = 2.0 * h / length
    return 0


@jit
def _fold_band(re, im, k0, k1, acc):
    """``acc[s] = max(acc[s], max_{k0 <= k < k1} |X_k[s]|^2)``."""
    for k in range(k0, k1):
        for s in range(re.shape[1]):
            m = re[k, s] * re[k, s] + im[k, s] * im[k, s]
            acc[s] = m if m > acc[s] else acc[s]


@jit
def _slide_band(re, im, cos_k, sin_k, d, k0, k1, acc):
    """One slide step of frequencies ``k0 <= k < k1`` (``d`` = entering minus leaving sample), each new
    ``|X_k|^2`` folded into ``acc`` (the band's maximum)."""
    for k in range(k0, k1):
        c = cos_k[k]
        sn = sin_k[k]
        for s in range(re.shape[1]):
            r = re[k, s] + d[s]
            q = im[k, s]
            a = r * c - q * sn
            b = r * sn + q * c
            re[k, s] = a
            im[k, s] = b
            m = a * a + b * b
            acc[s] = m if m > acc[s] else acc[s]
