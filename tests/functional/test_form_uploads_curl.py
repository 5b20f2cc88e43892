"""Form uploads with ``curl -F`` (what an HTML form sends) to the bundled app
on the real server: the file part is stored, never the multipart envelope;
large and chunked uploads arrive whole; the raw-body contract is unchanged.
Skipped, saying how to install it, when curl is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from microapp import create_app
from microapp.files import TEMPORARY_PREFIX

CURL_SECONDS = 30


@pytest.fixture
def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl not installed (Debian: apt-get install curl)")
    return path


@pytest.fixture
def served(live_server, tmp_path):
    """(base URL, files directory) of the bundled app, uploads up to 16 MiB."""
    directory = tmp_path / "files"
    directory.mkdir()
    server = live_server(create_app(max_upload_bytes=16 * 1024 * 1024),
                         directory=str(directory))
    host, port = server.address
    return f"http://{host}:{port}", directory


def run_curl(curl: str, *arguments: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one curl call."""
    completed = subprocess.run(
        [curl, "-sS", "--max-time", str(CURL_SECONDS), "-D", "-", *arguments],
        capture_output=True, timeout=CURL_SECONDS + 10, check=True)
    head, _, body = completed.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # Expect: 100-continue, which curl sends for big bodies
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_curl_form_to_a_name_stores_the_file_part(curl, served, tmp_path):
    base, directory = served
    local = tmp_path / "a.txt"
    local.write_bytes(b"first line\r\n--------------------------boundary-like\r\n")
    status, headers, body = run_curl(curl, "-F", f"file=@{local}", f"{base}/files/b.txt")
    assert (status, headers["Location"]) == (201, "/files/b.txt")
    assert (directory / "b.txt").read_bytes() == local.read_bytes()
    assert json.loads(body)["files"] == [{"name": "b.txt", "size": local.stat().st_size,
                                          "url": "/files/b.txt"}]


def test_curl_form_to_the_directory_stores_each_file_by_its_last_segment(curl, served,
                                                                         tmp_path):
    base, directory = served
    (tmp_path / "one.bin").write_bytes(os.urandom(5000))
    (tmp_path / "two.bin").write_bytes(b"")
    status, _, _ = run_curl(curl, "-F", f"file=@{tmp_path / 'one.bin'}",
                            "-F", f"file=@{tmp_path / 'two.bin'};filename=../../../escape.bin",
                            "-F", "comment=not stored", f"{base}/files/")
    assert status == 201
    assert sorted(os.listdir(directory)) == ["escape.bin", "one.bin"]
    assert (directory / "one.bin").read_bytes() == (tmp_path / "one.bin").read_bytes()
    assert (directory / "escape.bin").read_bytes() == b""
    assert not (tmp_path.parent / "escape.bin").exists()


@pytest.mark.parametrize("framing", [[], ["-H", "Transfer-Encoding: chunked"]],
                         ids=["content-length", "chunked"])
def test_curl_large_form_upload_arrives_whole(curl, served, tmp_path, framing):
    base, directory = served
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(6 * 1024 * 1024))
    status, _, _ = run_curl(curl, *framing, "-F", f"file=@{local}", f"{base}/files/big.bin")
    assert status == 201
    assert (directory / "big.bin").read_bytes() == local.read_bytes()
    assert [name for name in os.listdir(directory) if name.startswith(TEMPORARY_PREFIX)] == []


def test_curl_form_over_the_limit_is_413_and_stores_nothing(curl, live_server, tmp_path):
    directory = tmp_path / "files"
    directory.mkdir()
    host, port = live_server(create_app(str(directory), max_upload_bytes=1000)).address
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    status, _, body = run_curl(curl, "-F", f"file=@{tmp_path / 'big.bin'}",
                               f"http://{host}:{port}/files/")
    assert status == 413 and b"1000 bytes" in body
    assert os.listdir(directory) == []


def test_curl_raw_upload_and_root_keep_their_contract(curl, served, tmp_path):
    base, directory = served
    local = tmp_path / "raw.txt"
    local.write_bytes(b"--X\r\nContent-Disposition: form-data; name=f\r\n\r\nraw\r\n--X--\r\n")
    status, headers, body = run_curl(curl, "--data-binary", f"@{local}",
                                     f"{base}/files/raw.txt")
    assert (status, headers["Location"], body) == (201, "/files/raw.txt", b"")
    assert (directory / "raw.txt").read_bytes() == local.read_bytes()
    assert run_curl(curl, f"{base}/")[0::2] == (200, b"")


def test_curl_lists_the_directory_as_json(curl, served):
    base, directory = served
    (directory / "listed.txt").write_bytes(b"12345")
    status, headers, body = run_curl(curl, "-H", "Accept: application/json", f"{base}/files/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert [(entry["name"], entry["size"]) for entry in json.loads(body)["files"]] == [
        ("listed.txt", 5)]
