"""Typed arguments: argv parsed through the real click commands into each command's value.

Pure and in-process: the command's function is replaced by a stub that keeps
the arguments object it is given, so nothing reads a config or calls an API.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

import pytest

from batchplan import cli as cli_module
from batchplan.commands import arguments as a
from batchplan.errors import BatchplanError
from batchplan.options import Options
from batchplan.plan.changes import PlanOptions
from batchplan.views import importing as import_views
from batchplan.views import plan as plan_views
from batchplan.views import state as state_views
from batchplan.views import status as status_views
from batchplan.views import validate as validate_views


def parse(monkeypatch: pytest.MonkeyPatch, module: str, function: str, argv: list[str]) -> Any:
    """Run ``batchplan ARGV`` with ``module.function`` stubbed; return the arguments it got."""
    seen: list[Any] = []

    def stub(args: Any) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(importlib.import_module(module), function, stub)
    assert cli_module.run(argv) == 0
    assert len(seen) == 1
    return seen[0]


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BATCHPLAN_ENDPOINT", "BATCHPLAN_STATE", "BATCHPLAN_ENV", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")


def test_plan_arguments_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse(
        monkeypatch,
        "batchplan.commands.plan",
        "run_plan",
        [
            "plan", "a.yaml", "b.yaml",
            "--target", "x", "--target", "kit-*",
            "--var", "TOKEN=s3cret", "--var", "TEAM=ml",
            "--parallelism", "7", "--max-finalize", "3", "--reassert-priority",
            "--request-timeout", "2.5", "--max-retries", "0", "--fixed-parallelism",
            "--format", "markdown", "--compact", "--out", "p.plan", "--detailed-exitcode",
        ],
    )  # fmt: skip
    assert isinstance(args, a.PlanArguments)
    assert args.paths == ("a.yaml", "b.yaml")
    assert args.plan_options == PlanOptions(
        targets=("x", "kit-*"), reassert_priority=True, max_finalize=3
    )
    assert dict(args.options.variables) == {"TOKEN": "s3cret", "TEAM": "ml"}
    assert args.options.var_names == ("TEAM", "TOKEN")
    assert args.options.parallelism == 7
    assert args.options.client.read_timeout == 2.5
    assert args.options.client.max_attempts == 1
    assert args.options.client.adaptive is False
    assert (args.format, args.compact, args.out, args.detailed_exitcode) == (
        "markdown",
        True,
        "p.plan",
        True,
    )
    assert args.options.color is True  # FORCE_COLOR, no --no-color
    assert args.explicit == ()
    # A secret given with --var stays out of the repr (a log of the arguments).
    assert "s3cret" not in repr(args)


def test_var_file_and_var_combine_with_var_winning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = tmp_path / "vars.yaml"
    values.write_text("A: from-file\nB: file-only\n", encoding="utf-8")
    args = parse(
        monkeypatch,
        "batchplan.commands.status",
        "run",
        ["status", "c.yaml", "--var-file", str(values), "--var", "A=flag", "--format", "json"],
    )
    assert isinstance(args, a.StatusArguments)
    assert dict(args.options.variables) == {"A": "flag", "B": "file-only"}
    assert args.options.var_files == (str(values),)
    assert (args.format, args.watch) == ("json", None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--endpoint", "sandbox", "--no-color", "--verbose", "plan", "c.yaml"],
        ["plan", "c.yaml", "--endpoint", "sandbox", "--no-color", "--verbose"],
        ["--endpoint", "https://other.example/v1", "plan", "c.yaml", "--endpoint", "sandbox",
         "--no-color", "-v"],
    ],
)  # fmt: skip
def test_global_options_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    args = parse(monkeypatch, "batchplan.commands.plan", "run_plan", argv)
    assert args.options.endpoint == "sandbox"
    assert args.options.color is False
    assert args.options.verbose is True
    assert args.explicit == ("endpoint",)


def test_defaults_when_nothing_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse(monkeypatch, "batchplan.commands.apply", "run", ["apply", "c.yaml"])
    assert isinstance(args, a.ApplyArguments)
    assert args.plan_options == PlanOptions()
    assert args.options.endpoint == Options().endpoint
    assert args.options.parallelism == 16
    assert args.options.state is None
    assert (args.format, args.auto_approve, args.fail_fast, args.compact) == (
        "text",
        False,
        False,
        False,
    )


def test_environment_variables_count_as_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHPLAN_STATE", "s.json")
    monkeypatch.setenv("BATCHPLAN_ENV", "prod")
    args = parse(monkeypatch, "batchplan.commands.plan", "run_plan", ["plan", "c.yaml"])
    assert args.options.state == "s.json"
    assert args.options.environment == "prod"
    assert args.explicit == ("state",)


def test_default_paths_come_from_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "batchplan.yml").write_text("version: 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = parse(monkeypatch, "batchplan.commands.validate", "run", ["validate"])
    assert args.paths == ("batchplan.yml",)


def test_import_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse(
        monkeypatch,
        "batchplan.commands.importing",
        "run",
        ["import", "--project", "p1", "--project", "p2", "--name", "k*", "--assume-priority",
         "20", "--out", "-", "--take-ownership", "--lock-timeout", "1.5"],
    )  # fmt: skip
    assert isinstance(args, a.ImportArguments)
    assert (args.projects, args.patterns, args.assume_priority, args.out) == (
        ("p1", "p2"),
        ("k*",),
        20,
        "-",
    )
    assert (args.take_ownership, args.from_state, args.force) == (True, False, False)
    assert args.options.lock_timeout == 1.5
    assert args.paths == ()


def test_show_init_and_schema_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    show = parse(
        monkeypatch,
        "batchplan.commands.plan",
        "run_show",
        ["show", "p.plan", "--format", "json", "--verbose", "--debug"],
    )
    assert show == a.ShowArguments(
        "p.plan", Options(color=True, verbose=True, debug=True), "json", False
    )
    init = parse(monkeypatch, "batchplan.commands.init", "run", ["init", "here", "--no-color"])
    assert init == a.InitArguments("here", False)
    schema = parse(monkeypatch, "batchplan.commands.schema", "run", ["schema", "plan"])
    assert schema == a.SchemaArguments("plan", "plan.schema.json")


def test_state_commands_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    module = "batchplan.commands.state"
    listed = parse(
        monkeypatch,
        module,
        "run_list",
        ["--state", "s.json", "state", "list", "--format", "json", "-v", "--env", "dev"],
    )
    assert listed == a.StateListArguments(
        a.StatePlace(Options().endpoint, "s.json", "dev", ("state",)), "json", True, True
    )
    removed = parse(monkeypatch, module, "run_rm", ["state", "rm", "x", "y", "--lock-timeout", "3"])
    assert (removed.names, removed.lock_timeout) == (("x", "y"), 3.0)
    pushed = parse(
        monkeypatch,
        module,
        "run_push",
        ["state", "push", "f.json", "--force", "--endpoint", "sandbox"],
    )
    assert (pushed.path, pushed.force, pushed.place.endpoint) == ("f.json", True, "sandbox")
    assert pushed.place.explicit == ("endpoint",)
    assert parse(monkeypatch, module, "run_show", ["state", "show", "n"]).name == "n"
    assert parse(monkeypatch, module, "run_unlock", ["state", "unlock", "L1"]).lock_id == "L1"
    assert isinstance(
        parse(monkeypatch, module, "run_pull", ["state", "pull"]), a.StatePullArguments
    )


def test_sandbox_serve_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse(
        monkeypatch,
        "batchplan.commands.sandbox",
        "run",
        ["sandbox", "serve", "--port", "0", "--rate-limit", "5", "--burst", "2", "--seed", "9"],
    )
    assert isinstance(args, a.SandboxServeArguments)
    assert (args.options.port, args.options.rate_limit, args.options.burst) == (0, 5.0, 2)
    assert args.options.seed == 9


def test_burst_without_rate_limit_is_refused_before_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    called: list[Any] = []
    monkeypatch.setattr(importlib.import_module("batchplan.commands.sandbox"), "run", called.append)
    assert cli_module.run(["sandbox", "serve", "--burst", "2"]) == 1
    assert called == []
    assert "--burst needs --rate-limit" in capsys.readouterr().err


def test_a_bad_var_is_refused_before_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    called: list[Any] = []
    monkeypatch.setattr(
        importlib.import_module("batchplan.commands.plan"), "run_plan", called.append
    )
    assert cli_module.run(["plan", "c.yaml", "--var", "NOEQUALS"]) == 1
    assert called == []
    assert "the 1st --var: expected NAME=VALUE" in capsys.readouterr().err


# --- views: one per command, chosen once from --format ------------------------------


def _lines() -> tuple[list[str], Any]:
    printed: list[str] = []
    return printed, printed.append


@pytest.mark.parametrize(
    ("output_format", "kind"),
    [
        ("text", validate_views.ValidateText),
        ("json", validate_views.ValidateJSON),
        ("github", validate_views.ValidateGitHub),
    ],
)
def test_validate_view_kind_follows_format(output_format: str, kind: type) -> None:
    _, echo = _lines()
    assert type(validate_views.validate_view(output_format, echo)) is kind


@pytest.mark.parametrize(
    ("output_format", "kind"),
    [
        ("text", plan_views.PlanText),
        ("json", plan_views.PlanJSON),
        ("markdown", plan_views.PlanMarkdown),
    ],
)
def test_plan_view_kind_follows_format(output_format: str, kind: type) -> None:
    _, echo = _lines()
    assert type(plan_views.plan_view(output_format, echo)) is kind


def test_plan_json_view_refuses_compact() -> None:
    _, echo = _lines()
    with pytest.raises(BatchplanError, match="--compact applies to --format text and markdown"):
        plan_views.plan_view("json", echo, compact=True)


@pytest.mark.parametrize(
    ("output_format", "kind"),
    [
        ("text", status_views.StatusText),
        ("json", status_views.StatusJSON),
        ("openmetrics", status_views.StatusOpenMetrics),
    ],
)
def test_status_view_kind_follows_format(output_format: str, kind: type) -> None:
    assert type(status_views.status_view(output_format, io.StringIO())) is kind


def test_status_openmetrics_view_refuses_watch() -> None:
    with pytest.raises(BatchplanError, match="--watch does not apply to --format openmetrics"):
        status_views.status_view("openmetrics", io.StringIO(), watch=2.0)


@pytest.mark.parametrize(
    ("output_format", "kind"),
    [("text", state_views.StateListText), ("json", state_views.StateListJSON)],
)
def test_state_list_view_kind_follows_format(output_format: str, kind: type) -> None:
    _, echo = _lines()
    assert type(state_views.state_list_view(output_format, echo)) is kind


@pytest.mark.parametrize(
    ("out", "kind"),
    [(None, import_views.ImportToStdout), ("-", import_views.ImportToStdout),
     ("imported.yaml", import_views.ImportToFile)],
)  # fmt: skip
def test_import_view_kind_follows_out(out: str | None, kind: type) -> None:
    _, echo = _lines()
    assert type(import_views.import_view(out, echo)) is kind


class Chosen(BatchplanError):
    """Raised by a stubbed view factory: the command stops once its view is chosen."""


@pytest.mark.parametrize(
    ("module", "factory", "argv", "chosen"),
    [
        ("batchplan.commands.validate", "validate_view",
         ["validate", "c.yaml", "--format", "github"], "github"),
        ("batchplan.commands.plan", "plan_view",
         ["plan", "c.yaml", "--format", "markdown", "--compact"], "markdown"),
        ("batchplan.commands.plan", "plan_view", ["show", "p.plan", "--format", "json"], "json"),
        ("batchplan.commands.status", "status_view",
         ["status", "c.yaml", "--format", "openmetrics"], "openmetrics"),
        ("batchplan.commands.state", "state_list_view",
         ["state", "list", "--state", "STATE", "--format", "json"], "json"),
        ("batchplan.commands.importing", "import_view",
         ["import", "--project", "p", "--out", "-"], "-"),
    ],
)  # fmt: skip
def test_each_command_chooses_its_view_once_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    module: str,
    factory: str,
    argv: list[str],
    chosen: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[str] = []

    def stub(choice: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(choice)
        raise Chosen(f"view {choice}")

    monkeypatch.setattr(importlib.import_module(module), factory, stub)
    argv = [str(tmp_path / "s.json") if arg == "STATE" else arg for arg in argv]
    assert cli_module.run(argv) == 1
    assert calls == [chosen]
    assert f"view {chosen}" in capsys.readouterr().err


def test_validate_arguments_keep_variables_out_of_their_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = parse(
        monkeypatch,
        "batchplan.commands.validate",
        "run",
        ["validate", "c.yaml", "--var", "TOKEN=s3cret", "--format", "json"],
    )
    assert isinstance(args, a.ValidateArguments)
    assert dict(args.variables) == {"TOKEN": "s3cret"}
    assert (args.paths, args.format) == (("c.yaml",), "json")
    assert "s3cret" not in repr(args) and "1 hidden" in repr(args)
