"""for_each: ranges, steps, formats, products, escapes, caps and duplicates."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from batchplan.config import foreach
from batchplan.config.load import load_config
from batchplan.errors import ConfigError
from batchplan.model import DesiredBatch
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, batch_record


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def generate(tmp_path: Path, loops: str, name: str = "b_${each.x}") -> list[str]:
    path = write(
        tmp_path,
        f"version: 1\ndefaults: {{project: p}}\nbatches:\n"
        f"  - for_each: {{{loops}}}\n    name: '{name}'\n",
    )
    return [batch.name for batch in load_config([path], {}).batches]


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, text)], environ or {})
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("loops", "expected"),
    [
        ("x: [a, b, 3, true]", ["a", "b", "3", "true"]),
        ("x: {range: [1, 4]}", ["1", "2", "3", "4"]),
        ("x: {range: [1, 10], step: 4}", ["1", "5", "9"]),
        ("x: {range: [-2, 0]}", ["-2", "-1", "0"]),
        # Days across a leap day and a month end, both ends included.
        (
            "x: {range: [2020-02-27, 2020-03-01]}",
            ["2020-02-27", "2020-02-28", "2020-02-29", "2020-03-01"],
        ),
        ("x: {range: [2021-02-27, 2021-03-01]}", ["2021-02-27", "2021-02-28", "2021-03-01"]),
        (
            "x: {range: [2020-12-30, 2021-01-13], step: week}",
            ["2020-12-30", "2021-01-06", "2021-01-13"],
        ),
        (
            "x: {range: [2020-01-01, 2020-01-07], step: 3}",
            ["2020-01-01", "2020-01-04", "2020-01-07"],
        ),
        ("x: {range: [2020-11, 2021-02]}", ["2020-11", "2020-12", "2021-01", "2021-02"]),
        ("x: {range: [2020-01, 2020-12], step: 5}", ["2020-01", "2020-06", "2020-11"]),
        ("x: {range: [2019-06, 2021-06], step: year}", ["2019", "2020", "2021"]),
        # A month step from the 31st clamps to each month's end, never drifting.
        (
            "x: {range: [2020-01-31, 2020-04-30], step: month, format: '%Y-%m-%d'}",
            ["2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30"],
        ),
        # The last step would pass the end (02-29 of 2021 does not exist: 02-28 > end? no).
        (
            "x: {range: [2020-02-29, 2022-02-27], step: year, format: '%F'}",
            ["2020-02-29", "2021-02-28"],
        ),
        ("x: {range: [2020-07, 2020-09], format: '%b%y'}", ["Jul20", "Aug20", "Sep20"]),
        ("x: []", []),
    ],
)
def test_loop_values(tmp_path: Path, loops: str, expected: list[str]) -> None:
    assert generate(tmp_path, loops) == [f"b_{value}" for value in expected]


def test_product_in_key_order_first_key_outermost(tmp_path: Path) -> None:
    names = generate(
        tmp_path, "m: {range: [2020-07, 2020-08]}, city: [paris, tokyo]", "k_${each.city}_${each.m}"
    )
    assert names == ["k_paris_2020-07", "k_tokyo_2020-07", "k_paris_2020-08", "k_tokyo_2020-08"]


def test_every_string_field_and_each_values_and_escapes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        defaults:
          metadata: {team: vision, city: none}
          priority: 20
        batches:
          - for_each:
              city: [paris, tokyo]
            name: k_${each.city}_$${each.city}_${ENV}
            project: proj_${each.city}
            callback: ${HOOK}/${each.city}
            metadata: {city: "${each.city}", tags: ["${each.city}", 1]}
        """,
    )
    batches = load_config([path], {"HOOK": "https://h.example/token", "ENV": "dev"}).batches
    first = batches[0]
    assert first == DesiredBatch(
        name="k_paris_${each.city}_dev",
        project="proj_paris",
        callback="https://h.example/token/paris",
        callback_shown="${HOOK}/paris",
        priority=20,
        metadata={"team": "vision", "city": "paris", "tags": ["paris", 1]},
        metadata_shown={"team": "vision", "city": "paris", "tags": ["paris", 1]},
    )
    assert first.each == (("city", "paris"),)
    assert batches[1].each == (("city", "tokyo"),)
    assert first.position is not None and first.position.line == 6
    assert "token" not in repr(first.callback_shown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "  - for_each: {city: [a]}\n    name: x_${each.town}\n",
            ":5:11: batches[0].name: '${each.town}' names no loop of this entry's for_each",
        ),
        (
            "  - name: x_${each.city}\n",
            ":4:11: batches[0].name: '${each.NAME}' needs for_each on this batch",
        ),
        (
            "  - for_each: {city: [a, b], n: [1, 2]}\n    name: x_${each.city}\n",
            "batches[0].name: the name does not use '${each.n}'",
        ),
        (
            "  - for_each: {d: {range: [2020-02-30, 2020-03-01]}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.range[0]: '2020-02-30' is not a real date",
        ),
        (
            "  - for_each: {d: {range: [2020-03, 2020-01]}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.range: the range goes backwards",
        ),
        (
            "  - for_each: {d: {range: [2020-03, 2020-04-01]}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.range: both ends must be",
        ),
        (
            "  - for_each: {d: {range: [2020-03, 2020-05], step: week}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.step: a range of months cannot step by week",
        ),
        (
            "  - for_each: {d: {range: [1, 5], step: month}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.step: an integer range steps by a whole number",
        ),
        (
            "  - for_each: {d: {range: [1, 5], step: 0}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.step: 0 is less than the minimum of 1",
        ),
        (
            "  - for_each: {d: {range: [1]}}\n    name: x_${each.d}\n",
            "batches[0].for_each.d.range: expected a list of exactly 2 values, got 1 value",
        ),
        (
            "  - for_each: {bad-name: [1]}\n    name: x\n",
            "batches[0].for_each: a loop name is letters, digits and '_'",
        ),
        (
            "  - for_each: {n: [1, 2]}\n    name: x_${each.n}\n    priority: ${each.n}\n",
            "batches[0].priority: '${each.NAME}' works only in string fields",
        ),
        (
            "  - for_each: {n: ['.', b]}\n    name: '${each.n}'\n",
            "batches[0] (n=.).name: must not be '.' or '..'",
        ),
        (
            "  - for_each: {n: [a, b]}\n    name: x_${each.n}\n    callback: 'x${each.n}'\n",
            "batches[0] (n=a).callback: must be an http:// or https:// URL",
        ),
    ],
)
def test_located_generator_errors(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, "version: 1\ndefaults: {project: p}\nbatches:\n" + text)
    assert any(expected in problem for problem in found), found


