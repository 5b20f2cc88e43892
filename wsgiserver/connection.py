"""One client connection: received bytes to the parser, complete requests to
the WSGI adapter, responses back; keep-alive, pipelining, timeouts, closing.

The only place that turns a ProtocolError into an error response. Knows the
socket and the parser's events, not the grammar; knows nothing of the
selector or the thread pool (the server drives it: ``on_readable`` when
bytes arrive, ``expire`` when its deadline has passed).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import BodyReadError, ClientDisconnected, ProtocolError
from .protocol.events import NEED_DATA, Data, Framing, Request
from .protocol.parser import ParserLimits, RequestParser
from .protocol.writer import reason_phrase
from .proxy import ProxyTrust, apply_proxy_headers, request_id
from .response import ResponseWriter
from .wsgi import EnvironBuilder, InputStream, run_application

if TYPE_CHECKING:  # ssl costs megabytes of memory: imported only for TLS listeners
    import ssl

    from .accesslog import AccessLog
    from .upgrade import WebSocketRegistry

__all__ = ["Connection", "ConnectionSettings"]

log = logging.getLogger("wsgiserver")

_RECV_SIZE = 64 * 1024
# After an error response, unread bytes from the client are read and thrown
# away for a moment before closing; closing with unread data makes the
# kernel send RST, which can destroy the response before the client reads it.
_LINGER_SECONDS = 2.0
# Waiting for the rest of an unread body costs a worker; cap the wait.
_DRAIN_SECONDS = 5.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Bodies up to this size (with a Content-Length) are read while the
# connection waits in the poller, before a worker takes the request: a client
# trickling a small body then holds no thread. Larger bodies stream to the
# app as it reads them.
_BUFFERED_BODY_LIMIT = 64 * 1024
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST
# "Not now" from a non-blocking socket (TLS sockets add their own, see _tls_would_block).
_WOULD_BLOCK: tuple[type[Exception], ...] = (BlockingIOError, InterruptedError)


@dataclass(frozen=True)
class ConnectionSettings:
    """What every connection of one listening socket shares."""

    app: Callable
    environ: EnvironBuilder
    limits: ParserLimits
    keepalive_timeout: float
    header_timeout: float
    body_timeout: float
    write_timeout: float
    max_drain_bytes: int
    date: Callable[[], str] | None
    server_name: str | None
    stopping: threading.Event
    use_sendfile: bool = True
    websockets: WebSocketRegistry | None = None
    max_websocket_message_bytes: int = 1 << 20
    proxy_trust: ProxyTrust | None = None
    access_log: AccessLog | None = None


class Connection:
    """A client connection, driven by whichever worker thread holds ``lock``."""

    def __init__(
        self,
        sock: socket.socket,
        remote,
        settings: ConnectionSettings,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.fd = sock.fileno()
        # TLS: the handshake runs in on_readable as bytes arrive, so a slow
        # or bogus handshake holds no worker and never blocks the poller.
        self._handshaking = ssl_context is not None
        self._would_block = _WOULD_BLOCK
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
            self._would_block = _tls_would_block()
        self.sock = sock
        self.remote = remote
        self.settings = settings
        self.parser = RequestParser(settings.limits)
        # Held by the worker serving the connection; the reaper only closes
        # a connection whose lock it can take, so it never closes under a worker.
        self.lock = threading.Lock()
        self.closed = False
        self._tls = ssl_context is not None
        self.deadline = time.monotonic() + settings.header_timeout
        self._head_started: float | None = None
        self._lingering = False
        self._writer: ResponseWriter | None = None
        self._continue_pending = False
        self._body_failed = False
        self._upgrade = None
        self._pending: Request | None = None  # its head is here, its body is coming

    # -- driven by the server ----------------------------------------------

    def on_readable(self) -> bool:
        """Read what arrived and serve every complete request.

        Returns True to be watched for more bytes, False once closed.
        """
        if self._handshaking and not self._handshake():
            return not self.closed
        try:
            data = self._recv_ready()
        except self._would_block:
            return True
        except OSError:
            return self.close()
        if not data:
            return self.close()
        if self._lingering:
            return True  # discard: we are closing
        self.parser.feed(data)
        return self._serve_available()

    def _recv_ready(self) -> bytes:
        """What the socket holds now (for TLS, everything already decrypted too:
        the poller cannot see bytes buffered inside the TLS layer)."""
        data = self.sock.recv(_RECV_SIZE)
        if self._tls and data:
            pending = self.sock.pending()
            while pending:
                data += self.sock.recv(pending)
                pending = self.sock.pending()
        return data

    def _handshake(self) -> bool:
        """Advance the TLS handshake; True once it is complete."""
        import ssl

        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLWantWriteError:
            if not self._wait(select.POLLOUT, time.monotonic() + self.settings.write_timeout):
                self.close()
            return False
        except (OSError, ValueError) as error:
            # Plain HTTP on the TLS port, scanners, expired handshakes: quietly.
            log.debug("%s: TLS handshake failed: %s", self._peer(), error)
            self.close()
            return False
        self._handshaking = False
        return True

    @property
    def receiving_head(self) -> bool:
        """True while part of a request has arrived and the rest has not."""
        if self._lingering or self.closed:
            return False
        return bool(self.parser.buffered) or self._pending is not None

    def expire(self) -> None:
        """The deadline passed: send 408 for a half-received head (the server closes)."""
        waiting = self._head_started is not None or self._pending is not None
        if waiting and not self._lingering and not self.closed:
            head = self._error_head(408, "request not received in time")
            self._log_refused(408, len(head))
            try:
                self.sock.send(head)
            except OSError:
                pass
            log.debug("%s: request head timed out", self._peer())

    def close(self) -> bool:
        """Close the socket now. Returns False (no longer watched)."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass
        return False

    # -- requests ----------------------------------------------------------

    def _serve_available(self) -> bool:
        while True:
            if self._pending is not None:
                event, self._pending = self._pending, None
            else:
                try:
                    event = self.parser.next_event()
                except ProtocolError as error:
                    return self._reject(error)
                if event is NEED_DATA:
                    self._wait_for_request()
                    return True
            if self._body_still_arriving(event):
                self._pending = event  # served once its body is all here
                self.deadline = time.monotonic() + self.settings.body_timeout
                return True
            if not self._serve(event):
                return not self.closed  # lingering connections stay watched

    def _body_still_arriving(self, request: Request) -> bool:
        return (
            request.framing is Framing.LENGTH
            and not request.expect_continue
            and (request.content_length or 0) <= _BUFFERED_BODY_LIMIT
            and self.parser.buffered < (request.content_length or 0)
        )

    def _wait_for_request(self) -> None:
        now = time.monotonic()
        if self.parser.buffered:
            if self._head_started is None:
                self._head_started = now
            self.deadline = self._head_started + self.settings.header_timeout
        else:
            self.deadline = now + self.settings.keepalive_timeout

    def _serve(self, request: Request) -> bool:
        """Run one request; True when the connection can carry another."""
        settings = self.settings
        self._head_started = None
        writer = ResponseWriter(
            self._send,
            method=request.method,
            http_version=request.http_version,
            keep_alive=request.keep_alive and not settings.stopping.is_set(),
            date=settings.date,
            server_name=settings.server_name,
            closing=settings.stopping.is_set,
        )
        self._writer = writer
        self._continue_pending = request.expect_continue and request.framing is not Framing.NONE
        self._body_failed = False
        environ = settings.environ.build(request, InputStream(self._receive_body), self.remote)
        self._apply_proxy(environ)
        upgrade = self._offer_upgrade(environ, writer)
        send_file = self._send_file if settings.use_sendfile else None
        started = time.perf_counter()
        completed = run_application(settings.app, environ, writer, send_file)
        if settings.access_log is not None:
            settings.access_log.record(environ, writer.status_code, writer.response_headers,
                                       writer.body_bytes, time.perf_counter() - started)
        if writer.upgraded:
            upgrade.finish()
            self.close()  # an upgraded connection never returns to HTTP
        elif not completed:
            self._abort()
        elif self._body_failed:
            self._linger()
        elif not writer.keep_alive or settings.stopping.is_set():
            self._end()
        elif not self._drain_body():
            self._linger()
        else:
            self.parser.start_next_request()
            return True
        return False

    def _apply_proxy(self, environ: dict) -> None:
        """Believe forwarding fields from trusted proxies only; drop them otherwise."""
        trust = self.settings.proxy_trust
        trusted = trust is not None and trust.trusts(environ["REMOTE_ADDR"])
        apply_proxy_headers(environ, trust)
        environ["wsgiserver.request_id"] = request_id(environ, trusted)

    def _offer_upgrade(self, environ: dict, writer: ResponseWriter):
        """Offer ``environ["wsgiserver.websocket"]`` to a WebSocket handshake."""
        self._upgrade = None  # an earlier request's offer, if it was not taken
        registry = self.settings.websockets
        if registry is None or "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
            return None
        from .upgrade import ENVIRON_KEY, WebSocketUpgrade

        upgrade = WebSocketUpgrade(
            environ,
            send=self._send,
            recv=self._websocket_recv,
            take_over=writer.take_over,
            registry=registry,
            max_message_bytes=self.settings.max_websocket_message_bytes,
        )
        environ[ENVIRON_KEY] = upgrade
        self._upgrade = upgrade
        return upgrade

    def _websocket_recv(self, max_bytes: int) -> bytes:
        """Block until bytes arrive for the WebSocket. Idle sockets wait
        without limit; once a close handshake is under way the wait is cut
        into short slices, so the handshake's own deadline can end it."""
        closing_since = None
        while True:
            try:
                return self._recv_ready()
            except self._would_block:
                pass
            websocket = self._upgrade.websocket if self._upgrade else None
            if self.closed or (websocket is not None and websocket.closed):
                raise ConnectionAbortedError("the WebSocket is closed")
            if websocket is not None and websocket.closing:
                closing_since = closing_since or time.monotonic()
                if time.monotonic() - closing_since > websocket.close_timeout + 1:
                    raise TimeoutError("no Close frame from the peer")
            self._wait(select.POLLIN, time.monotonic() + 0.25)

    def _end(self) -> None:
        """Close after a response; linger if the client may still be sending."""
        if self.parser.buffered or self.parser.body_pending:
            self._linger()
        else:
            self.close()

    def _receive_body(self, max_bytes: int) -> bytes:
        """The next piece of the request body for ``wsgi.input``; b"" at its end."""
        if self._continue_pending:
            self._continue_pending = False
            if self._writer is not None and not self._writer.head_sent:
                self._send(_CONTINUE)
        parser = self.parser
        while True:
            try:
                event = parser.next_event(max_bytes)
            except ProtocolError as error:
                self._body_failed = True
                raise BodyReadError(error.detail, error.status) from None
            if type(event) is Data:
                return event.data
            if event is not NEED_DATA:
                return b""  # EndOfMessage, then PAUSED
            parser.feed(self._receive_more(self.settings.body_timeout))

    def _receive_more(self, timeout: float) -> bytes:
        try:
            data = self._recv_waiting(timeout)
        except TimeoutError:
            self._body_failed = True
            raise BodyReadError("request body not received in time", 408) from None
        except OSError:
            data = b""
        if not data:
            self._body_failed = True
            raise BodyReadError("client closed the connection before the body ended")
        return data

    def _drain_body(self) -> bool:
        """Read and discard what the app left of the body, within bounds."""
        if not self.parser.body_pending:
            return True
        if self._continue_pending:
            return False  # no 100 was sent: the client may never send the body
        budget = self.settings.max_drain_bytes
        settings = self.settings
        try:
            while budget >= 0:
                event = self.parser.next_event(budget + 1)
                if type(event) is Data:
                    budget -= len(event.data)
                elif event is NEED_DATA:
                    self.parser.feed(self._receive_more(min(settings.body_timeout, _DRAIN_SECONDS)))
                else:
                    return True
        except (ProtocolError, BodyReadError):
            return False
        return False

    # -- error answers and closing -------------------------------------------

    def _reject(self, error: ProtocolError) -> bool:
        """Answer a request we could not parse, and close: framing is lost."""
        log.debug("%s: %d %s", self._peer(), error.status, error.detail)
        response = self._error_head(error.status, error.detail)
        self._log_refused(error.status, len(response))
        try:
            self._send(response)
        except ClientDisconnected:
            return self.close()
        return self._linger()

    def _log_refused(self, status: int, size: int) -> None:
        """An access-log line for a request that never reached the app."""
        if self.settings.access_log is None:
            return
        remote = self.remote or ("", "")
        environ = {"REMOTE_ADDR": remote[0], "REMOTE_PORT": str(remote[1])}
        self.settings.access_log.record(environ, status, [], size, 0.0)

    def _error_head(self, status: int, detail: str) -> bytes:
        body = f"{status} {reason_phrase(status)}: {detail}\n".encode()
        fields = [
            f"HTTP/1.1 {status} {reason_phrase(status)}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if self.settings.date is not None:
            fields.append(f"Date: {self.settings.date()}")
        if self.settings.server_name:
            fields.append(f"Server: {self.settings.server_name}")
        return ("\r\n".join(fields) + "\r\n\r\n").encode() + body

    def _linger(self) -> bool:
        """Stop sending, keep reading (and discarding) for a moment, then close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return self.close()
        self._lingering = True
        self.deadline = time.monotonic() + _LINGER_SECONDS
        return True

    def _abort(self) -> bool:
        """End a response that cannot be completed: reset, so no client
        mistakes what it got for a whole response."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        except OSError:
            pass
        return self.close()

    def _peer(self) -> str:
        return f"{self.remote[0]}:{self.remote[1]}" if self.remote else "peer"

    # -- socket I/O with timeouts (the socket is non-blocking) --------------

    def _wait(self, events: int, deadline: float) -> bool:
        poller = select.poll()
        poller.register(self.fd, events)
        while (remaining := deadline - time.monotonic()) > 0:
            if poller.poll(remaining * 1000):
                return True
        return False

    def _recv_waiting(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._recv_ready()
            except self._would_block:
                if not self._wait(select.POLLIN, deadline):
                    raise TimeoutError("read timed out") from None

    def _send(self, data: bytes) -> None:
        """Send all of ``data`` or raise ClientDisconnected."""
        sock = self.sock
        try:
            sent = sock.send(data)
        except self._would_block:
            sent = 0
        except OSError as error:
            raise ClientDisconnected(str(error)) from None
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            if not self._wait(select.POLLOUT, time.monotonic() + self.settings.write_timeout):
                raise ClientDisconnected("write timed out")
            try:
                view = view[sock.send(view):]
            except self._would_block:
                continue
            except OSError as error:
                raise ClientDisconnected(str(error)) from None

    def _send_file(self, file_fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of a file with sendfile; the number sent.

        The socket blocks for the duration, with the write timeout as its
        kernel send timeout: one sendfile call then moves the whole file
        (the kernel waits for buffer space itself), instead of one call and
        one poll per socket buffer's worth.
        """
        sent = 0
        self.sock.setblocking(True)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._send_timeout)
        try:
            while sent < count:
                try:
                    done = os.sendfile(self.fd, file_fd, offset + sent, count - sent)
                except InterruptedError:
                    continue
                except BlockingIOError:  # SO_SNDTIMEO expired with nothing sent
                    raise ClientDisconnected("write timed out") from None
                except OSError as error:
                    raise ClientDisconnected(str(error)) from None
                if done == 0:
                    break  # the file is shorter than it was
                sent += done
        finally:
            self.sock.setblocking(False)
        return sent

    @property
    def _send_timeout(self) -> bytes:
        seconds = self.settings.write_timeout
        return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def _tls_would_block() -> tuple[type[Exception], ...]:
    """``_WOULD_BLOCK`` plus the TLS layer's own "not now" errors."""
    import ssl

    return _WOULD_BLOCK + (ssl.SSLWantReadError, ssl.SSLWantWriteError)
