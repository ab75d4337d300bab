"""``batchplan status``: live status and task counts of the managed batches."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from batchplan.sandbox import SandboxServer
from tests.helpers import CLI
from tests.test_apply_events import Running

CONFIG = """\
version: 1
batches:
  - {name: cats_a, project: cats, priority: 20}
  - {name: cats_b, project: cats, priority: 20, finalized: true}
  - {name: dogs_a, project: dogs}
"""


def sandbox_post(sandbox: SandboxServer, path: str, body: dict[str, Any] | None = None) -> None:
    url = sandbox.url.removesuffix("/v1") + "/_sandbox" + path
    requests.post(url, json=body or {}, timeout=10).raise_for_status()


def applied(cli: CLI) -> None:
    """cats_a and cats_b live (managed through state); dogs_a only in the config."""
    cli.write("batchplan.yaml", CONFIG.replace("  - {name: dogs_a, project: dogs}\n", ""))
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", CONFIG)


def test_json_lists_every_managed_batch_with_live_status(cli: CLI) -> None:
    applied(cli)
    result = cli("status", "--format", "json", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["batches"] == [
        {
            "name": "cats_a",
            "project": "cats",
            "status": "staging",
            "tasks_pending": 0,
            "tasks_completed": 0,
        },
        {
            "name": "cats_b",
            "project": "cats",
            "status": "in_progress",
            "tasks_pending": 0,
            "tasks_completed": 0,
        },
        {
            "name": "dogs_a",
            "project": "dogs",
            "status": "not_created",
            "tasks_pending": None,
            "tasks_completed": None,
        },
    ]
    cats = data["totals"]["projects"]["cats"]
    assert (cats["batches"], cats["staging"], cats["in_progress"]) == (2, 1, 1)
    assert data["totals"]["projects"]["dogs"]["not_created"] == 1
    assert data["totals"]["all"]["batches"] == 3


def test_status_makes_one_call_per_batch_and_only_reads(cli: CLI) -> None:
    # dogs_a answers 404: one GET /batches?limit=1 proves the endpoint first.
    applied(cli)
    requests.delete(cli.sandbox.url.removesuffix("/v1") + "/_sandbox/requests", timeout=10)
    assert cli("status", "--endpoint", cli.sandbox.url, endpoint=False).code == 0
    log = requests.get(
        cli.sandbox.url.removesuffix("/v1") + "/_sandbox/requests", timeout=10
    ).json()["requests"]
    assert {entry["method"] for entry in log} == {"GET"}
    assert sorted(entry["path"] for entry in log) == [
        "/v1/batches",
        "/v1/batches/cats_a/status",
        "/v1/batches/cats_b/status",
        "/v1/batches/dogs_a/status",
    ]


def test_text_shows_task_counts_with_a_bar_and_totals_per_project(cli: CLI) -> None:
    """Needs the sandbox's task counts: POST /_sandbox/batches/{name}/tasks."""
    applied(cli)
    sandbox_post(cli.sandbox, "/batches/cats_a/tasks", {"pending": 30, "completed": 10})
    sandbox_post(cli.sandbox, "/batches/cats_b/tasks", {"pending": 0, "completed": 60})
    result = cli("status", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any(
        line.split()[:3] == ["cats", "cats_a", "staging"]
        and "[#####---------------]  25%" in line
        and line.endswith("10/40 tasks")
        for line in lines
    ), result.out
    assert any("cats_b" in line and "100%" in line and "60/60 tasks" in line for line in lines)
    assert any(line.split()[:4] == ["dogs", "dogs_a", "not", "created"] for line in lines)
    assert "cats: 2 batches (1 staging, 1 in progress), 70 of 100 tasks done (70%)" in lines
    assert "dogs: 1 batch (1 not created)" in lines
    assert any(line.startswith("All projects: 3 batches") for line in lines)


def test_watch_ends_when_every_created_batch_is_completed(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    applied(cli)
    run = Running(tmp_path, "status", "--watch", "0.2", "--endpoint", sandbox.url)
    run.wait_for(r"^cats\s+cats_a\s+staging")
    sandbox_post(sandbox, "/batches/cats_a/complete")
    sandbox_post(sandbox, "/batches/cats_b/complete")
    # dogs_a is not created: waiting cannot complete it, so it is not waited for.
    assert run.finish(timeout=60) == 0, run.lines
    assert any("cats: 2 batches (2 completed)" in line for line in run.lines["out"])


def test_watch_stops_on_ctrl_c_with_exit_0(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    applied(cli)
    run = Running(tmp_path, "status", "--watch", "0.2", "--endpoint", sandbox.url)
    run.wait_for(r"^Every 0\.2 s")
    run.process.send_signal(signal.SIGINT)
    assert run.finish(timeout=30) == 0, run.lines
    assert not run.lines["err"], run.lines["err"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_endpoint_without_v1_is_named_not_every_batch_not_created(cli: CLI, fmt: str) -> None:
    cli.write("batchplan.yaml", CONFIG)
    base = cli.sandbox.url.removesuffix("/v1")
    result = cli("status", "--format", fmt, "--endpoint", base, endpoint=False)
    assert result.code == 1
    assert f"{base} does not look like the Scale API" in result.err
    assert "should end in /v1" in result.err
    assert "not created" not in result.out and "not_created" not in result.out
    assert "Traceback" not in result.err


def test_a_batch_not_created_on_the_right_endpoint_is_still_not_created(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli("status", "--format", "json", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    assert {row["status"] for row in json.loads(result.out)["batches"]} == {"not_created"}


def test_unset_callback_and_metadata_variables_do_not_stop_status(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    monkeypatch.delenv("OWNER", raising=False)
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        batches:
          - name: cats_a
            project: cats
            callback: "https://hooks.example/${HOOK_TOKEN}"
            metadata: {owner: "${OWNER}"}
        """,
    )
    result = cli("status", "--format", "json", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    assert [row["name"] for row in json.loads(result.out)["batches"]] == ["cats_a"]


@pytest.mark.parametrize("field", ["name", "project"])
def test_an_unset_variable_in_a_name_or_project_is_an_error_naming_it(
    cli: CLI, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    monkeypatch.delenv("RUN_ID", raising=False)
    values = {"name": "cats_a", "project": "cats", field: "x_${RUN_ID}"}
    cli.write(
        "batchplan.yaml",
        f"version: 1\nbatches:\n  - {{name: '{values['name']}', project: '{values['project']}'}}\n",
    )
    result = cli("status", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 1
    assert "RUN_ID" in result.err and f"batches[0].{field}" in result.err
    assert "Traceback" not in result.err
