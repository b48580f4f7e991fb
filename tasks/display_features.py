"""Per-segment features and the random forest that finds displays and billboards (Yan et al., CVPR 2017, Sec. 4.2).

The hierarchical segmentation (:func:`kernels.segmentation.hierarchical_segmentation`)
cuts the window into regions that change alike; this module describes each
region by a fixed-length feature vector and classifies it as *display* (digital
sign, screen, billboard with changing content) or not with a random forest.
The display mask of a clip is the union, over the kept segmentation levels, of
the segments classified positive.

Pure functions on numpy arrays (no store I/O); the Prefect task that reads the
store and writes ``display_mask`` wraps them.

Features
--------
All colour statistics use only visible samples (``visible[t, y, x]``).  RGB is
in 0-255 units; CIELAB comes from OpenCV's float RGB->Lab conversion (D65,
``L`` in 0-100).

====================  ==========================================================================
name                  definition
====================  ==========================================================================
``lab_l_mean``        mean CIELAB L over the segment's visible pixels in all frames (0-100)
``lab_a_mean``        mean CIELAB a (green-red)
``lab_b_mean``        mean CIELAB b (blue-yellow)
``lab_l_std``         standard deviation of L over the same samples (spatial + temporal spread)
``lab_a_std``         standard deviation of a
``lab_b_std``         standard deviation of b
``saturation``        mean HSV saturation ``(max - min) / max`` of RGB (0 for black), in [0, 1]
``brightness``        mean HSV value ``max(R, G, B) / 255``, in [0, 1]
``delta1_ones``       fraction of ones among the valid bits of ``Delta1`` of the segment's temporal
                      pattern (computed from its mean RGB colour per frame, theta = 100): how often
                      the content changes 4 frames apart; :func:`kernels.binary_patterns.delta1_gamma`
``delta2_ones``       the same for ``Delta2`` (changes half a window apart)
``mean_abs_diff``     mean over pixels and consecutive visible frame pairs of the channel-mean
                      ``|I(t+1) - I(t)|`` (0-255): frame-to-frame activity
``temporal_std``      mean over the segment's pixels of the per-pixel standard deviation over its
                      visible frames (channel mean, 0-255); pixels seen in < 2 frames are left out
``aperiodic_change``  ``min over lags p in [2, T//2] of mean_t ||m(t+p) - m(t)||_2`` with ``m`` the
                      segment's mean RGB per frame (0-255): change that no period explains; near
                      0 for static and for periodic regions (fountains, blinkers), large for
                      displays.  0 when ``T < 4``
``area_fraction``     pixel count / (H W)
``bbox_fill``         pixel count / area of the axis-aligned bounding box
``aspect_ratio``      long side / short side of the minimum-area rotated rectangle around the
                      pixel squares (>= 1)
``rectangularity``    pixel count / area of that minimum-area rectangle (1 for any rectangle)
``solidity``          pixel count / area of the convex hull of the pixel squares
``centroid_x``        mean of ``(x + 0.5) / W`` over the pixels, in (0, 1)
``centroid_y``        mean of ``(y + 0.5) / H``
``flow_speed``        mean optical-flow speed (pixels per frame) over the segment's visible pixels in
                      the sampled frame pairs (DIS flow, OpenCV, on the half-size grey frames; pairs
                      ``(t, t + 2)`` for ``t = 0, 4, 8, ...``)
``flow_coherence``    ``sum_pairs |sum_pixels f| / sum_pairs sum_pixels |f|`` with ``f`` the flow
                      vectors of the segment faster than 0.5 pixels per frame (slower ones count
                      as 0 in the numerator, by their speed in the denominator): 1 when the
                      segment's content moves as one rigid piece (a car, a scrolling ticker), near
                      0 for incoherent change or no motion
``change_coverage``   mean, over the sampled pairs in which at least 2 % of the segment changed
                      (channel-mean ``|I(t+2) - I(t)| > 25``), of the fraction that changed: a
                      screen changes as a whole, a walker's trail one body at a time; 0 if never
``change_travel``     standard deviation over those pairs of the centroid of the changed pixels,
                      over the square root of the segment's area: the changing part travels along a
                      walker's trail, stays centred in a screen; 0 with fewer than 2 such pairs
``boundary_edges``    mean over the segment's boundary pixels (those with a 4-neighbour in another
                      segment) of the fraction of sampled frames with an edge there (Sobel gradient
                      magnitude of the grey frame > 40 within one pixel): a screen's frame is always
                      there, a walker's trail is outlined only while someone passes; 0 without a
                      boundary
====================  ==========================================================================

Segments that are mostly invisible -- more than half of their pixels invisible
in more than half of the frames -- are skipped: their row is all NaN.  The
training and prediction functions drop NaN rows (a skipped segment is never
classified positive).

Model persistence uses skops (``skops.io``), never pickle: loading checks every
type named in the file against :data:`TRUSTED_TYPES` (plus skops' own defaults:
scikit-learn estimators, numpy, builtins) before anything is constructed, and
raises :class:`UntrustedModelError` otherwise.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

from kernels.binary_patterns import DELTA1_ALPHA, DELTA1_BETA, DELTA2_ALPHA, descriptor_layout
from kernels.segment_statistics import (
    PIXEL_COLUMNS,
    change_map,
    flow_channels,
    level_change_sums,
    level_frame_sums,
    pixel_statistics,
    segment_row_extents,
    written_zeros,
)
from tasks.threads import thread_budget

__all__ = [
    "FEATURE_NAMES",
    "TRUSTED_TYPES",
    "ModelFileError",
    "UntrustedModelError",
    "segment_features",
    "level_features",
    "window_statistics",
    "map_on_threads",
    "segment_targets",
    "rasterise_polygons",
    "train_display_classifier",
    "cross_validated_scores",
    "out_of_fold_predictions",
    "save_model",
    "load_model",
    "predict_display_mask",
]

FEATURE_NAMES: tuple[str, ...] = (
    "lab_l_mean",
    "lab_a_mean",
    "lab_b_mean",
    "lab_l_std",
    "lab_a_std",
    "lab_b_std",
    "saturation",
    "brightness",
    "delta1_ones",
    "delta2_ones",
    "mean_abs_diff",
    "temporal_std",
    "aperiodic_change",
    "area_fraction",
    "bbox_fill",
    "aspect_ratio",
    "rectangularity",
    "solidity",
    "centroid_x",
    "centroid_y",
    "flow_speed",
    "flow_coherence",
    "change_coverage",
    "change_travel",
    "boundary_edges",
)

#: Types a saved display classifier may contain beyond skops' defaults.
TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)


class ModelFileError(ValueError):
    """The file is not a readable skops model of a display classifier."""


class UntrustedModelError(ModelFileError):
    """The model file names types outside the trusted list; nothing was loaded."""


# --------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------


def _check_inputs(video, visible, labels):
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[3] != 3 or min(video.shape[:3]) < 1:
        raise ValueError(f"video must have shape (T, H, W, 3) with T, H, W >= 1; got {video.shape}")
    if video.dtype != np.uint8 and (video.dtype == np.bool_ or not np.issubdtype(video.dtype, np.floating)):
        raise TypeError(f"video must be uint8 or float (0-255); got {video.dtype}")
    n_frames, height, width = video.shape[:3]
    if visible is None:
        visible = np.ones((n_frames, height, width), bool)
    visible = np.asarray(visible)
    if visible.dtype != np.bool_:
        raise TypeError(f"visible must be bool; got {visible.dtype}")
    if visible.shape != (n_frames, height, width):
        raise ValueError(f"visible must have shape {(n_frames, height, width)}; got {visible.shape}")
    labels = np.asarray(labels)
    if labels.shape != (height, width):
        raise ValueError(f"labels must have shape {(height, width)}; got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers; got {labels.dtype}")
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    return video, visible, labels


def segment_features(
    video: np.ndarray, visible: np.ndarray | None, labels: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature vector of every segment of one label map.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
        RGB frames, 0-255 units (the warped window).
    visible : ndarray of bool, shape (T, H, W), or None
        Visibility from the warp stage; None means all visible.
    labels : ndarray of int, shape (H, W)
        Segment labels ``0 .. K-1`` (one level of the segmentation).  Labels
        with no pixel get a NaN row.

    Returns
    -------
    features : ndarray, shape (K, F), float64
        ``K = labels.max() + 1`` rows, ``F = len(FEATURE_NAMES)`` columns, units
        as in the module docstring; rows of skipped segments are NaN.
    feature_names : tuple of str
        :data:`FEATURE_NAMES`.

    Examples
    --------
    >>> video = np.zeros((8, 4, 4, 3), np.uint8)
    >>> video[::2, :, 2:] = 255                       # right half blinks every frame
    >>> labels = np.repeat([[0, 0, 1, 1]], 4, axis=0)
    >>> features, names = segment_features(video, None, labels)
    >>> features.shape, names[10], features[:, 10].tolist()
    ((2, 25), 'mean_abs_diff', [0.0, 255.0])
    """
    video, visible, labels = _check_inputs(video, visible, labels)
    return _level_rows(_window_statistics(video, visible), video, visible, labels[None])[0], FEATURE_NAMES


