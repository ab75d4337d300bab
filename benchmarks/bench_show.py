"""Benchmark: ``show`` of a saved plan of 5,000 changes against the ``plan`` that made it.

    .venv/bin/python -m benchmarks.bench_show [--changes 5000] [--runs 5]

A configuration of N new batches (each with a priority and metadata, so
every change is a create and a prioritize with metadata) against an empty
sandbox in its own process; ``plan --out plan.json`` makes the plan and
``show plan.json`` prints it, each as its own process, as a user runs them.
The figure is CPU time (user + system) of the batchplan process, median of
the runs; the sandbox's CPU is not counted. Target: ``show`` within 1.5x of
the ``plan``. Also: how long the check of the plan file against its schema
takes in process, compiled (what ``show`` does) and through jsonschema
(what it did before).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, publish, sandbox


def cpu_of(args: list[str], cwd: Path) -> float:
    """CPU seconds (user + system) of one ``batchplan ARGS`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "batchplan", *args],
        cwd=cwd,
        env={"SCALE_API_KEY": "benchmark", **os.environ},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"batchplan {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_config(path: Path, n: int) -> None:
    lines = [
        "version: 1",
        # Over the default limit of 500 calls; the plan is still made the same way.
        f"settings: {{max_changes: {4 * n}}}",
        "defaults:",
        "  project: show",
        "  priority: 20",
        "  metadata: {team: labeling, cost_center: cc-1234}",
        "batches:",
    ]
    lines += [f"  - name: show-{i:06d}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check_times(plan_file: Path) -> tuple[float, float]:
    """Seconds to check the plan document: the compiled check, then jsonschema."""
    from jsonschema import Draft202012Validator

    from batchplan.config.schema import load_schema, plan_check

    document = json.loads(plan_file.read_text(encoding="utf-8"))
    check = plan_check()
    started = time.process_time()
    assert check(document)
    compiled = time.process_time() - started
    started = time.process_time()
    assert Draft202012Validator(load_schema("plan.schema.json")).is_valid(document)
    return compiled, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    n = args.changes
    with tempfile.TemporaryDirectory() as tmp, sandbox(Path(tmp) / "sb.db") as sb:
        work = Path(tmp) / "work"
        work.mkdir()
        write_config(work / "batchplan.yaml", n)
        plan_args = ["plan", "--endpoint", sb.url, "--out", "plan.json"]
        show_args = ["show", "plan.json"]
        cpu_of(plan_args, work)  # warm: page cache, first connection
        plans, shows = [], []
        for _ in range(args.runs):
            plans.append(cpu_of(plan_args, work))
            shows.append(cpu_of(show_args, work))
        changes = len(json.loads((work / "plan.json").read_text())["changes"])
        size = (work / "plan.json").stat().st_size
        compiled, full = check_times(work / "plan.json")
    plan_cpu, show_cpu = statistics.median(plans), statistics.median(shows)
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_show --changes {n} --runs {args.runs}` "
        f"({machine()}); sandbox in its own process, no added latency.",
        "",
        f"A saved plan of {changes:,} changes (create + prioritize, with metadata; "
        f"{size / 2**20:.1f} MiB). CPU time (user + system) of each command as its own "
        f"process, median of {args.runs}:",
        "",
        "| command | CPU time | against `plan` |",
        "| --- | ---: | ---: |",
        f"| `plan --out plan.json` | {plan_cpu:.2f} s | 1.00x |",
        f"| `show plan.json` | {show_cpu:.2f} s | {show_cpu / plan_cpu:.2f}x |",
        "",
        "Checking that plan against `schemas/plan.schema.json` in process: "
        f"{compiled * 1000:.0f} ms with the compiled check `show` uses, "
        f"{full * 1000:.0f} ms through jsonschema ({full / compiled:.0f}x). "
        "Target: `show` within 1.5x of the `plan` that made the file.",
    ]
    publish(f"Show of a {n:,}-change saved plan", lines, write=not args.no_record)


if __name__ == "__main__":
    main()
