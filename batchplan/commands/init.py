"""``batchplan init``: a starter config, the schema for editors, and ``.batchplan/`` ignored.

Nothing a user already has is replaced: an existing config is left as it
is, an existing schema copy is kept, and ``.gitignore`` is only appended to,
once. Every step says what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from batchplan.commands.arguments import InitArguments
from batchplan.config.schema import CONFIG_SCHEMA, schema_dir
from batchplan.errors import EXIT_OK, BatchplanError, os_reason
from batchplan.views.terminal import make_echo

#: The copy of the config schema the starter config's first line points at.
SCHEMA_COPY = ".batchplan.schema.json"
#: What batchplan keeps in a project folder that must not be committed.
IGNORED = ".batchplan/"

STARTER = f"""\
# yaml-language-server: $schema=./{SCHEMA_COPY}
# A starter batchplan config. Declare the batches you want; then
#   batchplan validate                   # check this file, no network
#   batchplan plan --endpoint sandbox    # try it on the embedded sandbox
#   batchplan plan                       # against Scale (SCALE_API_KEY)
# Batches already live can be brought in with `batchplan import --project NAME`.
version: 1
defaults:
  project: my_project   # the Scale project of every batch below, unless one says otherwise
  priority: 20          # 10 (first) to 30 (last)
batches: []
# For example:
#   - name: my_project_2024-01
#     finalized: true     # finalize once every task is added (cannot be undone)
#   - name: "my_project_${{each.month}}"
#     for_each:
#       month: ["2024-02", "2024-03"]
"""


def _write_new(path: Path, text: str) -> bool:
    """Create ``path`` with ``text``; False (and nothing written) when it exists."""
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        return False
    except OSError as exc:
        raise BatchplanError(f"cannot write {path}: {os_reason(exc)}") from None
    return True


def _ignores_state(text: str) -> bool:
    """A ``.gitignore`` line that already ignores the ``.batchplan`` folder."""
    wanted = {".batchplan", ".batchplan/", "/.batchplan", "/.batchplan/", ".batchplan/*"}
    return any(line.strip() in wanted for line in text.splitlines())


def _ignore_state(folder: Path) -> str:
    """Add ``.batchplan/`` to ``.gitignore`` (creating it) unless already there; what was done."""
    path = folder / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else None
        if text is None:
            path.write_text(IGNORED + "\n", encoding="utf-8")
            return f"Created {path} ignoring {IGNORED} (local state, locks and sandbox data)."
        if _ignores_state(text):
            return f"{path} already ignores {IGNORED}."
        with path.open("a", encoding="utf-8") as file:
            file.write(("" if text.endswith("\n") or not text else "\n") + IGNORED + "\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise BatchplanError(f"cannot update {path}: {reason}") from None
    return f"Added {IGNORED} to {path} (local state, locks and sandbox data)."


def _existing_config(folder: Path) -> Path | None:
    for name in ("batchplan.yaml", "batchplan.yml"):
        if (folder / name).exists():
            return folder / name
    return None


def init(folder: str, echo: Callable[[str], None]) -> int:
    """Write the starter files into ``folder`` and say, line by line, what was done."""
    root = Path(folder)
    if not root.is_dir():
        raise BatchplanError(f"{folder}: no such folder")
    existing = _existing_config(root)
    config = root / "batchplan.yaml"
    if existing is not None:
        echo(f"{existing} already exists: left as it is.")
    elif _write_new(config, STARTER):
        echo(f"Wrote {config}: a starter config; edit it, then `batchplan validate`.")
    else:
        echo(f"{config} already exists: left as it is.")

    schema = root / SCHEMA_COPY
    try:
        text = (schema_dir() / CONFIG_SCHEMA).read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchplanError(
            f"cannot read the config schema ({os_reason(exc)}); reinstall batchplan"
        ) from None
    if _write_new(schema, text):
        echo(
            f"Wrote {schema}: the config schema, for editors "
            "(after an upgrade: batchplan schema config > " + SCHEMA_COPY + ")."
        )
    else:
        echo(
            f"{schema} already exists: kept (after an upgrade: batchplan schema config > "
            f"{SCHEMA_COPY})."
        )

    echo(_ignore_state(root))
    return EXIT_OK


def run(args: InitArguments) -> int:
    """``batchplan init`` with its parsed arguments."""
    return init(args.folder, make_echo(args.color))
