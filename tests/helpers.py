"""Small helpers the end-to-end tests share: run the CLI, read the sandbox's records."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from batchplan.cli import run
from batchplan.model import BatchRecord
from batchplan.sandbox import SandboxServer
from batchplan.state import State

MUTATING = (
    "POST /batches",
    "POST /batches/{name}/setMetadata",
    "POST /batches/{name}/prioritize",
    "POST /batches/{name}/finalize",
)


@dataclass
class Result:
    code: int
    out: str
    err: str


class CLI:
    """Runs ``batchplan`` in this process against one sandbox, in a temp folder."""

    def __init__(
        self, sandbox: SandboxServer, folder: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.sandbox = sandbox
        self.folder = folder
        self.capsys = capsys

    def __call__(self, *args: str, endpoint: bool = True) -> Result:
        argv = list(args)
        if endpoint and argv and argv[0] in ("plan", "apply", "import"):
            argv += ["--endpoint", self.sandbox.url]
        self.capsys.readouterr()
        cwd = os.getcwd()
        os.chdir(self.folder)
        try:
            code = run(argv)
        finally:
            os.chdir(cwd)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path


def sandbox_get(sandbox: SandboxServer, path: str) -> Any:
    response = requests.get(sandbox.url.removesuffix("/v1") + path, timeout=10)
    response.raise_for_status()
    return response.json()


def api_calls(sandbox: SandboxServer) -> Counter[str]:
    """Every /v1 request the sandbox answered, counted by route."""
    return Counter(r["route"] for r in sandbox_get(sandbox, "/_sandbox/requests")["requests"])


def mutating_calls(sandbox: SandboxServer) -> Counter[str]:
    calls = api_calls(sandbox)
    return Counter({route: n for route, n in calls.items() if route in MUTATING})


def clear_calls(sandbox: SandboxServer) -> None:
    requests.delete(
        sandbox.url.removesuffix("/v1") + "/_sandbox/requests", timeout=10
    ).raise_for_status()


def batch_record(sandbox: SandboxServer, name: str) -> dict[str, Any]:
    """The sandbox's full record of a batch, priority included."""
    from urllib.parse import quote

    result: dict[str, Any] = sandbox_get(sandbox, f"/_sandbox/batches/{quote(name, safe='')}")
    return result


def events(sandbox: SandboxServer) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = sandbox_get(sandbox, "/_sandbox/events")["events"]
    return result


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def start_apply(folder: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    """``batchplan apply --auto-approve`` as its own process, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "batchplan", "apply", "--auto-approve", "--endpoint", url, *extra],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def state_record(name: str, priority: int | None = 20) -> BatchRecord:
    """A state record as the state tests use it (fixed project and time)."""
    return BatchRecord(
        name=name,
        project="kitten_labeling",
        priority=priority,
        calibration_batch=False,
        self_label_batch=None,
        updated_at="2026-01-02T03:04:05+00:00",
    )


def next_version(state: State, **records: BatchRecord) -> State:
    """The state after one write that records ``records``."""
    return state.successor(records)


#: What a bounded ``batchplan`` process may use: memory, and seconds before it is a hang.
MEMORY_CAP = 1024 * 1024 * 1024
TIMEOUT = 30


def bounded(
    folder: Path,
    *args: str,
    fsize: int | None = None,
    env: dict[str, str] | None = None,
    memory: int = MEMORY_CAP,
) -> subprocess.CompletedProcess[str]:
    """``batchplan ARGS`` in its own process: ``memory`` bytes (1 GiB), ``fsize`` per file."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if fsize is not None:
            # A write past the limit then fails with EFBIG, as on a full disk.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    try:
        return subprocess.run(
            [sys.executable, "-m", "batchplan", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
            preexec_fn=limits,
            # glibc reserves 64 MiB of address space per thread's malloc
            # arena, not memory used; under RLIMIT_AS a run of many threads
            # could fail to start one ("can't start new thread") by chance.
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2"}
            | (env or {}),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"batchplan {' '.join(args)} still running after {TIMEOUT} s")
