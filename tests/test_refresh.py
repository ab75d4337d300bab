"""read_live over real HTTP: which calls it makes, and listings that shift under it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from urllib.parse import parse_qs, unquote, urlsplit

from batchplan.model import Config, DesiredBatch
from batchplan.refresh import read_live
from batchplan.scale import ClientOptions, ScaleClient
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
            time.sleep(self.slow_page.get((query.get("project"), int(query.get("offset", 0))), 0))
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
