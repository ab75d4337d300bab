"""Real accounts: statuses beyond the three, names batchplan cannot manage, repairable
state, import without side effects, and ownership between states. Each end to end
against the sandbox over loopback HTTP, with real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from batchplan.model import BatchRecord
from batchplan.sandbox import SandboxServer
from batchplan.state import State, dumps
from batchplan.state.local import LocalState
from tests.helpers import CLI, api_calls, batch_record, clear_calls, mutating_calls

BAD_NAME = "imp_nl\n  - name: injected"
# The metadata key ownership writes: spelled out, as users see it.
LINEAGE_KEY = "batchplan.lineage"


def create_live(sandbox: SandboxServer, name: str, project: str = "imp", **fields: Any) -> None:
    answer = requests.post(
        f"{sandbox.url}/batches", json={"project": project, "name": name, **fields}, timeout=10
    )
    assert answer.status_code == 200, answer.text


def set_status(sandbox: SandboxServer, name: str, status: str) -> None:
    answer = requests.post(
        f"{sandbox.url.removesuffix('/v1')}/_sandbox/batches/{quote(name, safe='')}/status",
        json={"status": status},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def state_path(cli: CLI) -> Path:
    return cli.folder / ".batchplan" / "state.json"


def state_names(cli: CLI) -> set[str]:
    if not state_path(cli).exists():
        return set()
    return set(json.loads(state_path(cli).read_text())["batches"])


def live_metadata(sandbox: SandboxServer, name: str) -> dict[str, Any]:
    answer = requests.get(f"{sandbox.url}/batches/{quote(name, safe='')}", timeout=10)
    assert answer.status_code == 200, answer.text
    metadata: dict[str, Any] = answer.json()["metadata"]
    return metadata


NEWER = ("paused", "cancelled", "weird_new_status")


# -- statuses beyond staging, in_progress and completed -------------------------


def test_a_plan_over_paused_cancelled_and_unknown_statuses_shows_them_and_plans_no_call(
    cli: CLI, sandbox: SandboxServer
) -> None:
    """Issue: one paused/cancelled batch in a listing failed the whole plan."""
    for status in NEWER:
        create_live(sandbox, f"n_{status}")
        set_status(sandbox, f"n_{status}", status)
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: mine, project: imp}\n")
    assert cli("apply", "--auto-approve").code == 0

    text = cli("plan", "--verbose", "--detailed-exitcode")
    assert text.code == 0, text.out + text.err
    for status in NEWER:
        assert f"n_{status}  (imp, {status})" in text.out
    document = json.loads(cli("plan", "--format", "json").out)
    assert {u["batch"]: u["status"] for u in document["unmanaged"]} == {
        f"n_{status}": status for status in NEWER
    }
    assert document["changes"] == [] and document["conflicts"] == []


def test_a_config_asking_to_finalize_or_prioritize_such_a_batch_gets_a_finding_not_a_call(
    cli: CLI, sandbox: SandboxServer
) -> None:
    for status in NEWER:
        create_live(sandbox, f"n_{status}")
        set_status(sandbox, f"n_{status}", status)
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        defaults: {project: imp}
        batches:
          - {name: n_paused, finalized: true}
          - {name: n_cancelled, priority: 20}
          - {name: n_weird_new_status, metadata: {team: a}}
        """,
    )
    plan = cli("plan", "--format", "json")
    assert plan.code == 0, plan.err
    document = json.loads(plan.out)
    assert document["conflicts"] == []
    left = {w["batch"]: w for w in document["warnings"] if w["code"] == "status_left_alone"}
    assert left["n_paused"]["message"].startswith("status paused: left alone")
    assert left["n_paused"]["facts"]["asked"] == "finalize"
    assert left["n_cancelled"]["facts"] == {"status": "cancelled", "asked": "prioritize"}
    assert left["n_weird_new_status"]["facts"]["asked"] == "set metadata"
    # Adopting is a state change only; no call is planned for any of them.
    assert {c["batch"]: c["actions"] for c in document["changes"]} == {
        f"n_{s}": ["adopt"] for s in NEWER
    }
    assert document["summary"]["api_calls"] == 0

    clear_calls(sandbox)
    applied = cli("apply", "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    assert not mutating_calls(sandbox)
    assert state_names(cli) == {f"n_{s}" for s in NEWER}
    assert "status paused: left alone" in cli("plan").out


def test_a_completed_batch_is_never_prioritized_and_only_staging_is_finalized(
    cli: CLI, sandbox: SandboxServer
) -> None:
    create_live(sandbox, "done")
    set_status(sandbox, "done", "completed")
    create_live(sandbox, "running")
    set_status(sandbox, "running", "in_progress")
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        defaults: {project: imp, priority: 20, finalized: true}
        batches: [{name: done}, {name: running}]
        """,
    )
    document = json.loads(cli("plan", "--format", "json").out)
    actions = {c["batch"]: c["actions"] for c in document["changes"]}
    assert actions == {"done": ["adopt"], "running": ["adopt", "prioritize"]}


# -- names batchplan cannot manage ---------------------------------------------


def test_import_skips_a_name_with_a_control_character_and_never_writes_it(
    cli: CLI, sandbox: SandboxServer
) -> None:
    """Issue: the name went into the YAML and state, and then every command failed."""
    create_live(sandbox, BAD_NAME)
    create_live(sandbox, "fine")

    result = cli("import", "--project", "imp", "--out", "batchplan.yaml")

    assert result.code == 0, result.err
    assert '"imp_nl\\n  - name: injected": the name holds a control character' in result.out
    assert state_names(cli) == {"fine"}
    text = (cli.folder / "batchplan.yaml").read_text()
    assert "injected" not in text
    for command in (("plan",), ("state", "list"), ("state", "pull")):
        assert cli(*command).code == 0
    plan = cli("plan", "--verbose", "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    assert '"imp_nl\\n  - name: injected" cannot be managed by batchplan' in plan.out
    # Listed escaped: no line of the output starts with the injected text.
    assert not any(line.lstrip().startswith("- name: injected") for line in plan.out.splitlines())


def damaged_state(cli: CLI) -> Path:
    """A state holding a record batchplan can never have written (a control character)."""
    good = BatchRecord(name="good", project="imp", priority=20)
    state = State.new(cli.sandbox.url).successor({"good": good})
    path = state_path(cli)
    LocalState(path).write(state)
    document = json.loads(path.read_text())
    document["batches"][BAD_NAME] = {"project": "imp", "priority": None}
    path.write_text(json.dumps(document))
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: good, project: imp}\n")
    create_live(cli.sandbox, "good")
    return path


def test_a_state_with_a_bad_record_can_be_listed_and_the_record_removed(cli: CLI) -> None:
    """Issue: state list / state rm failed on such a state; only hand-editing helped."""
    path = damaged_state(cli)

    listed = cli("state", "list")
    assert listed.code == 0, listed.err
    assert "good" in listed.out
    assert '"imp_nl\\n  - name: injected": ' in listed.out
    assert "holds a control character" in listed.out
    assert not any(line.lstrip().startswith("- name") for line in listed.out.splitlines())
    as_json = json.loads(cli("state", "list", "--format", "json").out)
    assert [r["name"] for r in as_json["batches"]] == ["good"]
    assert [d["name"] for d in as_json["damaged"]] == [BAD_NAME]
    assert cli("state", "pull").code == 0

    refused = cli("plan")
    assert refused.code == 1
    assert "holds a control character" in refused.err
    assert "batchplan state rm --state .batchplan/state.json $'imp_nl\\n  - name: injected'" in (
        refused.err
    )

    removed = cli("state", "rm", BAD_NAME)
    assert removed.code == 0, removed.err
    document = json.loads(path.read_text())
    assert set(document["batches"]) == {"good"}
    assert cli("plan").code == 0


def test_the_shown_repair_command_works_in_a_real_shell(cli: CLI) -> None:
    damaged_state(cli)
    hint = cli("plan").err
    command = hint[hint.index("`batchplan state rm") + 1 :].split("`")[0]
    shell = subprocess.run(
        ["bash", "-c", command.replace("batchplan", f"{sys.executable} -m batchplan", 1)],
        cwd=cli.folder,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert shell.returncode == 0, shell.stderr
    assert state_names(cli) == {"good"}


def test_the_escaped_form_state_list_shows_also_removes_the_record(cli: CLI) -> None:
    damaged_state(cli)
    removed = cli("state", "rm", "imp_nl\\n  - name: injected")
    assert removed.code == 0, removed.err
    assert state_names(cli) == {"good"}


def test_push_force_replaces_a_state_holding_a_bad_record(cli: CLI) -> None:
    damaged_state(cli)
    fresh = State.new(cli.sandbox.url).successor(
        {"other": BatchRecord(name="other", project="imp")}
    )
    (cli.folder / "fresh.json").write_text(dumps(fresh))

    pushed = cli("state", "push", "fresh.json", "--force", "--endpoint", cli.sandbox.url)

    assert pushed.code == 0, pushed.err
    assert state_names(cli) == {"other"}


def test_removing_another_record_keeps_the_bad_one_as_it_was(cli: CLI) -> None:
    path = damaged_state(cli)
    assert cli("state", "rm", "good").code == 0
    document = json.loads(path.read_text())
    assert document["batches"] == {BAD_NAME: {"project": "imp", "priority": None}}


# -- import without side effects ----------------------------------------------


KITTENS = [f"kitten_{i}" for i in range(5)]


def test_import_without_out_is_a_preview_that_writes_nothing(
    cli: CLI, sandbox: SandboxServer
) -> None:
    """Issue: the "preview" had recorded all five in state; the real import then skipped them."""
    for name in KITTENS:
        create_live(sandbox, name, project="kittens")
    clear_calls(sandbox)

    preview = cli("import", "--project", "kittens")

    assert preview.code == 0, preview.err
    assert all(f"name: {name}" in preview.out for name in KITTENS)
    assert not state_path(cli).exists()
    assert not (cli.folder / "batchplan.yaml").exists()
    last = preview.err.strip().splitlines()[-1]
    assert "Nothing was written, state included" in last
    assert last.endswith("batchplan import --project kittens --out batchplan.yaml")
    assert not mutating_calls(sandbox)

    real = cli("import", "--project", "kittens", "--out", "batchplan.yaml")
    assert real.code == 0, real.err
    assert "already managed" not in real.out
    assert state_names(cli) == set(KITTENS)
    plan = cli("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes." in plan.out


def test_out_dash_writes_yaml_to_stdout_and_adopts(cli: CLI, sandbox: SandboxServer) -> None:
    create_live(sandbox, "a")
    result = cli("import", "--project", "imp", "--out", "-")
    assert result.code == 0, result.err
    assert result.out.startswith("# Imported by batchplan")
    assert "name: a" in result.out
    assert "Imported 1 batch" in result.err
    assert state_names(cli) == {"a"}


def test_a_shell_redirect_into_the_config_is_refused_with_a_hint_to_use_out(
    cli: CLI, sandbox: SandboxServer
) -> None:
    """Issue: `import > batchplan.yaml` said only "the file is empty"."""
    create_live(sandbox, "a")
    endpoint = ("--endpoint", sandbox.url)
    with (cli.folder / "batchplan.yaml").open("w") as out:
        run = subprocess.run(
            [sys.executable, "-m", "batchplan", "import", "--project", "imp", *endpoint],
            cwd=cli.folder,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    assert run.returncode == 1
    assert "--out" in run.stderr and "redirected into batchplan.yaml" in run.stderr
    assert not state_path(cli).exists()


def test_name_patterns_import_only_matching_batches(cli: CLI, sandbox: SandboxServer) -> None:
    for name in ("cats_1", "cats_2", "dogs_1", "Cats_3"):
        create_live(sandbox, name)
    result = cli(
        "import", "--project", "imp", "--name", "cats_*", "--name", "dogs_?", "--out", "x.yaml"
    )
    assert result.code == 0, result.err
    assert state_names(cli) == {"cats_1", "cats_2", "dogs_1"}


def test_from_state_writes_the_batches_no_config_declares_and_changes_nothing(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        defaults: {project: imp}
        batches:
          - {name: kept, priority: 15}
          - {name: lost_a, priority: 25, metadata: {team: a}}
          - {name: lost_b, finalized: true}
        """,
    )
    assert cli("apply", "--auto-approve").code == 0
    before = state_path(cli).read_text()
    # The file is lost but for one batch.
    cli.write(
        "batchplan.yaml", "version: 1\nbatches:\n  - {name: kept, project: imp, priority: 15}\n"
    )
    clear_calls(sandbox)

    result = cli("import", "--from-state", "--out", "lost.yaml")

    assert result.code == 0, result.err
    assert state_path(cli).read_text() == before
    assert not mutating_calls(sandbox)
    text = (cli.folder / "lost.yaml").read_text()
    assert "lost_a" in text and "lost_b" in text and "kept" not in text
    plan = cli("plan", "--detailed-exitcode", "batchplan.yaml", "lost.yaml")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes." in plan.out


