"""The options every command shares, as resolved from the command line.

A plain value: the commands build it, and the layers they call (the API
session, saved plans, state location) read the parts they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ENDPOINT = "https://api.scale.com/v1"
#: Where the state lives without ``--state``: one file for real accounts, one for the sandbox.
DEFAULT_STATE = ".batchplan/state.json"
DEFAULT_SANDBOX_STATE = ".batchplan/sandbox-state.json"


@dataclass(frozen=True)
class ClientOptions:
    """How patient the client is. Defaults suit the real API."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 5
    max_retry_time: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    # The ceiling of attempts in flight (``--parallelism``), and whether the
    # limiter adapts under it (off: always the ceiling, no rate cap).
    concurrency: int = 16
    adaptive: bool = True
    pool_size: int = 16


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
    # Where the values came from, for a saved plan to record: var-file paths
    # and the names (never the values) given with ``--var``.
    var_files: tuple[str, ...] = ()
    var_names: tuple[str, ...] = ()
    # The config root (the folder of the configuration; default state and the
    # sandbox's files live under it), ``--env`` and the variable holding the key.
    root: str = "."
    environment: str | None = None
    api_key_env: str = "SCALE_API_KEY"