def level_features(
    video: np.ndarray,
    visible: np.ndarray | None,
    segments: np.ndarray,
    min_segment_area: int = 1,
    *,
    statistics: tuple | None = None,
    colour_sums: list | None = None,
) -> list[np.ndarray]:
    """Feature rows of every level of a segmentation, the per-pixel statistics computed once.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
        RGB frames, 0-255 units (the warped window).
    visible : ndarray of bool, shape (T, H, W), or None
        Visibility from the warp stage; None means all visible.
    segments : ndarray of int, shape (levels, H, W)
        Kept levels of :func:`kernels.segmentation.hierarchical_segmentation`,
        labels ``0 .. K-1`` per level.
    min_segment_area : int, default 1
        Segments with fewer pixels get a NaN row (never classified).
    statistics : optional
        :func:`window_statistics` of ``video`` and ``visible``, when computed
        already (the display stage computes them beside the segmentation).
    colour_sums : list of (sums (K, T, 3), counts (K, T)), optional
        Per level, the colour sums of every segment in every frame over its
        visible pixels and their counts
        (:func:`kernels.segment_statistics.level_frame_sums` of ``video``),
        when known already (the tiled segmentation keeps them).

    Returns
    -------
    list of ndarray, one (K_level, F) float64 per level
        The rows :func:`segment_features` gives level by level; rows of
        skipped segments (mostly invisible, or smaller than
        ``min_segment_area``) are NaN.

    Examples
    --------
    >>> video = np.zeros((8, 4, 4, 3), np.uint8)
    >>> video[::2, :, 2:] = 255
    >>> segments = np.array([np.repeat([[0, 0, 1, 1]], 4, axis=0), np.zeros((4, 4), int)])
    >>> [rows.shape for rows in level_features(video, None, segments)]
    [(2, 25), (1, 25)]
    """
    segments = np.asarray(segments)
    if segments.ndim != 3:
        raise ValueError(f"segments must have shape (levels, H, W); got {segments.shape}")
    video, visible, _ = _check_inputs(video, visible, segments[0])
    for labels in segments:
        _check_inputs(video, visible, labels)
    if statistics is None:
        statistics = _window_statistics(video, visible)
    if colour_sums is not None and len(colour_sums) != len(segments):
        raise ValueError(f"colour_sums must have one entry per level ({len(segments)}); got {len(colour_sums)}")
    return _level_rows(statistics, video, visible, segments, min_segment_area, colour_sums)


