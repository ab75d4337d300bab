"""Benchmark 2: apply N new batches with priority and finalize (3N mutating calls).

    .venv/bin/python -m benchmarks.bench_apply [--batches 1000] [--rate-limit 100]
        [--limited-latency-ms 30] [--slow-latency-ms 100] [--parallelism 16]
        [--burst B] [--skip-official] [--no-record]

Two cases, side by side in one run, each row against its own fresh sandbox
process:

- rate-limited: the sandbox allows ``--rate-limit`` requests a second (a
  token bucket; an empty one answers 429 with ``Retry-After: 1``) and adds
  ``--limited-latency-ms``. Rows: ``batchplan apply`` as shipped (adaptive
  concurrency and send rate under the ``--parallelism`` ceiling), the same
  with ``--fixed-parallelism``, and a sequential script over the official
  ``scaleapi`` client. Target: wall within 1.15x of calls / rate, 429s under
  3% of calls.
- slow, no limit: ``--slow-latency-ms`` and no rate limit. Rows: adaptive and
  fixed. Target: within 1.3x of calls x latency / parallelism.

``batchplan apply`` is timed as the whole command (process start, config,
plan, apply); a ``batchplan plan`` run against the same sandbox just before
times the part that is not the calls. ``--burst`` sets the sandbox's bucket
size through its admin interface (``POST /_sandbox/faults {"burst": B}``),
for a sandbox that supports it; without it the bucket holds one second's
worth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import scaleapi

from benchmarks.common import Sandbox, batchplan, machine, publish, sandbox, write_config


@dataclass
class Run:
    label: str
    seconds: float
    plan_seconds: float | None
    calls: int
    throttled: int

    def row(self) -> str:
        plan = f"{self.plan_seconds:.2f} s" if self.plan_seconds is not None else ""
        share = self.share()
        return (
            f"| {self.label} | {self.seconds:.2f} s | {plan} | {self.calls} | "
            f"{self.throttled} ({share:.1f}%) |"
        )

    def share(self) -> float:
        """429s as a percentage of all answers."""
        return 100 * self.throttled / self.calls if self.calls else 0.0


def configure(sb: Sandbox, rate_limit: float | None, burst: int | None) -> None:
    if rate_limit is not None:
        settings: dict[str, float | int] = {"rate_limit": rate_limit}
        if burst is not None:
            settings["burst"] = burst
        sb.set_faults(**settings)


def run_batchplan(
    work: Path,
    names: list[str],
    label: str,
    latency: float,
    rate_limit: float | None,
    burst: int | None,
    flags: list[str],
) -> Run:
    folder = Path(tempfile.mkdtemp(dir=work))
    with sandbox(folder / "sandbox.db", "--latency-ms", str(latency)) as sb:
        write_config(folder / "batchplan.yaml", "bench", names, priority=25, finalized=True)
        # The same start-up, config load and plan as apply's, without the calls.
        plan_seconds, code, out = batchplan("plan", "--force", "--endpoint", sb.url, cwd=folder)
        assert code == 0, out[-3000:]
        # Set after the plan, so apply meets a full bucket, as a first run would.
        configure(sb, rate_limit, burst)
        sb.clear_calls()
        seconds, code, out = batchplan(
            "apply", "--auto-approve", "--force", "--endpoint", sb.url, *flags, cwd=folder
        )
        assert code == 0, out[-3000:]
        statuses = sb.statuses()
    return Run(label, seconds, plan_seconds, sum(statuses.values()), statuses[429])


def run_official(
    work: Path, names: list[str], latency: float, rate_limit: float | None, burst: int | None
) -> Run:
    with sandbox(work / "official.db", "--latency-ms", str(latency)) as sb:
        configure(sb, rate_limit, burst)
        client = scaleapi.ScaleClient("benchmark", api_instance_url=sb.url)
        started = time.perf_counter()
        for name in names:
            client.create_batch(project="bench", batch_name=name)
            client.api.post_request(
                f"batches/{client.api.quote_string(name)}/prioritize", body={"priority": 25}
            )
            client.finalize_batch(name)
        seconds = time.perf_counter() - started
        statuses = sb.statuses()
    return Run(
        "sequential official-client script", seconds, None, sum(statuses.values()), statuses[429]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--rate-limit", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--limited-latency-ms", type=float, default=30.0)
    parser.add_argument("--slow-latency-ms", type=float, default=100.0)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    n, rate, p = args.batches, args.rate_limit, args.parallelism
    names = [f"a-{i:06d}" for i in range(n)]
    calls = 3 * n
    ceiling = ["--parallelism", str(p)]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lim = args.limited_latency_ms
        limited = [
            run_batchplan(work, names, "`batchplan apply`", lim, rate, args.burst, ceiling),
            run_batchplan(
                work,
                names,
                "`batchplan apply --fixed-parallelism`",
                lim,
                rate,
                args.burst,
                [*ceiling, "--fixed-parallelism"],
            ),
        ]
        if not args.skip_official:
            limited.append(run_official(work, names, lim, rate, args.burst))
        slow_ms = args.slow_latency_ms
        slow = [
            run_batchplan(work, names, "`batchplan apply`", slow_ms, None, None, ceiling),
            run_batchplan(
                work,
                names,
                "`batchplan apply --fixed-parallelism`",
                slow_ms,
                None,
                None,
                [*ceiling, "--fixed-parallelism"],
            ),
        ]

    command = (
        f".venv/bin/python -m benchmarks.bench_apply --batches {n} --rate-limit {rate:g} "
        f"--limited-latency-ms {lim:g} --slow-latency-ms {slow_ms:g} --parallelism {p}"
        + (f" --burst {args.burst:g}" if args.burst is not None else "")
        + (" --skip-official" if args.skip_official else "")
    )
    header = [
        "| | wall time (whole command) | of which start-up and plan | answers "
        "| 429s (share of answers) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    limit_bound = calls / rate
    ours = limited[0]
    burst = f"{args.burst:g}" if args.burst is not None else f"{rate:g} (one second's worth)"
    lines = [
        f"Command: `{command}` ({machine()}).",
        "",
        f"### Against a rate limit of {rate:g} requests/s, {lim:g} ms latency",
        "",
        f"{calls} mutating calls; sandbox bucket size {burst}.",
        "",
        *header,
        *(run.row() for run in limited),
        f"| bound: {calls} calls / {rate:g} per second | {limit_bound:.2f} s | | | |",
        "",
        f"`batchplan apply` took {ours.seconds / limit_bound:.2f}x the bound for the whole "
        f"command (target 1.15x), "
        + (
            f"{(ours.seconds - ours.plan_seconds) / limit_bound:.2f}x for the calls alone; "
            if ours.plan_seconds is not None
            else ""
        )
        + f"429s: {ours.share():.1f}% of answers (target under 3%); "
        f"with adaptation off: {limited[1].share():.1f}%.",
        "",
        f"### Without a rate limit, {slow_ms:g} ms latency",
        "",
        *header,
        *(run.row() for run in slow),
        f"| bound: {calls} calls x {slow_ms:g} ms / {p} | "
        f"{calls * slow_ms / 1000 / p:.2f} s | | | |",
        "",
        f"`batchplan apply` took {slow[0].seconds / (calls * slow_ms / 1000 / p):.2f}x the "
        "bound for the whole command (target 1.3x), "
        + (
            f"{(slow[0].seconds - slow[0].plan_seconds) / (calls * slow_ms / 1000 / p):.2f}x "
            "for the calls alone."
            if slow[0].plan_seconds is not None
            else ""
        ),
    ]
    publish(
        f"Apply of {n:,} new batches against rate limits and latency",
        lines,
        write=not args.no_record,
    )


if __name__ == "__main__":
    main()
