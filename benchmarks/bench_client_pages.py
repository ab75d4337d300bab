"""The client's CPU per listing page: streaming, and the size and nesting caps.

    .venv/bin/python -m benchmarks.bench_client_pages [--pages 200] [--rounds 5]

Reads one page of 100 batches ``--pages`` times from an in-process sandbox
over loopback and prints the median CPU time of ``--rounds`` rounds (the
process's, so the sandbox's share is in it too: compare runs, not absolute
values). Run it on two checkouts to see what a change to the request path
costs per page; wall time on a shared machine is too noisy for that.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from batchplan.api.client import ScaleClient
from batchplan.model import DesiredBatch
from batchplan.sandbox import SandboxOptions, SandboxServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = SandboxServer(SandboxOptions(db_path=f"{folder}/sandbox.db"))
        server.start()
        try:
            client = ScaleClient(server.url, None)
            for index in range(100):
                batch = DesiredBatch(name=f"b{index}", project="p", metadata={"team": "t"})
                client.create_batch(batch)
            rounds = []
            for _ in range(args.rounds):
                started = time.process_time()
                for _ in range(args.pages):
                    client.list_page("p", 0)
                rounds.append(time.process_time() - started)
            client.close()
        finally:
            server.stop()
    median = statistics.median(rounds)
    print(
        f"{args.pages} pages of 100 batches, median of {args.rounds} rounds: "
        f"{median:.3f} s CPU ({median / args.pages * 1000:.2f} ms per page)"
    )


if __name__ == "__main__":
    main()
