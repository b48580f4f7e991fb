"""Segment features, the display classifier, its safe persistence, and the annotation schema."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from kernels.segmentation import hierarchical_segmentation
from schemas.annotations import AnnotatedClip, DisplayAnnotations
from tasks.display_features import (
    FEATURE_NAMES,
    ModelFileError,
    UntrustedModelError,
    cross_validated_scores,
    load_model,
    predict_display_mask,
    rasterise_polygons,
    save_model,
    segment_features,
    segment_targets,
    train_display_classifier,
)

F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _naive_appearance(video, visible, members):
    """Per-sample statistics of one segment, straight from the definitions."""
    samples = []
    for t in range(video.shape[0]):
        for y, x in members:
            if visible[t, y, x]:
                samples.append(video[t, y, x].astype(np.float64))
    rgb = np.array(samples)
    lab = cv2.cvtColor((rgb / 255.0).astype(np.float32)[None], cv2.COLOR_RGB2Lab)[0].astype(np.float64)
    vmax, vmin = rgb.max(axis=1), rgb.min(axis=1)
    sat = np.array([(a - b) / a if a > 0 else 0.0 for a, b in zip(vmax, vmin, strict=True)])
    return lab.mean(0), lab.std(0), sat.mean(), (vmax / 255).mean()


def _naive_temporal(video, visible, members):
    diffs, stds = [], []
    for y, x in members:
        seen = [t for t in range(video.shape[0]) if visible[t, y, x]]
        if len(seen) >= 2:
            stds.append(video[seen, y, x].astype(float).std(axis=0).mean())
        for t in range(video.shape[0] - 1):
            if visible[t, y, x] and visible[t + 1, y, x]:
                diffs.append(np.abs(video[t + 1, y, x].astype(float) - video[t, y, x].astype(float)).mean())
    return (np.mean(diffs) if diffs else 0.0), (np.mean(stds) if stds else 0.0)


def test_features_match_naive_definitions():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (12, 6, 7, 3)).astype(np.uint8)
    visible = rng.random((12, 6, 7)) > 0.2
    labels = np.zeros((6, 7), np.int64)
    labels[:, 4:] = 1
    labels[4:, :2] = 2
    features, names = segment_features(video, visible, labels)
    assert names == FEATURE_NAMES and features.shape == (3, len(FEATURE_NAMES))
    for k in range(3):
        members = list(zip(*np.nonzero(labels == k), strict=True))
        lab_mean, lab_std, sat, val = _naive_appearance(video, visible, members)
        np.testing.assert_allclose(features[k, 0:3], lab_mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(features[k, 3:6], lab_std, rtol=1e-5, atol=1e-5)
        assert features[k, F["saturation"]] == pytest.approx(sat)
        assert features[k, F["brightness"]] == pytest.approx(val)
        diff, std = _naive_temporal(video, visible, members)
        assert features[k, F["mean_abs_diff"]] == pytest.approx(diff)
        assert features[k, F["temporal_std"]] == pytest.approx(std)
        ys = np.array([m[0] for m in members])
        xs = np.array([m[1] for m in members])
        assert features[k, F["area_fraction"]] == pytest.approx(len(members) / 42)
        assert features[k, F["centroid_x"]] == pytest.approx((xs.mean() + 0.5) / 7)
        assert features[k, F["centroid_y"]] == pytest.approx((ys.mean() + 0.5) / 6)


def test_shape_features_of_known_shapes():
    video = np.zeros((4, 10, 12, 3), np.uint8)
    labels = np.zeros((10, 12), np.int64)
    labels[1:4, 2:10] = 1  # 3 x 8 rectangle
    labels[5:9, 1:5] = 2  # L shape: a 4 x 4 square minus its 2 x 2 top-right corner
    labels[5:7, 3:5] = 0
    features, _ = segment_features(video, None, labels)
    rect, ell = features[1], features[2]
    assert rect[F["bbox_fill"]] == 1.0
    assert rect[F["rectangularity"]] == pytest.approx(1.0)
    assert rect[F["solidity"]] == pytest.approx(1.0)
    assert rect[F["aspect_ratio"]] == pytest.approx(8 / 3)
    assert ell[F["bbox_fill"]] == pytest.approx(12 / 16)
    assert ell[F["solidity"]] == pytest.approx(12 / 14)  # hull cuts the corner diagonally: 16 - 2
    assert ell[F["rectangularity"]] < 1.0


def test_temporal_pattern_features():
    n_frames = 24
    video = np.zeros((n_frames, 2, 6, 3), np.uint8)
    video[:, :, 2:4] = np.where(np.arange(n_frames) % 4 < 2, 255, 0)[:, None, None, None]  # period 4
    rng = np.random.default_rng(1)
    video[:, :, 4:] = rng.integers(0, 256, (n_frames, 1, 1, 3))  # arbitrary content, uniform in space
    labels = np.repeat([[0, 0, 1, 1, 2, 2]], 2, axis=0)
    features, _ = segment_features(video, None, labels)
    static, periodic, display = features
    assert static[F["delta1_ones"]] == 0 and static[F["aperiodic_change"]] == 0
    assert periodic[F["aperiodic_change"]] == 0  # the lag-4 difference vanishes
    assert periodic[F["delta1_ones"]] == 0  # 4 frames apart the colour is the same
    assert periodic[F["mean_abs_diff"]] > 100
    assert display[F["aperiodic_change"]] > 50
    assert display[F["delta1_ones"]] > 0.3


def test_mostly_invisible_segments_are_skipped():
    video = np.full((6, 2, 4, 3), 100, np.uint8)
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    visible = np.ones((6, 2, 4), bool)
    visible[:4, :, :2] = False  # segment 0: all pixels invisible in 4 of 6 frames
    visible[:4, 0, 2:] = False  # segment 1: exactly half invisible -> not "more than half"
    features, _ = segment_features(video, visible, labels)
    assert np.isnan(features[0]).all()
    assert not np.isnan(features[1]).any()
    features, _ = segment_features(video, None, np.array([[0, 0, 2, 2], [0, 0, 2, 2]]))
    assert np.isnan(features[1]).all()  # a label with no pixel


def _display_clip(rng, height=30, width=36, n_frames=24):
    """Textured static background with a rectangle of changing content; returns (video, mask)."""
    tex = rng.integers(40, 200, (height // 6 + 1, width // 6 + 1, 3)).astype(np.uint8)
    video = np.repeat(cv2.resize(tex, (width, height), interpolation=cv2.INTER_LINEAR)[None], n_frames, 0)
    h, w = int(rng.integers(8, 14)), int(rng.integers(10, 18))
    y0, x0 = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    for t in range(0, n_frames, 3):
        video[t : t + 3, y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    mask = np.zeros((height, width), bool)
    mask[y0 : y0 + h, x0 : x0 + w] = True
    return video, mask


def _synthetic_rows(rng, n):
    """An obvious case: displays change often and are rectangular, the rest do not."""
    display = rng.random(n) < 0.4
    x = rng.normal(0, 1, (n, len(FEATURE_NAMES)))
    x[:, F["delta1_ones"]] = np.where(display, rng.uniform(0.5, 1, n), rng.uniform(0, 0.2, n))
    x[:, F["rectangularity"]] = np.where(display, rng.uniform(0.9, 1, n), rng.uniform(0.2, 0.7, n))
    return x, display


def test_classifier_separates_an_obvious_case_and_cross_validates():
    rng = np.random.default_rng(2)
    x, y = _synthetic_rows(rng, 120)
    x[5] = np.nan  # a skipped segment is dropped, not an error
    model = train_display_classifier(x, y, n_estimators=50, seed=0)
    x_test, y_test = _synthetic_rows(rng, 60)
    np.testing.assert_array_equal(model.predict(x_test), y_test)
    scores = cross_validated_scores(x, y, n_splits=4, n_estimators=30)
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0 and scores["n_samples"] == 119
    groups = np.arange(120) % 6
    assert cross_validated_scores(x, y, groups=groups, n_splits=3, n_estimators=30)["recall"] == 1.0
    # noise features alone cannot be separated: the scores are not trivially 1
    noise = rng.normal(0, 1, x.shape)
    assert cross_validated_scores(noise, y, n_splits=4, n_estimators=30)["f1"] < 0.9


def test_training_is_deterministic_and_validates():
    rng = np.random.default_rng(3)
    x, y = _synthetic_rows(rng, 80)
    a = train_display_classifier(x, y, n_estimators=20, seed=7)
    b = train_display_classifier(x, y, n_estimators=20, seed=7)
    probe = rng.normal(0, 1, (30, x.shape[1]))
    np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    with pytest.raises(ValueError, match="both"):
        train_display_classifier(x, np.zeros(80, bool))
    with pytest.raises(ValueError, match="labels must have shape"):
        train_display_classifier(x, y[:-1])
    with pytest.raises(ValueError, match="0/1"):
        train_display_classifier(x, np.full(80, 2))


def test_end_to_end_mask_on_an_unseen_clip():
    rng = np.random.default_rng(4)
    rows, targets = [], []
    for _ in range(4):
        video, mask = _display_clip(rng)
        segments, _ = hierarchical_segmentation(video)
        for labels in segments:
            features, _ = segment_features(video, None, labels)
            rows.append(features)
            targets.append(segment_targets(labels, mask))
    model = train_display_classifier(np.concatenate(rows), np.concatenate(targets), n_estimators=50)
    video, mask = _display_clip(rng)
    segments, _ = hierarchical_segmentation(video)
    predicted = predict_display_mask(model, video, None, segments)
    assert predicted.shape == mask.shape and predicted.dtype == bool
    iou = (predicted & mask).sum() / (predicted | mask).sum()
    assert iou > 0.8


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    x, y = _synthetic_rows(rng, 60)
    model = train_display_classifier(x, y, n_estimators=10)
    path = tmp_path / "display.skops"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    with pytest.raises(TypeError, match="fitted RandomForestClassifier"):
        save_model({"not": "a model"}, tmp_path / "x.skops")


#: set if anything from a tampered file gets built
BUILT = []


class Payload:
    """Stands for attacker code: building it records the fact."""

    def __init__(self, *args, **kwargs):
        BUILT.append("init")

    def __setstate__(self, state):
        BUILT.append("setstate")


def _rewrite_schema(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "schema.json":
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(item, data)


def test_tampered_model_file_fails_safely(tmp_path):
    rng = np.random.default_rng(6)
    x, y = _synthetic_rows(rng, 40)
    good = tmp_path / "good.skops"
    save_model(train_display_classifier(x, y, n_estimators=3), good)

    def swap_class(node):
        if isinstance(node, dict):
            if node.get("__class__") == "RandomForestClassifier":
                node["__class__"] = "Payload"
                node["__module__"] = __name__
            for value in node.values():
                swap_class(value)
        elif isinstance(node, list):
            for value in node:
                swap_class(value)
        return node

    bad = tmp_path / "bad.skops"
    _rewrite_schema(good, bad, swap_class)
    with pytest.raises(UntrustedModelError, match=r"Payload.*tampered"):
        load_model(bad)
    assert BUILT == []

    not_a_zip = tmp_path / "junk.skops"
    not_a_zip.write_bytes(b"\x80\x04 definitely not a skops archive")
    with pytest.raises(ModelFileError, match="not a readable skops model"):
        load_model(not_a_zip)

    import skops.io as sio

    other = tmp_path / "other.skops"
    sio.dump({"weights": [1, 2, 3]}, other)
    with pytest.raises(ModelFileError, match="not a RandomForestClassifier"):
        load_model(other)


def test_segment_targets_and_polygons():
    labels = np.array([[0, 0, 1, 1], [2, 2, 1, 1]])
    mask = np.array([[True, False, True, True], [False, False, True, False]])
    np.testing.assert_array_equal(segment_targets(labels, mask), [True, True, False])
    np.testing.assert_array_equal(segment_targets(labels, mask, min_overlap=1.0), [False, False, False])
    filled = rasterise_polygons([[[1, 1], [4, 1], [4, 3], [1, 3]]], (5, 6))
    assert filled.sum() == 12 and filled[1:4, 1:5].all()
    with pytest.raises(ValueError, match="3"):
        rasterise_polygons([[[0, 0], [1, 1]]], (3, 3))


def test_annotation_schema():
    clip = AnnotatedClip.model_validate_json('{"clip": "a.mp4", "polygons": [[[0, 0], [5, 0], [5, 4]]]}')
    assert clip.polygons == [[(0.0, 0.0), (5.0, 0.0), (5.0, 4.0)]]
    assert AnnotatedClip(clip="b.mp4", mask="b.png").mask.name == "b.png"
    assert AnnotatedClip(clip="c.mp4", polygons=[]).polygons == []  # no display in this clip
    for bad in (
        {"clip": "a.mp4"},
        {"clip": "a.mp4", "mask": "m.png", "polygons": []},
        {"clip": "a.mp4", "mask": "m.png", "colour": "red"},
        {"clip": "a.mp4", "polygons": [[[0, 0], [1, 1]]]},
        {"clip": "a.mp4", "mask": "m.png", "window_size": [0, 10]},
    ):
        with pytest.raises(ValidationError):
            AnnotatedClip.model_validate(bad)
    with pytest.raises(ValidationError, match="more than once"):
        DisplayAnnotations(clips=[AnnotatedClip(clip="a.mp4", mask="m.png")] * 2)
    corpus = DisplayAnnotations(clips=[clip])
    assert DisplayAnnotations.model_validate_json(corpus.model_dump_json()) == corpus


def test_motion_features_tell_a_moving_object_from_a_screen():
    """A block sliding across a static background vs a fixed block whose content changes."""
    rng = np.random.default_rng(3)
    n_frames, height, width = 40, 64, 96
    background = cv2.resize(rng.integers(0, 256, (8, 12, 3)).astype(np.uint8), (width, height))
    video = np.repeat(background[None], n_frames, axis=0)
    walker = rng.integers(60, 200, (14, 10, 3)).astype(np.uint8)
    for t in range(n_frames):  # a textured object walking right along a lane, 1.5 px per frame
        x = 2 + int(1.5 * t)
        video[t, 6:20, x : x + 10] = walker
        if t % 6 == 0:  # the screen shows a new picture every 6 frames
            picture = cv2.resize(rng.integers(0, 256, (4, 5, 3)).astype(np.uint8), (30, 24))
        video[t, 34:58, 40:70] = picture
    labels = np.zeros((height, width), np.int64)
    labels[6:20, 2 : 2 + 10 + int(1.5 * (n_frames - 1))] = 1  # the lane the object sweeps
    labels[34:58, 40:70] = 2
    features, _ = segment_features(video, None, labels)
    static, lane, screen = features
    assert lane[F["flow_speed"]] > 2 * static[F["flow_speed"]]
    assert 0 <= min(features[:, F["flow_coherence"]]) and max(features[:, F["flow_coherence"]]) <= 1
    assert lane[F["change_travel"]] > 2 * screen[F["change_travel"]]
    assert screen[F["change_coverage"]] > 2 * lane[F["change_coverage"]]
    assert screen[F["boundary_edges"]] > lane[F["boundary_edges"]]


def test_opencvs_float_lab_converts_every_colour_alike_wherever_it_sits():
    # the display stage converts a frame at a time (and with OpenCV's pool off) and relies on
    # the same bits as one call on a whole block: every 7th of the 2**24 colours (7 is prime to
    # 256, so every value of every channel, about 2.4 million colours; all of them took 12 s
    # here), at several offsets of the SIMD lanes, and a 64th of those on the scalar path of a
    # one-pixel-wide strided column
    import cv2

    colours = np.arange(0, 2**24, 7, dtype=np.uint32)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=-1).astype(np.uint8)
    rgb = (rgb / np.float32(255.0)).astype(np.float32)
    whole = cv2.cvtColor(rgb.reshape(1, -1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3).view(np.uint32)
    for offset in (1, 6, 11):
        shifted = np.concatenate([np.full((offset, 3), 0.5, np.float32), rgb])
        lab = cv2.cvtColor(shifted.reshape(1, -1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)[offset:]
        assert np.array_equal(lab.view(np.uint32), whole), f"offset {offset}"
    wide = np.zeros((len(rgb[::64]), 5, 3), np.float32)
    wide[:, 0] = rgb[::64]
    column = cv2.cvtColor(wide[:, :1], cv2.COLOR_RGB2Lab)[:, 0]
    assert np.array_equal(column.view(np.uint32), whole[::64])
