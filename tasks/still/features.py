"""Per-pixel features F(p) of a still image: colour and oriented gradient energies, PCA-reduced.

The paper (Halperin et al. 2021) compares pixels through the first layers of
VGG-16.  Network weights cannot be downloaded here, so we use features of a
similar kind made by hand: CIELAB colour, and at each of two scales the energy
of the gradient along four orientations (0, 45, 90, 135 degrees), locally
averaged (a small oriented filter bank, like the first convolution layers).
Each channel is standardised and the stack is reduced by PCA; the result is
deterministic (the PCA's pixel sample comes from a fixed seed).
"""

from __future__ import annotations

import cv2
import numpy as np

from schemas.still import FeatureParams

_ORIENTATIONS = np.deg2rad([0.0, 45.0, 90.0, 135.0])


def raw_channels(image: np.ndarray, scales=(1.0, 2.5)) -> np.ndarray:
    """(H, W, 3 + 4 * len(scales)) float32: Lab colour, then oriented gradient energies per scale."""
    rgb = image.astype(np.float32) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) * 100.0
    channels = [lab]
    for sigma in scales:
        g = cv2.GaussianBlur(gray, (0, 0), sigma)
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        for th in _ORIENTATIONS:
            e = (np.float32(np.cos(th)) * gx + np.float32(np.sin(th)) * gy) ** 2
            channels.append(np.sqrt(cv2.GaussianBlur(e, (0, 0), sigma))[..., None])
    return np.concatenate(channels, axis=2)


def pixel_features(image: np.ndarray, params: FeatureParams | None = None) -> np.ndarray:
    """F(p): (H, W, n_components) float32, zero mean, unit total variance per component on average.

    Parameters
    ----------
    image : ndarray, (H, W, 3) uint8 RGB
    params : FeatureParams, optional
    """
    params = params or FeatureParams()
    raw = raw_channels(image, params.scales)
    h, w, c = raw.shape
    flat = raw.reshape(-1, c)
    rng = np.random.default_rng(0)
    n = flat.shape[0]
    sample = flat[rng.choice(n, size=min(n, params.pca_samples), replace=False)].astype(np.float64)
    mean = sample.mean(axis=0)
    std = sample.std(axis=0)
    std[std < 1e-6] = 1.0
    z = (sample - mean) / std
    # principal axes from the (c, c) covariance (the same axes as an SVD of z, 100x cheaper)
    variances, axes = np.linalg.eigh(z.T @ z / max(len(sample), 1))
    order = np.argsort(variances)[::-1]
    k = min(params.n_components, c)
    top = axes[:, order[:k]]  # (c, k)
    basis = (top / std[:, None]).astype(np.float32)  # standardise then project
    shift = (mean / std) @ top
    feats = flat @ basis - shift.astype(np.float32)
    # one common scale: features of a typical pixel differ by O(1)
    scale = float(np.sqrt(np.clip(variances[order[:k]], 0, None).sum()))
    feats /= np.float32(max(scale, 1e-6))
    return np.ascontiguousarray(feats.reshape(h, w, k))
