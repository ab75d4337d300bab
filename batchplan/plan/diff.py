"""The reconciliation rules: ``(desired, live, state) -> Plan``. Pure: no I/O, no clock.

Each rule is one row of the rules table in docs/reconciliation.md; the
docstrings of the helpers below name the row they implement.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from batchplan.escaping import escaped
from batchplan.model import (
    COMPLETED,
    IN_PROGRESS,
    LINEAGE_KEY,
    STAGING,
    BatchRecord,
    Config,
    DesiredBatch,
    LiveBatch,
    LiveView,
    known_status,
    name_problem,
    same_callback,
)
from batchplan.plan.changes import (
    Action,
    BatchSide,
    Change,
    ChangeReason,
    Finding,
    FindingCode,
    MetadataEdit,
    Origin,
    Plan,
    Severity,
    natural_key,
)

_FLAGS = ("calibration_batch", "self_label_batch")


def _origin(desired: DesiredBatch) -> Origin | None:
    if desired.position is None:
        return None
    return Origin(desired.position.file, desired.position.line, tuple(desired.each))


def _error(code: FindingCode, desired: DesiredBatch, **facts: str) -> Finding:
    return Finding(
        Severity.ERROR, code, desired.name, desired.project, tuple(facts.items()), desired.position
    )


def _callback_conflict(desired: DesiredBatch, live: LiveBatch) -> Finding | None:
    """Callback set in config and different from live: it cannot change after creation.

    When the configured callback came from a variable, the live value is not
    recorded either: the two differ, but either may hold a token.
    """
    if desired.callback is None or same_callback(desired.callback, live.callback):
        return None
    templated = desired.callback_shown is not None and desired.callback_shown != desired.callback
    facts = {"config": desired.callback_shown or ""}
    if not templated:
        facts["live"] = live.callback or ""
    return _error(FindingCode.CALLBACK_CHANGED, desired, **facts)


def _flag_conflicts(desired: DesiredBatch, record: BatchRecord | None) -> list[Finding]:
    """A create-time flag that differs from the one batchplan created the batch with."""
    if record is None:
        return []
    found = []
    for flag in _FLAGS:
        recorded: bool | None = getattr(record, flag)
        wanted: bool = getattr(desired, flag)
        if recorded is not None and recorded != wanted:
            found.append(
                _error(
                    FindingCode.CREATE_FLAG_CHANGED,
                    desired,
                    flag=flag,
                    recorded=str(recorded).lower(),
                    config=str(wanted).lower(),
                )
            )
    return found


def _templated(desired: DesiredBatch, key: str) -> bool:
    """True when the configured value of ``key`` came from a variable."""
    shown = desired.metadata_shown or {}
    expanded = desired.metadata or {}
    return bool(shown.get(key) != expanded.get(key))


def _metadata_for_create(desired: DesiredBatch) -> tuple[MetadataEdit, ...]:
    """A create sends the configured keys; a key configured null is simply not sent."""
    shown = desired.metadata_shown or {}
    return tuple(
        MetadataEdit(key, after=value, before_present=False)
        for key, value in sorted(shown.items())
        if value is not None
    )


def _metadata_edits(
    desired: DesiredBatch, live: LiveBatch
) -> tuple[tuple[MetadataEdit, ...], dict[str, Any] | None]:
    """Configured keys only: a missing or differing key is set, a key configured null removed.

    Returns the edits (shown form) and the whole object ``setMetadata`` sends:
    the live metadata with the configured keys applied. Keys the config does
    not name are kept as they are and never shown.
    """
    if desired.metadata is None:
        return (), None
    current = dict(live.metadata or {})
    shown = desired.metadata_shown or desired.metadata
    edits = []
    for key in sorted(desired.metadata):
        wanted = desired.metadata[key]
        present = key in current
        if wanted is None:
            if not present:
                continue
        elif present and current[key] == wanted:
            continue
        hidden = _templated(desired, key)
        edits.append(
            MetadataEdit(
                key,
                before=None if hidden or not present else current[key],
                after=shown.get(key),
                before_present=present,
                after_present=wanted is not None,
                before_hidden=hidden and present,
            )
        )
    if not edits:
        return (), None
    send = dict(current)
    for key, wanted in desired.metadata.items():
        if wanted is None:
            send.pop(key, None)
        else:
            send[key] = wanted
    return tuple(edits), send


def _owned(desired: DesiredBatch, lineage: str) -> DesiredBatch:
    """The batch with the ownership key among the metadata its create sends."""
    metadata = {**(desired.metadata or {}), LINEAGE_KEY: lineage}
    shown = {**(desired.metadata_shown or desired.metadata or {}), LINEAGE_KEY: lineage}
    return replace(desired, metadata=metadata, metadata_shown=shown)


def _create(desired: DesiredBatch, owner: str | None) -> Change:
    """In config, not live: create, then prioritize, then finalize if created staging.

    With ownership (``owner`` is the state's lineage) the create carries the
    ownership key among its metadata: no extra call.
    """
    if owner is not None:
        desired = _owned(desired, owner)
    actions = [Action.CREATE]
    if desired.priority is not None:
        actions.append(Action.PRIORITIZE)
    if desired.finalized is True:
        actions.append(Action.FINALIZE)
    return Change(
        batch=desired.name,
        project=desired.project,
        actions=tuple(actions),
        before=None,
        after=BatchSide(
            status=IN_PROGRESS if desired.finalized else STAGING,
            priority=desired.priority,
            callback=desired.callback_shown,
        ),
        reasons=(ChangeReason.NOT_LIVE,),
        calibration_batch=desired.calibration_batch,
        self_label_batch=desired.self_label_batch,
        metadata=_metadata_for_create(desired),
        origin=_origin(desired),
        desired=desired,
    )


def _claim(
    live: LiveBatch, edits: tuple[MetadataEdit, ...], send: dict[str, Any] | None, owner: str
) -> tuple[tuple[MetadataEdit, ...], dict[str, Any] | None]:
    """Add the ownership key to the one ``setMetadata`` call, when the batch lacks it."""
    current = live.metadata or {}
    if current.get(LINEAGE_KEY) == owner:
        return edits, send
    claim = MetadataEdit(
        LINEAGE_KEY,
        before=current.get(LINEAGE_KEY),
        after=owner,
        before_present=LINEAGE_KEY in current,
    )
    whole = dict(send if send is not None else current)
    whole[LINEAGE_KEY] = owner
    return tuple(sorted((*edits, claim), key=lambda edit: edit.key)), whole


def _left_alone(
    desired: DesiredBatch,
    live: LiveBatch,
    record: BatchRecord | None,
    findings: list[Finding],
) -> Change | None:
    """Live in a status batchplan does not know (``paused``, ``cancelled``...): no call.

    The batch is adopted into state if it is not there (no call either);
    whatever the config asks of it is a warning saying it was left alone.
    """
    asked = []
    if _metadata_edits(desired, live)[0]:
        asked.append("set metadata")
    known_priority = record.priority if record is not None else None
    if desired.priority is not None and known_priority != desired.priority:
        asked.append("prioritize")
    if desired.finalized is True:
        asked.append("finalize")
    if asked:
        findings.append(
            Finding(
                Severity.WARNING,
                FindingCode.STATUS_LEFT_ALONE,
                desired.name,
                desired.project,
                (("status", live.status), ("asked", ", ".join(asked))),
                desired.position,
            )
        )
    if record is not None:
        return None
    callback = desired.callback_shown if desired.callback is not None else live.callback
    side = BatchSide(status=live.status, priority=None, callback=callback)
    return Change(
        batch=desired.name,
        project=desired.project,
        actions=(Action.ADOPT,),
        before=side,
        after=side,
        reasons=(ChangeReason.NOT_IN_STATE,),
        origin=_origin(desired),
        desired=desired,
    )


def _update(
    desired: DesiredBatch,
    live: LiveBatch,
    record: BatchRecord | None,
    reassert_priority: bool,
    completed_with_priority: list[str],
    findings: list[Finding],
    owner: str | None = None,
) -> Change | None:
    """In config and live in the right project: adopt, set metadata, prioritize, finalize."""
    if not known_status(live.status):
        return _left_alone(desired, live, record, findings)
    actions: list[Action] = []
    reasons: list[ChangeReason] = []
    known_priority = record.priority if record is not None else None
    if record is None:
        actions.append(Action.ADOPT)
        reasons.append(ChangeReason.NOT_IN_STATE)

    edits, send = _metadata_edits(desired, live)
    if owner is not None:
        edits, send = _claim(live, edits, send, owner)
    if edits:
        actions.append(Action.SET_METADATA)
        reasons.append(ChangeReason.METADATA_DIFFERS)

    after_priority = known_priority
    if desired.priority is not None:
        if live.status == COMPLETED:
            completed_with_priority.append(desired.name)
        elif known_priority != desired.priority or reassert_priority:
            actions.append(Action.PRIORITIZE)
            after_priority = desired.priority
            if known_priority is None:
                reasons.append(ChangeReason.PRIORITY_UNKNOWN)
            elif known_priority != desired.priority:
                reasons.append(ChangeReason.PRIORITY_DIFFERS)
            else:
                reasons.append(ChangeReason.PRIORITY_REASSERTED)

    after_status = live.status
    if desired.finalized is True and live.status == STAGING:
        actions.append(Action.FINALIZE)
        after_status = IN_PROGRESS
        reasons.append(ChangeReason.FINALIZE_STAGING)
    elif desired.finalized is False and live.status in (IN_PROGRESS, COMPLETED):
        findings.append(
            Finding(
                Severity.WARNING,
                FindingCode.ALREADY_FINALIZED,
                desired.name,
                desired.project,
                (("status", live.status),),
                desired.position,
            )
        )

    if not actions:
        return None
    # The live callback equals the configured one here; show the configured
    # form, which keeps ``${NAME}`` instead of a token the variable held.
    callback = desired.callback_shown if desired.callback is not None else live.callback
    return Change(
        batch=desired.name,
        project=desired.project,
        actions=tuple(actions),
        before=BatchSide(status=live.status, priority=known_priority, callback=callback),
        after=BatchSide(status=after_status, priority=after_priority, callback=callback),
        reasons=tuple(reasons),
        metadata=edits,
        origin=_origin(desired),
        desired=desired,
        metadata_to_send=send,
    )


def _forget(record: BatchRecord, live: LiveBatch | None) -> Change:
    """In state, not in config: dropped from state; the batch itself stays (no delete)."""
    status = live.status if live is not None else None
    return Change(
        batch=record.name,
        project=record.project,
        actions=(Action.FORGET,),
        before=BatchSide(status=status, priority=record.priority),
        after=None,
        reasons=(ChangeReason.NOT_IN_CONFIG,),
    )


def _project_conflicts(config: Config, live: LiveView) -> dict[str, Finding]:
    """A project that does not exist: one conflict per project, naming its batches."""
    found = {}
    for project in sorted(live.missing_projects):
        names = sorted((b.name for b in config.batches if b.project == project), key=natural_key)
        if not names:
            continue
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        found[project] = Finding(
            Severity.ERROR, FindingCode.PROJECT_MISSING, None, project, (("used_by", shown),)
        )
    return found


def _other_owner(live: LiveBatch, lineage: str | None) -> str | None:
    """The lineage of another state that wrote its ownership key into this batch, or None."""
    owner = (live.metadata or {}).get(LINEAGE_KEY)
    if lineage is None or not isinstance(owner, str) or owner == lineage:
        return None
    return owner


def _batch_conflicts(
    desired: DesiredBatch,
    live: LiveBatch | None,
    record: BatchRecord | None,
    lineage: str | None = None,
) -> list[Finding]:
    if live is None:
        if record is None:
            return []
        return [_error(FindingCode.RECORDED_MISSING, desired)]
    if live.project != desired.project:
        return [_error(FindingCode.PROJECT_CHANGED, desired, live_project=live.project)]
    other = _other_owner(live, lineage)
    if other is not None:
        return [_error(FindingCode.MANAGED_ELSEWHERE, desired, lineage=other)]
    found = _flag_conflicts(desired, record)
    callback = _callback_conflict(desired, live)
    if callback is not None:
        found.insert(0, callback)
    return found


def _same_fields(desired: DesiredBatch, record: BatchRecord, live: LiveBatch | None) -> bool:
    """Every field known on both sides agrees: what a renamed copy of a batch looks like.

    Unknown values (a priority never sent, the flags of an adopted batch, a
    batch not seen live) do not count against a match.
    """
    known = record.priority is not None and desired.priority is not None
    if known and record.priority != desired.priority:
        return False
    for flag in _FLAGS:
        recorded: bool | None = getattr(record, flag)
        if recorded is not None and recorded != getattr(desired, flag):
            return False
    if live is None:
        return True
    if desired.callback is not None and not same_callback(desired.callback, live.callback):
        return False
    live_metadata = live.metadata or {}
    return all(live_metadata.get(key) == value for key, value in (desired.metadata or {}).items())


def _rename_hints(
    changes: list[Change], state: Mapping[str, BatchRecord], live: LiveView
) -> list[Finding]:
    """A lone forget and a lone create in one project, with the same fields: a likely rename.

    Only then is it worth a warning (a name cannot change, so the old batch
    stays live). Several forgets and creates in one project, as when a
    ``for_each`` window moves, are a series rolling on, not renames.
    """
    forgets: dict[str, list[Change]] = {}
    creates: dict[str, list[Change]] = {}
    for change in changes:
        if Action.FORGET in change.actions:
            forgets.setdefault(change.project, []).append(change)
        elif Action.CREATE in change.actions:
            creates.setdefault(change.project, []).append(change)
    hints = []
    for project, dropped in forgets.items():
        created = creates.get(project, [])
        if len(dropped) != 1 or len(created) != 1:
            continue
        old, new = dropped[0], created[0]
        record = state.get(old.batch)
        if record is None or new.desired is None:
            continue
        if not _same_fields(new.desired, record, live.batches.get(old.batch)):
            continue
        hints.append(
            Finding(
                Severity.WARNING,
                FindingCode.NAME_CANNOT_CHANGE,
                old.batch,
                project,
                (("created", new.batch),),
            )
        )
    return hints


def diff(
    config: Config,
    live: LiveView,
    state: Mapping[str, BatchRecord],
    *,
    targets: Collection[str] = (),
    reassert_priority: bool = False,
    lineage: str | None = None,
) -> Plan:
    """Compare desired, live and state; return the plan that reconciles them.

    With ``targets``, only those batches get changes; errors elsewhere are
    demoted to warnings, and unmanaged batches are not listed.

    ``lineage`` is the lineage the state keeps: a configured batch whose
    ownership key names another one is a conflict, and with ``settings:
    {ownership: true}`` every created or adopted batch gets this one.
    """
    target_set = frozenset(targets)
    owner = lineage if config.settings.ownership else None

    def targeted(name: str | None) -> bool:
        return not target_set or name in target_set

    changes: list[Change] = []
    findings: list[Finding] = []
    completed_with_priority: list[str] = []

    project_conflicts = _project_conflicts(config, live)
    for project, conflict in project_conflicts.items():
        if any(targeted(b.name) for b in config.batches if b.project == project):
            findings.append(conflict)
        else:
            findings.append(_demoted(conflict))

    desired_names = set()
    for desired in config.batches:
        desired_names.add(desired.name)
        if desired.project in project_conflicts:
            continue
        live_batch = live.batches.get(desired.name)
        record = state.get(desired.name)
        batch_conflicts = _batch_conflicts(desired, live_batch, record, lineage)
        if batch_conflicts:
            if targeted(desired.name):
                findings.extend(batch_conflicts)
            else:
                findings.extend(_demoted(c) for c in batch_conflicts)
            continue
        if not targeted(desired.name):
            continue
        if live_batch is None:
            changes.append(_create(desired, owner))
            continue
        change = _update(
            desired, live_batch, record, reassert_priority, completed_with_priority, findings, owner
        )
        if change is not None:
            changes.append(change)

    for name, record in state.items():
        if name not in desired_names and targeted(name):
            changes.append(_forget(record, live.batches.get(name)))
    findings.extend(_rename_hints(changes, state, live))

    unmanaged: tuple[LiveBatch, ...] = ()
    if not target_set:
        unmanaged = tuple(
            sorted(
                (
                    b
                    for b in live.batches.values()
                    if b.project in live.listed_projects
                    and b.name not in desired_names
                    and b.name not in state
                ),
                key=lambda b: (b.project, natural_key(b.name)),
            )
        )
        findings.extend(_unmanageable(unmanaged))

    return Plan(
        changes=tuple(sorted(changes, key=lambda c: natural_key(c.batch))),
        findings=tuple(
            sorted(
                findings,
                key=lambda f: (
                    f.severity is not Severity.ERROR,
                    natural_key(f.batch or ""),
                    f.project,
                    f.code.value,
                ),
            )
        ),
        unmanaged=unmanaged,
        completed_with_priority=tuple(sorted(completed_with_priority, key=natural_key)),
        targets=tuple(sorted(target_set, key=natural_key)),
        reassert_priority=reassert_priority,
    )


def _unmanageable(unmanaged: tuple[LiveBatch, ...]) -> list[Finding]:
    """A live name no config could declare: a note naming it escaped, on one line."""
    found = []
    for batch in unmanaged:
        problem = name_problem(batch.name)
        if problem is not None:
            found.append(
                Finding(
                    Severity.WARNING,
                    FindingCode.NAME_UNMANAGEABLE,
                    None,
                    batch.project,
                    (("name", escaped(batch.name)), ("problem", problem)),
                )
            )
    return found


def _demoted(conflict: Finding) -> Finding:
    return replace(conflict, severity=Severity.WARNING, outside_targets=True)
