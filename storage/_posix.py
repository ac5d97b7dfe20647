"""POSIX endpoints confined to their root without a time-of-check/time-of-use window.

Every path operation on a POSIX endpoint starts from a descriptor of the endpoint root
and opens one component at a time *relative to the descriptor of its parent*, with
``O_NOFOLLOW`` (:meth:`Beneath.parent`). A component that is a symbolic link is never
followed by the kernel: its target is read (``readlink`` relative to the parent's
descriptor) and resolved here, component by component, from the root or from the
link's directory; ``..`` pops a descriptor and may not pop the root. A target that
leaves the root raises :class:`~hpcai.errors.PathEscapeError`.

The operation itself then acts on the last component relative to the descriptor of
its directory (``openat``, ``unlinkat``, ``mkdirat``, ``renameat``, ``fstatat``,
``shutil.rmtree(dir_fd=...)``, ``os.fwalk(dir_fd=...)``). A directory that is swapped
for a symbolic link after the walk cannot redirect the operation: the descriptor names
the directory that was checked, whatever its path points at now; and a swap during the
walk is met by ``O_NOFOLLOW`` (the open fails with ``ELOOP`` and the component is
resolved again). There is no cache of checked paths.

:class:`ConfinedFileSystem` is the synchronous fsspec filesystem built on it, which the
endpoint filesystem wraps for POSIX endpoints instead of fsspec's ``LocalFileSystem``.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fsspec.spec import AbstractFileSystem

from hpcai.errors import PathEscapeError

__all__ = ["Beneath", "ConfinedFileSystem"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: ``O_NONBLOCK``: a FIFO planted in an endpoint cannot block an open (no effect on files).
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
#: The most symbolic links one resolution follows (as the kernel's MAXSYMLINKS).
MAX_LINKS = 40
#: Whether ``/proc/self/fd/<n>`` names the object an open descriptor refers to (Linux).
PROC_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Beneath:
    """Race-free resolution of paths under one directory (the endpoint root).

    *root* is the configured directory; *label* names the endpoint in errors.
    """

    def __init__(self, root: str, label: str, url_for: Any) -> None:
        self.root = root.rstrip("/") or "/"
        self.real_root = os.path.realpath(self.root)
        self.label = label
        self.url_for = url_for

    # -- paths --------------------------------------------------------------------------------
    def rel(self, full: str) -> str:
        """The path of *full* (``<root>/<rel>``) relative to the root."""
        root = self.root
        full = full.rstrip("/") or "/"
        if full == root:
            return ""
        prefix = root if root.endswith("/") else root + "/"
        if not full.startswith(prefix):
            raise PathEscapeError(f"{self.label}: {full!r} is not under the endpoint root {root}")
        return full[len(prefix):]

    def _escape(self, rel: str, fname: str, target: str) -> PathEscapeError:
        return PathEscapeError(
            f"{fname}: {self.url_for(rel)} resolves to {target}, outside the root of "
            f"endpoint {self.label!r} ({self.real_root}); symbolic links may not leave an endpoint"
        )

    def _absolute_target(self, target: str) -> list[str] | None:
        """The components of an absolute link target below the root, or ``None`` if it is elsewhere."""
        parts = [p for p in target.split("/") if p not in ("", ".")]
        for base in {self.real_root, self.root}:
            bparts = [p for p in base.split("/") if p]
            if parts[: len(bparts)] == bparts:
                return parts[len(bparts):]
        return None

    def root_fd(self) -> int:
        """A new descriptor of the endpoint root (the root itself is configuration, trusted)."""
        return os.open(self.real_root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))

    # -- the walk -----------------------------------------------------------------------------
    def _resolve(self, rel: str, fname: str, *, follow_last: bool, create: bool) -> tuple[int, str]:
        """``(descriptor of the directory holding the last component, its name)``.

        Links among the directories (and the last component when *follow_last*) are
        resolved here; the returned name is never a link that was meant to be followed
        at the time of the walk (the caller opens it with ``O_NOFOLLOW``, so a link
        appearing later fails with ``ELOOP``). ``rel == ""`` returns ``(root_fd, ".")``.
        *create* makes missing directories (``mkdirat``).
        """
        queue: deque[str] = deque(p for p in rel.split("/") if p not in ("", "."))
        stack = [self.root_fd()]
        links = 0
        try:
            if not queue:
                fd = stack.pop()
                return fd, "."
            while True:
                comp = queue.popleft()
                if comp == "..":
                    if len(stack) == 1:
                        raise self._escape(rel, fname, "a directory above the root")
                    os.close(stack.pop())
                    if not queue:
                        return self._finish_dotdot(stack)
                    continue
                cur = stack[-1]
                last = not queue
                try:
                    st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        return stack.pop(), comp
                    if not create:
                        raise FileNotFoundError(errno.ENOENT, "No such file or directory", self.url_for(rel)) from None
                    try:
                        os.mkdir(comp, 0o777, dir_fd=cur)
                    except FileExistsError:
                        pass
                    queue.appendleft(comp)  # open it in the next round (it may be a link by then)
                    continue
                if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                    links += 1
                    if links > MAX_LINKS:
                        raise OSError(errno.ELOOP, "Too many levels of symbolic links", self.url_for(rel))
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        below = self._absolute_target(target)
                        if below is None:
                            raise self._escape(rel, fname, target)
                        _close_all(stack[1:])
                        del stack[1:]
                        queue.extendleft(reversed(below))
                    else:
                        queue.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    if not queue:  # a link to the root itself
                        return self._finish_dotdot(stack)
                    continue
                if last:
                    return stack.pop(), comp
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", self.url_for(rel))
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                        queue.appendleft(comp)  # it changed since the stat: resolve it again
                        links += 1
                        if links > MAX_LINKS:
                            raise
                        continue
                    raise
                stack.append(fd)
        finally:
            _close_all(stack)

    @staticmethod
    def _finish_dotdot(stack: list[int]) -> tuple[int, str]:
        """The walk ended on a directory descriptor: name it as ``(fd, ".")``."""
        fd = stack.pop()
        return fd, "."

    @contextmanager
    def parent(self, rel: str, fname: str, *, follow_last: bool = False, create: bool = False) -> Iterator[tuple[int, str]]:
        """``with b.parent(rel, fname) as (dfd, name)``: the confined directory of *rel* and the last name."""
        dfd, name = self._resolve(rel, fname, follow_last=follow_last, create=create)
        try:
            yield dfd, name
        finally:
            os.close(dfd)

    def open(self, rel: str, fname: str, flags: int = _READ_FLAGS) -> int:
        """A descriptor of *rel* (links inside the root followed), opened with ``O_NOFOLLOW``."""
        for _ in range(MAX_LINKS):
            dfd, name = self._resolve(rel, fname, follow_last=True, create=False)
            try:
                return os.open(name, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dfd)
            except OSError as exc:
                if exc.errno != errno.ELOOP:  # ELOOP: became a link since the walk; resolve again
                    raise
            finally:
                os.close(dfd)
        raise OSError(errno.ELOOP, "Too many levels of symbolic links", self.url_for(rel))

    def stat(self, rel: str, fname: str) -> os.stat_result:
        """``stat`` of *rel*, links inside the root followed."""
        with self.parent(rel, fname, follow_last=True) as (dfd, name):
            return os.stat(name, dir_fd=dfd, follow_symlinks=False)

    def makedirs(self, rel: str, fname: str, exist_ok: bool = True) -> None:
        """Create *rel* and its missing parents, each inside the root."""
        with self.parent(rel, fname, follow_last=True, create=True) as (dfd, name):
            if name == ".":
                if not exist_ok:
                    raise FileExistsError(errno.EEXIST, "File exists", self.url_for(rel))
                return
            try:
                os.mkdir(name, 0o777, dir_fd=dfd)
            except FileExistsError:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if not exist_ok or not stat.S_ISDIR(st.st_mode):
                    raise

    def proc_path(self, fd: int) -> str:
        """A path that reaches the object behind *fd* whatever happens to its names (Linux)."""
        return f"/proc/self/fd/{fd}"


def _info(name: str, st: os.stat_result) -> dict[str, Any]:
    if stat.S_ISDIR(st.st_mode):
        t = "directory"
    elif stat.S_ISREG(st.st_mode):
        t = "file"
    else:
        t = "other"
    return {
        "name": name,
        "size": st.st_size if t != "directory" else 0,
        "type": t,
        "created": st.st_ctime,
        "mtime": st.st_mtime,
        "islink": False,
        "mode": st.st_mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "ino": st.st_ino,
        "nlink": st.st_nlink,
    }


class ConfinedFileSystem(AbstractFileSystem):
    """fsspec's view of a POSIX endpoint, every call confined by :class:`Beneath`.

    Paths are full paths (``<root>/<rel>``, as the endpoint filesystem builds them).
    Writes go through the tag backend (:class:`~hpcai.storage._tags_io.LocalTagBackend`),
    which uses the same :class:`Beneath`; this class reads, lists and removes.
    """

    protocol = "hpcai-confined"
    root_marker = "/"
    cachable = False

    def __init__(self, beneath: Beneath, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.b = beneath

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("file://"):
            path = path[len("file://"):]
        return path.rstrip("/") or "/"

    def _r(self, path: str) -> str:
        return self.b.rel(self._strip_protocol(path))

    def _full(self, rel: str) -> str:
        return (self.b.root.rstrip("/") + "/" + rel) if rel else self.b.root

    # -- reading ------------------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        rel = self._r(path)
        return _info(self._full(rel), self.b.stat(rel, "info"))

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def _entry(self, rel: str, dfd: int, name: str) -> dict[str, Any] | None:
        """The info of directory entry *name* (in *dfd*, at *rel*); a link is resolved inside the root."""
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            try:
                st = self.b.stat(rel, "ls")
            except (PathEscapeError, OSError):
                return {**_info(self._full(rel), st), "type": "other", "size": 0, "islink": True}
            return {**_info(self._full(rel), st), "islink": True}
        return _info(self._full(rel), st)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        rel = self._r(path)
        fd = self.b.open(rel, "ls")
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):
                out = [_info(self._full(rel), st)]
            else:
                out = []
                for name in sorted(os.listdir(fd)):
                    e = self._entry(f"{rel}/{name}" if rel else name, fd, name)
                    if e is not None:
                        out.append(e)
        finally:
            os.close(fd)
        return out if detail else [e["name"] for e in out]

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any) -> Any:
        rel = self._r(path)
        out: dict[str, Any] = {}
        try:
            fd = self.b.open(rel, "find")
        except (FileNotFoundError, NotADirectoryError):
            return out if detail else []
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):
                out[self._full(rel)] = _info(self._full(rel), st)
                return out if detail else sorted(out)
            if withdirs and rel:
                out[self._full(rel)] = _info(self._full(rel), st)
            # fwalk never follows links and walks by descriptor: no swapped directory redirects it
            for dirpath, dirnames, filenames, dfd in os.fwalk(".", dir_fd=fd):
                sub = "" if dirpath == "." else dirpath[2:]
                depth = 0 if not sub else sub.count("/") + 1
                if maxdepth is not None and depth + 1 >= maxdepth:
                    dirnames_seen = list(dirnames)
                    dirnames[:] = []  # no deeper than maxdepth
                else:
                    dirnames_seen = list(dirnames)
                for n in [*filenames, *dirnames_seen]:
                    if maxdepth is not None and depth + 1 > maxdepth:
                        continue
                    r = "/".join(p for p in (rel, sub, n) if p)
                    e = self._entry(r, dfd, n)
                    if e is None:
                        continue
                    if e["type"] == "directory" and not withdirs:
                        continue
                    out[e["name"]] = e
        finally:
            os.close(fd)
        return out if detail else sorted(out)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        rel = self._r(path)
        fd = self.b.open(rel, "cat_file")
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            if start is not None:
                if start < 0:
                    size = os.fstat(f.fileno()).st_size
                    start = max(0, size + start)
                f.seek(start)
            else:
                start = 0
            if end is not None:
                if end < 0:
                    end = os.fstat(f.fileno()).st_size + end
                return f.read(max(0, end - start))
            return f.read()

    def get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        fd = self.b.open(self._r(rpath), "get_file")
        with os.fdopen(fd, "rb") as src, open(lpath, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        if mode != "rb":
            raise io.UnsupportedOperation(f"{path}: the confined filesystem opens files for reading only")
        fd = self.b.open(self._r(path), "open")
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        return os.fdopen(fd, "rb", buffering=block_size if isinstance(block_size, int) and block_size > 0 else -1)

    def created(self, path: str) -> Any:
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["created"], tz=datetime.UTC)

    def modified(self, path: str) -> Any:
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.UTC)

    # -- removing and directories -------------------------------------------------------------
    def rm_file(self, path: str, **kwargs: Any) -> None:
        rel = self._r(path)
        with self.b.parent(rel, "rm") as (dfd, name):
            if name == ".":
                raise PathEscapeError(f"rm: refusing to remove the root of endpoint {self.b.label!r}")
            os.unlink(name, dir_fd=dfd)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        for p in path if isinstance(path, (list, tuple)) else [path]:
            rel = self._r(p)
            with self.b.parent(rel, "rm") as (dfd, name):
                if name == ".":
                    raise PathEscapeError(f"rm: refusing to remove the root of endpoint {self.b.label!r}")
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=dfd)  # a link is removed, never followed
                elif recursive:
                    shutil.rmtree(name, dir_fd=dfd)  # descriptor-based, never follows links
                else:
                    os.rmdir(name, dir_fd=dfd)

    def rmdir(self, path: str) -> None:
        rel = self._r(path)
        with self.b.parent(rel, "rmdir") as (dfd, name):
            os.rmdir(name, dir_fd=dfd)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        rel = self._r(path)
        if create_parents:
            self.b.makedirs(rel, "mkdir", exist_ok=True)
            return
        with self.b.parent(rel, "mkdir", follow_last=False) as (dfd, name):
            os.mkdir(name, 0o777, dir_fd=dfd)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.b.makedirs(self._r(path), "makedirs", exist_ok=exist_ok)
