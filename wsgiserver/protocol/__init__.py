"""The sans-IO HTTP/1.1 layer: bytes in, events out, and response bytes.

Nothing here knows sockets, threads, time, logging or WSGI.
"""

from .events import NEED_DATA, PAUSED, Data, EndOfMessage, Framing, Request
from .parser import ParserLimits, RequestParser
from .writer import BodyFraming, body_allowed, choose_framing, encode_chunk, encode_head

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Data",
    "EndOfMessage",
    "Framing",
    "Request",
    "ParserLimits",
    "RequestParser",
    "BodyFraming",
    "body_allowed",
    "choose_framing",
    "encode_chunk",
    "encode_head",
]
