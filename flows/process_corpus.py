"""Flow ``process_corpus``: every source of a manifest, split into shots, one cinemagraph per item.

Per source a ``plan_source`` task resolves the path (or fetches the URL), splits it into shots
and plans its items (on the Dask cluster when shots are detected; otherwise in the flow's own
threads while the cluster starts).  Per item a ``make_item`` task runs ``make_cinemagraph`` as a subflow
(shown in the UI under the item's id), holding a lock on the item's folder.  Items run
depth-first, largest first, with at most ``max_in_flight`` at once; each item's stages and
their tiles run on one worker of the Dask cluster (``bind_items_to_workers``), so two workers
with their own items never wait for each other or ship tiles between processes, and as one
task run there (``stages_in_one_task``), so Prefect's bookkeeping per item stays small.  A failing
item is recorded with its error and the others go on; finished items are skipped on rerun.
Results go to ``OUT_ROOT/<item_id>/`` and the corpus index ``OUT_ROOT/index.jsonl``.
"""

import functools
import json
import os
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.execution import (
    SubflowStart,
    corpus_cluster,
    item_run_name,
    on_worker,
    pickle_by_value_if_loaded_from_path,
    scheduler_address,
    starting_cluster,
    tasks_on,
    worker_addresses,
)
from flows.local_server import use_project_local_server
from flows.make_cinemagraph import STAGES, make_cinemagraph
from flows.make_endless_loop import make_still_item, still_item_plan
from schemas import names as N
from schemas.config import ExecutionParams, PipelineConfig
from schemas.corpus import CorpusConfig, CorpusResult, ItemOutcome, ItemPlan, ManifestEntry
from tasks.align import depth_digest, motion_digest, sfm_digest, warp_digest
from tasks.cyclicity import cyclicity_digest
from tasks.displays import displays_digest
from tasks.fetch import fetch_url
from tasks.ingest import ingest_digest
from tasks.locks import ItemLease, ItemLocked, crash_abandoned_runs
from tasks.manifest import is_url, read_manifest, resolve_local, unique_ids, url_allowed
from tasks.render import render_digest
from tasks.render3d.stage import render3d_digest
from tasks.runtime import retry_on_io_only, stage_logger
from tasks.shots import detect_shots, plan_items
from tasks.still.image import is_image_path
from tasks.store import read_attrs, stage_record
from tasks.threads import usable_cpus
from tasks.video_loop import video_loop_digest
from tasks.window import shots_digest, window_digest

INDEX_NAME = "index.jsonl"
pickle_by_value_if_loaded_from_path(__name__)  # a deployment loads this file as module "process_corpus"


def merge_options(base: PipelineConfig, options: dict[str, Any]) -> PipelineConfig:
    """``base`` with the nested ``options`` applied (validated; unknown keys are errors)."""
    data = base.model_dump(mode="json")
    for section, values in options.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    return PipelineConfig.model_validate(data)


def item_config(plan: ItemPlan, base: PipelineConfig) -> PipelineConfig:
    """The item's pipeline config: its options, its frame range and its reference frame."""
    cfg = merge_options(base, plan.options)
    stride = cfg.ingest.stride
    data = cfg.model_dump(mode="json")
    data["ingest"].update(start_frame=plan.start_frame, end_frame=plan.end_frame)
    data["window"]["reference_index"] = (plan.reference_frame - plan.start_frame) // stride
    return PipelineConfig.model_validate(data)


