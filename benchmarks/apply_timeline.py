"""Where apply's time goes against a rate limit: accepted and refused calls per second.

    .venv/bin/python -m benchmarks.apply_timeline [--batches 1000] [--rate-limit 100]
        [--burst 10] [--latency-ms 30]

One ``batchplan apply`` of N new batches (3N mutating calls) against a fresh
sandbox with a token bucket, its request log on (``BATCHPLAN_LOG=info``).
Prints, for each second after the first mutating call, how many calls were
accepted and how many refused with 429: a second well under the limit is
time lost against calls / rate. Records nothing.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.common import batchplan, machine, sandbox, write_config


def per_second(log: Path) -> tuple[Counter[int], Counter[int]]:
    """Accepted and refused mutating attempts per second, from a request log."""
    accepted: Counter[int] = Counter()
    refused: Counter[int] = Counter()
    first: float | None = None
    for line in log.read_text(encoding="utf-8").splitlines():
        stamp, request = line.split(" ", 1)
        if not request.startswith("POST "):
            continue  # the plan's reads
        ended = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        first = ended if first is None else first
        second = int(ended - first)
        (refused if " status=429 " in request else accepted)[second] += 1
    return accepted, refused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--rate-limit", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        names = [f"a-{i:06d}" for i in range(args.batches)]
        write_config(work / "batchplan.yaml", "bench", names, priority=25, finalized=True)
        with sandbox(work / "sandbox.db", "--latency-ms", str(args.latency_ms)) as sb:
            sb.set_faults(rate_limit=args.rate_limit, burst=args.burst)
            log = work / "requests.log"
            seconds, code, out = batchplan(
                "apply",
                "--auto-approve",
                "--force",  # more changes than the default limit allows
                "--endpoint",
                sb.url,
                cwd=work,
                env={"BATCHPLAN_LOG": "info", "BATCHPLAN_LOG_PATH": str(log)},
            )
            if code != 0:
                raise SystemExit(f"apply exited {code}: {out[-2000:]}")
        accepted, refused = per_second(log)
    print(
        f"apply of {args.batches} new batches against {args.rate_limit:g}/s, bucket "
        f"{args.burst}, {args.latency_ms:g} ms: {seconds:.2f} s ({machine()})"
    )
    print("second: accepted/refused")
    last = max([*accepted, *refused], default=-1)
    print(" ".join(f"{s}:{accepted[s]}/{refused[s]}" for s in range(last + 1)))


if __name__ == "__main__":
    main()
