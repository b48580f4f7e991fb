"""Inputs of the still-image flow: images, masks and directions, good and bad."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tasks.still.image import (
    StillImageError,
    is_image_path,
    parse_direction,
    read_image,
    read_mask,
    validate_inputs,
)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_bad_inputs_name_the_file(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image\n" * 20)
    with pytest.raises(StillImageError, match=r"notes\.png: not an image"):
        validate_inputs(text)
    with pytest.raises(StillImageError, match="file not found"):
        validate_inputs(tmp_path / "missing.jpg")
    img = _png(tmp_path / "img.png", np.zeros((40, 50, 3), np.uint8))
    empty = _png(tmp_path / "empty.png", np.zeros((40, 50), np.uint8))
    with pytest.raises(StillImageError, match=r"empty\.png: mask is empty"):
        validate_inputs(img, empty)
    other = _png(tmp_path / "other.png", np.full((30, 50), 255, np.uint8))
    with pytest.raises(StillImageError, match=r"other\.png: mask is 50x30 pixels but the image is 50x40"):
        validate_inputs(img, other)
    tiny = _png(tmp_path / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(StillImageError, match="too small"):
        validate_inputs(tiny)


def test_downscale_and_mask_follow(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    img = _png(tmp_path / "big.png", rgb)
    m = np.zeros((300, 400), np.uint8)
    m[100:200, 100:300] = 255
    mask = _png(tmp_path / "mask.png", m)
    image, source = read_image(img, max_long_side=200)
    assert source == (300, 400) and image.shape == (150, 200, 3)
    small = read_mask(mask, source, image.shape[:2])
    assert small.shape == (150, 200) and small.sum() == pytest.approx(50 * 100, rel=0.05)
    full, _ = read_image(img, max_long_side=None)
    np.testing.assert_array_equal(full, rgb)


def test_directions_and_suffixes():
    assert parse_direction("1, -2") == (1.0, -2.0)
    for bad in ("1", "a,b", "0,0", "1,2,3"):
        with pytest.raises(ValueError, match="direction"):
            parse_direction(bad)
    assert is_image_path("x/Photo.JPG") and is_image_path("a.webp") and not is_image_path("clip.mp4")
