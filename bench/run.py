"""Benchmark wsgiserver against its peers on 127.0.0.1 and print one table.

    python bench/run.py --install          # install the peers and wrk/nginx, then run
    python bench/run.py --duration 10 --repeat 3 --pin --markdown --json

For every repeat, every scenario, the servers run in alternation, each in a
fresh process on a free loopback port: start, wait for GET /, check the
scenario's response, measure idle RSS, warm up, run wrk, read peak RSS and
CPU, stop it by PID. With --repeat N the table shows medians (errors summed,
peak RSS the maximum). See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import importlib.metadata
import json
import os
import platform
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import apps, procs, servers  # noqa: E402

RESULTS = os.path.join(HERE, "results")
WRK_LUA = os.path.join(HERE, "wrk.lua")
MiB = 1024 * 1024


@dataclass
class Scenario:
    name: str
    about: str
    path: str
    connections: int
    headers: tuple[str, ...] = ()
    body_bytes: int = 0
    held: int = 0  # connections held open by bench/idle.py during the run
    silent: bool = False  # held connections never send a byte


SCENARIOS = {s.name: s for s in [
    Scenario("hello", "GET / 13 B, keep-alive", "/", 64),
    Scenario("close", "GET / 13 B, Connection: close", "/", 16, headers=("Connection: close",)),
    Scenario("1mib", "GET /1mib, 1 MiB from memory", "/1mib", 8),
    Scenario("file", "GET /file, 10 MiB via wsgi.file_wrapper", "/file", 4),
    Scenario("upload", "POST /upload, 64 KiB body read by the app", "/upload", 16,
             body_bytes=64 * 1024),
    Scenario("idle", "hello while 1,000 idle keep-alive connections are held", "/", 64,
             held=1000),
    Scenario("silent", "hello while 1,000 connections never send a byte", "/", 64,
             held=1000, silent=True),
]}
DEFAULT_SCENARIOS = ["hello", "close", "1mib", "file", "upload", "idle"]


@dataclass
class Result:
    server: str
    scenario: str
    rps: float = 0.0
    mibps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    error_detail: dict = field(default_factory=dict)
    cpu_us_per_req: float | None = None
    peak_rss_mib: float | None = None
    idle_rss_mib: float | None = None
    notes: list[str] = field(default_factory=list)
    failed: bool = False


# ---------------------------------------------------------------- environment

def run_quiet(cmd: list[str], timeout: float = 10) -> str:
    """stdout+stderr of a short command, or '' if it cannot run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).strip()


