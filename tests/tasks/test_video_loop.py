import math

import cv2
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from kernels.video_loop import render_time_map
from schemas import names as N
from schemas.video_loop import PAPER_PERIODS, VideoLoopParams
from tasks.store import open_store, stage_done
from tasks.video_loop import (
    CANDIDATE_CLASS,
    CANDIDATE_PERIOD,
    CANDIDATE_START,
    LOOP_CANDIDATES,
    VideoLoopError,
    candidate_periods,
    choose_loop_frames,
    downscale_labels,
    downscale_video,
    dynamic_classes,
    loop_energy,
    optimise_loops,
    prepare_energy,
    upsample_labels,
    video_loop_digest,
    video_loop_stage,
)
from tests.kernels.naive_video_loop import steady_loop_clip

TRUE_PERIODS = (12, 20)
# multiples of 12: 24, 36, 48; of 20: 20, 40; no common multiple, so the regions must differ
TEST_PERIODS = [16, 20, 24, 30, 36, 40, 48]
FACTOR = 2
OBJECT, NATURAL, BACKGROUND = 5, 7, 0


def params(**kw):
    base = {"periods": TEST_PERIODS, "downscale": FACTOR, "max_cycles": 3}
    base.update(kw)
    return VideoLoopParams(**base)


# ---------------------------------------------------------------- small helpers


def test_candidate_periods_scaling_rule():
    p = VideoLoopParams()
    assert candidate_periods(150, p) == [1, *PAPER_PERIODS]  # 0.8 * 150 >= 60: unchanged
    scaled = candidate_periods(60, p)  # factor 0.8 * 60 / 60 = 0.8
    assert scaled == [1] + sorted({round(q * 0.8) for q in PAPER_PERIODS})
    assert max(scaled) <= 0.8 * 60
    tiny = candidate_periods(10, p)  # factor 8 / 60: periods below min_period (4) dropped
    assert tiny[0] == 1 and all(4 <= q < 10 for q in tiny[1:])
    assert candidate_periods(30, VideoLoopParams(periods=[5, 29, 30, 40])) == [1, 5, 29]
    with pytest.raises(VideoLoopError):
        candidate_periods(20, VideoLoopParams(periods=[25]))
    with pytest.raises(VideoLoopError):
        candidate_periods(2, p)


def test_loop_length_choice():
    p = VideoLoopParams()
    assert choose_loop_frames([1, 24, 36], p) == 72
    assert choose_loop_frames([1], p) == 2
    assert choose_loop_frames([1, 36, 40, 44], p) == 44  # lcm 3960 > 300: the longest period
    assert choose_loop_frames([36, 40], VideoLoopParams(loop_frames=50)) == 50


def test_downscale_averages_cells_and_upsampling_replicates():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(4, 5, 7, 3), dtype=np.uint8)
    grid = downscale_video(video, 2)
    assert grid.shape == (3, 4, 4, 3)
    np.testing.assert_allclose(grid[0, 0, 1], video[1, 0:2, 0:2].reshape(-1, 3).mean(0) / 255, rtol=1e-5)
    np.testing.assert_allclose(grid[2, 3, 0], video[0, 4, 6] / 255, rtol=1e-5)  # a 1-pixel corner cell
    lab = np.arange(12).reshape(3, 4)
    up = upsample_labels(lab, 2, 5, 7)
    assert up.shape == (5, 7) and up[4, 6] == lab[2, 3] and up[1, 1] == lab[0, 0] and up[2, 5] == lab[1, 2]
    labels = np.arange(35).reshape(1, 5, 7)
    assert downscale_labels(labels, 2)[0, 2, 3] == labels[0, 4, 6]


# ---------------------------------------------------------------- the optimisation on a synthetic clip


@pytest.fixture(scope="module")
def clip():
    frames, masks = steady_loop_clip(height=48, width=64, n_frames=90, periods=TRUE_PERIODS)
    return frames, masks


