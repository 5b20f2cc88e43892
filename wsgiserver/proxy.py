"""Trusted reverse proxies: Forwarded / X-Forwarded-* -> the client's environ.

Owns which peers may speak for a client, the RFC 7239 ``Forwarded`` grammar,
the de-facto ``X-Forwarded-*`` headers and request ids. Works on an environ
alone: knows no sockets, no configuration object and no HTTP parsing.

Off by default: with no trusted proxy every forwarding header is removed
from the environ, so an application never sees a value a client could forge.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .protocol.grammar import QUOTED_STRING_TEXT, TOKEN_TEXT

__all__ = [
    "FORWARDING_HEADERS",
    "ORIGINAL_KEY",
    "ProxyTrust",
    "apply_proxy_headers",
    "request_id",
]

# Headers only a proxy should set. Removed when the peer is not trusted;
# the last four are not read here, but applications and frameworks do read
# them (X-Real-IP, X-Forwarded-Prefix/-Ssl/-Scheme) and trust them as blindly.
FORWARDING_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_FORWARDED_SCHEME",
    "HTTP_X_REAL_IP",
)
_FORWARDING_KEYS = frozenset(FORWARDING_HEADERS)

# The environ key holding the values a trusted proxy's headers replaced.
ORIGINAL_KEY = "wsgiserver.proxy.original"
_REPLACEABLE = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST",
                "SERVER_NAME", "SERVER_PORT")

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_MAX_ANSWERS = 4096

# RFC 7239 section 4:
#   Forwarded         = 1#forwarded-element
#   forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
#   forwarded-pair    = token "=" value
#   value             = token / quoted-string
_TOKEN = TOKEN_TEXT
_QUOTED = QUOTED_STRING_TEXT
_PAIR = re.compile(rf"[ \t]*(?:({_TOKEN})=({_TOKEN}|{_QUOTED}))?[ \t]*([;,]|\Z)")
_UNQUOTE = re.compile(r"\\(.)")

# RFC 7239 section 6:
#   node     = nodename [ ":" node-port ]
#   nodename = IPv4address / "[" IPv6address "]" / "unknown" / obfnode
#   obfnode  = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
#   node-port = port / obfport
# X-Forwarded-For has no grammar; bare IPv6 addresses appear in practice.
_BRACKETED_NODE = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}|_[A-Za-z0-9._-]+))?")
_IPV4_NODE = re.compile(r"([0-9.]+)(?::([0-9]{1,5}|_[A-Za-z0-9._-]+))?")

# RFC 3986 section 3.2.2 / RFC 9110 section 7.2: Host = uri-host [ ":" port ]
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::([0-9]{1,5}))?")
_PORT = re.compile(r"[0-9]{1,5}")

# A request id worth logging as it came: short and free of anything that
# could break a log line or a header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ProxyTrust:
    """The peers whose forwarding headers we believe.

    Entries are IPv4/IPv6 addresses, CIDR ranges, ``"*"`` (any peer,
    Unix-socket peers included) or ``"unix"`` (peers on a Unix socket,
    whose REMOTE_ADDR is ``""``).
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self._any = False
        self._trust_unix = False
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        # Parsing an address costs microseconds; peers repeat. Bounded, so a
        # flood of forged chains cannot grow it.
        self._answers: dict[str, bool] = {}
        for entry in allowed:
            self._add(entry)

    def _add(self, entry: str) -> None:
        text = entry.strip()
        if text == "*":
            self._any = True
        elif text.lower() == "unix":
            self._trust_unix = True
        else:
            try:
                # strict: "10.0.0.1/8" is more likely a typo than a wish.
                self._networks.append(ipaddress.ip_network(text.strip("[]"), strict=True))
            except ValueError as error:
                raise ValueError(f"trusted proxy {entry!r} is not an address, "
                                 f"a network, '*' or 'unix': {error}") from None

    def trusts(self, address: str) -> bool:
        """Whether a peer at ``address`` (``""`` for a Unix socket) may forward."""
        if self._any:
            return True
        if address == "":
            return self._trust_unix
        answer = self._answers.get(address)
        if answer is None:
            answer = self._contains(address)
            if len(self._answers) < _MAX_ANSWERS:
                self._answers[address] = answer
        return answer

    def _contains(self, address: str) -> bool:
        ip = _ip(address)
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            if any(ip.ipv4_mapped in network for network in self._networks):
                return True
        return any(ip in network for network in self._networks)


