"""The renderers read a Plan: text (golden, colour), JSON (schema, key order), Markdown.

Plans are built directly from ``batchplan.plan.changes`` types; nothing here touches
the network. Golden files live in ``tests/data/golden/``; after an intended
change of output, rewrite them with ``UPDATE_GOLDEN=1 pytest tests/test_render.py``
and review the diff like any other code.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from batchplan.escaping import escape_controls
from batchplan.model import COMPLETED, IN_PROGRESS, STAGING, DesiredBatch, LiveBatch, Position
from batchplan.plan.changes import (
    Action,
    BatchSide,
    Change,
    ChangeReason,
    Finding,
    FindingCode,
    Limit,
    LimitBreach,
    MetadataEdit,
    Origin,
    Plan,
    PlanOptions,
    Severity,
)
from batchplan.plan.document import plan_document
from batchplan.views.json import render_json
from batchplan.views.markdown import MARKER, MIN_LIMIT, code, escape, render_markdown
from batchplan.views.text import render_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
P = "kitten_labeling"
CHECKSUM = "sha256:" + "0123456789abcdef" * 4


def create(
    name: str,
    *,
    priority: int | None = None,
    finalized: bool = False,
    callback: str | None = None,
    project: str = P,
    calibration_batch: bool = False,
) -> Change:
    actions = [Action.CREATE]
    if priority is not None:
        actions.append(Action.PRIORITIZE)
    if finalized:
        actions.append(Action.FINALIZE)
    desired = DesiredBatch(
        name=name,
        project=project,
        callback=callback,
        callback_shown=callback,
        priority=priority,
        finalized=finalized or None,
        calibration_batch=calibration_batch,
    )
    return Change(
        batch=name,
        project=project,
        actions=tuple(actions),
        before=None,
        after=BatchSide(
            status=IN_PROGRESS if finalized else STAGING, priority=priority, callback=callback
        ),
        reasons=(ChangeReason.NOT_LIVE,),
        calibration_batch=calibration_batch,
        origin=Origin("batches.yaml", 3, (("month", name[-7:]),)),
        desired=desired,
    )


def update(
    name: str,
    actions: tuple[Action, ...],
    *,
    status: str = STAGING,
    before: int | None = None,
    after: int | None = None,
    reasons: tuple[ChangeReason, ...] = (ChangeReason.PRIORITY_DIFFERS,),
    metadata: tuple[MetadataEdit, ...] = (),
) -> Change:
    after_status = IN_PROGRESS if Action.FINALIZE in actions else status
    return Change(
        batch=name,
        project=P,
        actions=actions,
        before=BatchSide(status=status, priority=before, callback=None),
        after=BatchSide(status=after_status, priority=after, callback=None),
        reasons=reasons,
        metadata=metadata,
    )


def forget(name: str, *, status: str | None = IN_PROGRESS, priority: int | None = 20) -> Change:
    return Change(
        batch=name,
        project=P,
        actions=(Action.FORGET,),
        before=BatchSide(status=status, priority=priority),
        after=None,
        reasons=(ChangeReason.NOT_IN_CONFIG,),
    )


def full_plan() -> Plan:
    """Every action, both conflict shapes, both warnings, the notes."""
    return Plan(
        changes=(
            create(
                "kitten_2020-07",
                priority=30,
                finalized=True,
                callback="${HOOK_URL}",
                calibration_batch=True,
            ),
            create("kitten_2020-08", callback="ops@example.com"),
            update(
                "kitten_2020-09",
                (Action.ADOPT, Action.PRIORITIZE),
                status=IN_PROGRESS,
                after=30,
                reasons=(ChangeReason.NOT_IN_STATE, ChangeReason.PRIORITY_UNKNOWN),
            ),
            update("kitten_2020-10", (Action.PRIORITIZE,), before=20, after=30),
            update(
                "kitten_2020-11",
                (Action.FINALIZE,),
                before=20,
                after=20,
                reasons=(ChangeReason.FINALIZE_STAGING,),
            ),
            update(
                "kitten_2020-12",
                (Action.ADOPT,),
                status=COMPLETED,
                reasons=(ChangeReason.NOT_IN_STATE,),
            ),
            update(
                "kitten_2021-01",
                (Action.PRIORITIZE, Action.FINALIZE),
                before=10,
                after=25,
                reasons=(ChangeReason.PRIORITY_DIFFERS, ChangeReason.FINALIZE_STAGING),
            ),
            update(
                "kitten_2021-02",
                (Action.SET_METADATA,),
                status=IN_PROGRESS,
                reasons=(ChangeReason.METADATA_DIFFERS,),
                metadata=(
                    MetadataEdit("owner", after="${OWNER}", before_hidden=True),
                    MetadataEdit("stale", before=1, after_present=False),
                    MetadataEdit("team", before="a", after="b"),
                    MetadataEdit("topic", after={"k": [1]}, before_present=False),
                ),
            ),
            forget("kitten_2019-01"),
            forget("kitten_2019-02", status=None, priority=None),
        ),
        findings=(
            Finding(
                Severity.ERROR,
                FindingCode.CALLBACK_CHANGED,
                "kitten_2020-06",
                P,
                (("config", "https://a.example"), ("live", "https://b.example")),
                Position("batches.yaml", 14, 7),
            ),
            Finding(
                Severity.ERROR,
                FindingCode.PROJECT_MISSING,
                None,
                "dog_labelling",
                (("used_by", "dogs_1"),),
            ),
            Finding(
                Severity.WARNING,
                FindingCode.ALREADY_FINALIZED,
                "kitten_2020-05",
                P,
                (("status", "in_progress"),),
            ),
            Finding(
                Severity.WARNING,
                FindingCode.PROJECT_MISSING,
                None,
                "dog_labelling",
                (("used_by", "dogs_2"),),
                outside_targets=True,
            ),
        ),
        unmanaged=(
            LiveBatch(name="someone_elses", project=P, status=STAGING),
            LiveBatch(name="old_one", project=P, status=COMPLETED),
        ),
        completed_with_priority=("kitten_2019-06", "kitten_2019-07"),
    )


def targeted_plan() -> Plan:
    return Plan(
        changes=(update("kitten_2020-10", (Action.PRIORITIZE,), before=30, after=30),),
        targets=("kitten_2020-10", "kitten_2020-11"),
        reassert_priority=True,
        completed_with_priority=("kitten_2019-06",),
        unmanaged=(LiveBatch(name="someone_elses", project=P, status=STAGING),),
    )


HOSTILE_NAMES = (
    "pipe|in|name",
    "<script>alert(1)</script>",
    "*bold* _it_ ~strike~",
    "`tick`",
    "a``b",
    "``",
    "line\nbreak\rand\ttab",
    "@org/security-team",
    "[click](https://evil.example)",
    "back\\|slash",
    "# heading",
    "<!-- batchplan-plan -->",
    " spaced ",
    "$x^2$ &amp; :smile:",
    "osc\x1b]52;c;ZXZpbA==\x07",
    "csi\x9b2J\x7f",
    "rtl\u202eexe.txt",
    "zero\u200bwidth\ufeff",
)


def hostile_plan() -> Plan:
    return Plan(
        changes=tuple(
            create(name, priority=20, project=f"proj|{i}") for i, name in enumerate(HOSTILE_NAMES)
        ),
        findings=(
            Finding(
                Severity.ERROR,
                FindingCode.PROJECT_CHANGED,
                "<b>x|y</b>",
                "p*",
                (("live_project", "@org/team; see [here](https://x)"),),
                Position("dir|x/<a>.yaml", 1, 1),
            ),
            Finding(
                Severity.WARNING,
                FindingCode.ALREADY_FINALIZED,
                "`w`",
                "p",
                (("status", "**bold** <i>x</i>"),),
            ),
        ),
    )


def big_plan(count: int = 3_000) -> Plan:
    """``count`` changes with names of up to 100 characters, cycling through every shape."""
    changes = []
    for i in range(count):
        name = f"batch_{i:05d}_" + "x" * (i % 89)
        assert len(name) <= 100
        shape = i % 4
        if shape == 0:
            changes.append(create(name, priority=20, finalized=True, callback="${HOOK}"))
        elif shape == 1:
            changes.append(update(name, (Action.ADOPT, Action.PRIORITIZE), after=30))
        elif shape == 2:
            changes.append(update(name, (Action.PRIORITIZE, Action.FINALIZE), before=10, after=20))
        else:
            changes.append(forget(name))
    return Plan(changes=tuple(changes))


PLANS = {
    "full": full_plan,
    "empty": Plan,
    "targeted": targeted_plan,
    "hostile": hostile_plan,
}


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    assert path.is_file(), f"{path} is missing; run with UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes().decode("utf-8")
    assert actual == expected, f"output differs from {path}; UPDATE_GOLDEN=1 rewrites it"


# --- text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("golden", "plan", "verbose"),
    [
        ("text_full.txt", "full", False),
        ("text_full_verbose.txt", "full", True),
        ("text_empty.txt", "empty", False),
        ("text_targeted.txt", "targeted", False),
    ],
)
def test_text_matches_golden(golden: str, plan: str, verbose: bool) -> None:
    check_golden(golden, render_text(PLANS[plan](), color=False, verbose=verbose))


@pytest.mark.parametrize(
    ("action", "symbol"),
    [("create", "+"), ("adopt", "<="), ("forget", "-/"), ("prioritize", "~"), ("finalize", "~")],
)
def test_text_symbol_of_each_action(action: str, symbol: str) -> None:
    by_first_action = {c.actions[0].value: c for c in full_plan().changes}
    change = by_first_action[action]
    text = render_text(Plan(changes=(change,)))
    assert f"  {symbol} {change.batch}  ({change.project})" in text


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_text_colour_only_when_asked(plan: str) -> None:
    ansi = "\x1b["
    assert ansi in render_text(PLANS[plan](), color=True)
    assert ansi not in render_text(PLANS[plan](), color=False)
    assert ansi not in render_text(PLANS[plan]())


def test_text_colour_changes_nothing_but_escapes() -> None:
    plain = render_text(full_plan(), color=False)
    coloured = render_text(full_plan(), color=True)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


# --- JSON --------------------------------------------------------------------


def saved_extra(**overrides: Any) -> dict[str, Any]:
    """The fields ``plan --out`` puts after ``format_version``."""
    extra: dict[str, Any] = {
        "kind": "batchplan-plan",
        "batchplan_version": "0.1.0",
        "config_paths": ["batchplan.yaml", "batches/"],
        "folder": "/work/repo",
        "endpoint": "https://api.scale.com/v1",
        "endpoint_spec": "https://api.scale.com/v1",
        "state": {
            "lineage": "5b0c5cf4-7c1b-4d5e-9f5e-0e2f6d1b8a11",
            "serial": 7,
            "location": ".batchplan/state.json",
        },
        "environment": "staging",
        "var_files": ["vars/staging.yaml"],
        "var_names": ["HOOK_TOKEN"],
        "options": PlanOptions(targets=("a",), max_finalize=5).to_json(),
        "checksum": CHECKSUM,
        "inputs": {
            "salt": "00ff",
            "desired": {"a": "0123456789abcdef"},
            "live": {"a": ["p", "staging", "0123456789abcdef"], "b": None},
            "missing_projects": [],
        },
        "signature": "hmac-sha256:" + "0" * 64,
        "digest": CHECKSUM,
    }
    extra.update(overrides)
    return extra


def saved_document(**overrides: Any) -> dict[str, Any]:
    body = plan_document(full_plan())
    return {"format_version": body.pop("format_version"), **saved_extra(**overrides), **body}


def errors_of(document: Any) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(document)]


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("plan", [*sorted(PLANS), "big"])
def test_json_validates_against_schema(plan: str) -> None:
    made = big_plan(200) if plan == "big" else PLANS[plan]()
    assert errors_of(json.loads(render_json(made))) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"endpoint": "sandbox:8f14e45f-ceea-467f-a8e5-7c6a1f0d6f8b", "endpoint_spec": "sandbox"},
        {"state": {"lineage": None, "serial": 0, "location": "s3://b/k"}},
        {"options": PlanOptions().to_json()},
        {
            "options": PlanOptions(
                targets=("a", "b"),
                reassert_priority=True,
                max_finalize=0,
                max_changes=1000,
                max_forget=3,
                force=True,
            ).to_json()
        },
    ],
)
def test_saved_plan_validates_against_schema(overrides: dict[str, Any]) -> None:
    assert errors_of(saved_document(**overrides)) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"format_version": "2"}, "'1' was expected"),
        ({"kind": "batchplan-plan"}, "'batchplan_version' is a dependency of 'kind'"),
        ({**saved_extra(), "checksum": "sha256:abc"}, "does not match"),
        ({**saved_extra(), "checksum": "md5:" + "0" * 64}, "does not match"),
        ({**saved_extra(), "digest": "sha256:abc"}, "does not match"),
        ({**saved_extra(), "endpoint": "api.scale.com"}, "does not match"),
        ({**saved_extra(), "state": {"lineage": "x"}}, "'serial' is a required property"),
        ({"summary": {**plan_document(Plan())["summary"], "create": -1}}, "less than"),
        ({"unsafe": [{"limit": "max_everything", "planned": 1, "max": 0}]}, "is not one of"),
    ],
)
def test_schema_catches_drift(change: dict[str, Any], complaint: str) -> None:
    document = {**plan_document(full_plan()), **change}
    assert any(complaint in message for message in errors_of(document)), errors_of(document)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("changes", 0, "actions"), ["delete"]),
        (("changes", 0, "actions"), []),
        (("changes", 0, "before"), {"status": "staging", "priority": 20}),
        (("changes", 0, "after", "status"), ""),
        (("changes", 0, "after", "priority"), 31),
        (("changes", 0, "reasons"), ["because"]),
        (("changes", 0, "metadata"), [{"key": "k"}]),
        (("conflicts", 0, "code"), "unknown_kind"),
        (("warnings", 0, "severity"), "fatal"),
        (("unmanaged", 0, "status"), 7),
        (("summary", "has_changes"), "yes"),
    ],
)
def test_schema_checks_nested_fields(where: tuple[str | int, ...], value: Any) -> None:
    document = json.loads(render_json(full_plan()))
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    assert errors_of(document)


def _walk_objects(schema: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(schema, dict):
        if "properties" in schema:
            found.append((path, schema))
        for key, value in schema.items():
            found.extend(_walk_objects(value, f"{path}/{key}"))
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found.extend(_walk_objects(value, f"{path}/{i}"))
    return found


def test_schema_describes_every_field_and_lets_later_fields_through() -> None:
    """Fields are only added within format_version 1, so no object forbids unknown ones."""
    objects = _walk_objects(SCHEMA)
    assert len(objects) >= 9
    for path, obj in objects:
        assert obj.get("additionalProperties") is not False, path
        for name, field in obj["properties"].items():
            assert field.get("description") or path.endswith(
                ("create_flags/oneOf/1", "origin/oneOf/1", "inputs", "metadata_edit")
            ), f"{path}/properties/{name} has no description"


def test_a_field_added_later_is_accepted_by_this_schema() -> None:
    """A consumer validating with today's schema keeps working when a field is added."""
    document = saved_document()
    document["added_in_a_later_release"] = {"x": 1}
    document["changes"][0]["also_new"] = True
    document["conflicts"][0]["new_fact"] = "y"
    assert errors_of(document) == []


