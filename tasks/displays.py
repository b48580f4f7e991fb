"""Displays and billboards: which segments of the window show changing content (Yan et al., CVPR 2017, Sec. 4.2).

Reads ``warped`` (window_time, y, x, channel) uint8 and ``visible``
(window_time, y, x) bool; writes ``segments`` (level, y, x) int32 -- the kept
levels of the hierarchical segmentation, labels ``0 .. K-1`` per level -- and
``display_mask`` (y, x) bool.  The render stage unites ``display_mask`` with
``cyclic_mask`` into ``animated_mask``.

Steps (one call of :func:`detect_displays`):

1. the hierarchical segmentation of the window
   (:func:`kernels.segmentation.tiled_hierarchical_segmentation`, tiles on
   threads; with ``tile=None`` the exact whole-frame
   :func:`kernels.segmentation.hierarchical_segmentation`), while a second
   thread computes the per-pixel statistics and motion maps of the window
   (:func:`tasks.display_features.window_statistics`);
2. the feature vector of every segment of every kept level
   (:mod:`tasks.display_features`); segments mostly invisible (more than half
   of their pixels invisible in more than half the frames) and segments
   smaller than ``min_segment_area`` are skipped, never positive;
3. the random forest's display probability of each remaining segment;
   ``display_mask`` is the union, over all levels, of the segments whose
   probability is at least ``probability_threshold``.

The classifier is a skops file (``DisplayParams.model``, default the one
packaged in ``schemas/models/``), loaded with a trusted-types check; a
tampered or foreign file is refused with an error naming it.  Its SHA-256 is
part of the stage's digest, so a retrained model reruns the stage.

Defaults differ from the paper's numbers on purpose (documented in
:class:`schemas.displays.DisplayParams`): pattern threshold ``theta = 30``
instead of 100 and levels at 15/30/50 % of the hierarchy instead of
60/70/80 %.  With this segmentation's distance (normalised Hamming + 0.1 x
histogram NCC) the paper's values cannot reach the acceptance (display IoU
>= 0.8) on the synthetic clips: the levels are nested, so the best union of
whole segments of the finest kept level bounds the IoU of any classifier,
and at the 60 % level that bound is below 0.8 on all 12 evaluation clips
(seeds 1-12 of :mod:`tasks.synthetic_displays`) with ``theta = 100`` (6-7 of
12 with ``theta = 30``); at ``theta = 100`` it is below 0.8 on 3-4 of 12
even at the finest level.  A region's pattern comes
from its mean colour, and at 100 a whole display's mean colour rarely
changes by that much, so it merges into the facade early.
"""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import cv2
import dask
import numpy as np
import skops.io as sio
import xarray as xr
from prefect import task
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier

from kernels.segmentation import (
    hierarchical_segmentation,
    lab_bin_codes,
    lab_memo,
    tiled_hierarchical_segmentation,
)
from schemas import names as N
from schemas.annotations import AnnotatedClip
from schemas.config import PipelineConfig
from schemas.displays import DisplayParams, DisplaysResult
from tasks.display_features import (
    FEATURE_NAMES,
    ModelFileError,
    level_features,
    load_model,
    map_on_threads,
    rasterise_polygons,
    segment_targets,
    window_statistics,
)
from tasks.ingest import ingest
from tasks.runtime import cluster_compute, finished_stage, stage_logger
from tasks.store import (
    aligned_digest,
    config_values,
    digest,
    group,
    open_store,
    record_stage,
    remove_store,
    require,
    write_variables,
)
from tasks.threads import SharedSetting, numpy_page_advice, thread_budget
from tasks.window import select_window

__all__ = [
    "STAGE",
    "save_display_model",
    "model_sha256",
    "load_display_model",
    "segment_window",
    "level_features",
    "classify_segments",
    "detect_displays",
    "AnnotationError",
    "annotation_mask",
    "training_rows",
    "annotated_clip_rows",
    "negative_clip_rows",
    "displays_digest",
    "find_displays",
    "find_displays_task",
]

STAGE = "displays"


class AnnotationError(ValueError):
    """An annotation that does not match its clip (missing mask image, wrong size)."""


