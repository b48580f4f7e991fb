"""Settings of the temporary Prefect server a run starts when ``PREFECT_API_URL`` is unset.

Without ``PREFECT_API_URL`` Prefect starts a local server (uvicorn, SQLite in the Prefect home) in a
subprocess that inherits this process's environment.  Its task-run recorder writes each task-run
event in a transaction of its own by default (``batch_size = 1``).  Under a corpus run those commits
land between the reads and the writes of the API's own transactions (creating an item's subflow run
and its parent task run).  SQLite then answers "database is locked" at once, the server answers 503,
and the client waits 2 s (then 4, 8, 16, 32 s) before it tries again.  Most corpus runs lost about
2 s at their start that way.  The rarer minute-long stalls in the middle of a run, both workers idle,
came with the same "database is locked" errors in the server's log.

:func:`apply_local_server_defaults` batches those writes (the recorder's once a second, the event
persister's in larger batches), which takes most of those commits away.  It only sets variables that
are unset, so a user's own settings win, and it changes nothing on a server the run does not start
(one that ``PREFECT_API_URL`` names).  Task-run states reach the server's database up to a second
later; the flow run and its task runs themselves are unaffected.  The project's temporary server
(:mod:`flows.prefect_server`) starts with them too when a flow is run from Python rather than the CLI.
This module imports nothing heavy: it runs before Prefect is imported.
"""

from __future__ import annotations

import os

#: Environment defaults of the temporary local Prefect server (names and values as Prefect reads them).
LOCAL_SERVER_DEFAULTS: dict[str, str] = {
    # the task-run recorder commits at most once a second (up to 100 events), not once per event
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    # the event persister commits up to 500 events at a time (its interval stays 5 s)
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    # no usage telemetry: offline, each attempt logged an ERROR ("Failed to send telemetry") in the run's output
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def apply_local_server_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set :data:`LOCAL_SERVER_DEFAULTS` in ``environ`` (default ``os.environ``) where unset.

    Returns the variables it set.  Call it before the first flow run of the process starts Prefect's
    temporary server; the CLI does.
    """
    env = os.environ if environ is None else environ
    added = {k: v for k, v in LOCAL_SERVER_DEFAULTS.items() if k not in env}
    env.update(added)
    return added


def use_project_local_server():
    """Make the project's temporary Prefect server (:mod:`flows.prefect_server`) the one Prefect starts in
    this process, unless ``PREFECT_API_URL`` names a server.  Returns the process's default temporary
    server, or None.  The server module (about 2 s of imports: Prefect's whole API app) is imported only
    when it is needed, so flow modules, and the worker processes that import them, do not pay for it."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    from flows.prefect_server import install_project_local_server

    return install_project_local_server()
