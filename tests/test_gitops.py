"""GitOps workflow end to end: saved plans, formats, exit codes, limits, targets, import."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator

from batchplan.config.schema import load_schema
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, api_calls, batch_record, clear_calls, mutating_calls

CONFIG = """\
    version: 1
    defaults:
      project: gitops
    batches:
      - name: g1
        priority: 20
        finalized: true
      - name: g2
"""


def saved_plan(cli: CLI, name: str = "plan.json") -> Path:
    result = cli("plan", "--out", name)
    assert result.code == 0, result.out + result.err
    return cli.folder / name


def test_saved_plan_applies_when_nothing_moved(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    path = saved_plan(cli)
    document = json.loads(path.read_text())
    assert document["kind"] == "batchplan-plan"
    assert document["checksum"].startswith("sha256:")
    Draft202012Validator(load_schema("plan.schema.json")).validate(document)
    applied = cli("apply", "plan.json")
    assert applied.code == 0, applied.out + applied.err
    assert batch_record(sandbox, "g1")["status"] == "in_progress"


def test_applying_the_same_plan_twice_is_stale(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    assert cli("apply", "plan.json").code == 0
    clear_calls(sandbox)
    again = cli("apply", "plan.json")
    assert again.code == 4
    assert "stale" in again.err
    assert not mutating_calls(sandbox)


def test_a_live_change_makes_the_plan_stale(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    requests.post(f"{sandbox.url}/batches", json={"project": "gitops", "name": "g2"}, timeout=10)
    clear_calls(sandbox)
    result = cli("apply", "plan.json")
    assert result.code == 4
    assert not mutating_calls(sandbox)


def test_a_config_change_makes_the_plan_stale(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    cli.write("batchplan.yaml", CONFIG.replace("priority: 20", "priority: 21"))
    result = cli("apply", "plan.json")
    assert result.code == 4
    assert not mutating_calls(sandbox)


def test_a_state_change_makes_the_plan_stale(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", CONFIG.replace("priority: 20", "priority: 30"))
    saved_plan(cli)
    assert cli("state", "rm", "g2").code == 0
    clear_calls(sandbox)
    result = cli("apply", "plan.json")
    assert result.code == 4
    assert "state changed" in result.err
    assert not mutating_calls(sandbox)


def test_an_unrelated_batch_does_not_make_the_plan_stale(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    requests.post(
        f"{sandbox.url}/batches", json={"project": "gitops", "name": "someone-elses"}, timeout=10
    ).raise_for_status()
    assert cli("apply", "plan.json").code == 0


def test_apply_plan_file_rejects_plan_flags_and_accepts_force(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    refused = cli("apply", "plan.json", "--target", "g1")
    assert refused.code == 1
    assert "saved plan keeps its own" in refused.err
    assert cli("apply", "plan.json", "--force").code == 0


def test_another_version_or_damaged_file(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    path = saved_plan(cli)
    document = json.loads(path.read_text())
    document["batchplan_version"] = "0.0.1"
    path.write_text(json.dumps(document))
    assert cli("apply", "plan.json").code == 4
    cli.write("junk.json", '{"kind": "batchplan-plan", "oops": 1}')
    result = cli("show", "junk.json")
    assert result.code in (1, 4)
    assert "Traceback" not in result.err


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_renders_a_saved_plan(cli: CLI, fmt: str) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    result = cli("show", "plan.json", "--format", fmt)
    assert result.code == 0
    if fmt == "json":
        assert json.loads(result.out)["summary"]["create"] == 2
    elif fmt == "markdown":
        assert result.out.startswith("### Plan: 2 to create")
    else:
        assert "Plan: 2 to create, 1 to finalize, 1 to prioritize" in result.out


def test_plan_json_on_stdout_is_only_json_and_validates(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli("plan", "--format", "json")
    assert result.code == 0
    document = json.loads(result.out)
    Draft202012Validator(load_schema("plan.schema.json")).validate(document)
    assert document["summary"]["create"] == 2


def test_detailed_exitcode(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--detailed-exitcode").code == 2
    assert cli("plan").code == 0
    assert cli("apply", "--auto-approve").code == 0
    assert cli("plan", "--detailed-exitcode").code == 0


@pytest.mark.parametrize(
    ("flags", "settings", "needle"),
    [
        (["--max-finalize", "2"], "", "Refused without --force: 3 finalizes, over max_finalize 2"),
        (["--max-changes", "5"], "", "9 API calls, over max_changes 5"),
        ([], "settings: {max_finalize: 1}\n", "3 finalizes, over max_finalize 1"),
    ],
)
def test_unsafe_plans_exit_3_and_apply_refuses_without_force(
    cli: CLI, sandbox: SandboxServer, flags: list[str], settings: str, needle: str
) -> None:
    lines = ["version: 1", settings.rstrip("\n"), "defaults: {project: lim, finalized: true}"]
    lines += ["batches:"] + [f"  - {{name: l{i}, priority: 15}}" for i in range(3)]
    cli.write("batchplan.yaml", "\n".join(line for line in lines if line) + "\n")
    plan = cli("plan", *flags)
    assert plan.code == 3
    assert needle in plan.out
    assert "l2" in plan.out  # the unsafe plan is printed in full
    refused = cli("apply", "--auto-approve", *flags)
    assert refused.code == 3
    assert not mutating_calls(sandbox)
    forced = cli("apply", "--auto-approve", "--force", *flags)
    assert forced.code == 0


def test_max_forget_guards_against_a_missing_file(cli: CLI, sandbox: SandboxServer) -> None:
    names = [f"f{i}" for i in range(12)]
    body = "version: 1\ndefaults: {project: fg}\nbatches:\n" + "".join(
        f"  - name: {n}\n" for n in names
    )
    cli.write("batchplan.yaml", body)
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", "version: 1\nbatches: []\n")
    plan = cli("plan")
    assert plan.code == 3
    assert "12 forgets, over max_forget 10" in plan.out


def test_target_plans_and_applies_only_that_batch(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    plan = cli("plan", "--target", "g2")
    assert "Plan: 1 to create, 0 to finalize, 0 to prioritize" in plan.out
    assert cli("apply", "--auto-approve", "--target", "g2").code == 0
    assert mutating_calls(sandbox) == {"POST /batches": 1}
    unknown = cli("plan", "--target", "nope")
    assert unknown.code == 1
    assert "names no batch" in unknown.err


def test_reassert_priority_resends_managed_priorities(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("apply", "--auto-approve").code == 0
    clear_calls(sandbox)
    assert cli("plan", "--detailed-exitcode").code == 0
    assert cli("apply", "--auto-approve", "--reassert-priority").code == 0
    assert mutating_calls(sandbox) == {"POST /batches/{name}/prioritize": 1}


def test_import_round_trips_to_no_changes(cli: CLI, sandbox: SandboxServer) -> None:
    sandbox.store.seed("imp", "done-", 3, status="completed")
    sandbox.store.seed("imp", "run-", 2, status="in_progress")
    sandbox.store.seed("imp", "new-", 2, status="staging", callback="https://h.example/${X}")
    sandbox.store.seed("other", "o-", 2, status="staging")
    result = cli("import", "--project", "imp", "--out", "imported.yaml")
    assert result.code == 0, result.out + result.err
    document = yaml.safe_load((cli.folder / "imported.yaml").read_text())
    assert len(document["batches"]) == 7
    finalized = {b["name"]: b.get("finalized") for b in document["batches"]}
    assert finalized["done-000000"] is True and finalized["new-000000"] is None
    assert cli("validate", "imported.yaml").code == 0
    clear_calls(sandbox)
    plan = cli("plan", "--detailed-exitcode", "imported.yaml")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes." in plan.out
    assert not mutating_calls(sandbox)
    again = cli("import", "--project", "imp", "--out", "imported.yaml")
    assert again.code == 1 and "exists" in again.err


def test_import_with_assumed_priority_records_it_without_a_call(
    cli: CLI, sandbox: SandboxServer
) -> None:
    sandbox.store.seed("imp2", "x-", 2, status="in_progress")
    assert (
        cli("import", "--project", "imp2", "--assume-priority", "20", "--out", "i.yaml").code == 0
    )
    assert not mutating_calls(sandbox)
    state = json.loads((cli.folder / ".batchplan" / "state.json").read_text())
    assert {r["priority"] for r in state["batches"].values()} == {20}
    assert cli("plan", "--detailed-exitcode", "i.yaml").code == 0


# --- the reviewed plan is exactly what apply does ---------------------------------

FLAGS = """\
    version: 1
    defaults:
      project: gitops
    batches:
      - name: cats
        calibration_batch: true
        priority: 30
