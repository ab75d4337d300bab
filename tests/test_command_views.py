"""The views of init, schema, the state subcommands and sandbox serve, in process.

Each view is handed facts and a list-collecting echo; the lines it says are
compared exactly. The CLI's output is pinned in ``test_command_output.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchplan.model import BatchRecord
from batchplan.state import LockInfo
from batchplan.views.init import InitView
from batchplan.views.sandbox import SandboxView
from batchplan.views.schema import SchemaView
from batchplan.views.state import StateView
from tests.test_sandbox_serve import LINE

UPGRADE = "(after an upgrade: batchplan schema config > .batchplan.schema.json)."


class Lines(list[str]):
    """An echo that keeps every line it is given."""

    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def lines() -> Lines:
    return Lines()


# -- init ---------------------------------------------------------------------


def test_init_view_says_what_it_wrote(lines: Lines) -> None:
    view = InitView(lines)
    view.wrote_config(Path("proj/batchplan.yaml"))
    view.wrote_schema(Path("proj/.batchplan.schema.json"))
    view.created_ignore(Path("proj/.gitignore"), ".batchplan/")
    assert lines == [
        "Wrote proj/batchplan.yaml: a starter config; edit it, then `batchplan validate`.",
        f"Wrote proj/.batchplan.schema.json: the config schema, for editors {UPGRADE}",
        "Created proj/.gitignore ignoring .batchplan/ (local state, locks and sandbox data).",
    ]


def test_init_view_says_what_it_left_alone(lines: Lines) -> None:
    view = InitView(lines)
    view.left_alone(Path("batchplan.yml"))
    view.kept_schema(Path(".batchplan.schema.json"))
    view.already_ignored(Path(".gitignore"), ".batchplan/")
    view.added_ignore(Path(".gitignore"), ".batchplan/")
    assert lines == [
        "batchplan.yml already exists: left as it is.",
        f".batchplan.schema.json already exists: kept {UPGRADE}",
        ".gitignore already ignores .batchplan/.",
        "Added .batchplan/ to .gitignore (local state, locks and sandbox data).",
    ]


def test_init_view_names_the_schema_copy_by_its_file_name(lines: Lines) -> None:
    # The refresh command is run in the folder init wrote to.
    InitView(lines).kept_schema(Path("deep/down/other.schema.json"))
    assert lines == [
        "deep/down/other.schema.json already exists: kept "
        "(after an upgrade: batchplan schema config > other.schema.json)."
    ]


# -- schema -------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["", "\n", "\n\n\n"])
def test_schema_view_prints_the_text_with_one_line_break(lines: Lines, ending: str) -> None:
    SchemaView(lines).schema('{\n  "type": "object"\n}' + ending)
    assert lines == ['{\n  "type": "object"\n}']


# -- state --------------------------------------------------------------------


def test_state_view_shows_one_record_as_indented_json(lines: Lines) -> None:
    StateView(lines).record(BatchRecord("é", "p", None, True, None, "2026-01-02T03:04:05+00:00"))
    assert lines == [
        "{\n"
        '  "name": "é",\n'
        '  "project": "p",\n'
        '  "priority": null,\n'
        '  "calibration_batch": true,\n'
        '  "self_label_batch": null,\n'
        '  "updated_at": "2026-01-02T03:04:05+00:00"\n'
        "}"
    ]


def test_state_view_prints_the_pulled_document_as_given(lines: Lines) -> None:
    document = '{\n  "format_version": 1\n}\n'
    StateView(lines).document(document)
    assert lines == [document.rstrip("\n")]
    assert json.loads(lines[0]) == {"format_version": 1}


def test_state_view_names_each_removed_record_escaping_a_bad_name(lines: Lines) -> None:
    StateView(lines).removed(["b", "bad\nname", "a"])
    assert lines == [
        "Removed b from state (the batch itself is not deleted).",
        'Removed "bad\\nname" from state (the batch itself is not deleted).',
        "Removed a from state (the batch itself is not deleted).",
    ]


def test_state_view_removed_nothing_says_nothing(lines: Lines) -> None:
    StateView(lines).removed([])
    assert lines == []


def test_state_view_says_where_a_push_went_or_that_nothing_changed(lines: Lines) -> None:
    view = StateView(lines)
    view.pushed("newer.json", "s3://bucket/state.json", 7)
    view.already_held(".batchplan/state.json")
    assert lines == [
        "Pushed newer.json to s3://bucket/state.json (serial 7).",
        ".batchplan/state.json already holds this state; nothing pushed.",
    ]


def test_state_view_says_whose_lock_it_broke(lines: Lines) -> None:
    holder = LockInfo("L1", "state rm", "ana@box", "box", 4242, "2026-01-01T00:00:00+00:00")
    StateView(lines).broke_lock(holder)
    assert lines == [
        "Lock L1 broken (it was lock L1 held by ana@box (pid 4242 on box) "
        "for 'state rm' since 2026-01-01T00:00:00+00:00)."
    ]


# -- sandbox serve --------------------------------------------------------------


def test_sandbox_view_prints_the_address_line_scripts_wait_for(lines: Lines) -> None:
    SandboxView(lines).listening("http://127.0.0.1:8020/v1", "0" * 32)
    assert lines == [f"Sandbox listening on http://127.0.0.1:8020/v1 (instance {'0' * 32})"]
    assert LINE.match(lines[0])  # the line the serve tests and the docs read


def test_sandbox_view_says_why_it_cannot_start(lines: Lines) -> None:
    SandboxView(lines).cannot_start("cannot listen on 127.0.0.1:8020: Address already in use")
    assert lines == ["Error: cannot listen on 127.0.0.1:8020: Address already in use"]
