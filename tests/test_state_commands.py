"""``batchplan state ...`` and state read by plan/apply: validation, endpoints, OS errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from batchplan.model import BatchRecord
from batchplan.state import State, dumps
from batchplan.state.local import LocalState
from tests.helpers import CLI

CONFIG = """\
version: 1
batches:
  - {name: a, project: p, priority: 20}
"""


def stored(cli: CLI, *records: BatchRecord) -> State:
    """A state for the CLI's sandbox, written where the CLI finds it by default."""
    state = State.new(cli.sandbox.url).successor({r.name: r for r in records})
    LocalState(cli.folder / ".batchplan" / "state.json").write(state)
    return state


def one_line_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text and "a bug in batchplan" not in text, text
    return lines[0]


# -- validation of records ----------------------------------------------------


def test_plan_refuses_a_hand_edited_state_naming_record_and_field(cli: CLI) -> None:
    state = stored(cli, BatchRecord(name="a", project="p", priority=20))
    path = cli.folder / ".batchplan" / "state.json"
    path.write_text(dumps(state).replace('"priority": 20', '"priority": 99'))
    cli.write("batchplan.yaml", CONFIG)

    result = cli("plan")

    assert result.code == 1
    line = one_line_error(result.err)
    assert (
        f'{path.relative_to(cli.folder)}: batches["a"].priority: 99 is outside 10 to 30; '
        "`batchplan state rm --state .batchplan/state.json a` drops the record"
    ) in line


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"priority": "20"}, 'batches["a"].priority: expected an integer or null, got "20"'),
        ({"project": ""}, 'batches["a"].project: expected a non-empty string, got ""'),
        ({"project": 7}, 'batches["a"].project: expected a non-empty string, got 7'),
        ({"name": "b"}, 'batches["a"].name: "b" does not match its key "a"'),
        ({"calibration_batch": 1}, 'batches["a"].calibration_batch: expected true or false'),
        ({"priorty": 20}, "batches[\"a\"]: unknown field 'priorty'"),
    ],
)
def test_push_refuses_a_bad_record_and_keeps_the_stored_state(
    cli: CLI, edit: dict[str, object], message: str
) -> None:
    before = stored(cli, BatchRecord(name="a", project="p", priority=20))
    document = json.loads(dumps(before))
    document["batches"]["a"].update(edit)
    document["serial"] += 1
    (cli.folder / "edited.json").write_text(json.dumps(document))

    result = cli("state", "push", "edited.json", "--endpoint", cli.sandbox.url)

    assert result.code == 1
    assert f"edited.json: {message}" in one_line_error(result.err)
    assert LocalState(cli.folder / ".batchplan" / "state.json").read() == before


def test_push_refuses_another_endpoints_state_unless_forced(cli: CLI) -> None:
    before = stored(cli, BatchRecord(name="a", project="p", priority=20))
    other = replace(before, endpoint="https://api.scale.com/v1", serial=before.serial + 1)
    (cli.folder / "other.json").write_text(dumps(other))

    refused = cli("state", "push", "other.json", "--endpoint", cli.sandbox.url)
    assert refused.code == 1
    line = one_line_error(refused.err)
    assert "other.json belongs to endpoint https://api.scale.com/v1" in line
    assert f"this run talks to {cli.sandbox.url}" in line
    assert LocalState(cli.folder / ".batchplan" / "state.json").read() == before

    forced = cli("state", "push", "other.json", "--endpoint", cli.sandbox.url, "--force")
    assert forced.code == 0, forced.err
    pushed = LocalState(cli.folder / ".batchplan" / "state.json").read()
    assert pushed is not None and pushed.endpoint == "https://api.scale.com/v1"


