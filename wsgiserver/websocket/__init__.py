"""RFC 6455 WebSocket: the opening handshake, framing, and a blocking session.

handshake.py and frames.py are sans-IO (no socket, threading, time, logging
or environ keys); environ.py reads the handshake's fields from a WSGI
environ; session.py is the blocking WebSocket an application uses on its
worker thread once the server has answered 101 and handed the socket over.
"""

from .environ import headers_from_environ
from .frames import (
    MAX_CONTROL_PAYLOAD,
    NEED_DATA,
    BinaryMessage,
    CloseCode,
    CloseReceived,
    FrameParser,
    Opcode,
    Ping,
    Pong,
    TextMessage,
    WebSocketError,
    encode_close,
    encode_frame,
    is_valid_close_code,
)
from .handshake import (
    WEBSOCKET_VERSION,
    HandshakeError,
    accept_value,
    check_handshake,
    response_headers,
)
from .session import ConnectionClosed, WebSocket

__all__ = [
    "headers_from_environ",
    "MAX_CONTROL_PAYLOAD",
    "NEED_DATA",
    "BinaryMessage",
    "CloseCode",
    "CloseReceived",
    "FrameParser",
    "Opcode",
    "Ping",
    "Pong",
    "TextMessage",
    "WebSocketError",
    "encode_close",
    "encode_frame",
    "is_valid_close_code",
    "WEBSOCKET_VERSION",
    "HandshakeError",
    "accept_value",
    "check_handshake",
    "response_headers",
    "ConnectionClosed",
    "WebSocket",
]