def _undeclared(value: Any, schema: Any, path: str) -> list[str]:
    """Keys batchplan wrote that the schema does not declare (drift in our own output)."""
    defs = SCHEMA["$defs"]
    while isinstance(schema, dict) and "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if isinstance(schema, dict) and "oneOf" in schema and value is not None:
        schema = next(s for s in schema["oneOf"] if s.get("type") != "null")
        return _undeclared(value, schema, path)
    found = []
    if isinstance(value, dict) and isinstance(schema, dict):
        props = schema.get("properties")
        if props is None:
            return []
        for key, item in value.items():
            if key not in props:
                found.append(f"{path}/{key}")
            else:
                found.extend(_undeclared(item, props[key], f"{path}/{key}"))
    elif isinstance(value, list) and isinstance(schema, dict) and "items" in schema:
        for i, item in enumerate(value):
            found.extend(_undeclared(item, schema["items"], f"{path}/{i}"))
    return found


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_every_field_batchplan_writes_is_declared(plan: str) -> None:
    document = {**saved_document(), **plan_document(PLANS[plan]())}
    assert _undeclared(document, SCHEMA, "#") == []


def test_schema_lists_fields_in_document_order() -> None:
    """Saved-plan fields follow format_version; the rest in plan_document's order."""
    document = saved_document()
    assert list(document) == list(SCHEMA["properties"])
    defs = SCHEMA["$defs"]
    assert list(document["summary"]) == list(SCHEMA["properties"]["summary"]["properties"])
    assert list(document["changes"][0]) == list(defs["change"]["properties"])
    assert list(document["changes"][0]["after"]) == list(defs["side"]["oneOf"][1]["properties"])
    assert list(document["conflicts"][0]) == list(defs["finding"]["properties"])
    assert list(document["warnings"][0]) == list(defs["finding"]["properties"])
    assert list(document["unmanaged"][0]) == list(
        SCHEMA["properties"]["unmanaged"]["items"]["properties"]
    )