@pytest.fixture(scope="module")
def photometric(clip):
    frames, _ = clip
    p = params()
    energy = prepare_energy(downscale_video(frames, FACTOR), p)
    return energy, optimise_loops(energy, p)


def _full(sol, clip):
    frames, _ = clip
    h, w = frames.shape[1:3]
    return upsample_labels(sol.period, FACTOR, h, w), upsample_labels(sol.start, FACTOR, h, w)


def test_regions_get_multiples_of_their_periods_and_the_background_stays_static(clip, photometric):
    frames, masks = clip
    _, sol = photometric
    period, _ = _full(sol, clip)
    for mask, true in zip(masks, TRUE_PERIODS, strict=True):
        share = np.mean(period[mask] % true == 0)
        assert share >= 0.9, (true, np.unique(period[mask], return_counts=True))
    background = ~ndimage.binary_dilation(masks[0] | masks[1], iterations=FACTOR)
    assert np.mean(period[background] == 1) >= 0.99


def test_stages_never_increase_the_energy_and_the_energy_is_consistent(photometric):
    energy, sol = photometric
    e = sol.energies
    assert e["stage3"] <= e["stage2"] + 1e-6
    parts = loop_energy(energy, sol.period, sol.start)
    # the solver's energy (float32 costs) equals the independent evaluation of E(p, s)
    assert parts["total"] == pytest.approx(e["stage3"], rel=1e-4, abs=1e-3)
    # and the trivial answers are worse: all static, or everything on one period and start
    n = energy.n_cells
    all_static = loop_energy(energy, np.ones(n, int), np.zeros(n, int))["total"]
    assert e["stage3"] < all_static


def test_loop_has_no_temporal_seam(clip, photometric):
    frames, masks = clip
    _, sol = photometric
    period, start = _full(sol, clip)
    loop_frames = choose_loop_frames(np.unique(period), params())
    loop = render_time_map(frames, period, start, loop_frames).astype(np.float64)
    anim = period > 1
    steps = np.abs(np.diff(loop, axis=0)).mean(axis=3)[:, anim].mean(axis=1)  # per consecutive pair
    wrap = np.abs(loop[-1] - loop[0]).mean(axis=2)[anim].mean()
    assert wrap <= steps.max()
    assert wrap <= 1.25 * steps.mean()
    # outside the animated pixels the loop is frozen
    assert np.abs(np.diff(loop[:, ~anim], axis=0)).max() == 0


def test_spatial_seams_are_lower_than_one_global_period(photometric):
    """Baseline: every cell animated with one period, each with its own best start (no spatial term)."""
    energy, sol = photometric
    n = energy.n_cells
    ours = loop_energy(energy, sol.period, sol.start)
    best_global = None
    for p in energy.periods[1:]:
        starts = np.arange(0, energy.n_frames - p + 1)
        own = starts[np.argmin(energy.temporal(p, starts), axis=1)]
        parts = loop_energy(energy, np.full(n, p), own)
        if best_global is None or parts["total"] < best_global["total"]:
            best_global = parts
    assert ours["spatial"] < best_global["spatial"]
    assert ours["total"] < best_global["total"]


# ---------------------------------------------------------------- semantics


def _labels(clip):
    frames, masks = clip
    lab = np.full(frames.shape[:3], BACKGROUND, np.int64)
    lab[:, masks[0]] = OBJECT
    lab[:, masks[1]] = NATURAL
    return lab


@pytest.fixture(scope="module")
def semantic(clip):
    frames, _ = clip
    p = params(natural_classes=[NATURAL], object_coherence_weight=2.0)
    labels = downscale_labels(_labels(clip), FACTOR)
    energy = prepare_energy(downscale_video(frames, FACTOR), p, labels)
    return energy, optimise_loops(energy, p), p


