"""/files/: the page for people and JSON for programs; DELETE; form uploads
to /files/ and /files/<name>; browsers' cross-origin writes refused."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tempfile
from html.parser import HTMLParser

import pytest
import requests
import webtest
from wsgi_calls import call_wsgi

from microapp import create_app
from microapp.files import TEMPORARY_PREFIX
from microapp.origin import same_origin

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", '" onmouseover="alert(1)', "a&amp;b<i>",
                 "<script>alert(1)<\u2215script>"]


def leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(TEMPORARY_PREFIX)]


class PageReader(HTMLParser):
    """What a browser would make of the page: links, buttons, tags, scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[dict] = []
        self.buttons: list[dict] = []
        self.tags: set[str] = set()
        self.scripts: list[str] = []
        self._open: dict | None = None
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attributes = dict(attrs)
        if tag == "a":
            self._open = {**attributes, "text": ""}
            self.links.append(self._open)
        elif tag == "button" and "data-url" in attributes:
            self.buttons.append(attributes)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None
        self._in_script = False

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data
        if self._in_script:
            self.scripts.append(data)


@pytest.fixture
def some_files(files_dir):
    (files_dir / "b.bin").write_bytes(b"\x00" * 2048)
    (files_dir / "a.txt").write_bytes(b"hello")
    os.utime(files_dir / "a.txt", (0, 86400))
    return files_dir


# The page.

def test_empty_directory_page_says_so(client):
    response = client.get("/files/")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "No files yet." in response.text
    assert "Accept" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"


def test_page_lists_each_file_with_size_time_download_and_delete(client, some_files):
    response = client.get("/files/", headers={"Accept": BROWSER_ACCEPT})
    page = PageReader(response.text)
    assert [(link["text"], link["href"], link["download"]) for link in page.links] == [
        ("a.txt", "/files/a.txt", "a.txt"), ("b.bin", "/files/b.bin", "b.bin")]
    assert [button["data-url"] for button in page.buttons] == ["/files/a.txt", "/files/b.bin"]
    assert 'title="5 bytes">5 B<' in response.text and "2.0 KiB" in response.text
    assert ('<time datetime="1970-01-02T00:00:00Z">1970-01-02<span class="clock"> 00:00</span>'
            '</time>') in response.text
    assert 'enctype="multipart/form-data"' in response.text and 'type="file"' in response.text


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_shown_as_text(client, files_dir, name):
    (files_dir / name).write_bytes(b"x")
    page = PageReader(client.get("/files/").text)
    assert [link["text"] for link in page.links] == [name]
    assert [button["data-name"] for button in page.buttons] == [name]
    assert page.tags.isdisjoint({"img", "i"}) and len(page.scripts) == 1
    assert "onmouseover" not in str([link.keys() for link in page.links])


def test_the_pages_own_script_and_style_are_exactly_what_its_policy_allows(client):
    response = client.get("/files/")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    for tag in ("script", "style"):
        source = re.search(f"<{tag}>(.*?)</{tag}>", response.text, re.S)[1]
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert "http://" not in response.text and "https://" not in response.text  # no CDN


def test_json_listing_for_programs(client, some_files):
    response = client.get("/files/", headers={"Accept": "application/json"})
    assert response.headers["Content-Type"] == "application/json"
    assert "Accept" in response.headers["Vary"]
    assert response.json == {"files": [
        {"name": "a.txt", "size": 5, "modified": "1970-01-02T00:00:00Z", "url": "/files/a.txt"},
        {"name": "b.bin", "size": 2048, "modified": response.json["files"][1]["modified"],
         "url": "/files/b.bin"}], "total": 2, "next": None}


def test_the_listing_comes_in_pages_with_a_cursor_and_the_total(client, files_dir):
    for number in range(25):
        (files_dir / f"f{number:03d}.txt").write_bytes(b"x")
    json = {"Accept": "application/json"}
    first = client.get("/files/?limit=10", headers=json).json
    assert [f["name"] for f in first["files"]] == [f"f{n:03d}.txt" for n in range(10)]
    assert first["total"] == 25 and first["next"] == "/files/?after=f009.txt"
    second = client.get(first["next"] + "&limit=10", headers=json).json
    assert second["files"][0]["name"] == "f010.txt"
    last = client.get("/files/?after=f019.txt&limit=10", headers=json).json
    assert [f["name"] for f in last["files"]] == [f"f{n:03d}.txt" for n in range(20, 25)]
    assert last["next"] is None
    html = client.get("/files/?limit=10").text
    assert 'rel="next" href="/files/?after=f009.txt"' in html
    assert "25 files (10 on this page" in html
    client.get("/files/?limit=0", status=400)
    client.get("/files/?limit=lots", status=400)


