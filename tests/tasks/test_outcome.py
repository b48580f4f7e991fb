"""Honest outcomes: one test per warning of issue 12, and the truncated-container check."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from schemas.config import CyclicityParams, IngestParams, WindowParams
from schemas.displays import DisplaysResult
from schemas.results import CyclicityResult, WarpResult, WindowResult
from tasks.outcome import MIN_LOOP_FRAMES, declared_length_warning, judge_outcome
from tasks.video import VideoSource

TREE = Path("/usr/share/doc/opencv-doc/examples/data/tree.avi")


def judge(**changes):
    """judge_outcome of a clean run (animated, 1000 px, 48-frame loop), with ``changes``."""
    args = dict(
        window=WindowResult(reference_index=50, window_start=0, window_stop=101, shots=[(0, 101)], shot=0),
        window_params=WindowParams(),
        warp=WarpResult(mode="steady", visible_fraction=1.0),
        loop_frames=48,
        animated_pixels=1000,
        cyclic=CyclicityResult(cyclic_pixels=1000, candidate_pixels=1200, n_regions=2),
        cyclicity=CyclicityParams(),
        displays=DisplaysResult(enabled=True, display_pixels=0, n_display_regions=0, segments_per_level=[40]),
    )
    args.update(changes)
    return judge_outcome(**args)


def test_clean_run_is_animated_without_warnings():
    assert judge() == ("animated", [], [])


def test_nothing_animates_is_still_and_names_the_tests():
    out = judge(
        animated_pixels=0,
        loop_frames=2,
        cyclic=CyclicityResult(cyclic_pixels=0, candidate_pixels=0, n_regions=0),
    )
    assert out.outcome == "still"
    assert any(r.startswith("cyclicity: no pixel passed") for r in out.reasons)
    assert any("display classifier: none of 40 segments" in r for r in out.reasons)
    assert any(w.startswith("nothing animates") for w in out.warnings)


def test_still_after_cleaning_names_the_size_filter():
    out = judge(animated_pixels=0, cyclic=CyclicityResult(cyclic_pixels=0, candidate_pixels=37, n_regions=0))
    assert out.outcome == "still"
    assert any("37 candidate pixels" in r and "min_region_area" not in r and "regions >=" in r for r in out.reasons)


def test_still_after_the_motion_veto_says_what_it_removed():
    vetoed = CyclicityResult(
        cyclic_pixels=0, candidate_pixels=531, n_regions=0, cleaned_pixels=191, grown_pixels=8194,
        vetoed_regions=2, vetoed_pixels=4311, motion_explained=[0.26, 0.49],
    )
    out = judge(animated_pixels=0, loop_frames=2, cyclic=vetoed)
    assert out.outcome == "still"
    assert "cyclicity: 2 regions (4311 px) vetoed as moving objects" in out.reasons[0]
    assert "0.49, 0.26" in out.reasons[0] and ">= 0.15" in out.reasons[0]
    assert not any("survived the cleaning" in r for r in out.reasons)
    assert any("vetoed as moving objects" in w for w in out.warnings)
    # something else animates: an animated run keeps no reasons; a degraded one also names the veto
    kept = vetoed.model_copy(update={"cyclic_pixels": 500, "n_regions": 1, "motion_explained": [0.26, 0.05, 0.49]})
    assert judge(cyclic=kept).reasons == []
    out = judge(cyclic=kept, loop_frames=MIN_LOOP_FRAMES - 1)
    assert out.outcome == "degraded" and any("2 regions (4311 px) vetoed" in r and "0.05" not in r for r in out.reasons)


def test_short_loop_is_degraded():
    out = judge(loop_frames=MIN_LOOP_FRAMES - 1)
    assert out.outcome == "degraded"
    assert any("only 7 frames" in w for w in out.warnings) and any("only 7 frames" in r for r in out.reasons)
    assert judge(loop_frames=MIN_LOOP_FRAMES).outcome == "animated"


def test_poor_alignment_is_degraded():
    out = judge(warp=WarpResult(mode="homography", visible_fraction=0.35, frames_unaligned=64))
    assert out.outcome == "degraded"
    assert any("35 % of the window's samples visible" in w for w in out.warnings)
    assert any("no transform for 64 window frames" in w for w in out.warnings)
    assert judge(warp=WarpResult(mode="homography", visible_fraction=0.8)).outcome == "animated"


def test_window_across_a_cut_is_degraded_and_a_shortened_window_warns():
    crossing = WindowResult(
        reference_index=5, window_start=0, window_stop=20, shots=[(0, 6), (6, 40)], shot=0, crosses_cut=True
    )
    out = judge(window=crossing)
    assert out.outcome == "degraded" and any("crosses a shot boundary" in w for w in out.warnings)
    cut = WindowResult(
        reference_index=60, window_start=40, window_stop=101, shots=[(0, 40), (40, 101)], shot=1, cut_by_shot=True
    )
    out = judge(window=cut)
    assert out.outcome == "animated"
    assert any("cut the analysis window to 61 frames" in w and "101 wanted" in w for w in out.warnings)


def test_render_fallback_is_degraded_and_its_warning_kept():
    out = judge(fallback_pixels=12, render_warnings=["render: 12 animated pixels left the range"])
    assert out.outcome == "degraded" and "render: 12 animated pixels left the range" in out.warnings


def _write(path: Path, n: int, options: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for t in range(n):
            img = np.full((120, 160, 3), 40 + 2 * t, np.uint8) + rng.integers(0, 20, (120, 160, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _decoded(path: Path) -> int:
    with VideoSource(path) as video:
        return sum(1 for _ in video.frames())


@pytest.mark.parametrize("suffix, options", [(".avi", None), (".mp4", {"movflags": "faststart"})])
def test_file_cut_to_45_percent_warns(tmp_path, suffix, options):
    """A container whose header still declares the full length, cut to 45 % of its bytes."""
    full = _write(tmp_path / f"full{suffix}", 60, options)
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: int(0.45 * len(data))])
    n_full, n_cut = _decoded(full), _decoded(cut)
    assert n_full == 60 and 0 < n_cut < 40
    assert declared_length_warning(full, n_full, IngestParams()) is None
    warning = declared_length_warning(cut, n_cut, IngestParams())
    assert warning is not None and str(cut) in warning and f"only {n_cut} frames" in warning
    # a frame range the user asked for is no truncation
    assert declared_length_warning(full, 20, IngestParams(end_frame=20)) is None
    assert declared_length_warning(full, 30, IngestParams(stride=2)) is None


def test_real_clip_with_a_lying_header_warns():
    """opencv-doc's tree.avi declares 444 frames; FFmpeg decodes 68."""
    if not TREE.exists():
        pytest.skip("opencv-doc is not installed (apt-get install opencv-doc)")
    warning = declared_length_warning(TREE, _decoded(TREE), IngestParams())
    assert warning is not None and "444 frames" in warning
