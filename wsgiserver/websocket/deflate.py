"""permessage-deflate (RFC 7692): choosing an offer, and compressing and
inflating one message at a time within a size bound.

Sans-IO: strings and bytes in and out, no sockets, threads, clocks, logging
or environ keys. The server's policy keeps no compression state between
messages on either side: it always answers ``server_no_context_takeover``
and ``client_no_context_takeover`` (RFC 7692 sections 7.1.1.1 and 7.1.1.2
let it), so an idle WebSocket holds no zlib memory at all, which is what
makes thousands of open WebSockets cheap.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from ..protocol.grammar import QUOTED_STRING_TEXT, TOKEN_TEXT

__all__ = ["Deflate", "Inflater", "InflateTooLarge", "compressed_bound", "negotiate"]

EXTENSION = "permessage-deflate"
# RFC 7692 section 7.2.1: a sender removes these four bytes of a sync flush
# from the end of every compressed message; a receiver puts them back.
_TAIL = b"\x00\x00\xff\xff"
# Messages shorter than this go uncompressed (section 6: per message choice):
# deflate's own framing would make them longer.
_COMPRESS_FROM = 64
# RFC 7692 section 7.1.2: window sizes are 8 to 15 bits. zlib cannot make a
# raw deflate stream with an 8-bit window (it uses 9), so an offer that
# insists on 8 for the server is declined.
_SMALLEST_OUR_WINDOW = 9

# RFC 6455 section 9.1: extension = extension-token *( ";" extension-param )
#   extension-param = token [ "=" (token | quoted-string) ]
_PARAM = re.compile(rf"\s*({TOKEN_TEXT})\s*(?:=\s*({TOKEN_TEXT}|{QUOTED_STRING_TEXT}))?\s*")
_BITS = re.compile(r"(?:[89]|1[0-5])")


class InflateTooLarge(Exception):
    """A compressed message inflates past the size bound (close with 1009)."""


@dataclass(frozen=True)
class Deflate:
    """What was agreed: the window our messages use, and the response's value."""

    server_window_bits: int = 15
    response: str = f"{EXTENSION}; server_no_context_takeover; client_no_context_takeover"
    level: int = 6

    def compress(self, payload: bytes) -> bytes | None:
        """``payload`` compressed as one message, or None to send it as it is."""
        if len(payload) < _COMPRESS_FROM:
            return None
        # No context takeover: a fresh compressor per message, nothing kept.
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -self.server_window_bits)
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(_TAIL):
            data = data[: -len(_TAIL)]
        return data if len(data) < len(payload) else None

    def inflater(self, max_bytes: int) -> Inflater:
        """A decompressor for one incoming message of at most ``max_bytes``."""
        return Inflater(max_bytes)


def compressed_bound(max_bytes: int) -> int:
    """The most wire bytes a compressed message of at most ``max_bytes``
    inflated may take. Deflate stores incompressible data in blocks of up
    to 65,535 bytes with 5 of framing each, and a sender flushes once per
    fragment (about 10 bytes more each); an eighth over, plus 64 KiB,
    covers every honest encoder. Memory is bounded by the inflater anyway:
    this only stops a client feeding empty blocks for ever."""
    return max_bytes + max_bytes // 8 + 65536


class Inflater:
    """Inflates one message's compressed frames as they arrive, never more than
    ``max_bytes`` in all: a compression bomb is stopped, not inflated."""

    __slots__ = ("_left", "_zlib")

    def __init__(self, max_bytes: int) -> None:
        self._left = max_bytes
        # The client resets its context for every message (we said so), so a
        # 15-bit window reads any window it used.
        self._zlib = zlib.decompressobj(-15)

    def feed(self, data: bytes) -> bytes:
        """The inflated bytes of ``data``; InflateTooLarge past the bound."""
        try:
            out = self._zlib.decompress(data, self._left + 1)
        except zlib.error as error:
            raise ValueError(f"invalid compressed data: {error}") from None
        if len(out) > self._left or self._zlib.unconsumed_tail:
            raise InflateTooLarge()
        self._left -= len(out)
        return out

    def finish(self) -> bytes:
        """The last inflated bytes: the message's end (section 7.2.2)."""
        return self.feed(_TAIL)


def negotiate(header: str | None) -> Deflate | None:
    """The first ``permessage-deflate`` offer in a Sec-WebSocket-Extensions
    value that we can honour (RFC 7692 section 5), or None."""
    if not header:
        return None
    for offer in _split_list(header):
        name, _, rest = offer.partition(";")
        if name.strip().lower() != EXTENSION:
            continue
        agreed = _accept(rest)
        if agreed is not None:
            return agreed
    return None


def _split_list(header: str) -> list[str]:
    """Comma-separated elements, commas inside quoted strings kept."""
    elements: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            elements.append("".join(current))
            current = []
        else:
            current.append(char)
    elements.append("".join(current))
    return [element for element in elements if element.strip()]


def _accept(parameters: str) -> Deflate | None:
    """Our answer to one offer's parameters; None to decline it (section 7)."""
    seen: dict[str, str | None] = {}
    for piece in parameters.split(";") if parameters.strip() else []:
        match = _PARAM.fullmatch(piece)
        if match is None:
            return None
        name, value = match.group(1).lower(), match.group(2)
        if value is not None and value.startswith('"'):
            value = value[1:-1]
        if name in seen:
            return None  # section 7: a parameter appears at most once
        seen[name] = value
    server_bits = 15
    for name, value in seen.items():
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
        elif name == "server_max_window_bits":
            if value is None or not _BITS.fullmatch(value):
                return None
            server_bits = int(value)
        elif name == "client_max_window_bits":
            if value is not None and not _BITS.fullmatch(value):
                return None
        else:
            return None  # an unknown parameter: decline this offer
    if server_bits < _SMALLEST_OUR_WINDOW:
        return None
    response = f"{EXTENSION}; server_no_context_takeover; client_no_context_takeover"
    if "server_max_window_bits" in seen:
        response += f"; server_max_window_bits={server_bits}"
    return Deflate(server_window_bits=server_bits, response=response)
