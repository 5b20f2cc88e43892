"""The servers compared, each with the exact command and settings it runs with.

Same app for every server in a scenario (bench.apps:app, or the one the
scenario names, e.g. bench.flask_app:app), same host, 8 threads in one
process for threaded servers, 2 processes x 8 threads where multi-process
applies. Settings that
differ from a server's defaults are there to keep the comparison fair (and
are printed with every table):

- keep-alive timeout 30 s everywhere (waitress: its channel timeout, 120 s):
  gunicorn's default of 2 s would close the held connections of the idle
  scenario during the run,
- backlog 2048 everywhere (wsgiserver's default; cheroot's default of 5 gives
  second-long p99s, nginx's is 511),
- waitress: connection limit 2000 (default 100 refuses the 1,000 idle
  connections) and poll() (its default select() cannot watch fd > 1024),
- gunicorn gthread: 2000 worker connections (its default 1000 stops
  accepting while the idle scenario holds 1,000 connections),
- granian: 1 worker with 8 blocking threads (the threads that run a WSGI
  app; its default is backpressure/2 = 512 threads), HTTP/1 only like the
  others (no h2c detection), no WebSockets; it has no keep-alive timeout to
  set (its 30 s header-read timeout is the default).
"""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

PY = sys.executable
APP = "bench.apps:app"
HOST = "127.0.0.1"


@dataclass
class Context:
    """What a command needs besides its port: a scratch dir and the file to serve."""

    tmpdir: str
    file_path: str
    app: str = APP  # module:attribute, set per scenario


@dataclass
class Server:
    name: str
    settings: str
    build: Callable[[int, Context], list[str]]
    procs: int = 1  # compared with the wsgiserver row of the same process count
    only: frozenset[str] | None = None  # scenarios it can run at all (None: all)
    default_only: frozenset[str] | None = None  # scenarios it runs unless asked by name
    needs: tuple[str, ...] = field(default_factory=tuple)  # executables that must exist
    modules: tuple[str, ...] = field(default_factory=tuple)  # Python packages it imports

    def runs(self, scenario: str, named: bool) -> bool:
        """Whether to run scenario; named: the server was asked for by name."""
        if self.only is not None and scenario not in self.only:
            return False
        return named or self.default_only is None or scenario in self.default_only

    def missing(self) -> list[str]:
        """What is not installed of what this server needs."""
        return ([exe for exe in self.needs if not shutil.which(exe)]
                + [m for m in self.modules if importlib.util.find_spec(m) is None])

    @property
    def is_ours(self) -> bool:
        return self.name.startswith("wsgiserver") and not self.name.endswith("-base")


def wsgiserver(workers: int, threads: int = 8,
               poller: str | None = None) -> Callable[[int, Context], list[str]]:
    def build(port: int, ctx: Context) -> list[str]:
        cmd = [PY, "-m", "wsgiserver", ctx.app, "--host", HOST, "--port", str(port),
               "--threads", str(threads), "--keepalive-timeout", "30"]
        if poller is not None:
            cmd += ["--poller", poller]
        return cmd + (["--workers", str(workers)] if workers > 1 else [])
    return build


def baseline(directory: str, name: str = "wsgiserver-base") -> Server:
    """wsgiserver as checked out in ``directory`` (another commit), for a
    before/after comparison in one run: compared with the current wsgiserver.

    Only wsgiserver comes from ``directory``: the app (package ``bench``) is
    imported from this checkout first, since the other checkout has a
    ``bench`` of its own, older, that would shadow it (no flask_app, no
    /16mib), and every server of a scenario must run the same app."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {repo!r}); import bench; "
            f"sys.path.insert(0, {directory!r}); "
            "from wsgiserver.cli import main; sys.exit(main(sys.argv[1:]))")

    def build(port: int, ctx: Context) -> list[str]:
        return [PY, "-c", code, ctx.app, "--host", HOST, "--port", str(port), "--threads", "8",
                "--keepalive-timeout", "30"]

    return Server(name, f"wsgiserver from {directory} (--threads 8)", build)


def waitress(port: int, ctx: Context) -> list[str]:
    return [PY, "-m", "waitress", f"--host={HOST}", f"--port={port}", "--threads=8",
            "--connection-limit=2000", "--asyncore-use-poll", "--backlog=2048", ctx.app]


def gunicorn(worker_class: str, workers: int, threads: int) -> Callable[[int, Context], list[str]]:
    def build(port: int, ctx: Context) -> list[str]:
        cmd = [PY, "-m", "gunicorn", "-k", worker_class, "-w", str(workers), "-b", f"{HOST}:{port}",
               "--backlog", "2048", "--keep-alive", "30", "--log-level", "warning"]
        if threads > 1:
            cmd += ["--threads", str(threads), "--worker-connections", "2000"]
        return cmd + [ctx.app]
    return build


def cheroot(port: int, ctx: Context) -> list[str]:
    return [PY, "-m", "bench.serve_cheroot", "--host", HOST, "--port", str(port),
            "--threads", "8", "--backlog", "2048", "--timeout", "30", "--app", ctx.app]


def granian(port: int, ctx: Context) -> list[str]:
    return [PY, "-m", "granian", "--interface", "wsgi", "--host", HOST, "--port", str(port),
            "--workers", "1", "--blocking-threads", "8", "--backlog", "2048", "--http", "1",
            "--no-ws", "--log-level", "warning", ctx.app]


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30s;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port} backlog=2048;
        location = / {{ default_type text/plain; return 200 "Hello, World!"; }}
        location = /file {{ alias {file}; default_type application/octet-stream; }}
    }}
}}
"""


