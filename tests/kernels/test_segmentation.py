"""Hierarchical segmentation against the naive O(n^2) greedy merge, plus its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from kernels import segmentation
from kernels.segmentation import hierarchical_segmentation, lab_histogram_bins, srgb_to_lab
from tests.kernels.naive_segmentation import (
    naive_alike_blocks,
    naive_bins,
    naive_close_blocks,
    naive_hierarchy,
    naive_lab,
    naive_names_and_labels,
    naive_region_distance,
    naive_segment_frame_sums,
    tiled_from_pixels,
)


def _all_levels(video, visible=None, **kwargs):
    """Every level of the kernel's hierarchy, by asking for fractions (i + 1) / L."""
    levels, thresholds = naive_hierarchy(
        video,
        visible,
        theta=kwargs.get("theta", 100.0),
        start=kwargs.get("start_threshold", 0.2),
        growth=kwargs.get("growth", 1.5),
        colour_weight=kwargs.get("colour_weight", 0.1),
    )
    n_levels = len(levels)
    keep = tuple((i + 1) / n_levels for i in range(n_levels))
    got, got_thresholds = hierarchical_segmentation(video, visible, keep_levels=keep, **kwargs)
    return (got, got_thresholds), (levels, thresholds)


def _patterned_video(rng, n_frames, height, width, n_patterns=3, noise=30):
    """Pixels following one of a few colour sequences, plus noise: merges happen at several levels."""
    patterns = rng.integers(0, 256, size=(n_patterns, n_frames, 3))
    which = rng.integers(0, n_patterns, size=(height, width))
    video = patterns[which].transpose(2, 0, 1, 3) + rng.integers(
        -noise, noise + 1, (n_frames, height, width, 3)
    )
    return np.clip(video, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_matches_naive_hierarchy_random(seed):
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(5, 14))
    video = _patterned_video(rng, n_frames, 4, 5, noise=int(rng.integers(0, 60)))
    visible = rng.random(video.shape[:3]) > 0.15 if seed % 2 else None
    (got, got_thr), (want, want_thr) = _all_levels(video, visible)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_thr, want_thr)


@pytest.mark.parametrize("colour_weight", [0.0, 1.0])
def test_matches_naive_other_weights_and_growth(colour_weight):
    rng = np.random.default_rng(10)
    video = _patterned_video(rng, 9, 4, 5, n_patterns=4, noise=20)
    visible = rng.random(video.shape[:3]) > 0.1
    kwargs = {"colour_weight": colour_weight, "growth": 2.0, "start_threshold": 0.05, "theta": 60.0}
    (got, got_thr), (want, want_thr) = _all_levels(video, visible, **kwargs)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_thr, want_thr)


def test_matches_naive_with_exact_ties():
    # Two flat halves and identical pixels: many pairs at exactly the same distance,
    # so the merge order depends on the documented tie-break.
    video = np.zeros((8, 4, 5, 3), np.uint8)
    video[:, :, 3:] = 120
    video[4:, :2, :] = 255
    (got, got_thr), (want, want_thr) = _all_levels(video)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_thr, want_thr)


def test_random_noise_matches_naive():
    rng = np.random.default_rng(11)
    video = rng.integers(0, 256, size=(6, 3, 4, 3)).astype(np.uint8)
    (got, _), (want, _) = _all_levels(video)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(3))
def test_smallest_buffers_exercise_compaction_and_rebuild(monkeypatch, seed):
    # The spare room of the heap / pending buffers only changes the speed: without any
    # (3 n + 1 records for n regions) they compact and rebuild most often, same hierarchy.
    rng = np.random.default_rng(30 + seed)
    video = _patterned_video(rng, 7, 8, 9, n_patterns=4, noise=int(rng.integers(5, 50)))
    visible = rng.random(video.shape[:3]) > 0.1
    (default, default_thr), (want, want_thr) = _all_levels(video, visible)
    np.testing.assert_array_equal(default, want)
    np.testing.assert_array_equal(default_thr, want_thr)
    monkeypatch.setattr(segmentation, "_SPARE_RECORDS", 0)
    (small, small_thr), _ = _all_levels(video, visible)
    np.testing.assert_array_equal(small, want)
    np.testing.assert_array_equal(small_thr, want_thr)
    # a larger image fills the heap many times over (cases where a heap rebuild
    # that forgot to re-heapify changes the result)
    big_seed, n_patterns, noise = [(0, 6, 60), (5, 3, 100), (3, 6, 60)][seed]
    video = _patterned_video(np.random.default_rng(big_seed), 8, 16, 20, n_patterns=n_patterns, noise=noise)
    keep = (0.2, 0.4, 0.6, 0.8, 1.0)
    small, small_thr = hierarchical_segmentation(video, keep_levels=keep)
    monkeypatch.undo()
    default, default_thr = hierarchical_segmentation(video, keep_levels=keep)
    np.testing.assert_array_equal(small, default)
    np.testing.assert_array_equal(small_thr, default_thr)


