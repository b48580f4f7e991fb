"""Small results that stages hand on, and ``result.json``, the run summary other tools read.

The JSON Schema of :class:`CinemagraphResult` is exported to ``schemas/result.schema.json``
(``python -m schemas.results`` rewrites it; a test checks it is current).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.render3d import Render3dResult
from schemas.video_loop import VideoLoopResult

RESULT_SCHEMA_PATH = Path(__file__).with_name("result.schema.json")
RESULT_VERSION = 1


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestResult(_Result):
    store: str = Field(description="Path of the item's Zarr store.")
    source: str = Field(description="The decoded file.")
    n_frames: int = Field(description="Frames written to `frames`.")
    height: int = Field(description="Frame height (pixels).")
    width: int = Field(description="Frame width (pixels).")
    fps: float = Field(description="Frame rate of the stored frames (frames/s), stride taken into account.")
    source_height: int = Field(description="Height of the decoded video before downscaling (pixels).")
    source_width: int = Field(description="Width of the decoded video before downscaling (pixels).")
    warnings: list[str] = Field(default_factory=list, description="Problems met and worked around.")


class ShotsResult(_Result):
    """The clip's shots (hard cuts), found before the window is chosen."""

    shots: list[tuple[int, int]] = Field(description="[start, stop) of every shot (ingested frame indices).")
    detected: bool = Field(description="False when detection was off or failed (the clip is then one shot).")
    warnings: list[str] = Field(default_factory=list, description="Why detection failed, if it did.")


class WindowResult(_Result):
    reference_index: int = Field(description="Reference frame, index into `frames`.")
    window_start: int = Field(description="First frame of the analysis window (index into `frames`).")
    window_stop: int = Field(description="One past the last frame of the window.")
    shots: list[tuple[int, int]] = Field(
        default_factory=list,
        description="[start, stop) of the clip's shots (frame indices) found by the shots stage; empty when shot "
        "detection was off or did not run.",
    )
    shot: int | None = Field(None, description="Index into `shots` of the shot holding the reference frame.")
    reason: str = Field("", description="How the reference frame and the window were chosen, in words.")
    crosses_cut: bool = Field(False, description="The window holds frames of more than one shot.")
    cut_by_shot: bool = Field(
        False, description="A shot boundary made the window shorter than frames_before + frames_after + 1."
    )


class MotionResult(_Result):
    """How the camera moves over the window, and the alignment mode chosen from it."""

    mode: Literal["steady", "homography", "moving"] = Field(description="Alignment mode used next.")
    requested: str = Field(description="config.align.mode: auto or a forced mode.")
    reason: str = Field(description="Why this mode, in words (also logged).")
    n_tracks: int = Field(description="Features tracked from the reference frame.")
    frames_measured: int = Field(description="Window frames with enough tracks to measure.")
    motion_px: float | None = Field(
        description="Largest per-frame median displacement of the tracks from the reference (pixels)."
    )
    still_fraction: float | None = Field(
        None,
        description="10th percentile over frames of the fraction of tracks that stayed still (the steady test).",
    )
    inlier_fraction: float | None = Field(
        None,
        description="Median over frames of the fraction of tracks within ransac_px of the frame's homography "
        "(the homography test).",
    )
    parallax_px: float | None = Field(
        description="Median over frames of the 75th percentile of the tracks' distance to the frame's "
        "homography (pixels): residual motion that one homography cannot explain."
    )


