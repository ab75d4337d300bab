"""What every command needs: the endpoint, its identity, the API key, the state.

``--endpoint sandbox`` starts the embedded sandbox in this process; its
identity (``sandbox:<instance id>``) keeps its state apart from any real
account's. A URL endpoint's identity is its normalised form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from batchplan.errors import StateError, UsageError
from batchplan.requestlog import attach_request_log
from batchplan.scale import ClientOptions, ScaleClient
from batchplan.state import State, StateBackend
from batchplan.state.local import LocalState

DEFAULT_ENDPOINT = "https://api.scale.com/v1"
API_KEY_VARIABLE = "SCALE_API_KEY"
DEFAULT_STATE = ".batchplan/state.json"
DEFAULT_SANDBOX_STATE = ".batchplan/sandbox-state.json"
DEFAULT_SANDBOX_DB = ".batchplan/sandbox.db"


@dataclass(frozen=True)
class Options:
    """The options every command shares, as resolved from the command line.

    ``debug`` is ``--debug`` (before or after the command name), for a command
    that wants to say more; the CLI's error handler reads the same flag.
    """

    endpoint: str = DEFAULT_ENDPOINT
    state: str | None = None
    color: bool = False
    verbose: bool = False
    debug: bool = False
    parallelism: int = 16
    lock_timeout: float = 0.0
    client: ClientOptions = field(default_factory=ClientOptions)
    # ``--var`` / ``--var-file`` values for ``${NAME}``: may be secrets, so never in a repr.
    variables: tuple[tuple[str, str], ...] = field(default=(), repr=False)


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


def api_key(endpoint: Endpoint) -> str | None:
    """The key from ``SCALE_API_KEY``; required except for the embedded sandbox."""
    key = os.environ.get(API_KEY_VARIABLE, "").strip()
    if key:
        return key
    if endpoint.sandbox:
        return None
    raise UsageError(
        f"{API_KEY_VARIABLE} is not set: export your Scale API key in it "
        "(batchplan never prints or stores it)"
    )


def make_client(endpoint: Endpoint, options: Options) -> ScaleClient:
    """The API client, its limiter's ceiling ``--parallelism``, with the request log attached."""
    client_options = replace(options.client, concurrency=options.parallelism)
    client = ScaleClient(endpoint.url, api_key(endpoint), client_options)
    attach_request_log(client)
    return client


def backend_at(location: str) -> StateBackend:
    """A local path, or ``s3://bucket/key`` for the S3 backend."""
    if location.startswith("s3://"):
        from batchplan.state.s3 import S3State

        return S3State.from_url(location)
    return LocalState(Path(location))


def state_location(options: Options, endpoint: Endpoint) -> str:
    """``--state``, or the default for this kind of endpoint."""
    return options.state or (DEFAULT_SANDBOX_STATE if endpoint.sandbox else DEFAULT_STATE)


def state_backend(options: Options, endpoint: Endpoint) -> StateBackend:
    return backend_at(state_location(options, endpoint))


def read_state(backend: StateBackend, endpoint: Endpoint) -> State:
    """The stored state, or a new one; a state made for another endpoint is refused."""
    state = backend.read()
    if state is None:
        return State.new(endpoint.identity)
    if state.endpoint != endpoint.identity:
        raise StateError(
            f"state {backend.location} belongs to endpoint {state.endpoint}, "
            f"but this run talks to {endpoint.identity}; pass --state for this endpoint's state"
        )
    return state
