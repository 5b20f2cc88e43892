"""The command line: start, serve, stop on SIGTERM, one-line errors, settings
from variables and files, and the server's own log lines."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 10, env: dict[str, str] | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith("WSGISERVER_")}
    # The tests' modules stay importable from another working directory.
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "wsgiserver", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**environ, **(env or {})},
    )


def test_serves_an_example_and_exits_zero_on_sigterm(start_cli):
    process, port = start_cli("examples.hello:app")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read() == b"Hello, World!"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"serving on http://127.0.0.1:{port}" in stderr
    assert "stopped" in stderr  # the shutdown ran to its end before the exit


def test_sigint_also_shuts_down_gracefully(start_cli):
    process, _ = start_cli("examples.hello:app")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 0


def test_factory_call_and_directory_option(start_cli, tmp_path):
    factory = "tests.functional.cli_apps:create_app()"
    process, port = start_cli(factory, "--directory", str(tmp_path))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read() == str(tmp_path).encode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_module_xyz:app"], "no module named 'no_such_module_xyz'"),
        (["examples.hello:nothing"], "has no attribute 'nothing'"),
        (["tests.functional.cli_apps:NOT_CALLABLE"], "is not callable"),
        (["examples.hello"], "expected MODULE:APP"),
        (["tests.functional.cli_apps:broken_factory()"], "broken_factory() failed"),
        (["tests.functional.cli_apps_broken:app"], "importing 'tests.functional.cli_apps_broken'"),
        (["examples.hello:app", "--port", "70000"], "must be a port number from 0 to 65535"),
        (["examples.hello:app", "--port", "-1"],
         "argument --port: must be a port number from 0 to 65535, not '-1'"),
        (["examples.hello:app", "--bind", "8000"],
         "did you mean 127.0.0.1:8000? (0.0.0.0:8000 listens on every interface)"),
        (["examples.hello:app", "--client-certs", "required"],
         "error: --client-certs needs --ca-certs"),
        (["tests.functional.cli_apps:create_app"],
         "call it: 'tests.functional.cli_apps:create_app()'"),
        (["tests.functional.cli_apps:create_named(name)"], "factory arguments must be literals"),
        (["--threads", "2"], "error: no application: give MODULE:APP"),
        (["examples.hello:app", "--config", "no-such.toml"], "no such file: 'no-such.toml'"),
        (["examples.hello:app", "--threads", "0"], "must be at least 1"),
        (["examples.hello:app", "--threads", "many"], "not a whole number"),
        (["examples.hello:app", "--header-timeout", "-1"], "positive number of seconds"),
        (["examples.hello:app", "--directory", "/no/such/dir"], "not a directory"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    first, *rest = result.stderr.strip().splitlines()
    assert message in first
    if "broken" in args[0]:
        # The application's own code raised: the line, then where in its code
        # (never the server's or importlib's frames).
        assert rest[0] == "Traceback (most recent call last):"
        assert "cli_apps" in "\n".join(rest) and "wsgiserver/" not in "\n".join(rest)
    else:
        assert rest == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WSGISERVER_THREADS": "0"}, "wsgiserver: error: WSGISERVER_THREADS: must be at least "
                                      "1, not '0'"),
        ({"WSGISERVER_THRADS": "4"}, "wsgiserver: error: WSGISERVER_THRADS: unknown variable "
                                     "(did you mean 'WSGISERVER_THREADS'?)"),
        ({"WSGISERVER_CLIENT_CERTS": "required"}, "wsgiserver: error: WSGISERVER_CLIENT_CERTS: "
                                                   "--client-certs needs --ca-certs"),
    ],
)
def test_environment_mistakes_are_one_line_naming_the_variable(env, message):
    result = run_cli("examples.hello:app", env=env)
    assert (result.returncode, result.stderr) == (2, message + "\n")


def test_options_without_effect_are_a_warning_line_each_and_the_server_runs():
    result = run_cli("examples.hello:app", "--keyfile", "setup.cfg", "--max-requests-jitter",
                     "9", "--unix-socket-mode", "600", "--access-log-json", "--worker-import",
                     "--check-config", env={"WSGISERVER_CA_CERTS": "setup.cfg"})
    assert result.returncode == 0, result.stderr
    warnings = [line.split(" WARNING ", 1)[1] for line in result.stderr.splitlines()
                if " WARNING " in line]
    assert warnings == [
        "--keyfile has no effect without --certfile",
        "WSGISERVER_CA_CERTS: --ca-certs has no effect without --certfile",
        "--max-requests-jitter has no effect without --max-requests",
        "--unix-socket-mode has no effect without a unix: --bind",
        "--access-log-json has no effect without --access-log",
        "--worker-import has no effect without worker processes (--workers 2 or more, "
        "--max-requests, --worker-timeout)",
    ]


def test_file_mistakes_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "wsgiserver.toml").write_text("thread = 4\n")
    result = run_cli("examples.hello:app", "--config", "wsgiserver.toml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2, "wsgiserver: error: wsgiserver.toml: unknown key 'thread' (did you mean 'threads'?)\n")


def test_print_config_names_the_source_of_each_value(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.wsgiserver]\napp = 'examples.hello:app'\nthreads = 3\nworkers = 3\n"
        "backlog = 64\n")
    result = run_cli("--print-config", "--threads", "5",
                     env={"WSGISERVER_WORKERS": "2"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split(" = ")[0]: line for line in result.stdout.splitlines()}
    assert re.fullmatch(r'app = "examples.hello:app" +# pyproject.toml \[tool.wsgiserver\]',
                        lines["app"])
    assert re.fullmatch(r"threads = 5 +# command line", lines["threads"])
    assert re.fullmatch(r"workers = 2 +# WSGISERVER_WORKERS", lines["workers"])
    assert re.fullmatch(r"backlog = 64 +# pyproject.toml \[tool.wsgiserver\]", lines["backlog"])
    assert re.fullmatch(r"port = 4221 +# default", lines["port"])


def test_app_and_settings_from_a_config_file(start_cli, tmp_path):
    config = tmp_path / "site.toml"
    config.write_text("app = 'tests.functional.cli_apps:create_named(\"from-file\")'\n"
                      "threads = 2\n")
    process, port = start_cli("--config", str(config))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read() == b"from-file"


def test_app_given_where_access_log_wanted_a_value(start_cli):
    process, port = start_cli("--access-log", "examples.hello:app")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=5) as response:
        assert response.read() == b"Hello, World!"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert '"GET /hello HTTP/1.1" 200' in stderr  # the access log went to stderr


def test_factory_with_literal_arguments(start_cli):
    process, port = start_cli('tests.functional.cli_apps:create_named("prod", suffix="!")')
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.read() == b"prod!"


def test_the_root_logger_stays_the_apps(start_cli):
    """An app that configures the root logger (as Django does) sees each of
    the server's lines once, and its own lines as it configured them."""
    process, _ = start_cli("tests.functional.cli_apps_logging:app")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr.count("serving on") == 1, stderr
    assert "ROOT wsgiserver" not in stderr
    assert "ROOT myapp application configured" in stderr
    assert "[pid" not in stderr  # one process: no need to say which


