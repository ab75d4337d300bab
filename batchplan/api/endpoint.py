"""Where the API is: an ``--endpoint`` value resolved to a URL and an identity.

:meth:`Endpoint.parse` is the one reading of an ``--endpoint`` value, and
pure: a URL is normalised, ``sandbox`` or ``sandbox:DBFILE`` names a
database and starts nothing. :meth:`Endpoint.open` starts the embedded
sandbox in this process when there is one to start; its identity
(``sandbox:<instance id>``) keeps its state apart from any real account's,
and :meth:`Endpoint.read_identity` reads it from the database without
serving it. A URL endpoint's identity is its normalised form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from batchplan.errors import UsageError
from batchplan.redact import safe_url

API_KEY_VARIABLE = "SCALE_API_KEY"
DEFAULT_SANDBOX_DB = ".batchplan/sandbox.db"
SANDBOX = "sandbox"


@dataclass(frozen=True)
class Endpoint:
    """Where the API is: its URL, the identity state and plans record, and a stopper.

    ``stop`` ends the embedded sandbox this process started (None otherwise).
    A sandbox endpoint fresh from :meth:`parse` has no URL and no identity
    yet (both empty): :meth:`open` gives them.
    """

    url: str
    identity: str
    sandbox: bool
    stop: Callable[[], None] | None = field(default=None, compare=False)
    #: The sandbox's database as given (relative to the working folder), or None.
    db: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Endpoint:
        """Read an ``--endpoint`` value: a URL, ``sandbox`` or ``sandbox:DBFILE``.

        Pure: nothing is started, opened or read. A URL that cannot be one
        is refused with a ``UsageError`` naming it.
        """
        if spec == SANDBOX or spec.startswith(SANDBOX + ":"):
            db = spec.partition(":")[2] or DEFAULT_SANDBOX_DB
            return cls(url="", identity="", sandbox=True, db=db)
        url = normalise_url(spec)
        return cls(url=url, identity=url, sandbox=False)

    def key(self, folder: str) -> str:
        """This endpoint in a comparable form: a sandbox database as an absolute path.

        ``folder`` is where the endpoint was given (a sandbox database path is
        relative to it), so that ``sandbox`` in two folders is two endpoints.
        """
        if self.db is None:
            return self.url
        return SANDBOX + ":" + os.path.normpath(os.path.join(folder, self.db))

    def read_identity(self) -> str | None:
        """The identity, without serving a sandbox: read from its database.

        None for a sandbox whose database does not exist yet (its identity is
        made when it is first opened).
        """
        if self.db is None or self.identity:
            return self.identity
        from batchplan.sandbox.store import read_instance_id

        instance = read_instance_id(self.db)
        return None if instance is None else f"{SANDBOX}:{instance}"

    def open(self) -> Endpoint:
        """This endpoint ready for calls: a sandbox started in this process (stop it after)."""
        if self.db is None or self.stop is not None:
            return self
        from batchplan.sandbox import start_sandbox

        server = start_sandbox(self.db)
        return replace(
            self, url=server.url, identity=f"{SANDBOX}:{server.instance_id}", stop=server.stop
        )


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no trailing slash.

    Credentials in the URL are refused: the key belongs in ``SCALE_API_KEY``,
    and a URL is printed and stored in state.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--endpoint {safe_url(url)!r}: expected an http(s) URL, 'sandbox' or 'sandbox:FILE'"
        )
    if parts.username or parts.password:
        raise UsageError("--endpoint must not hold credentials; set SCALE_API_KEY instead")
    if parts.query or parts.fragment:
        raise UsageError(
            f"--endpoint {safe_url(url)!r} (shown without it): a query or fragment is not "
            "allowed; a key belongs in SCALE_API_KEY"
        )
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--endpoint {safe_url(url)!r}: the port is not a number") from None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def open_endpoint(spec: str) -> Endpoint:
    """Parse ``--endpoint`` and open it (see :meth:`Endpoint.parse`, :meth:`Endpoint.open`)."""
    return Endpoint.parse(spec).open()


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