@pytest.mark.parametrize(("accept", "kind"), [
    ("*/*", "text/html"), (BROWSER_ACCEPT, "text/html"), ("application/json", "application/json"),
    ("text/html;q=0.5, application/json", "application/json"), ("image/png", "text/html")])
def test_listing_follows_accept(client, accept, kind):
    assert client.get("/files/", headers={"Accept": accept}).content_type == kind


def test_hostile_names_in_json_are_data(client, files_dir):
    for name in HOSTILE_NAMES:
        (files_dir / name).write_bytes(b"x")
    listed = client.get("/files/", headers={"Accept": "application/json"}).json["files"]
    assert sorted(entry["name"] for entry in listed) == sorted(HOSTILE_NAMES)
    for entry in listed:
        assert client.get(entry["url"]).body == b"x"


def test_listing_shows_only_what_can_be_downloaded(client, files_dir, tmp_path):
    (files_dir / "kept.txt").write_bytes(b"1")
    (files_dir / "inside-link").symlink_to("kept.txt")
    (tmp_path / "secret").write_bytes(b"private")
    (files_dir / "outside-link").symlink_to(tmp_path / "secret")
    (files_dir / "dangling").symlink_to("nowhere")
    (files_dir / "subdir").mkdir()
    (files_dir / "dir-link").symlink_to("subdir")
    (files_dir / (TEMPORARY_PREFIX + "abc")).write_bytes(b"half")
    (files_dir / "control\x01char").write_bytes(b"1")
    os.close(os.open(os.path.join(os.fsencode(files_dir), b"latin-\xe9"), os.O_CREAT | os.O_WRONLY))
    listed = client.get("/files/", headers={"Accept": "application/json"}).json["files"]
    assert [entry["name"] for entry in listed] == ["inside-link", "kept.txt"]
    for entry in listed:
        client.get(entry["url"], status=200)


@pytest.mark.parametrize(("error", "status"), [(PermissionError, 403), (FileNotFoundError, 404)])
def test_a_directory_that_cannot_be_listed_is_not_a_500(client, monkeypatch, error, status):
    def refuse(path):
        raise error(path)

    monkeypatch.setattr(os, "scandir", refuse)
    client.get("/files/", status=status)


def test_listing_without_a_directory_is_404():
    webtest.TestApp(create_app()).get("/files/", status=404)


def test_head_of_the_page_has_no_body(client):
    response = client.head("/files/")
    assert response.body == b"" and response.headers["Content-Type"].startswith("text/html")


def test_files_without_slash_redirects_to_the_page(files_dir):
    client = webtest.TestApp(create_app(str(files_dir)), extra_environ={"SCRIPT_NAME": "/app"})
    assert client.get("/files", status=308).headers["Location"] == "/app/files/"
    (files_dir / "a").write_bytes(b"1")
    page = PageReader(client.get("/files/").text)
    assert page.links[0]["href"] == "/app/files/a"


# DELETE.

def test_delete_removes_the_file_then_404s(client, files_dir):
    (files_dir / "doomed").write_bytes(b"1")
    client.delete("/files/doomed", status=204)
    assert not (files_dir / "doomed").exists()
    client.delete("/files/doomed", status=404)


def test_delete_of_a_symlink_removes_the_link_only(client, files_dir, tmp_path):
    (files_dir / "target").write_bytes(b"kept")
    (files_dir / "alias").symlink_to("target")
    client.delete("/files/alias", status=204)
    assert sorted(os.listdir(files_dir)) == ["target"]
    (tmp_path / "secret").write_bytes(b"private")
    (files_dir / "escape").symlink_to(tmp_path / "secret")
    client.delete("/files/escape", status=404)
    assert (tmp_path / "secret").read_bytes() == b"private"


