"""The 3D cinemagraph pipeline (``[render3d]``, moving-camera footage): the camera glides through the looping scene.

Stages of one item, after the 2D cinemagraph:

* :mod:`tasks.render3d.layers` -- layered depth image of the reference view as coloured points
  (front layer from the reference depth, back layers from other frames behind depth edges);
* :mod:`tasks.render3d.paths` -- camera paths ``zoom_in``, ``swing``, ``circle`` and path files;
* :mod:`tasks.render3d.render` -- z-buffered splatting (:mod:`kernels.splat`), pin-hole filling,
  in-painting of what no frame saw (flagged);
* :mod:`tasks.render3d.stage` -- the Prefect task that reads and writes the store and encodes
  ``cinemagraph_3d.mp4`` / ``.gif``.
"""

from tasks.render3d.layers import Layers, build_layers
from tasks.render3d.paths import PathFileError, named_path, read_path_file, write_path_file
from tasks.render3d.render import render_frame, render_path
from tasks.render3d.stage import Render3dRefused, refusal, render_3d, render_3d_task

__all__ = [
    "Layers",
    "PathFileError",
    "Render3dRefused",
    "build_layers",
    "named_path",
    "read_path_file",
    "refusal",
    "render_3d",
    "render_3d_task",
    "render_frame",
    "render_path",
    "write_path_file",
]