def test_log_lines_carry_the_pid_with_several_workers(start_cli):
    process, _ = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    workers = re.findall(r"started worker (\d+)", stderr)
    assert len(workers) == 2, stderr
    assert re.search(rf"\[pid {process.pid}\] INFO serving on ", stderr), stderr
    for pid in workers:  # each worker's own "stopped" line
        assert re.search(rf"\[pid {pid}\] INFO stopped", stderr), stderr


def test_help_lists_short_options():
    result = run_cli("--help")
    assert result.returncode == 0
    # Python 3.13's argparse writes the metavar once: "-b, --bind ADDRESS".
    assert re.search(r"-b( ADDRESS)?, --bind ADDRESS", result.stdout)
    assert re.search(r"-w( N)?, --workers N", result.stdout)


def test_busy_port_is_one_line_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = run_cli("examples.hello:app", "--port", str(port))
    assert result.returncode == 1
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


# What the command must call this copy: a built extension of the parser
# beside its source means the compiled build.
BUILD = "compiled with mypyc" if any((ROOT / "wsgiserver" / "protocol").glob("parser.*.so")) \
    else "pure Python"


def test_version_flag():
    import platform

    result = run_cli("--version")
    assert result.returncode == 0
    from wsgiserver import __version__

    assert result.stdout.strip() == (
        f"wsgiserver {__version__} (Python {platform.python_version()}, {BUILD})")


