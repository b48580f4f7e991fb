"""The motion-compensated change kernel against its naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.cyclic_veto import motion_compensated_change
from tests.kernels.naive_cyclic_veto import naive_motion_compensated_change


def _case(rng, h, w, n_labels, flow_scale):
    a = rng.uniform(0, 255, (h, w))
    b = rng.uniform(0, 255, (h, w))
    flow = rng.normal(0, flow_scale, (h, w, 2))
    labels = rng.integers(0, n_labels + 1, (h, w))
    valid = rng.random((h, w)) > 0.2
    return a, b, flow, labels, valid


@pytest.mark.parametrize("seed", range(6))
def test_matches_naive_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    h, w, n = int(rng.integers(1, 9)), int(rng.integers(1, 11)), int(rng.integers(1, 5))
    # flows up to several frame sizes: clamping at the borders is exercised
    args = _case(rng, h, w, n, flow_scale=float(rng.choice([0.3, 2.0, 20.0])))
    got = motion_compensated_change(*args, n)
    want = naive_motion_compensated_change(*args, n)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_two_way_pass_matches_naive_both_ways(seed):
    rng = np.random.default_rng(100 + seed)
    h, w, n = int(rng.integers(1, 9)), int(rng.integers(1, 11)), int(rng.integers(1, 5))
    a, b, flow, labels, valid = _case(rng, h, w, n, flow_scale=float(rng.choice([0.3, 2.0, 20.0])))
    reverse_flow = rng.normal(0, 3.0, (h, w, 2))
    static, later, earlier = motion_compensated_change(a, b, flow, labels, valid, n, reverse_flow=reverse_flow)
    want_static, want_later = naive_motion_compensated_change(a, b, flow, labels, valid, n)
    back_static, want_earlier = naive_motion_compensated_change(b, a, reverse_flow, labels, valid, n)
    np.testing.assert_allclose(static, want_static, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(static, back_static, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(later, want_later, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(earlier, want_earlier, rtol=1e-12, atol=1e-9)


def test_edge_cases():
    a = np.arange(12.0).reshape(3, 4)
    b = a + 5
    zero = np.zeros((3, 4, 2))
    labels = np.ones((3, 4), np.int64)
    # no valid pixel, or no labelled pixel: zero sums; a label with no pixel: zero
    s, c = motion_compensated_change(a, b, zero, labels, np.zeros((3, 4), bool), 1)
    assert s.tolist() == [0.0] and c.tolist() == [0.0]
    s, c = motion_compensated_change(a, b, zero, 0 * labels, np.ones((3, 4), bool), 2)
    assert s.tolist() == [0.0, 0.0]
    # zero flow: compensated equals static; a uniform brightness change is not explained by any shift
    s, c = motion_compensated_change(a, b, zero, labels, np.ones((3, 4), bool), 1)
    assert s[0] == c[0] == 60.0
    # a pure shift by one column is fully explained by the matching flow (inside the frame)
    b = np.roll(a, 1, axis=1)
    flow = np.zeros((3, 4, 2))
    flow[..., 0] = -1
    inner = np.zeros((3, 4), bool)
    inner[:, 1:] = True
    s, c = motion_compensated_change(a, b, flow, labels, inner, 1)
    assert s[0] > 0 and c[0] == 0.0
    # one pixel frames
    s, c = motion_compensated_change(np.ones((1, 1)), np.full((1, 1), 3.0), np.full((1, 1, 2), 7.0),
                                     np.ones((1, 1), np.int64), np.ones((1, 1), bool), 1)
    assert s[0] == c[0] == 2.0


def test_bad_input_is_refused():
    a = np.zeros((3, 4))
    ok = (a, a, np.zeros((3, 4, 2)), np.ones((3, 4), np.int64), np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="one shape"):
        motion_compensated_change(a, np.zeros((3, 5)), *ok[2:], 1)
    with pytest.raises(ValueError, match="flow"):
        motion_compensated_change(a, a, np.zeros((3, 4)), *ok[3:], 1)
    with pytest.raises(ValueError, match="labels"):
        motion_compensated_change(*ok, 0)
    with pytest.raises(ValueError, match="finite"):
        motion_compensated_change(a, a, np.full((3, 4, 2), np.nan), *ok[3:], 1)
    with pytest.raises(ValueError, match="reverse_flow"):
        motion_compensated_change(*ok, 1, reverse_flow=np.zeros((3, 5, 2)))
    with pytest.raises(ValueError, match="finite"):
        motion_compensated_change(*ok, 1, reverse_flow=np.full((3, 4, 2), np.inf))
