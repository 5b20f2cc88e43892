"""PasteDeploy: ``use = egg:wsgiserver-microapp`` in an ini file serves a Pyramid app
(through pserve, as its users run it), and a bad key is one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.functional.conftest import ROOT, free_port

pytest.importorskip("pyramid")
pytest.importorskip("paste.deploy")

INI = """\
[app:main]
use = call:tests.functional.pyramid_app:main
greeting = ini

[server:main]
use = egg:wsgiserver-microapp
host = 127.0.0.1
port = {port}
threads = 2
no-server-header = true
"""


# Pyramid imports pkg_resources, which newer setuptools warn about on
# stderr: not ours, and not part of what these tests read.
QUIET_PKG_RESOURCES = "ignore:pkg_resources is deprecated:UserWarning"


def wait_for_port(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"pserve did not start: {process.communicate(timeout=5)}")


def test_pserve_serves_a_pyramid_app_and_stops_on_sigterm(tmp_path):
    port = free_port()
    ini = tmp_path / "development.ini"
    ini.write_text(INI.format(port=port))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": QUIET_PKG_RESOURCES}
    process = subprocess.Popen([sys.executable, "-m", "pyramid.scripts.pserve", str(ini)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(process, port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"Hello from Pyramid, ini"
            assert response.headers["Server"] is None  # no-server-header = true was read
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    assert process.returncode == 0, stderr
    assert f"serving on http://127.0.0.1:{port}" in stderr
    assert "stopped" in stderr


def test_unknown_key_is_one_line_and_exit_status_2(tmp_path):
    ini = tmp_path / "production.ini"
    ini.write_text(INI.format(port=0).replace("threads = 2", "thread = 2"))
    loader = ("import sys; from paste.deploy import loadapp, loadserver; "
              "ini = 'config:' + sys.argv[1]; loadserver(ini)(loadapp(ini))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": QUIET_PKG_RESOURCES}
    result = subprocess.run([sys.executable, "-c", loader, str(ini)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (
        2, f"wsgiserver: error: {ini}: unknown key 'thread' (did you mean 'threads'?)\n")
