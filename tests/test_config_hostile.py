"""Hostile configs: budgets, aliases, huge numbers, deceptive names, floods of problems.

A config comes from a pull request and CI plans it with secrets, so each of
these must be refused by ``validate`` as one located error, quickly, and never
reach plan. The memory-hungry cases run in a subprocess under an address-space
cap, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import unicodedata
from pathlib import Path

import click
import pytest

from batchplan.cli import cli
from batchplan.config.load import MAX_METADATA_BYTES, check_config, load_config, read_variables
from batchplan.config.yamlload import MAX_INTEGER_DIGITS, MAX_PROBLEMS
from batchplan.errors import ConfigError
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, api_calls

ONE_GB = 1 << 30
HUGE_HEX = "0x" + "f" * 3600  # about 4,335 decimal digits: past Python's 4,300


def write(folder: Path, text: str, name: str = "c.yaml") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def errors(path: str, **kwargs: object) -> list[str]:
    check = check_config([path], {}, **kwargs)  # type: ignore[arg-type]
    assert check.config is None
    return [str(problem) for problem in check.errors]


def run_capped(*args: str, cwd: Path, limit: int = ONE_GB) -> subprocess.CompletedProcess[str]:
    """``python -m batchplan ARGS`` with its address space capped at ``limit`` bytes."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run(
        [sys.executable, "-m", "batchplan", *args],
        cwd=cwd,
        env=env,
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli_runner(sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(sandbox, tmp_path, capsys)


# --- budgets -----------------------------------------------------------------


def test_a_string_aliased_20000_times_is_refused_by_validate_and_plan(tmp_path: Path) -> None:
    blob = "x" * (1 << 20)
    lines = ["version: 1", "defaults:", "  project: p", f"  metadata: {{blob: &b {blob}}}"]
    lines += ["batches:", *(f"  - {{name: n{i}, metadata: {{v: *b}}}}" for i in range(20_000))]
    write(tmp_path, "\n".join(lines) + "\n")
    for command in (["validate"], ["plan", "--endpoint", "http://127.0.0.1:9/v1"]):
        result = run_capped(*command, "c.yaml", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert "alias *b (1,048,578 bytes) takes the file past 64 MiB" in result.stderr
        assert "c.yaml:" in result.stderr and "unexpected" not in result.stderr
        assert "batches[" in result.stderr


def test_for_each_with_big_generated_metadata_is_refused_before_expanding(
    tmp_path: Path,
) -> None:
    # 100,000 batches of ~100 KB each: 10 GB if built.
    write(
        tmp_path,
        "version: 1\nbatches:\n  - name: n${each.i}\n    project: p\n"
        "    for_each: {i: {range: [1, 100000]}}\n"
        '    metadata: {k: "${each.i}' + "a" * 100_000 + '"}\n',
    )
    result = run_capped("validate", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "c.yaml:3:5: batches[0]: the configuration stands for more than 64 MiB" in result.stderr
    assert "its 100,000 batches stand for" in result.stderr


def test_defaults_metadata_counts_once_per_batch(tmp_path: Path) -> None:
    # 60 KB of default metadata is legal once, but 2,000 batches carry 120 MB.
    path = write(
        tmp_path,
        "version: 1\ndefaults: {project: p, metadata: {k: "
        + "a" * 60_000
        + "}}\nbatches:\n"
        + "".join(f"  - name: n{i}\n" for i in range(2_000)),
    )
    found = errors(path)
    assert len(found) == 1
    assert "batches[1117]: the configuration stands for more than 64 MiB" in found[0]


def test_a_big_but_reasonable_for_each_still_validates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: kittens_${each.i}\n    project: p\n"
        '    metadata: {team: a, i: "${each.i}"}\n'
        "    for_each: {i: {range: [1, 20000]}}\n",
    )
    assert len(load_config([path], {}).batches) == 20_000


def test_a_name_is_at_most_1024_characters(tmp_path: Path) -> None:
    ok = write(tmp_path, f"version: 1\nbatches:\n  - {{name: {'a' * 1024}, project: p}}\n")
    assert load_config([ok], {}).batches[0].name == "a" * 1024
    bad = write(tmp_path, f"version: 1\nbatches:\n  - {{name: {'a' * 1025}, project: p}}\n")
    assert errors(bad) == [
        f"{bad}:3:12: batches[0].name: is 1,025 characters long, more than the 1,024 allowed"
    ]


def test_a_10kb_name_in_a_100000_batch_for_each_is_refused_at_the_template(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: n${each.i}" + "a" * 10_000 + "\n    project: p\n"
        "    for_each: {i: {range: [1, 100000]}}\n",
    )
    assert errors(path) == [
        f"{path}:3:11: batches[0].name: is 10,010 characters long, more than the 1,024 allowed"
    ]


def test_generated_names_over_1024_characters_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: n${each.x}\n    project: p\n"
        f"    for_each: {{x: [a, {'b' * 1100}]}}\n",
    )
    (message,) = errors(path)
    assert "batches[0] (x=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...).name: is 1,101 characters" in (
        message
    )


def test_metadata_is_at_most_64_kib_as_json(tmp_path: Path) -> None:
    # {"k":"..."} is 8 bytes around the value.
    fits = "a" * (MAX_METADATA_BYTES - 8)
    ok = write(
        tmp_path, f"version: 1\nbatches:\n  - {{name: a, project: p, metadata: {{k: {fits}}}}}\n"
    )
    assert load_config([ok], {}).batches[0].metadata == {"k": fits}
    bad = write(
        tmp_path, f"version: 1\nbatches:\n  - {{name: a, project: p, metadata: {{k: {fits}a}}}}\n"
    )
    assert errors(bad) == [
        f"{bad}:3:37: batches[0].metadata: is 65,537 bytes as JSON, more than the 64 KiB a"
        " batch's metadata may hold; keep large data elsewhere and store a reference to it"
    ]


def test_generated_metadata_over_64_kib_is_refused_per_batch(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: n${each.i}\n    project: p\n"
        f"    for_each: {{i: [1, 2], x: [{'b' * 70_000}]}}\n"
        '    metadata: {k: "${each.x}"}\n',
    )
    found = errors(path)
    assert len(found) == 2
    message = found[0]
    assert ":6:15: batches[0] (i=1, x=bbb" in message
    assert ".metadata: is 70,008 bytes as JSON, more than the 64 KiB" in message


# --- numbers -----------------------------------------------------------------

DIGITS = f"an integer of more than {MAX_INTEGER_DIGITS:,} digits"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"  - {{name: a, project: p, priority: {HUGE_HEX}}}\n", ":3:37: batches[0].priority"),
        (f"  - {{name: a, project: p, priority: {'9' * 5000}}}\n", ":3:37: batches[0].priority"),
        (
            f"  - {{name: a, project: p, priority: !!int {HUGE_HEX}}}\n",
            ":3:37: batches[0].priority",
        ),
        (
            f"  - {{name: a, project: p, metadata: {{n: [{HUGE_HEX}]}}}}\n",
            ":3:42: batches[0].metadata.n[0]",
        ),
        (
            "  - {name: 'a${each.i}', project: p, for_each: {i: {range: [0, " + HUGE_HEX + "]}}}\n",
            ":3:64: batches[0].for_each.i.range[1]",
        ),
    ],
)
def test_integers_past_the_digit_limit_are_located_errors(
    tmp_path: Path, text: str, where: str
) -> None:
    path = write(tmp_path, "version: 1\nbatches:\n" + text)
    assert errors(path) == [f"{path}{where}: {DIGITS}; batchplan reads integers up to that size"]


