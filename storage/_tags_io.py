"""Residency tags persisted with the data.

One tag model (:mod:`hpcai._tags`: a frozenset of ``(key, value)`` pairs), several places
to keep it, chosen per endpoint:

* S3: object tags ``hpcai.<key> = value[+value...]`` sent in the same ``PutObject`` as the
  data (so data and tags appear together), plus a ``x-amz-meta-hpcai-tags`` JSON copy for
  stores without tagging support (``tag_store = "metadata"`` uses only the latter). A
  multipart upload sends them when it starts, and sets the object tags again once it is
  complete: Ceph RGW drops tags given to ``CreateMultipartUpload`` (the metadata copy
  survives, so readers, who take the union, are never under-told);
* POSIX: extended attributes ``user.hpcai.<key>`` set on a temporary file that is then
  renamed into place (atomic), or a hidden sidecar ``.hpcai-tags.<name>.json`` written
  *before* the data where the file system has no user xattrs;
* other fsspec protocols: the sidecar;
* zarr arrays and groups: ``attributes["hpcai"]["tags"]`` in ``zarr.json``.

Reading returns the *union* of every place a tag set is recorded (object tags and the
metadata copy; xattrs and the sidecar): no copy can hide another. :meth:`TagBackend.retag`
changes the tags of an existing object (only ``untag`` removes any, and audits it first).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import json
import os
import re
import threading
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any, BinaryIO

import fsspec.asyn

from hpcai._tags import TagSet, as_mapping, union
from hpcai.errors import HpcaiError, InvalidArgumentError, StorageError

__all__ = [
    "GenericTagBackend",
    "LocalTagBackend",
    "LocalTagReader",
    "S3TagBackend",
    "TagBackend",
    "decode_value",
    "encode_value",
    "is_hidden",
    "node_tags",
    "tags_from_json",
    "tags_to_json",
    "write_local_tags",
]

HIDDEN_PREFIX = ".hpcai-"
SIDECAR_PREFIX = ".hpcai-tags."
TMP_PREFIX = ".hpcai-tmp-"
S3_TAG_PREFIX = "hpcai."
S3_META_KEY = "hpcai-tags"
XATTR_PREFIX = "user.hpcai."
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=@-]+$")
_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,100}$")
_S3_MAX_TAGS = 10
#: S3's smallest multipart part: no upload below this size is a multipart one.
_S3_MIN_PART = 5 * 2**20
#: The part size of :meth:`S3TagBackend.put` and ``put_file`` (s3fs's default for ``pipe_file``).
_S3_CHUNK = 50 * 2**20


# --------------------------------------------------------------------------------------------
# encodings
# --------------------------------------------------------------------------------------------
def tags_to_json(tags: TagSet | None) -> dict[str, list[str]]:
    """``{key: sorted values}``: the JSON form of a tag set (sidecars, zarr attributes, metadata)."""
    return {k: sorted(v) for k, v in as_mapping(tags).items()}


def tags_from_json(obj: Any, where: str) -> TagSet | None:
    """Parse the JSON form back into a tag set; malformed input is an error naming *where*."""
    if obj is None or obj == {}:
        return None
    if not isinstance(obj, Mapping):
        raise InvalidArgumentError(f"{where}: stored tags must be an object {{key: [values]}}, got {obj!r}")
    pairs: set[tuple[str, str]] = set()
    for k, vs in obj.items():
        if isinstance(vs, str):
            vs = [vs]
        if not isinstance(k, str) or not isinstance(vs, list) or not all(isinstance(v, str) for v in vs):
            raise InvalidArgumentError(f"{where}: stored tag {k!r} must map to a list of strings, got {vs!r}")
        pairs.update((k, v) for v in vs)
    return frozenset(pairs) or None


def check_key(key: str) -> None:
    """Tag keys must be usable as S3 tag keys and xattr names (the residency grammar's identifiers)."""
    if not _SAFE_KEY.match(key):
        raise InvalidArgumentError(
            f"tag key {key!r} cannot be stored: keys are letters, digits, '_', '.', '-' "
            "(starting with a letter or '_', at most 101 characters)"
        )


def encode_value(values: frozenset[str] | list[str]) -> str:
    """``"DE"``, ``"DE+FR"``, or ``"b64:..."`` for values outside the S3 tag character set.

    ``+`` joins values and is never part of one written plainly (a value holding ``+``, or
    any character outside ``[A-Za-z0-9 _.:/=@-]``, makes the whole set ``b64:``).
    """
    vs = sorted(values)
    if vs and all(_SAFE_VALUE.match(v) and not v.startswith("b64:") for v in vs):
        return "+".join(vs)
    raw = json.dumps(vs, separators=(",", ":")).encode()
    return "b64:" + base64.urlsafe_b64encode(raw).decode()


def decode_value(text: str) -> list[str]:
    """Inverse of :func:`encode_value`."""
    if text.startswith("b64:"):
        out = json.loads(base64.urlsafe_b64decode(text[4:].encode()))
        if not isinstance(out, list) or not all(isinstance(v, str) for v in out):
            raise InvalidArgumentError(f"malformed stored tag value {text!r}")
        return out
    return text.split("+")


def is_hidden(name: str) -> bool:
    """Whether a path's last component is hpcai-internal (sidecars, temporary files)."""
    return name.rsplit("/", 1)[-1].startswith(HIDDEN_PREFIX)


def sidecar_path(path: str) -> str:
    """``dir/.hpcai-tags.<name>.json`` for ``dir/<name>``."""
    head, _, name = path.rpartition("/")
    side = f"{SIDECAR_PREFIX}{name}.json"
    return f"{head}/{side}" if head else side


def node_tags(meta: Mapping[str, Any], where: str) -> TagSet | None:
    """The tags of a zarr node from its parsed ``zarr.json``."""
    attrs = meta.get("attributes") or {}
    h = attrs.get("hpcai") if isinstance(attrs, Mapping) else None
    if not isinstance(h, Mapping):
        return None
    return tags_from_json(h.get("tags"), where)


def _s3_tag_pairs(tags: TagSet | None) -> dict[str, str] | None:
    """``{"hpcai.<key>": encoded values}``, or ``None`` when there are none or more than S3 allows."""
    m = as_mapping(tags)
    if not m or len(m) > _S3_MAX_TAGS:
        return None
    for k in m:
        check_key(k)
    return {S3_TAG_PREFIX + k: encode_value(v) for k, v in m.items()}


def _tagging_query(pairs: Mapping[str, str]) -> str:
    """The ``x-amz-tagging`` header: a query string, percent-encoded throughout.

    Not ``urlencode``'s default ``+`` for a space: S3 decodes it, Ceph RGW does not (a value
    ``"climate model/v2"`` came back from RGW 16.2 as ``"climate+model/v2"``, i.e. two values).
    """
    return urllib.parse.urlencode(dict(pairs), quote_via=urllib.parse.quote, safe="")


def _s3_tagging(tags: TagSet | None) -> str | None:
    pairs = _s3_tag_pairs(tags)
    return None if pairs is None else _tagging_query(pairs)


def _meta_json(tags: TagSet | None) -> str:
    return json.dumps(tags_to_json(tags), ensure_ascii=True, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------
class TagBackend:
    """Writes data together with its tags, and reads tags back, for one endpoint.

    Paths are the wrapped filesystem's own (already checked against the endpoint root).
    Implementations raise the wrapped library's exceptions; the endpoint filesystem
    retries transient ones and translates the rest.
    """

    kind: str = "sidecar"

    async def put(self, path: str, data: bytes, tags: TagSet | None, *, durable: bool = False) -> None:
        """Write *data* at *path* carrying *tags*; readers see the old object or the new one."""
        raise NotImplementedError

    async def put_file(self, lpath: str, path: str, tags: TagSet | None) -> None:
        """Upload the local file *lpath* to *path* with *tags*."""
        with open(lpath, "rb") as f:
            data = f.read()
        await self.put(path, data, tags)

    def open_write(self, path: str, tags: TagSet | None, **kwargs: Any) -> BinaryIO:
        """A binary file open for writing whose content and tags appear together on close."""
        raise NotImplementedError

    async def read(self, path: str) -> TagSet | None:
        """The tags stored with the object at *path* (``None`` if untagged)."""
        raise NotImplementedError

    async def read_places(self, path: str) -> dict[str, TagSet | None]:
        """The tags recorded in each place this backend keeps them for *path*, by place
        (``"object-tags"``, ``"metadata"``, ``"xattr"``, ``"sidecar"``): :meth:`read` is their
        union. For checks that every copy holds the whole tag set (the conformance suite)."""
        return {self.kind: await self.read(path)}

    async def removed(self, path: str) -> None:
        """Called after the object at *path* was deleted (drop a sidecar)."""

    async def retag(self, path: str, tags: TagSet | None) -> None:
        """Make the tags stored with the existing object at *path* exactly *tags* (data unchanged)."""
        raise NotImplementedError

    async def add_tags(self, path: str, tags: TagSet | None) -> None:
        """Add *tags* to those stored with the existing object at *path*."""
        if not tags:
            return
        own = await self.read(path)
        if own is None or not tags <= own:
            await self.retag(path, union(own, tags))


class _GuardedWriter(io.RawIOBase):
    """A write-only file that commits on a clean ``close`` and discards on an exception."""

    def __init__(self, f: Any, on_commit: Any = None, on_discard: Any = None) -> None:
        super().__init__()
        self._f = f
        self._on_commit = on_commit
        self._on_discard = on_discard
        self._done = False
        self.nbytes = 0  # written so far (what on_commit may need to know)

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        n = self._f.write(b)
        n = memoryview(b).nbytes if n is None else int(n)
        self.nbytes += n
        return n

    def tell(self) -> int:
        return int(self._f.tell())

    def flush(self) -> None:
        if not self._done:
            self._f.flush()

    def discard(self) -> None:
        """Abandon the write: nothing (no partial object, no sidecar) is left behind."""
        if self._done:
            return
        self._done = True
        try:
            d = getattr(self._f, "discard", None)
            if d is not None and hasattr(self._f, "fs"):  # an fsspec buffered file
                d()
                self._f.closed = True  # never committed later by __del__
            else:
                self._f.close()
        finally:
            if self._on_discard is not None:
                self._on_discard()
            super().close()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._f.close()
            if self._on_commit is not None:
                self._on_commit()
        except BaseException:
            if self._on_discard is not None:
                self._on_discard()
            raise
        finally:
            super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class S3TagBackend(TagBackend):
    """S3 object tags (plus a metadata copy), or metadata alone where tagging is unsupported."""

    def __init__(self, fs: Any, mode: str) -> None:
        self.fs = fs
        self.kind = "metadata" if mode == "metadata" else "object-tags"
        self._auto = mode == "auto"

    def _kwargs(self, tags: TagSet | None) -> dict[str, Any]:
        if not tags:
            return {}
        kw: dict[str, Any] = {"Metadata": {S3_META_KEY: _meta_json(tags)}}
        if self.kind == "object-tags":
            tagging = _s3_tagging(tags)
            if tagging is None:
                if not self._auto:
                    raise InvalidArgumentError(
                        f"S3 allows at most {_S3_MAX_TAGS} object tags; these data carry {len(as_mapping(tags))} "
                        "tag keys: set tag_store = 'metadata' (or 'auto') for the endpoint"
                    )
            else:
                kw["Tagging"] = tagging
        return kw

    @staticmethod
    def _unsupported(exc: BaseException) -> bool:
        text = str(exc)
        return "NotImplemented" in text or "not implemented" in text.lower()

    async def put(self, path: str, data: bytes, tags: TagSet | None, *, durable: bool = False) -> None:
        kw = self._kwargs(tags)
        try:
            await self.fs._pipe_file(path, data, chunksize=_S3_CHUNK, **kw)
        except OSError as exc:
            if "Tagging" in kw and self._auto and self._unsupported(exc):
                self.kind = "metadata"
                kw.pop("Tagging")
                await self.fs._pipe_file(path, data, chunksize=_S3_CHUNK, **kw)
            else:
                raise
        if "Tagging" in kw and len(data) >= 2 * _S3_CHUNK:  # s3fs went multipart
            await self._retag_completed(path, tags)

    async def put_file(self, lpath: str, path: str, tags: TagSet | None) -> None:
        kw = self._kwargs(tags)
        size = os.path.getsize(lpath)
        await self.fs._put_file(lpath, path, chunksize=_S3_CHUNK, **kw)
        if "Tagging" in kw and size >= 2 * _S3_CHUNK:  # may have been multipart (s3fs may grow the part size)
            await self._retag_completed(path, tags)

    def open_write(self, path: str, tags: TagSet | None, **kwargs: Any) -> BinaryIO:
        kw = self._kwargs(tags)
        f = self.fs.open(path, "wb", **kwargs, **kw)
        if "Tagging" not in kw:
            return _GuardedWriter(f)  # type: ignore[return-value]
        writer: list[_GuardedWriter] = []

        def commit() -> None:
            # a buffered write of a block or more went multipart (no part is under 5 MiB)
            if writer[0].nbytes >= _S3_MIN_PART:
                fsspec.asyn.sync(self.fs.loop, self._retag_completed, path, tags)

        writer.append(_GuardedWriter(f, commit))
        return writer[0]  # type: ignore[return-value]

    async def _retag_completed(self, path: str, tags: TagSet | None) -> None:
        """Set the hpcai object tags of a freshly completed multipart upload (it has no others).

        ``CreateMultipartUpload`` takes ``Tagging`` on AWS S3 and moto, but Ceph RGW (16.2)
        drops it while keeping the metadata; ``PutObjectTagging`` afterwards works on all.
        """
        pairs = _s3_tag_pairs(tags)
        if pairs is None or self.kind != "object-tags":
            return
        bucket, key, _ = self.fs.split_path(path)
        tagset = [{"Key": k, "Value": v} for k, v in sorted(pairs.items())]
        try:
            await self.fs._call_s3("put_object_tagging", Bucket=bucket, Key=key, Tagging={"TagSet": tagset})
        except OSError as exc:
            if not (self._auto and self._unsupported(exc)):
                raise
            self.kind = "metadata"

    async def _object_tags(self, bucket: str, key: str) -> tuple[set[tuple[str, str]], list[dict[str, str]]]:
        """The hpcai pairs among the object's tags, and the object's whole tag set."""
        out = await self.fs._call_s3("get_object_tagging", Bucket=bucket, Key=key)
        pairs: set[tuple[str, str]] = set()
        tagset = list(out.get("TagSet", []))
        for t in tagset:
            k = t.get("Key", "")
            if k.startswith(S3_TAG_PREFIX):
                pairs.update((k[len(S3_TAG_PREFIX):], v) for v in decode_value(t.get("Value", "")))
        return pairs, tagset

    async def read(self, path: str) -> TagSet | None:
        """The union of the object's hpcai tags and the metadata copy (every place they are recorded)."""
        bucket, key, _ = self.fs.split_path(path)
        head_task = asyncio.ensure_future(self.fs._call_s3("head_object", Bucket=bucket, Key=key))
        pairs: set[tuple[str, str]] = set()
        try:
            if self.kind == "object-tags":
                try:
                    pairs, _ = await self._object_tags(bucket, key)
                except OSError as exc:
                    if not (self._auto and self._unsupported(exc)):
                        raise
                    self.kind = "metadata"
            head = await head_task
        finally:
            if not head_task.done():
                head_task.cancel()
            elif not head_task.cancelled():
                head_task.exception()  # retrieved: never "exception was never retrieved"
        raw = (head.get("Metadata") or {}).get(S3_META_KEY)
        if raw is not None:
            pairs |= set(tags_from_json(json.loads(raw), f"s3://{bucket}/{key} metadata") or ())
        return frozenset(pairs) or None

    async def retag(self, path: str, tags: TagSet | None) -> None:
        """Replace the hpcai tags and metadata copy: a server-side ``CopyObject`` onto itself (new
        metadata and, where the store honours ``x-amz-tagging`` on a copy, new tags in one step),
        then ``PutObjectTagging``: Ceph RGW 16.2 ignores the tags sent with a copy and drops the
        object's tags when the metadata is replaced. In between, the metadata copy already holds
        the new tags, so readers (who take the union) are never under-told."""
        bucket, key, _ = self.fs.split_path(path)
        head = await self.fs._call_s3("head_object", Bucket=bucket, Key=key)
        if int(head.get("ContentLength") or 0) > 5 * 2**30:
            raise StorageError(
                f"s3://{bucket}/{key}: changing the tags of an object over 5 GiB needs a multipart copy, "
                "which hpcai does not do; copy the object to a new key with the tags wanted instead"
            )
        meta = {k: v for k, v in (head.get("Metadata") or {}).items() if k != S3_META_KEY}
        if tags:
            meta[S3_META_KEY] = _meta_json(tags)
        kw: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "CopySource": {"Bucket": bucket, "Key": key},
            "MetadataDirective": "REPLACE",
            "Metadata": meta,
        }
        for h in ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl"):
            if head.get(h):
                kw[h] = head[h]
        merged: dict[str, str] | None = None
        if self.kind == "object-tags":
            try:
                _, tagset = await self._object_tags(bucket, key)
            except OSError as exc:
                if not (self._auto and self._unsupported(exc)):
                    raise
                tagset = []
            keep = {t["Key"]: t["Value"] for t in tagset if not t.get("Key", "").startswith(S3_TAG_PREFIX)}
            merged = {**keep, **(_s3_tag_pairs(tags) or {})}
            kw["TaggingDirective"] = "REPLACE"
            kw["Tagging"] = _tagging_query(merged)
        await self.fs._call_s3("copy_object", **kw)
        if merged is not None and self.kind == "object-tags":
            if merged:
                tagset = [{"Key": k, "Value": v} for k, v in sorted(merged.items())]
                await self.fs._call_s3("put_object_tagging", Bucket=bucket, Key=key, Tagging={"TagSet": tagset})
            else:
                await self.fs._call_s3("delete_object_tagging", Bucket=bucket, Key=key)

    async def read_places(self, path: str) -> dict[str, TagSet | None]:
        bucket, key, _ = self.fs.split_path(path)
        out: dict[str, TagSet | None] = {}
        if self.kind == "object-tags":
            pairs, _ = await self._object_tags(bucket, key)
            out["object-tags"] = frozenset(pairs) or None
        head = await self.fs._call_s3("head_object", Bucket=bucket, Key=key)
        raw = (head.get("Metadata") or {}).get(S3_META_KEY)
        out["metadata"] = None if raw is None else tags_from_json(json.loads(raw), f"s3://{bucket}/{key} metadata")
        return out


_xattr_ok: dict[int, bool] = {}
_xattr_lock = threading.Lock()
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _xattr_supported(dfd: int) -> bool:
    """Whether the file system holding the directory *dfd* accepts ``user.*`` extended attributes."""
    try:
        dev = os.fstat(dfd).st_dev
    except OSError:
        return False
    with _xattr_lock:
        ok = _xattr_ok.get(dev)
    if ok is not None:
        return ok
    probe = f"{TMP_PREFIX}probe-{uuid.uuid4().hex}"
    ok = False
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError:
        return False
    try:
        os.setxattr(fd, XATTR_PREFIX + "probe", b"1")
        ok = True
    except (OSError, AttributeError):
        ok = False
    finally:
        os.close(fd)
        try:
            os.unlink(probe, dir_fd=dfd)
        except OSError:
            pass
    with _xattr_lock:
        _xattr_ok[dev] = ok
    return ok


def _read_xattrs(fd: int) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    try:
        names = os.listxattr(fd)
    except OSError:
        return pairs
    for n in names:
        if n.startswith(XATTR_PREFIX):
            try:
                raw = os.getxattr(fd, n)
            except OSError:
                continue
            pairs.update((n[len(XATTR_PREFIX):], v) for v in decode_value(raw.decode()))
    return pairs


def _set_xattrs(fd: int, tags: TagSet | None, *, exact: bool = False) -> None:
    """Set ``user.hpcai.<key>`` for *tags*; with *exact*, remove the hpcai keys not in *tags*."""
    m = as_mapping(tags)
    if exact:
        try:
            names = os.listxattr(fd)
        except OSError:
            names = []
        for n in names:
            if n.startswith(XATTR_PREFIX) and n[len(XATTR_PREFIX):] not in m:
                os.removexattr(fd, n)
    for k, vs in m.items():
        check_key(k)
        try:
            os.setxattr(fd, XATTR_PREFIX + k, encode_value(vs).encode())
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise InvalidArgumentError(
                    "this file system has no user extended attributes; set tag_store = 'sidecar' "
                    "(or 'auto') for the endpoint"
                ) from None
            raise


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class LocalTagBackend(TagBackend):
    """POSIX: ``user.hpcai.*`` extended attributes, or a hidden JSON sidecar.

    Every operation is confined by the endpoint's :class:`~hpcai.storage._posix.Beneath`:
    files are created, renamed, tagged and read relative to the descriptor of their
    directory, never by path.
    """

    def __init__(self, mode: str, beneath: Any) -> None:
        if mode in ("object-tags", "metadata"):
            raise InvalidArgumentError(f"tag_store = {mode!r} is for S3 endpoints; POSIX uses 'xattr' or 'sidecar'")
        self.mode = mode
        self.b = beneath

    def _use_xattr(self, dfd: int) -> bool:
        if self.mode == "sidecar":
            return False
        if self.mode == "xattr":
            return True
        return _xattr_supported(dfd)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "sidecar" if self.mode == "sidecar" else "xattr"

    # -- helpers relative to a directory descriptor -------------------------------------------
    @staticmethod
    def _sidecar_name(name: str) -> str:
        return f"{SIDECAR_PREFIX}{name}.json"

    def _write_sidecar(self, dfd: int, name: str, tags: TagSet | None, durable: bool) -> None:
        side = self._sidecar_name(name)
        if not tags:
            try:
                os.unlink(side, dir_fd=dfd)
            except FileNotFoundError:
                pass
            return
        payload = json.dumps(tags_to_json(tags), sort_keys=True).encode()
        self._atomic(dfd, side, lambda fd: _write_all(fd, payload), None, use_xattr=False, durable=durable)

    def _atomic(self, dfd: int, name: str, fill: Any, tags: TagSet | None, *, use_xattr: bool, durable: bool) -> None:
        """Write a temporary file in *dfd* (``fill(fd)``), tag it, optionally fsync, rename it to *name*."""
        tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o666, dir_fd=dfd)
        try:
            try:
                fill(fd)
                if use_xattr and tags:
                    _set_xattrs(fd, tags)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise

    def _put(self, path: str, fill: Any, tags: TagSet | None, durable: bool) -> None:
        rel = self.b.rel(path)
        with self.b.parent(rel, "write", create=True) as (dfd, name):
            if name == ".":
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            use_x = self._use_xattr(dfd)
            if not use_x and tags:
                self._write_sidecar(dfd, name, tags, durable)  # tags first: data never appears untagged
            self._atomic(dfd, name, fill, tags, use_xattr=use_x, durable=durable)
            if not use_x and not tags:
                self._write_sidecar(dfd, name, None, durable)

    def put_sync(self, path: str, data: Any, tags: TagSet | None, durable: bool = False) -> None:
        """Synchronous :meth:`put` (the work runs in a thread for the async API)."""
        self._put(path, lambda fd: _write_all(fd, data), tags, durable)

    async def put(self, path: str, data: bytes, tags: TagSet | None, *, durable: bool = False) -> None:
        await asyncio.to_thread(self.put_sync, path, data, tags, durable)

    def put_file_sync(self, lpath: str, path: str, tags: TagSet | None) -> None:
        """Copy a local file (outside the endpoint) into place with tags (atomic)."""

        def fill(fd: int) -> None:
            with open(lpath, "rb") as src:
                while chunk := src.read(1 << 20):
                    _write_all(fd, chunk)

        self._put(path, fill, tags, False)

    async def put_file(self, lpath: str, path: str, tags: TagSet | None) -> None:
        await asyncio.to_thread(self.put_file_sync, lpath, path, tags)

    def copy_sync(self, src: str, path: str, tags: TagSet | None) -> None:
        """Copy the endpoint file *src* to *path* with tags; both confined."""
        sfd = self.b.open(self.b.rel(src), "copy")

        def fill(fd: int) -> None:
            with os.fdopen(os.dup(sfd), "rb") as f:
                while chunk := f.read(1 << 20):
                    _write_all(fd, chunk)

        try:
            self._put(path, fill, tags, False)
        finally:
            os.close(sfd)

    def open_write(self, path: str, tags: TagSet | None, **kwargs: Any) -> BinaryIO:
        rel = self.b.rel(path)
        dfd, name = self.b._resolve(rel, "open", follow_last=False, create=True)
        try:
            if name == ".":
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            use_x = self._use_xattr(dfd)
            side_written = False
            if not use_x and tags:
                self._write_sidecar(dfd, name, tags, False)
                side_written = True
            tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o666, dir_fd=dfd)
            if use_x and tags:
                try:
                    _set_xattrs(fd, tags)
                except BaseException:
                    os.close(fd)
                    os.unlink(tmp, dir_fd=dfd)
                    raise
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(dfd)
            raise

        def commit() -> None:
            try:
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                if not use_x and not tags:
                    self._write_sidecar(dfd, name, None, False)
            finally:
                os.close(dfd)

        def discard() -> None:
            try:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
                if side_written:
                    try:
                        os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    except FileNotFoundError:
                        try:
                            os.unlink(self._sidecar_name(name), dir_fd=dfd)
                        except OSError:
                            pass
            finally:
                os.close(dfd)

        return _GuardedWriter(f, commit, discard)  # type: ignore[return-value]

    def read_sync(self, path: str) -> TagSet | None:
        """Synchronous :meth:`read`: the union of the xattrs and the sidecar."""
        rel = self.b.rel(path)
        pairs: set[tuple[str, str]] = set()
        with self.b.parent(rel, "read tags", follow_last=True) as (dfd, name):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
            try:
                pairs |= _read_xattrs(fd)
            finally:
                os.close(fd)
            if name != ".":
                side = self._sidecar_name(name)
                try:
                    sfd = os.open(side, os.O_RDONLY | os.O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
                except FileNotFoundError:
                    sfd = -1
                if sfd >= 0:
                    with os.fdopen(sfd, "rb") as f:
                        raw = f.read()
                    pairs |= set(tags_from_json(json.loads(raw), sidecar_path(path)) or ())
        return frozenset(pairs) or None

    async def read(self, path: str) -> TagSet | None:
        return await asyncio.to_thread(self.read_sync, path)

    def _read_places_sync(self, path: str) -> dict[str, TagSet | None]:
        rel = self.b.rel(path)
        out: dict[str, TagSet | None] = {}
        with self.b.parent(rel, "read tags", follow_last=True) as (dfd, name):
            use_x = self._use_xattr(dfd)
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
            try:
                x = _read_xattrs(fd)
            finally:
                os.close(fd)
            if use_x or x:
                out["xattr"] = frozenset(x) or None
            if name != ".":
                try:
                    sfd = os.open(self._sidecar_name(name), os.O_RDONLY | os.O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC,
                                  dir_fd=dfd)
                except FileNotFoundError:
                    sfd = -1
                if sfd >= 0:
                    with os.fdopen(sfd, "rb") as f:
                        out["sidecar"] = tags_from_json(json.loads(f.read()), sidecar_path(path))
                elif not use_x:
                    out["sidecar"] = None
        return out

    async def read_places(self, path: str) -> dict[str, TagSet | None]:
        return await asyncio.to_thread(self._read_places_sync, path)

    def retag_sync(self, path: str, tags: TagSet | None) -> None:
        """Make the stored tags of *path* exactly *tags* (xattrs and sidecar alike)."""
        rel = self.b.rel(path)
        with self.b.parent(rel, "retag", follow_last=True) as (dfd, name):
            use_x = self._use_xattr(dfd)
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
            try:
                if use_x:
                    _set_xattrs(fd, tags, exact=True)
                elif _read_xattrs(fd):
                    _set_xattrs(fd, None, exact=True)
            finally:
                os.close(fd)
            if name == ".":
                return
            try:
                os.stat(self._sidecar_name(name), dir_fd=dfd, follow_symlinks=False)
                has_side = True
            except FileNotFoundError:
                has_side = False
            if not use_x or has_side:
                self._write_sidecar(dfd, name, None if use_x else tags, False)

    async def retag(self, path: str, tags: TagSet | None) -> None:
        await asyncio.to_thread(self.retag_sync, path, tags)

    async def removed(self, path: str) -> None:
        await asyncio.to_thread(self._remove_sidecar, path)

    def _remove_sidecar(self, path: str) -> None:
        try:
            with self.b.parent(self.b.rel(path), "rm") as (dfd, name):
                if name != ".":
                    try:
                        os.unlink(self._sidecar_name(name), dir_fd=dfd)
                    except OSError:
                        pass
        except (OSError, HpcaiError):
            pass


class GenericTagBackend(TagBackend):
    """Any other fsspec protocol: a hidden JSON sidecar written through the same filesystem."""

    kind = "sidecar"

    def __init__(self, afs: Any, sfs: Any) -> None:
        self.afs = afs
        self.sfs = sfs

    async def put(self, path: str, data: bytes, tags: TagSet | None, *, durable: bool = False) -> None:
        side = sidecar_path(path)
        if tags:
            await self.afs._pipe_file(side, json.dumps(tags_to_json(tags), sort_keys=True).encode())
        await self.afs._pipe_file(path, data)
        if not tags:
            try:
                await self.afs._rm_file(side)
            except FileNotFoundError:
                pass

    def open_write(self, path: str, tags: TagSet | None, **kwargs: Any) -> BinaryIO:
        side = sidecar_path(path)
        if tags:
            self.sfs.pipe_file(side, json.dumps(tags_to_json(tags), sort_keys=True).encode())
        f = self.sfs.open(path, "wb", **kwargs)

        def commit() -> None:
            if not tags and self.sfs.exists(side):
                self.sfs.rm_file(side)

        def discard() -> None:
            if tags and not self.sfs.exists(path):
                self.sfs.rm_file(side)

        return _GuardedWriter(f, commit, discard)  # type: ignore[return-value]

    async def read(self, path: str) -> TagSet | None:
        if not await self.afs._exists(path):
            raise FileNotFoundError(path)
        try:
            raw = await self.afs._cat_file(sidecar_path(path))
        except FileNotFoundError:
            return None
        return tags_from_json(json.loads(raw), sidecar_path(path))

    async def removed(self, path: str) -> None:
        try:
            await self.afs._rm_file(sidecar_path(path))
        except (FileNotFoundError, OSError):
            pass

    async def retag(self, path: str, tags: TagSet | None) -> None:
        side = sidecar_path(path)
        if tags:
            await self.afs._pipe_file(side, json.dumps(tags_to_json(tags), sort_keys=True).encode())
        else:
            try:
                await self.afs._rm_file(side)
            except FileNotFoundError:
                pass


# --------------------------------------------------------------------------------------------
# tags of local files (outside every endpoint): what downloads leave and uploads honour
# --------------------------------------------------------------------------------------------
def write_local_tags(path: str, tags: TagSet | None, *, sidecar: bool = True) -> bool:
    """Record *tags* with a downloaded local file: ``user.hpcai.*`` xattrs, else (*sidecar*) a hidden
    sidecar. Best effort on the local disk (which hpcai does not govern); uploads read both back.
    Returns whether the xattrs were set.
    """
    if not tags:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _O_CLOEXEC)
    except OSError:
        return False
    try:
        _set_xattrs(fd, tags)
        return True
    except (OSError, InvalidArgumentError):
        pass
    finally:
        os.close(fd)
    if not sidecar:
        return False
    head, name = os.path.split(path)
    side = os.path.join(head, f"{SIDECAR_PREFIX}{name}.json")
    try:
        with open(side, "w") as f:
            json.dump(tags_to_json(tags), f, sort_keys=True)
    except OSError:
        pass
    return False


