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

# variables
FRAMES = "frames"
REFERENCE = "reference"
WARPED = "warped"
VISIBLE = "visible"
DEPTH = "depth"
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