@task(name="plan_source", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_on_io_only)
def plan_source(
    entry: ManifestEntry, item_id: str, base: str, roots: list[str], config: CorpusConfig, out_root: str
) -> tuple[list[ItemPlan], list[ItemOutcome]]:
    """Resolve (or fetch) one source, split it into shots and plan its items; problems are skips."""
    log = stage_logger("corpus")
    source = entry.source
    try:
        merge_options(config.pipeline, entry.options)
    except Exception as exc:
        return [], [
            ItemOutcome(item_id=item_id, source=source, status="skipped", reason=f"invalid options: {exc}")
        ]
    if is_url(source):
        reason = url_allowed(source, config.sources)
        if reason:
            return [], [ItemOutcome(item_id=item_id, source=source, status="skipped", reason=reason)]
        download_dir = config.sources.download_dir or str(Path(out_root) / "_downloads")
        path = fetch_url(source, download_dir, item_id)
    else:
        path, reason = resolve_local(source, Path(base), [Path(r) for r in roots])
        if reason:
            return [], [ItemOutcome(item_id=item_id, source=source, status="skipped", reason=reason)]
    if is_image_path(path):  # a photograph: one endless-loop item (flows/make_endless_loop.py)
        return [still_item_plan(item_id, str(path), entry.options)], []
    try:
        shots = detect_shots(path, config.shots)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], [
            ItemOutcome(item_id=item_id, source=source, status="skipped", reason=f"no usable shot: {reason}")
        ]
    items, skipped = plan_items(
        item_id, str(path), shots, config.shots, config.pipeline.window, entry.options
    )
    if not items and not skipped:
        skipped = [ItemOutcome(item_id=item_id, source=source, status="skipped", reason="no usable shot")]
    log.info("%s: %d shots, %d items, %d skipped", source, len(shots), len(items), len(skipped))
    return items, skipped


def _outcome(plan: ItemPlan, status: str, **fields) -> ItemOutcome:
    return ItemOutcome(
        item_id=plan.item_id,
        source=plan.source,
        status=status,
        shot=plan.shot,
        start_frame=plan.start_frame,
        end_frame=plan.end_frame,
        reference_frame=plan.reference_frame,
        **fields,
    )


def _from_result(plan: ItemPlan, status: str, result: dict, seconds: float) -> ItemOutcome:
    return _outcome(
        plan,
        status,
        output_dir=result["output_dir"],
        seconds=round(seconds, 3),
        timings=result["timings"],
        loop_frames=result["loop_frames"],
        animated_fraction=result["masks"]["animated_fraction"],
        seam=result["quality"]["seam"],
        alignment=(result.get("alignment") or {}).get("mode"),
        warnings=result.get("warnings", []),
        outcome=result.get("outcome"),
        outcome_reasons=result.get("outcome_reasons", []),
        outputs={k: result["outputs"].get(k) for k in ("mp4", "gif", "webp")},  # the paths (sizes, GIF error: result.json)
    )


#: The stages up to the aligned window, in the order the pipeline runs them (``run_stages``).
_ALIGN_STAGES = STAGES[: STAGES.index("cyclicity")]


def _loop_stages(config: PipelineConfig) -> tuple[str, ...]:
    return ("video_loop",) if config.loop_method == "video_loop" else ("cyclicity", "displays", "render")


def _stage_digest(stage: str, source: str, store: str, config: PipelineConfig, mode: str, hw) -> str | None:
    """What ``stage`` of the item would compute its inputs digest as today (the digest its task skips by)."""
    a = config.align
    digests = {
        "ingest": lambda: ingest_digest(source, config.ingest, hw),
        "shots": lambda: shots_digest(store, source, config.ingest, config.window),
        "window": lambda: window_digest(store, config.window, config.cyclicity.min_window_frames),
        "motion": lambda: motion_digest(store, a),
        "sfm": lambda: sfm_digest(store, a),
        "depth": lambda: depth_digest(store, a),
        "warp": lambda: warp_digest(store, a, mode, config.window.tile),
        "cyclicity": lambda: cyclicity_digest(store, config.cyclicity),
        "displays": lambda: displays_digest(store, config.displays),
        "render": lambda: render_digest(store, config.render, config.cyclicity),
        "video_loop": lambda: video_loop_digest(store, config.video_loop),
        "render3d": lambda: render3d_digest(store, config.render3d),
    }
    return digests[stage]() if stage in digests else None


