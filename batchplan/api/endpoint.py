"""Where the API is: an ``--endpoint`` value resolved to a URL and an identity.

``--endpoint sandbox`` starts the embedded sandbox in this process; its
identity (``sandbox:<instance id>``) keeps its state apart from any real
account's. A URL endpoint's identity is its normalised form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from batchplan.errors import UsageError

API_KEY_VARIABLE = "SCALE_API_KEY"
DEFAULT_SANDBOX_DB = ".batchplan/sandbox.db"


@dataclass(frozen=True)
class Endpoint:
    """Where the API is: its URL, the identity state and plans record, and a stopper.

    ``stop`` ends the embedded sandbox this process started (None otherwise).
    """

    url: str
    identity: str
    sandbox: bool
    stop: Callable[[], None] | None = field(default=None, compare=False)


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no trailing slash.

    Credentials in the URL are refused: the key belongs in ``SCALE_API_KEY``,
    and a URL is printed and stored in state.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--endpoint {url!r}: expected an http(s) URL, 'sandbox' or 'sandbox:FILE'"
        )
    if parts.username or parts.password:
        raise UsageError("--endpoint must not hold credentials; set SCALE_API_KEY instead")
    if parts.query or parts.fragment:
        raise UsageError(f"--endpoint {url!r}: a query or fragment is not allowed")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--endpoint {url!r}: the port is not a number") from None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def open_endpoint(spec: str) -> Endpoint:
    """Resolve ``--endpoint``: a URL, ``sandbox`` or ``sandbox:DBFILE``."""
    if spec == "sandbox" or spec.startswith("sandbox:"):
        from batchplan.sandbox import start_sandbox

        db = spec.partition(":")[2] or DEFAULT_SANDBOX_DB
        server = start_sandbox(db)
        return Endpoint(
            url=server.url,
            identity=f"sandbox:{server.instance_id}",
            sandbox=True,
            stop=server.stop,
        )
    url = normalise_url(spec)
    return Endpoint(url=url, identity=url, sandbox=False)


def api_key(endpoint: Endpoint, variable: str = API_KEY_VARIABLE) -> str | None:
    """The key from ``variable`` (``SCALE_API_KEY`` unless an environment names another);
    required except for the embedded sandbox."""
    key = os.environ.get(variable, "").strip()
    if key:
        return key
    if endpoint.sandbox:
        return None
    raise UsageError(
        f"{variable} is not set: export your Scale API key in it "
        "(batchplan never prints or stores it)"
    )
