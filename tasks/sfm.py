"""Structure from motion of a hand-held clip with pycolmap (COLMAP).

One job: frames in, camera intrinsics, one pose per frame and sparse 3D points
out.  A subsampled set of frames is written as PNG images to a temporary
directory; SIFT features are extracted, matched sequentially (each image with
its next ``overlap`` images plus quadratically spaced ones), and COLMAP's
incremental mapper reconstructs them on the CPU with a single shared pinhole
camera whose focal length is unknown (initialised at ``1.2 max(W, H)`` and
calibrated by bundle adjustment).  The largest reconstruction is kept.

Frames that were not sampled, or that the mapper could not register, get a
pose interpolated between the nearest registered frames (rotation by
spherical-linear interpolation, camera centre linearly) and, before the first
or after the last registered frame, extrapolated at the constant velocity of
the two nearest registered frames (see :func:`interpolate_poses`).  The
``registered`` mask of the result says which poses came from the mapper.

Conventions are those of :mod:`tasks.synthetic_scene`: pixel centres at
integer coordinates (COLMAP puts them at +0.5; this module converts),
``X_cam = R X_world + t``.  The reconstruction's scale and world frame are
COLMAP's (arbitrary similarity).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["SfMFailed", "SfMResult", "run_sfm", "interpolate_poses", "prior_focal", "focal_profile"]

#: Horizontal field of view of the focal prior (degrees): hand-held video from phone main cameras
#: (24-28 mm equivalent) after the 10-20 % crop of electronic stabilisation, and camcorders at
#: their wide end, mostly sees 55-65 degrees across.
TYPICAL_FOV_DEGREES = 60.0
#: Focal lengths (relative to the estimate) at which :func:`focal_profile` measures the reprojection error.
FOCAL_PROFILE_RATIOS = (0.85, 1.15)
#: A profile whose error rises on average less than this (relative) at those focal lengths leaves the
#: focal length poorly determined by the images (measured at 320 x 240: a plane alone 0.85 %, the scene with
#: two cards 3 %; the 256 x 192 demo clip with two cards 1.1 %: a weak flag, see the README).
FOCAL_FLAT_PROFILE = 0.01


class SfMFailed(RuntimeError):
    """Structure from motion could not recover the camera path of a clip."""


@dataclass
class SfMResult:
    """Cameras and sparse structure of a clip.

    Attributes
    ----------
    K : ndarray, shape (3, 3), float64
        Shared intrinsics (pixel centres at integer coordinates).
    cam_from_world : ndarray, shape (T, 3, 4), float64
        One pose per input frame, ``X_cam = R X_world + t``.
    registered : ndarray, shape (T,), bool
        True where the pose was estimated by the mapper, False where it was
        interpolated or extrapolated.
    points3d : ndarray, shape (P, 3), float64
        Sparse 3D points, world units of the reconstruction.
    point_errors : ndarray, shape (P,), float64
        Mean reprojection error of each point, pixels.
    obs_point, obs_frame : ndarray, shape (M,), int64
        For each observation, the row of :attr:`points3d` and the frame index.
    obs_xy : ndarray, shape (M, 2), float64
        Observed image position (x, y) of each observation, pixels.
    mean_reprojection_error : float
        Over all observations, pixels.
    focal_prior : float or None
        Focal length COLMAP started from (pixels; a typical field of view), when one was given.
    focal_profile : dict or None
        :func:`focal_profile` of the reconstruction: relative reprojection error with the focal
        length held at other ratios of the estimate.
    """

    K: np.ndarray
    cam_from_world: np.ndarray
    registered: np.ndarray
    points3d: np.ndarray
    point_errors: np.ndarray
    obs_point: np.ndarray
    obs_frame: np.ndarray
    obs_xy: np.ndarray
    mean_reprojection_error: float
    focal_prior: float | None = None
    focal_profile: dict[float, float] | None = None

    def points_seen_in(self, frame: int) -> np.ndarray:
        """Rows of :attr:`points3d` observed in ``frame`` (sorted, unique)."""
        return np.unique(self.obs_point[self.obs_frame == frame])


def _rotvec_from_matrix(rot: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rot).as_rotvec()


def _matrix_from_rotvec(vec: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(vec).as_matrix()


def interpolate_poses(known_indices: np.ndarray, known_poses: np.ndarray, n_frames: int) -> np.ndarray:
    """Fill in the poses of every frame from the poses of some frames.

    Parameters
    ----------
    known_indices : ndarray, shape (N,), int
        Strictly increasing frame indices with a known pose, ``N >= 1``.
    known_poses : ndarray, shape (N, 3, 4), float
        Their ``cam_from_world`` poses.
    n_frames : int
        Number of frames T of the output.

    Returns
    -------
    ndarray, shape (T, 3, 4), float64
        Known poses are copied exactly.  Between two known frames ``a < k < b``
        the rotation is ``exp(f log(R_b R_a^T)) R_a`` with ``f = (k-a)/(b-a)``
        (slerp) and the camera centre is ``C_a + f (C_b - C_a)``.  Outside the
        known range the same formula with the two nearest known frames and
        ``f`` outside [0, 1] extrapolates at constant velocity; with a single
        known frame its pose is repeated.

    Examples
    --------
    >>> p = np.zeros((2, 3, 4)); p[:, :, :3] = np.eye(3); p[1, 0, 3] = -2.0
    >>> float(interpolate_poses(np.array([0, 2]), p, 3)[1, 0, 3])
    -1.0
    """
    known_indices = np.asarray(known_indices, np.int64)
    known_poses = np.asarray(known_poses, np.float64)
    if known_indices.ndim != 1 or known_indices.size == 0:
        raise ValueError("known_indices must be a non-empty 1-D array")
    if known_poses.shape != (known_indices.size, 3, 4):
        raise ValueError(f"known_poses must have shape ({known_indices.size}, 3, 4), got {known_poses.shape}")
    if np.any(np.diff(known_indices) <= 0):
        raise ValueError("known_indices must be strictly increasing")
    if known_indices[0] < 0 or known_indices[-1] >= n_frames:
        raise ValueError("known_indices must lie in [0, n_frames)")
    out = np.empty((n_frames, 3, 4))
    rots = known_poses[:, :, :3]
    centres = -np.einsum("nji,nj->ni", rots, known_poses[:, :, 3])
    for k in range(n_frames):
        pos = int(np.searchsorted(known_indices, k))
        if pos < known_indices.size and known_indices[pos] == k:
            out[k] = known_poses[pos]
            continue
        if known_indices.size == 1:
            out[k] = known_poses[0]
            continue
        a = min(max(pos - 1, 0), known_indices.size - 2)
        b = a + 1
        frac = (k - known_indices[a]) / (known_indices[b] - known_indices[a])
        delta = _rotvec_from_matrix(rots[b] @ rots[a].T)
        rot = _matrix_from_rotvec(frac * delta) @ rots[a]
        centre = centres[a] + frac * (centres[b] - centres[a])
        out[k, :, :3] = rot
        out[k, :, 3] = -rot @ centre
    return out


def prior_focal(width: int, height: int, fov_degrees: float = TYPICAL_FOV_DEGREES) -> float:
    """Focal length (pixels) of a camera whose longer image side spans ``fov_degrees``.

    >>> round(prior_focal(640, 360, 60.0), 1)
    554.3
    """
    if not 0 < fov_degrees < 180:
        raise ValueError(f"fov_degrees must be in (0, 180), got {fov_degrees}")
    return 0.5 * max(width, height) / math.tan(math.radians(fov_degrees) / 2)


def _rms_error(recon) -> float:
    """Root mean square reprojection error over every observation of a pycolmap reconstruction (pixels)."""
    total = count = 0.0
    for point in recon.points3D.values():
        n = point.track.length()
        total += point.error**2 * n
        count += n
    return math.sqrt(total / count) if count else math.nan


def focal_profile(recon, ratios: Sequence[float] = FOCAL_PROFILE_RATIOS) -> dict[float, float]:
    """Reprojection error with the focal length held at ``ratio x`` the estimate, poses and points re-adjusted.

    For each ratio a copy of the reconstruction gets the focal length ``ratio * f`` and
    COLMAP's bundle adjustment refines the poses and points with the intrinsics fixed.
    Returns ``{ratio: rms error / rms error at ratio 1}``: values close to 1 mean the images
    hardly determine the focal length (a planar scene, little rotation), so the metric
    scale of the parallax is uncertain.
    """
    import pycolmap

    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = False
    options.refine_principal_point = False
    options.refine_extra_params = False
    options.print_summary = False
    base = _rms_error(recon)
    out = {}
    for ratio in ratios:
        trial = pycolmap.Reconstruction(recon)
        camera = next(iter(trial.cameras.values()))
        params = np.array(camera.params, np.float64)
        params[0] *= ratio
        camera.params = params
        trial.cameras[camera.camera_id] = camera
        config = pycolmap.BundleAdjustmentConfig()
        for image_id in trial.reg_image_ids():
            config.add_image(image_id)
        if hasattr(config, "fix_gauge"):
            config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
        # the adjuster itself, not pycolmap.bundle_adjustment, which logs to stderr whatever the log level
        pycolmap.create_default_bundle_adjuster(options, config, trial).solve()
        trial.update_point_3d_errors()
        out[float(ratio)] = _rms_error(trial) / base if base > 0 else math.nan
    return out


def run_sfm(
    frames: np.ndarray,
    *,
    step: int = 1,
    always_include: Sequence[int] = (),
    camera_model: str = "SIMPLE_PINHOLE",
    overlap: int = 10,
    max_num_features: int = 4096,
    min_registered_fraction: float = 0.5,
    num_threads: int = 2,
    seed: int = 0,
    work_dir: str | Path | None = None,
    focal_prior_fov_degrees: float | None = TYPICAL_FOV_DEGREES,
    measure_focal_profile: bool = True,
) -> SfMResult:
    """Recover intrinsics, per-frame poses and sparse points of a clip.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W, 3), uint8
        RGB frames of the analysis window.
    step : int, default 1
        Use every ``step``-th frame (always including the last one) for the
        reconstruction; the other frames' poses are interpolated.
    always_include : sequence of int, default ()
        Frames added to the sampled set whatever ``step`` is -- typically the
        reference frame, so that its sparse points (for the depth range) are
        observed directly.
    camera_model : str, default "SIMPLE_PINHOLE"
        COLMAP camera model of the single shared camera (focal unknown,
        principal point fixed at the image centre).  "SIMPLE_RADIAL" also
        estimates one radial distortion term, which this module then ignores:
        use it only for nearly distortion-free footage.
    overlap : int, default 10
        Sequential matching: each image is matched with the next ``overlap``
        images (and quadratically spaced ones beyond).
    max_num_features : int, default 4096
        SIFT features per image.
    min_registered_fraction : float, default 0.5
        Fail when the largest reconstruction registers fewer than this
        fraction of the sampled frames.
    num_threads : int, default 2
        CPU threads for extraction, matching and mapping.
    seed : int, default 0
        Random seed of COLMAP (RANSAC, mapper).
    work_dir : path, optional
        Directory for the images and the database; a temporary directory that
        is removed afterwards by default.
    focal_prior_fov_degrees : float or None, default TYPICAL_FOV_DEGREES
        Field of view across the longer image side (degrees) of the focal length COLMAP
        starts from (:func:`prior_focal`); bundle adjustment then refines it.  None:
        COLMAP's own start, ``1.2 max(W, H)``.
    measure_focal_profile : bool, default True
        Measure how well the images determine the focal length (:func:`focal_profile`).

    Returns
    -------
    SfMResult

    Raises
    ------
    SfMFailed
        When no reconstruction is found or it registers too few frames.
    ValueError
        On malformed input.

    Notes
    -----
    Yan et al. (CVPR 2017) recover the camera path of hand-held footage by
    structure from motion before the plane-sweep depth of the reference frame
    (Sec. 3 of the paper); COLMAP's incremental mapper is used here.

    Examples
    --------
    >>> from tasks.synthetic_scene import render_synthetic_clip
    >>> clip = render_synthetic_clip(n_frames=12)          # doctest: +SKIP
    >>> result = run_sfm(clip.frames)                      # doctest: +SKIP
    >>> result.cam_from_world.shape                        # doctest: +SKIP
    (12, 3, 4)
    """
    import pycolmap

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    n_frames, height, width = frames.shape[:3]
    if step < 1:
        raise ValueError("step must be >= 1")
    extra = [int(k) for k in always_include]
    if any(not 0 <= k < n_frames for k in extra):
        raise ValueError(f"always_include must hold frame indices in [0, {n_frames})")
    sampled = sorted(set(range(0, n_frames, step)) | {n_frames - 1} | set(extra))
    if len(sampled) < 2:
        raise ValueError("structure from motion needs at least two frames")

    # COLMAP logs every step of the mapper at INFO through glog on stderr; keep errors only
    pycolmap.logging.minloglevel = max(int(pycolmap.logging.minloglevel), 2)
    with tempfile.TemporaryDirectory(prefix="cinemagraph_sfm_") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        image_dir = root / "images"
        image_dir.mkdir(parents=True, exist_ok=True)
        database = root / "database.db"
        if database.exists():
            database.unlink()
        names = {}
        for index in sampled:
            name = f"{index:06d}.png"
            names[name] = index
            cv2.imwrite(str(image_dir / name), cv2.cvtColor(frames[index], cv2.COLOR_RGB2BGR))

        pycolmap.set_random_seed(seed)
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = camera_model
        if focal_prior_fov_degrees is not None:
            reader.default_focal_length_factor = prior_focal(width, height, focal_prior_fov_degrees) / max(width,
                                                                                                           height)
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = num_threads
        extraction.use_gpu = False
        extraction.sift.max_num_features = max_num_features
        pycolmap.extract_features(
            database, image_dir, camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu,
        )
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = num_threads
        matching.use_gpu = False
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = overlap
        pairing.num_threads = num_threads
        pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                  device=pycolmap.Device.cpu)

        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = num_threads
        options.random_seed = seed
        options.ba_refine_focal_length = True
        options.ba_refine_principal_point = False
        options.min_model_size = min(10, max(3, len(sampled) // 3))
        out_dir = root / "sparse"
        out_dir.mkdir(exist_ok=True)
        reconstructions = pycolmap.incremental_mapping(database, image_dir, out_dir, options)

    if not reconstructions:
        raise SfMFailed(
            f"COLMAP found no reconstruction from {len(sampled)} frames of {width}x{height}: too few "
            "matched features or too little camera translation (parallax)"
        )
    recon = max(reconstructions.values(), key=lambda r: r.num_reg_images())
    n_reg = recon.num_reg_images()
    if n_reg < 2 or n_reg < min_registered_fraction * len(sampled):
        raise SfMFailed(
            f"the largest reconstruction registers only {n_reg} of {len(sampled)} sampled frames "
            f"(needed {math.ceil(min_registered_fraction * len(sampled))}); the clip may lack texture "
            "or parallax, or be split by a cut"
        )
    if recon.num_cameras() != 1:
        raise SfMFailed(f"expected one shared camera, the reconstruction has {recon.num_cameras()}")
    camera = next(iter(recon.cameras.values()))
    K = np.array(camera.calibration_matrix(), dtype=np.float64)
    K[0, 2] -= 0.5  # COLMAP pixel centres are at +0.5
    K[1, 2] -= 0.5

    image_to_frame = {}
    known = {}
    for image_id, image in recon.images.items():
        if not image.has_pose:
            continue
        frame = names[image.name]
        image_to_frame[image_id] = frame
        known[frame] = np.array(image.cam_from_world().matrix(), dtype=np.float64)
    order = np.array(sorted(known))
    poses = interpolate_poses(order, np.stack([known[k] for k in order]), n_frames)
    registered = np.zeros(n_frames, bool)
    registered[order] = True

    points, errors, obs_point, obs_frame, obs_xy = [], [], [], [], []
    for row, (_, point) in enumerate(recon.points3D.items()):
        points.append(np.asarray(point.xyz, np.float64))
        errors.append(float(point.error))
        for element in point.track.elements:
            image = recon.images[element.image_id]
            obs_point.append(row)
            obs_frame.append(image_to_frame[element.image_id])
            obs_xy.append(np.asarray(image.points2D[element.point2D_idx].xy, np.float64) - 0.5)
    if not points:
        raise SfMFailed("the reconstruction has no 3D points")
    result = SfMResult(
        K=K,
        cam_from_world=poses,
        registered=registered,
        points3d=np.stack(points),
        point_errors=np.array(errors),
        obs_point=np.array(obs_point, np.int64),
        obs_frame=np.array(obs_frame, np.int64),
        obs_xy=np.stack(obs_xy),
        mean_reprojection_error=float(recon.compute_mean_reprojection_error()),
    )
    if focal_prior_fov_degrees is not None:
        result.focal_prior = prior_focal(width, height, focal_prior_fov_degrees)
    if measure_focal_profile:
        result.focal_profile = focal_profile(recon)
    return result
