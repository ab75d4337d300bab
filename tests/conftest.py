"""Shared fixtures: sandbox servers on fresh databases in ``tmp_path``, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchplan.sandbox import SandboxOptions, SandboxServer
from tests.helpers import CLI

SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A key for URL endpoints (the sandbox accepts any); subprocesses inherit it."""
    key = "test-key-not-secret"
    monkeypatch.setenv("SCALE_API_KEY", key)
    return key


@pytest.fixture(autouse=True)
def no_remembered_secrets() -> Iterator[None]:
    """Each test starts with no secrets remembered by an earlier one in this process.

    The redaction remembers every variable value a command reads, for the
    life of the process; tests run many commands in one process, and a value
    such as "true" remembered by one would mask that word in the next.
    """
    from batchplan.redact import forget_all

    forget_all()
    yield
    forget_all()


@pytest.fixture(autouse=True)
def no_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COLUMNS/LINES from the runner: a test that wants a width sets one.

    A parallel worker may inherit COLUMNS from its parent, and ``status``
    fits its table to COLUMNS when it is set.
    """
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[SandboxFactory]:
    """Start sandboxes from ``SandboxOptions`` fields (a fresh database each unless given)."""
    started: list[SandboxServer] = []

    def start(**fields: Any) -> SandboxServer:
        fields.setdefault("db_path", str(tmp_path / f"sandbox-{len(started)}.db"))
        server = SandboxServer(SandboxOptions(**fields))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxServer:
    """A sandbox where every project exists (implicitly Rapid)."""
    return sandbox_factory()


@pytest.fixture
def strict_sandbox(sandbox_factory: SandboxFactory) -> SandboxServer:
    """A sandbox where only projects created with ``POST /projects`` exist."""
    return sandbox_factory(strict_projects=True)


@pytest.fixture
def cli(sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    """The CLI run in this process, in ``tmp_path``, against ``sandbox`` (see ``CLI``)."""
    return CLI(sandbox, tmp_path, capsys)
