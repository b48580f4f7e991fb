"""The README's production set-up of a Prefect server for cinemagraph, on one machine.

    python deployments/local_server.py --data /srv/cinemagraph-prefect --port 4200

starts, bound to 127.0.0.1 only:

- PostgreSQL from Debian's ``postgresql`` package (a cluster of its own in ``DATA/pg``, created on
  first use; as root it runs as the ``postgres`` user), or SQLite with ``--sqlite``;
- the Prefect server on it, telemetry off (``PREFECT_SERVER_ANALYTICS_ENABLED=false``);
- the ``cinemagraph`` process work pool, and the automation that marks a flow run Crashed when
  it stops sending heartbeats (its process or machine died) -- see :func:`create_crash_automation`.

Then it waits; Ctrl-C stops the server and PostgreSQL.  Workers and flows need
``PREFECT_API_URL=http://127.0.0.1:PORT/api`` (printed).  The tests use the same functions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

PREFECT = [sys.executable, "-m", "prefect"]
#: Seconds between a flow run's heartbeats (Prefect's minimum is 30); the automation waits 3 of them.
HEARTBEAT_SECONDS = 30
CRASH_AUTOMATION = "cinemagraph: crash runs without heartbeats"


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder (``/usr/lib/postgresql/N/bin``), or None."""
    root = Path("/usr/lib/postgresql")
    found = sorted(root.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run the command as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_postgres(data: Path, port: int) -> str:
    """Create (first time) and start a PostgreSQL cluster in ``data`` on 127.0.0.1:``port``.

    Returns the SQLAlchemy URL of its ``prefect`` database.
    """
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL not found: install Debian's postgresql package")
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    data.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
    options = f"-k {data} -p {port} -h 127.0.0.1"
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    exists = subprocess.run(
        _as_postgres([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAc",
                      "SELECT 1 FROM pg_database WHERE datname = 'prefect'"]),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(
            _as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"]),
            check=True,
            capture_output=True,
        )
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"


def stop_postgres(data: Path) -> None:
    bin_dir = postgres_bin()
    if bin_dir is not None and (data / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )


def server_env(port: int, home: Path, database_url: str | None = None) -> dict[str, str]:
    """Environment of the server (and of workers and flows using it): private, quiet, heartbeats on."""
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
        DASK_LOGGING__DISTRIBUTED="warning",
    )
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


def start_server(env: dict[str, str], log_path: Path, timeout: float = 180) -> subprocess.Popen:
    """Start ``prefect server start`` on 127.0.0.1 and wait until its API answers."""
    import httpx

    port = env["PREFECT_SERVER_API_PORT"]
    log = open(log_path, "w")  # noqa: SIM115 - the server's log lives as long as the server
    proc = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"Prefect server exited:\n{log_path.read_text()[-3000:]}")
        time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"Prefect server did not answer within {timeout:.0f} s")


def create_crash_automation(api_url: str, heartbeat_seconds: int = HEARTBEAT_SECONDS) -> str:
    """The automation that marks a Running flow run Crashed after 3 missed heartbeats.

    Every flow run sends a ``prefect.flow-run.heartbeat`` event every
    ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds while its process lives; when neither another
    heartbeat nor a final state follows within three periods, the process is gone and the run is
    set Crashed (Prefect's "detect zombie flows" recipe).  Idempotent: returns the id.
    """
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        existing = Automation.read(name=CRASH_AUTOMATION) if _has_automation(api_url) else None
        if existing is not None:
            return str(existing.id)
        automation = Automation(
            name=CRASH_AUTOMATION,
            description="A Running flow run whose process stopped sending heartbeats is marked Crashed.",
            trigger=EventTrigger(
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=3 * heartbeat_seconds),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message="No heartbeat from the flow run's process: it died; marked Crashed.",
                )
            ],
        ).create()
        return str(automation.id)


def _has_automation(api_url: str) -> bool:
    import httpx

    found = httpx.post(f"{api_url}/automations/filter", json={}, timeout=10).json()
    return any(a["name"] == CRASH_AUTOMATION for a in found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of the server's state (PostgreSQL, PREFECT_HOME)")
    ap.add_argument("--port", type=int, default=4200, help="Prefect API/UI port on 127.0.0.1")
    ap.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port on 127.0.0.1")
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL (small set-ups)")
    ap.add_argument("--pool", default="cinemagraph", help="process work pool to create")
    args = ap.parse_args()
    data = args.data.resolve()
    (data / "home").mkdir(parents=True, exist_ok=True)
    url = None if args.sqlite else start_postgres(data / "pg", args.pg_port)
    env = server_env(args.port, data / "home", url)
    server = start_server(env, data / "server.log")
    try:
        subprocess.run([*PREFECT, "work-pool", "create", args.pool, "--type", "process"], env=env, capture_output=True)
        create_crash_automation(env["PREFECT_API_URL"])
        print(f"Prefect server on {'SQLite' if url is None else 'PostgreSQL'}: export PREFECT_API_URL={env['PREFECT_API_URL']}")
        print(f"UI: http://127.0.0.1:{args.port}   log: {data / 'server.log'}   Ctrl-C stops")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if url is not None:
            stop_postgres(data / "pg")


if __name__ == "__main__":
    main()
