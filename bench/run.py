"""Benchmark wsgiserver against its peers on 127.0.0.1 and print one table.

    python bench/run.py --install          # install the peers and wrk/nginx, then run
    python bench/run.py --duration 10 --repeat 3 --pin --markdown --json --chart out.svg
    python bench/run.py --from-json bench/results/X.json --chart out.svg   # redraw only

For every repeat, every scenario, the servers run in alternation, each in a
fresh process on a free loopback port: start, wait for GET /, check the
scenario's response, measure idle RSS, warm up, run wrk, read peak RSS and
CPU, stop it by PID. With --repeat N the table shows medians (errors summed,
peak RSS the maximum). The slow-client scenarios run bench/slow.py instead of
wrk and have a table of their own. See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import http.client
import importlib.metadata
import importlib.util
import json
import math
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


FLASK_APP = "bench.flask_app:app"
# Three slow clients per thread of the 8-thread servers: what issue 11 measured.
SLOW_CLIENTS = 24
# By default the slow scenarios run these only: a server stuck by slow clients
# costs probes x timeout (200 s) a run, and waitress (whose I/O thread takes
# whole bodies) and gthread are the two behaviours to compare with.
SLOW_SERVERS = frozenset({"wsgiserver", "wsgiserver-base", "waitress", "gthread"})
# The package to install for what only the benchmark uses (setup.cfg extra).
BENCH_EXTRA = "pip install '.[bench]'"


@dataclass
class Scenario:
    name: str
    about: str
    path: str
    connections: int  # wrk connections, or slow clients (bench/slow.py) when slow is set
    headers: tuple[str, ...] = ()
    body_bytes: int = 0
    held: int = 0  # connections held open by bench/idle.py during the run
    silent: bool = False  # held connections never send a byte
    app: str = servers.APP  # every server of the scenario loads this app
    modules: tuple[str, ...] = ()  # Python packages the app needs
    slow: str = ""  # kind of bench/slow.py clients; no wrk: GET / timed while they run
    chunked: bool = False  # the check sends its body chunked
    default_servers: frozenset[str] | None = None  # run only these unless --servers names more

    def offers(self, server: str, named: bool) -> bool:
        return named or self.default_servers is None or server in self.default_servers


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
    Scenario("flask", "GET / of a Flask view answering 362 B of JSON, keep-alive", "/", 64,
             app=FLASK_APP, modules=("flask",)),
    Scenario("slowup", "GET / timed while slow clients POST /upload 1 MiB with "
             "Content-Length, 1 KiB per 0.5 s", "/upload", SLOW_CLIENTS, body_bytes=MiB,
             slow="up", default_servers=SLOW_SERVERS),
    Scenario("slowchunk", "GET / timed while slow clients POST /upload chunked, "
             "100 B per 0.5 s", "/upload", SLOW_CLIENTS, body_bytes=1000, chunked=True,
             slow="chunk", default_servers=SLOW_SERVERS),
    Scenario("slowread", "GET / timed while slow clients read GET /16mib 1 KiB per 0.5 s "
             "(SO_RCVBUF 4 KiB)", "/16mib", SLOW_CLIENTS, slow="read",
             default_servers=SLOW_SERVERS),
]}
DEFAULT_SCENARIOS = ["hello", "close", "1mib", "file", "upload", "idle", "flask"]
SLOW_SCENARIOS = [s.name for s in SCENARIOS.values() if s.slow]
# Names --scenarios accepts for several at once.
GROUPS = {"slow": SLOW_SCENARIOS, "default": DEFAULT_SCENARIOS, "all": list(SCENARIOS)}


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
    # slow-client scenarios (p50_ms above is the timed GET /s' median there)
    probes: int = 0  # GET / timed
    answered: float | None = None  # of them answered within the timeout
    max_ms: float | None = None  # slowest of those answered
    unanswered: dict = field(default_factory=dict)  # why not: {"timeout": 20}
    slow_errors: int = 0  # the slow clients' own errors
    slow_detail: dict = field(default_factory=dict)  # {"closed": 3}
    slow_kib: float | None = None  # KiB the slow clients sent and received
    cpu_s: float | None = None  # server CPU seconds while the GET /s were timed

    @property
    def is_slow(self) -> bool:
        sc = SCENARIOS.get(self.scenario)
        return bool(sc and sc.slow)


def result_from(data: dict) -> Result:
    """A Result from its JSON form (fields unknown to this version are dropped)."""
    known = {f.name for f in dataclasses.fields(Result)}
    return Result(**{k: v for k, v in data.items() if k in known})


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
    for dist in PEERS:
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


PEERS = ("waitress", "gunicorn", "cheroot", "granian", "flask")


def install() -> None:
    """pip for the Python peers, Flask and matplotlib, apt-get for wrk and nginx (as root)."""
    pip = [sys.executable, "-m", "pip", "install", "waitress", "gunicorn", "cheroot", "granian",
           "flask", "matplotlib"]
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
        self.env = {**os.environ, "BENCH_FILE_PATH": self.ctx.file_path,
                    "PYTHONDONTWRITEBYTECODE": "1"}
        self.wrk_threads = 1 if args.pin else 2

    def server_cmd(self, server: servers.Server, port: int, sc: Scenario) -> list[str]:
        cmd = server.build(port, dataclasses.replace(self.ctx, app=sc.app))
        if self.args.pin and server.procs == 1:
            cmd = ["taskset", "-c", "0", *cmd]
        return cmd

    def client_prefix(self) -> list[str]:
        return ["taskset", "-c", "1"] if self.args.pin else []

    def measure(self, server: servers.Server, sc: Scenario, rep: int) -> Result:
        """Start server, measure scenario sc once, stop it: never raises for a bad server."""
        res = Result(server.name, sc.name)
        missing = server.missing() + [m for m in sc.modules if importlib.util.find_spec(m) is None]
        if missing:
            return fail(res, f"{', '.join(missing)} not installed (python bench/run.py --install)")
        port = procs.free_port()
        log = os.path.join(self.logdir, f"{server.name}-{sc.name}-{rep}.log")
        try:
            proc = procs.start(self.server_cmd(server, port, sc), log, cwd=REPO, env=self.env)
        except OSError as exc:
            return fail(res, f"could not start: {exc}")
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
            if sc.slow:
                self.run_slow(port, sc, res, proc.pid)
            else:
                self.run_wrk(port, sc, res, proc.pid)
            logged = log_tracebacks(log)
            if logged:
                res.notes.append(logged)
            if proc.poll() is not None:
                res.notes.append(f"server exited with code {proc.returncode} during the run; "
                                 f"log: {log_tail(log)}")
                res.failed = True
        finally:
            code = procs.stop(proc)
        if code is None:
            res.notes.append("did not stop within 5 s of SIGTERM: killed")
        return res

    def run_wrk(self, port: int, sc: Scenario, res: Result, pid: int) -> None:
        """Warm up, hold the idle connections if any, and measure with wrk."""
        if self.args.warmup > 0:
            self.wrk(port, sc, self.args.warmup)
        held = self.hold(port, sc, res) if sc.held else None
        try:
            cpu0 = procs.cpu_seconds(pid)
            stats = self.wrk(port, sc, self.args.duration)
            cpu1 = procs.cpu_seconds(pid)
            res.peak_rss_mib = procs.rss_mib(pid, "VmHWM")
            fill(res, stats, cpu1 - cpu0)
            if held is not None:
                release(held, res)
                held = None
        finally:
            if held is not None:
                procs.stop(held, grace=2)

    def run_slow(self, port: int, sc: Scenario, res: Result, pid: int) -> None:
        """Slow clients on, settled for 1 s, the ordinary GET /s timed, slow clients off."""
        budget = self.args.probes * self.args.probe_timeout
        cmd = [*self.client_prefix(), sys.executable, "-m", "bench.slow", "clients",
               "--port", str(port), "--kind", sc.slow, "--count", str(sc.connections),
               "--settle", "1", "--hold", str(budget + 30)]
        clients = procs.start(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            parts = read_line(clients, timeout=15).split()
            if len(parts) != 3 or parts[0] != "ready":
                fail(res, f"slow clients not ready: {' '.join(parts) or 'no answer'}")
                return
            if int(parts[2]):
                res.notes.append(f"{parts[2]} of {sc.connections} slow clients not connected "
                                 "after 1 s")
            cpu0 = procs.cpu_seconds(pid)
            fill_probes(res, self.probe(port, budget))
            res.cpu_s = procs.cpu_seconds(pid) - cpu0
            res.peak_rss_mib = procs.rss_mib(pid, "VmHWM")
            fill_slow(res, finish_slow(clients))
        finally:
            procs.stop(clients, grace=2)

    def probe(self, port: int, budget: float) -> dict:
        """bench/slow.py probe: the timed GET /s; its JSON report, or {'error': ...}."""
        cmd = [*self.client_prefix(), sys.executable, "-m", "bench.slow", "probe",
               "--port", str(port), "--count", str(self.args.probes),
               "--timeout", str(self.args.probe_timeout)]
        proc = procs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            out, _ = proc.communicate(timeout=budget + 30)
        except subprocess.TimeoutExpired:
            return {"error": "the timed requests did not finish in time"}
        finally:
            procs.stop(proc)
        text = out.decode(errors="replace").strip()
        try:
            return json.loads(text.splitlines()[-1])
        except (IndexError, ValueError):
            return {"error": f"probe: {text[-300:] or 'no output'}"}

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


def finish_slow(proc: subprocess.Popen) -> dict:
    """Close slow.py's stdin: it reports its clients (the 'done' line), then exits."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    line = read_line(proc, timeout=10)
    if not line.startswith("done "):
        return {"error": f"slow clients did not report: {line or 'no answer'}"}
    return json.loads(line[len("done "):])


