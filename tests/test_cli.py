"""The command line: colour rules, approval, environment, hostile input, state commands."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click
import pytest

from batchplan import cli as cli_module
from batchplan.commands.apply import apply
from batchplan.options import Options
from batchplan.plan.changes import PlanOptions
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, api_calls, mutating_calls

BAD = Path(__file__).resolve().parent / "data" / "bad"
CONFIG = "version: 1\nbatches:\n  - {name: c1, project: p, priority: 12}\n"


class Tty:
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("flag", "env", "wanted"),
    [
        (False, {}, None),
        (True, {}, False),
        (False, {"NO_COLOR": "1"}, False),
        (False, {"NO_COLOR": ""}, None),
        (False, {"FORCE_COLOR": "1"}, True),
        (False, {"FORCE_COLOR": "0"}, None),
        (False, {"FORCE_COLOR": ""}, None),
        (True, {"FORCE_COLOR": "1"}, False),
        (False, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
    ],
)
def test_colour_wanted_from_flag_and_environment(
    monkeypatch: pytest.MonkeyPatch, flag: bool, env: dict[str, str], wanted: bool | None
) -> None:
    # None: the flag and the environment leave it to the terminal.
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli_module.colour_wanted(flag) is wanted


@pytest.mark.parametrize(
    ("tty", "no_color_flag", "no_color_env", "expected"),
    [
        (True, False, None, True),
        (True, True, None, False),
        (True, False, "1", False),
        (False, False, None, False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    monkeypatch: pytest.MonkeyPatch,
    tty: bool,
    no_color_flag: bool,
    no_color_env: str | None,
    expected: bool,
) -> None:
    if tty:
        monkeypatch.setattr(cli_module.sys, "stdout", Tty())
    if no_color_env is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color_env)
    assert cli_module.use_color(no_color_flag) is expected


@pytest.mark.parametrize(("answer", "code", "calls"), [(False, 1, 0), (True, 0, 1)])
def test_apply_asks_and_only_yes_goes_on(
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: bool,
    code: int,
    calls: int,
) -> None:
    (tmp_path / "batchplan.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    asked: list[bool] = []

    def confirm() -> bool:
        asked.append(True)
        return answer

    result = apply(
        ["batchplan.yaml"],
        Options(endpoint=sandbox.url),
        PlanOptions(),
        lines.append,
        confirm=confirm,
    )
    assert asked == [True]
    assert result == code
    assert sum(mutating_calls(sandbox).values()) == calls * 2  # create + prioritize


def test_endpoint_and_state_from_the_environment(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    monkeypatch.setenv("BATCHPLAN_ENDPOINT", sandbox.url)
    monkeypatch.setenv("BATCHPLAN_STATE", str(cli.folder / "elsewhere.json"))
    result = cli("apply", "--auto-approve", endpoint=False)
    assert result.code == 0, result.err
    assert json.loads((cli.folder / "elsewhere.json").read_text())["batches"]["c1"]


def hostile_inputs() -> list[Path]:
    return sorted(BAD.iterdir())


@pytest.mark.parametrize("path", hostile_inputs(), ids=lambda p: p.name)
def test_every_bad_config_exits_1_naming_file_and_line_with_no_call(
    cli: CLI, sandbox: SandboxServer, path: Path
) -> None:
    started = time.monotonic()
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        result = cli(*command, str(path))
        assert result.code == 1, (command, result.out, result.err)
        assert "Traceback" not in result.err
        assert path.name in result.err or any(p.name in result.err for p in path.glob("*"))
        assert ":1:" in result.err or any(f":{n}:" in result.err for n in range(1, 200))
    assert time.monotonic() - started < 10
    assert not api_calls(sandbox)


def test_generated_hostile_files_fail_cleanly(cli: CLI, sandbox: SandboxServer) -> None:
    cases = {
        "garbage.yaml": bytes(range(256)) * 64,
        "deep.yaml": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "bomb.yaml": b"a: &a [x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n".encode()
            for i in range(9)
        ),
        "obj.yaml": b"!!python/object/apply:os.system ['echo pwned']\n",
    }
    for name, content in cases.items():
        (cli.folder / name).write_bytes(content)
        started = time.monotonic()
        result = cli("plan", name)
        assert result.code == 1, name
        assert name in result.err and "Traceback" not in result.err
        assert time.monotonic() - started < 5, name
    assert not api_calls(sandbox)


def test_state_pull_push_and_rm(cli: CLI) -> None:
    cli.write(
        "batchplan.yaml", CONFIG.replace("- {name: c1", "- {name: c2, project: p}\n  - {name: c1")
    )
    assert cli("apply", "--auto-approve").code == 0
    pulled = cli("state", "pull")
    state = json.loads(pulled.out)
    assert state["serial"] >= 1 and set(state["batches"]) == {"c1", "c2"}

    older = dict(state, serial=0)
    cli.write("older.json", json.dumps(older))
    refused = cli("state", "push", "older.json")
    assert refused.code == 1 and "older" in refused.err

    other = dict(state, lineage="another-lineage", serial=state["serial"] + 5)
    cli.write("other.json", json.dumps(other))
    assert cli("state", "push", "other.json").code == 1
    assert cli("state", "push", "other.json", "--force").code == 0
    assert json.loads(cli("state", "pull").out)["lineage"] == "another-lineage"

    assert cli("state", "rm", "c2").code == 0
    assert set(json.loads(cli("state", "pull").out)["batches"]) == {"c1"}
    missing = cli("state", "rm", "nope")
    assert missing.code == 1 and "not in state" in missing.err


def test_a_held_lock_refuses_apply_naming_the_holder(cli: CLI, sandbox: SandboxServer) -> None:
    from batchplan.state.local import LocalState

    cli.write("batchplan.yaml", CONFIG)
    backend = LocalState(cli.folder / ".batchplan" / "state.json")
    with backend.lock("someone else", 0) as held:
        result = cli("apply", "--auto-approve")
    assert result.code == 1
    assert held.id in result.err and "someone else" in result.err
    assert not mutating_calls(sandbox)


# --- global options: before or after the command, only where they apply ------


def test_global_options_work_before_and_after_the_command(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    before = cli("--endpoint", sandbox.url, "--state", "before.json", "plan", endpoint=False)
    assert before.code == 0, before.err
    assert "1 to create" in before.out
    applied = cli(
        "--endpoint", sandbox.url, "apply", "--auto-approve", "--state", "s.json", endpoint=False
    )
    assert applied.code == 0, applied.err
    assert json.loads((cli.folder / "s.json").read_text())["batches"]["c1"]
    assert not (cli.folder / "before.json").exists()  # plan writes no state
    for args in (
        ["--state", "s.json", "plan", "--endpoint", sandbox.url],
        ["plan", "--state", "s.json", "--endpoint", sandbox.url],
        ["--endpoint", sandbox.url, "--state", "s.json", "plan", "--detailed-exitcode"],
    ):
        again = cli(*args, endpoint=False)
        assert (again.code, again.err) == (0, ""), args
        assert "No changes" in again.out, args


def test_the_option_after_the_command_wins(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    monkeypatch.setenv("BATCHPLAN_STATE", "from-env.json")
    url = ["--endpoint", sandbox.url]
    result = cli("--state", "before.json", "apply", "--auto-approve", "--state", "after.json", *url)
    assert result.code == 0, result.err
    assert (cli.folder / "after.json").exists()
    assert not (cli.folder / "before.json").exists()
    assert not (cli.folder / "from-env.json").exists()
    # Before the command still beats the environment.
    result = cli("--state", "before.json", "apply", "--auto-approve", *url)
    assert result.code == 0, result.err
    assert (cli.folder / "before.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--no-color", "validate"],
        ["validate", "--no-color"],
        ["--debug", "validate"],
        ["--no-color", "--debug", "state", "list"],
        ["state", "list", "--no-color", "--debug"],
        ["--state", "other.json", "state", "list"],
        ["--verbose", "plan"],
        ["plan", "-v", "--no-color"],
        ["--verbose", "validate"],
        ["validate", "-v"],
        ["--verbose", "state", "list"],
    ],
)
def test_global_options_accepted_where_they_apply(
    cli: CLI, sandbox: SandboxServer, args: list[str]
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli(*args, *(["--endpoint", sandbox.url] if "plan" in args else []))
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("args", "flag", "command"),
    [
        (["--endpoint", "sandbox", "validate"], "--endpoint", "batchplan validate"),
        (["--state", "s.json", "show", "plan.json"], "--state", "batchplan show"),
        (["--verbose", "state", "pull"], "--verbose", "batchplan state pull"),
        (["--verbose", "schema", "config"], "--verbose", "batchplan schema"),
    ],
)
def test_a_global_option_before_a_command_that_ignores_it_is_refused(
    cli: CLI, args: list[str], flag: str, command: str
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    result = cli(*args)
    assert result.code == 1
    assert f"Error: {flag} does not apply to '{command}'" in result.err


def test_verbose_validate_counts_batches_per_file(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    plain = cli("validate")
    verbose = cli("validate", "--verbose")
    assert plain.code == verbose.code == 0, verbose.err
    assert "batchplan.yaml:" not in plain.out
    assert "  batchplan.yaml: " in verbose.out and " batch" in verbose.out


def test_verbose_state_list_shows_serial_lineage_and_create_flags(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("apply", "--auto-approve").code == 0
    state = ["--state", ".batchplan/state.json"]
    plain = cli("state", "list", *state)
    verbose = cli("state", "list", "-v", *state)
    assert plain.code == verbose.code == 0, verbose.err
    assert "serial" not in plain.out and "CALIBRATION" not in plain.out
    assert re.search(r"serial [1-9][0-9]*, lineage [0-9a-f-]{36}", verbose.out), verbose.out
    assert "CALIBRATION" in verbose.out and "false" in verbose.out


def all_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found[prefix + name] = command

    walk(cli_module.cli, "")
    return found


def test_lock_timeout_only_on_commands_that_take_the_lock() -> None:
    takes = {
        name
        for name, command in all_commands().items()
        if any("--lock-timeout" in p.opts for p in command.params)
    }
    assert takes == {"apply", "import", "state rm", "state push"}
    assert not any("--lock-timeout" in p.opts for p in cli_module.cli.params)


def test_every_command_takes_no_color_and_debug() -> None:
    for name, command in all_commands().items():
        names = {opt for param in command.params for opt in param.opts}
        assert {"--no-color", "--debug"} <= names, name


def test_debug_reaches_the_commands_options(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    import batchplan.commands.plan as plan_command

    seen: list[Options] = []

    def fake_plan(paths: object, options: Options, *args: object, **kw: object) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(plan_command, "plan", fake_plan)
    cli.write("batchplan.yaml", CONFIG)
    assert cli("--debug", "plan").code == 0
    assert cli("plan", "--debug").code == 0
    assert cli("plan").code == 0
    assert [options.debug for options in seen] == [True, True, False]


# --- errors and --debug --------------------------------------------------------


def test_debug_shows_no_traceback_for_a_config_error(cli: CLI) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: x, project: p, priority: 99}\n")
    for args in (["--debug", "validate"], ["validate", "--debug"], ["plan", "--debug"]):
        result = cli(*args)
        assert result.code == 1, args
        assert "Traceback" not in result.err, args
        assert "batchplan.yaml:3:" in result.err, args


def test_debug_shows_the_traceback_of_an_unexpected_error(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchplan.commands.validate as validate_command

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(validate_command, "validate", broken)
    cli.write("batchplan.yaml", CONFIG)
    plain = cli("validate")
    assert plain.code == 1 and "Traceback" not in plain.err
    assert "unexpected RuntimeError: boom" in plain.err
    for args in (["--debug", "validate"], ["validate", "--debug"]):
        result = cli(*args)
        assert result.code == 1
        assert "Traceback" in result.err and 'raise RuntimeError("boom")' in result.err


# --- the default config file -----------------------------------------------------


def test_a_lone_batchplan_yml_is_the_default_config(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yml", CONFIG)
    assert cli("validate").code == 0
    assert cli("apply", "--auto-approve").code == 0
    assert mutating_calls(sandbox)["POST /batches"] == 1


def test_both_default_configs_present_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    cli.write("batchplan.yml", CONFIG)
    for args in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        result = cli(*args)
        assert result.code == 1, args
        assert "both batchplan.yaml and batchplan.yml" in result.err
    assert cli("validate", "batchplan.yml").code == 0
    assert not api_calls(sandbox)


def test_no_default_config_names_both_candidates(cli: CLI) -> None:
    result = cli("validate")
    assert result.code == 1
    assert "no batchplan.yaml (or batchplan.yml) in this folder" in result.err


# --- schema ---------------------------------------------------------------------------

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("config", "batchplan.schema.json"),
        ("plan", "plan.schema.json"),
        ("apply-events", "apply-events.schema.json"),
    ],
)
def test_schema_prints_the_shipped_schema(cli: CLI, name: str, filename: str) -> None:
    result = cli("schema", name)
    assert result.code == 0, result.err
    assert result.out == (SCHEMAS / filename).read_text(encoding="utf-8")
    assert json.loads(result.out)["$schema"].startswith("https://json-schema.org/")


def test_schema_reads_each_file_by_name(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchplan.commands.schema as schema_command

    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "apply-events.schema.json").write_text('{"title": "events"}\n')
    monkeypatch.setattr(schema_command, "schema_dir", lambda: folder)
    assert cli("schema", "apply-events").out == '{"title": "events"}\n'
    missing = cli("schema", "plan")
    assert missing.code == 1 and "Traceback" not in missing.err
    assert "plan.schema.json: cannot read the schema" in missing.err
    unknown = cli("schema", "nope")
    assert unknown.code == 1 and "'nope' is not one of" in unknown.err


# --- colour: one policy for stdout and stderr, under a real terminal --------------

ANSI = "\x1b["


def run_process(
    args: list[str], cwd: Path, env: dict[str, str], *, terminal: bool
) -> tuple[int, str]:
    """``batchplan ARGS`` as its own process; stdout and stderr on one pty, or on pipes."""
    import os
    import select
    import subprocess
    import sys

    command = [sys.executable, "-m", "batchplan", *args]
    if not terminal:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.returncode, done.stdout + done.stderr
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def colour_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import os

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return dict(os.environ)


COLOUR_CASES = [
    (True, False, False, {}, True),
    (True, False, True, {}, False),
    (True, True, False, {}, False),
    (True, False, False, {"NO_COLOR": "1"}, False),
    (True, False, False, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
    (False, False, False, {}, False),
    (False, False, False, {"FORCE_COLOR": "1"}, True),
    (False, False, False, {"FORCE_COLOR": "0"}, False),
]
COLOUR_IDS = [
    "terminal",
    "terminal --no-color after",
    "terminal --no-color before",
    "terminal NO_COLOR",
    "NO_COLOR beats FORCE_COLOR",
    "pipes",
    "pipes FORCE_COLOR",
    "pipes FORCE_COLOR=0",
]


@pytest.mark.parametrize(
    ("terminal", "flag_before", "flag_after", "env", "coloured"), COLOUR_CASES, ids=COLOUR_IDS
)
def test_one_colour_policy_for_stdout_and_stderr(
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
    colour_env: dict[str, str],
    terminal: bool,
    flag_before: bool,
    flag_after: bool,
    env: dict[str, str],
    coloured: bool,
) -> None:
    """The policy in this process (it is a pure function of flags, environment, terminal)."""
    import sys

    cli.write("batchplan.yaml", CONFIG)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Both streams are the terminal, or neither is: one answer for both.
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    before = ["--no-color"] if flag_before else []
    after = ["--no-color"] if flag_after else []
    # stdout: the plan's symbols and headings.
    result = cli(*before, "plan", "--endpoint", cli.sandbox.url, *after, endpoint=False)
    assert result.code == 0, result.err
    assert "1 to create" in result.out
    assert (ANSI in result.out) is coloured, result.out
    # stderr: the Error: prefix, for a config error and for a usage error.
    for args in (["validate", "missing.yaml"], ["validate", "--no-such-flag"]):
        result = cli(*before, *args, *after, endpoint=False)
        assert result.code == 1, result.err
        assert "Error:" in result.err
        assert (ANSI in result.err) is coloured, result.err


@pytest.mark.parametrize(("terminal", "coloured"), [(True, True), (False, False)])
def test_a_real_terminal_gets_colour_and_pipes_do_not(
    sandbox: SandboxServer,
    tmp_path: Path,
    colour_env: dict[str, str],
    terminal: bool,
    coloured: bool,
) -> None:
    """Where a process is the point: a real pty on stdout and stderr, or real pipes."""
    (tmp_path / "batchplan.yaml").write_text(CONFIG)
    code, out = run_process(
        ["plan", "--endpoint", sandbox.url], tmp_path, colour_env, terminal=terminal
    )
    assert code == 0, out
    assert "1 to create" in out
    assert (ANSI in out) is coloured, out
    code, err = run_process(["validate", "missing.yaml"], tmp_path, colour_env, terminal=terminal)
    assert code == 1, err
    assert "Error:" in err
    assert (ANSI in err) is coloured, err


# --- shell completion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _batchplan_completion batchplan"),
        ("zsh", "compdef _batchplan_completion batchplan"),
        ("fish", "complete --no-files --command batchplan"),
    ],
)
def test_completion_scripts_are_generated(
    tmp_path: Path, colour_env: dict[str, str], shell: str, marker: str
) -> None:
    env = {**colour_env, "_BATCHPLAN_COMPLETE": f"{shell}_source"}
    code, script = run_process([], tmp_path, env, terminal=False)
    assert code == 0, script
    assert marker in script
    assert "_BATCHPLAN_COMPLETE" in script


def test_bash_completion_completes_commands_and_options(
    tmp_path: Path, colour_env: dict[str, str]
) -> None:
    """Source the generated script in a real bash and ask it, as the shell would."""
    import shlex
    import shutil
    import subprocess
    import sys

    bash = shutil.which("bash")
    assert bash is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The script calls `batchplan` by name: this one runs the package under test.
    (bin_dir / "batchplan").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m batchplan "$@"\n')
    (bin_dir / "batchplan").chmod(0o755)
    env = {**colour_env, "PATH": f"{bin_dir}:{colour_env['PATH']}"}

    def complete(*words: str) -> set[str]:
        script = (
            'eval "$(_BATCHPLAN_COMPLETE=bash_source batchplan)"\n'
            f"COMP_WORDS=(batchplan {' '.join(map(shlex.quote, words))}); "
            f"COMP_CWORD={len(words)}\n"
            '_batchplan_completion batchplan; printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        done = subprocess.run(
            [bash, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())

    assert {"plan", "apply", "validate", "schema", "state"} <= complete("")
    started = complete("st")
    assert "state" in started and all(word.startswith("st") for word in started)
    assert complete("schema", "") == {"config", "plan", "apply-events"}
    assert "--detailed-exitcode" in complete("plan", "--de")
    assert "--endpoint" in complete("--e")


# --- the docs' command lines are real ------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "install.md", ROOT / "docs" / "cli.md"]


def documented_commands() -> list[list[str]]:
    """Every ``batchplan ...`` line in the shell code blocks of the docs above."""
    import shlex

    found = []
    for path in DOCS:
        language = None  # inside a code block: its language ("" for none)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                language = line[3:].strip() if language is None else None
                continue
            if language not in ("sh", "console", ""):
                continue
            if language == "console":  # commands are the lines after a prompt
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = line.split(" #")[0]
            if line.startswith("batchplan "):
                words = shlex.split(line)[1:]
                found.append(words[: words.index(">")] if ">" in words else words)
    return found


def test_documented_commands_parse(cli: CLI) -> None:
    commands = documented_commands()
    assert ["--endpoint", "sandbox", "plan"] in commands
    assert ["schema", "config"] in commands
    for args in commands:
        result = cli(*args, "--help")
        assert result.code == 0, (args, result.err)


def test_install_doc_completion_and_editor_snippets() -> None:
    import re

    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    for shell in ("bash", "zsh", "fish"):
        assert f"_BATCHPLAN_COMPLETE={shell}_source batchplan" in text
    (settings,) = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    assert "./.batchplan.schema.json" in json.loads(settings)["yaml.schemas"]
    assert "# yaml-language-server: $schema=./.batchplan.schema.json" in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/install.md)" in readme and "(docs/cli.md)" in readme
    assert readme.index("make demo") < readme.index("make test") < readme.index("## Commands")


@pytest.mark.parametrize("args", [[], ["state"], ["sandbox"]])
def test_a_group_without_a_command_prints_its_help(cli: CLI, args: list[str]) -> None:
    result = cli(*args)
    assert result.code == 1
    assert "Commands:" in result.out + result.err
    assert "Error:" not in result.err
