"""read_live over real HTTP: which calls it makes, and listings that shift under it."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from batchplan.api.client import ScaleClient
from batchplan.cli import run
from batchplan.model import Config, DesiredBatch
from batchplan.options import ClientOptions
from batchplan.plan.refresh import read_live
from batchplan.sandbox import SandboxServer
from tests.helpers import Result
from tests.scripted import Answer, Seen, scripted


class Account:
    """A scripted account: batches newest first, and a hook run after each list page."""

    def __init__(self, batches: list[tuple[str, str]]) -> None:
        self.batches = list(batches)  # (name, project), newest first
        self.lock = threading.Lock()
        # (project, offset) -> batches created right after each serve of that page
        self.after_page: dict[tuple[str | None, int], list[list[tuple[str, str]]]] = {}
        # (project, offset) -> seconds to wait before reading the listing
        self.slow_page: dict[tuple[str | None, int], float] = {}
        self.routes: Counter[str] = Counter()
        # ("asked" | "answered", offset) of listing requests, in order
        self.timeline: list[tuple[str, int]] = []

    def doc(self, name: str, project: str) -> dict[str, object]:
        return {
            "name": name,
            "project": project,
            "status": "in_progress",
            "callback": "",
            "created_at": "2024-01-01T00:00:00.000Z",
            "metadata": {},
        }

    def __call__(self, seen: Seen) -> Answer:
        parts = urlsplit(seen.path)
        path = parts.path.removeprefix("/v1")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if path == "/batches":
            key = (query.get("project"), int(query.get("offset", 0)))
            with self.lock:
                self.timeline.append(("asked", key[1]))
            time.sleep(self.slow_page.get(key, 0))
        with self.lock:
            if path == "/batches":
                self.routes["list" if "project" in query else "list account"] += 1
                project = query.get("project")
                offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
                rows = [b for b in self.batches if project is None or b[1] == project]
                page = rows[offset : offset + limit]
                answer = Answer(
                    body={
                        "docs": [self.doc(*b) for b in page],
                        "totalDocs": len(rows),
                        "limit": limit,
                        "offset": offset,
                        "has_more": offset + limit < len(rows),
                    }
                )
                self.timeline.append(("answered", offset))
                # A create landing right after this page was served.
                waves = self.after_page.get((project, offset))
                for created in waves.pop(0) if waves else []:
                    self.batches.insert(0, created)
                return answer
            if path.startswith("/projects/"):
                self.routes["project"] += 1
                return Answer(body={"name": unquote(path.split("/")[2]), "type": "x"})
            name = unquote(path.split("/")[2])
            self.routes["get"] += 1
            for batch in self.batches:
                if batch[0] == name:
                    return Answer(body=self.doc(*batch))
            return Answer(404, {"status_code": 404, "error": "not found"})


def client(url: str) -> ScaleClient:
    return ScaleClient(url, None, ClientOptions(max_attempts=1, pool_size=16))


def config(*names: str, project: str = "p") -> Config:
    return Config(batches=tuple(DesiredBatch(name=n, project=project) for n in names))


def test_all_listed_means_only_list_calls_and_one_project_check() -> None:
    account = Account([(f"b{i:03d}", "p") for i in range(250)])
    with scripted(account) as server:
        view = read_live(client(server.url), config(*(f"b{i:03d}" for i in range(250))), [], 4)
    assert len(view.batches) == 250
    assert account.routes == {"list": 3, "project": 1}


def test_a_batch_pushed_past_the_last_page_is_found_by_lookup_not_recreated() -> None:
    # 250 batches, pages at 0, 100, 200. Page 200 is served first, then a
    # create lands, then page 100 is read: everything shifted by one, so b199
    # is on no page the listing saw, and the last page said has_more false.
    account = Account([(f"b{i:03d}", "p") for i in range(250)])
    account.after_page[("p", 200)] = [[("newcomer", "p")]]
    account.slow_page[("p", 100)] = 0.3
    with scripted(account) as server:
        view = read_live(client(server.url), config("b199"), [], 4)
    assert account.routes["list"] == 3
    assert account.routes["get"] == 1  # the listing missed it; the lookup found it
    assert view.batches["b199"].project == "p"
    assert "b199" not in view.absent


def test_name_taken_in_another_project_is_seen() -> None:
    account = Account([("taken", "elsewhere")])
    with scripted(account) as server:
        view = read_live(client(server.url), config("taken"), [], 4)
    assert view.batches["taken"].project == "elsewhere"


def test_many_new_names_in_a_small_account_use_one_scan_not_a_lookup_each() -> None:
    account = Account([(f"old{i}", "q") for i in range(150)])
    names = [f"new{i}" for i in range(500)]
    with scripted(account) as server:
        view = read_live(client(server.url), config(*names), [], 4)
    assert view.absent == frozenset(names)
    assert account.routes["get"] == 0
    # one size probe plus two pages of the account
    assert account.routes["list account"] == 3


def test_a_scan_that_shifted_falls_back_to_lookups() -> None:
    account = Account([(f"old{i}", "q") for i in range(150)])
    # Nothing after the size probe; a create right after the scan's first page.
    account.after_page[(None, 0)] = [[], [("sneaky", "q")]]
    names = [f"new{i}" for i in range(20)]
    with scripted(account) as server:
        view = read_live(client(server.url), config(*names), [], 4)
    assert view.absent == frozenset(names)
    assert account.routes["get"] == 20


def test_few_new_names_are_looked_up_without_probing_the_account() -> None:
    account = Account([(f"old{i}", "p") for i in range(10)])
    with scripted(account) as server:
        view = read_live(client(server.url), config("new1", "new2"), [], 8)
    assert view.absent == {"new1", "new2"}
    assert account.routes == {"list": 1, "project": 1, "get": 2}


def test_recorded_batches_of_other_projects_are_listed_but_not_project_checked() -> None:
    account = Account([("r1", "old-project"), ("d1", "p")])
    with scripted(account) as server:
        view = read_live(client(server.url), config("d1"), [("r1", "old-project")], 4)
    assert set(view.batches) == {"r1", "d1"}
    assert view.listed_projects == {"p", "old-project"}
    assert account.routes == {"list": 2, "project": 1}


# -- an endpoint that is not the API -------------------------------------------

WRONG_BASE_CONFIG = """\
version: 1
defaults:
  project: kitten_labeling