def fill_probes(res: Result, out: dict) -> None:
    """Copy the timed GET /s' report into res."""
    if "error" in out:
        fail(res, out["error"])
        return
    res.probes, res.answered = out["count"], out["answered"]
    res.p50_ms, res.max_ms = out["p50_ms"], out["max_ms"]
    res.unanswered = out["errors"]


def fill_slow(res: Result, done: dict) -> None:
    """Copy the slow clients' own report into res."""
    if "error" in done:
        res.notes.append(done["error"])
        return
    res.slow_detail = done["errors"]
    res.slow_errors = sum(done["errors"].values())
    res.slow_kib = (done["sent"] + done["received"]) / 1024
    if done["connected"] < done["clients"]:
        res.notes.append(f"{done['clients'] - done['connected']} of {done['clients']} slow "
                         "clients never connected")


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
    body: bytes | list[bytes] | None = b"a" * sc.body_bytes if sc.body_bytes else None
    if body and sc.chunked:  # an iterable body: http.client sends it chunked
        body = [body[i:i + 100] for i in range(0, len(body), 100)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST" if body else "GET", sc.path, body=body, encode_chunked=sc.chunked)
        resp = conn.getresponse()
        got = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"status {resp.status}"
    return body_problem(sc, got, file_sha)


def body_problem(sc: Scenario, got: bytes, file_sha: str) -> str | None:
    """What is wrong with the body of the scenario's check (None: nothing)."""
    if sc.app == FLASK_APP:
        try:
            same = json.loads(got) == apps.FLASK_PAYLOAD
        except ValueError:
            same = False
        return None if same else f"body {got[:40]!r}... is not the Flask view's JSON"
    if sc.path == "/file":
        if len(got) != apps.FILE_SIZE or hashlib.sha256(got).hexdigest() != file_sha:
            return f"/file body of {len(got)} bytes differs from the file"
        return None
    if sc.path == "/16mib":
        ok = len(got) == apps.SIXTEEN_MIB and got.count(b"x") == len(got)
        return None if ok else f"/16mib body of {len(got)} bytes is not 16 MiB of x"
    expected = {"/": apps.HELLO, "/1mib": apps.ONE_MIB, "/upload": str(sc.body_bytes).encode()}
    if got != expected[sc.path]:
        return f"body {got[:40]!r}... ({len(got)} bytes)"
    return None


# ---------------------------------------------------------------- aggregation

def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def add_counts(into: dict, more: dict) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


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
    out.probes = max(r.probes for r in runs)
    out.answered = median([r.answered for r in ok])
    out.max_ms = median([r.max_ms for r in ok])
    out.slow_kib = median([r.slow_kib for r in ok])
    out.cpu_s = median([r.cpu_s for r in ok])
    out.slow_errors = sum(r.slow_errors for r in runs)
    for r in runs:
        add_counts(out.error_detail, r.error_detail)
        add_counts(out.unanswered, r.unanswered)
        add_counts(out.slow_detail, r.slow_detail)
        out.notes += [n for n in r.notes if n not in out.notes]
    if any(r.failed for r in runs) and not out.failed:
        out.notes.append(f"{sum(r.failed for r in runs)} of {len(runs)} repeats failed")
    return out


def reference(rows: list[Result], row: Result) -> Result | None:
    """The wsgiserver row that row is compared with: same scenario, same process count."""
    server = servers.BY_NAME.get(row.server)
    if server is None:  # a row read back from JSON, of a server this version lacks
        return None
    for r in rows:
        s = servers.BY_NAME.get(r.server)
        if s and r.scenario == row.scenario and s.is_ours and s.procs == server.procs:
            return r
    return None


def ratio(rows: list[Result], r: Result) -> str:
    """wsgiserver req/s over r's: '-' for wsgiserver itself, 'n/a' when not computable."""
    ref = reference(rows, r)
    server = servers.BY_NAME.get(r.server)
    if server is not None and server.is_ours:
        return "-"
    if r.failed or not r.rps or ref is None or ref.failed:
        return "n/a"
    return f"{ref.rps / r.rps:.2f}x"


# ---------------------------------------------------------------- output

COLUMNS = ["scenario", "server", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors",
           "CPU us/req", "peak RSS MiB", "idle RSS MiB", "wsgiserver/peer"]
SLOW_COLUMNS = ["scenario", "server", "answered", "p50 ms", "max ms", "unanswered",
                "slow-client errors", "CPU s", "peak RSS MiB", "idle RSS MiB"]


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def counts(detail: dict) -> str:
    """{'timeout': 20} as '20 timeout'."""
    return ", ".join(f"{n} {why}" for why, n in sorted(detail.items())) or "-"


def cells(rows: list[Result], r: Result) -> list[str]:
    if r.failed:
        return [r.scenario, r.server, "FAILED", "-", "-", "-", str(r.errors or "-"), "-", "-",
                fmt(r.idle_rss_mib, ".1f"), ratio(rows, r)]
    errors = str(r.errors) + ("*" if r.notes else "")
    return [r.scenario, r.server, fmt(r.rps, ",.0f"), fmt(r.mibps, ",.1f"), fmt(r.p50_ms, ".2f"),
            fmt(r.p99_ms, ".2f"), errors, fmt(r.cpu_us_per_req, ".0f"),
            fmt(r.peak_rss_mib, ".1f"), fmt(r.idle_rss_mib, ".1f"), ratio(rows, r)]


def slow_cells(r: Result) -> list[str]:
    """A row of the slow-client table; a * marks notes (a failed check among them)."""
    star = "*" if r.notes or r.errors else ""
    if r.failed or r.answered is None:
        return [r.scenario, r.server, "FAILED" + star] + ["-"] * 5 + [
            fmt(r.peak_rss_mib, ".1f"), fmt(r.idle_rss_mib, ".1f")]
    slow = str(r.slow_errors) + (f" ({counts(r.slow_detail)})" if r.slow_errors else "")
    return [r.scenario, r.server, f"{r.answered:g}/{r.probes}{star}", fmt(r.p50_ms, ".1f"),
            fmt(r.max_ms, ",.1f"), counts(r.unanswered), slow, fmt(r.cpu_s, ".2f"),
            fmt(r.peak_rss_mib, ".1f"), fmt(r.idle_rss_mib, ".1f")]


def render(columns: list[str], body: list[list[str]], markdown: bool) -> str:
    """A plain-text table (scenario and server left-aligned, figures right) or Markdown."""
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body])
    widths = [max(len(x) for x in col) for col in zip(columns, *body, strict=True)]
    left = {0, 1}

    def line(cs: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cs, widths, strict=True)))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(c) for c in body])


