"""Files under one directory: safe names, reads with validators and ranges,
atomic uploads, deletion and listing.

Owns every touch of the disk the bundled app makes. Names are checked
before the disk is touched; symlinks are resolved and must stay inside the
directory. Uploads stream into a temporary file in the same directory and
are renamed into place with os.replace only when complete, so readers see
the old file or the new one, never a part. Within one process a per-name
lock also serialises the final step of writes to one name; across
processes only the atomicity of the rename (and of os.link for
``If-None-Match: *``) holds.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from microapp.conditional import (
    Unsatisfiable,
    entity_tag,
    http_date,
    if_range_holds,
    is_not_modified,
    parse_range,
)
from microapp.errors import HTTPError
from microapp.response import BINARY, FileBody, Response

__all__ = ["Entry", "FileStore", "Listing", "NameLocks", "Received", "check_name",
           "disk_errors", "remove_stale_uploads", "writable"]

MAX_NAME_BYTES = 255  # NAME_MAX on common file systems
TEMPORARY_PREFIX = ".microapp-upload-"
BLOCK_SIZE = 64 * 1024
# A temporary upload file untouched this long belongs to no upload: the copy
# into the directory runs at disk speed (the server has the whole body
# before the app runs), so only a process killed mid-copy leaves one.
STALE_SECONDS = 600.0


# Windows gives some names and characters a meaning of their own: devices
# (NUL, CON, COM1 ...), drives and alternate data streams (":"), and it drops
# trailing dots and spaces, so that "a.txt." is "a.txt".
WINDOWS = os.name == "nt"
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)})


def _windows_problem(name: str) -> bool:
    stem = name.split(".")[0].rstrip(" ").upper()
    return (stem in _WINDOWS_DEVICES or any(c in name for c in ':*?"<>|')
            or name.endswith((".", " ")))


def check_name(name: str) -> str:
    """``name`` if it is a plain file name; HTTPError 400 otherwise."""
    problems = {
        "means something else on Windows": WINDOWS and _windows_problem(name),
        "is empty": name == "",
        "is a dot name": name in (".", ".."),
        "contains a path separator": "/" in name or "\\" in name,
        "contains a control character": any(ord(c) < 32 or ord(c) == 127 for c in name),
        "is too long": len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES,
        "is reserved": name.startswith(TEMPORARY_PREFIX),
    }
    for problem, present in problems.items():
        if present:
            raise HTTPError(400, f"the file name {problem}")
    return name


class NameLocks:
    """One lock per name, created on demand and dropped when nobody holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(name, (threading.Lock(), 0))
            self._locks[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True)
class Saved:
    """The outcome of an upload: whether the name is new."""

    created: bool


@dataclass(frozen=True)
class Received:
    """A body received into a temporary file beside its target, not yet visible."""

    name: str
    target: str
    temporary: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One file of a listing."""

    name: str
    size: int
    modified: float  # seconds since the epoch


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """What the disk refuses, as an answer a person can read: 403 when the
    directory may not be written, 507 when the disk (or quota) is full;
    never a 500 and a traceback for each upload."""
    try:
        yield
    except PermissionError:
        raise HTTPError(403, "the server may not write to its files directory") from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise HTTPError(507, "the server's disk is full") from None
        raise


def writable(root: str) -> bool:
    """Whether files can be created and removed in ``root``."""
    return os.access(root, os.W_OK | os.X_OK)


def remove_stale_uploads(root: str, now: float | None = None) -> list[str]:
    """Remove the temporary upload files a killed process left in ``root``
    (untouched for STALE_SECONDS); the names removed. Errors are skipped:
    another process may be removing them too."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TEMPORARY_PREFIX):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and \
                    now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue
    return removed


