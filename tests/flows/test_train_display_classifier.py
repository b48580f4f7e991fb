"""The training flow: real Prefect runs on a tiny generated set and on an annotation file."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from flows.train_display_classifier import read_annotations, train_display_classifier
from schemas.annotations import AnnotatedClip, DisplayAnnotations
from tasks.display_features import FEATURE_NAMES, load_model
from tasks.displays import AnnotationError
from tasks.synthetic_displays import make_display_clip


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_generated_set_prints_cross_validated_scores_and_saves_a_loadable_model(prefect_harness, tmp_path):
    out = tmp_path / "models" / "tiny.skops"
    # the flow's prints go to its run logger (log_prints); listen there as the CLI does
    logger = logging.getLogger("prefect.flow_runs")
    collect, level = _Collect(), logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        result = train_display_classifier(
            out_model=str(out),
            n_synthetic=3,
            synthetic_size=(160, 96),
            synthetic_frames=32,
            n_estimators=10,
            n_splits=3,
        )
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert result.n_clips == 3 and result.n_splits == 3
    assert 0 < result.n_positive < result.n_segments
    assert 0 <= result.precision <= 1 and 0 <= result.recall <= 1
    printed = [m for m in collect.messages if m.startswith("cross-validated")]
    assert printed == [
        f"cross-validated (3 folds grouped by clip): precision {result.precision:.3f}, "
        f"recall {result.recall:.3f}, F1 {result.f1:.3f}"
    ]
    model = load_model(out)
    assert model.n_features_in_ == len(FEATURE_NAMES) and len(model.estimators_) == 10
    assert out.stat().st_size < 200 * 1024


def test_annotation_file_with_polygons_and_masks(prefect_harness, tmp_path):
    import cv2

    entries = []
    for i in range(2):
        clip = make_display_clip(
            tmp_path / f"c{i}.mp4", height=96, width=160, n_frames=32, seed=50 + i, n_displays=2
        )
        if i == 0:
            polygons = [
                [(x0, y0), (x0 + w - 1, y0), (x0 + w - 1, y0 + h - 1), (x0, y0 + h - 1)]
                for y0, x0, h, w in (d.rect for d in clip.displays)
            ]
            entries.append(AnnotatedClip(clip=clip.path.name, polygons=polygons))
        else:
            cv2.imwrite(str(tmp_path / "m1.png"), clip.display_mask.astype(np.uint8) * 255)
            entries.append(AnnotatedClip(clip=clip.path, mask="m1.png"))  # an absolute clip path
    spec = tmp_path / "annotations.json"
    spec.write_text(DisplayAnnotations(clips=entries).model_dump_json())
    result = train_display_classifier(
        annotations=str(spec), out_model=str(tmp_path / "m.skops"), n_estimators=5, n_splits=2
    )
    assert result.n_clips == 2 and result.n_positive > 0
    # two clips: the grouped cross-validation has two folds, or none when a fold lacks a class
    assert result.n_splits in (0, 2)
    assert (result.precision is None) == (result.n_splits == 0)
    assert load_model(tmp_path / "m.skops").n_features_in_ == len(FEATURE_NAMES)


def test_bad_annotation_files_are_named(tmp_path):
    with pytest.raises(AnnotationError, match="missing.json: annotation file not found"):
        read_annotations(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"clips": [{"clip": "a.mp4"}]}))
    with pytest.raises(AnnotationError, match=r"bad\.json: invalid annotations: .*exactly one"):
        read_annotations(bad)
    bad.write_text("{not json")
    with pytest.raises(AnnotationError, match=r"bad\.json: invalid annotations"):
        read_annotations(bad)


def test_real_clips_without_displays_train_as_negatives_in_their_own_groups(prefect_harness, tmp_path):
    from pathlib import Path

    tree = Path("/usr/share/doc/opencv-doc/examples/data/tree.avi")
    if not tree.is_file():
        pytest.skip(f"{tree} not installed (Debian package opencv-doc)")
    logger = logging.getLogger("prefect.flow_runs")
    collect, level = _Collect(), logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        result = train_display_classifier(
            out_model=str(tmp_path / "with_real.skops"),
            n_synthetic=3,
            synthetic_size=(160, 96),
            synthetic_frames=32,
            n_estimators=10,
            n_splits=3,
            negative_clips=[str(tree)],
            negative_groups=["tree"],
            negative_windows=1,
        )
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert result.n_clips == 4 and result.n_splits == 3
    assert result.real_false_positive_rate is not None and 0 <= result.real_false_positive_rate <= 1
    real = [m for m in collect.messages if m.startswith("real clips without displays")]
    assert len(real) == 1 and f"({100 * result.real_false_positive_rate:.2f} %)" in real[0]
    with pytest.raises(AnnotationError, match="negative clip not found"):
        train_display_classifier(out_model=str(tmp_path / "x.skops"), n_synthetic=2, negative_clips=["/no/such.avi"])