def test_json_key_order_is_stable() -> None:
    first = render_json(full_plan())
    assert first == render_json(full_plan())
    assert list(json.loads(first)) == [
        "format_version",
        "summary",
        "targets",
        "reassert_priority",
        "unsafe",
        "changes",
        "conflicts",
        "warnings",
        "completed_with_priority",
        "unmanaged",
    ]
    assert first.endswith("}\n")


def test_json_summary_counts() -> None:
    summary = json.loads(render_json(full_plan()))["summary"]
    assert summary == {
        "create": 2,
        "set_metadata": 1,
        "finalize": 3,
        "prioritize": 4,
        "prioritize_from_unknown": 1,
        "adopt": 2,
        "forget": 2,
        "api_calls": 10,
        "conflicts": 2,
        "warnings": 2,
        "has_changes": True,
        "unsafe": False,
    }


def test_json_keeps_callback_in_shown_form() -> None:
    document = json.loads(render_json(full_plan()))
    assert document["changes"][0]["after"]["callback"] == "${HOOK_URL}"
    assert document["changes"][0]["finalize_if_staging"] is True


# --- Markdown ----------------------------------------------------------------


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_markdown_matches_golden(plan: str) -> None:
    check_golden(f"markdown_{plan}.md", render_markdown(PLANS[plan]()))


