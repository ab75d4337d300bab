"""``python -m batchplan`` is the same as the ``batchplan`` command."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Import the CLI, then run it; a Ctrl-C while importing ends quietly too."""
    try:
        from batchplan.cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.stderr.flush()
        # Not sys.exit: Python may still end a run whose import was
        # interrupted by re-raising SIGINT, which the shell reports as 130
        # but a CI runner as "killed".
        os._exit(130)
    run_cli()


if __name__ == "__main__":
    main()
