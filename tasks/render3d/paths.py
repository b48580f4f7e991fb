"""Camera paths of the 3D cinemagraph: named paths around the reference camera, and path files.

Every named path is periodic over its ``frames`` output frames (frame ``frames`` would equal
frame 0), so the camera motion loops with the animation; a motion that does not close by
itself (the dolly of ``zoom_in``, the arc of ``swing``) goes out and returns along itself.
Displacements are in the reference camera's frame (x right, y down, z forward) and scale
with ``amplitude x median depth``; the camera keeps looking at the *focus*, the point on the
reference optical axis at the median depth, except for ``zoom_in`` which keeps the reference
orientation.

Path files are JSON: ``{"intrinsics": [[fx, s, cx], [0, fy, cy], [0, 0, 1]],
"cam_from_world": [[[r, r, r, t], [r, r, r, t], [r, r, r, t], [0, 0, 0, 1]], ...]}``, world-to-camera
4 x 4 (or 3 x 4) matrices in the reconstruction's frame and units, pixel centres at integer
coordinates (the store's ``cam_from_world`` convention).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from schemas.render3d import PATHS

__all__ = ["PathFileError", "named_path", "look_at", "read_path_file", "write_path_file"]


class PathFileError(ValueError):
    """A camera path file that cannot be read or is malformed."""


def look_at(centre: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-from-camera rotation of a camera at ``centre`` looking at ``target`` (y axis along ``up``, i.e. down)."""
    forward = np.asarray(target, np.float64) - np.asarray(centre, np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(np.asarray(up, np.float64), forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.column_stack([right, down, forward])


def named_path(name: str, reference_pose: np.ndarray, median_depth: float, amplitude: float,
               frames: int) -> np.ndarray:
    """Poses (frames, 3, 4) float64 of the named path around ``reference_pose`` (3, 4) world-to-camera.

    Parameters
    ----------
    name : {"zoom_in", "swing", "circle"}
        ``zoom_in``: the camera moves forward by ``a (1 - cos(2 pi k / F)) / 2`` and back;
        ``swing``: it travels on the arc of radius ``median_depth`` around the focus, at the
        angle ``(a / median_depth) sin(2 pi k / F)`` (sideways out, back, out the other way);
        ``circle``: it moves on the circle ``a (cos, sin)(2 pi k / F)`` in the reference image
        plane, looking at the focus.  ``a = amplitude * median_depth``.
    reference_pose : ndarray, shape (3, 4)
    median_depth : float
        Median depth of the reference view, world units (> 0).
    amplitude : float
        Largest displacement as a fraction of ``median_depth``; 0 gives the reference pose in
        every frame, exactly.
    frames : int
        Number of output frames F >= 1.
    """
    if name not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {name!r}")
    if not median_depth > 0 or not amplitude >= 0 or frames < 1:
        raise ValueError("need median_depth > 0, amplitude >= 0 and frames >= 1")
    reference_pose = np.asarray(reference_pose, np.float64)
    rot_ref, t_ref = reference_pose[:, :3], reference_pose[:, 3]
    poses = np.repeat(reference_pose[None], frames, axis=0)
    if amplitude == 0:
        return poses
    a = amplitude * median_depth
    focus = np.array([0.0, 0.0, median_depth])  # in reference camera coordinates
    up = np.array([0.0, 1.0, 0.0])
    for k in range(frames):
        phase = 2 * math.pi * k / frames
        if name == "zoom_in":
            centre = np.array([0.0, 0.0, a * (1 - math.cos(phase)) / 2])
            rot_cam = np.eye(3)  # reference-camera-from-new-camera
        elif name == "swing":
            angle = (a / median_depth) * math.sin(phase)
            centre = focus - median_depth * np.array([math.sin(angle), 0.0, math.cos(angle)])
            rot_cam = look_at(centre, focus, up)
        else:
            centre = a * np.array([math.cos(phase), math.sin(phase), 0.0])
            rot_cam = look_at(centre, focus, up)
        # new camera: X_new = rot_cam^T (X_refcam - centre); X_refcam = R_ref X + t_ref
        rot = rot_cam.T @ rot_ref
        poses[k, :, :3] = rot
        poses[k, :, 3] = rot_cam.T @ (t_ref - centre)
    return poses


def read_path_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(intrinsics (3, 3), cam_from_world (F, 3, 4)) from a path file; :class:`PathFileError` names the problem."""
    path = Path(path)
    if not path.is_file():
        raise PathFileError(f"{path}: camera path file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PathFileError(f"{path}: not a JSON camera path ({exc})") from None
    if not isinstance(data, dict) or "intrinsics" not in data or "cam_from_world" not in data:
        raise PathFileError(f"{path}: a camera path file needs the keys 'intrinsics' and 'cam_from_world'")
    try:
        K = np.asarray(data["intrinsics"], np.float64)
        poses = np.asarray(data["cam_from_world"], np.float64)
    except (TypeError, ValueError):
        raise PathFileError(f"{path}: intrinsics and cam_from_world must be arrays of numbers") from None
    if K.shape != (3, 3) or K[2, 2] != 1 or K[0, 0] <= 0 or K[1, 1] <= 0 or np.any(K[2, :2] != 0):
        raise PathFileError(f"{path}: intrinsics must be a 3x3 matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]]")
    if poses.ndim != 3 or poses.shape[0] < 1 or poses.shape[1:] not in ((4, 4), (3, 4)):
        raise PathFileError(f"{path}: cam_from_world must be a non-empty list of 4x4 (or 3x4) matrices")
    if not np.all(np.isfinite(poses)) or not np.all(np.isfinite(K)):
        raise PathFileError(f"{path}: the matrices must be finite")
    rots = poses[:, :3, :3]
    eye = np.einsum("nij,nkj->nik", rots, rots)
    if not np.allclose(eye, np.eye(3), atol=1e-6) or not np.all(np.linalg.det(rots) > 0):
        raise PathFileError(f"{path}: the 3x3 rotation part of every matrix must be a rotation")
    return K, np.ascontiguousarray(poses[:, :3, :])


def write_path_file(path: str | Path, K: np.ndarray, cam_from_world: np.ndarray) -> Path:
    """Write a path file that :func:`read_path_file` reads back exactly."""
    poses = np.asarray(cam_from_world, np.float64)
    full = np.zeros((poses.shape[0], 4, 4))
    full[:, :3, :] = poses[:, :3, :]
    full[:, 3, 3] = 1.0
    path = Path(path)
    path.write_text(json.dumps({"intrinsics": np.asarray(K, np.float64).tolist(), "cam_from_world": full.tolist()}))
    return path
