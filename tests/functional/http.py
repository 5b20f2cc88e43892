"""A strict little HTTP/1.1 response reader for tests over raw sockets."""

from __future__ import annotations

import socket
import weakref
from dataclasses import dataclass, field

# Bytes read past one response, kept for the next read on the same socket.
_leftovers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    raw_body: bytes
    body: bytes = field(default=b"")

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = _leftovers.get(sock, b"")

    def fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed mid-response")
        self.buffer += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self.fill()
        data, _, self.buffer = self.buffer.partition(marker)
        return data

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def read_response(sock: socket.socket, method: str = "GET") -> RawResponse:
    """Read one response (skipping 1xx) from ``sock``; leftovers stay for the next call."""
    reader = _Reader(sock)
    while True:
        head = reader.until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ")[1])
        if status >= 200:
            break
    headers = [tuple(line.split(": ", 1)) for line in lines]
    response = RawResponse(status, headers, b"")  # type: ignore[arg-type]
    if method == "HEAD" or status in (204, 304):
        pass
    elif response.header("transfer-encoding") == "chunked":
        raw, body = b"", b""
        while True:
            size_line = reader.until(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            raw += size_line + b"\r\n"
            if size == 0:
                trailers = reader.exactly(2)
                if trailers != b"\r\n":
                    trailers += reader.until(b"\r\n\r\n") + b"\r\n\r\n"
                raw += trailers
                break
            data = reader.exactly(size + 2)
            raw += data
            body += data[:-2]
        response.raw_body, response.body = raw, body
    elif response.header("content-length") is not None:
        response.raw_body = response.body = reader.exactly(int(response.header("content-length")))
    _leftovers[sock] = reader.buffer
    return response
