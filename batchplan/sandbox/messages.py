"""Requests, replies and errors as the sandbox's handlers see them (no sockets here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One HTTP request, its path already split and percent-decoded."""

    method: str
    path: str  # raw, still percent-encoded, without the query
    segments: tuple[str, ...]  # decoded, without the leading "v1" or "_sandbox"
    query: dict[str, str]
    body: bytes
    authorization: str | None = None

    def json(self) -> Any:
        """The body as JSON; 400 when it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ErrorReply(400, f"request body is not valid JSON: {error}") from error

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; 400 for anything else (an empty body too)."""
        if not self.body.strip():
            raise ErrorReply(400, "request body must be a JSON object, got an empty body")
        value = self.json()
        if not isinstance(value, dict):
            raise ErrorReply(400, f"request body must be a JSON object, not {describe(value)}")
        return value


@dataclass(frozen=True)
class Reply:
    """What to answer: always JSON. ``committed`` says whether data changed."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()
    committed: bool = False

    def encode(self) -> bytes:
        """The body as compact UTF-8 JSON."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(eq=False)
class ErrorReply(Exception):
    """Raised by a sandbox handler to answer ``{"status_code": N, "error": message}``.

    The server's side of an error; the client's is ``batchplan.errors.ApiError``.
    """

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = field(default=())

    def __str__(self) -> str:
        return self.message

    def reply(self, committed: bool = False) -> Reply:
        """This error as a reply."""
        return Reply(
            self.status,
            {"status_code": self.status, "error": self.message},
            self.headers,
            committed,
        )


def ok(body: Any, committed: bool = False) -> Reply:
    """A 200 answer."""
    return Reply(200, body, committed=committed)


_KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def describe(value: Any) -> str:
    """A JSON value's kind for error messages: 'a string', 'null', ..."""
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)
