"""Where to listen: bind specs, listening sockets, systemd socket activation.

Owns the ``--bind`` syntax, creating (or adopting) listening sockets, the
Listener (a socket with its TLS context) and cleaning up Unix socket files.
Knows nothing of HTTP, connections or the configuration object.

Bind syntax:
    HOST:PORT         IPv4 address or host name; ``:PORT`` alone means every
                      IPv4 interface (0.0.0.0)
    [IPv6]:PORT       IPv6 address, IPv6 only (``[::]:PORT`` for every one)
    unix:/path        a Unix domain socket
    fd://N            an inherited, already listening socket
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import system

if TYPE_CHECKING:  # ssl costs megabytes of memory: only TLS listeners import it
    import ssl

__all__ = [
    "Listener",
    "open_listeners",
    "BindSpec",
    "parse_bind",
    "open_listener",
    "systemd_listeners",
    "remove_unix_socket",
    "describe",
]

# sd_listen_fds(3): passed sockets start at descriptor 3.
SD_LISTEN_FDS_START = 3
_SYSTEMD_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

_TCP = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[^:]*)")


@dataclass(frozen=True)
class BindSpec:
    """One place to listen; only the fields of its ``kind`` are set."""

    kind: str  # "tcp" | "unix" | "fd"
    host: str | None = None  # tcp: an address or name, IPv6 without brackets
    port: int | None = None  # tcp: 0 picks a free port
    path: str | None = None  # unix
    fd: int | None = None  # fd


class _UnixListener(socket.socket):
    """A listening Unix socket that remembers which file it created, so
    ``remove_unix_socket`` never unlinks a file someone else put there."""

    file_identity: tuple[int, int, int] | None = None


def parse_bind(text: str) -> BindSpec:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``unix:/path`` or ``fd://N``; ValueError otherwise."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path or "\0" in path:
            raise ValueError(f"bind {text!r}: expected unix:/path/to.sock")
        if not system.HAS_UNIX_SOCKETS:
            raise ValueError(system.unavailable(f"bind {text!r}", "Unix domain sockets"))
        return BindSpec("unix", path=path)
    if text.startswith("fd://"):
        number = text[len("fd://"):]
        if not number.isdigit() or not number.isascii():
            raise ValueError(f"bind {text!r}: expected fd://N with N a descriptor number")
        if not system.HAS_FD_SOCKETS:
            raise ValueError(system.unavailable(f"bind {text!r}", "sockets passed by number"))
        return BindSpec("fd", fd=int(number))
    return _parse_tcp(text)


def _parse_tcp(text: str) -> BindSpec:
    match = _TCP.fullmatch(text)
    if match is None:
        if text.count(":") > 1:
            raise ValueError(f"bind {text!r}: put an IPv6 address in brackets, as [::1]:8080")
        # A bare port: loopback is the safe guess; every interface is a choice.
        hint = (f"; did you mean 127.0.0.1:{text}? (0.0.0.0:{text} listens on every "
                f"interface)" if text.isdigit() else "")
        raise ValueError(f"bind {text!r}: expected HOST:PORT, [IPv6]:PORT, unix:PATH "
                         f"or fd://N{hint}")
    port = _port(text, match.group("port"))
    if match.group("ipv6") is not None:
        host = match.group("ipv6")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bind {text!r}: {host!r} is not an IPv6 address") from None
        return BindSpec("tcp", host=host, port=port)
    return BindSpec("tcp", host=match.group("host") or "0.0.0.0", port=port)


def _port(text: str, port: str) -> int:
    if not port:
        raise ValueError(f"bind {text!r}: missing port")
    if not (port.isdigit() and port.isascii()) or int(port) > 65535:
        raise ValueError(f"bind {text!r}: port must be a number from 0 to 65535")
    return int(port)


def open_listener(spec: BindSpec, backlog: int, unix_mode: int | None = None) -> socket.socket:
    """A bound, listening socket for ``spec`` (adopted as is for ``fd``)."""
    if spec.kind == "tcp":
        assert spec.host is not None and spec.port is not None
        return _open_tcp(spec.host, spec.port, backlog)
    if spec.kind == "unix":
        assert spec.path is not None
        return _open_unix(spec.path, backlog, unix_mode)
    if spec.kind == "fd":
        assert spec.fd is not None
        return _adopt(spec.fd)
    raise ValueError(f"unknown bind kind {spec.kind!r}")


def _open_tcp(host: str, port: int, backlog: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        # Restarting must not wait out TIME_WAIT connections of the last run.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # One socket, one family: "[::]:80" must not also take 0.0.0.0:80,
            # which a second bind may want (the default differs by system).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {_url_host(host)}:{port}: "
                                   f"{error.strerror}") from None
    return sock


def _open_unix(path: str, backlog: int, mode: int | None) -> socket.socket:
    _clear_stale_socket(path)
    sock = _UnixListener(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            # Before listen(): until then every connect is refused, so no
            # client gets in under the umask's permissions.
            os.chmod(path, mode)
        sock.file_identity = _identity(os.lstat(path))
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on unix:{path}: {error.strerror}") from None
    return sock


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EEXIST, f"cannot listen on unix:{path}: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover of a server that died
        return
    except OSError as error:
        raise OSError(error.errno, f"cannot check unix:{path}: {error.strerror}") from None
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"cannot listen on unix:{path}: another server is using it")


def _adopt(fd: int) -> socket.socket:
    """Wrap an inherited descriptor; it must be a listening stream socket."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as error:
        raise ValueError(f"fd {fd} is not a usable socket: {error.strerror}") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()  # not ours to close
        raise ValueError(f"fd {fd} is not a listening stream socket")
    return sock