# -- ownership ------------------------------------------------------------------

OWNED = """\
version: 1
settings: {ownership: true}
batches:
  - {name: ci_a, project: imp, priority: PRIORITY}
"""


def folder(cli: CLI, name: str, priority: int) -> CLI:
    path = cli.folder / name
    path.mkdir()
    other = CLI(cli.sandbox, path, cli.capsys)
    other.write("batchplan.yaml", OWNED.replace("PRIORITY", str(priority)))
    return other


def test_two_states_managing_one_batch_is_a_conflict_naming_the_other_lineage(
    cli: CLI, sandbox: SandboxServer
) -> None:
    """Issue: two folders both adopted ci_a with priorities 15 and 25; both said No changes."""
    create_live(sandbox, "ci_a")
    first, second = folder(cli, "one", 15), folder(cli, "two", 25)

    applied = first("apply", "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    lineage = json.loads(state_path(first).read_text())["lineage"]
    assert live_metadata(sandbox, "ci_a") == {LINEAGE_KEY: lineage}

    plan = second("plan")
    assert plan.code == 1
    assert f"managed by another state, lineage {lineage}" in plan.out + plan.err
    assert second("apply", "--auto-approve").code == 1
    assert batch_record(sandbox, "ci_a")["priority"] == 15
    assert first("plan", "--detailed-exitcode").code == 0


def test_ownership_rides_on_the_create_call_and_a_saved_plan_agrees_with_its_first_write(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", OWNED.replace("ci_a", "new_b").replace("PRIORITY", "20"))
    assert cli("plan", "--out", "saved.plan").code in (0, 2)
    clear_calls(sandbox)
    applied = cli("apply", "saved.plan")
    assert applied.code == 0, applied.out + applied.err
    assert api_calls(sandbox)["POST /batches/{name}/setMetadata"] == 0
    assert api_calls(sandbox)["POST /batches"] == 1
    lineage = json.loads(state_path(cli).read_text())["lineage"]
    assert live_metadata(sandbox, "new_b") == {LINEAGE_KEY: lineage}
    assert cli("plan", "--detailed-exitcode").code == 0


def test_without_the_setting_nothing_is_written_and_the_key_is_not_compared(
    cli: CLI, sandbox: SandboxServer
) -> None:
    create_live(sandbox, "plain", metadata={"team": "a"})
    cli.write(
        "batchplan.yaml",
        "version: 1\nbatches:\n  - {name: plain, project: imp, metadata: {team: a}}\n"
        "  - {name: made, project: imp}\n",
    )
    assert cli("apply", "--auto-approve").code == 0
    assert live_metadata(sandbox, "plain") == {"team": "a"}
    assert live_metadata(sandbox, "made") == {}
    assert cli("plan", "--detailed-exitcode").code == 0


def test_import_skips_a_batch_another_state_owns_unless_taking_ownership(
    cli: CLI, sandbox: SandboxServer
) -> None:
    create_live(sandbox, "ci_a", metadata={LINEAGE_KEY: "someone-else", "team": "x"})
    create_live(sandbox, "free")

    skipped = cli("import", "--project", "imp", "--out", "imported.yaml")
    assert skipped.code == 0, skipped.err
    assert '"ci_a": managed by another state, lineage someone-else; skipped' in skipped.out
    assert state_names(cli) == {"free"}

    taken = cli("import", "--project", "imp", "--take-ownership", "--out", "taken.yaml")
    assert taken.code == 0, taken.err
    assert state_names(cli) == {"free", "ci_a"}
    lineage = json.loads(state_path(cli).read_text())["lineage"]
    assert live_metadata(sandbox, "ci_a") == {LINEAGE_KEY: lineage, "team": "x"}
    assert LINEAGE_KEY not in (cli.folder / "taken.yaml").read_text()
    plan = cli("plan", "--detailed-exitcode", "imported.yaml", "taken.yaml")
    assert plan.code == 0, plan.out + plan.err


@pytest.mark.parametrize(
    "name",
    ["rtl\u202eexe", "zero\u200bwidth", "cafe\u0301", "n" * 1025],
    ids=["bidi", "zero-width", "nfd", "too-long"],
)
def test_names_the_config_refuses_are_never_imported(
    cli: CLI, sandbox: SandboxServer, name: str
) -> None:
    # Found in review: only control characters made a live name unmanageable,
    # so import wrote YAML that validate then refused (bidi, zero-width, NFD,
    # over 1,024 characters).
    create_live(sandbox, name)

    result = cli("import", "--project", "imp", "--out", "imported.yaml")

    assert result.code == 0, result.err
    assert "cannot be managed" in result.out or "cannot manage" in result.out
    assert cli("validate", "imported.yaml").code == 0
