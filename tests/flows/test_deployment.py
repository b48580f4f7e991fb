"""A real Prefect server on 127.0.0.1, a process work pool, the project's prefect.yaml, a worker.

The deployment of make_cinemagraph runs through the worker; the finished run and its
artifacts are read back through the API.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_LOGGING_LEVEL="WARNING",
        DASK_LOGGING__DISTRIBUTED="warning",
        PWD=str(ROOT),
    )
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = env["PREFECT_API_URL"]
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError((home / "server.log").read_text()[-2000:])
        time.sleep(1)
    else:
        proc.terminate()
        raise RuntimeError("Prefect server did not start in 120 s")
    yield url, env
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def prefect(env, *args, timeout=300):
    proc = subprocess.run(
        [*PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_deployment_runs_through_a_worker(server, blinking_clip, tmp_path):
    url, env = server
    prefect(env, "work-pool", "create", "cinemagraph", "--type", "process")
    prefect(env, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    deployments = httpx.post(f"{url}/deployments/filter", json={}).json()
    names = {d["name"] for d in deployments}
    assert {"make-cinemagraph", "process-corpus-nightly"} <= names
    nightly = next(d for d in deployments if d["name"] == "process-corpus-nightly")
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"

    out = tmp_path / "deployed"
    params = {
        "source": str(blinking_clip.path),
        "out_dir": str(out),
        "config": {"ingest": {"max_long_side": 160}, "render": {"write_gif": False}},
    }
    started = prefect(
        env, "deployment", "run", "make_cinemagraph/make-cinemagraph", "--params", json.dumps(params)
    )
    assert "Created flow run" in started
    prefect(env, "worker", "start", "--pool", "cinemagraph", "--run-once", timeout=600)

    runs = httpx.post(f"{url}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC"}).json()
    run = next(
        r for r in runs if r["deployment_id"] is not None and r["parameters"].get("out_dir") == str(out)
    )
    assert run["state_type"] == "COMPLETED", run["state"]
    assert json.loads((out / "result.json").read_text())["width"] == 160
    artifacts = httpx.post(
        f"{url}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}
    ).json()
    markdown = [a for a in artifacts if a["type"] == "markdown"]
    assert markdown and "Cinemagraph of" in markdown[0]["data"]
    assert "data:image/png;base64," in markdown[0]["data"]
    task_runs = httpx.post(
        f"{url}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run["id"]]}}}
    ).json()
    names = {t["name"].rsplit("-", 1)[0] for t in task_runs}
    assert {"ingest_video", "select_window", "classify_motion", "warp_window", "find_cyclic_regions", "render_loop",
            "encode_outputs"} <= names
    assert all(t["state_type"] == "COMPLETED" for t in task_runs)
