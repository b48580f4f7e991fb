"""``render3d`` in the flow on footage without depth: refused with one clear line, the 2D cinemagraph still made.

The 3D cinemagraph of moving-camera footage is tested on the hand-held run of
``tests/flows/test_moving_camera.py`` (one moving-camera flow run serves both).
"""

from __future__ import annotations

from schemas import names as N
from schemas.config import PipelineConfig


def test_steady_footage_refuses_render3d_in_one_line(prefect_harness, blinking_clip, tmp_path):
    from flows.make_cinemagraph import run_make_cinemagraph

    config = PipelineConfig()
    config.render3d.enabled = True
    config.ingest.end_frame = 24  # a short, cheap run: only the refusal is under test
    config.displays.enabled = False
    result = run_make_cinemagraph(blinking_clip.path, tmp_path / "out", config)
    assert result.render3d is None and result.outputs.mp4
    refused = [w for w in result.warnings if "render3d refused" in w]
    assert len(refused) == 1 and "\n" not in refused[0] and "aligned as steady" in refused[0]
    assert blinking_clip.path.name in refused[0]
    assert not (tmp_path / "out" / N.MP4_3D_NAME).exists()
