"""One connection of the sandbox: the stdlib's HTTP/1.1 parsing, under deadlines and a body cap.

Request heads are parsed by ``BaseHTTPRequestHandler.parse_request`` and
chunked bodies decoded by ``http.client``; this module adds what a server
facing hostile clients needs on top: a deadline for a whole head and a whole
body (not per read), a 1 MiB body cap, and answers in the API's JSON format.
"""

from __future__ import annotations

import email.message
import email.utils
import http.client
import io
import logging
import math
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from batchplan.sandbox.messages import ErrorReply, Reply

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from batchplan.sandbox.server import ConnectionServer

MAX_BODY = 1024 * 1024
# The stdlib's own limits on a request line and a header line.
MAX_LINE = 65536
# How long unread request bytes are read and dropped after an early error
# answer (a body over the cap, say), so the client reads the answer instead
# of a connection reset.
LINGER_SECONDS = 2.0

_log = logging.getLogger("batchplan.sandbox")


@dataclass(frozen=True)
class Deadlines:
    """Seconds allowed for each part of a connection's life."""

    head: float = 10.0  # from a request's first byte to its blank line
    body: float = 30.0  # from the end of the head to the body's last byte
    idle: float = 120.0  # a kept-alive connection waiting for its next request
    write: float = 30.0  # one answer, to a client that does not read


