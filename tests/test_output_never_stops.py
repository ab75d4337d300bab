"""Output and logs never stop work: a closed stdout or a full disk leaves apply going.

Real processes (the point is what a process does when its reader goes away),
the sandbox over loopback, and a request log that takes no more bytes: the
log is a real file already past the process's file-size limit (RLIMIT_FSIZE),
so every write to it fails as on a full disk while the small state file is
written as usual.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batchplan.api.client import ScaleClient
from batchplan.apply.engine import apply_plan
from batchplan.apply.events import ApplyEvent, CallEvent
from batchplan.model import DesiredBatch
from batchplan.sandbox import SandboxServer
from batchplan.state import State
from batchplan.state.local import LocalState
from batchplan.state.writer import StateWriter
from batchplan.views.apply import JsonView, TextView
from tests.helpers import bounded, sandbox_get
from tests.test_apply import plan_for
from tests.test_reliability import write_batches

COUNT = 80
#: The file-size limit of the process whose request log is "full".
FSIZE = 256 * 1024


def full_log(folder: Path) -> Path:
    """A request log already past ``FSIZE``: any line appended to it fails (EFBIG)."""
    log = folder / "requests.log"
    log.write_bytes(b"earlier runs\n" * (FSIZE // 8))
    return log


def live_batches(sandbox: SandboxServer) -> int:
    client = ScaleClient(sandbox.url, None)
    try:
        return sum(1 for _ in client.list_batches("rel"))
    finally:
        client.close()


def state_batches(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / ".batchplan" / "state.json").read_text(encoding="utf-8"))
    batches: dict[str, Any] = data["batches"]
    return batches


def apply_into_closed_pipe(folder: Path, url: str, keep: int, *extra: str) -> tuple[int, str]:
    """``batchplan apply --auto-approve ... | head -KEEP``: the exit code and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "batchplan", "apply", "--auto-approve", "--endpoint", url, *extra],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        # Unbuffered bytes: the pipe closes after exactly KEEP lines were read.
        bufsize=0,
    )
    assert process.stdout is not None and process.stderr is not None
    for _ in range(keep):
        line = b""
        while not line.endswith(b"\n"):
            byte = process.stdout.read(1)
            assert byte, "stdout ended early"
            line += byte
    process.stdout.close()
    err = process.stderr.read().decode()
    return process.wait(timeout=60), err


@pytest.mark.parametrize(("fmt", "keep"), [("text", 1), ("json", 2)])
def test_a_closed_stdout_never_halts_apply(
    sandbox: SandboxServer, tmp_path: Path, fmt: str, keep: int
) -> None:
    # Found: `apply --auto-approve | grep -m1 created` (or `--format json |
    # head -2`) exited 1 silently after 3 of 200 creates.
    write_batches(tmp_path, COUNT)
    code, err = apply_into_closed_pipe(tmp_path, sandbox.url, keep, "--format", fmt)
    assert live_batches(sandbox) == COUNT
    assert len(state_batches(tmp_path)) == COUNT
    assert code == 0, err
    assert err.count("could not write to stdout") == 1, err
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def test_a_request_log_on_a_full_disk_never_halts_apply(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Found: with BATCHPLAN_LOG_PATH on a full disk apply halted every batch,
    # printed no reason, and its summary said 17 created while state held 28.
    write_batches(tmp_path, 30)
    log = full_log(tmp_path)
    env = {"BATCHPLAN_LOG": "info", "BATCHPLAN_LOG_PATH": str(log)}
    done = bounded(
        tmp_path, "apply", "--auto-approve", "--endpoint", sandbox.url, fsize=FSIZE, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "Apply complete: 30 created" in done.stdout
    assert len(state_batches(tmp_path)) == 30
    assert live_batches(sandbox) == 30
    assert done.stderr.count("cannot be written (File too large)") == 1, done.stderr
    assert str(log) in done.stderr


def test_a_plan_with_an_unwritable_log_ends_with_a_clear_message(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Found: plan ended "unexpected OSError ... (a bug in batchplan)".
    write_batches(tmp_path, 3)
    log = full_log(tmp_path)
    env = {"BATCHPLAN_LOG": "debug", "BATCHPLAN_LOG_PATH": str(log)}
    done = bounded(tmp_path, "plan", "--endpoint", sandbox.url, fsize=FSIZE, env=env)
    assert "a bug in batchplan" not in done.stderr
    assert "unexpected" not in done.stderr
    assert f"request log {log} (BATCHPLAN_LOG_PATH) cannot be written" in done.stderr
    assert done.returncode == 0
    assert "3 to create" in done.stdout or "create" in done.stdout


def test_summary_counts_come_from_answers_even_when_the_view_fails(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # A view that raises on every call line (any output failure) must not turn
    # calls that were made into failures: counts come from the answers.
    plan = plan_for(*(DesiredBatch(name=f"v{i}", project="p") for i in range(12)))
    backend = LocalState(tmp_path / "state.json")
    writer = StateWriter(backend, State.new(sandbox.url))
    client = ScaleClient(sandbox.url, None)
    seen: list[ApplyEvent] = []

    def failing_view(event: ApplyEvent) -> None:
        seen.append(event)
        if isinstance(event, CallEvent):
            raise BrokenPipeError(32, "Broken pipe")

    result = apply_plan(plan, client, writer, {}, emit=failing_view, parallelism=4)
    writer.close()
    assert result.summary.created == 12
    assert result.summary.failed == 0
    assert result.ok
    assert result.output_error is not None and "BrokenPipeError" in result.output_error
    assert len(json.loads((tmp_path / "state.json").read_text())["batches"]) == 12
    assert len(sandbox_get(sandbox, "/v1/batches?project=p")["docs"]) == 12


class Closed:
    """A stream whose reader has gone."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, text: str, /) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


class Collect:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str, /) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("view_kind", ["text", "json"])
def test_a_view_on_a_closed_stream_tells_once_and_drops_the_rest(view_kind: str) -> None:
    from batchplan.apply.events import ApplyStart
    from batchplan.views.apply import GuardedStream, OutputTrouble

    err = Collect()
    closed = Closed()
    trouble = OutputTrouble(err)
    out = GuardedStream(closed, "stdout", trouble)
    view: TextView | JsonView
    if view_kind == "text":
        view = TextView(out, GuardedStream(err, "stderr", trouble), live=False, heartbeat=0)
    else:
        view = JsonView(out, GuardedStream(err, "stderr", trouble))
    view(ApplyStart(batches=3, calls=3))
    for index in range(3):
        view(CallEvent(batch=f"b{index}", action="create", outcome="done", attempts=1, ms=1.0))
    view.close()
    assert err.text.count("could not write to stdout (Broken pipe)") == 1
    assert closed.writes == 1
