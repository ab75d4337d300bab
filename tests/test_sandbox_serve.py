"""``batchplan sandbox serve`` as a real process: one line out, clean stop on a signal."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

LINE = re.compile(
    r"^Sandbox listening on (http://127\.0\.0\.1:\d+/v1) \(instance ([0-9a-f]{32})\)$"
)


def start(db: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchplan",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            *flags,
        ],
        cwd=db.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def read_line(process: subprocess.Popen[str], timeout: float = 20) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no line from the sandbox within {timeout}s")
    return process.stdout.readline().rstrip("\n")


@contextmanager
def serving(
    db: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    process = start(db, *flags, env=env)
    try:
        match = LINE.match(read_line(process))
        assert match, "unexpected first line"
        yield process, match.group(1), match.group(2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    with serving(tmp_path / "sb.db") as (process, url, instance):
        created = requests.post(f"{url}/batches", json={"project": "p", "name": "b"}, timeout=10)
        assert created.status_code == 200
        info = requests.get(url.removesuffix("/v1") + "/_sandbox/info", timeout=10).json()
        assert info == {"instance_id": instance, "batches": 1}
        process.send_signal(sig)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out == "" and err == "", "nothing after the URL line, and no per-request log"


def test_a_restart_on_the_same_file_keeps_the_instance_and_data(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    with serving(db) as (process, url, instance):
        requests.post(f"{url}/batches", json={"project": "p", "name": "kept"}, timeout=10)
        process.terminate()
        process.wait(timeout=10)
    with serving(db) as (process, url, again):
        assert again == instance
        assert requests.get(f"{url}/batches/kept", timeout=10).json()["name"] == "kept"
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_taken_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process = start(tmp_path / "sb.db", "--port", port)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out + err
    assert "Traceback" not in out + err


def test_flags_reach_the_server(tmp_path: Path) -> None:
    with serving(tmp_path / "sb.db", "--api-key", "k", "--latency-ms", "120") as (process, url, _):
        assert requests.get(f"{url}/batches", timeout=10).status_code == 401
        started = time.monotonic()
        assert requests.get(f"{url}/batches", auth=("k", ""), timeout=10).status_code == 200
        assert time.monotonic() - started >= 0.12
        process.terminate()
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("variable", ["BATCHPLAN_SANDBOX_API_KEY", "SANDBOX_API_KEY"])
def test_the_api_key_can_come_from_the_environment(tmp_path: Path, variable: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("SANDBOX_API_KEY")}
    env[variable] = "from-env"
    with serving(tmp_path / "sb.db", env=env) as (process, url, _):
        assert requests.get(f"{url}/batches", timeout=10).status_code == 401
        assert requests.get(f"{url}/batches", auth=("from-env", ""), timeout=10).ok
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_rate_limit_and_burst_reach_the_server(tmp_path: Path) -> None:
    flags = ("--rate-limit", "0.01", "--burst", "2")
    with serving(tmp_path / "sb.db", *flags) as (process, url, _):
        with requests.Session() as session:
            statuses = [session.get(f"{url}/batches", timeout=10) for _ in range(4)]
        assert [answer.status_code for answer in statuses] == [200, 200, 429, 429]
        assert statuses[-1].headers["Retry-After"] == "1"
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_max_connections_reaches_the_server(tmp_path: Path) -> None:
    flags = ("--max-connections", "1", "--latency-ms", "3000")
    with serving(tmp_path / "sb.db", *flags) as (process, url, _):
        info = url.removesuffix("/v1") + "/_sandbox/info"
        slow = threading.Thread(
            target=requests.get, args=(f"{url}/batches",), kwargs={"timeout": 10}
        )
        slow.start()
        try:
            time.sleep(1.0)  # the one connection is in its 3 s of latency
            assert requests.get(info, timeout=10).status_code == 503
        finally:
            slow.join()
        assert requests.get(info, timeout=10).status_code == 200
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_burst_without_a_rate_limit_is_a_usage_error(tmp_path: Path) -> None:
    process = start(tmp_path / "sb.db", "--burst", "5")
    out, err = process.communicate(timeout=20)
    assert process.returncode == 1
    assert "--burst needs --rate-limit" in err
    assert "Traceback" not in out + err


def test_every_serve_option_is_described_in_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchplan", "sandbox", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "BATCHPLAN_SANDBOX_API_KEY" in done.stdout
    options = done.stdout.split("Options:")[1]
    # An option line with no description is the flag and its type alone.
    described = re.findall(r"^  (--[a-z-]+)(?: [A-Z ]+?)?  +[A-Za-z]", options, re.MULTILINE)
    flags = re.findall(r"^  (--[a-z-]+)", options, re.MULTILINE)
    assert set(flags) >= {"--host", "--port", "--db", "--api-key", "--burst", "--seed"}
    assert described == flags