def test_an_object_shares_one_period_and_start(clip, semantic, photometric):
    _, masks = clip
    energy, sol, _ = semantic
    obj = ndimage.binary_erosion(masks[0], iterations=FACTOR)
    period, start = _full(sol, clip)
    pairs = set(zip(period[obj].tolist(), start[obj].tolist(), strict=True))
    assert len(pairs) == 1 and next(iter(pairs))[0] % TRUE_PERIODS[0] == 0
    # without labels the same pixels take several starts (the travelling wave loops from anywhere)
    p0, s0 = _full(photometric[1], clip)
    assert len(set(zip(p0[obj].tolist(), s0[obj].tolist(), strict=True))) > 1
    # the natural region still loops with a multiple of its period
    assert np.mean(period[masks[1]] % TRUE_PERIODS[1] == 0) >= 0.9


def test_candidates_animate_one_dynamic_class_each(clip, semantic):
    energy, sol, p = semantic
    classes = dynamic_classes(energy, p)
    assert sorted(classes) == [OBJECT, NATURAL]  # the still background is not a candidate
    dom = energy.sem_info.dominant
    for cls in classes:
        cand = optimise_loops(energy, p, allowed=dom == cls, best_starts=sol.best_starts)
        anim = cand.period.ravel() > 1
        assert anim.any() and np.all(dom[anim] == cls)
    assert dynamic_classes(energy, p.model_copy(update={"n_candidates": 1})) == classes[:1]


def test_label_video_must_match_the_grid(clip):
    frames, _ = clip
    grid = downscale_video(frames[:20], FACTOR)
    with pytest.raises(VideoLoopError):
        prepare_energy(grid, params(), np.zeros((20, 3, 3), np.int64))


# ---------------------------------------------------------------- the stage on a store


def _make_store(path, frames):
    t = frames.shape[0]
    ds = xr.Dataset(
        {N.WARPED: ((N.WINDOW_TIME, N.Y, N.X, N.CHANNEL), frames)},
        coords={N.WINDOW_TIME: np.arange(t)},
    ).chunk({N.WINDOW_TIME: -1, N.Y: 16, N.X: 16, N.CHANNEL: -1})
    ds.to_zarr(str(path), zarr_format=3, consolidated=False)
    return str(path)


def test_stage_writes_the_contract_variables(tmp_path):
    frames, masks = steady_loop_clip(height=32, width=40, n_frames=48, periods=(8, 12), seed=3)
    store = _make_store(tmp_path / "store.zarr", frames)
    label_dir = tmp_path / "labels"
    label_dir.mkdir()
    for t in range(frames.shape[0]):
        lab = np.zeros(frames.shape[1:3], np.uint8)
        lab[masks[0]] = OBJECT
        lab[masks[1]] = NATURAL
        cv2.imwrite(str(label_dir / f"{t:04d}.png"), lab)
    p = VideoLoopParams(
        periods=[8, 12, 16, 24],
        downscale=2,
        max_cycles=2,
        label_video=str(label_dir),
        natural_classes=[NATURAL],
        blend="none",  # the loop is then exactly the time map (blending: the city tests)
    )
    result = video_loop_stage(store, p)
    ds = open_store(store)
    period = ds[N.LOOP_PERIOD].values
    start = ds[N.LOOP_START].values
    assert period.dtype == np.int32 and start.dtype == np.int32 and period.shape == (32, 40)
    np.testing.assert_array_equal(ds[N.ANIMATED_MASK].values, period > 1)
    loop = ds[N.LOOP]
    assert loop.dims == (N.LOOP_TIME, N.Y, N.X, N.CHANNEL) and loop.dtype == np.uint8
    assert loop.shape[0] == result.loop_frames
    np.testing.assert_array_equal(loop.values, render_time_map(frames, period, start, result.loop_frames))
    assert result.animated_pixels == int((period > 1).sum())
    assert sum(result.period_histogram.values()) == 32 * 40
    assert set(result.candidate_classes) == {OBJECT, NATURAL}
    cands = ds[LOOP_CANDIDATES]
    assert cands.shape[0] == len(result.candidate_classes) and cands.dtype == np.uint8
    np.testing.assert_array_equal(ds[CANDIDATE_CLASS].values, result.candidate_classes)
    for k, cls in enumerate(result.candidate_classes):
        cp = ds[CANDIDATE_PERIOD].values[k]
        cs = ds[CANDIDATE_START].values[k]
        mask = masks[0] if cls == OBJECT else masks[1]
        grown = ndimage.binary_dilation(mask, iterations=2)
        assert (cp > 1).any() and not (cp[~grown] > 1).any()
        np.testing.assert_array_equal(cands.values[k], render_time_map(frames, cp, cs, cands.shape[1]))
    assert stage_done(store, "video_loop", video_loop_digest(store, p))
    assert (
        math.isfinite(result.energies["stage3"])
        and result.energies["stage3"] <= result.energies["stage2"] + 1e-6
    )


