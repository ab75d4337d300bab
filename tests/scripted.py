"""A loopback HTTP server that answers from a script, for client edge cases.

The sandbox answers like the real API; this one answers however a test
needs (an HTML error page, a wrong envelope, a 429 with Retry-After, a hang),
so the client's handling of hostile answers is tested over real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    auth: str | None


class ScriptedServer:
    """Answers each request with ``script(seen)``; records every request."""

    def __init__(self, script: Callable[[Seen], Answer]) -> None:
        self.script = script
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    self.rfile.read(length),
                    self.headers.get("Authorization"),
                )
                outer.seen.append(seen)
                answer = outer.script(seen)
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json", **answer.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # A client that timed out has gone; nothing to tell it.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]


@contextmanager
def scripted(script: Callable[[Seen], Answer]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def sequence(*answers: Answer) -> Callable[[Seen], Answer]:
    """Answer with each in turn, then repeat the last."""
    queue = list(answers)

    def script(seen: Seen) -> Answer:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return script