def test_a_huge_integer_from_var_or_var_file_is_a_located_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "version: 1\nbatches:\n  - name: a\n    project: p\n    priority: ${P}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config([path], {}, variables=read_variables([f"P={HUGE_HEX}"], []))
    assert list(raised.value.problems) == [
        f"{path}:5:15: batches[0].priority: {DIGITS}; batchplan reads integers up to that size"
    ]
    var_file = write(tmp_path, f"P: {HUGE_HEX}\n", "vars.yaml")
    with pytest.raises(ConfigError) as raised:
        read_variables([], [var_file])
    assert list(raised.value.problems) == [
        f"{var_file}:1:4: P: {DIGITS}; batchplan reads integers up to that size"
    ]


def test_a_for_each_step_past_every_date_is_a_located_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: a${each.d}\n    project: p\n"
        "    for_each: {d: {range: [2020-01-01, 2020-02-01], step: 99999999999999999999}}\n",
    )
    assert errors(path) == [
        f"{path}:5:59: batches[0].for_each.d.step: a step of more than 3,652,058 days goes"
        " past the last date there is (9999-12-31); to take only the first date, list it: [FROM]"
    ]


@pytest.mark.parametrize("step", ["1e20", "1e3"])
def test_a_step_written_as_a_whole_float_is_a_number_of_days(tmp_path: Path, step: str) -> None:
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: a${each.d}\n    project: p\n"
        f"    for_each: {{d: {{range: [2020-01-01, 2020-02-01], step: {step}}}}}\n",
    )
    check = check_config([path], {})
    if step == "1e3":
        assert check.config is not None and [b.name for b in check.config.batches] == [
            "a2020-01-01"
        ]
    else:
        assert [p.message.split(";")[0] for p in check.errors] == [
            "a step of more than 3,652,058 days goes past the last date there is (9999-12-31)"
        ]


