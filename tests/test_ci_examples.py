"""The CI examples, the GitHub Action and the pre-commit hook use only what exists.

Every ``batchplan ...`` command line in ``examples/ci/`` and
``.pre-commit-hooks.yaml`` is parsed by click itself (``make_context``: the
real option names, types and choices, without running anything), so a
renamed flag breaks this test instead of a user's pipeline. Steps that use
the Action (``action.yml``) are turned into command lines by running the
Action's own script with a stand-in ``batchplan`` that records its
arguments. The files are also checked against the GitHub and GitLab schemas
that check-jsonschema ships.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from batchplan.cli import cli

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
ACTION = ROOT / "action.yml"
MARKER = "<!-- batchplan-plan -->"

# Where a new shell command may start, after shlex has split off operators.
COMMAND_STARTS = {";", "&&", "||", "|", "(", "{", "!", "then", "do", "else", "if"}
COMMAND_ENDS = {";", "&&", "||", "|", ")", "}", "&", ">", ">>", "<"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def github_scripts() -> list[str]:
    workflow = load(GITHUB)
    return [
        step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]


def is_batchplan_action(step: Mapping[str, Any]) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/batchplan@.+", step.get("uses", "")))


# --- the Action, run for real with a stand-in batchplan ----------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def action_defaults() -> dict[str, str]:
    return {name: str(spec.get("default", "")) for name, spec in load(ACTION)["inputs"].items()}


def evaluate(text: str, inputs: Mapping[str, str], runner_temp: Path) -> str:
    """The few expressions action.yml uses, as the runner evaluates them."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression.startswith("inputs."):
            return str({**action_defaults(), **inputs}[expression.removeprefix("inputs.")])
        known = {"github.action_path": str(ROOT), "runner.temp": str(runner_temp)}
        assert expression in known, f"test does not evaluate ${{{{ {expression} }}}}"
        return known[expression]

    return EXPRESSION.sub(value, text)