def test_float_video_gives_same_segments_as_uint8():
    rng = np.random.default_rng(12)
    video = _patterned_video(rng, 10, 6, 7)
    visible = rng.random(video.shape[:3]) > 0.2
    a, ta = hierarchical_segmentation(video, visible)
    b, tb = hierarchical_segmentation(video.astype(np.float64), visible)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)
    c, _ = hierarchical_segmentation(video, np.ones(video.shape[:3], bool))
    d, _ = hierarchical_segmentation(video, None)
    np.testing.assert_array_equal(c, d)


def test_output_invariants_on_a_larger_image():
    rng = np.random.default_rng(13)
    video = _patterned_video(rng, 16, 24, 30, n_patterns=5, noise=40)
    segments, thresholds = hierarchical_segmentation(video, keep_levels=(0.3, 0.6, 0.7, 0.8, 1.0))
    assert segments.shape == (5, 24, 30) and segments.dtype == np.int32
    assert np.all(np.diff(thresholds) >= 0)
    for level in segments:
        labels = np.unique(level)
        np.testing.assert_array_equal(labels, np.arange(labels.size))  # 0 .. K-1
        # numbered in raster order of each region's first pixel
        _, first = np.unique(level.ravel(), return_index=True)
        assert np.all(np.diff(first) > 0)
        for k in labels:  # every region is 4-connected
            _, n_parts = ndimage.label(level == k)
            assert n_parts == 1
    for finer, coarser in zip(segments[:-1], segments[1:], strict=True):
        # nested: each finer region lies inside one coarser region
        for k in np.unique(finer):
            assert np.unique(coarser[finer == k]).size == 1
    assert np.all(segments[-1] == 0)  # the last level is one region


def test_a_changing_rectangle_is_its_own_segment():
    rng = np.random.default_rng(14)
    video = np.repeat(rng.integers(60, 120, size=(1, 20, 24, 3)), 24, axis=0).astype(np.uint8)
    for t in range(0, 24, 4):
        video[t : t + 4, 5:12, 6:16] = rng.integers(0, 256, size=3)  # a display flipping colours
    segments, _ = hierarchical_segmentation(video, keep_levels=(0.6,))
    inside = segments[0, 5:12, 6:16]
    assert np.unique(inside).size == 1
    assert not np.isin(np.delete(segments[0].ravel(), np.flatnonzero(_rect_mask())), inside[0, 0]).any()


def _rect_mask():
    mask = np.zeros((20, 24), bool)
    mask[5:12, 6:16] = True
    return mask


def test_constant_video_is_one_region_from_the_first_level():
    video = np.full((6, 5, 4, 3), 90, np.uint8)
    segments, thresholds = hierarchical_segmentation(video, keep_levels=(0.01, 1.0))
    assert np.all(segments == 0)
    assert thresholds[0] == 0.2


def test_all_invisible_merges_only_when_threshold_exceeds_one_plus_weight():
    # No valid bit (D_T = 1) and empty histograms (D_A = 1): D = 1.1 everywhere.
    video = np.random.default_rng(15).integers(0, 256, (9, 3, 4, 3)).astype(np.uint8)
    visible = np.zeros((9, 3, 4), bool)
    keep = tuple((i + 1) / 6 for i in range(6))
    segments, thresholds = hierarchical_segmentation(video, visible, keep_levels=keep)
    np.testing.assert_allclose(thresholds, 0.2 * 1.5 ** np.arange(6))
    for level, threshold in zip(segments, thresholds, strict=True):
        n_regions = np.unique(level).size
        assert n_regions == (1 if threshold > 1.1 else 12)


@pytest.mark.parametrize("n_frames", [1, 2, 3, 7])
def test_few_frames_match_naive(n_frames):
    rng = np.random.default_rng(20 + n_frames)
    video = _patterned_video(rng, n_frames, 3, 4, noise=10)
    (got, got_thr), (want, want_thr) = _all_levels(video)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_thr, want_thr)


def test_single_pixel_and_single_row():
    video = np.zeros((5, 1, 1, 3), np.uint8)
    segments, thresholds = hierarchical_segmentation(video)
    assert segments.shape == (3, 1, 1) and np.all(segments == 0)
    rng = np.random.default_rng(16)
    row = _patterned_video(rng, 8, 1, 7)
    (got, _), (want, _) = _all_levels(row)
    np.testing.assert_array_equal(got, want)