@dataclass(frozen=True)
class _Forwarding:
    """What the proxy nearest the client told us; None where it said nothing."""

    address: str | None = None
    port: str | None = None
    proto: str | None = None
    host: str | None = None
    server_port: str | None = None


def apply_proxy_headers(environ: dict[str, Any], trust: ProxyTrust | None) -> bool:
    """Rewrite ``environ`` from a trusted proxy's headers, or strip them;
    whether the peer was trusted.

    ``Forwarded`` (RFC 7239) wins over ``X-Forwarded-*``. The values replaced
    are kept in ``environ[ORIGINAL_KEY]``, which is present exactly when the
    peer was trusted.
    """
    if trust is None or not trust.trusts(environ.get("REMOTE_ADDR", "")):
        for key in _FORWARDING_KEYS.intersection(environ):  # one C loop; mostly none
            del environ[key]
        return False
    environ[ORIGINAL_KEY] = {key: environ[key] for key in _REPLACEABLE if key in environ}
    forwarded = environ.get("HTTP_FORWARDED")
    if forwarded is not None:
        forwarding = _from_forwarded(forwarded, trust)
    else:
        forwarding = _from_x_forwarded(environ, trust)
    if forwarding is not None:
        _apply(environ, forwarding)
    return True


def request_id(environ: dict[str, Any], trusted: bool) -> str:
    """The request's id: a trusted peer's safe ``X-Request-ID``, else a new one."""
    if trusted:
        incoming = environ.get("HTTP_X_REQUEST_ID")
        if incoming is not None and _REQUEST_ID.fullmatch(incoming):
            return incoming
    return _new_request_id()


class _RequestIds:
    """Unique ids without a system call per request: a random 64-bit prefix
    per process and a counter. A forked worker must not repeat its parent's
    ids: the prefix is drawn again in the child (glibc's getpid is a system
    call, so asking it per request would cost one)."""

    def __init__(self) -> None:
        self._draw()
        if hasattr(os, "register_at_fork"):  # no fork, no need (Windows)
            os.register_at_fork(after_in_child=self._draw)

    def _draw(self) -> None:
        # The prefix in the high 64 bits, the count in the low ones.
        self._counter = itertools.count(int.from_bytes(os.urandom(8), "big") << 64)

    def __call__(self) -> str:
        # 32 hex digits; to_bytes().hex() costs half of a format spec.
        return next(self._counter).to_bytes(16, "big").hex()


# Process-wide on purpose: ids must be unique across all of a process's
# servers and threads (itertools.count is atomic under the GIL).
_new_request_id = _RequestIds()


# -- reading the headers --------------------------------------------------


def _from_forwarded(value: str, trust: ProxyTrust) -> _Forwarding | None:
    """The element written by the outermost trusted proxy, or None if malformed.

    A malformed header is ignored whole, X-Forwarded-* included: a client
    could otherwise break the header on purpose to have a forgeable
    fallback believed.
    """
    elements = _parse_forwarded(value)
    if not elements:
        return None
    nodes = [_parse_node(element.get("for", "unknown"), bare_ipv6=False) for element in elements]
    index = _client_index([address for address, _ in nodes], trust)
    element = elements[index]
    address, port = nodes[index]
    return _Forwarding(address=address, port=port,
                       proto=element.get("proto"), host=element.get("host"))


