"""The Prefect tasks of the still-image flow: each reads what it needs from the store, runs one step, writes its outputs.

Stages: ``load`` (image, given mask) -> ``direction`` (given or voted) -> ``regions``
(given mask or automatic) -> ``repetitions`` (1-D path per region) -> ``labels``
(CRF per region) -> ``flow`` (smooth, invert, densify) -> ``frames`` (texture
extension, blended frames, quality) -> encode and result.json in the flow.
Each task returns a small dict (figures, never big arrays); each step's
algorithm lives in its own module of this package, so tests and the benchmark
call the same code without Prefect.
"""

from __future__ import annotations

import functools
import inspect
import time
from pathlib import Path

import numpy as np
from prefect import task

from schemas import names as N
from schemas import still as S
from schemas.still import EndlessLoopConfig
from tasks.runtime import retry_on_io_only, stage_logger
from tasks.still.direction import candidate_directions, find_directions
from tasks.still.features import pixel_features
from tasks.still.flow import dense_fields, inversion_error, sparse_vectors
from tasks.still.frames import FrameRenderer, end_frame_errors, step_sizes
from tasks.still.image import read_image, read_mask
from tasks.still.labels import RegionLabels, assign_labels
from tasks.still.mask import automatic_mask, split_regions
from tasks.still.repetitions import NoRepetitionError, Repetition, find_repetitions, first_repeating
from tasks.still.store import create_store, read_arrays, read_attrs, update_attrs, write_arrays
from tasks.still.texture import extend_texture
from tasks.store import config_values, digest, record_stage, stage_done, stage_record

#: Given-mask components smaller than this are ignored (pixels).
MIN_REGION_PIXELS = 64


def _log(stage, message, *args):
    stage_logger(stage).info("stage " + stage + " finished: " + message, *args)


def _features(store, config):
    image = read_arrays(store, [S.IMAGE])[S.IMAGE]
    return image, pixel_features(image, config.features)


def _regions(store):
    mask = read_arrays(store, [S.MASK])[S.MASK]
    return mask, split_regions(mask)


def load_still(source: str, store: str, config: EndlessLoopConfig, mask_path: str | None = None) -> dict:
    """Read the image (downscaled to ``max_long_side``) and the given mask into a new store."""
    image, source_size = read_image(source, config.max_long_side)
    h, w = image.shape[:2]
    mask = read_mask(mask_path, source_size, (h, w)) if mask_path else None
    scale = h / source_size[0]
    warnings = []
    if (h, w) != tuple(source_size):
        warnings.append(
            f"image downscaled from {source_size[1]}x{source_size[0]} to {w}x{h} (max_long_side "
            f"{config.max_long_side})"
        )
    create_store(store, image, {
        "source": str(source), "source_size": list(source_size), "scale": scale, "kind": "endless_loop",
        "mask_path": mask_path, "config": config.model_dump(mode="json"),
    })
    if mask is not None:
        write_arrays(store, {S.MASK: mask})
    _log("load", "%dx%d", w, h)
    return {"height": h, "width": w, "source_size": list(source_size), "scale": scale, "warnings": warnings,
            "mask_given": mask is not None}


def choose_direction(store: str, config: EndlessLoopConfig, source: str) -> dict:
    """The given direction, or the winner of the best-buddy vote (inside the given mask, if any)."""
    attrs = read_attrs(store)
    if config.direction is not None:
        d = np.asarray(config.direction, np.float64)
        d /= np.linalg.norm(d)
        out = {"direction": d.tolist(), "direction_source": "given", "directions": [], "direction_check": None}
    else:
        image, features = _features(store, config)
        mask = read_arrays(store, [S.MASK])[S.MASK] if attrs.get("mask_path") else None
        found = find_directions(image, features, mask, config.auto_direction)
        # each voted direction (then the image axes) is checked by the 1-D repetition strength
        candidates = candidate_directions(found, config.auto_direction.suppress_degrees)
        area = mask if mask is not None else np.ones(image.shape[:2], bool)
        k, rep = first_repeating(features, area, candidates, config.repetitions, source=source)
        votes = [{"direction": s.direction.tolist(), "angle": s.angle, "votes": s.votes} for s in found]
        out = {"direction": np.asarray(candidates[k]).tolist(), "direction_source": "automatic", "directions": votes,
               "direction_check": {"candidate": k, "period": rep.period, "strength": rep.strength,
                                   "whole_image": mask is None}}
        if k > 0:
            out["warnings"] = [
                f"direction ({candidates[k][0]:.3f}, {candidates[k][1]:.3f}) used: the most voted one does not "
                f"repeat (repetition strength under {config.repetitions.min_strength:.2f}); this one repeats "
                f"every {rep.period:.1f} px (strength {rep.strength:.2f})"
            ]
    update_attrs(store, {k: v for k, v in out.items() if k != "warnings"})
    _log("direction", "(%.3f, %.3f) %s", out["direction"][0], out["direction"][1], out["direction_source"])
    return out


