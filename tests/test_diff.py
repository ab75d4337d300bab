"""One test per row of the rules table in docs/reconciliation.md: (desired, live, state) -> plan."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from batchplan.model import (
    COMPLETED,
    IN_PROGRESS,
    STAGING,
    BatchRecord,
    Config,
    DesiredBatch,
    LiveBatch,
    LiveView,
    Position,
    Settings,
)
from batchplan.plan.changes import Action, FindingCode, Plan
from batchplan.plan.diff import diff
from batchplan.plan.words import finding_message

P = "kitten_labeling"


def desired(name: str = "b1", **fields: object) -> DesiredBatch:
    fields.setdefault("project", P)
    if "callback" in fields and "callback_shown" not in fields:
        fields["callback_shown"] = fields["callback"]
    return DesiredBatch(name=name, position=Position("b.yaml", 3, 5), **fields)  # type: ignore[arg-type]


def live(name: str = "b1", status: str = STAGING, **fields: object) -> LiveBatch:
    fields.setdefault("project", P)
    return LiveBatch(name=name, status=status, **fields)  # type: ignore[arg-type]


def record(name: str = "b1", **fields: object) -> BatchRecord:
    fields.setdefault("project", P)
    return BatchRecord(name=name, **fields)  # type: ignore[arg-type]


def run(
    want: Iterable[DesiredBatch],
    have: Iterable[LiveBatch] = (),
    state: Iterable[BatchRecord] = (),
    *,
    missing_projects: Iterable[str] = (),
    **kwargs: object,
) -> Plan:
    want = tuple(want)
    have = {b.name: b for b in have}
    records = {r.name: r for r in state}
    names = {b.name for b in want} | set(records)
    view = LiveView(
        batches=have,
        absent=frozenset(n for n in names if n not in have),
        listed_projects=frozenset(
            {b.project for b in want} | {r.project for r in records.values()}
        ),
        missing_projects=frozenset(missing_projects),
    )
    return diff(Config(batches=want), view, records, **kwargs)  # type: ignore[arg-type]


def only_change(plan: Plan) -> tuple[Action, ...]:
    assert not plan.conflicts, plan.conflicts
    assert len(plan.changes) == 1, plan.changes
    return plan.changes[0].actions


def test_create_plain() -> None:
    assert only_change(run([desired()])) == (Action.CREATE,)


def test_create_then_prioritize_then_finalize_if_staging() -> None:
    plan = run([desired(priority=30, finalized=True)])
    assert only_change(plan) == (Action.CREATE, Action.PRIORITIZE, Action.FINALIZE)
    change = plan.changes[0]
    assert change.finalize_if_staging
    summary = plan.summary
    assert (summary.create, summary.prioritize, summary.finalize) == (1, 1, 1)
    assert summary.api_calls == 3
    # A new batch's priority is not "from unknown": nothing existed before.
    assert summary.prioritize_from_unknown == 0


def test_create_finalized_false_does_not_finalize() -> None:
    assert only_change(run([desired(finalized=False)])) == (Action.CREATE,)


def test_adopt_live_batch_not_in_state() -> None:
    plan = run([desired()], [live(status=IN_PROGRESS)])
    assert only_change(plan) == (Action.ADOPT,)
    assert plan.summary.api_calls == 0
    assert plan.summary.adopt == 1


def test_adopt_with_priority_is_prioritize_from_unknown() -> None:
    plan = run([desired(priority=20)], [live(status=IN_PROGRESS)])
    assert only_change(plan) == (Action.ADOPT, Action.PRIORITIZE)
    assert plan.changes[0].before is not None
    assert plan.changes[0].before.priority is None
    assert plan.summary.prioritize_from_unknown == 1


def test_recorded_batch_missing_is_conflict() -> None:
    plan = run([desired()], [], [record()])
    assert [c.code for c in plan.conflicts] == [FindingCode.RECORDED_MISSING]
    assert plan.changes == ()


def test_name_live_in_another_project_is_conflict() -> None:
    plan = run([desired()], [live(project="dog_labeling")])
    assert [c.code for c in plan.conflicts] == [FindingCode.PROJECT_CHANGED]
    assert "dog_labeling" in finding_message(plan.conflicts[0])
    assert plan.changes == ()


def test_missing_project_is_one_conflict_for_its_batches() -> None:
    plan = run([desired("a"), desired("b")], missing_projects=[P])
    assert [c.code for c in plan.conflicts] == [FindingCode.PROJECT_MISSING]
    assert "a, b" in finding_message(plan.conflicts[0])
    assert plan.changes == ()


def test_callback_differs_is_conflict() -> None:
    plan = run([desired(callback="https://a.example/x")], [live(callback="https://b.example/y")])
    assert [c.code for c in plan.conflicts] == [FindingCode.CALLBACK_CHANGED]
    assert "https://b.example/y" in finding_message(plan.conflicts[0])


def test_callback_from_variable_never_shows_either_value() -> None:
    want = desired(callback="https://hook/secret-token", callback_shown="${HOOK}")
    plan = run([want], [live(callback="https://hook/other-token")])
    message = finding_message(plan.conflicts[0])
    assert "${HOOK}" in message
    assert "secret-token" not in message and "other-token" not in message


@pytest.mark.parametrize("config_value", [None, ""])
@pytest.mark.parametrize("live_value", [None, ""])
def test_unset_empty_and_null_callbacks_are_equal(
    config_value: str | None, live_value: str | None
) -> None:
    plan = run([desired(callback=config_value)], [live(callback=live_value)], [record()])
    assert plan.conflicts == ()
    assert plan.changes == ()


def test_unset_callback_has_no_opinion() -> None:
    plan = run([desired()], [live(callback="ops@example.com")], [record()])
    assert plan.conflicts == () and plan.changes == ()


@pytest.mark.parametrize("flag", ["calibration_batch", "self_label_batch"])
def test_create_time_flag_differs_from_state_is_conflict(flag: str) -> None:
    plan = run([desired(**{flag: True})], [live()], [record(**{flag: False})])
    assert [c.code for c in plan.conflicts] == [FindingCode.CREATE_FLAG_CHANGED]
    assert flag in finding_message(plan.conflicts[0])


def test_create_time_flag_unknown_for_adopted_batch_is_no_conflict() -> None:
    plan = run([desired(calibration_batch=True)], [live()], [record()])
    assert plan.conflicts == ()


def test_finalize_when_staging() -> None:
    plan = run([desired(finalized=True)], [live(status=STAGING)], [record()])
    assert only_change(plan) == (Action.FINALIZE,)
    assert not plan.changes[0].finalize_if_staging


def test_finalized_false_but_live_in_progress_warns_without_call() -> None:
    plan = run([desired(finalized=False)], [live(status=IN_PROGRESS)], [record()])
    assert plan.changes == ()
    assert [w.code for w in plan.warnings] == [FindingCode.ALREADY_FINALIZED]


@pytest.mark.parametrize("status", [STAGING, IN_PROGRESS, COMPLETED])
def test_finalized_unset_has_no_opinion(status: str) -> None:
    plan = run([desired()], [live(status=status)], [record()])
    assert plan.changes == () and plan.warnings == ()


def test_prioritize_known_previous() -> None:
    plan = run([desired(priority=30)], [live(status=IN_PROGRESS)], [record(priority=20)])
    assert only_change(plan) == (Action.PRIORITIZE,)
    change = plan.changes[0]
    assert change.before is not None and change.after is not None
    assert (change.before.priority, change.after.priority) == (20, 30)
    assert plan.summary.prioritize_from_unknown == 0


def test_prioritize_unknown_previous() -> None:
    plan = run([desired(priority=30)], [live(status=IN_PROGRESS)], [record()])
    assert only_change(plan) == (Action.PRIORITIZE,)
    assert plan.summary.prioritize_from_unknown == 1


def test_same_priority_is_no_change_unless_reasserted() -> None:
    args = ([desired(priority=30)], [live(status=IN_PROGRESS)], [record(priority=30)])
    assert run(*args).changes == ()
    assert only_change(run(*args, reassert_priority=True)) == (Action.PRIORITIZE,)


def test_completed_batch_priority_is_a_note_not_a_call() -> None:
    plan = run(
        [desired(priority=30)],
        [live(status=COMPLETED)],
        [record(priority=10)],
        reassert_priority=True,
    )
    assert plan.changes == ()
    assert plan.completed_with_priority == ("b1",)


def test_unset_priority_is_not_managed() -> None:
    plan = run([desired()], [live(status=IN_PROGRESS)], [record(priority=25)])
    assert plan.changes == ()


def test_forget_in_state_not_in_config() -> None:
    plan = run([], [live(status=IN_PROGRESS)], [record()])
    assert only_change(plan) == (Action.FORGET,)
    assert plan.summary.forget == 1
    assert plan.summary.api_calls == 0


def test_unmanaged_batches_are_listed_not_changed() -> None:
    plan = run([desired("mine")], [live("mine"), live("theirs")], [record("mine")])
    assert plan.changes == ()
    assert [b.name for b in plan.unmanaged] == ["theirs"]


def test_order_within_a_batch_is_adopt_prioritize_finalize() -> None:
    plan = run([desired(priority=20, finalized=True)], [live(status=STAGING)])
    assert only_change(plan) == (Action.ADOPT, Action.PRIORITIZE, Action.FINALIZE)


def test_targets_restrict_changes_and_demote_other_conflicts() -> None:
    plan = run(
        [desired("a"), desired("b", priority=20), desired("c")],
        [live("b", status=IN_PROGRESS), live("c", project="elsewhere"), live("x")],
        [record("b"), record("gone")],
        targets=["a"],
    )
    assert [c.batch for c in plan.changes] == ["a"]
    assert plan.conflicts == ()
    assert [w.code for w in plan.warnings] == [FindingCode.PROJECT_CHANGED]
    assert plan.warnings[0].outside_targets
    assert plan.unmanaged == ()


def test_target_includes_forget() -> None:
    plan = run([], [], [record("gone"), record("kept")], targets=["gone"])
    assert [(c.batch, c.actions) for c in plan.changes] == [("gone", (Action.FORGET,))]


def test_changes_are_sorted_by_name() -> None:
    plan = run([desired("c"), desired("a"), desired("b")])
    assert [c.batch for c in plan.changes] == ["a", "b", "c"]


def test_matching_callback_from_variable_is_shown_as_written() -> None:
    want = desired(callback="https://hook/secret-token", callback_shown="${HOOK}", priority=20)
    plan = run([want], [live(callback="https://hook/secret-token")], [record()])
    change = plan.changes[0]
    assert change.before is not None and change.after is not None
    assert change.before.callback == change.after.callback == "${HOOK}"


# --- metadata: only the configured keys are compared ---------------------------


def meta(
    name: str = "b1", metadata: dict[str, object] | None = None, **fields: object
) -> DesiredBatch:
    return desired(name, metadata=metadata, metadata_shown=metadata, **fields)


def test_metadata_unmanaged_when_config_has_none() -> None:
    plan = run([meta(metadata=None)], [live(metadata={"team": "a"})], [record()])
    assert plan.changes == ()


def test_metadata_equal_on_configured_keys_is_no_change() -> None:
    plan = run([meta(metadata={"team": "a"})], [live(metadata={"team": "a", "x": 1})], [record()])
    assert plan.changes == ()


def test_metadata_differing_key_sets_the_live_object_plus_the_key() -> None:
    plan = run([meta(metadata={"team": "b"})], [live(metadata={"team": "a", "x": 1})], [record()])
    (change,) = plan.changes
    assert change.actions == (Action.SET_METADATA,)
    assert [(e.key, e.before, e.after) for e in change.metadata] == [("team", "a", "b")]
    assert change.metadata_to_send == {"team": "b", "x": 1}


def test_metadata_missing_key_is_set_and_none_live_counts_as_empty() -> None:
    plan = run([meta(metadata={"team": "b"})], [live(metadata=None)], [record()])
    (change,) = plan.changes
    assert change.metadata[0].before_present is False
    assert change.metadata_to_send == {"team": "b"}


def test_metadata_key_configured_null_is_removed_when_live() -> None:
    plan = run([meta(metadata={"old": None})], [live(metadata={"old": 1, "x": 2})], [record()])
    (change,) = plan.changes
    assert change.metadata[0].after_present is False
    assert change.metadata_to_send == {"x": 2}


def test_metadata_key_configured_null_and_absent_is_no_change() -> None:
    plan = run([meta(metadata={"old": None})], [live(metadata={"x": 2})], [record()])
    assert plan.changes == ()


def test_metadata_keys_not_in_config_are_never_shown() -> None:
    plan = run([meta(metadata={"a": 1})], [live(metadata={"a": 0, "b": 5, "c": 6})], [record()])
    assert [e.key for e in plan.changes[0].metadata] == ["a"]


def test_metadata_runs_after_adopt_and_before_prioritize_and_finalize() -> None:
    plan = run([meta(metadata={"a": 1}, priority=20, finalized=True)], [live(metadata={"a": 0})])
    assert plan.changes[0].actions == (
        Action.ADOPT,
        Action.SET_METADATA,
        Action.PRIORITIZE,
        Action.FINALIZE,
    )


def test_metadata_create_carries_the_configured_keys() -> None:
    plan = run([meta(metadata={"a": 1, "gone": None}, calibration_batch=True)])
    (change,) = plan.changes
    assert [(e.key, e.after) for e in change.metadata] == [("a", 1)]
    assert change.calibration_batch is True
    assert change.origin is not None and change.origin.line == 3


def test_metadata_from_a_variable_hides_the_live_value() -> None:
    want = desired(metadata={"tok": "s3cret"}, metadata_shown={"tok": "${TOK}"})
    plan = run([want], [live(metadata={"tok": "old-secret"})], [record()])
    (edit,) = plan.changes[0].metadata
    assert edit.before_hidden and edit.before is None and edit.after == "${TOK}"


# --- ordering and hints ----------------------------------------------------------


def test_changes_sort_naturally() -> None:
    plan = run([desired("ff10"), desired("ff2"), desired("ff1")])
    assert [c.batch for c in plan.changes] == ["ff1", "ff2", "ff10"]


def test_a_rename_gets_a_hint_that_names_cannot_change() -> None:
    plan = run([desired("new_name")], [live("old_name")], [record("old_name")])
    assert [w.code for w in plan.warnings] == [FindingCode.NAME_CANNOT_CHANGE]
    assert "new_name" in finding_message(plan.warnings[0])


def test_recorded_missing_suggests_state_rm() -> None:
    plan = run([desired("b1")], [], [record("b1")])
    assert "batchplan state rm b1" in finding_message(plan.conflicts[0])


# -- real accounts: statuses beyond the three, names, ownership -----------------


@pytest.mark.parametrize("status", ["paused", "cancelled", "weird_new_status"])
def test_a_status_batchplan_does_not_know_gets_no_call_and_a_left_alone_warning(
    status: str,
) -> None:
    plan = run(
        [
            desired(
                priority=20, finalized=True, metadata={"team": "a"}, metadata_shown={"team": "a"}
            )
        ],
        [live(status=status)],
        [record(priority=None)],
    )
    assert plan.changes == ()
    assert [w.code for w in plan.warnings] == [FindingCode.STATUS_LEFT_ALONE]
    message = finding_message(plan.warnings[0])
    assert message.startswith(f"status {status}: left alone")
    assert "set metadata, prioritize, finalize" in message


def test_a_batch_in_an_unknown_status_asked_nothing_is_adopted_silently() -> None:
    plan = run([desired()], [live(status="paused")])
    assert only_change(plan) == (Action.ADOPT,)
    assert plan.warnings == ()


def test_a_live_name_no_config_can_hold_is_unmanaged_with_an_escaped_note() -> None:
    bad = live(name="x\n  - name: y", project=P)
    plan = run([desired()], [live(), bad])
    assert [b.name for b in plan.unmanaged] == ["x\n  - name: y"]
    (note,) = [w for w in plan.warnings if w.code is FindingCode.NAME_UNMANAGEABLE]
    assert '"x\\n  - name: y"' in finding_message(note)
    assert "\n" not in finding_message(note)


def owned_config(*batches: DesiredBatch) -> Config:
    return Config(batches=batches, settings=Settings(ownership=True))


def test_ownership_rides_on_create_and_claims_an_adopted_batch_in_one_set_metadata() -> None:
    view = LiveView(
        batches={"old": live(name="old", metadata={"team": "a"})},
        absent=frozenset({"new"}),
        listed_projects=frozenset({P}),
    )
    plan = diff(owned_config(desired("new"), desired("old")), view, {}, lineage="L1")
    changes = {c.batch: c for c in plan.changes}
    assert changes["new"].actions == (Action.CREATE,)
    assert changes["new"].desired is not None
    assert changes["new"].desired.metadata == {"batchplan.lineage": "L1"}
    assert changes["old"].actions == (Action.ADOPT, Action.SET_METADATA)
    assert changes["old"].metadata_to_send == {"team": "a", "batchplan.lineage": "L1"}


def test_another_lineage_is_a_conflict_with_or_without_the_setting() -> None:
    other = live(metadata={"batchplan.lineage": "L2"})
    for config in (owned_config(desired()), Config(batches=(desired(),))):
        view = LiveView(batches={"b1": other}, listed_projects=frozenset({P}))
        plan = diff(config, view, {}, lineage="L1")
        assert [c.code for c in plan.conflicts] == [FindingCode.MANAGED_ELSEWHERE]
        assert "managed by another state, lineage L2" in finding_message(plan.conflicts[0])


def test_without_the_setting_the_ownership_key_is_never_written_nor_compared() -> None:
    mine = live(metadata={"batchplan.lineage": "L1", "team": "a"})
    view = LiveView(batches={"b1": mine}, listed_projects=frozenset({P}))
    config = Config(batches=(desired(metadata={"team": "a"}, metadata_shown={"team": "a"}),))
    plan = diff(config, view, {"b1": record()}, lineage="L1")
    assert plan.changes == () and plan.conflicts == ()
