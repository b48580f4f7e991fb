"""The synthetic night-street clip: the truth it claims is what the decoded H.264 shows."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tasks.synthetic_city import NEON_PERIODS, make_city_night_clip
from tasks.video import VideoSource


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    clip = make_city_night_clip(
        tmp_path_factory.mktemp("city") / "city.mp4", width=160, height=96, n_frames=48, seed=3
    )
    with VideoSource(clip.path) as video:
        frames = np.stack(list(video.frames())).astype(np.float64)
    return clip, frames


def test_decoded_clip_has_the_requested_shape(city):
    clip, frames = city
    assert frames.shape == (48, 96, 160, 3)
    assert clip.fps == 24.0 and clip.n_frames == 48


def test_masks_are_disjoint_and_the_static_mask_keeps_its_margin(city):
    clip, _ = city
    parts = [s.mask for s in clip.signs] + [clip.billboard_mask, clip.ticker_mask, clip.walker_mask]
    assert all(p.any() for p in parts)
    assert np.sum(parts, axis=0).max() == 1  # nothing overlaps
    static = clip.static_mask
    assert 0.2 < static.mean() < 0.8 and not (static & clip.moving_mask).any()
    # margin: every static pixel is more than `margin` pixels (chessboard) from anything that moves
    dist = cv2.distanceTransform((~clip.moving_mask).astype(np.uint8), cv2.DIST_C, 3)
    assert dist[static].min() > clip.margin


def test_strokes_are_thin_3_to_5_pixels(city):
    clip, _ = city
    assert sorted(s.stroke_width for s in clip.signs) == [3, 4, 5]
    for s in clip.signs:
        inner = cv2.distanceTransform(np.pad(s.mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        # the distance from a stroke's centre line to its outside, about half its width
        assert 1.0 <= np.percentile(inner[s.mask], 99) <= s.stroke_width / 2 + 1, s.stroke_width
        n_parts = cv2.connectedComponents(s.mask.astype(np.uint8), connectivity=8)[0] - 1
        assert 1 <= n_parts <= 2  # one or two strokes, not specks


def test_each_sign_blinks_at_its_period(city):
    clip, frames = city
    luma = frames.mean(axis=3)
    assert sorted(clip.periods) == list(NEON_PERIODS)
    for s in clip.signs:
        signal = luma[:, s.mask].mean(axis=1)  # (T,)
        lit = s.lit(np.arange(len(signal)))
        assert signal[lit].min() > signal[~lit].max() + 30  # on and off as the truth says
        # the signal repeats at its period (and its multiples) and at no shorter lag
        mad = {lag: np.abs(signal[lag:] - signal[:-lag]).mean() for lag in range(1, 2 * s.period + 1)}
        assert mad[s.period] < 3 and mad[2 * s.period] < 3
        assert min(mad[lag] for lag in range(1, s.period)) > 20


def test_static_background_shows_only_noise(city):
    clip, frames = city
    std = frames.std(axis=0).mean(axis=2)[clip.static_mask]
    assert np.median(std) < 2.0 * clip.noise_sigma + 1.0
    assert np.percentile(std, 99.5) < 4.0 * clip.noise_sigma + 2.0


def test_billboard_ticker_and_walkers_move(city):
    clip, frames = city
    step = np.abs(np.diff(frames, axis=0)).mean(axis=3)  # (T-1, H, W)
    for name in ("billboard_mask", "ticker_mask", "walker_mask"):
        m = getattr(clip, name)
        assert (step[:, m] > 20).mean(axis=1).max() > 0.02, name
    assert (step[:, clip.ticker_mask] > 20).mean() > 0.05  # a ticker moves every frame


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 96x64"):
        make_city_night_clip(tmp_path / "x.mp4", width=64, height=48)
    with pytest.raises(ValueError, match="n_frames"):
        make_city_night_clip(tmp_path / "x.mp4", width=160, height=96, n_frames=12)
