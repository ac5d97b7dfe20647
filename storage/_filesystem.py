"""The residency-enforcing filesystems.

:class:`EndpointFileSystem` wraps one endpoint's own fsspec filesystem (s3fs, the confined
POSIX filesystem of :mod:`._posix`, any fsspec protocol). Every call is forwarded
explicitly, with paths relative to the endpoint root checked so that they cannot escape
it. Writes carry tags — never fewer than the data they describe already has (see
:meth:`EndpointFileSystem._write_tags`) — and are a ``store`` decision on the endpoint's
attributes; reads into this process, whatever the file's name, are a ``compute`` decision
on the host device (downloads to local files too), and tagged data read raw taints the
process's later writes (:mod:`._taint`).
Transient errors are retried with backoff; the rest become :mod:`hpcai.errors` classes
naming the endpoint, never a secret.

:class:`HpcaiFileSystem` is the ``hpcai://`` protocol (registered through the
``fsspec.specs`` entry point): ``hpcai://<endpoint>/<path>`` routes to the endpoint's
filesystem, so ``fsspec.open``, zarr, dask and pandas reach data through the same checks.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fsspec.asyn import AsyncFileSystem, mirror_sync_methods, sync

from hpcai import _config
from hpcai._tags import TagSet, as_mapping, make_tags, union
from hpcai.errors import (
    BackendUnavailableError,
    ChecksumError,
    CredentialsError,
    EndpointUnreachableError,
    HpcaiError,
    InvalidArgumentError,
    StorageError,
    StorageNotFoundError,
)

from . import _layout, _taint
from ._endpoints import SCHEME, Endpoint, check_relpath, get_endpoint, register_secrets
from ._posix import Beneath, ConfinedFileSystem
from ._tags_io import (
    GenericTagBackend,
    LocalTagBackend,
    LocalTagReader,
    S3TagBackend,
    TagBackend,
    check_key,
    is_hidden,
    node_tags,
    write_local_tags,
)

__all__ = ["EndpointFileSystem", "HpcaiFileSystem", "endpoint_filesystem", "filesystem"]

logger = logging.getLogger("hpcai.storage")

#: Seconds a cached zarr-node lookup (tags of an enclosing ``zarr.json``) stays valid.
NODE_CACHE_TTL = 10.0
_META_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})

_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ClientOSError",
        "ClientPayloadError",
        "FSTimeoutError",
        "IncompleteRead",
        "ResponseStreamingError",
        "HTTPClientError",
        "ProxyConnectionError",
    }
)
_TRANSIENT_TEXT = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "502", "504")
_CONNECTION_NAMES = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ProxyConnectionError"}
)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(out) < 8:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying: no connection, timeouts, 5xx, throttling."""
    for e in _chain(exc):
        if isinstance(e, HpcaiError):
            return False
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)):
            return False
        if isinstance(e, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
            return True
        if type(e).__name__ in _TRANSIENT_NAMES:
            return True
        if isinstance(e, OSError) and any(t in str(e) for t in _TRANSIENT_TEXT):
            return True
    return False


def _is_connection(exc: BaseException) -> bool:
    return any(isinstance(e, ConnectionError) or type(e).__name__ in _CONNECTION_NAMES for e in _chain(exc))


def normalize_tags(fname: str, tags: Any) -> TagSet | None:
    """Tags given by a caller (mapping, tag set or ``None``) as a checked tag set."""
    if tags is None:
        return None
    if isinstance(tags, frozenset):
        ts: TagSet | None = tags or None
    elif isinstance(tags, Mapping):
        ts = make_tags(tags, fname=fname)
    else:
        raise InvalidArgumentError(
            f"{fname}: tags must be a mapping such as {{'classification': 'personal'}} or None, got {type(tags).__name__}"
        )
    for k, _ in ts or ():
        try:
            check_key(k)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{fname}: {exc}") from None
    return ts


def _rules_active() -> bool:
    from hpcai import residency

    return bool(residency.current_policy().rules)


def _host() -> Any:
    from hpcai._device import resolve_device

    return resolve_device("numpy:cpu")


def _join(d: str, name: str) -> str:
    return f"{d}/{name}" if d else name


#: The largest object S3 copies in one CopyObject (5 GiB).
SERVER_COPY_LIMIT = 5 * 2**30


@dataclass(frozen=True)
class _Grant:
    """Checks already made (and audited) by the caller (``save``/``load``/``copy``) for one path prefix."""

    prefix: str
    tags: TagSet | None
    write: bool
    read: bool
    #: Whole-object reads under the prefix are known to be small (zarr chunks of a bounded
    #: size): they skip the size lookup that s3fs makes before each read (one request, not two).
    small: bool = False
    #: The prefix is a directory this operation created under a fresh, unguessable name (a new
    #: version): a ``zarr.json`` written there replaces nothing, so no earlier node is looked up.
    fresh: bool = False

    def covers(self, rel: str) -> bool:
        p = self.prefix
        return rel == p or not p or rel.startswith(p + "/")


@dataclass(frozen=True)
class _Node:
    """A directory as a zarr node: its tags are those of its ``zarr.json`` content *and* stored with it."""

    is_node: bool
    tags: TagSet | None = None
    kind: str | None = None  # "array", "group" (zarr's node_type)
    head: str | None = None  # the head version, for datasets saved by hpcai
    meta: Mapping[str, Any] | None = None  # the parsed zarr.json (None when not a JSON object)


_NO_NODE = _Node(False)


def _parse_meta(data: Any, where: str) -> tuple[TagSet | None, str | None, str | None, Mapping[str, Any] | None]:
    """``(tags, node_type, head, meta)`` of ``zarr.json`` bytes; all ``None`` when not a JSON object."""
    try:
        meta = json.loads(bytes(data))
    except (ValueError, TypeError):
        return None, None, None, None
    if not isinstance(meta, Mapping):
        return None, None, None, None
    kind = meta.get("node_type") if isinstance(meta.get("node_type"), str) else None
    h = (meta.get("attributes") or {}).get("hpcai") if isinstance(meta.get("attributes"), Mapping) else None
    head = h.get("head") if isinstance(h, Mapping) and isinstance(h.get("head"), str) else None
    if head is not None:
        try:
            head = check_relpath("zarr metadata", head, "-")
        except HpcaiError:
            head = None
    return node_tags(meta, where), kind, head, meta


class _Shared:
    """What every view of one endpoint filesystem shares: the wrapped filesystem and caches."""

    def __init__(self, ep: Endpoint, asynchronous: bool, loop: Any) -> None:
        import fsspec

        self.endpoint = ep
        try:
            cls = fsspec.get_filesystem_class(ep.protocol)
        except (ImportError, ValueError) as exc:
            raise BackendUnavailableError(
                f"{ep.describe()}: the {ep.protocol}:// protocol is not available ({exc}); "
                + ("pip install 'hpcai[s3]'" if ep.is_s3 else f"install the fsspec implementation of {ep.protocol}")
            ) from None
        opts: dict[str, Any] = dict(ep.options)
        opts.update(ep.credentials_options())
        self.secrets = tuple(v for v in ep.secrets())
        register_secrets(self.secrets)
        self.root = ep.root
        #: POSIX endpoints: every path operation is confined by descriptor (see ``_posix``).
        self.beneath: Beneath | None = None
        if ep.is_local:
            from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

            self.beneath = Beneath(ep.root, ep.name, ep.url_for)
            self.sfs: Any = ConfinedFileSystem(self.beneath)
            self.afs: Any = AsyncFileSystemWrapper(self.sfs, asynchronous=asynchronous)
            self.backend: TagBackend = LocalTagBackend(ep.tag_store, self.beneath)
        else:
            if ep.is_s3:
                opts.setdefault("use_listings_cache", False)  # listings always reflect other writers
                ck = dict(opts.get("config_kwargs") or {})
                ck.setdefault("retries", {"max_attempts": 1, "mode": "standard"})  # hpcai retries itself
                opts["config_kwargs"] = ck
            try:
                if cls.async_impl:
                    fs = cls(asynchronous=asynchronous, loop=loop, skip_instance_cache=True, **opts)
                    self.sfs = self.afs = fs
                else:
                    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

                    self.sfs = cls(skip_instance_cache=True, **opts)
                    self.afs = AsyncFileSystemWrapper(self.sfs, asynchronous=asynchronous)
            except HpcaiError:
                raise
            except Exception as exc:
                raise StorageError(f"{ep.describe()}: cannot create the {ep.protocol} filesystem: {_scrub(str(exc), self.secrets)}") from None
            if ep.is_s3:
                if ep.tag_store in ("xattr", "sidecar"):
                    raise InvalidArgumentError(f"{ep.describe()}: tag_store = {ep.tag_store!r} is for POSIX endpoints")
                self.backend = S3TagBackend(self.afs, ep.tag_store)
            else:
                self.backend = GenericTagBackend(self.afs, self.sfs)
        #: Options for reading a small object whole: s3fs looks up the size of every object it
        #: reads whole (a HEAD before the GET, to split large ones into ranges) unless told
        #: not to read concurrently.
        self.small_read: dict[str, Any] = {}
        try:
            if "max_concurrency" in inspect.signature(self.afs._cat_file).parameters:
                self.small_read = {"max_concurrency": 1}
        except (TypeError, ValueError):
            pass
        self.lock = threading.Lock()
        self.nodes: dict[str, tuple[float, _Node]] = {}
        self.audited: set[tuple[str, str, TagSet | None]] = set()


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


class EndpointFileSystem(AsyncFileSystem):
    """The residency-enforcing filesystem of one endpoint; paths are relative to its root.

    Made by :func:`hpcai.storage.filesystem`. ``tags`` are attached to everything this
    filesystem writes (on top of tags inherited from an enclosing zarr node, and of the
    process's read-taint ledger).

    >>> import hpcai, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file://" + d}}})
    >>> fs = hpcai.storage.filesystem("scratch")
    >>> fs.pipe_file("notes/a.txt", b"hello")
    >>> fs.cat_file("notes/a.txt")
    b'hello'
    """

    protocol = ("hpcai-endpoint",)
    root_marker = ""
    cachable = False
    async_impl = True

    def __init__(
        self,
        endpoint: str,
        *,
        tags: Mapping[str, Any] | None = None,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> None:
        super().__init__(asynchronous=asynchronous, loop=loop)
        ep = get_endpoint(endpoint)
        self.endpoint = ep
        self.tags = normalize_tags("filesystem", tags)
        self._grant: _Grant | None = None
        self._s = _shared_for(ep, asynchronous, None if asynchronous else self._loop)

    # -- identity ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        g = f", grant={self._grant.prefix!r}" if self._grant else ""
        return f"<EndpointFileSystem {self.endpoint.name!r} {self.endpoint.display_url}{g}>"

    def __reduce__(self) -> Any:
        return (_rebuild_endpoint_fs, (self.endpoint.name, self.tags, self.asynchronous))

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("hpcai-endpoint://"):
            path = path[len("hpcai-endpoint://"):]
        return path.rstrip("/")

    def unstrip_protocol(self, name: str) -> str:
        return self.endpoint.url_for(name)

    def _derive(self, grant: _Grant | None) -> EndpointFileSystem:
        """A view sharing the wrapped filesystem, with checks the caller already made."""
        obj = object.__new__(type(self))
        for k, v in self.__dict__.items():
            if not (inspect.isfunction(v) or inspect.ismethod(v)):
                obj.__dict__[k] = v
        obj._grant = grant
        if not self.asynchronous:  # an asynchronous view is used through its coroutines only
            mirror_sync_methods(obj)
        return obj

    def _granted(
        self, prefix: str, tags: TagSet | None, *, decision: Any, write: bool = False, read: bool = False,
        small: bool = False, fresh: bool = False,
    ) -> EndpointFileSystem:
        """A view whose writes (or reads) under *prefix* are covered by *decision*.

        Private to hpcai's own operations (``save``, ``load``, ``open``, ``copy``): *decision*
        is the :class:`~hpcai.residency.Decision` they took and audited (``residency.enforce``
        or :meth:`check_store`); it must allow, and its tags must include *tags*. A write
        under the grant that would carry more tags than that is decided again. *small*: every
        object read whole under *prefix* is small (see :attr:`_Grant.small`); *fresh*: the
        prefix is new (see :attr:`_Grant.fresh`).
        """
        from hpcai import residency

        if not isinstance(decision, residency.Decision) or not decision.allowed:
            raise InvalidArgumentError(
                f"_granted: a grant needs the allowing residency.Decision that covers it, got {decision!r}"
            )
        for k, vs in as_mapping(tags).items():
            if not vs <= frozenset(decision.tags.get(k, ())):
                raise InvalidArgumentError(
                    f"_granted: the decision ({decision.op} on {decision.destination}) did not cover the tag "
                    f"{k}={'|'.join(sorted(vs))}; decide for the tags the grant carries"
                )
        return self._derive(_Grant(check_relpath("granted", prefix, self.endpoint.name), tags, write, read, small, fresh))

    # -- paths --------------------------------------------------------------------------------
    def _full(self, rel: str, fname: str, follow: bool = True) -> str:
        """The wrapped filesystem's path of *rel* (checked: no ``..``, no absolute paths, no
        reserved names). On POSIX every operation on it is confined to the root by descriptor
        (``_posix.Beneath``), so that no symbolic link, however late it appears, leads out."""
        rel = check_relpath(fname, rel, self.endpoint.name)
        root = self._s.root
        return (root.rstrip("/") + "/" + rel) if rel else root

    def _rel(self, full: str) -> str:
        root = self._s.root.rstrip("/")
        full = full.rstrip("/")
        if full == root or (root == "" and full == ""):
            return ""
        if root and full.startswith(root + "/"):
            return full[len(root) + 1:]
        if not root:
            return full.lstrip("/")
        raise StorageError(f"{self.endpoint.describe()}: the wrapped filesystem returned {full!r}, outside the endpoint root")

    def _map_info(self, info: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(info)
        out["name"] = self._rel(str(info["name"]))
        return out

    # -- retries and errors -------------------------------------------------------------------
    async def _retry(self, what: str, rel: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        delays = self.endpoint.retry.delays()
        attempt = 1
        while True:
            try:
                return await fn(*args, **kwargs)
            except HpcaiError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    d = next(delays, None)
                    if d is not None:
                        logger.info(
                            "%s: transient error on %s (attempt %d), retrying in %.2fs: %s",
                            what, self.endpoint.name, attempt, d, _scrub(type(exc).__name__, self._s.secrets),
                        )
                        await asyncio.sleep(d)
                        attempt += 1
                        continue
                raise self._translate(exc, what, rel, attempt) from None

    def _translate(self, exc: BaseException, what: str, rel: str, attempts: int) -> BaseException:
        ep = self.endpoint
        url = ep.url_for(rel)
        msg = _scrub(str(exc) or type(exc).__name__, self._s.secrets)
        if isinstance(exc, FileNotFoundError):
            return StorageNotFoundError(f"{what}: {url} does not exist ({ep.describe()}: {msg})")
        if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
            return type(exc)(f"{what}: {url}: {msg}")
        if isinstance(exc, PermissionError):
            refs = ", ".join(f"{k}={v}" for k, v in ep.credentials.items()) or "none configured"
            return CredentialsError(
                f"{what}: {ep.describe()} refused access to {url}: {msg}. Check the credentials "
                f"referenced by [endpoints.{ep.name}].credentials ({refs}) and the server's access policy"
            )
        if is_transient(exc):
            if _is_connection(exc):
                return EndpointUnreachableError(
                    f"{what}: {ep.describe()} is unreachable after {attempts} attempt(s) with backoff "
                    f"({type(exc).__name__}: {msg}); check that the server is running and that "
                    f"[endpoints.{ep.name}] points at it"
                )
            return StorageError(
                f"{what}: {url} on {ep.describe()} kept failing after {attempts} attempt(s): {type(exc).__name__}: {msg}"
            )
        return StorageError(f"{what}: {url} on {ep.describe()} failed: {type(exc).__name__}: {msg}")

    def _run(self, coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
        return sync(self.loop, coro_fn, *args, **kwargs)

    # -- tags ---------------------------------------------------------------------------------
    async def _own_tags(self, rel: str) -> TagSet | None:
        """The tags stored with the object at *rel* itself (object tags and metadata, xattrs and
        sidecar: their union); ``None`` when there is no such object."""
        try:
            return await self._retry("read tags", rel, self._s.backend.read, self._full(rel, "read tags"))  # type: ignore[no-any-return]
        except (StorageNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    async def _read_internal(self, path: str) -> bytes:
        """Bytes of a small metadata object for hpcai's own use (pointer, node lookups).

        Never handed to callers as data: the decisions about the data it describes are taken by
        the operation that reads it (``load``/``open``: ``compute`` on the device).
        """
        return await self._retry("read", path, self._s.afs._cat_file, self._full(path, "read"), **self._s.small_read)  # type: ignore[no-any-return]

    async def _node_meta(self, rel_dir: str, fresh: bool = False) -> _Node:
        """Whether *rel_dir* is a zarr node (has ``zarr.json``), its kind and its tags: those in the
        ``zarr.json`` content and those stored with the ``zarr.json`` object (cached briefly)."""
        s = self._s
        now = time.monotonic()
        if not fresh:
            hit = s.nodes.get(rel_dir)
            if hit is not None and hit[0] > now:
                return hit[1]
        path = _join(rel_dir, "zarr.json")
        # The content and the tags stored with the object are read concurrently (one round trip,
        # not two): stored tags only grow, so reading them first is as safe as reading them after.
        raw, stored = await asyncio.gather(self._read_internal(path), self._own_tags(path), return_exceptions=True)
        if isinstance(raw, (StorageNotFoundError, IsADirectoryError, NotADirectoryError)):
            node = _NO_NODE
        elif isinstance(raw, BaseException):
            raise raw
        else:
            if isinstance(stored, BaseException):
                raise stored
            content, kind, head, meta = _parse_meta(raw, self.endpoint.url_for(path))
            node = _Node(True, union(content, stored), kind, head, meta)
        if len(s.nodes) > 4096:
            s.nodes.clear()
        s.nodes[rel_dir] = (now + NODE_CACHE_TTL, node)
        return node

    def _forget_nodes(self, rel: str) -> None:
        s = self._s
        for k in list(s.nodes):
            if k == rel or not rel or k.startswith(rel + "/"):
                s.nodes.pop(k, None)

    async def _enclosing(self, rel: str) -> tuple[str | None, str | None, TagSet | None]:
        """``(nearest enclosing zarr node of rel, its kind, union of all enclosing nodes' tags)``."""
        parts = rel.split("/")[:-1]
        nearest: str | None = None
        kind: str | None = None
        tags: TagSet | None = None
        for i in range(len(parts), -1, -1):
            d = "/".join(parts[:i])
            n = await self._node_meta(d)
            if n.is_node:
                if nearest is None:
                    nearest, kind = d, n.kind
                tags = union(tags, n.tags)
        return nearest, kind, tags

    async def _above(self, rel_dir: str) -> TagSet | None:
        """The tags of the zarr nodes strictly above the directory *rel_dir*."""
        if not rel_dir:
            return None
        return (await self._enclosing(rel_dir))[2]

    async def _data_tags(self, rel: str) -> tuple[str | None, TagSet | None]:
        """``(nearest node, effective tags)`` of the data at *rel*: the union of its own stored tags
        and those of every enclosing zarr node (a ``zarr.json`` stands for its node)."""
        if rel.rsplit("/", 1)[-1] == "zarr.json":
            here = rel.rpartition("/")[0]
            n = await self._node_meta(here)
            own = n.tags if n.is_node else await self._own_tags(rel)
            return here, union(own, await self._above(here))
        node, _, up = await self._enclosing(rel)
        return node, union(await self._own_tags(rel), up)

    async def _node_tags(self, rel_dir: str, fresh: bool = False) -> TagSet | None:
        """The effective tags of the zarr node *rel_dir*; for a dataset, with its head version's."""
        n = await self._node_meta(rel_dir, fresh=fresh)
        t = union(n.tags, await self._above(rel_dir))
        if n.head is not None:
            t = union(t, (await self._node_meta(_join(rel_dir, n.head), fresh=fresh)).tags)
        return t

    async def _get_tags(self, path: str) -> TagSet | None:
        """The effective tags of *path*: a file's (its own and its nodes'), a zarr node's, a dataset's."""
        rel = check_relpath("tags", path, self.endpoint.name)
        if (await self._node_meta(rel)).is_node:
            return await self._node_tags(rel)
        await self._info(rel)  # StorageNotFoundError naming the URL when there is nothing
        return (await self._data_tags(rel))[1]

    def get_tags(self, path: str) -> TagSet | None:
        """Sync :meth:`_get_tags`: ``fs.get_tags("data/x.bin")`` -> ``frozenset({("origin", "DE")})``."""
        return self._run(self._get_tags, path)  # type: ignore[no-any-return]

    async def _tags_under(self, rel_dir: str) -> TagSet | None:
        """The union of the tags of everything stored under *rel_dir* (a new array node's chunks)."""
        try:
            found = await self._find(rel_dir)
        except StorageNotFoundError:
            return None
        sem = asyncio.Semaphore(16)

        async def one(f: str) -> TagSet | None:
            async with sem:
                if f.rsplit("/", 1)[-1] == "zarr.json":
                    return (await self._node_meta(f.rpartition("/")[0], fresh=True)).tags
                return await self._own_tags(f)

        out: TagSet | None = None
        for t in await asyncio.gather(*(one(f) for f in found)):
            out = union(out, t)
        return out

    async def _widen(self, node: str, tags: TagSet | None) -> None:
        """Add *tags* to those stored with the array node's ``zarr.json`` (its chunks never carry
        tags that the node does not: ``load``, which decides once for the node, sees them)."""
        path = _join(node, "zarr.json")
        await self._retry("tag zarr metadata", path, self._s.backend.add_tags, self._full(path, "tag"), tags)
        self._forget_nodes(node)

    # -- decisions ----------------------------------------------------------------------------
    async def check_store(
        self,
        rel: str,
        tags: TagSet | None,
        *,
        nbytes: int,
        operation: str,
        source: str | None = None,
        dataset: str | None = None,
        audit_key: str | None = None,
        tainted: TagSet | None = None,
    ) -> Any:
        """A ``store`` decision for *tags* on this endpoint; audited (once per *audit_key*) and raised.

        Returns the :class:`~hpcai.residency.Decision`. *tainted*: the tags that the read-taint
        ledger added (named in a refusal).
        """
        from hpcai import residency
        from hpcai.errors import ResidencyError

        ep = self.endpoint
        d = residency.decide("store", tags, ep.attributes, destination=ep.name)
        if d.effect is None:
            return d
        key = (audit_key, "store", tags) if audit_key is not None else None
        if d.allowed and key is not None and key in self._s.audited:
            return d
        try:
            d = residency.enforce(
                "store",
                tags,
                ep.attributes,
                destination=ep.name,
                source=source,
                nbytes=nbytes,
                dataset=dataset or ep.url_for(rel),
                operation=operation,
            )
        except ResidencyError as exc:
            if tainted:
                raise ResidencyError(f"{exc}. {_taint.describe(tainted)}", decision=exc.decision) from None
            raise
        if key is not None:
            self._s.audited.add(key)
        return d

    async def _read_check(self, rel: str, nbytes: int = 0, operation: str = "read") -> TagSet | None:
        """Reading stored data into this process (whatever the file's name, metadata included) is a
        ``compute`` decision on the host device; tagged data read this way taints the process's
        later writes (:mod:`._taint`). Returns the data's tags (``None`` when not looked up)."""
        op = "compute"
        g = self._grant
        if g is not None and g.read and g.covers(rel):
            return g.tags
        if not _rules_active():
            return None
        from hpcai import residency

        node, tags = await self._data_tags(rel)
        host = _host()
        d = residency.decide(op, tags, host.spec.attributes, destination=host.spec.name)
        if d.effect is not None:
            key = (node, op, tags) if node is not None else None
            if not (d.allowed and key is not None and key in self._s.audited):
                residency.enforce(
                    op,
                    tags,
                    host.spec.attributes,
                    destination=host.spec.name,
                    source=self.endpoint.name,
                    nbytes=nbytes,
                    dataset=self.endpoint.url_for(node if node is not None else rel),
                    operation=operation,
                )
                if key is not None:
                    self._s.audited.add(key)
        _taint.record(tags, self.endpoint.url_for(rel))
        return tags

    async def _write_tags(
        self,
        rel: str,
        explicit: Any,
        data: Any = None,
        nbytes: int = 0,
        operation: str = "write",
        *,
        taint: bool = True,
        inherit: bool = True,
        source: str | None = None,
        dataset: str | None = None,
    ) -> TagSet | None:
        """The tags a write to *rel* carries, after the ``store`` check (raises before any byte is written).

        Stored tags only grow: a write carries the tags of every enclosing zarr node; a
        ``zarr.json`` write also those of the node it replaces and, when it makes a directory
        an array, those of everything already stored there; a write that brings new tags into
        an array widens the array's ``zarr.json`` first. Raw writes (*taint*) carry the
        process's read-taint ledger.
        """
        url = self.endpoint.url_for(rel)
        here = rel.rpartition("/")[0]
        is_meta = rel.rsplit("/", 1)[-1] == "zarr.json"
        explicit_t = normalize_tags(operation, explicit)
        content, kind = None, None
        if is_meta and data is not None:
            content, kind, _, _ = _parse_meta(data, url)
        g = self._grant
        if g is not None and g.write and g.covers(rel):
            tags = union(union(g.tags, explicit_t), content)
            if is_meta and inherit and not g.fresh:
                tags = union(tags, (await self._node_meta(here, fresh=True)).tags)
            if tags and not (g.tags and tags <= g.tags):  # more than the caller decided for
                await self.check_store(rel, tags, nbytes=nbytes, operation=operation, source=source, dataset=dataset)
            return tags
        tags = union(union(self.tags, explicit_t), content)
        ledger = _taint.current() if taint else None
        tainted = ledger - tags if ledger and tags else ledger
        tags = union(tags, ledger)
        if is_meta:
            prev = await self._node_meta(here, fresh=True)
            tags = union(tags, prev.tags)  # an overwrite keeps the node's tags
            if kind != "group" and not (prev.is_node and prev.kind == "array"):
                tags = union(tags, await self._tags_under(here))  # a new array takes its chunks' tags
            tags = union(tags, await self._above(here))
            await self.check_store(rel, tags, nbytes=nbytes, operation=operation, source=source,
                                   dataset=dataset, tainted=tainted)
            return tags
        node, node_kind, up = await self._enclosing(rel)
        brought = tags
        tags = union(tags, up)
        await self.check_store(rel, tags, nbytes=nbytes, operation=operation, source=source,
                               audit_key=node, tainted=tainted,
                               dataset=dataset or (self.endpoint.url_for(node) if node is not None else None))
        if node is not None and node_kind == "array" and brought and not (up and brought <= up):
            await self._widen(node, brought)
        return tags

    # -- reading ------------------------------------------------------------------------------
    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        full = self._full(path, "info")
        info = await self._retry("info", path, self._s.afs._info, full)
        return self._map_info(info)

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        full = self._full(path, "ls")
        entries = await self._retry("ls", path, self._s.afs._ls, full, detail=True)
        out = [self._map_info(e) for e in entries if not is_hidden(str(e["name"]))]
        out = [e for e in out if e["name"] != self._rel(full) or e["type"] != "directory"]
        return out if detail else [e["name"] for e in out]

    async def _find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any) -> Any:
        full = self._full(path, "find")
        found = await self._retry("find", path, self._s.afs._find, full, maxdepth=maxdepth, withdirs=withdirs, detail=True)
        out: dict[str, Any] = {}
        for name, info in found.items():
            if any(p.startswith(".hpcai-") for p in str(name).split("/")):
                continue
            rel = self._rel(str(name))
            out[rel] = {**info, "name": rel}
        return out if detail else sorted(out)

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        full = self._full(path, "exists")
        return bool(await self._retry("exists", path, self._s.afs._exists, full))

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        rel = check_relpath("cat_file", path, self.endpoint.name)
        full = self._full(rel, "cat_file")
        await self._read_check(rel)
        g = self._grant
        kw = self._s.small_read if start is None and end is None and g is not None and g.small and g.covers(rel) else {}
        return await self._retry("cat_file", path, self._s.afs._cat_file, full, start=start, end=end, **kw)  # type: ignore[no-any-return]

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        rel = check_relpath("get_file", rpath, self.endpoint.name)
        full = self._full(rel, "get_file")
        tags = await self._read_check(rel, operation="download")
        if os.path.isdir(lpath):
            return
        if tags is None and (self._grant is None or not self._grant.covers(rel)):
            tags = (await self._data_tags(rel))[1]
        await self._retry("get_file", rpath, self._s.afs._get_file, full, lpath)
        await asyncio.to_thread(write_local_tags, lpath, tags)  # uploads of the local copy carry them

    # -- writing ------------------------------------------------------------------------------
    async def _pipe_file(self, path: str, value: Any, mode: str = "overwrite", tags: Any = None, **kwargs: Any) -> None:
        rel = check_relpath("pipe_file", path, self.endpoint.name)
        data = value if isinstance(value, bytes) else bytes(value)
        full = self._full(rel, "pipe_file", follow=False)
        if mode == "create" and await self._exists(rel):
            raise FileExistsError(f"pipe_file: {self.endpoint.url_for(rel)} exists (mode='create')")
        t = await self._write_tags(rel, tags, data, len(data))
        if rel.rsplit("/", 1)[-1] in _META_NAMES:
            self._forget_nodes(rel.rpartition("/")[0])
        await self._retry("pipe_file", rel, self._s.backend.put, full, data, t)

    async def _commit(self, path: str, data: bytes, tags: Any = None) -> None:
        """Replace a dataset's commit pointer atomically (``save``: the pointer names the new version,
        whose own ``zarr.json`` keeps the old versions' tags, so the pointer does not inherit them)."""
        rel = check_relpath("commit", path, self.endpoint.name)
        full = self._full(rel, "commit", follow=False)
        t = await self._write_tags(rel, tags, data, len(data), operation="commit", inherit=False)
        await self._retry("commit", rel, self._s.backend.put, full, data, t)
        self._forget_nodes(rel.rpartition("/")[0])

    async def _put_file(self, lpath: str, rpath: str, callback: Any = None, tags: Any = None, **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return await self._makedirs(rpath, exist_ok=True)  # type: ignore[no-any-return]
        rel = check_relpath("put_file", rpath, self.endpoint.name)
        full = self._full(rel, "put_file")
        size = os.path.getsize(lpath)
        meta = None
        if rel.rsplit("/", 1)[-1] == "zarr.json":
            with open(lpath, "rb") as f:
                meta = f.read()
        local = await asyncio.to_thread(LocalTagReader().tags, lpath)  # tags recorded inside the data
        explicit = union(normalize_tags("upload", tags), local)
        t = await self._write_tags(rel, explicit, meta, size, operation="upload", source=f"local file {lpath}")
        if rel.rsplit("/", 1)[-1] in _META_NAMES:
            self._forget_nodes(rel.rpartition("/")[0])
        await self._retry("put_file", rel, self._s.backend.put_file, lpath, full, t)
        if callback is not None:
            callback.relative_update(size)

    async def _cp_file(self, path1: str, path2: str, tags: Any = None, **kwargs: Any) -> None:
        r1 = check_relpath("copy", path1, self.endpoint.name)
        r2 = check_relpath("copy", path2, self.endpoint.name)
        f1, f2 = self._full(r1, "copy"), self._full(r2, "copy")
        _, src_tags = await self._data_tags(r1)
        info = await self._info(r1)
        data = await self._read_internal(r1) if r2.rsplit("/", 1)[-1] == "zarr.json" else None
        t = await self._write_tags(r2, union(src_tags, normalize_tags("copy", tags)), data,
                                   int(info.get("size") or 0), operation="copy", taint=False,
                                   source=self.endpoint.name, dataset=self.endpoint.url_for(r1))
        backend = self._s.backend
        if isinstance(backend, LocalTagBackend) and data is None:
            await self._retry("copy", r2, asyncio.to_thread, backend.copy_sync, f1, f2, t)
        elif isinstance(backend, S3TagBackend) and data is None:
            # Server-side CopyObject: no byte passes through here. The copy carries the source's
            # object tags and metadata; where any place differs from the tags decided here (tags
            # added, or a server that drops them), the destination is retagged before this returns.
            # Over 5 GiB S3 needs a multipart copy, which drops tags and metadata and cannot be
            # retagged in place: refused here (hpcai cp streams such objects instead).
            if int(info.get("size") or 0) > SERVER_COPY_LIMIT:
                raise StorageError(
                    f"copy: {self.endpoint.url_for(r1)} is over 5 GiB: S3 copies it only by a multipart copy, "
                    "which loses its tags; copy it with hpcai cp (hpcai.storage.copy), which streams it"
                )
            await self._retry("copy", r2, self._s.afs._cp_file, f1, f2)
            places = await backend.read_places(f2)
            if any(v != t for v in places.values()):
                try:
                    await self._retry("copy", r2, backend.retag, f2, t)
                except BaseException:
                    await self._s.afs._rm_file(f2)  # never leave a copy that is missing its tags
                    raise
        else:
            if data is None:
                data = await self._retry("copy", r1, self._s.afs._cat_file, f1)
            await self._retry("copy", r2, backend.put, f2, data, t)
        if r2.rsplit("/", 1)[-1] in _META_NAMES:
            self._forget_nodes(r2.rpartition("/")[0])

    async def _copy(self, path1: Any, path2: Any, recursive: bool = False, on_error: str | None = None,
                    maxdepth: int | None = None, batch_size: int | None = None, **kwargs: Any) -> None:
        srcs = path1 if isinstance(path1, list) else await self._expand_path(path1, recursive=recursive, maxdepth=maxdepth)
        await precheck_copy([(self, p, self) for p in srcs])  # a refusal leaves the destination untouched
        await super()._copy(path1, path2, recursive=recursive, on_error=on_error, maxdepth=maxdepth,
                            batch_size=batch_size, **kwargs)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        rel = check_relpath("rm", path, self.endpoint.name)
        full = self._full(rel, "rm")
        await self._retry("rm", rel, self._s.afs._rm_file, full)
        await self._s.backend.removed(full)
        self._forget_nodes(rel if rel.rsplit("/", 1)[-1] not in _META_NAMES else rel.rpartition("/")[0])

    async def _rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        paths = path if isinstance(path, (list, tuple)) else [path]
        for p in paths:
            rel = check_relpath("rm", p, self.endpoint.name)
            full = self._full(rel, "rm")
            kw: dict[str, Any] = {"recursive": recursive}
            if maxdepth is not None:
                kw["maxdepth"] = maxdepth
            await self._retry("rm", rel, self._s.afs._rm, full, **kw)
            await self._s.backend.removed(full)  # sidecars under a removed tree went with it
            self._forget_nodes(rel)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        full = self._full(path, "mkdir")
        await self._retry("mkdir", path, self._s.afs._mkdir, full, create_parents=create_parents)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        full = self._full(path, "makedirs")
        await self._retry("makedirs", path, self._s.afs._makedirs, full, exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        full = self._full(path, "rmdir")
        self._s.sfs.rmdir(full)

    def created(self, path: str) -> Any:
        """Creation time, where the wrapped filesystem knows it."""
        return self._s.sfs.created(self._full(path, "created"))

    def modified(self, path: str) -> Any:
        """Modification time, where the wrapped filesystem knows it."""
        return self._s.sfs.modified(self._full(path, "modified"))

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        tags: Any = None,
        **kwargs: Any,
    ) -> Any:
        if self.asynchronous:
            raise InvalidArgumentError(
                f"open: {self!r} was created with asynchronous=True; open files through a synchronous "
                "filesystem (hpcai.storage.filesystem(name))"
            )
        rel = check_relpath("open", path, self.endpoint.name)
        full = self._full(rel, "open")
        if "a" in mode or "+" in mode:
            raise InvalidArgumentError(
                f"open: mode {mode!r} is not supported on endpoint {self.endpoint.name!r}: objects are "
                "written whole (mode 'wb'), so that readers never see partial data"
            )
        if "r" in mode:
            self._run(self._read_check, rel)
            try:
                return self._s.sfs.open(full, mode, block_size=block_size, cache_options=cache_options, **kwargs)
            except Exception as exc:
                raise self._translate(exc, "open", rel, 1) from None
        t = self._run(self._write_tags, rel, tags, None, 0, "write")
        if rel.rsplit("/", 1)[-1] in _META_NAMES:
            self._forget_nodes(rel.rpartition("/")[0])
        kw: dict[str, Any] = dict(kwargs)
        if block_size is not None:
            kw["block_size"] = block_size
        try:
            return self._s.backend.open_write(full, t, **kw)
        except HpcaiError:
            raise
        except Exception as exc:
            raise self._translate(exc, "open", rel, 1) from None


def _rebuild_endpoint_fs(name: str, tags: TagSet | None, asynchronous: bool) -> EndpointFileSystem:
    return EndpointFileSystem(name, tags=None if tags is None else _tagset_mapping(tags), asynchronous=asynchronous)


def _tagset_mapping(tags: TagSet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in tags:
        out.setdefault(k, []).append(v)
    return out


# --------------------------------------------------------------------------------------------
# the cache of endpoint filesystems
# --------------------------------------------------------------------------------------------
_cache_lock = threading.Lock()
_fs_cache: dict[tuple[Any, ...], EndpointFileSystem] = {}
_shared_cache: dict[tuple[Any, ...], _Shared] = {}


def _reset_cache() -> None:
    """On ``configure``: views are rebuilt; wrapped filesystems are kept while their definition holds."""
    with _cache_lock:
        _fs_cache.clear()
        for sh in _shared_cache.values():
            sh.nodes.clear()
            sh.audited.clear()


def _loop_key(asynchronous: bool) -> tuple[Any, ...]:
    if not asynchronous:
        return (False, os.getpid())
    try:
        return (True, id(asyncio.get_running_loop()))
    except RuntimeError:
        return (True, "thread", threading.get_ident())


def _shared_for(ep: Endpoint, asynchronous: bool, loop: Any) -> _Shared:
    """One wrapped filesystem (and its caches) per endpoint and event loop, whatever the tags of the view."""
    import hashlib

    creds = hashlib.sha256(repr(sorted(ep.credentials_options().items())).encode()).hexdigest()
    definition = json.dumps([ep.protocol, ep.root, dict(ep.options), dict(ep.credentials), ep.tag_store],
                            sort_keys=True, default=str)
    key = (definition, creds, *_loop_key(asynchronous))
    with _cache_lock:
        sh = _shared_cache.get(key)
    if sh is None:
        sh = _Shared(ep, asynchronous, loop)
        with _cache_lock:
            sh = _shared_cache.setdefault(key, sh)
    return sh


_config.on_reconfigure(_reset_cache)


def endpoint_filesystem(name: str, *, tags: TagSet | None = None, asynchronous: bool = False) -> EndpointFileSystem:
    """The (cached) filesystem of endpoint *name*; asynchronous ones are per running event loop."""
    key = (name, tags, *_loop_key(asynchronous))
    with _cache_lock:
        fs = _fs_cache.get(key)
    if fs is None:
        fs = EndpointFileSystem(name, tags=None if tags is None else _tagset_mapping(tags), asynchronous=asynchronous)
        with _cache_lock:
            fs = _fs_cache.setdefault(key, fs)
    return fs


def filesystem(name: str, *, tags: Mapping[str, Any] | None = None) -> EndpointFileSystem:
    """The residency-enforcing fsspec filesystem of endpoint *name* (paths relative to its root).

    >>> import hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> fs = hpcai.storage.filesystem("scratch", tags={"origin": "DE"})
    >>> fs.pipe_file("x.bin", b"123")
    >>> sorted(fs.get_tags("x.bin"))
    [('origin', 'DE')]
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(f"filesystem: expected an endpoint name such as 'onprem', got {type(name).__name__}")
    if name.startswith(SCHEME):
        raise InvalidArgumentError(
            f"filesystem: expected an endpoint name, got the URL {name!r}; use filesystem({name[len(SCHEME):].split('/')[0]!r})"
        )
    return endpoint_filesystem(get_endpoint(name).name, tags=normalize_tags("filesystem", tags))


# --------------------------------------------------------------------------------------------
# the hpcai:// protocol
# --------------------------------------------------------------------------------------------
#: Generic fsspec options accepted and ignored (``anon``: pandas retries a refused write with it;
#: credentials always come from the endpoint's configuration).
_FSSPEC_OPTIONS = frozenset(
    {"use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache", "batch_size", "anon"}
)


class HpcaiFileSystem(AsyncFileSystem):
    """The ``hpcai://`` protocol: ``hpcai://<endpoint>/<path>`` through the endpoint's enforcing filesystem.

    Registered as an fsspec implementation, so any fsspec-aware library works on it:

    >>> import fsspec, hpcai, tempfile
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> with fsspec.open("hpcai://scratch/x.bin", "wb") as f:
    ...     _ = f.write(b"data")
    >>> fsspec.open("hpcai://scratch/x.bin").open().read()
    b'data'
    """

    protocol = "hpcai"
    root_marker = ""
    async_impl = True
    #: Each ``fsspec.filesystem("hpcai")`` / ``xr.open_zarr("hpcai://...")`` gets its own instance, so
    #: that the dataset versions it pinned (see :meth:`_view`) are its own.
    cachable = False

    def __init__(
        self,
        *,
        tags: Mapping[str, Any] | None = None,
        asynchronous: bool = False,
        loop: Any = None,
        **storage_options: Any,
    ) -> None:
        unknown = sorted(set(storage_options) - _FSSPEC_OPTIONS)
        if unknown:
            raise InvalidArgumentError(
                f"hpcai://: unknown storage option(s) {', '.join(unknown)}; endpoints take their options and "
                "credentials from [endpoints.<name>] in the configuration (the only option here is tags=)"
            )
        super().__init__(asynchronous=asynchronous, loop=loop, batch_size=storage_options.get("batch_size"))
        self.tags = normalize_tags("hpcai://", tags)
        #: ``(endpoint, dataset path) -> (stable view, verified)``: the version this instance reads
        #: behind a dataset's stable names, fixed when it first resolves them or reads the pointer.
        self._pins: dict[tuple[str, str], tuple[_layout.View, bool]] = {}

    def __repr__(self) -> str:
        return "<HpcaiFileSystem hpcai://>"

    def __reduce__(self) -> Any:
        opts = {k: v for k, v in getattr(self, "storage_options", {}).items() if k != "loop"}
        return (_rebuild_hpcai_fs, (opts, dict(self._pins)))

    # -- the stable names of saved datasets -------------------------------------------------------
    async def _view(self, fs: EndpointFileSystem, name: str, rel: str) -> _View | None:
        """Where ``<dataset>/<stable name>/...`` lies: in the dataset's head version.

        A dataset saved by ``hpcai.storage.save``/``save_dataset`` shows its arrays at stable
        names (``t2m.zarr/t2m``) while each save writes a new version directory
        (``t2m.zarr/v<time>-<id>/``) and commits it by replacing the pointer ``t2m.zarr/zarr.json``.
        This instance resolves the head once per dataset (when it reads the pointer, or at its
        first access to a stable name) and keeps reading that version: a reader never mixes two
        versions. ``None``: *rel* is no stable name (read as it is).
        """
        parts = rel.split("/")
        for i in range(1, len(parts)):
            ds = "/".join(parts[:i])
            key = (name, ds)
            pin = self._pins.get(key)
            if pin is None:
                node = await fs._node_meta(ds)
                if not node.is_node:
                    continue
                if node.kind == "array":
                    return None  # nothing inside an array is a dataset
                view = _layout.stable_view(node.meta)
                if view is None:
                    continue  # a plain group, or a pointer without stable names
                pin = (view, False)
                opened = False
            else:
                opened = True  # this instance read the pointer, or resolved it before
            view, verified = pin
            if parts[i] not in view.names:
                return None  # inside a dataset but not a stable name (a version, the pointer)
            if not verified:
                # a genuine pointer names a version that exists (a copy of its attributes elsewhere,
                # e.g. by xarray, does not make a dataset)
                if not (await fs._node_meta(f"{ds}/{view.head}")).is_node:
                    cur = _layout.stable_view((await fs._node_meta(ds, fresh=True)).meta)
                    if cur is None or cur.head == view.head or not (await fs._node_meta(f"{ds}/{cur.head}")).is_node:
                        return None
                    if opened:  # the version this reader opened went away before its first read
                        raise StorageError(
                            f"hpcai://: version {view.head} of {fs.endpoint.url_for(ds)}, which this reader opened, "
                            "was removed by later saves; open the dataset again to read the current version"
                        )
                    view = cur  # a stale cached pointer: read the current head
                    if parts[i] not in view.names:
                        return None
                self._pins[key] = (view, True)
            target = view.names[parts[i]]
            rest = "/".join(parts[i + 1:])
            real = f"{ds}/{target}"
            return _View(ds, view.head, real, f"{ds}/{parts[i]}", f"{real}/{rest}" if rest else real)
        return None

    def _pin_pointer(self, name: str, rel: str, data: bytes) -> None:
        """Reading a dataset's pointer (as zarr and xarray do when they open it) pins its head version."""
        try:
            meta = json.loads(data)
        except (ValueError, TypeError):
            return
        ds = rel.rpartition("/")[0]
        view = _layout.stable_view(meta)
        if view is None:
            self._pins.pop((name, ds), None)
        else:
            self._pins[(name, ds)] = (view, False)

    async def _mapped(self, path: str) -> tuple[EndpointFileSystem, str, str, _View | None]:
        fs, rel, name = self._split(path)
        rel = check_relpath("hpcai://", rel, name) if rel else rel
        v = await self._view(fs, name, rel) if rel else None
        return fs, (v.real if v else rel), name, v

    async def _writable(self, path: str, what: str, pointer: bool = True) -> tuple[EndpointFileSystem, str, str]:
        """Writes through ``hpcai://`` never change a saved dataset behind hpcai's back: its stable
        names are read-only, and so is its pointer (*pointer*: also refuse a write of the pointer)."""
        fs, rel, name = self._split(path)
        if not rel:
            return fs, rel, name
        rel = check_relpath(what, rel, name)
        v = await self._view(fs, name, rel)
        where = None
        if v is not None:
            where, ds = f"{SCHEME}{name}/{v.virtual}, the read-only stable name of an array of", v.ds
        elif pointer and rel.endswith("/zarr.json"):
            ds = rel[: -len("/zarr.json")]
            view = _layout.stable_view((await fs._node_meta(ds, fresh=True)).meta)
            if view is not None and (await fs._node_meta(f"{ds}/{view.head}")).is_node:
                where = "the commit pointer of"
        if where is not None:
            url = fs.endpoint.url_for(ds)
            raise InvalidArgumentError(
                f"{what}: {SCHEME}{name}/{rel} is {where} the dataset {url}, which hpcai.storage saved and "
                f"writes: use hpcai.storage.save(x, {url!r}) or hpcai.storage.save_dataset(ds, {url!r}, "
                "append_dim=... or region=...), which write a new version and commit it"
            )
        return fs, rel, name

    async def _missing(self, fs: EndpointFileSystem, v: _View, exc: BaseException) -> BaseException:
        """A missing object behind a stable name: a removed version or a damaged one, never a fill value."""
        url = fs.endpoint.url_for(v.ds)
        if not (await fs._node_meta(f"{v.ds}/{v.head}", fresh=True)).is_node:
            return StorageError(
                f"hpcai://: version {v.head} of {url}, which this reader opened, was removed by later saves; "
                "open the dataset again to read the current version"
            )
        if v.real.rsplit("/", 1)[-1] in _META_NAMES:
            return exc
        return ChecksumError(
            f"hpcai://: {fs.endpoint.url_for(v.real)} (chunk of {url}, version {v.head}) is missing: the stored "
            "dataset is damaged (every chunk of a saved version exists); restore it or save the data again"
        )

    def _unview(self, name: str, v: _View | None, info: Mapping[str, Any]) -> dict[str, Any]:
        out = self._prefix(name, info)
        if v is not None:
            n = str(info["name"])
            if n == v.real_prefix or n.startswith(v.real_prefix + "/"):
                out["name"] = f"{name}/{v.virtual}{n[len(v.real_prefix):]}"
        return out

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, (list, tuple)):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith(SCHEME):
            path = path[len(SCHEME):]
        elif path.startswith("hpcai:"):
            path = path[len("hpcai:"):].lstrip("/")
        return path.rstrip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def unstrip_protocol(self, name: str) -> str:
        return SCHEME + name

    def _split(self, path: str) -> tuple[EndpointFileSystem, str, str]:
        p = self._strip_protocol(path)
        name, _, rel = p.partition("/")
        if not name:
            raise InvalidArgumentError(f"hpcai://: {path!r} names no endpoint; expected hpcai://<endpoint>/<path>")
        ep = get_endpoint(name)
        return endpoint_filesystem(ep.name, tags=self.tags, asynchronous=self.asynchronous), rel, name

    @staticmethod
    def _prefix(name: str, info: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(info)
        out["name"] = f"{name}/{info['name']}" if info["name"] else name
        return out

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        p = self._strip_protocol(path)
        if not p:
            return {"name": "", "type": "directory", "size": 0}
        fs, rel, name, v = await self._mapped(p)
        if not rel:
            return {"name": name, "type": "directory", "size": 0}
        return self._unview(name, v, await fs._info(rel))

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        p = self._strip_protocol(path)
        if not p:
            from ._endpoints import endpoints

            out = [{"name": n, "type": "directory", "size": 0} for n in sorted(endpoints())]
        else:
            fs, rel, name, v = await self._mapped(p)
            out = [self._unview(name, v, e) for e in await fs._ls(rel, detail=True)]
        return out if detail else [e["name"] for e in out]

    async def _find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any) -> Any:
        fs, rel, name, v = await self._mapped(path)
        found = await fs._find(rel, maxdepth=maxdepth, withdirs=withdirs, detail=True)
        out = {}
        for info in found.values():
            e = self._unview(name, v, info)
            out[e["name"]] = e
        return out if detail else sorted(out)

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        fs, rel, _, _ = await self._mapped(path)
        return await fs._exists(rel)

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        fs, rel, name, v = await self._mapped(path)
        try:
            data = await fs._cat_file(rel, start=start, end=end)
        except StorageNotFoundError as exc:
            if v is None:
                raise
            raise await self._missing(fs, v, exc) from None
        if v is None and start is None and end is None and rel.endswith("/zarr.json"):
            self._pin_pointer(name, rel, data)
        return data

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        fs, rel, _, _ = await self._mapped(rpath)
        await fs._get_file(rel, lpath)

    async def _pipe_file(self, path: str, value: Any, mode: str = "overwrite", tags: Any = None, **kwargs: Any) -> None:
        fs, rel, _ = await self._writable(path, "pipe_file")
        await fs._pipe_file(rel, value, mode=mode, tags=tags)

    async def _put_file(self, lpath: str, rpath: str, callback: Any = None, tags: Any = None, **kwargs: Any) -> None:
        fs, rel, _ = await self._writable(rpath, "put_file")
        await fs._put_file(lpath, rel, callback=callback, tags=tags)

    async def _cp_file(self, path1: str, path2: str, tags: Any = None, **kwargs: Any) -> None:
        fs1, r1, n1, _ = await self._mapped(path1)
        fs2, r2, n2 = await self._writable(path2, "copy")
        if n1 == n2:
            await fs1._cp_file(r1, r2, tags=tags)
            return
        await copy_between(fs1, r1, fs2, r2, extra_tags=normalize_tags("copy", tags))

    async def _copy(self, path1: Any, path2: Any, recursive: bool = False, on_error: str | None = None,
                    maxdepth: int | None = None, batch_size: int | None = None, **kwargs: Any) -> None:
        srcs = path1 if isinstance(path1, list) else await self._expand_path(path1, recursive=recursive, maxdepth=maxdepth)
        dsts = path2 if isinstance(path2, list) else [path2] * len(srcs)
        pairs = []
        for s_path, d_path in zip(srcs, dsts):
            src_fs, rel, _, _ = await self._mapped(s_path)
            dst_fs, _, _ = self._split(d_path)
            pairs.append((src_fs, rel, dst_fs))
        await precheck_copy(pairs)  # a refusal leaves every destination untouched
        await super()._copy(path1, path2, recursive=recursive, on_error=on_error, maxdepth=maxdepth,
                            batch_size=batch_size, **kwargs)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        fs, rel, _ = await self._writable(path, "rm", pointer=False)
        await fs._rm_file(rel)

    async def _rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        for p in path if isinstance(path, (list, tuple)) else [path]:
            fs, rel, _ = await self._writable(p, "rm", pointer=False)
            await fs._rm(rel, recursive=recursive, maxdepth=maxdepth)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        fs, rel, _ = await self._writable(path, "mkdir", pointer=False)
        await fs._mkdir(rel, create_parents=create_parents)

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        fs, rel, _ = await self._writable(path, "makedirs", pointer=False)
        await fs._makedirs(rel, exist_ok=exist_ok)

    def get_tags(self, path: str) -> TagSet | None:
        """The tags stored with ``hpcai://<endpoint>/<path>`` (a stable name: those of its version's array)."""
        fs, rel, _, _ = sync(self.loop, self._mapped, path)
        return fs.get_tags(rel)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, tags: Any = None, **kwargs: Any) -> Any:
        if "r" in mode:
            fs, rel, _, _ = sync(self.loop, self._mapped, path)
        else:
            fs, rel, _ = sync(self.loop, self._writable, path, "open")
        return fs._open(rel, mode, block_size=block_size, autocommit=autocommit, cache_options=cache_options, tags=tags, **kwargs)


@dataclass(frozen=True)
class _View:
    """A path under a dataset's stable name and the path of the head version's object it reads."""

    ds: str  # the dataset (its pointer is ds/zarr.json)
    head: str  # the version read
    real_prefix: str  # ds/<head> (layout "array") or ds/<head>/<var> (layout "group")
    virtual: str  # ds/<stable name>
    real: str  # the path read


def _rebuild_hpcai_fs(options: dict[str, Any], pins: dict[tuple[str, str], tuple[_layout.View, bool]]) -> HpcaiFileSystem:
    fs = HpcaiFileSystem(**options)
    fs._pins.update(pins)  # a Dask worker reads the versions the client pinned
    return fs


async def precheck_copy(pairs: list[tuple[EndpointFileSystem, str, EndpointFileSystem]]) -> None:
    """Decide every ``(source fs, path, destination fs)`` copy first; the first refusal is audited and raised."""
    if not _rules_active():
        return
    from hpcai import residency

    for src, rel, dst in pairs:
        try:
            info = await src._info(rel)
        except StorageNotFoundError:
            continue
        if info.get("type") == "directory":
            continue
        _, tags = await src._data_tags(rel)
        tags = union(tags, dst.tags)
        ep = dst.endpoint
        if not residency.decide("store", tags, ep.attributes, destination=ep.name).allowed:
            await dst.check_store(rel, tags, nbytes=int(info.get("size") or 0), operation="copy",
                                  source=src.endpoint.name, dataset=src.endpoint.url_for(rel))


async def copy_between(
    src: EndpointFileSystem,
    r1: str,
    dst: EndpointFileSystem,
    r2: str,
    *,
    extra_tags: TagSet | None = None,
) -> int:
    """Copy one object between endpoints: the source's tags are checked against the destination first."""
    _, src_tags = await src._data_tags(r1)
    tags = union(union(src_tags, extra_tags), dst.tags)
    info = await src._info(r1)
    d = await dst.check_store(r2, tags, nbytes=int(info.get("size") or 0), operation="copy",
                              source=src.endpoint.name, dataset=src.endpoint.url_for(r1))
    data = await src._granted(r1, src_tags, read=True, decision=d)._cat_file(r1)
    await dst._granted(r2, tags, write=True, decision=d)._pipe_file(r2, data)
    return len(data)


# zarr writes of hpcai Arrays through hpcai:// (``ds.to_zarr("hpcai://...")``) carry their tags
from . import _zarr_buffer as _zarr_buffer  # noqa: E402

_zarr_buffer.install()