def find_regions(store: str, config: EndlessLoopConfig, source: str) -> dict:
    """The regions that move: the given mask's components, or the automatic mask's."""
    attrs = read_attrs(store)
    d = np.asarray(attrs["direction"])
    warnings = []
    if attrs.get("mask_path"):
        mask = read_arrays(store, [S.MASK])[S.MASK]
        regions = split_regions(mask)
        kept = [r for r in regions if r.sum() >= MIN_REGION_PIXELS]
        if len(kept) < len(regions):
            warnings.append(f"{len(regions) - len(kept)} mask components under {MIN_REGION_PIXELS} px ignored")
        if not kept:
            raise NoRepetitionError(f"{attrs['mask_path']}: mask has no component of {MIN_REGION_PIXELS} px or more")
        mask_source, period = "given", None
    else:
        image, features = _features(store, config)
        check = attrs.get("direction_check") or {}
        if check.get("whole_image"):  # the direction stage measured the whole image's period already
            period = float(check["period"])
        else:
            ones = np.ones(image.shape[:2], bool)
            period = find_repetitions(features, ones, d, config.repetitions, source=source).period
        mask_all, _ = automatic_mask(features, d, period, config.mask)
        kept = split_regions(mask_all, config.mask.min_region_fraction, config.mask.max_regions)
        if not kept:
            raise NoRepetitionError(
                f"{source}: no repeating structure found along direction ({d[0]:.3f}, {d[1]:.3f}): "
                f"no area repeats with the period {period:.1f} px"
            )
        mask_source = "automatic"
    mask = np.zeros_like(kept[0])
    for r in kept:
        mask |= r
    write_arrays(store, {S.MASK: mask})
    update_attrs(store, {"mask_source": mask_source, "whole_image_period": period})
    _log("regions", "%d regions, %s mask", len(kept), mask_source)
    return {"mask_source": mask_source, "n_regions": len(kept), "areas": [int(r.sum()) for r in kept],
            "warnings": warnings}


def _rep_to_attrs(rep: Repetition) -> dict:
    return {"centre": rep.centre.tolist(), "direction": rep.direction.tolist(), "positions": rep.positions.tolist(),
            "displacements": rep.displacements.tolist(), "period": rep.period, "cost_ratio": rep.cost_ratio,
            "step": rep.step, "strength": rep.strength}


def _rep_from_attrs(a: dict) -> Repetition:
    return Repetition(np.asarray(a["centre"]), np.asarray(a["direction"]), np.asarray(a["positions"]),
                      np.asarray(a["displacements"]), a["period"], a["cost_ratio"], a["step"], a.get("strength", 0.0))


def region_repetitions(store: str, config: EndlessLoopConfig, source: str) -> dict:
    """Step 2 per region; regions without repetition are dropped (with a warning) unless none is left."""
    attrs = read_attrs(store)
    d = np.asarray(attrs["direction"])
    _, features = _features(store, config)
    mask, regions = _regions(store)
    reps, kept, warnings, errors = [], [], [], []
    for k, region in enumerate(regions):
        try:
            reps.append(find_repetitions(features, region, d, config.repetitions, source=source))
            kept.append(region)
        except NoRepetitionError as exc:
            errors.append(str(exc))
            warnings.append(f"region {k + 1} ({int(region.sum())} px) dropped: {str(exc).split(': ', 1)[-1]}")
    if not reps:
        raise NoRepetitionError(errors[0])
    if len(kept) < len(regions):
        mask = np.zeros_like(mask)
        for r in kept:
            mask |= r
        write_arrays(store, {S.MASK: mask})
    update_attrs(store, {"repetitions": [_rep_to_attrs(r) for r in reps], "period": reps[0].period})
    _log("repetitions", "periods %s px", ", ".join(f"{r.period:.1f}" for r in reps))
    return {"periods": [r.period for r in reps], "cost_ratios": [r.cost_ratio for r in reps], "warnings": warnings}


