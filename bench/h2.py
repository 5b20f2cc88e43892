"""HTTP/2 side by side: wsgiserver, gunicorn (gthread, h2 through the same h2
library) and granian (Rust), each speaking HTTP/2 to h2load on 127.0.0.1
(cleartext by prior knowledge, or over TLS chosen by ALPN), in one
alternating run.

Scenarios:

- ``concurrent``: 16 requests to ``/sleep`` (300 ms each) sent at once on one
  connection (``h2load -n16 -c1 -m16``): the time they all take. Streams
  served one after another take 4.8 s; side by side, 0.3 s per round of
  ``--threads``.
- ``hello``: ``GET /`` on 10 connections with 10 streams each, for
  ``--duration`` seconds: requests per second.
- ``1mib``: ``GET /1mib`` on 4 connections with 4 streams each: MiB/s.
- ``tls-hello``: ``hello`` over TLS (ALPN h2, a self-signed P-256 certificate
  made for the run with openssl).
- ``tls-h1``: the same over TLS with HTTP/1.1 (``h2load --h1``, 10
  connections, one request at a time each): the reference HTTP/2 must beat.

Usage: ``python bench/h2.py [--duration S] [--repeat N] [--servers a,b]``
(needs h2load: apt-get install nghttp2-client; the TLS scenarios need openssl).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from bench import procs  # noqa: E402

PY = sys.executable
HOST = "127.0.0.1"
APP = "bench.apps:app"


# A server's command: its port, and the certificate and key files when over TLS.
TLSFiles = tuple[str, str] | None


def wsgiserver(port: int, tls: TLSFiles, threads: int = 8) -> list[str]:
    command = [PY, "-m", "wsgiserver", APP, "--host", HOST, "--port", str(port), "--threads",
               str(threads), "--log-level", "warning"]
    if tls:
        return command + ["--http2", "--certfile", tls[0], "--keyfile", tls[1]]
    return command + ["--h2c-prior-knowledge", "--forwarded-allow-ips", HOST]


def gunicorn(port: int, tls: TLSFiles) -> list[str]:
    command = [PY, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "8", "-b",
               f"{HOST}:{port}", "--http-protocols", "h2,h1", "--forwarded-allow-ips", HOST,
               "--log-level", "warning"]
    if tls:
        return command + ["--certfile", tls[0], "--keyfile", tls[1], APP]
    return command + ["--http2-cleartext", "prior-knowledge", APP]


def granian(port: int, tls: TLSFiles) -> list[str]:
    command = [PY, "-m", "granian", "--interface", "wsgi", "--host", HOST, "--port", str(port),
               "--workers", "1", "--blocking-threads", "8", "--http", "auto", "--no-ws",
               "--log-level", "warning"]
    if tls:
        command += ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]]
    return command + [APP]


SERVERS: dict[str, Callable[[int, TLSFiles], list[str]]] = {
    "wsgiserver": wsgiserver,
    "wsgiserver-16t": lambda port, tls: wsgiserver(port, tls, 16),
    "gunicorn": gunicorn,
    "granian": granian,
}
# h2load's options and the path; the scenarios named tls-* run over TLS.
SCENARIOS = {
    "concurrent": ["-n", "16", "-c", "1", "-m", "16", "/sleep"],
    "hello": ["-c", "10", "-m", "10", "/"],
    "1mib": ["-c", "4", "-m", "4", "/1mib"],
    "tls-hello": ["-c", "10", "-m", "10", "/"],
    "tls-h1": ["--h1", "-c", "10", "-m", "1", "/"],
}


def url(port: int, tls: TLSFiles, path: str) -> str:
    return f"{'https' if tls else 'http'}://{HOST}:{port}{path}"


def make_certificate(directory: str) -> tuple[str, str]:
    """A self-signed P-256 certificate for 127.0.0.1 (the key in PKCS#8, as granian wants)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def h2load(port: int, tls: TLSFiles, scenario: str, duration: float) -> dict[str, float]:
    args = SCENARIOS[scenario]
    options, path = args[:-1], args[-1]
    if "-n" not in options:
        options = options + ["-D", str(int(duration)), "--warm-up-time", "1"]
    try:
        result = subprocess.run(["h2load", *options, url(port, tls, path)],
                                capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        # A server that never answers some connection (gunicorn's gthread gives each
        # HTTP/2 connection over TLS a thread for its life: the 9th of 10 waits forever).
        return {"seconds": math.inf, "rps": 0.0, "mibps": 0.0, "succeeded": 0, "failed": 0}
    return parse_h2load(result.stdout, result.stderr)


def parse_h2load(out: str, err: str = "") -> dict[str, float]:
    """h2load's summary: the time, req/s, MiB/s and the requests that succeeded or not."""
    finished = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s, ([\d.]+)(KB|MB|GB|B)/s",
                         out)
    counts = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored", out)
    if finished is None or counts is None:
        raise RuntimeError(f"h2load said: {out[-500:]} {err[-300:]}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    scale = {"B": 1 / 1024 / 1024, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[finished.group(5)]
    return {"seconds": seconds, "rps": float(finished.group(3)),
            "mibps": float(finished.group(4)) * scale,
            "succeeded": int(counts.group(2)),
            "failed": int(counts.group(3)) + int(counts.group(4))}


def ready(proc, port: int, tls: TLSFiles, timeout: float = 15.0) -> bool:
    """One HTTP/2 request answered (some servers take only HTTP/2 on the port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        probe = subprocess.run(["h2load", "-n", "1", "-c", "1", url(port, tls, "/")],
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
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("needs h2load: apt-get install nghttp2-client", file=sys.stderr)
        return 2
    names = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    for unknown in [name for name in names if name not in SERVERS] + \
            [scenario for scenario in scenarios if scenario not in SCENARIOS]:
        print(f"unknown server or scenario: {unknown}", file=sys.stderr)
        return 2
    certificates = tempfile.TemporaryDirectory()
    files = make_certificate(certificates.name) if any(
        scenario.startswith("tls-") for scenario in scenarios) else None
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for _ in range(args.repeat):
            for scenario in scenarios:
                tls = files if scenario.startswith("tls-") else None
                for name in names:  # alternating: the machine's drift falls on all alike
                    port = procs.free_port()
                    proc = procs.start(SERVERS[name](port, tls))
                    try:
                        if not ready(proc, port, tls):
                            print(f"{name}: not ready", file=sys.stderr)
                            continue
                        measured = h2load(port, tls, scenario, args.duration)
                    finally:
                        procs.stop(proc)
                    results.setdefault((scenario, name), []).append(measured)
                    print(f"{scenario:10} {name:15} {measured}", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
        certificates.cleanup()
    print("| scenario | server | seconds | req/s | MiB/s | failed |")
    print("|---|---|---|---|---|---|")
    for (scenario, name), runs in results.items():
        seconds, rps, mibps = (statistics.median(run[key] for run in runs)
                               for key in ("seconds", "rps", "mibps"))
        stalled = sum(math.isinf(run["seconds"]) for run in runs)
        shown = f"{seconds:.2f}" if not math.isinf(seconds) else "stalled"
        print(f"| {scenario} | {name} | {shown} | {rps:,.0f} | {mibps:.1f} | "
              f"{int(sum(run['failed'] for run in runs))}"
              f"{f' ({stalled} of {len(runs)} runs stalled)' if stalled else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