batches:
  - name: b1
"""


@contextmanager
def html_site() -> Iterator[str]:
    """A web server that is not the API: every path answers an HTML page."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def plan_against(endpoint: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> Result:
    (folder / "batchplan.yaml").write_text(WRONG_BASE_CONFIG, encoding="utf-8")
    capsys.readouterr()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        code = run(["plan", "--endpoint", endpoint, "--max-retries", "0"])
    finally:
        os.chdir(cwd)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def test_the_sandbox_without_v1_is_named_a_wrong_endpoint_not_a_missing_project(
    sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sandbox.url.removesuffix("/v1")
    result = plan_against(base, tmp_path, capsys)
    assert result.code == 1
    assert f"{base} does not look like the Scale API" in result.err
    assert "should end in /v1" in result.err
    assert "does not exist" not in result.out + result.err
    assert "misspelt" not in result.out + result.err
    assert "Traceback" not in result.err


def test_a_web_site_is_named_a_wrong_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with html_site() as site:
        result = plan_against(site + "/v1", tmp_path, capsys)
    assert result.code == 1
    assert "does not look like the Scale API" in result.err
    assert "not JSON" in result.err
    assert "does not exist" not in result.out + result.err


def test_a_missing_project_on_the_right_endpoint_is_still_a_missing_project(
    strict_sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = plan_against(strict_sandbox.url, tmp_path, capsys)
    assert result.code == 1
    assert "project 'kitten_labeling' does not exist" in result.out
    assert "does not look like the Scale API" not in result.out + result.err


def test_a_healthy_plan_makes_no_endpoint_probe() -> None:
    account = Account([("b1", "p")])
    with scripted(account) as server:
        read_live(client(server.url), config("b1"), [], 4)
    assert "list account" not in account.routes


def test_pages_of_recorded_batches_are_asked_for_with_the_first_not_after_it() -> None:
    account = Account([(f"b{i:03d}", "p") for i in range(250)])
    account.slow_page[("p", 0)] = 0.3
    recorded = [(f"b{i:03d}", "p") for i in range(250)]
    with scripted(account) as server:
        view = read_live(client(server.url), config(), recorded, 4)
    assert len(view.batches) == 250
    assert account.routes == {"list": 3}
    first_answer = account.timeline.index(("answered", 0))
    assert {("asked", 100), ("asked", 200)} <= set(account.timeline[:first_answer])


def test_more_recorded_than_live_costs_at_most_the_guessed_pages() -> None:
    account = Account([(f"b{i:03d}", "p") for i in range(150)])
    recorded = [(f"b{i:03d}", "p") for i in range(150)] + [("gone", "p")] * 100
    with scripted(account) as server:
        view = read_live(client(server.url), config(), recorded, 4)
    assert len(view.batches) == 150
    assert account.routes["list"] <= 3  # pages 0, 100 and the guessed, empty 200


def test_fixed_parallelism_is_accepted_by_plan(
    sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "batchplan.yaml").write_text(WRONG_BASE_CONFIG, encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = run(["plan", "--endpoint", sandbox.url, "--parallelism", "3", "--fixed-parallelism"])
    finally:
        os.chdir(cwd)
    assert code == 0
    assert "1 to create" in capsys.readouterr().out
