"""The RFC 6455 opening handshake: request headers in, 101 headers or an error out.

Sans-IO: it sees the request's method, version and header fields as plain
strings and knows nothing of sockets, threads, clocks, logging or WSGI environ
keys (environ.py turns an environ into the mapping used here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping

from ..protocol.grammar import token_text

__all__ = [
    "HandshakeError",
    "WEBSOCKET_VERSION",
    "check_handshake",
    "accept_value",
    "response_headers",
    "headers_from_request",
]

# RFC 6455 section 4.2.1 item 6: the only version this module speaks.
WEBSOCKET_VERSION = "13"

# RFC 6455 section 1.3: the GUID appended to the key before hashing.
_ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 9110 section 5.6.2: token = 1*tchar. Subprotocol names (RFC 6455
# section 4.1, Sec-WebSocket-Protocol) and connection options are tokens.
_TOKEN = token_text

# RFC 9112 section 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT
_HTTP_VERSION = re.compile(r"(?:HTTP/)?([0-9])\.([0-9])")


class HandshakeError(Exception):
    """The request is not an acceptable WebSocket upgrade.

    ``status`` is the HTTP status to answer with (400 or 426) and ``headers``
    the fields that answer must carry: for 426 the versions this server
    speaks (RFC 6455 section 4.4) and the protocol it requires (RFC 9110
    section 15.5.22). Whoever sends that Upgrade field also lists "upgrade"
    in its Connection field (RFC 9110 section 7.8).
    """

    def __init__(
        self, status: int, detail: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail
        self.headers = headers


def headers_from_request(fields: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """A request's fields as {lower-case name: value}, repeated fields joined
    with commas (RFC 9110 section 5.3), which is how check_handshake reads lists."""
    headers: dict[str, str] = {}
    for name, value in fields:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def check_handshake(
    method: str, headers: Mapping[str, str], http_version: str
) -> tuple[str, list[str]]:
    """Check a client's opening handshake (RFC 6455 section 4.2.1).

    ``headers`` maps lower-case field names to their (comma-joined) values;
    ``http_version`` is "HTTP/1.1" or "1.1". Returns the Sec-WebSocket-Key
    and the subprotocols offered, in the client's order of preference.
    Raises HandshakeError(400) for a malformed request and
    HandshakeError(426) for a version other than 13.
    """
    # Item 1: "an HTTP/1.1 or higher GET request".
    if method != "GET":
        raise HandshakeError(400, f"a WebSocket handshake must be GET, not {method}")
    if _version_tuple(http_version) < (1, 1):
        raise HandshakeError(400, "a WebSocket handshake needs HTTP/1.1 or higher")
    # Items 3 and 4: Upgrade holds "websocket", Connection holds "Upgrade",
    # both compared ASCII case-insensitively.
    if "websocket" not in _token_list(headers.get("upgrade", "")):
        raise HandshakeError(400, "Upgrade: websocket is missing")
    if "upgrade" not in _token_list(headers.get("connection", "")):
        raise HandshakeError(400, "Connection: Upgrade is missing")
    _check_version(headers.get("sec-websocket-version"))
    key = _checked_key(headers.get("sec-websocket-key"))
    return key, _offered_subprotocols(headers.get("sec-websocket-protocol", ""))


def accept_value(key: str) -> str:
    """Sec-WebSocket-Accept for ``key``: base64(SHA-1(key + GUID)) (section 4.2.2)."""
    digest = hashlib.sha1((key + _ACCEPT_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def response_headers(key: str, subprotocol: str | None = None) -> list[tuple[str, str]]:
    """The header fields of the 101 response that completes the handshake.

    ``subprotocol`` must be one the client offered (RFC 6455 section 4.2.2
    item 5.4); None answers with no Sec-WebSocket-Protocol field.
    """
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_value(key)),
    ]
    if subprotocol is not None:
        if not _TOKEN.fullmatch(subprotocol):
            raise ValueError(f"subprotocol {subprotocol!r} is not a token")
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    return headers


def _version_tuple(http_version: str) -> tuple[int, int]:
    match = _HTTP_VERSION.fullmatch(http_version.strip())
    if match is None:
        raise HandshakeError(400, f"unknown HTTP version {http_version!r}")
    return int(match.group(1)), int(match.group(2))


def _token_list(value: str) -> list[str]:
    """A comma-separated list (RFC 9110 section 5.6.1) lower-cased, empties dropped."""
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def _check_version(version: str | None) -> None:
    # Item 6 requires the field; a missing one is a malformed request. A
    # different version gets 426 and the version we speak (section 4.4), so
    # that a client speaking several can retry with 13.
    if version is None:
        raise HandshakeError(400, "Sec-WebSocket-Version is missing")
    if version.strip() != WEBSOCKET_VERSION:
        raise HandshakeError(
            426,
            f"WebSocket version {version.strip()!r} is not supported",
            (("Upgrade", "websocket"), ("Sec-WebSocket-Version", WEBSOCKET_VERSION)),
        )


def _checked_key(key: str | None) -> str:
    # Item 5: "a base64-encoded value that, when decoded, is 16 bytes in length".
    if key is None:
        raise HandshakeError(400, "Sec-WebSocket-Key is missing")
    key = key.strip()
    try:
        decoded = base64.b64decode(key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise HandshakeError(400, "Sec-WebSocket-Key is not base64") from None
    if len(decoded) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key does not decode to 16 bytes")
    return key


def _offered_subprotocols(value: str) -> list[str]:
    # Section 4.1: "one or more comma-separated subprotocol names", each a
    # token; the field may be repeated, which the caller joins with commas.
    offered = [item.strip() for item in value.split(",") if item.strip()]
    for name in offered:
        if not _TOKEN.fullmatch(name):
            raise HandshakeError(400, f"subprotocol {name!r} is not a token")
    return offered
