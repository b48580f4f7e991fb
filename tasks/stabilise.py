"""Geometric stabilisation of a display segment by per-frame homographies.

Depth errors leave a warped segment jittering around its place in the
reference view.  Following Yan et al. (CVPR 2017, Sec. 5), static features
inside and around the segment are tracked with KLT, and every frame is mapped
onto the reference frame by the homography that best aligns those tracks.

Pure functions on numpy arrays (OpenCV for feature detection, optical flow,
RANSAC and warping); no store I/O.  The render task calls
:func:`stabilise_segment` on the crop around each segment.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "StabiliseResult",
    "fit_homography_dlt",
    "homography_is_plausible",
    "select_static_tracks",
    "stabilise_segment",
    "track_features",
]


class StabiliseResult(NamedTuple):
    """Output of :func:`stabilise_segment`.

    Attributes
    ----------
    video : ndarray, shape (T, H, W, 3), uint8
        Frames warped into the reference frame's geometry (0 where the warp
        has no data).
    visible : ndarray, shape (T, H, W), bool
        True where the warped frame holds data: inside the warped image and,
        if an input visibility mask was given, where it was visible.
    homographies : ndarray, shape (T, 3, 3), float64
        ``homographies[t]`` maps pixel coordinates ``(x, y, 1)`` of frame
        ``t`` to the reference frame (``[2, 2] == 1``); the identity for the
        reference and for frames without enough tracks.
    n_tracks : int
        Number of static tracks kept (long and still enough).
    stabilised : bool
        False when there were too few static tracks to fit any homography;
        then every homography is the identity and ``video`` is the input.
    frame_fitted : ndarray, shape (T,), bool
        True for frames whose homography was fitted (and for the reference).
    """

    video: np.ndarray
    visible: np.ndarray
    homographies: np.ndarray
    n_tracks: int
    stabilised: bool
    frame_fitted: np.ndarray


# --------------------------------------------------------------------------
# Building blocks.


def track_features(
    gray,
    reference_index,
    region,
    *,
    max_features=400,
    quality_level=0.01,
    min_distance=5,
    win_size=21,
    max_level=3,
    max_fb_error=1.0,
):
    """KLT tracks of corners detected in the reference frame.

    Parameters
    ----------
    gray : ndarray, shape (T, H, W), uint8
        Grey-level frames.
    reference_index : int
        Frame in which corners are detected (Shi-Tomasi,
        ``cv2.goodFeaturesToTrack``); they are then followed forwards and
        backwards frame by frame with pyramidal Lucas-Kanade
        (``cv2.calcOpticalFlowPyrLK``).
    region : ndarray, shape (H, W), bool
        Where corners may be detected.
    max_features, quality_level, min_distance : optional
        Corner detector settings (count, relative corner strength, spacing
        in px); defaults 400, 0.01, 5.
    win_size, max_level : int, optional
        Lucas-Kanade window side in px (default 21) and pyramid levels
        (default 3).
    max_fb_error : float, optional
        A track ends when tracking a point one frame on and back again misses
        its start by more than this many px (default 1.0), or when LK fails.

    Returns
    -------
    ndarray, shape (T, N, 2), float64
        ``(x, y)`` pixel positions of the N tracks, NaN in frames where a
        track does not exist.  Every track exists in the reference frame and
        over one contiguous run of frames around it.
    """
    T = gray.shape[0]
    corners = cv2.goodFeaturesToTrack(
        gray[reference_index],
        maxCorners=int(max_features),
        qualityLevel=float(quality_level),
        minDistance=float(min_distance),
        mask=region.astype(np.uint8) * 255,
        blockSize=7,
    )
    if corners is None:
        return np.full((T, 0, 2), np.nan)
    n = corners.shape[0]
    tracks = np.full((T, n, 2), np.nan)
    tracks[reference_index] = corners.reshape(n, 2)
    lk = dict(
        winSize=(int(win_size), int(win_size)),
        maxLevel=int(max_level),
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    )
    for step in (1, -1):
        alive = np.ones(n, dtype=bool)
        t = reference_index
        while 0 <= t + step < T and alive.any():
            ids = np.flatnonzero(alive)
            p0 = tracks[t, ids].astype(np.float32).reshape(-1, 1, 2)
            p1, ok1, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t + step], p0, None, **lk)
            p0b, ok2, _ = cv2.calcOpticalFlowPyrLK(gray[t + step], gray[t], p1, None, **lk)
            fb = np.linalg.norm((p0b - p0).reshape(-1, 2), axis=1)
            good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (fb <= max_fb_error)
            tracks[t + step, ids[good]] = p1.reshape(-1, 2)[good]
            alive[ids[~good]] = False
            t += step
    return tracks


def select_static_tracks(tracks, *, min_track_length=10, max_track_std=2.0):
    """Tracks that are long and still enough to belong to the background.

    Parameters
    ----------
    tracks : ndarray, shape (T, N, 2), float
        ``(x, y)`` positions, NaN where a track is absent.
    min_track_length : int, optional
        Minimum number of frames a track must exist in (default 10).
    max_track_std : float, optional
        Largest standard deviation (px) of a track's x and of its y
        coordinates over its frames (default 2.0).

    Returns
    -------
    ndarray, shape (N,), bool
        True for the kept tracks.

    Notes
    -----
    Yan et al. (2017), Sec. 5: "tracks lasting at least 10 frames whose
    coordinates have a standard deviation below 2 pixels" are static scene
    points; moving objects produce longer excursions and are dropped.

    Examples
    --------
    >>> tr = np.zeros((12, 3, 2))
    >>> tr[:, 1, 0] = np.arange(12)          # moves 1 px per frame
    >>> tr[:5, 2] = np.nan                   # only 7 frames long
    >>> select_static_tracks(tr).tolist()
    [True, False, False]
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[2] != 2:
        raise ValueError(f"tracks must have shape (T, N, 2), got {tracks.shape}")
    present = np.isfinite(tracks).all(axis=2)
    length = present.sum(axis=0)
    keep = length >= int(min_track_length)
    if not keep.any():
        return keep
    std = np.nanstd(np.where(present[..., None], tracks, np.nan)[:, keep], axis=0)
    keep[keep] = (std[:, 0] < max_track_std) & (std[:, 1] < max_track_std)
    return keep


