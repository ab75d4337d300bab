"""The request log: one line per HTTP attempt, turned on like Terraform's ``TF_LOG``.

``BATCHPLAN_LOG=info`` writes, for every attempt, the time (UTC), the method,
the path and query as sent, the status (or why there was none), the
milliseconds it took and the attempt number, with the error and the wait
before the next attempt when it failed. ``BATCHPLAN_LOG=debug`` adds the
request and response bodies. Lines go to stderr, or are appended to the file
``BATCHPLAN_LOG_PATH``.

Secrets never reach the log. The API key travels in a header, which is not
logged. Values from ``${NAME}`` variables end up in a batch's callback and
metadata, so in bodies every ``callback`` value and every value under
``metadata`` (and the whole body of a setMetadata call, which is metadata) is
replaced by ``<redacted>``, in requests and answers alike; and any string sent
that way is also masked wherever an answer repeats it (in an error message).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, TextIO
from urllib.parse import urlsplit

from batchplan.api.client import Attempt, ScaleClient
from batchplan.errors import UsageError

LOG_VARIABLE = "BATCHPLAN_LOG"
LOG_PATH_VARIABLE = "BATCHPLAN_LOG_PATH"
LEVELS = ("info", "debug")
REDACTED = "<redacted>"
# An answer can be a listing of 100 batches; beyond this a body is cut.
MAX_BODY = 64 * 1024
# Shorter strings are masked only where a key says they are secret: masking
# every "a" of an error message would make it unreadable, not safer.
MIN_MASKED = 4


def attach_request_log(client: ScaleClient, environ: Mapping[str, str] = os.environ) -> None:
    """Log every attempt of ``client`` as ``BATCHPLAN_LOG`` asks; nothing when it is unset."""
    level = environ.get(LOG_VARIABLE, "").strip().lower()
    if level in ("", "off"):
        return
    if level not in LEVELS:
        raise UsageError(f"{LOG_VARIABLE}={level!r}: expected 'info' or 'debug' (or unset)")
    path = environ.get(LOG_PATH_VARIABLE, "").strip()
    stream: TextIO = sys.stderr
    if path:
        try:
            # Appended, like TF_LOG_PATH: a log of several runs reads in order.
            stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives as long as the client)
        except OSError as exc:
            raise UsageError(
                f"cannot open request log {path} ({LOG_PATH_VARIABLE}): {exc.strerror}"
            ) from None
    log = RequestLog(stream, debug=level == "debug", base_path=urlsplit(client.base_url).path)
    # Bodies even for info: a sent callback is masked where an error repeats it.
    client.add_listener(log, bodies=True)


class RequestLog:
    """Writes one attempt per line (plus body lines in debug), whole lines under a lock."""

    def __init__(self, stream: TextIO, *, debug: bool, base_path: str = "") -> None:
        self.stream = stream
        self.debug = debug
        self.base_path = base_path.rstrip("/")
        self._lock = threading.Lock()

    def __call__(self, attempt: Attempt) -> None:
        secrets = secret_strings(attempt.sent, attempt.path)
        text = format_attempt(attempt, self.base_path, secrets)
        if self.debug:
            if attempt.sent is not None:
                sent = json.dumps(redact(attempt.sent, attempt.path), ensure_ascii=False)
                text += "\n    request body: " + sent
            if attempt.answer is not None:
                text += "\n    response body: " + redact_answer(attempt.answer, secrets)
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()


def format_attempt(
    attempt: Attempt, base_path: str = "", secrets: AbstractSet[str] = frozenset()
) -> str:
    """``TIME METHOD PATH?QUERY status=S ms=M attempt=N [error="..."] [retry_in=W]``."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    target = base_path + attempt.path + (f"?{attempt.query}" if attempt.query else "")
    status = attempt.status if attempt.status is not None else "none"
    line = f"{now.replace('+00:00', 'Z')} {attempt.method} {target} status={status} "
    line += f"ms={attempt.ms:.1f} attempt={attempt.attempt}"
    if attempt.error is not None:
        error = mask(attempt.error, secrets)
        line += f" error={json.dumps(error, ensure_ascii=False)}"
    if attempt.retry_in is not None:
        line += f" retry_in={attempt.retry_in:.2f}"
    return line


def _is_metadata_call(path: str) -> bool:
    return path.endswith("/setMetadata")


def redact(value: Any, path: str = "") -> Any:
    """``value`` with every callback and metadata value replaced by ``<redacted>``."""
    if _is_metadata_call(path):
        return _redact_all(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "callback" and item not in (None, ""):
                out[key] = REDACTED
            elif key == "metadata":
                out[key] = _redact_all(item)
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _redact_all(value: Any) -> Any:
    """Keys kept, so a reader sees which keys were sent; every value hidden."""
    if isinstance(value, dict):
        return {key: REDACTED for key in value}
    return None if value is None else REDACTED


def secret_strings(sent: Any, path: str = "") -> set[str]:
    """The strings a request body carried in its callback and metadata."""
    found: set[str] = set()

    def leaves(value: Any) -> None:
        if isinstance(value, str):
            if len(value) >= MIN_MASKED:
                found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list):
            for item in value:
                leaves(item)

    if _is_metadata_call(path):
        leaves(sent)
    elif isinstance(sent, dict):
        leaves(sent.get("callback"))
        leaves(sent.get("metadata"))
    return found


def mask(text: str, secrets: AbstractSet[str]) -> str:
    """``text`` with every secret string in it replaced by ``<redacted>``."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _mask_leaves(value: Any, secrets: AbstractSet[str]) -> Any:
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {key: _mask_leaves(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_leaves(item, secrets) for item in value]
    return value


def redact_answer(text: str, secrets: AbstractSet[str]) -> str:
    """An answer's body, redacted like a request's, cut to ``MAX_BODY`` characters."""
    try:
        parsed = json.loads(text)
    except ValueError:
        shown = mask(text, secrets)
    else:
        # Masked before encoding: a secret holding a quote or a backslash is
        # escaped in the JSON text and would slip past a search there.
        shown = json.dumps(_mask_leaves(redact(parsed), secrets), ensure_ascii=False)
    if len(shown) > MAX_BODY:
        shown = shown[:MAX_BODY] + f"... ({len(shown) - MAX_BODY} more characters)"
    return shown