def table(rows: list[Result], markdown: bool) -> str:
    return render(COLUMNS, [cells(rows, r) for r in rows if not r.is_slow], markdown)


def slow_table(rows: list[Result], markdown: bool) -> str:
    return render(SLOW_COLUMNS, [slow_cells(r) for r in rows if r.is_slow], markdown)


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
    # Idle RSS of the stdlib app only: Flask's import weighs on every server alike.
    plain = [s for s, sc in SCENARIOS.items() if sc.app == servers.APP]
    ours = [by.get(("wsgiserver", s)) for s in plain]
    theirs = [by.get(("waitress", s)) for s in plain]
    ws = median([r.idle_rss_mib for r in ours if r])
    wt = median([r.idle_rss_mib for r in theirs if r])
    if ws and wt:
        out.append(f"idle RSS: wsgiserver {ws:.1f} MiB, waitress {wt:.1f} MiB "
                   f"(ratio {ws / wt:.2f}x)")
    return out


def pin_text(args: dict) -> str:
    return ("pinned: servers on CPU 0 (taskset -c 0; 2-process servers unpinned), "
            "wrk and the client helpers on CPU 1" if args["pin"] else "not pinned")


def scenario_line(s: Scenario, args: dict) -> str:
    if s.slow:
        what = (f"{s.connections} slow clients, {args.get('probes', 20)} GET / timed one after "
                f"another, {args.get('probe_timeout', 10):g} s timeout each")
    else:
        what = f"{s.connections} connections"
    app = f", app {s.app}" if s.app != servers.APP else ""
    return f"  {s.name}: {s.about}, {what}{app}"


