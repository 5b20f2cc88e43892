"""Cross-origin refusal: a browser's state-changing request sent from another
site gets 403.

Owns comparing Origin (RFC 6454) and Sec-Fetch-Site (Fetch Metadata) with the
request's own Host; knows no routes. Clients that send neither field (curl,
scripts) are not browsers acting for someone else, and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from microapp.errors import HTTPError
from microapp.request import Request

__all__ = ["refuse_cross_origin", "same_origin"]

# RFC 9110 section 9.2.1: the methods that do not change anything.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Fetch Metadata: "none" is a request the user made (typed, bookmarked).
ALLOWED_SITES = frozenset({"same-origin", "none"})


def _authority(scheme: str, netloc: str) -> tuple[str, int] | None:
    """(host, port) of ``netloc`` with the scheme's default port; None when malformed."""
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a bad port or IPv6 literal
        return None
    if not parts.hostname or parts.username is not None:
        return None
    return parts.hostname.lower(), port


def same_origin(origin: str, host: str) -> bool:
    """Whether a serialized origin (RFC 6454 section 6.2, ``scheme://host[:port]``)
    names ``host`` (the Host field). ``null`` and anything malformed do not."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment:
        return False
    ours = _authority(parts.scheme, host.strip())
    return ours is not None and _authority(parts.scheme, parts.netloc) == ours


def _host(request: Request) -> str:
    """The authority the client addressed: Host, else the server's name (RFC 9110 7.2)."""
    host = request.headers.get("Host")
    if host:
        return host
    return f"{request.environ.get('SERVER_NAME', '')}:{request.environ.get('SERVER_PORT', '')}"


def refuse_cross_origin(request: Request) -> None:
    """A before_request hook: 403 for an unsafe method that a browser sent
    from another origin (``Sec-Fetch-Site`` not same-origin, or an ``Origin``
    other than the Host's). Safe methods always pass."""
    if request.method in SAFE_METHODS:
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in ALLOWED_SITES:
        raise HTTPError(403, f"{request.method} from another site is refused "
                             f"(Sec-Fetch-Site: {site.strip()})")
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin, _host(request)):
        raise HTTPError(403, f"{request.method} from another origin is refused "
                             f"(Origin {origin.strip()!r} is not this site)")
