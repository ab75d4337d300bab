"""Applying a plan: the engine that makes the calls, and the typed events it emits.

May import: the core, ``api``, ``state`` and ``plan``. The engine never prints;
views render its events.
"""

from __future__ import annotations