def test_delete_refuses_directories_and_unsafe_names(client, files_dir):
    (files_dir / "sub").mkdir()
    client.delete("/files/sub", status=409)
    for path in ["/files/..", "/files/a%2Fb", "/files/" + TEMPORARY_PREFIX + "x"]:
        client.delete(path, status=400)
    assert (files_dir / "sub").is_dir()


# Form uploads to the files routes.

def test_form_post_to_a_name_stores_the_file_not_the_envelope(client, files_dir):
    content = b"line one\r\n--not a boundary\r\n\x00\xff"
    response = client.post("/files/b.txt", {"note": "ignored"},
                           upload_files=[("file", "a.txt", content)], status=201)
    assert response.headers["Location"] == "/files/b.txt"
    assert response.json == {"files": [{"name": "b.txt", "size": len(content),
                                        "url": "/files/b.txt"}]}
    assert (files_dir / "b.txt").read_bytes() == content
    assert sorted(os.listdir(files_dir)) == ["b.txt"]


def test_form_post_to_the_directory_stores_each_file_under_its_name(client, files_dir):
    response = client.post("/files/", upload_files=[
        ("file", "C:\\Users\\me\\one.txt", b"1"), ("file", "../../two.txt", b"22")], status=201)
    assert response.headers["Location"] == "/files/one.txt"
    assert [entry["name"] for entry in response.json["files"]] == ["one.txt", "two.txt"]
    assert sorted(os.listdir(files_dir)) == ["one.txt", "two.txt"]
    assert (files_dir / "two.txt").read_bytes() == b"22"


def test_requests_encoder_upload(client, files_dir):
    prepared = requests.Request("POST", "http://localhost/files/", files={
        "file": ("r\u00e9sum\u00e9.pdf", b"%PDF-1.7\r\n", "application/pdf")}).prepare()
    client.request("/files/", method="POST", body=prepared.body, status=201,
                   content_type=prepared.headers["Content-Type"])
    assert (files_dir / "r\u00e9sum\u00e9.pdf").read_bytes() == b"%PDF-1.7\r\n"


def test_a_browsers_plain_form_post_returns_to_the_page(client, files_dir):
    response = client.post("/files/", upload_files=[("file", "a.txt", b"1")],
                           headers={"Accept": BROWSER_ACCEPT}, status=303)
    assert response.headers["Location"] == "/files/"
    assert (files_dir / "a.txt").read_bytes() == b"1"


@pytest.mark.parametrize(("filename", "detail"), [
    ("..", "dot name"), ("a\x01b", "control character"), (TEMPORARY_PREFIX + "x", "reserved")])
def test_unsafe_uploaded_names_are_400(client, files_dir, filename, detail):
    response = client.post("/files/", upload_files=[("file", filename, b"1")], status=400)
    assert detail in response.text
    assert os.listdir(files_dir) == []


def test_a_form_without_a_file_is_400(client, files_dir):
    assert "no file" in client.post("/files/", {"just": "text"}, status=400,
                                    content_type="multipart/form-data").text
    assert "no file" in client.post("/files/a", upload_files=[("file", "", b"")], status=400).text
    assert os.listdir(files_dir) == []


def test_two_files_to_one_name_are_400_and_store_nothing(client, files_dir):
    response = client.post("/files/one", upload_files=[("f", "a", b"1"), ("f", "b", b"2")],
                           status=400)
    assert "post several to /files/" in response.text
    assert os.listdir(files_dir) == []


def test_raw_body_to_the_directory_is_415(client):
    client.post("/files/", b"raw", content_type="application/octet-stream", status=415)


def test_put_stores_a_multipart_body_as_it_is(client, files_dir):
    body = b"--B\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nx\r\n--B--\r\n"
    client.request("/files/envelope", method="PUT", body=body, status=201,
                   content_type="multipart/form-data; boundary=B")
    assert (files_dir / "envelope").read_bytes() == body


def test_raw_post_of_multipart_looking_bytes_is_stored_exactly(client, files_dir):
    body = b"--B\r\nContent-Disposition: form-data; name=f\r\n\r\nx\r\n--B--\r\n"
    client.post("/files/raw", body, content_type="application/octet-stream", status=201)
    assert (files_dir / "raw").read_bytes() == body