def window_statistics(video: np.ndarray, visible: np.ndarray | None) -> tuple:
    """The per-pixel statistics and motion maps of a window that every segmentation level's features use.

    They do not depend on the segmentation, so they can be computed while it
    runs and passed to :func:`level_features` (``statistics=``).

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8 or float
    visible : ndarray of bool, shape (T, H, W), or None

    Returns
    -------
    tuple
        Opaque to callers; valid for this ``video`` and ``visible`` only.
    """
    video, visible, _ = _check_inputs(video, visible, np.zeros(np.shape(video)[1:3], np.int64))
    return _window_statistics(video, visible)


def _level_rows(statistics, video, visible, segments, min_segment_area: int = 1, colour=None) -> list[np.ndarray]:
    """:func:`level_features` from the window's statistics (:func:`_window_statistics`).

    The per-frame sums of every segment of every level (mean colour, flow,
    change) come from one pass over the window for all levels at once;
    ``colour``, when given, are the colour sums already.
    """
    _, motion = statistics
    segments = np.asarray(segments).astype(np.int64, copy=False)
    if colour is None:
        colour = _colour_sums(video, visible, segments)
    if not motion["flow"].shape[0]:
        return _rows_of_levels(statistics, video, visible, segments, min_segment_area, colour, [None] * len(segments))
    # The flow and change sums of all levels (kernels on threads that release the GIL) run in a
    # thread of their own while this one computes each level's other features; a level's motion
    # features wait for them (:class:`_Later`).  The same calls on the same arrays: same bits.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="display-motion-sums") as pool:
        pending = pool.submit(
            lambda: (
                _level_frame_sums_on_threads(motion["flow"], motion["seen"], segments),
                level_change_sums(motion["changed"], motion["seen"], segments),
            )
        )
        motion_sums = [
            (_Later(lambda level=level: pending.result()[0][level]), _Later(lambda level=level: pending.result()[1][level]))
            for level in range(len(segments))
        ]
        return _rows_of_levels(statistics, video, visible, segments, min_segment_area, colour, motion_sums)


def _rows_of_levels(statistics, video, visible, segments, min_segment_area, colour, motion_sums) -> list[np.ndarray]:
    """The rows of every level (:func:`_level_rows`); ``motion_sums`` per level: (flow, moved) sums, or None.

    The levels are independent: they are computed on the stage's threads (their whole-frame NumPy
    reductions release the GIL), each by the same calls as alone, so the rows are the same bits.
    """

    def rows_of(level):
        labels = segments[level]
        flow, moved = motion_sums[level] if motion_sums[level] is not None else (None, None)
        sums = {"colour": colour[level], "flow": flow, "moved": moved}
        features = _features_from_statistics(statistics, video, visible, labels, sums, min_segment_area)
        size = np.bincount(labels.ravel(), minlength=features.shape[0])
        features[size < min_segment_area] = np.nan
        return features

    return map_on_threads(rows_of, range(len(segments)), min(thread_budget(), len(segments)))


class _Later:
    """A value computed when first asked for (:meth:`value`), e.g. the result of a running thread."""

    def __init__(self, make):
        self._make = make
        self._done = False
        self._value = None

    def value(self):
        if not self._done:
            self._value = self._make()
            self._done = True
        return self._value


def _now(value):
    """``value``, or the value of a :class:`_Later`."""
    return value.value() if isinstance(value, _Later) else value


#: Frames per block of the per-pixel statistics (bounds the CIELAB scratch memory).
_BLOCK_FRAMES = 8


def map_on_threads(function, items, n_threads: int) -> list:
    """``[function(item) for item in items]`` on up to ``n_threads`` threads, in order (the kernels release the GIL).

    A plain thread pool rather than Dask's threaded scheduler: the display stage maps hundreds of
    small tiles, and a Dask graph costs about 0.2 ms of CPU per task (45 ms per 240 tiles).
    """
    items = list(items)
    n_threads = max(1, min(int(n_threads), len(items)))
    if n_threads == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="displays") as pool:
        return list(pool.map(function, items))


