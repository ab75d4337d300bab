"""From request to reply: path decoding, auth, faults, routing, the request log.

Kept free of sockets so the rules read in one place; ``server.py`` only moves bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import sqlite3
from urllib.parse import parse_qs, unquote_to_bytes

from batchplan.sandbox import admin, api
from batchplan.sandbox.faults import Faults, RequestLog
from batchplan.sandbox.messages import ErrorReply, Reply, Request
from batchplan.sandbox.routing import Context, Resolved, resolve
from batchplan.sandbox.store import Duplicate, NotFound, Store

_log = logging.getLogger("batchplan.sandbox")

_FAULT_MESSAGES = {
    500: "Internal Server Error (injected by the sandbox)",
    503: "Service Unavailable (injected by the sandbox)",
}


class SandboxApp:
    """Answers requests against one store, with faults and an optional API key."""

    def __init__(self, store: Store, faults: Faults, api_key: str | None) -> None:
        self.store = store
        self.faults = faults
        self.log = RequestLog()
        self._api_key = api_key

    def answer(self, method: str, target: str, authorization: str | None, body: bytes) -> Reply:
        """The reply to ``method target`` (the raw request target, query included)."""
        try:
            path, segments, query = _split_target(target)
        except ErrorReply as error:
            return error.reply()
        head, rest = (segments[0], segments[1:]) if segments else ("", ())
        request = Request(method, path, rest, query, body, authorization)
        if head == "v1":
            return self._api(request, target.partition("?")[2])
        if head == "_sandbox":
            return self._admin(request)
        return ErrorReply(404, f"no such endpoint: {path} (the API is under /v1)").reply()

    def _api(self, request: Request, query: str) -> Reply:
        resolved = resolve(api.ROUTES, request.method, request.segments)
        # Latency applies to every answer, errors included, as a slow network would.
        self.faults.delay()
        try:
            self._authenticate(request)
            refusal = self.faults.refuse()
            if refusal is not None:
                raise ErrorReply(429, refusal, (("Retry-After", "1"),))
            fault = self.faults.draw(request.method == "POST") if resolved.matched else None
            if fault is not None and not fault.after_commit:
                raise ErrorReply(fault.status, _FAULT_MESSAGES[fault.status])
            reply = _call(resolved, self.store, request)
            if fault is not None:
                reply = ErrorReply(fault.status, _FAULT_MESSAGES[fault.status]).reply(
                    committed=reply.committed
                )
        except ErrorReply as error:
            reply = error.reply()
        self.log.add(
            request.method, resolved.template, request.path, query, reply.status, reply.committed
        )
        return reply

    def _admin(self, request: Request) -> Reply:
        try:
            self._authenticate(request)
            return _call(resolve(admin.ROUTES, request.method, request.segments), self, request)
        except ErrorReply as error:
            return error.reply()

    def _authenticate(self, request: Request) -> None:
        if self._api_key is None:
            return
        challenge = (("WWW-Authenticate", 'Basic realm="batchplan sandbox"'),)
        key = _basic_user(request.authorization)
        if key is None:
            raise ErrorReply(
                401, "no API key: send it as the HTTP Basic user name (empty password)", challenge
            )
        # The key itself is never echoed: error messages end up in logs.
        if not hmac.compare_digest(key.encode(), self._api_key.encode()):
            raise ErrorReply(401, "invalid API key", challenge)


def _call(resolved: Resolved[Context], context: Context, request: Request) -> Reply:
    try:
        return resolved.handler(context, request, resolved.args)
    except ErrorReply:
        raise
    except NotFound as error:
        raise ErrorReply(404, str(error)) from error
    except Duplicate as error:
        raise ErrorReply(409, str(error)) from error
    except sqlite3.ProgrammingError as error:
        # The database closes while a kept-alive connection still sends requests.
        raise ErrorReply(503, "the sandbox is shutting down") from error
    except Exception as error:
        # A bug in the sandbox: log it, but keep answering in the API's format.
        _log.error("sandbox handler %s failed", resolved.template, exc_info=True)
        raise ErrorReply(500, f"internal sandbox error: {type(error).__name__}: {error}") from error


def _split_target(target: str) -> tuple[str, tuple[str, ...], dict[str, str]]:
    """Split the raw path on "/" first, then percent-decode each segment (so %2F stays inside)."""
    path, _, query_string = target.partition("?")
    path = path.partition("#")[0]
    parts = path.split("/")[1:]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    try:
        segments = tuple(unquote_to_bytes(part).decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise ErrorReply(400, f"path is not UTF-8 once percent-decoded: {path}") from None
    query = {
        key: values[0] for key, values in parse_qs(query_string, keep_blank_values=True).items()
    }
    return path, segments, query


def _basic_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0]
