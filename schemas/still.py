"""Configuration and result of the still-image endless loop (``flows/make_endless_loop.py``).

The method is Halperin et al., "Endless Loops: Detecting and Animating Periodic
Patterns in Still Images" (SIGGRAPH 2021).  One change is forced on us: the
paper's per-pixel features come from the first layers of VGG-16, whose weights
cannot be downloaded here; :class:`FeatureParams` describes the hand-made
features used instead (colour plus oriented gradient energies at two scales,
PCA-reduced).

``cinemagraph still IMAGE --config FILE`` reads TOML or YAML shaped like
:class:`EndlessLoopConfig` (sections ``features``, ``direction``, ``repetitions``,
``mask``, ``crf``, ``flow``, ``texture``, ``frames``, ``encode``, ``execution``).
``python -m schemas.still`` regenerates ``schemas/endless_loop_result.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.config import ExecutionParams, _Model
from schemas.results import EncodeResult

RESULT_SCHEMA_PATH = Path(__file__).with_name("endless_loop_result.schema.json")

# store variables and dimensions of the still-image flow (shared/DESIGN.md's table)
IMAGE = "image"  # (y, x, channel) uint8
MASK = "mask"  # (y, x) bool: the union of the regions that move
LABELS = "labels"  # (y, x) int32: index into attrs["label_vectors"], -1 outside the mask
FLOW_FORWARD = "flow_forward"  # (y, x, vector) float32 pixels: where the content at x goes at t = 1
FLOW_BACKWARD = "flow_backward"  # (y, x, vector) float32 pixels: its inverse
FLOW_FORWARD_PADDED = "flow_forward_padded"  # the same over the image and a margin (padded_y, padded_x, vector)
FLOW_BACKWARD_PADDED = "flow_backward_padded"
VECTOR = "vector"  # (dx, dy)
PADDED_Y = "padded_y"
PADDED_X = "padded_x"

#: Image suffixes the still-image flow accepts (the corpus flow routes these to it).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class FeatureParams(_Model):
    """Per-pixel features F(p) (replacing the paper's VGG-16 features, which cannot be downloaded).

    Channels: CIELAB colour and, at each scale, the gradient energy along four
    orientations (0, 45, 90, 135 degrees), each standardised, then reduced by PCA.
    """

    scales: tuple[float, ...] = Field(
        (1.0, 2.5), min_length=1, description="Gaussian scales of the oriented gradient energies (pixels)."
    )
    n_components: int = Field(6, ge=1, le=16, description="Feature dimensions kept by PCA (count).")
    pca_samples: int = Field(20000, ge=100, description="Pixels sampled to fit the PCA (count).")


class DirectionParams(_Model):
    """Automatic main direction (paper Sec. 4.3): best-buddy corner pairs vote for their offset's direction."""

    work_long_side: int = Field(
        384, ge=32, description="Corners are found on the image scaled to at most this longer side (pixels)."
    )
    max_corners: int = Field(400, ge=10, description="Shi-Tomasi corners detected at most (count).")
    corner_quality: float = Field(
        0.01, gt=0, lt=1, description="Shi-Tomasi quality level (fraction of the strongest corner response)."
    )
    min_corner_distance: float = Field(5.0, gt=0, description="Minimum distance between corners (pixels).")
    descriptor_radius: int = Field(
        6, ge=1, description="Half size of the feature patch describing a corner (pixels, sampled every 3 px)."
    )
    descriptor_blur: float = Field(
        2.0, ge=0, description="Gaussian blur of the features before describing corners (pixels; 0 = none)."
    )
    min_offset: float = Field(6.0, gt=0, description="Pairs closer than this are not matched (pixels).")
    max_offset_fraction: float = Field(
        0.35,
        gt=0,
        le=2,
        description="Pairs farther apart than this fraction of the image's shorter side are not matched "
        "(short repetitions outvote long ones).",
    )
    bin_degrees: float = Field(2.0, gt=0, le=30, description="Width of the vote histogram's bins (degrees).")
    suppress_degrees: float = Field(
        10.0, gt=0, le=90, description="Votes within this angle of a winner are removed before the next (degrees)."
    )
    max_suggestions: int = Field(3, ge=1, le=10, description="Directions reported at most (count); the first is used.")
    min_votes: int = Field(3, ge=1, description="A direction needs at least this many pair votes (count).")


class RepetitionParams(_Model):
    """1-D repetitions along the main direction (paper Sec. 4.1)."""

    exclusion: int = Field(8, ge=1, description="e: D_ij = inf for |i - j| <= e (samples = pixels).")
    band_width: float = Field(
        64.0, gt=0, description="Width of the band sampled across the line, at most (pixels)."
    )
    band_step: float = Field(2.0, gt=0, description="Spacing of the samples across the band (pixels).")
    max_run: int = Field(
        2, ge=2, description="At most this many consecutive path entries on one row or column (entries)."
    )
    max_period_fraction: float = Field(
        0.5, gt=0, le=1, description="Longest displacement considered, as a fraction of the sampled length."
    )
    min_strength: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="No repetition when the dip of the band's self-difference at the period is shallower than "
        "this: strength = 1 - c(period) / c(first peak), c(k) the mean feature difference at shift k (ratio; "
        "measured: brick 0.44, checkerboard 0.76, synthetic patterns 0.63-0.74, non-periodic scikit-image "
        "pictures 0.05-0.25).",
    )


