"""End to end: the CLI against the sandbox over loopback HTTP, counting calls server-side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from batchplan.sandbox import SandboxOptions, SandboxServer
from tests.helpers import (
    CLI,
    api_calls,
    batch_record,
    clear_calls,
    mutating_calls,
    read_json,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

BASIC = """\
    version: 1
    defaults:
      project: kitten_labeling
      callback: https://hooks.example.com/scale
    batches:
      - name: b-created
        priority: 30
        finalized: true
      - name: b-staging
        priority: 20
      - name: b-plain
"""


def test_apply_then_plan_shows_no_changes_and_reapply_makes_no_call(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", BASIC)
    first = cli("plan")
    assert first.code == 0, first.err
    assert (
        "Plan: 3 to create, 1 to finalize, 2 to prioritize, 0 to adopt, 0 to forget." in first.out
    )
    assert not mutating_calls(sandbox)

    applied = cli("apply", "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    assert "Apply complete: 3 created, 2 prioritized, 1 finalized" in applied.out
    assert mutating_calls(sandbox) == {
        "POST /batches": 3,
        "POST /batches/{name}/prioritize": 2,
        "POST /batches/{name}/finalize": 1,
    }
    assert batch_record(sandbox, "b-created")["priority"] == 30
    assert batch_record(sandbox, "b-created")["status"] == "in_progress"
    assert batch_record(sandbox, "b-staging")["status"] == "staging"
    assert batch_record(sandbox, "b-plain")["priority"] is None

    clear_calls(sandbox)
    again = cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out
    assert "No changes." in again.out
    reapply = cli("apply", "--auto-approve")
    assert reapply.code == 0
    assert not mutating_calls(sandbox)


def test_plan_makes_one_list_and_one_project_check_when_all_listed(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", BASIC)
    assert cli("apply", "--auto-approve").code == 0
    clear_calls(sandbox)
    assert cli("plan").code == 0
    assert api_calls(sandbox) == {"GET /projects/{name}": 1, "GET /batches": 1}


def test_changing_one_priority_makes_exactly_one_call(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", BASIC)
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", BASIC.replace("priority: 20", "priority: 25"))
    plan = cli("plan")
    assert "20 -> 25" in plan.out
    clear_calls(sandbox)
    assert cli("apply", "--auto-approve").code == 0
    assert mutating_calls(sandbox) == {"POST /batches/{name}/prioritize": 1}
    assert batch_record(sandbox, "b-staging")["priority"] == 25


def test_non_rapid_project_batch_is_not_finalized_after_create(
    strict_sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = strict_sandbox.url
    requests.post(
        f"{base}/projects",
        json={"type": "imageannotation", "name": "classic", "rapid": False, "studio": False},
        timeout=10,
    ).raise_for_status()
    cli = CLI(strict_sandbox, tmp_path, capsys)
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        batches:
          - {name: c1, project: classic, finalized: true}
        """,
    )
    result = cli("apply", "--auto-approve")
    assert result.code == 0, result.out + result.err
    assert mutating_calls(strict_sandbox) == {"POST /batches": 1}
    assert batch_record(strict_sandbox, "c1")["status"] == "in_progress"


def conflict_setup_missing_project(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: x, project: nope}\n")


def conflict_setup_other_project(cli: CLI, sandbox: SandboxServer) -> None:
    requests.post(
        f"{sandbox.url}/batches", json={"project": "elsewhere", "name": "x"}, timeout=10
    ).raise_for_status()
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: x, project: p}\n")


def conflict_setup_callback(cli: CLI, sandbox: SandboxServer) -> None:
    requests.post(
        f"{sandbox.url}/batches",
        json={"project": "p", "name": "x", "callback": "https://old.example.com/"},
        timeout=10,
    ).raise_for_status()
    cli.write(
        "batchplan.yaml",
        "version: 1\nbatches:\n  - {name: x, project: p, callback: https://new.example.com/}\n",
    )


def conflict_setup_create_flag(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: x, project: p}\n")
    assert cli("apply", "--auto-approve").code == 0
    cli.write(
        "batchplan.yaml",
        "version: 1\nbatches:\n  - {name: x, project: p, calibration_batch: true}\n",
    )


def conflict_setup_recorded_missing(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: x, project: p}\n")
    state = cli.folder / ".batchplan" / "state.json"
    state.parent.mkdir()
    state.write_text(
        json.dumps(
            {
                "format_version": 1,
                "lineage": "3f0c7b8e-0000-4000-8000-000000000000",
                "serial": 1,
                "endpoint": sandbox.url,
                "batches": {"x": {"project": "p", "priority": 20}},
            }
        )
    )


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (conflict_setup_missing_project, "does not exist"),
        (conflict_setup_other_project, "project 'elsewhere'"),
        (conflict_setup_callback, "callback cannot change"),
        (conflict_setup_create_flag, "calibration_batch cannot change"),
        (conflict_setup_recorded_missing, "recorded in state but not found live"),
    ],
)
def test_each_conflict_fails_plan_and_refuses_apply_without_any_call(
    sandbox_factory: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: object,
    needle: str,
) -> None:
    strict = setup is conflict_setup_missing_project
    sandbox = sandbox_factory(strict_projects=strict)  # type: ignore[operator]
    cli = CLI(sandbox, tmp_path, capsys)
    setup(cli, sandbox)  # type: ignore[operator]
    clear_calls(sandbox)
    plan = cli("plan")
    assert plan.code == 1
    assert needle in plan.out
    applied = cli("apply", "--auto-approve")
    assert applied.code == 1
    assert "Apply refused: the plan has conflicts" in applied.err
    assert not mutating_calls(sandbox)


