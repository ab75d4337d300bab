"""Saved plans (``plan --out``): writing, reading, the digest, the checksum, staleness.

A saved plan is the JSON plan document (``batchplan.plan.document``) plus what
``apply FILE`` needs to prove that nothing moved: where the plan was made
(folder, config paths, endpoint, state location), the checksum of every
input that could change what apply would do, and per-batch fingerprints that
let a stale plan say *what* moved. A ``digest`` over the file's own content
makes a hand-edited file fail before any call.

Nothing here writes an expanded ``${NAME}`` value: fingerprints of values
that may hold secrets (callbacks, metadata) are salted hashes, and the
desired side is fingerprinted in its shown form only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from batchplan import __version__
from batchplan.api.endpoint import Endpoint
from batchplan.config.schema import MAX_FREE_DEPTH, PLAN_SCHEMA, load_schema, plan_check
from batchplan.errors import ModifiedPlanError, PlanError, StalePlanError, UsageError
from batchplan.escaping import escape_controls
from batchplan.files import PLAN_CAP, is_symlink, parse_json, read_regular, write_atomic
from batchplan.model import Config, DesiredBatch, LiveView
from batchplan.options import Options
from batchplan.plan.changes import Change, Plan, PlanOptions, natural_key
from batchplan.plan.document import change_json, finding_json, plan_document, plan_from_document

KIND = "batchplan-plan"
#: The environment variable holding the key plans are signed with (HMAC-SHA256).
PLAN_KEY_VARIABLE = "BATCHPLAN_PLAN_KEY"
#: Names listed per kind of movement before "and N more".
MAX_NAMES = 10


@dataclass(frozen=True)
class Inputs:
    """What a plan was made from, in a form safe to save and compare.

    ``desired``: batch name -> fingerprint of its shown configuration.
    ``live``: examined name -> ``[project, status, fingerprint of callback
    and metadata]``, or ``None`` when absent. ``missing_projects`` sorted.
    """

    lineage: str | None
    serial: int
    desired: Mapping[str, str]
    live: Mapping[str, Sequence[str] | None]
    missing_projects: tuple[str, ...]
    salt: str

    def to_json(self) -> dict[str, Any]:
        return {
            "salt": self.salt,
            "desired": dict(self.desired),
            "live": {name: (None if v is None else list(v)) for name, v in self.live.items()},
            "missing_projects": list(self.missing_projects),
        }


@dataclass(frozen=True)
class SavedPlan:
    """A plan file as read back: the plan, and where and from what it was made."""

    path: str
    plan: Plan
    config_paths: tuple[str, ...]
    folder: str
    endpoint: str
    endpoint_spec: str
    state_location: str | None
    options: PlanOptions
    inputs: Inputs
    checksum: str
    #: ``--env`` of the plan; ``--var-file`` paths and ``--var`` names (never values).
    environment: str | None = None
    var_files: tuple[str, ...] = ()
    var_names: tuple[str, ...] = ()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _short_hash(salt: str, value: Any) -> str:
    return hashlib.sha256(salt.encode() + _canonical(value)).hexdigest()[:16]


def _desired_shown(batch: DesiredBatch) -> list[Any]:
    return [
        batch.project,
        batch.callback_shown,
        batch.priority,
        batch.finalized,
        batch.calibration_batch,
        batch.self_label_batch,
        None if batch.metadata_shown is None else dict(batch.metadata_shown),
    ]


def gather_inputs(
    *,
    config: Config,
    live: LiveView,
    state_names: Iterable[str],
    lineage: str | None,
    serial: int,
    salt: str | None = None,
) -> Inputs:
    """Fingerprints of everything a plan depends on, to name what moved later."""
    salt = salt or secrets.token_hex(8)
    examined = sorted({b.name for b in config.batches} | set(state_names), key=natural_key)
    live_seen: dict[str, Sequence[str] | None] = {}
    for name in examined:
        seen = live.batches.get(name)
        live_seen[name] = (
            None
            if seen is None
            else [
                seen.project,
                seen.status,
                _short_hash(
                    salt,
                    [seen.callback or "", None if seen.metadata is None else dict(seen.metadata)],
                ),
            ]
        )
    return Inputs(
        lineage=lineage,
        serial=serial,
        desired={b.name: _short_hash(salt, _desired_shown(b)) for b in config.batches},
        live=live_seen,
        missing_projects=tuple(sorted(live.missing_projects)),
        salt=salt,
    )


def checksum(
    *,
    endpoint: str,
    options: PlanOptions,
    config: Config,
    lineage: str | None,
    serial: int,
    live: LiveView,
    state_names: Sequence[str],
    plan: Plan,
) -> str:
    """sha256 over the canonical JSON of everything a plan depends on.

    Covered: the endpoint; flags and targets; the merged, interpolated desired
    batches, metadata included (sorted, without file positions); state lineage
    and serial; for each batch examined, (name, project, status, callback,
    metadata) or absent; and the changes and findings. Not covered: unmanaged
    batches, time, and ``--force``. Only the hash leaves the process.
    """
    digest = hashlib.sha256()

    def feed(section: str, items: Iterable[Any]) -> None:
        # Item by item, so a plan over 100,000 batches never holds one huge
        # JSON text; the section names and separators keep it unambiguous.
        digest.update(_canonical(section))
        for item in items:
            digest.update(b"\n" + _canonical(item))
        digest.update(b"\n;")

    feed("endpoint", [endpoint])
    # --force may be added at apply time; it changes no call.
    feed("options", [{k: v for k, v in options.to_json().items() if k != "force"}])
    feed(
        "desired",
        (
            [
                b.name,
                b.project,
                b.callback,
                b.priority,
                b.finalized,
                b.calibration_batch,
                b.self_label_batch,
                None if b.metadata is None else dict(b.metadata),
            ]
            for b in sorted(config.batches, key=lambda b: b.name)
        ),
    )
    feed("state", [[lineage, serial]])
    # One set of names, grown in place: a union of two sets would hold three.
    examined = {b.name for b in config.batches}
    examined.update(state_names)
    feed("examined", (_examined(name, live) for name in sorted(examined)))
    feed("missing_projects", sorted(live.missing_projects))
    # Where a batch is declared changes no call; applying from another folder
    # turns relative file names into absolute ones.
    feed("changes", (_without(change_json(change), "origin") for change in plan.changes))
    feed(
        "findings",
        (_without(finding_json(finding), *_FINDING_PLACE) for finding in plan.findings),
    )
    return "sha256:" + digest.hexdigest()


#: Where a finding's batch is declared: like a change's ``origin``, it changes
#: no call, and applying from another folder changes the file names.
_FINDING_PLACE = ("where", "file", "line", "column")


def _without(item: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys}


def _examined(name: str, live: LiveView) -> list[Any]:
    seen = live.batches.get(name)
    if seen is None:
        return [name, "absent"]
    metadata = None if seen.metadata is None else dict(seen.metadata)
    return [name, seen.project, seen.status, seen.callback or "", metadata]


def _digest(document: Mapping[str, Any]) -> str:
    body = {key: value for key, value in document.items() if key != "digest"}
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def plan_key() -> bytes | None:
    """The signing key from ``BATCHPLAN_PLAN_KEY``, or None when it is not set.

    Set but empty is an error: a CI secret that failed to arrive must not
    quietly turn signing off.
    """
    value = os.environ.get(PLAN_KEY_VARIABLE)
    if value is None:
        return None
    if not value:
        raise UsageError(
            f"{PLAN_KEY_VARIABLE} is set but empty; set it to the signing key, or unset it"
        )
    return os.fsencode(value)


def _signature(document: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 over the same canonical JSON the digest covers, without digest and signature."""
    body = {k: v for k, v in document.items() if k not in ("digest", "signature")}
    return "hmac-sha256:" + hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def _check_signature(path: str, document: Mapping[str, Any], key: bytes) -> None:
    """Refuse (exit 4) a plan without a signature made with ``key``; never print the key."""
    given = document.get("signature")
    if not isinstance(given, str):
        raise ModifiedPlanError(
            f"{path}: plan file is not signed, and {PLAN_KEY_VARIABLE} is set, so only a plan "
            "signed with that key is shown or applied: make the plan where the key is set"
        )
    if not hmac.compare_digest(given.encode(), _signature(document, key).encode()):
        raise ModifiedPlanError(
            f"{path}: plan file signature does not match {PLAN_KEY_VARIABLE}: the file was "
            "modified after it was signed, or signed with another key; it cannot be shown "
            "or applied: make a new plan and review it"
        )


