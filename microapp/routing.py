"""Routes: ``"/echo/<text>"`` patterns compiled at registration, and matching.

Owns the routing table and the meaning of 404, 405 and OPTIONS; knows
nothing of WSGI, requests or responses. Static paths are found in a dict;
dynamic ones are compiled to regular expressions when added, so nothing is
compiled lazily while requests run concurrently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from microapp.errors import HTTPError

__all__ = ["Converter", "Route", "RouteMatch", "Router"]

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Converter:
    """What one ``<kind:name>`` placeholder matches, and how its text becomes a value."""

    pattern: str
    convert: Callable[[str], Any]


CONVERTERS = MappingProxyType({
    "str": Converter(r"[^/]+", str),  # one path segment; the default
    "int": Converter(r"[0-9]+", int),
    "path": Converter(r"(?s:.+)", str),  # the rest of the path, slashes included
})

_PLACEHOLDER = re.compile(r"<(?:(?P<kind>[a-z]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")


@dataclass(frozen=True)
class Route:
    """One registered pattern: the methods it serves and, if dynamic, its regex."""

    pattern: str
    methods: frozenset[str]
    handler: Handler
    regex: re.Pattern[str] | None
    converters: tuple[tuple[str, Callable[[str], Any]], ...] = ()

    def match_path(self, path: str) -> dict[str, Any] | None:
        """The converted parameters when ``path`` fits this route, else None."""
        if self.regex is None:
            return {} if path == self.pattern else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: convert(found[name]) for name, convert in self.converters}


@dataclass(frozen=True)
class RouteMatch:
    """The outcome of a lookup. ``handler`` is None for an OPTIONS the app
    does not handle itself: answer it with ``allow``."""

    handler: Handler | None
    params: dict[str, Any]
    allow: str


def compile_route(pattern: str, methods: Iterable[str], handler: Handler) -> Route:
    """Check and compile ``pattern``; ValueError for anything malformed."""
    if not pattern.startswith("/"):
        raise ValueError(f"route {pattern!r} must start with '/'")
    methods = frozenset(method.upper() for method in methods)
    if not methods:
        raise ValueError(f"route {pattern!r} serves no method")
    if "<" not in pattern:
        return Route(pattern, methods, handler, None)
    parts: list[str] = []
    converters: list[tuple[str, Callable[[str], Any]]] = []
    position = 0
    for placeholder in _PLACEHOLDER.finditer(pattern):
        kind, name = placeholder["kind"] or "str", placeholder["name"]
        if kind not in CONVERTERS:
            raise ValueError(f"unknown converter {kind!r} in route {pattern!r}")
        if name in dict(converters):
            raise ValueError(f"parameter {name!r} appears twice in route {pattern!r}")
        parts += [re.escape(pattern[position:placeholder.start()]),
                  f"(?P<{name}>{CONVERTERS[kind].pattern})"]
        converters.append((name, CONVERTERS[kind].convert))
        position = placeholder.end()
    literal_tail = pattern[position:]
    if "<" in literal_tail or ">" in literal_tail:
        raise ValueError(f"malformed placeholder in route {pattern!r}")
    regex = re.compile("".join(parts) + re.escape(literal_tail))
    return Route(pattern, methods, handler, regex, tuple(converters))


def allow_header(methods: Iterable[str]) -> str:
    """RFC 9110 section 10.2.1: the methods a resource supports, HEAD with GET,
    OPTIONS always."""
    allowed = set(methods) | {"OPTIONS"}
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


class Router:
    """The routing table: static paths in a dict, dynamic routes in order."""

    def __init__(self) -> None:
        self._static: dict[str, list[Route]] = {}
        self._dynamic: list[Route] = []

    def add(self, pattern: str, methods: Iterable[str], handler: Handler) -> Route:
        """Register ``handler`` for ``methods`` on ``pattern``."""
        route = compile_route(pattern, methods, handler)
        siblings = self._static.setdefault(pattern, []) if route.regex is None else [
            other for other in self._dynamic if other.pattern == pattern]
        for other in siblings:
            if other.methods & route.methods:
                taken = ", ".join(sorted(other.methods & route.methods))
                raise ValueError(f"{taken} {pattern!r} is already routed")
        if route.regex is None:
            self._static[pattern].append(route)
        else:
            self._dynamic.append(route)
        return route

    def routes(self) -> list[Route]:
        """Every route, static first."""
        return [route for routes in self._static.values() for route in routes] + self._dynamic

    def match(self, method: str, path: str) -> RouteMatch:
        """Find the handler for ``method`` on ``path``: HTTPError 404, or 405 with Allow."""
        if path == "*" and method == "OPTIONS":  # RFC 9110 section 9.3.7: the server itself
            return RouteMatch(None, {}, allow_header(m for r in self.routes() for m in r.methods))
        candidates = self._candidates(path)
        if not candidates:
            raise HTTPError(404)
        for wanted in (method, "GET") if method == "HEAD" else (method,):
            for route, params in candidates:
                if wanted in route.methods:
                    return RouteMatch(route.handler, params, "")
        allow = allow_header(m for route, _ in candidates for m in route.methods)
        if method == "OPTIONS":
            return RouteMatch(None, {}, allow)
        raise HTTPError(405, headers=[("Allow", allow)])

    def _candidates(self, path: str) -> list[tuple[Route, dict[str, Any]]]:
        found: list[tuple[Route, dict[str, Any]]] = [
            (route, {}) for route in self._static.get(path, ())]
        for route in self._dynamic:
            params = route.match_path(path)
            if params is not None:
                found.append((route, params))
        return found