class LocalTagReader:
    """The tags recorded inside local files and directories, for uploads.

    A local file's tags are the union of its own (``user.hpcai.*`` xattrs, a
    ``.hpcai-tags.<name>.json`` sidecar: what hpcai downloads leave) and those of every
    zarr node enclosing it on the local disk (``attributes.hpcai.tags`` of each
    ``zarr.json`` in the file's directory and above, plus that ``zarr.json``'s own
    xattrs/sidecar). A ``zarr.json`` contributes its own content's tags too.
    """

    def __init__(self) -> None:
        self._dirs: dict[str, TagSet | None] = {}

    @staticmethod
    def own(path: str) -> TagSet | None:
        """xattrs and sidecar of one local file."""
        pairs: set[tuple[str, str]] = set()
        try:
            fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC)
        except OSError:
            return None
        try:
            pairs |= _read_xattrs(fd)
        finally:
            os.close(fd)
        head, name = os.path.split(path)
        try:
            with open(os.path.join(head, f"{SIDECAR_PREFIX}{name}.json"), "rb") as f:
                pairs |= set(tags_from_json(json.loads(f.read()), path) or ())
        except (OSError, ValueError, InvalidArgumentError):
            pass
        return frozenset(pairs) or None

    @staticmethod
    def _meta(path: str) -> TagSet | None:
        try:
            with open(path, "rb") as f:
                meta = json.loads(f.read())
        except (OSError, ValueError):
            return None
        try:
            return node_tags(meta, path) if isinstance(meta, Mapping) else None
        except InvalidArgumentError:
            return None

    def _dir(self, d: str) -> TagSet | None:
        """The tags of the zarr nodes at *d* and above."""
        if d in self._dirs:
            return self._dirs[d]
        parent = os.path.dirname(d)
        t = None if parent == d else self._dir(parent)
        meta = os.path.join(d, "zarr.json")
        if os.path.isfile(meta):
            t = union(union(t, self._meta(meta)), self.own(meta))
        self._dirs[d] = t
        return t

    def tags(self, path: str) -> TagSet | None:
        """The tags an upload of the local file *path* carries."""
        path = os.path.abspath(path)
        t = union(self.own(path), self._dir(os.path.dirname(path)))
        if os.path.basename(path) == "zarr.json":
            t = union(t, self._meta(path))
        return t

