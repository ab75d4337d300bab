"""Where ``batchplan validate``'s start-up goes, step by step, in one process.

    .venv/bin/python -m benchmarks.startup_phases [--runs 15] [--no-record]

Each run is a fresh interpreter that times, one after the other: importing
click and PyYAML (what validate cannot do without), importing batchplan's
command line (``batchplan.cli``), importing the modules validate loads when
it runs (the config reader, the arguments, the view), and the check of
examples/kitten_labeling itself. It also counts the classes Python builds on
the way (frozen dataclasses and NamedTuples cost a millisecond or so each
at import). Medians over the runs. Writes its figures into
docs/performance.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_startup import EXAMPLE, environment
from benchmarks.common import ROOT, machine, publish

PROBE = """
import dataclasses, json, sys, time, typing

built = {"dataclass": 0, "NamedTuple": 0}
timed = {"dataclass": 0.0, "NamedTuple": 0.0}


def counting(kind, make):
    def wrapped(*args, **kwargs):
        started = time.perf_counter()
        try:
            return make(*args, **kwargs)
        finally:
            built[kind] += 1
            timed[kind] += time.perf_counter() - started
    return wrapped


dataclasses._process_class = counting("dataclass", dataclasses._process_class)
typing.NamedTupleMeta.__new__ = counting("NamedTuple", typing.NamedTupleMeta.__new__)
steps = {}
started = time.perf_counter()
import click, yaml
steps["import click and PyYAML"] = time.perf_counter() - started
started = time.perf_counter()
import batchplan.cli
steps["import batchplan.cli"] = time.perf_counter() - started
started = time.perf_counter()
import batchplan.commands.arguments, batchplan.commands.validate
steps["import what validate loads"] = time.perf_counter() - started
started = time.perf_counter()
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    batchplan.cli.run(["validate", "batchplan.yaml"])
steps["check the config and print"] = time.perf_counter() - started
print(json.dumps({"steps": steps, "built": built, "timed": timed}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    steps: dict[str, list[float]] = {}
    built: dict[str, list[int]] = {}
    timed: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(EXAMPLE, folder / "batchplan.yaml")
        argv = [sys.executable, "-c", PROBE]
        env = environment(ROOT)
        subprocess.run(argv, cwd=folder, env=env, check=True, capture_output=True)  # bytecode
        for _ in range(args.runs):
            done = subprocess.run(
                argv, cwd=folder, env=env, check=True, capture_output=True, text=True
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            for name, seconds in result["steps"].items():
                steps.setdefault(name, []).append(seconds)
            for kind, count in result["built"].items():
                built.setdefault(kind, []).append(count)
                timed.setdefault(kind, []).append(result["timed"][kind])
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.startup_phases --runs {args.runs}` "
        f"({machine()}).",
        "",
        f"`batchplan validate` of examples/kitten_labeling, each step timed in one process; "
        f"medians of {args.runs} fresh interpreters.",
        "",
        "| step | time (median) |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {statistics.median(v) * 1000:.1f} ms |" for name, v in steps.items()]
    lines += ["", "| classes built on the way | how many | time (median) |"]
    lines += ["| --- | ---: | ---: |"]
    lines += [
        f"| {kind} | {statistics.median(built[kind]):.0f} | "
        f"{statistics.median(timed[kind]) * 1000:.1f} ms |"
        for kind in built
    ]
    publish("Start-up, step by step", lines, write=not args.no_record)


if __name__ == "__main__":
    main()
