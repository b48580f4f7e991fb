"""Split a source into shots (PySceneDetect) and plan one item per reference frame.

A shot shorter than ``min_shot_frames`` is skipped with a reason.  A shot up to
``reference_every`` frames long gives one item with its reference in the middle; a longer
shot (a walk-through) gives an item every ``reference_every`` frames, each with the analysis
window around its own reference, as the paper's navigation application does.
"""

from __future__ import annotations

import logging
from pathlib import Path

from schemas.config import WindowParams
from schemas.corpus import ItemOutcome, ItemPlan, ShotParams
from tasks.video import VideoError, VideoSource

log = logging.getLogger("cinemagraph.shots")


def count_frames(path: str | Path) -> int:
    """Decodable frames of ``path``: counted from the container's packets where they are sure to be
    the frames (:meth:`~tasks.video.VideoSource.indexed_frame_count`), otherwise by decoding every frame."""
    with VideoSource(path) as video:
        indexed = video.indexed_frame_count()
    if indexed is not None:
        return indexed
    with VideoSource(path) as video:
        return sum(1 for _ in video.decoded())


def detect_cuts(path: str | Path, threshold: float, start_frame: int = 0, end_frame: int | None = None) -> list[int]:
    """Decoded-frame indices of ``path`` where a new shot starts (hard cuts), by PySceneDetect.

    ContentDetector (HSV change score above ``threshold``), decoded through PyAV, from
    ``start_frame`` to ``end_frame`` (exclusive; None = the end).  Raises what the detector raises
    when it cannot decode the file.
    """
    from scenedetect import ContentDetector, detect

    scenes = detect(
        str(path), ContentDetector(threshold=threshold), backend="pyav",
        start_time=start_frame or None, end_time=end_frame,
    )
    return sorted({int(start.frame_num) for start, _ in scenes} - {0, start_frame})


def shots_from_cuts(cuts: list[int], n_frames: int, start_frame: int = 0, stride: int = 1) -> list[tuple[int, int]]:
    """[start, end) shots of ``n_frames`` kept frames from cuts given in decoded-frame indices.

    Kept frame ``i`` is decoded frame ``start_frame + i * stride``; a cut at decoded frame ``c``
    starts a shot at the first kept frame at or after ``c``.
    """
    bounds = {0, n_frames}
    for c in cuts:
        i = -(-(c - start_frame) // stride)  # ceil
        if 0 < i < n_frames:
            bounds.add(i)
    edges = sorted(bounds)
    return list(zip(edges[:-1], edges[1:], strict=True))


def detect_shots(path: str | Path, params: ShotParams) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the shots of ``path``.

    Raises
    ------
    VideoError
        When the file cannot be decoded at all.
    """
    n_frames = count_frames(path)
    if n_frames == 0:
        raise VideoError(f"{path}: the video has no frames")
    if not params.detect:
        return [(0, n_frames)]
    try:
        cuts = detect_cuts(path, params.threshold)
    except Exception as exc:  # the detector's own decoding failed: keep the whole clip as one shot
        log.warning("%s: shot detection failed (%s); using the whole clip as one shot", path, exc)
        return [(0, n_frames)]
    return shots_from_cuts(cuts, n_frames)


def plan_items(
    item_prefix: str,
    source: str,
    shots: list[tuple[int, int]],
    params: ShotParams,
    window: WindowParams,
    options: dict | None = None,
) -> tuple[list[ItemPlan], list[ItemOutcome]]:
    """Items (one per reference frame) and skips (shots too short) of one source."""
    items, skipped = [], []
    single = len(shots) == 1
    for k, (a, b) in enumerate(shots):
        shot_id = item_prefix if single else f"{item_prefix}-shot{k:03d}"
        length = b - a
        if length < params.min_shot_frames:
            skipped.append(
                ItemOutcome(
                    item_id=shot_id,
                    source=source,
                    status="skipped",
                    shot=k,
                    start_frame=a,
                    end_frame=b,
                    reason=f"shot of {length} frames is shorter than min_shot_frames={params.min_shot_frames}",
                )
            )
            continue
        if length <= params.reference_every:
            refs = [a + length // 2]
        else:
            step = params.reference_every
            refs = list(range(a + step // 2, b, step))
        windows = [
            (ref, max(a, ref - window.frames_before), min(b, ref + window.frames_after + 1)) for ref in refs
        ]
        # a reference too near the shot's end for a loop of its own adds nothing
        windows = [w for w in windows if w[2] - w[1] >= params.min_shot_frames] or windows[:1]
        for ref, start, end in windows:
            item_id = shot_id if len(windows) == 1 else f"{shot_id}-f{ref:06d}"
            items.append(
                ItemPlan(
                    item_id=item_id,
                    source=source,
                    shot=k,
                    start_frame=start,
                    end_frame=end,
                    reference_frame=ref,
                    options=dict(options or {}),
                )
            )
    return items, skipped
