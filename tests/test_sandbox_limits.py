"""The sandbox under attack: slow heads, many connections, big bodies, bad query values."""

from __future__ import annotations

import json
import resource
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from batchplan.sandbox import SandboxOptions, SandboxServer
from tests.test_sandbox_serve import serving

MIB = 1024 * 1024
SandboxFactory = Callable[..., SandboxServer]


def address(sandbox: SandboxServer) -> tuple[str, int]:
    url = urlsplit(sandbox.url)
    return url.hostname or "", url.port or 0


def closed_by_server(raw: socket.socket, wait: float) -> bool:
    """Whether the server ended the connection (EOF, reset or an error answer) within ``wait``."""
    with selectors.DefaultSelector() as selector:
        selector.register(raw, selectors.EVENT_READ)
        if not selector.select(wait):
            return False
    with suppress(OSError):
        raw.recv(65536)
    return True


@pytest.mark.parametrize(
    "query",
    [
        "end_time=9999-12-31T23:59:59.999999-23:59",  # past the last representable UTC time
        "start_time=0001-01-01T00:00:00%2B23:59",  # before the first one
    ],
)
def test_a_time_out_of_range_is_400_naming_the_parameter(
    sandbox: SandboxServer, query: str
) -> None:
    answer = requests.get(f"{sandbox.url}/batches?{query}", timeout=10)
    assert answer.status_code == 400, answer.text
    field = query.partition("=")[0]
    assert answer.json()["error"].startswith(f"{field} ")


def test_a_head_sent_a_byte_at_a_time_is_cut_off_at_its_deadline(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: SandboxServer = sandbox_factory(head_timeout=1.0)
    head = b"GET /v1/batches HTTP/1.1\r\nX-Slow: " + b"a" * 40
    with socket.create_connection(address(sandbox), timeout=10) as raw:
        sent = 0
        for byte in head:
            try:
                raw.sendall(bytes([byte]))
            except OSError:
                break
            sent += 1
            if closed_by_server(raw, 0.2):
                break
        # A byte every 0.2 s keeps every single read well inside any per-read
        # timeout; only a deadline on the whole head ends it, after about 5 bytes.
        assert sent < 20, "the server still waited for the head after 4 s"


@pytest.mark.parametrize("trickle", [b"x", b""], ids=["a byte at a time", "silent"])
def test_slow_clients_cannot_take_every_connection_thread(
    sandbox: SandboxServer, trickle: bytes
) -> None:
    bound = SandboxOptions().max_connections
    baseline = threading.active_count()
    stop = threading.Event()
    peak = [0]
    with ExitStack() as stack:
        attackers = [
            stack.enter_context(socket.create_connection(address(sandbox), timeout=5))
            for _ in range(200)
        ]
        for raw in attackers:
            raw.sendall(b"GET /v1/batches HTTP/1.1\r\n" if trickle else b"")

        def attack() -> None:
            # Each attacker sends one more byte of a head that never ends, every 0.5 s.
            while not stop.is_set():
                for raw in attackers:
                    with suppress(OSError):
                        raw.send(trickle)
                peak[0] = max(peak[0], threading.active_count() - baseline - 1)
                stop.wait(0.5)

        attacking = threading.Thread(target=attack)
        attacking.start()
        try:
            stop.wait(1.5)
            # A normal client gets its answer while the attack goes on.
            for _ in range(3):
                answer = requests.get(f"{sandbox.url}/batches", timeout=5)
                assert answer.status_code == 200
        finally:
            stop.set()
            attacking.join()
    # A thread gives its slot back just before it ends, so a few may overlap
    # the ones replacing them; without a bound there would be 200.
    assert peak[0] <= bound + 10, f"{peak[0]} connection threads for 200 slow clients"
    # Attackers gone: answers at once, from new connections.
    for _ in range(5):
        with requests.Session() as session:
            assert session.get(f"{sandbox.url}/batches", timeout=2).status_code == 200


def test_a_connection_finding_every_thread_answering_gets_503_at_once(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox: SandboxServer = sandbox_factory(max_connections=2, latency_ms=4000)
    info = sandbox.url.removesuffix("/v1") + "/_sandbox/info"
    slow = [
        threading.Thread(
            target=requests.get, args=(f"{sandbox.url}/batches",), kwargs={"timeout": 10}
        )
        for _ in range(2)
    ]
    for thread in slow:
        thread.start()
    try:
        threading.Event().wait(1.5)  # both slow requests are in their 4 s of latency
        # Neither connection waits for a request, so none can be closed for this one.
        turned_away = requests.get(info, timeout=5)
        assert turned_away.status_code == 503
        assert turned_away.headers["Retry-After"] == "1"
        assert "2 connections" in turned_away.json()["error"]
    finally:
        for thread in slow:
            thread.join()
    assert requests.get(info, timeout=5).status_code == 200


def test_a_body_over_1_mib_is_413_and_a_body_of_1_mib_is_read(sandbox: SandboxServer) -> None:
    filler = "a" * (MIB - len('{"project":"p","name":"b1","metadata":{"x":""}}'))
    exact = json.dumps(
        {"project": "p", "name": "b1", "metadata": {"x": filler}}, separators=(",", ":")
    )
    assert len(exact) == MIB
    assert requests.post(f"{sandbox.url}/batches", data=exact, timeout=10).status_code == 200
    over = requests.post(f"{sandbox.url}/batches", data=exact + " ", timeout=10)
    assert over.status_code == 413
    assert over.json()["error"] == "request body over 1048576 bytes (1 MiB)"


def test_a_chunked_body_over_1_mib_is_413(sandbox: SandboxServer) -> None:
    def pieces() -> Iterator[bytes]:
        for _ in range(17):
            yield b" " * 65536

    answer = requests.post(f"{sandbox.url}/batches", data=pieces(), timeout=10)
    assert answer.status_code == 413


def test_a_body_too_big_gets_413_instead_of_100_continue(sandbox: SandboxServer) -> None:
    head = (
        b"POST /v1/batches HTTP/1.1\r\nHost: s\r\nContent-Length: 16777216\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(address(sandbox), timeout=10) as raw:
        raw.sendall(head)
        assert raw.recv(65536).startswith(b"HTTP/1.1 413")


def vm_peak_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_eight_concurrent_16_mib_bodies_get_413_in_bounded_memory(tmp_path: Path) -> None:
    filler = "a" * (16 * MIB - 100)
    body = json.dumps({"project": "p", "name": "big", "metadata": {"x": filler}}).encode()
    statuses: list[int] = []

    with serving(tmp_path / "sb.db") as (process, url, _):
        assert requests.get(f"{url}/batches", timeout=10).status_code == 200
        # A bound for the old behaviour (gigabytes), so a failure cannot take the machine down.
        resource.prlimit(process.pid, resource.RLIMIT_AS, (3 * 1024 * MIB, 3 * 1024 * MIB))
        before = vm_peak_kib(process.pid)

        def send() -> None:
            answer = requests.post(f"{url}/batches", data=body, timeout=30)
            statuses.append(answer.status_code)

        senders = [threading.Thread(target=send) for _ in range(8)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        grown_mib = (vm_peak_kib(process.pid) - before) / 1024
    assert statuses == [413] * 8
    # 8 bodies of 16 MiB held at once would be 128 MiB before any JSON decoding.
    assert grown_mib < 40, f"the server's peak memory grew by {grown_mib:.0f} MiB"
