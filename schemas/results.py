"""Small results that stages hand on, and ``result.json``, the run summary other tools read.

The JSON Schema of :class:`CinemagraphResult` is exported to ``schemas/result.schema.json``
(``python -m schemas.results`` rewrites it; a test checks it is current).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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


class WindowResult(_Result):
    reference_index: int = Field(description="Reference frame, index into `frames`.")
    window_start: int = Field(description="First frame of the analysis window (index into `frames`).")
    window_stop: int = Field(description="One past the last frame of the window.")


class CyclicityResult(_Result):
    cyclic_pixels: int = Field(description="Pixels in `cyclic_mask`.")
    candidate_pixels: int = Field(
        description="Pixels passing the score, intensity and amplitude tests before cleaning."
    )
    n_regions: int = Field(description="Connected regions of `cyclic_mask`.")


class RegionLoop(_Result):
    label: int = Field(description="Region label (1-based) in the render's region map.")
    area: int = Field(description="Pixels in the region.")
    start: int = Field(description="Start of the looped interval (window frame index).")
    stop: int = Field(description="End of the looped interval, exclusive.")
    score: float = Field(description="Cyclicity score of the region's mean signal over that interval.")
    crossfade: bool = Field(
        description="True when the interval does not divide the loop length and the end cross-fades."
    )


class LoopQuality(_Result):
    seam: float | None = Field(
        description="Mean absolute change from the loop's last frame to its first, over the mean change between "
        "consecutive frames, inside the animated region (1 = as smooth as playback; None without animation)."
    )
    stillness: float = Field(
        description="Largest change over time outside the animated region (0 = frozen exactly)."
    )


class RenderResult(_Result):
    loop_frames: int = Field(description="Frames in the output loop.")
    animated_pixels: int = Field(description="Pixels of `animated_mask`.")
    regions: list[RegionLoop] = Field(default_factory=list)
    quality: LoopQuality


class EncodeResult(_Result):
    mp4: str | None = None
    gif: str | None = None
    webp: str | None = None


class MaskSizes(_Result):
    cyclic: int = Field(description="Pixels of `cyclic_mask`.")
    animated: int = Field(description="Pixels of `animated_mask`.")
    animated_fraction: float = Field(description="animated / (height * width).")


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
    warnings: list[str] = Field(default_factory=list)
    config: dict = Field(description="The PipelineConfig used.")


def write_schema(path: Path = RESULT_SCHEMA_PATH) -> Path:
    """Write the JSON Schema of :class:`CinemagraphResult` to ``path``."""
    path.write_text(json.dumps(CinemagraphResult.model_json_schema(), indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    print(write_schema())
