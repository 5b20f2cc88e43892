"""--static: files served from a directory in front of the application, as
a WSGI app called directly (the server's sendfile path is the functional
test's): confinement, conditional requests, ranges, precompressed files."""

from __future__ import annotations

import email.utils
import gzip
import os

import pytest

from wsgiserver.static import StaticFiles, parse_mount
from wsgiserver.wsgi import FileWrapper

CSS = b"body { color: #123456 }\n" * 40


def inner_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the application"]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "static"
    (root / "admin" / "css").mkdir(parents=True)
    (root / "admin" / "css" / "base.css").write_bytes(CSS)
    (root / "admin" / "css" / "base.css.gz").write_bytes(gzip.compress(CSS))
    (root / "logo.png").write_bytes(b"\x89PNG" + bytes(100))
    (root / ".env").write_text("SECRET=1")
    (root / "empty.txt").write_bytes(b"")
    (tmp_path / "outside.txt").write_text("not yours")
    (root / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (root / "inside-link.txt").symlink_to(root / "logo.png")
    return root


def call(app, path, method="GET", **headers):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.file_wrapper": FileWrapper}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    answer: dict = {}

    def start_response(status, fields, exc_info=None):
        answer["status"], answer["headers"] = status, dict(fields)

    result = app(environ, start_response)
    if isinstance(result, FileWrapper):
        body = result.filelike.read(int(answer["headers"]["Content-Length"]))
        result.close()
    else:
        body = b"".join(result)
    return int(answer["status"].split()[0]), answer["headers"], body


@pytest.fixture
def app(tree):
    return StaticFiles(inner_app, [parse_mount(f"/static={tree}")])


def test_a_file_under_the_prefix_and_the_app_for_the_rest(app):
    status, headers, body = call(app, "/static/admin/css/base.css")
    assert (status, body) == (200, CSS)
    assert headers["Content-Type"] == "text/css; charset=utf-8"
    assert headers["Content-Length"] == str(len(CSS))
    assert headers["ETag"].startswith('"') and headers["Last-Modified"].endswith("GMT")
    assert call(app, "/staticfile")[2] == b"the application"
    assert call(app, "/other/static/logo.png")[2] == b"the application"


@pytest.mark.parametrize("path", [
    "/static/../outside.txt", "/static/admin/../../outside.txt", "/static/./logo.png",
    "/static/.env", "/static/escape.txt", "/static/admin", "/static/admin/", "/static/",
    "/static//logo.png", "/static/missing.css", "/static/logo.png\0.css",
    "/static/admin\\css\\base.css",
])
def test_nothing_outside_hidden_or_not_a_file_is_served(app, path):
    status, _, body = call(app, path)
    assert status == 404 and b"not yours" not in body and b"SECRET" not in body


def test_a_symlink_that_stays_inside_is_served(app):
    assert call(app, "/static/inside-link.txt")[0] == 200


def test_head_has_the_headers_and_no_body_and_other_methods_are_405(app):
    status, headers, body = call(app, "/static/logo.png", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "104")
    assert headers["Content-Type"] == "image/png"
    status, headers, _ = call(app, "/static/logo.png", method="POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")


def test_etag_and_last_modified_answer_304(app):
    _, headers, _ = call(app, "/static/logo.png")
    tag, modified = headers["ETag"], headers["Last-Modified"]
    assert call(app, "/static/logo.png", if_none_match=tag)[0] == 304
    assert call(app, "/static/logo.png", if_none_match=f'"x", W/{tag}')[0] == 304
    assert call(app, "/static/logo.png", if_none_match="*")[0] == 304
    assert call(app, "/static/logo.png", if_none_match='"other"')[0] == 200
    assert call(app, "/static/logo.png", if_modified_since=modified)[0] == 304
    earlier = email.utils.formatdate(0, usegmt=True)
    assert call(app, "/static/logo.png", if_modified_since=earlier)[0] == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    assert call(app, "/static/logo.png", if_none_match='"other"',
                if_modified_since=modified)[0] == 200
    status, headers, body = call(app, "/static/logo.png", if_none_match=tag)
    assert body == b"" and headers["ETag"] == tag and "Content-Length" not in headers


@pytest.mark.parametrize("header, status, part", [
    ("bytes=0-9", 206, (0, 9)),
    ("bytes=10-", 206, (10, len(CSS) - 1)),
    ("bytes=-5", 206, (len(CSS) - 5, len(CSS) - 1)),
    ("bytes=5-100000", 206, (5, len(CSS) - 1)),
    ("bytes=100000-", 416, None),
    ("bytes=-0", 416, None),
    ("bytes=0-1,5-6", 200, None),  # several ranges: the whole file
    ("lines=1-2", 200, None),
    ("bytes=9-3", 200, None),
])
def test_one_byte_range(app, header, status, part):
    got, headers, body = call(app, "/static/admin/css/base.css", range=header)
    assert got == status
    if status == 206:
        first, last = part
        assert body == CSS[first:last + 1]
        assert headers["Content-Range"] == f"bytes {first}-{last}/{len(CSS)}"
        assert "Content-Encoding" not in headers  # a range is of the file itself
    elif status == 416:
        assert headers["Content-Range"] == f"bytes */{len(CSS)}"
    else:
        assert body == CSS


def test_if_range_that_no_longer_matches_gets_the_whole_file(app):
    _, headers, _ = call(app, "/static/logo.png")
    assert call(app, "/static/logo.png", range="bytes=0-3", if_range=headers["ETag"])[0] == 206
    assert call(app, "/static/logo.png", range="bytes=0-3", if_range='"old"')[0] == 200
    assert call(app, "/static/logo.png", range="bytes=0-3",
                if_range=headers["Last-Modified"])[0] == 206


@pytest.mark.parametrize("accept, gzipped", [
    ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True),
    ("gzip;q=0", False), ("br", False), ("", False),
])
def test_the_precompressed_file_for_clients_that_accept_gzip(app, accept, gzipped):
    status, headers, body = call(app, "/static/admin/css/base.css", accept_encoding=accept)
    assert status == 200 and headers["Vary"] == "Accept-Encoding"
    assert headers["Content-Type"] == "text/css; charset=utf-8"
    if gzipped:
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == CSS
        assert headers["ETag"].endswith('-gz"')
    else:
        assert "Content-Encoding" not in headers and body == CSS