def versions() -> dict[str, str]:
    info = {"python": platform.python_version(), "kernel": platform.release(),
            "cpus": str(os.cpu_count())}
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
            break
    version = run_quiet([sys.executable, "-c",
                         "import wsgiserver; print(getattr(wsgiserver, '__version__', '?'))"])
    info["wsgiserver"] = version.splitlines()[-1] if version else "not importable"
    commit = run_quiet(["git", "rev-parse", "--short", "HEAD"])
    info["commit"] = commit if commit and " " not in commit else "no commit"
    if run_quiet(["git", "status", "--porcelain", "--", "wsgiserver"]):
        info["commit"] += " + uncommitted changes in wsgiserver/"
    for dist in ("waitress", "gunicorn", "cheroot"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    wrk = (run_quiet(["wrk", "-v"]).splitlines() or ["not installed"])[0]
    info["wrk"] = wrk.split(" [")[0].removeprefix("wrk ")
    info["nginx"] = (run_quiet(["nginx", "-v"]) or "not installed").split("/")[-1]
    return info


def load_average() -> float:
    """The 1-minute load average: above ~0.5 before a run, something else is busy."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def install() -> None:
    """pip for the Python peers, apt-get for wrk and nginx (as root)."""
    pip = [sys.executable, "-m", "pip", "install", "waitress", "gunicorn", "cheroot"]
    print("$", " ".join(pip), flush=True)
    subprocess.run(pip, check=True, timeout=600)
    if shutil.which("wrk") and shutil.which("nginx"):
        return
    if os.geteuid() != 0:
        sys.exit("install wrk and nginx as root: apt-get install -y wrk nginx-light")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, timeout=600, env=env)
    for pkgs in (["wrk", "nginx-light"], ["wrk", "nginx"]):
        print("$ apt-get install -y", " ".join(pkgs), flush=True)
        done = subprocess.run(["apt-get", "install", "-y", *pkgs], timeout=900, env=env)
        if done.returncode == 0:
            return
    sys.exit("apt-get could not install wrk and nginx")


# ---------------------------------------------------------------- one measurement

class Bench:
    """Settings shared by every measurement of a run, and the scratch directory."""

    def __init__(self, args, tmpdir: str, logdir: str) -> None:
        self.args = args
        self.ctx = servers.Context(tmpdir=tmpdir, file_path=os.path.join(tmpdir, "10mib.bin"))
        apps.make_file(self.ctx.file_path)
        with open(self.ctx.file_path, "rb") as f:
            self.file_sha = hashlib.sha256(f.read()).hexdigest()
        self.logdir = logdir
        self.env = {**os.environ, "WSGISERVER_BENCH_FILE": self.ctx.file_path,
                    "PYTHONDONTWRITEBYTECODE": "1"}
        self.wrk_threads = 1 if args.pin else 2

    def server_cmd(self, server: servers.Server, port: int) -> list[str]:
        cmd = server.build(port, self.ctx)
        if self.args.pin and server.procs == 1:
            cmd = ["taskset", "-c", "0", *cmd]
        return cmd

    def client_prefix(self) -> list[str]:
        return ["taskset", "-c", "1"] if self.args.pin else []

    def measure(self, server: servers.Server, sc: Scenario, rep: int) -> Result:
        """Start server, measure scenario sc once, stop it: never raises for a bad server."""
        res = Result(server.name, sc.name)
        missing = [exe for exe in server.needs if not shutil.which(exe)]
        if missing:
            return fail(res, f"{', '.join(missing)} not installed (python bench/run.py --install)")
        port = procs.free_port()
        log = os.path.join(self.logdir, f"{server.name}-{sc.name}-{rep}.log")
        try:
            proc = procs.start(self.server_cmd(server, port), log, cwd=REPO, env=self.env)
        except OSError as exc:
            return fail(res, f"could not start: {exc}")
        held = None
        try:
            why = procs.wait_ready(proc, port)
            if why:
                return fail(res, f"{why}; log: {log_tail(log)}")
            procs.settle(proc.pid)
            res.idle_rss_mib = procs.rss_mib(proc.pid)
            bad = check_response(port, sc, self.file_sha)
            if bad:
                res.notes.append(f"bad response: {bad}")
                res.errors += 1
            if self.args.warmup > 0:
                self.wrk(port, sc, self.args.warmup)
            if sc.held:
                held = self.hold(port, sc, res)
            cpu0 = procs.cpu_seconds(proc.pid)
            stats = self.wrk(port, sc, self.args.duration)
            cpu1 = procs.cpu_seconds(proc.pid)
            res.peak_rss_mib = procs.rss_mib(proc.pid, "VmHWM")
            fill(res, stats, cpu1 - cpu0)
            if held is not None:
                release(held, res)
                held = None
            logged = log_tracebacks(log)
            if logged:
                res.notes.append(logged)
            if proc.poll() is not None:
                res.notes.append(f"server exited with code {proc.returncode} during the run; "
                                 f"log: {log_tail(log)}")
                res.failed = True
        finally:
            if held is not None:
                procs.stop(held, grace=2)
            code = procs.stop(proc)
        if code is None:
            res.notes.append("did not stop within 5 s of SIGTERM: killed")
        return res

    def wrk(self, port: int, sc: Scenario, seconds: float) -> dict:
        """Run wrk once; its BENCH_JSON summary, or {'error': ...}."""
        cmd = [*self.client_prefix(), "wrk", "-t", str(self.wrk_threads), "-c",
               str(sc.connections), "-d", f"{max(1, round(seconds))}s", "--timeout", "5s",
               "--latency", "-s", WRK_LUA]
        for header in sc.headers:
            cmd += ["-H", header]
        cmd.append(f"http://127.0.0.1:{port}{sc.path}")
        env = {**os.environ, "BENCH_BODY_BYTES": str(sc.body_bytes)}
        proc = procs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            out, _ = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            procs.stop(proc)
            return {"error": "wrk did not finish in time"}
        procs.stop(proc)
        text = out.decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                return json.loads(line[len("BENCH_JSON "):])
        return {"error": f"wrk: {text.strip()[-300:] or 'no output'}"}

    def hold(self, port: int, sc: Scenario, res: Result) -> subprocess.Popen | None:
        """Start bench/idle.py holding sc.held connections; wait until they are settled."""
        cmd = [*self.client_prefix(), sys.executable, "-m", "bench.idle", "--port", str(port),
               "--count", str(sc.held), "--hold", str(self.args.duration + 60)]
        if sc.silent:
            cmd.append("--silent")
        proc = procs.start(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, cwd=REPO)
        line = read_line(proc, timeout=25)
        parts = line.split()
        if len(parts) != 4 or parts[0] != "ready":
            res.notes.append(f"idle connections not ready: {line or 'no answer'}")
            res.errors += sc.held
            return proc
        opened, answered, failed = map(int, parts[1:])
        if failed:
            res.notes.append(f"{failed} of {sc.held} held connections failed to "
                             f"{'connect' if sc.silent else 'get an answer'}")
            res.errors += failed
        return proc


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line from proc's stdout within timeout ('' otherwise)."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline().decode(errors="replace").strip()


def release(proc: subprocess.Popen, res: Result) -> None:
    """Close idle.py's stdin: it reports how many connections survived, then exits."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    parts = read_line(proc, timeout=10).split()
    if len(parts) == 3 and parts[0] == "held" and int(parts[2]):
        res.notes.append(f"server closed {parts[2]} of the held connections during the run")
    procs.stop(proc, grace=5)


def fail(res: Result, why: str) -> Result:
    res.failed = True
    res.notes.append(why)
    return res


def log_tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            tail = f.read().strip().splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return " | ".join(tail) or "(empty log)"


def log_tracebacks(path: str) -> str | None:
    """A note when the server's log holds Python tracebacks: how many, and the first error."""
    count, first, in_tb = 0, None, False
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("Traceback (most recent call last)"):
                    count += 1
                    in_tb = first is None
                elif in_tb and line.strip() and not line.startswith((" ", "\t")):
                    first, in_tb = line.strip()[:160], False
    except OSError:
        return None
    if not count:
        return None
    return f"server logged {count} tracebacks, first: {first or '?'}"


def fill(res: Result, stats: dict, cpu: float) -> None:
    """Copy wrk's summary into res."""
    if "error" in stats:
        fail(res, stats["error"])
        return
    seconds = stats["duration_us"] / 1e6
    if not stats["requests"]:
        res.notes.append("no request completed during the run")
    res.rps = stats["requests"] / seconds
    res.mibps = stats["bytes"] / seconds / MiB
    if stats["requests"]:
        res.p50_ms = stats["p50_us"] / 1000
        res.p99_ms = stats["p99_us"] / 1000
    detail = {k: stats[k] for k in ("connect", "read", "write", "timeout", "status") if stats[k]}
    res.error_detail = detail
    res.errors += sum(detail.values())
    if stats["requests"]:
        res.cpu_us_per_req = cpu / stats["requests"] * 1e6


def check_response(port: int, sc: Scenario, file_sha: str) -> str | None:
    """One request of the scenario on a fresh connection; what is wrong with the answer."""
    body = b"a" * sc.body_bytes if sc.body_bytes else None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST" if body else "GET", sc.path, body=body)
        resp = conn.getresponse()
        got = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"status {resp.status}"
    expected = {"/": apps.HELLO, "/1mib": apps.ONE_MIB, "/upload": str(sc.body_bytes).encode()}
    if sc.path == "/file":
        if len(got) != apps.FILE_SIZE or hashlib.sha256(got).hexdigest() != file_sha:
            return f"/file body of {len(got)} bytes differs from the file"
    elif got != expected[sc.path]:
        return f"body {got[:40]!r}... ({len(got)} bytes)"
    return None


# ---------------------------------------------------------------- aggregation

def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def combine(runs: list[Result]) -> Result:
    """Medians over repeats; errors summed, peak RSS the maximum, notes kept."""
    ok = [r for r in runs if not r.failed] or runs
    out = Result(runs[0].server, runs[0].scenario, failed=all(r.failed for r in runs))
    out.rps = median([r.rps for r in ok]) or 0.0
    out.mibps = median([r.mibps for r in ok]) or 0.0
    out.p50_ms = median([r.p50_ms for r in ok])
    out.p99_ms = median([r.p99_ms for r in ok])
    out.cpu_us_per_req = median([r.cpu_us_per_req for r in ok])
    out.idle_rss_mib = median([r.idle_rss_mib for r in ok])
    peaks = [r.peak_rss_mib for r in ok if r.peak_rss_mib is not None]
    out.peak_rss_mib = max(peaks) if peaks else None
    out.errors = sum(r.errors for r in runs)
    for r in runs:
        for key, n in r.error_detail.items():
            out.error_detail[key] = out.error_detail.get(key, 0) + n
        out.notes += [n for n in r.notes if n not in out.notes]
    if any(r.failed for r in runs) and not out.failed:
        out.notes.append(f"{sum(r.failed for r in runs)} of {len(runs)} repeats failed")
    return out


def reference(rows: list[Result], row: Result) -> Result | None:
    """The wsgiserver row that row is compared with: same scenario, same process count."""
    procs_of = servers.BY_NAME[row.server].procs
    for r in rows:
        s = servers.BY_NAME[r.server]
        if r.scenario == row.scenario and s.is_ours and s.procs == procs_of:
            return r
    return None


# ---------------------------------------------------------------- output

COLUMNS = ["scenario", "server", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors",
           "CPU us/req", "peak RSS MiB", "idle RSS MiB", "wsgiserver/peer"]


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cells(rows: list[Result], r: Result) -> list[str]:
    ref = reference(rows, r)
    if servers.BY_NAME[r.server].is_ours:
        ratio = "-"
    elif r.failed or not r.rps or ref is None or ref.failed:
        ratio = "n/a"
    else:
        ratio = f"{ref.rps / r.rps:.2f}x"
    if r.failed:
        return [r.scenario, r.server, "FAILED", "-", "-", "-", str(r.errors or "-"), "-", "-",
                fmt(r.idle_rss_mib, ".1f"), ratio]
    errors = str(r.errors) + ("*" if r.notes else "")
    return [r.scenario, r.server, fmt(r.rps, ",.0f"), fmt(r.mibps, ",.1f"), fmt(r.p50_ms, ".2f"),
            fmt(r.p99_ms, ".2f"), errors, fmt(r.cpu_us_per_req, ".0f"),
            fmt(r.peak_rss_mib, ".1f"), fmt(r.idle_rss_mib, ".1f"), ratio]


def table(rows: list[Result], markdown: bool) -> str:
    body = [cells(rows, r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body])
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *body, strict=True)]
    left = {0, 1}

    def line(cs: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cs, widths, strict=True)))
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths])] + [line(c) for c in body])


