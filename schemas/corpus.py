"""Configuration and results of ``process_corpus``: many videos, split into shots, one cinemagraph per item."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.config import PipelineConfig

VIDEO_SUFFIXES = (
    ".mp4",
    ".mov",
    ".mkv",
    ".avi",
    ".webm",
    ".m4v",
    ".ts",
    ".mts",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShotParams(_Model):
    """Shot splitting with PySceneDetect's content detector."""

    detect: bool = Field(True, description="Split sources into shots; False treats every source as one shot.")
    threshold: float = Field(27.0, gt=0, description="ContentDetector threshold (HSV change score).")
    min_shot_frames: int = Field(
        24, ge=10, description="Shots shorter than this are skipped as too short to loop (frames)."
    )
    reference_every: int = Field(
        100,
        ge=1,
        description="A shot longer than this yields one item per reference frame, every this many frames "
        "(frames); shorter shots yield one item at their middle.",
    )


class SourcePolicy(_Model):
    """Which sources a manifest may name."""

    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Folders local sources must lie in (after resolving links); empty = the manifest's folder.",
    )
    url_schemes: list[str] = Field(default_factory=lambda: ["https"], description="URL schemes allowed.")
    url_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts allowed for URL sources (exact or '*.example.org'); empty = no URLs.",
    )
    download_dir: str | None = Field(None, description="Where fetched URLs go; default OUT_ROOT/_downloads.")


class CorpusConfig(_Model):
    """Everything a ``process_corpus`` run can be told."""

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="Defaults of every item.")
    shots: ShotParams = Field(default_factory=ShotParams)
    sources: SourcePolicy = Field(default_factory=SourcePolicy)
    max_in_flight: int = Field(
        2, ge=1, description="Items processed at once (bounds memory; depth-first per item)."
    )
    overwrite: bool = Field(False, description="Recompute items that already finished (default: skip them).")
    item_retries: int = Field(
        1, ge=0, description="Retries of an item's I/O (decode, download) after a failure."
    )
    lease_timeout: float = Field(
        300.0,
        ge=5.0,
        description="An item's lease (its folder's .lease) not renewed for this long is stale and another "
        "run takes the item over (s); the holder renews it every quarter of this.  Leases of runs that "
        "Prefect shows as no longer Running, or of processes gone from this host, are stale at once.",
    )
    bind_items_to_workers: bool = Field(
        True,
        description="Run all of an item's stages, tiles included, on one Dask worker (the least busy when the "
        "item starts), so items on different workers never wait for each other; off: each stage's tiles "
        "spread over the whole cluster.",
    )
    stages_in_one_task: bool = Field(
        True,
        description="With bind_items_to_workers: run all of an item's stages as one Prefect task run on its "
        "worker (its log names each stage as it starts and ends; each stage keeps its record in the store, "
        "so a rerun resumes after the stored stages) instead of one task run per stage; saves the flow's "
        "process and the Prefect server about a tenth of the run's CPU on small items.",
    )


class ManifestEntry(_Model):
    """One row of a manifest (CSV columns or JSONL keys)."""

    source: str = Field(description="A path (relative to the manifest) or an URL.")
    id: str | None = Field(None, description="Item id prefix; default: the file's stem.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the pipeline config for this source (nested like PipelineConfig).",
    )
    row: int = Field(0, description="Row number in the manifest (1-based; 0 for scanned folders).")


class ItemPlan(_Model):
    """One cinemagraph to make: a source, a frame range and a reference frame."""

    item_id: str
    source: str
    shot: int = Field(description="Shot number within the source (0-based).")
    start_frame: int
    end_frame: int
    reference_frame: int = Field(description="Reference frame, index into the source's frames.")
    options: dict[str, Any] = Field(default_factory=dict)


Status = Literal["succeeded", "failed", "skipped", "done_before"]


class ItemOutcome(_Model):
    """A row of the corpus index (``index.jsonl``)."""

    item_id: str
    source: str
    status: Status
    reason: str | None = Field(None, description="Why an item failed or was skipped.")
    shot: int | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    reference_frame: int | None = None
    output_dir: str | None = None
    seconds: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    loop_frames: int | None = None
    animated_fraction: float | None = None
    seam: float | None = None
    alignment: str | None = Field(
        None, description="How the window was aligned: steady, homography or moving (result.json's alignment.mode)."
    )
    warnings: list[str] = Field(default_factory=list, description="The item's warnings (result.json).")
    outcome: str | None = Field(
        None, description="result.json's outcome: animated, still or degraded (None when the item did not run)."
    )
    outcome_reasons: list[str] = Field(default_factory=list, description="result.json's outcome_reasons.")
    outputs: dict[str, str | None] = Field(default_factory=dict)


class CorpusResult(_Model):
    manifest: str
    out_root: str
    index: str = Field(description="Path of index.jsonl.")
    succeeded: int
    failed: int
    skipped: int
    done_before: int
    seconds: float
    items: list[ItemOutcome]
