"""Matching decoded path segments against route templates such as ``batches/{name}``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from batchplan.sandbox.messages import ErrorReply, Reply, Request

Context = TypeVar("Context")
Handler = Callable[[Context, Request, tuple[str, ...]], Reply]

PLACEHOLDER = "{name}"


@dataclass(frozen=True)
class Route(Generic[Context]):
    """A path template and its handler per method."""

    pattern: tuple[str, ...]
    methods: Mapping[str, Handler[Context]]

    def match(self, segments: tuple[str, ...]) -> tuple[str, ...] | None:
        """The values of the placeholders, or None if ``segments`` do not fit."""
        if len(segments) != len(self.pattern):
            return None
        values = []
        for part, segment in zip(self.pattern, segments, strict=True):
            if part == PLACEHOLDER:
                values.append(segment)
            elif part != segment:
                return None
        return tuple(values)


@dataclass(frozen=True)
class Resolved(Generic[Context]):
    """The route template (for the request log), the handler and its arguments."""

    template: str
    handler: Handler[Context]
    args: tuple[str, ...]
    matched: bool = True


def resolve(
    routes: list[Route[Context]], method: str, segments: tuple[str, ...]
) -> Resolved[Context]:
    """Find the handler; a miss resolves to one that answers 404 or 405."""
    for route in routes:
        args = route.match(segments)
        if args is None:
            continue
        template = f"{method} /{'/'.join(route.pattern)}"
        # HEAD is GET without the body (the server drops it).
        handler = route.methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            allowed = ", ".join(
                sorted({*route.methods, *(["HEAD"] if "GET" in route.methods else [])})
            )
            refuse: Handler[Context] = _raiser(
                405, f"{method} not allowed here; use {allowed}", (("Allow", allowed),)
            )
            return Resolved(template, refuse, args, matched=False)
        return Resolved(template, handler, args)
    shown = "/" + "/".join(segments)
    return Resolved(f"{method} <unknown>", _raiser(404, f"no such endpoint: {shown}"), (), False)


def _raiser(
    status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Handler[Context]:
    def handler(context: Context, request: Request, args: tuple[str, ...]) -> Reply:
        raise ErrorReply(status, message, headers)

    return handler
