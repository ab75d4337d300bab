"""An endpoint that attacks the client: redirects, bombs, trickles, deep JSON, a bad key.

A raw loopback server writes exactly the bytes each test needs (a gzip bomb,
one byte at a time), which ``http.server`` would not let a test control.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchplan.api.client import ScaleClient
from batchplan.cli import run
from batchplan.errors import ApiError, ApiUnreachableError, UsageError
from batchplan.options import ClientOptions
from tests.scripted import Answer, scripted

BATCH = {"project": "p", "name": "b", "callback": "", "status": "staging", "metadata": {}}
# The cap on an answer once decompressed (the client's MAX_ANSWER_BYTES).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
ONE_TRY = ClientOptions(max_attempts=1, read_timeout=5, connect_timeout=2)

Handler = Callable[[socket.socket, bytes], None]


@contextlib.contextmanager
def raw_server(handle: Handler) -> Iterator[tuple[str, list[bytes]]]:
    """Serve each connection with ``handle(conn, request_head_and_body)``; yield (url, seen)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(body) < length:
                    body += conn.recv(65536)
                seen.append(head + b"\r\n\r\n" + body)
                handle(conn, head + b"\r\n\r\n" + body)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", seen
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "status",
    ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"],
)
def test_a_redirect_is_an_error_naming_the_host_and_is_never_followed(status: str) -> None:
    # Found: every redirect was followed; on 307/308 the other host received
    # the POST body with the expanded callback token.
    def other(conn: socket.socket, _request: bytes) -> None:
        body = json.dumps(BATCH).encode()
        conn.sendall(
            head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body))})
            + body
        )

    with raw_server(other) as (other_url, other_seen):
        location = other_url + "/batches"

        def redirect(conn: socket.socket, _request: bytes) -> None:
            conn.sendall(head(status, {"Location": location, "Content-Length": "0"}))

        with raw_server(redirect) as (url, seen):
            api = ScaleClient(url, "live-key-0123456789", ONE_TRY)
            with pytest.raises(ApiError) as caught:
                api.prioritize_batch("b", 30)
    assert other_seen == []
    assert len(seen) == 1
    message = str(caught.value)
    assert f"HTTP {status.split()[0]}" in message
    assert "host 127.0.0.1:" + other_url.split(":")[2].split("/")[0] in message


def test_a_redirect_is_not_retried_and_never_echoes_the_query() -> None:
    def redirect(conn: socket.socket, _request: bytes) -> None:
        target = "https://user:pw@evil.example/steal?token=SECRET-IN-QUERY"
        conn.sendall(head("302 Found", {"Location": target, "Content-Length": "0"}))

    with raw_server(redirect) as (url, seen):
        api = ScaleClient(url, None, ClientOptions(max_attempts=3, backoff_base=0.001))
        with pytest.raises(ApiError) as caught:
            api.get_batch("b")
    assert len(seen) == 1
    assert caught.value.status == 302
    assert "host evil.example" in str(caught.value)
    assert "SECRET-IN-QUERY" not in str(caught.value)
    assert "pw" not in str(caught.value).replace("HTTP", "")