def float_options() -> list[tuple[str, click.Parameter]]:
    """Every option of every command whose values are floats."""
    found = []

    def walk(command: click.Command, prefix: str) -> None:
        for param in command.params:
            if isinstance(param.type, click.types.FloatParamType):
                found.append((f"{prefix} {param.name}", param))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}")

    walk(cli, "batchplan")
    return found


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "NaN", "-1"])
def test_every_float_option_refuses_non_finite_and_huge_values(value: str) -> None:
    options = float_options()
    names = {name for name, _ in options}
    assert {"batchplan apply lock_timeout", "batchplan status watch"} <= names
    assert "batchplan sandbox serve latency_ms" in names
    for name, param in options:
        with pytest.raises(click.BadParameter):
            param.type.convert(value, param, None)
            pytest.fail(f"{name} accepted {value}")


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--request-timeout", "nan"),
        ("plan", "--request-timeout", "inf"),
        ("plan", "--request-timeout", "1e308"),
        ("plan", "--retry-max-time", "nan"),
        ("status", "--watch", "nan"),
        ("apply", "--lock-timeout", "nan"),
    ],
)
def test_nan_and_inf_options_are_usage_errors(
    cli_runner: CLI, sandbox: SandboxServer, args: tuple[str, ...]
) -> None:
    cli_runner.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: a, project: p}\n")
    result = cli_runner(*args, "--endpoint", sandbox.url, endpoint=False)
    assert result.code == 1
    option = args[1]
    assert f"Invalid value for '{option}'" in result.err
    assert "not a finite number" in result.err or "is not in the range" in result.err
    assert "unexpected" not in result.err
    assert not api_calls(sandbox)


# --- names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "label"),
    [
        ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u202a", "U+202A LEFT-TO-RIGHT EMBEDDING"),
        ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
        ("\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\u200d", "U+200D ZERO WIDTH JOINER"),
        ("\u2060", "U+2060 WORD JOINER"),
        ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ],
)
def test_names_with_bidi_or_zero_width_characters_are_refused(
    tmp_path: Path, char: str, label: str
) -> None:
    escaped = f"\\u{ord(char):04x}"
    path = write(tmp_path, f'version: 1\nbatches:\n  - {{name: "ab{escaped}c", project: p}}\n')
    (message,) = errors(path)
    assert message.startswith(f"{path}:3:12: batches[0].name: must not be '.' or '..' or hold")
    assert f"got 'ab{escaped}c' ({label} at character 3)" in message


def test_a_generated_name_with_a_bidi_control_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'version: 1\nbatches:\n  - name: "n${each.x}"\n    project: p\n'
        '    for_each: {x: [ok, "evil\\u202egpj.exe"]}\n',
    )
    (message,) = errors(path)
    assert "batches[0] (x=evil\u202egpj.exe).name:" in message
    assert "(U+202E RIGHT-TO-LEFT OVERRIDE at character 6)" in message


def test_names_must_be_nfc(tmp_path: Path) -> None:
    composed = write(
        tmp_path, "version: 1\nbatches:\n  - {name: caf\u00e9, project: p}\n", "a.yaml"
    )
    assert load_config([composed], {}).batches[0].name == "caf\u00e9"
    decomposed = write(
        tmp_path, "version: 1\nbatches:\n  - {name: cafe\u0301, project: p}\n", "b.yaml"
    )
    assert errors(decomposed) == [
        f"{decomposed}:3:12: batches[0].name: must be in Unicode NFC form, so that names that"
        " look alike are alike: U+0065 U+0301 at character 4 is written U+00E9 in NFC"
    ]


