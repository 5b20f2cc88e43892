"""--log-config: a dictConfig in TOML or JSON routes the server's log and the
access log, through the real command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

from .conftest import ROOT


def serve_once(start_cli, *args: str) -> str:
    """Start the command, make one request, stop it; its stderr."""
    process, port = start_cli("examples.hello:app", *args)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/logged", timeout=5) as response:
        assert response.status == 200
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr


def test_a_json_config_routes_the_server_log_and_the_access_log(start_cli, tmp_path):
    server_file, access_file = tmp_path / "server.log", tmp_path / "access.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "SERVER %(levelname)s %(message)s"},
                       "bare": {"format": "ACCESS %(message)s"}},
        "handlers": {
            "server": {"class": "logging.FileHandler", "filename": str(server_file),
                       "formatter": "plain"},
            "access": {"class": "logging.FileHandler", "filename": str(access_file),
                       "formatter": "bare"},
        },
        "loggers": {"wsgiserver": {"handlers": ["server"], "level": "INFO"},
                    "wsgiserver.access": {"handlers": ["access"], "propagate": False}},
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    stderr = serve_once(start_cli, "--log-config", str(path))
    assert "serving on" not in stderr  # the file replaced the stderr handler
    server_lines = server_file.read_text().splitlines()
    assert any(line.startswith("SERVER INFO serving on") for line in server_lines)
    access_lines = access_file.read_text().splitlines()
    assert len(access_lines) == 1 and access_lines[0].startswith("ACCESS 127.0.0.1")
    assert '"GET /logged HTTP/1.1" 200' in access_lines[0]
    assert not any("GET /logged" in line for line in server_lines)


def test_a_toml_config_and_access_lines_in_the_chosen_format(start_cli, tmp_path):
    access_file = tmp_path / "access.log"
    path = tmp_path / "logging.toml"
    path.write_text(f"""version = 1
[handlers.access]
class = "logging.FileHandler"
filename = {json.dumps(str(access_file))}
[loggers."wsgiserver.access"]
handlers = ["access"]
level = "INFO"
propagate = false
""")
    serve_once(start_cli, "--log-config", str(path), "--access-log-format",
               "{request_line} {status}")
    assert access_file.read_text().splitlines() == ["GET /logged HTTP/1.1 200"]


def test_a_config_of_other_loggers_leaves_the_servers_and_no_access_log(start_cli, tmp_path):
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "loggers": {"myapp": {"level": "DEBUG"}}}))
    stderr = serve_once(start_cli, "--log-config", str(path))
    assert "GET /logged" not in stderr and "serving on" in stderr


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsgiserver", "examples.hello:app",
                           "--port", "0", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)


def test_a_bad_log_config_is_one_line_and_exit_2(tmp_path):
    cases = {
        "broken.json": "{not json",
        "noversion.json": json.dumps({"loggers": {}}),
        "badclass.toml": 'version = 1\n[handlers.h]\nclass = "no.such.Handler"\n',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = run("--log-config", str(path))
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"wsgiserver: error: --log-config {path}")
    missing = run("--log-config", str(tmp_path / "absent.toml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
