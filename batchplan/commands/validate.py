"""``batchplan validate``: check the configuration; no network."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from batchplan.config import load_config
from batchplan.errors import EXIT_OK


def validate(paths: Sequence[str], echo: Callable[[str], None]) -> int:
    config = load_config(paths)
    batches, files = len(config.batches), len(config.files)
    echo(
        f"Configuration is valid: {batches} batch{'es' if batches != 1 else ''} "
        f"in {files} file{'s' if files != 1 else ''}, "
        f"{len(config.projects)} project{'s' if len(config.projects) != 1 else ''}."
    )
    return EXIT_OK
