"""``batchplan status``: live status and task counts of the managed batches."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from batchplan.sandbox import SandboxServer
from batchplan.views.status import BatchProgress, status_openmetrics, status_text, totals
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
            "tasks_error": 0,
            "tasks_canceled": 0,
        },
        {
            "name": "cats_b",
            "project": "cats",
            "status": "in_progress",
            "tasks_pending": 0,
            "tasks_completed": 0,
            "tasks_error": 0,
            "tasks_canceled": 0,
        },
        {
            "name": "dogs_a",
            "project": "dogs",
            "status": "not_created",
            "tasks_pending": None,
            "tasks_completed": None,
            "tasks_error": None,
            "tasks_canceled": None,
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


# --- error and canceled tasks, --watch's end, width, OpenMetrics ------------------


def test_errored_and_canceled_tasks_are_shown_and_not_done(cli: CLI) -> None:
    applied(cli)
    sandbox_post(cli.sandbox, "/batches/cats_b/tasks", {"completed": 50, "error": 3})
    sandbox_post(cli.sandbox, "/batches/cats_a/tasks", {"completed": 9, "canceled": 1})
    result = cli("status", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    (cats_b,) = [line for line in lines if line.startswith("cats") and " cats_b " in line]
    assert "  94%" in cats_b and "100%" not in cats_b
    assert cats_b.endswith("50/53 tasks, 3 error")
    (cats_a,) = [line for line in lines if line.startswith("cats") and " cats_a " in line]
    assert cats_a.endswith("9/10 tasks, 1 canceled") and "  90%" in cats_a
    assert (
        "cats: 2 batches (1 staging, 1 in progress), 59 of 63 tasks done (93%), 3 error, "
        "1 canceled" in lines
    )
    data = json.loads(
        cli("status", "--format", "json", "--endpoint", cli.sandbox.url, endpoint=False).out
    )
    row = next(r for r in data["batches"] if r["name"] == "cats_b")
    assert (row["tasks_completed"], row["tasks_error"], row["tasks_canceled"]) == (50, 3, 0)
    assert data["totals"]["projects"]["cats"]["tasks_error"] == 3


def test_watch_ends_when_only_an_unfinalized_staging_batch_is_left(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    applied(cli)  # cats_a stays staging: nobody finalizes it
    run = Running(tmp_path, "status", "--watch", "0.2", "--endpoint", sandbox.url)
    run.wait_for(r"^cats\s+cats_b\s+in_progress")
    sandbox_post(sandbox, "/batches/cats_b/complete")
    assert run.finish(timeout=30) == 0, run.lines
    assert any(re.match(r"cats\s+cats_a\s+staging", line) for line in run.lines["out"])


def test_the_table_fits_the_terminal_width(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    long_name = "cats_" + "very_long_" * 30
    cli.write("batchplan.yaml", f"version: 1\nbatches:\n  - {{name: {long_name}, project: cats}}\n")
    assert cli("apply", "--auto-approve").code == 0
    sandbox_post(cli.sandbox, f"/batches/{long_name}/tasks", {"pending": 5, "completed": 5})
    monkeypatch.setenv("COLUMNS", "90")
    result = cli("status", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert max(len(line) for line in lines) <= 90
    (row,) = [line for line in lines if line.startswith("cats ")]
    assert "cats_very_long_" in row and "\u2026" in row and row.endswith("5/10 tasks")
    # Without a terminal (and no COLUMNS) the names stay whole, for logs and files.
    monkeypatch.delenv("COLUMNS")
    assert long_name in cli("status", "--endpoint", cli.sandbox.url, endpoint=False).out


_SAMPLE = re.compile(
    r'^(batchplan_batch_tasks|batchplan_batch_status)\{project="((?:[^"\\\n]|\\.)*)",'
    r'batch="((?:[^"\\\n]|\\.)*)",(state|status)="([a-z_]+)"\} (\d+)$'
)


def test_openmetrics_counts_per_batch_escaped_labels_and_eof(cli: CLI) -> None:
    quoted = 'cats_"q"\\x'
    cli.write(
        "batchplan.yaml",
        CONFIG + "  - {name: 'cats_\"q\"\\x', project: cats}\n",
    )
    assert cli("apply", "--auto-approve", "--target", "cats_a").code == 0
    assert cli("apply", "--auto-approve", "--target", quoted).code == 0
    sandbox_post(cli.sandbox, "/batches/cats_a/tasks", {"pending": 4, "completed": 6, "error": 2})
    result = cli("status", "--format", "openmetrics", "--endpoint", cli.sandbox.url, endpoint=False)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[-1] == "# EOF" and result.out.endswith("# EOF\n")
    samples = {}
    families = []
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            families.append(line.split()[2])
            assert line.endswith(" gauge")
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match is not None, line
        metric, project, batch, _, label, value = match.groups()
        assert project == "cats" or batch == "dogs_a"
        assert metric == families[-1]  # samples of one family are together
        samples[(metric, batch, label)] = int(value)
    assert families == ["batchplan_batch_tasks", "batchplan_batch_status"]
    assert samples[("batchplan_batch_tasks", "cats_a", "pending")] == 4
    assert samples[("batchplan_batch_tasks", "cats_a", "completed")] == 6
    assert samples[("batchplan_batch_tasks", "cats_a", "error")] == 2
    assert samples[("batchplan_batch_tasks", "cats_a", "canceled")] == 0
    assert samples[("batchplan_batch_status", "cats_a", "staging")] == 1
    assert samples[("batchplan_batch_status", "cats_a", "in_progress")] == 0
    assert samples[("batchplan_batch_status", "dogs_a", "not_created")] == 1
    assert ("batchplan_batch_tasks", "dogs_a", "pending") not in samples
    assert samples[("batchplan_batch_status", 'cats_\\"q\\"\\\\x', "staging")] == 1


def test_openmetrics_with_watch_is_refused(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli(
        "status",
        "--format",
        "openmetrics",
        "--watch",
        "1",
        "--endpoint",
        cli.sandbox.url,
        endpoint=False,
    )
    assert result.code == 1 and "--watch" in result.err


# Statuses beyond the three batchplan acts on (a real account's paused,
# cancelled, and whatever comes next) are counted and shown, not dropped.
NEWER = [
    BatchProgress("a", "cats", "staging", 1, 0, 0, 0),
    BatchProgress("b", "cats", "paused", 2, 1, 0, 0),
    BatchProgress("c", "cats", "cancelled", 0, 0, 0, 3),
    BatchProgress("d", "cats", "weird_new_status", 1, 1, 0, 0),
]


def test_the_summary_counts_every_status_the_account_has() -> None:
    summary = status_text(NEWER).splitlines()[-1]
    assert summary.startswith("cats: 4 batches (1 staging, 1 cancelled, 1 paused, ")
    assert "1 weird new status" in summary
    counted = sum(int(count) for count in re.findall(r"(\d+) [a-z ]+(?:,|\))", summary))
    assert counted == 4


def test_openmetrics_gives_each_batch_its_status_whatever_it_is() -> None:
    text = status_openmetrics(NEWER)
    ones = re.findall(
        r'batchplan_batch_status\{project="cats",batch="(\w)",status="(\w+)"\} 1', text
    )
    assert sorted(ones) == [
        ("a", "staging"),
        ("b", "paused"),
        ("c", "cancelled"),
        ("d", "weird_new_status"),
    ]


def test_a_status_named_like_a_total_does_not_overwrite_it() -> None:
    rows = [BatchProgress("a", "p", "batches", 0, 0, 0, 0), BatchProgress("b", "p", "staging")]
    total = totals(rows)["all"]
    assert total["batches"] == 2
    assert total["statuses"] == {"staging": 1, "batches": 1}
    assert (total["staging"], total["in_progress"], total["not_created"]) == (1, 0, 0)