@pytest.mark.parametrize(
    ("plan", "heading"),
    [
        ("full", "### 2 conflicts: nothing will be applied."),
        ("empty", "### No changes."),
    ],
)
def test_markdown_first_line_is_heading_with_marker(plan: str, heading: str) -> None:
    first = render_markdown(PLANS[plan]()).splitlines()[0]
    assert first.startswith(heading)
    assert first.endswith(" " + MARKER)


def test_markdown_marker_is_on_the_first_line_even_in_a_hostile_plan() -> None:
    """A batch named like the marker shows it only inside a code span, after line one."""
    first, *rest = render_markdown(hostile_plan()).splitlines()
    assert first.startswith("### 1 conflict: nothing will be applied.") and first.endswith(MARKER)
    assert [line for line in rest if MARKER in line] == [
        next(row for row in _table_rows("\n".join(rest)) if f"`{MARKER}`" in row)
    ]


def test_markdown_conflicts_and_warnings_come_before_details() -> None:
    out = render_markdown(full_plan())
    details = out.index("<details><summary>10 changes</summary>")
    assert out.index("**2 conflicts**") < out.index("**2 warnings**") < details
    assert out.index("`kitten_2020-06` (`batches.yaml:14:7`): callback cannot") < details
    assert out.rstrip().endswith("</details>")


