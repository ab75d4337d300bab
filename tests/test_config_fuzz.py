"""Whatever a config file holds, load_config returns a Config or raises ConfigError."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchplan.config.load import load_config
from batchplan.errors import ConfigError
from batchplan.model import Config

FUZZ = settings(
    max_examples=int(os.environ.get("BATCHPLAN_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ENV = {"HOOK": "https://hooks.example.com", "EMPTY": ""}


def outcome(content: bytes) -> Config | ConfigError:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_bytes(content)
        try:
            return load_config([str(path)], ENV)
        except ConfigError as error:
            assert error.problems
            assert all(p.startswith(str(path) + ":") for p in error.problems)
            return error


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(content: bytes) -> None:
    outcome(content)


@FUZZ
@given(st.text(max_size=2000))
def test_arbitrary_text(content: str) -> None:
    outcome(content.encode("utf-8", "surrogatepass"))


# Pieces that mean something to YAML or to batchplan, so that generated files
# reach past the first line of the parser.
TOKENS = [
    "version: 1\n",
    "batches:\n",
    "defaults:\n",
    "settings:\n",
    "  - name: a\n",
    "  - name: b\n",
    "    project: p\n",
    "  project: p\n",
    "    priority: 20\n",
    "    priority: 42\n",
    "    callback: ${HOOK}\n",
    "    callback: ${MISSING}\n",
    "    callback: $${x}\n",
    "    finalized: true\n",
    "    finalized: null\n",
    "  max_changes: 5\n",
    "&a ",
    "*a",
    "<<: *a\n",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "- ",
    "? ",
    "---\n",
    "...\n",
    "!!str ",
    "!!int ",
    "!!python/object:os.system ",
    "!x ",
    "'",
    '"',
    "|\n",
    ">-\n",
    "#",
    "\t",
    " ",
    "\n",
    "\r\n",
    "\ufeff",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n",
    "~",
    "0x1F",
    "1e9",
    ".inf",
    "true",
    "x",
    "é",
]


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_yaml_ish_token_soup(tokens: list[str]) -> None:
    outcome("".join(tokens).encode())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-100, 100),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["${HOOK}", "${NOPE}", "$${HOOK}", "${EMPTY:-x}"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "project", "priority", "x", "finalized"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["version", "batches", "defaults", "settings", "extra"]),
        values,
        max_size=5,
    ),
    st.sampled_from(["json", "block"]),
)
def test_structured_documents(document: dict[str, object], style: str) -> None:
    # json.dumps is YAML flow style; safe_dump gives block style with anchors off.
    text = json.dumps(document) if style == "json" else yaml.safe_dump(document)
    result = outcome(text.encode())
    if isinstance(result, Config):
        assert all(batch.name for batch in result.batches)