"""


def test_saved_plan_shows_create_time_flags_in_every_format(cli: CLI) -> None:
    cli.write("batchplan.yaml", FLAGS)
    saved_plan(cli, "p.json")
    text = cli("show", "p.json")
    assert "calibration_batch: true" in text.out
    markdown = cli("show", "p.json", "--format", "markdown")
    assert "calibration_batch: true" in markdown.out
    document = json.loads(cli("show", "p.json", "--format", "json").out)
    assert document["changes"][0]["create_flags"] == {
        "calibration_batch": True,
        "self_label_batch": False,
    }


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_prints_exactly_what_plan_printed(cli: CLI, sandbox: SandboxServer, fmt: str) -> None:
    cli.write("batchplan.yaml", CONFIG + "      - {name: g10, calibration_batch: true}\n")
    assert cli("apply", "--auto-approve", "--target", "g2").code == 0
    cli("state", "rm", "g2")
    planned = cli("plan", "--format", fmt, "--out", "p.json", "--max-finalize", "0")
    assert planned.code == 3
    shown = cli("show", "p.json", "--format", fmt)
    assert shown.code == 0
    assert shown.out == planned.out


def test_unsafe_plan_reads_as_refused_in_show_and_every_format(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--max-finalize", "0", "--out", "p.json").code == 3
    refusal = "Refused without --force: 1 finalize, over max_finalize 0."
    assert refusal in cli("show", "p.json").out
    markdown = cli("show", "p.json", "--format", "markdown").out
    assert markdown.startswith(f"### {refusal}")
    document = json.loads(cli("show", "p.json", "--format", "json").out)
    assert document["unsafe"] == [{"limit": "max_finalize", "planned": 1, "max": 0}]


def test_a_plan_of_only_conflicts_never_says_no_changes(cli: CLI, sandbox: SandboxServer) -> None:
    requests.post(f"{sandbox.url}/batches", json={"project": "other", "name": "g1"}, timeout=10)
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: g1, project: gitops}\n")
    result = cli("plan", "--out", "p.json")
    assert result.code == 1
    assert "No changes." not in result.out
    assert result.out.rstrip().endswith("1 conflict: nothing will be applied.")
    markdown = cli("show", "p.json", "--format", "markdown").out
    assert markdown.startswith("### 1 conflict: nothing will be applied.")
    assert "No changes." not in markdown


def test_a_hand_edited_plan_is_refused_before_any_call(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG.replace("priority: 20", "priority: 30"))
    path = saved_plan(cli)
    document = json.loads(path.read_text())
    assert document["changes"][0]["after"]["priority"] == 30
    document["changes"][0]["after"]["priority"] = 10
    path.write_text(json.dumps(document, indent=2))
    shown = cli("show", "plan.json")
    assert shown.code == 4
    assert "plan file was modified after it was written" in shown.err
    clear_calls(sandbox)
    applied = cli("apply", "plan.json")
    assert applied.code == 4
    assert "plan file was modified after it was written" in applied.err
    assert not api_calls(sandbox)


def test_a_stale_plan_names_what_moved_without_printing_a_fresh_plan(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    cli.write("batchplan.yaml", CONFIG.replace("priority: 20", "priority: 21"))
    requests.post(f"{sandbox.url}/batches", json={"project": "gitops", "name": "g2"}, timeout=10)
    result = cli("apply", "plan.json")
    assert result.code == 4
    assert "batchplan will perform" not in result.out + result.err
    assert "config: desired values changed for g1" in result.err
    assert "live: batches appeared: g2" in result.err


def test_stale_names_are_capped_at_ten(cli: CLI) -> None:
    body = "version: 1\ndefaults: {project: gitops}\nbatches:\n"
    cli.write("batchplan.yaml", body + "".join(f"  - {{name: n{i}}}\n" for i in range(12)))
    saved_plan(cli)
    cli.write(
        "batchplan.yaml", body + "".join(f"  - {{name: n{i}, priority: 11}}\n" for i in range(12))
    )
    result = cli("apply", "plan.json")
    assert result.code == 4
    assert "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 2 more" in result.err


def test_plan_out_refuses_to_replace_a_config_file(cli: CLI, sandbox: SandboxServer) -> None:
    path = cli.write("batchplan.yaml", CONFIG)
    clear_calls(sandbox)
    result = cli("plan", "--out", "batchplan.yaml")
    assert result.code == 1
    assert "not a batchplan plan file" in result.err
    assert path.read_text() == textwrap.dedent(CONFIG)
    assert not api_calls(sandbox)


def test_plan_out_says_where_it_saved_and_how_to_apply(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli("plan", "--out", "p.json")
    assert "Saved the plan to p.json" in result.err
    assert "batchplan apply p.json" in result.err
    assert cli("plan", "--out", "p.json").code == 0  # an earlier plan may be replaced


def test_apply_planfile_uses_the_recorded_endpoint(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    applied = cli("apply", "plan.json", endpoint=False)
    assert applied.code == 0, applied.out + applied.err
    assert batch_record(sandbox, "g1")["status"] == "in_progress"


def test_apply_planfile_with_another_endpoint_is_a_usage_error(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    result = cli("apply", "plan.json", "--endpoint", "https://api.example.com/v1", endpoint=False)
    assert result.code == 1
    assert "https://api.example.com/v1" in result.err and sandbox.url in result.err


@pytest.mark.parametrize("where", ["before", "after"])
def test_apply_planfile_with_another_endpoint_before_or_after_the_command(
    cli: CLI, sandbox: SandboxServer, where: str
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    flag = ["--endpoint", "https://api.example.com/v1"]
    argv = [*flag, "apply", "plan.json"] if where == "before" else ["apply", "plan.json", *flag]
    result = cli(*argv, endpoint=False)
    assert result.code == 1, result.out + result.err
    assert "https://api.example.com/v1" in result.err and sandbox.url in result.err
    assert not mutating_calls(sandbox)


def test_apply_planfile_from_another_folder(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    made = tmp_path / "made"
    made.mkdir()
    cli.folder = made
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cli.folder = elsewhere
    # Recorded paths resolve against the folder apply runs in, never the
    # folder the plan was made in (which still exists here): refused, no call.
    clear_calls(sandbox)
    result = cli("apply", str(made / "plan.json"))
    assert result.code == 1
    assert "batchplan.yaml: no such file or folder here" in result.err
    assert "relative to the folder `plan` ran in" in result.err
    assert not mutating_calls(sandbox)
    cli.folder = made
    assert cli("apply", "plan.json").code == 0


def test_exit_precedence_conflicts_beat_unsafe_beat_changes(
    cli: CLI, sandbox: SandboxServer
) -> None:
    requests.post(f"{sandbox.url}/batches", json={"project": "other", "name": "g2"}, timeout=10)
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--max-finalize", "0", "--detailed-exitcode").code == 1  # 1 over 3, 2
    cli.write("batchplan.yaml", CONFIG.replace("  - name: g2\n", ""))
    assert cli("plan", "--max-finalize", "0", "--detailed-exitcode").code == 3  # 3 over 2


def test_exit_precedence_for_saved_plans(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--max-finalize", "0", "--out", "p.json").code == 3
    cli.write("batchplan.yaml", CONFIG.replace("priority: 20", "priority: 21"))
    assert cli("apply", "p.json").code == 4  # stale (4) over unsafe (3)
    requests.post(f"{sandbox.url}/batches", json={"project": "other", "name": "g2"}, timeout=10)
    clear_calls(sandbox)
    assert cli("apply", "p.json").code == 1  # conflicts (1) over stale (4)
    assert not mutating_calls(sandbox)
    assert cli("apply", "p.json", "--target", "g1").code == 1  # usage (1) first


def test_a_declined_prompt_is_exit_1_apply_cancelled(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    from batchplan.commands.apply import apply
    from batchplan.options import Options
    from batchplan.plan.changes import PlanOptions
    from batchplan.views.apply import ask_approval

    (tmp_path / "batchplan.yaml").write_text(textwrap.dedent(CONFIG))
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    code = apply(
        ["batchplan.yaml"],
        Options(endpoint=sandbox.url),
        PlanOptions(),
        lines.append,
        confirm=lambda: False,
    )
    assert code == 1
    assert "Apply cancelled." in lines[-1]

    def ctrl_d(*args: object, **kwargs: object) -> str:
        raise click.exceptions.Abort()

    monkeypatch.setattr(click, "prompt", ctrl_d)
    assert ask_approval() is False


def test_metadata_is_planned_shown_saved_and_applied_by_configured_key(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Only configured keys are compared; the rest of the live object is kept."""
    from batchplan.api.session import Session
    from batchplan.apply.engine import apply_plan
    from batchplan.model import Config, DesiredBatch
    from batchplan.options import Options
    from batchplan.plan.changes import Action, PlanOptions
    from batchplan.plan.planfile import write_plan_file
    from batchplan.plan.planning import make_plan
    from batchplan.state.location import state_backend
    from batchplan.state.writer import StateWriter
    from batchplan.views.json import render_json
    from batchplan.views.markdown import render_markdown
    from batchplan.views.text import render_text

    live = {"project": "meta", "name": "m1", "metadata": {"team": "a", "keep": 1, "old": 2}}
    requests.post(f"{sandbox.url}/batches", json=live, timeout=10).raise_for_status()
    wanted = {"team": "b", "old": None}
    config = Config(
        batches=(
            DesiredBatch(name="m1", project="meta", metadata=wanted, metadata_shown=wanted),
            DesiredBatch(
                name="m2",
                project="meta",
                metadata={"token": "s3cret-value"},
                metadata_shown={"token": "${TOKEN}"},
            ),
        )
    )
    options = Options(endpoint=sandbox.url, state=str(tmp_path / "state.json"))
    with Session(options) as session:
        backend = state_backend(options, session.endpoint)
        planned = make_plan(config, session, backend, PlanOptions())
        plan = planned.plan
        assert [c.actions for c in plan.changes] == [
            (Action.ADOPT, Action.SET_METADATA),
            (Action.CREATE,),
        ]
        text = render_text(plan)
        assert '~ metadata team: "a" -> "b"' in text
        assert "~ metadata old: 2 -> (removed)" in text
        assert "keep" not in text
        assert '+ metadata token: "${TOKEN}"' in text
        path = tmp_path / "p.json"
        write_plan_file(
            str(path),
            plan,
            config_paths=["x.yaml"],
            folder=str(tmp_path),
            endpoint=session.endpoint.identity,
            endpoint_spec=sandbox.url,
            state_location=options.state,
            options=PlanOptions(),
            inputs=planned.inputs(),
            digest=planned.checksum,
        )
        for output in (text, render_json(plan), render_markdown(plan), path.read_text()):
            assert "s3cret-value" not in output
        writer = StateWriter(backend, planned.state)
        result = apply_plan(plan, session.client, writer, planned.state.batches)
        writer.close()
    assert result.ok
    assert batch_record(sandbox, "m1")["metadata"] == {"team": "b", "keep": 1}
    assert batch_record(sandbox, "m2")["metadata"] == {"token": "s3cret-value"}


