"""Benchmark 2: apply N new batches with priority and finalize (3N mutating calls).

    .venv/bin/python -m benchmarks.bench_apply [--batches 1000] [--latency-ms 20] [--parallelism 8]

Side by side in one run, each against its own fresh sandbox process with the
same added latency: ``batchplan apply`` (the whole command: config, plan,
apply), the same work done by a sequential script over the official
``scaleapi`` client (create, prioritize, finalize per batch), and the lower
bound, mutating calls x latency / parallelism.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import scaleapi

from benchmarks.common import batchplan, machine, publish, sandbox, write_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    n, latency = args.batches, args.latency_ms
    names = [f"a-{i:06d}" for i in range(n)]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with sandbox(work / "ours.db", "--latency-ms", str(latency)) as sb:
            write_config(work / "batchplan.yaml", "bench", names, priority=25, finalized=True)
            # The same start-up, config load and plan as apply's, without the calls.
            plan_seconds, code, out = batchplan("plan", "--force", "--endpoint", sb.url, cwd=work)
            assert code == 0, out[-3000:]
            sb.clear_calls()
            seconds, code, out = batchplan(
                "apply",
                "--auto-approve",
                "--force",
                "--endpoint",
                sb.url,
                "--parallelism",
                str(args.parallelism),
                cwd=work,
            )
            assert code == 0, out[-3000:]
            ours = sb.calls()

        with sandbox(work / "theirs.db", "--latency-ms", str(latency)) as sb:
            client = scaleapi.ScaleClient("benchmark", api_instance_url=sb.url)
            started = time.perf_counter()
            for name in names:
                client.create_batch(project="bench", batch_name=name)
                client.api.post_request(
                    f"batches/{client.api.quote_string(name)}/prioritize", body={"priority": 25}
                )
                client.finalize_batch(name)
            theirs_seconds = time.perf_counter() - started
            theirs = sb.calls()

    mutating = 3 * n
    bound = mutating * latency / 1000 / args.parallelism
    all_calls = sum(ours.values())
    bound_all = all_calls * latency / 1000 / args.parallelism
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_apply --batches {n} "
        f"--latency-ms {latency:g} --parallelism {args.parallelism}` ({machine()}).",
        "",
        "| | API calls | wall time |",
        "| --- | ---: | ---: |",
        f"| `batchplan apply` (whole command: load, plan, apply) | {all_calls} "
        f"({dict(ours)}) | {seconds:.2f} s |",
        f"| of which start-up, config and plan (timed as `batchplan plan`) | | "
        f"{plan_seconds:.2f} s |",
        f"| of which the calls (the difference) | | {seconds - plan_seconds:.2f} s |",
        f"| sequential official-client script | {sum(theirs.values())} | {theirs_seconds:.2f} s |",
        f"| lower bound, {mutating} mutating calls x {latency:g} ms / {args.parallelism} | | "
        f"{bound:.2f} s |",
        f"| lower bound, all {all_calls} calls x {latency:g} ms / {args.parallelism} | | "
        f"{bound_all:.2f} s |",
        "",
        f"batchplan is {theirs_seconds / seconds:.1f}x faster than the script (target 6x) and "
        f"{seconds / bound:.2f}x the mutating-call lower bound for the whole command "
        f"(target 1.3x; {seconds / bound_all:.2f}x the all-calls bound); the calls alone "
        f"took {(seconds - plan_seconds) / bound:.2f}x the bound.",
    ]
    publish(
        f"Apply of {n:,} new batches with priority and finalize", lines, write=not args.no_record
    )


if __name__ == "__main__":
    main()
