"""Gradient-domain loop blending against the direct sparse solve of the same energy."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.loop_blend import (
    blend_levels,
    blend_rhs,
    loop_frame_map,
    poisson_apply,
    screened_poisson_loop,
    seam_energy,
)
from kernels.video_loop import render_time_map
from tests.kernels.naive_loop_blend import naive_energy, naive_frame_map, naive_seam_energy, naive_solve


def _problem(rng, t_in=14, h=5, w=6, loop_frames=12, periods=(1, 3, 4, 6, 5), active=None):
    video = rng.integers(0, 256, size=(t_in, h, w, 3)).astype(np.uint8)
    period = rng.choice(periods, size=(h, w))
    start = np.array([[rng.integers(0, t_in - p + 1) for p in row] for row in period])
    if active is None:
        active = period > 1
    base = render_time_map(video, period, start, loop_frames)
    fmap = loop_frame_map(period, start, loop_frames)
    return video, base, fmap, active, period, start


def test_frame_map_matches_the_definition_including_retimed_pixels():
    rng = np.random.default_rng(1)
    for loop_frames in (2, 7, 12, 30):
        period = rng.integers(1, 9, size=(4, 5))
        start = rng.integers(0, 6, size=(4, 5))
        np.testing.assert_array_equal(
            loop_frame_map(period, start, loop_frames), naive_frame_map(period, start, loop_frames)
        )


def test_frame_map_of_dividing_periods_is_what_the_renderer_shows():
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, size=(20, 3, 4, 1)).astype(np.uint8)
    period = rng.choice([1, 2, 3, 4, 6], size=(3, 4))
    start = rng.integers(0, 14, size=(3, 4))
    fmap = loop_frame_map(period, start, 12)
    shown = np.take_along_axis(video[..., 0], fmap.astype(np.int64), axis=0)
    np.testing.assert_array_equal(render_time_map(video, period, start, 12)[..., 0], shown)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rhs_matches_the_edge_by_edge_definition(seed):
    rng = np.random.default_rng(seed)
    video, base, fmap, active, _, _ = _problem(rng)
    _, rhs, index, _ = naive_solve(video, base, fmap, active, temporal_weight=0.7)
    ours = blend_rhs(video, base, fmap, active, temporal_weight=0.7)
    expect = np.zeros_like(ours)
    for v in zip(*np.nonzero(index >= 0), strict=True):
        expect[v] = rhs[index[v]]
    np.testing.assert_allclose(ours, expect, atol=1e-9)
    assert not ours[:, ~active].any()


@pytest.mark.parametrize(
    ("seed", "loop_frames", "shape"),
    [(0, 12, (5, 6)), (1, 7, (4, 7)), (2, 2, (3, 3)), (3, 16, (6, 5)), (4, 9, (1, 8))],
)
def test_multigrid_solution_equals_the_direct_sparse_solve(seed, loop_frames, shape):
    rng = np.random.default_rng(seed)
    video, base, fmap, active, _, _ = _problem(rng, h=shape[0], w=shape[1], loop_frames=loop_frames)
    if not active.any():
        active[0, 0] = True
    expect, _, _, _ = naive_solve(video, base, fmap, active, screening=1e-2, temporal_weight=1.0)
    rhs = blend_rhs(video, base, fmap, active)
    d, info = screened_poisson_loop(rhs, active, screening=1e-2, tol=1e-10, max_iter=200)
    assert info["residual"] <= 1e-10
    np.testing.assert_allclose(d, expect, atol=1e-6 * max(1.0, np.abs(expect).max()))
    assert not d[:, ~active].any()  # the frozen part keeps its values


def test_solution_minimises_the_energy():
    rng = np.random.default_rng(5)
    video, base, fmap, active, _, _ = _problem(rng)
    _, _, _, changes = naive_solve(video, base, fmap, active)
    d, _ = screened_poisson_loop(blend_rhs(video, base, fmap, active), active, tol=1e-10, max_iter=200)
    e0 = naive_energy(d, changes, active, 1e-3, 1.0)
    assert e0 < naive_energy(np.zeros_like(d), changes, active, 1e-3, 1.0)
    for _ in range(5):
        bumped = d + rng.normal(0, 0.5, size=d.shape)
        assert naive_energy(bumped, changes, active, 1e-3, 1.0) > e0


def test_coarse_operators_are_galerkin():
    """A_coarse = P^T A P for the piecewise-constant prolongation P, checked on random vectors."""
    rng = np.random.default_rng(6)
    active = rng.random((7, 9)) < 0.6
    levels = blend_levels(active, 12, screening=0.05, temporal_weight=0.7, min_cells=1, max_levels=3)
    assert len(levels) == 3 and levels[1].n_frames == 6 and levels[2].n_frames == 3
    fine, coarse = levels[0], levels[1]
    dc = rng.normal(size=(coarse.n_frames, *coarse.active.shape, 1)) * coarse.active[None, :, :, None]
    # P dc
    df = np.zeros((fine.n_frames, *fine.active.shape, 1))
    for t in range(fine.n_frames):
        for y in range(active.shape[0]):
            for x in range(active.shape[1]):
                if active[y, x]:
                    df[t, y, x] = dc[t // 2, y // 2, x // 2]
    adf = poisson_apply(df, levels)
    pt_adf = np.zeros_like(dc)
    for t in range(fine.n_frames):
        for y in range(active.shape[0]):
            for x in range(active.shape[1]):
                pt_adf[t // 2, y // 2, x // 2] += adf[t, y, x]
    np.testing.assert_allclose(poisson_apply(dc, levels[1:]), pt_adf, atol=1e-9)


def test_seam_energy_matches_reference_and_drops_after_blending():
    rng = np.random.default_rng(7)
    video, base, fmap, active, _, _ = _problem(rng, h=8, w=9, periods=(1, 4, 6))
    before = seam_energy(video, base, fmap, active)
    assert before == pytest.approx(naive_seam_energy(video, base, fmap, active))
    d, _ = screened_poisson_loop(blend_rhs(video, base, fmap, active), active, tol=1e-8)
    blended = base + d
    after = seam_energy(video, blended, fmap, active)
    assert after == pytest.approx(naive_seam_energy(video, blended, fmap, active))
    assert after[0] < 0.8 * before[0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="screening"):
        screened_poisson_loop(np.zeros((2, 2, 2, 1)), np.ones((2, 2), bool), screening=0)
    with pytest.raises(ValueError, match="active"):
        screened_poisson_loop(np.zeros((2, 2, 2, 1)), np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="frame_map"):
        blend_rhs(
            np.zeros((3, 2, 2, 1)), np.zeros((4, 2, 2, 1)), np.full((4, 2, 2), 5), np.ones((2, 2), bool)
        )
    with pytest.raises(ValueError, match="period"):
        loop_frame_map(np.zeros((2, 2), int), np.zeros((2, 2), int), 4)
