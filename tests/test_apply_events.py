"""apply's views as a user sees them: real processes, signals, a pseudo-terminal, JSON Lines."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import jsonschema
import requests

from batchplan.sandbox import SandboxServer
from tests.scripted import Answer, Seen, scripted
from tests.test_reliability import write_batches

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "apply-events.schema.json").read_text())


class Running:
    """A ``batchplan`` process whose stdout and stderr lines are collected as they come."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batchplan", *args],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self._new: queue.SimpleQueue[None] = queue.SimpleQueue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, "out"), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, "err"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], name: str) -> None:
        for line in stream:
            self.lines[name].append(line.rstrip("\n"))
            self._new.put(None)

    def wait_for(self, pattern: str, stream: str = "out", timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines[stream]):
                if re.search(pattern, line):
                    return line
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=0.1)
        raise AssertionError(f"no {stream} line matching {pattern!r}: {self.lines}")

    def finish(self, timeout: float) -> int:
        """Wait for the exit; a process still running after ``timeout`` fails the test."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {timeout} s: {self.lines}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code


def admin(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> None:
    url = sandbox.url.removesuffix("/v1") + "/_sandbox" + path
    requests.post(url, json=body, timeout=10).raise_for_status()


def test_json_lines_of_a_run_with_retries_a_failure_and_an_interrupt_match_the_schema(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=30, fault_rate=0.5, seed=11)
    admin(sandbox, "/faults", {"fault_reads": False})
    write_batches(tmp_path, 40, priority=20, finalized=True)
    run = Running(
        tmp_path,
        *("apply", "--auto-approve", "--format", "json", "--endpoint", sandbox.url),
        *("--max-retries", "1", "--parallelism", "2", "--force"),
    )
    run.wait_for(r'"type": "retry"')
    run.wait_for(r'"outcome": "failed"')
    run.process.send_signal(signal.SIGINT)
    assert run.finish(timeout=60) == 130, run.lines
    lines = run.lines["out"]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    found = [json.loads(line) for line in lines]  # nothing but JSON on stdout
    for event in found:
        validator.validate(event)
    types = [event["type"] for event in found]
    assert types[0] == "apply_start" and types[-1] == "summary"
    assert {"call", "retry", "interrupted", "not_started"} <= set(types)
    assert found[-1]["result"] == "interrupted"
    failed = [e for e in found if e["type"] == "call" and e["outcome"] == "failed"]
    assert failed and all(e["attempts"] == 2 for e in failed if "HTTP 50" in e["error"])
    assert found[-1]["failed"] == len(failed)
    assert found[-1]["retries"] == types.count("retry")
    # The plan went to stderr, with the interrupt notice in words.
    assert any(line.startswith("Interrupted: ") for line in run.lines["err"])
    assert any(line.startswith("Plan:") for line in run.lines["err"]), run.lines["err"]


def test_json_format_refuses_to_run_without_approval(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    write_batches(tmp_path, 1)
    run = Running(tmp_path, "apply", "--format", "json", "--endpoint", sandbox.url)
    assert run.finish(timeout=60) == 1
    assert run.lines["out"] == []
    assert any("--auto-approve" in line for line in run.lines["err"]), run.lines


def test_first_ctrl_c_while_every_post_fails_stops_retrying_and_exits_130(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(fault_rate=1.0)
    admin(sandbox, "/faults", {"fault_reads": False})
    write_batches(tmp_path, 10, priority=20)
    # Up to 120 s of retries per call if the interrupt did not cut them short.
    run = Running(
        tmp_path,
        *("apply", "--auto-approve", "--endpoint", sandbox.url, "--parallelism", "2"),
        *("--max-retries", "20", "--request-timeout", "5"),
    )
    run.wait_for(r"attempt 3 failed \(HTTP 50\d")
    run.process.send_signal(signal.SIGINT)
    assert run.finish(timeout=20) == 130, run.lines
    notice = run.wait_for(r"^Interrupted: ", "err", timeout=1)
    assert re.fullmatch(
        r"Interrupted: (waiting for \d+ calls? in flight \(Ctrl-C again to stop now\)"
        r"|no call in flight, stopping)",
        notice,
    )
    summary = run.wait_for(r"^Apply interrupted", timeout=1)
    # Calls cut short while waiting to retry are not started, not failed. (A
    # create can still succeed: half the injected 503s come after the batch
    # was made, and a retry's 409 then finds it.)
    assert "failed" not in summary and "Failed:" not in run.lines["out"], run.lines
    assert "Not started (a new plan and apply will pick these up):" in run.lines["out"]
    assert not (tmp_path / ".batchplan" / "state.json.lock").exists()


def test_second_ctrl_c_exits_at_once_and_leaves_state_valid(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.method == "POST":
            return Answer(body={"result": "success"}, delay=60)  # calls stay on the wire
        if seen.path.startswith("/v1/projects/"):
            return Answer(body={"name": "rel"})
        if seen.path.startswith("/v1/batches?"):
            return Answer(body={"docs": [], "has_more": False, "totalDocs": 0, "limit": 100})
        return Answer(404, {"error": "not found"})

    write_batches(tmp_path, 6, priority=20)
    with scripted(script) as server:
        run = Running(
            tmp_path,
            *("apply", "--auto-approve", "--endpoint", server.url, "--parallelism", "2"),
            *("--request-timeout", "120"),
        )
        deadline = time.monotonic() + 60
        while sum(s.method == "POST" for s in server.seen) < 2:
            assert time.monotonic() < deadline, run.lines
            time.sleep(0.05)
        run.process.send_signal(signal.SIGINT)
        run.wait_for(r"Interrupted: waiting for 2 calls in flight", "err", timeout=30)
        run.process.send_signal(signal.SIGINT)
        assert run.finish(timeout=15) == 130, run.lines
    assert any(line.startswith("Stopped now:") for line in run.lines["err"]), run.lines
    assert not (tmp_path / ".batchplan" / "state.json.lock").exists()
    state = tmp_path / ".batchplan" / "state.json"
    if state.exists():
        json.loads(state.read_text())  # whole, never half-written


def test_progress_line_on_a_terminal(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(latency_ms=20)
    write_batches(tmp_path, 30, priority=20, finalized=True)
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "batchplan", "apply", "--auto-approve", "--endpoint", sandbox.url],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert process.wait(timeout=30) == 0
    text = seen.decode()
    progress = re.findall(
        r"\r\x1b\[K(\d+)/90 calls \((\d+)%\), (\d+:\d\d) elapsed, ETA (\S+), "
        r"(\d+) retries, (\d+) failed",
        text,
    )
    assert progress, text[-2000:]
    done = [int(p[0]) for p in progress]
    assert done == sorted(done) and done[-1] == 90
    assert progress[-1][1] == "100"
    # Per-batch lines are printed above the line, each on a clean line.
    assert re.search(r"\r\x1b\[Kr0000: created \(staging\)\r?\n", text), text[-2000:]
    assert "Apply complete: 30 created, 30 prioritized, 30 finalized. 90 calls, 0 retries" in text


def test_without_a_terminal_a_line_says_it_is_still_applying(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=100)
    write_batches(tmp_path, 20, priority=20)
    run = Running(
        tmp_path,
        *("apply", "--auto-approve", "--endpoint", sandbox.url, "--parallelism", "2", "--compact"),
        env={"BATCHPLAN_PROGRESS_INTERVAL": "0.3"},
    )
    line = run.wait_for(r"^still applying: \d+ of 40 calls, \d+:\d\d elapsed", "err")
    assert run.finish(timeout=120) == 0, run.lines
    assert line
    # --compact: no per-call lines, only the summary.
    assert not any(": created" in out for out in run.lines["out"]), run.lines["out"]
    assert any(out.startswith("Apply complete: 20 created") for out in run.lines["out"])


def test_json_with_nothing_to_do_is_a_start_and_a_complete_summary(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    write_batches(tmp_path, 2, priority=20)
    first = Running(tmp_path, "apply", "--auto-approve", "--endpoint", sandbox.url)
    assert first.finish(timeout=60) == 0, first.lines
    again = Running(
        tmp_path, "apply", "--auto-approve", "--format", "json", "--endpoint", sandbox.url
    )
    assert again.finish(timeout=60) == 0, again.lines
    found = [json.loads(line) for line in again.lines["out"]]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for event in found:
        validator.validate(event)
    assert [(e["type"], e.get("result")) for e in found] == [
        ("apply_start", None),
        ("summary", "complete"),
    ]
    assert found[1]["calls"] == 0


def test_compact_text_prints_failures_and_the_summary_only(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    # Seeded faults, one worker, no retries: the same calls fail on every run.
    sandbox = sandbox_factory(fault_rate=0.5, seed=3)
    admin(sandbox, "/faults", {"fault_reads": False})
    write_batches(tmp_path, 10)
    run = Running(
        tmp_path,
        *("apply", "--auto-approve", "--compact", "--endpoint", sandbox.url),
        *("--max-retries", "0", "--parallelism", "1"),
    )
    assert run.finish(timeout=60) == 1, run.lines
    plan_end = next(i for i, line in enumerate(run.lines["out"]) if line.startswith("Plan:"))
    printed = [line for line in run.lines["out"][plan_end + 1 :] if line]
    live = printed[: printed.index(next(line for line in printed if line.startswith("Apply ")))]
    assert live and all(re.match(r"r\d{4}: create failed after 1 attempt: ", line) for line in live)
    summary = next(line for line in printed if line.startswith("Apply failed: "))
    assert f"({len(live)} failed), 0 retries" in summary, summary
    assert re.search(r"^Apply failed: [1-9]\d* created\. 10 calls", summary), summary


def test_interrupt_counts_only_requests_on_the_wire_and_announces_no_retry_after_it(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    # Every POST fails after 1.5 s: at the interrupt some attempts are on the
    # wire, others wait for a limiter slot or sleep before a retry.
    sandbox = sandbox_factory(latency_ms=1500, fault_rate=1.0)
    admin(sandbox, "/faults", {"fault_reads": False})
    write_batches(tmp_path, 30, priority=20)
    run = Running(
        tmp_path,
        *("apply", "--auto-approve", "--format", "json", "--endpoint", sandbox.url),
        *("--max-retries", "20", "--request-timeout", "10"),
    )
    run.wait_for(r'"type": "retry"')
    run.process.send_signal(signal.SIGINT)
    assert run.finish(timeout=30) == 130, run.lines
    found = [json.loads(line) for line in run.lines["out"]]
    types = [event["type"] for event in found]
    cut = types.index("interrupted")
    # Every attempt answered before the interrupt was told as a retry or a call.
    answered = sum(t in ("retry", "call") for t in types[:cut])
    log = requests.get(sandbox.url.removesuffix("/v1") + "/_sandbox/requests", timeout=10)
    posts = sum(entry["method"] == "POST" for entry in log.json()["requests"])
    assert 0 <= found[cut]["in_flight"] <= posts - answered, (found[cut], posts, answered)
    # Attempts answered after the interrupt are not retried, so not announced.
    assert "retry" not in types[cut:], found[cut:]
    assert found[-1]["result"] == "interrupted"
    assert found[-1]["retries"] == types.count("retry")
    assert found[-1]["failed"] == 0 and found[-1]["not_started"] > 0
