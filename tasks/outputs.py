"""An item's output folder: what may be written there, and result.json."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from schemas import names as N
from schemas.results import CinemagraphResult
from tasks.store import remove_store

#: Everything a run writes into its output folder (and removes on --overwrite); nothing else is touched.
OUTPUT_NAMES = (N.STORE_NAME, N.STORE_NAME + ".partial", N.RESULT_NAME, N.MP4_NAME, N.GIF_NAME, N.WEBP_NAME)


class Existing(StrEnum):
    """What to do when the output folder already has content."""

    refuse = "refuse"
    overwrite = "overwrite"
    resume = "resume"


class OutputExistsError(FileExistsError):
    pass


def prepare_output_dir(out_dir: str | Path, existing: Existing | str = Existing.refuse) -> Path:
    """Create ``out_dir`` or check what may happen to its content.

    ``refuse``: a folder that exists and is not empty is an error.  ``overwrite``: the run's
    own outputs (:data:`OUTPUT_NAMES`) are removed; other files stay.  ``resume``: stages
    already complete in its store are kept and skipped.
    """
    out = Path(out_dir)
    existing = Existing(existing)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if existing is Existing.refuse:
            raise OutputExistsError(
                f"{out}: output folder exists and is not empty; pass --overwrite to replace the run's outputs "
                "or --resume to continue an earlier run"
            )
        if existing is Existing.overwrite:
            for name in OUTPUT_NAMES:
                p = out / name
                if p.is_dir():
                    remove_store(p)
                elif p.exists():
                    p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_result(result: CinemagraphResult, out_dir: str | Path) -> Path:
    """Write result.json atomically."""
    path = Path(out_dir) / N.RESULT_NAME
    tmp = path.with_name("." + path.name + ".partial")
    tmp.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def mask_thumbnail(store: str | Path, max_side: int = 256) -> str | None:
    """The reference frame with the animated mask tinted red, as a PNG data URL (None if unavailable)."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from tasks.store import group

    try:  # the two arrays straight from Zarr: opening the store as a Dataset took half the time
        g = group(store, mode="r")
        ref = np.asarray(g[N.REFERENCE][...], np.float32)
        mask = np.asarray(g[N.ANIMATED_MASK][...], bool)
    except Exception:
        return None
    ref[mask] = 0.45 * ref[mask] + 0.55 * np.array([255, 40, 40], np.float32)
    img = Image.fromarray(ref.clip(0, 255).astype(np.uint8))
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # PNG's optimize: 1 % smaller, 15 ms more per item in the flow's process
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def artifact_key(out_dir: str | Path) -> str:
    """A stable artifact key per output folder (item): the UI's Artifacts page shows its latest run.

    Lowercase letters, digits and dashes (Prefect's rule): ``cinemagraph-<folder name>-<8 hex of
    the resolved path>``, so two items named alike under different roots keep apart.
    """
    import hashlib
    import re

    path = str(Path(out_dir).resolve())
    name = re.sub(r"[^a-z0-9]+", "-", Path(path).name.lower()).strip("-")[:40] or "item"
    return f"cinemagraph-{name}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def outcome_line(result: CinemagraphResult) -> str:
    """``animated``, or ``still: reason; reason`` -- what the summary artifact says first."""
    reasons = "; ".join(result.outcome_reasons)
    return f"{result.outcome}: {reasons}" if reasons else result.outcome


def summary_markdown(result: CinemagraphResult, thumbnail: str | None = None) -> str:
    q = result.quality
    rows = "\n".join(
        f"| {r.label} | {r.area} | {r.start}-{r.stop} | {r.score:.1f} | {'yes' if r.crossfade else 'no'} |"
        for r in result.regions
    )
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    return (
        f"# Cinemagraph of `{Path(result.input).name}`\n\n"
        f"**Outcome: {outcome_line(result)}**\n\n"
        f"- output: `{result.output_dir}`\n"
        f"- {result.width}x{result.height}, {result.n_frames} frames at {result.fps:.2f} fps; "
        f"reference frame {result.reference_index}, window {result.window[0]}-{result.window[1]}\n"
        f"- loop: {result.loop_frames} frames; animated {result.masks.animated} px "
        f"({100 * result.masks.animated_fraction:.2f} %)\n"
        f"- seam: {'n/a' if q.seam is None else f'{q.seam:.2f}'}; stillness: {q.stillness:g}\n"
        f"- timings: {timing}\n\n"
        "| region | area (px) | interval | score | cross-fade |\n|---|---|---|---|---|\n"
        + rows
        + "\n"
        + (
            f"\nReference frame, animated regions in red:\n\n![reference and animated mask]({thumbnail})\n"
            if thumbnail
            else ""
        )
    )


@task(name="write_result")
def write_result_task(result: CinemagraphResult, out_dir: str) -> str:
    """Prefect task: write result.json (the UI summary is published by the flow: :func:`publish_summary`)."""
    return str(write_result(result, out_dir))


def publish_summary(result: CinemagraphResult, out_dir: str) -> bool:
    """Create the run's markdown summary artifact (stable key per item); call it from the flow's own process.

    A task on a local Dask worker *process* found Prefect's API client of that process already
    closed for some items ("Cannot send a request, as the client has been closed"), so the summary is
    created where the flow run lives.  Returns whether it was created; a failure is logged, never
    raised (result.json is already written).
    """
    try:
        create_markdown_artifact(
            markdown=summary_markdown(result, mask_thumbnail(result.store)),
            key=artifact_key(out_dir),
            description=f"Cinemagraph summary ({outcome_line(result)})",
        )
        return True
    except RuntimeError as exc:
        from tasks.runtime import stage_logger

        stage_logger("result").warning("summary artifact of %s not created: %s", out_dir, exc)
        return False