def _same_work(done: dict, config: PipelineConfig, folder: Path, source: str) -> bool:
    """Whether the finished item in ``folder`` (its result.json: ``done``) is what ``config`` would make now.

    Judged by what the outputs depend on, not by the recorded config's keys (an upgrade adds fields
    and defaults; where it ran never counts): today's run would call the same stages, and each of
    them would skip because the digest it computes today from ``config`` equals the one recorded
    in the item's store (each digest chains on its upstream's, so the last stage's covers the
    whole chain).  The encode stage has no record: the MP4/GIF follow the render stage, whose
    digest covers the output options.  No stage may have been redone since result.json was written
    (a later run stopped in between), and without the store nothing can be checked: not the same.
    """
    result_path = folder / N.RESULT_NAME
    store = str(folder / N.STORE_NAME)
    mode = (done.get("alignment") or {}).get("mode")
    ran = set(done.get("timings") or {}) - {"encode"}
    if mode is None or not Path(store).is_dir():
        return False
    wanted = {s for s in ran if s in _ALIGN_STAGES} | set(_loop_stages(config))
    if config.render3d.enabled and mode == "moving":
        wanted.add("render3d")
    if wanted != ran:  # another loop method, or render3d switched on or off
        return False
    try:
        attrs = read_attrs(store)
        hw = (attrs["source_height"], attrs["source_width"]) if "source_height" in attrs else None
        written = result_path.stat().st_mtime
        for stage in ran:
            record = stage_record(store, stage) or {}
            finished = record.get("finished")
            if finished is None or datetime.fromisoformat(finished).timestamp() > written:
                return False
            if record.get("digest") != _stage_digest(stage, source, store, config, mode, hw):
                return False
    except Exception:  # an unreadable store or source: nothing can be checked, the item is made again
        return False
    return True


#: Reason prefix of an item skipped because another live run holds its lease.
IN_PROGRESS = "in progress elsewhere"


@functools.cache
def _item_subflow():
    """``make_cinemagraph`` as a corpus item's subflow, made once per process (:func:`flows.execution.item_run_name`)."""
    return make_cinemagraph.with_options(flow_run_name=item_run_name, on_running=[SubflowStart.on_running])


@task(name="make_item", task_run_name="item {plan.item_id}")
def make_item(
    plan: ItemPlan,
    out_root: str,
    base: PipelineConfig,
    overwrite: bool,
    lease_timeout: float = 300.0,
    worker: str | None = None,
    stages_in_one_task: bool = False,
) -> ItemOutcome:
    """Make one item's cinemagraph as a subflow, holding the item's lease; every error becomes a recorded failure.

    ``base.execution`` is where the subflow's stage tasks run (the corpus hands on its cluster);
    with ``worker`` (an address of the corpus cluster) they all run on that worker, tiles included,
    and with ``stages_in_one_task`` as one task run there.
    A lease left by a dead run is taken over (and that run marked Crashed if Prefect still shows
    it Running); the item's finished stages are kept and only the rest is computed.
    """
    if is_image_path(plan.source):
        return make_still_item(plan, out_root, overwrite, lease_timeout=lease_timeout)
    t0 = time.perf_counter()
    folder = Path(out_root) / plan.item_id
    log = stage_logger("corpus")
    try:
        config = item_config(plan, base)
    except Exception as exc:
        return _outcome(plan, "skipped", reason=f"invalid options: {exc}")
    try:
        with ItemLease(folder, timeout=lease_timeout) as lease:
            if lease.taken_over is not None:
                marked = crash_abandoned_runs(lease.taken_over, lease.stale_reason or "")
                log.warning(
                    "item %s: took over the lease of flow run %s (%s); %d of its runs marked Crashed",
                    plan.item_id,
                    lease.taken_over.get("flow_run_id"),
                    lease.stale_reason,
                    len(marked),
                )
            result_path = folder / N.RESULT_NAME
            if not overwrite and result_path.exists():
                done = json.loads(result_path.read_text())
                if _same_work(done, config, folder, plan.source):
                    return _from_result(plan, "done_before", done, time.perf_counter() - t0)
            gate = SubflowStart(folder.name)  # the subflow's run name (item_run_name), the item's id
            subflow = _item_subflow()
            try:
                with on_worker(worker, stages_in_one_task):
                    result = subflow(
                        source=plan.source,
                        out_dir=str(folder),
                        config=config,
                        existing="overwrite" if overwrite else "resume",
                    )
            finally:
                gate.release()
            return _from_result(plan, "succeeded", result.model_dump(mode="json"), time.perf_counter() - t0)
    except ItemLocked as exc:
        return _outcome(plan, "skipped", reason=f"{IN_PROGRESS}: {exc}")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.error("item %s failed: %s", plan.item_id, reason)
        return _outcome(plan, "failed", reason=reason, seconds=round(time.perf_counter() - t0, 3))


