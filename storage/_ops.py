"""Whole-path operations behind the CLI: ``ls``, ``copy`` (policy-checked), ``tags``, ``rm``."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fsspec.asyn import sync

from hpcai._tags import TagSet, as_mapping, union
from hpcai.errors import InvalidArgumentError, StorageNotFoundError

from . import _taint
from ._endpoints import SCHEME, Endpoint, parse_url
from ._filesystem import EndpointFileSystem, endpoint_filesystem, normalize_tags
from ._tags_io import HIDDEN_PREFIX, LocalTagReader, write_local_tags

__all__ = ["CopyResult", "Entry", "copy", "ls", "rm", "tags", "untag"]

#: How many objects a copy moves at once.
COPY_CONCURRENCY = 8


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


def ls(url: str, *, with_tags: bool = False) -> list[Entry]:
    """List ``hpcai://<endpoint>/<path>`` (the endpoint root with no path).

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
    for e in sorted(entries, key=lambda e: str(e["name"])):
        name = str(e["name"])
        kind = _kind(fs, name, e)
        t = as_mapping(fs.get_tags(name)) if with_tags else None
        size = None if e.get("type") == "directory" else int(e.get("size") or 0)
        out.append(Entry(ep.url_for(name), kind, size, t))
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
        have = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in before.items()) or "none"
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


def rm(url: str, *, recursive: bool = False) -> int:
    """Remove a file, or with ``recursive=True`` a directory or dataset; returns the files removed.

    A dataset's commit pointer goes first, so readers never find a half-removed dataset.
    """
    ep, rel, fs = _fs(url, "hpcai rm")
    if not rel:
        raise InvalidArgumentError(f"hpcai rm: refusing to remove the root of endpoint {ep.name!r}; name a path inside it")
    info = fs.info(rel)
    if info.get("type") == "directory":
        if not recursive:
            raise InvalidArgumentError(f"hpcai rm: {url} is a directory; pass recursive=True (hpcai rm -r) to remove it")
        files = fs.find(rel)
        if f"{rel}/zarr.json" in files:
            fs.rm_file(f"{rel}/zarr.json")
        fs.rm(rel, recursive=True)
        return len(files)
    fs.rm_file(rel)
    return 1


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


