"""Dimension and variable names of the per-item store: the contract between stages.

See ``shared/DESIGN.md``.  A stage may add variables but never renames these.
"""

from __future__ import annotations

# dimensions
TIME = "time"
Y = "y"
X = "x"
CHANNEL = "channel"
LOOP_TIME = "loop_time"
WINDOW_TIME = "window_time"  # time axis of the analysis window; its coordinate holds indices into TIME
LEVEL = "level"
BOUND = "bound"  # the (start, stop) pair of an interval
POINT = "point"  # sparse SfM points
XYZ = "xyz"
ROW3 = "row3"  # rows of 3 x 3 and 3 x 4 camera matrices
COL3 = "col3"
COL4 = "col4"

# variables
FRAMES = "frames"
REFERENCE = "reference"
WARPED = "warped"
VISIBLE = "visible"
DEPTH = "depth"
# cameras of a moving-camera window (structure from motion), float64
CAMERA_INTRINSICS = "camera_intrinsics"  # (row3, col3): shared K, pixel centres at integer coordinates
CAM_FROM_WORLD = "cam_from_world"  # (window_time, row3, col4): X_cam = R X_world + t
CAMERA_REGISTERED = "camera_registered"  # (window_time,) bool: pose from the mapper, not interpolated
POINTS3D = "points3d"  # (point, xyz): sparse points, world units of the reconstruction
POINT_ERROR = "point_error"  # (point,): mean reprojection error (pixels)
POINT_IN_REFERENCE = "point_in_reference"  # (point,) bool: observed in the reference frame
HOMOGRAPHY = "homography"  # (window_time, row3, col3): frame pixel -> reference pixel (homography mode)
CAMERA_VARIABLES = (CAMERA_INTRINSICS, CAM_FROM_WORLD, CAMERA_REGISTERED, POINTS3D, POINT_ERROR, POINT_IN_REFERENCE)
CYCLIC_SCORE = "cyclic_score"
CYCLIC_INTERVAL = "cyclic_interval"
CYCLIC_AMPLITUDE = "cyclic_amplitude"
CYCLIC_MASK = "cyclic_mask"
SEGMENTS = "segments"
DISPLAY_MASK = "display_mask"
ANIMATED_MASK = "animated_mask"
LOOP_PERIOD = "loop_period"
LOOP_START = "loop_start"
LOOP = "loop"

# file names inside an item's output folder
STORE_NAME = "store.zarr"
RESULT_NAME = "result.json"
MP4_NAME = "cinemagraph.mp4"
GIF_NAME = "cinemagraph.gif"
WEBP_NAME = "cinemagraph.webp"

# 3D cinemagraph (render3d, moving-camera footage); `frame` is the output frame of the 3D loop
# (its own axis: its length may differ from the 2D loop's `loop_time`)
FRAME = "frame"
CAMERA_PATH = "camera_path"  # (frame, row3, col4) float64: world-to-camera [R | t] of every output frame
CAMERA_PATH_INTRINSICS = "camera_path_intrinsics"  # (row3, col3) float64
LOOP_3D = "loop_3d"  # (frame, y, x, channel) uint8
LOOP_3D_FILLED = "loop_3d_filled"  # (frame, y, x) bool: pixels no frame saw, filled by in-painting
RENDER3D_VARIABLES = (CAMERA_PATH, CAMERA_PATH_INTRINSICS, LOOP_3D, LOOP_3D_FILLED)
MP4_3D_NAME = "cinemagraph_3d.mp4"
GIF_3D_NAME = "cinemagraph_3d.gif"