def label_regions(store: str, config: EndlessLoopConfig) -> dict:
    """Step 3 per region: one label per masked pixel; the store's ``labels`` index ``attrs["label_vectors"]``."""
    attrs = read_attrs(store)
    image, features = _features(store, config)
    mask, regions = _regions(store)
    reps = [_rep_from_attrs(a) for a in attrs["repetitions"]]
    labels = np.full(mask.shape, -1, np.int32)
    vectors, offsets, energies, counts = [], [], [], []
    for region, rep in zip(regions, reps, strict=True):
        res: RegionLabels = assign_labels(image, features, region, rep, config.crf)
        offset = sum(len(v) for v in vectors)
        labels[region] = res.labels[region] + offset
        vectors.append(res.vectors)
        offsets.append(offset)
        energies.append(res.energy)
        counts.append(len(res.vectors))
    write_arrays(store, {S.LABELS: labels})
    update_attrs(store, {"label_vectors": np.concatenate(vectors).tolist(), "label_offsets": offsets,
                         "crf_energies": energies})
    _log("labels", "%s labels", "+".join(map(str, counts)))
    return {"n_labels": counts, "energies": energies}


def compute_flows(store: str, config: EndlessLoopConfig) -> dict:
    """Step 4a: forward and backward fields over the image and a margin; their inversion error."""
    attrs = read_attrs(store)
    arrays = read_arrays(store, [S.LABELS])
    mask, regions = _regions(store)
    vectors = np.asarray(attrs["label_vectors"], np.float64)
    periods = [a["period"] for a in attrs["repetitions"]]
    sparse = [sparse_vectors(arrays[S.LABELS], vectors, r, config.flow, period=p)
              for r, p in zip(regions, periods, strict=True)]
    longest = max(float(np.abs(s.vectors).max()) if len(s.vectors) else 0.0 for s in sparse)
    margin = int(np.ceil(longest)) + 4
    fwd, bwd = dense_fields(sparse, regions, mask.shape, margin, config.flow.grid_step, config.flow.refine_inverse)
    h, w = mask.shape
    inv = inversion_error(fwd, bwd, mask, margin)
    means = [fwd[margin : margin + h, margin : margin + w][r].mean(axis=0).tolist() for r in regions]
    write_arrays(store, {
        S.FLOW_FORWARD: fwd[margin : margin + h, margin : margin + w],
        S.FLOW_BACKWARD: bwd[margin : margin + h, margin : margin + w],
        S.FLOW_FORWARD_PADDED: fwd, S.FLOW_BACKWARD_PADDED: bwd,
    })
    out = {"margin": margin, "n_points": [len(s.points) for s in sparse],
           "inversion_error_mean": float(inv.mean()), "inversion_error_p95": float(np.percentile(inv, 95)),
           "mean_displacements": means}
    update_attrs(store, {"flow": out})
    _log("flow", "inversion error %.3f px", out["inversion_error_mean"])
    return out


def render_frames(store: str, config: EndlessLoopConfig) -> dict:
    """Step 4b-c: the texture beyond the mask, the loop's frames and the quality figures."""
    attrs = read_attrs(store)
    margin = int(attrs["flow"]["margin"])
    arrays = read_arrays(store, [S.IMAGE, S.MASK, S.FLOW_FORWARD_PADDED, S.FLOW_BACKWARD_PADDED])
    image, mask = arrays[S.IMAGE], arrays[S.MASK]
    fwd, bwd = arrays[S.FLOW_FORWARD_PADDED], arrays[S.FLOW_BACKWARD_PADDED]
    extended = extend_texture(image, mask, fwd, margin, config.texture)
    renderer = FrameRenderer(image, mask, extended, fwd, bwd, margin, config.frames)
    loop = renderer.loop(config.frames.n_frames)
    steps, wrap = step_sizes(loop, mask)
    first, last = end_frame_errors(renderer, loop, image)
    quality = {
        "first_frame_error": first,
        "last_frame_error": last,
        "wrap_step": wrap,
        "max_ordinary_step": float(steps.max()) if len(steps) else 0.0,
    }
    write_arrays(store, {N.LOOP: loop})
    update_attrs(store, {"quality": quality, "fps": config.encode.fps})
    _log("frames", "%d frames, wrap step %.2f (largest ordinary %.2f)", len(loop), wrap,
         quality["max_ordinary_step"])
    return {"loop_frames": int(len(loop)), **quality}


