"""What one open WebSocket costs the server: RSS, threads and idle CPU with N of them open.

    python bench/websockets_memory.py --count 1000 [--idle-seconds 10] [--wrk-seconds 5]

Starts wsgiserver on an echo app, opens N WebSockets (offering
permessage-deflate as browsers do), sends one message on each so every
connection has run its application, and reads the server's RSS and thread
count before and after; then the CPU the server spends over ``--idle-seconds``
while they all stay idle (share of one core), and, with wrk installed, hello
throughput without and with them open (``--wrk-seconds``, 0 to skip).
Everything on 127.0.0.1; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import procs  # noqa: E402

MASK = b"\x01\x02\x03\x04"


def handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            raise SystemExit("the server closed a handshake")
        head += data
    if not head.startswith(b"HTTP/1.1 101 "):
        raise SystemExit(f"handshake refused: {head[:100]!r}")
    return sock


def echo_once(sock: socket.socket) -> None:
    payload = b"hello"
    masked = bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + MASK + masked)
    if sock.recv(64) != b"\x81\x05hello":
        raise SystemExit("no echo")


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def hello_rate(port: int, seconds: float) -> float | None:
    """Requests per second wrk gets from ``/`` (16 connections), or None without wrk."""
    if not seconds or shutil.which("wrk") is None:
        return None
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds:g}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--wrk-seconds", type=float, default=5.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.count + 100)),
                                                hard))
    port = procs.free_port()
    proc = procs.start([sys.executable, "-m", "wsgiserver", "bench.websocket_echo:app",
                        "--port", str(port), "--log-level", "warning",
                        "--max-websockets", str(args.count)], cwd=REPO)
    socks: list[socket.socket] = []
    try:
        why = procs.wait_ready(proc, port)
        if why:
            raise SystemExit(f"server did not start: {why}")
        procs.settle(proc.pid)
        before_rss, before_threads = procs.rss_mib(proc.pid), threads_of(proc.pid)
        rate_without = hello_rate(port, args.wrk_seconds)
        for _ in range(args.count):
            socks.append(handshake(port))
        for sock in socks:
            echo_once(sock)
        procs.settle(proc.pid)
        after_rss, after_threads = procs.rss_mib(proc.pid), threads_of(proc.pid)
        cpu_before, started = procs.cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_share = (procs.cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - started)
        rate_with = hello_rate(port, args.wrk_seconds)
    finally:
        for sock in socks:
            sock.close()
        procs.stop_all()
    per = (after_rss - before_rss) * 1024 / args.count
    print(f"{args.count} WebSockets open: RSS {before_rss:.1f} -> {after_rss:.1f} MiB "
          f"({per:.0f} KiB each), threads {before_threads} -> {after_threads}")
    print(f"idle for {args.idle_seconds:g} s: the server used {idle_share:.2%} of a core")
    if rate_without and rate_with:
        print(f"hello (wrk -c16): {rate_without:,.0f} req/s without them, {rate_with:,.0f} "
              f"with them open ({rate_with / rate_without - 1:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
