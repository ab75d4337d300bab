"""Making a plan: read state and live, diff, check the safety limits, fingerprint.

The commands call ``make_plan`` with a loaded configuration and an open
session; nothing here prints.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from batchplan.api.session import Session
from batchplan.errors import UsageError
from batchplan.model import (
    DEFAULT_MAX_CHANGES,
    DEFAULT_MAX_FINALIZE,
    DEFAULT_MAX_FORGET,
    Config,
    LiveView,
)
from batchplan.plan.changes import Limits, Plan, PlanOptions, limit_breaches
from batchplan.plan.diff import diff
from batchplan.plan.planfile import Inputs, checksum, gather_inputs
from batchplan.plan.refresh import read_live
from batchplan.state import State, StateBackend
from batchplan.state.location import read_state


@dataclass
class Planned:
    """Everything a plan was made from, for apply to carry on with."""

    config: Config
    session: Session
    backend: StateBackend
    state: State
    live: LiveView
    plan: Plan
    options: PlanOptions
    checksum: str

    def inputs(self, salt: str | None = None) -> Inputs:
        """Fingerprints of this plan's inputs; pass a saved plan's salt to compare."""
        return gather_inputs(
            config=self.config,
            live=self.live,
            state_names=self.state.batches,
            lineage=stored_lineage(self.state),
            serial=self.state.serial,
            salt=salt,
        )


def stored_lineage(state: State) -> str | None:
    """The lineage, or None for a state never written (each run invents a new one)."""
    return state.lineage if state.serial > 0 else None


def first_lineage(location: str, endpoint: str) -> str:
    """The lineage a state never written will keep, the same in every run until then.

    With ownership the lineage goes into the batches a plan creates, so a
    plan, a saved plan applied later, and the first write must agree on it;
    a new state's random lineage would differ from run to run. It is made
    from where the state lives (an absolute path, or the S3 URL) and the
    endpoint: two folders never share it, one folder always gets it back.
    """
    if "://" not in location:
        location = os.path.abspath(location)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"batchplan-state:{endpoint}:{location}"))


def limits_for(config: Config, options: PlanOptions) -> Limits:
    """Flags win over ``settings:``, which wins over the defaults."""

    def pick(flag: int | None, setting: int | None, default: int) -> int:
        if flag is not None:
            return flag
        return setting if setting is not None else default

    settings = config.settings
    return Limits(
        max_finalize=pick(options.max_finalize, settings.max_finalize, DEFAULT_MAX_FINALIZE),
        max_changes=pick(options.max_changes, settings.max_changes, DEFAULT_MAX_CHANGES),
        max_forget=pick(options.max_forget, settings.max_forget, DEFAULT_MAX_FORGET),
    )


def resolve_targets(patterns: Sequence[str], config: Config, state: State) -> frozenset[str]:
    """The batch names the ``--target`` patterns select, from the config and the state.

    A pattern is a shell-style glob (``kittens_2024-*``, case-sensitive), and
    also matches a name equal to it, since a name may hold ``*``, ``?`` or
    ``[``. A pattern that matches nothing is a typo; planning nothing would
    hide it.
    """
    known = {b.name for b in config.batches} | set(state.batches)
    selected: set[str] = set()
    unmatched = []
    for pattern in patterns:
        matched = {name for name in known if name == pattern or fnmatchcase(name, pattern)}
        if not matched:
            unmatched.append(pattern)
        selected |= matched
    if unmatched:
        raise UsageError(
            "--target names no batch in the configuration or state (none equals or matches it): "
            + ", ".join(repr(pattern) for pattern in unmatched)
        )
    return frozenset(selected)


def make_plan(
    config: Config, session: Session, backend: StateBackend, plan_options: PlanOptions
) -> Planned:
    """Read state and live, diff, and mark the plan unsafe when over a limit without --force."""
    endpoint = session.endpoint
    state = read_state(backend, endpoint, session.options.environment)
    if config.settings.ownership and state.serial == 0:
        state = replace(state, lineage=first_lineage(backend.location, endpoint.identity))
    targets = resolve_targets(plan_options.targets, config, state)
    live = read_live(
        session.client,
        config,
        ((r.name, r.project) for r in state.batches.values()),
        session.options.parallelism,
    )
    plan = diff(
        config,
        live,
        state.batches,
        targets=targets,
        reassert_priority=plan_options.reassert_priority,
        lineage=state.lineage,
    )
    if targets:
        # Shown as given: a pattern reads better than the hundreds of names it matches.
        plan = replace(plan, targets=tuple(dict.fromkeys(plan_options.targets)))
    if not plan_options.force:
        plan = replace(plan, unsafe=limit_breaches(plan, limits_for(config, plan_options)))
    digest = checksum(
        endpoint=endpoint.identity,
        options=plan_options,
        config=config,
        lineage=stored_lineage(state),
        serial=state.serial,
        live=live,
        state_names=sorted(state.batches),
        plan=plan,
    )
    return Planned(config, session, backend, state, live, plan, plan_options, digest)
