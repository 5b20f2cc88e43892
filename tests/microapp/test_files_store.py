"""/files/<name>: safe names, validators, ranges, atomic uploads."""

from __future__ import annotations

import io
import os
import threading

import pytest
import webtest
from wsgi_calls import call_wsgi

from microapp import create_app
from microapp.files import TEMPORARY_PREFIX, NameLocks, check_name

CONTENT = bytes(range(256)) * 4  # 1024 bytes


@pytest.fixture
def stored(files_dir):
    """A 1 KiB file named data.bin in the served directory."""
    (files_dir / "data.bin").write_bytes(CONTENT)
    return files_dir / "data.bin"


def leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(TEMPORARY_PREFIX)]


# Reading.

def test_missing_file_is_404(client):
    client.get("/files/nothing-here", status=404)


def test_file_is_served_as_octet_stream_with_validators(client, stored):
    response = client.get("/files/data.bin")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == "1024"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"') and response.headers["ETag"].endswith('"')
    assert response.headers["Last-Modified"].endswith(" GMT")
    assert response.body == CONTENT


def test_directory_is_not_served_as_a_file(client, files_dir):
    (files_dir / "sub").mkdir()
    client.get("/files/sub", status=404)


@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"nope", {etag}', "*"])
def test_if_none_match_hit_is_304_without_body(client, stored, if_none_match):
    etag = client.get("/files/data.bin").headers["ETag"]
    response = client.get("/files/data.bin", status=304,
                          headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert response.body == b""
    assert response.headers["ETag"] == etag


def test_if_none_match_miss_is_200(client, stored):
    client.get("/files/data.bin", headers={"If-None-Match": '"stale"'}, status=200)


def test_if_modified_since_unchanged_is_304(client, stored):
    last_modified = client.get("/files/data.bin").headers["Last-Modified"]
    client.get("/files/data.bin", headers={"If-Modified-Since": last_modified}, status=304)


def test_if_modified_since_older_is_200(client, stored):
    headers = {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}
    client.get("/files/data.bin", headers=headers, status=200)


@pytest.mark.parametrize(("range_field", "content_range", "part"), [
    ("bytes=0-9", "bytes 0-9/1024", CONTENT[:10]),
    ("bytes=1000-", "bytes 1000-1023/1024", CONTENT[1000:]),
    ("bytes=-24", "bytes 1000-1023/1024", CONTENT[-24:]),
    ("bytes=1020-5000", "bytes 1020-1023/1024", CONTENT[1020:]),
])
def test_single_range_is_206_with_content_range(client, stored, range_field, content_range,
                                                 part):
    response = client.get("/files/data.bin", headers={"Range": range_field}, status=206)
    assert response.headers["Content-Range"] == content_range
    assert response.headers["Content-Length"] == str(len(part))
    assert response.body == part


def test_unsatisfiable_range_is_416_with_the_size(client, stored):
    response = client.get("/files/data.bin", headers={"Range": "bytes=2000-"}, status=416)
    assert response.headers["Content-Range"] == "bytes */1024"


def test_if_range_with_current_etag_gives_the_range(client, stored):
    etag = client.get("/files/data.bin").headers["ETag"]
    headers = {"Range": "bytes=0-1", "If-Range": etag}
    assert client.get("/files/data.bin", headers=headers, status=206).body == CONTENT[:2]


def test_if_range_with_stale_etag_gives_the_whole_file(client, stored):
    headers = {"Range": "bytes=0-1", "If-Range": '"stale"'}
    assert client.get("/files/data.bin", headers=headers, status=200).body == CONTENT


def test_head_answers_the_get_head_without_opening_the_file(client, stored, monkeypatch):
    expected = client.get("/files/data.bin").headers

    def no_open(*args, **kwargs):
        raise AssertionError("HEAD opened the file")

    monkeypatch.setattr("microapp.files.open", no_open, raising=False)
    response = client.head("/files/data.bin")
    assert response.body == b""
    for name in ("Content-Length", "ETag", "Last-Modified", "Content-Type"):
        assert response.headers[name] == expected[name]


class RecordingWrapper:
    """A stand-in for the server's wsgi.file_wrapper."""

    def __init__(self, file, block_size):
        self.file, self.block_size, self.start = file, block_size, file.tell()

    def __iter__(self):
        return iter(lambda: self.file.read(self.block_size), b"")

    def close(self):
        self.file.close()


def raw_get(app, path, **headers):
    """A raw call with a file_wrapper on offer; returns the app's own iterable too."""
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(response_headers)

    from wsgi_calls import make_environ
    environ = make_environ("GET", path, headers=headers,
                           **{"wsgi.file_wrapper": RecordingWrapper})
    return app(environ, start_response), seen


def test_whole_file_is_streamed_through_wsgi_file_wrapper(files_dir, stored):
    result, seen = raw_get(create_app(str(files_dir), compress=False), "/files/data.bin")
    assert isinstance(result, RecordingWrapper)
    assert b"".join(result) == CONTENT
    result.close()


def test_range_to_the_end_uses_the_wrapper_from_the_range_start(files_dir, stored):
    result, seen = raw_get(create_app(str(files_dir), compress=False), "/files/data.bin",
                           Range="bytes=1000-")
    assert isinstance(result, RecordingWrapper) and result.start == 1000
    result.close()


def test_range_inside_the_file_is_bounded_without_the_wrapper(files_dir, stored):
    result, seen = raw_get(create_app(str(files_dir), compress=False), "/files/data.bin",
                           Range="bytes=10-19")
    assert not isinstance(result, RecordingWrapper)
    assert b"".join(result) == CONTENT[10:20]
    result.close()


def test_gzip_of_a_file_weakens_its_etag_and_304s_on_the_weak_tag(files_dir, stored):
    app = create_app(str(files_dir))
    compressed = call_wsgi(app, headers={"Accept-Encoding": "gzip"}, path="/files/data.bin")
    assert compressed.header("Content-Encoding") == "gzip"
    weak = compressed.header("ETag")
    assert weak.startswith('W/"')
    again = call_wsgi(app, path="/files/data.bin",
                      headers={"Accept-Encoding": "gzip", "If-None-Match": weak})
    assert (again.code, again.header("ETag"), again.body) == (304, weak, b"")


def test_range_is_never_compressed(files_dir, stored):
    answer = call_wsgi(create_app(str(files_dir)), path="/files/data.bin",
                       headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert answer.code == 206
    assert answer.header("Content-Encoding") is None
    assert answer.body == CONTENT[:10]


# Names and symlinks.

@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\x00b", "a\x1fb", "a\x7fb",
                                  "x" * 256, TEMPORARY_PREFIX + "abc"])