def test_push_knows_the_embedded_sandboxs_identity(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    db = str(cli.folder / "own.db")
    assert cli("apply", "--auto-approve", "--endpoint", f"sandbox:{db}", endpoint=False).code == 0
    pulled = cli("state", "pull", "--endpoint", "sandbox", endpoint=False)
    assert pulled.code == 0, pulled.err
    (cli.folder / "pulled.json").write_text(pulled.out)
    assert json.loads(pulled.out)["endpoint"].startswith("sandbox:")

    same = cli("state", "push", "pulled.json", "--endpoint", f"sandbox:{db}", endpoint=False)
    assert same.code == 0, same.err
    other = cli("state", "push", "pulled.json", "--endpoint", "sandbox:other.db", endpoint=False)
    assert other.code == 1
    assert "belongs to endpoint sandbox:" in one_line_error(other.err)


def test_push_of_this_endpoints_state_is_accepted(cli: CLI) -> None:
    before = stored(cli, BatchRecord(name="a", project="p", priority=20))
    newer = before.successor({"b": BatchRecord(name="b", project="p")})
    (cli.folder / "newer.json").write_text(dumps(newer))

    result = cli("state", "push", "newer.json", "--endpoint", cli.sandbox.url)

    assert result.code == 0, result.err
    assert LocalState(cli.folder / ".batchplan" / "state.json").read() == newer


# -- state list ---------------------------------------------------------------


def test_state_list_json_gives_every_record_field(cli: CLI) -> None:
    stored(
        cli,
        BatchRecord("b", "p", 12, True, False, "2026-01-02T03:04:05+00:00"),
        BatchRecord("a", "q"),
    )

    result = cli("state", "list", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "state": ".batchplan/state.json",
        "batches": [
            {
                "name": "a",
                "project": "q",
                "priority": None,
                "calibration_batch": None,
                "self_label_batch": None,
                "updated_at": None,
            },
            {
                "name": "b",
                "project": "p",
                "priority": 12,
                "calibration_batch": True,
                "self_label_batch": False,
                "updated_at": "2026-01-02T03:04:05+00:00",
            },
        ],
    }


def test_state_list_json_of_no_state_is_an_empty_list(cli: CLI) -> None:
    result = cli("state", "list", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["batches"] == []


# -- operating-system errors: one line, exit 1 --------------------------------
# Tests run as root, for whom permission bits do not fail: these paths fail for
# anyone (a file where a folder is needed, a folder where a file is needed).


def test_a_state_under_a_regular_file_is_one_line(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)

    result = cli("apply", "--auto-approve", "--state", "batchplan.yaml/x.json")

    assert result.code == 1
    assert one_line_error(result.err) == (
        "Error: cannot create lock batchplan.yaml/x.json.lock: Not a directory"
    )
    assert cli.sandbox.store.count() == 0


def test_a_state_folder_that_is_a_file_is_one_line(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    (cli.folder / ".batchplan").write_text("not a folder")

    result = cli("apply", "--auto-approve")

    assert result.code == 1
    assert one_line_error(result.err) == (
        "Error: cannot create lock .batchplan/state.json.lock: Not a directory"
    )


def test_a_state_that_is_a_folder_is_one_line(cli: CLI) -> None:
    (cli.folder / "state-dir").mkdir()

    for args in (("state", "list"), ("plan", "--state", "state-dir")):
        cli.write("batchplan.yaml", CONFIG)
        argv = [*args] if "--state" in args else [*args, "--state", "state-dir"]
        result = cli(*argv)
        assert result.code == 1
        assert one_line_error(result.err) == "Error: cannot read state state-dir: Is a directory"


def test_a_state_write_into_a_folder_is_one_line(cli: CLI) -> None:
    state = stored(cli, BatchRecord(name="a", project="p", priority=20))
    (cli.folder / "pushed.json").write_text(dumps(state.successor({})))
    (cli.folder / "target").mkdir()
    (cli.folder / "target" / "state.json").mkdir()
    (cli.folder / "target" / "state.json" / "keep").write_text("x")

    result = cli("state", "push", "pushed.json", "--state", "target/state.json", "--force")

    assert result.code == 1
    assert one_line_error(result.err) == (
        "Error: cannot read state target/state.json: Is a directory"
    )


def test_pushing_a_folder_is_one_line(cli: CLI) -> None:
    (cli.folder / "folder").mkdir()
    result = cli("state", "push", "folder", "--endpoint", cli.sandbox.url)
    assert result.code == 1
    assert one_line_error(result.err) == "Error: cannot read state folder: Is a directory"