def save_display_model(model: RandomForestClassifier, path: str | Path) -> Path:
    """Write a fitted display classifier with skops (no pickle), zip-deflated to keep it small.

    Readable by :func:`tasks.display_features.load_model` like an uncompressed
    file; a forest of 100 shallow trees takes ~200 KB instead of ~2 MB (the
    per-tree schema JSON compresses well).
    """
    if not isinstance(model, RandomForestClassifier) or not hasattr(model, "estimators_"):
        raise TypeError("model must be a fitted RandomForestClassifier")
    path = Path(path)
    sio.dump(model, str(path), compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    return path


def model_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a classifier file; :class:`ModelFileError` naming it when it cannot be read."""
    path = Path(path)
    try:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise ModelFileError(f"display classifier {path}: cannot read it ({err.strerror or err})") from None
    return h.hexdigest()


_MODEL_LOCK = threading.Lock()
_MODEL_CACHE: dict[tuple[str, str], RandomForestClassifier] = {}


def load_display_model(params: DisplayParams) -> tuple[RandomForestClassifier, Path, str]:
    """(model, path, sha256) of the classifier ``params`` names, checked and safely loaded.

    Raises
    ------
    ModelFileError
        Missing, unreadable, tampered (``UntrustedModelError``) or incompatible
        file; the message names the file.
    """
    path = params.model_file()
    sha = model_sha256(path)
    # skops' loader is not safe to run in two threads at once (CPython's AST recursion-depth
    # check fails); items in flight share threads, so load once per file content, under a lock
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get((str(path), sha))
        if model is None:
            model = load_model(path)
            _MODEL_CACHE[(str(path), sha)] = model
    if getattr(model, "n_features_in_", len(FEATURE_NAMES)) != len(FEATURE_NAMES):
        raise ModelFileError(
            f"display classifier {path}: expects {model.n_features_in_} features, "
            f"this version computes {len(FEATURE_NAMES)}; retrain it with `cinemagraph train-displays`"
        )
    if True not in set(np.asarray(model.classes_).tolist()):
        raise ModelFileError(f"display classifier {path}: has no display (True) class")
    return model, Path(path), sha


def segment_window(
    video: np.ndarray, visible: np.ndarray | None, params: DisplayParams
) -> tuple[np.ndarray, np.ndarray]:
    """Kept levels of the hierarchical segmentation with ``params``: (segments, thresholds).

    ``segments`` is (levels, H, W) int32, ``thresholds`` (levels,) float64.
    With ``params.tile`` every level is merged tile by tile on threads
    first, then over the whole frame
    (:func:`kernels.segmentation.tiled_hierarchical_segmentation`); with
    ``tile=None`` it is the exact greedy merge from single pixels over the
    whole frame (:func:`kernels.segmentation.hierarchical_segmentation`).
    """
    segments, thresholds, _ = _segment_window(video, visible, params)
    return segments, thresholds


def _segment_window(
    video: np.ndarray, visible: np.ndarray | None, params: DisplayParams, on_level=None
) -> tuple[np.ndarray, np.ndarray, list | None]:
    """:func:`segment_window` and, from the tiled merge, each level's per-frame colour sums (else None).

    ``on_level`` is passed to the tiled merge (:func:`kernels.segmentation.tiled_hierarchical_segmentation`).
    """
    options = dict(
        theta=params.theta,
        start_threshold=params.start_threshold,
        growth=params.growth,
        keep_levels=tuple(params.levels),
        colour_weight=params.colour_weight,
    )
    height, width = video.shape[1:3]
    if params.tile is None or (height <= params.tile and width <= params.tile):
        return (*hierarchical_segmentation(video, visible, lab_codes=_lab_codes(video), **options), None)
    # uint8 video: the tiles convert their own colours on the tile threads (one shared memo)
    codes = None if video.dtype == np.uint8 else _lab_codes(video)
    return tiled_hierarchical_segmentation(
        video, visible, tile=params.tile, map_tiles=_map_on_threads, block=params.block,
        block_distance=params.block_distance, return_sums=True, on_level=on_level,
        lab_codes=codes, **options
    )


def _threads() -> int:
    return max(1, min(thread_budget(), 8))


def _map_on_threads(function, items) -> list:
    """``[function(item) for item in items]`` on the stage's threads (:func:`tasks.display_features.map_on_threads`)."""
    return map_on_threads(function, items, _threads())


def _lab_codes(video: np.ndarray) -> np.ndarray:
    """The segmentation's packed LAB bins of every sample, in blocks of frames on threads."""
    n_frames = video.shape[0]
    bounds = np.linspace(0, n_frames, min(_threads(), n_frames) + 1).astype(int)
    out = np.empty(video.shape[:3], np.int16)
    # each thread writes its frames in place (no concatenated copy); one colour memo for all of
    # them, so a colour met in both halves of the window is converted once
    memo = lab_memo() if video.dtype == np.uint8 and out.size > 2**20 else None
    _map_on_threads(
        lambda r: lab_bin_codes(video[r[0] : r[1]], out=out[r[0] : r[1]], memo=memo),
        zip(bounds[:-1], bounds[1:], strict=True),
    )
    return out


def classify_segments(
    model: RandomForestClassifier,
    features: list[np.ndarray],
    segments: np.ndarray,
    probability_threshold: float = 0.5,
) -> tuple[np.ndarray, int]:
    """(display_mask (H, W) bool, number of positive segments) from per-level features.

    A segment is positive when its display probability is at least
    ``probability_threshold``; NaN rows never are.  The mask is the union over
    the levels (Yan et al., Sec. 4.2).
    """
    classes = np.asarray(model.classes_).tolist()
    column = classes.index(True)
    mask = np.zeros(segments.shape[1:], bool)
    usable = [~np.isnan(rows).any(axis=1) for rows in features]
    # one forest call for the usable rows of all levels (each row's probability is its own)
    stacked = np.concatenate([rows[keep] for rows, keep in zip(features, usable, strict=True)])
    if not len(stacked):
        return mask, 0
    probabilities = np.split(model.predict_proba(stacked)[:, column], np.cumsum([int(k.sum()) for k in usable])[:-1])
    n_positive = 0
    for labels, keep, probability in zip(segments, usable, probabilities, strict=True):
        positive = np.zeros(keep.shape[0], bool)
        positive[keep] = probability >= probability_threshold
        n_positive += int(positive.sum())
        mask |= positive[labels]
    return mask, n_positive


_OPENCV_THREADS = SharedSetting()


@contextmanager
def _serial_opencv() -> Iterator[None]:
    """OpenCV's own thread pool off (``cv2.setNumThreads(1)``) in this process while the block runs.

    The stage already spreads its work over its own threads (tiles, frame ranges of the per-pixel
    statistics, the motion maps beside them), and every OpenCV call in it (colour conversion, DIS
    flow, Sobel, resizing) computes each pixel alike on any number of threads, so the results are
    the same bits.  With OpenCV's pool on, each of those calls split itself once more over the
    cores the other threads were using (in 6 alternating runs on the steady window at load 1.9-2.6,
    2.59 user-s on average with the pool against 2.31 without; a noisy, shared machine).  The
    setting is process-wide, so blocks may overlap in threads (:class:`tasks.threads.SharedSetting`):
    the first to enter sets it, the last to leave restores the earlier count.
    """

    def one_thread() -> int:
        before = cv2.getNumThreads()
        cv2.setNumThreads(1)
        return before

    with _OPENCV_THREADS.held(one_thread, cv2.setNumThreads):
        yield


def detect_displays(
    video: np.ndarray,
    visible: np.ndarray | None,
    model: RandomForestClassifier,
    params: DisplayParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Segment, describe and classify one window, all in memory.

    Parameters
    ----------
    video : ndarray, shape (T, H, W, 3), uint8
        The warped window, RGB 0-255.
    visible : ndarray of bool, shape (T, H, W), or None
    model : RandomForestClassifier
        From :func:`load_display_model` or :func:`tasks.display_features.train_display_classifier`.
    params : DisplayParams

    Returns
    -------
    segments : ndarray, (levels, H, W) int32
    thresholds : ndarray, (levels,) float64
    display_mask : ndarray, (H, W) bool
    n_positive : int
        Positive segments over all levels.
    """
    # see tasks.threads.numpy_page_advice (a flow's own setting wins) and _serial_opencv
    with numpy_page_advice(False), _serial_opencv():
        segments, thresholds, features = _segments_and_features(video, visible, params)
        mask, n_positive = classify_segments(model, features, segments, params.probability_threshold)
    return segments, thresholds, mask, n_positive


def _segments_and_features(
    video: np.ndarray, visible: np.ndarray | None, params: DisplayParams
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(segments, thresholds, per-level feature rows) of one window.

    The per-pixel statistics and motion maps the features need do not depend
    on the segmentation: they are computed in a second thread while the
    segmentation runs (both release the GIL), so the two use both cores.
    The tiled merge hands over each level that may be kept as soon as it is
    merged, and that level's features are computed on other threads while
    the coarser levels merge (in one thread, for the most part), so the
    merge's serial end does not leave a core idle.  A level's features
    depend on its labels and colour sums alone, so the rows are the same bits
    as computed for all levels at once; levels that turn out not to be kept
    are left unused.
    """
    early: list[tuple[np.ndarray, object]] = []
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="display-statistics") as pool,
        ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="display-levels") as levels,
    ):
        statistics = pool.submit(window_statistics, video, visible)

        def level_rows(labels, sums):
            return level_features(
                video, visible, labels[None], params.min_segment_area, statistics=statistics.result(), colour_sums=[sums]
            )[0]

        def on_level(labels, sums):
            early.append((labels, levels.submit(level_rows, labels, sums)))

        segments, thresholds, colour_sums = _segment_window(video, visible, params, on_level)
        if colour_sums is None:  # the exact whole-frame merge: all levels at the end
            features = level_features(
                video, visible, segments, params.min_segment_area, statistics=statistics.result(), colour_sums=None
            )
        else:
            # equal labels have equal features, whichever level they were merged as
            features = [
                next((rows.result() for seen, rows in early if np.array_equal(seen, labels)), None)
                for labels in segments
            ]
            missing = [i for i, rows in enumerate(features) if rows is None]
            if missing:
                rest = level_features(
                    video, visible, segments[missing], params.min_segment_area, statistics=statistics.result(),
                    colour_sums=[colour_sums[i] for i in missing],
                )
                for i, rows in zip(missing, rest, strict=True):
                    features[i] = rows
    return segments, thresholds, features


