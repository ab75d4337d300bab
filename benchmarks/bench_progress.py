"""What the live progress line costs: one apply of N new batches with it, one without.

    .venv/bin/python -m benchmarks.bench_progress [--batches 1000] [--latency-ms 5] [--rounds 2]
        [--no-record]

Both runs write stdout and stderr to a pseudo-terminal, so the per-call lines
cost the same; in the run "with" stderr is the terminal (apply draws the
progress line after every event), in the run "without" stderr is a file (no
progress line; the heartbeat every 10 s does not fire in a short run). Each
run gets its own fresh sandbox process, and the rounds alternate without
and with, so a slower spell of a shared machine falls on both. Prints the
wall times (best of the rounds) and their ratio, and records them in
docs/performance.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, publish, sandbox, write_config


def timed_apply(work: Path, url: str, *, progress: bool) -> tuple[float, float]:
    """Wall time of one apply, and the CPU time (user + system) of its process."""
    main, child = pty.openpty()
    with open(work / "stderr.txt", "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "batchplan", "apply", "--auto-approve", "--force"],
            cwd=work,
            env={"SCALE_API_KEY": "benchmark", **os.environ, "BATCHPLAN_ENDPOINT": url},
            stdin=subprocess.DEVNULL,
            stdout=child,
            stderr=child if progress else log,
        )
        os.close(child)
        # Drain the terminal as fast as a terminal emulator would.
        while True:
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    if not os.read(main, 1 << 16):
                        break
                except OSError:
                    break
            elif process.poll() is not None:
                break
        # wait4, not wait: the CPU time of this child alone (the sandbox, on
        # the same machine, and anyone else's work do not count in it).
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
    os.close(main)
    if code != 0:
        raise RuntimeError(f"apply exited {code}: {(work / 'stderr.txt').read_text()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    names = [f"p-{i:06d}" for i in range(args.batches)]
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for progress in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                write_config(work / "batchplan.yaml", "bench", names, priority=25, finalized=True)
                with sandbox(work / "sandbox.db", "--latency-ms", str(args.latency_ms)) as sb:
                    times[progress].append(timed_apply(work, sb.url, progress=progress))
    n, ms = args.batches, args.latency_ms

    def best(progress: bool, which: int) -> float:
        return min(run[which] for run in times[progress])

    def runs(progress: bool, which: int) -> str:
        return ", ".join(f"{run[which]:.2f}" for run in times[progress])

    lines = [
        f"Command: `.venv/bin/python -m benchmarks.bench_progress --batches {n} "
        f"--latency-ms {ms:g} --rounds {args.rounds}` ({machine()}).",
        "",
        f"`batchplan apply` of {n:,} new batches ({3 * n:,} calls), sandbox latency {ms:g} ms, "
        "no rate limit; stdout on a terminal in both runs, stderr on the terminal (progress "
        "line drawn after every event) or on a file (no progress line).",
        "",
        "| | wall time, best | every round (s) | CPU time of apply's process, best "
        "| every round (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {label} | {best(progress, 0):.2f} s | {runs(progress, 0)} | "
            f"{best(progress, 1):.2f} s | {runs(progress, 1)} |"
            for label, progress in (
                ("without the progress line", False),
                ("with the progress line", True),
            )
        ),
        "",
        f"Ratio with / without: {best(True, 0) / best(False, 0):.3f} in wall time, "
        f"{best(True, 1) / best(False, 1):.3f} in CPU time (target: within 1.05). "
        "The CPU time counts the apply process alone, so it is the steadier figure on a "
        "shared machine.",
    ]
    publish(f"Cost of the progress line at {ms:g} ms latency", lines, write=not args.no_record)


if __name__ == "__main__":
    main()
