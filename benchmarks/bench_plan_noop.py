"""Benchmark 1: a no-op plan over N managed batches, against one get_batch per batch.

    .venv/bin/python -m benchmarks.bench_plan_noop [--batches 10000] [--latency-ms 20]
        [--parallelism 16] [--skip-official] [--no-record]

batchplan should make ceil(N/100) list calls plus one project check and
nothing else; the alternative is a script over the official ``scaleapi``
client that reads every batch with ``get_batch``, one at a time. Both run
against the same sandbox (its own process, added latency) in one run.

The plan's reads are timed from its own request log (``BATCHPLAN_LOG=info``):
from the start of the first attempt to the end of the last. Target: within
1.3x of pages x latency / parallelism.
"""

from __future__ import annotations

import argparse
import datetime
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import scaleapi

from benchmarks.common import Sandbox, batchplan, machine, publish, sandbox, write_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--skip-official", action="store_true")
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

        fixed_seconds, fixed_reads, _ = timed_plan(sb, work, args.parallelism, fixed=True)
        seconds, reads, ours = timed_plan(sb, work, args.parallelism, fixed=False)

        their_calls, theirs_seconds = 0, 0.0
        if not args.skip_official:
            sb.clear_calls()
            client = scaleapi.ScaleClient("benchmark", api_instance_url=sb.url)
            started = time.perf_counter()
            for name in names:
                client.get_batch(name)
            theirs_seconds = time.perf_counter() - started
            their_calls = sum(sb.calls().values())

    our_calls = sum(ours.values())
    expected = math.ceil(n / 100) + 1
    pages = ours["GET /batches"]
    bound = pages * args.latency_ms / 1000 / args.parallelism
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_plan_noop --batches {n} "
        f"--latency-ms {args.latency_ms:g} --parallelism {args.parallelism}"
        f"{' --skip-official' if args.skip_official else ''}` ({machine()}).",
        "",
        "| | API calls | wall time |",
        "| --- | ---: | ---: |",
        f"| `batchplan plan` (whole command, process start included) | {our_calls} "
        f"({dict(ours)}) | {seconds:.2f} s |",
        f"| of which its reads (first attempt's start to last attempt's end) | | {reads:.2f} s |",
        f"| `batchplan plan --fixed-parallelism` (whole command) | | {fixed_seconds:.2f} s |",
        f"| of which its reads | | {fixed_reads:.2f} s |",
        f"| bound for the reads: {pages} pages x {args.latency_ms:g} ms / {args.parallelism} "
        f"| | {bound:.2f} s |",
    ]
    if not args.skip_official:
        lines += [
            f"| official client, one `get_batch` per batch | {their_calls} | "
            f"{theirs_seconds:.2f} s |",
            f"| ratio | {their_calls / our_calls:.0f}x fewer calls | "
            f"{theirs_seconds / seconds:.1f}x less time |",
        ]
    lines += [
        "",
        f"Expected calls for batchplan: ceil({n}/100) + 1 = {expected}; "
        f"{'met' if our_calls == expected else 'NOT met'}. The reads took "
        f"{reads / bound:.2f}x the bound (target 1.3x).",
    ]
    if not args.skip_official:
        lines.append("Targets against the official client: 50x fewer calls, 20x less wall time.")
    section = f"No-op plan over {n:,} managed batches"
    if args.latency_ms != 20:
        section += f" at {args.latency_ms:g} ms latency"
    publish(section, lines, write=not args.no_record)


def timed_plan(
    sb: Sandbox, work: Path, parallelism: int, *, fixed: bool
) -> tuple[float, float, Counter[str]]:
    """Whole-command seconds, reads seconds and calls of one ``batchplan plan``."""
    sb.clear_calls()
    log = work / f"requests-{'fixed' if fixed else 'adaptive'}.log"
    log.unlink(missing_ok=True)
    seconds, code, out = batchplan(
        "plan",
        "--detailed-exitcode",
        "--endpoint",
        sb.url,
        "--parallelism",
        str(parallelism),
        *(["--fixed-parallelism"] if fixed else []),
        cwd=work,
        env={"BATCHPLAN_LOG": "info", "BATCHPLAN_LOG_PATH": str(log)},
    )
    assert code == 0, out[-2000:]
    return seconds, reads_span(log), sb.calls()


def reads_span(log: Path) -> float:
    """Seconds from the first attempt's start to the last attempt's end, from the request log."""
    starts, ends = [], []
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        (
            stamp,
            *_,
        ) = line.split(" ", 1)
        ended = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        ms = float(line.split(" ms=", 1)[1].split(" ", 1)[0])
        starts.append(ended - ms / 1000)
        ends.append(ended)
    return max(ends) - min(starts)


if __name__ == "__main__":
    main()
