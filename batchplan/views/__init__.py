"""Rendering: plans as text, JSON and Markdown, and the apply views (text and JSON Lines).

May import: the core, ``plan`` and ``apply`` (its events). Views read; they decide nothing.
"""

from __future__ import annotations