def report(rows: list[Result], meta: dict, markdown: bool) -> str:
    a = meta["args"]
    v = meta["versions"]
    head = [
        f"wsgiserver {v['wsgiserver']} (commit {v['commit']}), {meta['started']}",
        "peers: " + ", ".join(f"{k} {v.get(k, '?')}" for k in
                              (*PEERS, "nginx", "wrk")),
        f"python {v['python']}, {v['cpus']} CPUs ({v.get('cpu', '?')}), kernel {v['kernel']}",
        f"duration {a['duration']} s per run after {a['warmup']} s warm-up, repeat "
        f"{a['repeat']} ({'median' if a['repeat'] > 1 else 'single run'}), "
        f"wrk -t{1 if a['pin'] else 2} --timeout 5s, {pin_text(a)}",
        f"load average before the run {meta['load_before']:.2f} (other work on the machine "
        "makes figures noisy)",
    ]
    scen = [scenario_line(s, a) for s in SCENARIOS.values() if s.name in a["scenarios"]]
    used = sorted({r.server for r in rows},
                  key=lambda n: list(servers.BY_NAME).index(n) if n in servers.BY_NAME else 99)
    known = {n: s.settings for n, s in servers.BY_NAME.items()}
    saved = meta.get("settings", {})  # as they were run (a JSON of an older run)
    sets = [f"  {n}: {saved.get(n) or known.get(n, '?')}" for n in used]
    notes = [f"  {r.server}/{r.scenario}: " + "; ".join(
        r.notes + ([f"wrk errors {r.error_detail}"] if r.error_detail else []))
        for r in rows if r.notes or r.error_detail]
    parts = ["\n".join(head), "scenarios:\n" + "\n".join(scen),
             "servers (all on 127.0.0.1, app bench.apps:app unless the scenario names "
             "another):\n" + "\n".join(sets)]
    if any(not r.is_slow for r in rows):
        parts.append(table(rows, markdown))
    if any(r.is_slow for r in rows):
        parts.append("slow clients (answered: of the GET / timed while the slow clients were "
                     "connected, those answered within the timeout; p50/max over those):\n"
                     + slow_table(rows, markdown))
    if notes:
        parts.append("notes (* in errors or answered):\n" + "\n".join(notes))
    found = checks(rows)
    if found:
        parts.append("checks:\n" + "\n".join("  " + c for c in found))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- chart

