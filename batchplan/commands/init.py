"""``batchplan init``: a starter config, the schema for editors, and ``.batchplan/`` ignored.

Nothing a user already has is replaced: an existing config is left as it
is, an existing schema copy is kept, and ``.gitignore`` is only appended to,
once. Every step is reported through :class:`InitView`, which words it.
"""

from __future__ import annotations

from pathlib import Path

from batchplan.commands.arguments import InitArguments
from batchplan.config.schema import CONFIG_SCHEMA, schema_dir
from batchplan.errors import EXIT_OK, BatchplanError, os_reason
from batchplan.views.init import InitView, init_view

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


def _ignore_state(folder: Path, view: InitView) -> None:
    """Add ``.batchplan/`` to ``.gitignore`` (creating it) unless already there; say which."""
    path = folder / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else None
        if text is None:
            path.write_text(IGNORED + "\n", encoding="utf-8")
        elif not _ignores_state(text):
            with path.open("a", encoding="utf-8") as file:
                file.write(("" if text.endswith("\n") or not text else "\n") + IGNORED + "\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise BatchplanError(f"cannot update {path}: {reason}") from None
    # Said once the file is done: a failure to print is not a failure to update it.
    if text is None:
        view.created_ignore(path, IGNORED)
    elif _ignores_state(text):
        view.already_ignored(path, IGNORED)
    else:
        view.added_ignore(path, IGNORED)


def _existing_config(folder: Path) -> Path | None:
    for name in ("batchplan.yaml", "batchplan.yml"):
        if (folder / name).exists():
            return folder / name
    return None


def init(folder: str, view: InitView) -> int:
    """Write the starter files into ``folder``; ``view`` says, line by line, what was done."""
    root = Path(folder)
    if not root.is_dir():
        raise BatchplanError(f"{folder}: no such folder")
    existing = _existing_config(root)
    config = root / "batchplan.yaml"
    if existing is not None:
        view.left_alone(existing)
    elif _write_new(config, STARTER):
        view.wrote_config(config)
    else:
        view.left_alone(config)

    schema = root / SCHEMA_COPY
    try:
        text = (schema_dir() / CONFIG_SCHEMA).read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchplanError(
            f"cannot read the config schema ({os_reason(exc)}); reinstall batchplan"
        ) from None
    if _write_new(schema, text):
        view.wrote_schema(schema)
    else:
        view.kept_schema(schema)

    _ignore_state(root, view)
    return EXIT_OK


def run(args: InitArguments) -> int:
    """``batchplan init`` with its parsed arguments."""
    return init(args.folder, init_view(args.color))