def test_a_generated_name_not_in_nfc_is_refused(tmp_path: Path) -> None:
    word = unicodedata.normalize("NFD", "\u00e9t\u00e9")
    path = write(
        tmp_path,
        "version: 1\nbatches:\n  - name: n_${each.x}\n    project: p\n"
        f"    for_each: {{x: [ete, {word}]}}\n",
    )
    (message,) = errors(path)
    assert "batches[0] (x=" in message
    assert ".name: must be in Unicode NFC form" in message
    assert "U+0065 U+0301 at character 3 is written U+00E9 in NFC" in message


# --- floods of problems --------------------------------------------------------


def test_duplicate_keys_are_counted_past_the_first_hundred(tmp_path: Path) -> None:
    count = 100_000
    path = write(tmp_path, "version: 1\nbatches: []\nx:\n" + "  k: 1\n" * (count + 1))
    found = errors(path)
    duplicates = [m for m in found if "appears twice" in m]
    assert len(duplicates) == MAX_PROBLEMS
    assert (
        duplicates[0] == f"{path}:5:3: x.k: key 'k' appears twice in this mapping; first at line 4"
    )
    assert (
        f"and {count - MAX_PROBLEMS:,} more problems in this file (the first 100 are shown)"
        in (found[-1])
    )
    assert len(found) <= MAX_PROBLEMS + 2


def test_duplicate_keys_use_bounded_memory(tmp_path: Path) -> None:
    write(tmp_path, "version: 1\nbatches: []\nx:\n" + "  k: 1\n" * 200_001)
    result = run_capped("validate", "c.yaml", cwd=tmp_path, limit=ONE_GB // 2)
    assert result.returncode == 1
    assert "and 199,900 more problems in this file" in result.stderr
    # 101 lines, not 200,000.
    assert len(result.stderr) < 20_000


def test_problems_past_the_cap_are_counted_even_when_reading_stops(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nbatches: []\nx:\n" + "  k: 1\n" * 300 + "  k: [\n")
    found = errors(path)
    assert any("and 200 more problems in this file" in m for m in found)
    assert "invalid YAML" in found[-1]


def test_defaults_metadata_over_64_kib_is_reported_once_at_the_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\ndefaults:\n  project: p\n  metadata: {k: "
        + "a" * 70_000
        + "}\nbatches:\n"
        + "".join(f"  - name: n{i}\n" for i in range(50)),
    )
    assert errors(path) == [
        f"{path}:4:13: defaults.metadata: is 70,008 bytes as JSON, more than the 64 KiB a"
        " batch's metadata may hold; keep large data elsewhere and store a reference to it"
    ]


def test_a_name_from_a_variable_is_refused_without_showing_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nbatches:\n  - name: ${N}\n    project: p\n")
    for value, expected in (
        ("ab\u202ecd", "got '${N}'"),
        ("cafe\u0301", "must be in Unicode NFC form, and '${N}' is not"),
    ):
        (found,) = errors(path, variables={"N": value})
        message = found.split(": batches[0].name: ")[1]
        assert expected in message
        assert "U+" not in message and "cafe" not in message and "ab" not in message


def test_many_broken_entries_are_checked_in_time_in_proportion_to_them(tmp_path: Path) -> None:
    # Found: each entry's check scanned every error of the file, so a config
    # of N broken entries cost N squared: 4,000 took 3.5 s, 50,000 minutes.
    # 20,000 take about 5 s now; the 60 s bound of the run is far from both.
    entries = "".join(f"  - {{name: b{i}, project: p, priority: 99}}\n" for i in range(20_000))
    write(tmp_path, "version: 1\nbatches:\n" + entries)
    result = run_capped("validate", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "and 19,900 more problems in this file (the first 100 are shown)" in result.stderr


def test_problems_the_schema_finds_past_the_cap_are_counted_not_worded(tmp_path: Path) -> None:
    # Found: only the YAML reader's own problems were capped at 100 per file,
    # as the docs say of every problem; 150 out-of-range priorities printed 150.
    entries = "".join(f"  - {{name: b{i}, project: p, priority: 99}}\n" for i in range(150))
    found = errors(write(tmp_path, "version: 1\nbatches:\n" + entries))
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1] == (
        f"{tmp_path / 'c.yaml'}:152:40: and 50 more problems in this file (the first 100 are shown)"
    )