def test_unsafe_names_are_refused(name):
    from microapp import HTTPError

    with pytest.raises(HTTPError) as raised:
        check_name(name)
    assert raised.value.status == 400


@pytest.mark.parametrize("path", ["/files/..", "/files/%2E%2E", "/files/..%2Fsecret",
                                  "/files/a%5Cb", "/files/a%00b", "/files/a%0Ab"])
def test_unsafe_names_in_requests_are_400_for_every_method(client, path):
    client.get(path, status=400)
    client.post(path, b"x", status=400)
    client.put(path, b"x", status=400)


def test_long_but_legal_name_is_accepted(client):
    name = "n" * 255
    client.post(f"/files/{name}", b"x", status=201)


def test_symlink_inside_the_directory_is_followed(client, files_dir, stored):
    (files_dir / "alias").symlink_to("data.bin")
    assert client.get("/files/alias").body == CONTENT


def test_symlink_leading_outside_the_directory_is_404(client, files_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"private")
    (files_dir / "escape").symlink_to(secret)
    client.get("/files/escape", status=404)
    client.head("/files/escape", status=404)
    client.put("/files/escape", b"overwrite", status=404)
    assert secret.read_bytes() == b"private"


# Writing.

def test_post_creates_the_file_with_201_and_location(client, files_dir):
    response = client.post("/files/new%20file.txt", b"hello", status=201)
    assert response.headers["Location"] == "/files/new%20file.txt"
    assert (files_dir / "new file.txt").read_bytes() == b"hello"
    assert leftovers(files_dir) == []


