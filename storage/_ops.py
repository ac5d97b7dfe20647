"""Whole-path operations behind the CLI: ``ls``, ``copy`` (policy-checked), ``tags``, ``rm``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fsspec.asyn import sync

from hpcai._tags import TagSet, as_mapping, to_text, union
from hpcai.errors import InvalidArgumentError, StorageExistsError, StorageNotFoundError

from . import _taint
from ._endpoints import SCHEME, Endpoint, parse_url
from ._filesystem import SERVER_COPY_LIMIT, EndpointFileSystem, endpoint_filesystem, normalize_tags
from ._tags_io import HIDDEN_PREFIX, LocalTagReader, write_local_tags

__all__ = ["CopyResult", "Entry", "copy", "ls", "rm", "tags", "untag"]

#: How many objects a copy moves at once.
COPY_CONCURRENCY = 8
#: Objects up to this size are copied whole (one read, one write); larger ones are streamed in
#: blocks of this size (the part size of S3 multipart uploads; larger for objects over ~70 GiB).
STREAM_BLOCK = 8 * 2**20
#: Copy buffers in flight at once, all files together (a streamed object holds about three blocks).
COPY_BUFFER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Entry:
    """One listed path: ``kind`` is file, directory, dataset (saved by hpcai), array or group."""

    url: str
    kind: str
    size: int | None
    tags: Mapping[str, frozenset[str]] | None = None


@dataclass(frozen=True)
class CopyResult:
    """What a copy did: files and bytes written, and the tag sets it checked."""

    files: int
    nbytes: int
    seconds: float
    tag_sets: tuple[Mapping[str, frozenset[str]], ...] = field(default_factory=tuple)
    #: Where the data went (an ``hpcai://`` URL or a local path): inside *dst* when that was a directory.
    destination: str = ""


def _fs(url: str, fname: str) -> tuple[Endpoint, str, EndpointFileSystem]:
    ep, rel = parse_url(url, fname=fname)
    return ep, rel, endpoint_filesystem(ep.name)


def _kind(fs: EndpointFileSystem, rel: str, info: Mapping[str, Any]) -> str:
    if info.get("type") != "directory":
        return "file"
    node = sync(fs.loop, fs._node_meta, rel)
    if not node.is_node:
        return "directory"
    if node.kind == "array":
        return "array"
    return "dataset" if node.head is not None else "group"


def ls(url: str, *, with_tags: bool = False, callback: Any = None) -> list[Entry]:
    """List ``hpcai://<endpoint>/<path>`` (the endpoint root with no path).

    *callback* (an ``fsspec.callbacks.Callback``) counts the entries as they are examined.

    >>> import hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> hpcai.storage.filesystem("scratch").pipe_file("a.txt", b"x")
    >>> [e.url for e in ls("hpcai://scratch")]
    ['hpcai://scratch/a.txt']
    """
    ep, rel, fs = _fs(url, "hpcai ls")
    info = fs.info(rel)
    entries = fs.ls(rel, detail=True) if info.get("type") == "directory" else [info]
    out = []
    if callback is not None:
        callback.set_size(len(entries))
    for e in sorted(entries, key=lambda e: str(e["name"])):
        name = str(e["name"])
        kind = _kind(fs, name, e)
        t = as_mapping(fs.get_tags(name)) if with_tags else None
        size = None if e.get("type") == "directory" else int(e.get("size") or 0)
        out.append(Entry(ep.url_for(name), kind, size, t))
        if callback is not None:
            callback.relative_update(1)
    return out


def tags(url: str) -> MappingProxyType[str, frozenset[str]]:
    """The residency tags stored with a file, a dataset or a zarr node.

    >>> import hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> hpcai.storage.filesystem("scratch", tags={"origin": "DE"}).pipe_file("a.txt", b"x")
    >>> dict(tags("hpcai://scratch/a.txt"))
    {'origin': frozenset({'DE'})}
    """
    _, rel, fs = _fs(url, "hpcai tags")
    return as_mapping(fs.get_tags(rel))


def untag(url: str, key: str, *, reason: str) -> MappingProxyType[str, frozenset[str]]:
    """Remove the tag *key* from stored data; *reason* goes to the audit log first. Returns the tags left.

    The only way stored tags shrink (writes never drop them: see docs/storage.md). For a
    file, its own stored tags lose *key*; for a directory, a zarr node or a dataset, every
    object under it (chunks, ``zarr.json`` content and stored tags alike). A tag that comes
    from an enclosing zarr node is that node's to drop: the error names it. If the audit
    record cannot be written, nothing is untagged.

    >>> import hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> hpcai.storage.filesystem("scratch", tags={"origin": "DE"}).pipe_file("a.txt", b"x")
    >>> dict(untag("hpcai://scratch/a.txt", "origin", reason="public data (ticket 7)"))  # doctest: +SKIP
    {}
    """
    fname = "hpcai untag"
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgumentError(
            f"{fname}: a reason is required and is recorded in the audit log, e.g. "
            "untag(url, \"classification\", reason=\"anonymised by job 42\") or hpcai untag URL KEY --reason TEXT"
        )
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"{fname}: expected a tag key such as 'classification', got {key!r}")
    ep, rel, fs = _fs(url, fname)
    return sync(fs.loop, _untag, fs, ep, rel, key, reason)  # type: ignore[no-any-return]


async def _untag(fs: EndpointFileSystem, ep: Endpoint, rel: str, key: str, reason: str) -> MappingProxyType[str, frozenset[str]]:
    import json

    from hpcai import audit, residency
    from hpcai.errors import StorageError

    fname = "hpcai untag"
    url = ep.url_for(rel)
    before = as_mapping(await fs._get_tags(rel))
    if key not in before:
        have = to_text(before) or "none"
        raise InvalidArgumentError(f"{fname}: {url} has no tag {key!r} (its tags: {have})")
    info = await fs._info(rel)
    is_dir = info.get("type") == "directory"
    parts = rel.split("/") if rel else []
    for i in range(len(parts) - 1, -1, -1):  # the zarr nodes above rel
        d = "/".join(parts[:i])
        n = await fs._node_meta(d, fresh=True)
        if n.is_node and key in as_mapping(n.tags):
            holder = ep.url_for(d)
            raise InvalidArgumentError(
                f"{fname}: the tag {key!r} of {url} comes from the enclosing zarr node {holder}, which governs "
                f"everything under it; untag that node instead (hpcai untag {holder} {key} --reason ...)"
            )
    if is_dir:
        found = await fs._find(rel, detail=True)
        files = list(found)
        nbytes = sum(int(v.get("size") or 0) for v in found.values())
    else:
        files = [rel]
        nbytes = int(info.get("size") or 0)
    audit.append(
        {
            "operation": "untag",
            "op": "untag",
            "tags": {k: sorted(v) for k, v in before.items()},
            "removed": {key: sorted(before[key])},
            "bytes": nbytes,
            "files": len(files),
            "source": ep.name,
            "destination": ep.name,
            "dataset": url,
            "decision": "allow",
            "effect": None,
            "rule": None,
            "reason": reason,
            "policy": residency.current_policy().source,
        }
    )
    backend = fs._s.backend
    sem = asyncio.Semaphore(COPY_CONCURRENCY)

    async def one(f: str) -> None:
        async with sem:
            full = fs._full(f, fname)
            own = await fs._own_tags(f)
            left = frozenset(p for p in own or () if p[0] != key) or None
            if f.rsplit("/", 1)[-1] == "zarr.json":
                raw = await fs._read_internal(f)
                try:
                    meta = json.loads(raw)
                except ValueError:
                    meta = None
                h = (meta.get("attributes") or {}).get("hpcai") if isinstance(meta, dict) else None
                if isinstance(h, dict) and isinstance(h.get("tags"), dict) and key in h["tags"]:
                    del h["tags"][key]
                    await fs._retry(fname, f, backend.put, full, json.dumps(meta, indent=2).encode(), left)
                    return
            if own is not None and left != own:
                await fs._retry(fname, f, backend.retag, full, left)

    await asyncio.gather(*(one(f) for f in files))
    fs._forget_nodes(rel if is_dir else rel.rpartition("/")[0])
    after = as_mapping(await fs._get_tags(rel))
    if key in after:
        raise StorageError(
            f"{fname}: {url} still carries {key}={'|'.join(sorted(after[key]))} after the untag (recorded in the "
            "audit log): something wrote it again meanwhile; look at the audit log and retry"
        )
    return after


def rm(url: str, *, recursive: bool = False, callback: Any = None) -> int:
    """Remove a file, or with ``recursive=True`` a directory or dataset; returns the files removed.

    A dataset's commit pointer goes first, so readers never find a half-removed dataset.
    *callback* (an ``fsspec.callbacks.Callback``) counts the files as they are removed.
    """
    ep, rel, fs = _fs(url, "hpcai rm")
    if not rel:
        raise InvalidArgumentError(f"hpcai rm: refusing to remove the root of endpoint {ep.name!r}; name a path inside it")
    info = fs.info(rel)
    if info.get("type") == "directory":
        if not recursive:
            raise InvalidArgumentError(f"hpcai rm: {url} is a directory; pass recursive=True (hpcai rm -r) to remove it")
        files = fs.find(rel)
        if callback is not None:
            callback.set_size(len(files))
        if f"{rel}/zarr.json" in files:
            fs.rm_file(f"{rel}/zarr.json")
            if callback is not None:
                callback.relative_update(1)
        if callback is not None:  # file by file, so that progress can be shown
            rest = [f for f in files if f != f"{rel}/zarr.json"]
            sync(fs.loop, _rm_each, fs, rest, callback)
        fs.rm(rel, recursive=True)
        return len(files)
    if callback is not None:
        callback.set_size(1)
    fs.rm_file(rel)
    if callback is not None:
        callback.relative_update(1)
    return 1


async def _rm_each(fs: EndpointFileSystem, files: list[str], callback: Any) -> None:
    sem = asyncio.Semaphore(COPY_CONCURRENCY * 2)

    async def one(f: str) -> None:
        async with sem:
            await fs._rm_file(f)
            callback.relative_update(1)

    await asyncio.gather(*(one(f) for f in files))


# --------------------------------------------------------------------------------------------
# copy
# --------------------------------------------------------------------------------------------
class _Local:
    """A plain local path as a copy source or destination (outside every endpoint)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path[len("file://"):] if path.startswith("file://") else path)


