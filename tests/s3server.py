"""A real S3 over loopback for the S3 state backend's tests: moto's server, real HTTP.

Load it from a test module with ``pytest_plugins = ["tests.s3server"]``; it
gives ``s3_endpoint`` (one server per test session), ``aws_env`` (this
test's AWS settings, pointed at the server) and ``s3_bucket`` (a fresh bucket
per test).

The server is moto's own WSGI app served the way ``moto.server.ThreadedMotoServer``
serves it, with one difference: requests are handled one at a time. moto
checks ``If-Match`` / ``If-None-Match`` and then stores the object in two
steps, so two concurrent conditional puts can both pass (seen with 8 racing
writers: two winners in some rounds). Real S3 evaluates the condition and the
write atomically; serialising requests gives moto that same guarantee, which
is the one the compare-and-swap tests are about.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key-never-printed"


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One log line per request would drown a failing test's output."""


class SerialMotoServer:
    """moto's S3 on 127.0.0.1, on a port the OS picks, one request at a time."""

    def __init__(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def serialised(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            with lock:
                # Drain the body inside the lock: moto may do its work lazily.
                return list(app(environ, start_response))

        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, serialised, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server that lives for the whole test session."""
    server = SerialMotoServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class AwsEnvironment:
    """The standard AWS settings of one test, isolated from the user's own ones."""

    secret_access_key = SECRET_ACCESS_KEY

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def point_at(self, endpoint: str) -> None:
        """Aim boto3 at ``endpoint`` with dummy credentials and no profile."""
        for name in (
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_REGION",
            "AWS_RETRY_MODE",
            "AWS_MAX_ATTEMPTS",
        ):
            self._monkeypatch.delenv(name, raising=False)
        self.set("AWS_ENDPOINT_URL", endpoint)
        self.set("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        self.set("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        self.set("AWS_DEFAULT_REGION", REGION)
        self.set("AWS_CONFIG_FILE", "/nonexistent/batchplan-tests/config")
        self.set("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/batchplan-tests/credentials")
        # Never wait for an instance-metadata service that is not there.
        self.set("AWS_EC2_METADATA_DISABLED", "true")

    def set(self, name: str, value: str) -> None:
        self._monkeypatch.setenv(name, value)

    def unset(self, name: str) -> None:
        self._monkeypatch.delenv(name, raising=False)

    def reset_session(self) -> None:
        """Make the next ``boto3.client()`` read the environment again.

        boto3's default session caches the credentials it resolved; a test
        that changes them must start from a new session.
        """
        self._monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AwsEnvironment:
    """The AWS environment of this test, pointed at the test server."""
    environment = AwsEnvironment(monkeypatch)
    environment.point_at(s3_endpoint)
    return environment


@pytest.fixture
def s3_bucket(aws_env: AwsEnvironment) -> str:
    """A new, empty bucket on the test server."""
    bucket = f"batchplan-test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
