"""Slow, readable reference of the DFT cyclicity score: one FFT per interval."""

from __future__ import annotations

import numpy as np


def interval_scores(
    signal: np.ndarray, tau: int, min_length: int, eps: float
) -> dict[tuple[int, int], float]:
    """Score of every interval [i, j) with j - i >= min_length and a non-empty cyclic band."""
    x = np.asarray(signal, dtype=np.float64)
    n = len(x)
    scores = {}
    for length in range(min_length, n + 1):
        half = length // 2
        if half <= tau:
            continue
        for i in range(0, n - length + 1):
            seg = x[i : i + length]
            seg = seg - seg.mean()
            mag = np.abs(np.fft.fft(seg))[1 : half + 1]  # DC dropped, first half of the spectrum
            slow = mag[:tau].max()
            fast = mag[tau:].max()
            scores[(i, i + length)] = fast / (slow + eps)
    return scores


def naive_cyclicity(signals: np.ndarray, tau: int = 4, min_length: int | None = None, eps: float = 1e-3):
    """Return (score, interval, amplitude, all_scores) for every row of ``signals``."""
    signals = np.atleast_2d(signals)
    n = signals.shape[1]
    if min_length is None:
        min_length = int(np.ceil(n / 2))
    out_score, out_interval, out_amp, tables = [], [], [], []
    for row in signals:
        table = interval_scores(row, tau, min_length, eps)
        # earliest start, then shortest length, among the maxima
        best = max(table.items(), key=lambda kv: (kv[1], -kv[0][0], -(kv[0][1] - kv[0][0])))
        (i, j), score = best
        seg = np.asarray(row[i:j], dtype=np.float64)
        mag = np.abs(np.fft.fft(seg - seg.mean()))[1 : (j - i) // 2 + 1]
        out_score.append(score)
        out_interval.append((i, j))
        out_amp.append(2 * mag[tau:].max() / (j - i))
        tables.append(table)
    return np.array(out_score), np.array(out_interval), np.array(out_amp), tables