def test_the_gz_file_itself_and_no_vary_without_one(app):
    status, headers, _ = call(app, "/static/logo.png", accept_encoding="gzip")
    assert status == 200 and "Vary" not in headers and "Content-Encoding" not in headers
    assert call(app, "/static/admin/css/base.css.gz")[0] == 200


def test_an_empty_file(app):
    assert call(app, "/static/empty.txt")[:3:2] == (200, b"")


def test_the_longest_prefix_wins(tree, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "base.css").write_bytes(b"other")
    app = StaticFiles(inner_app, [parse_mount(f"/static={tree}"),
                                  parse_mount(f"/static/admin/css={other}")])
    assert call(app, "/static/admin/css/base.css")[2] == b"other"
    assert call(app, "/static/logo.png")[0] == 200


@pytest.mark.parametrize("text, message", [
    ("static=/tmp", "expected /PREFIX=DIR"),
    ("/static", "expected /PREFIX=DIR"),
    ("/static=", "expected /PREFIX=DIR"),
    ("/a/../b=/tmp", "may not hold . or .."),
    ("/static=/no/such/directory", "not a directory"),
])
def test_a_bad_mount_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mount(text)


def test_a_mount_is_the_directorys_real_path(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert parse_mount(f"/s/={tmp_path / 'link'}") == ("/s", os.path.realpath(tmp_path / "real"))
