"""Scale batch API client: one pooled ``requests.Session``, retries, paging.

Every request has a timeout. Transient failures (no answer, 408, 429, 5xx)
are retried with exponential backoff and full jitter, honouring
``Retry-After``, bounded both in attempts and in total time. Every attempt
first waits for the client's limiter (``batchplan.api.limiter``), which adapts
how many attempts are in flight and how fast they are sent to the answers, so
plan's reads and apply's calls share one budget. Answers are checked for
shape, so a proxy's HTML error page or a wrong envelope is an ``ApiError``
naming the call, never a ``KeyError`` deep in the diff, and an endpoint that
is not the Scale API at all is named as such.

The endpoint is not trusted: a redirect is never followed (``RedirectError``
names the host it points at), an answer is read a piece at a time up to
``MAX_ANSWER_BYTES`` after decompression and within ``read_timeout`` as a
whole, and its JSON may nest at most ``MAX_NESTING`` levels.

``request`` is the retry loop; ``_send_once`` makes one attempt and says what
it came to; ``RetryPolicy`` (pure) decides whether and when to try again.

The API key is only ever handed to ``requests`` as Basic auth, and is
remembered by ``batchplan.redact`` so no output shows it.
"""

from __future__ import annotations

import email.utils
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import requests
import urllib3

from batchplan import __version__, threads
from batchplan.api.deadline import DeadlineAdapter, answer_deadline
from batchplan.api.limiter import Cancelled, Limiter, LimiterSettings, Signal
from batchplan.errors import ApiError, ApiUnreachableError, BatchplanError, UsageError
from batchplan.model import DesiredBatch, LiveBatch
from batchplan.options import ClientOptions
from batchplan.redact import remember, safe_url

PAGE_SIZE = 100
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
#: The most an answer may hold once decompressed; a listing page of 100
#: batches is far below it, so anything larger is hostile or broken.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: The deepest JSON an answer may nest: batches and their metadata are a few
#: levels; deeper would exhaust the recursion of whatever reads it next.
MAX_NESTING = 100
READ_CHUNK = 64 * 1024


class DuplicateBatchError(ApiError):
    """409 on create: the name is taken.

    ``after_unknown_attempt`` says whether this run sent an earlier create for
    the name whose outcome it never learned (timeout, connection error, 5xx):
    only then may the batch be ours.
    """

    def __init__(self, method: str, path: str, message: str, after_unknown_attempt: bool) -> None:
        super().__init__(method, path, 409, message)
        self.after_unknown_attempt = after_unknown_attempt


class CallCancelled(ApiError):
    """The client was cancelled (Ctrl-C): no new attempt, no further wait."""


class NotFoundError(ApiError):
    """404: the batch or project does not exist."""


class NotJsonError(ApiError):
    """A 200 whose body is not JSON: a proxy's page, or not the API at all."""


class RedirectError(ApiError):
    """A 3xx: never followed, since it could send the key or the body to another host."""


class WrongEndpointError(BatchplanError):
    """The endpoint answers, but not as the Scale API: ``GET /batches`` is missing."""


def quote_segment(name: str) -> str:
    """Percent-encode a batch or project name for one path segment (``/`` too)."""
    return quote(name, safe="")


_CONTAINERS = (dict, list)


class NestingError(ValueError):
    """JSON nested deeper than ``MAX_NESTING``: refused before it is decoded."""


