"""The WSGI side of the handshake: a PEP 3333 environ -> the header mapping.

The one module in this package that knows environ keys; it knows nothing of
sockets or of the WebSocket grammar.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["headers_from_environ"]


def headers_from_environ(environ: Mapping[str, object]) -> dict[str, str]:
    """Every ``HTTP_*`` field of ``environ`` as {lower-case-name: value}.

    ``HTTP_SEC_WEBSOCKET_KEY`` becomes ``sec-websocket-key``; repeated fields
    arrive already comma-joined (PEP 3333 leaves that to the server), which
    is how check_handshake reads lists. CONTENT_TYPE and CONTENT_LENGTH,
    which carry no ``HTTP_`` prefix, play no part in a handshake.
    """
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            headers[key[5:].lower().replace("_", "-")] = value
    return headers
