"""Shared pieces of the benchmarks: a sandbox in its own process, counting, a report.

The sandbox runs as a separate process (``batchplan sandbox serve``) so that
the program measured and the server do not share one interpreter lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"


@dataclass
class Sandbox:
    url: str
    process: subprocess.Popen[str]

    @property
    def admin(self) -> str:
        return self.url.removesuffix("/v1") + "/_sandbox"

    def seed(self, project: str, prefix: str, count: int, status: str = "in_progress") -> None:
        response = requests.post(
            f"{self.admin}/seed",
            json={"project": project, "prefix": prefix, "count": count, "status": status},
            timeout=600,
        )
        response.raise_for_status()

    def calls(self) -> Counter[str]:
        log = requests.get(f"{self.admin}/requests", timeout=60).json()["requests"]
        return Counter(entry["route"] for entry in log)

    def clear_calls(self) -> None:
        requests.delete(f"{self.admin}/requests", timeout=60).raise_for_status()

    def statuses(self) -> Counter[int]:
        """How many answers of each HTTP status the sandbox gave."""
        log = requests.get(f"{self.admin}/requests", timeout=60).json()["requests"]
        return Counter(entry["status"] for entry in log)

    def set_faults(self, **settings: Any) -> None:
        """Change fault settings (latency_ms, rate_limit, ...) through the admin interface."""
        response = requests.post(f"{self.admin}/faults", json=settings, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"the sandbox refused {settings}: {response.text}")


@contextlib.contextmanager
def sandbox(db: Path, *flags: str) -> Iterator[Sandbox]:
    """Start ``batchplan sandbox serve --port 0`` and wait for its URL line."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchplan",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://\S+/v1)", line)
        if not match:
            raise RuntimeError(
                f"sandbox did not start: {line!r} {process.stderr.read() if process.stderr else ''}"
            )
        yield Sandbox(match.group(1), process)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


def batchplan(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run the batchplan CLI as a user would; return (seconds, exit code, output)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "batchplan", *args],
        cwd=cwd,
        # The sandbox accepts any key; a URL endpoint needs one.
        env={"SCALE_API_KEY": "benchmark", **os.environ, **(env or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def write_config(path: Path, project: str, names: list[str], **fields: Any) -> None:
    lines = ["version: 1", "defaults:", f"  project: {project}"]
    lines += [
        f"  {key}: {str(value).lower() if isinstance(value, bool) else value}"
        for key, value in fields.items()
    ]
    lines.append("batches:")
    lines += [f"  - name: {name}" for name in names]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def record(section: str, body: str) -> None:
    """Replace (or add) one ``## section`` of docs/performance.md with ``body``."""
    text = (
        PERFORMANCE_DOC.read_text(encoding="utf-8")
        if PERFORMANCE_DOC.exists()
        else (
            "# Performance\n\nFigures written by the scripts in `benchmarks/`; each section says "
            "how to reproduce it.\n"
        )
    )
    heading = f"## {section}\n"
    block = heading + "\n" + body.strip() + "\n"
    if heading in text:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + block + (text[end:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    PERFORMANCE_DOC.write_text(text, encoding="utf-8")


def publish(section: str, lines: list[str], *, write: bool) -> None:
    """Print a benchmark's report and, unless told not to, record it in the docs."""
    report = "\n".join(lines)
    print(report)
    if write:
        record(section, report)


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
