"""The CLI's temporary Prefect server (flows/prefect_server.py): its SQLite transactions take the write
lock when they begin, so a commit between a transaction's read and its write makes the other writer wait
instead of failing the API request (503); the server process a flow run starts runs that app."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration

from flows.local_server import LOCAL_SERVER_DEFAULTS
from flows.prefect_server import APP_FACTORY, ImmediateSqliteConfiguration


def _read_then_write_while_another_commits(config_cls, db_path) -> dict:
    """A transaction of ``config_cls`` reads, another connection writes a row meanwhile, then the
    transaction writes.  Returns how each writer fared and the order the rows landed in."""
    with sqlite3.connect(db_path) as con:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE TABLE t (who TEXT)")
    other: dict = {}

    def other_writer():
        t0 = time.perf_counter()
        try:
            with sqlite3.connect(db_path, timeout=20) as con:  # waits for the lock up to 20 s
                con.execute("INSERT INTO t VALUES ('other')")
            other["ok"] = True
        except sqlite3.OperationalError as exc:
            other["ok"] = str(exc)
        other["seconds"] = time.perf_counter() - t0

    async def scenario() -> dict:
        config = config_cls(connection_url=f"sqlite+aiosqlite:///{db_path}")
        engine = await config.engine()
        session = await config.session(engine)
        outcome: dict = {}
        try:
            async with config.begin_transaction(session):
                await session.execute(sa.text("SELECT count(*) FROM t"))  # the read: a snapshot
                thread = threading.Thread(target=other_writer)
                thread.start()
                await asyncio.sleep(0.5)
                outcome["other_waited"] = thread.is_alive()
                await session.execute(sa.text("INSERT INTO t VALUES ('transaction')"))
            outcome["transaction_ok"] = True
        except sa.exc.OperationalError as exc:
            outcome["transaction_ok"] = str(exc.orig)
        finally:
            await session.close()
            await engine.dispose()
        thread.join(30)
        return outcome

    outcome = asyncio.run(scenario())
    with sqlite3.connect(db_path) as con:
        outcome["rows"] = [r[0] for r in con.execute("SELECT who FROM t ORDER BY rowid")]
    outcome["other_ok"] = other["ok"]
    return outcome


def test_prefects_deferred_transaction_fails_when_a_commit_lands_between_its_read_and_write(tmp_path):
    """The failure the project's server removes, reproduced with Prefect's own configuration."""
    seen = _read_then_write_while_another_commits(AioSqliteConfiguration, tmp_path / "p.db")
    assert seen["other_waited"] is False and seen["other_ok"] is True  # it wrote at once
    assert seen["transaction_ok"] != True and "locked" in seen["transaction_ok"]  # noqa: E712
    assert seen["rows"] == ["other"]


def test_immediate_transaction_holds_the_lock_and_the_other_writer_waits(tmp_path):
    seen = _read_then_write_while_another_commits(ImmediateSqliteConfiguration, tmp_path / "i.db")
    assert seen["transaction_ok"] is True
    assert seen["other_waited"] is True and seen["other_ok"] is True  # waited, then wrote
    assert seen["rows"] == ["transaction", "other"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [("sqlite+aiosqlite:///{tmp}/x.db", ImmediateSqliteConfiguration), ("postgresql+asyncpg://u:p@h/db", None)],
)
def test_app_factory_configures_sqlite_only(tmp_path, url, expected):
    from prefect.server.database.dependencies import MODELS_DEPENDENCIES, temporary_database_interface
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    from flows.prefect_server import create_app

    with temporary_database_interface(), temporary_settings({PREFECT_SERVER_DATABASE_CONNECTION_URL: url.format(tmp=tmp_path)}):
        MODELS_DEPENDENCIES["database_config"] = None
        app = create_app()
        config = MODELS_DEPENDENCIES["database_config"]
    assert app.routes  # Prefect's app
    assert type(config) is expected if expected else config is None


CHILD = textwrap.dedent(
    """
    import json
    from prefect import flow, task
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from flows.local_server import use_project_local_server  # the entry the run_* functions call

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:1/api"}):
        configured = use_project_local_server()  # a configured API is left alone

    @flow
    def inner(k):
        return 2 * k

    @task
    def item(k):
        return inner(k)  # a subflow inside a task, as a corpus item's

    @flow
    def outer():
        return [f.result() for f in [item.submit(k) for k in range(4)]]

    chosen = use_project_local_server()
    assert use_project_local_server() is chosen  # idempotent
    result = outer()
    server = SubprocessASGIServer()  # what Prefect's own code finds
    print(json.dumps({
        "configured": configured is None,
        "class": type(server).__name__,
        "same": server is chosen,
        "running": server.running,
        "args": list(server.server_process.args),
        "environ": dict(
            line.split("=", 1) for line in open(f"/proc/{server.server_process.pid}/environ").read().split(chr(0)) if "=" in line
        ),
        "result": result,
    }))
    """
)


def test_a_flow_run_starts_the_project_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["configured"] is True
    assert seen["class"] == "ProjectLocalServer" and seen["same"] is True and seen["running"] is True
    assert APP_FACTORY in seen["args"] and "prefect.server.api.server:create_app" not in seen["args"]
    assert seen["result"] == [0, 2, 4, 6]
    # a run from Python, not the CLI, gets the project's server defaults too: batched writes, no telemetry
    assert {k: seen["environ"].get(k) for k in LOCAL_SERVER_DEFAULTS} == LOCAL_SERVER_DEFAULTS
    assert "telemetry" not in proc.stderr


def test_flow_modules_do_not_import_the_server_app():
    """Prefect's API app takes about 2 s to import: the flow modules (and so every worker process, which
    imports them) must not pull it in; only a run that starts the temporary server does."""
    code = (
        "import sys, flows.make_cinemagraph, flows.process_corpus, flows.make_endless_loop, "
        "flows.train_display_classifier; print('prefect.server.api.server' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "False"
