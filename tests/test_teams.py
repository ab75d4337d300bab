"""Real teams: the config root, environments, saved plans that travel, variables you can review.

Each test runs the CLI against a sandbox started by the test (a URL
endpoint over loopback), in real folders under ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, batch_record, clear_calls, mutating_calls


@pytest.fixture
def cli(sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(sandbox, tmp_path, capsys)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def team_config(url: str) -> str:
    """Two environments on one sandbox, each with its own state and var file."""
    return f"""\
        version: 1
        environments:
          staging:
            endpoint: {url}
            state: .batchplan/staging.json
            variables:
              ENV: staging
          prod:
            endpoint: {url}
            state: .batchplan/prod.json
            variables:
              ENV: prod
        variables:
          PROJECT: {{description: the Scale project}}
          ENV: {{description: which environment}}
          HOOK_URL: {{description: callback host, default: "https://hooks.example.com"}}
          TOKEN: {{description: callback token, sensitive: true, default: "t0k3n"}}
        batches:
          - name: kittens_${{ENV}}
            project: ${{PROJECT}}
            priority: 20
            callback: ${{HOOK_URL}}/scale?token=${{TOKEN}}
            metadata:
              env: ${{ENV}}
        """


# --- the CI story, end to end ------------------------------------------------------


def test_ci_story_plan_in_one_checkout_apply_a_copy_then_no_changes(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    first = tmp_path / "ci1"
    write(first / "batchplan.yaml", team_config(sandbox.url))
    write(first / "staging.vars.yaml", "PROJECT: kittens_staging\n")
    cli.folder = first
    planned = cli(
        "plan", "--env", "staging", "--var-file", "staging.vars.yaml", "--out", "plan.json",
        endpoint=False,
    )  # fmt: skip
    assert planned.code == 0, planned.err
    assert "no state at .batchplan/staging.json: starting empty" in planned.err
    assert "    batchplan apply plan.json\n" in planned.err

    # A CI runner's checkout: the same files at another path; the first one stays.
    second = tmp_path / "runner" / "ci2"
    shutil.copytree(first, second)
    cli.folder = second
    applied = cli("apply", "plan.json", endpoint=False)
    assert applied.code == 0, applied.out + applied.err
    assert (
        "Applying plan.json: config batchplan.yaml, state .batchplan/staging.json, "
        "environment staging" in applied.out
    )
    assert batch_record(sandbox, "kittens_staging")["project"] == "kittens_staging"
    # The state written is the copy's, and it records its environment.
    state = json.loads((second / ".batchplan" / "staging.json").read_text())
    assert state["environment"] == "staging" and "kittens_staging" in state["batches"]
    assert not (first / ".batchplan").exists()

    again = cli("plan", "--env", "staging", "--var-file", "staging.vars.yaml", endpoint=False)
    assert again.code == 0, again.err
    assert "No changes." in again.out
    assert "no state" not in again.err


def test_saved_plan_records_paths_relative_to_where_plan_ran(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    write(tmp_path / "team" / "batchplan.yaml", team_config(sandbox.url))
    write(tmp_path / "vars" / "staging.vars.yaml", "PROJECT: kittens_staging\n")
    result = cli(
        "plan", "team", "--env", "staging", "--var-file", "vars/staging.vars.yaml",
        "--var", "TOKEN=s3cr3t", "--out", "plan.json", endpoint=False,
    )  # fmt: skip
    assert result.code == 0, result.err
    document = json.loads((tmp_path / "plan.json").read_text())
    assert document["config_paths"] == ["team"]
    assert document["var_files"] == ["vars/staging.vars.yaml"]
    assert document["var_names"] == ["TOKEN"]
    assert document["environment"] == "staging"
    assert document["state"]["location"] == "team/.batchplan/staging.json"
    assert "s3cr3t" not in (tmp_path / "plan.json").read_text()
    # The command printed holds what apply needs and the plan cannot record.
    assert "batchplan apply plan.json --var TOKEN=" in result.err


def test_the_environments_example_runs_on_the_sandbox(cli: CLI, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "environments"
    shutil.copytree(example, tmp_path / "team")
    cli.folder = tmp_path / "team"
    applied = cli("apply", "--env", "staging", "--auto-approve", endpoint=False)
    assert applied.code == 0, applied.out + applied.err
    assert "callback https://hooks.example.com/scale?token=${HOOK_TOKEN}" in applied.out
    assert "not-a-token" not in applied.out
    planned = cli("plan", "--env", "staging", "--out", "plan.json", endpoint=False)
    assert "No changes." in planned.out, planned.out + planned.err
    assert (tmp_path / "team" / ".batchplan" / "staging.json").is_file()


# --- the config root ----------------------------------------------------------------

CONFIG = """\
    version: 1
    defaults:
      project: kittens
    batches:
      - {name: k1, priority: 21}
      - {name: k2, priority: 21}