def test_keep_level_selection():
    video = _patterned_video(np.random.default_rng(17), 8, 4, 5)
    levels, thresholds = naive_hierarchy(video)
    n_levels = len(levels)
    segments, got_thr = hierarchical_segmentation(video)  # default (0.6, 0.7, 0.8)
    for i, q in enumerate((0.6, 0.7, 0.8)):
        level = int(np.ceil(q * n_levels - 1e-9)) - 1
        np.testing.assert_array_equal(segments[i], levels[level])
        assert got_thr[i] == thresholds[level]


def test_lab_conversion_against_skimage_and_naive():
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(18)
    rgb = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    rgb[:8] = [
        [0, 0, 0],
        [255, 255, 255],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [10, 10, 10],
        [11, 11, 11],
        [128, 64, 32],
    ]
    lab = srgb_to_lab(rgb)
    np.testing.assert_allclose(
        lab, skcolor.rgb2lab(rgb[None])[0], atol=1e-2
    )  # skimage rounds the matrix differently
    for colour, got in zip(rgb, lab, strict=True):
        assert tuple(got) == naive_lab(colour)
    bins = lab_histogram_bins(lab)
    assert bins.min() >= 0 and bins.max() <= 7
    for got, value in zip(bins, lab, strict=True):
        assert list(got) == naive_bins(value)
    np.testing.assert_allclose(srgb_to_lab(rgb.astype(np.float32)), lab, atol=1e-9)


def test_validation_errors():
    video = np.zeros((6, 3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="start_threshold"):
        hierarchical_segmentation(video, start_threshold=0.0)
    with pytest.raises(ValueError, match="growth"):
        hierarchical_segmentation(video, growth=1.0)
    with pytest.raises(ValueError, match="keep_levels"):
        hierarchical_segmentation(video, keep_levels=(0.5, 1.5))
    with pytest.raises(ValueError, match="keep_levels"):
        hierarchical_segmentation(video, keep_levels=())
    with pytest.raises(ValueError, match="colour_weight"):
        hierarchical_segmentation(video, colour_weight=-0.1)
    with pytest.raises(ValueError, match="shape"):
        hierarchical_segmentation(video[0])
    with pytest.raises(ValueError, match="visible"):
        hierarchical_segmentation(video, np.ones((6, 3, 2), bool))
    with pytest.raises(TypeError, match="uint8 or float"):
        hierarchical_segmentation(video.astype(np.int32))


# --------------------------------------------------------------------------
# starting from regions, one level at a time, and the tiled hierarchy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_initial_labels_of_the_first_level_and_merge_below_match_naive(seed):
    rng = np.random.default_rng(40 + seed)
    video = _patterned_video(rng, 9, 5, 6, n_patterns=3, noise=25)
    visible = rng.random(video.shape[:3]) > 0.15
    levels, thresholds = naive_hierarchy(video, visible, theta=60.0)
    first = segmentation.first_level_segments(video, visible, theta=60.0, threshold=0.2)
    np.testing.assert_array_equal(first, levels[0])
    keep = tuple((i + 1) / len(levels) for i in range(len(levels)))
    got, got_thresholds = hierarchical_segmentation(
        video, visible, theta=60.0, keep_levels=keep, initial_labels=first * 7 + 3
    )
    np.testing.assert_array_equal(got, levels)
    np.testing.assert_allclose(got_thresholds, thresholds)
    for i in range(1, len(levels)):  # one level from the previous one
        np.testing.assert_array_equal(
            segmentation.merge_below(video, visible, levels[i - 1], thresholds[i], theta=60.0), levels[i]
        )


@pytest.mark.parametrize("seed", range(3))
def test_tiled_hierarchy_with_one_tile_is_the_exact_one(seed):
    rng = np.random.default_rng(50 + seed)
    video = _patterned_video(rng, 10, 6, 7, n_patterns=3, noise=30)
    visible = rng.random(video.shape[:3]) > 0.1
    levels, thresholds = naive_hierarchy(video, visible, theta=60.0)
    keep = tuple((i + 1) / len(levels) for i in range(len(levels)))
    got, got_thresholds = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=8, theta=60.0, keep_levels=keep
    )
    np.testing.assert_array_equal(got, levels)
    np.testing.assert_allclose(got_thresholds, thresholds)


