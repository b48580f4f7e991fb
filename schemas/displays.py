"""Configuration and result of the display/billboard stage (Yan et al., CVPR 2017, Sec. 4.2).

The stage segments the analysis window hierarchically by temporal binary
pattern and colour, describes each segment of the kept levels by a feature
vector and lets a random forest pick the digital displays and billboards; the
union of the positive segments is ``display_mask``.  ``animated_mask`` is then
``cyclic_mask`` united with it.

The default classifier ships inside this package (``schemas/models/``); it was
trained by ``python -m flows.train_display_classifier --real-negatives`` on the
synthetic clips of ``tasks/synthetic_displays.py`` and on real clips without
screens (all negatives); see :mod:`flows.train_display_classifier`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.compat import as_before

__all__ = [
    "BLOCKS_MODEL_NAME",
    "DEFAULT_MODEL_NAME",
    "DisplayParams",
    "DisplaysResult",
    "TrainDisplaysResult",
    "default_model_path",
]

#: File name of the packaged default classifier, under ``schemas/models/``: trained on segments merged
#: from single pixels (``DisplayParams.block = 1``).
DEFAULT_MODEL_NAME = "display_classifier.skops"
#: File name of the packaged classifier trained on segments merged from alike 2x2 blocks
#: (``DisplayParams.block >= 2``).
BLOCKS_MODEL_NAME = "display_classifier_blocks.skops"


def default_model_path(block: int = 1) -> Path:
    """Path of the packaged display classifier for segments started from ``block`` x ``block`` blocks
    (it may be missing in a source checkout)."""
    name = DEFAULT_MODEL_NAME if block == 1 else BLOCKS_MODEL_NAME
    return Path(str(resources.files("schemas").joinpath("models", name)))


class DisplayParams(BaseModel):
    """Where the displays and billboards are: segmentation levels and the random forest."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(
        True,
        description="Run the display stage; when False no `display_mask` is written and "
        "`animated_mask` is the cyclic mask alone.",
    )
    model: Path | None = Field(
        None,
        description="Random-forest file (skops format, from `cinemagraph train-displays`); "
        "None = the model packaged with cinemagraph for the chosen `block` (display_classifier.skops for "
        "block 1, display_classifier_blocks.skops otherwise).",
    )
    theta: float = Field(
        30.0,
        gt=0,
        description="Change threshold of the temporal binary patterns (RGB distance, 0-255 units).  The "
        "paper uses 100; a merged region's pattern comes from its mean colour, and at 100 the pattern of "
        "a whole display of the synthetic clips has few changed bits (slideshows 0-31 %, pans 0-52 %, "
        "tickers 0 %), so D_T to the static facade is that small and the display merges into it early: "
        "at 100 even the finest level bounds the display IoU below 0.8 on 3-4 of 12 evaluation clips "
        "(seeds 1-12 of `tasks.synthetic_displays`, earlier and current layouts), whatever the "
        "classifier; at 30 on none.",
    )
    start_threshold: float = Field(
        0.2, gt=0, description="Merge threshold on the segment distance D at the first level (unitless)."
    )
    growth: float = Field(1.5, gt=1, description="Factor applied to the merge threshold after each level.")
    levels: tuple[float, ...] = Field(
        (0.15, 0.3, 0.5),
        min_length=1,
        description="Levels kept for classification, as fractions in (0, 1] of the hierarchy's height "
        "(with the default thresholds: merge thresholds 0.2, 0.3 and 0.45).  The paper keeps 0.6, 0.7, 0.8; "
        "there (merge threshold >= 0.45 with 5-6 levels) displays have merged into the static facade: "
        "the best display IoU any classifier could reach is below 0.8 on 6-7 of the 12 evaluation clips "
        "at theta 30 and on all 12 at theta 100 (with a Felzenszwalb-Huttenlocher adaptive threshold, "
        "whose hierarchy has 20-30 levels: on 6 and 10-11 of 12).",
    )
    tile: int | None = Field(
        32,
        ge=8,
        description="Edge of the square tiles (pixels) whose first segmentation level is computed "
        "separately, in parallel, before the hierarchy continues over the whole frame (merging across "
        "tile borders).  Most of the segmentation's work is that first level, and a region's merges cost "
        "in proportion to its boundary, which a tile bounds.  None = one merge from single pixels over "
        "the whole frame (the exact greedy order; about 10x slower at 640x360).",
    )
    block: int = Field(
        2,
        ge=1,
        le=8,
        description="Edge of the square blocks of pixels (aligned to the tiles) that the tiled segmentation "
        "starts from (pixels).  1 = single pixels.  With 2 or more, a block whose pixels are close "
        "(block_distance) or, with block_distance None, change alike (each pixel's colour difference to the "
        "block's first pixel stays within theta of its value in the first frame, in 9 of 10 frames) is one "
        "initial region and the pixels of any other block start alone.  Close blocks of 4 or 8 are united "
        "from close 2x2 blocks, four at a time.  Close 2x2 blocks (the default) unite 44 % of the blocks "
        "of the steady benchmark window (a third of the first level's merges) and give display masks as "
        "good as single pixels' on the held-out clips (README, display stage).  Alike blocks "
        "use their own packaged model (display_classifier_blocks.skops), which took one 137-pixel segment "
        "of the held-out carphone clip for a display.  Ignored with tile None.",
        json_schema_extra=as_before(1),
    )
    block_distance: float | None = Field(
        0.03,
        ge=0,
        description="With block 2 or more: a block is one initial region when every two 4-neighbouring "
        "pixels in it are closer than this segment distance D (the merge's own distance between single "
        "pixels, unitless; the first level merges below start_threshold, 0.2), and the single-pixel model "
        "(display_classifier.skops) is used.  In a 100-frame window (49 pattern bits) 0.03 lets two pixels' "
        "temporal patterns differ in one bit only where their colour histograms are nearly alike (D_A < "
        "0.1).  At 0.04 the held-out vtest clip's pipeline window had a 573-pixel display inside a walker's "
        "'must stay frozen' polygon.  None = the alike test (see block) and its own model.",
        json_schema_extra=as_before(None),
    )
    colour_weight: float = Field(
        0.1, ge=0, description="Weight of the colour-histogram distance in D = D_T + w D_A (unitless)."
    )
    min_segment_area: int = Field(
        64,
        ge=1,
        description="Segments smaller than this are never classified as displays (pixels).",
    )
    probability_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A segment is a display when the forest's display probability is at least this "
        "(fraction of trees).",
    )

    @field_validator("levels")
    @classmethod
    def _fractions(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < q <= 1 for q in levels):
            raise ValueError(f"levels must be fractions in (0, 1]; got {levels}")
        return levels

    def model_file(self) -> Path:
        """The classifier file this configuration uses."""
        if self.model is not None:
            return Path(self.model)
        # close blocks (block_distance) leave the segments of single pixels: the single-pixel model
        alike_blocks = self.tile is not None and self.block > 1 and self.block_distance is None
        return default_model_path(self.block if alike_blocks else 1)


