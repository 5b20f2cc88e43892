"""Which Host values name this server: the defence against DNS rebinding.

After DNS rebinding, a page at ``http://attacker.example:4221`` is
same-origin, in the browser's eyes, with a server on 127.0.0.1: it sends
``Host: attacker.example:4221`` with a matching Origin, so comparing Origin
with Host proves nothing. What does is refusing a Host that does not name
the server. Owns that rule; knows no routes and no server (the server's
bound address comes from the environ's SERVER_NAME, and the operator's
list from ``allowed_hosts`` or ``environ["wsgiserver.allowed_hosts"]``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from microapp.errors import HTTPError

__all__ = ["ALLOWED_HOSTS_KEY", "check_host", "host_allowed"]

ALLOWED_HOSTS_KEY = "wsgiserver.allowed_hosts"
_WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})


def _hostname(host: str) -> str | None:
    """The name or address of a Host value, lower-case, without port or
    brackets; None when malformed."""
    try:
        parts = urlsplit("//" + host.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.username is not None or not parts.hostname:
        return None
    return parts.hostname.lower().rstrip(".")


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761 section 6.3
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _matches(name: str, pattern: str) -> bool:
    """``*`` is any name; ``.example.com`` is it and every name under it."""
    pattern = pattern.strip().lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("."):
        return name == pattern[1:] or name.endswith(pattern)
    return name == pattern.strip("[]")


def host_allowed(host: str, server_address: str, allowed: Iterable[str] | None) -> bool:
    """Whether ``host`` (a Host field) names this server.

    With ``allowed`` (the operator's names): one of them, or a loopback name
    while the server listens on loopback. Without: a server on loopback
    answers only to loopback names and addresses; one bound to a specific
    address, to that address and loopback; one bound to every address
    (0.0.0.0, ::) cannot tell its names, and answers to any.
    """
    name = _hostname(host)
    if name is None:
        return False
    server = server_address.strip("[]").lower()
    if allowed is not None:
        patterns = list(allowed)
        if patterns:
            return any(_matches(name, pattern) for pattern in patterns) or \
                (_is_loopback(name) and _is_loopback(server))
    if server in _WILDCARD_ADDRESSES:
        return True
    return _is_loopback(name) or name == server


def check_host(environ: Mapping[str, Any], allowed: Iterable[str] | None) -> None:
    """421 (RFC 9110 section 15.5.20) when the request's Host does not name
    this server; the operator's list is ``allowed``, else the server's."""
    host = environ.get("HTTP_HOST") or ""
    if allowed is None:
        allowed = environ.get(ALLOWED_HOSTS_KEY)
    if not host_allowed(host, str(environ.get("SERVER_NAME", "")), allowed):
        name = _hostname(host) or host
        raise HTTPError(421, f"Host {host!r} does not name this server: start it with "
                             f"--allowed-hosts {name} (or create_app(allowed_hosts=...)) "
                             "to answer to that name")
