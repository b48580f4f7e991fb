"""The labels and the CRF terms of the displacement field (Halperin et al. 2021, Sec. 4.2).

A label is a 2-D displacement vector.  Its data term at pixel p is

    U_p(x) = ||F(p) - F(p + x)||^2 * (1 + lambda * | ||x|| - ||g_p|| |)

(the feature term averaged with ||F(p) - F(p - x)||^2 where both sides lie in the region)
with F the per-pixel features (sampled bilinearly at p + x) and g_p the initial
guess; the pair term between neighbours p, q is

    w_pq * V(x_p, x_q),  V(a, b) = ((1 - cos(a, b)) / 2) ** (1/2) + | ||a|| - ||b|| | / (||a|| + ||b||)

(the square root of the cosine dissimilarity, as in the paper, plus a relative
length difference so that labels of one direction but different lengths are
not free to mix), and w_pq a bilateral kernel of distance and colour.  The
energy is minimised by :func:`kernels.alpha_expansion.alpha_expansion`.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = ["label_vectors", "label_compatibility", "displacement_unary", "bilateral_edge_weights"]


def label_vectors(lengths, direction, max_angle=30.0, n_angles=9):
    """(L, 2) float64 displacements: each length along ``direction`` turned by every angle in [-max, max].

    Angles are in degrees, positive from +x towards +y (image axes); lengths in pixels.
    """
    lengths = np.asarray(lengths, np.float64).ravel()
    if lengths.size == 0 or (lengths <= 0).any():
        raise ValueError("lengths must be positive and not empty")
    d = np.asarray(direction, np.float64)
    norm = np.hypot(d[0], d[1])
    if not norm > 0:
        raise ValueError("direction must be non-zero")
    d = d / norm
    angles = np.radians(np.linspace(-max_angle, max_angle, n_angles)) if n_angles > 1 else np.zeros(1)
    out = []
    for a in angles:
        c, s = np.cos(a), np.sin(a)
        r = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
        for length in lengths:
            out.append(length * r)
    return np.array(out)


def label_compatibility(vectors):
    """(L, L) float32 matrix V(a, b) of the module docstring (0 on the diagonal, symmetric)."""
    v = np.asarray(vectors, np.float64)
    n = np.hypot(v[:, 0], v[:, 1])
    if (n <= 0).any():
        raise ValueError("label vectors must be non-zero")
    cos = (v @ v.T) / (n[:, None] * n[None, :])
    ang = np.sqrt(np.clip((1.0 - cos) / 2.0, 0.0, 1.0))
    rel = np.abs(n[:, None] - n[None, :]) / (n[:, None] + n[None, :])
    out = ang + rel
    np.fill_diagonal(out, 0.0)
    return out.astype(np.float32)


@jit
def _bilinear_sq_diff(features, y, x, qx, qy):
    """||F(y, x) - F(qy, qx)||^2 with F sampled bilinearly (q inside the grid)."""
    h, w, c = features.shape
    x0 = min(int(qx), w - 2) if w > 1 else 0
    y0 = min(int(qy), h - 2) if h > 1 else 0
    fx = qx - x0
    fy = qy - y0
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    diff = 0.0
    for ch in range(c):
        v = ((1 - fy) * ((1 - fx) * features[y0, x0, ch] + fx * features[y0, x1, ch])
             + fy * ((1 - fx) * features[y1, x0, ch] + fx * features[y1, x1, ch]))
        dv = np.float64(features[y, x, ch]) - v
        diff += dv * dv
    return diff


@jit
def _inside(valid, qx, qy):
    h, w = valid.shape
    if qx < 0.0 or qy < 0.0 or qx > w - 1 or qy > h - 1:
        return False
    return valid[int(qy + 0.5), int(qx + 0.5)] != 0


@jit
def _displacement_unary(features, valid, vectors, guess_norm, scale, length_weight, outside_cost, out):
    h, w, c = features.shape
    n_labels = vectors.shape[0]
    for y in range(h):
        for x in range(w):
            for k in range(n_labels):
                dx = vectors[k, 0] * scale
                dy = vectors[k, 1] * scale
                total = 0.0
                count = 0
                if _inside(valid, x + dx, y + dy):
                    total += _bilinear_sq_diff(features, y, x, x + dx, y + dy)
                    count += 1
                if _inside(valid, x - dx, y - dy):
                    total += _bilinear_sq_diff(features, y, x, x - dx, y - dy)
                    count += 1
                diff = total / count if count > 0 else outside_cost
                length = np.hypot(vectors[k, 0], vectors[k, 1])
                out[y, x, k] = diff * (1.0 + length_weight * abs(length - guess_norm[y, x]))
    return out


def displacement_unary(features, vectors, guess_norm, scale=1.0, length_weight=0.1, outside_cost=None, valid=None):
    """Data costs U_p(x) of every label: (H, W, L) float32.

    The repetition is checked on both sides: ||F(p) - F(p + x)||^2 and ||F(p) - F(p - x)||^2 are
    averaged over the sides that land on a valid pixel (a copy one period back is as good a
    witness as one period ahead, and near the region's border only one of them exists).

    Parameters
    ----------
    features : ndarray, (H, W, C) float
        F on the CRF grid.
    vectors : ndarray, (L, 2)
        Labels (dx, dy) in full-resolution pixels.
    guess_norm : ndarray, (H, W)
        ||g_p|| in full-resolution pixels.
    scale : float
        Grid pixels per full-resolution pixel (a label moves by ``vectors * scale`` grid pixels).
    length_weight : float
        lambda, per full-resolution pixel.
    outside_cost : float, optional
        The feature term when neither p + x nor p - x is valid; default 4 times the
        mean squared feature norm.
    valid : ndarray of bool, (H, W), optional
        Pixels that may witness a repetition (the region); default all.
    """
    f = np.ascontiguousarray(features, dtype=np.float32)
    if f.ndim != 3:
        raise ValueError(f"features must be (H, W, C), got shape {f.shape}")
    v = np.ascontiguousarray(vectors, dtype=np.float64).reshape(-1, 2)
    g = np.ascontiguousarray(guess_norm, dtype=np.float64)
    if g.shape != f.shape[:2]:
        raise ValueError(f"guess_norm shape {g.shape} differs from the features' {f.shape[:2]}")
    if outside_cost is None:
        outside_cost = 4.0 * float(np.mean(np.sum(f.astype(np.float64) ** 2, axis=2)))
    if valid is None:
        valid = np.ones(f.shape[:2], np.uint8)
    valid = np.ascontiguousarray(valid, dtype=np.uint8)
    if valid.shape != f.shape[:2]:
        raise ValueError(f"valid shape {valid.shape} differs from the features' {f.shape[:2]}")
    out = np.empty(f.shape[:2] + (v.shape[0],), np.float32)
    return _displacement_unary(f, valid, v, g, float(scale), float(length_weight), float(outside_cost), out)


def bilateral_edge_weights(image, components, theta_alpha, theta_beta, pixel_size=1.0):
    """Edge weights of the 8-connected grid for :func:`kernels.alpha_expansion.alpha_expansion`.

    w_pq = exp(-|p - q|^2 / (2 theta_alpha^2) - |I_p - I_q|^2 / (2 theta_beta^2)) for p, q in the
    same component (``components`` > 0 and equal), else 0.  ``pixel_size`` is the grid spacing in
    the units of ``theta_alpha``.

    Returns
    -------
    dict of ndarray
        ``horizontal`` (H, W-1), ``vertical`` (H-1, W), ``diagonal_down_right`` and
        ``diagonal_down_left`` (H-1, W-1), float32.
    """
    im = np.asarray(image, np.float64)
    if im.ndim == 2:
        im = im[..., None]
    comp = np.asarray(components)
    if comp.shape != im.shape[:2]:
        raise ValueError(f"components shape {comp.shape} differs from the image's {im.shape[:2]}")

    def weight(a, b, ca, cb, dist2):
        colour = np.sum((a - b) ** 2, axis=-1)
        w = np.exp(-dist2 * pixel_size**2 / (2 * theta_alpha**2) - colour / (2 * theta_beta**2))
        return np.where((ca > 0) & (ca == cb), w, 0.0).astype(np.float32)

    return {
        "horizontal": weight(im[:, :-1], im[:, 1:], comp[:, :-1], comp[:, 1:], 1.0),
        "vertical": weight(im[:-1], im[1:], comp[:-1], comp[1:], 1.0),
        "diagonal_down_right": weight(im[:-1, :-1], im[1:, 1:], comp[:-1, :-1], comp[1:, 1:], 2.0),
        "diagonal_down_left": weight(im[:-1, 1:], im[1:, :-1], comp[:-1, 1:], comp[1:, :-1], 2.0),
    }