def test_stage_refuses_a_label_video_of_the_wrong_length(tmp_path):
    frames, _ = steady_loop_clip(height=16, width=16, n_frames=24, periods=(6, 8))
    store = _make_store(tmp_path / "store.zarr", frames)
    import zarr

    zarr.create_array(str(tmp_path / "labels.zarr"), shape=(7, 16, 16), dtype="int32", zarr_format=3)
    p = VideoLoopParams(periods=[6, 8], label_video=str(tmp_path / "labels.zarr"))
    with pytest.raises(VideoLoopError, match="label frames"):
        video_loop_stage(store, p)


def test_invisible_samples_never_loop_and_static_pixels_show_the_reference(tmp_path):
    """A moving camera's window: cells with a sample outside the frame stay static at the reference frame."""
    frames, masks = steady_loop_clip(height=32, width=40, n_frames=48, periods=(8, 12), seed=3)
    frames = frames.copy()
    visible = np.ones(frames.shape[:3], bool)
    hidden = masks[0] | masks[1]
    hidden[:, :20] = False  # the left half of the looping regions leaves the frame for a while
    visible[10:20][:, hidden] = False
    frames[10:20][:, hidden] = 0  # what the warp writes for invisible samples
    store = _make_store(tmp_path / "store.zarr", frames)
    xr.Dataset({N.VISIBLE: ((N.WINDOW_TIME, N.Y, N.X), visible)}).chunk({N.Y: 16, N.X: 16}).to_zarr(
        store, mode="a", zarr_format=3, consolidated=False
    )
    import zarr

    zarr.open_group(store, mode="r+", zarr_format=3).attrs.update({"reference_index": 30, "window_start": 0})
    result = video_loop_stage(store, VideoLoopParams(periods=[8, 12, 16, 24], downscale=2, max_cycles=2))
    ds = open_store(store)
    period, start, loop = ds[N.LOOP_PERIOD].values, ds[N.LOOP_START].values, ds[N.LOOP].values
    grid_hidden = np.zeros((16, 20), bool)
    np.logical_or.at(grid_hidden, (np.arange(32)[:, None] // 2, np.arange(40)[None, :] // 2), hidden)
    cells = np.repeat(np.repeat(grid_hidden, 2, 0), 2, 1)
    assert (period[cells] == 1).all()
    assert (period[masks[0] & ~cells] > 1).mean() > 0.8  # the visible half still loops
    assert (start[period == 1] == 30).all()
    for t in range(result.loop_frames):
        np.testing.assert_array_equal(loop[t][period == 1], frames[30][period == 1])
    assert not (loop[:, cells] == 0).all(axis=-1).any()  # no black from invisible samples


# ---------------------------------------------------------------- a night street: thin blinking strokes


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """The synthetic night street (H.264, decoded), the stage with default parameters, and its outputs."""
    from tasks.synthetic_city import make_city_night_clip
    from tasks.video import VideoSource

    root = tmp_path_factory.mktemp("city")
    clip = make_city_night_clip(root / "city.mp4", width=160, height=96, n_frames=48, seed=3)
    with VideoSource(clip.path) as video:
        frames = np.stack(list(video.frames()))
    ref = 20
    store = str(root / "store.zarr")
    xr.Dataset(
        {
            N.WARPED: ((N.WINDOW_TIME, N.Y, N.X, N.CHANNEL), frames),
            N.REFERENCE: ((N.Y, N.X, N.CHANNEL), frames[ref]),
        },
        coords={N.WINDOW_TIME: np.arange(frames.shape[0])},
    ).chunk({N.WINDOW_TIME: -1, N.Y: 48, N.X: 64, N.CHANNEL: -1}).to_zarr(
        store, zarr_format=3, consolidated=False
    )
    import zarr

    zarr.open_group(store, mode="r+", zarr_format=3).attrs.update({"reference_index": ref, "window_start": 0})
    result = video_loop_stage(store, VideoLoopParams())
    ds = open_store(store)
    out = {k: ds[k].values for k in (N.LOOP_PERIOD, N.LOOP_START, N.ANIMATED_MASK, N.LOOP)}
    return clip, frames, ref, result, out


def test_city_thin_strokes_loop_in_multiples_of_their_periods_without_phase_jump(city):
    clip, _, _, result, out = city
    period, anim, loop = out[N.LOOP_PERIOD], out[N.ANIMATED_MASK], out[N.LOOP].astype(np.float64)
    assert sorted(result.detected_periods) == [8, 10, 12]
    n_loop = loop.shape[0]
    for sign in clip.signs:
        m = sign.mask
        assert anim[m].mean() >= 0.8, (sign.period, anim[m].mean())
        looping = m & anim
        assert np.all(period[looping] % sign.period == 0), np.unique(period[looping])
        assert n_loop % sign.period == 0  # never retimed
        # the lit state follows the sign's rhythm all the way round, across the wrap
        lum = loop[:, looping].mean(axis=(1, 2))
        lit = lum > 0.5 * (lum.min() + lum.max())
        assert lit.any() and not lit.all()
        np.testing.assert_array_equal(lit, np.roll(lit, -sign.period))
        assert lit.sum() == n_loop // 2  # half of every period lit, as in the clip
    # where periods were used is in the result, detected ones marked
    regions = {r["period"]: r for r in result.period_regions}
    for p in np.unique(period[clip.stroke_mask & anim]):
        assert regions[int(p)]["detected"] and not regions[int(p)]["retimed"]


def test_city_background_stays_still_and_frozen_pixels_are_the_reference(city):
    clip, frames, ref, result, out = city
    anim, loop = out[N.ANIMATED_MASK], out[N.LOOP]
    assert anim[clip.static_mask].mean() <= 0.01
    frozen = ~anim
    for t in range(loop.shape[0]):
        np.testing.assert_array_equal(loop[t][frozen], frames[ref][frozen])
    assert np.all(out[N.LOOP_START][out[N.LOOP_PERIOD] == 1] == ref)
    assert result.quality["stillness"] == 0.0


def test_city_labels_follow_thin_strokes_not_blocks(city):
    clip, _, _, result, out = city
    period, start, anim = out[N.LOOP_PERIOD], out[N.LOOP_START], out[N.ANIMATED_MASK]
    assert result.refined and result.downscale >= 4  # the coarse grid alone would give 4x4 blocks
    thin = next(s for s in clip.signs if s.stroke_width == 3)
    # one period along the whole 3-pixel stroke, and every pixel of it lit in the same frames (starts
    # may differ by noise: with period p every start shows frame t mod p at output time t)
    assert np.unique(period[thin.mask]).size == 1 and period[thin.mask][0] > 1
    lum = out[N.LOOP][:, thin.mask].astype(np.float64).mean(axis=2)  # (L, stroke pixels)
    lit = lum > 0.5 * (lum.min() + lum.max())
    assert np.all(lit == lit[:, :1])
    assert np.unique(start[thin.mask]).size < thin.mask.sum()
    # and the animation hugs the strokes: little is animated on the dark board around them
    for sign in clip.signs:
        near = ndimage.binary_dilation(sign.mask, iterations=6) & ~ndimage.binary_dilation(
            sign.mask, iterations=1
        )
        near &= ~(clip.moving_mask & ~sign.mask)
        assert anim[near].mean() < 0.1, (sign.period, anim[near].mean())


def test_city_blending_lowers_the_seam_energy(city):
    _, _, _, result, _ = city
    assert result.seam_energy_before is not None and result.seam_energy_after is not None
    assert result.seam_energy_after < 0.5 * result.seam_energy_before
    assert result.blend_iterations > 0 and result.timings["refine"] > 0 and result.timings["coarse"] > 0


# ---------------------------------------------------------------- noise, detected periods, candidates


def test_noise_estimate_and_floors_on_pure_noise():
    from tasks.video_loop import estimate_noise, motion_above_noise, motion_measures, noise_floors

    rng = np.random.default_rng(0)
    sigma = 2.0 / 255
    still = 0.4 + rng.normal(0, sigma, size=(2000, 60, 3)).astype(np.float32)
    assert estimate_noise(still) == pytest.approx(sigma, rel=0.1)
    floors = noise_floors(sigma, 3, VideoLoopParams())
    consec, spread = motion_measures(still)
    assert (motion_above_noise(consec, spread, floors) > 0).mean() < 0.001
    # a light blinking every 8 frames changes in 2 of 8 steps: the median step misses it, the spread not
    blink = still[:10].copy()
    blink[:, (np.arange(60) % 8) < 4] += 0.3
    consec, spread = motion_measures(blink)
    assert np.all(consec < floors[0]) and np.all(motion_above_noise(consec, spread, floors) > 0.2)


def test_detected_periods_and_their_fitting_multiples_become_candidates():
    from tasks.video_loop import detect_periods

    rng = np.random.default_rng(1)
    t = np.arange(100)
    feats = [0.5 + 0.3 * ((t + rng.integers(p)) % p < p // 2) for p in (8, 8, 8, 10, 10, 10, 12, 12, 12)]
    feats += [rng.random(100) for _ in range(5)]  # aperiodic movers
    colour = np.repeat(np.stack(feats)[:, :, None], 3, axis=2).astype(np.float32)
    p = VideoLoopParams()
    assert detect_periods(colour, np.ones(len(feats), bool), p) == [8, 10, 12]
    assert (
        detect_periods(colour, np.ones(len(feats), bool), p.model_copy(update={"min_period_votes": 4})) == []
    )
    periods = candidate_periods(100, p, [8, 10, 12])
    for q in (8, 10, 12, 20, 24, 30, 40, 60):
        assert q in periods
    assert 16 not in periods and 36 not in periods and 48 not in periods  # multiples that would be retimed
    assert choose_loop_frames([1, 8, 40, 44], p, [8, 10, 12]) == 120  # 44 is retimed, the lights are not
    assert choose_loop_frames([1, 8, 40], p, [8, 10, 12]) == 40


def test_candidate_tables_offer_the_reference_and_the_neighbouring_cells():
    from tasks.video_loop import candidate_tables

    cp = np.array([[1, 8], [12, 1]])
    cs = np.array([[3, 5], [7, 9]])
    lab_p, lab_s = candidate_tables(cp, cs, 2, 4, 4, reference=6)
    assert lab_p.shape == (4, 4, 10)
    assert np.all(lab_p[..., 0] == 1) and np.all(lab_s[..., 0] == 6)
    assert (lab_p[0, 0, 1], lab_s[0, 0, 1]) == (1, 6)  # own cell static: the reference frame
    assert (lab_p[0, 3, 1], lab_s[0, 3, 1]) == (8, 5)  # own cell
    assert {(int(a), int(b)) for a, b in zip(lab_p[0, 0], lab_s[0, 0], strict=True)} == {
        (1, 6),
        (8, 5),
        (12, 7),
    }