def looks_like_plan_file(path: str) -> bool:
    """True for a file that holds a saved plan (JSON with our ``kind``)."""
    try:
        # Non-blocking and checked before reading: a FIFO never hangs this.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 4096).lstrip()
    except OSError:
        return False
    finally:
        os.close(fd)
    return head.startswith(b"{") and KIND.encode() in head


def check_out_path(path: str, reserved: Collection[str] = ()) -> None:
    """``plan --out`` may replace an earlier plan, never anything else.

    Checked before anything touches the network, so a typo costs no API
    call: the folder must exist; a ``.yaml`` / ``.yml`` name would be read
    as configuration by the next plan of that folder; ``reserved`` paths
    (the state file and its lock, even before they exist) belong to state.
    """
    target = Path(path)
    if is_symlink(path):
        raise UsageError(
            f"--out {path}: is a symbolic link; a plan is never written through a link "
            "(it could create or overwrite a file elsewhere): remove it or pick another name"
        )
    if target.is_dir():
        raise UsageError(f"--out {path}: is a folder; give a file name such as plan.json")
    if not target.parent.is_dir():
        raise UsageError(f"--out {path}: folder {target.parent} does not exist")
    resolved = os.path.realpath(path)
    if any(resolved == os.path.realpath(other) for other in reserved):
        raise UsageError(f"--out {path}: that is where state is kept; pick another name")
    if os.path.lexists(path) and not looks_like_plan_file(path):
        raise UsageError(
            f"--out {path}: the file exists and is not a batchplan plan file; "
            "refusing to overwrite it (remove it or pick another name)"
        )
    if target.suffix.lower() in (".yaml", ".yml"):
        raise UsageError(
            f"--out {path}: a .yaml/.yml file beside the configuration would be read as "
            "configuration; save the plan as JSON, e.g. plan.json"
        )


