"""Server: the listening socket, the poller, worker threads and shutdown.

Knows sockets and threads, nothing of HTTP grammar: a connection is told
when its socket is readable (``on_readable``) or its deadline has passed
(``expire``).

Concurrency (see ARCHITECTURE.md): every worker thread waits on one shared
one-shot poller that holds the listening socket and every connection not
being served. The kernel wakes one waiting worker per ready socket, and that
worker reads, parses and serves the request itself, then re-arms the socket
and goes back to waiting. There is no dispatcher thread, so the common
keep-alive request crosses no thread boundary at all; idle and half-received
connections sit in the poller and hold no worker.
"""

from __future__ import annotations

import logging
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .binding import (
    BindSpec,
    describe,
    open_listener,
    parse_bind,
    remove_unix_socket,
    systemd_listeners,
)
from .config import ServerConfig
from .connection import Connection, ConnectionSettings
from .protocol.parser import ParserLimits
from .proxy import ProxyTrust
from .response import HttpDate
from .upgrade import WebSocketRegistry
from .wsgi import EnvironBuilder

if TYPE_CHECKING:  # ssl costs megabytes of memory: only TLS listeners import it
    import ssl

__all__ = ["Server", "Listener", "serve"]

log = logging.getLogger("wsgiserver")

# How often the reaper looks for connections past their deadline.
_REAP_INTERVAL = 0.25
# File descriptors kept free for the application (logs, files, databases).
_RESERVED_FDS = 64


class _Poller:
    """A one-shot readiness poller shared by all worker threads.

    A registered descriptor fires once, to one waiting thread, and stays
    silent until ``rearm``: so no two workers ever serve one connection.
    epoll gives exactly this on Linux; elsewhere a lock lets one thread at a
    time select, and unregistering on delivery makes it one-shot.
    """

    def __init__(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            self._oneshot = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
            # Level-triggered and never disarmed: once written, wakes every waiter.
            self._epoll.register(self._wake_read, select.EPOLLIN)
        else:  # pragma: no cover - exercised on non-Linux systems
            import selectors

            self._epoll = None
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._wake_read, selectors.EVENT_READ)
            self._select_lock = threading.Lock()

    def register(self, fd: int) -> None:
        """Watch ``fd`` for one readable event."""
        if self._epoll is not None:
            self._epoll.register(fd, self._oneshot)
        else:  # pragma: no cover
            import selectors

            self._selector.register(fd, selectors.EVENT_READ)
            self._nudge()

    def rearm(self, fd: int) -> None:
        """Watch ``fd`` again after its event was delivered."""
        if self._epoll is not None:
            self._epoll.modify(fd, self._oneshot)
        else:  # pragma: no cover
            self.register(fd)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed)."""
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:  # pragma: no cover
                self._selector.unregister(fd)
        except (KeyError, OSError, ValueError):
            pass

    def wait(self, timeout: float) -> int | None:
        """The next ready descriptor, or None on timeout or wake-up."""
        if self._epoll is not None:
            events = self._epoll.poll(timeout, 1)
            if events and events[0][0] != self._wake_read:
                return events[0][0]
            return None
        with self._select_lock:  # pragma: no cover
            for key, _ in self._selector.select(timeout):
                if key.fd == self._wake_read:
                    self._drain_wakeups()
                    continue
                self._selector.unregister(key.fd)
                return key.fd
        return None  # pragma: no cover

    def wake_all(self) -> None:
        """Wake every waiting thread for good (shutdown)."""
        os.write(self._wake_write, b"x")

    def _nudge(self) -> None:  # pragma: no cover
        try:
            os.write(self._wake_write, b".")
        except BlockingIOError:
            pass

    def _drain_wakeups(self) -> None:  # pragma: no cover
        try:
            while os.read(self._wake_read, 4096) == b"." * 4096:
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Release the poller's descriptors."""
        if self._epoll is not None:
            self._epoll.close()
        else:  # pragma: no cover
            self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


