"""GIF fidelity: a palette for the animated content, frozen pixels identical, changed rectangles, the error
reported -- on small made-up loops and on the demo clip through the real stages."""

import numpy as np
import pytest
import xarray as xr
from PIL import Image, ImageSequence

from schemas import names as N
from schemas.config import CyclicityParams, IngestParams, RenderParams, WindowParams
from tasks.cyclicity import find_cyclic_regions
from tasks.encode import (
    _changed_pixels,
    _cluster_colours,
    _colour_keys,
    _distinct,
    _nearest_colours,
    encode_outputs,
    write_gif,
)
from tasks.ingest import ingest
from tasks.render import render_loop
from tasks.window import select_window


def decode(path):
    with Image.open(path) as gif:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])


def nearest_by_scan(palette, pixels):
    """Reference: the squared distance from each pixel to its nearest palette colour, by trying them all."""
    d = ((pixels[:, None, :].astype(np.int64) - palette[None, :, :].astype(np.int64)) ** 2).sum(axis=2)
    return d.min(axis=1)


@pytest.mark.parametrize("n_palette, n_pixels, seed", [(1, 50, 0), (7, 1, 1), (255, 3000, 2), (256, 2000, 3)])
def test_nearest_colours_is_a_nearest_colour(n_palette, n_pixels, seed):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (n_palette, 3), dtype=np.uint8)
    pixels = np.concatenate([
        rng.integers(0, 256, (n_pixels, 3), dtype=np.uint8),
        palette[rng.integers(0, n_palette, 20)],  # exact palette colours
        np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]], np.uint8),  # the corners of the cube
    ])
    pixels = np.concatenate([pixels, pixels[::-1]])  # every colour at least twice
    idx = _nearest_colours(palette, pixels)
    assert idx.dtype == np.uint8 and idx.shape == (len(pixels),)
    assert (idx < n_palette).all()
    chosen = ((pixels.astype(np.int64) - palette[idx].astype(np.int64)) ** 2).sum(axis=1)
    np.testing.assert_array_equal(chosen, nearest_by_scan(palette, pixels))
    # the same colour always gets the same index
    keys = _colour_keys(pixels)
    for k in np.unique(keys)[:50]:
        assert len(set(idx[keys == k].tolist())) == 1


def test_nearest_colours_refuses_more_than_256_colours():
    with pytest.raises(ValueError, match="at most 256"):
        _nearest_colours(np.zeros((257, 3), np.uint8), np.zeros((4, 3), np.uint8))


@pytest.mark.parametrize("seed, n", [(0, 1), (1, 500), (2, 40000)])
def test_distinct_colours_are_numpys_unique_rows(seed, n):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    pixels[: n // 2] = pixels[n // 2 : 2 * (n // 2)]  # repeats
    keys = _distinct(_colour_keys(pixels))
    rgb = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    np.testing.assert_array_equal(rgb, np.unique(pixels, axis=0))
    # fewer distinct colours than asked for: exactly those colours, in numpy's order
    np.testing.assert_array_equal(_cluster_colours(pixels, len(rgb)), np.unique(pixels, axis=0).astype(float))


@pytest.mark.parametrize("shape, seed", [((1, 4, 5, 3), 0), ((7, 9, 11, 3), 1), ((30, 16, 16, 3), 2)])
def test_changed_pixels_against_a_whole_array_comparison(shape, seed):
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 256, shape[1:], dtype=np.uint8)[None], shape[0], axis=0)
    if shape[0] > 1:  # a few single-channel changes in single frames, and the last frame's corner
        for _ in range(5):
            t, y, x, c = (int(rng.integers(1, s)) if i == 0 else int(rng.integers(0, s)) for i, s in enumerate(shape))
            frames[t, y, x, c] ^= 1
        frames[-1, -1, -1, 2] ^= 128
    expected = (frames != frames[:1]).any(axis=(0, 3))
    np.testing.assert_array_equal(_changed_pixels(frames), expected)
    assert _changed_pixels(frames).sum() == expected.sum() and (expected.sum() > 0) == (shape[0] > 1)


