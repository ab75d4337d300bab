"""Small things from a team's first week: skipped sub-folders, init, lock-wait lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchplan.errors import LockError
from batchplan.state.local import LocalState
from tests.helpers import CLI

BATCH = "version: 1\nbatches:\n  - {name: b1, project: p}\n"


def test_skipped_sub_folders_are_named_once_on_stderr(cli: CLI) -> None:
    (cli.folder / "batches" / "archive").mkdir(parents=True)
    (cli.folder / "batches" / "old").mkdir()
    (cli.folder / "batches" / ".hidden").mkdir()
    (cli.folder / "batches" / "old" / "b.yaml").write_text(BATCH, encoding="utf-8")
    cli.write("batches/a.yaml", BATCH)
    result = cli("plan", "batches")
    assert result.code == 0, result.err
    notes = [line for line in result.err.splitlines() if "sub-folders not read" in line]
    assert len(notes) == 1
    assert "archive/, old/" in notes[0] and ".hidden" not in notes[0]
    assert "batches" in notes[0]
    assert "sub-folders" not in result.out


def test_a_folder_without_sub_folders_gets_no_note(cli: CLI) -> None:
    cli.write("a.yaml", BATCH)
    (cli.folder / "batches").mkdir()
    cli.write("batches/a.yaml", BATCH)
    assert "sub-folders" not in cli("validate", "batches").err


def test_waiting_for_a_lock_says_who_holds_it_then_a_line_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    holder, waiter = LocalState(path), LocalState(path)
    lines: list[str] = []
    with holder.lock("apply", 0) as held:
        with pytest.raises(LockError):
            # Ten intervals of waiting: the notices follow the clock, not the polls.
            with waiter.lock("apply", 0.5, say=lines.append, notice_every=0.05):
                pass
    assert lines[0].startswith(f"Waiting for the state lock of {path} (up to 0.5 s): ")
    assert held.id in lines[0] and held.who in lines[0] and held.created in lines[0]
    assert len(lines) >= 2
    assert all(line.startswith("Still waiting for the state lock of ") for line in lines[1:])
    assert all(held.created in line for line in lines[1:])


def test_a_lock_taken_at_once_says_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    with LocalState(tmp_path / "state.json").lock("apply", 5, say=lines.append):
        pass
    assert lines == []


def test_apply_waiting_for_a_lock_prints_the_holder_on_stderr(cli: CLI) -> None:
    cli.write("batchplan.yaml", BATCH)
    state = LocalState(cli.folder / ".batchplan" / "state.json")
    with state.lock("someone else's apply", 0) as held:
        result = cli("apply", "--auto-approve", "--lock-timeout", "0.3")
    assert result.code == 1
    waiting = [line for line in result.err.splitlines() if line.startswith("Waiting for")]
    assert len(waiting) == 1 and held.id in waiting[0] and "since" in waiting[0]
    assert "Waiting" not in result.out