def copy(
    src: str,
    dst: str,
    *,
    tags: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CopyResult:
    """Copy a file, directory or dataset; every tag set is checked against the destination first.

    *src* and *dst* are ``hpcai://`` URLs (or local paths: uploads carry *tags*, downloads
    are a ``compute`` decision for this host). If any part of the source may not go to the
    destination, :class:`~hpcai.errors.ResidencyError` is raised before anything is written.
    ``progress(done_bytes, total_bytes)`` is called as objects complete.

    >>> import hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"a": {"url": "file://" + tempfile.mkdtemp()},
    ...                                          "b": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> hpcai.storage.filesystem("a").pipe_file("x.bin", b"123")
    >>> copy("hpcai://a/x.bin", "hpcai://b/y.bin").nbytes
    3
    """
    fname = "hpcai cp"
    s = _side(src, fname)
    d = _side(dst, fname)
    extra = normalize_tags(fname, tags)
    if isinstance(s, _Local) and isinstance(d, _Local):
        raise InvalidArgumentError(f"{fname}: at least one of {src!r} and {dst!r} must be an hpcai://<endpoint>/<path> URL")
    if isinstance(s, _Local) and not os.path.exists(s.path):
        raise StorageNotFoundError(f"{fname}: local path {s.path} does not exist")
    t0 = time.perf_counter()
    src_fs = None if isinstance(s, _Local) else endpoint_filesystem(s[0].name)
    loop = (src_fs or endpoint_filesystem(d[0].name)).loop  # type: ignore[index]
    files, total, groups = sync(loop, _plan, s, src_fs, extra, fname)
    decided = sync(loop, _check, s, d, groups, fname)
    done = sync(loop, _transfer, s, d, files, total, overwrite, progress, fname, decided)
    return CopyResult(len(files), done, time.perf_counter() - t0, tuple(as_mapping(t) for t in groups))


async def _plan(
    s: tuple[Endpoint, str] | _Local, src_fs: EndpointFileSystem | None, extra: TagSet | None, fname: str
) -> tuple[list[tuple[str, int, TagSet | None]], int, dict[TagSet | None, int]]:
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
    else:
        assert src_fs is not None
        rel = s[1]
        info = await src_fs._info(rel)
        if info.get("type") == "directory":
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
    return files, sum(f[1] for f in files), groups


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


async def _transfer(
    s: tuple[Endpoint, str] | _Local,
    d: tuple[Endpoint, str] | _Local,
    files: list[tuple[str, int, TagSet | None]],
    total: int,
    overwrite: bool,
    progress: Callable[[int, int], None] | None,
    fname: str,
    decided: dict[TagSet | None, Any],
) -> int:
    src_fs = None if isinstance(s, _Local) else endpoint_filesystem(s[0].name)
    dst_fs = None if isinstance(d, _Local) else endpoint_filesystem(d[0].name)
    dst_rel = d.path if isinstance(d, _Local) else d[1]
    single = len(files) == 1 and files[0][0] == ""
    if dst_fs is not None:
        if not dst_rel:
            raise InvalidArgumentError(f"{fname}: give a destination path inside endpoint {dst_fs.endpoint.name!r}")
        if await dst_fs._exists(dst_rel) and not overwrite:
            info = await dst_fs._info(dst_rel)
            if info.get("type") == "directory" or not single:
                raise InvalidArgumentError(
                    f"{fname}: {dst_fs.endpoint.url_for(dst_rel)} exists; remove it first or pass overwrite=True (--overwrite)"
                )
    elif os.path.exists(dst_rel) and not overwrite and (os.path.isdir(dst_rel) or not single):
        raise InvalidArgumentError(f"{fname}: {dst_rel} exists; remove it first or pass overwrite=True (--overwrite)")
    sem = asyncio.Semaphore(COPY_CONCURRENCY)
    done = 0
    if progress is not None:
        progress(0, total)

    async def one(sub: str, size: int, t: TagSet | None) -> None:
        nonlocal done
        async with sem:
            if isinstance(s, _Local):
                path = os.path.join(s.path, sub) if sub else s.path
                data = await asyncio.to_thread(_read_local, path)
            else:
                assert src_fs is not None
                r = f"{s[1]}/{sub}" if sub else s[1]
                data = await src_fs._granted(r, t, read=True, decision=decided[t])._cat_file(r)
            target = (f"{dst_rel}/{sub}" if sub else dst_rel) if dst_rel else sub
            if dst_fs is not None:
                await dst_fs._granted(target, t, write=True, decision=decided[t])._pipe_file(target, data)
            else:
                await asyncio.to_thread(_write_local, target, data, t)
            done += len(data)
            if progress is not None:
                progress(done, total)

    ordered = _order([f[0] for f in files])
    by_name = {f[0]: f for f in files}
    data_files = [by_name[n] for n in ordered if n.rsplit("/", 1)[-1] not in ("zarr.json", ".zarray", ".zgroup", ".zattrs")]
    meta_files = [by_name[n] for n in ordered if by_name[n] not in data_files]
    await asyncio.gather(*(one(*f) for f in data_files))
    for f in meta_files:  # in order: deepest first, the dataset pointer last
        await one(*f)
    return done


def _read_local(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write_local(path: str, data: bytes, tags: TagSet | None = None) -> None:
    """A downloaded file, written whole, with its tags recorded beside it (xattrs or a sidecar)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".hpcai-tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        tagged = write_local_tags(tmp, tags, sidecar=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if tags and not tagged:  # no user xattrs on this disk: a sidecar
        write_local_tags(path, tags)
