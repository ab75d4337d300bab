"""Saved plans cannot be made to lie: --force, edited changes, signing, the compiled check."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batchplan.config.schema import load_schema
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, batch_record, clear_calls, mutating_calls

CONFIG = """\
    version: 1
    defaults:
      project: trust
      finalized: true
    batches:
      - name: t1
        priority: 20
      - name: t2
      - name: t3
"""

KEY = "plan-signing-key-4f1d9a"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def redigest(document: dict[str, Any]) -> dict[str, Any]:
    """What anyone can do to an edited plan: recompute its (unkeyed) digest."""
    body = {k: v for k, v in document.items() if k != "digest"}
    document["digest"] = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
    return document


def resign(document: dict[str, Any], key: str) -> dict[str, Any]:
    body = {k: v for k, v in document.items() if k not in ("digest", "signature")}
    mac = hmac.new(key.encode(), _canonical(body), hashlib.sha256).hexdigest()
    document["signature"] = "hmac-sha256:" + mac
    return redigest(document)


def edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def _force(document: dict[str, Any]) -> None:
    document["options"]["force"] = True
    redigest(document)


def test_force_written_into_the_file_does_not_go_past_the_limits(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--max-finalize", "1", "--out", "p.json").code == 3
    edit(cli.folder / "p.json", _force)
    assert json.loads((cli.folder / "p.json").read_text())["options"]["force"] is True
    clear_calls(sandbox)

    result = cli("apply", "p.json")

    assert result.code == 3, result.out + result.err
    assert "over a safety limit" in result.err
    assert not mutating_calls(sandbox)


def test_force_on_the_apply_command_line_goes_past_the_limits(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--max-finalize", "1", "--out", "p.json").code == 3

    result = cli("apply", "p.json", "--force")

    assert result.code == 0, result.out + result.err
    assert batch_record(sandbox, "t3")["status"] == "in_progress"


def _reprioritize(document: dict[str, Any]) -> None:
    for change in document["changes"]:
        if change["batch"] == "t1":
            change["after"]["priority"] = 30
    redigest(document)


def test_an_edited_and_redigested_change_is_refused(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--out", "p.json").code == 0
    edit(cli.folder / "p.json", _reprioritize)
    shown = cli("show", "p.json", "--format", "json")
    assert shown.code == 0
    changes = json.loads(shown.out)["changes"]
    assert [c["after"]["priority"] for c in changes if c["batch"] == "t1"] == [30]
    clear_calls(sandbox)

    result = cli("apply", "p.json")

    assert result.code == 4, result.out + result.err
    assert "does not say what applying it would do" in result.err
    assert "t1" in result.err
    assert not mutating_calls(sandbox)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("BATCHPLAN_PLAN_KEY", KEY)
    yield KEY


def test_a_signed_plan_shows_and_applies(cli: CLI, sandbox: SandboxServer, key: str) -> None:
    cli.write("batchplan.yaml", CONFIG)
    planned = cli("plan", "--out", "p.json")
    assert planned.code == 0, planned.err
    text = (cli.folder / "p.json").read_text()
    assert json.loads(text)["signature"].startswith("hmac-sha256:")
    assert cli("show", "p.json").code == 0

    applied = cli("apply", "p.json")

    assert applied.code == 0, applied.out + applied.err
    assert batch_record(sandbox, "t1")["status"] == "in_progress"
    for seen in (text, planned.out, planned.err, applied.out, applied.err):
        assert key not in seen


def test_an_unsigned_plan_is_refused_where_the_key_is_set(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--out", "p.json").code == 0
    monkeypatch.setenv("BATCHPLAN_PLAN_KEY", KEY)
    clear_calls(sandbox)

    shown = cli("show", "p.json")
    applied = cli("apply", "p.json")

    assert shown.code == 4 and applied.code == 4
    assert "not signed" in applied.err and "BATCHPLAN_PLAN_KEY" in applied.err
    assert shown.out == ""
    assert not mutating_calls(sandbox)


def test_a_plan_resigned_without_the_key_is_refused(
    cli: CLI, sandbox: SandboxServer, key: str
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--out", "p.json").code == 0
    edit(cli.folder / "p.json", lambda document: resign(document, "a-guessed-key"))
    clear_calls(sandbox)

    applied = cli("apply", "p.json")

    assert applied.code == 4
    assert "signature does not match BATCHPLAN_PLAN_KEY" in applied.err
    assert KEY not in applied.err and "a-guessed-key" not in applied.err
    assert not mutating_calls(sandbox)


def test_a_signed_plan_can_be_reviewed_without_the_key(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    monkeypatch.setenv("BATCHPLAN_PLAN_KEY", KEY)
    planned = cli("plan", "--out", "p.json")
    monkeypatch.delenv("BATCHPLAN_PLAN_KEY")

    shown = cli("show", "p.json")

    assert shown.code == 0
    assert shown.out == planned.out


def test_an_empty_key_is_an_error_not_signing_turned_off(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    monkeypatch.setenv("BATCHPLAN_PLAN_KEY", "")

    result = cli("plan", "--out", "p.json")

    assert result.code == 1
    assert "BATCHPLAN_PLAN_KEY is set but empty" in result.err
    assert not (cli.folder / "p.json").exists()


def test_show_of_a_valid_plan_does_not_run_jsonschema(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--out", "p.json").code == 0

    def slow_path(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("jsonschema validated a valid plan")

    monkeypatch.setattr(jsonschema.Draft202012Validator, "iter_errors", slow_path)
    monkeypatch.setattr(jsonschema.Draft202012Validator, "is_valid", slow_path)

    assert cli("show", "p.json").code == 0


def _mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, replacement) pairs: every value swapped for values of other types, keys dropped."""
    for other in (None, True, 0, -1, 25, 2.5, "", "x", [], {}, ["create"]):
        yield path, other
    if isinstance(value, dict):
        yield path, {**value, "unexpected": 1}
        for key, item in value.items():
            yield path, {k: v for k, v in value.items() if k != key}
            yield from _mutations(item, (*path, key))
    elif isinstance(value, list):
        yield path, value + value[:1]
        for index, item in enumerate(value[:2]):
            yield from _mutations(item, (*path, index))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.copy(document)
    copied[path[0]] = _replaced(document[path[0]], path[1:], value)
    return copied


def test_the_compiled_check_agrees_with_jsonschema(cli: CLI, sandbox: SandboxServer) -> None:
    from batchplan.config.schema import plan_check

    cli.write("batchplan.yaml", CONFIG + "        metadata: {team: a, n: [1, 2]}\n")
    assert cli("apply", "--auto-approve", "--target", "t2").code == 0
    cli.write("batchplan.yaml", CONFIG.replace("priority: 20", "priority: 21"))
    assert cli("plan", "--out", "p.json", "--max-finalize", "0").code == 3
    document = json.loads((cli.folder / "p.json").read_text())
    validator = jsonschema.Draft202012Validator(load_schema("plan.schema.json"))
    check = plan_check()

    seen = 0
    for path, value in _mutations(document):
        mutated = _replaced(document, path, value)
        assert check(mutated) == validator.is_valid(mutated), (path, value)
        seen += 1
    assert check(document) and seen > 1000
