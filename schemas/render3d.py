"""Configuration and result of the 3D cinemagraph (``[render3d]``, moving-camera footage only).

The virtual camera glides through the reconstructed scene while the animated regions keep
looping: a layered depth image of the reference view is turned into coloured points and
splatted along a camera path (:mod:`tasks.render3d`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PATHS = ("zoom_in", "swing", "circle")


class Render3dParams(BaseModel):
    """The 3D cinemagraph: a camera path through the scene of a moving-camera clip."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(
        False,
        description="Render cinemagraph_3d.mp4/.gif after the 2D cinemagraph (moving-camera footage only; "
        "refused with one line for steady and homography footage).",
    )
    path: Literal["zoom_in", "swing", "circle"] = Field(
        "circle",
        description="Camera path: zoom_in (dolly towards the scene and back), swing (sideways arc around the "
        "point at the median depth, out and back), circle (small circular orbit looking at that point). "
        "Ignored when path_file is given.",
    )
    amplitude: float = Field(
        0.02,
        ge=0.0,
        le=0.5,
        description="Largest camera displacement from the reference camera, as a fraction of the median depth "
        "of the reference view (dimensionless; 0 = the reference view in every frame).",
    )
    frames: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Output frames of the 3D loop (frames); None = the loop length, so the camera path closes "
        "when the animation does.",
    )
    path_file: Path | None = Field(
        None,
        description="JSON file with exact views instead of a named path: {\"intrinsics\": 3x3, "
        "\"cam_from_world\": [4x4, ...]}, world-to-camera matrices in the reconstruction's frame and units "
        "(pixel centres at integer coordinates).",
    )
    back_layer_frames: int = Field(
        12,
        ge=0,
        description="Window frames (spread over the window, farthest first) whose pixels unseen by the reference "
        "view are added as back layers of the layered depth image (frames).",
    )
    depth_tolerance: float = Field(
        0.03,
        gt=0.0,
        le=1.0,
        description="Soft depth test of the splat: points within this fraction of the nearest depth at a pixel "
        "are blended (dimensionless); also the tolerance of the back-layer coverage test.",
    )
    point_scale: float = Field(
        0.75,
        gt=0.0,
        le=4.0,
        description="Splat radius of a point as a multiple of its pixel footprint in its source view "
        "(dimensionless; 0.5 would just touch the neighbours).",
    )
    pinhole_neighbours: int = Field(
        4,
        ge=1,
        le=8,
        description="An empty output pixel with at least this many filled 8-neighbours is a pin-hole, filled from "
        "them (pixels); emptier pixels are in-painted and flagged.",
    )
    crf: int = Field(18, ge=0, le=51, description="H.264 constant rate factor of cinemagraph_3d.mp4.")
    write_gif: bool = Field(True, description="Also write cinemagraph_3d.gif.")


class Render3dResult(BaseModel):
    """What the 3D render made (``result.json``: ``render3d``)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Camera path used: zoom_in, swing, circle, or file:<path>.")
    amplitude: float = Field(description="Requested amplitude (fraction of the median depth).")
    median_depth: float = Field(description="Median depth of the reference view (reconstruction units).")
    frames: int = Field(description="Output frames of the 3D loop.")
    n_points: int = Field(description="Points of the layered depth image (front and back layers).")
    n_back_points: int = Field(description="Of those, points from other frames behind depth edges / outside the view.")
    inpainted_fraction: list[float] = Field(
        description="Per output frame, fraction of pixels no frame saw, filled by in-painting (flagged in "
        "loop_3d_filled)."
    )
    max_inpainted_fraction: float = Field(description="Largest of inpainted_fraction.")
    camera_path: list[list[list[float]]] = Field(
        description="Per output frame, the 3x4 world-to-camera matrix [R | t] (reconstruction's frame and units)."
    )
    intrinsics: list[list[float]] = Field(description="3x3 intrinsics of the path (pixel centres at integers).")
    mp4: str | None = Field(None, description="cinemagraph_3d.mp4.")
    gif: str | None = Field(None, description="cinemagraph_3d.gif.")
    seconds_layers: float = Field(0.0, description="Building the layered depth image (s).")
    seconds_render: float = Field(0.0, description="Splatting, pin-hole filling and in-painting every frame (s).")
    splat_points_per_second: float | None = Field(None, description="Points splatted per second of the kernel.")


