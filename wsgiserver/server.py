"""Server: the composition root. Builds the parts from a ServerConfig and runs
them: listeners, the one-shot poller, the worker pool, the reaper, graceful
shutdown.

Knows sockets and threads, nothing of HTTP grammar: a connection is told
when its socket is ready (``on_ready``), asked to run a request
(``run_exchange``) or told its deadline has passed (``expire``). Signals
and the ``--workers`` supervisor live above it (runner.py, supervisor.py).

Concurrency (docs/architecture.md): the leading worker thread waits on the
poller, which holds the listening sockets and every connection no thread is
serving, and handles what it reports without ever waiting for a client:
accepting, reading heads and bodies, finishing responses. A complete request
runs on that same thread, so the common keep-alive request crosses no
thread boundary; pool.py hands the lead on when a request holds it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from . import system
from .binding import Listener, open_listeners
from .budget import BodyBudgets, Budget, FileCount
from .clock import SYSTEM_CLOCK, Clock, HttpDate
from .config import ServerConfig
from .connection import Connection, h2c_settings
from .drive import (
    STEP_CLOSED,
    STEP_READ,
    STEP_READ_WRITE,
    STEP_RUN,
    STEP_SWITCH,
    STEP_WRITE,
    ConnectionSettings,
    Http2Options,
    Step,
)
from .exchange import ExchangeSettings
from .metrics import Board, Recorder, render
from .outqueue import SpoolSettings
from .poller import BOTH, READ, WRITE, Poller, make_poller
from .pool import Worker, WorkerPool
from .protocol.policy import ParserLimits
from .proxy import ProxyTrust
from .transport import SocketTransport, TlsTransport, Transport
from .upgrade import KeepAlive, WebSocketRegistry
from .wsgi import EnvironBuilder, WSGIApp

if TYPE_CHECKING:
    from .accesslog import AccessLog
    from .h2connection import Http2Connection, Http2Stream

    AnyConnection: TypeAlias = Connection | Http2Connection

__all__ = ["Server", "Listener", "listeners_for", "metrics_listener_for"]

log = logging.getLogger("wsgiserver")

# How often the reaper looks for connections past their deadline.
_REAP_INTERVAL = 0.25
# How often a worker's memory, descriptors and CPU time are read for /metrics.
_PROCESS_FIGURES_INTERVAL = 2.0
# How often a stopping server looks at what is left to drain.
_DRAIN_INTERVAL = 0.02
# File descriptors kept free for the application (logs, files, databases).
_RESERVED_FDS = 64
# Connections accepted per wake-up of the listening socket: fewer trips
# through the poller when many arrive at once, a bound so reads go on too.
_ACCEPT_BATCH = 16


# A connection the poller cannot take gets this and is closed.
_FULL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 20\r\nConnection: close\r\n\r\nserver at capacity.\n")
_AF_UNIX = getattr(socket, "AF_UNIX", None)  # not on every system
# What the poller watches a connection's socket for, after each step.
_INTEREST = {STEP_READ: READ, STEP_WRITE: WRITE, STEP_READ_WRITE: BOTH}


class Server:
    """A WSGI server on its listening sockets, run by a pool of worker threads.

    ``start()`` returns once it listens (``address`` tells where);
    ``stop()`` shuts down gracefully; ``serve_forever()`` blocks until stopped.
    """

    def __init__(
        self,
        app: WSGIApp,
        config: ServerConfig | None = None,
        *,
        listeners: Sequence[Listener] = (),
        multiprocess: bool | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics_listener: Listener | None = None,
        board: Board | None = None,
        slot: int = 1,
    ) -> None:
        if config is not None and config.static:
            from .static import StaticFiles, parse_mount

            app = StaticFiles(app, [parse_mount(mount) for mount in config.static])
        self.app = app
        self.config = config or ServerConfig()
        self.listeners = list(listeners)
        self.clock = clock
        # Metrics: the shared table (the supervisor's, or one of our own when
        # metrics are served by this process alone) and this process's slot.
        self.metrics_listener = metrics_listener
        if board is None and self.config.metrics_bind:
            board = Board(1)
        self.board = board
        self._recorder = Recorder(board, slot, os.getpid()) if board is not None else None
        self._started_at = time.time()  # this process's start, for /metrics
        self._process_figures_at = 0.0
        self._multiprocess = self.config.workers > 1 if multiprocess is None else multiprocess
        self._poller: Poller | None = None
        self._by_fd: dict[int, tuple[Listener, ConnectionSettings]] = {}
        self._connections: dict[int, AnyConnection] = {}
        self._threads: list[threading.Thread] = []
        self._pool: WorkerPool | None = None
        # start() and stop() run one at a time: a signal's stop during start
        # waits for the server to be whole, then takes it apart.
        self._lifecycle = threading.Lock()
        self._stopping = threading.Event()  # draining: no new connections
        # The same fact for the connections, asked once or twice per request:
        # a C-level call (Event.is_set is a Python frame each time).
        self._draining: list[bool] = []  # [True] once draining
        self._is_draining = functools.partial(bool, self._draining)
        self._stopped = threading.Event()  # workers: leave your loops
        self._finished = threading.Event()  # stop() has cleaned everything up
        self._accept_lock = threading.Lock()
        self._table_lock = threading.Lock()
        self._accepting = False
        self._paused: set[Listener] = set()  # by the connection limit
        self._max_connections = self.config.max_connections
        self._websockets = WebSocketRegistry(self.config.max_websockets)
        # Bytes on disk in spool files (request bodies, responses waiting for
        # slow clients), bodies in memory, and spool files open (descriptors,
        # counted with the connections), across connections.
        self._spool_budget = Budget(self.config.max_spool_bytes)
        self._body_memory = Budget(self.config.max_body_memory_bytes)
        self._spool_files = FileCount(self.config.max_connections, lambda: len(self._connections))
        allowed = self.config.forwarded_allow_ips
        self._proxy_trust = ProxyTrust(allowed) if allowed else None
        self._access_log: AccessLog | None = None  # opened by start(), closed by stop()
        self.cut_off = 0  # requests the shutdown's grace period ended

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) of the first listening socket."""
        if not self.listeners:
            raise RuntimeError("the server is not bound")
        name = self.listeners[0].sock.getsockname()
        return (name[0], name[1]) if isinstance(name, tuple) else (str(name), 0)

    def bind(self) -> list[Listener]:
        """Create the listening sockets from the config, unless given some."""
        if not self.listeners:
            self.listeners = listeners_for(self.config)
        if self.metrics_listener is None and self.config.metrics_bind:
            self.metrics_listener = metrics_listener_for(self.config)
        return self.listeners

    def _listen(self, listener: Listener, settings: ConnectionSettings) -> None:
        poller = self._poller
        assert poller is not None
        listener.sock.setblocking(False)
        fd = listener.sock.fileno()
        self._by_fd[fd] = (listener, settings)
        poller.register(fd)

    def start(self) -> None:
        """Bind, and serve in background threads; returns once listening."""
        with self._lifecycle:
            if self._poller is not None or self._finished.is_set():
                return  # running, or stopped (perhaps before it ever started)
            poller = make_poller(self.config.poller)  # ValueError: not on this system
            try:
                self._max_connections = _connection_limit(self.config.max_connections, poller)
                self._spool_files.limit = self._max_connections
                listeners = self.bind()
            except BaseException:
                poller.close()
                raise
            self._access_log = _make_access_log(self.config, self.clock)
            self._poller = poller
            for listener in listeners:
                self._listen(listener, self._connection_settings(listener))
            if self.metrics_listener is not None:
                assert self.board is not None
                self._listen(self.metrics_listener, self._connection_settings(
                    self.metrics_listener, metrics_app(self.board), counted=False))
            self._accepting = True
            self._pool = WorkerPool(
                self.config.threads, self._lead, clock=self.clock,
                long_after=self.config.long_request_seconds,
                max_long=self.config.long_request_cap,
                wake=self._poller.wake,
            )
            self._pool.start()
            self._spawn(self._reap, "wsgiserver-reaper")
            for listener in listeners:
                log.info("serving on %s with %d threads (%s)", listener.url,
                         self.config.threads, poller.name)
            if poller.capacity is not None and self._max_connections < self.config.max_connections:
                log.info("--poller %s watches at most %d descriptors: %d connections at once",
                         poller.name, poller.capacity, self._max_connections)
            if self.metrics_listener is not None:
                log.info("metrics on %s/metrics", self.metrics_listener.url)

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()`` has finished."""
        self.start()
        while not self._finished.wait(0.5):
            pass

    def stop(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop accepting, answer what arrives with
        ``Connection: close``, close connections once idle, let in-flight
        requests finish within ``timeout`` seconds, then stop. Every caller
        returns once the server has stopped."""
        with self._lifecycle:
            if self._poller is None:
                self._finished.set()  # stopped before it started: it never will
                return
            first = not self._stopping.is_set()
            if not self._draining:
                self._draining.append(True)
            self._stopping.set()
        if first:
            grace = self.config.shutdown_timeout if timeout is None else timeout
            self._shut_down(self.clock.monotonic() + grace)
        self._finished.wait()

    def reopen_logs(self) -> None:
        """Reopen the access log file (SIGUSR1, after logrotate moved it)."""
        if self._access_log is not None:
            self._access_log.reopen()
            log.info("access log reopened")

    def stop_in_background(self) -> None:
        """Start a graceful stop without waiting for it (safe in a signal handler)."""
        threading.Thread(target=self.stop, name="wsgiserver-shutdown", daemon=True).start()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _shut_down(self, deadline: float) -> None:
        poller = self._poller
        assert poller is not None
        self._stop_accepting()
        self._websockets.close_all(1001, "server shutting down",
                                   timeout=max(deadline - self.clock.monotonic(), 0.0))
        while self._connections and self.clock.monotonic() < deadline:
            self._expire_due(drain=True)
            time.sleep(_DRAIN_INTERVAL)
        self._stopped.set()
        left = list(self._connections.values())
        self.cut_off = sum(1 for connection in left if connection.busy)
        for connection in left:
            connection.cut()  # applications still writing get an error, not a hang
        pool = self._pool
        assert pool is not None
        poller.wake()
        pool.stop(max(deadline - self.clock.monotonic(), 0.1))
        for thread in self._threads:
            thread.join(1.0)
        if self.cut_off:
            log.warning("shutdown timeout (%g s): %d requests cut off",
                        self.config.shutdown_timeout, self.cut_off)
        for connection in left:
            connection.close()
        self._connections.clear()
        poller.close()
        if self._access_log is not None:
            self._access_log.close()
        log.info("stopped")
        self._finished.set()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _connection_settings(self, listener: Listener, app: WSGIApp | None = None,
                             counted: bool = True) -> ConnectionSettings:
        config = self.config
        name = listener.sock.getsockname()
        host, port = (name[0], name[1]) if isinstance(name, tuple) else (config.host, 0)
        environ = EnvironBuilder(
            server_name=host,
            server_port=port,
            url_scheme="https" if listener.ssl_context is not None else "http",
            multiprocess=self._multiprocess,
            directory=config.directory,
            allowed_hosts=config.allowed_hosts,
        )
        return ConnectionSettings(
            exchange=ExchangeSettings(
                app=self.app if app is None else app,
                environ=environ,
                proxy_trust=self._proxy_trust,
                access_log=self._access_log,
                websockets=self._websockets,
                max_websocket_message_bytes=config.max_websocket_message_bytes,
                websocket_keepalive=KeepAlive(config.websocket_ping_interval,
                                              config.websocket_ping_timeout,
                                              config.websocket_idle_timeout),
                clock=self.clock,
                metrics=self._recorder if counted else None,
            ),
            limits=ParserLimits(
                max_request_line=config.max_request_line,
                max_header_bytes=config.max_header_bytes,
                max_header_count=config.max_header_count,
                max_body_bytes=config.body_limit_for(self.app),
            ),
            keepalive_timeout=config.keepalive_timeout,
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            min_body_rate=config.min_body_rate,
            write_timeout=config.write_timeout,
            body_memory_bytes=config.body_memory_bytes,
            spool_dir=config.spool_dir,
            output_high_water=config.response_buffer_bytes,
            output_spool=SpoolSettings(config.spool_dir, config.response_spool_bytes,
                                       self._spool_budget, self._spool_files)
            if config.response_spool_bytes and config.max_spool_bytes else None,
            body_budgets=BodyBudgets(self._body_memory, self._spool_budget, self._spool_files),
            max_body_seconds=config.max_body_seconds,
            min_response_rate=config.min_response_rate,
            date=HttpDate(self.clock) if config.send_date_header else None,
            server_name=config.server_name if config.send_server_header else None,
            draining=self._is_draining,
            clock=self.clock,
            http2=self._http2_options() if counted else None,
        )

    def _http2_options(self) -> Http2Options | None:
        config = self.config
        if not (config.http2 or config.h2c_prior_knowledge or config.h2c_upgrade):
            return None
        return Http2Options(
            max_concurrent_streams=config.http2_max_concurrent_streams,
            prior_knowledge=config.h2c_prior_knowledge,
            upgrade=config.h2c_upgrade,
            trust=self._proxy_trust,
        )

    # -- what the leading worker does ------------------------------------------

    def _lead(self, worker: Worker) -> None:
        """One step of the leader: wait for a ready socket and handle it."""
        poller = self._poller
        assert poller is not None
        fd = poller.wait(1.0)
        if fd is None:
            return
        entry = self._by_fd.get(fd)
        if entry is not None:
            self._accept(worker, *entry)
            return
        connection = self._connections.get(fd)
        if connection is not None:
            self._drive(worker, connection, register=False)

    def _drive(self, worker: Worker, connection: AnyConnection, register: bool) -> None:
        """Let ``connection`` act on its ready socket, run what became a complete
        request, then watch it again (or forget it)."""
        with connection.lock:
            if connection.closed:
                return
            try:
                step = connection.on_ready()
                while step is STEP_RUN:
                    assert isinstance(connection, Connection)
                    step = self._run(worker, connection)
            except BaseException:  # a bug of ours: never let it kill a worker
                log.exception("unexpected error on a connection")
                connection.close()
                step = STEP_CLOSED
            if step is STEP_SWITCH:
                assert isinstance(connection, Connection)
                self._switch(connection, register)
                return
            self._watch(connection, step, register)

    def _watch(self, connection: AnyConnection, step: Step, register: bool) -> None:
        """Arm the poller for ``step`` (its lock held), or forget a closed connection."""
        if step is not STEP_CLOSED:
            poller = self._poller
            assert poller is not None
            try:
                # Identity tests: an Enum's hash is a Python call.
                interest = READ if step is STEP_READ else WRITE if step is STEP_WRITE else BOTH
                if register:
                    poller.register(connection.fd, interest)
                else:
                    poller.rearm(connection.fd, interest)
                return
            except OSError:
                connection.close()
        self._forget(connection)

    def _switch(self, connection: Connection, register: bool) -> None:
        """The connection now speaks HTTP/2 (ALPN, prior knowledge or an
        upgrade): an Http2Connection takes its socket and its place."""
        from .h2connection import Http2Connection

        upgrade = None
        if connection.upgrade_request is not None:
            request, body = connection.upgrade_request
            payload = h2c_settings(request)
            assert payload is not None  # checked before the 101
            upgrade = (request, body, payload)
        transport = connection.hand_over()
        fd = transport.fd
        try:
            successor = Http2Connection(
                transport, connection.settings, arm=functools.partial(self._arm, fd),
                submit=self._submit_stream, initial=connection.switch_data, upgrade=upgrade)
        except BaseException:  # a bug of ours
            log.exception("unexpected error starting HTTP/2")
            transport.close()
            with self._table_lock:
                if self._connections.get(fd) is connection:
                    del self._connections[fd]
            return
        with successor.lock:
            with self._table_lock:
                self._connections[fd] = successor
            try:
                step = successor.start()
            except BaseException:
                log.exception("unexpected error on a connection")
                successor.close()
                step = STEP_CLOSED
            self._watch(successor, step, register)

    def _arm(self, fd: int, step: Step) -> None:
        """An HTTP/2 connection asks, from any thread (its lock held), to be watched."""
        poller = self._poller
        if poller is None:
            return
        try:
            poller.rearm(fd, _INTEREST[step])
        except (OSError, ValueError):
            pass  # closed meanwhile: its closing path forgets it

    def _submit_stream(self, stream: Http2Stream) -> None:
        pool = self._pool
        assert pool is not None
        pool.submit(functools.partial(self._run_stream, stream))

    def _run_stream(self, stream: Http2Stream, worker: Worker) -> None:
        """An HTTP/2 stream's exchange, on a pool thread (as a task)."""
        pool = self._pool
        assert pool is not None
        pool.begin(worker, stream.cut, stream.stalled)
        try:
            stream.run(functools.partial(pool.went_long, worker))
        except BaseException:  # a bug of ours: never let it kill a worker
            log.exception("unexpected error on an HTTP/2 stream")
        finally:
            pool.end(worker)

    def _run(self, worker: Worker, connection: Connection) -> Step:
        pool = self._pool
        assert pool is not None
        pool.begin(worker, connection.cut, connection.stalled)
        try:
            return connection.run_exchange(worker.detach)
        finally:
            pool.end(worker)

    def _accept(self, worker: Worker, listener: Listener, settings: ConnectionSettings) -> None:
        """Accept what waits (a few at most), re-arm the listener, serve what arrived."""
        if self._stopping.is_set():
            return  # left in the kernel's queue, for another worker process
        accepted: list[Connection] = []
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, remote = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:  # EMFILE and friends: back off briefly
                log.warning("accept failed: %s", error)
                time.sleep(0.05)
                break
            if not self._poller_accepts(sock):
                continue
            connection = Connection(self._transport(sock, remote, listener), settings,
                                    tls=listener.ssl_context is not None)
            with self._table_lock:
                self._connections[connection.fd] = connection
            accepted.append(connection)
            if self._full():
                break
        self._rearm_listener(listener)
        if not accepted:
            return
        poller = self._poller
        assert poller is not None
        # The others go to the poller first, for whichever thread leads next:
        # the request often arrives with the connection, and this thread may
        # be held by the first one's application for a while.
        for connection in accepted[1:]:
            with connection.lock:
                try:
                    poller.register(connection.fd)
                except OSError:
                    self._forget(connection)
        # The first is served now rather than after a trip through the poller.
        self._drive(worker, accepted[0], register=True)

    def _full(self) -> bool:
        """Connections and spool files (descriptors both) are at the limit."""
        return len(self._connections) + self._spool_files.open >= self._max_connections

    def _poller_accepts(self, sock: socket.socket) -> bool:
        """A connection the poller cannot watch (select, past its limit) is
        refused with a 503 and closed, never let in to fail later."""
        poller = self._poller
        assert poller is not None
        if poller.accepts(sock.fileno()):
            return True
        log.warning("--poller %s is at its limit: a connection was refused", poller.name)
        try:
            sock.setblocking(False)
            sock.send(_FULL)
        except OSError:
            pass
        sock.close()
        return False

    def _transport(self, sock: socket.socket, remote: object, listener: Listener) -> Transport:
        sock.setblocking(False)
        if sock.family == _AF_UNIX:
            peer = ("", 0)  # a Unix socket peer has no address
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            assert isinstance(remote, tuple)
            peer = (str(remote[0]), int(remote[1]))
        if listener.ssl_context is not None:
            return TlsTransport(sock, peer, listener.ssl_context, self.clock)
        return SocketTransport(sock, peer, self.clock)

    def _rearm_listener(self, listener: Listener) -> None:
        poller = self._poller
        assert poller is not None
        with self._accept_lock:
            if self._stopping.is_set():
                self._accepting = False
            elif self._full():
                self._accepting = False  # resumed by _forget
                self._paused.add(listener)
            else:
                poller.rearm(listener.sock.fileno())
                self._accepting = True

    def _forget(self, connection: AnyConnection) -> None:
        """Drop a connection and close it; resume accepting if the limit paused it."""
        poller = self._poller
        assert poller is not None
        # The table lock orders this against _accept: once the socket is
        # closed its descriptor number may come back for a new connection,
        # which must not be the one removed here.
        with self._table_lock:
            if self._connections.get(connection.fd) is connection:
                del self._connections[connection.fd]
                # Usually closed already (it ended itself): epoll forgot it then.
                poller.unregister(connection.fd, closed=connection.closed)
        connection.close()
        if not self._accepting and not self._stopping.is_set():
            with self._accept_lock:
                if not self._accepting and not self._full():
                    for listener in self._paused:
                        poller.rearm(listener.sock.fileno())
                    self._paused.clear()
                    self._accepting = True

    # -- deadlines and shutdown ----------------------------------------------

    def _reap(self) -> None:
        """Close connections past their deadline (idle, slow heads, lingering);
        keep the metrics' gauges current."""
        while not self._stopped.wait(_REAP_INTERVAL):
            self._expire_due(drain=self._stopping.is_set())
            if self._recorder is not None:
                self._report_gauges(self._recorder)

    def _report_gauges(self, recorder: Recorder) -> None:
        pool = self._pool
        assert pool is not None
        busy, idle = pool.counts()
        # The heartbeat (free_at): when the loop that takes new work last
        # turned, which the supervisor's --worker-timeout judges; requests
        # that merely queue keep it turning.
        recorder.gauges({
            "connections": len(self._connections), "busy_threads": busy,
            "idle_threads": idle, "websockets": len(self._websockets),
            "long_requests": pool.long_requests,
            "spooled_bytes": self._spool_budget.used,
            "body_memory_bytes": self._body_memory.used,
            "spool_files": self._spool_files.open,
        }, free_at=pool.turned_at())
        now = self.clock.monotonic()
        if now >= self._process_figures_at:
            # Listing the descriptors costs more than the rest: every few seconds.
            self._process_figures_at = now + _PROCESS_FIGURES_INTERVAL
            rss, fds = system.process_figures()
            times = os.times()
            recorder.process(rss, fds, times.user + times.system, self._started_at)

    def _expire_due(self, drain: bool) -> None:
        """Expire every connection past its deadline that no worker holds;
        while draining, first shorten the wait of idle ones."""
        now = self.clock.monotonic()
        for connection in list(self._connections.values()):
            if not connection.lock.acquire(blocking=False):
                continue
            try:
                self._expire_one(connection, drain, now)
            finally:
                connection.lock.release()

    def _expire_one(self, connection: AnyConnection, drain: bool, now: float) -> None:
        if connection.closed:
            self._forget(connection)  # closed on its own: an HTTP/2 connection's end
            return
        if drain:
            connection.begin_draining()
        if connection.deadline < now and connection.expire():
            self._forget(connection)

    def _stop_accepting(self) -> None:
        poller = self._poller
        assert poller is not None
        with self._accept_lock:
            self._accepting = False
            for listener in self.listeners:
                poller.unregister(listener.sock.fileno())
                listener.close()
            if self.metrics_listener is not None:
                poller.unregister(self.metrics_listener.sock.fileno())
                self.metrics_listener.close()