def systemd_listeners(environ: Mapping[str, str] | None = None) -> list[socket.socket]:
    """Sockets passed by systemd socket activation, [] when not activated.

    Like sd_listen_fds(1), the LISTEN_* variables are removed from
    ``os.environ`` either way, so that child processes do not take the
    sockets for theirs. LISTEN_FDNAMES is not used.
    """
    if not system.HAS_FD_SOCKETS:
        return []  # no systemd where descriptors are not sockets
    variables = os.environ if environ is None else environ
    pid, count = variables.get("LISTEN_PID", ""), variables.get("LISTEN_FDS", "")
    for name in _SYSTEMD_VARIABLES:
        os.environ.pop(name, None)
    if not (pid.isdigit() and int(pid) == os.getpid() and count.isdigit()):
        return []
    listeners = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        listeners.append(_adopt(fd))
        os.set_inheritable(fd, False)
    return listeners


def remove_unix_socket(path: str, sock: socket.socket) -> None:
    """Unlink ``path`` if it is still the socket file ``sock`` created.

    Best called before ``sock`` is closed: while it is open the kernel
    cannot hand its inode number to a newer file at the same path.
    """
    identity = getattr(sock, "file_identity", None)
    if identity is None:
        return
    try:
        info = os.lstat(path)
        if _identity(info) == identity and stat.S_ISSOCK(info.st_mode):
            os.unlink(path)
    except OSError:
        pass  # gone already, or not ours to remove


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    # The change time guards against inode numbers reused after a close.
    return (info.st_dev, info.st_ino, info.st_ctime_ns)


def describe(sock: socket.socket, scheme: str = "http") -> str:
    """Where ``sock`` listens: ``http://127.0.0.1:4221``, ``http://[::1]:80``, ``unix:/p``."""
    address = sock.getsockname()
    if system.HAS_UNIX_SOCKETS and sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):  # Linux abstract namespace
            address = address.decode("utf-8", "backslashreplace")
        return f"unix:{address}"
    return f"{scheme}://{_url_host(address[0])}:{address[1]}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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
        self._on_close = on_close
        # Described once, while open: a stop may close it at any moment.
        self.url = describe(sock, "https" if ssl_context is not None else "http")

    def describe(self) -> str:
        """Where it listens, as a URL (or ``unix:PATH``)."""
        return self.url

    def close(self) -> None:
        """Stop listening (and clean up, e.g. a Unix socket file); idempotent."""
        try:
            if self._on_close is not None:
                self._on_close()  # before close: see remove_unix_socket
                self._on_close = None
        finally:
            self.sock.close()


def open_listeners(
    binds: Sequence[str],
    *,
    host: str,
    port: int,
    backlog: int,
    unix_mode: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[Listener]:
    """The listening sockets to serve on: systemd's if it passed any, else one
    per bind spec, else ``host:port``; ``ssl_context`` on each when given."""
    inherited = systemd_listeners()
    if inherited:
        return [Listener(sock, ssl_context) for sock in inherited]
    specs = [parse_bind(text) for text in binds] or [
        BindSpec("tcp", host=host.strip("[]"), port=port)
    ]
    listeners: list[Listener] = []
    try:
        for spec in specs:
            sock = open_listener(spec, backlog, unix_mode)
            listeners.append(Listener(sock, ssl_context, on_close=_cleanup_for(spec, sock)))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _cleanup_for(spec: BindSpec, sock: socket.socket) -> Callable[[], None] | None:
    path = spec.path
    if spec.kind != "unix" or path is None:
        return None
    return lambda: remove_unix_socket(path, sock)
