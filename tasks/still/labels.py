"""Step 3 of the method: labels and the displacement field of one region (Halperin et al. 2021, Sec. 4.2).

The labels are the 1-D path's displacement lengths along the main direction,
each also turned by up to +-``max_angle`` degrees.  Every pixel gets an initial
guess g by nearest-neighbour extrapolation of the 1-D displacements (its
projection onto the sampled line), and one label by minimising the CRF energy
of :mod:`kernels.still.crf` with our alpha-expansion on the 8-connected grid,
the image scaled so that its longer side is ``grid_long_side``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kernels.alpha_expansion import alpha_expansion
from kernels.still.crf import bilateral_edge_weights, displacement_unary, label_compatibility, label_vectors
from schemas.still import CRFParams
from tasks.still.repetitions import Repetition

#: Unary costs are divided by their mean over the region and capped here (robust to outliers).
UNARY_CAP = 3.0


@dataclass
class RegionLabels:
    vectors: np.ndarray  # (L, 2) float64 label displacements (pixels)
    labels: np.ndarray  # (H, W) int32 full resolution, -1 outside the region
    energy: float
    n_cycles: int


def resize_channels(array, size):
    """``cv2.resize`` with INTER_AREA for any number of channels (OpenCV takes at most 4 at once)."""
    if array.shape[1::-1] == tuple(size):
        return array
    parts = [cv2.resize(array[..., c : c + 4], size, interpolation=cv2.INTER_AREA) for c in range(0, array.shape[2], 4)]
    return np.dstack([p if p.ndim == 3 else p[..., None] for p in parts])


def grid_scale(shape, long_side: int) -> float:
    return min(1.0, long_side / max(shape[:2]))


def choose_lengths(displacements, max_lengths):
    """Distinct rounded 1-D displacements, at most ``max_lengths`` spread over their range (pixels)."""
    vals = np.unique(np.rint(np.asarray(displacements, np.float64)))
    vals = vals[vals > 0]
    if len(vals) <= max_lengths:
        return vals
    picks = np.quantile(np.rint(displacements), np.linspace(0.0, 1.0, max_lengths))
    return np.unique(np.rint(picks))


def guess_lengths(rep: Repetition, xs, ys):
    """||g|| at full-resolution positions: the 1-D displacement at the nearest sample of the line."""
    t = (xs - rep.centre[0]) * rep.direction[0] + (ys - rep.centre[1]) * rep.direction[1]
    idx = np.clip(np.rint((t - rep.positions[0]) / rep.step).astype(int), 0, len(rep.positions) - 1)
    return rep.displacements[idx]


def solve_labels(unary, vectors, weights, init, params: CRFParams):
    """Alpha-expansion of the region's CRF; returns (labels, energy, n_cycles)."""
    res = alpha_expansion(
        unary,
        label_compatibility(vectors),
        pairwise_weight=params.pairwise_weight,
        edge_weights=weights,
        connectivity=8,
        init_labels=init,
        max_cycles=params.max_cycles,
    )
    return res.labels, float(res.energy), int(res.n_cycles)


def region_problem(image, features, region_mask, rep: Repetition, params: CRFParams):
    """The CRF of one region on the scaled grid: (unary, vectors, edge weights, init labels, scale, grid mask)."""
    h, w = region_mask.shape
    scale = grid_scale(region_mask.shape, params.grid_long_side)
    gh, gw = max(2, int(round(h * scale))), max(2, int(round(w * scale)))
    sx, sy = gw / w, gh / h
    scale = 0.5 * (sx + sy)
    fg = resize_channels(features, (gw, gh))
    ig = cv2.resize(image, (gw, gh), interpolation=cv2.INTER_AREA)
    mg = cv2.resize(region_mask.astype(np.uint8), (gw, gh), interpolation=cv2.INTER_NEAREST) > 0
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    g = guess_lengths(rep, (xx + 0.5) / sx - 0.5, (yy + 0.5) / sy - 0.5)
    vectors = label_vectors(choose_lengths(rep.displacements, params.max_lengths), rep.direction,
                            params.max_angle, params.n_angles)
    unary = displacement_unary(fg, vectors, g, scale, params.length_weight, valid=mg)
    if params.unary_window > 0:
        # a patch comparison: the paper's VGG features see a window, our per-pixel ones hardly do
        unary = cv2.GaussianBlur(unary, (0, 0), params.unary_window * scale)
    inside = unary[mg]
    norm = float(inside.mean()) if inside.size else 1.0
    unary = np.minimum(unary / max(norm, 1e-12), UNARY_CAP).astype(np.float32)
    if params.direction_prior > 0 and params.max_angle > 0:
        # where the features cannot tell (flat areas), keep to the main direction
        cos = vectors @ rep.direction / np.linalg.norm(vectors, axis=1)
        turn = (1.0 - cos) / max(1.0 - np.cos(np.radians(params.max_angle)), 1e-9)
        unary += (params.direction_prior * turn).astype(np.float32)[None, None, :]
    unary[~mg] = 0.0
    n_comp, comps = cv2.connectedComponents(mg.astype(np.uint8), connectivity=8)
    weights = bilateral_edge_weights(ig, comps * mg, params.theta_alpha, params.theta_beta, pixel_size=1.0 / scale)
    # initial labels: the label closest to the guess g (along the direction)
    gvec = g[..., None] * rep.direction[None, None, :]
    dist = np.linalg.norm(gvec[..., None, :] - vectors[None, None, :, :], axis=-1)
    init = np.argmin(dist, axis=-1).astype(np.int32)
    return unary, vectors, weights, init, scale, mg


def assign_labels(image, features, region_mask, rep: Repetition, params: CRFParams | None = None) -> RegionLabels:
    """One label per pixel of ``region_mask`` (full resolution), -1 elsewhere."""
    params = params or CRFParams()
    unary, vectors, weights, init, _, mg = region_problem(image, features, region_mask, rep, params)
    labels, energy, n_cycles = solve_labels(unary, vectors, weights, init, params)
    h, w = region_mask.shape
    full = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    full = np.where(region_mask, full, -1).astype(np.int32)
    return RegionLabels(vectors, full, energy, n_cycles)