@pytest.mark.parametrize("tile", [2, 3, 5])
def test_tiled_levels_are_nested_connected_and_have_no_close_neighbours(tile):
    rng = np.random.default_rng(60 + tile)
    video = _patterned_video(rng, 8, 7, 9, n_patterns=3, noise=30)
    visible = rng.random(video.shape[:3]) > 0.1
    keep = (0.2, 0.4, 0.6, 0.8, 1.0)
    segments, thresholds = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=tile, theta=60.0, keep_levels=keep, map_tiles=lambda f, items: [f(i) for i in items]
    )
    for level, threshold in zip(segments, thresholds, strict=True):
        labels = np.unique(level)
        np.testing.assert_array_equal(labels, np.arange(labels.size))
        members = {k: set(zip(*np.nonzero(level == k), strict=True)) for k in labels}
        for k in labels:
            assert ndimage.label(level == k)[1] == 1
        pairs = {
            tuple(sorted((level[y, x], level[yy, xx])))
            for y in range(level.shape[0])
            for x in range(level.shape[1])
            for yy, xx in ((y, x + 1), (y + 1, x))
            if yy < level.shape[0] and xx < level.shape[1] and level[y, x] != level[yy, xx]
        }
        for a, b in pairs:  # a level is a partition in which no two neighbours are closer than its threshold
            d = naive_region_distance(video, visible, members[a], members[b], theta=60.0)
            assert d >= threshold - 1e-12
    for finer, coarser in zip(segments[:-1], segments[1:], strict=True):
        for k in np.unique(finer):
            assert np.unique(coarser[finer == k]).size == 1


@pytest.mark.parametrize(
    ("seed", "tile", "dtype", "with_visible"),
    [(0, 3, np.uint8, True), (1, 4, np.uint8, False), (2, 5, np.uint8, True), (3, 4, np.float64, True)],
)
def test_tiled_hierarchy_carrying_statistics_equals_the_one_from_pixels(seed, tile, dtype, with_visible):
    rng = np.random.default_rng(90 + seed)
    video = _patterned_video(rng, 12, 11, 13, n_patterns=4, noise=40).astype(dtype)
    visible = rng.random(video.shape[:3]) > 0.1 if with_visible else None
    keep = (0.2, 0.4, 0.6, 0.8, 1.0)
    expected, expected_thresholds = tiled_from_pixels(video, visible, tile=tile, theta=60.0, keep_levels=keep)
    got, thresholds = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=tile, theta=60.0, keep_levels=keep
    )
    assert len({int(level.max()) for level in expected}) >= 3  # the levels really merge, at several steps
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(thresholds, expected_thresholds)


def _blocky_video(rng, n_frames, height, width):
    """Patterned pixels plus a changing rectangle whose edges cut through 2x2 and 3x3 blocks."""
    video = _patterned_video(rng, n_frames, height, width, n_patterns=3, noise=30).astype(np.int64)
    video[:, :, : width // 2] = video[:1, :, : width // 2] + rng.integers(-3, 4, (n_frames, height, width // 2, 3))
    video[:, 1:6, 3:8] = rng.integers(0, 256, (n_frames, 1, 1, 3))
    return np.clip(video, 0, 255).astype(np.uint8)


def _blocky_visible(rng, shape):
    """Mostly visible: a band invisible in some frames, and a few scattered invisible samples."""
    visible = np.ones(shape, bool)
    visible[rng.random(shape[0]) > 0.6, :, -3:] = False
    visible[:, -2:, :4] = rng.random((shape[0], 2, 4)) > 0.2
    return visible


@pytest.mark.parametrize(("seed", "block", "dtype", "with_visible"), [(0, 2, np.uint8, True), (1, 3, np.uint8, False), (2, 2, np.float64, True), (3, 3, np.uint8, True)])
def test_alike_blocks_match_naive(seed, block, dtype, with_visible):
    rng = np.random.default_rng(75 + seed)
    video = _blocky_video(rng, 11, 9, 13).astype(dtype)
    visible = _blocky_visible(rng, video.shape[:3]) if with_visible else None
    if with_visible:
        visible[:, 0, :] = True
        visible[:, 0, 1] = rng.random(video.shape[0]) > 0.5  # visible in other frames than its block's first pixel
    slot, n = segmentation._block_slots(video, visible if with_visible else np.ones((1, 1, 1), bool), with_visible, block, 30.0**2)
    expected = naive_alike_blocks(video, visible, block, 30.0)
    np.testing.assert_array_equal(slot.reshape(video.shape[1:3]), expected)
    assert n == int(expected.max()) + 1
    sizes = np.bincount(expected.ravel())
    assert (sizes > 1).any() and (sizes == 1).any()  # some blocks whole, some split


def test_alike_blocks_edge_cases():
    static = np.full((6, 5, 5, 3), 90, np.uint8)
    slot, n = segmentation._block_slots(static, np.ones((1, 1, 1), bool), False, 2, 900.0)
    np.testing.assert_array_equal(slot.reshape(5, 5), naive_alike_blocks(static, None, 2, 30.0))
    assert n == 9  # 2x2, 2x1, 1x2 and 1x1 blocks at the edges, all whole
    one_frame = static[:1]
    assert segmentation._block_slots(one_frame, np.ones((1, 1, 1), bool), False, 3, 900.0)[1] == 4
    flicker = static.copy()
    flicker[1::2, :, 2:] = 200  # columns 2.. change every frame: blocks over columns 2-3 split
    slot, n = segmentation._block_slots(flicker, np.ones((1, 1, 1), bool), False, 2, 900.0)
    labels = slot.reshape(5, 5)
    np.testing.assert_array_equal(labels, naive_alike_blocks(flicker, None, 2, 30.0))
    assert labels[0, 0] == labels[1, 1] and labels[0, 2] == labels[1, 3]
    assert np.unique(labels[:2, 1:3]).size == 4 or labels[0, 1] != labels[0, 2]
    assert segmentation._block_slots(static, None, False, 1, 900.0)[1] == 25


@pytest.mark.parametrize(("seed", "block"), [(0, 2), (1, 3)])
def test_tiled_hierarchy_from_blocks_with_one_tile_is_the_exact_one_from_those_blocks(seed, block):
    rng = np.random.default_rng(70 + seed)
    video = _blocky_video(rng, 10, 7, 8)
    visible = _blocky_visible(rng, video.shape[:3])
    keep = (0.2, 0.4, 0.6, 0.8, 1.0)
    blocks = naive_alike_blocks(video, visible, block, 60.0)
    assert np.bincount(blocks.ravel()).max() > 1
    expected, expected_thresholds = hierarchical_segmentation(
        video, visible, theta=60.0, keep_levels=keep, initial_labels=blocks
    )
    got, thresholds = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=8, block=block, theta=60.0, keep_levels=keep
    )
    assert int(got[0].max()) >= 1
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(thresholds, expected_thresholds)