def test_markdown_rows_show_action_priority_and_finalize() -> None:
    rows = {row.split(" | ")[2]: row for row in _table_rows(render_markdown(full_plan()))}
    assert rows["`kitten_2020-07`"].endswith(
        "| 30 | if created staging | `callback ${HOOK_URL}`<br>`calibration_batch: true` |"
    )
    assert rows["`kitten_2020-09`"].startswith("| `<=` | adopt, prioritize |")
    assert rows["`kitten_2020-09`"].endswith("| (unknown) -> 30 |  |  |")
    assert rows["`kitten_2020-10`"].endswith("| 20 -> 30 |  |  |")
    assert rows["`kitten_2020-11`"].endswith("|  | staging -> in_progress |  |")
    assert rows["`kitten_2021-02`"].endswith(
        '`metadata stale: 1 -> (removed)`<br>`metadata team: "a" -> "b"`'
        '<br>`metadata topic: (absent) -> {"k": [1]}` |'
    )
    assert rows["`kitten_2019-01`"].startswith("| `-/` | forget |")


def test_markdown_of_a_small_plan_has_no_truncation_note() -> None:
    for plan in PLANS.values():
        assert "not shown" not in render_markdown(plan())


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| `")]


@pytest.mark.parametrize("limit", [MIN_LIMIT, 10_000, 60_000])
def test_markdown_of_a_big_plan_stays_under_the_limit(limit: int) -> None:
    plan = big_plan(3_000)
    out = render_markdown(plan, limit=limit)
    assert len(out) < limit
    rows = _table_rows(out)
    left_out = 3_000 - len(rows)
    assert left_out > 0
    assert f"_... and {left_out:,} more changes not shown ({limit:,} characters limit); " in out
    assert "run `batchplan show`" in out
    # The rows shown are the first ones, in plan order, and the block is closed.
    assert [row.split(" | ")[2] for row in rows] == [
        f"`{change.batch}`" for change in plan.changes[: len(rows)]
    ]
    assert out.index("</details>") < out.index("more changes not shown")


def test_markdown_default_limit_is_60000() -> None:
    out = render_markdown(big_plan(3_000))
    assert len(out) < 60_000
    assert "(60,000 characters limit)" in out
    # It is not truncated more than it has to be: one more row would not fit.
    assert len(out) > 60_000 - 2 * max(map(len, _table_rows(out)))


def test_markdown_truncates_conflicts_and_warnings_too() -> None:
    plan = Plan(
        changes=big_plan(100).changes,
        findings=tuple(
            Finding(
                Severity.ERROR,
                FindingCode.RECORDED_MISSING,
                f"gone_{i:04d}",
                P,
                (),
                Position("b.yaml", 1, 1),
            )
            for i in range(2_000)
        )
        + tuple(
            Finding(
                Severity.WARNING, FindingCode.ALREADY_FINALIZED, f"w_{i:04d}", P, (("status", "x"),)
            )
            for i in range(2_000)
        ),
    )
    out = render_markdown(plan, limit=20_000)
    assert len(out) < 20_000
    shown = sum(1 for line in out.splitlines() if line.startswith("- `gone_"))
    assert f"- ... and {2_000 - shown:,} more not shown; run `batchplan show`" in out
    assert "more changes not shown" in out
    assert out.splitlines()[0].endswith(MARKER)