def test_plan_file_never_holds_an_expanded_callback(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "https://hooks.example/s3cret-token")
    cli.write("batchplan.yaml", CONFIG + "        callback: ${HOOK_URL}\n")
    saved_plan(cli)
    text = (cli.folder / "plan.json").read_text()
    assert "${HOOK_URL}" in text
    assert "s3cret-token" not in text


def test_apply_planfile_with_another_state_is_a_usage_error(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    clear_calls(sandbox)
    result = cli("apply", "plan.json", "--state", "other-state.json")
    assert result.code == 1
    assert "other-state.json" in result.err and ".batchplan/state.json" in result.err
    assert not mutating_calls(sandbox)


def test_usage_error_comes_before_a_modified_file(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    path = saved_plan(cli)
    path.write_text(path.read_text().replace('"priority": 20', '"priority": 10'))
    assert cli("apply", "plan.json", "--target", "g1").code == 1
    assert cli("apply", "plan.json").code == 4


def test_plan_out_into_a_missing_folder_is_one_line_before_any_call(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    clear_calls(sandbox)
    target = tmp_path / "no-such-folder" / "p.json"
    result = cli("plan", "--out", str(target))
    assert result.code == 1
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        f"Error: --out {target}: folder {target.parent} does not exist"
    ], result.err
    assert not api_calls(sandbox)


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("conf/plan.yaml", "would be read as configuration"),
        (".batchplan/state.json", "where state is kept"),
        (".batchplan/state.json.lock", "where state is kept"),
    ],
)
def test_plan_out_refuses_names_the_next_run_would_misread(
    cli: CLI, sandbox: SandboxServer, out: str, words: str
) -> None:
    (cli.folder / "conf").mkdir()
    (cli.folder / ".batchplan").mkdir()
    cli.write("conf/batchplan.yaml", CONFIG)
    clear_calls(sandbox)
    result = cli("plan", "conf", "--out", out)
    assert result.code == 1 and words in result.err, result.err
    assert not (cli.folder / out).exists()
    assert not api_calls(sandbox)
    assert cli("plan", "conf").code == 0