def checks(rows: list[Result]) -> list[str]:
    """The targets issue 4 asks the lead to check, computed from the rows present."""
    by = {(r.server, r.scenario): r for r in rows if not r.failed}
    out = []
    for name in servers.BY_NAME:
        hello, idle = by.get((name, "hello")), by.get((name, "idle"))
        if hello and idle and hello.rps:
            cost = 1 - idle.rps / hello.rps
            out.append(f"idle cost {name}: {cost:+.1%} of hello throughput with 1,000 idle "
                       f"connections, {idle.errors} errors (target for wsgiserver: < 10%, 0)")
    ours = [by.get(("wsgiserver", s)) for s in SCENARIOS]
    theirs = [by.get(("waitress", s)) for s in SCENARIOS]
    ws = median([r.idle_rss_mib for r in ours if r])
    wt = median([r.idle_rss_mib for r in theirs if r])
    if ws and wt:
        out.append(f"idle RSS: wsgiserver {ws:.1f} MiB, waitress {wt:.1f} MiB "
                   f"(ratio {ws / wt:.2f}x)")
    return out


def report(rows: list[Result], meta: dict, markdown: bool) -> str:
    a = meta["args"]
    pin = ("pinned: servers on CPU 0 (taskset -c 0; 2-process servers unpinned), "
           "wrk and idle.py on CPU 1" if a["pin"] else "not pinned")
    head = [
        f"wsgiserver {meta['versions']['wsgiserver']} (commit {meta['versions']['commit']}), "
        f"{meta['started']}",
        "peers: " + ", ".join(f"{k} {meta['versions'][k]}" for k in
                              ("waitress", "gunicorn", "cheroot", "nginx", "wrk")),
        f"python {meta['versions']['python']}, {meta['versions']['cpus']} CPUs "
        f"({meta['versions'].get('cpu', '?')}), kernel {meta['versions']['kernel']}",
        f"duration {a['duration']} s per run after {a['warmup']} s warm-up, repeat "
        f"{a['repeat']} ({'median' if a['repeat'] > 1 else 'single run'}), "
        f"wrk -t{1 if a['pin'] else 2} --timeout 5s, {pin}",
        f"load average before the run {meta['load_before']:.2f} (other work on the machine "
        "makes figures noisy)",
    ]
    scen = [f"  {s.name}: {s.about}, {s.connections} connections"
            for s in SCENARIOS.values() if s.name in a["scenarios"]]
    used = sorted({r.server for r in rows}, key=list(servers.BY_NAME).index)
    sets = [f"  {n}: {servers.BY_NAME[n].settings}" for n in used]
    notes = [f"  {r.server}/{r.scenario}: " + "; ".join(
        r.notes + ([f"wrk errors {r.error_detail}"] if r.error_detail else []))
        for r in rows if r.notes or r.error_detail]
    parts = ["\n".join(head), "scenarios:\n" + "\n".join(scen),
             "servers (all on 127.0.0.1, app bench.apps:app):\n" + "\n".join(sets),
             table(rows, markdown)]
    if notes:
        parts.append("notes (* in errors):\n" + "\n".join(notes))
    found = checks(rows)
    if found:
        parts.append("checks:\n" + "\n".join("  " + c for c in found))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- driver

