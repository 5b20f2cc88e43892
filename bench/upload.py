"""One large upload, as fast as loopback goes: time and the server's peak memory.

    python bench/upload.py                          # 1 GiB, Content-Length, to wsgiserver
    python bench/upload.py --baseline DIR --repeat 3 --chunked

Starts each server in turn (wsgiserver from this checkout, and from DIR if
given, in alternation), POSTs the body to /upload (which reads it whole and
answers its length), and prints MiB/s and the peak RSS (VmHWM) of the server.
A body received whole before the application runs must not make the server
hold it in memory: its RSS should stay flat, whatever the body's size.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import procs  # noqa: E402

MiB = 1024 * 1024
BLOCK = bytes(range(256)) * 4096  # 1 MiB


def server_cmd(directory: str, port: int) -> list[str]:
    code = (f"import sys; sys.path[:0] = [{directory!r}, {REPO!r}]; "
            "from wsgiserver.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, "bench.apps:app", "--port", str(port),
            "--log-level", "warning", "--max-body-bytes", str(8 << 30)]


def upload(port: int, size: int, chunked: bool) -> float:
    """Send the body, read the answer; the seconds it took."""
    head = "POST /upload HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
    frame = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK) if chunked else BLOCK
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head.encode())
        for _ in range(size // len(BLOCK)):
            sock.sendall(frame)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    took = time.monotonic() - started
    if not answer.endswith(str(size).encode()):
        raise SystemExit(f"unexpected answer: {answer[:200]!r}")
    return took


def measure(directory: str, size: int, chunked: bool) -> tuple[float, float, float]:
    """(MiB/s, idle RSS MiB, peak RSS MiB) of one server for one upload."""
    port = procs.free_port()
    proc = procs.start(server_cmd(directory, port), cwd=REPO)
    try:
        why = procs.wait_ready(proc, port)
        if why:
            raise SystemExit(f"server in {directory} did not start: {why}")
        procs.settle(proc.pid)
        idle = procs.rss_mib(proc.pid)
        took = upload(port, size, chunked)
        peak = procs.rss_mib(proc.pid, "VmHWM")
    finally:
        procs.stop(proc)
    return size / MiB / took, idle, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunked", action="store_true")
    parser.add_argument("--baseline", metavar="DIR", help="also wsgiserver as checked out in DIR")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    servers = [("wsgiserver", REPO)] + ([("wsgiserver-base", args.baseline)]
                                        if args.baseline else [])
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in servers}
    try:
        for _ in range(args.repeat):
            for name, directory in servers:
                results[name].append(measure(directory, args.size_mib * MiB, args.chunked))
                rate, idle, peak = results[name][-1]
                print(f"{name:16} {rate:8.1f} MiB/s  idle RSS {idle:6.1f} MiB  "
                      f"peak RSS {peak:6.1f} MiB", flush=True)
    finally:
        procs.stop_all()
    framing = "chunked" if args.chunked else "Content-Length"
    print(f"\n{args.size_mib} MiB upload ({framing}), medians of {args.repeat}:")
    for name, runs in results.items():
        rate = statistics.median(run[0] for run in runs)
        peak = max(run[2] for run in runs)
        print(f"  {name:16} {rate:8.1f} MiB/s  peak RSS {peak:6.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