class MaskParams(_Model):
    """Automatic mask (beyond the paper): where the image repeats along the direction at the found period."""

    threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A pixel is periodic when its feature difference at the period is below (1 - threshold) "
        "times the difference at half and a third of the period (ratio).",
    )
    min_region_fraction: float = Field(
        0.02, gt=0, le=1, description="Smallest region kept, as a fraction of the image area."
    )
    max_regions: int = Field(4, ge=1, description="Regions kept at most, the largest first (count).")


class CRFParams(_Model):
    """Labels and the CRF that assigns one per masked pixel (paper Sec. 4.2)."""

    max_angle: float = Field(30.0, ge=0, le=90, description="Labels rotated by up to +- this (degrees).")
    n_angles: int = Field(9, ge=1, description="Rotations in [-max_angle, max_angle], both ends included (count).")
    max_lengths: int = Field(5, ge=1, description="Distinct 1-D displacement lengths used as labels, at most (count).")
    length_weight: float = Field(
        0.1, ge=0, description="lambda of the unary factor (1 + lambda | ||x|| - ||g|| |) (1/pixels)."
    )
    unary_window: float = Field(
        4.0,
        ge=0,
        description="Gaussian window over which the unary's feature differences are summed (pixels; 0 = "
        "per pixel), standing in for the receptive field of the paper's VGG features.",
    )
    direction_prior: float = Field(
        0.05,
        ge=0,
        description="Added to the normalised unary of labels turned by max_angle, less for smaller turns "
        "(1 - cos scale): decides flat areas, where the features cannot (our addition to the paper; ratio).",
    )
    pairwise_weight: float = Field(
        0.5, ge=0, description="Weight of the pairwise term relative to the normalised unary (ratio)."
    )
    theta_alpha: float = Field(10.0, gt=0, description="Spatial scale of the bilateral kernel (pixels).")
    theta_beta: float = Field(20.0, gt=0, description="Colour scale of the bilateral kernel (RGB levels 0-255).")
    grid_long_side: int = Field(
        160, ge=16, description="The CRF is solved on the image scaled to this longer side (pixels)."
    )
    max_cycles: int = Field(4, ge=1, description="Alpha-expansion cycles at most (count).")


