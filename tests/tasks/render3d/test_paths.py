"""Camera paths: periodic, of the requested amplitude, looking at the focus; path files and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tasks.render3d import PathFileError, named_path, read_path_file, write_path_file


def _reference_pose():
    rot = Rotation.from_rotvec([0.05, -0.2, 0.01]).as_matrix()
    return np.hstack([rot, np.array([[0.3], [-0.1], [1.2]])])


def _centres(poses):
    return -np.einsum("nji,nj->ni", poses[:, :, :3], poses[:, :, 3])


@pytest.mark.parametrize("name", ["zoom_in", "swing", "circle"])
def test_paths_are_periodic_rigid_and_of_the_requested_size(name):
    ref = _reference_pose()
    poses = named_path(name, ref, median_depth=5.0, amplitude=0.02, frames=24)
    assert poses.shape == (24, 3, 4)
    rots = poses[:, :, :3]
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", rots, rots), np.broadcast_to(np.eye(3), (24, 3, 3)),
                               atol=1e-12)
    # one more frame would come back to frame 0: the camera path closes
    again = named_path(name, ref, 5.0, 0.02, 48)
    np.testing.assert_allclose(again[::2], poses, atol=1e-12)
    offsets = np.linalg.norm(_centres(poses) - _centres(ref[None]), axis=1)
    assert offsets.max() == pytest.approx(0.1, rel=0.02)  # 2 % of 5
    if name != "zoom_in":
        # the camera keeps looking at the focus: the point at the median depth on the reference axis
        focus = ref[:, :3].T @ (np.array([0, 0, 5.0]) - ref[:, 3])
        cam = np.einsum("nij,j->ni", rots, focus) + poses[:, :, 3]
        np.testing.assert_allclose(cam[:, :2] / cam[:, 2:], 0, atol=1e-12)


def test_zero_amplitude_is_the_reference_in_every_frame():
    ref = _reference_pose()
    for name in ("zoom_in", "swing", "circle"):
        assert (named_path(name, ref, 5.0, 0.0, 7) == ref).all()


def test_swing_goes_sideways_and_zoom_forward():
    ref = np.hstack([np.eye(3), np.zeros((3, 1))])
    swing = _centres(named_path("swing", ref, 4.0, 0.05, 8))
    assert np.abs(swing[:, 0]).max() > 5 * np.abs(swing[:, 1:]).max()
    zoom = _centres(named_path("zoom_in", ref, 4.0, 0.05, 8))
    assert zoom[:, 2].max() == pytest.approx(0.2) and np.abs(zoom[:, :2]).max() == 0


def test_path_file_round_trip(tmp_path):
    K = np.array([[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])
    poses = named_path("circle", _reference_pose(), 3.0, 0.1, 5)
    path = write_path_file(tmp_path / "p.json", K, poses)
    K2, poses2 = read_path_file(path)
    np.testing.assert_array_equal(K2, K)
    np.testing.assert_array_equal(poses2, poses)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON camera path"),
        ('{"intrinsics": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}', "needs the keys"),
        ('{"intrinsics": [[1, 0], [0, 1]], "cam_from_world": [[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]]}',
         "intrinsics must be a 3x3"),
        ('{"intrinsics": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "cam_from_world": []}', "non-empty list"),
        ('{"intrinsics": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "cam_from_world": [[[2, 0, 0, 0], [0, 1, 0, 0], '
         '[0, 0, 1, 0]]]}', "must be a rotation"),
        ('{"intrinsics": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "cam_from_world": [[["a", 0, 0, 0]]]}',
         "arrays of numbers"),
    ],
)
def test_bad_path_files_get_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PathFileError, match=message) as info:
        read_path_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(PathFileError, match="not found"):
        read_path_file(tmp_path / "missing.json")


def test_unknown_path_name_is_refused():
    with pytest.raises(ValueError, match="path must be one of"):
        named_path("spiral", _reference_pose(), 1.0, 0.1, 3)
