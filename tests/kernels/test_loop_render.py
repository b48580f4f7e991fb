import numpy as np
import pytest

from kernels.loop_render import composite_loop


def naive_composite(video, reference, labels, alpha, fa, fb, wb):
    """Pixel by pixel, frame by frame, in plain Python."""
    t_out = fa.shape[1]
    h, w, c = reference.shape
    out = np.zeros((t_out, h, w, c), np.uint8)
    for t in range(t_out):
        for y in range(h):
            for x in range(w):
                r = labels[y, x]
                for k in range(c):
                    ref = float(reference[y, x, k])
                    if r == 0 or alpha[y, x] <= 0:
                        out[t, y, x, k] = reference[y, x, k]
                        continue
                    wt, al = float(wb[r, t]), float(alpha[y, x])
                    v = (1 - wt) * float(video[fa[r, t], y, x, k]) + wt * float(video[fb[r, t], y, x, k])
                    v = al * v + (1 - al) * ref
                    out[t, y, x, k] = min(255, max(0, int(v + 0.5)))
    return out


def random_problem(rng, t_in=9, h=5, w=7, c=3, regions=3, t_out=6):
    video = rng.integers(0, 256, size=(t_in, h, w, c), dtype=np.uint8)
    reference = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    labels = rng.integers(0, regions + 1, size=(h, w))
    alpha = rng.choice([0.0, 0.25, 0.5, 1.0], size=(h, w)).astype(np.float32)
    fa = rng.integers(0, t_in, size=(regions + 1, t_out))
    fb = rng.integers(0, t_in, size=(regions + 1, t_out))
    wb = rng.choice([0.0, 0.3, 1.0], size=(regions + 1, t_out)).astype(np.float32)
    return video, reference, labels, alpha, fa, fb, wb


@pytest.mark.parametrize("seed", range(5))
def test_matches_naive_on_random_tiles(seed):
    # fractional weights: rounding of values that land on .5 may differ by one level
    args = random_problem(np.random.default_rng(seed))
    diff = composite_loop(*args).astype(int) - naive_composite(*args)
    assert np.abs(diff).max() <= 1
    assert (diff != 0).mean() < 0.05


@pytest.mark.parametrize("seed", range(3))
def test_matches_naive_exactly_with_whole_weights(seed):
    rng = np.random.default_rng(100 + seed)
    video, reference, labels, alpha, fa, fb, wb = random_problem(rng)
    alpha = rng.choice([0.0, 1.0], size=alpha.shape).astype(np.float32)
    wb = rng.choice([0.0, 1.0], size=wb.shape).astype(np.float32)
    args = (video, reference, labels, alpha, fa, fb, wb)
    np.testing.assert_array_equal(composite_loop(*args), naive_composite(*args))


def test_frozen_pixels_equal_reference_exactly():
    rng = np.random.default_rng(7)
    video, reference, labels, alpha, fa, fb, wb = random_problem(rng)
    labels[:2] = 0
    alpha[:, :2] = 0
    out = composite_loop(video, reference, labels, alpha, fa, fb, wb)
    frozen = (labels == 0) | (alpha == 0)
    assert frozen.any()
    for t in range(out.shape[0]):
        np.testing.assert_array_equal(out[t][frozen], reference[frozen])


def test_full_opacity_without_fade_copies_the_source_frames():
    rng = np.random.default_rng(8)
    video = rng.integers(0, 256, size=(5, 2, 3, 3), dtype=np.uint8)
    labels = np.ones((2, 3), int)
    fa = np.array([[0, 0, 0], [4, 1, 2]])
    out = composite_loop(video, video[0], labels, np.ones((2, 3)), fa, fa, np.zeros((2, 3)))
    np.testing.assert_array_equal(out, video[[4, 1, 2]])


def test_single_pixel_and_empty_regions():
    video = np.full((3, 1, 1, 1), 200, np.uint8)
    ref = np.zeros((1, 1, 1), np.uint8)
    out = composite_loop(
        video, ref, np.zeros((1, 1), int), np.ones((1, 1)), *(np.zeros((1, 4), int),) * 2, np.zeros((1, 4))
    )
    assert out.shape == (4, 1, 1, 1) and not out.any()


def test_bad_input_is_refused():
    video, reference, labels, alpha, fa, fb, wb = random_problem(np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        composite_loop(video.astype(np.float32), reference, labels, alpha, fa, fb, wb)
    with pytest.raises(ValueError, match="labels"):
        composite_loop(video, reference, labels + 10, alpha, fa, fb, wb)
    with pytest.raises(ValueError, match="frame indices"):
        composite_loop(video, reference, labels, alpha, fa + 100, fb, wb)
    with pytest.raises(ValueError, match="reference"):
        composite_loop(video, reference[:1], labels, alpha, fa, fb, wb)
