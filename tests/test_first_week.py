"""Small things from a team's first week: skipped sub-folders, init, lock-wait lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchplan.sandbox import SandboxServer
from tests.helpers import CLI

BATCH = "version: 1\nbatches:\n  - {name: b1, project: p}\n"


@pytest.fixture
def cli(sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(sandbox, tmp_path, capsys)


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
