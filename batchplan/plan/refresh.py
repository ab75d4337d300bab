"""Read what plan needs of the live account, overlapping the round trips.

Calls made: one ``GET /projects/{name}`` per project of the config, the
listing of every project of config or state (first page, then the rest
concurrently), and then, for each desired or recorded batch the
listings did not show, a check that its name is free: the name may be taken
in another project, or a create during the listing may have pushed it past
the last page.

That check is one ``GET /batches/{name}`` per name, unless listing the whole
account takes fewer calls (a first apply of a thousand batches into a small
account): then the account is listed once, and if the listing was consistent
(its total never moved and no name came twice, so no batch was created while
it ran) a name it did not show is free. Otherwise the names still unseen are
looked up one by one after all.

The worker pools are sized to the ``--parallelism`` ceiling; how many reads
are actually on the wire is the client's limiter's decision, shared with
apply's calls. An endpoint that does not answer like the API (no ``/v1``)
fails here as such, before any project is taken for missing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager

from batchplan import threads
from batchplan.api.client import PAGE_SIZE, ScaleClient
from batchplan.errors import ApiError
from batchplan.model import Config, LiveBatch, LiveView


def _scan_account(
    client: ScaleClient, names: set[str], pages: Executor
) -> tuple[dict[str, LiveBatch], bool]:
    """The batches among ``names`` anywhere in the account, and whether the scan was consistent."""
    found: dict[str, LiveBatch] = {}
    seen: set[str] = set()
    totals: set[int | None] = set()
    duplicates = False
    for page in client.list_pages(None, pages):
        totals.add(page.total)
        for batch in page.batches:
            if batch.name in seen:
                duplicates = True
            seen.add(batch.name)
            if batch.name in names:
                found[batch.name] = batch
    consistent = not duplicates and len(totals) == 1 and None not in totals
    consistent = consistent and totals == {len(seen)}
    return found, consistent


def _scan_is_cheaper(client: ScaleClient, unseen: int, parallelism: int) -> bool:
    """One probe of the account's size: would listing it cost fewer calls than lookups?"""
    if unseen <= parallelism:
        return False  # the lookups take one round of concurrent calls anyway
    total = client.list_page(None, 0, limit=1).total
    return total is not None and math.ceil(total / PAGE_SIZE) < unseen


@contextmanager
def _pool(client: ScaleClient, workers: int, prefix: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that a Ctrl-C abandons rather than waits for.

    A call on the wire may take up to the read timeout to end; after a Ctrl-C
    plan has nothing to finish, so its calls are cancelled and not awaited.
    """
    pool = threads.Pool(max_workers=workers, thread_name_prefix=prefix)
    interrupted = False
    try:
        yield pool
    except KeyboardInterrupt:
        interrupted = True
        client.cancel()
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=interrupted)


def read_live(
    client: ScaleClient,
    config: Config,
    recorded: Iterable[tuple[str, str]],
    parallelism: int,
) -> LiveView:
    """List the managed projects and account for every name they did not show.

    ``recorded`` holds ``(name, project)`` of every batch in state.
    """
    recorded = list(recorded)
    projects = sorted(config.projects | {project for _, project in recorded})
    checked = sorted(config.projects)
    seen: dict[str, LiveBatch] = {}
    # Listing workers submit page fetches to a second pool: a worker that
    # waited on pages of its own pool could starve it. Neither pool holds a
    # limiter slot while it waits, so they cannot starve each other either.
    with (
        _pool(client, parallelism, "list") as outer,
        _pool(client, parallelism, "page") as pages,
    ):
        exists = {p: outer.submit(client.project_exists, p) for p in checked}

        # Batches in state were live when recorded: their count says how many
        # pages a listing has at least, so those pages are asked for at once.
        recorded_in = Counter(project for _, project in recorded)

        def list_project(project: str) -> list[LiveBatch]:
            return list(client.list_batches(project, pages, recorded_in[project]))

        listings = {p: outer.submit(list_project, p) for p in projects}
        missing = frozenset(p for p, future in exists.items() if not threads.result(future))
        for project in projects:
            try:
                batches = threads.result(listings[project])
            except ApiError:
                # A project that does not exist may answer its listing with an
                # error; the missing project is reported as a conflict instead.
                if project in missing:
                    continue
                raise
            for batch in batches:
                seen.setdefault(batch.name, batch)

        wanted = [b.name for b in config.batches] + [name for name, _ in recorded]
        unseen = {name for name in wanted if name not in seen}
        absent: set[str] = set()
        if unseen and _scan_is_cheaper(client, len(unseen), parallelism):
            found, consistent = _scan_account(client, unseen, pages)
            seen.update(found)
            unseen -= set(found)
            if consistent:
                absent, unseen = unseen, set()

        lookups = {name: outer.submit(client.get_batch, name) for name in sorted(unseen)}
        for name, future in lookups.items():
            batch_or_none = threads.result(future)
            if batch_or_none is None:
                absent.add(name)
            else:
                seen[batch_or_none.name] = batch_or_none
    return LiveView(
        batches=seen,
        absent=frozenset(absent),
        listed_projects=frozenset(projects),
        missing_projects=missing,
    )
