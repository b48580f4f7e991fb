"""The temporary Prefect server's write batching (flows/local_server.py): names Prefect reads, a
user's settings win, and a real server started with them still records every task run."""

import json
import os
import subprocess
import sys
import textwrap

from flows.local_server import LOCAL_SERVER_DEFAULTS, apply_local_server_defaults


def test_defaults_fill_only_what_is_unset():
    env = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "7", "OTHER": "x"}
    added = apply_local_server_defaults(env)
    assert env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] == "7"  # the user's value stays
    assert "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE" not in added
    assert set(added) == set(LOCAL_SERVER_DEFAULTS) - {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"}
    assert all(env[k] == v for k, v in added.items())
    assert apply_local_server_defaults(env) == {}  # nothing left to add


CHILD = textwrap.dedent(
    """
    import json, time
    from flows.cli import _quiet_environment
    _quiet_environment()  # what every CLI command does first
    from prefect import flow, get_client, task
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    services = get_current_settings().server.services
    seen = {
        "recorder_batch": services.task_run_recorder.batch_size,
        "recorder_flush": services.task_run_recorder.flush_interval,
        "persister_batch": services.event_persister.batch_size,
    }

    @task
    def double(k):
        return 2 * k

    @flow
    def three():
        return [double.submit(k).result() for k in range(3)]

    with prefect_test_harness(server_startup_timeout=90):  # a server process with this environment
        state = three(return_state=True)
        with get_client(sync_client=True) as client:
            for _ in range(40):  # recorded within about a second of the flow's end
                runs = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
                )
                if len(runs) == 3 and all(r.state_type.value == "COMPLETED" for r in runs):
                    break
                time.sleep(0.25)
        seen["result"] = state.result()
        seen["recorded"] = sorted(r.state_type.value for r in runs)
    print(json.dumps(seen))
    """
)


def test_cli_environment_reaches_a_real_server_and_task_runs_are_recorded(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_SERVER_DEFAULTS and not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["recorder_batch"] == int(LOCAL_SERVER_DEFAULTS["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"])
    assert seen["recorder_flush"] == float(LOCAL_SERVER_DEFAULTS["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"])
    assert seen["persister_batch"] == int(LOCAL_SERVER_DEFAULTS["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE"])
    assert seen["result"] == [0, 2, 4]
    assert seen["recorded"] == ["COMPLETED"] * 3
