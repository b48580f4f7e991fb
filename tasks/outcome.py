"""Honest outcomes: what a run made, and every reason to doubt it (issue 12).

:func:`judge_outcome` turns the small results of the stages into ``outcome`` (``animated``,
``still``, ``degraded``), ``outcome_reasons`` and warnings for ``result.json``.  Pure Python
over the stage results: no store access, so every rule is tested on its own.

Rules (documented in the README's output contract):

* ``still``: no pixel animates.  The reasons name the tests that removed the candidates:
  the cyclicity score/intensity/amplitude tests, the cleaning (opening, ``min_region_area``),
  the motion veto of moving regions (:mod:`tasks.cyclic_veto`), the display classifier, and the
  render's sample-range fallback.  A degraded run also names what the motion veto removed.
* ``degraded``: something animates but the result is compromised: the loop is shorter than
  :data:`MIN_LOOP_FRAMES` frames; alignment left fewer than :data:`MIN_VISIBLE_FRACTION` of the
  window's samples visible, or frames without a transform; the window crosses a shot
  boundary; the render had to fall back to the reference frame somewhere.
* ``animated`` otherwise.

Warnings (always, whatever the outcome): nothing animates; loop shorter than 8 frames;
alignment below 80 % visible or frames without a transform; window crossed or shortened by a
shot boundary; the container declares more frames or a longer duration than were decoded
(:func:`declared_length_warning`); plus the stages' own warnings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from schemas.config import CyclicityParams, IngestParams, WindowParams
from schemas.displays import DisplaysResult
from schemas.results import CyclicityResult, WarpResult, WindowResult

#: A loop shorter than this many frames is degraded (it stutters rather than loops).
MIN_LOOP_FRAMES = 8
#: Alignment that leaves fewer visible window samples than this fraction is degraded.
MIN_VISIBLE_FRACTION = 0.8
#: Declared frames may exceed the decoded ones by this fraction (rounding of durations, B-frames).
DECLARED_SLACK = 0.02


class Outcome(NamedTuple):
    outcome: str
    reasons: list[str]
    warnings: list[str]


def declared_length_warning(source: str | Path, n_frames: int, params: IngestParams) -> str | None:
    """A warning when the container declares more frames or a longer duration than were decoded.

    ``n_frames`` frames were kept by ingest from ``source`` with ``params`` (start, end, stride).
    When ``end_frame`` cut the clip short on purpose nothing is said.  Container metadata that
    cannot be read is no reason to warn.

    Parameters
    ----------
    source : path-like
        The video file.
    n_frames : int
        Frames ingest kept.
    params : IngestParams
        The frame range and stride used.
    """
    import av

    decoded = params.start_frame + n_frames * params.stride  # decoded frames, to within one stride
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            declared_frames = int(stream.frames or 0)
            if stream.duration is not None and stream.time_base is not None:
                declared_seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                declared_seconds = container.duration / 1e6
            else:
                declared_seconds = 0.0
    except Exception:  # unreadable metadata is not a truncation
        return None
    if params.end_frame is not None:
        declared_frames = min(declared_frames, params.end_frame)
        if fps > 0:
            declared_seconds = min(declared_seconds, params.end_frame / fps)
    slack = max(params.stride + 1, math.ceil(DECLARED_SLACK * max(declared_frames, decoded)))
    problems = []
    if declared_frames > decoded + slack:
        problems.append(f"{declared_frames} frames")
    if fps > 0 and math.isfinite(declared_seconds) and declared_seconds * fps > decoded + slack:
        problems.append(f"{declared_seconds:.2f} s")
    if not problems:
        return None
    seconds = decoded / fps if fps > 0 else float("nan")
    return (
        f"{source}: the container declares {' and '.join(problems)} but only {decoded} frames "
        f"({seconds:.2f} s) could be decoded; the file may be truncated or damaged"
    )


def veto_reason(cyclic: CyclicityResult, cyclicity: CyclicityParams) -> str:
    """What the motion veto of the cyclicity stage removed (:mod:`tasks.cyclic_veto`)."""
    vetoed = sorted((e for e in cyclic.motion_explained if e >= (cyclicity.motion_veto or 0)), reverse=True)
    shares = ", ".join(f"{e:.2f}" for e in vetoed)
    return (
        f"cyclicity: {cyclic.vetoed_regions} regions ({cyclic.vetoed_pixels} px) vetoed as moving objects "
        f"(optical flow explains >= {cyclicity.motion_veto} of their change: {shares})"
    )


def still_reasons(
    cyclic: CyclicityResult | None,
    cyclicity: CyclicityParams,
    displays: DisplaysResult | None,
    fallback_pixels: int = 0,
) -> list[str]:
    """Which test removed what, when nothing animates."""
    reasons = []
    if cyclic is not None:
        if cyclic.candidate_pixels == 0:
            reasons.append(
                f"cyclicity: no pixel passed the score (>= {cyclicity.score_threshold}), intensity and amplitude "
                f"(>= {cyclicity.min_amplitude}) tests"
            )
        elif cyclic.cyclic_pixels == 0 and cyclic.vetoed_regions == 0:
            reasons.append(
                f"cyclicity: {cyclic.candidate_pixels} candidate pixels passed the score tests but none survived "
                f"the cleaning (opening radius {cyclicity.opening_radius}, regions >= {cyclicity.min_region_area} "
                "pixels)"
            )
        if cyclic.vetoed_regions:
            reasons.append(veto_reason(cyclic, cyclicity))
    if displays is not None:
        if not displays.enabled:
            reasons.append("displays: the display stage is switched off")
        elif displays.display_pixels == 0:
            segments = sum(displays.segments_per_level)
            reasons.append(f"display classifier: none of {segments} segments was classed a display")
    if fallback_pixels:
        reasons.append(
            f"render: {fallback_pixels} pixels fell back to the reference frame (values outside "
            "their window samples)"
        )
    if not reasons:
        reasons.append("no pixel passed the cyclicity or display tests")
    return reasons


def judge_outcome(
    *,
    window: WindowResult,
    window_params: WindowParams,
    warp: WarpResult | None,
    loop_frames: int,
    animated_pixels: int,
    cyclic: CyclicityResult | None,
    cyclicity: CyclicityParams,
    displays: DisplaysResult | None,
    fallback_pixels: int = 0,
    render_warnings: list[str] | None = None,
) -> Outcome:
    """Outcome, reasons and warnings of one run (see the module docstring)."""
    degraded: list[str] = []
    warnings: list[str] = []
    if animated_pixels == 0:
        reasons = still_reasons(cyclic, cyclicity, displays, fallback_pixels)
        warnings.append("nothing animates: the output is a still frame (" + "; ".join(reasons) + ")")
    if animated_pixels and loop_frames < MIN_LOOP_FRAMES:
        text = f"the loop has only {loop_frames} frames (fewer than {MIN_LOOP_FRAMES})"
        degraded.append(text)
        warnings.append(text)
    if warp is not None:
        if warp.visible_fraction < MIN_VISIBLE_FRACTION:
            text = (
                f"alignment ({warp.mode}) left {100 * warp.visible_fraction:.0f} % of the window's samples visible "
                f"(fewer than {100 * MIN_VISIBLE_FRACTION:.0f} %)"
            )
            degraded.append(text)
            warnings.append(text)
        if warp.frames_unaligned:
            text = f"alignment ({warp.mode}) found no transform for {warp.frames_unaligned} window frames"
            degraded.append(text)
            warnings.append(text)
    n_window = window.window_stop - window.window_start
    if window.crosses_cut:
        text = (
            f"the analysis window (frames {window.window_start}-{window.window_stop}) crosses a shot boundary "
            f"(shots {window.shots})"
        )
        degraded.append(text)
        warnings.append(text)
    if window.cut_by_shot:
        wanted = window_params.frames_before + window_params.frames_after + 1
        warnings.append(
            f"a shot boundary cut the analysis window to {n_window} frames "
            f"(frames {window.window_start}-{window.window_stop}, {wanted} wanted)"
        )
    if fallback_pixels:
        degraded.append(f"{fallback_pixels} animated pixels fell back to the reference frame")
    if degraded and cyclic is not None and cyclic.vetoed_regions and animated_pixels:
        degraded.append(veto_reason(cyclic, cyclicity))
    warnings.extend(render_warnings or [])
    if animated_pixels == 0:
        return Outcome("still", reasons + degraded, warnings)
    if degraded:
        return Outcome("degraded", degraded, warnings)
    return Outcome("animated", [], warnings)
