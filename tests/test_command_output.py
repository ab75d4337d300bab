"""The exact output of init, schema, the state subcommands and sandbox serve.

Their wording lives in their views; these pin every line byte for byte, as
the commands print it, so moving wording between modules cannot change it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from batchplan.commands import SCHEMAS
from batchplan.config.schema import schema_dir
from batchplan.model import BatchRecord
from batchplan.state import LockInfo, State, dumps
from batchplan.state.local import LocalState
from tests.helpers import CLI

SCHEMA_NOTE = "(after an upgrade: batchplan schema config > .batchplan.schema.json)."


def stored(cli: CLI, *records: BatchRecord) -> State:
    """A state where the state commands find it by default (this folder's .batchplan/)."""
    state = State.new(cli.sandbox.url).successor({r.name: r for r in records})
    LocalState(cli.folder / ".batchplan" / "state.json").write(state)
    return state


# -- init ---------------------------------------------------------------------


def test_init_in_an_empty_folder_says_what_it_wrote(cli: CLI) -> None:
    result = cli("init")
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.splitlines() == [
        "Wrote batchplan.yaml: a starter config; edit it, then `batchplan validate`.",
        f"Wrote .batchplan.schema.json: the config schema, for editors {SCHEMA_NOTE}",
        "Created .gitignore ignoring .batchplan/ (local state, locks and sandbox data).",
    ]


def test_init_a_second_time_says_what_it_left_alone(cli: CLI) -> None:
    assert cli("init").code == 0
    result = cli("init")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "batchplan.yaml already exists: left as it is.",
        f".batchplan.schema.json already exists: kept {SCHEMA_NOTE}",
        ".gitignore already ignores .batchplan/.",
    ]


def test_init_beside_a_yml_config_and_a_gitignore_without_the_folder(cli: CLI) -> None:
    cli.write("batchplan.yml", "version: 1\nbatches: []\n")
    cli.write(".gitignore", "*.pyc")  # no final line break
    result = cli("init", ".")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "batchplan.yml already exists: left as it is.",
        f"Wrote .batchplan.schema.json: the config schema, for editors {SCHEMA_NOTE}",
        "Added .batchplan/ to .gitignore (local state, locks and sandbox data).",
    ]
    assert (cli.folder / ".gitignore").read_text() == "*.pyc\n.batchplan/\n"


def test_init_into_another_folder_names_the_files_by_that_folder(cli: CLI) -> None:
    (cli.folder / "project").mkdir()
    result = cli("init", "project")
    assert result.code == 0, result.err
    assert [line.split(":")[0] for line in result.out.splitlines()] == [
        "Wrote project/batchplan.yaml",
        "Wrote project/.batchplan.schema.json",
        "Created project/.gitignore ignoring .batchplan/ (local state, locks and sandbox data).",
    ]


# -- schema -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_prints_the_shipped_file_exactly(cli: CLI, name: str) -> None:
    shipped = (schema_dir() / SCHEMAS[name]).read_text(encoding="utf-8")
    result = cli("schema", name)
    assert result.code == 0, result.err
    assert result.out == shipped.rstrip("\n") + "\n"
    assert json.loads(result.out)["$schema"].startswith("https://json-schema.org/")


# -- state show / pull / rm / push / unlock -----------------------------------


def test_state_show_prints_the_record_as_indented_json(cli: CLI) -> None:
    stored(cli, BatchRecord("a", "p", 12, True, False, "2026-01-02T03:04:05+00:00"))
    result = cli("state", "show", "a")
    assert result.code == 0, result.err
    assert result.out == (
        "{\n"
        '  "name": "a",\n'
        '  "project": "p",\n'
        '  "priority": 12,\n'
        '  "calibration_batch": true,\n'
        '  "self_label_batch": false,\n'
        '  "updated_at": "2026-01-02T03:04:05+00:00"\n'
        "}\n"
    )


def test_state_pull_prints_the_stored_document(cli: CLI) -> None:
    state = stored(cli, BatchRecord("a", "p", 12), BatchRecord("b", "q"))
    result = cli("state", "pull")
    assert result.code == 0, result.err
    assert result.out == dumps(state)
    assert result.out == (cli.folder / ".batchplan" / "state.json").read_text()


def test_state_rm_says_each_record_it_removed(cli: CLI) -> None:
    stored(cli, BatchRecord("a", "p"), BatchRecord("b", "p"), BatchRecord("c", "p"))
    result = cli("state", "rm", "c", "a")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "Removed c from state (the batch itself is not deleted).",
        "Removed a from state (the batch itself is not deleted).",
    ]


def test_state_rm_of_a_damaged_record_names_it_escaped(cli: CLI) -> None:
    stored(cli, BatchRecord("good", "p"))
    path = cli.folder / ".batchplan" / "state.json"
    document = json.loads(path.read_text())
    document["batches"]["bad\nname"] = {"project": "p", "priority": None}
    path.write_text(json.dumps(document))
    result = cli("state", "rm", "bad\nname")
    assert result.code == 0, result.err
    assert result.out == 'Removed "bad\\nname" from state (the batch itself is not deleted).\n'


def test_state_push_says_where_and_the_serial_or_that_nothing_changed(cli: CLI) -> None:
    before = stored(cli, BatchRecord("a", "p"))
    (cli.folder / "same.json").write_text(dumps(before))
    newer = before.successor({"b": BatchRecord("b", "p")})
    (cli.folder / "newer.json").write_text(dumps(newer))

    same = cli("state", "push", "same.json", "--endpoint", cli.sandbox.url)
    assert same.code == 0, same.err
    assert same.out == ".batchplan/state.json already holds this state; nothing pushed.\n"

    pushed = cli("state", "push", "newer.json", "--endpoint", cli.sandbox.url)
    assert pushed.code == 0, pushed.err
    assert pushed.out == f"Pushed newer.json to .batchplan/state.json (serial {newer.serial}).\n"


def test_state_unlock_says_whose_lock_it_broke(cli: CLI) -> None:
    stored(cli, BatchRecord("a", "p"))
    holder = LockInfo("L1", "apply", "ana@box", "box", 4242, "2026-01-01T00:00:00+00:00")
    (cli.folder / ".batchplan" / "state.json.lock").write_text(holder.to_json())
    result = cli("state", "unlock", "L1")
    assert result.code == 0, result.err
    assert result.out == (
        "Lock L1 broken (it was lock L1 held by ana@box (pid 4242 on box) "
        "for 'apply' since 2026-01-01T00:00:00+00:00).\n"
    )
    assert not (cli.folder / ".batchplan" / "state.json.lock").exists()


# -- sandbox serve --------------------------------------------------------------


def test_sandbox_serve_on_a_taken_port_prints_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = ["sandbox", "serve", "--port", str(port), "--db", str(tmp_path / "sb.db")]
        process = subprocess.run(
            [sys.executable, "-m", "batchplan", *serve],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=20,
        )
    assert process.returncode == 1
    assert process.stderr == ""
    lines = process.stdout.splitlines()
    assert len(lines) == 1, process.stdout
    assert lines[0].startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
