"""RFC 6455 WebSocket: the opening handshake, framing, and a blocking session.

handshake.py and frames.py are sans-IO (no socket, threading, time, logging
or environ keys); session.py is the blocking WebSocket an application uses on its
worker thread once the server has answered 101 and handed the socket over.
"""

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
    headers_from_request,
    response_headers,
)
from .session import ConnectionClosed, WebSocket

__all__ = [
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
    "headers_from_request",
    "response_headers",
    "ConnectionClosed",
    "WebSocket",
]
