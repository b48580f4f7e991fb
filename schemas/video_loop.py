"""Configuration and result of the per-pixel video-loop stage (``loop_method = "video_loop"``).

The stage finds, for every pixel ``x``, a loop period ``p_x`` and a start frame
``s_x`` (Liao, Joshi and Hoppe, "Automated video looping with progressive
dynamism", SIGGRAPH 2013), optionally with the semantic terms and the staged
optimisation of Oh et al. ("Personalized cinemagraphs using semantic
understanding and collaborative learning", ICCV 2017).  Every field states its
unit; colours are measured in [0, 1] units (uint8 / 255) unless a field says
otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Liao et al.'s candidate loop periods (frames) for their 30 frames/s clips of ~5 s.
PAPER_PERIODS = (32, 36, 40, 44, 48, 52, 56, 60)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VideoLoopParams(_Model):
    """Per-pixel period and start by alpha-expansion (Liao et al. 2013; Oh et al. 2017)."""

    # ---- candidate periods ---------------------------------------------------------------
    periods: list[int] | None = Field(
        None,
        description="Explicit candidate loop periods (frames, each >= 2); the static label (period 1) is "
        "always added. Periods that do not fit the window (>= window length) are dropped. "
        "None = base_periods, scaled to the window (see max_period_fraction).",
    )
    base_periods: list[int] = Field(
        default_factory=lambda: list(PAPER_PERIODS),
        description="Candidate periods for a long enough window (frames); the paper's {32, 36, ..., 60}.",
    )
    max_period_fraction: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Scaling rule: when max(base_periods) exceeds this fraction of the window length T "
        "(frames), every base period is multiplied by fraction * T / max(base_periods) and rounded "
        "(duplicates and periods below min_period dropped), so the longest loop leaves "
        "(1 - fraction) * T + 1 start frames to choose from.  Windows long enough are never stretched.",
    )
    min_period: int = Field(4, ge=2, description="Shortest non-static period kept after scaling (frames).")
    start_step: int = Field(
        1,
        ge=1,
        description="Candidate start frames are multiples of this (frames); > 1 trades quality for speed.",
    )

    detect_periods: bool = Field(
        True,
        description="With automatic periods (periods = None): find short periodic content (blinking lights, "
        "turning signs) in the coarse grid by its lag profile (mean squared change per time lag) and add "
        "its fundamental periods and their multiples that divide the least common multiple of the "
        "fundamentals (at most max_loop_frames) to the candidates, so that it loops in a period that "
        "fits instead of freezing.",
    )
    periodicity_threshold: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="A grid cell is periodic with fundamental p when its mean squared change at lag p is "
        "below this fraction of its mean over all lags up to max_detect_period, and no shorter lag is "
        "(dimensionless).",
    )
    max_detect_period: int = Field(
        30, ge=2, description="Longest fundamental period looked for (frames); at most half the window."
    )
    min_period_votes: int = Field(
        3, ge=1, description="Periodic grid cells a fundamental period needs to be added (grid cells)."
    )

    # ---- optimisation grid ---------------------------------------------------------------
    downscale: int | None = Field(
        None,
        ge=1,
        description="The energy is built and minimised on the window box-averaged by this factor in y and x "
        "(pixels per grid cell); labels are upsampled to full resolution by replication.  None = the "
        "smallest factor that makes the grid's longer side at most max_grid_side.",
    )
    max_grid_side: int = Field(
        48, ge=8, description="Longest side of the optimisation grid when downscale is None (grid cells)."
    )

    # ---- coarse-to-fine refinement ---------------------------------------------------------
    refine: bool = Field(
        True,
        description="Refine period and start at full resolution after the coarse solve (coarse-to-fine, "
        "Liao et al. 2013, Sec. 4): every pixel chooses among the static label (the reference frame), "
        "the loops of its coarse cell and the 8 neighbouring cells, and its own best loop, by "
        "alpha-expansion on overlapping tiles (Dask tasks).  False = the coarse labels replicated.",
    )
    refine_tile: int = Field(
        64, ge=8, description="Side of the part of a refinement tile that is kept (pixels)."
    )
    refine_overlap: int = Field(
        6, ge=0, description="Margin solved around each refinement tile and then dropped (pixels)."
    )
    refine_cycles: int = Field(2, ge=1, description="Alpha-expansion cycles per refinement tile.")
    coarse_start_step: int | None = Field(
        2,
        ge=1,
        description="With refine: candidate starts of the coarse solve are multiples of max(start_step, this) "
        "(frames); the refinement still tries every start per pixel.  None = start_step.",
    )

    # ---- noise ----------------------------------------------------------------------------------
    noise_sigma: float | None = Field(
        None,
        ge=0,
        description="Standard deviation of the sensor noise per colour channel (intensity levels, 0-255). "
        "None = estimated from the window (25th percentile over pixels of the temporal standard deviation, "
        "which assumes that a quarter of the pixels is still).  Each grid level uses its own estimate.",
    )
    noise_floor_factor: float = Field(
        3.0,
        ge=0,
        description="Change within this many times what the noise alone gives is not motion "
        "(dimensionless): the median consecutive change or the spread (10-90 percentile range over "
        "time) must exceed it for the static term to rise.",
    )

    # ---- energy weights (Liao et al. 2013, Sec. 3) ------------------------------------------
    beta: float = Field(10.0, ge=0, description="Weight of the spatial consistency term (dimensionless).")
    lambda_t: float = Field(
        400.0,
        ge=0,
        description="gamma_t = 1 / (1 + lambda_t * MAD_t ||V(x,t) - V(x,t+1)||): temporal-term attenuation "
        "for pixels that change a lot (per colour unit).",
    )
    lambda_s: float = Field(
        100.0,
        ge=0,
        description="gamma_s = 1 / (1 + lambda_s * MAD_t ||V(x,t) - V(z,t)||): spatial-term attenuation "
        "across strong edges (per colour unit).",
    )
    static_cost: float = Field(
        10.0, ge=0, description="c_static: largest cost of freezing a pixel (energy units)."
    )
    lambda_static: float = Field(
        100.0,
        ge=0,
        description="e_static = c_static * min(1, lambda_static * max(0, MAD - floor)) (per colour unit).",
    )
    animation_cost: float = Field(
        1.0,
        ge=0,
        description="Cost of looping a pixel that shows no motion above the noise floor: "
        "animation_cost * max(0, 1 - lambda_static * motion) per looping pixel (energy units).  Our addition "
        "for cinemagraphs: without it a still, noisy background loops along with its neighbours (a common "
        "period has no seams), which is Liao et al.'s optimum but not a cinemagraph.  0 = the paper's energy.",
    )
    rhythm_weight: float = Field(
        10.0,
        ge=0,
        description="Repetition term (our addition): rhythm_weight * (D(p) - min_q D(q)) on a pixel looping with "
        "period p, with D(p) its mean squared change over lag p across the window (colour units squared) "
        "and q the candidate periods.  Liao et al.'s temporal term only compares the loop's two ends, so a "
        "light blinking every 8 frames loops 'seamlessly' in 10 frames with a broken rhythm; this term is 0 "
        "for every multiple of a pixel's own period and about equal for all periods of stochastic content. "
        "0 = the paper's energy.",
    )
    static_sigma: float = Field(
        0.0,
        ge=0,
        description="Spatial Gaussian applied before measuring a pixel's change (grid cells); 0 = none (the box "
        "average of the downscaled grid already smooths, and a blur spreads motion into a halo of still "
        "pixels, which then loop).",
    )
    static_noise_percentile: float = Field(
        10.0,
        ge=0,
        le=100,
        description="Noise floor of the static cost: this percentile over all grid cells of the smoothed "
        "consecutive-frame MAD (percent); assumes at least this share of the frame is truly still.",
    )
    static_noise_factor: float = Field(
        2.0,
        ge=0,
        description="... times this factor (dimensionless); 0 disables the floor (the paper's form).",
    )

    # ---- solver ------------------------------------------------------------------------------
    max_cycles: int = Field(4, ge=1, description="Alpha-expansion cycles per optimisation stage.")
    tol: float = Field(1e-3, ge=0, description="Relative energy decrease below which a stage stops.")

    # ---- rendering ---------------------------------------------------------------------------
    loop_frames: int | None = Field(
        None,
        ge=2,
        description="Length of the output loop (frames). None = the least common multiple of the periods in "
        "use when it is at most max_loop_frames, else the longest period in use. A pixel whose period does "
        "not divide the loop length plays round(loop_frames / p) whole cycles, retimed (linear "
        "interpolation between frames), so that every pixel still loops seamlessly.",
    )
    max_loop_frames: int = Field(300, ge=2, description="Upper bound of an automatic loop length (frames).")
    blend: Literal["gradient", "none"] = Field(
        "gradient",
        description="gradient: blend the rendered loop in the gradient domain (Liao et al. 2013, Sec. 5): "
        "a screened Poisson solve periodic in time, by multigrid-preconditioned conjugate gradients, for "
        "offsets on the animated pixels only (the frozen reference frame is the boundary), one "
        "connected animated region at a time.  none = the time-map render as is.",
    )
    blend_screening: float = Field(
        1e-3, gt=0, description="Screening weight of the blend (per frame and pixel, dimensionless)."
    )
    blend_temporal_weight: float = Field(
        1.0, ge=0, description="Weight of temporal against spatial gradients in the blend (dimensionless)."
    )
    blend_tol: float = Field(
        1e-2, gt=0, description="Relative residual at which the blending solve stops (dimensionless)."
    )
    blend_max_iter: int = Field(15, ge=1, description="Most conjugate-gradient iterations of the blend.")

    # ---- semantics (Oh et al. 2017) --------------------------------------------------------
    label_video: str | None = Field(
        None,
        description="Per-pixel class labels aligned with the frames: a Zarr array (time, y, x) of integers, "
        "or a folder of single-channel label PNGs (one per frame, sorted by name).  Either one label "
        "frame per window frame or one per ingested frame (then the window's frames are picked).  "
        "Its size must equal the frame size.  None = photometric terms only.",
    )
    natural_classes: list[int] = Field(
        default_factory=list,
        description="Label values of 'natural' classes (water, trees, sky, ...): looped pixel by pixel; every "
        "other class is an object whose pixels are pushed to share one loop.",
    )
    semantic_weight_natural: float = Field(
        0.5,
        ge=0,
        description="Weight of the semantic temporal and spatial consistency (label change at the loop's ends "
        "and between neighbours' time maps) on pixels of natural classes (energy per label change).",
    )
    semantic_weight_object: float = Field(
        2.0,
        ge=0,
        description="The same weight on pixels of non-natural (object) classes (energy per label change).",
    )
    object_coherence_weight: float = Field(
        1.0,
        ge=0,
        description="Potts cost between neighbours of the same non-natural class whose (period, start) differ, "
        "times the intersection of their label-occurrence histograms (energy units per edge).",
    )
    natural_coherence_weight: float = Field(
        0.0,
        ge=0,
        description="The same Potts cost for neighbours of the same natural class (energy units per edge).",
    )
    max_semantic_channels: int = Field(
        8,
        ge=1,
        description="One-hot channels for the most frequent classes (the rest share one 'other' channel).",
    )
    n_candidates: int = Field(
        4, ge=0, description="K: one candidate loop per top-K dynamic class (only with a label video)."
    )
    min_class_cells: int = Field(
        4,
        ge=1,
        description="A class needs at least this many moving grid cells to become a candidate (grid cells).",
    )
    min_dynamic_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="... and at least this share of its cells must move (fraction); classes are ranked by "
        "their moving cells, counted softly as min(1, lambda_static * motion) per cell.",
    )

    @field_validator("periods", "base_periods")
    @classmethod
    def _positive(cls, value):
        if value is not None:
            if len(value) == 0:
                raise ValueError("needs at least one period")
            if any(int(p) < 1 for p in value):
                raise ValueError("periods must be >= 1 frame")
        return value


class VideoLoopResult(_Model):
    """Small summary of a video-loop run (what the stage hands on)."""

    height: int = Field(description="Frame height (pixels).")
    width: int = Field(description="Frame width (pixels).")
    window_frames: int = Field(description="Frames of the analysis window (frames).")
    grid_height: int = Field(description="Height of the optimisation grid (cells).")
    grid_width: int = Field(description="Width of the optimisation grid (cells).")
    downscale: int = Field(description="Pixels per grid cell along y and x.")
    periods: list[int] = Field(description="Candidate periods including 1 = static (frames).")
    period_histogram: dict[str, int] = Field(
        description="Full-resolution pixels per chosen period (frames -> pixels)."
    )
    animated_pixels: int = Field(description="Pixels with period > 1.")
    loop_frames: int = Field(description="Frames of the output loop.")
    retimed_pixels: int = Field(description="Animated pixels whose period does not divide the loop length.")
    energies: dict[str, float] = Field(
        description="Energy after each stage: 'stage1' (sum over periods of the fixed-period optima), "
        "'stage2', 'stage3' (the full energy E(p, s) on the grid), and its 'temporal', 'spatial', 'static', 'animation' parts."
    )
    timings: dict[str, float] = Field(
        description="Seconds spent per step (read, prepare, stage1..3, coarse = prepare + stages, refine, "
        "render, blend, render_write)."
    )
    candidate_classes: list[int] = Field(
        default_factory=list, description="Label value of each stored candidate loop (top-K dynamic classes)."
    )
    candidate_animated_pixels: list[int] = Field(
        default_factory=list, description="Animated pixels of each candidate loop."
    )
    noise_sigma: float | None = Field(
        None, description="Sensor noise used at full resolution (intensity levels, 0-255)."
    )
    detected_periods: list[int] = Field(
        default_factory=list, description="Fundamental periods of short periodic content found (frames)."
    )
    period_regions: list[dict] = Field(
        default_factory=list,
        description="Where each period is used: one entry per period > 1 with 'period' (frames), "
        "'pixels', 'regions' (8-connected components), 'bbox' [y0, x0, y1, x1] (pixels, end exclusive), "
        "'retimed' (period does not divide loop_frames) and 'detected' (a multiple of a detected period).",
    )
    refined: bool = Field(False, description="Labels refined at full resolution.")
    refine_tiles: int = Field(
        0, description="Refinement tiles solved (tiles with nothing to decide skipped)."
    )
    seam_energy_before: float | None = Field(
        None,
        description="Spatial seam energy of the time-map render: mean over neighbour pairs showing different "
        "input frames of ||loop difference - desired difference||^2 (intensity levels squared).",
    )
    seam_energy_after: float | None = Field(
        None, description="The same after gradient-domain blending (None when blend = none)."
    )
    blend_iterations: int = Field(
        0, description="Conjugate-gradient iterations of the blend, summed over regions."
    )
    quality: dict[str, float | None] | None = Field(
        None, description="Seam and stillness of the stored `loop` (fields of schemas.results.LoopQuality)."
    )
