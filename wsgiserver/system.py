"""What this system offers, asked in one place.

Linux has every piece of the standard library the server can use; macOS
lacks epoll, Windows lacks much more (fork, poll, sendfile, pread, Unix
sockets, SIGHUP, selectable pipes, the ``resource`` module). Every module
that needs one of them takes its answer from here, read once at import, so
a feature that cannot work says so in one line when asked for, and the rest
works without it. ``tests/platforms.py`` takes pieces away before wsgiserver
is imported, which is how the other systems' branches are tested on Linux.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

__all__ = [
    "SYSTEM", "WINDOWS", "HAS_EPOLL", "HAS_POLL", "HAS_FORK", "HAS_SENDFILE",
    "HAS_UNIX_SOCKETS", "HAS_FD_SOCKETS", "SIGHUP", "SIGUSR1", "WORKER_COUNT_SIGNALS",
    "STOP_SIGNALS", "SELECT_LIMIT",
    "pread", "Waker", "unavailable", "process_figures",
]

SYSTEM = sys.platform  # "linux", "darwin", "win32", "freebsd14", ...
WINDOWS = SYSTEM == "win32"

HAS_EPOLL = hasattr(select, "epoll")
# Windows' select module has no poll(); macOS's poll() is fine for sockets.
HAS_POLL = hasattr(select, "poll") and not WINDOWS
HAS_FORK = hasattr(os, "fork")
HAS_SENDFILE = hasattr(os, "sendfile") and not WINDOWS
HAS_PREAD = hasattr(os, "pread")
HAS_UNIX_SOCKETS = hasattr(socket, "AF_UNIX")
# Listening sockets passed by descriptor number (fd://N, systemd's LISTEN_FDS).
HAS_FD_SOCKETS = not WINDOWS

SIGHUP: int | None = getattr(signal, "SIGHUP", None)
# SIGUSR1 reopens the log files (logrotate); SIGTTIN and SIGTTOU, whose
# default would freeze the process, are answered with a log line. POSIX only.
SIGUSR1: int | None = getattr(signal, "SIGUSR1", None)
WORKER_COUNT_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTTIN", "SIGTTOU") if hasattr(signal, name))
# What stops the server: SIGTERM, SIGINT (Ctrl+C) and, in a Windows console,
# SIGBREAK (Ctrl+Break).
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGBREAK") if hasattr(signal, name))

# select() takes descriptors below FD_SETSIZE (1024) on POSIX systems; on
# Windows it takes at most 512 sockets (Python's build).
SELECT_LIMIT = 512 if WINDOWS else 1024


def unavailable(feature: str, lacks: str) -> str:
    """The one line for a feature this system cannot give."""
    return f"{feature} needs {lacks}, which this system ({SYSTEM}) does not have"


def pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of a file at ``offset``, leaving its position alone
    where the system can (os.pread); elsewhere by seeking the descriptor,
    which is the server's own duplicate of the application's file."""
    if HAS_PREAD:
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _socket_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected sockets: socketpair(), or, where it cannot make them,
    a loopback TCP connection (what Python itself does on Windows)."""
    try:
        return socket.socketpair()
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        writer = socket.create_connection(listener.getsockname())
        reader, _ = listener.accept()
    return reader, writer


class Waker:
    """A descriptor that becomes readable when poked, to end a wait early:
    a pipe, or where select takes only sockets (Windows) a socket pair."""

    def __init__(self) -> None:
        if WINDOWS:
            self._reader, self._writer = _socket_pair()
            self._reader.setblocking(False)
            self._writer.setblocking(False)
            self.fd = self._reader.fileno()
        else:
            self.fd, self._write_fd = os.pipe()
            os.set_blocking(self.fd, False)
            os.set_blocking(self._write_fd, False)

    def poke(self) -> None:
        """Make the descriptor readable (a no-op when it is already)."""
        try:
            if WINDOWS:
                self._writer.send(b".")
            else:
                os.write(self._write_fd, b".")
        except (BlockingIOError, OSError):
            pass  # full, or closing: a wake-up is pending anyway

    def drain(self) -> None:
        """Take the pokes back."""
        try:
            while self._reader.recv(4096) if WINDOWS else os.read(self.fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Release both ends."""
        if WINDOWS:
            self._reader.close()
            self._writer.close()
        else:
            os.close(self.fd)
            os.close(self._write_fd)


def process_figures() -> tuple[int, int]:
    """(resident memory in bytes, open descriptors) of this process, -1 for
    what the system does not tell: /proc where there is one (Linux), else
    the peak resident size from getrusage and the descriptors in /dev/fd."""
    rss = fds = -1
    try:
        with open("/proc/self/statm", "rb") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            rss = peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB here
        except (ImportError, OSError):
            pass
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            fds = len(os.listdir(directory)) - 1  # less the one listdir held open
            break
        except OSError:
            continue
    return rss, fds
