"""A real S3 over loopback for the S3 state backend's tests: moto's server, real HTTP.

Load it from a test module with ``pytest_plugins = ["tests.s3server"]``; it
gives ``s3_endpoint`` (one server per test session), ``aws_env`` (this
test's AWS settings, pointed at the server) and ``s3_bucket`` (a fresh bucket
per test).

moto is used through its public server API only (``moto.server.ThreadedMotoServer``),
so a moto upgrade that moves its internals does not break the tests. In front
of it sits a small forwarding server that passes on one request at a time:
moto checks ``If-Match`` / ``If-None-Match`` and then stores the object in two
steps, so two concurrent conditional puts can both pass (seen with 8 racing
writers: two winners in some rounds). Real S3 evaluates the condition and the
write atomically; forwarding requests one by one gives moto that same
guarantee, which is the one the compare-and-swap tests are about.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import get_input_stream

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key-never-printed"

# Hop-by-hop headers, and the framing the forwarded request sets itself.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}
)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One log line per request would drown a failing test's output."""


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            if name not in _NOT_FORWARDED:
                headers[name] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


class SerialMotoServer:
    """moto's S3 on 127.0.0.1, on ports the OS picks, one request at a time."""

    def __init__(self) -> None:
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._lock = threading.Lock()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._forward, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )

    def _forward(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # The body is read in full first (a chunked upload too), then sent on
        # with a Content-Length: moto sees a plain request.
        body = get_input_stream(environ).read()
        target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        if "RAW_URI" not in environ and environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        host, port = self._moto.get_host_and_port()
        with self._lock:
            connection = http.client.HTTPConnection(host, port, timeout=60)
            try:
                connection.request(
                    environ["REQUEST_METHOD"], target, body=body, headers=_request_headers(environ)
                )
                response = connection.getresponse()
                payload = response.read()
                headers = [
                    (name, value)
                    for name, value in response.getheaders()
                    if name.lower() not in _NOT_FORWARDED
                ]
            finally:
                connection.close()
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{response.status} {response.reason}", headers)
        return [payload]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._moto.start()
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._moto.stop()


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
