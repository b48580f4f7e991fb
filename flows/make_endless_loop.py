"""Flow ``make_endless_loop``: one photograph in, an endless loop of its repeating structure out.

Halperin et al., "Endless Loops: Detecting and Animating Periodic Patterns in
Still Images" (SIGGRAPH 2021): the windows of a facade, the steps of a
staircase or the stripes of an awning slide along their direction of
repetition, each unit into the place of the next, and the loop has no seam.

Stages (Prefect tasks over the item's store, see :mod:`tasks.still.stages`):
load -> direction -> regions -> repetitions -> labels -> flow -> frames -> encode -> result.json.
Outputs in ``out_dir``: ``store.zarr``, ``cinemagraph.mp4``, ``cinemagraph.gif``, ``result.json``
(:class:`schemas.still.EndlessLoopResult`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from prefect import flow

from flows.execution import dask_task_runner, item_run_name
from flows.local_server import use_project_local_server
from schemas import names as N
from schemas.config import ExecutionParams
from schemas.results import EncodeResult
from schemas.still import (
    DirectionVote,
    EndlessLoopConfig,
    EndlessLoopResult,
    RegionSummary,
    StillQuality,
)
from tasks.outputs import Existing, prepare_output_dir, write_result
from tasks.still.image import StillImageError, validate_inputs
from tasks.still.stages import (
    choose_direction_task,
    compute_flows_task,
    encode_loop_task,
    find_regions_task,
    label_regions_task,
    load_still_task,
    region_repetitions_task,
    render_frames_task,
)
from tasks.still.store import read_attrs
from tasks.store import config_values, drop_as_before, stage_record

#: Stage names in order (the CLI's progress bar counts them).
STAGES = ("load", "direction", "regions", "repetitions", "labels", "flow", "frames", "encode", "result")


@flow(name="make_endless_loop", task_runner=dask_task_runner(ExecutionParams()), log_prints=True)
def make_endless_loop(
    source: str,
    out_dir: str,
    config: EndlessLoopConfig | None = None,
    mask: str | None = None,
    existing: Existing = Existing.refuse,
) -> EndlessLoopResult:
    """Make an endless loop of the image ``source`` in ``out_dir``.

    Parameters
    ----------
    source : str
        Path of a JPEG, PNG or WebP image.
    out_dir : str
        Output folder: ``store.zarr``, ``cinemagraph.mp4``, ``cinemagraph.gif``, ``result.json``.
    config : EndlessLoopConfig, optional
        All options; ``config.direction`` is the main direction (None = found automatically).
    mask : str, optional
        A PNG of the image's size, white where things may move; None = found automatically.
    existing : {"refuse", "overwrite", "resume"}
        What to do when ``out_dir`` is not empty: "resume" keeps the stages its store records as
        complete with the same inputs (image, mask, the config fields each stage reads) and runs the rest.
    """
    config = config or EndlessLoopConfig()
    validate_inputs(source, mask)  # bad input fails here, before anything is written
    out = prepare_output_dir(out_dir, existing)
    store = str(out / N.STORE_NAME)
    timings: dict[str, float] = {}

    skipped: list[str] = []

    def run(stage, task, *args):
        before = (stage_record(store, stage) or {}).get("finished")
        t0 = time.perf_counter()
        value = task.submit(*args).result()
        timings[stage] = round(time.perf_counter() - t0, 3)
        if before is not None and before == (stage_record(store, stage) or {}).get("finished"):
            skipped.append(stage)  # found complete in the store with the same inputs
            timings[stage] = 0.0
        return value

    loaded = run("load", load_still_task, str(source), store, config, mask)
    direction = run("direction", choose_direction_task, store, config, str(source))
    regions = run("regions", find_regions_task, store, config, str(source))
    reps = run("repetitions", region_repetitions_task, store, config, str(source))
    labels = run("labels", label_regions_task, store, config)
    flows = run("flow", compute_flows_task, store, config)
    frames = run("frames", render_frames_task, store, config)
    outputs = run("encode", encode_loop_task, store, str(out), config)
    attrs = read_attrs(store)
    warnings = loaded["warnings"] + direction.get("warnings", []) + regions["warnings"] + reps["warnings"]
    figures = {**frames, **flows}
    quality = StillQuality(**{name: figures[name] for name in StillQuality.model_fields})
    reasons = []
    if quality.first_frame_error > 0 or quality.last_frame_error > 0:
        reasons.append("the loop's end frames differ from the input")
    if quality.wrap_step > quality.max_ordinary_step + 1e-9:
        reasons.append(
            f"the wrap step ({quality.wrap_step:.2f}) exceeds the largest ordinary step "
            f"({quality.max_ordinary_step:.2f})"
        )
    if quality.inversion_error_p95 > 1.0:
        reasons.append(f"the backward flow inverts the forward flow only to {quality.inversion_error_p95:.2f} px (p95)")
    warnings += reasons
    regions_out = [
        RegionSummary(
            region=k + 1,
            area=regions["areas"][k] if k < len(regions["areas"]) else 0,
            period=rep["period"],
            cost_ratio=rep["cost_ratio"],
            strength=rep.get("strength", 0.0),
            n_labels=labels["n_labels"][k],
            crf_energy=labels["energies"][k],
            mean_displacement=tuple(flows["mean_displacements"][k]),
        )
        for k, rep in enumerate(attrs["repetitions"])
    ]
    h, w = loaded["height"], loaded["width"]
    result = EndlessLoopResult(
        input=str(Path(source).resolve()),
        output_dir=str(out.resolve()),
        store=str(Path(store).resolve()),
        outputs=EncodeResult(**outputs),
        height=h,
        width=w,
        source_size=tuple(loaded["source_size"]),
        scale=loaded["scale"],
        direction=tuple(direction["direction"]),
        direction_source=direction["direction_source"],
        directions=[DirectionVote(**v) for v in direction["directions"]],
        mask_source=regions["mask_source"],
        period=attrs["period"],
        regions=regions_out,
        loop_frames=frames["loop_frames"],
        fps=config.encode.fps,
        quality=quality,
        timings=timings,
        skipped_stages=skipped,
        warnings=warnings,
        outcome="degraded" if reasons else "animated",
        outcome_reasons=reasons,
        config=config.model_dump(mode="json"),
    )
    write_result(result, out)
    return result


def run_make_endless_loop(
    source: str | Path,
    out_dir: str | Path,
    config: EndlessLoopConfig | None = None,
    mask: str | Path | None = None,
    existing: Existing | str = Existing.refuse,
) -> EndlessLoopResult:
    """Run the flow on the Dask cluster ``config.execution`` names (the one-call public entry)."""
    use_project_local_server()
    config = config or EndlessLoopConfig()
    runner = dask_task_runner(config.execution)
    return make_endless_loop.with_options(task_runner=runner)(
        source=str(source),
        out_dir=str(out_dir),
        config=config,
        mask=None if mask is None else str(mask),
        existing=Existing(existing),
    )


__all__ = ["make_endless_loop", "run_make_endless_loop", "STAGES", "StillImageError"]


# --------------------------------------------------------------------------
# corpus items that are images (called by flows/process_corpus.py)
# --------------------------------------------------------------------------


def still_item_plan(item_id: str, path: str, options: dict | None = None):
    """The corpus plan of an image: one item, no shots, no frame range."""
    from schemas.corpus import ItemPlan

    return ItemPlan(item_id=item_id, source=path, shot=0, start_frame=0, end_frame=1, reference_frame=0,
                    options=dict(options or {}))


def same_config(recorded, config: EndlessLoopConfig) -> bool:
    """Whether a result's recorded config (a dict) asks for the same work as ``config``: equal once the
    options at their "behaves as before" value (:mod:`schemas.compat`) are left out of both, so an item
    made before such an option existed still counts as done while the option keeps that value."""
    if not isinstance(recorded, dict):
        return False
    return drop_as_before(EndlessLoopConfig, recorded) == config_values(config)


@functools.cache
def _still_item_subflow():
    """``make_endless_loop`` as a corpus item's subflow (one thread for its tasks), made once per process
    (:func:`flows.execution.item_run_name`; each run gets its own copy of the task runner)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    return make_endless_loop.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1), flow_run_name=item_run_name)


