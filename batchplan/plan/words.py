"""How the plan's codes read in English: one place, shared by every format.

The plan holds codes and shown values; these functions word them. JSON
carries the same sentences next to the codes, for people reading it.
"""

from __future__ import annotations

import json
from typing import Any

from batchplan.diagnostics import Diagnostic
from batchplan.plan.changes import (
    ChangeReason,
    Finding,
    FindingCode,
    Limit,
    LimitBreach,
    MetadataEdit,
    Plan,
    Summary,
)

REASONS = {
    ChangeReason.NOT_LIVE: "in config, not live",
    ChangeReason.NOT_IN_STATE: "live, not in state",
    ChangeReason.METADATA_DIFFERS: "metadata differs",
    ChangeReason.PRIORITY_UNKNOWN: "priority unknown",
    ChangeReason.PRIORITY_DIFFERS: "priority differs",
    ChangeReason.PRIORITY_REASSERTED: "priority reasserted",
    ChangeReason.FINALIZE_STAGING: "finalized: true, live staging",
    ChangeReason.NOT_IN_CONFIG: "in state, not in config",
}

_COUNTED = {
    Limit.MAX_FINALIZE: ("finalize", "finalizes"),
    Limit.MAX_CHANGES: ("API call", "API calls"),
    Limit.MAX_FORGET: ("forget", "forgets"),
}


def reason_text(reasons: tuple[ChangeReason, ...]) -> str:
    """``priority differs; finalized: true, live staging``."""
    return "; ".join(REASONS[reason] for reason in reasons)


def finding_diagnostic(finding: Finding) -> Diagnostic:
    """A finding as the one type every problem is reported as.

    The code is the finding's (the plan document's ``code``); the place is
    where the batch is declared, when it is.
    """
    position = finding.position
    return Diagnostic(
        finding.severity,
        finding.code.value,
        finding_message(finding),
        None if position is None else position.file,
        None if position is None else position.line,
        None if position is None else position.column,
    )


def finding_message(finding: Finding) -> str:
    """What is wrong and what to do, in one sentence."""
    code, fact = finding.code, finding.fact
    if code is FindingCode.PROJECT_MISSING:
        text = (
            f"project {finding.project!r} does not exist (used by {fact('used_by')}); "
            "is the name misspelt?"
        )
    elif code is FindingCode.RECORDED_MISSING:
        text = (
            "recorded in state but not found live; wrong account or endpoint? "
            f"If the batch is gone for good, `batchplan state rm {finding.batch}` "
            "drops it from state"
        )
    elif code is FindingCode.PROJECT_CHANGED:
        text = (
            f"name is taken by a batch in project {fact('live_project')!r}; "
            "a batch's project cannot change and names are unique per account"
        )
    elif code is FindingCode.CALLBACK_CHANGED:
        if "live" in dict(finding.facts):
            detail = f"config says {fact('config')!r}, live is {fact('live')!r}"
        else:
            detail = f"live callback differs from the value of {fact('config')}"
        text = f"callback cannot change after creation ({detail})"
    elif code is FindingCode.CREATE_FLAG_CHANGED:
        text = (
            f"{fact('flag')} cannot change after creation "
            f"(created with {fact('recorded')}, config says {fact('config')})"
        )
    elif code is FindingCode.ALREADY_FINALIZED:
        text = (
            f"config says finalized: false, but the batch is already {fact('status')}; "
            "a finalize cannot be undone, so nothing is done"
        )
    elif code is FindingCode.STATUS_LEFT_ALONE:
        text = (
            f"status {fact('status')}: left alone (config asks to {fact('asked')}; "
            "batchplan sends no call to a batch in a status it does not act on)"
        )
    elif code is FindingCode.NAME_UNMANAGEABLE:
        text = (
            f"live batch {fact('name')} cannot be managed by batchplan ({fact('problem')}): "
            "listed as unmanaged, never imported or written to state"
        )
    elif code is FindingCode.MANAGED_ELSEWHERE:
        text = (
            f"managed by another state, lineage {fact('lineage')} (its batchplan.lineage "
            "metadata); one state manages a batch: drop it from this config, or, once it "
            "is out of this config, take it over with `batchplan import --take-ownership`"
        )
    else:
        text = (
            f"looks renamed to {fact('created')}, but a batch's name cannot change, so this "
            f"batch stays live and is only forgotten while {fact('created')} is created "
            "as a new batch"
        )
    return f"outside the targets: {text}" if finding.outside_targets else text


def breach_text(breach: LimitBreach) -> str:
    """``6 finalizes, over max_finalize 5``."""
    one, many = _COUNTED[breach.limit]
    counted = one if breach.planned == 1 else many
    return f"{breach.planned:,} {counted}, over {breach.limit.value} {breach.max:,}"


def refusal_line(plan: Plan) -> str:
    """``Refused without --force: 6 finalizes, over max_finalize 5.``, or ``""``."""
    if not plan.unsafe:
        return ""
    return "Refused without --force: " + "; ".join(map(breach_text, plan.unsafe)) + "."


def summary_line(summary: Summary) -> str:
    """``Plan: 2 to create, 1 to finalize, 3 to prioritize, 1 to adopt, 0 to forget.``

    Priorities set from an unknown value (imported or adopted batches) are
    counted apart, so a default that re-prioritises many batches stands out.
    Metadata updates are named only when there are some.
    """
    if not summary.has_changes:
        return "No changes."
    prioritize = f"{summary.prioritize} to prioritize"
    if summary.prioritize_from_unknown:
        prioritize += f" ({summary.prioritize_from_unknown} from unknown priority)"
    metadata = f"{summary.set_metadata} to set metadata, " if summary.set_metadata else ""
    return (
        f"Plan: {summary.create} to create, {metadata}{summary.finalize} to finalize, "
        f"{prioritize}, {summary.adopt} to adopt, {summary.forget} to forget."
    )


def headline(plan: Plan) -> str:
    """The one line that sums the plan up; it never hides a problem.

    With conflicts nothing will be applied, whatever the changes; an unsafe
    plan reads as refused; otherwise the summary line.
    """
    conflicts = len(plan.conflicts)
    if conflicts:
        return f"{conflicts:,} conflict{'' if conflicts == 1 else 's'}: nothing will be applied."
    if plan.unsafe:
        return refusal_line(plan)
    return summary_line(plan.summary)


def value_text(value: Any) -> str:
    """A metadata value as JSON: ``"a"``, ``3``, ``{"k": 1}``."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def metadata_text(edit: MetadataEdit) -> str:
    """``team: "a" -> "b"``; a new key ``team: (absent) -> "b"``; ``(removed)``."""
    if edit.before_hidden:
        before = "(hidden)"
    elif edit.before_present:
        before = value_text(edit.before)
    else:
        before = "(absent)"
    after = value_text(edit.after) if edit.after_present else "(removed)"
    return f"{edit.key}: {before} -> {after}"