"""


def test_a_sub_folder_uses_the_state_beside_the_config(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("apply", "--auto-approve").code == 0
    (tmp_path / "sub").mkdir()
    cli.folder = tmp_path / "sub"
    result = cli("plan", "../batchplan.yaml")
    assert result.code == 0, result.err
    assert "No changes." in result.out, result.out
    assert "adopt" not in result.out and "no state" not in result.err
    assert not (tmp_path / "sub" / ".batchplan").exists()


def test_a_plan_without_state_says_so_once(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    first = cli("plan")
    assert first.err.count("no state at .batchplan/state.json: starting empty") == 1
    assert "no state" not in first.out
    assert cli("apply", "--auto-approve").code == 0
    assert "no state" not in cli("plan").err


def test_a_copied_checkout_applies_its_own_files(
    cli: CLI, sandbox: SandboxServer, tmp_path: Path
) -> None:
    first = tmp_path / "ci1"
    write(first / "batches" / "kittens.yaml", CONFIG)
    cli.folder = first
    assert cli("plan", "batches/", "--out", "plan.json").code == 0
    second = tmp_path / "ci2"
    shutil.copytree(first, second)
    # The copy's config differs: applying must read it, not the first checkout's.
    write(second / "batches" / "kittens.yaml", CONFIG.replace("priority: 21", "priority: 22"))
    cli.folder = second
    result = cli("apply", "plan.json")
    assert result.code == 4, result.out + result.err
    assert "config: desired values changed for k1, k2" in result.err
    write(second / "batches" / "kittens.yaml", CONFIG)
    result = cli("apply", "plan.json")
    assert result.code == 0, result.out + result.err
    assert (second / "batches" / ".batchplan" / "state.json").is_file()
    assert not (first / "batches" / ".batchplan").exists()


def test_a_folder_given_is_the_root(cli: CLI, sandbox: SandboxServer, tmp_path: Path) -> None:
    write(tmp_path / "configs" / "batches.yaml", CONFIG)
    assert cli("apply", "configs", "--auto-approve").code == 0
    assert (tmp_path / "configs" / ".batchplan" / "state.json").is_file()
    cli.folder = tmp_path / "configs"
    assert "No changes." in cli("plan", ".").out


# --- environments --------------------------------------------------------------------


def test_environments_must_be_chosen_and_exist(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: p\n")
    missing = cli("plan", "--var-file", "v.yaml", endpoint=False)
    assert missing.code == 1
    assert "choose one with --env NAME" in missing.err and "prod, staging" in missing.err
    unknown = cli("plan", "--env", "qa", "--var-file", "v.yaml", endpoint=False)
    assert unknown.code == 1 and "--env qa: no such environment" in unknown.err
    assert "prod, staging" in unknown.err
    assert not mutating_calls(sandbox)


def test_env_from_the_environment_variable(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: p\n")
    monkeypatch.setenv("BATCHPLAN_ENV", "prod")
    result = cli("plan", "--var-file", "v.yaml", endpoint=False)
    assert result.code == 0, result.err
    assert "kittens_prod" in result.out and "no state at .batchplan/prod.json" in result.err


def test_env_without_environments_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli("plan", "--env", "staging")
    assert result.code == 1 and "declares no environments" in result.err


def test_explicit_state_and_endpoint_win_and_are_shown(
    cli: CLI, sandbox: SandboxServer, sandbox_factory: object
) -> None:
    cli.write("batchplan.yaml", team_config("https://api.example.com/v1"))
    cli.write("v.yaml", "PROJECT: p\n")
    result = cli("plan", "--env", "staging", "--var-file", "v.yaml", "--state", "mine.json")
    assert result.code == 0, result.err
    assert f"environment staging: --endpoint {sandbox.url}, instead of" in result.err
    assert "environment staging: --state mine.json, instead of its .batchplan/staging.json" in (
        result.err
    )
    assert "no state at mine.json" in result.err


def test_a_state_of_another_environment_is_refused_naming_both(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: p\n")
    applied = cli(
        "apply", "--env", "staging", "--var-file", "v.yaml", "--auto-approve", endpoint=False
    )
    assert applied.code == 0, applied.out + applied.err
    clear_calls(sandbox)
    result = cli(
        "plan", "--env", "prod", "--var-file", "v.yaml", "--state", ".batchplan/staging.json",
        endpoint=False,
    )  # fmt: skip
    assert result.code == 1
    assert "belongs to environment staging" in result.err and "prod" in result.err
    assert not mutating_calls(sandbox)


def test_api_key_env_names_the_key_variable(cli: CLI, sandbox: SandboxServer) -> None:
    config = team_config(sandbox.url).replace(
        "state: .batchplan/prod.json",
        "state: .batchplan/prod.json\n            api_key_env: PROD_KEY",
    )
    cli.write("batchplan.yaml", config)
    cli.write("v.yaml", "PROJECT: p\n")
    result = cli("plan", "--env", "prod", "--var-file", "v.yaml", endpoint=False)
    assert result.code == 1
    assert "PROD_KEY is not set" in result.err


def test_apply_planfile_with_another_env_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: p\n")
    made = cli(
        "plan", "--env", "staging", "--var-file", "v.yaml", "--out", "p.json", endpoint=False
    )
    assert made.code == 0, made.err
    result = cli("apply", "p.json", "--env", "prod", endpoint=False)
    assert result.code == 1
    assert "--env prod differs from the environment recorded" in result.err
    assert not mutating_calls(sandbox)


# --- saved plans ---------------------------------------------------------------------


def test_apply_planfile_reads_the_recorded_var_files(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG.replace("project: kittens", "project: ${PROJECT}"))
    cli.write("staging.vars.yaml", "PROJECT: kittens_staging\n")
    assert cli("plan", "--var-file", "staging.vars.yaml", "--out", "plan.json").code == 0
    result = cli("apply", "plan.json")
    assert result.code == 0, result.out + result.err
    assert batch_record(sandbox, "k1")["project"] == "kittens_staging"


def test_a_changed_var_file_makes_the_saved_plan_stale(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG.replace("project: kittens", "project: ${PROJECT}"))
    cli.write("staging.vars.yaml", "PROJECT: kittens_staging\n")
    assert cli("plan", "--var-file", "staging.vars.yaml", "--out", "plan.json").code == 0
    cli.write("staging.vars.yaml", "PROJECT: kittens_other\n")
    result = cli("apply", "plan.json")
    assert result.code == 4, result.out + result.err
    assert not mutating_calls(sandbox)


def test_apply_planfile_asks_for_each_var_by_name(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG.replace("project: kittens", "project: ${PROJECT}"))
    made = cli("plan", "--var", "PROJECT=kittens_x", "--out", "plan.json")
    assert made.code == 0
    assert "batchplan apply plan.json --var PROJECT=" in made.err
    assert json.loads((cli.folder / "plan.json").read_text())["var_names"] == ["PROJECT"]
    missing = cli("apply", "plan.json")
    assert missing.code == 1
    assert "--var PROJECT=VALUE" in missing.err and "not set" not in missing.err
    assert not mutating_calls(sandbox)
    assert cli("apply", "plan.json", "--var", "PROJECT=kittens_x").code == 0


def test_a_plan_file_with_config_paths_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--out", "p.json").code == 0
    result = cli("apply", "p.json", "batchplan.yaml")
    assert result.code == 1
    assert "a saved plan is applied alone" in result.err
    assert "format_version" not in result.err and len(result.err.splitlines()) == 1
    assert not mutating_calls(sandbox)


# --- variables you can review -------------------------------------------------------


def test_plans_show_declared_values_and_hide_sensitive_ones(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: kittens_staging\n")
    result = cli("plan", "--env", "staging", "--var-file", "v.yaml", endpoint=False)
    assert result.code == 0, result.err
    assert "https://hooks.example.com/scale?token=${TOKEN}" in result.out
    assert 'env: "staging"' in result.out or "env: staging" in result.out
    assert "t0k3n" not in result.out


def test_without_a_variables_block_values_stay_hidden(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "https://real.example.com")
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        batches:
          - name: k1
            project: kittens
            callback: ${HOOK_URL:-https://fallback.example.com}/scale
        """,
    )
    result = cli("plan")
    assert result.code == 0, result.err
    assert "${HOOK_URL}/scale" in result.out
    assert "fallback.example.com" not in result.out and "real.example.com" not in result.out