@pytest.mark.parametrize(("seed", "block", "with_visible"), [(0, 2, True), (1, 4, False), (2, 4, True), (3, 8, False)])
def test_tiled_hierarchy_from_close_blocks_with_one_tile_is_the_exact_one_from_those_blocks(seed, block, with_visible):
    rng = np.random.default_rng(90 + seed)
    video = _blocky_video(rng, 10, 13, 17)
    visible = _blocky_visible(rng, video.shape[:3]) if with_visible else None
    keep = (0.2, 0.4, 0.6, 0.8, 1.0)
    blocks = naive_close_blocks(video, visible, block, 60.0, 0.1, 0.2)
    sizes = np.bincount(blocks.ravel())
    assert (sizes > 1).any() and (sizes == 1).any()  # some blocks whole, some split
    assert block < 4 or sizes.max() >= 16  # blocks of blocks united too
    expected, expected_thresholds = hierarchical_segmentation(
        video, visible, theta=60.0, keep_levels=keep, initial_labels=blocks
    )
    got, thresholds = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=32, block=block, block_distance=0.2, theta=60.0, keep_levels=keep
    )
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(thresholds, expected_thresholds)


def test_close_blocks_at_distance_zero_are_single_pixels_and_at_any_distance_whole():
    rng = np.random.default_rng(95)
    video = _blocky_video(rng, 8, 10, 12)
    visible = _blocky_visible(rng, video.shape[:3])
    keep = (0.2, 0.5, 1.0)
    pixels = segmentation.tiled_hierarchical_segmentation(video, visible, tile=5, theta=60.0, keep_levels=keep)
    none_close = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=5, block=2, block_distance=0.0, theta=60.0, keep_levels=keep
    )
    np.testing.assert_array_equal(none_close[0], pixels[0])
    # every D is at most 1 + 2 x 0.1: below 1.3 all blocks (cut at the 5-pixel tiles' edges) are whole
    whole = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=5, block=2, block_distance=1.3, theta=60.0, keep_levels=(1e-9,)
    )[0][0]
    for y in range(10):
        for x in range(12):
            first = (y - (y % 5) % 2, x - (x % 5) % 2)
            assert whole[y, x] == whole[first]


