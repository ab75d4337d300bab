"""Fuzzing validate and plan with hostile YAML: only clean errors may come out.

Documents are built around the real config shape (batches, defaults,
settings, for_each, metadata) with values chosen to hurt: integers past
Python's digit limit, nan and inf, bidirectional and zero-width characters,
decomposed Unicode, long strings, aliases, variables; plus plain random text.
``check_config`` must return problems, never raise; ``load_config`` may raise
only ConfigError; ``plan`` against the sandbox must exit with a message, never
"unexpected". Derandomized, so CI sees the same examples every run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchplan.config.load import check_config, load_config
from batchplan.errors import ConfigError
from tests.helpers import CLI

ENV = {"HOOK": "https://hooks.example.com/x", "HUGE": "0x" + "f" * 3600, "EMPTY": ""}

CONFIG = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PLAN = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Raw(str):
    """YAML text written as is (a number too big for Python to print, an alias)."""


def emit(value: Any) -> str:
    """``value`` as flow-style YAML; strings double-quoted with JSON escapes."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{emit(k)}: {emit(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(emit(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}.get(str(value), repr(value))
    if isinstance(value, int):
        return str(value)
    return quote(value)


def quote(text: str) -> str:
    """A YAML double-quoted string: printable characters as they are, others escaped.

    Not json.dumps: its surrogate pairs (\\ud83d\\ude00) are no YAML escape.
    """
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) > 0xFFFF:
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return '"' + "".join(out) + '"'


HOSTILE_NUMBERS = st.sampled_from(
    [
        Raw("0x" + "f" * 3600),
        Raw("-0x" + "f" * 3600),
        Raw("9" * 4400),
        Raw("0o" + "7" * 5000),
        Raw("!!int " + "1" * 4500),
        Raw("99999999999999999999"),
        Raw("1e400"),
        Raw(".nan"),
        Raw("-.inf"),
        Raw("1e20"),
        "${HUGE}",
    ]
)
# Characters that deceive a reviewer or trip a parser.
TRICKY = "a\u202e\u202a\u2066\u2069\u200b\u200d\u2060\ufeff\u0301e\u00e9$.{}:#'\"\\\n\t\x85\u2028"
names = st.one_of(
    st.text(alphabet=TRICKY, max_size=12),
    st.text(max_size=12),
    st.sampled_from(["n${each.x}", "n_${each.x}_${each.d}", "${HOOK}", "${NOPE}", ".", ""]),
    st.builds(lambda n: "a" * n, st.integers(1000, 1100)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    HOSTILE_NUMBERS,
    st.sampled_from(["${HOOK}", "${NOPE}", "$${HOOK}", "${EMPTY:-x}", "${each.x}"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
points = st.one_of(
    st.integers(-5, 50),
    st.sampled_from(["2020-01-01", "2020-03", "2021-02-29", "9999-12-31", "0001-01"]),
    HOSTILE_NUMBERS,
)
loops = st.one_of(
    st.lists(scalars, max_size=4),
    st.fixed_dictionaries(
        {"range": st.lists(points, min_size=0, max_size=3)},
        optional={
            "step": st.one_of(
                st.sampled_from(["day", "week", "month", "year", "fortnight"]),
                st.integers(-1, 400),
                HOSTILE_NUMBERS,
            ),
            "format": st.sampled_from(["%Y", "%d/%m", "x", "%", "%Y" + "x" * 300]),
        },
    ),
)
batch = st.fixed_dictionaries(
    {"name": names},
    optional={
        "project": st.one_of(st.none(), st.sampled_from(["p", "", "${NOPE}"])),
        "priority": st.one_of(st.integers(0, 40), HOSTILE_NUMBERS, st.floats()),
        "finalized": st.one_of(st.booleans(), st.none(), st.just("yes")),
        "callback": st.sampled_from(["${HOOK}", "https://[::1", "https://h:99999", "a@b.c", ""]),
        "metadata": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=5), json_values, max_size=3)
        ),
        "for_each": st.dictionaries(st.sampled_from(["x", "d", "1bad", ""]), loops, max_size=2),
    },
)
documents = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), HOSTILE_NUMBERS), "batches": st.lists(batch, max_size=4)},
    optional={
        "defaults": st.fixed_dictionaries(
            {},
            optional={
                "project": st.just("p"),
                "metadata": st.dictionaries(st.text(max_size=5), json_values, max_size=2),
                "priority": st.one_of(st.integers(0, 40), HOSTILE_NUMBERS),
            },
        ),
        "settings": st.dictionaries(
            st.sampled_from(["max_finalize", "max_changes", "max_forget"]),
            st.one_of(st.integers(-1, 3), HOSTILE_NUMBERS),
        ),
    },
)