def test_markdown_limit_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        render_markdown(full_plan(), limit=MIN_LIMIT - 1)


def test_markdown_renderer_does_not_change_the_plan() -> None:
    plan = full_plan()
    render_markdown(plan, limit=MIN_LIMIT)
    assert plan == full_plan()


# A small reader of just the GFM that render_markdown writes: a table row is
# split at unescaped pipes, `\|` is unescaped, then a code span is read.
def _cells(row: str) -> list[str]:
    assert row.startswith("| ") and row.endswith(" |")
    cells = re.split(r"(?<!\\)\|", row[1:-1])
    return [cell.strip(" ").replace("\\|", "|") for cell in cells]


def _code_span(text: str) -> str:
    fence = re.match(r"`+", text)
    assert fence is not None, text
    n = len(fence.group())
    closing = re.search(rf"(?<!`)`{{{n}}}(?!`)", text[n:])
    assert closing is not None, text
    assert n + closing.end() == len(text), f"text after the code span: {text!r}"
    content = text[n : n + closing.start()]
    assert not re.search(rf"(?<!`)`{{{n}}}(?!`)", content)
    if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
        content = content[1:-1]
    return content


def _expected(name: str) -> str:
    return escape_controls(name)


def test_markdown_hostile_names_stay_in_their_cells() -> None:
    rows = _table_rows(render_markdown(hostile_plan()))
    assert len(rows) == len(HOSTILE_NAMES)
    for i, (row, name) in enumerate(zip(rows, HOSTILE_NAMES, strict=True)):
        cells = _cells(row)
        assert len(cells) == 7, row
        assert _code_span(cells[2]) == _expected(name)
        assert _code_span(cells[3]) == f"proj|{i}"
        assert cells[4] == "20"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_code_span_outside_a_table_is_literal(name: str) -> None:
    rendered = code(name)
    assert "\n" not in rendered and "\r" not in rendered
    assert _code_span(rendered) == _expected(name)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("plain words, 'quoted'", "plain words, 'quoted'"),
        ("a*b_c", "a\\*b\\_c"),
        ("<b>x</b>", "\\<b\\>x\\</b\\>"),
        ("[x](https://e)", "\\[x\\]\\(https://e\\)"),
        ("a|b", "a\\|b"),
        ("`x`", "\\`x\\`"),
        ("line\nbreak", "line\\\\x0abreak"),
        ("@org/team", "@\u2060org/team"),
        ("back\\slash", "back\\\\slash"),
        ("&amp; $x$ ~s~", "\\&amp; \\$x\\$ \\~s\\~"),
    ],
)
def test_escape_free_text(message: str, expected: str) -> None:
    assert escape(message) == expected


def test_markdown_hostile_conflicts_and_warnings_are_escaped() -> None:
    lines = render_markdown(hostile_plan()).splitlines()
    conflict = next(line for line in lines if line.startswith("- ``") or line.startswith("- `<"))
    assert conflict == (
        "- `<b>x|y</b>` (`dir|x/<a>.yaml:1:1`): name is taken by a batch in project "
        "'@\u2060org/team; see \\[here\\]\\(https://x\\)'; a batch's project cannot "
        "change and names are unique per account"
    )
    warning = next(line for line in lines if line.startswith("- `` `w` ``"))
    assert warning == (
        "- `` `w` ``: config says finalized: false, but the batch is already "
        "\\*\\*bold\\*\\* \\<i\\>x\\</i\\>; a finalize cannot be undone, so nothing is done"
    )


