"""The bundled app's Host rule against DNS rebinding (microapp/hosts.py)."""

from __future__ import annotations

import pytest
import webtest

from microapp import create_app
from microapp.hosts import host_allowed


@pytest.mark.parametrize("host, server, allowed, answer", [
    ("localhost:4221", "127.0.0.1", None, True),
    ("127.0.0.1:4221", "127.0.0.1", None, True),
    ("[::1]:4221", "::1", None, True),
    ("app.localhost", "127.0.0.1", None, True),  # RFC 6761: *.localhost is loopback
    ("attacker.example:4221", "127.0.0.1", None, False),  # the rebound name
    ("192.168.1.10:4221", "127.0.0.1", None, False),
    ("192.168.1.10:4221", "192.168.1.10", None, True),  # the bound address itself
    ("mybox.lan", "192.168.1.10", None, False),  # names must be configured
    ("anything.example", "0.0.0.0", None, True),  # every address: cannot tell its names
    ("files.example.com", "0.0.0.0", ["files.example.com"], True),
    ("evil.example", "0.0.0.0", ["files.example.com"], False),
    ("a.example.com", "127.0.0.1", [".example.com"], True),
    ("example.com", "127.0.0.1", [".example.com"], True),
    ("badexample.com", "127.0.0.1", [".example.com"], False),
    ("localhost", "127.0.0.1", ["files.example.com"], True),  # loopback still, on loopback
    ("whatever", "127.0.0.1", ["*"], True),
    ("", "127.0.0.1", None, False),
    ("user@localhost", "127.0.0.1", None, False),
    ("localhost:99999", "127.0.0.1", None, False),
])
def test_a_host_must_name_the_server(host, server, allowed, answer):
    assert host_allowed(host, server, allowed) is answer


def test_files_routes_answer_421_to_a_rebound_name_for_reads_and_writes(tmp_path):
    (tmp_path / "victim.txt").write_bytes(b"secret")
    client = webtest.TestApp(create_app(str(tmp_path)),
                             extra_environ={"SERVER_NAME": "127.0.0.1"})
    rebound = {"Host": "attacker.example:4221", "Origin": "http://attacker.example:4221"}
    assert client.get("/files/victim.txt", headers=rebound, status=421).status_int == 421
    client.get("/files/", headers=rebound, status=421)
    client.put("/files/victim.txt", b"gone", headers=rebound, status=421)
    client.delete("/files/victim.txt", headers=rebound, status=421)
    assert (tmp_path / "victim.txt").read_bytes() == b"secret"
    ours = client.get("/files/victim.txt", headers={"Host": "localhost:4221"})
    assert ours.body == b"secret"
    assert client.get("/echo/hi", headers=rebound).body == b"hi"  # only /files is guarded


def test_the_operators_names_come_from_the_app_or_the_server(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    named = webtest.TestApp(create_app(str(tmp_path), allowed_hosts=["files.example.com"]),
                            extra_environ={"SERVER_NAME": "0.0.0.0"})
    named.get("/files/f", headers={"Host": "files.example.com"}, status=200)
    named.get("/files/f", headers={"Host": "evil.example"}, status=421)
    from_server = webtest.TestApp(create_app(str(tmp_path)), extra_environ={
        "SERVER_NAME": "127.0.0.1", "wsgiserver.allowed_hosts": ("files.example.com",)})
    from_server.get("/files/f", headers={"Host": "files.example.com"}, status=200)