class FlowParams(_Model):
    """Smooth, invertible flow (paper Sec. 4.4): Gaussian, sparse vectors, polyharmonic spline phi(r) = r."""

    smooth_sigma: float = Field(6.0, ge=0, description="Gaussian smoothing of the labelled field, at least (pixels).")
    smooth_period_fraction: float = Field(
        0.25,
        ge=0,
        description="... or this fraction of the region's 1-D period if larger (a field smooth on the scale "
        "of a unit inverts well; ratio).",
    )
    max_points: int = Field(400, ge=4, description="Sparse vectors per region, at most (count).")
    grid_step: int = Field(
        4, ge=1, description="The spline is evaluated every grid_step pixels, then resized (pixels)."
    )
    refine_inverse: int = Field(
        5,
        ge=0,
        description="Fixed-point steps F2(y) <- -F1(y + F2(y)) after the spline inversion (count; 0 = the "
        "paper's sparse inversion only).",
    )
    fade_to_border: bool = Field(
        False,
        description="Motion fades out towards the mask's border (anchor points of zero displacement on it, "
        "the paper's option); default off: the whole region slides and the border is cut.",
    )
    anchor_spacing: float = Field(12.0, gt=0, description="Spacing of the border anchors when fading (pixels).")
    fade_width: float = Field(
        24.0, ge=0, description="When fading, the motion ramps up from the border over this distance (pixels)."
    )


class TextureParams(_Model):
    """Texture beyond the mask: Telea in-painting, then texture warped outwards and Poisson-blended once."""

    inpaint_radius: float = Field(3.0, gt=0, description="Radius of OpenCV's Telea in-painting (pixels).")
    poisson: bool = Field(True, description="Poisson-blend the warped texture into the in-painted band.")
    work_long_side: int = Field(
        384,
        ge=32,
        description="In-painting and the Poisson correction run on the padded image scaled to about this "
        "longer side, then are resized back (pixels).",
    )


class FrameParams(_Model):
    """Frames V_t for t in [-1, 1] blended with a time-shifted copy (paper Sec. 4.5)."""

    n_frames: int = Field(48, ge=2, description="Frames in one loop (count).")
    blend_start: float = Field(
        0.25, ge=0, lt=1, description="alpha(u) is 0 up to this loop phase u = (t + 1) / 2 (fraction)."
    )
    blend_end: float = Field(
        0.75, gt=0, le=1, description="alpha(u) reaches 1 at this loop phase and stays there (fraction)."
    )
    feather: float = Field(1.0, ge=0, description="Gaussian feathering of the mask's edge (pixels).")

    @model_validator(mode="after")
    def _window(self) -> FrameParams:
        if self.blend_end <= self.blend_start:
            raise ValueError(f"blend_end ({self.blend_end}) must exceed blend_start ({self.blend_start})")
        return self


class StillEncodeParams(_Model):
    """Output files of the loop."""

    fps: float = Field(24.0, gt=0, le=120, description="Frame rate of cinemagraph.mp4 and .gif (frames/s).")
    crf: int = Field(18, ge=0, le=51, description="x264 constant rate factor of cinemagraph.mp4 (lower = better).")
    write_gif: bool = Field(True, description="Also write cinemagraph.gif.")
    gif_max_long_side: int | None = Field(480, ge=16, description="Longer side of the GIF (pixels); None = full.")