def check(text: str) -> None:
    """Validate ``text`` both ways; only problems and ConfigError may come out."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        for require in (False, True):
            result = check_config([str(path)], ENV, require_variables=require)
            assert all(problem.message for problem in result.problems)
            assert (result.config is None) == bool(result.errors)
            assert len(result.errors) <= 250
        try:
            load_config([str(path)], ENV)
        except ConfigError as error:
            assert error.problems
            assert all(str(path) in problem for problem in error.problems)


@CONFIG
@given(documents)
def test_structured_hostile_documents_give_clean_errors(document: dict[str, Any]) -> None:
    check(emit(document) + "\n")


@CONFIG
@given(documents, st.integers(0, 3))
def test_block_style_documents_with_aliases_give_clean_errors(
    document: dict[str, Any], repeat: int
) -> None:
    # The same shape written in block style, with one value anchored and aliased.
    lines = [
        "version: " + emit(document["version"]),
        "defaults: &d " + emit(document.get("defaults", {})),
    ]
    lines.append("batches:")
    for entry in document["batches"]:
        lines.append("  - " + emit(entry))
        lines.extend(["  - {name: alias, project: p, metadata: {m: *d}}"] * repeat)
    check("\n".join(lines) + "\n")


@CONFIG
@given(st.text(max_size=400))
def test_random_text_gives_clean_errors(text: str) -> None:
    check(text)


@CONFIG
@given(
    st.lists(
        st.sampled_from(
            [
                "version: 1\n",
                "batches:\n",
                "  - ",
                "name: ",
                "&a ",
                "*a",
                "{",
                "}",
                "[",
                "]",
                ": ",
                "\u202e",
                "0x" + "f" * 3600,
                "${each.x}",
                "for_each: ",
                "range: ",
                "\n",
                "    ",
            ]
        ),
        max_size=40,
    )
)
def test_token_soup_gives_clean_errors(tokens: list[str]) -> None:
    check("".join(tokens))


plain = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
# Mostly valid configs, so that plan gets past validation and reaches the API.
plannable = st.builds(
    lambda entries, metadata: {
        "version": 1,
        "defaults": {"project": "p", "metadata": metadata},
        "batches": entries,
    },
    st.lists(
        st.fixed_dictionaries(
            {"name": st.one_of(st.text(plain, min_size=1, max_size=8), names)},
            optional={
                "priority": st.one_of(st.integers(10, 30), st.just(20), HOSTILE_NUMBERS),
                "metadata": st.dictionaries(st.text(plain, max_size=5), json_values, max_size=3),
                "for_each": st.fixed_dictionaries({"x": loops}),
            },
        ),
        max_size=3,
    ),
    st.dictionaries(st.text(max_size=5), json_values, max_size=2),
)


@PLAN
@given(st.one_of(plannable, documents))
def test_plan_on_hostile_documents_exits_with_a_message(cli: CLI, document: dict[str, Any]) -> None:
    cli.write("batchplan.yaml", emit(document) + "\n")
    result = cli("plan", "--var", "HOOK=https://hooks.example.com/x")
    # 0 no changes, 1 error, 3 unsafe; never a crash.
    assert result.code in (0, 1, 3), result
    assert "unexpected" not in result.err and "Traceback" not in result.err
    if result.code == 1:
        assert result.err.startswith("Error:") or "Error:" in result.err
