"""Synthetic display clips: the truth they claim is what they render."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from schemas.annotations import DisplayAnnotations
from tasks.synthetic_displays import (
    DISPLAY_KINDS,
    PHOTO_NAMES,
    make_display_clip,
    photo,
    write_training_set,
)


@pytest.fixture(scope="module")
def clip():
    return make_display_clip(seed=11, n_frames=40, n_displays=3, n_walkers=2, n_foliage=1, n_blinkers=1)


def test_photos_come_from_the_installed_wheel():
    for name in PHOTO_NAMES:
        img = photo(name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
        assert min(img.shape[:2]) >= 256 and img.std() > 10  # a real picture, not a placeholder
    with pytest.raises(ValueError, match="unknown photo"):
        photo("lena")


def test_same_seed_same_clip_other_seed_other_layout(clip):
    again = make_display_clip(seed=11, n_frames=40, n_displays=3, n_walkers=2, n_foliage=1, n_blinkers=1)
    np.testing.assert_array_equal(again.frames, clip.frames)
    other = make_display_clip(seed=12, n_frames=40, n_displays=3, n_walkers=2, n_foliage=1, n_blinkers=1)
    assert not np.array_equal(other.display_mask, clip.display_mask)


def test_masks_are_the_display_rectangles(clip):
    assert clip.frames.shape == (40, 180, 320, 3) and clip.frames.dtype == np.uint8
    assert 1 <= len(clip.displays) == len(clip.display_masks) <= 3
    total = np.zeros(clip.display_mask.shape, int)
    for d, m in zip(clip.displays, clip.display_masks, strict=True):
        y0, x0, h, w = d.rect
        assert d.kind in DISPLAY_KINDS
        assert m.sum() == h * w and m[y0 : y0 + h, x0 : x0 + w].all()
        total += m
    assert total.max() == 1  # displays never overlap
    assert not (clip.display_mask & clip.distractor_mask).any()


def test_displays_change_and_the_static_facade_only_shows_noise(clip):
    frames = clip.frames.astype(np.float64)
    step = np.abs(np.diff(frames, axis=0)).mean(axis=3)  # (T-1, H, W)
    for d, m in zip(clip.displays, clip.display_masks, strict=True):
        changes = (step[:, m] > 20).mean(axis=1)  # fraction of the display changing per frame step
        assert changes.max() > 0.3, f"{d.kind} display never changes much"
    static = clip.static_mask
    assert static.mean() > 0.3
    # noise of 2 levels: the per-pixel temporal std outside displays and distractors stays near it
    std = frames.std(axis=0).mean(axis=2)
    assert np.median(std[static]) < 3.0
    assert np.percentile(std[static], 99.9) < 6.0
    # the distractors do move
    assert std[clip.distractor_mask].max() > 30


def test_each_kind_renders_and_text_or_photo_content_is_textured():
    for kind in DISPLAY_KINDS:
        c = make_display_clip(seed=3, n_frames=24, kinds=(kind,), n_displays=1, noise=0.0)
        assert [d.kind for d in c.displays] == [kind]
        y0, x0, h, w = c.displays[0].rect
        patch = c.frames[:, y0 : y0 + h, x0 : x0 + w].astype(np.float64)
        # spatial texture inside the screen (a photo or letters), not a flat colour
        assert patch.std(axis=(1, 2)).mean() > 8, kind


def test_jitter_moves_the_whole_frame_and_is_off_by_default():
    still = make_display_clip(seed=5, n_frames=12, noise=0.0, n_walkers=0, n_foliage=0, n_blinkers=0)
    shaky = make_display_clip(
        seed=5, n_frames=12, noise=0.0, n_walkers=0, n_foliage=0, n_blinkers=0, jitter=1.5
    )
    static = still.static_mask
    assert np.abs(np.diff(still.frames.astype(int), axis=0))[:, static].max() == 0
    assert np.abs(np.diff(shaky.frames.astype(int), axis=0))[:, static].mean() > 2


def test_written_clip_decodes_to_the_frames(tmp_path):
    c = make_display_clip(tmp_path / "d.mp4", height=64, width=96, n_frames=10, seed=2, crf=0)
    with av.open(str(c.path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 10 and decoded[0].shape == (64, 96, 3)
    # crf 0 in yuv420p: only chroma subsampling separates the decoded frames from the rendered ones
    assert np.abs(np.asarray(decoded, np.int16) - c.frames).mean() < 6


def test_training_set_files(tmp_path):
    path = write_training_set(tmp_path, 2, seed=7, height=64, width=96, n_frames=12)
    spec = DisplayAnnotations.model_validate_json(path.read_text())
    assert len(spec.clips) == 2
    for i, entry in enumerate(spec.clips):
        assert (tmp_path / entry.clip).is_file() and entry.window_size == (96, 64)
        mask = cv2.imread(str(tmp_path / entry.mask), cv2.IMREAD_GRAYSCALE) > 0
        expected = make_display_clip(
            height=64, width=96, n_frames=12, seed=7 + i, kinds=(None, ("slideshow",))[i], noise=(2.0, 1.0)[i]
        ).display_mask
        np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"height": 20}, "at least 32x32"),
        ({"n_frames": 1}, "n_frames"),
        ({"kinds": ("hologram",)}, "kinds"),
        ({"kinds": ()}, "kinds"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_display_clip(**kwargs)
