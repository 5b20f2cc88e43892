"""A small HTTP/2 client over a real socket, on the h2 library, for tests
that need to see frames (resets, GOAWAY, windows) or to misbehave."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


class H2Socket:
    """One HTTP/2 connection; every wait is bounded by ``timeout`` seconds."""

    def __init__(self, address: tuple[str, int], *, context: ssl.SSLContext | None = None,
                 settings: dict[int, int] | None = None, timeout: float = 5.0,
                 preface: bool = True, validate: bool = True) -> None:
        sock = socket.create_connection(address, timeout=timeout)
        if context is not None:
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.timeout = timeout
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=validate,
            normalize_outbound_headers=validate))
        if settings:
            self.h2.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.events: list[Any] = []
        self.closed = False
        self.auto_ack = True
        if preface:
            self.h2.initiate_connection()
            self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str = "/", method: str = "GET", body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None, end: bool = True,
                authority: str = "localhost") -> int:
        stream_id = self.h2.get_next_available_stream_id()
        block = [(":method", method), (":scheme", "https"), (":path", path),
                 (":authority", authority), *(headers or [])]
        self.h2.send_headers(stream_id, block, end_stream=body is None and end)
        self.flush()
        if body is not None:
            self.send_body(stream_id, body, end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        deadline = time.monotonic() + self.timeout
        while body:
            window = min(self.h2.local_flow_control_window(stream_id),
                         self.h2.max_outbound_frame_size)
            if window <= 0:
                assert time.monotonic() < deadline, "no window to send the body"
                self.read_some(0.2)
                continue
            self.h2.send_data(stream_id, body[:window])
            body = body[window:]
            self.flush()
        if end:
            self.h2.end_stream(stream_id)
            self.flush()

    def read_some(self, wait: float) -> list[Any]:
        """Handle what arrives within ``wait`` seconds (at least one read)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, ssl.SSLWantReadError):
            return []
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.closed = True
            return []
        events = self.h2.receive_data(data)
        self.events += events
        for event in events:
            if isinstance(event, h2.events.DataReceived) and self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        try:
            self.flush()
        except OSError:
            self.closed = True
        return events

    def wait_for(self, done, what: str, timeout: float | None = None) -> None:
        """Read until ``done()``; AssertionError naming ``what`` after the timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not done():
            left = deadline - time.monotonic()
            assert left > 0 and not self.closed, f"no {what} (closed: {self.closed})"
            self.read_some(min(left, 0.5))

    def ended(self, stream_id: int) -> bool:
        return any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                   and e.stream_id == stream_id for e in self.events)

    def response(self, stream_id: int, timeout: float | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) once the stream has ended."""
        self.wait_for(lambda: self.ended(stream_id), f"end of stream {stream_id}", timeout)
        status, headers, body = 0, {}, b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                status = int(headers[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return status, headers, body

    def of_type(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def goaway(self, timeout: float | None = None) -> Any:
        """The GOAWAY the server sent (waits for it)."""
        self.wait_for(lambda: self.of_type(h2.events.ConnectionTerminated), "GOAWAY", timeout)
        return self.of_type(h2.events.ConnectionTerminated)[0]

    def wait_closed(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed and time.monotonic() < deadline:
            try:
                self.read_some(0.2)
            except h2.exceptions.ProtocolError:
                pass  # frames after GOAWAY: the server is closing anyway

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One raw frame (RFC 9113 section 4.1), for what h2 as a client will not send."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream_id.to_bytes(4, "big") + payload