def small_loop(seed=0):
    """A textured wall (many colours) with two small lights, yellow and pink, blinking."""
    rng = np.random.default_rng(seed)
    wall = rng.integers(40, 110, size=(60, 90, 3)).astype(np.uint8)
    frames = np.repeat(wall[None], 24, axis=0)
    animated = np.zeros((60, 90), bool)
    b = 0.1 + 0.9 * (0.5 + 0.5 * np.cos(2 * np.pi * np.arange(24) / 8)) ** 2
    for (y, x), colour in [((15, 20), (252, 227, 138)), ((40, 70), (237, 159, 149))]:
        animated[y - 5 : y + 5, x - 5 : x + 5] = True
        frames[:, y - 5 : y + 5, x - 5 : x + 5] = (np.outer(b, colour)[:, None, None, :]).astype(np.uint8)
    return frames, animated


def test_gif_keeps_lit_colours_and_frozen_pixels(tmp_path):
    frames, animated = small_loop()
    stats = write_gif(tmp_path / "a.gif", frames, 24.0, None, animated)
    out = decode(stats.path)
    assert out.shape == frames.shape
    err = np.abs(out.astype(int) - frames)
    # the error write_gif reports is the decoded file's
    assert stats.mean_abs_error == pytest.approx(err[:, animated].mean(), abs=1e-6)
    assert stats.mean_abs_error <= 4
    # the lit yellow and pink stay yellow and pink (not a shared tan)
    lit = 0  # brightness 1 at t = 0
    assert np.abs(out[lit, 15, 20].astype(int) - (252, 227, 138)).max() <= 8
    assert np.abs(out[lit, 40, 70].astype(int) - (237, 159, 149)).max() <= 8
    # frozen pixels are identical in every frame
    assert (out[:, ~animated] == out[:1, ~animated]).all()


def test_frames_after_the_first_are_small_rectangles(tmp_path):
    frames, animated = small_loop()
    path = write_gif(tmp_path / "a.gif", frames, 24.0, None, animated).path
    with Image.open(path) as gif:
        boxes = []
        for k in range(1, gif.n_frames):
            gif.seek(k)
            boxes.append(gif.dispose_extent)
    ys = np.flatnonzero(animated.any(axis=1))
    xs = np.flatnonzero(animated.any(axis=0))
    for x0, y0, x1, y1 in boxes:  # inside the animated part's bounding box
        assert y0 >= ys[0] and y1 <= ys[-1] + 1 and x0 >= xs[0] and x1 <= xs[-1] + 1
    # the whole frame would be about 60 x 90 x 24 bytes before compression; the file is far smaller
    assert path.stat().st_size < 0.5 * frames[..., 0].size


def test_gif_without_animation(tmp_path):
    frames = np.repeat(np.random.default_rng(1).integers(0, 255, (1, 20, 30, 3), dtype=np.uint8), 4, axis=0)
    stats = write_gif(tmp_path / "still.gif", frames, 10.0, None, np.zeros((20, 30), bool))
    assert stats.mean_abs_error is None
    out = decode(stats.path)
    assert (out == out[:1]).all()


@pytest.fixture(scope="module")
def demo_outputs(tmp_path_factory, blinking_clip):
    """The demo clip (three blinking lights) through ingest, window, cyclicity, render and encode."""
    out = tmp_path_factory.mktemp("encode")
    store = str(out / "store.zarr")
    ingest(blinking_clip.path, store, IngestParams())
    select_window(store, WindowParams())
    find_cyclic_regions(store, CyclicityParams())
    render_loop(store, RenderParams(), CyclicityParams())
    return store, out, encode_outputs(store, str(out), RenderParams())


def test_demo_gif_error_within_four_levels(demo_outputs):
    store, out, result = demo_outputs
    ds = xr.open_zarr(store, consolidated=False)
    loop = ds[N.LOOP].values
    animated = ds[N.ANIMATED_MASK].values
    gif = decode(result.gif)
    assert gif.shape == loop.shape
    err = np.abs(gif.astype(int) - loop)[:, animated]
    assert err.mean() <= 4.0, f"GIF error {err.mean():.2f} levels inside the animated mask"
    assert result.gif_mean_abs_error == pytest.approx(err.mean(), abs=1e-3)
    assert result.gif_max_abs_error == err.max()
    assert result.gif_bytes == (out / N.GIF_NAME).stat().st_size and result.mp4_bytes > 0
