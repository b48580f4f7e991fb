"""Motion veto of cyclic regions: a light blinks in place, a moving object travels (issue 12).

The cyclicity score (:mod:`kernels.cyclicity`) only asks whether a pixel's luminance has
strong fast components over an interval.  A light that blinks has them, but so has a pixel
that a passing car, a cyclist's arm or a bicycle wheel crosses, or one on content that the
camera alignment left slightly misaligned (parallax against the homography of a panning
shot): on real footage such pixels pass the score tests, and the correlated growth
(:func:`tasks.cyclicity.grow_correlated`) spreads them over the whole moving object, since all
its pixels change together.

The two differ in *how* the luminance changes.  Between consecutive frames a blinking light
changes its brightness where it is: no displacement of the earlier frame predicts the later
one.  A moving object, or misaligned texture, changes because its content moved: the earlier
frame moved along the optical flow predicts the later one.  For every region of the grown
cyclic mask we compute DIS optical flow (OpenCV, ``DISOPTICAL_FLOW_PRESET_MEDIUM``, mean-
normalised patches) between each pair of consecutive window frames ``a``, ``b`` on a crop around
the region, both ways, and sum over the pairs

    explained = 1 - sum_t min(max(C_t, C'_t), S_t) / sum_t S_t

where ``S_t`` is the region's static residual ``sum |b - a|``, ``C_t`` the residual of ``b``
predicted from ``a`` moved along the flow, ``sum |b - a(x + flow)|``, and ``C'_t`` that of ``a``
predicted from ``b`` (:func:`kernels.cyclic_veto.motion_compensated_change`), over the pixels
visible in both frames.  Motion must explain the change *both ways*: a lamp switching off looks
like the dark wall beside it sliding over it, but no motion of the dark frame makes the lit
one.  The sum weights each pair by how much the region changed, so the blinks, or the passages
of the object, decide.  A region with ``explained`` at least ``CyclicityParams.motion_veto`` is
dropped.

Measured (this code, crops padded by :data:`CROP_PAD`): the two lamps of
``tasks.synthetic_scene.render_synthetic_clip`` (periods 8 and 6, bright) 0.00-0.01 on a static
camera and even on the unaligned 0.8 m hand-held path; a textured lamp on a wall of the same
texture (``tests/tasks/test_cyclic_veto.py``) 0.02 (0.48 with one-way flow: hence both ways), a
textured blob swinging 6 px there 0.79; the four grown cyclic regions of bikes.mp4's shot 76-137
(homography-aligned: a car passing over the taxi's roof, the poster at the cyclist's head, his
arm, his bicycle) 0.26-0.49.  The default threshold 0.15 sits between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from kernels.cyclic_veto import motion_compensated_change

#: Pixels of context around a region on which the flow is computed (the flow needs texture
#: around the region to follow an object that enters or leaves it).
CROP_PAD = 32


class RegionCrop(NamedTuple):
    """One region on a crop of the window: luminance (T, h, w), visibility (T, h, w), region (h, w)."""

    lum: np.ndarray
    visible: np.ndarray | None
    region: np.ndarray


def _grey(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def motion_explained(lum: np.ndarray, visible: np.ndarray | None, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Share of each labelled region's frame-to-frame change that optical flow explains.

    Parameters
    ----------
    lum : ndarray, (T, h, w) float
        Luminance of the window (0-255).
    visible : ndarray, (T, h, w) bool, optional
        Samples seen by the camera; a pixel counts in a pair only when visible in both frames.
    labels : ndarray, (h, w) int
        Regions 1..``n_labels`` (0: none).
    n_labels : int

    Returns
    -------
    ndarray, (n_labels,) float64
        ``1 - sum_t min(max(C_t, C'_t), S_t) / sum_t S_t`` per region (module docstring), in [0, 1]; 0 for
        a region that never changes.
    """
    lum = np.asarray(lum, np.float32)
    n_frames = lum.shape[0]
    static_sum = np.zeros(n_labels)
    compensated_sum = np.zeros(n_labels)
    if n_frames < 2 or n_labels == 0:
        return static_sum
    small = min(lum.shape[1:]) < 16
    dis = None if small else cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    zero = np.zeros((*lum.shape[1:], 2), np.float32)
    grey = [_grey(f) for f in lum]
    for t in range(n_frames - 1):
        valid = np.ones(lum.shape[1:], bool) if visible is None else visible[t] & visible[t + 1]
        backward = zero if dis is None else dis.calc(grey[t + 1], grey[t], None)
        forward = zero if dis is None else dis.calc(grey[t], grey[t + 1], None)
        static, later, earlier = motion_compensated_change(
            lum[t], lum[t + 1], backward, labels, valid, n_labels, reverse_flow=forward)
        static_sum += static
        compensated_sum += np.minimum(np.maximum(later, earlier), static)
    return np.where(static_sum > 0, 1.0 - compensated_sum / np.where(static_sum > 0, static_sum, 1.0), 0.0)


def region_motion(crops: Sequence[RegionCrop]) -> np.ndarray:
    """:func:`motion_explained` of each region on its own crop, in order."""
    out = np.zeros(len(crops))
    for i, crop in enumerate(crops):
        out[i] = motion_explained(crop.lum, crop.visible, crop.region.astype(np.int64), 1)[0]
    return out


class Veto(NamedTuple):
    """Outcome of :func:`veto_moving_regions`."""

    vetoed: np.ndarray  #: (n,) bool, per region
    explained: np.ndarray  #: (n,) float64, per region


def veto_moving_regions(crops: Sequence[RegionCrop], threshold: float | None) -> Veto:
    """Which regions move rather than blink: ``explained >= threshold`` (None: none vetoed).

    Examples
    --------
    >>> t = np.arange(24)[:, None, None]
    >>> lamp = np.zeros((24, 20, 20), np.float32) + 40
    >>> lamp[:, 6:14, 6:14] += 150 * (t % 6 < 3)                      # blinks in place
    >>> region = np.zeros((20, 20), bool); region[6:14, 6:14] = True
    >>> veto_moving_regions([RegionCrop(lamp, None, region)], 0.15).vetoed.tolist()
    [False]
    """
    explained = region_motion(crops) if threshold is not None else np.zeros(len(crops))
    vetoed = explained >= threshold if threshold is not None else np.zeros(len(crops), bool)
    return Veto(vetoed, explained)
