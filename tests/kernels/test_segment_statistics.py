"""One-pass segment reductions against the naive per-pixel loops."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.segment_statistics import (
    change_map,
    flow_channels,
    level_change_sums,
    level_frame_sums,
    pixel_statistics,
    segment_frame_sums,
    segment_row_extents,
)
from tests.kernels.naive_segmentation import (
    naive_change_map,
    naive_flow_channels,
    naive_level_change_sums,
    naive_pixel_statistics,
    naive_segment_frame_sums,
)


@pytest.mark.parametrize("seed", range(3))
def test_pixel_statistics_match_naive(seed):
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (5, 3, 4, 3)).astype(np.uint8)
    video[:, 0, 0] = 0  # black: saturation 0
    visible = rng.random((5, 3, 4)) > 0.3
    lab = rng.normal(size=(5, 3, 4, 3))
    np.testing.assert_allclose(pixel_statistics(video, visible, lab), naive_pixel_statistics(video, visible, lab))
    previous = rng.integers(0, 256, (3, 4, 3)).astype(np.uint8)
    previous_visible = rng.random((3, 4)) > 0.3
    np.testing.assert_allclose(
        pixel_statistics(video, visible, lab, previous, previous_visible),
        naive_pixel_statistics(video, visible, lab, previous, previous_visible),
    )
    # two blocks with the frame before the second add up to the whole window
    whole = pixel_statistics(video, visible, lab)
    parts = pixel_statistics(video[:2], visible[:2], lab[:2]) + pixel_statistics(
        video[2:], visible[2:], lab[2:], video[1], visible[1]
    )
    np.testing.assert_allclose(parts, whole)
    # accumulated in place: bit for bit the sum of the separate blocks' arrays
    first = pixel_statistics(video[:2], visible[:2], lab[:2])
    second = pixel_statistics(video[2:], visible[2:], lab[2:], video[1], visible[1])
    total = pixel_statistics(video[:2], visible[:2], lab[:2])
    assert pixel_statistics(video[2:], visible[2:], lab[2:], video[1], visible[1], out=total) is total
    np.testing.assert_array_equal(total, first + second)
    with pytest.raises(ValueError, match="out must be"):
        pixel_statistics(video, visible, lab, out=np.zeros((3, 17)))


def test_segment_frame_sums_and_row_extents_match_naive():
    rng = np.random.default_rng(5)
    video = rng.random((4, 5, 6, 3)) * 255
    visible = rng.random((4, 5, 6)) > 0.2
    labels = rng.integers(0, 4, (5, 6))
    sums, counts = segment_frame_sums(video, visible, labels, 5)  # label 4 has no pixel
    naive_sums, naive_counts = naive_segment_frame_sums(video, visible, labels, 5)
    np.testing.assert_allclose(sums, naive_sums)
    np.testing.assert_array_equal(counts, naive_counts)
    first, last = segment_row_extents(labels, 5)
    for k in range(5):
        for y in range(5):
            xs = np.flatnonzero(labels[y] == k)
            assert (first[k, y], last[k, y]) == ((xs[0], xs[-1]) if xs.size else (-1, -1))
    with pytest.raises(ValueError, match="labels must be in"):
        segment_row_extents(labels, 3)
    with pytest.raises(ValueError, match="lab must have shape"):
        pixel_statistics(video, visible, np.zeros((1, 5, 6, 3)))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_level_sums_match_the_per_level_naive_sums(dtype):
    rng = np.random.default_rng(7)
    values = (rng.random((6, 5, 7, 3)) * 255).astype(dtype)
    valid = rng.random((6, 5, 7)) > 0.25
    segments = np.stack([rng.integers(0, 9, (5, 7)), rng.integers(0, 3, (5, 7)), np.zeros((5, 7), int)])
    segments[1, 0, 0] = 4  # a label above all others: level 1 has 5 rows, label 3 without pixels
    segments[1][segments[1] == 3] = 2
    got = level_frame_sums(values, valid, segments)
    changed = rng.random((6, 5, 7)) > 0.5
    moved = level_change_sums(changed, valid, segments)
    assert len(got) == len(moved) == 3
    for level, labels in enumerate(segments):
        n = int(labels.max()) + 1
        sums, counts = segment_frame_sums(values, valid, labels, n)
        np.testing.assert_array_equal(got[level][0], sums)  # same summation order: same bits
        np.testing.assert_array_equal(got[level][1], counts)
        naive_sums, naive_counts = naive_segment_frame_sums(values, valid, labels, n)
        np.testing.assert_allclose(got[level][0], naive_sums)
        np.testing.assert_array_equal(got[level][1], naive_counts)
        np.testing.assert_array_equal(moved[level], naive_level_change_sums(changed, valid, labels, n))
    # long runs of one segment along the rows (the kernel sums a run in registers), and two channels
    blocks = np.stack([np.arange(35).reshape(5, 7) // 3, np.arange(35).reshape(5, 7) // 11])
    for channels in (values, values[..., :2]):
        got = level_frame_sums(channels, valid, blocks)
        for level, labels in enumerate(blocks):
            # the naive sums add in the same (raster) order, so they are the same bits
            sums, counts = naive_segment_frame_sums(channels, valid, labels, int(labels.max()) + 1)
            np.testing.assert_array_equal(got[level][0], sums)
            np.testing.assert_array_equal(got[level][1], counts)
    with pytest.raises(ValueError, match="segments must have shape"):
        level_frame_sums(values, valid, segments[0])
    with pytest.raises(ValueError, match="changed and valid"):
        level_change_sums(changed.astype(np.uint8), valid, segments)


def test_change_map_matches_numpy_mean_of_float32_differences():
    rng = np.random.default_rng(8)
    before = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    after = np.clip(before.astype(int) + rng.integers(-60, 61, before.shape), 0, 255).astype(np.uint8)
    after[0, :3] = before[0, :3] + np.array([25, 25, 25], np.uint8) * (before[0, :3] < 200)  # mean exactly 25
    for level in (0.0, 10.0, 25.0, 40.0):
        expected = naive_change_map(before, after, level)
        np.testing.assert_array_equal(change_map(before, after, level), expected)
        assert expected.any() and not expected.all() or level == 0.0
    with pytest.raises(ValueError, match="one shape"):
        change_map(before, after[:, :3], 25.0)


def test_flow_channels_are_numpys_bits():
    rng = np.random.default_rng(12)
    flow = (rng.standard_normal((7, 9, 2)) * 0.6).astype(np.float32)
    flow[0, 0] = (0.3, 0.4)  # speed exactly 0.5 at scale 1: not moving
    flow[0, 1] = (np.nan, 1.0)
    flow[0, 2] = (np.inf, 0.0)
    flow[0, 3] = (-0.0, -2.0)
    flow[1, 0] = (3e38, 3e38)  # the square overflows to inf in float32
    for scale, speed in ((1.0, 0.5), (0.5 * 640 / 321, 0.5), (2.0, 0.0), (1.0, 1e9)):
        with np.errstate(over="ignore", invalid="ignore"):  # the inf and NaN cases above
            expected = naive_flow_channels(flow, scale, speed)
        assert expected.dtype == np.float32
        got = flow_channels(flow, scale, speed)
        assert got.tobytes() == expected.tobytes()  # bit for bit, NaN and -0.0 included
        out = np.full((7, 9, 3), 9.0, np.float32)
        assert flow_channels(flow, scale, speed, out=out) is out and out.tobytes() == expected.tobytes()
    for shape in ((1, 1, 2), (1, 5, 2), (4, 1, 2)):
        tiny = rng.standard_normal(shape).astype(np.float32)
        assert flow_channels(tiny, 1.5, 0.5).tobytes() == naive_flow_channels(tiny, 1.5, 0.5).tobytes()
    with pytest.raises(ValueError, match="float32 of shape"):
        flow_channels(flow.astype(np.float64), 1.0, 0.5)
    with pytest.raises(ValueError, match="out must be"):
        flow_channels(flow, 1.0, 0.5, out=np.empty((7, 9, 2), np.float32))


def test_written_zeros_are_zeros_whose_pages_fault_once_when_added_into():
    import resource
    from pathlib import Path

    import numpy as np

    from kernels.segment_statistics import written_zeros
    from tasks.threads import numpy_page_advice

    small = written_zeros((3, 5), np.int32)
    assert small.shape == (3, 5) and small.dtype == np.int32 and small.flags.c_contiguous and small.flags.writeable
    assert not small.any()
    default = written_zeros(4)
    assert default.dtype == np.float64 and not default.any() and not np.signbit(default).any()  # +0.0

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.is_file() and "[always]" in thp.read_text():
        pytest.skip("transparent huge pages are always on here: page faults are not counted per 4 KiB page")
    n = 8 * 2**20  # 64 MiB of float64: above glibc's largest mmap threshold, so always fresh pages
    pages = n * 8 // 4096

    def faults_of(make):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        array = make()
        array += 1.0  # reads every page, then writes it
        assert array[0] == 1.0 and array[-1] == 1.0
        faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
        del array
        return faults

    with numpy_page_advice(False):
        written = faults_of(lambda: written_zeros(n))
        lazily = faults_of(lambda: np.zeros(n))
    assert written <= 1.2 * pages, (written, pages)
    # the cost it avoids: np.zeros' pages are mapped to the zero page when first read, and copied when written
    assert lazily >= 1.8 * pages, (lazily, pages)