def gzip_bomb(expanded: int) -> bytes:
    """A gzip body of ``expanded`` zero bytes: one small member per MiB, repeated."""
    member = gzip.compress(b"\0" * (1024 * 1024), compresslevel=9)
    return member * (expanded // (1024 * 1024))


def test_a_gzip_bomb_stops_at_the_cap_within_bounded_memory() -> None:
    # Found: a 1 MB gzip answer expanding to 1 GB took 52 s and 6.3 GB. Here a
    # 256 MiB bomb must be refused by a client held to 400 MB of address
    # space beyond what it has after start-up (in its own process).
    payload = gzip_bomb(256 * 1024 * 1024)

    def serve(conn: socket.socket, _request: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Content-Length": str(len(payload)),
        }
        with contextlib.suppress(OSError):
            conn.sendall(head("200 OK", headers) + payload)

    script = textwrap.dedent(
        """
        import resource, sys
        from batchplan.api.client import ScaleClient
        from batchplan.errors import ApiError
        from batchplan.options import ClientOptions

        def vm() -> int:
            for line in open("/proc/self/status"):
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
            raise SystemExit("no VmSize")

        api = ScaleClient(sys.argv[1], None, ClientOptions(max_attempts=1))
        limit = vm() + 400 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            api.get_batch("b")
        except ApiError as exc:
            print("refused:", exc)
        except MemoryError:
            print("out of memory")
        """
    )
    with raw_server(serve) as (url, _seen):
        done = subprocess.run(
            [sys.executable, "-c", script, url],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MALLOC_ARENA_MAX": "2"},
        )
    assert "refused:" in done.stdout, (done.stdout, done.stderr)
    assert f"larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB" in done.stdout


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_answer_past_the_cap_is_refused_not_read_whole(framing: str) -> None:
    # Found: a 1 GB listing took 6.4 GB. Declared by Content-Length it is
    # refused unread; chunked, it is cut once 64 MiB have come.
    size = MAX_ANSWER_BYTES + 8 * 1024 * 1024
    sent = 0

    def serve(conn: socket.socket, _request: bytes) -> None:
        nonlocal sent
        block = b" " * (1024 * 1024)
        if framing == "chunked":
            headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            piece = f"{len(block):x}\r\n".encode() + block + b"\r\n"
        else:
            headers = {"Content-Type": "application/json", "Content-Length": str(size)}
            piece = block
        conn.sendall(head("200 OK", headers))
        with contextlib.suppress(OSError):
            while sent < size:
                conn.sendall(piece)
                sent += len(block)

    with raw_server(serve) as (url, _seen):
        with pytest.raises(ApiError) as caught:
            ScaleClient(url, None, ONE_TRY).get_batch("b")
    assert "larger than 64 MiB" in str(caught.value)
    assert caught.value.status == 200


def test_a_trickling_answer_is_cut_at_the_whole_answer_deadline() -> None:
    # Found: a byte every 2 s with --request-timeout 5 --max-retries 0 took
    # 148 s, as the timeout bounded each read, not the answer. Here a byte
    # every 0.05 s makes a 2 s answer: it must fail at the 0.5 s timeout.
    body = json.dumps(BATCH).encode()

    def trickle(conn: socket.socket, _request: bytes) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        conn.sendall(head("200 OK", headers))
        with contextlib.suppress(OSError):
            for index in range(len(body)):
                conn.sendall(body[index : index + 1])
                time.sleep(0.05)

    assert len(body) * 0.05 > 2
    with raw_server(trickle) as (url, _seen):
        api = ScaleClient(url, None, ClientOptions(max_attempts=1, read_timeout=0.5))
        with pytest.raises(ApiUnreachableError) as caught:
            api.get_batch("b")
    assert "timed out" in str(caught.value)


def test_a_trickling_head_is_cut_at_the_whole_answer_deadline() -> None:
    # Found: the deadline covered the body only. A status line and headers
    # sent a byte every 0.05 s, each read inside the 0.5 s timeout, held the
    # call for as long as the endpoint went on (up to 100 header lines of
    # 64 KiB). The head must end at the deadline too.
    endless_header = b"X-Padding: " + b"a" * 10_000

    def trickle(conn: socket.socket, _request: bytes) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for index in range(len(endless_header)):
                conn.sendall(endless_header[index : index + 1])
                time.sleep(0.05)

    outcome: list[BaseException] = []

    def call(url: str) -> None:
        api = ScaleClient(url, None, ClientOptions(max_attempts=1, read_timeout=0.5))
        try:
            api.get_batch("b")
        except BaseException as exc:  # handed to the test thread, which asserts on it
            outcome.append(exc)

    with raw_server(trickle) as (url, _seen):
        caller = threading.Thread(target=call, args=(url,), daemon=True)
        caller.start()
        # Unbounded before: the head would trickle for 500 s. Twenty times
        # the deadline is room for any loaded machine, and far from that.
        caller.join(timeout=10)
        assert not caller.is_alive(), "the call was still reading the answer's head"
    assert len(outcome) == 1 and isinstance(outcome[0], ApiUnreachableError)
    assert "timed out" in str(outcome[0])


def test_connections_are_still_reused_under_the_answer_deadline() -> None:
    body = json.dumps(BATCH).encode()
    served = 0

    def keep_alive(conn: socket.socket, request: bytes) -> None:
        nonlocal served
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        answer += b"Content-Length: %d\r\n\r\n" % len(body) + body
        while request:
            served += 1
            conn.sendall(answer)
            request = conn.recv(65536)

    with raw_server(keep_alive) as (url, seen):
        api = ScaleClient(url, None, ClientOptions(max_attempts=1, read_timeout=0.5))
        for _ in range(3):
            assert api.get_batch("b") is not None
            time.sleep(0.6)  # past the first call's deadline: its socket is not shut
    assert served == 3
    assert len(seen) == 1  # one connection carried all three calls


def test_a_trickling_answer_is_retried_like_a_timeout() -> None:
    body = json.dumps(BATCH).encode()
    calls = 0

    def serve(conn: socket.socket, _request: bytes) -> None:
        nonlocal calls
        calls += 1
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        conn.sendall(head("200 OK", headers))
        with contextlib.suppress(OSError):
            if calls == 1:
                for index in range(len(body)):
                    conn.sendall(body[index : index + 1])
                    time.sleep(0.05)
            else:
                conn.sendall(body)

    with raw_server(serve) as (url, _seen):
        options = ClientOptions(max_attempts=2, read_timeout=0.5, backoff_base=0.001)
        batch = ScaleClient(url, None, options).get_batch("b")
    assert batch is not None and batch.name == "b"
    assert calls == 2


@pytest.mark.parametrize("opener", ["[", '{"a":', "[1,"])
def test_deeply_nested_json_is_a_clear_error(opener: str) -> None:
    # Found: an answer nested 100,000 deep ended in "unexpected RecursionError".
    closer = {"[": "]", '{"a":': "}", "[1,": "]"}[opener]
    deep = (opener * 100_000 + "1" + closer * 100_000).encode()

    def serve(conn: socket.socket, _request: bytes) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(deep))}
        conn.sendall(head("200 OK", headers) + deep)

    with raw_server(serve) as (url, _seen):
        with pytest.raises(ApiError) as caught:
            ScaleClient(url, None, ONE_TRY).get_batch("b")
    assert "nested deeper than 100 levels" in str(caught.value)