class Listener:
    """A listening socket, with the TLS context for its connections if any."""

    def __init__(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.sock = sock
        self.ssl_context = ssl_context
        self.settings: ConnectionSettings | None = None  # set by the server
        self.paused = False  # by the connection limit
        self._on_close = on_close

    def describe(self) -> str:
        """Where it listens, as a URL (or ``unix:PATH``)."""
        return describe(self.sock, "https" if self.ssl_context is not None else "http")

    def close(self) -> None:
        """Stop listening (and clean up, e.g. a Unix socket file)."""
        try:
            self.sock.close()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None


class Server:
    """A WSGI server on one listening socket, run by a pool of worker threads.

    ``start()`` returns once it listens (``address`` tells where);
    ``stop()`` shuts down gracefully; ``serve_forever()`` blocks until stopped.
    """

    def __init__(
        self,
        app: Callable,
        config: ServerConfig | None = None,
        *,
        listeners: Sequence[Listener] = (),
        multiprocess: bool | None = None,
    ) -> None:
        self.app = app
        self.config = config or ServerConfig()
        self.listeners = list(listeners)
        self._multiprocess = self.config.workers > 1 if multiprocess is None else multiprocess
        self._poller: _Poller | None = None
        self._by_fd: dict[int, Listener] = {}
        self._connections: dict[int, Connection] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._stopped = threading.Event()  # workers: leave your loops
        self._finished = threading.Event()  # stop() has cleaned everything up
        self._accept_lock = threading.Lock()
        self._table_lock = threading.Lock()
        self._accepting = False
        self._max_connections = self.config.max_connections
        self._websockets = WebSocketRegistry(self.config.max_websockets)
        self._proxy_trust = (
            ProxyTrust(self.config.forwarded_allow_ips) if self.config.forwarded_allow_ips else None
        )
        self._access_log = None  # opened by start(), closed by stop()

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) of the first listening socket."""
        if not self.listeners:
            raise RuntimeError("the server is not bound")
        return self.listeners[0].sock.getsockname()[:2]

    def bind(self) -> list[Listener]:
        """Create the listening sockets from the config, unless given some."""
        if not self.listeners:
            self.listeners = open_listeners(self.config)
        return self.listeners

    def start(self) -> None:
        """Bind, and serve in background threads; returns once listening."""
        self._max_connections = _connection_limit(self.config.max_connections)
        listeners = self.bind()
        self._access_log = _make_access_log(self.config)
        self._poller = _Poller()
        for listener in listeners:
            listener.sock.setblocking(False)
            listener.settings = self._connection_settings(listener)
            self._by_fd[listener.sock.fileno()] = listener
            self._poller.register(listener.sock.fileno())
        self._accepting = True
        for number in range(self.config.threads):
            self._spawn(self._work, f"wsgiserver-worker-{number}")
        self._spawn(self._reap, "wsgiserver-reaper")
        for listener in self.listeners:
            log.info("serving on %s with %d threads", listener.describe(), self.config.threads)

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()`` has finished."""
        if self._poller is None:
            self.start()
        while not self._finished.wait(0.5):
            pass

    def stop(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop accepting, close idle connections, let
        in-flight requests finish within ``timeout`` seconds, then stop."""
        if self._poller is None or self._stopped.is_set():
            return
        grace = self.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + grace
        self._stopping.set()
        self._stop_accepting()
        self._websockets.close_all(1001, "server shutting down")
        while time.monotonic() < deadline:
            self._close_idle()
            if not self._connections:
                break
            time.sleep(0.05)
        self._stopped.set()
        self._poller.wake_all()
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()
        self._poller.close()
        if self._access_log is not None:
            self._access_log.close()
        log.info("stopped")
        self._finished.set()

    def stop_in_background(self) -> None:
        """Start a graceful stop without waiting for it (safe in a signal handler)."""
        threading.Thread(target=self.stop, name="wsgiserver-shutdown", daemon=True).start()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _connection_settings(self, listener: Listener) -> ConnectionSettings:
        config = self.config
        name = listener.sock.getsockname()
        host, port = (name[0], name[1]) if isinstance(name, tuple) else (config.host, 0)
        return ConnectionSettings(
            app=self.app,
            environ=EnvironBuilder(
                server_name=host,
                server_port=port,
                url_scheme="https" if listener.ssl_context is not None else "http",
                multiprocess=self._multiprocess,
                directory=config.directory,
            ),
            limits=ParserLimits(
                max_request_line=config.max_request_line,
                max_header_bytes=config.max_header_bytes,
                max_header_count=config.max_header_count,
                max_body_bytes=config.max_body_bytes,
            ),
            keepalive_timeout=config.keepalive_timeout,
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            write_timeout=config.write_timeout,
            max_drain_bytes=config.max_drain_bytes,
            date=HttpDate() if config.send_date_header else None,
            server_name=config.server_name if config.send_server_header else None,
            stopping=self._stopping,
            use_sendfile=listener.ssl_context is None,
            websockets=self._websockets,
            max_websocket_message_bytes=config.max_websocket_message_bytes,
            proxy_trust=self._proxy_trust,
            access_log=self._access_log,
        )

    # -- the worker loop ---------------------------------------------------

    def _work(self) -> None:
        poller = self._poller
        assert poller is not None
        listeners = self._by_fd
        while not self._stopped.is_set():
            fd = poller.wait(1.0)
            if fd is None:
                continue
            listener = listeners.get(fd)
            if listener is not None:
                self._accept(listener)
                continue
            connection = self._connections.get(fd)
            if connection is not None:
                self._drive(connection)

    def _drive(self, connection: Connection) -> None:
        """Let ``connection`` handle readable bytes, then re-arm or forget it."""
        with connection.lock:
            if not connection.closed:
                self._drive_locked(connection, rearm=self._poller.rearm)

    def _drive_locked(self, connection: Connection, rearm: Callable[[int], None]) -> None:
        try:
            keep = connection.on_readable()
        except BaseException:  # a bug of ours: never let it kill a worker
            log.exception("unexpected error on a connection")
            keep = connection.close()
        if keep:
            try:
                rearm(connection.fd)
                return
            except OSError:
                connection.close()
        self._forget(connection)

    def _accept(self, listener: Listener) -> None:
        """Accept one connection, re-arm the listener, serve what arrived."""
        if self._stopping.is_set():
            return
        try:
            sock, remote = listener.sock.accept()
        except (BlockingIOError, InterruptedError):
            sock = None
        except OSError as error:  # EMFILE and friends: back off briefly
            log.warning("accept failed: %s", error)
            time.sleep(0.05)
            sock = None
        self._rearm_listener(listener, accepted=sock is not None)
        if sock is None:
            return
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            remote = ("", 0)  # a Unix socket peer has no address
        connection = Connection(sock, remote, listener.settings, listener.ssl_context)
        with connection.lock:
            with self._table_lock:
                self._connections[connection.fd] = connection
            # The request often arrives with the connection: serve it now
            # rather than after a round trip through the poller.
            self._drive_locked(connection, rearm=self._poller.register)

    def _rearm_listener(self, listener: Listener, accepted: bool) -> None:
        with self._accept_lock:
            if self._stopping.is_set():
                self._accepting = False
            elif len(self._connections) + accepted >= self._max_connections:
                self._accepting = False  # resumed by _forget
                listener.paused = True
            else:
                self._poller.rearm(listener.sock.fileno())
                self._accepting = True

    def _forget(self, connection: Connection) -> None:
        """Drop a connection and close it; resume accepting if the limit paused it."""
        # The table lock orders this against _accept: once the socket is
        # closed its descriptor number may come back for a new connection,
        # which must not be the one removed here.
        with self._table_lock:
            if self._connections.get(connection.fd) is connection:
                del self._connections[connection.fd]
                if not connection.closed:
                    self._poller.unregister(connection.fd)
        connection.close()
        if not self._accepting and not self._stopping.is_set():
            with self._accept_lock:
                if not self._accepting and len(self._connections) < self._max_connections:
                    for listener in self.listeners:
                        if listener.paused:
                            listener.paused = False
                            self._poller.rearm(listener.sock.fileno())
                    self._accepting = True

    # -- deadlines and shutdown -------------------------------------------

    def _reap(self) -> None:
        """Close connections past their deadline (idle, slow heads, lingering)."""
        while not self._stopped.wait(_REAP_INTERVAL):
            now = time.monotonic()
            for connection in list(self._connections.values()):
                if connection.deadline < now and connection.lock.acquire(blocking=False):
                    try:
                        if not connection.closed and connection.deadline < now:
                            connection.expire()
                            self._forget(connection)
                    finally:
                        connection.lock.release()

    def _stop_accepting(self) -> None:
        with self._accept_lock:
            self._accepting = False
            for listener in self.listeners:
                self._poller.unregister(listener.sock.fileno())
                listener.close()

    def _close_idle(self) -> None:
        """Close every connection that no worker is serving.

        A request that already arrived is served first (answered with
        ``Connection: close``); one still arriving keeps the grace period.
        """
        for connection in list(self._connections.values()):
            if not connection.lock.acquire(blocking=False):
                continue
            try:
                if not connection.closed and self._still_receiving(connection):
                    continue
                self._forget(connection)
            finally:
                connection.lock.release()

    def _still_receiving(self, connection: Connection) -> bool:
        try:
            return connection.on_readable() and connection.receiving_head
        except Exception:
            log.exception("unexpected error on a connection")
            return False


def open_listeners(config: ServerConfig) -> list[Listener]:
    """The listening sockets ``config`` asks for: systemd's, else each bind
    spec, else host and port; TLS on each when a certificate is given."""
    context = None
    if config.certfile:
        from .tls import make_server_context

        context = make_server_context(
            config.certfile, config.keyfile, config.ca_certs, config.client_certs
        )
    inherited = systemd_listeners()
    if inherited:
        return [Listener(sock, context) for sock in inherited]
    specs = [parse_bind(text) for text in config.binds] or [
        BindSpec("tcp", host=config.host.strip("[]"), port=config.port)
    ]
    listeners: list[Listener] = []
    try:
        for spec in specs:
            sock = open_listener(spec, config.backlog, config.unix_socket_mode)
            cleanup = None
            if spec.kind == "unix":
                path = spec.path

                def cleanup(path=path, sock=sock) -> None:
                    remove_unix_socket(path, sock)

            listeners.append(Listener(sock, context, on_close=cleanup))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _make_access_log(config: ServerConfig):
    if config.access_log is None:
        return None
    from .accesslog import COMBINED, AccessLog, open_access_log

    return AccessLog(
        open_access_log(config.access_log),
        config.access_log_format or COMBINED,
        json_lines=config.access_log_json,
    )


def _connection_limit(wanted: int) -> int:
    """``wanted`` connections, raising the file limit if it can, else fewer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + _RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        limited = max(soft - _RESERVED_FDS, 1)
        log.warning("file limit %d allows only %d connections", soft, limited)
        return limited
    return wanted


def serve(
    app: Callable,
    config: ServerConfig | None = None,
    *,
    listeners: Sequence[Listener] = (),
    **settings,
) -> int:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully.

    With ``workers`` > 1 a supervisor runs that many processes. A second
    SIGINT during shutdown exits at once. Returns the exit status.
    """
    if config is None:
        config = ServerConfig(**settings)
    elif settings:
        config = config.replace(**settings)
    if config.workers > 1:
        from .supervisor import Supervisor  # only the multi-process mode forks

        return Supervisor(app, config, list(listeners) or open_listeners(config)).run()
    server = Server(app, config, listeners=listeners)
    stop_requested = _stop_on_signals(server)  # before start: no gap for a signal
    server.start()
    if stop_requested():
        server.stop()
    server.serve_forever()
    return 0


def _stop_on_signals(server: Server) -> Callable[[], bool]:
    """SIGTERM/SIGINT stop ``server`` gracefully (a second SIGINT exits at
    once); returns whether a stop was asked for before the server started."""
    requests: list[int] = []

    def on_signal(number: int, frame) -> None:
        if requests and number == signal.SIGINT:
            log.warning("second interrupt: exiting now")
            os._exit(1)
        requests.append(number)
        log.info("received %s: shutting down", signal.Signals(number).name)
        server.stop_in_background()

    def on_hangup(number: int, frame) -> None:
        log.warning("SIGHUP ignored: reloading workers needs --workers 2 or more")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)
    else:  # pragma: no cover - signals only reach the main thread
        print("wsgiserver: not in the main thread; signals not handled", file=sys.stderr)
    return lambda: bool(requests)
