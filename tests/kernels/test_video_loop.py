import math

import numpy as np
import pytest

from kernels.video_loop import (
    LoopPrefix,
    lag_differences,
    loop_pair_cost,
    loop_prefix_sums,
    period_shifts,
    render_time_map,
    spatial_attenuation,
    spatial_cost,
    spatial_costs,
    temporal_attenuation,
    temporal_cost,
    temporal_cost_labels,
    time_map,
)
from tests.kernels.naive_video_loop import (
    naive_phi,
    naive_psi,
    naive_psi_all_pairs,
    naive_render,
    naive_temporal,
)


def random_feat(rng, n=2, t=13, c=3):
    return rng.random((n, t, c)).astype(np.float32)


# ---------------------------------------------------------------- time map


def test_time_map_matches_definition_for_negative_and_large_t():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = int(rng.integers(1, 9))
        s = int(rng.integers(0, 20))
        t = int(rng.integers(-40, 40))
        phi = int(time_map(p, s, t))
        assert phi == naive_phi(p, s, t)
        assert s <= phi < s + p
        assert (phi - t) % p == 0


def test_time_map_rejects_non_positive_period():
    with pytest.raises(ValueError):
        time_map(0, 3, 1)


# ---------------------------------------------------------------- temporal term


def test_temporal_cost_equals_reference_for_every_loop():
    rng = np.random.default_rng(1)
    feat = random_feat(rng, n=3, t=11, c=2)
    weight = rng.random(3) + 0.1
    for p in range(1, 11):
        starts = np.arange(0, 11 - p + 1)
        got = temporal_cost(feat, weight, p, starts)
        want = np.array([[naive_temporal(feat[i], weight[i], p, s) for s in starts] for i in range(3)])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_temporal_cost_is_zero_exactly_at_multiples_of_a_periodic_signal():
    t = np.arange(40)
    sig = np.sin(2 * np.pi * t / 8).astype(np.float32).reshape(1, 40, 1)
    starts = np.arange(0, 40 - 24 + 1)
    assert temporal_cost(sig, np.ones(1), 24, starts).max() < 1e-10
    assert temporal_cost(sig, np.ones(1), 20, np.arange(0, 21)).min() > 0.1


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"period": 0}, ValueError),
        ({"period": 12}, ValueError),  # T = 12
        ({"starts": np.array([5])}, ValueError),  # 5 > T - p = 4 for p = 8
        ({"starts": np.array([-1])}, ValueError),
        ({"weight": np.ones(3)}, ValueError),
        ({"weight": -np.ones(2)}, ValueError),
    ],
)
def test_temporal_cost_validates(kwargs, err):
    rng = np.random.default_rng(2)
    args = {"feat": random_feat(rng, t=12), "weight": np.ones(2), "period": 8, "starts": np.array([0])}
    args.update(kwargs)
    with pytest.raises(err):
        temporal_cost(**args)


def test_features_must_be_finite_floats():
    with pytest.raises(TypeError):
        temporal_cost(np.zeros((1, 5, 1), np.int32), np.ones(1), 2, np.array([0]))
    bad = np.zeros((1, 5, 1), np.float32)
    bad[0, 2, 0] = np.nan
    with pytest.raises(ValueError):
        loop_prefix_sums(bad, [2])
    with pytest.raises(ValueError):
        loop_prefix_sums(np.zeros((5, 1), np.float32), [2])


# ---------------------------------------------------------------- prefix sums


def test_prefix_sums_equal_cumulative_sums():
    rng = np.random.default_rng(3)
    feat = random_feat(rng, n=3, t=10, c=2)
    pre = loop_prefix_sums(feat, [3, 4])
    f64 = feat.astype(np.float64)
    np.testing.assert_allclose(pre.p1[:, 1:], np.cumsum(f64, axis=1), rtol=1e-12)
    np.testing.assert_allclose(pre.p2[:, 1:], np.cumsum((f64**2).sum(axis=2), axis=1), rtol=1e-12)
    assert period_shifts([3, 4], 10).tolist() == [3, 4, 6, 8, 9]
    for m in (3, 4, 6, 8, 9):
        d = np.zeros((3, 10))
        d[:, : 10 - m] = ((f64[:, : 10 - m] - f64[:, m:]) ** 2).sum(axis=2)
        np.testing.assert_allclose(pre.q[pre.slot[m], :, 1:], np.cumsum(d, axis=1), rtol=1e-12, atol=1e-12)
    assert pre.slot[5] == -1 and pre.slot[2] == -1


