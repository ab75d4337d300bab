"""End to end: a generated config with metadata, applied against the sandbox.

The calls are counted server-side: a monthly series over two projects is
created with its metadata in the create body (no extra call), prioritized
once each, and a second plan has nothing to do. Changing one metadata key
then costs exactly one setMetadata per batch, and keys the config does not
name survive it.
"""

from __future__ import annotations

import requests

from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, batch_record, clear_calls, mutating_calls

GENERATED = """\
    version: 1
    defaults:
      callback: https://hooks.example.com/scale
      metadata:
        team: vision
    batches:
      - for_each:
          month: {range: [2020-11, 2021-02], step: month}
          animal: [kittens, puppies]
        name: ${each.animal}_${each.month}
        project: ${each.animal}
        priority: 20
        metadata:
          month: ${each.month}
"""

NAMES = [
    f"{animal}_{month}"
    for month in ("2020-11", "2020-12", "2021-01", "2021-02")
    for animal in ("kittens", "puppies")
]


def test_generated_series_is_created_with_metadata_then_stable(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", GENERATED)
    applied = cli("apply", "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    assert mutating_calls(sandbox) == {
        "POST /batches": 8,
        "POST /batches/{name}/prioritize": 8,
    }
    for name in NAMES:
        record = batch_record(sandbox, name)
        animal, month = name.split("_")
        assert record["project"] == animal
        assert record["priority"] == 20
        assert record["metadata"] == {"team": "vision", "month": month}

    clear_calls(sandbox)
    again = cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes." in again.out
    assert not mutating_calls(sandbox)


def test_changed_metadata_key_is_one_set_metadata_call_keeping_other_keys(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", GENERATED)
    assert cli("apply", "--auto-approve").code == 0
    # Someone adds a key the config does not name: batchplan must keep it.
    base = sandbox.url
    response = requests.post(
        f"{base}/batches/kittens_2020-11/setMetadata",
        json={"team": "vision", "month": "2020-11", "owner": "ana"},
        timeout=10,
    )
    assert response.status_code == 200, response.text

    cli.write("batchplan.yaml", GENERATED.replace("team: vision", "team: ml"))
    clear_calls(sandbox)
    planned = cli("plan", "--detailed-exitcode")
    assert planned.code == 2, planned.out + planned.err
    assert 'team: "vision" -> "ml"' in planned.out
    assert "owner" not in planned.out
    assert not mutating_calls(sandbox)

    applied = cli("apply", "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    assert mutating_calls(sandbox) == {"POST /batches/{name}/setMetadata": 8}
    assert batch_record(sandbox, "kittens_2020-11")["metadata"] == {
        "team": "ml",
        "month": "2020-11",
        "owner": "ana",
    }
    assert batch_record(sandbox, "puppies_2021-02")["metadata"] == {
        "team": "ml",
        "month": "2021-02",
    }
    assert cli("plan", "--detailed-exitcode").code == 0


def test_metadata_key_set_to_null_is_removed_from_the_live_batch(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", GENERATED)
    assert cli("apply", "--auto-approve").code == 0
    cli.write("batchplan.yaml", GENERATED.replace("team: vision", "team: null"))
    clear_calls(sandbox)
    applied = cli("apply", "--auto-approve")
    assert applied.code == 0, applied.out + applied.err
    assert mutating_calls(sandbox) == {"POST /batches/{name}/setMetadata": 8}
    assert batch_record(sandbox, "puppies_2020-12")["metadata"] == {"month": "2020-12"}
    assert cli("plan", "--detailed-exitcode").code == 0