def _window_statistics(video: np.ndarray, visible: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(:func:`_pixel_columns` of :func:`_pixel_statistics`, :func:`_motion_maps`) of the window, the two side by side on threads.

    The columns are made here, beside the segmentation, rather than after it.
    """
    parts = (lambda: _pixel_columns(_pixel_statistics(video, visible)), lambda: _motion_maps(video, visible))
    pixel, motion = map_on_threads(lambda part: part(), parts, min(thread_budget(), 2))
    return pixel, motion


def _pixel_statistics(video: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Per-pixel sums over the visible frames, (H W, 17) float64 (:data:`kernels.segment_statistics.PIXEL_COLUMNS`),
    the transpose of contiguous columns (17, H W).

    They do not depend on the segmentation, so :func:`level_features`
    computes them once for all levels: one pass over the window, its frame
    ranges on threads (CIELAB by OpenCV in blocks of frames, the sums by
    a kernel that releases the GIL).
    """
    n_frames = video.shape[0]
    n_ranges = max(1, min(thread_budget(), 4, n_frames // _BLOCK_FRAMES))
    bounds = np.linspace(0, n_frames, n_ranges + 1).astype(int)
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    parts = map_on_threads(lambda r: _pixel_statistics_range(video, visible, *r), ranges, n_ranges)
    # added into the first range's array, no new one per addition; the same bits as sum(parts):
    # the sums start at +0.0, so none is -0.0 and 0.0 + x is x
    total = parts[0]
    for part in parts[1:]:
        np.add(total, part, out=total)
    return total


def _pixel_statistics_range(video: np.ndarray, visible: np.ndarray, first: int, stop: int) -> np.ndarray:
    """:func:`_pixel_statistics` of frames ``first .. stop-1`` (the change from frame ``first - 1`` included)."""
    height, width = video.shape[1:3]
    # The sums are kept column by column, (17, H W), and given to the kernel as their transpose
    # (H W, 17): the features read whole columns, which then need no transposed copy.
    # zeroed by writing (a kernel that adds into np.zeros' lazily mapped pages pays a copy-on-write
    # fault and a TLB flush of the other cores per page: see written_zeros)
    columns = written_zeros((len(PIXEL_COLUMNS), height * width))
    total = columns.T
    # buffers made once for all blocks (fresh memory costs a page fault per 4 KiB); the colours
    # are converted frame by frame, so only the CIELAB buffer holds a whole block
    rgb = np.empty((height, width, 3), np.float32)
    lab_buffer = np.empty((min(_BLOCK_FRAMES, stop - first), height, width, 3), np.float32)
    for start in range(first, stop, _BLOCK_FRAMES):
        end = min(start + _BLOCK_FRAMES, stop)
        block = video[start:end]
        lab = lab_buffer[: end - start]
        for i in range(end - start):
            # as `(block / np.float32(255.0)).astype(np.float32)`: the same division, then rounded to float32
            np.divide(block[i], np.float32(255.0), out=rgb, casting="same_kind")
            # OpenCV converts every pixel alike, so a frame at a time gives the block's bits
            converted = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab, dst=lab[i])
            if not np.shares_memory(converted, lab_buffer):
                lab[i] = converted
        previous = (video[start - 1], visible[start - 1]) if start > 0 else (None, None)
        # each block's sums are formed first and then added to the total's (same bits as adding arrays)
        pixel_statistics(block, visible[start:end], lab, *previous, out=total)
    return total


def _level_frame_sums_on_threads(values, valid, segments) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`kernels.segment_statistics.level_frame_sums` with its frames split between threads.

    Every (segment, frame) sum only adds that frame's pixels, in raster order,
    so the frames can be summed apart and the results stacked: same bits.
    """
    n_frames = values.shape[0]
    n_parts = max(1, min(thread_budget(), 4, n_frames // _BLOCK_FRAMES))
    if n_parts == 1:
        return level_frame_sums(values, valid, segments)
    bounds = np.linspace(0, n_frames, n_parts + 1).astype(int)
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    results = map_on_threads(lambda r: level_frame_sums(values[r[0] : r[1]], valid[r[0] : r[1]], segments), ranges, n_parts)
    return [
        (np.concatenate([r[level][0] for r in results], axis=1), np.concatenate([r[level][1] for r in results], axis=1))
        for level in range(len(segments))
    ]


def _colour_sums(video, visible, segments) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`kernels.segment_statistics.level_frame_sums` of the video, coarser nested levels from the finest.

    Integer colours make every sum an integer below 2**53, exact in float64 in
    any order, so a level whose segments are unions of the finest level's gets
    its sums by adding that level's rows; any other level is summed from the pixels.
    """
    if len(segments) == 1 or not np.issubdtype(video.dtype, np.integer):
        return level_frame_sums(video, visible, segments)
    finest = int(np.argmax(segments.reshape(len(segments), -1).max(axis=1)))
    fine = segments[finest].ravel()
    base_sums, base_counts = _level_frame_sums_on_threads(video, visible, segments[finest : finest + 1])[0]
    out = []
    for level, labels in enumerate(segments):
        coarse = labels.ravel()
        parent = np.zeros(base_sums.shape[0], np.int64)
        parent[fine] = coarse
        if level == finest:
            out.append((base_sums, base_counts))
        elif np.array_equal(parent[fine], coarse):
            n = int(coarse.max()) + 1
            sums = np.zeros((n,) + base_sums.shape[1:])
            counts = np.zeros((n,) + base_counts.shape[1:], base_counts.dtype)
            np.add.at(sums, parent, base_sums)
            np.add.at(counts, parent, base_counts)
            out.append((sums, counts))
        else:
            out.append(level_frame_sums(video, visible, labels[None])[0])
    return out


def _pixel_columns(stats: np.ndarray) -> dict[str, np.ndarray]:
    """The per-pixel sums (H W, 17) as contiguous columns (17, H W), and each pixel's temporal spread.

    ``pixel_std`` is the channel mean of the per-pixel standard deviation over the visible frames,
    ``has_std`` the pixels seen in at least 2 frames (the ``temporal_std`` feature).  A segment's
    total of a column is ``np.bincount`` of that column: contiguous, it is not copied for every
    call (the same numbers, added in the same order).
    """
    column = {name: i for i, name in enumerate(PIXEL_COLUMNS)}
    pix_n = stats[:, column["n"]]
    safe_n = np.maximum(pix_n, 1.0)[:, None]
    rgb = stats[:, column["rgb_0"] : column["rgb_2"] + 1]
    rgb_sq = stats[:, column["rgb_sq_0"] : column["rgb_sq_2"] + 1]
    return {
        "columns": np.ascontiguousarray(stats.T),  # no copy when the sums were kept column by column
        "has_std": pix_n >= 2,
        "pixel_std": np.sqrt(np.maximum(rgb_sq / safe_n - (rgb / safe_n) ** 2, 0.0)).mean(axis=1),
    }


def _features_from_statistics(statistics, video, visible, labels, sums, min_segment_area: int = 1) -> np.ndarray:
    """Feature rows of the segments of ``labels``; ``sums`` are their per-frame sums (:func:`_level_rows`).

    ``statistics`` is (:func:`_pixel_columns`, motion maps).
    """
    pixel, motion = statistics
    columns = pixel["columns"]
    n_frames, height, width = video.shape[:3]
    flat_labels = labels.ravel().astype(np.int64)
    n_segments = int(flat_labels.max()) + 1
    size = np.bincount(flat_labels, minlength=n_segments).astype(np.float64)
    big = size >= max(min_segment_area, 1)
    if not big.all():
        # segments too small to classify share one extra label (its row is dropped), so
        # every per-segment array below has a row per classified segment only
        n_big = int(big.sum())
        compact = np.cumsum(big) - 1
        compact[~big] = n_big
        compact_labels = compact[labels]
        n_rows = int(compact_labels.max()) + 1  # n_big + 1, or n_big when the small labels have no pixel
        compact_sums = {name: _big_rows(array, big, n_rows) for name, array in sums.items()}
        rows = _features_from_statistics(statistics, video, visible, compact_labels, compact_sums)
        features = np.full((n_segments, len(FEATURE_NAMES)), np.nan)
        features[big] = rows[:n_big]
        return features
    column = {name: i for i, name in enumerate(PIXEL_COLUMNS)}

    def total(*names):
        if len(names) == 1:
            return np.bincount(flat_labels, columns[column[names[0]]], minlength=n_segments)
        return np.stack([np.bincount(flat_labels, columns[column[n]], minlength=n_segments) for n in names], 1)

    # mean colour of each segment in each frame (visible pixels only)
    colour_sum, vis_count = sums["colour"]
    vis_count = vis_count.astype(np.float64)

    n_samples = total("n")
    features = np.full((n_segments, len(FEATURE_NAMES)), np.nan)
    invisible_frac = 1.0 - vis_count / np.maximum(size, 1.0)[:, None]
    mostly_invisible = (invisible_frac > 0.5).sum(axis=1) > n_frames / 2
    usable = (size > 0) & ~mostly_invisible & (n_samples > 0)

    has_std, pixel_std = pixel["has_std"], pixel["pixel_std"]
    std_sum = np.bincount(flat_labels[has_std], pixel_std[has_std], minlength=n_segments)
    std_count = np.bincount(flat_labels[has_std], minlength=n_segments)
    diff_sum = total("diff")
    diff_count = total("n_diff")

    safe_samples = np.maximum(n_samples, 1.0)
    lab_mean = total("lab_0", "lab_1", "lab_2") / safe_samples[:, None]
    features[:, 0:3] = lab_mean
    lab_sq = total("lab_sq_0", "lab_sq_1", "lab_sq_2")
    features[:, 3:6] = np.sqrt(np.maximum(lab_sq / safe_samples[:, None] - lab_mean**2, 0.0))
    features[:, 6] = total("sat") / safe_samples
    features[:, 7] = total("val") / safe_samples
    mean_colour = colour_sum / np.maximum(vis_count, 1.0)[:, :, None]
    features[:, 8], features[:, 9] = _delta_fractions(mean_colour, vis_count > 0)
    features[:, 10] = np.where(diff_count > 0, diff_sum / np.maximum(diff_count, 1.0), 0.0)
    features[:, 11] = np.where(std_count > 0, std_sum / np.maximum(std_count, 1), 0.0)
    features[:, 12] = _aperiodic_change(mean_colour, vis_count > 0)
    features[:, 13:20] = _shape_features(labels.astype(np.int64), n_segments, size, usable)
    sums = {name: _now(array) for name, array in sums.items()}  # the motion sums, now (they may still run)
    features[:, 20:25] = _motion_features(motion, sums, labels.astype(np.int64), n_segments, size, usable)
    features[~usable] = np.nan
    return features


def _big_rows(array, big, n_rows):
    """``n_rows`` rows: those of ``array`` (or of each array of a tuple) of the ``big`` segments, then zeros.

    Of a :class:`_Later`, a :class:`_Later` of them."""
    if array is None:
        return None
    if isinstance(array, _Later):
        return _Later(lambda: _big_rows(array.value(), big, n_rows))
    if isinstance(array, tuple):
        return tuple(_big_rows(a, big, n_rows) for a in array)
    out = np.zeros((n_rows,) + array.shape[1:], array.dtype)
    out[: int(big.sum())] = array[big]
    return out


def _delta_fractions(mean_colour: np.ndarray, seen: np.ndarray, theta: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of ones among the valid bits of ``Delta1`` and ``Delta2`` of every segment's pattern.

    The pattern of :func:`kernels.binary_patterns.region_descriptor` of the
    segment's mean colour per frame, for all segments at once; 0 without a
    valid bit (:func:`kernels.binary_patterns.delta_fraction`).
    """
    n_frames = seen.shape[1]
    n1, n2, _ = descriptor_layout(n_frames)
    out = []
    for f0, shift in ((DELTA1_ALPHA * np.arange(n1), DELTA1_BETA), (DELTA2_ALPHA * np.arange(n2), n_frames // 2)):
        f1 = f0 + shift
        diff = mean_colour[:, f1] - mean_colour[:, f0]
        d2 = diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1] + diff[..., 2] * diff[..., 2]
        valid = seen[:, f0] & seen[:, f1]
        ones = ((d2 > theta * theta) & valid).sum(axis=1)
        n_valid = valid.sum(axis=1)
        out.append(np.where(n_valid > 0, ones / np.maximum(n_valid, 1), 0.0))
    return out[0], out[1]


def _aperiodic_change(mean_colour: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """``min_p mean_t ||m(t+p) - m(t)||`` over lags 2 .. T//2; 0 where undefined."""
    n_segments, n_frames = usable.shape
    best = np.full(n_segments, np.inf)
    for lag in range(2, n_frames // 2 + 1):
        both = usable[:, lag:] & usable[:, :-lag]
        diff = mean_colour[:, lag:] - mean_colour[:, :-lag]
        dist = np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2)
        count = both.sum(axis=1)
        mean = np.where(count > 0, (dist * both).sum(axis=1) / np.maximum(count, 1), np.inf)
        best = np.minimum(best, mean)
    return np.where(np.isfinite(best), best, 0.0)


def _shape_features(labels, n_segments, size, usable) -> np.ndarray:
    """area_fraction, bbox_fill, aspect_ratio, rectangularity, solidity, centroid_x, centroid_y.

    The convex hull of a segment's pixel squares is the hull of the squares of
    its leftmost and rightmost pixel in each row, so only those enter OpenCV.
    """
    height, width = labels.shape
    flat = labels.ravel()
    out = np.full((n_segments, 7), np.nan)
    ys, xs = np.divmod(np.arange(height * width), width)
    safe = np.maximum(size, 1.0)
    cx = (np.bincount(flat, xs, minlength=n_segments) / safe + 0.5) / width
    cy = (np.bincount(flat, ys, minlength=n_segments) / safe + 0.5) / height
    first, last = segment_row_extents(labels, n_segments)
    rows = first >= 0
    for k in np.flatnonzero(usable):
        y = np.flatnonzero(rows[k])
        x0, x1 = first[k, y], last[k, y]
        area = float(size[k])
        bbox = float((y[-1] - y[0] + 1) * (x1.max() - x0.min() + 1))
        # corners of the end pixels' squares, as (x, y) points for OpenCV
        points = np.concatenate(
            [np.stack([x0, y], 1), np.stack([x0, y + 1], 1), np.stack([x1 + 1, y], 1), np.stack([x1 + 1, y + 1], 1)]
        ).astype(np.int32)
        hull = cv2.convexHull(points)
        hull_area = float(cv2.contourArea(hull))
        (_, _), (rw, rh), _ = cv2.minAreaRect(hull)
        rect_area = float(rw * rh)
        out[k] = (
            area / (height * width),
            area / bbox,
            max(rw, rh) / max(min(rw, rh), 1e-12),
            min(1.0, area / rect_area) if rect_area > 0 else 1.0,
            min(1.0, area / hull_area) if hull_area > 0 else 1.0,
            cx[k],
            cy[k],
        )
    return out


#: Frame pairs of the motion features: ``(t, t + _PAIR_GAP)`` for ``t = 0, _PAIR_STRIDE, ...``.
_PAIR_GAP = 2
_PAIR_STRIDE = 4
#: Flow speed (pixels per frame) below which a pixel's flow vector is left out of the coherence.
_MOVING_SPEED = 0.5
#: Channel-mean absolute change (0-255) above which a pixel changed between the two frames of a pair.
_CHANGE_LEVEL = 25.0
#: Sobel gradient magnitude (0-255 grey per pixel) above which a pixel is on an edge.
_EDGE_LEVEL = 40.0


def _motion_maps(video: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel motion of the sampled frame pairs, shared by all levels.

    Returns ``flow`` (P, H, W, 3) float32 (x, y flow and speed, pixels per
    frame), ``changed`` (P, H, W) bool (channel-mean change above the level),
    ``seen`` (P, H, W) bool (both frames visible) and ``edges`` (H, W) float64
    (fraction of sampled frames with an edge within one pixel).
    """
    n_frames, height, width = video.shape[:3]
    starts = np.arange(0, max(n_frames - _PAIR_GAP, 0), _PAIR_STRIDE)
    grey = [None] * n_frames

    def grey_of(t):
        if grey[t] is None:
            frame = video[t] if video.dtype == np.uint8 else np.clip(video[t], 0, 255).astype(np.uint8)
            grey[t] = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return grey[t]

    small = (max(1, width // 2), max(1, height // 2))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST) if min(small) >= 16 else None
    flow = np.zeros((len(starts), height, width, 3), np.float32)
    changed = np.zeros((len(starts), height, width), bool)
    seen = np.zeros((len(starts), height, width), bool)
    edges = written_zeros((height, width))  # added into below
    kernel = np.ones((3, 3), np.uint8)
    for i, t in enumerate(starts):
        a, b = grey_of(t), grey_of(t + _PAIR_GAP)
        if dis is not None:
            f = dis.calc(cv2.resize(a, small, interpolation=cv2.INTER_AREA), cv2.resize(b, small, interpolation=cv2.INTER_AREA), None)
            f = cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
            flow_channels(f, width / small[0] / _PAIR_GAP, _MOVING_SPEED, out=flow[i])
        changed[i] = change_map(video[t], video[t + _PAIR_GAP], _CHANGE_LEVEL)
        np.logical_and(visible[t], visible[t + _PAIR_GAP], out=seen[i])
        gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3)
        on_edge = (np.sqrt(gx * gx + gy * gy) / 4.0 > _EDGE_LEVEL).astype(np.uint8)
        edges += cv2.dilate(on_edge, kernel) > 0
    if len(starts):
        edges /= len(starts)
    return {"flow": flow, "changed": changed, "seen": seen, "edges": edges}


def _motion_features(motion, sums, labels, n_segments, size, usable) -> np.ndarray:
    """flow_speed, flow_coherence, change_coverage, change_travel, boundary_edges (module docstring)."""
    out = np.zeros((n_segments, 5))
    n_pairs = motion["flow"].shape[0]
    if n_pairs:
        flow, counts = sums["flow"]
        samples = counts.sum(axis=1)
        speed = flow[:, :, 2].sum(axis=1)
        out[:, 0] = np.where(samples > 0, speed / np.maximum(samples, 1), 0.0)
        net = np.sqrt(flow[:, :, 0] ** 2 + flow[:, :, 1] ** 2).sum(axis=1)
        out[:, 1] = np.where(speed > 1e-6, net / np.maximum(speed, 1e-6), 0.0)
        moved = sums["moved"]
        n_changed = moved[:, :, 0]
        fraction = n_changed / np.maximum(counts, 1)
        active = fraction >= 0.02
        n_active = active.sum(axis=1)
        out[:, 2] = np.where(n_active > 0, (fraction * active).sum(axis=1) / np.maximum(n_active, 1), 0.0)
        safe = np.maximum(n_changed, 1.0)
        cx, cy = moved[:, :, 1] / safe, moved[:, :, 2] / safe
        travel = np.zeros(n_segments)
        for k in np.flatnonzero((n_active >= 2) & usable):
            pick = active[k]
            travel[k] = np.sqrt(cx[k, pick].var() + cy[k, pick].var()) / np.sqrt(max(size[k], 1.0))
        out[:, 3] = travel
    boundary = np.zeros(labels.shape, bool)
    boundary[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    boundary[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    boundary[:-1] |= labels[:-1] != labels[1:]
    boundary[1:] |= labels[:-1] != labels[1:]
    flat = labels.ravel()[boundary.ravel()]
    n_boundary = np.bincount(flat, minlength=n_segments)
    edge_sum = np.bincount(flat, motion["edges"].ravel()[boundary.ravel()], minlength=n_segments)
    out[:, 4] = np.where(n_boundary > 0, edge_sum / np.maximum(n_boundary, 1), 0.0)
    return out


def segment_targets(labels: np.ndarray, display_mask: np.ndarray, min_overlap: float = 0.5) -> np.ndarray:
    """Training target of each segment: at least ``min_overlap`` of its pixels annotated as display.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        One segmentation level, labels ``0 .. K-1``.
    display_mask : ndarray of bool, shape (H, W)
        Annotated display pixels (see :mod:`schemas.annotations`).
    min_overlap : float, default 0.5
        Fraction of the segment's pixels, in (0, 1].

    Returns
    -------
    ndarray of bool, shape (K,)

    Examples
    --------
    >>> segment_targets(np.array([[0, 0, 1, 1]]), np.array([[False, True, True, True]])).tolist()
    [True, True]
    """
    labels = np.asarray(labels)
    display_mask = np.asarray(display_mask)
    if display_mask.dtype != np.bool_ or display_mask.shape != labels.shape:
        raise ValueError(
            f"display_mask must be bool with shape {labels.shape}; got {display_mask.dtype} {display_mask.shape}"
        )
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1]; got {min_overlap}")
    flat = labels.ravel().astype(np.int64)
    size = np.bincount(flat)
    inside = np.bincount(flat, display_mask.ravel().astype(np.float64), minlength=size.size)
    return (size > 0) & (inside >= min_overlap * size)


def rasterise_polygons(polygons: Sequence[Sequence[Sequence[float]]], shape: tuple[int, int]) -> np.ndarray:
    """Fill polygons given as ``[[x, y], ...]`` in pixel coordinates into a bool mask.

    Parameters
    ----------
    polygons : sequence of sequences of (x, y)
        Vertices in pixels, x to the right and y down, pixel centres at integers.
    shape : (H, W)

    Returns
    -------
    ndarray of bool, shape (H, W)

    Examples
    --------
    >>> rasterise_polygons([[[1, 0], [2, 0], [2, 1], [1, 1]]], (2, 4)).astype(int).tolist()
    [[0, 1, 1, 0], [0, 1, 1, 0]]
    """
    mask = np.zeros(shape, np.uint8)
    for polygon in polygons:
        pts = np.round(np.asarray(polygon, np.float64)).astype(np.int32)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise ValueError("each polygon needs at least 3 (x, y) vertices")
        cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


# --------------------------------------------------------------------------
# classifier
# --------------------------------------------------------------------------


def _training_rows(features, labels):
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or features.shape[1] < 1:
        raise ValueError(f"features must have shape (K, F); got {features.shape}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must have shape ({features.shape[0]},); got {labels.shape}")
    if labels.dtype != np.bool_ and not np.all(np.isin(labels, (0, 1))):
        raise ValueError("labels must be bool or 0/1")
    keep = ~np.isnan(features).any(axis=1)
    if np.isinf(features[keep]).any():
        raise ValueError("features must be finite (NaN rows mark skipped segments)")
    x, y = features[keep], labels[keep].astype(bool)
    if y.all() or not y.any():
        raise ValueError("training needs both display and non-display segments")
    return x, y, keep


def train_display_classifier(
    features: np.ndarray, labels: np.ndarray, *, n_estimators: int = 200, seed: int = 0
) -> RandomForestClassifier:
    """Fit the random forest that tells display segments from the rest.

    Parameters
    ----------
    features : ndarray, shape (K, F), float
        Rows from :func:`segment_features`, stacked over clips and levels;
        NaN rows (skipped segments) are dropped.
    labels : ndarray, shape (K,), bool or 0/1
        True for display segments (e.g. from :func:`segment_targets`).
    n_estimators : int, default 200
        Number of trees.
    seed : int, default 0
        ``random_state`` of the forest: same data and seed give the same model.

    Returns
    -------
    sklearn.ensemble.RandomForestClassifier
        Fitted, with ``class_weight="balanced"`` (displays are rare) and
        ``n_jobs=1`` (Dask provides the parallelism).

    Examples
    --------
    >>> x = np.r_[np.zeros((10, 2)), np.ones((10, 2))]; y = np.r_[np.zeros(10), np.ones(10)]
    >>> train_display_classifier(x, y, n_estimators=5).predict([[0.9, 0.9]]).tolist()
    [True]
    """
    x, y, _ = _training_rows(features, labels)
    if int(n_estimators) < 1:
        raise ValueError(f"n_estimators must be >= 1; got {n_estimators}")
    model = RandomForestClassifier(
        n_estimators=int(n_estimators), class_weight="balanced", random_state=int(seed), n_jobs=1
    )
    return model.fit(x, y)


def out_of_fold_predictions(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_splits: int = 5,
    n_estimators: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Each usable row's prediction by a forest that never saw its fold (its clip, with ``groups``).

    Parameters
    ----------
    features, labels, groups, n_splits, n_estimators, seed
        As for :func:`cross_validated_scores`.

    Returns
    -------
    usable : ndarray of bool, shape (K,)
        Rows that were not skipped (no NaN).
    predicted : ndarray of bool, shape (usable.sum(),)
        Out-of-fold display predictions of those rows.
    """
    x, y, keep = _training_rows(features, labels)
    n_splits = int(n_splits)
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2; got {n_splits}")
    if min(y.sum(), (~y).sum()) < n_splits:
        raise ValueError(f"each class needs at least n_splits={n_splits} usable rows")
    model = RandomForestClassifier(
        n_estimators=int(n_estimators), class_weight="balanced", random_state=int(seed), n_jobs=1
    )
    if groups is None:
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=int(seed))
        return keep, np.asarray(cross_val_predict(model, x, y, cv=cv)).astype(bool)
    groups = np.asarray(groups)
    if groups.shape != keep.shape:
        raise ValueError(f"groups must have shape {keep.shape}; got {groups.shape}")
    if np.unique(groups[keep]).size < n_splits:
        raise ValueError(f"need at least n_splits={n_splits} distinct groups")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=int(seed))
    return keep, np.asarray(cross_val_predict(model, x, y, groups=groups[keep], cv=cv)).astype(bool)


def cross_validated_scores(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_splits: int = 5,
    n_estimators: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Precision, recall and F1 of the display classifier by stratified k-fold cross-validation.

    Parameters
    ----------
    features, labels : as for :func:`train_display_classifier`
    groups : ndarray, shape (K,), optional
        Clip identifier of each row.  Segments of one clip (and its levels)
        are strongly correlated; with groups the folds never split a clip
        (``StratifiedGroupKFold``), which is the honest estimate.
    n_splits : int, default 5
    n_estimators, seed : as for :func:`train_display_classifier`

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (display = positive class) over the
        out-of-fold predictions, ``false_positive_rate`` (non-display rows
        predicted display), ``n_samples`` and ``n_positive`` used.
    """
    keep, predicted = out_of_fold_predictions(
        features, labels, groups=groups, n_splits=n_splits, n_estimators=n_estimators, seed=seed
    )
    y = np.asarray(labels)[keep].astype(bool)
    return {
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "false_positive_rate": float((predicted & ~y).sum() / max((~y).sum(), 1)),
        "n_samples": float(y.size),
        "n_positive": float(y.sum()),
    }


def save_model(model: RandomForestClassifier, path: str | os.PathLike) -> None:
    """Write a fitted display classifier with ``skops.io.dump`` (no pickle).

    Parameters
    ----------
    model : RandomForestClassifier
        From :func:`train_display_classifier`.
    path : path-like
        Destination file, conventionally ``*.skops``.
    """
    if not isinstance(model, RandomForestClassifier) or not hasattr(model, "estimators_"):
        raise TypeError("model must be a fitted RandomForestClassifier")
    sio.dump(model, os.fspath(path))


def load_model(path: str | os.PathLike) -> RandomForestClassifier:
    """Read a display classifier written by :func:`save_model`, trusting only known types.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    RandomForestClassifier

    Raises
    ------
    UntrustedModelError
        The file names a type that is neither a skops default nor in
        :data:`TRUSTED_TYPES` (a tampered or foreign file).  Checked before any
        object is built, so no code from the file runs.
    ModelFileError
        The file is not a skops archive, is corrupt, or holds something other
        than a random forest.
    """
    path = os.fspath(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise ModelFileError(f"{path} is not a readable skops model file: {err}") from err
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise UntrustedModelError(
            f"refusing to load {path}: it names types outside the trusted list {list(TRUSTED_TYPES)}: "
            f"{unexpected}.  The file may have been tampered with; retrain or inspect it."
        )
    try:
        model = sio.load(path, trusted=list(TRUSTED_TYPES))
    except sio.exceptions.UntrustedTypesFoundException as err:  # defence in depth
        raise UntrustedModelError(f"refusing to load {path}: {err}") from err
    except Exception as err:
        raise ModelFileError(f"{path} could not be loaded as a skops model: {err}") from err
    if not isinstance(model, RandomForestClassifier):
        raise ModelFileError(f"{path} holds a {type(model).__name__}, not a RandomForestClassifier")
    return model


def predict_display_mask(
    model: RandomForestClassifier, video: np.ndarray, visible: np.ndarray | None, segments: np.ndarray
) -> np.ndarray:
    """Pixels of the segments the classifier calls displays, united over the levels.

    Parameters
    ----------
    model : RandomForestClassifier
        Trained on :data:`FEATURE_NAMES` columns.
    video : ndarray, shape (T, H, W, 3), uint8 or float
    visible : ndarray of bool, shape (T, H, W), or None
    segments : ndarray of int, shape (levels, H, W)
        Kept levels of :func:`kernels.segmentation.hierarchical_segmentation`.

    Returns
    -------
    ndarray of bool, shape (H, W)
        ``display_mask``.

    Notes
    -----
    Yan et al., Sec. 4.2: a region is a display if it is classified so at any
    of the kept levels (the paper keeps 60, 70 and 80 % of the hierarchy; the
    defaults here are in :class:`schemas.displays.DisplayParams`).
    """
    segments = np.asarray(segments)
    if segments.ndim != 3:
        raise ValueError(f"segments must have shape (levels, H, W); got {segments.shape}")
    if getattr(model, "n_features_in_", len(FEATURE_NAMES)) != len(FEATURE_NAMES):
        raise ValueError(
            f"model expects {model.n_features_in_} features; this module makes {len(FEATURE_NAMES)}"
        )
    mask = np.zeros(segments.shape[1:], bool)
    for labels, features in zip(segments, level_features(video, visible, segments), strict=True):
        usable = ~np.isnan(features).any(axis=1)
        if not usable.any():
            continue
        positive = np.zeros(features.shape[0], bool)
        positive[usable] = np.asarray(model.predict(features[usable])).astype(bool)
        mask |= positive[labels]
    return mask