# --- docs/plan-format.md -------------------------------------------------------

PLAN_FORMAT = (ROOT / "docs" / "plan-format.md").read_text(encoding="utf-8")


def _field_names(schema: Any) -> set[str]:
    return {name for _, obj in _walk_objects(schema) for name in obj["properties"]}


def test_plan_format_doc_names_every_schema_field() -> None:
    missing = sorted(name for name in _field_names(SCHEMA) if f"`{name}`" not in PLAN_FORMAT)
    assert missing == []


def test_plan_format_doc_example_is_a_valid_saved_plan() -> None:
    (example,) = re.findall(r"```json\n(.*?)```", PLAN_FORMAT, flags=re.DOTALL)
    document = json.loads(example)
    assert errors_of(document) == []
    assert document["kind"] == "batchplan-plan"


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_plan_read_back_renders_exactly_like_the_plan(plan: str, fmt: str) -> None:
    """Every kind of change, finding and refusal survives the saved form unchanged."""
    from batchplan.plan.document import plan_from_document

    made = PLANS[plan]()
    made = Plan(**{**made.__dict__, "unsafe": (LimitBreach(Limit.MAX_FINALIZE, 6, 5),)})
    back = plan_from_document(json.loads(render_json(made)))
    render = {"text": render_text, "json": render_json, "markdown": render_markdown}[fmt]
    assert render(back) == render(made)


# --- one golden per kind of change and per format --------------------------------


def _kinds() -> dict[str, Plan]:
    from dataclasses import replace

    flagged = replace(
        create("cats_1", priority=30, finalized=True, callback="${HOOK}", calibration_batch=True),
        self_label_batch=True,
        metadata=(MetadataEdit("team", after="vision", before_present=False),),
    )
    metadata = update(
        "cats_3",
        (Action.SET_METADATA,),
        status=IN_PROGRESS,
        reasons=(ChangeReason.METADATA_DIFFERS,),
        metadata=(MetadataEdit("team", before="a", after="b"),),
    )
    error = Finding(
        Severity.ERROR,
        FindingCode.PROJECT_CHANGED,
        "cats_9",
        P,
        (("live_project", "dogs"),),
        Position("b.yaml", 9, 3),
    )
    warning = Finding(
        Severity.WARNING, FindingCode.ALREADY_FINALIZED, "cats_8", P, (("status", COMPLETED),)
    )
    return {
        "create_with_flags": Plan(changes=(flagged,)),
        "prioritize": Plan(changes=(update("cats_2", (Action.PRIORITIZE,), before=20, after=30),)),
        "finalize": Plan(
            changes=(
                update(
                    "cats_2",
                    (Action.FINALIZE,),
                    before=20,
                    after=20,
                    reasons=(ChangeReason.FINALIZE_STAGING,),
                ),
            )
        ),
        "adopt": Plan(
            changes=(
                update(
                    "cats_2",
                    (Action.ADOPT, Action.PRIORITIZE),
                    after=30,
                    reasons=(ChangeReason.NOT_IN_STATE, ChangeReason.PRIORITY_UNKNOWN),
                ),
            )
        ),
        "forget": Plan(changes=(forget("cats_0"),)),
        "set_metadata": Plan(changes=(metadata,)),
        "conflicts": Plan(findings=(error,)),
        "warnings": Plan(changes=(metadata,), findings=(warning,)),
        "unsafe": Plan(
            changes=(flagged,),
            unsafe=(LimitBreach(Limit.MAX_FINALIZE, 1, 0), LimitBreach(Limit.MAX_CHANGES, 3, 2)),
        ),
    }


KIND_FORMATS = {
    "text": ("txt", render_text),
    "json": ("json", render_json),
    "markdown": ("md", render_markdown),
}


@pytest.mark.parametrize("fmt", sorted(KIND_FORMATS))
@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_each_kind_of_change_matches_its_golden_and_survives_saving(kind: str, fmt: str) -> None:
    from batchplan.plan.document import plan_from_document

    suffix, render = KIND_FORMATS[fmt]
    plan = _kinds()[kind]
    out = render(plan)
    check_golden(f"kinds/{kind}.{suffix}", out)
    assert render(plan_from_document(json.loads(render_json(plan)))) == out


# --- compact -------------------------------------------------------------------