def make_still_item(
    plan, out_root: str, overwrite: bool, config: EndlessLoopConfig | None = None, lease_timeout: float = 300.0
):
    """Run ``make_endless_loop`` as a subflow for an image item, holding the item's lease (as video
    items do: a lease left by a dead run is taken over); every error becomes a recorded failure."""
    import json

    from schemas.corpus import ItemOutcome
    from tasks.locks import ItemLease, ItemLocked, crash_abandoned_runs
    from tasks.runtime import stage_logger

    config = config or EndlessLoopConfig()
    t0 = time.perf_counter()
    folder = Path(out_root) / plan.item_id

    def outcome(status, **fields):
        return ItemOutcome(item_id=plan.item_id, source=plan.source, status=status, shot=0, **fields)

    def from_result(status, result: EndlessLoopResult):
        return outcome(
            status,
            output_dir=result.output_dir,
            seconds=round(time.perf_counter() - t0, 3),
            timings=result.timings,
            loop_frames=result.loop_frames,
            animated_fraction=sum(r.area for r in result.regions) / (result.height * result.width),
            warnings=result.warnings,
            outputs={k: getattr(result.outputs, k) for k in ("mp4", "gif", "webp")},  # the paths
        )

    try:
        with ItemLease(folder, timeout=lease_timeout) as lease:
            if lease.taken_over is not None:
                crash_abandoned_runs(lease.taken_over, lease.stale_reason or "")
            done = folder / N.RESULT_NAME
            if not overwrite and done.exists():
                previous = json.loads(done.read_text())
                if previous.get("kind") == "endless_loop" and same_config(previous.get("config"), config):
                    return from_result("done_before", EndlessLoopResult.model_validate(previous))
            result = _still_item_subflow()(source=plan.source, out_dir=str(folder), config=config,
                             existing="overwrite" if overwrite else "resume")
            return from_result("succeeded", result)
    except ItemLocked as exc:
        return outcome("skipped", reason=f"in progress elsewhere: {exc}")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        stage_logger("corpus").error("item %s failed: %s", plan.item_id, reason)
        return outcome("failed", reason=reason, seconds=round(time.perf_counter() - t0, 3))
