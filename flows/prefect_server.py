"""The temporary Prefect server a run starts when ``PREFECT_API_URL`` is unset: Prefect's own app whose
SQLite write transactions begin ``IMMEDIATE``.

Prefect's API opens its write transactions on SQLite ``DEFERRED``: the transaction reads first (creating a
task run reads the flow run's labels) and asks for the write lock only at its first write.  When another
connection commits in between (the task-run recorder, the event persister, the other worker's state
changes), SQLite cannot upgrade the stale read snapshot and answers ``SQLITE_BUSY_SNAPSHOT`` at once,
whatever the busy timeout.  The server answers 503, and Prefect's client waits 2 s before it tries again
(then 4, 8, ... s).  In ``bench_corpus`` that happened to about one request per two-worker run, every one
a ``POST /api/task_runs/`` (the parent task run of an item's subflow), and each left one worker idle for
those 2 s of a 20-s run.

An ``IMMEDIATE`` transaction takes the write lock when it begins, so no snapshot can go stale: a writer
waits for the one before it (SQLite's busy timeout, 60 s on Prefect's server) instead of failing.  The
writes of the temporary server are short, so the wait is milliseconds.

:class:`ProjectLocalServer` is Prefect's ``SubprocessASGIServer`` started with this module's
:func:`create_app`.  :func:`install_project_local_server` makes it this process's default temporary server,
the one Prefect starts on the first flow run when no API is configured; a server that ``PREFECT_API_URL``
names, or a Postgres database, is left as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.server.database.configurations import AioSqliteConfiguration
from prefect.settings import get_current_settings

from flows.local_server import LOCAL_SERVER_DEFAULTS

#: The uvicorn factory of :class:`ProjectLocalServer` (this module's :func:`create_app`).
APP_FACTORY = f"{__name__}:create_app"


class ImmediateSqliteConfiguration(AioSqliteConfiguration):
    """Prefect's SQLite configuration, but every transaction the API begins takes the write lock at once."""

    @asynccontextmanager
    async def begin_transaction(self, session, with_for_update: bool = False) -> AsyncGenerator[Any, None]:
        async with super().begin_transaction(session, with_for_update=True) as transaction:
            yield transaction


def create_app():
    """The uvicorn factory of the server process: Prefect's app, its SQLite transactions ``IMMEDIATE``."""
    from prefect.server.api.server import create_app as prefect_app
    from prefect.server.database.dependencies import MODELS_DEPENDENCIES
    from prefect.server.utilities.database import get_dialect
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    url = PREFECT_API_DATABASE_CONNECTION_URL.value()
    if get_dialect(url).name == "sqlite" and MODELS_DEPENDENCIES.get("database_config") is None:
        MODELS_DEPENDENCIES["database_config"] = ImmediateSqliteConfiguration(connection_url=url)
    return prefect_app()


class ProjectLocalServer(SubprocessASGIServer):
    """Prefect's temporary server process (port choice, health wait, stop at exit are Prefect's), whose
    app is :func:`create_app`.  The command is Prefect's own (``_run_uvicorn_command`` in Prefect 3.8,
    the version pinned) with only the factory changed."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory"]
        args += [APP_FACTORY, "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--log-level", "error", "--lifespan", "on"]
        # the project's defaults (write batching, no telemetry) where this process does not set them: a flow run
        # from Python gets them as the CLI's do (flows.local_server)
        env = {**LOCAL_SERVER_DEFAULTS, **os.environ, **server_env}
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        return subprocess.Popen(args=args, env=env)


def install_project_local_server() -> SubprocessASGIServer:
    """Make :class:`ProjectLocalServer` the temporary server Prefect starts in this process, unless a default
    server is running already.  Returns the process's default server (not started: Prefect starts it on the
    first flow run).  Idempotent.  Called through :func:`flows.local_server.use_project_local_server`, which
    leaves a configured ``PREFECT_API_URL`` alone and imports this module only when it is needed."""
    current = SubprocessASGIServer._instances.get(None)
    if current is not None and (isinstance(current, ProjectLocalServer) or current.running):
        return current
    SubprocessASGIServer._instances.pop(None, None)
    return ProjectLocalServer()