def _nginx_user_line() -> str:
    """As root, nginx's workers drop to 'nobody' and its group (named per distro)."""
    if os.geteuid() != 0:
        return ""
    entry = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(entry.pw_gid).gr_name};"


def nginx(port: int, ctx: Context) -> list[str]:
    conf = os.path.join(ctx.tmpdir, f"nginx-{port}.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(user=_nginx_user_line(), tmp=ctx.tmpdir, host=HOST, port=port,
                                  file=ctx.file_path))
    return [shutil.which("nginx") or "nginx", "-p", ctx.tmpdir, "-c", conf,
            "-e", os.path.join(ctx.tmpdir, "nginx-error.log")]


GUNICORN_COMMON = " --worker-connections 2000 --backlog 2048 --keep-alive 30 --log-level warning"

# Scenarios the 2-process rows run unless asked for by name with --servers.
MULTI = frozenset({"hello", "close", "idle"})

ALL = [
    Server("wsgiserver", "python -m wsgiserver --threads 8 --keepalive-timeout 30 (1 process)",
           wsgiserver(1)),
    Server("waitress", "--threads=8 --connection-limit=2000 --asyncore-use-poll --backlog=2048",
           waitress, modules=("waitress",)),
    Server("gthread", "gunicorn -k gthread -w 1 --threads 8" + GUNICORN_COMMON,
           gunicorn("gthread", 1, 8), modules=("gunicorn",)),
    Server("cheroot", "cheroot.wsgi.Server numthreads=8 request_queue_size=2048 timeout=30",
           cheroot, modules=("cheroot",)),
    Server("granian", "granian --interface wsgi --workers 1 --blocking-threads 8 --backlog 2048 "
           "--http 1 --no-ws --log-level warning (Rust; 1 worker process under a supervisor)",
           granian, modules=("granian",)),
    Server("sync", "gunicorn -k sync -w 1 --backlog 2048 --keep-alive 30 (closes after each "
           "response)",
           gunicorn("sync", 1, 1), default_only=frozenset({"hello", "close"}),
           modules=("gunicorn",)),
    Server("nginx", "nginx 1 worker, sendfile on, tcp_nopush on, static file only",
           nginx, only=frozenset({"file"}), needs=("nginx",)),
    Server("wsgiserver-2w", "python -m wsgiserver --workers 2 --threads 8 --keepalive-timeout 30",
           wsgiserver(2), procs=2,
           default_only=MULTI),
    Server("gthread-2w", "gunicorn -k gthread -w 2 --threads 8" + GUNICORN_COMMON,
           gunicorn("gthread", 2, 8), procs=2, default_only=MULTI, modules=("gunicorn",)),
    # The same server with one thread: does adding threads cost throughput?
    # (Only when named with --servers.)
    Server("wsgiserver-1t", "python -m wsgiserver --threads 1 --keepalive-timeout 30",
           wsgiserver(1, threads=1), default_only=frozenset()),
    # The pollers macOS and Windows use, on this machine (only when named).
    Server("wsgiserver-poll", "python -m wsgiserver --poller poll --threads 8",
           wsgiserver(1, poller="poll"), default_only=frozenset()),
    Server("wsgiserver-select", "python -m wsgiserver --poller select --threads 8 (1024 "
           "descriptors at most: about 960 connections)",
           wsgiserver(1, poller="select"), default_only=frozenset()),
]
BY_NAME = {s.name: s for s in ALL}
DEFAULT = [s.name for s in ALL]