MULTIPART = {"Content-Type": "multipart/form-data; boundary=B"}
FIRST = b"--B\r\nContent-Disposition: form-data; name=f; filename=one\r\n\r\n" + b"1" * 70000
# A whole small file, then over 64 KiB more, so what follows arrives in a later read.
WHOLE_THEN_MORE = (b"--B\r\nContent-Disposition: form-data; name=f; filename=one\r\n\r\n1\r\n"
                   + FIRST.replace(b"=one", b"=two"))


@pytest.mark.parametrize("body", [
    FIRST,                                                          # the boundary never closes
    WHOLE_THEN_MORE + b"\r\n--B\r\nBroken header\r\n\r\n\r\n--B--",  # a later part is malformed
    WHOLE_THEN_MORE + b"\r\n--B--\r\n"[:-4],                          # the closing line is cut
])
def test_a_malformed_form_stores_nothing_and_leaves_nothing(files_dir, body):
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/", body=body, headers=MULTIPART)
    assert answer.code == 400
    assert os.listdir(files_dir) == []


class Disconnecting(io.RawIOBase):
    """wsgi.input whose client vanishes after ``body``."""

    def __init__(self, body: bytes) -> None:
        self.stream = io.BytesIO(body)

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        if not chunk:
            raise ConnectionResetError("client went away")
        return chunk


def test_a_client_gone_mid_form_leaves_the_old_file_and_no_temporary(files_dir):
    (files_dir / "one").write_bytes(b"old")
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/", validate=False,
                       headers=MULTIPART, CONTENT_LENGTH="500000",
                       **{"wsgi.input": Disconnecting(FIRST)})
    assert answer.code == 400
    assert os.listdir(files_dir) == ["one"] and (files_dir / "one").read_bytes() == b"old"


def test_form_uploads_over_the_limit_are_413_and_leave_nothing(files_dir):
    client = webtest.TestApp(create_app(str(files_dir), max_upload_bytes=1000))
    client.post("/files/", upload_files=[("f", "big", b"x" * 1000)], status=413)
    chunked = call_wsgi(create_app(str(files_dir), max_upload_bytes=1000), "POST", "/files/",
                        headers=MULTIPART, **{"wsgi.input": io.BytesIO(FIRST),
                                              "wsgi.input_terminated": True})
    assert chunked.code == 413
    assert os.listdir(files_dir) == []


def test_form_upload_without_length_or_termination_is_411(files_dir):
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/", headers=MULTIPART)
    assert answer.code == 411


def test_the_file_part_streams_into_the_store_without_a_spool(files_dir, monkeypatch):
    def no_spool(*args, **kwargs):
        raise AssertionError("the upload was spooled before being stored")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_spool)
    big = os.urandom(2 * 1024 * 1024)
    body = (b"--B\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n" + big
            + b"\r\n--B--\r\n")
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/", headers=MULTIPART,
                       **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True})
    assert answer.code == 201
    assert (files_dir / "big").read_bytes() == big
    assert leftovers(files_dir) == []


def test_root_and_raw_post_keep_their_answers(client, files_dir):
    root = client.get("/")
    assert (root.status_int, root.body) == (200, b"")
    raw = client.post("/files/c.txt", b"raw bytes", content_type="text/plain", status=201)
    assert raw.body == b"" and raw.headers["Location"] == "/files/c.txt"
    assert (files_dir / "c.txt").read_bytes() == b"raw bytes"


# Writes from other origins.

WRITES = [
    ("POST", "/files/x", {"upload_files": [("f", "x", b"1")]}),
    ("POST", "/files/", {"upload_files": [("f", "x", b"1")]}),
    ("POST", "/files/x", {"params": b"raw"}),
    ("PUT", "/files/x", {"params": b"raw"}),
    ("DELETE", "/files/x", {}),
]


def write(client, method, path, extra, headers, status):
    call = {"POST": client.post, "PUT": client.put, "DELETE": client.delete}[method]
    return call(path, headers=headers, status=status, **extra)


@pytest.mark.parametrize(("method", "path", "extra"), WRITES)
@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://localhost:8080"},
    {"Origin": "https://localhost"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
])
def test_writes_from_another_origin_are_403_and_change_nothing(client, files_dir, method, path,
                                                              extra, headers):
    (files_dir / "x").write_bytes(b"original")
    response = write(client, method, path, extra, headers, 403)
    assert "refused" in response.text
    assert os.listdir(files_dir) == ["x"] and (files_dir / "x").read_bytes() == b"original"


