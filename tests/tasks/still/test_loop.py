"""Labels, flow and frames on synthetic images with a known lattice vector (the issue's "done when")."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.still import EndlessLoopConfig
from tasks.still.flow import dense_fields, inversion_error, sparse_vectors
from tasks.still.frames import FrameRenderer, alpha, soft_mask, step_sizes
from tasks.still.labels import assign_labels, choose_lengths
from tasks.still.repetitions import find_repetitions
from tasks.still.synthetic import GENERATORS
from tasks.still.texture import extend_texture

CONFIG = EndlessLoopConfig()


def build_loop(s, features, config=CONFIG, direction=None, n_frames=16):
    direction = s.direction if direction is None else direction
    rep = find_repetitions(features, s.mask, direction, config.repetitions)
    lab = assign_labels(s.image, features, s.mask, rep, config.crf)
    sp = sparse_vectors(lab.labels, lab.vectors, s.mask, config.flow, period=rep.period)
    margin = int(np.ceil(np.abs(sp.vectors).max())) + 4
    fwd, bwd = dense_fields([sp], [s.mask], s.mask.shape, margin, config.flow.grid_step,
                            config.flow.refine_inverse)
    ext = extend_texture(s.image, s.mask, fwd, margin, config.texture)
    renderer = FrameRenderer(s.image, s.mask, ext, fwd, bwd, margin, config.frames)
    return lab, fwd, bwd, margin, renderer, renderer.loop(n_frames)


@pytest.fixture(scope="module")
def loops(stills):
    return {name: (s, *build_loop(s, f)) for name, (s, f) in stills.items()}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_dense_displacement_matches_the_lattice_vector(loops, name):
    s, lab, fwd, bwd, margin, _, _ = loops[name]
    h, w = s.mask.shape
    flow = fwd[margin : margin + h, margin : margin + w][s.mask]
    rel = np.linalg.norm(flow - s.vector, axis=1) / s.period
    assert np.mean(rel <= 0.10) >= 0.90, (name, np.mean(rel <= 0.10))
    # the labels themselves (before smoothing) mostly agree too
    lv = lab.vectors[lab.labels[s.mask]]
    assert np.mean(np.linalg.norm(lv - s.vector, axis=1) / s.period <= 0.10) >= 0.85


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_loop_closes_exactly_and_wraps_smoothly(loops, name):
    s, _, fwd, bwd, margin, renderer, loop = loops[name]
    np.testing.assert_array_equal(renderer.frame(-1.0), s.image)
    np.testing.assert_array_equal(renderer.frame(1.0), s.image)
    np.testing.assert_array_equal(loop[0], s.image)
    steps, wrap = step_sizes(loop, s.mask)
    assert wrap <= steps.max(), (wrap, steps.max())
    assert wrap > 0  # it moves
    # nothing outside the mask moves
    assert (loop[:, ~s.mask] == s.image[~s.mask]).all()
    inv = inversion_error(fwd, bwd, s.mask, margin)
    assert np.percentile(inv, 95) < 1.0


def test_the_middle_frame_shows_the_pattern_half_a_period_on(loops):
    s, _, _, _, _, renderer, _ = loops["stripes"]
    # stripes along x: at t = 0 (phase 1/2) the content has moved by half a period
    mid = renderer.frame(0.0).astype(np.float64)
    h, w = s.mask.shape
    ref = s.image.astype(np.float64)
    half = int(round(s.period / 2))
    moved = np.mean(np.abs(mid[:, half + 10 : w - 10] - ref[:, 10 : w - half - 10]))
    still = np.mean(np.abs(mid[:, 10 : w - 10] - ref[:, 10 : w - 10]))
    assert moved < 0.6 * still


def test_blend_weight_and_soft_mask():
    assert alpha(0.0, 0.25, 0.75) == 0.0 and alpha(1.0, 0.25, 0.75) == 1.0
    assert alpha(0.5, 0.25, 0.75) == pytest.approx(0.5)
    m = np.zeros((9, 9), bool)
    m[2:7, 2:7] = True
    soft = soft_mask(m, 1.0)
    assert (soft[~m] == 0).all() and soft[4, 4] == 1.0 and 0 < soft[2, 4] < 1


def test_choose_lengths_spreads_over_the_range():
    assert choose_lengths([30, 30, 31, 31, 32], 5).tolist() == [30, 31, 32]
    picked = choose_lengths(np.arange(20, 41), 5)
    assert len(picked) == 5 and picked[0] == 20 and picked[-1] == 40


def test_fade_to_border_brings_the_flow_to_zero_outside(stills):
    s, f = stills["window_grid"]
    mask = np.zeros_like(s.mask)
    mask[20:150, 20:200] = True
    s2 = type(s)(s.name, s.image, mask, s.lattice)
    cfg = EndlessLoopConfig(flow={"fade_to_border": True})
    _, fwd, _, margin, _, _ = build_loop(s2, f, cfg, n_frames=4)
    h, w = mask.shape
    field = np.linalg.norm(fwd[margin : margin + h, margin : margin + w], axis=2)
    ring = np.zeros_like(mask)
    ring[17:153, 17:203] = True
    ring &= ~mask
    assert field[ring].mean() < 0.2 * field[mask].mean()
    assert field[60:110, 60:160].mean() > 0.8 * s.period


def test_edge_blend_equals_blending_the_whole_box(loops):
    """A frame blends the moved image with the input only on the mask's feathered edge when the box is
    mostly inside the mask; it must equal OpenCV's blend over the whole box (within rounding)."""
    import cv2

    renderers = {name: (s, renderer) for name, (s, *_, renderer, _) in loops.items()}
    # and a mask of 8-px blocks: mostly edge, blended over the whole box
    s, _, fwd, bwd, margin, renderer, _ = loops["window_grid"]
    yy, xx = np.indices(s.mask.shape)
    blocks = s.mask & ((yy // 8 + xx // 8) % 2 == 0)
    renderers["blocks"] = (s, FrameRenderer(s.image, blocks, renderer.extended, fwd, bwd, margin, CONFIG.frames))
    paths = set()
    for name, (s, renderer) in renderers.items():
        y0, y1, x0, x1 = renderer.box
        paths.add(len(renderer.edge[0]) <= 0.25 * renderer.soft.size)
        for t in (-0.6, 0.05, 0.7):
            u = (t + 1.0) / 2.0
            al = alpha(u, renderer.params.blend_start, renderer.params.blend_end)
            moved = cv2.addWeighted(renderer.moved(u), 1.0 - al, renderer.moved(u - 1.0), al, 0.0)
            expect = s.image.copy()
            expect[y0:y1, x0:x1] = cv2.blendLinear(moved, s.image[y0:y1, x0:x1], renderer.soft, renderer.still)
            got = renderer.frame(t)
            assert np.abs(got.astype(int) - expect).max() <= 1, (name, t)
    assert paths == {True, False}  # both ways are exercised by the four patterns