def series_plan(months: int = 12) -> Plan:
    """A year of one series created, one batch reprioritized, another project's forget."""
    changes = [
        create(f"kittens_2024-{m:02d}", priority=20, finalized=True) for m in range(1, months + 1)
    ]
    changes.append(update("kitten_2020-09", (Action.PRIORITIZE,), before=20, after=30))
    changes.append(replace(forget("dogs_old"), project="dogs"))
    return Plan(changes=tuple(changes))


def test_compact_text_matches_golden() -> None:
    check_golden("text_full_compact.txt", render_text(full_plan(), compact=True))


def test_compact_markdown_matches_golden() -> None:
    check_golden("markdown_full_compact.md", render_markdown(full_plan(), compact=True))


def test_compact_text_is_one_line_per_batch_grouped_by_project_with_counts() -> None:
    plan = series_plan()
    text = render_text(plan, compact=True)
    lines = text.splitlines()
    for change in plan.changes:
        (line,) = [line for line in lines if f" {change.batch} " in line + " "]
        assert line.startswith("    ")
    assert "  dogs: 1 to forget" in lines
    assert "  kitten_labeling: 12 to create, 12 to finalize, 13 to prioritize" in lines
    assert lines.index("  dogs: 1 to forget") < lines.index(
        "  kitten_labeling: 12 to create, 12 to finalize, 13 to prioritize"
    )
    assert any(re.search(r" kitten_2020-09 +prioritize 20 -> 30$", line) for line in lines)
    # The summary line is the same as the full plan's.
    assert lines[-1] == render_text(plan).splitlines()[-1]
    assert len(lines) < len(render_text(plan).splitlines()) / 2


def test_compact_markdown_counts_per_project_and_one_line_per_batch() -> None:
    plan = series_plan()
    text = render_markdown(plan, compact=True)
    assert "- `kitten_labeling`: 12 to create, 12 to finalize, 13 to prioritize" in text
    assert "- `-/` `dogs_old`: forget" in text
    assert "| --- |" not in text
    assert text.splitlines()[0] == render_markdown(plan).splitlines()[0]


def test_compact_markdown_of_a_big_plan_stays_under_the_limit() -> None:
    plan = series_plan(months=5000)
    text = render_markdown(plan, compact=True, limit=MIN_LIMIT * 2)
    assert len(text) < MIN_LIMIT * 2
    assert "more lines not shown" in text


def deceptive_plan() -> Plan:
    """Every field a view shows holding a terminal escape, a bidi control or a zero-width space."""
    osc = "\x1b]52;c;ZXZpbA==\x07"
    return Plan(
        changes=(
            create(f"new{osc}", priority=20, project="p\u202eq"),
            Change(
                batch="meta\u200b",
                project="p",
                actions=(Action.SET_METADATA,),
                before=BatchSide(status=STAGING, priority=20, callback=None),
                after=BatchSide(status=STAGING, priority=20, callback=None),
                metadata=(MetadataEdit(f"k{osc}", "a\x9b2J", f"b{osc}", True, True, False),),
            ),
        ),
        findings=(
            Finding(
                Severity.ERROR,
                FindingCode.PROJECT_CHANGED,
                f"c{osc}",
                "p\x7f",
                (("live_project", f"other{osc}"),),
                Position(f"dir/{osc}.yaml", 1, 1),
            ),
        ),
        unmanaged=(
            LiveBatch(name=f"live{osc}", project="p\u2066", status=IN_PROGRESS),
            LiveBatch(name="rtl\u202eexe.txt", project="p", status=IN_PROGRESS),
        ),
        completed_with_priority=(f"done{osc}",),
        targets=(f"t{osc}",),
    )


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_no_view_prints_control_bidi_or_zero_width_characters(fmt: str) -> None:
    from batchplan.escaping import UNSAFE

    plan = deceptive_plan()
    shown = render_text(plan, verbose=True) if fmt == "text" else render_markdown(plan)

    for line in shown.split("\n"):
        assert UNSAFE.search(line) is None, repr(line)
    unescaped = shown.replace("\\\\", "\\")  # Markdown doubles a backslash
    assert "new\\x1b]52;c;ZXZpbA==\\x07" in unescaped
    if fmt == "text":
        # Live names of unmanaged batches, listed by --verbose.
        assert "live\\x1b]52;c;ZXZpbA==\\x07" in shown
        assert "rtl\\u202eexe.txt" in shown


def test_coloured_text_keeps_its_own_styles_but_escapes_names() -> None:
    shown = render_text(deceptive_plan(), verbose=True, color=True)

    assert "\x1b[1m" in shown  # batchplan's own bold
    assert "\x1b]" not in shown and "\x07" not in shown