def write_index(outcomes: list[ItemOutcome], out_root: Path) -> Path:
    path = out_root / INDEX_NAME
    tmp = path.with_name("." + INDEX_NAME + ".partial")
    tmp.write_text("".join(json.dumps(o.model_dump(mode="json")) + "\n" for o in outcomes))
    os.replace(tmp, path)
    return path


def _index_rows(outcomes: list[ItemOutcome]) -> list[dict[str, Any]]:
    """The rows of the corpus table artifact (one per item); add a column by adding a key."""
    return [
        {
            "item": o.item_id,
            "status": o.status,
            "reason": o.reason or "",
            "loop_frames": o.loop_frames,
            "animated_%": None if o.animated_fraction is None else round(100 * o.animated_fraction, 2),
            "seam": o.seam,
            "seconds": o.seconds,
        }
        for o in outcomes
    ]


def item_work(plan: ItemPlan) -> int:
    """An item's planned amount of work, in frames (at least 1)."""
    return max(1, plan.end_frame - plan.start_frame)


def largest_first(plans: list[ItemPlan]) -> list[ItemPlan]:
    """Items with the most frames first (ties keep manifest order): the batch does not end on one long
    item while the other workers idle."""
    return sorted(plans, key=lambda p: -item_work(p))


class _WorkerChooser:
    """Which worker the next item goes to: the one with the least work (frames) placed on it and not
    finished; among equals, the one whose latest item started earliest (it frees up first).  An item
    bound to a worker of one thread waits there for the items before it, so this spreads the batch's
    work, not its item count, and its last items do not pile up on one worker while another idles."""

    def __init__(self, runner, enabled: bool) -> None:
        self.runner, self.enabled = runner, enabled
        self.placed: dict[str, dict[int, tuple[float, int]]] = {}  # worker -> token -> (start, work)
        self._tokens = 0

    def take(self, work: int = 1) -> tuple[str | None, int]:
        """The worker for an item of ``work`` frames (None: not bound) and the token to give it back."""
        self._tokens += 1
        if not self.enabled:
            return None, self._tokens
        workers = worker_addresses(self.runner)  # now: an adaptive cluster's workers come and go
        if not workers:
            return None, self._tokens

        def load(w: str) -> tuple[int, float]:
            items = self.placed.get(w, {}).values()
            return sum(k for _, k in items), max((t for t, _ in items), default=float("-inf"))

        worker = min(workers, key=load)
        self.placed.setdefault(worker, {})[self._tokens] = (time.monotonic(), work)
        return worker, self._tokens

    def give_back(self, worker: str | None, token: int) -> None:
        """The item that ``take`` placed on ``worker`` under ``token`` ended."""
        if worker is not None:
            self.placed.get(worker, {}).pop(token, None)


def _plan_all(config: CorpusConfig, manifest: str, out: Path) -> tuple[list[ItemPlan], list[ItemOutcome]]:
    """Plan every source (``plan_source`` tasks, on the current task runner); skips become outcomes."""
    base, entries, outcomes = read_manifest(manifest)
    roots = [str(Path(r).resolve()) for r in config.sources.allowed_roots] or [str(base.resolve())]
    named, duplicates = unique_ids(entries)
    outcomes += duplicates
    plans: list[ItemPlan] = []
    planned = [plan_source.submit(e, item_id, str(base), roots, config, str(out)) for e, item_id in named]
    for (entry, item_id), future in zip(named, planned, strict=True):
        future.wait()
        if future.state.is_completed():
            items, skipped = future.result()
            plans += items
            outcomes += skipped
        else:
            outcomes.append(
                ItemOutcome(
                    item_id=item_id, source=entry.source, status="failed", reason=str(future.state.message)
                )
            )
    return plans, outcomes


