"""One session per command: the endpoint, its HTTP client and the embedded sandbox.

The session owns their lifetime: ``with Session(options) as session:``
closes the client's connections and stops a sandbox this process started,
however the command ends.
"""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType

from batchplan.api.client import ScaleClient
from batchplan.api.endpoint import Endpoint, api_key, open_endpoint
from batchplan.api.requestlog import attach_request_log
from batchplan.options import Options


def make_client(endpoint: Endpoint, options: Options) -> ScaleClient:
    """The API client, its limiter's ceiling ``--parallelism``, with the request log attached."""
    client_options = replace(options.client, concurrency=options.parallelism)
    client = ScaleClient(endpoint.url, api_key(endpoint, options.api_key_env), client_options)
    attach_request_log(client)
    return client


class Session:
    """The endpoint a command talks to and the client it talks through (made on first use)."""

    def __init__(self, options: Options, endpoint: Endpoint | None = None) -> None:
        self.options = options
        self.endpoint = endpoint or open_endpoint(options.endpoint)
        self._client: ScaleClient | None = None

    @property
    def client(self) -> ScaleClient:
        if self._client is None:
            self._client = make_client(self.endpoint, self.options)
        return self._client

    def close(self) -> None:
        """Close the client, then stop the embedded sandbox if this process started one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self.endpoint.stop is not None:
            self.endpoint.stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        _kind: type[BaseException] | None,
        _error: BaseException | None,
        _trace: TracebackType | None,
    ) -> None:
        self.close()