class EndlessLoopConfig(_Model):
    """Every option of ``make_endless_loop``."""

    max_long_side: int | None = Field(
        1024,
        ge=32,
        description="Images with a longer side are downscaled to it first, said in the summary (pixels); "
        "None keeps the size.",
    )
    direction: tuple[float, float] | None = Field(
        None, description="Main direction of motion (dx, dy), image axes (x right, y down); None = automatic."
    )
    features: FeatureParams = Field(default_factory=FeatureParams)
    auto_direction: DirectionParams = Field(default_factory=DirectionParams)
    repetitions: RepetitionParams = Field(default_factory=RepetitionParams)
    mask: MaskParams = Field(default_factory=MaskParams)
    crf: CRFParams = Field(default_factory=CRFParams)
    flow: FlowParams = Field(default_factory=FlowParams)
    texture: TextureParams = Field(default_factory=TextureParams)
    frames: FrameParams = Field(default_factory=FrameParams)
    encode: StillEncodeParams = Field(default_factory=StillEncodeParams)
    execution: ExecutionParams = Field(default_factory=ExecutionParams)

    @model_validator(mode="after")
    def _direction(self) -> EndlessLoopConfig:
        if self.direction is not None and self.direction[0] ** 2 + self.direction[1] ** 2 < 1e-12:
            raise ValueError("direction must be a non-zero vector")
        return self


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DirectionVote(_Result):
    direction: tuple[float, float] = Field(description="Unit vector (dx, dy), image axes.")
    angle: float = Field(description="Angle of the direction from +x towards +y (degrees, [0, 180)).")
    votes: int = Field(description="Best-buddy pairs that voted for it (count).")


class RegionSummary(_Result):
    region: int = Field(description="Region number (1-based, as in the store's `labels` attrs).")
    area: int = Field(description="Masked pixels of the region (count).")
    period: float = Field(description="Median 1-D displacement along the direction (pixels).")
    cost_ratio: float = Field(description="Path's mean cost over the matrix's median off-diagonal cost.")
    strength: float = Field(0.0, description="Repetition strength of the region's band (see repetitions.min_strength).")
    n_labels: int = Field(description="Labels of the CRF (count).")
    crf_energy: float = Field(description="Final CRF energy.")
    mean_displacement: tuple[float, float] = Field(description="Mean forward flow over the region (pixels).")


class StillQuality(_Result):
    first_frame_error: float = Field(description="Largest |frame(t=-1) - input| (levels 0-255); 0 is exact.")
    last_frame_error: float = Field(description="Largest |frame(t=1) - input| (levels 0-255); 0 is exact.")
    wrap_step: float = Field(description="Mean |last loop frame - first| over the mask (levels 0-255).")
    max_ordinary_step: float = Field(description="Largest mean |frame k+1 - frame k| over the mask (levels).")
    inversion_error_mean: float = Field(description="Mean |F1(x) + F2(x + F1(x))| over the mask (pixels).")
    inversion_error_p95: float = Field(description="95th percentile of the same (pixels).")


class EndlessLoopResult(_Result):
    """result.json of a still-image loop."""

    kind: Literal["endless_loop"] = "endless_loop"
    input: str
    output_dir: str
    store: str
    outputs: EncodeResult
    height: int = Field(description="Height of the processed image (pixels).")
    width: int = Field(description="Width of the processed image (pixels).")
    source_size: tuple[int, int] = Field(description="(height, width) of the file (pixels).")
    scale: float = Field(description="Processed size over file size (1 = not downscaled).")
    direction: tuple[float, float] = Field(description="Direction used (unit vector, image axes).")
    direction_source: Literal["given", "automatic"]
    directions: list[DirectionVote] = Field(default_factory=list, description="Automatic suggestions.")
    mask_source: Literal["given", "automatic"]
    period: float = Field(description="1-D period of the largest region (pixels).")
    regions: list[RegionSummary]
    loop_frames: int
    fps: float
    quality: StillQuality
    timings: dict[str, float] = Field(description="Seconds per stage; 0 for a stage skipped on rerun.")
    skipped_stages: list[str] = Field(
        default_factory=list, description="Stages found complete in the store (same inputs) and not rerun."
    )
    warnings: list[str] = Field(default_factory=list)
    outcome: Literal["animated", "still", "degraded"]
    outcome_reasons: list[str] = Field(default_factory=list)
    config: dict = Field(description="The EndlessLoopConfig used.")


def write_schema(path: Path = RESULT_SCHEMA_PATH) -> Path:
    """Write the JSON Schema of :class:`EndlessLoopResult` to ``path``."""
    path.write_text(json.dumps(EndlessLoopResult.model_json_schema(), indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    print(write_schema())