class SfMSummary(_Result):
    """Structure from motion of the window (moving mode)."""

    ok: bool = Field(description="False when it failed; the window is then aligned by homography.")
    message: str = Field("", description="Why it failed (empty when ok).")
    frames_reconstructed: int = Field(0, description="Window frames given to the mapper.")
    frames_registered: int = Field(0, description="Of those, frames the mapper registered.")
    n_points: int = Field(0, description="Sparse 3D points.")
    focal_px: float | None = Field(None, description="Calibrated focal length (pixels).")
    focal_prior_px: float | None = Field(
        None, description="Focal length the mapper started from (pixels; align.sfm_focal_prior_fov)."
    )
    focal_profile: dict[str, float] | None = Field(
        None,
        description="Reprojection error with the focal length held at these ratios of the estimate (poses and points "
        "re-adjusted), relative to the error at the estimate: near 1 = the images hardly determine the focal length.",
    )
    focal_determined: bool | None = Field(
        None,
        description="False when the focal profile rises by less than 1 % on average (a planar scene or little rotation): the "
        "metric scale of the parallax, and so the 3D cinemagraph, may be off.",
    )
    mean_reprojection_error: float | None = Field(None, description="Over all observations (pixels).")


class DepthSummary(_Result):
    """Plane-sweep depth of the reference frame (moving mode)."""

    depth_near: float = Field(description="Nearest depth label (world units of the reconstruction).")
    depth_far: float = Field(description="Farthest depth label.")
    n_labels: int
    n_neighbours: int = Field(description="Frames matched against the reference.")
    energy: float = Field(description="Energy of the alpha-expansion labeling.")
    seconds_cost_volume: float
    seconds_graph_cut: float


class WarpResult(_Result):
    """The aligned window: `warped` and `visible`."""

    mode: Literal["steady", "homography", "moving"]
    visible_fraction: float = Field(description="Fraction of window samples marked visible.")
    frames_unaligned: int = Field(
        0, description="Frames left wholly invisible because no alignment could be fitted (homography mode)."
    )


class CyclicityResult(_Result):
    cyclic_pixels: int = Field(description="Pixels in `cyclic_mask`.")
    candidate_pixels: int = Field(
        description="Pixels passing the score, intensity and amplitude tests before cleaning."
    )
    n_regions: int = Field(description="8-connected regions of `cyclic_mask`.")
    grown_pixels: int = Field(
        0, description="Pixels added to the cleaned mask by growing over correlated neighbours (before the motion veto)."
    )
    cleaned_pixels: int = Field(0, description="Pixels of the cleaned mask (after opening and area tests, before growth).")
    vetoed_regions: int = Field(
        0, description="Grown regions dropped by the motion veto (optical flow explains their change: moving objects)."
    )
    vetoed_pixels: int = Field(0, description="Pixels of the regions dropped by the motion veto.")
    motion_explained: list[float] = Field(
        default_factory=list,
        description="Share of each grown region's change that optical flow explains (ratio, label order, before the "
        "veto; empty when the veto is off).",
    )


