"""Flow ``make_cinemagraph``: one video in, one looping cinemagraph out.

Stages (each a Prefect task that reads and writes the item's store and returns a
small result): ingest -> window -> motion -> [sfm -> depth, moving camera only] -> warp
-> cyclicity -> displays -> render -> encode [-> render3d, moving camera, when enabled] -> result.json.
A stage already complete in the store with the same inputs is skipped, so a
rerun (``existing="resume"``) continues where a stopped run ended.
"""

import time
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger

from flows.execution import runs_on_cluster
from flows.stage_meter import StageMeter
from schemas import names as N
from schemas.config import ExecutionParams, PipelineConfig
from schemas.results import CinemagraphResult, LoopQuality, MaskSizes
from tasks.align import (
    classify_motion_task,
    reference_depth_task,
    structure_from_motion_task,
    warp_window_task,
)
from tasks.cyclicity import find_cyclic_regions_task
from tasks.displays import find_displays_task
from tasks.encode import encode_outputs_task
from tasks.ingest import ingest_video
from tasks.outcome import declared_length_warning, judge_outcome
from tasks.outputs import Existing, prepare_output_dir, publish_summary, write_result_task
from tasks.render import render_loop_task
from tasks.render3d import read_path_file, refusal, render_3d_task
from tasks.store import stage_record
from tasks.video import VideoError
from tasks.video_loop import video_loop_task
from tasks.window import find_shots_task, select_window_task

#: Stage names in order; the CLI's progress bar counts them.
STAGES = (
    "ingest", "shots", "window", "motion", "sfm", "depth", "warp", "cyclicity", "displays", "render", "encode", "result",
)


def _execution(arguments: dict) -> ExecutionParams:
    return (arguments["config"] or PipelineConfig()).execution