def test_the_startup_line_names_version_app_protocols_and_settings_file(start_cli, tmp_path):
    import platform

    from wsgiserver import __version__

    config = tmp_path / "server.toml"
    config.write_text("threads = 3\n")
    process, _ = start_cli("examples.hello:app", "--config", str(config))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert (f"wsgiserver {__version__} (Python {platform.python_version()}, {BUILD}): "
            f"examples.hello:app, HTTP/1.1; settings from {config}") in stderr


def test_console_script_entry_point_is_declared():
    config = (ROOT / "setup.cfg").read_text()
    assert "wsgiserver = wsgiserver.command:main" in config  # handlers before heavy imports
    assert os.path.exists(ROOT / "wsgiserver" / "__main__.py")


def test_an_app_that_fails_at_import_shows_the_line_in_the_users_code():
    result = run_cli("tests.functional.cli_apps_deep:app")
    assert result.returncode == 2
    first, *rest = result.stderr.splitlines()
    assert first == ("wsgiserver: error: importing 'tests.functional.cli_apps_deep' failed: "
                     "ValueError: DATABASE_URL is not set")
    details = "\n".join(rest)
    assert details.startswith("Traceback (most recent call last):")
    assert 'cli_apps_deep_inner.py", line 5, in read_settings' in details
    assert details.endswith("ValueError: DATABASE_URL is not set")
    assert "importlib" not in details and "wsgiserver/" not in details


def test_check_config_imports_the_app_and_exits_0_or_2():
    good = run_cli("examples.hello:app", "--threads", "3", "--check-config")
    assert good.returncode == 0 and "configuration OK" in good.stderr
    bad_app = run_cli("tests.functional.cli_apps_deep:app", "--check-config")
    assert bad_app.returncode == 2 and bad_app.stderr.startswith("wsgiserver: error: importing")
    bad_setting = run_cli("examples.hello:app", "--threads", "0", "--check-config")
    assert bad_setting.returncode == 2
    assert len(bad_setting.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_pid_file_is_written_once_listening_and_removed_at_exit(start_cli, tmp_path, workers):
    pid_file = tmp_path / "server.pid"
    process, port = start_cli("examples.hello:app", "--workers", workers,
                              "--pid", str(pid_file))
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.read_text() == f"{process.pid}\n"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0
    assert not pid_file.exists()


def test_a_pid_file_that_cannot_be_written_is_one_line_and_nothing_keeps_running(tmp_path):
    result = run_cli("examples.hello:app", "--port", "0", "--pid",
                     str(tmp_path / "missing" / "server.pid"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("wsgiserver: error: cannot write --pid")
    assert "serving on" not in result.stderr  # nothing was started


@pytest.mark.parametrize(("args", "says"), [
    (["--thread", "3", "examples.hello:app"], "--thread (did you mean --threads? see --help)"),
    (["examples.hello:app", "--treads=3"], "did you mean --threads?"),
    (["--timeout", "30", "examples.hello:app"], "wsgiserver calls it --worker-timeout"),
    (["--graceful-timeout", "5", "examples.hello:app"], "calls it --shutdown-timeout"),
    (["--access-logfile", "-", "examples.hello:app"], "calls it --access-log"),
    (["--nonsense", "examples.hello:app"], "unrecognized arguments: --nonsense (see --help)"),
])
def test_no_abbreviations_and_unknown_options_point_to_ours(args, says):
    result = run_cli(*args, "--check-config")
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_worker_hook_that_cannot_be_imported_is_one_line():
    result = run_cli("examples.hello:app", "--on-worker-start", "tests.functional.nope:start")
    assert result.returncode == 2
    assert result.stderr.strip() == "wsgiserver: error: no module named 'tests.functional.nope'"