# ---------------------------------------------------------------- spatial term


def _all_loops(t_len, periods):
    for p in periods:
        for s in range(0, t_len - p + 1):
            yield p, s


def test_spatial_cost_equals_frame_by_frame_sum_for_static_and_equal_periods():
    """Cases 1-3 of Liao et al.: exact, for every pair of starts (including gaps of several periods)."""
    rng = np.random.default_rng(4)
    t_len = 17
    feat = random_feat(rng, n=2, t=t_len, c=3)
    pre = loop_prefix_sums(feat, [3, 5])
    checked = 0
    for px, sx in _all_loops(t_len, [1, 3, 5]):
        for pz, sz in _all_loops(t_len, [1, 3, 5]):
            if px != pz and px > 1 and pz > 1:
                continue
            got = spatial_cost(pre, 0, 1, px, sx, pz, sz)
            want = naive_psi(feat[0], feat[1], px, sx, pz, sz)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (px, sx, pz, sz)
            checked += 1
    assert checked > 500


def test_spatial_cost_equals_frame_by_frame_sum_over_the_lcm_for_coprime_periods():
    rng = np.random.default_rng(5)
    t_len = 15
    feat = random_feat(rng, n=2, t=t_len, c=2)
    pre = loop_prefix_sums(feat, [3, 4, 5])
    for px, pz in [(3, 4), (4, 5), (5, 3)]:
        for sx in range(0, t_len - px + 1, 2):
            for sz in range(0, t_len - pz + 1, 3):
                got = spatial_cost(pre, 0, 1, px, sx, pz, sz)
                assert got == pytest.approx(naive_psi(feat[0], feat[1], px, sx, pz, sz), rel=1e-9)


def test_spatial_cost_of_non_coprime_periods_is_the_all_pairs_mean():
    rng = np.random.default_rng(6)
    t_len = 16
    feat = random_feat(rng, n=2, t=t_len, c=3)
    pre = loop_prefix_sums(feat, [4, 6])
    for sx in range(0, t_len - 4 + 1):
        for sz in range(0, t_len - 6 + 1):
            got = spatial_cost(pre, 0, 1, 4, sx, 6, sz)
            assert got == pytest.approx(naive_psi_all_pairs(feat[0], feat[1], 4, sx, 6, sz), rel=1e-9)


def test_spatial_cost_is_symmetric_and_zero_for_identical_loops():
    rng = np.random.default_rng(7)
    feat = random_feat(rng, n=2, t=12, c=3)
    pre = loop_prefix_sums(feat, [2, 3])
    for px, sx in _all_loops(12, [1, 2, 3]):
        assert spatial_cost(pre, 0, 1, px, sx, px, sx) == 0.0
        for pz, sz in _all_loops(12, [1, 2, 3]):
            a = spatial_cost(pre, 0, 1, px, sx, pz, sz)
            b = spatial_cost(pre, 1, 0, pz, sz, px, sx)
            assert a == pytest.approx(b, rel=1e-12, abs=1e-14)
            assert a >= 0


