"""The one redaction every output goes through: the API key and variable values, masked.

Secrets are remembered as they appear (the API key when a client is made,
every value a ``${NAME}`` expands to while a config is read) and ``redact``
masks each of them in any text (and, for one text, any ``extra`` strings,
such as what a logged request sent in its callback and metadata): as
written, percent-encoded (``quote`` and ``quote_plus`` forms, so a secret
echoed inside a URL or its query string is caught) and JSON-escaped
(a secret holding a quote or a backslash, echoed inside JSON text). Apply's
text and JSON events, error messages, the request log and ``--debug``
tracebacks all pass through it.

Strings shorter than ``MIN_SECRET`` characters are not remembered: masking
every "a" or "1" of a message would make it unreadable, not safer.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

REDACTED = "<redacted>"
MIN_SECRET = 4

_lock = threading.Lock()
_secrets: set[str] = set()
# Rebuilt lazily after a new secret: one pass over a text, longest form first.
_pattern: re.Pattern[str] | None = None


def forms(secret: str) -> set[str]:
    """Every way ``secret`` may be written back: raw, percent-encoded, JSON-escaped."""
    found = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    # Hex digits of a percent-encoding may come back in lower case.
    found |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(found)}
    return found


def remember(secret: str | None) -> None:
    """Mask ``secret`` in every later output (ignored when shorter than ``MIN_SECRET``)."""
    global _pattern
    if not secret or len(secret) < MIN_SECRET:
        return
    with _lock:
        if secret in _secrets:
            return
        _secrets.add(secret)
        _pattern = None


def forget_all() -> None:
    """Drop every remembered secret (for a process that runs several commands, e.g. tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            _pattern = _pattern_of(_secrets)
        return _pattern


def _pattern_of(secrets: set[str]) -> re.Pattern[str]:
    every = {form for secret in secrets for form in forms(secret)}
    # Longest first, so a secret that contains another is masked whole.
    ordered = sorted(every, key=lambda text: (-len(text), text))
    return re.compile("|".join(re.escape(text) for text in ordered))


def redact(text: str, extra: frozenset[str] | set[str] = frozenset()) -> str:
    """``text`` with every remembered secret (and each of ``extra``) replaced by ``<redacted>``."""
    with _lock:
        more = {secret for secret in extra if len(secret) >= MIN_SECRET} - _secrets
        every = _secrets | more
    if more:
        return _pattern_of(every).sub(REDACTED, text)
    pattern = _compiled()
    return text if pattern is None else pattern.sub(REDACTED, text)


# A path segment this long, of letters and digits both, is treated as a key.
_KEY_LIKE = re.compile(r"(?=[A-Za-z0-9_.~-]*[0-9])(?=[A-Za-z0-9_.~-]*[A-Za-z])[A-Za-z0-9_.~-]{20,}")


def safe_url(url: str) -> str:
    """``url`` for a message: scheme, host, port and path only.

    User info, the query string and the fragment are dropped (they are where
    keys and tokens travel), a path segment that looks like a key (20 or
    more letters and digits) is masked, and whatever is left is redacted.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(an unreadable URL)"
    netloc = parts.netloc.rpartition("@")[2]
    path = _KEY_LIKE.sub(REDACTED, parts.path)
    return redact(urlunsplit((parts.scheme, netloc, path, "", "")))
