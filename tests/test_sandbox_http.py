"""The sandbox's HTTP/1.1 framing, over raw sockets: bodies, HEAD, and its own failures."""

from __future__ import annotations

import http.client
import logging
import socket
from urllib.parse import urlsplit

import pytest
import requests

from batchplan.sandbox import SandboxServer
from batchplan.sandbox.app import SandboxApp
from batchplan.sandbox.store import Store

CREATE = b'{"project": "p", "name": "b1"}'


def exchange(sandbox: SandboxServer, request: bytes, half_close: bool = True) -> bytes:
    """Send raw bytes, optionally end the sending side, and read until the server closes."""
    url = urlsplit(sandbox.url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=10) as raw:
        raw.sendall(request)
        if half_close:
            raw.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    return received


def batches(sandbox: SandboxServer) -> int:
    info = requests.get(sandbox.url.removesuffix("/v1") + "/_sandbox/info", timeout=10)
    count: int = info.json()["batches"]
    return count


def post(headers: str, body: bytes) -> bytes:
    return f"POST /v1/batches HTTP/1.1\r\nHost: sandbox\r\n{headers}\r\n".encode() + body


def test_a_body_shorter_than_its_content_length_is_400_and_creates_nothing(
    sandbox: SandboxServer,
) -> None:
    # The short body is valid JSON on its own: reading fewer bytes than
    # announced must still be refused, not taken as the whole body.
    answer = exchange(sandbox, post(f"Content-Length: {len(CREATE) + 10}\r\n", CREATE))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"Connection: close" in head
    assert f"ended after {len(CREATE)} of {len(CREATE) + 10} bytes".encode() in body
    assert batches(sandbox) == 0


def chunked(*chunks: bytes, after_chunk: bytes = b"\r\n") -> bytes:
    framed = b"".join(b"%x\r\n%s%s" % (len(c), c, after_chunk) for c in chunks)
    return post("Transfer-Encoding: chunked\r\n", framed + b"0\r\n\r\n")


def test_a_chunked_body_is_read_and_the_connection_kept(sandbox: SandboxServer) -> None:
    request = chunked(CREATE[:10], CREATE[10:])
    follow = b"GET /v1/batches/b1 HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n"
    answer = exchange(sandbox, request + follow)
    first, second = answer.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and second.startswith(b"200")
    assert b'"name":"b1"' in second
    assert batches(sandbox) == 1


@pytest.mark.parametrize("after_chunk", [b"XY", b"", b"\r"])
def test_a_chunk_not_followed_by_crlf_is_400_and_creates_nothing(
    sandbox: SandboxServer, after_chunk: bytes
) -> None:
    answer = exchange(sandbox, chunked(CREATE, after_chunk=after_chunk))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"chunk data not followed by CRLF" in body or b"chunk size line" in body
    assert batches(sandbox) == 0


@pytest.mark.parametrize(
    "framed",
    [
        b"zz\r\n" + CREATE + b"\r\n0\r\n\r\n",  # size not hex
        b"%x\r\n" % (len(CREATE) + 5) + CREATE,  # chunk cut short by the end of the stream
        b"%x\r\n" % len(CREATE) + CREATE + b"\r\n",  # no last chunk
    ],
)
def test_malformed_chunked_bodies_are_400(sandbox: SandboxServer, framed: bytes) -> None:
    answer = exchange(sandbox, post("Transfer-Encoding: chunked\r\n", framed))
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"malformed chunked body" in answer
    assert batches(sandbox) == 0


def test_an_unsupported_transfer_coding_is_501(sandbox: SandboxServer) -> None:
    answer = exchange(sandbox, post("Transfer-Encoding: gzip\r\n", b""))
    assert answer.startswith(b"HTTP/1.1 501")
    assert b"Transfer-Encoding" in answer


