"""Hostile files: FIFOs, devices, symlinks, huge or deeply nested files, a full disk.

Each test that could exhaust memory or hang runs ``batchplan`` as its own
process, bounded by ``resource.setrlimit`` and a timeout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batchplan.errors import PlanError, StateError
from batchplan.sandbox import SandboxServer
from batchplan.state.local import LocalState
from tests.helpers import CLI, bounded, mutating_calls

CONFIG = """\
    version: 1
    defaults:
      project: files
    batches:
      - name: f1
        priority: 20
      - name: f2
      - name: f3
"""


def state_path(folder: Path) -> Path:
    path = folder / ".batchplan" / "state.json"
    path.parent.mkdir(exist_ok=True)
    return path


def test_state_symlinked_to_dev_zero_is_refused_without_reading_it(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    state_path(cli.folder).symlink_to("/dev/zero")

    result = bounded(cli.folder, "plan", "--endpoint", sandbox.url)

    assert result.returncode == 1, result.stderr
    assert "state.json is a symbolic link (to /dev/zero)" in result.stderr
    assert "rm " in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_state_that_is_not_a_regular_file_is_a_clear_error(
    cli: CLI, sandbox: SandboxServer, kind: str
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    path = state_path(cli.folder)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()

    result = bounded(cli.folder, "plan", "--endpoint", sandbox.url)

    assert result.returncode == 1, result.stderr
    expected = (
        "state.json is a FIFO (named pipe), not a regular file"
        if kind == "fifo"
        else "cannot read state .batchplan/state.json: Is a directory"
    )
    assert expected in result.stderr


def test_show_of_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    result = bounded(tmp_path, "show", "/dev/zero")

    assert result.returncode == 1, result.stderr
    assert "plan /dev/zero is a device, not a regular file" in result.stderr
    assert "MemoryError" not in result.stderr


def test_show_of_a_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "plan.json")

    result = bounded(tmp_path, "show", "plan.json")

    assert result.returncode == 1, result.stderr
    assert "plan plan.json is a FIFO (named pipe), not a regular file" in result.stderr


def test_a_file_over_the_cap_is_refused_after_reading_at_most_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    from batchplan.files import read_regular

    path.write_bytes(b"x" * 1001)
    with pytest.raises(PlanError, match="larger than"):
        read_regular(path, what="plan", cap=1000, error=PlanError)
    found = read_regular(path, what="plan", cap=1001, error=PlanError)
    assert found is not None and len(found[0]) == 1001


def test_deeply_nested_state_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(StateError, match="nested too deeply"):
        LocalState(path).read()


def test_deeply_nested_plan_is_a_clear_error(cli: CLI) -> None:
    (cli.folder / "plan.json").write_text('{"kind": "batchplan-plan", "x": ' + "[" * 100_000)

    result = cli("show", "plan.json")

    assert result.code == 1
    assert "plan.json: JSON nested too deeply to read" in result.err
    assert "RecursionError" not in result.err


def test_a_deep_metadata_value_in_a_plan_is_refused_by_the_check() -> None:
    from batchplan.config.schema import MAX_FREE_DEPTH, fast_check
    from batchplan.files import nested_deeper_than

    free = fast_check({}, free_depth=MAX_FREE_DEPTH)
    shallow: object = "leaf"
    for _ in range(MAX_FREE_DEPTH):
        shallow = [shallow]
    assert free(shallow)
    assert not free([shallow])
    assert nested_deeper_than([shallow], MAX_FREE_DEPTH)


def test_out_through_a_dangling_symlink_creates_nothing_elsewhere(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    elsewhere = cli.folder / "elsewhere" / "planted.json"
    elsewhere.parent.mkdir()
    (cli.folder / "plan.json").symlink_to(elsewhere)

    result = cli("plan", "--out", "plan.json")

    assert result.code == 1
    assert "--out plan.json: is a symbolic link" in result.err
    assert not elsewhere.exists()
    assert (cli.folder / "plan.json").is_symlink()


def test_out_through_a_symlink_to_an_earlier_plan_is_refused(cli: CLI) -> None:
    cli.write("batchplan.yaml", CONFIG)
    assert cli("plan", "--out", "real.json").code == 0
    before = (cli.folder / "real.json").read_bytes()
    (cli.folder / "plan.json").symlink_to(cli.folder / "real.json")

    result = cli("plan", "--out", "plan.json")

    assert result.code == 1
    assert "is a symbolic link" in result.err
    assert (cli.folder / "real.json").read_bytes() == before


def test_a_dangling_lock_symlink_is_refused_at_once_naming_it(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    lock = cli.folder / ".batchplan" / "state.json.lock"
    lock.parent.mkdir()
    lock.symlink_to(cli.folder / "nowhere")

    result = cli("apply", "--auto-approve", "--lock-timeout", "1", "--state", str(lock)[:-5])

    assert result.code == 1
    assert f"lock {lock} is a symbolic link (to {cli.folder / 'nowhere'})" in result.err
    assert f"rm {lock}" in result.err
    assert not mutating_calls(sandbox)
    assert not (cli.folder / "nowhere").exists()


def test_a_lock_symlinked_to_a_device_is_never_read(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", CONFIG)
    lock = state_path(cli.folder).with_name("state.json.lock")
    lock.symlink_to("/dev/zero")

    result = bounded(
        cli.folder, "apply", "--auto-approve", "--lock-timeout", "1", "--endpoint", sandbox.url
    )

    assert result.returncode == 1, result.stderr
    assert "state.json.lock is a symbolic link (to /dev/zero)" in result.stderr
    assert not mutating_calls(sandbox)


def test_state_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    from batchplan.state import State

    target = tmp_path / "target.json"
    state = tmp_path / "state.json"
    state.symlink_to(target)

    with pytest.raises(StateError, match="is a symbolic link"):
        LocalState(state).write(State.new("sandbox:x"))
    assert not target.exists()


def test_a_full_disk_leaves_the_earlier_plan_whole(cli: CLI, sandbox: SandboxServer) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: one, project: files}\n")
    assert cli("plan", "--out", "plan.json").code == 0
    before = (cli.folder / "plan.json").read_bytes()
    cli.write("batchplan.yaml", CONFIG)

    result = bounded(
        cli.folder, "plan", "--endpoint", sandbox.url, "--out", "plan.json", fsize=1000
    )

    assert result.returncode == 1, result.stderr
    assert "cannot write plan plan.json: File too large; nothing was replaced" in result.stderr
    assert (cli.folder / "plan.json").read_bytes() == before
    # No temp file is left beside it either.
    assert [p.name for p in cli.folder.iterdir() if p.name.startswith("plan.json")] == ["plan.json"]
    assert json.loads(before)["kind"] == "batchplan-plan"


def test_write_atomic_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    from batchplan.files import write_atomic

    path = tmp_path / "plan.json"
    path.write_text("old")
    path.chmod(0o640)

    write_atomic(path, b"new", what="plan", error=PlanError)

    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_file_whose_size_says_zero_is_still_read_and_capped() -> None:
    from batchplan.files import read_regular

    # /proc files report a size of 0 and still hold text.
    found = read_regular("/proc/self/status", what="plan", cap=1_000_000, error=PlanError)
    assert found is not None and found[1].st_size == 0 and b"Name:" in found[0]
    with pytest.raises(PlanError, match="larger than"):
        read_regular("/proc/self/status", what="plan", cap=10, error=PlanError)


def test_the_request_log_is_never_written_through_a_symlink(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found: BATCHPLAN_LOG_PATH was opened with open(path, "a"), so a committed
    # link made a plan create or append to a file elsewhere.
    cli.write("batchplan.yaml", CONFIG)
    elsewhere = cli.folder / "elsewhere" / "planted.log"
    elsewhere.parent.mkdir()
    (cli.folder / "requests.log").symlink_to(elsewhere)
    monkeypatch.setenv("BATCHPLAN_LOG", "info")
    monkeypatch.setenv("BATCHPLAN_LOG_PATH", str(cli.folder / "requests.log"))

    result = cli("plan")

    assert result.code == 1
    assert "is a symbolic link" in result.err and "requests.log" in result.err
    assert not elsewhere.exists()


def test_a_fifo_as_the_request_log_is_refused_without_blocking(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("batchplan.yaml", CONFIG)
    fifo = cli.folder / "requests.log"
    os.mkfifo(fifo)
    monkeypatch.setenv("BATCHPLAN_LOG", "info")
    monkeypatch.setenv("BATCHPLAN_LOG_PATH", str(fifo))

    result = cli("plan")

    assert result.code == 1
    assert "a FIFO (named pipe), not a regular file" in result.err