def encode_loop(store: str, out_dir: str, config: EndlessLoopConfig) -> dict:
    """cinemagraph.mp4 and .gif with the project's writers."""
    from tasks.encode import write_gif, write_mp4

    loop = read_arrays(store, [N.LOOP])[N.LOOP]
    out = Path(out_dir)
    p = config.encode
    result = {"mp4": str(write_mp4(out / N.MP4_NAME, loop, p.fps, p.crf)), "gif": None, "webp": None}
    if p.write_gif:
        result["gif"] = str(write_gif(out / N.GIF_NAME, loop, p.fps, p.gif_max_long_side).path)
    _log("encode", "%s", ", ".join(v for v in result.values() if v))
    return result


# --------------------------------------------------------------------------
# resume: each stage records itself in the store (tasks.store.record_stage) with a digest of
# its inputs (the upstream stage's digest and the config sections it reads); a rerun with the
# same inputs skips it and hands on the recorded summary
# --------------------------------------------------------------------------

#: stage -> (upstream stage, EndlessLoopConfig fields it reads)
STAGE_INPUTS = {
    "load": (None, ("max_long_side",)),
    "direction": ("load", ("direction", "features", "auto_direction", "repetitions")),
    "regions": ("direction", ("features", "repetitions", "mask")),
    "repetitions": ("regions", ("features", "repetitions")),
    "labels": ("repetitions", ("features", "crf")),
    "flow": ("labels", ("flow",)),
    "frames": ("flow", ("texture", "frames", "encode")),
    "encode": ("frames", ("encode",)),
}


def _file_stamp(path):
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def stage_digest(store: str, stage: str, config: EndlessLoopConfig, extra=None) -> str:
    """Digest of what ``stage`` reads: the upstream stage's record, its config fields and ``extra``."""
    upstream, fields = STAGE_INPUTS[stage]
    up = (stage_record(store, upstream) or {}).get("digest") if upstream else None
    dumped = config_values(config)
    return digest("still_" + stage, up, {f: dumped[f] for f in fields if f in dumped}, extra)


def _resumable(stage, fn, extra=lambda arguments: None, outputs=lambda arguments: ()):
    """``fn`` skipped when the store records ``stage`` with the same inputs (and its ``outputs`` files exist)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        store, config = arguments["store"], arguments["config"]
        key = stage_digest(store, stage, config, extra(arguments))
        if stage_done(store, stage, key) and all(Path(f).exists() for f in outputs(arguments)):
            stage_logger(stage).info("stage %s already complete; skipped", stage)
            return stage_record(store, stage)["summary"]
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        record_stage(store, stage, key, time.perf_counter() - t0, out)
        return out

    return run


def _load_stamps(arguments):
    return {"source": _file_stamp(arguments["source"]), "mask": _file_stamp(arguments.get("mask_path"))}


def _encoded_files(arguments):
    p = arguments["config"].encode
    out = Path(arguments["out_dir"])
    return [out / N.MP4_NAME] + ([out / N.GIF_NAME] if p.write_gif else [])


_retry = {"retries": 1, "retry_delay_seconds": 2, "retry_condition_fn": retry_on_io_only}
load_still_task = task(name="still_load", **_retry)(_resumable("load", load_still, extra=_load_stamps))
choose_direction_task = task(name="still_direction")(_resumable("direction", choose_direction))
find_regions_task = task(name="still_regions")(_resumable("regions", find_regions))
region_repetitions_task = task(name="still_repetitions")(_resumable("repetitions", region_repetitions))
label_regions_task = task(name="still_labels")(_resumable("labels", label_regions))
compute_flows_task = task(name="still_flow")(_resumable("flow", compute_flows))
render_frames_task = task(name="still_frames")(_resumable("frames", render_frames))
encode_loop_task = task(name="still_encode", **_retry)(
    _resumable("encode", encode_loop, extra=lambda a: str(Path(a["out_dir"]).resolve()), outputs=_encoded_files)
)