def test_spatial_costs_vectorised_equals_scalar():
    rng = np.random.default_rng(8)
    n, t_len = 6, 14
    feat = random_feat(rng, n=n, t=t_len, c=2)
    periods = [1, 3, 4]
    pre = loop_prefix_sums(feat, periods)
    period = rng.choice(periods, size=n)
    start = np.array([rng.integers(0, t_len - p + 1) for p in period])
    ep = np.array([0, 1, 2, 3, 4, 0])
    eq = np.array([1, 2, 3, 4, 5, 5])
    got = spatial_costs(pre, period, start, ep, eq)
    want = [
        spatial_cost(pre, a, b, period[a], start[a], period[b], start[b]) for a, b in zip(ep, eq, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_spatial_cost_validates():
    rng = np.random.default_rng(9)
    pre = loop_prefix_sums(random_feat(rng, t=12), [3])
    with pytest.raises(ValueError, match="period"):
        spatial_cost(pre, 0, 1, 4, 0, 4, 5)  # 4 not tabulated
    with pytest.raises(ValueError, match="start"):
        spatial_cost(pre, 0, 1, 3, 10, 1, 0)  # 10 + 3 > 12
    with pytest.raises(ValueError, match="period"):
        spatial_cost(pre, 0, 1, 12, 0, 1, 0)
    with pytest.raises(ValueError, match="pixel"):
        spatial_cost(pre, 0, 2, 1, 0, 1, 0)
    with pytest.raises(TypeError):
        spatial_cost((pre.p1, pre.p2), 0, 1, 1, 0, 1, 0)
    with pytest.raises(ValueError):
        spatial_costs(pre, np.array([3, 3]), np.array([0, 10]), np.array([0]), np.array([1]))


# ---------------------------------------------------------------- the alpha-expansion callback


def test_pair_callback_resolves_labels_and_weights_edges():
    rng = np.random.default_rng(10)
    h, w, t_len = 2, 3, 12
    n = h * w
    feat = random_feat(rng, n=n, t=t_len, c=3)
    pre = loop_prefix_sums(feat, [3, 4])
    lab_p = np.array([[1, 3, 4]] * n, np.int64)
    lab_s = rng.integers(0, 8, size=(n, 3)).astype(np.int64)
    w_h, w_v = rng.random(n), rng.random(n)
    potts_h, potts_v = rng.random(n), rng.random(n)
    data = (np.int64(w), lab_p, lab_s, w_h, w_v, potts_h, potts_v, pre.p1, pre.p2, pre.q, pre.slot)
    for p, q, horizontal in [(0, 1, True), (1, 2, True), (0, 3, False), (2, 5, False)]:
        for a in range(3):
            for b in range(3):
                got = loop_pair_cost(p, q, a, b, data)
                px, sx, pz, sz = lab_p[p, a], lab_s[p, a], lab_p[q, b], lab_s[q, b]
                if px == pz and sx == sz:
                    assert got == 0.0
                    continue
                wt, pt = (w_h[p], potts_h[p]) if horizontal else (w_v[p], potts_v[p])
                want = (
                    wt * naive_psi_all_pairs(feat[p], feat[q], px, sx, pz, sz)
                    if (px != pz and px > 1 and pz > 1)
                    else wt * naive_psi(feat[p], feat[q], px, sx, pz, sz)
                )
                assert got == pytest.approx(want + pt, rel=1e-9)


def test_pair_callback_on_a_single_column_uses_vertical_weights():
    rng = np.random.default_rng(11)
    feat = random_feat(rng, n=2, t=8, c=1)
    pre = loop_prefix_sums(feat, [])
    lab = np.array([[0, 5]] * 2, np.int64)
    data = (
        np.int64(1),
        np.ones((2, 2), np.int64),
        lab,
        np.array([7.0, 7.0]),
        np.array([2.0, 0.0]),
        np.zeros(2),
        np.zeros(2),
        pre.p1,
        pre.p2,
        pre.q,
        pre.slot,
    )
    got = loop_pair_cost(0, 1, 0, 1, data)
    assert got == pytest.approx(2.0 * naive_psi(feat[0], feat[1], 1, 0, 1, 5))


# ---------------------------------------------------------------- attenuation


def test_attenuations_equal_their_definitions():
    rng = np.random.default_rng(12)
    video = rng.random((3, 4, 9, 3))
    gt = temporal_attenuation(video.reshape(12, 9, 3), 400.0)
    for i in range(12):
        v = video.reshape(12, 9, 3)[i]
        mad = np.median([np.linalg.norm(v[t + 1] - v[t]) for t in range(8)])
        assert gt[i] == pytest.approx(1 / (1 + 400 * mad))
    gh, gv = spatial_attenuation(video, 100.0)
    assert gh.shape == (3, 3) and gv.shape == (2, 4)
    mad = np.median([np.linalg.norm(video[1, 2, t] - video[1, 3, t]) for t in range(9)])
    assert gh[1, 2] == pytest.approx(1 / (1 + 100 * mad))
    mad = np.median([np.linalg.norm(video[0, 3, t] - video[1, 3, t]) for t in range(9)])
    assert gv[0, 3] == pytest.approx(1 / (1 + 100 * mad))
    with pytest.raises(ValueError):
        spatial_attenuation(video[0], 1.0)


# ---------------------------------------------------------------- renderer


@pytest.mark.parametrize("loop_frames", [1, 12, 24, 17, 30])
def test_render_equals_reference(loop_frames):
    rng = np.random.default_rng(13)
    t_in, h, w = 20, 4, 5
    video = rng.integers(0, 256, size=(t_in, h, w, 3), dtype=np.uint8)
    period = rng.choice([1, 3, 4, 6, 7], size=(h, w))
    start = np.array([[rng.integers(0, t_in - p + 1) for p in row] for row in period])
    got = render_time_map(video, period, start, loop_frames)
    want = naive_render(video, period, start, loop_frames)
    np.testing.assert_array_equal(got, want)


def test_render_of_dividing_periods_is_the_exact_time_map_and_wraps_seamlessly():
    t = np.arange(30)
    base = (100 + 80 * np.sin(2 * np.pi * t / 6)).astype(np.uint8)
    video = np.repeat(base[:, None, None, None], 3, axis=3).repeat(2, axis=2)
    out = render_time_map(video, np.array([[6, 12]]), np.array([[4, 9]]), 12)
    for t_out in range(12):
        assert out[t_out, 0, 0, 0] == video[naive_phi(6, 4, t_out), 0, 0, 0]
        assert out[t_out, 0, 1, 0] == video[naive_phi(12, 9, t_out), 0, 1, 0]
    # a periodic input: the step from the last output frame to the first is an ordinary step
    steps = np.abs(np.diff(out[:, 0, :, 0].astype(int), axis=0)).max()
    assert abs(int(out[-1, 0, 0, 0]) - int(out[0, 0, 0, 0])) <= steps


def test_retimed_loop_wraps_as_smoothly_as_it_plays():
    t = np.arange(40)
    base = (120 + 100 * np.sin(2 * np.pi * t / 9)).astype(np.uint8)
    video = base.reshape(40, 1, 1, 1)
    out = render_time_map(video, np.array([[9]]), np.array([[3]]), 20)  # 20 / 9: two cycles, retimed
    seq = out[:, 0, 0, 0].astype(int)
    wrap = abs(seq[-1] - seq[0])
    assert wrap <= np.abs(np.diff(seq)).max()


def test_render_validates():
    video = np.zeros((5, 2, 2, 3), np.uint8)
    ones = np.ones((2, 2), int)
    with pytest.raises(ValueError):
        render_time_map(video.astype(np.float32), ones, ones, 4)
    with pytest.raises(ValueError):
        render_time_map(video, ones * 3, ones * 3, 4)  # 3 + 3 > 5
    with pytest.raises(ValueError):
        render_time_map(video, ones[:1], ones, 4)
    with pytest.raises(ValueError):
        render_time_map(video, ones, ones, 0)


def test_loop_prefix_is_a_namedtuple_with_documented_shapes():
    pre = loop_prefix_sums(np.zeros((2, 7, 3), np.float32), [2, 3])
    assert isinstance(pre, LoopPrefix)
    shifts = period_shifts([2, 3], 7)
    assert pre.p1.shape == (2, 8, 3) and pre.p2.shape == (2, 8) and pre.q.shape == (shifts.size, 2, 8)
    assert pre.slot.shape == (8,)
    assert math.lcm(2, 3) == 6 and pre.slot[6] >= 0


# ---------------------------------------------------------------- per-pixel candidate labels, lag profile


def test_temporal_cost_labels_equals_temporal_cost_per_label():
    rng = np.random.default_rng(11)
    feat = random_feat(rng, n=6, t=15)
    weight = rng.random(6)
    lab_p = rng.integers(1, 8, size=(6, 5))
    lab_s = np.array([[rng.integers(0, 15 - p + 1) for p in row] for row in lab_p])
    out = temporal_cost_labels(feat, weight, lab_p, lab_s)
    for i in range(6):
        for k in range(5):
            expect = naive_temporal(feat[i], weight[i], int(lab_p[i, k]), int(lab_s[i, k]))
            assert out[i, k] == pytest.approx(expect, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="every label"):
        temporal_cost_labels(feat, weight, np.full((6, 1), 15), np.zeros((6, 1), int))


def test_lag_differences_is_the_mean_squared_change_per_lag():
    rng = np.random.default_rng(12)
    feat = random_feat(rng, n=3, t=11, c=2)
    out = lag_differences(feat, 10)
    for i in range(3):
        for lag in range(1, 11):
            d = feat[i, lag:].astype(np.float64) - feat[i, :-lag]
            assert out[i, lag - 1] == pytest.approx(float((d**2).sum(axis=1).mean()), rel=1e-9)
    square = np.tile([1, 1, 1, 1, 0, 0, 0, 0], 4).astype(np.float32).reshape(1, 32, 1)
    prof = lag_differences(square, 20)[0]
    assert prof[7] == 0 and prof[15] == 0 and prof[3] == 1.0 and prof[:7].min() > 0.2
    np.testing.assert_array_equal(lag_differences(feat, [7, 2, 7]), out[:, [6, 1, 6]])
    with pytest.raises(ValueError, match="lags"):
        lag_differences(feat, 11)