def test_tiled_hierarchy_hands_over_every_level_that_may_be_kept_as_it_is_merged():
    rng = np.random.default_rng(97)
    video = _blocky_video(rng, 9, 13, 11)
    keep = (0.2, 0.5)  # of at most 6 levels: the first 3 may be kept
    seen = []
    segments, thresholds, sums = segmentation.tiled_hierarchical_segmentation(
        video, None, tile=6, block=2, block_distance=0.1, theta=60.0, keep_levels=keep, return_sums=True,
        on_level=lambda labels, level_sums: seen.append((labels.copy(), level_sums)),
    )
    assert 1 <= len(seen) <= 3
    for level, (labels, level_sums) in enumerate(seen):
        assert labels.dtype == np.int32 and labels.shape == video.shape[1:3]
        want_sums, want_counts = naive_segment_frame_sums(video, np.ones(video.shape[:3], bool), labels, int(labels.max()) + 1)
        np.testing.assert_array_equal(level_sums[0], want_sums)
        np.testing.assert_array_equal(level_sums[1], want_counts)
        if level:  # nested and coarser
            assert int(labels.max()) <= int(seen[level - 1][0].max())
    # every kept level was handed over, with the sums it is returned with
    for kept, (kept_sums, kept_counts) in zip(segments, sums, strict=True):
        match = [s for labels, s in seen if np.array_equal(labels, kept)]
        assert match
        np.testing.assert_array_equal(match[0][0], kept_sums)
        np.testing.assert_array_equal(match[0][1], kept_counts)


@pytest.mark.parametrize(
    ("tile", "block", "dtype", "close"),
    [(4, 2, np.uint8, None), (5, 2, np.float64, None), (6, 4, np.uint8, None), (5, 2, np.uint8, 0.1), (6, 4, np.uint8, 0.2)],
)
def test_tiled_hierarchy_from_blocks_keeps_alike_blocks_whole_and_returns_the_level_sums(tile, block, dtype, close):
    rng = np.random.default_rng(80 + tile)
    video = _blocky_video(rng, 9, 13, 11).astype(dtype)
    visible = _blocky_visible(rng, video.shape[:3])
    keep = (0.2, 0.5, 1.0)
    segments, thresholds, sums = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=tile, block=block, block_distance=close, theta=60.0, keep_levels=keep, return_sums=True
    )
    plain, plain_thresholds = segmentation.tiled_hierarchical_segmentation(
        video, visible, tile=tile, block=block, block_distance=close, theta=60.0, keep_levels=keep
    )
    np.testing.assert_array_equal(segments, plain)
    np.testing.assert_array_equal(thresholds, plain_thresholds)
    # every alike block of every tile lies in one region of every level
    n_whole = 0
    for y in range(0, 13, tile):
        for x in range(0, 11, tile):
            crop = (slice(None), slice(y, y + tile), slice(x, x + tile))
            if close is None:
                blocks = naive_alike_blocks(video[crop], visible[crop], block, 60.0)
            else:
                blocks = naive_close_blocks(video[crop], visible[crop], block, 60.0, 0.1, close)
            for k in np.unique(blocks):
                inside = blocks == k
                n_whole += int(inside.sum() > 1)
                for level in segments:
                    assert np.unique(level[y : y + tile, x : x + tile][inside]).size == 1
    assert n_whole > 0
    expected = [naive_segment_frame_sums(video, visible, level, int(level.max()) + 1) for level in segments]
    assert len(sums) == len(segments)
    for (got_sums, got_counts), (want_sums, want_counts) in zip(sums, expected, strict=True):
        assert got_sums.dtype == np.float64 and got_counts.dtype == np.int64
        np.testing.assert_array_equal(got_sums, want_sums)
        np.testing.assert_array_equal(got_counts, want_counts)