@flow(name="process_corpus")
def process_corpus(manifest: str, out_root: str, config: CorpusConfig | None = None):
    """Make cinemagraphs of every usable shot of every source in ``manifest``.

    The Dask cluster is the one ``config.pipeline.execution`` names, whatever started the run
    (CLI, Python, deployment, schedule, UI).  Sources are planned on it when their shots are
    detected (decoding each source), else in this flow's threads while it starts; items are coordinated
    from threads of this flow run (at most ``max_in_flight`` at once), each item's subflow
    running its stage tasks on the same cluster.

    Parameters
    ----------
    manifest : str
        A folder to scan for videos, or a .csv / .jsonl manifest (see tasks/manifest.py).
    out_root : str
        One folder per item below it, and the corpus index ``index.jsonl``.
    config : CorpusConfig, optional
        Pipeline defaults, shot splitting, source policy, items in flight, overwrite.
    """
    config = config or CorpusConfig()
    t0 = time.perf_counter()
    log = stage_logger("corpus")
    out = Path(out_root)
    out.mkdir(parents=True, exist_ok=True)
    with starting_cluster(config.pipeline.execution) as started:
        if config.shots.detect:  # shot detection decodes every source: on the cluster
            cluster = started()
            with tasks_on(cluster):
                plans, outcomes = _plan_all(config, manifest, out)
        else:  # planning only counts frames: in this process's threads, while the cluster starts
            with ThreadPoolTaskRunner(max_workers=usable_cpus()) as threads, tasks_on(threads):
                plans, outcomes = _plan_all(config, manifest, out)
            cluster = started()
        # items hand the cluster on to their subflows by address (threads here only coordinate)
        execution = ExecutionParams(scheduler_address=scheduler_address(cluster))
        base = config.pipeline.model_copy(update={"execution": execution})
        total = max(len(plans), 1)
        log.info("corpus planned %d items (%d skipped while planning)", len(plans), len(outcomes))
        progress_id = create_progress_artifact(progress=0.0, description=f"items of {manifest}")
        pending, running, finished = deque(largest_first(plans)), {}, 0
        chooser = _WorkerChooser(cluster, config.bind_items_to_workers)
        while pending or running:
            while pending and len(running) < config.max_in_flight:
                plan = pending.popleft()
                worker, token = chooser.take(item_work(plan))
                with corpus_cluster(cluster):  # make_item's thread binds its subflow to `worker`
                    fut = make_item.submit(
                        plan,
                        str(out),
                        base,
                        config.overwrite,
                        config.lease_timeout,
                        worker,
                        config.stages_in_one_task,
                    )
                running[fut] = (worker, token)
            fut = next(as_completed(list(running)))
            chooser.give_back(*running.pop(fut))
            outcome = fut.result()
            outcomes.append(outcome)
            finished += 1
            log.info(
                "corpus item %s %s%s",
                outcome.item_id,
                outcome.status,
                f": {outcome.reason}" if outcome.reason else "",
            )
            update_progress_artifact(progress_id, 100.0 * finished / total)
    index = write_index(outcomes, out)
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("succeeded", "failed", "skipped", "done_before")
    }
    busy = [o.item_id for o in outcomes if o.status == "skipped" and (o.reason or "").startswith(IN_PROGRESS)]
    create_table_artifact(table=_index_rows(outcomes), description=f"Corpus {manifest}: {counts}")
    result = CorpusResult(
        manifest=str(manifest),
        out_root=str(out.resolve()),
        index=str(index),
        seconds=round(time.perf_counter() - t0, 3),
        items=outcomes,
        **counts,
    )
    message = (
        f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['skipped']} skipped, "
        f"{counts['done_before']} done before"
    )
    if busy:
        message += f"; {len(busy)} not done, in progress in another run: {', '.join(busy)}"
    log.info("corpus finished: %s", message)
    if counts["failed"]:
        return Failed(message=message, data=result)
    if busy:
        return Failed(name="Incomplete", message=message, data=result)
    return Completed(message=message, data=result)


def run_process_corpus(manifest: str | Path, out_root: str | Path, config: CorpusConfig | None = None):
    """Run the corpus flow (on the cluster ``config.pipeline.execution`` names); returns its final state."""
    use_project_local_server()
    return process_corpus(
        manifest=str(manifest), out_root=str(out_root), config=config or CorpusConfig(), return_state=True
    )
