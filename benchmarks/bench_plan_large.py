"""Benchmark 3: plan against 100,000 live batches at zero added latency.

    .venv/bin/python -m benchmarks.bench_plan_large [--batches 100000]

Two cases, both with every live batch in one project: all of them managed
(in the config and in state), and none of them managed (a config of ten
batches; the rest are unmanaged). For each: wall time of the plan, its peak
Python memory per live batch (tracemalloc), and where the CPU time goes
under yappi, across all threads: batchplan's own code, HTTP and JSON decoding, YAML and JSON Schema
(config loading), the rest. For both cases, also the memory of each
step of the plan (what is held before it, its peak, what it leaves), which
says where the peak comes from.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import yappi

from batchplan.cli import run
from batchplan.commands import plan as plan_command
from batchplan.plan import planning
from benchmarks.common import batchplan, machine, publish, sandbox, write_config

BUCKETS = {
    "batchplan": ("/batchplan/",),
    "HTTP and JSON decoding": (
        "/requests/",
        "/urllib3/",
        "/http/",
        "socket",
        "/json/",
        "ssl",
        "/email/",
        "{method 'recv",
        "{method 'sendall",
        "{method 'connect",
    ),
    "YAML and JSON Schema": ("/yaml/", "/jsonschema", "/referencing/", "_yaml", "/rpds"),
}


def plan_in_process(work: Path, url: str) -> int:
    os.environ.setdefault("SCALE_API_KEY", "benchmark")  # the sandbox accepts any
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return run(["plan", "--endpoint", url])
    finally:
        os.chdir(cwd)


def bucket_of(filename: str, name: str) -> str:
    where = f"{filename} {name}"
    for bucket, needles in BUCKETS.items():
        if any(needle in where for needle in needles):
            return bucket
    return "other (threads, waiting, stdlib)"


def measure(work: Path, url: str, n: int) -> dict[str, object]:
    plan: Callable[[], int] = lambda: plan_in_process(work, url)  # noqa: E731
    assert plan() == 0  # warm: imports, first connections
    started = time.perf_counter()
    assert plan() == 0
    wall = time.perf_counter() - started

    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    assert plan() == 0
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()

    # yappi, not cProfile: the listing runs on worker threads, which
    # cProfile does not see. CPU clock, so threads waiting on I/O cost nothing.
    yappi.set_clock_type("cpu")
    yappi.clear_stats()
    yappi.start(builtins=True)
    assert plan() == 0
    yappi.stop()
    spent: dict[str, float] = {}
    for stat in yappi.get_func_stats():
        bucket = bucket_of(stat.module, stat.name)
        spent[bucket] = spent.get(bucket, 0.0) + stat.tsub
    total = sum(spent.values())
    return {
        "wall": wall,
        "peak_per_batch": peak / n,
        "peak_mib": peak / 2**20,
        "shares": {k: v / total for k, v in sorted(spent.items(), key=lambda kv: -kv[1])},
    }


# The steps of a plan, where the commands look them up.
STEPS = (
    (plan_command, "load_config", "load the configuration"),
    (planning, "read_state", "read state"),
    (planning, "read_live", "list the live batches"),
    (planning, "diff", "diff"),
    (planning, "checksum", "checksum"),
    (plan_command, "render", "render the text plan"),
)


def step_memory(work: Path, url: str) -> list[tuple[str, int, int, int]]:
    """Traced memory (before, peak, after) of each step of one plan, step by step."""
    rows: list[tuple[str, int, int, int]] = []
    originals = [(module, name, getattr(module, name)) for module, name, _ in STEPS]

    def traced(label: str, fn: Callable[..., object]) -> Callable[..., object]:
        def step(*args: object, **kwargs: object) -> object:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = fn(*args, **kwargs)
            after, peak = tracemalloc.get_traced_memory()
            rows.append((label, before - start, peak - start, after - start))
            return result

        return step

    for (module, name, fn), (_, _, label) in zip(originals, STEPS, strict=True):
        setattr(module, name, traced(label, fn))
    try:
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        assert plan_in_process(work, url) == 0
    finally:
        tracemalloc.stop()
        for module, name, fn in originals:
            setattr(module, name, fn)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    n = args.batches
    results = {}
    with tempfile.TemporaryDirectory() as tmp, sandbox(Path(tmp) / "sb.db") as sb:
        sb.seed("big", "L-", n)
        managed = Path(tmp) / "managed"
        managed.mkdir()
        write_config(managed / "batchplan.yaml", "big", [f"L-{i:06d}" for i in range(n)])
        _, code, out = batchplan("apply", "--auto-approve", "--endpoint", sb.url, cwd=managed)
        assert code == 0, out[-2000:]
        results["all managed"] = measure(managed, sb.url, n)
        steps = {"all managed": step_memory(managed, sb.url)}
        unmanaged = Path(tmp) / "unmanaged"
        unmanaged.mkdir()
        write_config(unmanaged / "batchplan.yaml", "big", [f"L-{i:06d}" for i in range(10)])
        _, code, out = batchplan("apply", "--auto-approve", "--endpoint", sb.url, cwd=unmanaged)
        assert code == 0, out[-2000:]
        results["10 managed, the rest unmanaged"] = measure(unmanaged, sb.url, n)
        steps["10 managed"] = step_memory(unmanaged, sb.url)

    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_plan_large --batches {n}` "
        f"({machine()}); sandbox in its own process, no added latency.",
        "",
        "| case | wall time | peak memory | per live batch | batchplan's own code | "
        "HTTP + JSON | YAML + JSON Schema | other |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, r in results.items():
        shares = r["shares"]
        assert isinstance(shares, dict)
        lines.append(
            f"| {case} | {r['wall']:.2f} s | {r['peak_mib']:.0f} MiB | "
            f"{r['peak_per_batch']:.0f} B | {shares.get('batchplan', 0):.0%} | "
            f"{shares.get('HTTP and JSON decoding', 0):.0%} | "
            f"{shares.get('YAML and JSON Schema', 0):.0%} | "
            f"{shares.get('other (threads, waiting, stdlib)', 0):.0%} |"
        )
    lines += [
        "",
        "Shares are of CPU time under yappi (own time by file, all threads). "
        "Targets: under 1 KB of peak memory per batch; batchplan's own share under a third.",
        "",
        "Memory per live batch of each step of a plan (traced memory, from the plan's "
        "start): what is held when the step starts, its peak, what it leaves.",
        "",
        "| case | step | held before | peak | held after |",
        "| --- | --- | ---: | ---: | ---: |",
        *(
            f"| {case} | {label} | {before / n:.0f} B | {peak / n:.0f} B | {after / n:.0f} B |"
            for case, rows in steps.items()
            for label, before, peak, after in rows
        ),
    ]
    publish(f"Plan against {n:,} live batches", lines, write=not args.no_record)


if __name__ == "__main__":
    main()