class FileStore:
    """The files of one directory, addressed by plain names."""

    def __init__(self, root: str, locks: NameLocks) -> None:
        self.root = os.path.realpath(root)
        self.locks = locks

    def _inside(self, name: str) -> str:
        """The resolved path of ``name``; 404 when it (or a symlink) leads outside."""
        path = os.path.realpath(os.path.join(self.root, check_name(name)))
        if os.path.dirname(path) != self.root:
            raise HTTPError(404)
        return path

    # Reading.

    def serve(self, name: str, method: str, headers: dict[str, str | None]) -> Response:
        """GET or HEAD ``name`` with conditional requests and a single Range."""
        path = self._inside(name)
        if method == "HEAD":  # the head only: stat, never open
            return self._answer(None, _regular_stat(path), method, headers)
        try:
            file = open(path, "rb", opener=_open_no_follow)  # noqa: SIM115 - closed by the response
        except OSError:  # missing, a directory, unreadable, or a symlink swapped in
            raise HTTPError(404) from None
        try:
            return self._answer(file, _regular_stat(file.fileno()), method, headers)
        except BaseException:
            file.close()
            raise

    def _answer(self, file: object, info: os.stat_result, method: str,
                headers: dict[str, str | None]) -> Response:
        etag = entity_tag(info)
        validators = [("ETag", etag), ("Last-Modified", http_date(info.st_mtime))]
        if is_not_modified(headers, etag, info.st_mtime):
            _close(file)
            return Response(status=304, headers=validators)
        byte_range = None
        if method == "GET" and if_range_holds(headers.get("If-Range"), etag, info.st_mtime):
            try:
                byte_range = parse_range(headers.get("Range"), info.st_size)
            except Unsatisfiable:
                _close(file)
                raise HTTPError(416, headers=[("Content-Range", f"bytes */{info.st_size}")]
                                ) from None
        head = validators + [("Accept-Ranges", "bytes"), ("Content-Type", BINARY)]
        start, length, status = 0, info.st_size, 200
        if byte_range is not None:
            start, length, status = byte_range.start, byte_range.length, 206
            head.append(("Content-Range", byte_range.content_range))
        head.append(("Content-Length", str(length)))
        body = b"" if file is None else FileBody(file, start, length, BLOCK_SIZE)  # type: ignore[arg-type]
        return Response(body, status, head)

    # Writing.

    def save(self, name: str, body: Iterable[bytes], *, create_only: bool = False) -> Saved:
        """Store ``body`` as ``name`` atomically. ``create_only``: 412 if it exists.
        Any failure while the body arrives leaves neither file nor temporary."""
        received = self.receive(name, body, create_only=create_only)
        try:
            with disk_errors():
                return self.commit(received, create_only=create_only)
        finally:
            self.discard(received)

    def receive(self, name: str, body: Iterable[bytes], *,
                create_only: bool = False) -> Received:
        """Stream ``body`` into a temporary file for ``name``, checking the name
        first; commit() makes it visible, discard() drops it. A failure while
        the body arrives leaves no temporary."""
        target = self._writable_path(name)
        if create_only and os.path.lexists(target):
            raise HTTPError(412, "the file already exists")
        with disk_errors():
            temporary, size = self._receive(body)
        return Received(name, target, temporary, size)

    def commit(self, received: Received, *, create_only: bool = False) -> Saved:
        """Put a received body in place atomically (os.replace, or os.link for
        ``create_only``); discard() it afterwards whatever happened."""
        with self.locks.hold(received.name):
            return self._commit(received.temporary, received.target, create_only)

    @staticmethod
    def discard(received: Received) -> None:
        """Remove a received body's temporary file, if it is still there."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(received.temporary)

    def _writable_path(self, name: str) -> str:
        """Where ``name`` lives; a symlink there must resolve inside the directory."""
        self._inside(name)
        target = os.path.join(self.root, name)
        if os.path.isdir(target) and not os.path.islink(target):
            raise HTTPError(409, "a directory has that name")
        return target

    def _receive(self, body: Iterable[bytes]) -> tuple[str, int]:
        """Stream ``body`` into a new temporary file beside the target; its
        path and size."""
        descriptor, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=self.root)
        size = 0
        try:
            with os.fdopen(descriptor, "wb") as file:
                for chunk in body:
                    file.write(chunk)
                    size += len(chunk)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o644)
        except BaseException:
            os.unlink(temporary)
            raise
        return temporary, size

    @staticmethod
    def _commit(temporary: str, target: str, create_only: bool) -> Saved:
        if create_only:
            try:  # link() refuses an existing name atomically, even across processes
                os.link(temporary, target)
                return Saved(created=True)
            except FileExistsError:
                raise HTTPError(412, "the file already exists") from None
            except OSError:  # no hard links here: check, then rename, under the lock
                if os.path.lexists(target):
                    raise HTTPError(412, "the file already exists") from None
        created = not os.path.lexists(target)
        os.replace(temporary, target)
        return Saved(created=created)


    # Deleting and listing.

    def delete(self, name: str) -> None:
        """Remove ``name`` (a symlink itself, never what it points to); 404
        when there is no such file, 409 for a directory."""
        self._inside(name)
        target = os.path.join(self.root, name)
        with self.locks.hold(name), disk_errors():
            try:
                if stat.S_ISDIR(os.lstat(target).st_mode):
                    raise HTTPError(409, "a directory has that name")
                os.unlink(target)
            except FileNotFoundError:
                raise HTTPError(404) from None

    def listing(self, after: str | None = None, limit: int | None = None) -> Listing:
        """The files a client can read here, by name: regular files, and
        symlinks that resolve to one directly inside the directory (as
        serve() requires); never temporaries, directories, or names the
        store would refuse or that are not UTF-8.

        A page of them: those named after ``after``, at most ``limit``. Only
        the page's files are looked at closely (stat, symlinks resolved), so
        a request costs what its page costs, however many files there are;
        ``total`` counts the candidates by name and type alone."""
        try:
            scan = os.scandir(self.root)
        except PermissionError:
            raise HTTPError(403, "the directory cannot be listed") from None
        except OSError:  # removed, or replaced by a file, since the request began
            raise HTTPError(404) from None
        with scan:
            candidates = sorted((item for item in scan if _candidate(item)),
                                key=lambda item: item.name)
        names = [item.name for item in candidates]
        start = bisect.bisect_right(names, after) if after is not None else 0
        end = len(candidates) if limit is None else min(start + limit, len(candidates))
        entries = [entry for entry in map(self._entry, candidates[start:end])
                   if entry is not None]
        following = names[end - 1] if end < len(candidates) and end > start else None
        return Listing(entries, len(candidates), following)

    def _entry(self, item: os.DirEntry[str]) -> Entry | None:
        try:
            if item.is_symlink():
                resolved = os.path.realpath(item.path)
                if os.path.dirname(resolved) != self.root:
                    return None
                info = os.stat(resolved)
            else:
                info = item.stat(follow_symlinks=False)
        except OSError:  # gone meanwhile, or unreadable
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return Entry(item.name, info.st_size, info.st_mtime)


@dataclass(frozen=True)
class Listing:
    """One page of a directory's files: ``entries``, how many there are in
    all, and the name to list after for the next page (None: the last)."""

    entries: list[Entry]
    total: int
    next_after: str | None


def _candidate(item: os.DirEntry[str]) -> bool:
    """A name worth a closer look: listable, and a file or a symlink by its
    directory entry alone (no stat)."""
    try:
        kind_ok = item.is_symlink() or item.is_file(follow_symlinks=False)
    except OSError:
        return False
    return kind_ok and _listable(item.name)


def _listable(name: str) -> bool:
    """Whether a client could name this file: UTF-8, and a name check_name allows."""
    try:
        name.encode("utf-8")
        check_name(name)
    except (UnicodeEncodeError, HTTPError):
        return False
    return True


def _open_no_follow(path: str, flags: int) -> int:
    """Open without following a symlink swapped in after the path was resolved."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _regular_stat(target: str | int) -> os.stat_result:
    """stat of a regular file; 404 for anything else or nothing."""
    try:
        info = os.stat(target)
    except OSError:
        raise HTTPError(404) from None
    if not stat.S_ISREG(info.st_mode):
        raise HTTPError(404)
    return info


def _close(file: object) -> None:
    close = getattr(file, "close", None)
    if close is not None:
        close()