def test_uploaded_file_reads_back(client):
    client.post("/files/round-trip", CONTENT, content_type="application/octet-stream")
    assert client.get("/files/round-trip").body == CONTENT


def test_upload_over_the_size_limit_is_413_and_leaves_nothing(files_dir):
    client = webtest.TestApp(create_app(str(files_dir), max_upload_bytes=10))
    client.post("/files/big", b"x" * 11, status=413)
    assert os.listdir(files_dir) == []


def test_chunked_upload_over_the_limit_is_413_and_leaves_nothing(files_dir):
    answer = call_wsgi(create_app(str(files_dir), max_upload_bytes=100_000), "POST",
                       "/files/big", **{"wsgi.input": io.BytesIO(b"x" * 200_000),
                                        "wsgi.input_terminated": True})
    assert answer.code == 413
    assert os.listdir(files_dir) == []


def test_chunked_upload_without_length_is_read_to_the_end(files_dir):
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/chunked",
                       **{"wsgi.input": io.BytesIO(CONTENT * 100),
                          "wsgi.input_terminated": True})
    assert answer.code == 201
    assert (files_dir / "chunked").read_bytes() == CONTENT * 100


def test_upload_without_length_or_termination_is_411(files_dir):
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/x")
    assert answer.code == 411
    assert os.listdir(files_dir) == []


def test_short_body_leaves_no_file_and_no_temporary(files_dir):
    answer = call_wsgi(create_app(str(files_dir)), "POST", "/files/short",
                       body=b"only five", CONTENT_LENGTH="100")
    assert answer.code == 400
    assert os.listdir(files_dir) == []