def write_plan_file(
    path: str,
    plan: Plan,
    *,
    config_paths: Sequence[str],
    folder: str,
    endpoint: str,
    endpoint_spec: str,
    state_location: str | None,
    options: PlanOptions,
    inputs: Inputs,
    digest: str,
    environment: str | None = None,
    var_files: Sequence[str] = (),
    var_names: Sequence[str] = (),
) -> None:
    """Write the plan and its saved-plan fields, sealed by a digest of the content.

    Paths are recorded as given (relative to ``folder``, where ``plan`` ran),
    so that a copy of the checkout at another path applies the same plan.

    With ``BATCHPLAN_PLAN_KEY`` set the file also carries an HMAC of its
    content. The file is replaced in one step (temp file, fsync, rename), so
    a failed write leaves any earlier file whole.
    """
    key = plan_key()
    document: dict[str, Any] = {
        "format_version": plan_document(plan)["format_version"],
        "kind": KIND,
        "batchplan_version": __version__,
        "config_paths": list(config_paths),
        "folder": folder,
        "endpoint": endpoint,
        "endpoint_spec": endpoint_spec,
        "state": {
            "lineage": inputs.lineage,
            "serial": inputs.serial,
            "location": state_location,
        },
        "environment": environment,
        "var_files": list(var_files),
        "var_names": sorted(set(var_names)),
        "options": options.to_json(),
        "checksum": digest,
        "inputs": inputs.to_json(),
        **{k: v for k, v in plan_document(plan).items() if k != "format_version"},
    }
    if key is not None:
        document["signature"] = _signature(document, key)
    document["digest"] = _digest(document)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"), what="plan", error=PlanError)


def read_plan_file(path: str) -> SavedPlan:
    """Read and check a saved plan: a modified file, or another version's, is refused (exit 4).

    Only a regular file up to 256 MiB is read. With ``BATCHPLAN_PLAN_KEY``
    set, a plan without a valid signature is refused too (exit 4).
    """
    key = plan_key()
    found = read_regular(path, what="plan", cap=PLAN_CAP, error=PlanError)
    if found is None:
        raise PlanError(f"cannot read plan {path}: No such file or directory")
    try:
        document = parse_json(found[0].decode("utf-8"), where=path, error=PlanError)
    except UnicodeDecodeError:
        raise PlanError(f"{path}: not a saved plan (not UTF-8 text)") from None
    except ValueError as exc:
        raise PlanError(f"{path}: not a saved plan (invalid JSON: {exc})") from None
    del found
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise PlanError(f'{path}: not a saved plan (no "kind": "{KIND}")')
    if document.get("digest") != _digest(document):
        raise ModifiedPlanError(
            f"{path}: plan file was modified after it was written; "
            "it cannot be shown or applied: make a new plan and review it"
        )
    if key is not None:
        _check_signature(path, document, key)
    version = document.get("batchplan_version")
    if version != __version__:
        raise StalePlanError(
            f"{path} was made by batchplan {version}, this is {__version__}: make a new plan"
        )
    if not plan_check()(document):
        raise PlanError(f"{path}: damaged plan file at {_first_schema_error(document)}")
    options = document["options"]
    state = document["state"]
    recorded = document["inputs"]
    return SavedPlan(
        path=path,
        plan=plan_from_document(document),
        config_paths=tuple(document["config_paths"]),
        folder=document["folder"],
        endpoint=document["endpoint"],
        endpoint_spec=document["endpoint_spec"],
        state_location=state["location"],
        options=PlanOptions(
            targets=tuple(options["targets"]),
            reassert_priority=options["reassert_priority"],
            max_finalize=options["max_finalize"],
            max_changes=options["max_changes"],
            max_forget=options["max_forget"],
            # Never from the file: going past the limits is decided by
            # whoever applies (`apply PLANFILE --force`), not by what a file says.
            force=False,
        ),
        inputs=Inputs(
            lineage=state["lineage"],
            serial=state["serial"],
            desired=recorded["desired"],
            live=recorded["live"],
            missing_projects=tuple(recorded["missing_projects"]),
            salt=recorded["salt"],
        ),
        checksum=document["checksum"],
        environment=document.get("environment"),
        var_files=tuple(document.get("var_files", ())),
        var_names=tuple(document.get("var_names", ())),
    )