class RegionLoop(_Result):
    label: int = Field(description="Region label (1-based) in the render's region map.")
    area: int = Field(description="Pixels in the region.")
    start: int = Field(description="Start of the looped interval (window frame index).")
    stop: int = Field(description="End of the looped interval, exclusive.")
    score: float = Field(description="Cyclicity score of the region's mean signal over that interval.")
    crossfade: bool = Field(
        description="True when the playback period does not divide the loop length and the end cross-fades."
    )
    kind: Literal["cyclic", "display"] = Field(
        "cyclic",
        description="cyclic: a region of `cyclic_mask`; display: a display segment (it overlaps `display_mask` in "
        "more pixels than `cyclic_mask`), stabilised and regularised by RPCA.",
    )
    playback: Literal["repeat", "forward_backward"] = Field(
        "repeat",
        description="repeat: frames start..stop-1 again and again; forward_backward: start..stop-1 then back down "
        "to start+1 (a palindrome, no seam).",
    )
    period: int | None = Field(
        None, description="Frames of one playback cycle: stop - start (repeat) or 2 (stop - start - 1) (palindrome)."
    )
    flicker: float | None = Field(
        None,
        description="Mean absolute second temporal difference inside the region over the loop (cyclically, seam "
        "included), divided by the same figure of `warped` over frames start..stop-1 (1 = as in the source, "
        "< 1 = steadier; None when the source figure is 0).",
    )
    dominant_period: float | None = Field(
        None,
        description="Cyclic regions with whole_periods: the period of the winning DFT frequency, refined below "
        "the frame (frames); None otherwise.",
    )
    cycle_frames: int | None = Field(
        None,
        description="Cyclic regions with whole_periods: whole periods in whole frames (frames); the played "
        "interval stop - start is a multiple of it.",
    )
    timing: Literal["whole", "retimed", "crossfade", "interval"] = Field(
        "interval",
        description="whole: whole cycles fill the loop exactly; retimed: whole cycles played at `speed` to fill "
        "it; crossfade: the end cross-fades into the start; interval: the region repeats its interval as "
        "found (displays, or whole_periods off; `crossfade` says whether it cross-fades).",
    )
    speed: float = Field(
        1.0, description="Source frames per output frame (1 = unchanged; retimed regions differ by <= max_retime)."
    )
    wrap_change: float | None = Field(
        None,
        description="Mean absolute change (0-255, over the region's pixels and colours) from the rendered loop's "
        "last frame to its first.",
    )
    largest_step: float | None = Field(
        None,
        description="The largest mean absolute change between consecutive frames of the rendered loop in the "
        "region (0-255); a seamless wrap is no larger.",
    )
    inpainted_samples: int = Field(
        0, description="Invisible (frame, pixel) samples of the region filled by space-time in-painting."
    )
    stabilised_tracks: int | None = Field(
        None, description="Static KLT tracks used to stabilise the segment (None: not stabilised)."
    )
    rpca_gamma: float | None = Field(
        None, description="Fraction of ones in the segment's Delta1 descriptor (or the fallback); None: no RPCA."
    )
    rpca_lambda: float | None = Field(None, description="RPCA sparsity weight 0.005 + 0.015 gamma; None: no RPCA.")
    rpca_iterations: int | None = Field(
        None, description="APG iterations (the largest over colour channels and tiles); None: no RPCA."
    )
    rpca_converged: bool | None = Field(
        None, description="True when every RPCA problem of the segment met its tolerance; None: no RPCA."
    )


class LoopQuality(_Result):
    seam: float | None = Field(
        description="Mean absolute change from the loop's last frame to its first, over the mean change between "
        "consecutive frames, inside the animated region (1 = as smooth as playback; None without animation)."
    )
    stillness: float = Field(
        description="Largest change over time outside the animated region (0 = frozen exactly)."
    )
    flicker: float | None = Field(
        None,
        description="Largest per-region flicker ratio (see RegionLoop.flicker); None without animation.",
    )


class RenderResult(_Result):
    loop_frames: int = Field(description="Frames in the output loop.")
    animated_pixels: int = Field(description="Pixels of `animated_mask`.")
    regions: list[RegionLoop] = Field(default_factory=list)
    quality: LoopQuality
    steps: dict[str, float] = Field(
        default_factory=dict,
        description="Wall time of the render's sub-steps (seconds): inpaint, stabilise and rpca summed over "
        "regions (task time, run in parallel), chain (wall time until the chains the loop's timing needs are done: "
        "all but the display segments'), signals, composite (the display segments' chains finish during "
        "signals and composite, on a cluster), range_check, quality.",
    )
    range_fallback_pixels: int = Field(
        0,
        description="Animated pixels whose loop left the range of their visible window samples and the reference "
        "frame (beyond 2 grey levels) and were set back to the reference frame (tasks.sample_range).",
    )
    warnings: list[str] = Field(default_factory=list, description="Problems of the render (range fallbacks).")


class EncodeResult(_Result):
    mp4: str | None = None
    gif: str | None = None
    webp: str | None = None
    mp4_bytes: int | None = Field(None, description="Size of cinemagraph.mp4 (bytes).")
    gif_bytes: int | None = Field(None, description="Size of cinemagraph.gif (bytes).")
    gif_mean_abs_error: float | None = Field(
        None,
        description="Mean absolute difference between the decoded GIF and the store's loop (at the GIF's size) "
        "inside the animated mask, over frames, pixels and colours (0-255 levels); None without animation.",
    )
    gif_max_abs_error: float | None = Field(
        None, description="Largest such difference (0-255 levels); None without animation."
    )
    gif_dither: list[str] = Field(
        default_factory=list,
        description="Parts of the GIF dithered (Floyd-Steinberg) because it lowered their blurred error: "
        "'frozen', 'animated'; empty = none.",
    )


