"""--static through the real command: Django's admin renders with its CSS
after collectstatic, the server sending the files (sendfile, ranges) and
Django never asked for them."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("django", reason="pip install Django (in the test extra)")


@pytest.fixture
def collected(tmp_path, monkeypatch):
    root = tmp_path / "collected"
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.functional.django_site")
    monkeypatch.setenv("STATIC_ROOT", str(root))
    result = subprocess.run([sys.executable, "-m", "django", "collectstatic", "--noinput"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return root


def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": "127.0.0.1", **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_django_admin_renders_with_its_css(start_cli, collected):
    _, port = start_cli("tests.functional.django_site:application",
                        "--static", f"/static={collected}")
    status, _, page = get(port, "/admin/login/")
    assert status == 200, page[:500]
    stylesheets = re.findall(rb'<link rel="stylesheet" href="([^"]+)"', page)
    assert b"/static/admin/css/base.css" in stylesheets
    for href in stylesheets:
        status, headers, body = get(port, href.decode())
        assert status == 200, href
        assert headers["Content-Type"] == "text/css; charset=utf-8"
        assert body == (collected / href.decode().removeprefix("/static/")).read_bytes()
    # Served by the server: a range, a 304, and a 404 that Django never saw.
    status, headers, body = get(port, "/static/admin/css/base.css", Range="bytes=0-9")
    assert (status, len(body)) == (206, 10)
    tag = get(port, "/static/admin/css/base.css")[1]["ETag"]
    assert get(port, "/static/admin/css/base.css", **{"If-None-Match": tag})[0] == 304
    status, headers, body = get(port, "/static/admin/css/missing.css")
    assert status == 404 and b"Django" not in body and "csrftoken" not in str(headers)


def test_without_static_django_serves_no_css(start_cli, collected):
    # What --static replaces: with DEBUG off Django does not serve them.
    _, port = start_cli("tests.functional.django_site:application")
    assert get(port, "/admin/login/")[0] == 200
    assert get(port, "/static/admin/css/base.css")[0] == 404


def test_a_bad_static_mount_is_one_line():
    result = subprocess.run([sys.executable, "-m", "wsgiserver", "examples.hello:app",
                             "--static", "/static=/no/such/dir"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wsgiserver: error: argument --static: '/static=/no/such/dir': not a directory: "
        "'/no/such/dir'"]