def annotation_mask(clip: AnnotatedClip, base_dir: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """The annotated display pixels of ``clip`` on the window's grid ``shape`` = (H, W), bool.

    Polygons are rasterised; a mask image is read as non-zero = display.  When
    the annotation was drawn at another size (``window_size``, or a mask image
    of another size with the same aspect ratio), it is scaled to ``shape``.

    Raises
    ------
    AnnotationError
        Unreadable mask image, or a size that cannot be matched; names the file.
    """
    height, width = shape
    base = Path(base_dir)
    if clip.polygons is not None:
        sx = sy = 1.0
        if clip.window_size is not None:
            sx, sy = width / clip.window_size[0], height / clip.window_size[1]
        polygons = [[(x * sx, y * sy) for x, y in polygon] for polygon in clip.polygons]
        return rasterise_polygons(polygons, shape) if polygons else np.zeros(shape, bool)
    path = clip.mask if clip.mask.is_absolute() else base / clip.mask
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise AnnotationError(f"{path}: mask image not found or not readable")
    if image.shape != (height, width):
        mh, mw = image.shape
        if abs(mw / mh - width / height) > 0.01 * width / height:
            raise AnnotationError(
                f"{path}: mask is {mw}x{mh} pixels, the clip's window {width}x{height}; aspect ratios differ"
            )
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    return image > 0


def training_rows(
    video: np.ndarray, visible: np.ndarray | None, truth: np.ndarray, params: DisplayParams
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and targets of every segment of every kept level of one window.

    Returns
    -------
    features : ndarray, (K, F) float64
        Rows of skipped segments are NaN (the training drops them).
    targets : ndarray, (K,) bool
        At least half of the segment's pixels annotated as display.
    """
    segments, _, features = _segments_and_features(video, visible, params)
    targets = [segment_targets(labels, truth) for labels in segments]
    return np.concatenate(features), np.concatenate(targets)


def annotated_clip_rows(
    clip: AnnotatedClip,
    base_dir: str | Path,
    work_dir: str | Path,
    config: PipelineConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Ingest one annotated clip into a store under ``work_dir``, window it, and return its training rows.

    The same ingest and window stages as ``make_cinemagraph`` (with
    ``config.ingest``, ``config.window``), so the classifier sees what the
    pipeline will show it.  The store is removed afterwards.
    """
    source = clip.clip if clip.clip.is_absolute() else Path(base_dir) / clip.clip
    store = Path(work_dir) / (source.stem + ".zarr")
    try:
        ingest(source, store, config.ingest)
        select_window(str(store), config.window, config.cyclicity.min_window_frames)
        ds = open_store(store)
        video, visible = dask.compute(ds[N.WARPED].data, ds[N.VISIBLE].data)
        truth = annotation_mask(clip, base_dir, video.shape[1:3])
        return training_rows(video, visible.astype(bool), truth, config.displays)
    finally:
        remove_store(store)


def negative_clip_rows(
    clip: str | Path,
    work_dir: str | Path,
    config: PipelineConfig,
    n_windows: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of a real clip without displays: every segment of every window is a negative.

    The clip is ingested (``config.ingest``) into a store under ``work_dir``,
    once per window; ``n_windows`` windows of ``config.window``'s length are
    taken with their references spread evenly over the clip (reference
    ``n (i + 1) / (n_windows + 1)`` of ``n`` frames), each with the identity
    alignment, and segmented and described as in :func:`training_rows`.
    Walkers, dancers, cars and faces of footage nobody drew teach the
    classifier what a display is not.  The stores are removed afterwards.

    Returns
    -------
    features : ndarray, (K, F) float64
    targets : ndarray, (K,) bool, all False
    """
    source = Path(clip)
    if int(n_windows) < 1:
        raise ValueError(f"n_windows must be >= 1; got {n_windows}")
    rows, targets = [], []
    n_frames = None
    for i in range(int(n_windows)):
        # one store per window: a shorter window cannot overwrite a longer one in place
        store = Path(work_dir) / f"{source.stem}-negatives-{i}.zarr"
        try:
            ingest(source, store, config.ingest)
            n_frames = open_store(store)[N.FRAMES].shape[0] if n_frames is None else n_frames
            reference = min(int(n_frames * (i + 1) / (int(n_windows) + 1)), n_frames - 1)
            window = config.window.model_copy(update={"reference_index": reference})
            select_window(str(store), window, config.cyclicity.min_window_frames)
            ds = open_store(store)
            video, visible = dask.compute(ds[N.WARPED].data, ds[N.VISIBLE].data)
            truth = np.zeros(video.shape[1:3], bool)
            features, target = training_rows(video, visible.astype(bool), truth, config.displays)
            rows.append(features)
            targets.append(target)
        finally:
            remove_store(store)
    return np.concatenate(rows), np.concatenate(targets)


def displays_digest(store: str | Path, params: DisplayParams) -> str:
    """Digest of the stage's inputs: the window record, the parameters and the model file's hash.

    ``block = 1`` (single pixels, how every store was segmented before the option existed) is its
    "behaves as before" value (:mod:`schemas.compat`), so those stores still count as done."""
    upstream = aligned_digest(store)
    sha = model_sha256(params.model_file()) if params.enabled else None
    return digest(STAGE, upstream, config_values(params), sha)


def _drop_outputs(store: str | Path) -> None:
    g = group(store)
    for name in (N.SEGMENTS, N.DISPLAY_MASK):
        if name in g:
            del g[name]


def find_displays(store: str, params: DisplayParams) -> DisplaysResult:
    """Compute and write ``segments`` and ``display_mask`` of ``store``; record the stage.

    With ``params.enabled`` False, any earlier outputs of the stage are removed
    and the stage is recorded as switched off.
    """
    t0 = time.perf_counter()
    key = displays_digest(store, params)
    if not params.enabled:
        _drop_outputs(store)
        result = DisplaysResult(enabled=False, display_pixels=0, n_display_regions=0)
        record_stage(store, STAGE, key, time.perf_counter() - t0, result.model_dump())
        return result
    model, path, sha = load_display_model(params)
    ds = open_store(store)
    require(ds, store, [N.WARPED, N.VISIBLE])
    with cluster_compute():
        video, visible = dask.compute(ds[N.WARPED].data, ds[N.VISIBLE].data)
    segments, thresholds, mask, n_positive = detect_displays(video, visible.astype(bool), model, params)
    # one chunk per level: readers take whole frames (the render stage the whole mask), and a
    # few hundred small chunks cost more to write than the pixels
    out = xr.Dataset(
        {
            N.SEGMENTS: ((N.LEVEL, N.Y, N.X), segments),
            N.DISPLAY_MASK: ((N.Y, N.X), mask),
        }
    )
    write_variables(out, store, chunks={N.LEVEL: 1, N.Y: -1, N.X: -1})
    _, n_regions = ndimage.label(mask, structure=np.ones((3, 3), bool))
    result = DisplaysResult(
        enabled=True,
        display_pixels=int(mask.sum()),
        n_display_regions=int(n_regions),
        segments_per_level=[int(level.max()) + 1 for level in segments],
        thresholds=[float(t) for t in thresholds],
        positive_segments=n_positive,
        model=str(path),
        model_sha256=sha,
    )
    record_stage(store, STAGE, key, time.perf_counter() - t0, result.model_dump())
    return result


@task(name="find_displays")
def find_displays_task(store: str, params: DisplayParams) -> DisplaysResult:
    """Prefect task: hierarchical segmentation + random forest -> `segments`, `display_mask`."""
    done = finished_stage(store, STAGE, displays_digest(store, params), DisplaysResult)
    if done is not None:
        return done
    log = stage_logger(STAGE)
    result = find_displays(store, params)
    if not result.enabled:
        log.info("stage displays finished: switched off, no display mask")
    else:
        log.info(
            "stage displays finished: %d display pixels in %d regions (%d positive segments; segments per level %s)",
            result.display_pixels,
            result.n_display_regions,
            result.positive_segments,
            result.segments_per_level,
        )
    return result
