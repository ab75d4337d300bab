"""Making a plan: reading live, the pure diff, the Plan model, its document and saved plans.

May import: the core, ``config``, ``api`` and ``state``. Nothing here prints;
``diff`` and ``changes`` do no I/O at all.
"""

from __future__ import annotations
