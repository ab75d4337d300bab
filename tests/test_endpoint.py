"""One way to reach an account: ``Endpoint.parse``, the sandbox identity read, the Session.

``Endpoint.parse`` is pure (nothing started, opened or written); a sandbox's
identity is read from its database without serving it; every command that
talks to an account does so through one ``Session``, closed when it ends.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from batchplan.api.client import ScaleClient
from batchplan.api.endpoint import Endpoint
from batchplan.errors import UsageError
from batchplan.plan.planfile import _endpoint_key
from batchplan.sandbox import SandboxOptions, SandboxServer
from batchplan.sandbox.store import read_instance_id
from batchplan.state import State, dumps
from tests.helpers import CLI

CONFIG = "version: 1\nbatches:\n  - {name: a, project: p, priority: 20}\n"


def sandbox_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("batchplan-sandbox-")}


@pytest.mark.parametrize(
    ("spec", "url", "db"),
    [
        ("HTTPS://API.Scale.com:443/v1/", "https://api.scale.com/v1", None),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1", None),
        ("sandbox", "", ".batchplan/sandbox.db"),
        ("sandbox:own.db", "", "own.db"),
    ],
)
def test_parse_reads_the_value_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, url: str, db: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    endpoint = Endpoint.parse(spec)
    assert (endpoint.url, endpoint.db, endpoint.sandbox) == (url, db, db is not None)
    assert endpoint.stop is None
    assert list(tmp_path.iterdir()) == []  # no database made, no folder
    expected_key = url if db is None else f"sandbox:{tmp_path / db}"
    assert endpoint.key(str(tmp_path)) == expected_key
    assert _endpoint_key(spec, str(tmp_path)) == expected_key


@pytest.mark.parametrize(
    "spec", ["ftp://h/v1", "https://user:pw@h/v1", "https://h/v1?x=1", "https://h:port/v1"]
)
def test_parse_refuses_what_is_not_an_endpoint(spec: str) -> None:
    with pytest.raises(UsageError, match="--endpoint"):
        Endpoint.parse(spec)


def test_a_sandbox_identity_is_read_from_its_database_without_serving_it(tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    endpoint = Endpoint.parse(f"sandbox:{db}")
    assert endpoint.read_identity() is None
    assert not db.exists()  # reading made nothing

    with SandboxServer(SandboxOptions(db_path=str(db))) as server:
        instance = server.instance_id
    before = sandbox_threads()
    assert endpoint.read_identity() == f"sandbox:{instance}"
    assert read_instance_id(str(db)) == instance
    assert sandbox_threads() == before


def test_a_file_that_is_no_database_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not a database, " * 100)
    with pytest.raises(UsageError, match=r"bad\.db"):
        Endpoint.parse(f"sandbox:{bad}").read_identity()


def test_state_push_serves_no_sandbox(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "own.db")
    cli.write("batchplan.yaml", CONFIG)
    assert cli("apply", "--auto-approve", "--endpoint", f"sandbox:{db}", endpoint=False).code == 0
    pulled = cli("state", "pull", "--endpoint", "sandbox", endpoint=False)
    (tmp_path / "pulled.json").write_text(pulled.out)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("state push started a sandbox server")

    monkeypatch.setattr("batchplan.sandbox.start_sandbox", refuse)
    monkeypatch.setattr("batchplan.sandbox.server.start_sandbox", refuse)
    same = cli("state", "push", "pulled.json", "--endpoint", f"sandbox:{db}", endpoint=False)
    assert same.code == 0, same.err
    assert "already holds this state" in same.out


def test_state_push_to_a_sandbox_not_made_yet_creates_no_database(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(dumps(State.new("sandbox:0123")))

    result = cli("state", "push", "s.json", "--endpoint", "sandbox:none.db", endpoint=False)

    assert result.code == 1
    assert "a sandbox whose database does not exist yet" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "none.db").exists()


def test_import_closes_its_client_and_stops_its_sandbox(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[ScaleClient] = []
    close = ScaleClient.close

    def recording_close(client: ScaleClient) -> None:
        closed.append(client)
        close(client)

    monkeypatch.setattr(ScaleClient, "close", recording_close)
    before = sandbox_threads()

    result = cli(
        "import", "--project", "p", "--out", "imported.yaml", "--endpoint", "sandbox:own.db",
        endpoint=False,
    )  # fmt: skip

    assert result.code == 0, result.err
    assert len(closed) == 1
    assert sandbox_threads() == before  # the sandbox it started is stopped