def _parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """RFC 7239 section 4 elements as {lower-case name: value}; None if malformed."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _PAIR.match(value, position)
        if match is None or match.end() == position:
            return None
        name, raw, separator = match.groups()
        if name is not None:
            name = name.lower()
            if name in current:  # RFC 7239 section 4: each name at most once
                return None
            current[name] = _UNQUOTE.sub(r"\1", raw[1:-1]) if raw[0] == '"' else raw
        if separator != ";":
            if current:
                elements.append(current)
            current = {}
        position = match.end()
    if current:
        elements.append(current)
    return elements


def _from_x_forwarded(environ: dict[str, Any], trust: ProxyTrust) -> _Forwarding | None:
    """X-Forwarded-For/-Proto/-Host/-Port, lists aligned from the right."""
    chain = environ.get("HTTP_X_FORWARDED_FOR")
    address = port = None
    hops_skipped = 0
    if chain is not None:
        nodes = [_parse_node(item.strip(), bare_ipv6=True) for item in chain.split(",")]
        index = _client_index([node_address for node_address, _ in nodes], trust)
        address, port = nodes[index]
        hops_skipped = len(nodes) - 1 - index
    proto = _aligned(environ.get("HTTP_X_FORWARDED_PROTO"), hops_skipped)
    host = _aligned(environ.get("HTTP_X_FORWARDED_HOST"), hops_skipped)
    server_port = _aligned(environ.get("HTTP_X_FORWARDED_PORT"), hops_skipped)
    if chain is None and proto is None and host is None and server_port is None:
        return None
    return _Forwarding(address, port, proto, host, server_port)


def _aligned(value: str | None, hops_skipped: int) -> str | None:
    """The list item written by the same proxy as the chosen X-Forwarded-For hop.

    Proxies that append keep the lists aligned; a list too short to align
    was overwritten, and its last item is the nearest proxy's word.
    """
    if value is None:
        return None
    items = [item.strip() for item in value.split(",")]
    return items[-1 - hops_skipped] if hops_skipped < len(items) else items[-1]


def _client_index(addresses: list[str | None], trust: ProxyTrust) -> int:
    """Walk the chain from the right past trusted hops; the first untrusted
    one is the client. An unknown or obfuscated hop (None) is untrusted."""
    for index in range(len(addresses) - 1, -1, -1):
        address = addresses[index]
        if address is None or not trust.trusts(address):
            return index
    return 0


def _parse_node(text: str, bare_ipv6: bool) -> tuple[str | None, str | None]:
    """(address, port) of an RFC 7239 node; None for what is not an IP or port."""
    match, version = _BRACKETED_NODE.fullmatch(text), 6
    if match is None:
        match, version = _IPV4_NODE.fullmatch(text), 4
    if match is None:
        ip = _ip(text) if bare_ipv6 else None
        return (str(ip), None) if ip is not None and ip.version == 6 else (None, None)
    ip = _ip(match.group(1))
    if ip is None or ip.version != version:
        return None, None
    port = match.group(2)
    return str(ip), (str(int(port)) if port is not None and _valid_port(port) else None)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# -- writing the environ --------------------------------------------------


def _apply(environ: dict[str, Any], forwarding: _Forwarding) -> None:
    """Set the environ from what the proxy said; invalid values are ignored."""
    if forwarding.address is not None:
        environ["REMOTE_ADDR"] = forwarding.address
        if forwarding.port is not None:
            environ["REMOTE_PORT"] = forwarding.port
    scheme = _scheme(forwarding.proto)
    if scheme is not None:
        environ["wsgi.url_scheme"] = scheme
    host = _host(forwarding.host)
    if host is not None:
        environ["HTTP_HOST"] = forwarding.host
        environ["SERVER_NAME"] = host
    server_port = forwarding.server_port
    if server_port is not None and not _valid_port(server_port):
        server_port = None
    if scheme is not None or host is not None or server_port is not None:
        environ["SERVER_PORT"] = str(int(server_port)) if server_port else _host_port(environ)


def _scheme(proto: str | None) -> str | None:
    """RFC 7239 section 5.4: a URI scheme; only the two HTTP ones are served."""
    scheme = (proto or "").lower()
    return scheme if scheme in _DEFAULT_PORTS else None


def _host(host: str | None) -> str | None:
    """The name or address in a valid Host value (no brackets), else None."""
    match = _HOST.fullmatch(host) if host else None
    if match is None or not _valid_host(match):
        return None
    return match.group(1).strip("[]")


def _valid_host(match: re.Match[str]) -> bool:
    name, port = match.groups()
    if name.startswith("[") and not isinstance(_ip(name[1:-1]), ipaddress.IPv6Address):
        return False
    return port is None or _valid_port(port)


def _valid_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and 0 < int(text) < 65536


def _host_port(environ: dict[str, Any]) -> str:
    """The port of the (possibly forwarded) Host, else the scheme's default."""
    host = _HOST.fullmatch(environ.get("HTTP_HOST", ""))
    if host is not None and host.group(2) is not None and _valid_port(host.group(2)):
        return str(int(host.group(2)))
    return _DEFAULT_PORTS.get(environ.get("wsgi.url_scheme", "http"), "80")
