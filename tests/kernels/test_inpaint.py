"""Tests for kernels.inpaint (space-time Laplacian in-painting)."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.inpaint import InpaintInfo, inpaint_spacetime
from tests.kernels.naive_render import naive_inpaint


def grid(T, H, W):
    return np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")


def with_holes(field, visible):
    """The field with NaN where invisible, so that any leak shows up."""
    return np.where(visible[..., None], field, np.nan)


# ------------------------------------------------------ harmonic fields


def test_linear_field_in_space_and_time_is_reproduced():
    t, y, x = grid(9, 14, 16)
    field = np.stack([1.5 * x - 0.5 * y + 2.0 * t + 3.0, -x + 4.0 * t], axis=-1)
    visible = np.ones(t.shape, dtype=bool)
    visible[2:7, 3:11, 4:12] = False  # a block hole spanning five frames
    visible[4, 1:13, 14] = False  # and a thin slit
    filled = inpaint_spacetime(with_holes(field, visible), visible, tol=1e-12)
    np.testing.assert_allclose(filled, field, rtol=0, atol=1e-8)


def test_harmonic_polynomial_is_reproduced_in_a_large_hole():
    # x^2 - y^2 is exactly harmonic for the discrete Laplacian as well; the
    # hole (> 4096 unknowns) exercises the coarse-to-fine initial guess.
    t, y, x = grid(12, 48, 56)
    field = ((x - 20.0) ** 2 - (y - 30.0) ** 2 + 5.0 * t)[..., None]
    visible = np.ones(t.shape, dtype=bool)
    visible[1:11, 5:42, 6:50] = False
    filled, info = inpaint_spacetime(with_holes(field, visible), visible, tol=1e-11, return_info=True)
    assert info.n_unknown == 10 * 37 * 44 and info.converged
    np.testing.assert_allclose(filled, field, rtol=0, atol=1e-5)


def test_hole_touching_the_grid_faces_uses_zero_flux_there():
    # A field constant along y and t satisfies the zero normal derivative at
    # the y and t faces, so a hole reaching them is still filled exactly.
    t, y, x = grid(6, 10, 12)
    field = (3.0 * x - 7.0)[..., None].astype(np.float64)
    visible = np.ones(t.shape, dtype=bool)
    visible[0:4, 0:6, 3:9] = False
    filled = inpaint_spacetime(with_holes(field, visible), visible, tol=1e-12)
    np.testing.assert_allclose(filled, field, rtol=0, atol=1e-8)


def test_default_tolerance_is_met_and_close_to_exact():
    t, y, x = grid(10, 30, 30)
    field = (x**2 - y**2 + 0.0 * t)[..., None].astype(np.float64)
    visible = np.ones(t.shape, dtype=bool)
    visible[2:8, 5:25, 5:25] = False
    filled, info = inpaint_spacetime(with_holes(field, visible), visible, return_info=True)
    assert info.converged and info.residual[0] <= 1e-4
    # A 1e-4 relative residual leaves a small, not a zero, error.
    err = np.abs(filled - field).max() / np.abs(field).max()
    assert err < 1e-3


# ------------------------------------------------- against the direct solve


@pytest.mark.parametrize(
    "shape,fraction,seed",
    [
        ((4, 7, 9, 2), 0.3, 0),
        ((1, 12, 15, 3), 0.5, 1),  # a single frame: 2-D Laplace
        ((8, 1, 10, 1), 0.6, 2),  # one row: t-x plane
        ((5, 6, 1, 1), 0.4, 3),
        ((3, 5, 4, 1), 0.05, 4),  # almost nothing visible
        ((6, 6, 6, 2), 0.9, 5),
    ],
)
def test_matches_sparse_direct_solve_on_random_masks(shape, fraction, seed):
    rng = np.random.default_rng(seed)
    video = rng.uniform(0.0, 255.0, shape)
    visible = rng.random(shape[:3]) < fraction
    visible.flat[rng.integers(visible.size)] = True
    filled = inpaint_spacetime(video, visible, tol=1e-13)
    expected = naive_inpaint(video, visible)
    np.testing.assert_allclose(filled, expected, rtol=0, atol=1e-7)


def test_matches_direct_solve_on_a_large_random_hole():
    rng = np.random.default_rng(6)
    video = rng.uniform(0.0, 1.0, (6, 40, 40, 1))
    visible = rng.random((6, 40, 40)) < 0.2
    visible[:, 5:35, 5:35] = False  # > 4096 unknowns: coarse-to-fine path
    filled, info = inpaint_spacetime(video, visible, tol=1e-12, return_info=True)
    assert info.n_unknown > 4096
    np.testing.assert_allclose(filled, naive_inpaint(video, visible), rtol=0, atol=1e-9)


# --------------------------------------------------------------- properties


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_visible_samples_unchanged_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    video = rng.uniform(0, 255, (5, 8, 9, 3)).astype(dtype)
    visible = rng.random((5, 8, 9)) < 0.5
    holes = video.copy()
    holes[~visible] = np.nan
    filled = inpaint_spacetime(holes, visible)
    assert filled.dtype == dtype and filled.shape == video.shape
    np.testing.assert_array_equal(filled[visible], video[visible])
    assert np.isfinite(filled).all()
    # The input is not modified.
    assert np.isnan(holes[~visible]).all()


def test_maximum_principle():
    rng = np.random.default_rng(8)
    video = rng.uniform(-3.0, 7.0, (6, 10, 10, 1))
    visible = rng.random((6, 10, 10)) < 0.15
    visible[0, 0, 0] = True
    filled = inpaint_spacetime(video, visible, tol=1e-10)
    lo, hi = video[visible].min(), video[visible].max()
    assert filled.min() >= lo - 1e-9 and filled.max() <= hi + 1e-9


def test_single_visible_sample_fills_a_constant():
    video = np.full((3, 4, 5, 2), np.nan)
    visible = np.zeros((3, 4, 5), dtype=bool)
    visible[1, 2, 3] = True
    video[1, 2, 3] = [10.0, -2.0]
    filled = inpaint_spacetime(video, visible, tol=1e-12)
    np.testing.assert_allclose(filled[..., 0], 10.0, atol=1e-9)
    np.testing.assert_allclose(filled[..., 1], -2.0, atol=1e-9)


def test_all_visible_returns_an_equal_copy():
    video = np.random.default_rng(9).random((2, 3, 4, 1))
    visible = np.ones((2, 3, 4), dtype=bool)
    filled, info = inpaint_spacetime(video, visible, return_info=True)
    np.testing.assert_array_equal(filled, video)
    assert filled is not video
    assert isinstance(info, InpaintInfo) and info.n_unknown == 0 and info.converged


def test_max_iter_reports_no_convergence():
    t, y, x = grid(4, 20, 20)
    field = (x * y + 0.0 * t)[..., None].astype(float)
    visible = np.ones(t.shape, dtype=bool)
    visible[1:3, 2:18, 2:18] = False
    _, info = inpaint_spacetime(field, visible, tol=1e-12, max_iter=2, return_info=True)
    assert not info.converged and info.n_iter[0] == 2 and info.residual[0] > 1e-12


# --------------------------------------------------------------- validation


def test_nothing_visible_is_a_clear_error():
    with pytest.raises(ValueError, match="no sample is visible"):
        inpaint_spacetime(np.zeros((2, 3, 3, 1)), np.zeros((2, 3, 3), dtype=bool))


@pytest.mark.parametrize(
    "video,visible,kwargs,exc,match",
    [
        (np.zeros((3, 3, 3)), np.ones((3, 3, 3), bool), {}, ValueError, "T, H, W, C"),
        (np.zeros((2, 3, 3, 1), np.uint8), np.ones((2, 3, 3), bool), {}, TypeError, "float"),
        (np.zeros((2, 3, 3, 1)), np.ones((2, 3, 3), np.uint8), {}, TypeError, "boolean"),
        (np.zeros((2, 3, 3, 1)), np.ones((2, 3, 4), bool), {}, ValueError, "shape"),
        (np.zeros((2, 3, 3, 1)), np.ones((2, 3, 3), bool), {"tol": 0}, ValueError, "tol"),
        (np.zeros((2, 3, 3, 1)), np.ones((2, 3, 3), bool), {"max_iter": 0}, ValueError, "max_iter"),
        (np.full((2, 3, 3, 1), np.nan), np.ones((2, 3, 3), bool), {}, ValueError, "finite"),
        (np.zeros((0, 3, 3, 1)), np.ones((0, 3, 3), bool), {}, ValueError, "empty"),
    ],
)
def test_validation(video, visible, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        inpaint_spacetime(video, visible, **kwargs)