def test_head_answers_get_headers_without_a_body(sandbox: SandboxServer) -> None:
    requests.post(f"{sandbox.url}/batches", json={"project": "p", "name": "b1"}, timeout=10)
    get = requests.get(f"{sandbox.url}/batches/b1", timeout=10)
    url = urlsplit(sandbox.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        for route, status in (("/v1/batches/b1", 200), ("/v1/batches/ghost", 404)):
            connection.request("HEAD", route)
            response = connection.getresponse()
            assert response.status == status
            assert response.read() == b""
            if status == 200:
                assert response.getheader("Content-Length") == str(len(get.content))
        # Any stray body bytes after a HEAD answer would be read as this answer.
        connection.request("GET", "/v1/batches/b1")
        after = connection.getresponse()
        assert after.status == 200 and after.read() == get.content
    finally:
        connection.close()
    # A raw look: the HEAD answer ends at its blank line, the next answer follows at once.
    head_then_get = (
        b"HEAD /v1/batches/b1 HTTP/1.1\r\nHost: s\r\n\r\n"
        b"GET /v1/batches/b1 HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
    )
    answer = exchange(sandbox, head_then_get, half_close=False)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and rest.startswith(b"HTTP/1.1 200")


def test_a_failing_store_call_is_logged_and_answered_500(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Store, name: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "batch", broken)
    with caplog.at_level(logging.ERROR, logger="batchplan.sandbox"):
        answer = requests.get(f"{sandbox.url}/batches/b1", timeout=10)
    assert answer.status_code == 500
    assert answer.json() == {
        "status_code": 500,
        "error": "internal sandbox error: RuntimeError: disk on fire",
    }
    [failure] = caplog.records
    assert failure.exc_info is not None and "disk on fire" in str(failure.exc_info[1])
    assert "GET /batches/{name}" in failure.getMessage()


def test_an_exception_outside_the_handlers_is_logged_and_answered_500(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: SandboxApp, *args: object) -> None:
        raise KeyError("lost")

    monkeypatch.setattr(SandboxApp, "answer", broken)
    with caplog.at_level(logging.ERROR, logger="batchplan.sandbox"):
        answer = requests.get(f"{sandbox.url}/batches", timeout=10)
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal sandbox error: KeyError: 'lost'"
    assert answer.headers["Connection"] == "close"
    [failure] = caplog.records
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], KeyError)
    assert "GET /v1/batches" in failure.getMessage()


def test_a_failure_while_answering_is_logged_not_hidden(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from batchplan.sandbox import handler

    def broken(self: object, reply: object) -> None:
        raise ValueError("cannot write")

    monkeypatch.setattr(handler.Handler, "_write", broken)
    with caplog.at_level(logging.ERROR, logger="batchplan.sandbox"):
        # The connection's thread logs before it closes the socket.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{sandbox.url}/batches", timeout=10)
    assert any(
        record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
        for record in caplog.records
    ), caplog.records


def test_a_request_cut_off_in_its_head_is_never_run(sandbox: SandboxServer) -> None:
    cut = b"POST /v1/batches HTTP/1.1\r\nHost: s\r\nContent-Length: 0\r\n"
    assert exchange(sandbox, cut) == b""
    assert exchange(sandbox, b"GET /v1/batches HTT") == b""
    assert batches(sandbox) == 0


@pytest.mark.parametrize(
    ("head", "status", "words"),
    [
        (b"GET /v1/batches HTTP/2.0\r\n\r\n", 505, b"HTTP/1.1"),
        (b"GET /v1/batches HTTX/1.1\r\n\r\n", 400, b"malformed request line"),
        (b"GET /v1/batches HTTP/1.1\r\nHost: s\r\n folded\r\n\r\n", 400, b"folding"),
        (b"GET /v1/batches HTTP/1.1\r\nHost : s\r\n\r\n", 400, b"malformed header line"),
        (b"GET /v1/batches HTTP/1.1\r\nExpect: magic\r\n\r\n", 417, b"Expect"),
        (b"GET /v1/batches HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431, b"header fields"),
        (b"GET /v1/batches HTTP/1.1\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n", 431, b"header line"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, b"request line"),
    ],
)
def test_malformed_heads_get_json_errors(
    sandbox: SandboxServer, head: bytes, status: int, words: bytes
) -> None:
    answer = exchange(sandbox, head)
    first, _, body = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 %d" % status), answer[:200]
    assert b"Connection: close" in first
    assert b'"status_code":%d' % status in body and words in body


def test_two_different_content_lengths_are_refused(sandbox: SandboxServer) -> None:
    request = post(f"Content-Length: {len(CREATE)}\r\nContent-Length: 5\r\n", CREATE)
    answer = exchange(sandbox, request)
    assert answer.startswith(b"HTTP/1.1 400") and b"Content-Length" in answer
    assert batches(sandbox) == 0
    # The same value twice is one length.
    twice = f"Content-Length: {len(CREATE)}\r\nContent-Length: {len(CREATE)}\r\n"
    assert exchange(sandbox, post(twice, CREATE)).startswith(b"HTTP/1.1 200")


def test_expect_100_continue_gets_its_interim_answer_before_the_body(
    sandbox: SandboxServer,
) -> None:
    url = urlsplit(sandbox.url)
    head = post(f"Content-Length: {len(CREATE)}\r\nExpect: 100-continue\r\n", b"")
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=10) as raw:
        raw.sendall(head)
        assert raw.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.sendall(CREATE)
        assert raw.recv(65536).startswith(b"HTTP/1.1 200")
    assert batches(sandbox) == 1


def test_an_empty_line_before_a_request_is_ignored(sandbox: SandboxServer) -> None:
    answer = exchange(sandbox, b"\r\nGET /v1/batches HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_negative_chunk_size_is_400_at_once(sandbox: SandboxServer) -> None:
    # Read as a size, -5 would mean "everything until the client closes": a
    # body without bound. The client here keeps its side open.
    request = post("Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n")
    answer = exchange(sandbox, request, half_close=False)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"negative chunk size" in answer
    assert batches(sandbox) == 0
