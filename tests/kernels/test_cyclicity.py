import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.cyclicity import dft_cyclicity, min_interval_length
from tests.kernels.naive_cyclicity import naive_cyclicity


def assert_matches_reference(signals, tau=4, min_length=None, rtol=1e-7):
    score, interval, amp = dft_cyclicity(signals, tau=tau, min_length=min_length)
    ref_score, ref_interval, ref_amp, tables = naive_cyclicity(signals, tau=tau, min_length=min_length)
    np.testing.assert_allclose(score, ref_score, rtol=1e-5, atol=1e-6)
    for p, table in enumerate(tables):
        i, j = map(int, interval[p])
        assert (i, j) in table, f"kernel interval {(i, j)} is not a searched interval"
        # the kernel's interval scores the maximum (ties and near-ties may pick another interval)
        np.testing.assert_allclose(table[(i, j)], ref_score[p], rtol=1e-5, atol=1e-6)
        ranked = sorted(table.values(), reverse=True)
        if len(ranked) == 1 or ranked[0] - ranked[1] > 1e-6 * max(1.0, ranked[0]):
            assert (i, j) == tuple(ref_interval[p])
            np.testing.assert_allclose(amp[p], ref_amp[p], rtol=1e-5, atol=1e-6)
    return score, interval, amp


@pytest.mark.parametrize("n", [10, 13, 32, 57])
def test_random_signals_match_naive(n):
    rng = np.random.default_rng(n)
    assert_matches_reference(rng.uniform(0, 255, size=(7, n)))


def test_long_signals_match_naive():
    # N = 100 and N = 200: the sizes the pipeline uses; few rows to keep the FFT reference quick
    rng = np.random.default_rng(1)
    for n in (100, 200):
        t = np.arange(n)
        rows = np.stack(
            [
                rng.normal(100, 20, n),
                128 + 90 * np.sin(2 * np.pi * t / 7.3) + rng.normal(0, 5, n),
            ]
        )
        assert_matches_reference(rows)


@pytest.mark.parametrize("period", [3, 5, 8, 11])
def test_periodic_signal_is_cyclic_with_whole_periods(period):
    n = 100
    t = np.arange(n)
    x = 128 + 100 * np.cos(2 * np.pi * t / period)
    score, interval, amp = assert_matches_reference(x[None, :])
    assert score[0] > 1e3
    assert (interval[0, 1] - interval[0, 0]) % period == 0
    assert amp[0] == pytest.approx(100, rel=1e-6)


def test_constant_and_slow_signals_are_not_cyclic():
    n = 60
    t = np.arange(n)
    rows = np.stack([np.full(n, 200.0), 50 + 2.0 * t, 128 + 60 * np.sin(2 * np.pi * t / 60)])
    score, interval, _ = assert_matches_reference(rows)
    assert score[0] == 0.0
    assert tuple(interval[0]) == (0, min_interval_length(n))
    assert np.all(score[1:] < 1.0)


def test_minimum_length_and_tau_options():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, size=(4, 24))
    assert_matches_reference(x, tau=2, min_length=20)
    assert_matches_reference(x, tau=4, min_length=10)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=10, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    levels=st.sampled_from([2, 5, 256]),
)
def test_property_matches_naive(n, seed, levels):
    # few distinct levels produce exact ties between intervals
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, size=(3, n)).astype(np.float64) * (255 / max(levels - 1, 1))
    assert_matches_reference(x)


def test_dtypes_give_same_result():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(5, 30)).astype(np.uint8)
    a = dft_cyclicity(x)
    b = dft_cyclicity(x.astype(np.float32))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(20), "2-D"),
        (np.zeros((2, 9)), "at least 10"),
        (np.full((2, 20), np.nan), "NaN"),
        (np.zeros((2, 20), complex), "real"),
    ],
)
def test_bad_input_is_refused(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        dft_cyclicity(bad)


def test_bad_parameters_are_refused():
    x = np.zeros((2, 20))
    with pytest.raises(ValueError, match="tau"):
        dft_cyclicity(x, tau=0)
    with pytest.raises(ValueError, match="min_length"):
        dft_cyclicity(x, min_length=21)
    with pytest.raises(ValueError, match="eps"):
        dft_cyclicity(x, eps=0)