class BadRequest(Exception):
    """The request cannot be read as framed: answered with ``status``, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each receive bounded by what is left of the current deadline.

    A per-read timeout lets a client sending a byte a second hold a head open
    for ever; this bounds the whole head (or body) instead.
    """

    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self._connection = connection
        self.deadline = math.inf
        self.ended = False  # the client closed its side

    def start(self, seconds: float) -> None:
        """Start a new deadline, ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self._connection.settimeout(left)
        count = self._connection.recv_into(buffer)
        self.ended = count == 0
        return count


class _ChunkedSource:
    """The connection's bytes as ``http.client`` reads a response, behind a made-up head.

    ``http.client`` has the standard library's only decoder of chunked
    bodies; it reads a status line and fields first, so those come from
    here, then the request's body straight from the connection (nothing
    read ahead, so a next request on the connection stays intact).
    """

    def __init__(self, rfile: io.BufferedIOBase) -> None:
        self._head = [b"HTTP/1.1 200 OK\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n"]
        self._rfile = rfile
        self._tail = b""  # the last bytes of the reads since the last line

    def makefile(self, mode: str) -> _ChunkedSource:
        return self

    def readline(self, limit: int = -1) -> bytes:
        if self._head:
            return self._head.pop(0)
        # http.client drops the two bytes after a chunk's data unread; a line
        # is read only after them, so they must have been CRLF.
        if self._tail and self._tail != b"\r\n":
            raise BadRequest(400, "malformed chunked body: chunk data not followed by CRLF")
        self._tail = b""
        return self._rfile.readline(limit)

    def read(self, size: int) -> bytes:
        if size < 0:
            # http.client takes "-5" for a chunk size and would read to the
            # end of the stream: a body without bound.
            raise BadRequest(400, "malformed chunked body: a negative chunk size")
        data = self._rfile.read(size)
        self._tail = (self._tail + data)[-2:]
        return data

    def close(self) -> None:
        """The connection stays open: http.client closes its "file" at the last chunk."""


def read_chunked(rfile: io.BufferedIOBase, limit: int) -> bytes:
    """A chunked body, at most ``limit + 1`` bytes of it (more means over the cap)."""
    response = http.client.HTTPResponse(_ChunkedSource(rfile))  # type: ignore[arg-type]
    response.begin()
    try:
        return response.read(limit + 1)
    except (http.client.IncompleteRead, http.client.LineTooLong) as error:
        raise BadRequest(400, f"malformed chunked body: {_chunk_problem(error)}") from None


def _chunk_problem(error: http.client.HTTPException) -> str:
    if isinstance(error, http.client.LineTooLong):
        return f"a chunk size or trailer line over {MAX_LINE} bytes"
    # http.client re-raises a short chunk's error as the cause of its own.
    cause = error.__cause__ if isinstance(error.__cause__, http.client.IncompleteRead) else error
    if isinstance(cause, http.client.IncompleteRead) and cause.expected is not None:
        return "the stream ended inside a chunk"
    return "a chunk size line is not hexadecimal, or the last chunk is missing"


@dataclass(frozen=True)
class Fields:
    """The header fields the sandbox acts on, read in one pass over the parsed head."""

    lengths: tuple[str, ...] = ()
    encoding: str = ""  # every Transfer-Encoding, comma-joined
    expect: str | None = None
    authorization: str | None = None
    folded: bool = False  # a value continued on a line starting with a space

    @property
    def length(self) -> str | None:
        """The Content-Length, if any (two different ones are refused before it is used)."""
        return self.lengths[0] if self.lengths else None

    @classmethod
    def of(cls, headers: email.message.Message) -> Fields:
        """Read from the stdlib's parsed head (``raw_items``: no per-field decoding cost)."""
        lengths: list[str] = []
        encodings: list[str] = []
        expect = authorization = None
        folded = False
        for name, value in headers.raw_items():
            folded = folded or "\n" in value
            key = name.lower()
            if key == "content-length":
                lengths.append(value.strip())
            elif key == "transfer-encoding":
                encodings.append(value.strip())
            elif key == "expect":
                expect = value.strip()
            elif key == "authorization" and authorization is None:
                authorization = value.strip()
        return cls(tuple(lengths), ", ".join(encodings), expect, authorization, folded)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every request goes to the server's ``SandboxApp``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ConnectionServer
    fields = Fields()
    evicted = False  # closed by the server to make room

    def setup(self) -> None:
        super().setup()
        # Reads go through the deadline reader instead of the plain socket file.
        self.rfile.close()
        self._reader = _DeadlineReader(self.connection)
        self._input = io.BufferedReader(self._reader)
        self.rfile = self._input
        self.deadlines: Deadlines = self.server.deadlines
        self._served = 0
        self._begun = False  # a byte of the awaited request has come in
        self.waiting_since: float | None = time.monotonic()
        self.server.track(self, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self, alive=False)

    @property
    def mid_request(self) -> bool:
        """Whether part of a request has come in and the rest is awaited."""
        return self.waiting_since is not None and self._begun

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""

    def handle_one_request(self) -> None:
        """Wait for a request, read its head and body, answer it."""
        self.close_connection = True
        if self.evicted:
            return  # its socket is shut; never offer it for closing twice
        self.command = ""
        self.waiting_since = time.monotonic()
        self._begun = False
        reader = self._reader
        part = "head"
        try:
            # A new connection owes its first request at once; a kept-alive
            # one may wait longer for its next.
            reader.start(self.deadlines.idle if self._served else self.deadlines.head)
            if not self._input.peek(1):
                return
            self._begun = True
            reader.start(self.deadlines.head)
            if not self._read_head():
                return
            part = "body"
            reader.start(self.deadlines.body)
            try:
                body = self._read_body()
            except BadRequest as error:
                self._refuse(error.status, str(error))
                return
            if not self.server.answering(self):
                return  # closed to make room for a newer connection
            self._answer(body)
            self._served += 1
        except TimeoutError:
            self.close_connection = True
            # A request begun and not finished gets an answer; an idle connection just closes.
            if self._begun and self.waiting_since is not None:
                seconds = self.deadlines.body if part == "body" else self.deadlines.head
                self._refuse(408, f"request {part} not received within {seconds:g} s")

    def _read_head(self) -> bool:
        """Parse the request line and fields; False when there is nothing to answer.

        False also after a malformed head was answered with an error, and when
        the client hung up before the head's end (an incomplete request is
        never run).
        """
        line = self.rfile.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            # A client may send an empty line between requests; ignore one.
            line = self.rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            self._refuse(414, f"request line over {MAX_LINE} bytes")
            return False
        if not line.endswith(b"\n"):
            return False
        self.raw_requestline = line
        if not self.parse_request():
            return False
        if self._reader.ended:
            return False  # the fields were cut off by the client closing
        self.fields = Fields.of(self.headers)
        problem = self._head_problem()
        if problem is not None:
            self._refuse(*problem)
            return False
        return True

    def _head_problem(self) -> tuple[int, str] | None:
        """What the stdlib's parser lets through but a strict server refuses."""
        fields = self.fields
        if self.request_version == "HTTP/0.9":
            return 400, f"malformed request line: {self.requestline[:80]!r}"
        if self.headers.defects:
            return 400, "malformed header line (a field name with a space, or no colon)"
        if fields.folded:
            return 400, "header line folding (a line starting with a space) is obsolete"
        if len(set(fields.lengths)) > 1:
            return 400, "two different Content-Length fields"
        if fields.expect is not None and fields.expect.lower() != "100-continue":
            return 417, f"unsupported Expect: {fields.expect!r}"
        return None

    def handle_expect_100(self) -> bool:
        """Refuse a body over the cap before the client sends it."""
        length = Fields.of(self.headers).length or ""
        if length.isdigit() and int(length) > MAX_BODY:
            self._refuse(413, _over_cap())
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes:
        encoding, length = self.fields.encoding, self.fields.length
        if encoding:
            if encoding.strip().lower() != "chunked":
                raise BadRequest(501, f"unsupported Transfer-Encoding: {encoding!r}")
            if length is not None:
                # Both framings at once is how requests are smuggled: answer, then close.
                self.close_connection = True
            body = read_chunked(self._input, MAX_BODY)
        elif length is None:
            return b""
        elif not (length.isascii() and length.isdigit()):
            raise BadRequest(400, f"Content-Length is not a number: {length!r}")
        elif int(length) > MAX_BODY:
            raise BadRequest(413, _over_cap())
        else:
            body = self.rfile.read(int(length))
            if len(body) < int(length):
                raise BadRequest(400, f"request body ended after {len(body)} of {length} bytes")
        if len(body) > MAX_BODY:
            raise BadRequest(413, _over_cap())
        return body

    def _answer(self, body: bytes) -> None:
        try:
            reply = self.server.app.answer(self.command, self.path, self.fields.authorization, body)
        except Exception as error:
            # A sandbox bug: logged with its traceback, answered in the API's
            # format; the connection closes, as its state is unknown.
            _log.error("sandbox failed on %s %s", self.command, self.path, exc_info=True)
            self.close_connection = True
            reply = ErrorReply(
                500, f"internal sandbox error: {type(error).__name__}: {error}"
            ).reply()
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        self.connection.settimeout(self.deadlines.write)
        # An answer to HEAD has the headers GET would get and no body.
        self.wfile.write(encode(reply, self.close_connection, self.command == "HEAD"))

    def _refuse(self, status: int, message: str) -> None:
        """Answer a framing error and close: where the next request starts is unknown."""
        self.close_connection = True
        self._write(ErrorReply(status, message).reply())
        self._linger()

    def _linger(self) -> None:
        """Drop what the client still sends (a body refused unread) until it closes, briefly."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self._reader.start(LINGER_SECONDS)
            while self._input.read1(65536):
                pass
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib parser's errors, reworded, in the API's JSON format."""
        self._refuse(int(code), _STDLIB_WORDING.get(message or "") or _reword(code, message))


def _reword(code: int, message: str | None) -> str:
    text = message or HTTPStatus(code).phrase
    if code == 400:
        return f"malformed request line: {text}"
    if code == 505:
        return f"{text}; use HTTP/1.1"
    return text


_STDLIB_WORDING = {
    "Line too long": f"header line over {MAX_LINE} bytes",
    "Too many headers": "over 100 header fields",
}


def _over_cap() -> str:
    return f"request body over {MAX_BODY} bytes ({MAX_BODY // 1024 // 1024} MiB)"


def encode(reply: Reply, close: bool, head_only: bool = False) -> bytes:
    """A whole answer: one write, as with Nagle off two writes would be two packets."""
    payload = reply.encode()
    lines = [
        f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}",
        "Server: batchplan-sandbox",
        f"Date: {_http_date()}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in reply.headers),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + payload


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date field's value, formatted once a second (formatting costs a few µs)."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]