def test_nesting_is_counted_in_containers_not_in_strings() -> None:
    from batchplan.api.client import parse_json

    assert parse_json(json.dumps({"a": "[" * 500})) == {"a": "[" * 500}
    assert parse_json("[" * 100 + "]" * 100) is not None
    assert len(parse_json(json.dumps([[1]] * 1000))) == 1000
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):
        parse_json("[" * 101 + "]" * 101)
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):
        parse_json('{"a":' * 101 + "1" + "}" * 101)


def test_a_key_that_is_not_latin1_is_a_clear_error() -> None:
    # Found: a SCALE_API_KEY holding a euro sign: "unexpected UnicodeEncodeError".
    with pytest.raises(UsageError) as caught:
        ScaleClient("http://127.0.0.1:9/v1", "live-key-\u20ac-0123456789")
    assert "SCALE_API_KEY" in str(caught.value)
    assert "\u20ac" not in str(caught.value)


def test_plan_with_a_key_that_is_not_latin1_exits_1_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "batchplan.yaml").write_text(
        "version: 1\ndefaults:\n  project: p\nbatches:\n  - name: b\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALE_API_KEY", "key-with-\u20ac-sign-0123")
    with scripted(lambda seen: Answer(body={"docs": [], "has_more": False})) as server:
        code = run(["plan", "--endpoint", server.url])
    err = capsys.readouterr().err
    assert code == 1
    assert "SCALE_API_KEY" in err
    assert "unexpected" not in err
    assert server.seen == []


def test_the_retry_policy_is_bounded_in_attempts_and_time() -> None:
    from batchplan.api.client import RetryPolicy

    policy = RetryPolicy(max_attempts=3, max_retry_time=10, backoff_base=1, backoff_cap=3)
    highest = lambda low, high: high  # noqa: E731 (the largest jitter, to see the cap)
    assert policy.next_wait(1, None, 10, highest) == 1
    assert policy.next_wait(2, None, 10, highest) == 2
    assert policy.next_wait(3, None, 10, highest) is None
    assert policy.next_wait(1, 4.5, 10, highest) == 4.5
    assert policy.next_wait(1, 3600, 10, highest) is None
    assert RetryPolicy(max_attempts=9, backoff_base=1, backoff_cap=3).backoff(6, highest) == 3


def test_no_test_hook_in_the_request_loop() -> None:
    source = Path(__file__).resolve().parent.parent / "batchplan" / "api" / "client.py"
    assert "is time.sleep" not in source.read_text(encoding="utf-8")


def test_a_500_too_large_to_read_is_retried_like_any_500() -> None:
    # A 500 answer too large to read is still retried like any 500.
    calls = 0
    payload = gzip.compress(json.dumps(BATCH).encode())

    def serve(conn: socket.socket, _request: bytes) -> None:
        nonlocal calls
        calls += 1
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if calls == 1:
            bomb = gzip_bomb(MAX_ANSWER_BYTES + 2 * 1024 * 1024)
            headers["Content-Length"] = str(len(bomb))
            with contextlib.suppress(OSError):
                conn.sendall(head("500 Internal Server Error", headers) + bomb)
        else:
            headers["Content-Length"] = str(len(payload))
            conn.sendall(head("200 OK", headers) + payload)

    with raw_server(serve) as (url, _seen):
        options = ClientOptions(max_attempts=2, backoff_base=0.001)
        batch = ScaleClient(url, None, options).get_batch("b")
    assert batch is not None and batch.name == "b"
    assert calls == 2


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads thread signal masks from Linux's /proc"
)
def test_the_deadline_thread_never_takes_a_ctrl_c_meant_for_the_main_thread() -> None:
    # Found: Ctrl-C sometimes left plan and status waiting (6 runs in 40):
    # the kernel handed SIGINT to the watchdog thread, and the main thread,
    # blocked on a result, never saw it. The thread must block every signal.
    body = json.dumps(BATCH).encode()

    def answer(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(head("200 OK", {"Content-Length": str(len(body))}) + body)

    with raw_server(answer) as (url, _seen):
        ScaleClient(url, None, ONE_TRY).get_batch("b")
    (watchdog,) = [t for t in threading.enumerate() if t.name == "batchplan-answer-deadline"]
    status = Path(f"/proc/self/task/{watchdog.native_id}/status").read_text(encoding="utf-8")
    (blocked,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
    assert int(blocked, 16) & (1 << (signal.SIGINT - 1)), status
    assert int(blocked, 16) & (1 << (signal.SIGTERM - 1)), status