def short(value: float) -> str:
    """12345 as '12.3k': bar labels stay narrow."""
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def chart_panels(rows: list[Result]) -> list[dict]:
    """What the chart draws: one panel per scenario, one bar per server, with its label.

    Plain data (no matplotlib) so it is tested without it. Throughput panels
    show req/s, labelled with the value and, over a peer, wsgiserver/peer;
    slow-client panels show how many timed requests were answered. A server
    that failed in every scenario (not installed) is left out; one that
    failed in some is drawn FAILED there."""
    working = {r.server for r in rows if not r.failed}
    rows = [r for r in rows if r.server in working]
    panels = []
    for name in dict.fromkeys(r.scenario for r in rows):
        group = [r for r in rows if r.scenario == name]
        slow = group[0].is_slow
        bars = []
        for r in group:
            if r.failed or (slow and r.answered is None):
                bars.append({"server": r.server, "value": 0, "label": "FAILED"})
            elif slow:
                label = f"{r.answered:g}/{r.probes}"
                if r.max_ms is not None:
                    label += f"\nmax {r.max_ms:,.0f} ms"
                bars.append({"server": r.server, "value": r.answered, "label": label})
            else:
                x = ratio(rows, r)
                label = short(r.rps) + (f"\n{x}" if x.endswith("x") else "")
                bars.append({"server": r.server, "value": r.rps, "label": label})
        panels.append({"scenario": name, "slow": slow, "bars": bars,
                       "ylabel": "answered" if slow else "req/s",
                       "ymax": max((r.probes for r in group), default=0) if slow else None})
    return panels


