"""Benchmark: how fast batchplan starts, against a bare ``python -c pass``.

    .venv/bin/python -m benchmarks.bench_startup [--runs 21] [--baseline DIR] [--no-record]

Each command is run N times in a fresh interpreter, all interleaved so that a
change in the machine's load falls on all alike: ``python -c pass``; the
floor, ``python -c 'import click, yaml'`` (the two libraries validate cannot
do without), left with ``os._exit`` as batchplan leaves; ``batchplan
--version`` and ``batchplan validate`` of a config of 4 batches
(examples/kitten_labeling), through the ``batchplan`` script installed
beside the interpreter, as users run it; and the same validate through
``python -m batchplan``. The figures are medians of the wall time and of
the CPU time of the child process (user + system). Bytecode is written and
used, as in an installed copy (a first run compiles it; that run is not
counted). With ``--baseline DIR`` (another checkout) the two batchplan
commands are also run from that code in the same run.

Targets: ``--version`` within 3x of ``python -c pass`` plus 60 ms, and
``validate`` of a small config under 150 ms.

Writes its figures into docs/performance.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, machine, publish

EXAMPLE = ROOT / "examples" / "kitten_labeling" / "batchplan.yaml"
FLOOR_CODE = "import os, click, yaml; os._exit(0)"
FLOOR = "python -c 'import click, yaml' (no teardown)"


def environment(code: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(code)}


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """One run: (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def installed_command() -> list[str]:
    """The ``batchplan`` script pip installed next to this interpreter, as users run it.

    ``python -m batchplan`` when there is none (it costs a few milliseconds
    more: ``runpy`` finds the package first).
    """
    script = Path(sys.executable).parent / "batchplan"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "batchplan"]


def cases(code: Path, label: str) -> dict[str, list[str]]:
    # The script imports batchplan from PYTHONPATH first, so it runs ``code``.
    batchplan = installed_command()
    return {
        f"batchplan --version{label}": [*batchplan, "--version"],
        f"batchplan validate (4 batches){label}": [*batchplan, "validate", "batchplan.yaml"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], environment(ROOT)),
        # What validate cannot do without: the command line and the YAML parser;
        # left as batchplan leaves, without the interpreter's teardown.
        FLOOR: ([sys.executable, "-c", FLOOR_CODE], environment(ROOT)),
    }
    for name, argv in cases(ROOT, "").items():
        commands[name] = (argv, environment(ROOT))
    validate = [sys.executable, "-m", "batchplan", "validate", "batchplan.yaml"]
    commands["python -m batchplan validate (4 batches)"] = (validate, environment(ROOT))
    if args.baseline is not None:
        baseline = args.baseline.resolve()
        for name, argv in cases(baseline, ", baseline code").items():
            commands[name] = (argv, environment(baseline))
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(EXAMPLE, folder / "batchplan.yaml")
        for argv, env in commands.values():
            run_once(argv, folder, env)  # compiles and caches bytecode; not counted
        for _ in range(args.runs):
            for name, (argv, env) in commands.items():
                wall, cpu = run_once(argv, folder, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    bare = wall["python -c pass"]
    version_target = 3 * bare + 0.060
    targets = {
        "batchplan --version": (version_target, f"3 x {bare * 1000:.0f} ms + 60 ms"),
        "batchplan validate (4 batches)": (0.150, "150 ms"),
    }
    baseline_note = f" --baseline {args.baseline}" if args.baseline else ""
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_startup --runs {args.runs}"
        f"{baseline_note}` ({machine()}, load average {os.getloadavg()[0]:.2f} at the end).",
        "",
        f"Each command run {args.runs} times in a fresh interpreter, all interleaved; "
        "medians of the wall time and of the child's CPU time (user + system). Bytecode "
        "cached, as in an installed copy.",
        "",
        "| command | wall (median) | CPU (median) | target | met? |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name in commands:
        target, words = targets.get(name, (None, ""))
        met = "" if target is None else ("yes" if wall[name] <= target else "no")
        shown = "" if target is None else f"{target * 1000:.0f} ms ({words})"
        lines.append(
            f"| {name} | {wall[name] * 1000:.0f} ms | {cpu[name] * 1000:.0f} ms | {shown} | {met} |"
        )
    publish("How fast batchplan starts", lines, write=not args.no_record)


if __name__ == "__main__":
    main()
