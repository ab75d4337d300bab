"""Series that roll and targets by pattern: rename hints only for likely renames, globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchplan.plan.changes import Action, FindingCode
from batchplan.plan.words import finding_message
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, api_calls, mutating_calls
from tests.test_diff import desired, live, record, run

MONTHS = [f"kittens_2024-{m:02d}" for m in range(1, 13)]


def test_moving_a_monthly_window_gives_forgets_and_creates_without_hints() -> None:
    # Months 1-6 applied; the window moves to 4-9.
    applied = MONTHS[0:6]
    wanted = MONTHS[3:9]
    plan = run(
        [desired(name, priority=20) for name in wanted],
        [live(name) for name in applied],
        [record(name, priority=20) for name in applied],
    )
    forgotten = [c.batch for c in plan.changes if Action.FORGET in c.actions]
    created = [c.batch for c in plan.changes if Action.CREATE in c.actions]
    assert forgotten == MONTHS[0:3]
    assert created == MONTHS[6:9]
    assert plan.warnings == ()


def test_one_dropped_and_one_created_with_the_same_fields_is_one_sentence() -> None:
    plan = run(
        [desired("cats_v2", priority=20, callback="https://h/x")],
        [live("cats_v1", callback="https://h/x")],
        [record("cats_v1", priority=20)],
    )
    (hint,) = plan.warnings
    assert hint.code is FindingCode.NAME_CANNOT_CHANGE and hint.batch == "cats_v1"
    text = finding_message(hint)
    assert "cats_v2" in text
    # One sentence naming one new batch: no sentence break, no clause list.
    assert ". " not in text and ":" not in text and ";" not in text
    assert text.startswith("looks renamed to cats_v2")


def test_a_new_batch_with_other_fields_is_no_rename() -> None:
    plan = run(
        [desired("cats_v2", priority=25)],
        [live("cats_v1")],
        [record("cats_v1", priority=20)],
    )
    assert plan.warnings == ()


def test_a_dropped_batch_in_another_project_is_no_rename() -> None:
    plan = run(
        [desired("cats_v2", project="other")],
        [live("cats_v1")],
        [record("cats_v1")],
    )
    assert plan.warnings == ()


def test_a_different_callback_is_no_rename() -> None:
    plan = run(
        [desired("cats_v2", callback="https://h/new")],
        [live("cats_v1", callback="https://h/old")],
        [record("cats_v1")],
    )
    assert plan.warnings == ()


SERIES = """\
version: 1
batches:
  - name: "kittens_${each.month}"
    project: kitten_labeling
    priority: 20
    for_each:
      month: ["2024-01", "2024-02", "2024-03"]
  - name: puppies_2024-01
    project: kitten_labeling
"""


@pytest.fixture
def cli(sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(sandbox, tmp_path, capsys)


def test_a_glob_target_selects_the_series(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", SERIES)
    result = cli("plan", "--target", "kittens_2024-*")
    assert result.code == 0, result.err
    assert "Plan: 3 to create" in result.out
    assert "puppies_2024-01" not in result.out
    assert "Targets only: kittens_2024-*" in result.out
    assert cli("apply", "--auto-approve", "--target", "kittens_2024-0[12]").code == 0
    assert mutating_calls(sandbox)["POST /batches"] == 2


def test_a_glob_matching_nothing_is_an_error_naming_it(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", SERIES)
    result = cli("plan", "--target", "kittens_2025-*", "--target", "puppies_2024-01")
    assert result.code == 1
    assert "'kittens_2025-*'" in result.err
    assert "puppies" not in result.err
    assert api_calls(sandbox) == {}


def test_plan_compact_and_show_compact_print_the_same(cli: CLI) -> None:
    cli.write("batchplan.yaml", SERIES)
    planned = cli("plan", "--compact", "--out", "plan.json")
    assert planned.code == 0, planned.err
    assert "  kitten_labeling: 4 to create, 3 to prioritize" in planned.out
    assert len([line for line in planned.out.splitlines() if line.startswith("    +  ")]) == 4
    shown = cli("show", "plan.json", "--compact")
    assert shown.code == 0 and shown.out == planned.out
    markdown = cli("show", "plan.json", "--compact", "--format", "markdown")
    assert "- `kitten_labeling`: 4 to create, 3 to prioritize" in markdown.out


def test_compact_json_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", SERIES)
    result = cli("plan", "--compact", "--format", "json")
    assert result.code == 1
    assert "--compact" in result.err and "json" in result.err
    assert api_calls(sandbox) == {}


def window(first: int, last: int) -> str:
    months = ", ".join(f'"2024-{m:02d}"' for m in range(first, last + 1))
    return f"""\
version: 1
batches:
  - name: "kittens_${{each.month}}"
    project: kitten_labeling
    priority: 20
    for_each:
      month: [{months}]
"""


def test_moving_a_window_on_the_sandbox_prints_no_rename_warning(cli: CLI) -> None:
    cli.write("batchplan.yaml", window(1, 6))
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", window(4, 9))
    result = cli("plan")
    assert result.code == 0, result.err
    assert "3 to create" in result.out and "3 to forget" in result.out
    assert "Warnings:" not in result.out and "renamed" not in result.out