def _first_schema_error(document: Mapping[str, Any]) -> str:
    """Where and how ``document`` breaks the plan schema, in jsonschema's words.

    jsonschema is slow on a large plan, so it only words a failure.
    """
    from jsonschema import Draft202012Validator

    errors = sorted(
        Draft202012Validator(load_schema(PLAN_SCHEMA)).iter_errors(document),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if not errors:
        # Only the depth of a free-form value fails the compiled check.
        return f"a metadata value: nested more than {MAX_FREE_DEPTH} levels deep"
    first = errors[0]
    where = "/".join(map(str, first.absolute_path)) or "(top)"
    return f"{where}: {first.message}"


def _names(names: Sequence[str]) -> str:
    ordered = sorted(names, key=natural_key)
    # Names come from the file and the API: never raw on a terminal.
    shown = escape_controls(", ".join(ordered[:MAX_NAMES]))
    if len(ordered) > MAX_NAMES:
        shown += f" and {len(ordered) - MAX_NAMES} more"
    return shown


def what_moved(saved: Inputs, now: Inputs) -> list[str]:
    """Why a saved plan is stale, by kind (config, live, state) and batch name.

    ``now`` must be gathered with ``saved.salt`` so the fingerprints compare.
    """
    found = []
    config_moved = [
        name
        for name in set(saved.desired) | set(now.desired)
        if saved.desired.get(name) != now.desired.get(name)
    ]
    added = [n for n in config_moved if n not in saved.desired]
    removed = [n for n in config_moved if n not in now.desired]
    edited = [n for n in config_moved if n in saved.desired and n in now.desired]
    if edited:
        found.append(f"config: desired values changed for {_names(edited)}")
    if added:
        found.append(f"config: batches added: {_names(added)}")
    if removed:
        found.append(f"config: batches removed: {_names(removed)}")

    kinds: dict[str, list[str]] = {}
    for name in set(saved.live) & set(now.live):
        before, after = saved.live[name], now.live[name]
        if before == after:
            continue
        if before is None or after is None:
            kinds.setdefault("appeared" if before is None else "disappeared", []).append(name)
            continue
        for index, what in enumerate(("project", "status", "callback or metadata")):
            if before[index] != after[index]:
                kinds.setdefault(what, []).append(name)
    for what in ("appeared", "disappeared", "project", "status", "callback or metadata"):
        if what in kinds:
            label = f"batches {what}" if what in ("appeared", "disappeared") else f"{what} changed"
            found.append(f"live: {label}: {_names(kinds[what])}")
    if saved.missing_projects != now.missing_projects:
        found.append(
            "live: missing projects were "
            f"{', '.join(saved.missing_projects) or 'none'}, now "
            f"{', '.join(now.missing_projects) or 'none'}"
        )

    if saved.lineage != now.lineage:
        found.append(f"state: another state now (lineage {saved.lineage} -> {now.lineage})")
    if saved.serial != now.serial:
        found.append(f"state: state changed since the plan (serial {saved.serial} -> {now.serial})")
    return found


def _endpoint_key(spec: str, folder: str) -> str:
    """An ``--endpoint`` value in a comparable form: a sandbox database as an absolute path."""
    return Endpoint.parse(spec).key(folder)


def _shown_key(key: str) -> str:
    if key.startswith("sandbox:"):
        return "the sandbox on " + key.removeprefix("sandbox:")
    return key


def _state_key(location: str, folder: str) -> str:
    if "://" in location:
        return location
    return os.path.normpath(os.path.join(folder, location))


def recorded_options(saved: SavedPlan, options: Options, explicit: Collection[str]) -> Options:
    """The endpoint and state location recorded in the plan; a different explicit one is refused.

    Relative paths recorded (a sandbox database, the state) resolve against
    the current folder, as the configuration's do: apply runs in its own
    checkout, which may be a copy of the one the plan was made in.
    """
    here = os.getcwd()
    endpoint = _endpoint_key(saved.endpoint_spec, here)
    if "endpoint" in explicit and _endpoint_key(options.endpoint, os.getcwd()) != endpoint:
        # Name both as compared: `sandbox` means a database relative to the
        # folder, so "sandbox differs from sandbox" would explain nothing.
        given = _endpoint_key(options.endpoint, os.getcwd())
        raise UsageError(
            f"--endpoint {options.endpoint} ({_shown_key(given)}) differs from the endpoint "
            f"recorded in {saved.path} ({saved.endpoint_spec}: {_shown_key(endpoint)}, "
            f"made in {saved.folder}); leave --endpoint out to use the recorded one, "
            "or make a new plan"
        )
    state = None if saved.state_location is None else _state_key(saved.state_location, here)
    if (
        "state" in explicit
        and options.state is not None
        and state is not None
        and _state_key(options.state, os.getcwd()) != state
    ):
        raise UsageError(
            f"--state {options.state} differs from the state recorded in "
            f"{saved.path} ({saved.state_location}, made in {saved.folder}); "
            "leave --state out to use the recorded one, or make a new plan"
        )
    # The recorded values exactly as written: relative ones resolve against here.
    return replace(
        options,
        endpoint=saved.endpoint_spec if "endpoint" not in explicit else options.endpoint,
        state=saved.state_location if state is not None else options.state,
    )


def recorded_paths(saved: SavedPlan) -> list[str]:
    """The plan's config and var-file paths, against the current folder; each must exist.

    As Terraform applies a plan in its working directory: a relative path
    means the same file in whichever checkout apply runs in, never the
    folder the plan was made in (a CI runner's checkout may be gone, or
    worse, still there with other files).
    """
    missing = [path for path in (*saved.config_paths, *saved.var_files) if not os.path.exists(path)]
    if missing:
        raise PlanError(
            f"{missing[0]}: no such file or folder here ({os.getcwd()}); the plan {saved.path} "
            f"records it relative to the folder `plan` ran in ({saved.folder}): run apply from "
            "the matching folder of this checkout, or make a new plan"
        )
    return list(saved.config_paths)


def _reviewed(change: Change) -> dict[str, Any]:
    # Where a batch is declared changes no call, and paths differ by folder.
    return _without(change_json(change), "origin")


def unreviewed_changes(saved: Plan, fresh: Plan) -> list[str]:
    """The batches whose change differs between a saved plan and a fresh plan of the same inputs.

    Empty when what ``show`` prints for the saved plan is exactly what
    applying the fresh plan would do. The checksum alone does not prove that:
    it is recorded in the file, so an edit of ``changes`` keeping it (and
    re-computing the digest) would otherwise show one thing and do another.
    """
    before = {change.batch: _reviewed(change) for change in saved.changes}
    after = {change.batch: _reviewed(change) for change in fresh.changes}
    differ = [name for name in before.keys() | after.keys() if before.get(name) != after.get(name)]
    if not differ and len(saved.changes) != len(fresh.changes):
        differ = ["(a batch listed twice)"]
    return differ


def unreviewed_message(saved: SavedPlan, differ: Sequence[str]) -> str:
    """Why a saved plan whose changes differ from the fresh ones is refused."""
    return (
        f"Saved plan {saved.path} does not say what applying it would do: its changes differ "
        f"from a fresh plan of the same inputs for {_names(differ)}. The file's changes were "
        "edited after planning. No call was made; make a new plan and review it."
    )


def stale_message(saved: SavedPlan, now: Inputs, checksum: str) -> str:
    """Why the saved plan no longer holds, by kind and batch name.

    ``now`` are the new plan's inputs gathered with the saved plan's salt.
    """
    moved = what_moved(saved.inputs, now)
    if saved.checksum == checksum:
        moved = []
    elif not moved:
        moved = ["a value that came from a variable (${NAME}) changed, or a callback did"]
    return (
        f"Saved plan {saved.path} is stale; what moved since it was made:\n"
        + "\n".join(f"  - {line}" for line in moved)
        + "\nNo call was made; make a new plan and review it."
    )
