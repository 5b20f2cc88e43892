"""Bind specs and listening sockets: TCP (v4/v6), Unix sockets (stale files,
live servers, modes, careful removal), inherited descriptors and systemd
socket activation."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from wsgiserver.binding import (
    BindSpec,
    describe,
    open_listener,
    parse_bind,
    remove_unix_socket,
    systemd_listeners,
)


@pytest.fixture
def closing():
    """Collects sockets and closes them after the test."""
    sockets: list[socket.socket] = []
    yield sockets.append
    for sock in sockets:
        sock.close()


def has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- parse_bind --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("127.0.0.1:8080", BindSpec("tcp", host="127.0.0.1", port=8080)),
        ("localhost:0", BindSpec("tcp", host="localhost", port=0)),
        (":8080", BindSpec("tcp", host="0.0.0.0", port=8080)),
        ("[::1]:8080", BindSpec("tcp", host="::1", port=8080)),
        ("[::]:443", BindSpec("tcp", host="::", port=443)),
        ("unix:/run/app.sock", BindSpec("unix", path="/run/app.sock")),
        ("unix:relative.sock", BindSpec("unix", path="relative.sock")),
        ("fd://3", BindSpec("fd", fd=3)),
    ],
)
def test_parse_bind_accepts(text, spec):
    assert parse_bind(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("127.0.0.1", "expected HOST:PORT"),
        ("8080", "did you mean 127.0.0.1:8080? (0.0.0.0:8080 listens on every interface)"),
        ("127.0.0.1:", "missing port"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:65536", "port must be a number"),
        ("127.0.0.1:-1", "port must be a number"),
        ("::1:8080", "brackets"),
        ("[::1]", "brackets"),
        ("[1.2.3.4]:80", "not an IPv6 address"),
        ("unix:", "unix:/path"),
        ("fd://", "fd://N"),
        ("fd://three", "fd://N"),
        ("", "expected HOST:PORT"),
    ],
)
def test_parse_bind_refuses_with_one_line(text, says):
    with pytest.raises(ValueError) as caught:
        parse_bind(text)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


# -- TCP ---------------------------------------------------------------------


def test_tcp_listener_on_ipv4(closing):
    sock = open_listener(parse_bind("127.0.0.1:0"), backlog=16)
    closing(sock)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    port = sock.getsockname()[1]
    assert describe(sock) == f"http://127.0.0.1:{port}"
    assert describe(sock, scheme="https") == f"https://127.0.0.1:{port}"
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_tcp_listener_on_ipv6_is_ipv6_only(closing):
    sock = open_listener(parse_bind("[::1]:0"), backlog=16)
    closing(sock)
    assert sock.family == socket.AF_INET6
    assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert describe(sock) == f"http://[::1]:{sock.getsockname()[1]}"


def test_tcp_port_in_use_is_a_clear_os_error(closing):
    first = open_listener(parse_bind("127.0.0.1:0"), backlog=16)
    closing(first)
    port = first.getsockname()[1]
    with pytest.raises(OSError) as caught:
        open_listener(parse_bind(f"127.0.0.1:{port}"), backlog=16)
    assert caught.value.errno == errno.EADDRINUSE
    assert f"cannot listen on 127.0.0.1:{port}" in str(caught.value)


# -- Unix sockets --------------------------------------------------------------


def test_unix_listener_with_mode(tmp_path, closing):
    path = str(tmp_path / "s.sock")
    sock = open_listener(parse_bind(f"unix:{path}"), backlog=16, unix_mode=0o660)
    closing(sock)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert describe(sock) == f"unix:{path}"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(path)


def test_stale_unix_socket_is_replaced(tmp_path, closing):
    path = str(tmp_path / "s.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays; nobody listens
    sock = open_listener(parse_bind(f"unix:{path}"), backlog=16)
    closing(sock)
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(path)


def test_live_unix_socket_is_refused(tmp_path, closing):
    path = str(tmp_path / "s.sock")
    live = open_listener(parse_bind(f"unix:{path}"), backlog=16)
    closing(live)
    with pytest.raises(OSError) as caught:
        open_listener(parse_bind(f"unix:{path}"), backlog=16)
    assert caught.value.errno == errno.EADDRINUSE
    assert "another server" in str(caught.value)


def test_non_socket_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "s.sock"
    path.write_text("precious")
    with pytest.raises(OSError, match="not a socket"):
        open_listener(parse_bind(f"unix:{path}"), backlog=16)
    assert path.read_text() == "precious"


def test_remove_unix_socket_removes_only_our_file(tmp_path):
    path = str(tmp_path / "s.sock")
    sock = open_listener(parse_bind(f"unix:{path}"), backlog=16)
    sock.close()
    remove_unix_socket(path, sock)
    assert not os.path.exists(path)
    # While we ran, our file was removed and another server took the path:
    # its file stays.
    ours = open_listener(parse_bind(f"unix:{path}"), backlog=16)
    os.unlink(path)
    theirs = open_listener(parse_bind(f"unix:{path}"), backlog=16)
    try:
        remove_unix_socket(path, ours)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        ours.close()
        remove_unix_socket(path, theirs)
        theirs.close()
    assert not os.path.exists(path)


def test_remove_unix_socket_keeps_a_file_put_in_its_place(tmp_path):
    path = str(tmp_path / "s.sock")
    sock = open_listener(parse_bind(f"unix:{path}"), backlog=16)
    try:
        os.unlink(path)
        with open(path, "w") as other:
            other.write("not ours")
        remove_unix_socket(path, sock)
        assert os.path.exists(path)
    finally:
        sock.close()


def test_remove_unix_socket_ignores_sockets_it_did_not_bind(tmp_path, closing):
    path = tmp_path / "s.sock"
    path.write_text("x")
    tcp = open_listener(parse_bind("127.0.0.1:0"), backlog=1)
    closing(tcp)
    remove_unix_socket(str(path), tcp)
    remove_unix_socket(str(tmp_path / "missing"), tcp)
    assert path.exists()


# -- inherited descriptors -------------------------------------------------------


def test_fd_listener_adopts_a_listening_socket(closing):
    original = socket.socket()
    closing(original)
    original.bind(("127.0.0.1", 0))
    original.listen(4)
    adopted = open_listener(parse_bind(f"fd://{os.dup(original.fileno())}"), backlog=16)
    closing(adopted)
    assert adopted.getsockname() == original.getsockname()
    assert adopted.type == socket.SOCK_STREAM


@pytest.mark.parametrize("kind", ["not listening", "datagram", "file"])
def test_fd_that_is_no_listening_stream_socket_is_refused_and_left_open(kind, tmp_path):
    if kind == "file":
        handle = open(tmp_path / "f", "w")
    else:
        handle = socket.socket(type=socket.SOCK_DGRAM if kind == "datagram" else socket.SOCK_STREAM)
    try:
        with pytest.raises(ValueError, match=f"fd {handle.fileno()} is not"):
            open_listener(BindSpec("fd", fd=handle.fileno()), backlog=16)
        os.fstat(handle.fileno())  # still open: it was not ours to close
    finally:
        handle.close()


def test_closed_fd_is_refused():
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(ValueError, match=f"fd {read_end} is not a usable socket"):
        open_listener(BindSpec("fd", fd=read_end), backlog=16)


# -- systemd socket activation ------------------------------------------------------

# Run in a child process: moves the inherited socket to descriptor 3 as
# systemd would, claims the LISTEN_* variables for its own pid, and reports.
CHILD = textwrap.dedent("""
    import json, os, sys
    from wsgiserver.binding import describe, systemd_listeners
    os.dup2(int(sys.argv[1]), 3)
    os.close(int(sys.argv[1]))
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_FDNAMES"] = "http"
    listeners = systemd_listeners()
    print(json.dumps({
        "described": [describe(sock) for sock in listeners],
        "fds": [sock.fileno() for sock in listeners],
        "inheritable": [os.get_inheritable(sock.fileno()) for sock in listeners],
        "left": sorted(name for name in os.environ if name.startswith("LISTEN_")),
    }))
""")


def test_systemd_activation_adopts_fd_3_and_clears_the_variables(closing):
    listener = socket.socket()
    closing(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    fd = listener.fileno()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(fd)], pass_fds=[fd],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "described": [f"http://127.0.0.1:{listener.getsockname()[1]}"],
        "fds": [3],
        "inheritable": [False],
        "left": [],
    }


@pytest.mark.parametrize(
    ("pid", "count"),
    [("1", "1"), ("", "1"), ("self", "0"), ("self", "x"), ("self", "")],
)
def test_systemd_not_activated_returns_nothing_and_clears(monkeypatch, pid, count):
    for name, value in (("LISTEN_PID", pid), ("LISTEN_FDS", count), ("LISTEN_FDNAMES", "a")):
        monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert systemd_listeners() == []
    assert not any(name.startswith("LISTEN_") for name in os.environ)


def test_systemd_reads_a_given_mapping(monkeypatch):
    monkeypatch.delenv("LISTEN_PID", raising=False)
    assert systemd_listeners({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) == []
