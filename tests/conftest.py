"""Test environment: a quiet, offline Prefect in a temporary home, and shared fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# before anything imports prefect or distributed
_HOME = tempfile.mkdtemp(prefix="cinemagraph-prefect-home-")
# every test process (xdist makes one per worker) removes its own home when it exits
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (SQLite in a temp dir) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def blinking_clip(tmp_path_factory):
    """A steady H.264 clip with three blinking lights whose masks and periods are known."""
    from tasks.synthetic import make_blinking_clip

    path = tmp_path_factory.mktemp("clips") / "blinking.mp4"
    return make_blinking_clip(path)


def installed_package_file(distribution: str, suffix: str) -> Path | None:
    """A data file shipped inside an installed wheel, found without importing the package."""
    from importlib import metadata

    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            path = Path(f.locate())
            if path.exists():
                return path
    return None
