"""The sans-IO HTTP/1.1 layer: bytes in, events out, and response bytes.

Nothing here knows sockets, threads, time, logging or WSGI.
"""

from .events import NEED_DATA, PAUSED, Data, EndOfMessage, Event, Framing, Request
from .parser import RequestParser
from .policy import ParserLimits
from .state import After, ConnectionState
from .writer import (
    BodyFramer,
    BodyFraming,
    ResponseHead,
    body_allowed,
    choose_framing,
    encode_chunk,
    encode_head,
    reason_phrase,
)

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Data",
    "EndOfMessage",
    "Event",
    "Framing",
    "Request",
    "ParserLimits",
    "RequestParser",
    "After",
    "ConnectionState",
    "BodyFramer",
    "BodyFraming",
    "ResponseHead",
    "body_allowed",
    "choose_framing",
    "encode_chunk",
    "encode_head",
    "reason_phrase",
]