class MaskSizes(_Result):
    cyclic: int = Field(description="Pixels of `cyclic_mask`.")
    display: int = Field(
        0, description="Pixels of `display_mask` (displays and billboards; 0 when switched off)."
    )
    animated: int = Field(description="Pixels of `animated_mask`.")
    animated_fraction: float = Field(description="animated / (height * width).")


class StageUsage(_Result):
    """What one stage cost: wall time, CPU time and peak memory of the processes that ran it."""

    wall_s: float = Field(description="Wall-clock time of the stage (seconds).")
    cpu_s: float = Field(
        description="User + system CPU time of the flow's process and its child processes (local Dask "
        "worker processes) during the stage (CPU-seconds); work on a remote cluster is not counted."
    )
    peak_rss_mb: float = Field(
        description="Peak resident memory during the stage (MiB): the sum over those processes of each one's "
        "peak, the peak counter being reset when the stage starts (Linux; 0 where unavailable)."
    )


class CinemagraphResult(_Result):
    """``result.json`` of one item."""

    version: int = Field(RESULT_VERSION, description="Version of this format.")
    input: str = Field(description="The source video.")
    output_dir: str
    store: str = Field(description="Path of store.zarr.")
    outputs: EncodeResult
    fps: float
    height: int
    width: int
    n_frames: int = Field(description="Frames ingested.")
    reference_index: int
    window: tuple[int, int] = Field(description="[start, stop) of the analysis window (frame indices).")
    window_choice: WindowResult | None = Field(
        None, description="The clip's shots, the shot holding the reference and how the window was chosen."
    )
    loop_frames: int
    masks: MaskSizes
    regions: list[RegionLoop]
    quality: LoopQuality
    timings: dict[str, float] = Field(
        description="Wall time of each stage (seconds); 0 for a stage skipped on rerun."
    )
    skipped_stages: list[str] = Field(
        default_factory=list, description="Stages found complete in the store and not rerun."
    )
    usage: dict[str, StageUsage] = Field(
        default_factory=dict, description="Wall time, CPU time and peak memory of each stage that ran."
    )
    warnings: list[str] = Field(default_factory=list)
    outcome: Literal["animated", "still", "degraded"] = Field(
        "animated",
        description="animated: regions loop as intended; still: nothing passed the tests (outcome_reasons "
        "say which test removed what); degraded: an output was made but something went wrong (reasons).",
    )
    outcome_reasons: list[str] = Field(
        default_factory=list, description="Why the outcome is still or degraded (empty when animated)."
    )
    config: dict = Field(description="The PipelineConfig used.")
    alignment: MotionResult | None = Field(
        None, description="Camera motion measured over the window and the alignment mode used."
    )
    sfm: SfMSummary | None = Field(None, description="Structure from motion (moving mode only).")
    depth: DepthSummary | None = Field(None, description="Reference depth (moving mode only).")
    loop_method: str = Field("cyclic_regions", description="How the loop was made (config.loop_method).")
    video_loop: VideoLoopResult | None = Field(
        None, description="Per-pixel loop summary when loop_method is video_loop (periods, energies, timings)."
    )
    render3d: Render3dResult | None = Field(None, description="The 3D cinemagraph, when render3d.enabled (moving mode).")


def write_schema(path: Path = RESULT_SCHEMA_PATH) -> Path:
    """Write the JSON Schema of :class:`CinemagraphResult` to ``path``."""
    path.write_text(json.dumps(CinemagraphResult.model_json_schema(), indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    print(write_schema())
