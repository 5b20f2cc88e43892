"""HTTP/2 side by side: wsgiserver, gunicorn (gthread, h2 through the same h2
library) and granian (Rust), each speaking cleartext HTTP/2 by prior
knowledge to h2load on 127.0.0.1, in one alternating run.

Scenarios:

- ``concurrent``: 16 requests to ``/sleep`` (300 ms each) sent at once on one
  connection (``h2load -n16 -c1 -m16``): the time they all take. Streams
  served one after another take 4.8 s; side by side, 0.3 s per round of
  ``--threads``.
- ``hello``: ``GET /`` on 10 connections with 10 streams each, for
  ``--duration`` seconds: requests per second.
- ``1mib``: ``GET /1mib`` on 4 connections with 4 streams each: MiB/s.

Usage: ``python bench/h2.py [--duration S] [--repeat N] [--servers a,b]``
(needs h2load: apt-get install nghttp2-client).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from bench import procs  # noqa: E402

PY = sys.executable
HOST = "127.0.0.1"
APP = "bench.apps:app"


def wsgiserver(port: int, threads: int = 8) -> list[str]:
    return [PY, "-m", "wsgiserver", APP, "--host", HOST, "--port", str(port), "--threads",
            str(threads), "--h2c-prior-knowledge", "--forwarded-allow-ips", HOST,
            "--log-level", "warning"]


def gunicorn(port: int) -> list[str]:
    return [PY, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "8", "-b",
            f"{HOST}:{port}", "--http-protocols", "h2,h1", "--http2-cleartext",
            "prior-knowledge", "--forwarded-allow-ips", HOST, "--log-level", "warning", APP]


def granian(port: int) -> list[str]:
    return [PY, "-m", "granian", "--interface", "wsgi", "--host", HOST, "--port", str(port),
            "--workers", "1", "--blocking-threads", "8", "--http", "auto", "--no-ws",
            "--log-level", "warning", APP]


SERVERS: dict[str, Callable[[int], list[str]]] = {
    "wsgiserver": wsgiserver,
    "wsgiserver-16t": lambda port: wsgiserver(port, 16),
    "gunicorn": gunicorn,
    "granian": granian,
}
SCENARIOS = {
    "concurrent": ["-n", "16", "-c", "1", "-m", "16", "/sleep"],
    "hello": ["-c", "10", "-m", "10", "/"],
    "1mib": ["-c", "4", "-m", "4", "/1mib"],
}


def h2load(port: int, scenario: str, duration: float) -> dict[str, float]:
    args = SCENARIOS[scenario]
    options, path = args[:-1], args[-1]
    if "-n" not in options:
        options = options + ["-D", str(int(duration)), "--warm-up-time", "1"]
    result = subprocess.run(["h2load", *options, f"http://{HOST}:{port}{path}"],
                            capture_output=True, text=True, timeout=duration + 60)
    out = result.stdout
    finished = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s, ([\d.]+)(KB|MB|GB|B)/s",
                         out)
    counts = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored", out)
    if finished is None or counts is None:
        raise RuntimeError(f"h2load said: {out[-500:]} {result.stderr[-300:]}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    scale = {"B": 1 / 1024 / 1024, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[finished.group(5)]
    return {"seconds": seconds, "rps": float(finished.group(3)),
            "mibps": float(finished.group(4)) * scale,
            "succeeded": int(counts.group(2)),
            "failed": int(counts.group(3)) + int(counts.group(4))}


def ready(proc, port: int, timeout: float = 15.0) -> bool:
    """One HTTP/2 request answered (some servers take only HTTP/2 on the port)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        probe = subprocess.run(["h2load", "-n", "1", "-c", "1", f"http://{HOST}:{port}/"],
                               capture_output=True, text=True, timeout=10)
        if "1 succeeded" in probe.stdout:
            return True
        time.sleep(0.2)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--servers", default="wsgiserver,gunicorn,granian")
    parser.add_argument("--scenarios", default="concurrent,hello,1mib")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("needs h2load: apt-get install nghttp2-client", file=sys.stderr)
        return 2
    names = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for _ in range(args.repeat):
            for scenario in scenarios:
                for name in names:  # alternating: the machine's drift falls on all alike
                    port = procs.free_port()
                    proc = procs.start(SERVERS[name](port))
                    try:
                        if not ready(proc, port):
                            print(f"{name}: not ready", file=sys.stderr)
                            continue
                        measured = h2load(port, scenario, args.duration)
                    finally:
                        procs.stop(proc)
                    results.setdefault((scenario, name), []).append(measured)
                    print(f"{scenario:10} {name:15} {measured}", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
    print("| scenario | server | seconds | req/s | MiB/s | failed |")
    print("|---|---|---|---|---|---|")
    for (scenario, name), runs in results.items():
        seconds, rps, mibps = (statistics.median(run[key] for run in runs)
                               for key in ("seconds", "rps", "mibps"))
        print(f"| {scenario} | {name} | {seconds:.2f} | {rps:,.0f} | {mibps:.1f} | "
              f"{int(sum(run['failed'] for run in runs))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
