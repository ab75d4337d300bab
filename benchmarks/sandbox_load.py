"""Load on the sandbox: creates/sec, list pages/sec and reads/sec from pooled sessions.

The sandbox runs as its own process (``batchplan sandbox serve --port 0``) so
that client and server do not share one interpreter lock. Each phase runs for
``--seconds``; the server's CPU time (from /proc, Linux) tells whether the
server or the client was the limit.

    .venv/bin/python -m benchmarks.sandbox_load [--threads 8] [--seconds 5] [--slow-clients N]

``--slow-clients N`` runs every phase under attack: N more connections, each
sending one byte of a request head that never ends every second.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from benchmarks.common import Sandbox, machine, sandbox

Call = Callable[[requests.Session, int], int]


@dataclass(frozen=True)
class Figure:
    phase: str
    requests: int
    seconds: float
    statuses: Counter[int]
    server_cpu: float | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def row(self) -> str:
        cpu = f"{self.server_cpu / self.seconds:.0%}" if self.server_cpu is not None else "n/a"
        per_request = (
            f"{self.server_cpu / self.requests * 1e6:.0f} µs"
            if self.server_cpu is not None and self.requests
            else "n/a"
        )
        errors = sum(n for status, n in self.statuses.items() if status != 200)
        return (
            f"| {self.phase} | {self.rate:,.0f}/s | {self.requests:,} | {errors} "
            f"| {cpu} | {per_request} |"
        )


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(sb: Sandbox, phase: str, call: Call, threads: int, seconds: float) -> Figure:
    """Run ``call`` from ``threads`` threads, each on its own pooled session, for ``seconds``."""
    counter = itertools.count()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    deadline = 0.0

    def worker() -> None:
        mine: Counter[int] = Counter()
        with requests.Session() as session:
            call(session, -1)  # open the pooled connection before the clock starts
            start.wait()
            while time.perf_counter() < deadline:
                mine[call(session, next(counter))] += 1
        with lock:
            statuses.update(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    before = cpu_seconds(sb.process.pid)
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    after = cpu_seconds(sb.process.pid)
    server_cpu = after - before if before is not None and after is not None else None
    return Figure(phase, sum(statuses.values()), elapsed, statuses, server_cpu)


@contextlib.contextmanager
def slow_clients(url: str, count: int) -> Iterator[None]:
    """``count`` connections trickling a head that never ends, reconnecting when cut off."""
    if count <= 0:
        yield
        return
    target = urlsplit(url)
    address = (target.hostname or "", target.port or 0)
    stop = threading.Event()

    def connect() -> socket.socket | None:
        try:
            raw = socket.create_connection(address, timeout=1)
            raw.sendall(b"GET /v1/batches HTTP/1.1\r\n")
            return raw
        except OSError:
            return None

    def trickle() -> None:
        sockets = [connect() for _ in range(count)]
        while not stop.wait(1.0):
            for i, raw in enumerate(sockets):
                try:
                    if raw is None:
                        raise OSError
                    raw.send(b"x")
                except OSError:
                    if raw is not None:
                        raw.close()
                    sockets[i] = connect()
        for raw in sockets:
            if raw is not None:
                raw.close()

    attacker = threading.Thread(target=trickle, daemon=True)
    attacker.start()
    try:
        time.sleep(2.0)  # let the connections open and start trickling
        yield
    finally:
        stop.set()
        attacker.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--listed", type=int, default=20_000, help="batches seeded for listing")
    parser.add_argument(
        "--slow-clients", type=int, default=0, help="connections trickling a head meanwhile"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, sandbox(Path(tmp) / "load.db") as sb:
        base = sb.url

        def create(session: requests.Session, n: int) -> int:
            name = "warm-up" if n < 0 else f"load-{n:07d}"
            body = {"project": "load", "name": name}
            return session.post(f"{base}/batches", json=body, timeout=30).status_code

        seeded = time.perf_counter()
        sb.seed("listed", "l-", args.listed)
        seed_seconds = time.perf_counter() - seeded
        pages = args.listed // 100

        def list_page(session: requests.Session, n: int) -> int:
            params = {"project": "listed", "limit": 100, "offset": max(n, 0) % pages * 100}
            return session.get(f"{base}/batches", params=params, timeout=30).status_code

        def read(session: requests.Session, n: int) -> int:
            name = f"l-{max(n, 0) % args.listed:06d}"
            return session.get(f"{base}/batches/{name}", timeout=30).status_code

        with slow_clients(base, args.slow_clients):
            figures = [
                drive(sb, "create batch (POST /batches)", create, args.threads, args.seconds),
                drive(sb, "list page of 100 (GET /batches)", list_page, args.threads, args.seconds),
                drive(sb, "get batch (GET /batches/{name})", read, args.threads, args.seconds),
            ]

    attack = f", {args.slow_clients} slow clients trickling" if args.slow_clients else ""
    print(
        f"Sandbox load: {args.threads} client threads{attack}, {args.seconds:g} s a phase"
        f" ({machine()})"
    )
    print()
    print("| phase | rate | requests | non-200 | server CPU | server CPU per request |")
    print("| --- | --- | --- | --- | --- | --- |")
    for figure in figures:
        print(figure.row())
    print()
    print(
        f"Seeding {args.listed:,} batches (POST /_sandbox/seed): {seed_seconds:.2f} s "
        f"({args.listed / seed_seconds:,.0f}/s)."
    )


if __name__ == "__main__":
    main()
