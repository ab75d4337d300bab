"""Two applies racing on shared S3 state (moto's server over loopback, separate processes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import events, start_apply

pytest_plugins = ["tests.s3server"]


def write_config(folder: Path, count: int) -> None:
    body = "version: 1\ndefaults: {project: race, priority: 18, finalized: true}\nbatches:\n"
    body += "".join(f"  - name: race-{i:03d}\n" for i in range(count))
    (folder / "batchplan.yaml").write_text(body)


def per_batch(sandbox: Any, kind: str) -> Counter[str]:
    return Counter(e["batch"] for e in events(sandbox) if e["kind"] == kind)


@pytest.mark.parametrize("lock_timeout", ["0", "60"])
def test_two_applies_racing_never_double_create_or_prioritize(
    sandbox_factory: Any, s3_bucket: str, tmp_path: Path, lock_timeout: str
) -> None:
    sandbox = sandbox_factory(latency_ms=100)
    write_config(tmp_path, 40)
    state = f"s3://{s3_bucket}/teams/batches.json"
    flags = ("--state", state, "--lock-timeout", lock_timeout)
    first = start_apply(tmp_path, sandbox.url, *flags)
    second = start_apply(tmp_path, sandbox.url, *flags)
    results = [p.communicate(timeout=120) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    outputs = [out + err for out, err in results]

    if lock_timeout == "0":
        # One holds the lock and applies; the other fails cleanly, naming it.
        assert codes == [0, 1], outputs
        loser = outputs[[first.returncode, second.returncode].index(1)]
        assert "is locked" in loser and "batchplan state unlock" in loser
        assert "Traceback" not in loser
    else:
        # The other waits for the lock, re-plans, and finds nothing to do.
        assert codes == [0, 0], outputs
        assert any("No changes." in out for out in outputs)

    assert len(per_batch(sandbox, "create")) == 40
    assert set(per_batch(sandbox, "create").values()) == {1}
    assert set(per_batch(sandbox, "prioritize").values()) == {1}
    assert set(per_batch(sandbox, "finalize").values()) == {1}