@flow(name="make_cinemagraph", log_prints=True)
@runs_on_cluster(_execution)  # config.execution decides where the stage tasks run, however the flow starts
def make_cinemagraph(
    source: str,
    out_dir: str,
    config: PipelineConfig | None = None,
    existing: Existing = Existing.refuse,
) -> CinemagraphResult:
    """Turn the video ``source`` into a cinemagraph in ``out_dir``.

    Parameters
    ----------
    source : str
        Path of the video (any container FFmpeg decodes).
    out_dir : str
        Output folder: ``store.zarr``, ``cinemagraph.mp4``, ``cinemagraph.gif``, ``result.json``.
    config : PipelineConfig, optional
        All options; defaults when omitted.
    existing : {"refuse", "overwrite", "resume"}
        What to do when ``out_dir`` is not empty.
    """
    config = config or PipelineConfig()
    src = Path(source)
    if not src.is_file():
        raise VideoError(f"{source}: file not found" if not src.exists() else f"{source}: not a file")
    if config.render3d.enabled and config.render3d.path_file is not None:
        read_path_file(config.render3d.path_file)  # a bad camera path file is refused before any work
    out = prepare_output_dir(out_dir, existing)
    store = str(out / N.STORE_NAME)
    timings: dict[str, float] = {}
    skipped: list[str] = []
    meter = StageMeter()

    def run(stage: str, task, *args):
        before = (stage_record(store, stage) or {}).get("finished")
        t0 = time.perf_counter()
        with meter.measure(stage):
            value = task.submit(*args).result()
        timings[stage] = round(time.perf_counter() - t0, 3)
        after = (stage_record(store, stage) or {}).get("finished")
        if before is not None and before == after:
            skipped.append(stage)
            timings[stage] = 0.0
        return value

    min_frames = 2 * config.cyclicity.tau + 2  # the cyclicity score needs a cyclic band
    ingested = run("ingest", ingest_video, str(src), store, config.ingest, min_frames)
    shots = run("shots", find_shots_task, str(src), store, config.ingest, config.window)
    window = run("window", select_window_task, store, config.window, min_frames)
    log = get_run_logger()
    log.info("window: %s", window.reason)
    warnings = list(ingested.warnings) + list(shots.warnings)
    truncated = declared_length_warning(src, ingested.n_frames, config.ingest)
    if truncated:
        warnings.append(truncated)
    motion = run("motion", classify_motion_task, store, config.align)
    mode, sfm, depth = motion.mode, None, None
    if mode == "moving":
        sfm = run("sfm", structure_from_motion_task, store, config.align)
        if sfm.ok:
            depth = run("depth", reference_depth_task, store, config.align)
            if sfm.focal_determined is False:
                warnings.append("the images hardly determine the focal length (a mostly planar scene?): the depth "
                                "scale and the parallax of a 3D cinemagraph may be off")
        else:
            mode = "homography"
            motion = motion.model_copy(
                update={"mode": mode, "reason": f"{motion.reason}; structure from motion failed, homography used"}
            )
            warnings.append(f"structure from motion failed ({sfm.message}); aligned by homography instead")
            log.info("stage depth not needed: structure from motion failed, aligning by homography")
    else:
        log.info("stage sfm not needed: %s footage", mode)
        log.info("stage depth not needed: %s footage", mode)
    warp = run("warp", warp_window_task, store, config.align, mode, config.window.tile)
    looped = None
    if config.loop_method == "video_loop":
        # per-pixel period and start (Liao et al. 2013) instead of cyclic regions
        cyclic = displays = None
        rendered = looped = run("video_loop", video_loop_task, store, config.video_loop)
    else:
        cyclic = run("cyclicity", find_cyclic_regions_task, store, config.cyclicity)
        displays = run("displays", find_displays_task, store, config.displays)
        rendered = run("render", render_loop_task, store, config.render, config.cyclicity)
    t0 = time.perf_counter()
    with meter.measure("encode"):
        outputs = encode_outputs_task.submit(store, str(out), config.render).result()
    timings["encode"] = round(time.perf_counter() - t0, 3)
    render3d = None
    if config.render3d.enabled:
        if mode == "moving":
            render3d = run("render3d", render_3d_task, store, str(out), config.render3d, config.render.fps)
        else:
            warnings.append(refusal(mode, str(src)))
            log.warning(warnings[-1])
    n_pixels = ingested.height * ingested.width
    judged = judge_outcome(
        window=window,
        window_params=config.window,
        warp=warp,
        loop_frames=rendered.loop_frames,
        animated_pixels=rendered.animated_pixels,
        cyclic=cyclic,
        cyclicity=config.cyclicity,
        displays=displays,
        fallback_pixels=getattr(rendered, "range_fallback_pixels", 0),
        render_warnings=getattr(rendered, "warnings", []),
    )
    warnings.extend(judged.warnings)
    for w in judged.warnings:
        log.warning(w)
    result = CinemagraphResult(
        input=str(src.resolve()),
        output_dir=str(out.resolve()),
        store=str(Path(store).resolve()),
        outputs=outputs,
        fps=config.render.fps or ingested.fps,
        height=ingested.height,
        width=ingested.width,
        n_frames=ingested.n_frames,
        reference_index=window.reference_index,
        window=(window.window_start, window.window_stop),
        window_choice=window,
        loop_frames=rendered.loop_frames,
        masks=MaskSizes(
            cyclic=cyclic.cyclic_pixels if cyclic is not None else 0,
            display=displays.display_pixels if displays is not None else 0,
            animated=rendered.animated_pixels,
            animated_fraction=rendered.animated_pixels / n_pixels,
        ),
        regions=rendered.regions if looped is None else [],
        quality=rendered.quality if looped is None else LoopQuality.model_validate(looped.quality),
        loop_method=config.loop_method,
        video_loop=looped,
        timings=timings,
        skipped_stages=skipped,
        usage=meter.usage,
        warnings=warnings,
        outcome=judged.outcome,
        outcome_reasons=judged.reasons,
        alignment=motion,
        sfm=sfm,
        depth=depth,
        render3d=render3d,
        config=config.model_dump(mode="json"),
    )
    write_result_task.submit(result, str(out)).result()
    publish_summary(result, str(out))  # in the flow's process: its API client is the live one
    return result


def run_make_cinemagraph(
    source: str | Path,
    out_dir: str | Path,
    config: PipelineConfig | None = None,
    existing: Existing | str = Existing.refuse,
) -> CinemagraphResult:
    """Run the flow (on the Dask cluster that ``config.execution`` names); the one-call public entry."""
    return make_cinemagraph(
        source=str(source), out_dir=str(out_dir), config=config or PipelineConfig(), existing=Existing(existing)
    )
