"""The request log: one line per HTTP attempt, turned on like Terraform's ``TF_LOG``.

``BATCHPLAN_LOG=info`` writes, for every attempt, the time (UTC), the method,
the path and query as sent, the status (or why there was none), the
milliseconds it took and the attempt number, with the error and the wait
before the next attempt when it failed. ``BATCHPLAN_LOG=debug`` adds the
request and response bodies. Lines go to stderr, or are appended to the file
``BATCHPLAN_LOG_PATH``.

The lines are records of the standard ``logging`` logger ``batchplan.http``
(``REQUEST_LOGGER``): the handler installed here writes them in the format
above, and a program embedding batchplan may add its own handlers.

Secrets never reach the log. The API key travels in a header, which is not
logged. Values from ``${NAME}`` variables end up in a batch's callback and
metadata, so in bodies every ``callback`` value and every value under
``metadata`` (and the whole body of a setMetadata call, which is metadata) is
replaced by ``<redacted>``, in requests and answers alike; and every line
goes through ``batchplan.redact``, which masks the key, every variable value
and every string sent in a callback or metadata, also percent-encoded.

A log that cannot be written (a full disk) never stops a run: the problem is
told once on stderr and the requests go on without the log.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, TextIO
from urllib.parse import urlsplit

from batchplan.api.client import Attempt, ScaleClient, parse_json, secret_strings
from batchplan.errors import UsageError
from batchplan.files import open_appending
from batchplan.redact import REDACTED, redact

LOG_VARIABLE = "BATCHPLAN_LOG"
LOG_PATH_VARIABLE = "BATCHPLAN_LOG_PATH"
LEVELS = ("info", "debug")
REQUEST_LOGGER = "batchplan.http"
# An answer can be a listing of 100 batches; beyond this a body is cut.
MAX_BODY = 64 * 1024


def attach_request_log(client: ScaleClient, environ: Mapping[str, str] = os.environ) -> None:
    """Log every attempt of ``client`` as ``BATCHPLAN_LOG`` asks; nothing when it is unset.

    One request log per process: attaching again replaces the handler an
    earlier call installed on ``batchplan.http``.
    """
    level = environ.get(LOG_VARIABLE, "").strip().lower()
    if level in ("", "off"):
        return
    if level not in LEVELS:
        raise UsageError(f"{LOG_VARIABLE}={level!r}: expected 'info' or 'debug' (or unset)")
    path = environ.get(LOG_PATH_VARIABLE, "").strip()
    stream: TextIO = sys.stderr
    where = "stderr"
    if path:
        where = f"{path} ({LOG_PATH_VARIABLE})"
        # Appended, like TF_LOG_PATH: a log of several runs reads in order.
        stream = open_appending(path, what="request log", error=UsageError)
    debug = level == "debug"
    handler = RequestLogHandler(stream, where, owned=bool(path))
    handler.setFormatter(RequestLogFormatter(debug=debug, base_path=urlsplit(client.base_url).path))
    logger = logging.getLogger(REQUEST_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, RequestLogHandler)]:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    # Its lines are written here, in their own format: not again by the root logger.
    logger.propagate = False
    # Bodies even for info: a sent callback is masked where an error repeats it.
    client.add_listener(RequestLog(logger), bodies=True)


class RequestLog:
    """The client's listener: one ``logging`` record per attempt, carrying the attempt."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __call__(self, attempt: Attempt) -> None:
        self.logger.info("%s %s", attempt.method, attempt.path, extra={"attempt": attempt})


class RequestLogFormatter(logging.Formatter):
    """Today's line format for a record carrying an ``attempt``; every line redacted."""

    def __init__(self, *, debug: bool, base_path: str = "") -> None:
        super().__init__()
        self.debug = debug
        self.base_path = base_path.rstrip("/")

    def format(self, record: logging.LogRecord) -> str:
        attempt = getattr(record, "attempt", None)
        if not isinstance(attempt, Attempt):
            return redact(super().format(record))
        return format_record(attempt, debug=self.debug, base_path=self.base_path)


def format_record(attempt: Attempt, *, debug: bool, base_path: str = "") -> str:
    """The attempt's line, with its body lines in debug, redacted."""
    secrets = secret_strings(attempt.sent, attempt.path)
    text = format_attempt(attempt, base_path)
    if debug:
        if attempt.sent is not None:
            sent = json.dumps(redact_body(attempt.sent, attempt.path), ensure_ascii=False)
            text += "\n    request body: " + sent
        if attempt.answer is not None:
            text += "\n    response body: " + redact_answer(attempt.answer)
    return redact(text, secrets)


class RequestLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes whole records under the handler's lock; a write that fails is told once.

    After the first failure (a full disk, a closed stderr) the log is given
    up, with one line on stderr saying so: the run itself goes on.
    """

    terminator = "\n"

    def __init__(self, stream: TextIO, where: str, *, owned: bool) -> None:
        super().__init__(stream)
        self.where = where
        self.owned = owned
        self.failed: str | None = None
        self._told = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or type(error).__name__
        with self._told:
            if self.failed is not None:
                return
            self.failed = reason
        try:
            sys.stderr.write(
                f"batchplan: the request log {self.where} cannot be written ({reason}); "
                "the run goes on without it\n"
            )
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone too: nowhere left to tell

    def close(self) -> None:
        stream = self.stream
        try:
            super().close()
        finally:
            if self.owned:
                # The last lines could not be written: already told.
                with contextlib.suppress(OSError):
                    stream.close()


def format_attempt(attempt: Attempt, base_path: str = "") -> str:
    """``TIME METHOD PATH?QUERY status=S ms=M attempt=N [error="..."] [retry_in=W]``."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    target = base_path + attempt.path + (f"?{attempt.query}" if attempt.query else "")
    status = attempt.status if attempt.status is not None else "none"
    line = f"{now.replace('+00:00', 'Z')} {attempt.method} {target} status={status} "
    line += f"ms={attempt.ms:.1f} attempt={attempt.attempt}"
    if attempt.error is not None:
        line += f" error={json.dumps(attempt.error, ensure_ascii=False)}"
    if attempt.retry_in is not None:
        line += f" retry_in={attempt.retry_in:.2f}"
    return line


def _is_metadata_call(path: str) -> bool:
    return path.endswith("/setMetadata")


def redact_body(value: Any, path: str = "") -> Any:
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
                out[key] = redact_body(item)
        return out
    if isinstance(value, list):
        return [redact_body(item) for item in value]
    return value


def _redact_all(value: Any) -> Any:
    """Keys kept, so a reader sees which keys were sent; every value hidden."""
    if isinstance(value, dict):
        return {key: REDACTED for key in value}
    return None if value is None else REDACTED


def _mask_leaves(value: Any, secrets: AbstractSet[str]) -> Any:
    if isinstance(value, str):
        return redact(value, set(secrets))
    if isinstance(value, dict):
        return {key: _mask_leaves(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_leaves(item, secrets) for item in value]
    return value


def redact_answer(text: str, secrets: AbstractSet[str] = frozenset()) -> str:
    """An answer's body, redacted like a request's, cut to ``MAX_BODY`` characters."""
    try:
        parsed = parse_json(text)
    except ValueError:
        shown = redact(text, set(secrets))
    else:
        # Masked before encoding: a secret holding a quote or a backslash is
        # escaped in the JSON text and would slip past a search there.
        shown = json.dumps(_mask_leaves(redact_body(parsed), secrets), ensure_ascii=False)
    if len(shown) > MAX_BODY:
        shown = shown[:MAX_BODY] + f"... ({len(shown) - MAX_BODY} more characters)"
    return shown
