"""The command line: colour rules, approval, environment, hostile input, state commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from batchplan import cli as cli_module
from batchplan.commands.apply import apply
from batchplan.context import Options
from batchplan.plan import PlanOptions
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, api_calls, mutating_calls

BAD = Path(__file__).resolve().parent / "data" / "bad"
CONFIG = "version: 1\nbatches:\n  - {name: c1, project: p, priority: 12}\n"


@pytest.fixture
def cli(sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(sandbox, tmp_path, capsys)


class Tty:
    def isatty(self) -> bool:
        return True


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