class DisplaysResult(BaseModel):
    """What the display stage hands on."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="False when the stage was switched off (nothing written).")
    display_pixels: int = Field(description="Pixels of `display_mask`.")
    n_display_regions: int = Field(description="8-connected regions of `display_mask`.")
    segments_per_level: list[int] = Field(
        default_factory=list, description="Number of segments at each kept level."
    )
    thresholds: list[float] = Field(
        default_factory=list, description="Merge threshold on D of each kept level (unitless)."
    )
    positive_segments: int = Field(0, description="Segments classified as displays, over all levels.")
    model: str | None = Field(None, description="The classifier file used.")
    model_sha256: str | None = Field(None, description="SHA-256 of that file.")


class TrainDisplaysResult(BaseModel):
    """What ``train_display_classifier`` (the flow) hands back."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Path of the written classifier (skops).")
    n_clips: int = Field(description="Training clips.")
    n_segments: int = Field(description="Usable segments (rows) over all clips and levels.")
    n_positive: int = Field(description="Segments whose target is display.")
    precision: float | None = Field(
        description="Cross-validated precision of the display class (folds grouped by clip); "
        "None when there are too few clips."
    )
    recall: float | None = Field(description="Cross-validated recall, as above.")
    f1: float | None = Field(description="Cross-validated F1, as above.")
    real_false_positive_rate: float | None = Field(
        None,
        description="Fraction of the segments of real clips without displays (`negative_clips`) that the "
        "cross-validation's forests, which never saw their clip, call displays; None without such clips.",
    )
    n_splits: int = Field(description="Folds of the cross-validation (0 = not run).")
    seconds: float = Field(description="Wall time of the flow (s).")
