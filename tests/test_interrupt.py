"""A Ctrl-C early in ``plan`` or ``status``: a short message and the exit code, no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFIG = "version: 1\nbatches:\n  - {name: b1, project: p}\n"


@pytest.fixture
def silent_endpoint() -> Iterator[socket.socket]:
    """A listener on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(10)
    yield server
    server.close()


def interrupted_while_waiting(
    folder: Path, server: socket.socket, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run batchplan, send SIGINT once its first call is waiting for an answer."""
    (folder / "batchplan.yaml").write_text(CONFIG, encoding="utf-8")
    port = server.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "batchplan", *args, "--endpoint", f"http://127.0.0.1:{port}/v1"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SCALE_API_KEY": "k"},
    )
    try:
        connection, _ = server.accept()  # the first call is on the wire: a deterministic point
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
        connection.close()
    finally:
        process.kill()
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_ctrl_c_before_the_first_answer_of_plan(
    tmp_path: Path, silent_endpoint: socket.socket
) -> None:
    # It used to print "Aborted." and then hang until the read timeout.
    result = interrupted_while_waiting(tmp_path, silent_endpoint, "plan")
    assert result.returncode == 130
    assert result.stderr.strip() == "Interrupted."
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_ctrl_c_while_status_waits_ends_at_once(
    tmp_path: Path, silent_endpoint: socket.socket
) -> None:
    # Ctrl-C ends status with 0, as it ends --watch; it used to wait for the read timeout.
    result = interrupted_while_waiting(tmp_path, silent_endpoint, "status")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr


# The installed ``batchplan`` script imports its entry point before anything
# else runs: a Ctrl-C while the CLI is still being imported must end as any
# other Ctrl-C does, not with a traceback.
CTRL_C_WHILE_IMPORTING = """
import importlib.metadata, sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "batchplan.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
(script,) = importlib.metadata.entry_points(group="console_scripts", name="batchplan")
script.load()()
"""


def python_code(folder: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``python -c CODE`` in ``folder``, its output captured, bounded in time."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ctrl_c_while_the_installed_script_imports_the_cli_ends_quietly(tmp_path: Path) -> None:
    done = python_code(tmp_path, CTRL_C_WHILE_IMPORTING)
    assert (done.returncode, done.stderr) == (130, "Interrupted.\n")


EXIT_HOOK = """
import atexit, sys
atexit.register(lambda: print("exit hook ran", flush=True))
sys.argv = ["batchplan", "--version"]
from batchplan.cli import main
main()
"""


def test_a_normal_end_still_runs_what_was_registered_for_exit(tmp_path: Path) -> None:
    # The CLI skips the interpreter's teardown at the end, not the exit hooks
    # (the logging module's flush of the request log is one).
    done = python_code(tmp_path, EXIT_HOOK)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "exit hook ran"