def _side(url: str, fname: str) -> tuple[Endpoint, str] | _Local:
    if url.startswith(SCHEME):
        return parse_url(url, fname=fname)
    if "://" in url and not url.startswith("file://"):
        parse_url(url, fname=fname)  # raises the explanatory error
    return _Local(url)


def _order(files: list[str]) -> list[str]:
    """Data first, then zarr metadata deepest first: a dataset's pointer is written last."""

    def key(p: str) -> tuple[int, int, str]:
        meta = p.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zgroup", ".zattrs")
        return (1 if meta else 0, -p.count("/") if meta else 0, p)

    return sorted(files, key=key)


def _is_meta(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def _as_callback(callback: Any, progress: Callable[[int, int], None] | None) -> Any:
    """An fsspec ``Callback`` (``set_size``/``relative_update``), from either argument form."""
    from fsspec.callbacks import Callback, NoOpCallback

    if callback is not None and progress is not None:
        raise InvalidArgumentError("hpcai cp: pass callback= (an fsspec Callback) or progress=, not both")
    if callback is not None:
        if not (callable(getattr(callback, "set_size", None)) and callable(getattr(callback, "relative_update", None))):
            raise InvalidArgumentError(
                f"hpcai cp: callback= expects an fsspec.callbacks.Callback (set_size, relative_update), "
                f"got {type(callback).__name__}"
            )
        return callback
    if progress is None:
        return NoOpCallback()

    report: Callable[[int, int], None] = progress

    class _Progress(Callback):  # type: ignore[misc]
        def call(self, *args: Any, **kwargs: Any) -> None:
            report(int(self.value), int(self.size or 0))

    return _Progress()


class _Interrupted(Exception):
    """Raised inside a streaming transfer when the copy was interrupted (Ctrl-C)."""


def copy(
    src: str,
    dst: str,
    *,
    tags: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    callback: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> CopyResult:
    """Copy a file, directory or dataset; every tag set is checked against the destination first.

    *src* and *dst* are ``hpcai://`` URLs (or local paths: uploads carry *tags*, downloads
    are a ``compute`` decision for this host). If any part of the source may not go to the
    destination, :class:`~hpcai.errors.ResidencyError` is raised before anything is written.

    The destination follows POSIX ``cp``: an existing directory (or a URL ending in ``/``,
    or an endpoint's root) receives the source *inside* it, under the source's name;
    an existing file, or a file inside the copied tree that already exists, is replaced
    only with ``overwrite=True`` (all conflicts are found before anything is written).

    Memory stays bounded whatever the size: objects up to :data:`STREAM_BLOCK` move whole,
    larger ones are streamed block by block (multipart uploads on S3), at most
    :data:`COPY_CONCURRENCY` files and :data:`COPY_BUFFER_BYTES` of buffers at once; a copy
    within one endpoint is server-side. Each file appears whole or not at all: an
    interrupted copy (an exception, Ctrl-C) leaves no partial file, temporary file or
    pending multipart upload behind. Progress goes to *callback*, an
    ``fsspec.callbacks.Callback`` (``set_size(total_bytes)``, then ``relative_update(n)`` per
    block), or to ``progress(done_bytes, total_bytes)``.

    >>> import hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"a": {"url": "file://" + tempfile.mkdtemp()},
    ...                                          "b": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> hpcai.storage.filesystem("a").pipe_file("x.bin", b"123")
    >>> copy("hpcai://a/x.bin", "hpcai://b/y.bin").nbytes
    3
    """
    fname = "hpcai cp"
    cb = _as_callback(callback, progress)
    s = _side(src, fname)
    d = _side(dst, fname)
    extra = normalize_tags(fname, tags)
    if isinstance(s, _Local) and isinstance(d, _Local):
        raise InvalidArgumentError(f"{fname}: at least one of {src!r} and {dst!r} must be an hpcai://<endpoint>/<path> URL")
    if isinstance(s, _Local) and not os.path.exists(s.path):
        raise StorageNotFoundError(f"{fname}: local path {s.path} does not exist")
    if not isinstance(s, _Local) and not s[1]:
        raise InvalidArgumentError(f"{fname}: {src} is the root of endpoint {s[0].name!r}; name a path inside it")
    t0 = time.perf_counter()
    src_fs = None if isinstance(s, _Local) else endpoint_filesystem(s[0].name)
    loop = (src_fs or endpoint_filesystem(d[0].name)).loop  # type: ignore[index]
    cancel = threading.Event()
    failures: list[BaseException] = []  # raised by the callback: raised again here
    fut = asyncio.run_coroutine_threadsafe(_copy(s, d, dst, src_fs, extra, overwrite, cb, fname, cancel, failures), loop)
    try:
        files, done, groups, where = fut.result()
    except _Interrupted:
        raise failures[0] if failures else InvalidArgumentError(f"{fname}: interrupted") from None
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not fut.done():
            # Ctrl-C: stop every transfer at its next block; each discards its partial file
            # (temporary file, multipart upload) before the interrupt goes on.
            cancel.set()
            try:
                fut.result(timeout=60)
            except BaseException:
                pass
        raise
    dest = where.path if isinstance(where, _Local) else where[0].url_for(where[1])
    return CopyResult(files, done, time.perf_counter() - t0, tuple(as_mapping(t) for t in groups), dest)


async def _copy(
    s: tuple[Endpoint, str] | _Local,
    d: tuple[Endpoint, str] | _Local,
    dst: str,
    src_fs: EndpointFileSystem | None,
    extra: TagSet | None,
    overwrite: bool,
    cb: Any,
    fname: str,
    cancel: threading.Event,
    failures: list[BaseException],
) -> tuple[int, int, dict[TagSet | None, int], tuple[Endpoint, str] | _Local]:
    files, total, groups, is_dir = await _plan(s, src_fs, extra, fname)
    d = await _destination(s, d, dst, is_dir, fname)
    decided = await _check(s, d, groups, fname)
    await _conflicts(d, files, is_dir, overwrite, fname)
    done = await _transfer(s, d, files, total, cb, fname, decided, cancel, failures)
    return len(files), done, groups, d


async def _plan(
    s: tuple[Endpoint, str] | _Local, src_fs: EndpointFileSystem | None, extra: TagSet | None, fname: str
) -> tuple[list[tuple[str, int, TagSet | None]], int, dict[TagSet | None, int], bool]:
    files: list[tuple[str, int, TagSet | None]] = []
    if isinstance(s, _Local):
        # An upload carries the tags recorded inside the data (zarr attributes, and the xattrs or
        # sidecars that downloads leave) and those this process read raw (the read-taint ledger).
        reader = LocalTagReader()
        extra = union(extra, _taint.current())

        def walk() -> list[tuple[str, int, TagSet | None]]:
            out = []
            if os.path.isdir(s.path):
                for dirpath, _, names in os.walk(s.path):
                    for n in names:
                        if n.startswith(HIDDEN_PREFIX):
                            continue
                        p = os.path.join(dirpath, n)
                        out.append((os.path.relpath(p, s.path).replace(os.sep, "/"), os.path.getsize(p),
                                    union(reader.tags(p), extra)))
            else:
                out.append(("", os.path.getsize(s.path), union(reader.tags(s.path), extra)))
            return out

        files = await asyncio.to_thread(walk)
        is_dir = os.path.isdir(s.path)
    else:
        assert src_fs is not None
        rel = s[1]
        info = await src_fs._info(rel)
        is_dir = info.get("type") == "directory"
        if is_dir:
            found = await src_fs._find(rel, detail=True)
            sem = asyncio.Semaphore(COPY_CONCURRENCY)

            async def one(name: str) -> TagSet | None:
                async with sem:
                    return (await src_fs._data_tags(name))[1]

            names = list(found)
            for name, t in zip(names, await asyncio.gather(*(one(n) for n in names))):
                sub = name[len(rel) + 1:] if rel else name
                files.append((sub, int(found[name].get("size") or 0), union(t, extra)))
        else:
            _, t = await src_fs._data_tags(rel)
            files.append(("", int(info.get("size") or 0), union(t, extra)))
    groups: dict[TagSet | None, int] = {}
    for _, size, t in files:
        groups[t] = groups.get(t, 0) + size
    return files, sum(f[1] for f in files), groups, is_dir


async def _check(
    s: tuple[Endpoint, str] | _Local, d: tuple[Endpoint, str] | _Local, groups: dict[TagSet | None, int], fname: str
) -> dict[TagSet | None, Any]:
    """Every tag set is decided before any byte moves; the first denial is audited and raised."""
    from hpcai import residency
    from hpcai._device import resolve_device

    src_name = "local" if isinstance(s, _Local) else s[0].name
    dataset = s.path if isinstance(s, _Local) else s[0].url_for(s[1])
    if isinstance(d, _Local):
        host = resolve_device("numpy:cpu")
        op, attrs, dest = "compute", host.spec.attributes, f"{host.spec.name} (local path {d.path})"
    else:
        op, attrs, dest = "store", d[0].attributes, d[0].name
    decisions = [(t, n, residency.decide(op, t, attrs, destination=dest)) for t, n in groups.items()]
    for t, n, dec in decisions:
        if not dec.allowed:
            residency.enforce(op, t, attrs, destination=dest, source=src_name, nbytes=n, dataset=dataset, operation="copy")
    return {
        t: residency.enforce(op, t, attrs, destination=dest, source=src_name, nbytes=n, dataset=dataset, operation="copy")
        for t, n, _ in decisions
    }


def _basename(s: tuple[Endpoint, str] | _Local) -> str:
    return os.path.basename(s.path.rstrip(os.sep)) if isinstance(s, _Local) else s[1].rstrip("/").rsplit("/", 1)[-1]


async def _destination(
    s: tuple[Endpoint, str] | _Local, d: tuple[Endpoint, str] | _Local, dst: str, is_dir: bool, fname: str
) -> tuple[Endpoint, str] | _Local:
    """POSIX ``cp``: an existing directory destination (or one written with a trailing ``/``,
    or an endpoint's root) means "into it", under the source's own name."""
    name = _basename(s)
    if isinstance(d, _Local):
        into = os.path.isdir(d.path) or dst.endswith(("/", os.sep))
        if into:
            return _Local(os.path.join(d.path, name))
        if not os.path.isdir(os.path.dirname(d.path) or "."):
            raise StorageNotFoundError(f"{fname}: the directory {os.path.dirname(d.path)} of {d.path} does not exist")
        return d
    ep, rel = d
    if not rel:
        return ep, name
    fs = endpoint_filesystem(ep.name)
    into = dst.endswith("/")
    if not into and await fs._exists(rel) and (await fs._info(rel)).get("type") == "directory":
        # a saved dataset or zarr node is one object (replaced with overwrite), not a folder to copy into
        into = not (await fs._node_meta(rel)).is_node
    return (ep, f"{rel}/{name}") if into else d


async def _conflicts(
    d: tuple[Endpoint, str] | _Local, files: list[tuple[str, int, TagSet | None]], is_dir: bool, overwrite: bool, fname: str
) -> None:
    """Find every destination file that exists (and directories where files must go) before writing."""
    if isinstance(d, _Local):
        def scan() -> tuple[list[str], list[str]]:
            exist, blocked = [], []
            for sub, _, _ in files:
                p = os.path.join(d.path, sub) if sub else d.path
                if os.path.isdir(p):
                    blocked.append(p)
                elif os.path.lexists(p):
                    exist.append(p)
            if is_dir and os.path.lexists(d.path) and not os.path.isdir(d.path):
                blocked.append(d.path)
            return exist, blocked

        exist, blocked = await asyncio.to_thread(scan)
        shown = exist
    else:
        fs = endpoint_filesystem(d[0].name)
        rel = d[1]
        exist, blocked = [], []
        if await fs._exists(rel):
            info = await fs._info(rel)
            if info.get("type") == "directory":
                if not is_dir:
                    blocked.append(rel)
                else:
                    have = set(await fs._find(rel))
                    exist = [f"{rel}/{sub}" for sub, _, _ in files if f"{rel}/{sub}" in have]
            elif is_dir:
                blocked.append(rel)
            else:
                exist = [rel]
        shown = [fs.endpoint.url_for(p) for p in exist]
        blocked = [fs.endpoint.url_for(p) for p in blocked]
    if blocked:
        raise InvalidArgumentError(
            f"{fname}: cannot copy onto {blocked[0]}: "
            + ("a directory is in the way of a file" if not is_dir else "a file is in the way of a directory")
            + "; remove it first or choose another destination"
        )
    if exist and not overwrite:
        more = f" (and {len(exist) - 1} more)" if len(exist) > 1 else ""
        raise StorageExistsError(
            f"{fname}: {shown[0]}{more} exists; pass overwrite=True (--overwrite) to replace "
            f"{'it' if len(exist) == 1 else 'them'}, or remove it first"
        )


class _ByteBudget:
    """How many bytes of copy buffers may be in flight at once (all files together)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = max(1, min(n, self.limit))
        async with self.cond:
            await self.cond.wait_for(lambda: self.used + n <= self.limit)
            self.used += n
        return n

    async def release(self, n: int) -> None:
        async with self.cond:
            self.used -= n
            self.cond.notify_all()


def _block_for(size: int) -> int:
    """The streaming block: :data:`STREAM_BLOCK`, larger for objects that would need over 9000 parts."""
    need = -(-size // 9000)
    return max(STREAM_BLOCK, -(-need // 2**20) * 2**20)


async def _transfer(
    s: tuple[Endpoint, str] | _Local,
    d: tuple[Endpoint, str] | _Local,
    files: list[tuple[str, int, TagSet | None]],
    total: int,
    cb: Any,
    fname: str,
    decided: dict[TagSet | None, Any],
    cancel: threading.Event,
    failures: list[BaseException],
) -> int:
    src_fs = None if isinstance(s, _Local) else endpoint_filesystem(s[0].name)
    dst_fs = None if isinstance(d, _Local) else endpoint_filesystem(d[0].name)
    dst_rel = d.path if isinstance(d, _Local) else d[1]
    same = src_fs is not None and dst_fs is not None and src_fs.endpoint.name == dst_fs.endpoint.name
    sem = asyncio.Semaphore(COPY_CONCURRENCY)
    budget = _ByteBudget(COPY_BUFFER_BYTES)
    lock = threading.Lock()
    done = 0

    def guarded(fn: Any, *args: Any) -> None:
        # The caller's callback runs here, in the event loop or a worker thread: whatever it
        # raises (KeyboardInterrupt included, which would stop the loop) stops the copy and is
        # raised again in the caller's thread once every transfer has cleaned up.
        try:
            fn(*args)
        except BaseException as exc:
            failures.append(exc)
            cancel.set()
            raise _Interrupted from None

    def report(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            guarded(cb.relative_update, n)

    guarded(cb.set_size, total)

    async def one(sub: str, size: int, t: TagSet | None) -> None:
        if cancel.is_set():
            raise _Interrupted
        source = (os.path.join(s.path, sub) if sub else s.path) if isinstance(s, _Local) else (f"{s[1]}/{sub}" if sub else s[1])
        target = os.path.join(dst_rel, sub) if isinstance(d, _Local) and sub else (f"{dst_rel}/{sub}" if sub else dst_rel)
        async with sem:
            if same and size <= SERVER_COPY_LIMIT:  # server-side: no byte passes through this process
                assert dst_fs is not None
                await dst_fs._granted(target, t, write=True, decision=decided[t])._cp_file(source, target)
                report(size)
                return
            block = _block_for(size)
            if size <= block:
                n = await budget.acquire(2 * size)
                try:
                    if isinstance(s, _Local):
                        data = await asyncio.to_thread(_read_local, source)
                    else:
                        assert src_fs is not None
                        data = await src_fs._granted(source, t, read=True, decision=decided[t])._cat_file(source)
                    if dst_fs is not None:
                        await dst_fs._granted(target, t, write=True, decision=decided[t])._pipe_file(target, data)
                    else:
                        await asyncio.to_thread(_write_local, target, data, t)
                    report(len(data))
                finally:
                    await budget.release(n)
                return
            n = await budget.acquire(3 * block)
            try:
                await asyncio.to_thread(_stream, s, d, source, target, t, decided[t], block, report, cancel)
            finally:
                await budget.release(n)

    ordered = _order([f[0] for f in files])
    by_name = {f[0]: f for f in files}
    data_files = [by_name[n] for n in ordered if not _is_meta(n)]
    meta_files = [by_name[n] for n in ordered if _is_meta(n)]
    results = await asyncio.gather(*(one(*f) for f in data_files), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:  # every transfer has finished (and cleaned up) before the first error is raised
        raise next((e for e in errors if not isinstance(e, _Interrupted)), errors[0])
    for f in meta_files:  # in order: deepest first, the dataset pointer last
        await one(*f)
    return done


def _stream(
    s: tuple[Endpoint, str] | _Local,
    d: tuple[Endpoint, str] | _Local,
    source: str,
    target: str,
    t: TagSet | None,
    decision: Any,
    block: int,
    report: Callable[[int], None],
    cancel: threading.Event,
) -> None:
    """Copy one large object block by block (in a worker thread): bounded memory, whole or nothing."""
    if isinstance(s, _Local):
        fin: Any = open(source, "rb")
    else:
        view = endpoint_filesystem(s[0].name)._granted(source, t, read=True, decision=decision)
        fin = view.open(source, "rb", block_size=block, cache_type="none")
    with fin:
        if isinstance(d, _Local):
            fout: Any = _LocalWriter(target, t)
        else:
            fout = endpoint_filesystem(d[0].name)._granted(target, t, write=True, decision=decision).open(
                target, "wb", block_size=block
            )
        with fout:
            while True:
                if cancel.is_set():
                    raise _Interrupted
                chunk = fin.read(block)
                if not chunk:
                    break
                fout.write(chunk)
                report(len(chunk))


class _LocalWriter:
    """A downloaded file written through a temporary file: renamed into place, with its tags, on a
    clean exit; removed on an exception."""

    def __init__(self, path: str, tags: TagSet | None) -> None:
        self.path = path
        self.tags = tags
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        self.tmp = os.path.join(directory, f"{HIDDEN_PREFIX}tmp-{uuid.uuid4().hex}")
        self.f = open(self.tmp, "wb")

    def write(self, b: bytes) -> int:
        return self.f.write(b)

    def __enter__(self) -> _LocalWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.f.close()
            if exc_type is None:
                tagged = write_local_tags(self.tmp, self.tags, sidecar=False)
                os.replace(self.tmp, self.path)
                if self.tags and not tagged:  # no user xattrs on this disk: a sidecar
                    write_local_tags(self.path, self.tags)
                return
        except BaseException:
            _unlink(self.tmp)
            raise
        _unlink(self.tmp)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _read_local(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write_local(path: str, data: bytes, tags: TagSet | None = None) -> None:
    """A downloaded file, written whole, with its tags recorded beside it (xattrs or a sidecar)."""
    with _LocalWriter(path, tags) as f:
        f.write(data)
