"""One-pass segment reductions against the naive per-pixel loops."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.segment_statistics import pixel_statistics, segment_frame_sums, segment_row_extents
from tests.kernels.naive_segmentation import naive_pixel_statistics, naive_segment_frame_sums


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
