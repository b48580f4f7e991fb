"""CRF terms of the still-image labels against slow references."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.still.crf import bilateral_edge_weights, displacement_unary, label_compatibility, label_vectors
from tests.kernels.naive_still import naive_compatibility, naive_displacement_unary, naive_edge_weight


@pytest.mark.parametrize("seed", range(6))
def test_unary_equals_reference(seed):
    rng = np.random.default_rng(seed)
    h, w, c = rng.integers(2, 7), rng.integers(2, 8), rng.integers(1, 4)
    f = rng.random((h, w, c)).astype(np.float32)
    valid = rng.random((h, w)) > 0.2
    vectors = rng.uniform(-4, 4, (5, 2))
    vectors[0] = (0.0, 0.0)  # edge case: zero displacement
    g = rng.uniform(0, 5, (h, w))
    scale = [1.0, 0.5, 1.7][seed % 3]
    got = displacement_unary(f, vectors, g, scale, 0.1, outside_cost=7.0, valid=valid)
    ref = naive_displacement_unary(f.tolist(), valid.tolist(), vectors.tolist(), g.tolist(), scale, 0.1, 7.0)
    np.testing.assert_allclose(got, np.array(ref), rtol=1e-5, atol=1e-6)


def test_unary_is_zero_for_the_true_period():
    x = np.arange(40)
    f = np.sin(2 * np.pi * x / 8.0)[None, :, None].repeat(3, axis=0).astype(np.float32)
    u = displacement_unary(f, [[8.0, 0.0], [4.0, 0.0]], np.full((3, 40), 8.0), 1.0, 0.1)
    assert np.allclose(u[..., 0], 0, atol=1e-5) and u[:, 5:35, 1].mean() > 1.0
    with pytest.raises(ValueError, match="guess_norm"):
        displacement_unary(f, [[1.0, 0.0]], np.zeros((2, 2)))


def test_compatibility_and_labels_against_reference():
    vecs = label_vectors([20.0, 25.0], (3.0, 4.0), max_angle=30.0, n_angles=5)
    assert vecs.shape == (10, 2)
    np.testing.assert_allclose(np.linalg.norm(vecs[:2], axis=1), [20, 25])
    np.testing.assert_allclose(vecs[4] / 20.0, [0.6, 0.8])  # the unrotated copies are in the middle
    v = label_compatibility(vecs)
    ref = [[0.0 if i == j else naive_compatibility(a, b) for j, b in enumerate(vecs)] for i, a in enumerate(vecs)]
    np.testing.assert_allclose(v, np.array(ref), rtol=1e-6, atol=1e-7)
    assert (v == v.T).all() and (np.diag(v) == 0).all()
    with pytest.raises(ValueError):
        label_vectors([], (1, 0))


def test_bilateral_weights_against_reference():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (5, 6, 3)).astype(np.float64)
    comps = rng.integers(0, 3, (5, 6))
    got = bilateral_edge_weights(img, comps, 10.0, 20.0, pixel_size=2.0)
    pairs = {
        "horizontal": ((0, 0), (0, 1)),
        "vertical": ((0, 0), (1, 0)),
        "diagonal_down_right": ((0, 0), (1, 1)),
        "diagonal_down_left": ((0, 1), (1, 0)),
    }
    for name, ((a0, a1), (b0, b1)) in pairs.items():
        arr = got[name]
        for y in range(arr.shape[0]):
            for x in range(arr.shape[1]):
                ref = naive_edge_weight(img.tolist(), comps.tolist(), (y + a0, x + a1), (y + b0, x + b1), 10.0, 20.0, 2.0)
                assert arr[y, x] == pytest.approx(ref, rel=1e-5, abs=1e-7), (name, y, x)