@pytest.mark.parametrize(
    "name", ["with space", "slash/inside", "hash#tag", "ünïcødé-批次", "mixed a/b #c %20"]
)
def test_hostile_batch_names_round_trip(cli: CLI, sandbox: SandboxServer, name: str) -> None:
    cli.write(
        "batchplan.yaml",
        f"version: 1\nbatches:\n  - name: {json.dumps(name)}\n    project: p\n"
        "    priority: 15\n    finalized: true\n",
    )
    result = cli("apply", "--auto-approve")
    assert result.code == 0, result.out + result.err
    record = batch_record(sandbox, name)
    assert (record["name"], record["priority"], record["status"]) == (name, 15, "in_progress")
    again = cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out


def test_250_live_batches_are_paged_and_adopted(cli: CLI, sandbox: SandboxServer) -> None:
    sandbox.store.seed("big", "live-", 250, status="in_progress")
    lines = ["version: 1", "defaults: {project: big}", "batches:"]
    lines += [f"  - name: live-{i:06d}" for i in range(250)]
    cli.write("batchplan.yaml", "\n".join(lines) + "\n")
    clear_calls(sandbox)
    plan = cli("plan")
    assert plan.code == 0, plan.err
    assert "Plan: 0 to create, 0 to finalize, 0 to prioritize, 250 to adopt, 0 to forget." in (
        plan.out
    )
    calls = api_calls(sandbox)
    assert calls == {"GET /batches": 3, "GET /projects/{name}": 1}
    assert cli("apply", "--auto-approve").code == 0
    assert not mutating_calls(sandbox)
    listed = cli("state", "list")
    assert listed.out.count("live-") == 250


@pytest.mark.parametrize("example", ["kitten_labeling", "multi-file"])
def test_examples_apply_to_the_sandbox(cli: CLI, sandbox: SandboxServer, example: str) -> None:
    target = cli.folder / example
    shutil.copytree(EXAMPLES / example, target)
    result = cli("apply", "--auto-approve", example)
    assert result.code == 0, result.out + result.err
    assert "Apply complete" in result.out
    again = cli("plan", "--detailed-exitcode", example)
    assert again.code == 0, again.out


def test_forget_drops_from_state_without_calls(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", BASIC)
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", BASIC.split("      - name: b-staging")[0])
    clear_calls(sandbox)
    result = cli("apply", "--auto-approve")
    assert result.code == 0
    assert "2 forgotten" in result.out
    assert not mutating_calls(sandbox)
    state = read_json(cli.folder / ".batchplan" / "state.json")
    assert sorted(state["batches"]) == ["b-created"]


def test_apply_without_terminal_or_auto_approve_refuses(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", BASIC)
    result = cli("apply")
    assert result.code == 1
    assert "--auto-approve" in result.err
    assert not mutating_calls(sandbox)


def test_state_of_another_endpoint_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", BASIC)
    state = cli.folder / ".batchplan" / "state.json"
    state.parent.mkdir()
    state.write_text(
        json.dumps(
            {
                "format_version": 1,
                "lineage": "l",
                "serial": 1,
                "endpoint": "https://api.scale.com/v1",
                "batches": {},
            }
        )
    )
    result = cli("plan")
    assert result.code == 1
    assert "belongs to endpoint https://api.scale.com/v1" in result.err
    assert not api_calls(sandbox)


def test_invalid_config_makes_no_call(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - name: x\n    priority: 42\n")
    for command in ("plan", "apply"):
        result = cli(command, "--auto-approve") if command == "apply" else cli(command)
        assert result.code == 1
        assert "batchplan.yaml:4:" in result.err
        assert "Traceback" not in result.err
    assert not api_calls(sandbox)


@pytest.mark.parametrize(
    "argv",
    [["plan", "--no-such-flag"], ["apply", "--parallelism", "zero"], ["nonsense"], ["state"]],
)
def test_usage_errors_exit_1_not_2(cli: CLI, argv: list[str]) -> None:
    result = cli(*argv, endpoint=False)
    assert result.code == 1
    assert "Traceback" not in result.err


def test_state_show_and_list(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", BASIC)
    assert cli("apply", "--auto-approve").code == 0
    shown = cli("state", "show", "b-created")
    assert shown.code == 0
    record = json.loads(shown.out)
    assert (record["project"], record["priority"]) == ("kitten_labeling", 30)
    missing = cli("state", "show", "nope")
    assert missing.code == 1
    assert "not in state" in missing.err


def test_unreachable_endpoint_is_a_clear_error(cli: CLI) -> None:
    cli.write("batchplan.yaml", BASIC)
    result = cli(
        "plan", "--endpoint", "http://127.0.0.1:9/v1", "--max-retries", "0", endpoint=False
    )
    assert result.code == 1
    assert "connection failed" in result.err
    assert "Traceback" not in result.err


def test_embedded_sandbox_endpoint_keeps_its_own_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sb.db"
    server = SandboxServer(SandboxOptions(db_path=str(db)))
    cli = CLI(server, tmp_path, capsys)
    cli.write("batchplan.yaml", BASIC)
    result = cli("apply", "--auto-approve", "--endpoint", f"sandbox:{db}", endpoint=False)
    assert result.code == 0, result.out + result.err
    state = read_json(tmp_path / ".batchplan" / "sandbox-state.json")
    assert state["endpoint"].startswith("sandbox:")
    again = cli("plan", "--detailed-exitcode", "--endpoint", f"sandbox:{db}", endpoint=False)
    assert again.code == 0, again.out