def listeners_for(config: ServerConfig) -> list[Listener]:
    """The listening sockets ``config`` asks for, with TLS when it gives a certificate."""
    if config.http2 or config.h2c_prior_knowledge or config.h2c_upgrade:
        _require_h2()
    context = None
    if config.certfile:
        from .tls import make_server_context

        context = make_server_context(
            config.certfile, config.keyfile, config.ca_certs, config.client_certs,
            http2=config.http2,
        )
    return open_listeners(
        config.binds,
        host=config.host,
        port=config.port,
        backlog=config.backlog,
        unix_mode=config.unix_socket_mode,
        ssl_context=context,
    )


def _require_h2() -> None:
    """ValueError, in one line saying what to install, when h2 is missing."""
    try:
        import h2.connection  # noqa: F401
    except ImportError:
        raise ValueError("HTTP/2 needs the h2 package: pip install 'h2>=4.1,<5'") \
            from None


def metrics_listener_for(config: ServerConfig) -> Listener:
    """The plain listening socket ``--metrics-bind`` asks for."""
    assert config.metrics_bind is not None
    return open_listeners([config.metrics_bind], host=config.host, port=0,
                          backlog=config.backlog)[0]


def metrics_app(board: Board) -> WSGIApp:
    """The WSGI application of the metrics endpoint: the table's sum as text."""

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        body = render(board.totals(), board.workers()).encode()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def _make_access_log(config: ServerConfig, clock: Clock) -> AccessLog | None:
    if config.access_log is None:
        return None
    from .accesslog import COMBINED, AccessLog, open_access_log

    return AccessLog(
        open_access_log(config.access_log),
        config.access_log_format or COMBINED,
        json_lines=config.access_log_json,
        clock=clock.time,
    )


def _connection_limit(wanted: int, poller: Poller) -> int:
    """``wanted`` connections, raising the file limit if it can, else fewer;
    never more than the poller can watch (select)."""
    if poller.capacity is not None:
        wanted = min(wanted, max(poller.capacity - _RESERVED_FDS, 1))
    try:
        import resource
    except ImportError:  # no such limit to read (Windows)
        return wanted

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