def fit_homography_dlt(src, dst):
    """Homography mapping ``src`` to ``dst`` by the normalised DLT.

    Parameters
    ----------
    src, dst : ndarray, shape (N, 2), float
        Corresponding ``(x, y)`` points, N >= 4, not all collinear.

    Returns
    -------
    ndarray, shape (3, 3), float64
        ``H`` with ``dst ~ H src`` in homogeneous coordinates, ``H[2, 2] ==
        1``.

    Notes
    -----
    Hartley and Zisserman, *Multiple View Geometry*, 2nd ed., Alg. 4.2: both
    point sets are translated to their centroid and scaled to a mean
    distance of sqrt(2); the homography is the right singular vector of the
    2N x 9 DLT system for the smallest singular value (the linear least
    squares solution with ``||h|| = 1``), then de-normalised.

    Examples
    --------
    >>> H = np.array([[1.0, 0.1, 5.0], [-0.05, 1.0, 2.0], [1e-4, 0.0, 1.0]])
    >>> src = np.array([[0, 0], [100, 0], [0, 80], [100, 80], [50, 40.0]])
    >>> d = np.c_[src, np.ones(5)] @ H.T
    >>> bool(np.allclose(fit_homography_dlt(src, d[:, :2] / d[:, 2:]), H))
    True
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 4:
        raise ValueError(f"src and dst must both have shape (N, 2) with N >= 4, got {src.shape}, {dst.shape}")

    def normaliser(p):
        c = p.mean(axis=0)
        d = np.sqrt(((p - c) ** 2).sum(axis=1)).mean()
        s = np.sqrt(2.0) / d if d > 0 else 1.0
        return np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])

    Ts, Td = normaliser(src), normaliser(dst)
    ps = np.c_[src, np.ones(len(src))] @ Ts.T
    pd = np.c_[dst, np.ones(len(dst))] @ Td.T
    n = len(src)
    # Rows of  u = (h1 . p) / (h3 . p),  v = (h2 . p) / (h3 . p)  cleared of
    # the denominator: h1 . p - u h3 . p = 0 and h2 . p - v h3 . p = 0.
    M = np.zeros((2 * n, 9))
    u, v = pd[:, 0], pd[:, 1]
    M[0::2, 0:3] = ps
    M[0::2, 6:9] = -u[:, None] * ps
    M[1::2, 3:6] = ps
    M[1::2, 6:9] = -v[:, None] * ps
    _, _, Vt = np.linalg.svd(M)
    Hn = Vt[-1].reshape(3, 3)
    H = np.linalg.solve(Td, Hn @ Ts)
    if abs(H[2, 2]) < 1e-12:
        raise ValueError("degenerate point configuration: H[2, 2] vanishes")
    return H / H[2, 2]


# --------------------------------------------------------------------------
# Public entry.


def stabilise_segment(
    video,
    mask,
    reference_index,
    *,
    min_track_length=10,
    max_track_std=2.0,
    margin=15,
    visible=None,
    min_points=8,
    ransac_threshold=1.0,
    max_features=400,
):
    """Align every frame of a segment to the reference frame.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8
        Frames (RGB or BGR; only their grey levels are tracked), already
        warped to the reference view.
    mask : ndarray, shape (H, W), bool
        The segment.  Features are detected in the segment dilated by
        ``margin`` px ("inside and around" it).
    reference_index : int
        Frame the others are aligned to, 0 <= reference_index < T.
    min_track_length : int, optional
        Frames a track must last to be used (default 10).
    max_track_std : float, optional
        Largest standard deviation of a used track's x and y coordinates, in
        px (default 2.0): the static-track rule.
    margin : int, optional
        Dilation radius of ``mask`` in px (default 15).
    visible : ndarray, shape (T, H, W), bool, optional
        Where the input frames hold data (the warp stage's mask); corners are
        detected only where the reference frame is visible, and the mask is
        warped along with the frames.  Default: everything visible.
    min_points : int, optional
        Fewest static tracks a frame needs for its homography (default 8,
        at least 4); frames with fewer keep the identity.
    ransac_threshold : float, optional
        RANSAC inlier threshold in px (default 1.0).
    max_features : int, optional
        Most corners detected (default 400).

    Returns
    -------
    StabiliseResult
        Warped frames, their visibility, homographies (T, 3, 3), the number
        of static tracks and whether anything was fitted.

    Raises
    ------
    ValueError, TypeError
        On wrong shapes, dtypes or out-of-range parameters.

    Notes
    -----
    Yan et al., CVPR 2017, Sec. 5 (stabilisation).  KLT tracks are kept by
    :func:`select_static_tracks`.  For frame ``t`` the kept tracks present
    in ``t`` (all are present in the reference) give correspondences; RANSAC
    (``cv2.findHomography``) rejects outliers and :func:`fit_homography_dlt`
    refits the inliers by linear least squares.  A fit that moves a corner
    of the tracked region's box farther than the farthest inlier track moved,
    plus ``2 * max_track_std``, is rejected and the frame keeps the identity:
    static tracks need only a small correction, so a larger one is an
    extrapolation from tracks bunched in one part of the region (on a tripod
    clip's billboard such fits moved the box corners by 16-61 px and put
    colours no input frame had into the loop).  Frames are resampled with
    ``cv2.warpPerspective`` (bilinear); an output pixel is visible when all
    the input pixels it interpolates are.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> still = cv2.GaussianBlur(rng.integers(0, 256, (60, 80)).astype(np.uint8), (0, 0), 1.5)
    >>> video = np.repeat(still[None, :, :, None], 3, axis=3).repeat(12, axis=0)
    >>> mask = np.zeros((60, 80), bool); mask[20:40, 25:55] = True
    >>> res = stabilise_segment(video, mask, 5)
    >>> res.stabilised, bool(np.allclose(res.homographies, np.eye(3), atol=1e-3))
    (True, True)
    """
    video = np.asarray(video)
    mask = np.asarray(mask)
    if video.ndim != 4 or video.shape[3] != 3:
        raise ValueError(f"video must have shape (T, H, W, 3), got {video.shape}")
    if video.dtype != np.uint8:
        raise TypeError(f"video must be uint8, got {video.dtype}")
    T, H, W, _ = video.shape
    if T == 0 or H == 0 or W == 0:
        raise ValueError(f"video must not be empty, got shape {video.shape}")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be boolean, got {mask.dtype}")
    if mask.shape != (H, W):
        raise ValueError(f"mask must have shape {(H, W)}, got {mask.shape}")
    if not (isinstance(reference_index, (int, np.integer)) and 0 <= reference_index < T):
        raise ValueError(f"reference_index must be an integer in [0, {T}), got {reference_index!r}")
    reference_index = int(reference_index)
    if visible is None:
        visible = np.ones((T, H, W), dtype=bool)
    else:
        visible = np.asarray(visible)
        if visible.dtype != np.bool_ or visible.shape != (T, H, W):
            raise ValueError(
                f"visible must be a boolean (T, H, W) = {(T, H, W)} mask, got {visible.dtype} {visible.shape}"
            )
    if int(min_track_length) < 2:
        raise ValueError(f"min_track_length must be at least 2, got {min_track_length}")
    if not float(max_track_std) > 0:
        raise ValueError(f"max_track_std must be positive, got {max_track_std}")
    if int(margin) < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    if int(min_points) < 4:
        raise ValueError(f"min_points must be at least 4, got {min_points}")
    if not float(ransac_threshold) > 0:
        raise ValueError(f"ransac_threshold must be positive, got {ransac_threshold}")

    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video])
    margin = int(margin)
    if margin > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        region = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    else:
        region = mask.copy()
    region &= visible[reference_index]

    homographies = np.tile(np.eye(3), (T, 1, 1))
    fitted = np.zeros(T, dtype=bool)
    fitted[reference_index] = True
    n_tracks = 0
    if region.any() and T >= min_track_length:
        tracks = track_features(gray, reference_index, region, max_features=max_features)
        keep = select_static_tracks(tracks, min_track_length=min_track_length, max_track_std=max_track_std)
        tracks = tracks[:, keep]
        n_tracks = int(keep.sum())
    stabilised = n_tracks >= min_points
    if not stabilised:
        return StabiliseResult(video.copy(), visible.copy(), homographies, n_tracks, False, fitted)

    ref_points = tracks[reference_index]
    rows, cols = np.nonzero(region)
    box = np.array(
        [[cols.min(), rows.min()], [cols.max(), rows.min()], [cols.min(), rows.max()], [cols.max(), rows.max()]],
        dtype=np.float64,
    )
    for t in range(T):
        if t == reference_index:
            continue
        present = np.isfinite(tracks[t]).all(axis=1)
        if present.sum() < min_points:
            continue
        src = tracks[t, present]
        dst = ref_points[present]
        _, inliers = cv2.findHomography(
            src.astype(np.float32), dst.astype(np.float32), cv2.RANSAC, float(ransac_threshold)
        )
        if inliers is None:
            continue
        inliers = inliers.ravel().astype(bool)
        if inliers.sum() < min_points:
            continue
        fit = fit_homography_dlt(src[inliers], dst[inliers])
        if not homography_is_plausible(fit, box, src[inliers], dst[inliers], max_track_std):
            continue
        homographies[t] = fit
        fitted[t] = True

    out = np.empty_like(video)
    out_visible = np.empty_like(visible)
    for t in range(T):
        if np.array_equal(homographies[t], np.eye(3)):
            out[t] = video[t]
            out_visible[t] = visible[t]
            continue
        out[t] = cv2.warpPerspective(
            video[t],
            homographies[t],
            (W, H),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        # Bilinear weights are exact for a constant image, so 255 survives
        # only where all interpolated input pixels are visible and inside.
        warped_mask = cv2.warpPerspective(
            visible[t].astype(np.uint8) * 255,
            homographies[t],
            (W, H),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        out_visible[t] = warped_mask == 255
    return StabiliseResult(out, out_visible, homographies, n_tracks, True, fitted)



def homography_is_plausible(homography, corners, src, dst, max_track_std):
    """Whether a fitted homography moves the region no farther than its tracks moved.

    Parameters
    ----------
    homography : ndarray, shape (3, 3)
        Maps frame ``t`` pixel coordinates to the reference frame.
    corners : ndarray, shape (K, 2), float64
        ``(x, y)`` corners of the tracked region's box.
    src, dst : ndarray, shape (N, 2)
        The inlier tracks in frame ``t`` and in the reference frame.
    max_track_std : float
        The static-track rule's largest standard deviation (px).

    Returns
    -------
    bool
        False when some corner moves farther than ``max |src - dst| + 2 * max_track_std``:
        a correction larger than any static track needs is an extrapolation.

    Examples
    --------
    >>> box = np.array([[0, 0], [99, 0], [0, 99], [99, 99]], float)
    >>> pts = np.array([[10, 10], [20, 10], [10, 20], [20, 20]], float)
    >>> homography_is_plausible(np.eye(3), box, pts, pts, 2.0)
    True
    >>> tilt = np.array([[1, 0, 0], [0, 1, 0], [0.004, 0, 1.0]])  # tracks move <= 1.5 px, far corner ~40 px
    >>> homography_is_plausible(tilt, box, pts, pts, 2.0)
    False
    """
    moved = cv2.perspectiveTransform(np.asarray(corners, np.float64)[None], homography)[0]
    box_shift = float(np.linalg.norm(moved - corners, axis=1).max())
    track_shift = float(np.linalg.norm(np.asarray(src, np.float64) - np.asarray(dst, np.float64), axis=1).max())
    return box_shift <= track_shift + 2.0 * float(max_track_std)