def plan(args) -> list[tuple[Scenario, list[servers.Server]]]:
    named = args.servers is not None
    names = args.servers or servers.DEFAULT
    chosen = [servers.BY_NAME[n] for n in names]
    return [(SCENARIOS[s], [srv for srv in chosen if srv.runs(s, named)]) for s in args.scenarios]


def run(args) -> tuple[list[Result], list[Result]]:
    """Every repeat, scenario and server in alternation; (medians, every single run)."""
    every: dict[tuple[str, str], list[Result]] = {}
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logdir = os.path.join(RESULTS, "logs", stamp)
    os.makedirs(logdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wsgiserver-bench-") as tmpdir:
        os.chmod(tmpdir, 0o755)  # nginx workers run as nobody and read the file from here
        bench = Bench(args, tmpdir, logdir)
        steps = plan(args)
        for rep in range(args.repeat):
            for sc, chosen in steps:
                k = rep % len(chosen) if chosen else 0
                for server in chosen[k:] + chosen[:k]:  # rotate the order each repeat
                    print(f"[{rep + 1}/{args.repeat}] {sc.name:7} {server.name:14}", end=" ",
                          flush=True)
                    res = bench.measure(server, sc, rep)
                    every.setdefault((server.name, sc.name), []).append(res)
                    print("FAILED: " + "; ".join(res.notes) if res.failed else
                          f"{res.rps:,.0f} req/s, {res.errors} errors", flush=True)
    order = [(srv.name, sc.name) for sc, chosen in steps for srv in chosen]
    rows = [combine(every[key]) for key in order if key in every]
    return rows, [r for key in order for r in every.get(key, [])]


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=scenario_help())
    p.add_argument("--install", action="store_true",
                   help="pip install waitress gunicorn cheroot, apt-get install wrk nginx, "
                        "then run")
    p.add_argument("--install-only", action="store_true", help="install, do not run")
    p.add_argument("--duration", type=float, default=10, help="seconds of wrk per run (10)")
    p.add_argument("--warmup", type=float, default=1,
                   help="seconds of wrk before each measured run, 0 for none (1)")
    p.add_argument("--repeat", type=int, default=1, help="runs of everything; median shown (1)")
    p.add_argument("--scenarios", type=csv(SCENARIOS), default=DEFAULT_SCENARIOS,
                   help="comma-separated (default: " + ",".join(DEFAULT_SCENARIOS) + ")")
    p.add_argument("--servers", type=csv(servers.BY_NAME), default=None,
                   help="comma-separated; named servers run every scenario they can "
                        "(default: all, 'sync' only hello/close, 2-process rows only "
                        "hello/close/idle)")
    p.add_argument("--pin", action="store_true",
                   help="taskset: servers on CPU 0, wrk and idle.py on CPU 1")
    p.add_argument("--baseline", metavar="DIR",
                   help="also run wsgiserver as checked out in DIR (git worktree add DIR REV) "
                        "as 'wsgiserver-base', for before/after figures in one run")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="also write bench/results/<time>.json")
    args = p.parse_args(argv)
    if args.baseline:
        if not os.path.isdir(os.path.join(args.baseline, "wsgiserver")):
            p.error(f"--baseline {args.baseline}: no wsgiserver package there")
        base = servers.baseline(os.path.abspath(args.baseline))
        servers.ALL.append(base)
        servers.BY_NAME[base.name] = base
        servers.DEFAULT.append(base.name)
        if args.servers is not None and base.name not in args.servers:
            args.servers.append(base.name)
    if args.repeat < 1 or args.duration < 1:
        p.error("--repeat and --duration must be at least 1")
    return args


def csv(known):
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(known)}")
        return names
    return parse


def scenario_help() -> str:
    lines = ["scenarios:"] + [f"  {s.name:8} {s.about}, {s.connections} connections"
                              for s in SCENARIOS.values()]
    lines += ["servers:"] + [f"  {s.name:14} {s.settings}" for s in servers.ALL]
    return "\n".join(lines)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install or args.install_only:
        install()
        if args.install_only:
            return 0
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    meta = {"started": dt.datetime.now().isoformat(timespec="seconds"), "versions": versions(),
            "args": vars(args), "load_before": load_average()}
    if meta["load_before"] > 0.5:
        print(f"warning: load average {meta['load_before']:.2f} before the run: the machine "
              "has been busy, figures may be noisy", file=sys.stderr)
    try:
        rows, every = run(args)
        meta["load_after"] = load_average()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    print()
    print(report(rows, meta, args.markdown))
    if args.json:
        path = os.path.join(RESULTS, meta["started"].replace(":", "") + ".json")
        with open(path, "w") as f:
            json.dump({**meta, "rows": [vars(r) for r in rows],
                       "runs": [vars(r) for r in every]}, f, indent=1)
        print(f"\nwritten: {os.path.relpath(path, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