def test_an_undeclared_variable_is_an_error_before_any_call(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        variables:
          PROJECT: {}
        batches:
          - name: k1
            project: ${PROJECT}
            callback: https://h.example.com/${PATH_PART}
        """,
    )
    clear_calls(sandbox)
    result = cli("plan", "--var", "PROJECT=p", "--var", "PATH_PART=x")
    assert result.code == 1
    assert "batchplan.yaml:7:" in result.err
    assert "variable 'PATH_PART' is not declared" in result.err
    assert not mutating_calls(sandbox) and "Traceback" not in result.err
    validated = cli("validate")
    assert validated.code == 1 and "PATH_PART" in validated.out + validated.err


def test_a_var_file_key_that_declares_nothing_is_a_warning(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: p\nPRIOO: 29\n")
    result = cli("plan", "--env", "staging", "--var-file", "v.yaml", endpoint=False)
    assert result.code == 0, result.err
    assert "warning: v.yaml:2:1: PRIOO is not declared" in result.err


def test_a_var_name_that_declares_nothing_is_a_warning(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    args = ("--var", "PROJECT=p", "--var", "PRIOO=29")
    result = cli("plan", "--env", "staging", *args, endpoint=False)
    assert result.code == 0, result.err
    assert "warning: --var PRIOO: PRIOO is not declared in variables" in result.err


def test_a_nested_default_is_refused_at_validate(cli: CLI) -> None:
    cli.write(
        "batchplan.yaml",
        """\
        version: 1
        batches:
          - name: b_${X:-${Y}}
            project: p
        """,
    )
    result = cli("validate", "--var", "Y=why")
    assert result.code == 1
    assert "nested defaults are not supported" in result.out + result.err


def test_status_and_state_commands_take_env(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", team_config(sandbox.url))
    cli.write("v.yaml", "PROJECT: p\n")
    applied = cli(
        "apply", "--env", "staging", "--var-file", "v.yaml", "--auto-approve", endpoint=False
    )
    assert applied.code == 0, applied.out + applied.err
    listed = cli("state", "list", "--env", "staging")
    assert listed.code == 0, listed.err
    assert "kittens_staging" in listed.out
    assert "kittens_staging" not in cli("state", "list", "--env", "prod").out
    status = cli("status", "--env", "staging", "--var-file", "v.yaml")
    assert status.code == 0, status.out + status.err
    assert "kittens_staging" in status.out
    refused = cli("status", "--var-file", "v.yaml")
    assert refused.code == 1 and "choose one with --env NAME" in refused.err


def test_the_store_refuses_to_write_another_environments_state(tmp_path: Path) -> None:
    from dataclasses import replace

    from batchplan.errors import StateError
    from batchplan.state import State, loads
    from batchplan.state.local import LocalState

    location = tmp_path / "state.json"
    staging = State.new("https://api.example.com/v1", "staging")
    LocalState(location).write(replace(staging, serial=1))
    assert loads(location.read_text(), str(location)).environment == "staging"
    store = LocalState(location)
    stored = store.read()
    assert stored is not None
    with pytest.raises(StateError, match="belongs to environment staging, not prod"):
        store.write(replace(stored, serial=2, environment="prod"))
    # A state from before environments is written as it always was.
    plain = State.new("https://api.example.com/v1")
    LocalState(tmp_path / "plain.json").write(replace(plain, serial=1))
    assert '"environment"' not in (tmp_path / "plain.json").read_text()


@pytest.mark.parametrize(
    "text",
    [
        # Block style: only the declarations' lines are pre-read.
        "version: 1\nenvironments:\n  qa:\n    state: qa.json\n"
        "variables:\n  A: {sensitive: true}\nbatches: []\n",
        # Flow (JSON) style: the whole file is read.
        '{"version": 1, "environments": {"qa": {"state": "qa.json"}},'
        ' "variables": {"A": {"sensitive": true}}, "batches": []}\n',
    ],
)
def test_declarations_are_read_in_any_style(tmp_path: Path, text: str) -> None:
    from batchplan.config.environments import read_declarations

    path = write(tmp_path / "c.yaml", text)
    found = read_declarations([str(path)])
    assert found.environments is not None and found.environments["qa"].state == "qa.json"
    assert found.variables is not None and found.variables["A"].sensitive