def chart_title(meta: dict) -> str:
    v, a = meta["versions"], meta["args"]
    date = meta["started"].replace("T", " ")
    pinned = "pinned (servers on CPU 0, load on CPU 1)" if a["pin"] else "not pinned"
    runs = f"median of {a['repeat']} runs" if a["repeat"] > 1 else "single run"
    return (f"wsgiserver {v['wsgiserver']} ({v['commit']}) and peers, {date}\n"
            f"{v.get('cpu', '?')}, {v['cpus']} cores, {pinned}; "
            f"{a['duration']:g} s per run, {runs}")


def draw_chart(rows: list[Result], meta: dict, path: str) -> None:
    """The table as bar charts, one panel per scenario (each with its own scale)."""
    import matplotlib  # imported here: only --chart needs it (the bench extra)

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = chart_panels(rows)
    names = list(dict.fromkeys(r.server for r in rows))
    palette = plt.get_cmap("tab10")
    colors = {n: palette(i % 10) for i, n in enumerate(names)}
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    width = max(3.8, 0.72 * max((len(p["bars"]) for p in panels), default=0))  # labels apart
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.4 * nrows + 1.3),
                             squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        bars = panel["bars"]
        xs = list(range(len(bars)))
        ax.bar(xs, [b["value"] for b in bars], color=[colors[b["server"]] for b in bars])
        for x, b in zip(xs, bars, strict=True):
            ax.annotate(b["label"], (x, b["value"]), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(xs, [b["server"] for b in bars], rotation=30, ha="right", fontsize=8)
        ax.set_title(panel["scenario"] + (" (slow clients)" if panel["slow"] else ""),
                     fontsize=10)
        ax.set_ylabel(panel["ylabel"], fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if panel["slow"]:
            ax.set_ylim(0, max(1, panel["ymax"]) * 1.35)  # room for the labels
        else:
            ax.set_ylim(0, max([b["value"] for b in bars] + [1]) * 1.3)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: short(y)))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(chart_title(meta), fontsize=10)
    fig.text(0.5, 0.01, "under a peer's figure: wsgiserver's req/s / the peer's (above 1.00x "
             "wsgiserver is faster); slow clients: timed GET / answered, and the slowest",
             ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------- driver

def plan(args) -> list[tuple[Scenario, list[servers.Server]]]:
    named = args.servers is not None
    names = args.servers or servers.DEFAULT
    chosen = [servers.BY_NAME[n] for n in names]
    steps = []
    for name in args.scenarios:
        sc = SCENARIOS[name]
        steps.append((sc, [srv for srv in chosen
                           if srv.runs(name, named) and sc.offers(srv.name, named)]))
    return steps


def progress(res: Result) -> str:
    if res.failed:
        return "FAILED: " + "; ".join(res.notes)
    if res.is_slow:
        slowest = f", max {res.max_ms:,.1f} ms" if res.max_ms is not None else ""
        return (f"{res.answered:g}/{res.probes} answered{slowest}, "
                f"{res.slow_errors} slow-client errors")
    return f"{res.rps:,.0f} req/s, {res.errors} errors"


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
                    print(f"[{rep + 1}/{args.repeat}] {sc.name:9} {server.name:15}", end=" ",
                          flush=True)
                    res = bench.measure(server, sc, rep)
                    every.setdefault((server.name, sc.name), []).append(res)
                    print(progress(res), flush=True)
    order = [(srv.name, sc.name) for sc, chosen in steps for srv in chosen]
    rows = [combine(every[key]) for key in order if key in every]
    return rows, [r for key in order for r in every.get(key, [])]


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=scenario_help())
    p.add_argument("--install", action="store_true",
                   help="pip install waitress gunicorn cheroot granian flask matplotlib, "
                        "apt-get install wrk nginx, then run")
    p.add_argument("--install-only", action="store_true", help="install, do not run")
    p.add_argument("--duration", type=float, default=10, help="seconds of wrk per run (10)")
    p.add_argument("--warmup", type=float, default=1,
                   help="seconds of wrk before each measured run, 0 for none (1)")
    p.add_argument("--repeat", type=int, default=1, help="runs of everything; median shown (1)")
    p.add_argument("--scenarios", type=csv(SCENARIOS, GROUPS), default=DEFAULT_SCENARIOS,
                   help="comma-separated, or a group: slow (" + ",".join(SLOW_SCENARIOS) +
                        "), default, all (default: " + ",".join(DEFAULT_SCENARIOS) + ")")
    p.add_argument("--servers", type=csv(servers.BY_NAME), default=None,
                   help="comma-separated; named servers run every scenario they can "
                        "(default: all, 'sync' only hello/close, 2-process rows only "
                        "hello/close/idle, slow scenarios only wsgiserver/waitress/gthread)")
    p.add_argument("--pin", action="store_true",
                   help="taskset: servers on CPU 0, wrk and the client helpers on CPU 1")
    p.add_argument("--baseline", metavar="DIR",
                   help="also run wsgiserver as checked out in DIR (git worktree add DIR REV) "
                        "as 'wsgiserver-base', for before/after figures in one run")
    p.add_argument("--compiled", metavar="DIR",
                   help="also run wsgiserver from DIR, a tree built with WSGISERVER_COMPILE=1 "
                        "python setup.py build_ext --inplace, as 'wsgiserver-compiled'")
    p.add_argument("--probes", type=int, default=20,
                   help="slow scenarios: GET / timed one after another (20)")
    p.add_argument("--probe-timeout", type=float, default=10,
                   help="slow scenarios: seconds each timed GET / may take in all (10)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="also write bench/results/<time>.json")
    p.add_argument("--chart", metavar="FILE",
                   help="also draw the table as bar charts into FILE (.svg, .png, .pdf; "
                        "needs matplotlib: " + BENCH_EXTRA + ")")
    p.add_argument("--from-json", metavar="FILE",
                   help="run nothing: print the table (and draw --chart) of a saved --json run")
    args = p.parse_args(argv)
    if args.chart and importlib.util.find_spec("matplotlib") is None:
        sys.exit(f"--chart needs matplotlib, which is not installed: {BENCH_EXTRA} "
                 "(or pip install matplotlib)")
    if args.baseline:
        if not os.path.isdir(os.path.join(args.baseline, "wsgiserver")):
            p.error(f"--baseline {args.baseline}: no wsgiserver package there")
        add_baseline(os.path.abspath(args.baseline))
        if args.servers is not None and "wsgiserver-base" not in args.servers:
            args.servers.append("wsgiserver-base")
    if args.compiled:
        if not os.path.isdir(os.path.join(args.compiled, "wsgiserver")):
            p.error(f"--compiled {args.compiled}: no wsgiserver package there")
        add_baseline(os.path.abspath(args.compiled), name="wsgiserver-compiled")
        if args.servers is not None and "wsgiserver-compiled" not in args.servers:
            args.servers.append("wsgiserver-compiled")
    if args.repeat < 1 or args.duration < 1:
        p.error("--repeat and --duration must be at least 1")
    if args.probes < 1 or args.probe_timeout <= 0:
        p.error("--probes must be at least 1 and --probe-timeout above 0")
    return args


def add_baseline(directory: str, describe: bool = True, name: str = "wsgiserver-base") -> None:
    """Register ``name`` (the checkout in directory) as one more server;
    describe: add its commit now to the settings printed (not for --from-json)."""
    base = servers.baseline(directory, name)
    if name == "wsgiserver-compiled":
        build = run_quiet([sys.executable, "-c", f"import sys; sys.path.insert(0, {directory!r}); "
                           "from wsgiserver import build; print(build.describe())"])
        base.settings += f", {build}"
    # Which code the row ran: the other checkout may be mid-work.
    commit = run_quiet(["git", "-C", directory, "rev-parse", "--short", "HEAD"]) if describe else ""
    if commit and " " not in commit:
        dirty = run_quiet(["git", "-C", directory, "status", "--porcelain", "--", "wsgiserver"])
        base.settings += f", commit {commit}" + (" + uncommitted changes" if dirty else "")
    servers.ALL.append(base)
    servers.BY_NAME[base.name] = base
    servers.DEFAULT.append(base.name)


def csv(known, groups: dict[str, list[str]] | None = None):
    groups = groups or {}

    def parse(text: str) -> list[str]:
        names: list[str] = []
        for n in (n.strip() for n in text.split(",")):
            for m in groups.get(n, [n] if n else []):
                if m not in names:
                    names.append(m)
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            choices = ", ".join([*known, *groups])
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {choices}")
        return names
    return parse


def scenario_help() -> str:
    lines = ["scenarios:"] + [f"  {s.name:9} {s.about}, {s.connections} "
                              f"{'slow clients' if s.slow else 'connections'}"
                              for s in SCENARIOS.values()]
    lines += ["servers:"] + [f"  {s.name:14} {s.settings}" for s in servers.ALL]
    return "\n".join(lines)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def redraw(args) -> int:
    """--from-json: the report (and chart) of a saved run, nothing run."""
    with open(args.from_json) as f:
        data = json.load(f)
    meta = {k: v for k, v in data.items() if k not in ("rows", "runs")}
    base = meta["args"].get("baseline")
    if base and "wsgiserver-base" not in servers.BY_NAME:
        add_baseline(os.path.abspath(base), describe=False)
    compiled = meta["args"].get("compiled")
    if compiled and "wsgiserver-compiled" not in servers.BY_NAME:
        add_baseline(os.path.abspath(compiled), describe=False, name="wsgiserver-compiled")
    rows = [result_from(r) for r in data["rows"]]
    print(report(rows, meta, args.markdown))
    if args.chart:
        draw_chart(rows, meta, args.chart)
        print(f"\nwritten: {args.chart}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return redraw(args)
    if args.install or args.install_only:
        install()
        if args.install_only:
            return 0
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    meta = {"started": dt.datetime.now().isoformat(timespec="seconds"), "versions": versions(),
            "args": vars(args), "load_before": load_average(),
            "settings": {s.name: s.settings for s in servers.ALL}}
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
    if args.chart:
        draw_chart(rows, meta, args.chart)
        print(f"written: {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
