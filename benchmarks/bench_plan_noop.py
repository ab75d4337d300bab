"""Benchmark 1: a no-op plan over N managed batches, against one get_batch per batch.

    .venv/bin/python -m benchmarks.bench_plan_noop [--batches 10000] [--latency-ms 20]

batchplan should make ceil(N/100) list calls plus one project check and
nothing else; the alternative is a script over the official ``scaleapi``
client that reads every batch with ``get_batch``, one at a time. Both run
against the same sandbox (its own process, added latency) in one run.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import scaleapi

from benchmarks.common import batchplan, machine, publish, sandbox, write_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--no-record", action="store_true", help="Do not write docs/performance.md")
    args = parser.parse_args()
    n = args.batches

    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox(Path(tmp) / "sandbox.db", "--latency-ms", str(args.latency_ms)) as sb,
    ):
        work = Path(tmp)
        sb.seed("bench", "b-", n)
        names = [f"b-{i:06d}" for i in range(n)]
        write_config(work / "batchplan.yaml", "bench", names)
        _, code, out = batchplan("apply", "--auto-approve", "--endpoint", sb.url, cwd=work)
        assert code == 0, out[-2000:]

        sb.clear_calls()
        seconds, code, out = batchplan(
            "plan", "--detailed-exitcode", "--endpoint", sb.url, cwd=work
        )
        assert code == 0, out[-2000:]
        ours = sb.calls()

        sb.clear_calls()
        client = scaleapi.ScaleClient("benchmark", api_instance_url=sb.url)
        started = time.perf_counter()
        for name in names:
            client.get_batch(name)
        theirs_seconds = time.perf_counter() - started
        theirs = sb.calls()

    our_calls, their_calls = sum(ours.values()), sum(theirs.values())
    expected = math.ceil(n / 100) + 1
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_plan_noop --batches {n} "
        f"--latency-ms {args.latency_ms:g}` ({machine()}).",
        "",
        "| | API calls | wall time |",
        "| --- | ---: | ---: |",
        f"| `batchplan plan` (whole command, process start included) | {our_calls} "
        f"({dict(ours)}) | {seconds:.2f} s |",
        f"| official client, one `get_batch` per batch | {their_calls} | {theirs_seconds:.2f} s |",
        f"| ratio | {their_calls / our_calls:.0f}x fewer calls | "
        f"{theirs_seconds / seconds:.1f}x less time |",
        "",
        f"Expected calls for batchplan: ceil({n}/100) + 1 = {expected}; "
        f"{'met' if our_calls == expected else 'NOT met'}. Targets: at least 50x fewer calls "
        "and 20x less wall time.",
    ]
    publish(f"No-op plan over {n:,} managed batches", lines, write=not args.no_record)


if __name__ == "__main__":
    main()
