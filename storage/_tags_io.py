"""Residency tags persisted with the data.

One tag model (:mod:`hpcai._tags`: a frozenset of ``(key, value)`` pairs), several places
to keep it, chosen per endpoint:

* S3: object tags ``hpcai.<key> = value[+value...]`` sent in the same ``PutObject`` as the
  data (so data and tags appear together), plus a ``x-amz-meta-hpcai-tags`` JSON copy for
  stores without tagging support (``tag_store = "metadata"`` uses only the latter);
* POSIX: extended attributes ``user.hpcai.<key>`` set on a temporary file that is then
  renamed into place (atomic), or a hidden sidecar ``.hpcai-tags.<name>.json`` written
  *before* the data where the file system has no user xattrs;
* other fsspec protocols: the sidecar;
* zarr arrays and groups: ``attributes["hpcai"]["tags"]`` in ``zarr.json``.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import json
import os
import re
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any, BinaryIO

from hpcai._tags import TagSet, as_mapping
from hpcai.errors import InvalidArgumentError

__all__ = [
    "GenericTagBackend",
    "LocalTagBackend",
    "S3TagBackend",
    "TagBackend",
    "decode_value",
    "encode_value",
    "is_hidden",
    "node_tags",
    "tags_from_json",
    "tags_to_json",
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
    """``"DE"``, ``"DE+FR"``, or ``"b64:..."`` for values outside the S3 tag character set."""
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


def _s3_tagging(tags: TagSet | None) -> str | None:
    m = as_mapping(tags)
    if not m or len(m) > _S3_MAX_TAGS:
        return None
    for k in m:
        check_key(k)
    return urllib.parse.urlencode({S3_TAG_PREFIX + k: encode_value(v) for k, v in m.items()})


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

    async def removed(self, path: str) -> None:
        """Called after the object at *path* was deleted (drop a sidecar)."""


class _GuardedWriter(io.RawIOBase):
    """A write-only file that commits on a clean ``close`` and discards on an exception."""

    def __init__(self, f: Any, on_commit: Any = None, on_discard: Any = None) -> None:
        super().__init__()
        self._f = f
        self._on_commit = on_commit
        self._on_discard = on_discard
        self._done = False

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        n = self._f.write(b)
        return len(b) if n is None else int(n)

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
            await self.fs._pipe_file(path, data, **kw)
        except OSError as exc:
            if "Tagging" in kw and self._auto and self._unsupported(exc):
                self.kind = "metadata"
                kw.pop("Tagging")
                await self.fs._pipe_file(path, data, **kw)
            else:
                raise

    async def put_file(self, lpath: str, path: str, tags: TagSet | None) -> None:
        await self.fs._put_file(lpath, path, **self._kwargs(tags))

    def open_write(self, path: str, tags: TagSet | None, **kwargs: Any) -> BinaryIO:
        f = self.fs.open(path, "wb", **kwargs, **self._kwargs(tags))
        return _GuardedWriter(f)  # type: ignore[return-value]

    async def read(self, path: str) -> TagSet | None:
        bucket, key, _ = self.fs.split_path(path)
        if self.kind == "object-tags":
            try:
                out = await self.fs._call_s3("get_object_tagging", Bucket=bucket, Key=key)
            except OSError as exc:
                if not (self._auto and self._unsupported(exc)):
                    raise
                self.kind = "metadata"
            else:
                pairs: set[tuple[str, str]] = set()
                for t in out.get("TagSet", []):
                    k = t.get("Key", "")
                    if k.startswith(S3_TAG_PREFIX):
                        pairs.update((k[len(S3_TAG_PREFIX):], v) for v in decode_value(t.get("Value", "")))
                if pairs:
                    return frozenset(pairs)
        head = await self.fs._call_s3("head_object", Bucket=bucket, Key=key)
        meta = head.get("Metadata") or {}
        raw = meta.get(S3_META_KEY)
        if raw is None:
            return None
        return tags_from_json(json.loads(raw), f"s3://{bucket}/{key} metadata")


_xattr_ok: dict[int, bool] = {}
_xattr_dirs: dict[str, bool] = {}
_xattr_lock = threading.Lock()


def _xattr_supported(directory: str) -> bool:
    """Whether the file system holding *directory* accepts ``user.*`` extended attributes."""
    known = _xattr_dirs.get(directory)
    if known is not None:
        return known
    try:
        dev = os.stat(directory).st_dev
    except OSError:
        return False
    with _xattr_lock:
        ok = _xattr_ok.get(dev)
    if ok is not None:
        if len(_xattr_dirs) > 4096:
            _xattr_dirs.clear()
        _xattr_dirs[directory] = ok
        return ok
    probe = os.path.join(directory, f"{TMP_PREFIX}probe-{uuid.uuid4().hex}")
    ok = False
    try:
        with open(probe, "wb") as f:
            try:
                os.setxattr(f.fileno(), XATTR_PREFIX + "probe", b"1")
                ok = True
            except (OSError, AttributeError):
                ok = False
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
    with _xattr_lock:
        _xattr_ok[dev] = ok
    return ok


class LocalTagBackend(TagBackend):
    """POSIX: ``user.hpcai.*`` extended attributes, or a hidden JSON sidecar."""

    def __init__(self, mode: str) -> None:
        if mode in ("object-tags", "metadata"):
            raise InvalidArgumentError(f"tag_store = {mode!r} is for S3 endpoints; POSIX uses 'xattr' or 'sidecar'")
        self.mode = mode

    def _use_xattr(self, directory: str) -> bool:
        if self.mode == "sidecar":
            return False
        if self.mode == "xattr":
            return True
        return _xattr_supported(directory)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "sidecar" if self.mode == "sidecar" else "xattr"

    @staticmethod
    def _set_xattrs(fd: int, tags: TagSet | None) -> None:
        for k, vs in as_mapping(tags).items():
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

    def _write_sidecar(self, path: str, tags: TagSet | None, durable: bool) -> None:
        side = sidecar_path(path)
        if not tags:
            try:
                os.unlink(side)
            except FileNotFoundError:
                pass
            return
        payload = json.dumps(tags_to_json(tags), sort_keys=True).encode()
        self._atomic_write(side, payload, None, use_xattr=False, durable=durable)

    def _atomic_write(
        self,
        path: str,
        data: Any,
        tags: TagSet | None,
        *,
        use_xattr: bool,
        durable: bool,
        source: str | None = None,
    ) -> None:
        """Write *data* (or copy the local file *source*) to a temporary file beside *path*,
        set the xattr tags, optionally fsync, and rename it into place."""
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            if source is None:
                with open(tmp, "wb") as f:
                    f.write(data)
            else:
                shutil.copyfile(source, tmp)
            if (use_xattr and tags) or durable:
                fd = os.open(tmp, os.O_WRONLY)
                try:
                    if use_xattr and tags:
                        self._set_xattrs(fd, tags)
                    if durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _put(
        self, path: str, data: Any, tags: TagSet | None, durable: bool, source: str | None = None
    ) -> None:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        use_x = self._use_xattr(directory)
        if not use_x and tags:
            self._write_sidecar(path, tags, durable)  # tags first: data never appears untagged
        self._atomic_write(path, data, tags, use_xattr=use_x, durable=durable, source=source)
        if not use_x and not tags:
            self._write_sidecar(path, None, durable)

    def put_sync(self, path: str, data: Any, tags: TagSet | None, durable: bool = False) -> None:
        """Synchronous :meth:`put` (the work runs in a thread for the async API)."""
        self._put(path, data, tags, durable)

    async def put(self, path: str, data: bytes, tags: TagSet | None, *, durable: bool = False) -> None:
        await asyncio.to_thread(self.put_sync, path, data, tags, durable)

    def put_file_sync(self, lpath: str, path: str, tags: TagSet | None) -> None:
        """Copy a local file into place with tags (atomic)."""
        self._put(path, None, tags, False, source=lpath)

    async def put_file(self, lpath: str, path: str, tags: TagSet | None) -> None:
        await asyncio.to_thread(self.put_file_sync, lpath, path, tags)

    def open_write(self, path: str, tags: TagSet | None, **kwargs: Any) -> BinaryIO:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        use_x = self._use_xattr(directory)
        side_written = False
        if not use_x and tags:
            self._write_sidecar(path, tags, False)
            side_written = True
        tmp = os.path.join(directory, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        f = open(tmp, "wb")
        if use_x and tags:
            try:
                self._set_xattrs(f.fileno(), tags)
            except BaseException:
                f.close()
                os.unlink(tmp)
                raise

        def commit() -> None:
            os.replace(tmp, path)
            if not use_x and not tags:
                self._write_sidecar(path, None, False)

        def discard() -> None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if side_written and not os.path.exists(path):
                try:
                    os.unlink(sidecar_path(path))
                except OSError:
                    pass

        return _GuardedWriter(f, commit, discard)  # type: ignore[return-value]

    def read_sync(self, path: str) -> TagSet | None:
        """Synchronous :meth:`read`."""
        pairs: set[tuple[str, str]] = set()
        if self.mode != "sidecar":
            try:
                names = os.listxattr(path)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    raise FileNotFoundError(path) from None
                names = []
            for n in names:
                if n.startswith(XATTR_PREFIX):
                    k = n[len(XATTR_PREFIX):]
                    pairs.update((k, v) for v in decode_value(os.getxattr(path, n).decode()))
            if pairs:
                return frozenset(pairs)
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        side = sidecar_path(path)
        try:
            with open(side, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        return tags_from_json(json.loads(raw), side)

    async def read(self, path: str) -> TagSet | None:
        return await asyncio.to_thread(self.read_sync, path)

    async def removed(self, path: str) -> None:
        side = sidecar_path(path)
        await asyncio.to_thread(self._unlink_quiet, side)

    @staticmethod
    def _unlink_quiet(p: str) -> None:
        try:
            os.unlink(p)
        except OSError:
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
