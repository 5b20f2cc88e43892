"""The command line: start, serve, stop on SIGTERM, and one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wsgiserver", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
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
        (["examples.hello:app", "--port", "70000"], "not a port number"),
        (["examples.hello:app", "--threads", "0"], "must be at least 1"),
        (["examples.hello:app", "--threads", "many"], "not a whole number"),
        (["examples.hello:app", "--header-timeout", "-1"], "positive number of seconds"),
        (["examples.hello:app", "--directory", "/no/such/dir"], "not a directory"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_busy_port_is_one_line_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = run_cli("examples.hello:app", "--port", str(port))
    assert result.returncode == 1
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_flag():
    result = run_cli("--version")
    assert result.returncode == 0
    from wsgiserver import __version__

    assert result.stdout.strip() == f"wsgiserver {__version__}"


def test_console_script_entry_point_is_declared():
    config = (ROOT / "setup.cfg").read_text()
    assert "wsgiserver = wsgiserver.cli:main" in config
    assert os.path.exists(ROOT / "wsgiserver" / "__main__.py")