def test_each_in_defaults_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "version: 1\ndefaults: {project: 'p_${each.x}'}\nbatches: [{name: a}]\n",
    )
    assert any(
        "defaults.project: '${each.NAME}' works only in a batch with for_each" in p for p in found
    )


def test_duplicates_across_expansions_name_both(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        version: 1
        defaults: {project: p}
        batches:
          - for_each: {city: [paris, tokyo]}
            name: k_${each.city}
          - name: k_paris
          - for_each: {town: [rome, tokyo]}
            name: k_${each.town}
        """,
    )
    assert len(found) == 2, found
    assert found[0].endswith(
        ":6:11: batches[1].name: batch 'k_paris' is declared twice; first at "
        + found[0].split(":")[0]
        + ":5:11 (city=paris)"
    )
    assert "batches[2] (town=tokyo).name: batch 'k_tokyo' is declared twice" in found[1]
    assert found[1].endswith(":5:11 (city=tokyo)")


def test_cap_is_checked_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A range of ~3.6 million days is refused by counting, never built.
    found = problems(
        tmp_path,
        "version: 1\ndefaults: {project: p}\nbatches:\n"
        "  - for_each: {d: {range: [0001-01-01, 9999-12-31]}}\n    name: x_${each.d}\n",
    )
    assert any(
        ":4:5: batches[0].for_each: makes 3,652,059 batches, more than the 100,000" in p
        for p in found
    ), found


def test_cap_counts_across_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchplan.config.load.MAX_GENERATED", 10)
    text = "version: 1\ndefaults: {project: p}\nbatches:\n"
    text += "  - for_each: {n: {range: [1, 6]}}\n    name: a_${each.n}\n"
    text += "  - for_each: {n: {range: [1, 5]}}\n    name: b_${each.n}\n"
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert "batches[1].for_each: makes 5 batches after the 6 generated before it" in found[0]


def test_unset_variable_in_a_template_is_reported_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "version: 1\ndefaults: {project: p}\nbatches:\n"
        "  - for_each: {n: {range: [1, 50]}}\n    name: a_${each.n}\n"
        "    callback: ${NOPE}/${each.n}\n",
    )
    assert found == [found[0]] and "variable 'NOPE' is not set" in found[0]


def test_loop_of_counts_without_building() -> None:
    problems: list[tuple[foreach.LoopPath, str]] = []
    loop = foreach.loop_of(
        "d", {"range": ["2000-01-01", "2000-12-31"]}, lambda *problem: problems.append(problem)
    )
    assert isinstance(loop, foreach.Loop) and loop.size == 366 and problems == []


def test_the_generated_example_applies_against_the_sandbox(
    sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = CLI(sandbox, tmp_path, capsys)
    # A copy: the state lives under the config root, which must not be the repository.
    example = tmp_path / "generated"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "generated", example)
    applied = cli("apply", "--auto-approve", str(example))
    assert applied.code == 0, applied.err
    for animal in ("kittens", "puppies"):
        for month in range(1, 7):
            record = batch_record(sandbox, f"{animal}_2024-0{month}")
            assert record["project"] == f"{animal}_labeling", record
    assert batch_record(sandbox, "kittens_calibration")["project"] == "kittens_labeling"
    again = cli("plan", "--detailed-exitcode", str(example))
    assert again.code == 0, again.out


def test_a_mistake_repeated_in_every_generated_batch_is_shown_a_few_times(
    tmp_path: Path,
) -> None:
    found = problems(
        tmp_path,
        "version: 1\ndefaults: {project: p}\nbatches:\n"
        "  - for_each: {n: {range: [1, 500]}}\n    name: x_${each.n}\n"
        "    callback: 'nowhere_${each.n}'\n",
    )
    assert len(found) == 11, found
    assert all("must be an http:// or https:// URL" in p for p in found[:10])
    assert found[10].endswith(
        ":6:15: batches[0].for_each: and 490 more problems with the batches it generates,"
        " like those above"
    )
