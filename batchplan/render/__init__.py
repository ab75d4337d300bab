"""Renderers read a Plan and return text; they never decide anything."""

from __future__ import annotations