def nesting_exceeds(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether decoded JSON ``value`` nests objects and arrays deeper than ``limit``.

    Walked a level at a time, not by recursion, and only through containers:
    a page of 100 batches is a few hundred of them.
    """
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            items = node.values() if type(node) is dict else node
            below.extend(item for item in items if type(item) in _CONTAINERS)
        level = below
    return False


def parse_json(text: str) -> Any:
    """``json.loads`` with the nesting capped: ``NestingError`` (a ``ValueError``) beyond it.

    The C decoder stops far deeper than the cap with a ``RecursionError``;
    anything it decodes is then checked against the cap, before code that
    recurses (redaction, rendering) ever sees it.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestingError(f"JSON nested deeper than {MAX_NESTING} levels") from None
    if nesting_exceeds(value):
        raise NestingError(f"JSON nested deeper than {MAX_NESTING} levels")
    return value


@dataclass(frozen=True)
class Reply:
    """A whole answer, read within the size cap and the deadline."""

    status_code: int
    reason: str
    headers: Mapping[str, str]
    content: bytes
    encoding: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not JSON or nests too deep."""
        return parse_json(self.text)


def redirect_host(location: str, base_url: str) -> str:
    """The host a ``Location`` points at, for a message: never its path, query or user info."""
    if not location.strip():
        return "an unnamed place (no Location header)"
    target = urljoin(base_url + "/", location.strip())
    try:
        host = urlsplit(target).netloc.rpartition("@")[2]
    except ValueError:
        host = ""
    return f"host {host}" if host else safe_url(target)


def secret_strings(sent: Any, path: str = "") -> set[str]:
    """The strings a request body carries in its callback and metadata (all of setMetadata's)."""
    found: set[str] = set()

    def leaves(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                leaves(item)
        elif isinstance(value, list):
            for item in value:
                leaves(item)

    if path.endswith("/setMetadata"):
        leaves(sent)
    elif isinstance(sent, dict):
        leaves(sent.get("callback"))
        leaves(sent.get("metadata"))
    return found


@dataclass(frozen=True)
class RetryPolicy:
    """Whether a failed attempt is tried again, and after how long.

    Exponential backoff with full jitter, or the server's ``Retry-After``;
    bounded in attempts and in the total time a call may take.
    """

    max_attempts: int = 5
    max_retry_time: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 20.0

    @classmethod
    def of(cls, options: ClientOptions) -> RetryPolicy:
        return cls(
            options.max_attempts, options.max_retry_time, options.backoff_base, options.backoff_cap
        )

    def backoff(self, attempt: int, draw: Callable[[float, float], float]) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        return draw(0, min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1))))

    def next_wait(
        self,
        attempt: int,
        retry_after: float | None,
        remaining: float,
        draw: Callable[[float, float], float],
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        ``remaining`` is what is left of the call's total time: a wait past
        it (an hour's ``Retry-After``) gives up now rather than later.
        """
        if attempt >= self.max_attempts:
            return None
        delay = retry_after if retry_after is not None else self.backoff(attempt, draw)
        return None if delay > remaining else delay


@dataclass(frozen=True)
class _Call:
    """One call as the caller asked for it, encoded once for all its attempts."""

    method: str
    path: str
    params: Mapping[str, str | int] | None
    body: Any

    @cached_property
    def query(self) -> str:
        return urlencode(self.params) if self.params else ""

    @cached_property
    def data(self) -> str | None:
        return None if self.body is None else json.dumps(self.body)

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Content-Type": "application/json"} if self.body is not None else None


@dataclass(frozen=True)
class _Sent:
    """What one attempt came to: the answer, or why there is none, and what it tells."""

    attempt: Attempt
    reply: Reply | None
    failure: ApiError | None
    retryable: bool = False
    unknown_outcome: bool = False
    retry_after: float | None = None
    signal: Signal = Signal.OK


class _AnswerTimedOut(Exception):
    """The whole-answer deadline passed while the body was still coming."""


class _AnswerTooLarge(Exception):
    """The body, decompressed, passed ``MAX_ANSWER_BYTES``."""


class _AnswerBroken(Exception):
    """The connection broke, or the body could not be decoded, mid-answer."""


def _declared_too_large(headers: Mapping[str, str]) -> bool:
    """An uncompressed answer whose ``Content-Length`` is past the cap: refused unread."""
    if headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return False
    try:
        return int(headers.get("Content-Length", "0")) > MAX_ANSWER_BYTES
    except ValueError:
        return False


def _retry_after(response: Reply) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _error_message(response: Reply) -> str:
    """The API's own message: ``error`` of the JSON body, else a short raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    text = " ".join(response.text.split())
    if not text:
        return response.reason or "no message"
    return text[:200] + ("..." if len(text) > 200 else "")


def _parse_batch(data: Any, method: str, path: str) -> LiveBatch:
    if not isinstance(data, dict):
        raise ApiError(method, path, 200, f"expected a batch object, got {type(data).__name__}")
    problems = []
    for key in ("name", "project", "status"):
        if not isinstance(data.get(key), str):
            problems.append(f"'{key}' missing or not a string")
    callback = data.get("callback")
    if callback is not None and not isinstance(callback, str):
        problems.append("'callback' is not a string")
    # Any status is accepted: real accounts have ``paused``, ``cancelled`` and
    # may get more; the plan leaves a batch in a status it does not know alone.
    if not problems and not data["status"]:
        problems.append("'status' is empty")
    if problems:
        raise ApiError(method, path, 200, "unexpected batch object: " + "; ".join(problems))
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(method, path, 200, "unexpected batch object: 'metadata' is not an object")
    # Every batch of a listing repeats its project and one of a few statuses:
    # interned, they are stored once, not once per batch.
    return LiveBatch(
        name=data["name"],
        project=sys.intern(data["project"]),
        status=sys.intern(data["status"]),
        callback=callback,
        # An empty object is the API's default: kept as None, it costs nothing
        # per batch in a large listing.
        metadata=metadata or None,
    )


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, as reported to the client's listeners.

    ``status`` is None when no answer came (``error`` says why);
    ``retry_in`` is the wait before the next attempt, None when the client
    will not try again (success, a final answer, or retries exhausted).
    ``path`` is as sent, without the query string, which is in ``query``.
    ``sent`` (the JSON body sent) and ``answer`` (the body received) are
    filled only for listeners added with ``bodies=True``. Never holds the API
    key; the bodies may hold callbacks and metadata, which a listener that
    shows them must redact.
    """

    method: str
    path: str
    attempt: int
    status: int | None
    ms: float
    error: str | None
    retry_in: float | None
    query: str = ""
    sent: Any = None
    answer: str | None = None


@dataclass(frozen=True)
class BatchStatus:
    """The answer of ``GET /batches/{name}/status``."""

    name: str
    status: str
    tasks_pending: int
    tasks_completed: int
    # Counted apart from pending and completed: tasks that ended in an error
    # or were canceled are not done, and will not be.
    tasks_error: int = 0
    tasks_canceled: int = 0


@dataclass(frozen=True)
class Page:
    batches: tuple[LiveBatch, ...]
    total: int | None
    limit: int
    offset: int
    has_more: bool


def _check_key(api_key: str | None) -> None:
    """HTTP Basic auth carries the key as Latin-1: any other character is a clear error."""
    if not api_key:
        return
    try:
        api_key.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"SCALE_API_KEY holds a character that is not Latin-1 (at position {exc.start + 1}); "
            "an API key is plain ASCII: copy it again from the Scale dashboard"
        ) from None


class ScaleClient:
    """The batch endpoints batchplan uses, over one pooled session."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        options: ClientOptions = ClientOptions(),
        *,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        """``wait(seconds)`` sleeps before a retry (default: until ``cancel()`` or the time)."""
        self.base_url = base_url.rstrip("/")
        self.options = options
        self.retry = RetryPolicy.of(options)
        _check_key(api_key)
        remember(api_key)
        self._random = random.Random()
        self._random_lock = threading.Lock()
        self.limiter = Limiter(
            LimiterSettings(ceiling=max(1, options.concurrency), adaptive=options.adaptive)
        )
        self._session = requests.Session()
        # One pool large enough for every attempt the limiter lets through, so
        # connections are reused instead of opened and dropped under concurrency.
        adapter = DeadlineAdapter(
            pool_connections=1,
            pool_maxsize=max(1, options.pool_size, options.concurrency),
            max_retries=0,
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {"Accept": "application/json", "User-Agent": f"batchplan/{__version__}"}
        )
        self._session.auth = (api_key, "") if api_key else None
        # Resolve proxies, CA bundle and client certificate from the
        # environment once, instead of on every request (requests reads the
        # environment and ~/.netrc per call while trust_env is on).
        settings = self._session.merge_environment_settings(self.base_url, {}, None, None, None)
        self._session.trust_env = False
        self._session.proxies.update(settings["proxies"])
        self._session.verify = settings["verify"]
        if settings["cert"] is not None:
            self._session.cert = settings["cert"]
        # (listener, whether it asked for bodies)
        self._listeners: list[tuple[Callable[[Attempt], None], bool]] = []
        self._bodies = False
        self._cancelled = threading.Event()
        # Woken at once by cancel(): a call in backoff is abandoned.
        self._wait: Callable[[float], object] = wait or self._cancelled.wait
        # Attempts sent and not yet answered: not those waiting for the
        # limiter or sleeping before a retry.
        self._on_wire = 0
        self._on_wire_lock = threading.Lock()
        self._endpoint_checked = False
        self._endpoint_lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def cancel(self) -> None:
        """Start no new attempt and abandon every backoff wait, from now on.

        Calls already on the wire end normally; every other call raises
        ``CallCancelled``, including those waiting for the limiter. For the
        first Ctrl-C of an apply.
        """
        self._cancelled.set()
        self.limiter.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def in_flight(self) -> int:
        """HTTP attempts sent and not answered yet, at this moment."""
        with self._on_wire_lock:
            return self._on_wire

    def add_listener(self, listener: Callable[[Attempt], None], *, bodies: bool = False) -> None:
        """Call ``listener`` after every HTTP attempt, on the calling thread.

        With ``bodies``, every listener's attempts carry the bodies sent and
        received (kept off otherwise: decoding every answer costs time).
        """
        self._listeners.append((listener, bodies))
        self._bodies = self._bodies or bodies

    def _tell(self, attempt: Attempt) -> None:
        bare = attempt
        if attempt.sent is not None or attempt.answer is not None:
            # Bodies may hold callbacks and metadata: only to those that asked.
            bare = replace(attempt, sent=None, answer=None)
        for listener, bodies in self._listeners:
            listener(attempt if bodies else bare)

    # -- transport ---------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        on_unknown_outcome: Callable[[], None] | None = None,
    ) -> Reply:
        """Send one call, retrying transient failures; return the final answer.

        Returns any answer that is not transient (2xx, 4xx but 408/429); raises
        ``ApiUnreachableError`` or ``ApiError`` when retries run out, and
        ``RedirectError`` at once on a 3xx. ``on_unknown_outcome`` is called
        each time an attempt ended without a definite answer, so a mutating
        caller knows the change may have landed. Each attempt holds a slot of
        the limiter while on the wire, not while it waits to be retried.
        """
        call = _Call(method, path, params, body)
        deadline = time.monotonic() + self.retry.max_retry_time
        attempt = 0
        while True:
            if self._cancelled.is_set():
                raise CallCancelled(method, path, None, "cancelled before it was sent")
            attempt += 1
            sent = self._send_once(call, attempt)
            if sent.failure is None:
                assert sent.reply is not None
                return sent.reply
            if sent.unknown_outcome and on_unknown_outcome is not None:
                on_unknown_outcome()
            delay = None
            if sent.retryable:
                delay = self.retry.next_wait(
                    attempt, sent.retry_after, deadline - time.monotonic(), self._draw
                )
            # Cancelled while this attempt was on the wire: no retry will come,
            # so listeners are told none (retry_in None).
            cut_short = delay is not None and self._cancelled.is_set()
            self._tell(replace(sent.attempt, retry_in=None if cut_short else delay))
            if delay is None:
                raise sent.failure
            if cut_short:
                raise CallCancelled(method, path, sent.attempt.status, "cancelled before its retry")
            self._wait(delay)

    def _draw(self, low: float, high: float) -> float:
        with self._random_lock:
            return self._random.uniform(low, high)

    def _send_once(self, call: _Call, attempt: int) -> _Sent:
        """One attempt: a limiter slot, the request, the whole answer read within its deadline.

        Never retries and never sleeps; what failed, and whether it may be
        tried again, is in the result for ``request``'s retry policy. A
        successful (final) attempt is told to the listeners here; a failed
        one is told by ``request``, which knows the wait before the next.
        """
        try:
            permit = self.limiter.acquire()
        except Cancelled:
            raise CallCancelled(
                call.method, call.path, None, "cancelled before it was sent"
            ) from None
        started = time.monotonic()
        with self._on_wire_lock:
            self._on_wire += 1
        try:
            sent = self._exchange(call, attempt, started)
        except BaseException:
            self.limiter.release(permit, Signal.UNKNOWN)
            raise
        finally:
            with self._on_wire_lock:
                self._on_wire -= 1
        self.limiter.release(permit, sent.signal, sent.retry_after)
        if sent.failure is None:
            self._tell(sent.attempt)
        return sent

    def _exchange(self, call: _Call, attempt: int, started: float) -> _Sent:
        """Send ``call`` and read its answer, head and body, within ``read_timeout``."""
        with answer_deadline(started + self.options.read_timeout) as watch:
            sent = self._exchange_within(call, attempt, started)
        if watch.expired and sent.failure is not None and sent.reply is None:
            # The deadline shut the socket: whatever the read then raised,
            # the answer did not come in time.
            return self._no_answer(call, attempt, started, "timed out", Signal.UNKNOWN)
        return sent

    def _exchange_within(self, call: _Call, attempt: int, started: float) -> _Sent:
        """Send ``call`` and read its answer; every outcome becomes a ``_Sent``."""
        method, path = call.method, call.path
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=call.params,
                data=call.data,
                headers=call.headers,
                timeout=(self.options.connect_timeout, self.options.read_timeout),
                allow_redirects=False,
                stream=True,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            timed_out = isinstance(exc, requests.Timeout)
            # A reset or refused connection is a server shedding load; a
            # timeout says nothing certain about its capacity.
            return self._no_answer(
                call,
                attempt,
                started,
                "timed out" if timed_out else "connection failed",
                Signal.UNKNOWN if timed_out else Signal.OVERLOADED,
            )
        except requests.RequestException as exc:
            failure = ApiError(method, path, None, type(exc).__name__)
            return _Sent(
                self._attempt(call, attempt, started, None, error=failure.api_message),
                None,
                failure,
                retryable=False,
                signal=Signal.UNKNOWN,
            )
        try:
            content = self._read_answer(response, started + self.options.read_timeout)
        except _AnswerTimedOut:
            return self._no_answer(call, attempt, started, "timed out", Signal.UNKNOWN)
        except _AnswerBroken as exc:
            return self._no_answer(call, attempt, started, str(exc), Signal.OVERLOADED)
        except _AnswerTooLarge:
            code = response.status_code
            failure = ApiError(
                method,
                path,
                code,
                f"answer larger than {MAX_ANSWER_BYTES // (1024 * 1024)} MiB "
                "(after decompression); not read further",
            )
            retryable = code in RETRY_STATUSES
            return _Sent(
                self._attempt(call, attempt, started, None, status=code, error=failure.api_message),
                None,
                failure,
                retryable=retryable,
                unknown_outcome=retryable and code >= 500,
                signal=Signal.UNKNOWN,
            )
        finally:
            response.close()
        reply = Reply(
            response.status_code,
            response.reason or "",
            response.headers,
            content,
            response.encoding,
        )
        return self._judge(call, attempt, started, reply)

    def _judge(self, call: _Call, attempt: int, started: float, reply: Reply) -> _Sent:
        """A whole answer: final, transient (retryable) or a redirect (an error)."""
        code = reply.status_code
        signal = {429: Signal.THROTTLED, 503: Signal.OVERLOADED}.get(code, Signal.OK)
        if 300 <= code < 400:
            target = reply.headers.get("Location", "")
            host = redirect_host(target, self.base_url)
            failure: ApiError = RedirectError(
                call.method,
                call.path,
                code,
                f"redirected to {host}; batchplan never follows a redirect (the Scale API "
                "sends none), so check --endpoint",
            )
            return _Sent(
                self._attempt(call, attempt, started, reply, error=failure.api_message),
                reply,
                failure,
                retryable=False,
                signal=signal,
            )
        if code not in RETRY_STATUSES:
            return _Sent(self._attempt(call, attempt, started, reply), reply, None, signal=signal)
        failure = ApiError(call.method, call.path, code, _error_message(reply))
        return _Sent(
            self._attempt(call, attempt, started, reply, error=failure.api_message),
            reply,
            failure,
            retryable=True,
            unknown_outcome=code >= 500,
            retry_after=_retry_after(reply),
            signal=signal,
        )

    def _no_answer(
        self, call: _Call, attempt: int, started: float, reason: str, signal: Signal
    ) -> _Sent:
        failure = ApiUnreachableError(call.method, call.path, None, reason)
        return _Sent(
            self._attempt(call, attempt, started, None, error=reason),
            None,
            failure,
            retryable=True,
            unknown_outcome=True,
            signal=signal,
        )

    def _read_answer(self, response: requests.Response, deadline: float) -> bytes:
        """The answer's body, decompressed, within ``MAX_ANSWER_BYTES`` and ``deadline``.

        Read a piece at a time, so a gzip bomb stops at the cap instead of
        expanding whole, and a server trickling a byte at a time is cut off
        at the deadline instead of waiting ``read_timeout`` per byte.
        """
        if _declared_too_large(response.headers):
            raise _AnswerTooLarge
        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        try:
            while True:
                if time.monotonic() > deadline:
                    raise _AnswerTimedOut
                chunk = raw.read1(READ_CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise _AnswerTooLarge
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise _AnswerTimedOut from None
        except urllib3.exceptions.DecodeError:
            raise _AnswerBroken("answer could not be decompressed") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise _AnswerBroken("connection failed while reading the answer") from None
        return b"".join(chunks)

    def _attempt(
        self,
        call: _Call,
        attempt: int,
        started: float,
        reply: Reply | None,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> Attempt:
        bodies = self._bodies
        return Attempt(
            call.method,
            call.path,
            attempt,
            reply.status_code if reply is not None else status,
            _ms(started),
            error,
            None,
            call.query,
            call.body if bodies else None,
            reply.text if bodies and reply is not None else None,
        )

    def _json(self, method: str, path: str, response: Reply) -> Any:
        if response.status_code == 404:
            # Any 404 is believed only once the endpoint is known to be the API:
            # without /v1 every path is missing, and each command would misread
            # it its own way (a project missing, a batch not created).
            self.check_endpoint()
            raise NotFoundError(method, path, 404, _error_message(response))
        if response.status_code != 200:
            raise ApiError(method, path, response.status_code, _error_message(response))
        try:
            return response.json()
        except NestingError as exc:
            raise ApiError(method, path, 200, f"unreadable answer: {exc}") from None
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown content type")
            # A web page where the API should be: most likely not the API at all.
            self.check_endpoint()
            raise NotJsonError(
                method, path, 200, f"answer is not JSON ({kind}): {_error_message(response)}"
            ) from None

    def check_endpoint(self) -> None:
        """Raise ``WrongEndpointError`` unless ``GET /batches`` answers like the API.

        The account's listing always exists on the API, so a 404, a web page
        or JSON without a ``docs`` list there means the base URL is wrong (most
        often it lacks ``/v1``), not that a project or batch is missing.
        Probed once, and only when an answer is suspect and no listing has
        proved the endpoint yet, so a healthy run makes no extra call. Not
        after ``cancel()``: the suspect answer stands as it is.
        """
        with self._endpoint_lock:
            if self._endpoint_checked or self._cancelled.is_set():
                return
            response = self.request("GET", "/batches", params={"limit": 1})
            status = response.status_code
            problem = None
            if status == 404:
                problem = "GET /batches answered 404"
            elif status == 200:
                try:
                    data = response.json()
                except ValueError:
                    kind = response.headers.get("Content-Type", "no content type")
                    problem = f"GET /batches answered {kind}, not JSON"
                else:
                    if not isinstance(data, dict) or not isinstance(data.get("docs"), list):
                        problem = "GET /batches answered JSON without a 'docs' list"
            if problem is not None:
                raise WrongEndpointError(
                    f"{self.base_url} does not look like the Scale API: {problem} "
                    "(its base path should end in /v1, as in https://api.scale.com/v1)"
                )
            # Another answer (401, 500) proves nothing either way: ask again later.
            self._endpoint_checked = status == 200

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._json(method, path, self.request(method, path, **kwargs))

    # -- endpoints -----------------------------------------------------------

    def project_exists(self, project: str) -> bool:
        """``GET /projects/{name}``: True unless the API answers 404."""
        try:
            self._call("GET", f"/projects/{quote_segment(project)}")
        except NotFoundError:
            return False
        return True

    def get_batch(self, name: str) -> LiveBatch | None:
        """``GET /batches/{name}``, or None when it does not exist."""
        path = f"/batches/{quote_segment(name)}"
        try:
            return _parse_batch(self._call("GET", path), "GET", path)
        except NotFoundError:
            return None

    def list_page(self, project: str | None, offset: int, limit: int = PAGE_SIZE) -> Page:
        """One page of ``GET /batches?project=P`` (the whole account for None), checked."""
        path = "/batches"
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        shown = f"/batches?offset={offset}"
        if project is not None:
            params["project"] = project
            shown = f"/batches?project={quote_segment(project)}&offset={offset}"
        data = self._call("GET", path, params=params)
        if not isinstance(data, dict) or not isinstance(data.get("docs"), list):
            self.check_endpoint()
            raise ApiError("GET", shown, 200, "unexpected answer: no 'docs' list in the envelope")
        # A listing envelope proves the endpoint: a later 404 needs no probe.
        self._endpoint_checked = True
        has_more = data.get("has_more")
        if not isinstance(has_more, bool):
            raise ApiError("GET", shown, 200, "unexpected answer: 'has_more' is not a boolean")
        total = data.get("totalDocs")
        echoed = data.get("limit")
        batches = tuple(_parse_batch(doc, "GET", shown) for doc in data["docs"])
        return Page(
            batches=batches,
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
            limit=echoed if isinstance(echoed, int) and echoed > 0 else limit,
            offset=offset,
            has_more=has_more,
        )

    def list_pages(
        self, project: str | None, executor: Executor | None = None, expected: int = 0
    ) -> Iterator[Page]:
        """Every page of a project's listing (the account's for None), in order.

        With an executor, the pages after the first are fetched concurrently
        (their offsets follow from ``totalDocs``); then, as the listing may
        have grown meanwhile, paging goes on one page at a time while the last
        page says ``has_more``. Duplicates (a batch shifted onto the next page
        by a concurrent create) are left to the caller, which keys by name.

        ``expected`` is how many batches the caller believes the listing holds
        at least (those recorded in state): the pages that covers are asked
        for at once, with the first, instead of one round trip after it. A
        page that turns out not to be needed costs one call; if the API pages
        by another size than asked, the guesses are dropped and fetched again.
        """
        guessed: dict[int, Future[Page]] = {}
        if executor is not None and expected > PAGE_SIZE:
            guessed = {
                offset: executor.submit(self.list_page, project, offset, PAGE_SIZE)
                for offset in range(PAGE_SIZE, expected, PAGE_SIZE)
            }
        first = self.list_page(project, 0)
        yield first
        last = first
        if first.limit != PAGE_SIZE:
            guessed = {}
        if first.has_more and executor is not None and first.total is not None:
            offsets = range(first.limit, first.total, first.limit)
            futures = [
                guessed.get(o) or executor.submit(self.list_page, project, o, first.limit)
                for o in offsets
            ]
            for future in futures:
                last = threads.result(future)
                yield last
        while last.has_more:
            if not last.batches:
                raise ApiError(
                    "GET",
                    f"/batches?offset={last.offset}",
                    200,
                    "unexpected answer: an empty page says has_more",
                )
            last = self.list_page(project, last.offset + last.limit, last.limit)
            yield last

    def list_batches(
        self, project: str | None, executor: Executor | None = None, expected: int = 0
    ) -> Iterator[LiveBatch]:
        """Every batch of a project (see ``list_pages``)."""
        for page in self.list_pages(project, executor, expected):
            yield from page.batches

    def create_batch(self, batch: DesiredBatch) -> LiveBatch:
        """``POST /batches``. A 409 raises ``DuplicateBatchError``."""
        path = "/batches"
        unknown = False

        def mark_unknown() -> None:
            nonlocal unknown
            unknown = True

        body: dict[str, Any] = {
            "project": batch.project,
            "name": batch.name,
            "calibration_batch": batch.calibration_batch,
            "self_label_batch": batch.self_label_batch,
        }
        if batch.callback:
            body["callback"] = batch.callback
        if batch.metadata:
            # Keys set to null ask for removal: on create there is nothing to remove.
            body["metadata"] = {k: v for k, v in batch.metadata.items() if v is not None}
        response = self.request("POST", path, body=body, on_unknown_outcome=mark_unknown)
        if response.status_code == 409:
            raise DuplicateBatchError("POST", path, _error_message(response), unknown)
        return _parse_batch(self._json("POST", path, response), "POST", path)

    def finalize_batch(self, name: str) -> None:
        """``POST /batches/{name}/finalize``."""
        self._call("POST", f"/batches/{quote_segment(name)}/finalize")

    def prioritize_batch(self, name: str, priority: int) -> None:
        """``POST /batches/{name}/prioritize`` with ``{"priority": N}``."""
        self._call(
            "POST", f"/batches/{quote_segment(name)}/prioritize", body={"priority": priority}
        )

    def set_batch_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """``POST /batches/{name}/setMetadata``; the body is the whole new object."""
        self._call("POST", f"/batches/{quote_segment(name)}/setMetadata", body=dict(metadata))

    def batch_status(self, name: str) -> BatchStatus:
        """``GET /batches/{name}/status``: the status and task counts."""
        path = f"/batches/{quote_segment(name)}/status"
        data = self._call("GET", path)
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise ApiError("GET", path, 200, "unexpected answer: no 'status'")
        counts = {}
        for key in ("tasks_pending", "tasks_completed", "tasks_error", "tasks_canceled"):
            # The reference names tasks_pending / tasks_completed; the official
            # client reads pending / completed / error / canceled. Absent means 0.
            value = data.get(key, data.get(key.removeprefix("tasks_"), 0))
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ApiError("GET", path, 200, f"unexpected answer: {key!r} is not a count")
            counts[key] = value
        return BatchStatus(name, data["status"], **counts)