def test_initial_labels_and_tiles_are_validated():
    video = np.zeros((4, 3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="4-connected"):
        hierarchical_segmentation(video, initial_labels=np.array([[0, 1, 0], [1, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="initial_labels must have shape"):
        hierarchical_segmentation(video, initial_labels=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="tile must be"):
        segmentation.tiled_hierarchical_segmentation(video, tile=1)
    with pytest.raises(ValueError, match="block must be"):
        segmentation.tiled_hierarchical_segmentation(video, tile=2, block=0)
    with pytest.raises(ValueError, match="lab_codes must be"):
        hierarchical_segmentation(video, lab_codes=np.zeros((4, 3, 3), np.int32))


def test_lab_bin_codes_pack_the_histogram_bins():
    rng = np.random.default_rng(70)
    video = rng.integers(0, 256, (3, 4, 5, 3)).astype(np.uint8)
    bins = lab_histogram_bins(srgb_to_lab(video))
    expected = bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2]
    np.testing.assert_array_equal(segmentation.lab_bin_codes(video), expected)
    big = rng.integers(0, 256, (20, 240, 240, 3)).astype(np.uint8)  # through the colour memo
    bins = lab_histogram_bins(srgb_to_lab(big[:2]))
    np.testing.assert_array_equal(segmentation.lab_bin_codes(big)[:2], bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2])


@pytest.mark.parametrize("holes", [False, True])
def test_region_statistics_of_single_pixels_are_written_once_with_the_same_numbers(holes):
    # single pixels (the tiles' first level) take the written-once path; an extra empty row
    # sends the same pixels through the zero-then-add path; both are the naive sums
    rng = np.random.default_rng(73)
    video = rng.integers(0, 256, (9, 5, 7, 3)).astype(np.uint8)
    visible = rng.random((9, 5, 7)) > (0.3 if holes else -1.0)
    codes = segmentation.lab_bin_codes(video)
    slot = np.arange(35, dtype=np.int64)
    once = segmentation._region_statistics(video, visible, holes, codes, slot, 35)
    added = segmentation._region_statistics(video, visible, holes, codes, slot, 36)
    sums, counts = naive_segment_frame_sums(video, visible, slot.reshape(5, 7), 35)
    bins = np.stack([c.ravel() for c in (codes // 64, 8 + (codes // 8) % 8, 16 + codes % 8)], 1).reshape(9, 35, 3)
    hist = np.zeros((35, 24), np.int64)
    for t, p, j in zip(*np.nonzero(np.ones((9, 35, 3), bool)), strict=True):
        hist[p, bins[t, p, j]] += visible.reshape(9, 35)[t, p]
    for got in (once, tuple(a[:35] for a in added)):
        np.testing.assert_array_equal(got[0], sums)
        np.testing.assert_array_equal(got[1], counts)
        np.testing.assert_array_equal(got[2], hist)


def test_lab_bin_codes_fill_blocks_of_frames_in_place():
    # the display stage fills one array block by block from threads: the same codes as one call
    rng = np.random.default_rng(72)
    video = rng.integers(0, 256, (7, 5, 6, 3)).astype(np.uint8)
    out = np.full(video.shape[:3], -7, np.int16)
    assert segmentation.lab_bin_codes(video[:3], out=out[:3]) is not None
    segmentation.lab_bin_codes(video[3:], out=out[3:])
    np.testing.assert_array_equal(out, segmentation.lab_bin_codes(video))
    for bad in (np.zeros((7, 5, 6), np.int32), np.zeros((6, 5, 6), np.int16), [[0]]):
        with pytest.raises(ValueError, match="out must be"):
            segmentation.lab_bin_codes(video, out=bad)


def test_tiled_segmentation_converts_each_tiles_colours_itself_with_the_same_result():
    # uint8 video without lab_codes: every tile converts its own samples (one shared memo)
    rng = np.random.default_rng(75)
    video = rng.integers(0, 256, (10, 13, 11, 3)).astype(np.uint8)
    video[:, :6] = video[0, :6]  # a still part, whose colours repeat
    visible = rng.random(video.shape[:3]) > 0.1
    options = dict(tile=4, theta=30.0, keep_levels=(0.3, 0.6, 1.0))
    given = segmentation.tiled_hierarchical_segmentation(
        video, visible, lab_codes=segmentation.lab_bin_codes(video), return_sums=True, **options
    )
    own = segmentation.tiled_hierarchical_segmentation(video, visible, return_sums=True, **options)
    np.testing.assert_array_equal(own[0], given[0])
    np.testing.assert_array_equal(own[1], given[1])
    for (a, b), (c, d) in zip(own[2], given[2], strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_holds_two_labels_says_whether_a_tile_has_anything_to_merge():
    rng = np.random.default_rng(76)
    labels = rng.integers(0, 3, (9, 11)).astype(np.int32)
    labels[:4, :5] = 2
    for y0, y1, x0, x1 in ((0, 4, 0, 5), (0, 1, 0, 1), (0, 9, 0, 11), (3, 5, 4, 6), (2, 4, 1, 5), (5, 9, 5, 11)):
        window = labels[y0:y1, x0:x1]
        expected = len({int(v) for v in window.ravel()}) > 1  # the naive answer
        assert segmentation._holds_two_labels(window) == expected
        assert segmentation._holds_two_labels(np.ascontiguousarray(window)) == expected


def test_names_and_labels_of_roots_are_numpys_unique_and_the_naive_ones():
    # the merge's roots are pixel indices: ranking them in two passes replaces np.unique's sort
    rng = np.random.default_rng(74)
    cases = [np.zeros(1, np.int64), np.arange(9), np.full(7, 6), np.array([3, 3, 0, 3, 0, 5, 5, 0])]
    for size in (2, 17, 300):
        parent = np.minimum(np.arange(size), rng.integers(0, size, size))  # roots below or at the pixel
        cases.append(parent)
        cases.append(rng.integers(0, size, size))  # any indices in range
        cases.append(rng.integers(size - 2, size, size))  # two high ones
    for roots in cases:
        names, labels = segmentation._names_and_labels(roots)
        expected_names, expected_labels = np.unique(roots, return_inverse=True)
        np.testing.assert_array_equal(names, expected_names)
        np.testing.assert_array_equal(labels, expected_labels.reshape(-1))
        assert names.dtype == np.int64 and labels.dtype == np.int64
        naive_names, naive_labels = naive_names_and_labels(roots.tolist())
        assert names.tolist() == naive_names and labels.tolist() == naive_labels
    names, labels = segmentation._names_and_labels(np.zeros(0, np.int64))
    assert names.size == 0 and labels.size == 0
    for bad in (np.array([0, 2]), np.array([-1, 0])):
        with pytest.raises(ValueError, match="roots must be"):
            segmentation._names_and_labels(bad)


def test_lab_bin_codes_share_a_colour_memo_between_calls():
    # the display stage converts blocks of frames on threads with one memo: each colour once
    rng = np.random.default_rng(73)
    video = rng.integers(0, 256, (6, 5, 7, 3)).astype(np.uint8)
    video[3:] = video[:3]  # the second half repeats the first half's colours
    bins = lab_histogram_bins(srgb_to_lab(video))
    expected = bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2]
    memo = np.full(2**24, -1, np.int16)
    first = segmentation.lab_bin_codes(video[:3], memo=memo)
    np.testing.assert_array_equal(first, expected[:3])
    colours = (video[..., 0].astype(np.int64) << 16) | (video[..., 1].astype(np.int64) << 8) | video[..., 2]
    np.testing.assert_array_equal(memo[colours[:3]], expected[:3])
    assert int((memo >= 0).sum()) == np.unique(colours[:3]).size
    # a memo entry is trusted: a planted wrong code shows that the second call reads it
    planted = memo.copy()
    planted[colours[3, 0, 0]] = 511
    second = segmentation.lab_bin_codes(video[3:], memo=planted)
    assert second[0, 0, 0] == 511
    np.testing.assert_array_equal(segmentation.lab_bin_codes(video[3:], memo=memo), expected[3:])
    # float video has no memo; a wrong memo is refused
    np.testing.assert_array_equal(segmentation.lab_bin_codes(video.astype(np.float64), memo=memo), expected)
    for bad in (np.full(2**24, -1, np.int32), np.full(10, -1, np.int16), [[0]]):
        with pytest.raises(ValueError, match="memo must be"):
            segmentation.lab_bin_codes(video, memo=bad)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_lab_bin_codes_of_samples_repeating_the_frame_before(dtype):
    # a pixel whose colour repeats the frame before reuses that code: half of the pixels hold
    # still, some change channel by channel only, the rest are fresh colours
    rng = np.random.default_rng(71)
    video = rng.integers(0, 256, (6, 8, 9, 3)).astype(dtype)
    still = rng.random((8, 9)) < 0.5
    for t in range(1, 6):
        video[t, still] = video[t - 1, still]
    video[3, :2, :, 1] = video[2, :2, :, 1] + 1  # one channel differs
    bins = lab_histogram_bins(srgb_to_lab(video))
    np.testing.assert_array_equal(segmentation.lab_bin_codes(video), bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2])


def test_all_visible_is_the_same_as_no_visibility():
    rng = np.random.default_rng(98)
    video = _blocky_video(rng, 8, 12, 14)
    everywhere = np.ones(video.shape[:3], bool)
    keep = (0.2, 0.5, 1.0)
    for run in (
        lambda v: hierarchical_segmentation(video, v, theta=60.0, keep_levels=keep),
        lambda v: segmentation.tiled_hierarchical_segmentation(
            video, v, tile=5, block=2, block_distance=0.1, theta=60.0, keep_levels=keep, return_sums=True
        ),
    ):
        with_mask, without = run(everywhere), run(None)
        np.testing.assert_array_equal(with_mask[0], without[0])
        np.testing.assert_array_equal(with_mask[1], without[1])
    # the kernels skip the mask only when every sample is visible
    almost = everywhere.copy()
    almost[3, 5, 7] = False

    def has_visible(visible):
        return segmentation._check_options(video, visible, 60.0, 0.2, 1.5, keep, 0.1, None).has_visible

    assert not has_visible(everywhere) and not has_visible(None) and has_visible(almost)