class Disconnecting:
    """wsgi.input whose client vanishes after ``good`` bytes, like the server's."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        chunk = b"z" * min(size, self.left)
        self.left -= len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return [self.read(hint)]

    def __iter__(self):
        return iter(lambda: self.read(8192), b"")


def test_client_disconnect_mid_upload_leaves_no_file_and_no_temporary(files_dir, stored):
    answer = call_wsgi(create_app(str(files_dir)), "PUT", "/files/data.bin",
                       CONTENT_LENGTH="500000", **{"wsgi.input": Disconnecting(100_000)})
    assert answer.code == 400
    assert os.listdir(files_dir) == ["data.bin"]
    assert stored.read_bytes() == CONTENT  # the old file is untouched


def test_put_creates_201_then_replaces_204(client, files_dir):
    client.put("/files/doc", b"one", status=201)
    client.put("/files/doc", b"two", status=204)
    assert (files_dir / "doc").read_bytes() == b"two"


def test_put_if_none_match_star_refuses_an_existing_file(client, files_dir, stored):
    client.put("/files/data.bin", b"new", headers={"If-None-Match": "*"}, status=412)
    assert stored.read_bytes() == CONTENT
    assert leftovers(files_dir) == []


def test_put_if_none_match_star_creates_a_new_file(client, files_dir):
    client.put("/files/fresh", b"new", headers={"If-None-Match": "*"}, status=201)
    assert (files_dir / "fresh").read_bytes() == b"new"
    assert leftovers(files_dir) == []


def test_writing_over_a_directory_is_409(client, files_dir):
    (files_dir / "sub").mkdir()
    client.put("/files/sub", b"x", status=409)


def test_concurrent_writes_to_one_name_never_interleave(files_dir):
    app = create_app(str(files_dir))
    bodies = [bytes([65 + index]) * 300_000 for index in range(8)]
    barrier = threading.Barrier(len(bodies), timeout=10)
    statuses: list[int] = []

    def upload(body: bytes) -> None:
        barrier.wait()
        statuses.append(call_wsgi(app, "PUT", "/files/shared", body=body).code)

    threads = [threading.Thread(target=upload, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(statuses).count(201) == 1 and len(statuses) == len(bodies)
    assert (files_dir / "shared").read_bytes() in bodies
    assert leftovers(files_dir) == []


def test_name_locks_are_dropped_when_released():
    locks = NameLocks()
    with locks.hold("a"), locks.hold("b"):
        assert len(locks) == 2
    assert len(locks) == 0


@pytest.mark.parametrize("name", ["NUL", "con.txt", "COM1", "lpt9.log", "a:b", "x.txt:stream",
                                  "what?", "a.txt.", "trailing ", 'quote"'])
def test_names_that_mean_something_else_on_windows_are_refused_there(monkeypatch, name):
    import microapp.files
    from microapp import HTTPError

    assert check_name(name) == name  # a plain name elsewhere
    monkeypatch.setattr(microapp.files, "WINDOWS", True)
    with pytest.raises(HTTPError) as caught:
        check_name(name)
    assert caught.value.status == 400 and "Windows" in str(caught.value.detail)


def test_ordinary_names_pass_on_windows_too(monkeypatch):
    import microapp.files

    monkeypatch.setattr(microapp.files, "WINDOWS", True)
    for name in ("report.pdf", "console.txt", "null.bin", "a b.txt", "COM10"):
        assert check_name(name) == name


def test_stale_upload_files_a_killed_process_left_are_removed_once(tmp_path):
    import os
    import time

    import webtest

    from microapp import create_app
    from microapp.files import STALE_SECONDS, TEMPORARY_PREFIX

    stale = tmp_path / (TEMPORARY_PREFIX + "killed")
    fresh = tmp_path / (TEMPORARY_PREFIX + "in-progress")
    for path in (stale, fresh):
        path.write_bytes(b"half an upload")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    (tmp_path / "kept.txt").write_bytes(b"kept")
    client = webtest.TestApp(create_app(str(tmp_path)))
    client.get("/files/kept.txt")
    assert not stale.exists()
    assert fresh.exists()  # an upload under way elsewhere is left alone
    assert (tmp_path / "kept.txt").exists()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root writes anywhere: run as another user to test permissions")
def test_a_read_only_directory_is_warned_about_and_answers_403(tmp_path, caplog):
    import webtest

    from microapp import create_app

    (tmp_path / "kept.txt").write_bytes(b"kept")
    tmp_path.chmod(0o555)
    try:
        client = webtest.TestApp(create_app(str(tmp_path)))
        assert any("is not writable" in r.getMessage() for r in caplog.records)
        response = client.put("/files/new.txt", b"x", status=403)
        assert "may not write" in response.text
        client.delete("/files/kept.txt", status=403)
    finally:
        tmp_path.chmod(0o755)


def test_disk_errors_become_403_and_507_not_500():
    import errno as errnos

    from microapp.errors import HTTPError
    from microapp.files import disk_errors

    for error, status in ((PermissionError(errnos.EACCES, "denied"), 403),
                          (OSError(errnos.ENOSPC, "No space left on device"), 507)):
        with pytest.raises(HTTPError) as raised, disk_errors():
            raise error
        assert raised.value.status == status
    with pytest.raises(OSError), disk_errors():
        raise OSError(errnos.EIO, "I/O error")  # anything else stays an error of ours


def test_uploads_to_a_directory_the_disk_refuses_answer_403_or_507(tmp_path, monkeypatch, caplog):
    # As root (CI) permissions never refuse: the refusals are made to happen.
    import errno as errnos
    import tempfile

    import microapp.views

    monkeypatch.setattr(microapp.views, "writable", lambda root: False)
    client = webtest.TestApp(create_app(str(tmp_path)))
    assert any("is not writable: uploads and deletes will fail" in r.getMessage()
               for r in caplog.records)

    def refuse(error):
        def mkstemp(*args, **kwargs):
            raise error
        return mkstemp

    monkeypatch.setattr(tempfile, "mkstemp", refuse(PermissionError(errnos.EACCES, "denied")))
    assert "may not write" in client.put("/files/a.txt", b"x", status=403).text
    monkeypatch.setattr(tempfile, "mkstemp", refuse(OSError(errnos.ENOSPC, "No space left")))
    assert "disk is full" in client.post("/files/a.txt", b"x", status=507).text
    assert os.listdir(tmp_path) == []