def test_saved_line_never_offers_a_command_apply_would_refuse(cli: CLI) -> None:
    cli.write(
        "batchplan.yaml",
        CONFIG + "    settings:\n      max_finalize: 0\n",
    )
    result = cli("plan", "--out", "p.json")
    assert result.code == 3, result.err
    assert "over a safety limit" in result.err
    assert "batchplan apply p.json --force" in result.err


def test_show_of_a_folder_is_one_line_exit_1(cli: CLI, tmp_path: Path) -> None:
    result = cli("show", str(tmp_path))
    assert result.code == 1
    assert "Traceback" not in result.err and "a bug in batchplan" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_another_sandbox_is_named_by_its_database_not_sandbox_vs_sandbox(
    cli: CLI, tmp_path: Path
) -> None:
    made, elsewhere = tmp_path / "a", tmp_path / "b"
    made.mkdir()
    elsewhere.mkdir()
    cli.folder = made
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--endpoint", "sandbox", "--out", "p.json", endpoint=False).code == 0
    cli.folder = elsewhere
    cli.write("batchplan.yaml", CONFIG)
    # The recorded `sandbox` is the database under the folder apply runs in.
    result = cli("apply", str(made / "p.json"), "--endpoint", "sandbox:other.db", endpoint=False)
    assert result.code == 1
    assert f"the sandbox on {elsewhere / 'other.db'}" in result.err
    assert f"the sandbox on {elsewhere / '.batchplan' / 'sandbox.db'}" in result.err


def test_show_of_a_modified_plan_does_not_talk_about_calls(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    saved_plan(cli)
    path = cli.folder / "plan.json"
    path.write_text(path.read_text().replace('"priority": 20', '"priority": 21'))
    result = cli("show", "plan.json")
    assert result.code == 4
    assert "modified after it was written" in result.err and "call" not in result.err