@pytest.mark.parametrize(("method", "path", "extra"), WRITES)
@pytest.mark.parametrize("headers", [
    {},                                                   # curl, scripts
    {"Origin": "http://localhost"},
    {"Origin": "http://localhost:80", "Sec-Fetch-Site": "same-origin"},
])
def test_writes_from_the_same_origin_or_no_browser_pass(client, files_dir, method, path, extra,
                                                       headers):
    (files_dir / "x").write_bytes(b"original")
    response = write(client, method, path, extra, headers, "*")
    assert response.status_int in (201, 204)


def test_reads_from_another_origin_pass(client, files_dir):
    (files_dir / "x").write_bytes(b"1")
    cross = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert client.get("/files/x", headers=cross).body == b"1"
    client.get("/files/", headers=cross, status=200)


@pytest.mark.parametrize(("origin", "host", "same"), [
    ("http://example.com", "example.com", True),
    ("http://example.com", "EXAMPLE.com:80", True),
    ("https://example.com", "example.com", True),
    ("https://example.com:8443", "example.com:8443", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("http://example.com", "example.com:8080", False),
    ("http://example.com:443", "example.com", False),
    ("http://other.example.com", "example.com", False),
    ("null", "example.com", False),
    ("ftp://example.com", "example.com", False),
    ("http://example.com/path", "example.com", False),
    ("http://user@example.com", "example.com", False),
    ("http://example.com:99999", "example.com", False),
    ("http://[::1", "example.com", False),
])
def test_same_origin_compares_scheme_defaults_host_and_port(origin, host, same):
    assert same_origin(origin, host) is same



def test_the_page_says_a_refused_upload_in_one_sentence_with_the_limit(tmp_path):
    # The page's own reason() and bytesText(), run by Node on the answers the
    # server gives (skipped without Node).
    import json
    import re
    import shutil
    import subprocess

    from microapp.filepage import SCRIPT

    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed (Debian: apt-get install nodejs)")
    functions = "".join(re.findall(r"^function (?:bytesText|reason)\(.*?^}\n", SCRIPT,
                                   re.MULTILINE | re.DOTALL))
    answers = [
        {"status": 413, "responseText": "413 Content Too Large: request body larger than the "
                                        "server accepts (104857600 bytes)\n"},
        {"status": 413, "responseText": "uploads are limited to 1000 bytes"},
        {"status": 403, "responseText": "the server may not write to its files directory"},
    ]
    program = functions + (f"for (const a of {json.dumps(answers)}) "
                           "console.log(reason(a, 'Upload', 'notes.bin is'));")
    out = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=30)
    assert out.stdout.splitlines() == [
        "notes.bin is larger than the server accepts (105 MB).",
        "notes.bin is larger than the server accepts (1.0 kB).",
        "Upload failed: the server may not write to its files directory.",
    ], out.stderr


def test_names_wrap_at_sensible_points_and_stay_escaped(client, files_dir):
    (files_dir / "READ_ME-now.md").write_bytes(b"x")
    (files_dir / "a<b>.txt").write_bytes(b"x")
    html = client.get("/files/").text
    assert ">READ_<wbr>ME-<wbr>now.<wbr>md</a>" in html
    assert "a&lt;b&gt;.<wbr>txt</a>" in html  # entities untouched, the name still text
    assert 'download="READ_ME-now.md"' in html


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(one: str, two: str) -> float:
    light, dark = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_link_colours_meet_wcag_aa_in_light_and_dark_mode():
    import re

    from microapp.filepage import STYLE

    light = re.search(r":root \{[^}]*--link: (#[0-9a-f]{6})", STYLE).group(1)
    dark = re.search(r"prefers-color-scheme: dark\).*?--link: (#[0-9a-f]{6})", STYLE,
                     re.DOTALL).group(1)
    assert _contrast(light, "#ffffff") >= 4.5
    assert _contrast(dark, "#121212") >= 4.5  # Chromium's dark canvas
    assert "white-space: nowrap" in STYLE  # sizes and dates on one line