def run_action_step(
    step_id: str,
    inputs: Mapping[str, str],
    workspace: Path,
    runner_temp: Path,
    env: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """Run one step of action.yml as the runner would: bash -eo pipefail, its env evaluated.

    Returns the exit code, the step's outputs and its combined output.
    """
    steps = load(ACTION)["runs"]["steps"]
    (step,) = [s for s in steps if s.get("id", s.get("name")) == step_id]
    outputs = runner_temp / "github_output"
    outputs.write_text("")
    step_env = {key: evaluate(str(v), inputs, runner_temp) for key, v in step["env"].items()}
    folder = workspace / evaluate(step.get("working-directory", "."), inputs, runner_temp)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=folder,
        env={
            **os.environ,
            **(env or {}),
            **step_env,
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_PATH": str(runner_temp / "github_path"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return done.returncode, found, done.stdout + done.stderr


def recording_venv(runner_temp: Path) -> Path:
    """A stand-in for the Action's venv: its batchplan records its arguments."""
    bin_dir = runner_temp / "batchplan-venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "batchplan"
    fake.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$RECORD"\nexit "${FAKE_EXIT:-0}"\n')
    fake.chmod(0o755)
    return runner_temp / "record"


def action_argv(inputs: Mapping[str, str], folder: Path) -> list[str]:
    """The batchplan arguments the Action runs for these inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    record = recording_venv(folder)
    workspace = folder / "workspace"
    (workspace / inputs.get("working-directory", ".")).mkdir(parents=True, exist_ok=True)
    code, _, output = run_action_step("run", inputs, workspace, folder, {"RECORD": str(record)})
    assert code == 0, output
    return record.read_text().split("\0")[:-1]


def github_action_commands(folder: Path) -> list[tuple[dict[str, Any], list[str]]]:
    """Each step of the workflow that uses the Action, with the command line it runs."""
    found = []
    workflow = load(GITHUB)
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if is_batchplan_action(step):
                # As the runner passes them: YAML true becomes the string "true".
                inputs = {
                    k: str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in step.get("with", {}).items()
                }
                if inputs.get("command") == "install":
                    continue
                # The workflow passes the CONFIG variable as ${{ env.CONFIG }}.
                inputs = {
                    k: v.replace("${{ env.CONFIG }}", workflow["env"]["CONFIG"])
                    for k, v in inputs.items()
                }
                found.append((step, action_argv(inputs, folder / str(len(found)))))
    return found


def gitlab_scripts() -> list[str]:
    pipeline = load(GITLAB)
    scripts = []
    for job in pipeline.values():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            scripts.extend(job.get(key, []))
    return scripts


def hook_scripts() -> list[str]:
    return [hook["entry"] for hook in load(HOOKS)]


SCRIPTS = {"github": github_scripts, "gitlab": gitlab_scripts, "pre-commit": hook_scripts}


def batchplan_commands(script: str) -> list[list[str]]:
    """The argument lists of every ``batchplan`` command in a shell script."""
    script = script.replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.commenters = "#"
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:
            # Inside a multi-line quoted string (an inline python snippet): not shell.
            continue
        for i, token in enumerate(tokens):
            before = tokens[i - 1] if i else None
            starts = before is None or before in COMMAND_STARTS or ASSIGNMENT.fullmatch(before)
            if token == "batchplan" and starts:
                args = []
                for arg in tokens[i + 1 :]:
                    if arg in COMMAND_ENDS:
                        break
                    args.append(arg)
                found.append(args)
    return found


def all_commands(source: str, folder: Path | None = None) -> list[list[str]]:
    """Every batchplan command line of a source; with ``folder``, the Action's too."""
    commands = [args for script in SCRIPTS[source]() for args in batchplan_commands(script)]
    if source == "github":
        assert folder is not None, "the Action's commands need a folder to run it in"
        commands += [argv for _, argv in github_action_commands(folder)]
    return commands


def resolve(args: list[str]) -> tuple[click.Command, str, list[str]]:
    """The (sub)command the arguments name, its full name, and its own arguments."""
    command: click.Command = cli
    names = ["batchplan"]
    rest = list(args)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        names.append(rest[0])
        command = command.commands[rest.pop(0)]
    assert not isinstance(command, click.Group), f"no such command: batchplan {' '.join(args)}"
    return command, " ".join(names), rest


def parse(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse with click exactly as the CLI would, without running the command."""
    command, name, rest = resolve(args)
    try:
        with command.make_context(name, rest) as ctx:
            return name, dict(ctx.params)
    except click.ClickException as exc:
        pytest.fail(f"`batchplan {' '.join(args)}`: {exc.format_message()}")


def option_names(command: click.Command) -> set[str]:
    return {
        name
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


# --- the files themselves ----------------------------------------------------


@pytest.mark.parametrize("path", [GITHUB, GITLAB, HOOKS, ACTION], ids=lambda p: p.name)
def test_example_is_valid_yaml(path: Path) -> None:
    assert load(path)


# A proxy that refuses every connection: check-jsonschema must need no network.
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def run_check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        env={**os.environ, **OFFLINE},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (GITHUB, "vendor.github-workflows"),
        (GITLAB, "vendor.gitlab-ci"),
        (ACTION, "vendor.github-actions"),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_passes_the_vendored_ci_schema_offline(path: Path, schema: str, tmp_path: Path) -> None:
    import check_jsonschema

    vendored = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
    assert (vendored / f"{schema.removeprefix('vendor.')}.json").is_file()
    result = run_check_jsonschema(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same check refuses a broken copy, so a pass means something.
    broken = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path == ACTION:
        broken["runs"]["using"] = "shell"
    elif path == GITHUB:
        broken["jobs"]["plan"]["runs-on"] = {"no": ["such", "shape"]}
    else:
        broken["plan"]["when"] = "sometimes"
    (tmp_path / path.name).write_text(yaml.safe_dump(broken), encoding="utf-8")
    refused = run_check_jsonschema(schema, tmp_path / path.name)
    assert refused.returncode == 1, refused.stdout + refused.stderr


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "github",
            {
                "batchplan validate",
                "batchplan plan --out --detailed-exitcode",
                "batchplan plan --out",
                "batchplan show --format",
                "batchplan apply --auto-approve --lock-timeout",
            },
        ),
        (
            "gitlab",
            {
                "batchplan validate",
                "batchplan plan --out --detailed-exitcode",
                "batchplan plan --out",
                "batchplan show --format",
                "batchplan apply --auto-approve --lock-timeout",
            },
        ),
        ("pre-commit", {"batchplan validate"}),
    ],
)
def test_example_runs_the_whole_flow(source: str, expected: set[str], tmp_path: Path) -> None:
    """The extraction finds the commands the flow needs, so the checks below are not empty."""
    shapes = set()
    for args in all_commands(source, tmp_path):
        _, name, rest = resolve(args)
        shapes.add(" ".join([name, *(arg for arg in rest if arg.startswith("--"))]))
    assert shapes == expected


@pytest.mark.parametrize("source", sorted(SCRIPTS))
def test_every_batchplan_command_parses(source: str, tmp_path: Path) -> None:
    commands = all_commands(source, tmp_path)
    assert commands
    for args in commands:
        name, params = parse(args)
        if name == "batchplan show":
            assert params["fmt"] == "markdown"
        if name == "batchplan apply":
            assert params["paths"] == ("plan.json",)
            assert params["auto_approve"] is True


@pytest.mark.parametrize("source", ["github", "gitlab"])
def test_every_flag_exists_on_its_command(source: str, tmp_path: Path) -> None:
    for args in all_commands(source, tmp_path):
        command, name, rest = resolve(args)
        known = option_names(command)
        for arg in rest:
            if arg.startswith("-"):
                assert arg.split("=")[0] in known, f"{name} has no option {arg}"


@pytest.mark.parametrize(
    "script", [s for source in ("github", "gitlab") for s in SCRIPTS[source]()]
)
def test_scripts_are_valid_shell(script: str) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-n", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --- what the workflows promise ----------------------------------------------


def test_github_workflow_plans_pull_requests_and_applies_main(tmp_path: Path) -> None:
    workflow = load(GITHUB)
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["env"]["BATCHPLAN_STATE"].startswith("s3://")
    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
    # batchplan comes from the Action, pinned by one version tag in every job, never pip.
    uses = [s["uses"] for job in (plan, apply) for s in job["steps"] if is_batchplan_action(s)]
    assert len(uses) >= 4 and len(set(uses)) == 1
    assert re.fullmatch(r"[\w.-]+/batchplan@v\d+\.\d+\.\d+", uses[0])
    first = [is_batchplan_action(s) for s in plan["steps"]].index(True)
    assert not any("batchplan" in s.get("run", "") for s in plan["steps"][:first])
    assert "pip install" not in GITHUB.read_text(encoding="utf-8")
    assert apply["concurrency"]["cancel-in-progress"] is False
    text = GITHUB.read_text(encoding="utf-8")
    assert "${{ secrets.SCALE_API_KEY }}" in text
    assert MARKER in text
    uploads = [s for s in plan["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "plan.json"
    # The key is given only to the steps that talk to the API.
    for job in (plan, apply):
        for step in job["steps"]:
            has_key = "SCALE_API_KEY" in step.get("env", {})
            calls_api = any(
                args[:1] in (["plan"], ["apply"])
                for args in batchplan_commands(step.get("run", ""))
            ) or step.get("with", {}).get("command") in ("plan", "apply")
            assert has_key == calls_api, step.get("name")
    commands = {" ".join(argv) for _, argv in github_action_commands(tmp_path)}
    assert commands == {
        "validate batches/",
        "plan --out plan.json --detailed-exitcode batches/",
        "plan --out plan.json batches/",
        "apply --auto-approve --lock-timeout 300 plan.json",
    }


def test_gitlab_pipeline_plans_merge_requests_and_applies_main() -> None:
    pipeline = load(GITLAB)
    assert pipeline["variables"]["BATCHPLAN_STATE"].startswith("s3://")
    assert pipeline["variables"]["MARKER"] == MARKER
    assert pipeline["apply"]["resource_group"]
    assert "merge_request_event" in pipeline[".merge_request"]["rules"][0]["if"]
    assert "$CI_DEFAULT_BRANCH" in pipeline["apply"]["rules"][0]["if"]
    assert "plan.json" in pipeline["plan"]["artifacts"]["paths"]
    # A pinned version from a git tag: `batchplan` on the package index is another project.
    assert re.fullmatch(r"\d+\.\d+\.\d+", pipeline["variables"]["BATCHPLAN_VERSION"])
    assert pipeline["variables"]["BATCHPLAN_REPOSITORY"].startswith("https://")
    (install,) = pipeline["default"]["before_script"]
    requirement = shlex.split(install)[-1]
    assert requirement == (
        "scale-batchplan[s3] @ git+${BATCHPLAN_REPOSITORY}@v${BATCHPLAN_VERSION}"
    )


def test_pre_commit_hook() -> None:
    (hook,) = load(HOOKS)
    assert hook["id"] == "batchplan-validate"
    assert hook["entry"] == "batchplan validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    files = re.compile(hook["files"])
    assert files.search("batches/cats.yaml") and files.search("dogs.yml")
    assert not files.search("plan.json")
    # pre-commit appends the file names: validate must take them as PATHS.
    _, params = parse([*shlex.split(hook["entry"])[1:], "a.yaml", "b/c.yml"])
    assert params["paths"] == ("a.yaml", "b/c.yml")


# --- the interface the examples and docs rely on -------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["show", "plan.json"], {"planfile": "plan.json", "fmt": "text"}),
        (["show", "plan.json", "--format", "json"], {"fmt": "json"}),
        (["show", "plan.json", "--format", "markdown"], {"fmt": "markdown"}),
        (
            [
                "plan",
                "a.yaml",
                "batches/",
                "--out",
                "plan.json",
                "--format",
                "markdown",
                "--detailed-exitcode",
                "--target",
                "b1",
                "--target",
                "b2",
                "--reassert-priority",
            ],
            {
                "paths": ("a.yaml", "batches/"),
                "out": "plan.json",
                "fmt": "markdown",
                "detailed_exitcode": True,
                "targets": ("b1", "b2"),
                "reassert_priority": True,
            },
        ),
        (["plan", "--format", "json"], {"paths": (), "fmt": "json"}),
        (["apply", "plan.json", "--auto-approve"], {"paths": ("plan.json",), "auto_approve": True}),
        (
            ["apply", "batches/", "--auto-approve", "--force", "--target", "b1"],
            {"force": True, "targets": ("b1",)},
        ),
        (
            ["import", "--project", "P", "--project", "Q", "--out", "batches/imported.yaml"],
            {"projects": ("P", "Q"), "out": "batches/imported.yaml"},
        ),
        (["validate", "a.yaml", "b.yml"], {"paths": ("a.yaml", "b.yml")}),
        (["state", "unlock", "LOCK"], {"lock_id": "LOCK"}),
    ],
)
def test_interface(args: list[str], expected: dict[str, Any]) -> None:
    _, params = parse(args)
    assert {key: params[key] for key in expected} == expected


@pytest.mark.parametrize(
    "args",
    [
        ["show", "plan.json", "--format", "yaml"],
        ["plan", "--out"],
        ["plan", "--no-such-flag"],
        ["import", "--out", "x.yaml"],
    ],
)
def test_parse_rejects_what_click_rejects(args: list[str]) -> None:
    """The checks above would catch a wrong flag: click refuses these."""
    command, name, rest = resolve(args)
    with pytest.raises(click.UsageError):
        command.make_context(name, rest)


# --- the Action's inputs, run through its own script --------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"command": "validate"}, ["validate"]),
        # validate takes no endpoint or state: the Action leaves them out.
        (
            {"command": "validate", "endpoint": "sandbox", "state": "s.json", "paths": "a.yaml"},
            ["validate", "a.yaml"],
        ),
        (
            {"command": "plan", "paths": "a.yaml\nbatches/\n", "format": "markdown"},
            ["plan", "--format", "markdown", "a.yaml", "batches/"],
        ),
        (
            {"command": "plan", "endpoint": "sandbox", "state": "s3://b/k", "args": "--target b1"},
            ["plan", "--endpoint", "sandbox", "--state", "s3://b/k", "--target", "b1"],
        ),
        (
            {"command": "apply", "paths": "plan.json", "auto-approve": "false"},
            ["apply", "plan.json"],
        ),
        # No input is ever run as shell.
        (
            {"command": "plan", "paths": "$(touch pwned) `touch pwned`", "out": "x;touch pwned"},
            ["plan", "--out", "x;touch pwned", "$(touch", "pwned)", "`touch", "pwned`"],
        ),
    ],
)
def test_action_turns_inputs_into_arguments(
    inputs: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    assert action_argv(inputs, tmp_path) == expected
    assert not list(tmp_path.rglob("pwned"))
    _, params = parse(expected)  # and click takes them
    assert params


@pytest.mark.parametrize(
    ("exit_code", "success_codes", "step_code"),
    [(0, "0 2", 0), (2, "0 2", 0), (1, "0 2", 1), (3, "0 2", 3), (2, "0", 2), (4, "0 4", 0)],
)
def test_action_step_fails_unless_the_exit_code_is_accepted(
    exit_code: int, success_codes: str, step_code: int, tmp_path: Path
) -> None:
    record = recording_venv(tmp_path)
    env = {"RECORD": str(record), "FAKE_EXIT": str(exit_code)}
    inputs = {"command": "plan", "success-codes": success_codes}
    code, outputs, output = run_action_step("run", inputs, tmp_path, tmp_path, env)
    assert code == step_code, output
    assert outputs["exitcode"] == str(exit_code)
    assert ("::error::batchplan plan exited with code" in output) is (step_code != 0)


def test_action_refuses_an_unknown_command(tmp_path: Path) -> None:
    record = recording_venv(tmp_path)
    env = {"RECORD": str(record)}
    code, _, output = run_action_step("run", {"command": "destroy"}, tmp_path, tmp_path, env)
    assert code == 1
    assert "command must be validate, plan, apply or install, not 'destroy'" in output
    assert not record.exists()


def test_action_input_defaults_are_documented() -> None:
    action = load(ACTION)
    for name, spec in action["inputs"].items():
        assert spec["description"].strip(), name
        assert "default" in spec, name
    assert action["runs"]["using"] == "composite"
    (install,) = [s for s in action["runs"]["steps"] if s["name"] == "Install batchplan"]
    # From the action's own checkout, so the tag in `uses:` pins the tool.
    assert '"$ACTION_PATH[s3]"' in install["run"]
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
