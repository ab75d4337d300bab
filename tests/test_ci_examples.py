"""The CI examples and the pre-commit hook use only commands and flags that exist.

Every ``batchplan ...`` command line in ``examples/ci/`` and
``.pre-commit-hooks.yaml`` is parsed by click itself (``make_context``: the
real option names, types and choices, without running anything), so a
renamed flag breaks this test instead of a user's pipeline.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
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


def all_commands(source: str) -> list[list[str]]:
    return [args for script in SCRIPTS[source]() for args in batchplan_commands(script)]


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


@pytest.mark.parametrize("path", [GITHUB, GITLAB, HOOKS], ids=lambda p: p.name)
def test_example_is_valid_yaml(path: Path) -> None:
    assert load(path)


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
def test_example_runs_the_whole_flow(source: str, expected: set[str]) -> None:
    """The extraction finds the commands the flow needs, so the checks below are not empty."""
    shapes = set()
    for args in all_commands(source):
        _, name, rest = resolve(args)
        shapes.add(" ".join([name, *(arg for arg in rest if arg.startswith("--"))]))
    assert shapes == expected


@pytest.mark.parametrize("source", sorted(SCRIPTS))
def test_every_batchplan_command_parses(source: str) -> None:
    commands = all_commands(source)
    assert commands
    for args in commands:
        name, params = parse(args)
        if name == "batchplan show":
            assert params["fmt"] == "markdown"
        if name == "batchplan apply":
            assert params["paths"] == ("plan.json",)
            assert params["auto_approve"] is True


@pytest.mark.parametrize("source", ["github", "gitlab"])
def test_every_flag_exists_on_its_command(source: str) -> None:
    for args in all_commands(source):
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


def test_github_workflow_plans_pull_requests_and_applies_main() -> None:
    workflow = load(GITHUB)
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["env"]["BATCHPLAN_STATE"].startswith("s3://")
    assert re.fullmatch(r"\d+\.\d+\.\d+", workflow["env"]["BATCHPLAN_VERSION"])
    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
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
            )
            assert has_key == calls_api, step.get("name")


def test_gitlab_pipeline_plans_merge_requests_and_applies_main() -> None:
    pipeline = load(GITLAB)
    assert pipeline["variables"]["BATCHPLAN_STATE"].startswith("s3://")
    assert pipeline["variables"]["MARKER"] == MARKER
    assert pipeline["apply"]["resource_group"]
    assert "merge_request_event" in pipeline[".merge_request"]["rules"][0]["if"]
    assert "$CI_DEFAULT_BRANCH" in pipeline["apply"]["rules"][0]["if"]
    assert "plan.json" in pipeline["plan"]["artifacts"]["paths"]


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


# --- the interface the examples and docs rely on (DESIGN.md section 6) -------


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
