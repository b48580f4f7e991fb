"""Flow ``make_cinemagraph``: one video in, one looping cinemagraph out.

Stages (each a Prefect task that reads and writes the item's store and returns a
small result): ingest -> window -> motion -> [sfm -> depth, moving camera only] -> warp
-> cyclicity -> displays -> render -> encode [-> render3d, moving camera, when enabled] -> result.json.
A stage already complete in the store with the same inputs is skipped, so a
rerun (``existing="resume"``) continues where a stopped run ended.  A corpus item
bound to one worker (``CorpusConfig.stages_in_one_task``) runs the same stages, in
the same order and with the same records, inside one task run (:func:`item_stages`).
"""

import time
from pathlib import Path

from prefect import flow, task
from prefect.logging import get_run_logger
from prefect.states import Failed

from flows.execution import bound_runner, runs_on_cluster
from flows.local_server import use_project_local_server
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
from tasks.runtime import kept_on_worker
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
    bound = bound_runner()
    if bound is not None and bound.stages_in_one_task:  # a corpus item on its worker: one task run, not ten
        result = item_stages.with_options(task_run_name=f"stages of {out.name}").submit(str(src), str(out), config)
        result = result.result()
    else:
        result = run_stages(src, out, config, StageRunner(str(out / N.STORE_NAME)))
    publish_summary(result, str(out))  # in the flow's process: its API client is the live one
    return result


class StageRunner:
    """Runs a flow's stages one after another: wall time, CPU and memory (``usage``) and skips per stage.

    By default each stage is its own Prefect task run (``task.submit``) on the flow's task runner.
    With ``inline`` the stages are plain calls of the task functions inside the task run that
    calls this (:func:`item_stages`): one task run per item instead of one per stage.  Each stage
    still reads and writes its own record in the store (a rerun resumes from the stored stages),
    keeps its task's retries, and says in the run's log when it starts and ends.
    """

    def __init__(self, store: str, inline: bool = False) -> None:
        self.store, self.inline = store, inline
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self.meter = StageMeter()

    def __call__(self, stage: str, task, *args, resumable: bool = True):
        before = (stage_record(self.store, stage) or {}).get("finished") if resumable else None
        t0 = time.perf_counter()
        with self.meter.measure(stage):
            value = self._call(stage, task, args)
        self.timings[stage] = round(time.perf_counter() - t0, 3)
        after = (stage_record(self.store, stage) or {}).get("finished") if resumable else None
        if before is not None and before == after:
            self.skipped.append(stage)
            self.timings[stage] = 0.0
        if self.inline:
            get_run_logger().info("stage %s finished in %.1f s", stage, self.timings[stage])
        return value

    def _call(self, stage: str, task, args):
        if not self.inline:
            return task.submit(*args).result()
        log = get_run_logger()
        log.info("stage %s started", stage)
        return call_with_retries(task, args, log)


def call_with_retries(task, args, log):
    """``task``'s function called with ``args``, retried as the task would be (its ``retries``,
    ``retry_delay_seconds`` and ``retry_condition_fn``) when called inside another task run."""
    delays = task.retry_delay_seconds or 0
    attempt = 0
    while True:
        try:
            return task.fn(*args)
        except Exception as exc:
            if attempt >= (task.retries or 0) or not _retryable(task, exc):
                raise
            delay = delays[min(attempt, len(delays) - 1)] if isinstance(delays, list) else delays
            attempt += 1
            log.warning("%s failed (%s); retry %d of %d in %s s", task.name, exc, attempt, task.retries, delay)
            time.sleep(float(delay))


def _retryable(task, exc: Exception) -> bool:
    if task.retry_condition_fn is None:
        return True
    return bool(task.retry_condition_fn(task, None, Failed(data=exc)))


@task(name="item_stages")
def item_stages(source: str, out_dir: str, config: PipelineConfig) -> CinemagraphResult:
    """Prefect task: every stage of one item, in this one task run (a corpus item on its worker).

    The run's log names each stage as it starts and ends; the store keeps each stage's record.
    """
    out = Path(out_dir)
    with kept_on_worker():  # no stage's computation leaves the worker, nor lets it start another item
        return run_stages(Path(source), out, config, StageRunner(str(out / N.STORE_NAME), inline=True))


def run_stages(src: Path, out: Path, config: PipelineConfig, run: StageRunner) -> CinemagraphResult:
    """Every stage of ``config`` on ``src`` (through ``run``), result.json written; the flow's body."""
    store = str(out / N.STORE_NAME)
    min_frames = config.cyclicity.min_window_frames  # the cyclicity score needs a cyclic band
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
    outputs = run("encode", encode_outputs_task, store, str(out), config.render, resumable=False)
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
        timings=run.timings,
        skipped_stages=run.skipped,
        usage=run.meter.usage,
        warnings=warnings,
        outcome=judged.outcome,
        outcome_reasons=judged.reasons,
        alignment=motion,
        sfm=sfm,
        depth=depth,
        render3d=render3d,
        config=config.model_dump(mode="json"),
    )
    if run.inline:
        write_result_task.fn(result, str(out))
    else:
        write_result_task.submit(result, str(out)).result()
    return result


def run_make_cinemagraph(
    source: str | Path,
    out_dir: str | Path,
    config: PipelineConfig | None = None,
    existing: Existing | str = Existing.refuse,
) -> CinemagraphResult:
    """Run the flow (on the Dask cluster that ``config.execution`` names); the one-call public entry."""
    use_project_local_server()
    return make_cinemagraph(
        source=str(source), out_dir=str(out_dir), config=config or PipelineConfig(), existing=Existing(existing)
    )
