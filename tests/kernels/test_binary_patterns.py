"""Temporal binary patterns and masked Hamming distance against the naive references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.binary_patterns import (
    delta1_gamma,
    delta_fraction,
    descriptor_layout,
    hamming_distance,
    region_descriptor,
    temporal_descriptors,
)
from tests.kernels.naive_segmentation import (
    naive_descriptor,
    naive_fraction,
    naive_hamming,
    naive_n_delta1,
    naive_pairs,
    unpack,
)


def _video(rng, n_frames, height, width, levels=(0, 40, 90, 200, 255)):
    """Colours drawn from a few levels so that both small and large changes occur."""
    return rng.choice(np.array(levels, np.uint8), size=(n_frames, height, width, 3))


def _check_against_naive(video, visible, theta):
    bits, valid, n_bits = temporal_descriptors(video, visible, theta)
    n_frames, height, width = video.shape[:3]
    assert n_bits == len(naive_pairs(n_frames))
    assert bits.shape == valid.shape == (height, width, max(1, -(-n_bits // 64)))
    assert bits.dtype == valid.dtype == np.uint64
    vis = np.ones(video.shape[:3], bool) if visible is None else visible
    for y in range(height):
        for x in range(width):
            want_bits, want_valid = naive_descriptor(video[:, y, x], vis[:, y, x], theta)
            assert unpack(bits[y, x], n_bits) == want_bits
            assert unpack(valid[y, x], n_bits) == want_valid
            # nothing is set beyond the last meaningful bit
            assert unpack(bits[y, x], 64 * bits.shape[2])[n_bits:] == [0] * (64 * bits.shape[2] - n_bits)
            assert unpack(valid[y, x], 64 * bits.shape[2])[n_bits:] == [0] * (64 * bits.shape[2] - n_bits)


@pytest.mark.parametrize("n_frames", [1, 2, 3, 4, 5, 7, 8, 9, 12, 17, 33])
def test_descriptors_match_naive_bit_by_bit(n_frames):
    rng = np.random.default_rng(n_frames)
    video = _video(rng, n_frames, 3, 4)
    visible = rng.random(video.shape[:3]) > 0.2
    _check_against_naive(video, visible, 100.0)
    _check_against_naive(video, None, 100.0)


def test_descriptors_span_several_words():
    rng = np.random.default_rng(1)
    video = _video(rng, 150, 2, 2)  # 37 + 38 = 75 bits: two words
    visible = rng.random(video.shape[:3]) > 0.1
    assert descriptor_layout(150) == (37, 38, 2)
    _check_against_naive(video, visible, 100.0)


@pytest.mark.parametrize("theta", [0.0, 50.0, 100.0, 300.0])
def test_descriptors_other_thresholds_and_float_input(theta):
    rng = np.random.default_rng(int(theta))
    video = _video(rng, 20, 2, 3)
    visible = rng.random(video.shape[:3]) > 0.3
    _check_against_naive(video, visible, theta)
    for got, want in zip(
        temporal_descriptors(video.astype(np.float32), visible, theta),
        temporal_descriptors(video, visible, theta),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


def test_threshold_is_strict():
    video = np.zeros((8, 1, 1, 3), np.uint8)
    video[4:, 0, 0, 0] = 100  # distance exactly theta: no change
    bits, valid, _ = temporal_descriptors(video, theta=100.0)
    assert int(bits[0, 0, 0]) == 0 and int(valid[0, 0, 0]) == 0b111
    bits, _, _ = temporal_descriptors(video, theta=99.9)
    assert int(bits[0, 0, 0]) == 0b111


def test_layout_matches_naive_counts():
    for n_frames in range(1, 140):
        n1, n2, n_words = descriptor_layout(n_frames)
        assert n1 == naive_n_delta1(n_frames)
        assert n1 + n2 == len(naive_pairs(n_frames))
        assert n_words == max(1, -(-(n1 + n2) // 64))


def test_edge_cases_constant_and_invisible_and_one_frame():
    video = np.full((10, 2, 2, 3), 77, np.uint8)
    bits, valid, n_bits = temporal_descriptors(video)
    assert n_bits == 2 + 3
    assert np.all(bits == 0)
    assert np.all(valid == (1 << n_bits) - 1)
    bits, valid, _ = temporal_descriptors(video, np.zeros((10, 2, 2), bool))
    assert np.all(bits == 0) and np.all(valid == 0)
    assert hamming_distance(bits[0, 0], valid[0, 0], bits[0, 1], valid[0, 1]) == 1.0
    bits, valid, n_bits = temporal_descriptors(video[:1])
    assert n_bits == 0 and bits.shape == (2, 2, 1) and np.all(valid == 0)


def test_region_descriptor_of_one_pixel_equals_pixel_descriptor():
    rng = np.random.default_rng(3)
    video = _video(rng, 23, 2, 2)
    visible = rng.random(video.shape[:3]) > 0.25
    bits, valid, n_bits = temporal_descriptors(video, visible)
    for y in range(2):
        for x in range(2):
            rb, rv, rn = region_descriptor(video[:, y, x].astype(float), visible[:, y, x].astype(float))
            assert rn == n_bits
            np.testing.assert_array_equal(rb, bits[y, x])
            np.testing.assert_array_equal(rv, valid[y, x])


def test_region_descriptor_of_a_mean_colour_matches_naive():
    rng = np.random.default_rng(4)
    colour = rng.uniform(0, 255, (31, 3))
    frac = rng.uniform(0, 1, 31)
    frac[rng.random(31) < 0.3] = 0.0
    colour[frac == 0] = np.nan  # ignored where nothing is visible
    bits, valid, n_bits = region_descriptor(colour, frac, theta=80.0)
    want_bits, want_valid = naive_descriptor(np.nan_to_num(colour), frac > 0, 80.0)
    assert unpack(bits, n_bits) == want_bits
    assert unpack(valid, n_bits) == want_valid


def _random_words(rng, shape):
    return rng.integers(0, 2**63, size=shape, dtype=np.uint64) | (
        rng.integers(0, 2, size=shape, dtype=np.uint64) << np.uint64(63)
    )


def test_hamming_matches_naive_with_masks():
    rng = np.random.default_rng(5)
    for n_words in (1, 2, 3):
        a, b = _random_words(rng, (50, n_words)), _random_words(rng, (50, n_words))
        va, vb = _random_words(rng, (50, n_words)), _random_words(rng, (50, n_words))
        va[0] = 0  # row without any common bit
        got = hamming_distance(a, va, b, vb)
        assert got.shape == (50,)
        n = 64 * n_words
        for p in range(50):
            want = naive_hamming(unpack(a[p], n), unpack(va[p], n), unpack(b[p], n), unpack(vb[p], n))
            assert got[p] == pytest.approx(want, abs=1e-15)
            assert hamming_distance(a[p], va[p], b[p], vb[p]) == pytest.approx(want, abs=1e-15)
        assert got[0] == 1.0


def test_hamming_ignores_bits_invalid_in_either():
    a = np.array([0b1111], np.uint64)
    b = np.array([0b0000], np.uint64)
    va = np.array([0b0011], np.uint64)
    vb = np.array([0b0110], np.uint64)
    assert hamming_distance(a, va, b, vb) == 1.0  # only bit 1 is common, and it differs
    assert hamming_distance(a, va, a, vb) == 0.0
    assert hamming_distance(a, va, b, vb) == hamming_distance(b, vb, a, va)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4),
    st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4),
)
def test_hamming_property_against_naive(words_a, words_b):
    a = np.array(words_a[:2], np.uint64)
    va = np.array(words_a[2:], np.uint64)
    b = np.array(words_b[:2], np.uint64)
    vb = np.array(words_b[2:], np.uint64)
    want = naive_hamming(unpack(a, 128), unpack(va, 128), unpack(b, 128), unpack(vb, 128))
    assert hamming_distance(a, va, b, vb) == pytest.approx(want, abs=1e-15)


def test_fractions_match_naive():
    rng = np.random.default_rng(6)
    for n_frames in (1, 4, 5, 9, 40, 150):
        video = _video(rng, n_frames, 3, 3)
        visible = rng.random(video.shape[:3]) > 0.3
        bits, valid, n_bits = temporal_descriptors(video, visible)
        n1, _, _ = descriptor_layout(n_frames)
        gamma = delta1_gamma(bits, valid, n_frames)
        second = delta_fraction(bits, valid, n_frames, delta=2)
        assert gamma.shape == second.shape == (3, 3)
        for y in range(3):
            for x in range(3):
                b, v = unpack(bits[y, x], n_bits), unpack(valid[y, x], n_bits)
                assert gamma[y, x] == pytest.approx(naive_fraction(b, v, 0, n1), abs=1e-15)
                assert second[y, x] == pytest.approx(naive_fraction(b, v, n1, n_bits), abs=1e-15)
        assert isinstance(delta1_gamma(bits[0, 0], valid[0, 0], n_frames), float)


def test_validation_errors():
    video = np.zeros((8, 2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        temporal_descriptors(video[..., :2])
    with pytest.raises(TypeError, match="uint8 or float"):
        temporal_descriptors(video.astype(np.int16))
    with pytest.raises(TypeError, match="bool"):
        temporal_descriptors(video, np.ones((8, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="visible must have shape"):
        temporal_descriptors(video, np.ones((8, 2, 3), bool))
    with pytest.raises(ValueError, match="theta"):
        temporal_descriptors(video, theta=-1.0)
    with pytest.raises(ValueError, match="finite"):
        temporal_descriptors(np.full((8, 1, 1, 3), np.nan))
    words = np.zeros(1, np.uint64)
    with pytest.raises(TypeError, match="uint64"):
        hamming_distance(words.astype(np.int64), words, words, words)
    with pytest.raises(ValueError, match="share one shape"):
        hamming_distance(words, words, np.zeros(2, np.uint64), np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match="words"):
        delta1_gamma(np.zeros(2, np.uint64), np.zeros(2, np.uint64), 8)
    with pytest.raises(ValueError, match="delta"):
        delta_fraction(words, words, 8, delta=3)
    with pytest.raises(ValueError, match="visible_frac"):
        region_descriptor(np.zeros((8, 3)), np.full(8, 2.0))
    with pytest.raises(ValueError, match="n_frames"):
        descriptor_layout(0)
