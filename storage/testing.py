"""The endpoint conformance suite: every endpoint type runs all of it.

Subclass :class:`EndpointTests` once per endpoint and provide the ``endpoint_tables``
fixture, returning the endpoint's name and an ``{"endpoints": {...}}`` table that reaches
it (a real server or directory). Each test works under its own fresh prefix::

    class TestOnprem(EndpointTests):
        @pytest.fixture
        def endpoint_tables(self, s3_eu):
            return "onprem", {"endpoints": {"onprem": {...}}}

:class:`RGWServer` reaches a Ceph RGW started by ``ci/rgw.sh start DIR`` (``HPCAI_TEST_RGW=DIR``
for the tests; see docs/rgw.md).

The suite configures a residency policy of its own: data tagged ``classification=secret``
may be stored nowhere (and computed on-prem only); ``classification=personal`` may be computed only in
the EU (``emulated:1`` is configured as a US device) and stored in the EU or US (covered, so audited).
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpcai as xp
from hpcai._tags import as_mapping
from hpcai.errors import (
    ArrayIndexError,
    ChecksumError,
    InvalidArgumentError,
    PathEscapeError,
    ResidencyError,
    StorageNotFoundError,
    UnknownEndpointError,
)

from . import copy, filesystem, load, open, save, tags, untag

__all__ = [
    "EU",
    "KEY",
    "KEY_ENV",
    "POLICY",
    "RGW_ENV",
    "SECRET",
    "SECRET_ENV",
    "US",
    "EndpointTests",
    "RGWServer",
    "StorageContext",
    "rgw_from_env",
    "s3_table",
]

KEY_ENV = "HPCAI_TEST_S3_KEY"
SECRET_ENV = "HPCAI_TEST_S3_SECRET"
#: The dummy credentials moto accepts; tests check they never leak.
KEY = "AKIAHPCAITESTKEY0001"
SECRET = "hpcai-test-secret-do-not-leak-9f3e2a"
EU = {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}
US = {"country": "US", "jurisdiction": "US", "provider": "hyperscaler"}


#: Names a running Ceph RGW for the tests: the directory given to ``ci/rgw.sh start`` or its ``env`` file.
RGW_ENV = "HPCAI_TEST_RGW"


def s3_table(server: Any, bucket: str, attributes: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The ``[endpoints.<name>]`` table of an S3 endpoint on a test server (a moto
    :class:`~hpcai.storage.S3Server` or an :class:`RGWServer`), credentials from
    :data:`KEY_ENV` / :data:`SECRET_ENV`, which the test exports."""
    region = getattr(server, "region", "us-east-1")
    return {
        "url": f"s3://{bucket}",
        "options": {"endpoint_url": server.url, "client_kwargs": {"region_name": region}},
        "credentials": {"key_env": KEY_ENV, "secret_env": SECRET_ENV},
        "attributes": attributes,
        "retry": {"attempts": 3, "initial_delay": 0.02, "max_delay": 0.2},
        **extra,
    }

@dataclass(frozen=True)
class RGWServer:
    """A running Ceph RGW as ``ci/rgw.sh start DIR`` describes it in ``DIR/env``.

    >>> srv = RGWServer.from_env_file("/tmp/rgw")  # doctest: +SKIP
    >>> srv.url  # doctest: +SKIP
    'http://127.0.0.1:40597'
    """

    url: str
    key: str = field(repr=False)
    secret: str = field(repr=False)
    region: str = "us-east-1"
    directory: str = ""
    version: str = ""

    @classmethod
    def from_env_file(cls, path: str | os.PathLike[str]) -> RGWServer:
        """Read ``DIR/env`` (``export HPCAI_RGW_...=...`` lines); *path* is the file or its directory."""
        p = Path(path)
        if p.is_dir():
            p = p / "env"
        try:
            text = p.read_text()
        except OSError as exc:
            raise InvalidArgumentError(
                f"RGWServer.from_env_file: cannot read {p} ({exc.strerror}); start a server with "
                "`ci/rgw.sh start DIR` and give DIR or DIR/env"
            ) from None
        values: dict[str, str] = {}
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["export"]:
                words = words[1:]
            for w in words:
                k, sep, v = w.partition("=")
                if sep:
                    values[k] = v
        need = ("HPCAI_RGW_ENDPOINT", "HPCAI_RGW_ACCESS_KEY", "HPCAI_RGW_SECRET_KEY")
        missing = [k for k in need if not values.get(k)]
        if missing:
            raise InvalidArgumentError(
                f"RGWServer.from_env_file: {p} does not set {', '.join(missing)}; it should be the env "
                "file that `ci/rgw.sh start DIR` writes"
            )
        return cls(
            url=values["HPCAI_RGW_ENDPOINT"],
            key=values["HPCAI_RGW_ACCESS_KEY"],
            secret=values["HPCAI_RGW_SECRET_KEY"],
            region=values.get("HPCAI_RGW_REGION") or "us-east-1",
            directory=values.get("HPCAI_RGW_DIR", str(p.parent)),
            version=values.get("HPCAI_RGW_VERSION", ""),
        )

    def client(self) -> Any:
        """A boto3 S3 client with the server's credentials."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret)

    def create_buckets(self, buckets: Iterable[str]) -> None:
        """Create *buckets* (those that exist already and are ours are fine), as s3fs would: with
        the region as ``LocationConstraint``, which RGW checks against its zonegroup's api_name."""
        from botocore.exceptions import ClientError

        client = self.client()
        for b in buckets:
            try:
                client.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": self.region})
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise


def rgw_from_env(environ: Mapping[str, str] | None = None) -> RGWServer | None:
    """The Ceph RGW that :data:`RGW_ENV` names, or ``None`` when it is unset."""
    value = (os.environ if environ is None else environ).get(RGW_ENV, "").strip()
    return RGWServer.from_env_file(value) if value else None


#: The residency configuration the suite runs under (merged with the endpoint tables).
POLICY: dict[str, Any] = {
    "site": {"country": "DE", "jurisdiction": "EU", "provider": "onprem"},
    "devices": {"emulated:1": {"attributes": {"country": "US", "jurisdiction": "US", "provider": "hyperscaler"}}},
    "groups": {"eu": ["AT", "BE", "DE", "FR", "NL"]},
    "policy": {
        "rules": [
            {"name": "secret-nowhere", "match": "classification=secret", "store": "provider=nowhere",
             "compute": "provider=onprem"},
            {"name": "gdpr-personal", "match": "classification=personal", "compute": "country=@eu",
             "store": "jurisdiction=EU | jurisdiction=US"},
        ]
    },
}


class StorageContext:
    """One test's view of the endpoint: a unique prefix, URLs, the filesystem, the audit log."""

    def __init__(self, name: str, tables: dict[str, Any], tmp: Path) -> None:
        self.name = name
        self.tables = tables
        self.tmp = tmp
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.audit_path = tmp / "audit.jsonl"

    def configure(self, **extra: Any) -> None:
        """Apply the endpoint tables, the suite's policy and an audit log in the test's directory."""
        data = {**POLICY, **self.tables, "audit": {"path": str(self.audit_path)}, **extra}
        xp.configure(data=data)

    def path(self, p: str = "") -> str:
        """A path relative to the endpoint root, under this test's prefix."""
        return f"{self.prefix}/{p}" if p else self.prefix

    def url(self, p: str = "") -> str:
        """``hpcai://<endpoint>/<prefix>/<p>``."""
        return f"hpcai://{self.name}/{self.path(p)}"

    def fs(self, **kw: Any) -> Any:
        """The endpoint's enforcing filesystem."""
        return filesystem(self.name, **kw)

    def audit(self) -> list[dict[str, Any]]:
        """The audit records written so far."""
        return list(xp.audit.read(self.audit_path)) if self.audit_path.exists() else []

    def listing(self) -> list[str]:
        """Everything under this test's prefix (empty when nothing was written)."""
        fs = self.fs()
        return sorted(fs.find(self.path())) if fs.exists(self.path()) else []

    def stored_tags(self, p: str) -> dict[str, Any]:
        """The tags recorded in each place the endpoint keeps them for the file *p*
        (``{"object-tags": ..., "metadata": ...}`` on S3, ``xattr``/``sidecar`` on POSIX),
        each as ``{key: frozenset(values)}``: every place must hold the whole tag set."""
        fs = self.fs()
        full = fs._full(self.path(p), "read tags")
        places = fs._run(fs._s.backend.read_places, full)
        return {k: dict(as_mapping(v)) for k, v in places.items()}


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


#: Tag values along every route through the encodings: plain, with a space and the other
#: characters S3 tags allow (stored as they are), and with '+', ',' or non-ASCII (stored as b64).
TRICKY_TAGS: dict[str, Any] = {
    "project": "climate model/v2",
    "origin": ["DE", "FR"],
    "ref": "a=b:c@d/e_f.g-h",
    "mixed": ["x y", "DE"],
    "note": "a+b",
    "place": "Zürich, CH",
}


def _as_sets(t: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    return {k: frozenset([v] if isinstance(v, str) else v) for k, v in t.items()}


class EndpointTests:
    """The conformance suite (see the module docs)."""

    @pytest.fixture
    def endpoint_tables(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError("subclasses provide (endpoint name, {'endpoints': {...}})")

    @pytest.fixture
    def ep(self, endpoint_tables: tuple[str, dict[str, Any]], tmp_path: Path) -> StorageContext:
        name, tables = endpoint_tables
        ctx = StorageContext(name, tables, tmp_path)
        ctx.configure()
        return ctx

    # -- bytes --------------------------------------------------------------------------------
    def test_pipe_cat_info_exists(self, ep: StorageContext) -> None:
        fs = ep.fs()
        data = _rng().bytes(3000)
        fs.pipe_file(ep.path("a/b.bin"), data)
        assert fs.cat_file(ep.path("a/b.bin")) == data
        assert fs.cat_file(ep.path("a/b.bin"), start=10, end=20) == data[10:20]
        assert fs.info(ep.path("a/b.bin"))["size"] == 3000
        assert fs.exists(ep.path("a/b.bin"))
        assert not fs.exists(ep.path("a/missing.bin"))
        with pytest.raises(FileNotFoundError, match=ep.name):
            fs.cat_file(ep.path("a/missing.bin"))

    def test_file_tags_round_trip(self, ep: StorageContext) -> None:
        fs = ep.fs(tags={"origin": ["DE", "FR"], "project": "climate model/v2"})
        fs.pipe_file(ep.path("t.bin"), b"abc")
        got = tags(ep.url("t.bin"))
        assert dict(got) == {"origin": frozenset({"DE", "FR"}), "project": frozenset({"climate model/v2"})}
        # an untagged overwrite leaves no stale tags behind
        ep.fs().pipe_file(ep.path("t.bin"), b"new")
        assert dict(tags(ep.url("t.bin"))) == {}
        assert ep.fs().cat_file(ep.path("t.bin")) == b"new"

    def test_listings_hide_internal_files(self, ep: StorageContext) -> None:
        fs = ep.fs(tags={"origin": "DE"})
        for i in range(3):
            fs.pipe_file(ep.path(f"d/f{i}.bin"), b"x" * i)
        names = sorted(fs.ls(ep.path("d"), detail=False))
        assert names == [ep.path(f"d/f{i}.bin") for i in range(3)]
        assert ep.listing() == [ep.path(f"d/f{i}.bin") for i in range(3)]

    def test_streaming_write_and_read(self, ep: StorageContext) -> None:
        data = _rng().bytes(3 * 2**20 + 17)
        with ep.fs(tags={"origin": "DE"}).open(ep.path("big.bin"), "wb") as f:
            for i in range(0, len(data), 1 << 20):
                f.write(data[i : i + (1 << 20)])
        with ep.fs().open(ep.path("big.bin"), "rb") as f:
            assert f.read() == data
        assert dict(tags(ep.url("big.bin"))) == {"origin": frozenset({"DE"})}
        with ep.fs().open(ep.path("notes.txt"), "w") as t:
            t.write("grüße\n")
        with ep.fs().open(ep.path("notes.txt"), "r") as t:
            assert t.read() == "grüße\n"

    def test_tag_values_round_trip_in_every_place(self, ep: StorageContext) -> None:
        want = _as_sets(TRICKY_TAGS)
        ep.fs(tags=TRICKY_TAGS).pipe_file(ep.path("t.bin"), b"abc")
        assert dict(tags(ep.url("t.bin"))) == want
        places = ep.stored_tags("t.bin")
        assert places and all(v == want for v in places.values()), places  # no copy garbled or missing
        # changing the tags of stored data (S3: a CopyObject onto itself) keeps every value intact
        del want["note"]
        assert dict(untag(ep.url("t.bin"), "note", reason="conformance suite")) == want
        assert dict(tags(ep.url("t.bin"))) == want
        places = ep.stored_tags("t.bin")
        assert places and all(v == want for v in places.values()), places

    def test_copies_within_the_endpoint_keep_tags_in_every_place(self, ep: StorageContext) -> None:
        """A copy within one endpoint (server-side on S3: Ceph RGW ignores the tags sent with a
        ``CopyObject``) carries the source's tags, plus any added, in every place."""
        ep.fs(tags=TRICKY_TAGS).pipe_file(ep.path("c/src.bin"), b"payload")
        copy(ep.url("c/src.bin"), ep.url("c/same.bin"))
        copy(ep.url("c/src.bin"), ep.url("c/more.bin"), tags={"extra": "copy note"})
        for name, want in (("same.bin", _as_sets(TRICKY_TAGS)), ("more.bin", _as_sets({**TRICKY_TAGS, "extra": "copy note"}))):
            assert ep.fs().cat_file(ep.path(f"c/{name}")) == b"payload"
            assert dict(tags(ep.url(f"c/{name}"))) == want
            places = ep.stored_tags(f"c/{name}")
            assert places and all(v == want for v in places.values()), (name, places)

    def test_tagged_writes_big_enough_for_multipart(self, ep: StorageContext, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
        """11 MiB in 5 MiB parts (S3's smallest; Ceph RGW drops the tags a multipart upload starts
        with): a streamed write, ``pipe_file`` and ``put_file`` all carry their tags everywhere."""
        from . import _tags_io

        monkeypatch.setattr(_tags_io, "_S3_CHUNK", 5 * 2**20)  # pipe_file/put_file parts (default 50 MiB)
        data = _rng().bytes(11 * 2**20 + 5)
        t = {"origin": "DE", "project": "climate model/v2"}
        want = _as_sets(t)
        with ep.fs(tags=t).open(ep.path("mp/stream.bin"), "wb", block_size=5 * 2**20) as f:
            for i in range(0, len(data), 2**20):
                f.write(data[i : i + 2**20])
        ep.fs(tags=t).pipe_file(ep.path("mp/pipe.bin"), data)
        local = tmp_path / "big.bin"
        local.write_bytes(data)
        ep.fs(tags=t).put_file(str(local), ep.path("mp/put.bin"))
        for name in ("stream.bin", "pipe.bin", "put.bin"):
            info = ep.fs().info(ep.path(f"mp/{name}"))
            assert info["size"] == len(data)
            if "ETag" in info:  # S3: a multipart upload's ETag is "<md5 of the part md5s>-<parts>"
                assert "-" in str(info["ETag"]), (name, info["ETag"])
            assert ep.fs().cat_file(ep.path(f"mp/{name}")) == data
            assert dict(tags(ep.url(f"mp/{name}"))) == want
            places = ep.stored_tags(f"mp/{name}")
            assert places and all(v == want for v in places.values()), (name, places)

    def test_failed_streaming_write_leaves_nothing(self, ep: StorageContext) -> None:
        with pytest.raises(RuntimeError, match="boom"):
            with ep.fs(tags={"origin": "DE"}).open(ep.path("half.bin"), "wb") as f:
                f.write(b"partial" * 1000)
                raise RuntimeError("boom")
        assert ep.listing() == []

    def test_rm_file_and_tree(self, ep: StorageContext) -> None:
        fs = ep.fs(tags={"origin": "DE"})
        fs.pipe_file(ep.path("x/one.bin"), b"1")
        fs.pipe_file(ep.path("x/y/two.bin"), b"2")
        fs.rm_file(ep.path("x/one.bin"))
        assert ep.listing() == [ep.path("x/y/two.bin")]
        fs.rm(ep.path("x"), recursive=True)
        assert ep.listing() == []

    def test_fsspec_open_url(self, ep: StorageContext) -> None:
        import fsspec

        with fsspec.open(ep.url("via-fsspec.bin"), "wb", tags={"origin": "DE"}) as f:
            f.write(b"payload")
        with fsspec.open(ep.url("via-fsspec.bin"), "rb") as f:
            assert f.read() == b"payload"
        assert dict(tags(ep.url("via-fsspec.bin"))) == {"origin": frozenset({"DE"})}

    # -- paths ----------------------------------------------------------------------------------
    @pytest.mark.parametrize("bad", ["../escape.bin", "a/../../escape.bin", "/etc/passwd", "a/.hpcai-tags.x.json"])
    def test_paths_cannot_escape(self, ep: StorageContext, bad: str) -> None:
        fs = ep.fs()
        with pytest.raises(PathEscapeError):
            fs.pipe_file(bad, b"x")
        with pytest.raises(PathEscapeError):
            fs.cat_file(bad)
        with pytest.raises(PathEscapeError):
            save(xp.ones(3), f"hpcai://{ep.name}/{bad}")

    def test_bad_urls_and_unknown_endpoints(self, ep: StorageContext) -> None:
        with pytest.raises(UnknownEndpointError, match="'nosuch'.*" + ep.name):
            load("hpcai://nosuch/x.zarr")
        with pytest.raises(InvalidArgumentError, match="s3:// URL"):
            load("s3://bucket/x.zarr")
        with pytest.raises(InvalidArgumentError, match="hpcai://<endpoint>"):
            load("x.zarr")
        with pytest.raises(StorageNotFoundError, match="no array at"):
            load(ep.url("never-saved.zarr"))

    # -- arrays ---------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "dtype, shape, chunks",
        [("float64", (37, 23), (8, 8)), ("float32", (100,), None), ("int16", (4, 5, 6), (2, 5, 3)),
         ("bool", (17,), (5,)), ("complex64", (3, 3), (2, 2)), ("uint8", (), None), ("float64", (0, 4), None)],
    )
    def test_array_round_trip(self, ep: StorageContext, dtype: str, shape: tuple[int, ...], chunks: Any) -> None:
        ref = (_rng().standard_normal(shape) * 100).astype(dtype)
        if dtype.startswith("complex"):
            ref = ref + 1j * ref[::-1] if ref.ndim else ref
        x = xp.tag(xp.asarray(ref), origin="DE", project="p1")
        save(x, ep.url("arr.zarr"), chunks=chunks)
        y = load(ep.url("arr.zarr"))
        assert y.dtype == ref.dtype and y.shape == ref.shape
        np.testing.assert_array_equal(np.asarray(xp.asarray(y, device="numpy:cpu")._data), ref)
        assert dict(y.tags) == {"origin": frozenset({"DE"}), "project": frozenset({"p1"})}
        assert dict(tags(ep.url("arr.zarr"))) == dict(y.tags)

    def test_load_onto_device(self, ep: StorageContext) -> None:
        ref = _rng().standard_normal((20, 20))
        save(xp.tag(xp.asarray(ref), origin="DE"), ep.url("m.zarr"), chunks=(10, 10))
        y = load(ep.url("m.zarr"), device="emulated:0")
        assert str(y.device) == "emulated:0" and dict(y.tags) == {"origin": frozenset({"DE"})}
        np.testing.assert_array_equal(np.asarray(y.to_device("numpy:cpu")._data), ref)

    def test_new_version_replaces_and_old_ones_are_collected(self, ep: StorageContext) -> None:
        versions = [save(xp.full((6, 6), float(i)), ep.url("v.zarr"), chunks=(3, 3)) for i in range(4)]
        assert len(set(versions)) == 4 and versions == sorted(versions)
        assert float(xp.max(load(ep.url("v.zarr")))) == 3.0
        kept = sorted(p.rsplit("/", 1)[-1] for p in ep.fs().ls(ep.path("v.zarr"), detail=False))
        assert kept == sorted([*versions[-2:], "zarr.json"])

    def test_open_is_lazy_and_pinned(self, ep: StorageContext) -> None:
        ref = np.arange(100.0).reshape(10, 10)
        save(xp.tag(xp.asarray(ref), origin="DE"), ep.url("lazy.zarr"), chunks=(5, 5))
        h = open(ep.url("lazy.zarr"))
        assert h.shape == (10, 10) and h.chunks == (5, 5) and h.dtype == np.float64
        assert dict(h.tags) == {"origin": frozenset({"DE"})}
        keys: list[Any] = [(1, slice(2, 7)), (slice(None), 3), (Ellipsis, slice(8, None)), (slice(1, 9, 3),), 4]
        for key in keys:
            got = h[key]
            np.testing.assert_array_equal(np.asarray(got._data), ref[key])
            assert dict(got.tags) == {"origin": frozenset({"DE"})}
        save(xp.asarray(ref * 2), ep.url("lazy.zarr"), chunks=(5, 5))
        np.testing.assert_array_equal(np.asarray(h[0]._data), ref[0])  # the handle keeps its version
        np.testing.assert_array_equal(np.asarray(open(ep.url("lazy.zarr"))[0]._data), 2 * ref[0])
        with pytest.raises(ArrayIndexError):
            h[None]

    def _chunk(self, ep: StorageContext, url_path: str, key: str) -> str:
        meta = json.loads(ep.fs().cat_file(ep.path(f"{url_path}/zarr.json")))
        head = meta["attributes"]["hpcai"]["head"]
        return ep.path(f"{url_path}/{head}/{key}")

    def test_checksum_mismatch_names_the_chunk(self, ep: StorageContext) -> None:
        ref = np.arange(64.0).reshape(8, 8)
        save(xp.asarray(ref), ep.url("crc.zarr"), chunks=(4, 4))
        fs = ep.fs()
        path = self._chunk(ep, "crc.zarr", "c/1/0")
        raw = bytearray(fs.cat_file(path))
        raw[len(raw) // 2] ^= 0xFF
        fs.pipe_file(path, bytes(raw))
        with pytest.raises(ChecksumError, match="chunk 'c/1/0'"):
            load(ep.url("crc.zarr"))
        h = open(ep.url("crc.zarr"))
        np.testing.assert_array_equal(np.asarray(h[0:4, :]._data), ref[0:4, :])  # other chunks are fine
        with pytest.raises(ChecksumError, match="chunk 'c/1/0'"):
            h[5, 1]

    def test_missing_chunk_is_an_error(self, ep: StorageContext) -> None:
        save(xp.zeros((8, 8)), ep.url("hole.zarr"), chunks=(4, 4))
        ep.fs().rm_file(self._chunk(ep, "hole.zarr", "c/0/1"))
        with pytest.raises(ChecksumError, match="chunk 'c/0/1'.*missing"):
            load(ep.url("hole.zarr"))

    def test_zarr_and_dask_read_hpcai_urls(self, ep: StorageContext) -> None:
        import dask.array as da
        import zarr

        ref = _rng().standard_normal((12, 12))
        save(xp.asarray(ref), ep.url("z.zarr"), chunks=(4, 4))
        g = zarr.open_group(ep.url("z.zarr"), mode="r")
        info: Any = g.attrs.asdict()["hpcai"]
        head = str(info["head"])
        np.testing.assert_array_equal(zarr.open_array(ep.url(f"z.zarr/{head}"), mode="r")[...], ref)
        np.testing.assert_array_equal(da.from_zarr(ep.url(f"z.zarr/{head}")).compute(), ref)
        # plain zarr writes through hpcai:// are checked and tagged too
        a = zarr.create_array(ep.url("plain.zarr"), shape=(6,), dtype="int32", chunks=(2,),
                              attributes={"hpcai": {"tags": {"origin": ["DE"]}}})
        a[...] = np.arange(6, dtype="int32")
        y = load(ep.url("plain.zarr"))
        np.testing.assert_array_equal(np.asarray(y._data), np.arange(6))
        assert dict(y.tags) == {"origin": frozenset({"DE"})}

    # -- residency ------------------------------------------------------------------------------
    def test_refused_save_writes_nothing_and_is_audited(self, ep: StorageContext) -> None:
        x = xp.tag(xp.ones((10, 10)), classification="secret")
        with pytest.raises(ResidencyError, match="secret-nowhere"):
            save(x, ep.url("secret.zarr"), chunks=(5, 5))
        assert ep.listing() == []
        denials = [r for r in ep.audit() if r["decision"] == "deny"]
        assert [(r["op"], r["destination"], r["rule"]) for r in denials] == [("store", ep.name, "secret-nowhere")]
        assert xp.audit.verify(ep.audit_path)

    def test_refused_raw_writes_leave_nothing(self, ep: StorageContext) -> None:
        import fsspec

        with pytest.raises(ResidencyError):
            ep.fs(tags={"classification": "secret"}).pipe_file(ep.path("s.bin"), b"x")
        with pytest.raises(ResidencyError):
            with fsspec.open(ep.url("s2.bin"), "wb", tags={"classification": "secret"}) as f:
                f.write(b"x")
        with pytest.raises(ResidencyError):
            import zarr

            zarr.create_array(ep.url("s.zarr"), shape=(4,), dtype="int8",
                              attributes={"hpcai": {"tags": {"classification": ["secret"]}}})
        assert ep.listing() == []
        assert len([r for r in ep.audit() if r["decision"] == "deny"]) == 3

    def test_allowed_save_and_load_are_audited(self, ep: StorageContext) -> None:
        x = xp.tag(xp.ones(8), classification="personal")
        save(x, ep.url("p.zarr"))
        load(ep.url("p.zarr"), device="emulated:0")
        ops = [(r["operation"], r["op"], r["decision"], r["destination"]) for r in ep.audit()]
        assert ("save", "store", "allow", ep.name) in ops
        assert ("load", "compute", "allow", "emulated:0") in ops
        assert all(r["dataset"] == ep.url("p.zarr") for r in ep.audit() if r["operation"] in ("save", "load"))

    def test_refused_load_raises_before_reading(self, ep: StorageContext) -> None:
        save(xp.tag(xp.arange(10.0), classification="personal"), ep.url("eu.zarr"))
        with pytest.raises(ResidencyError, match="emulated:1"):
            load(ep.url("eu.zarr"), device="emulated:1")
        with pytest.raises(ResidencyError):
            open(ep.url("eu.zarr"), device="emulated:1")
        y = load(ep.url("eu.zarr"), device="emulated:0")
        assert float(xp.sum(y)) == 45.0
        denials = [r for r in ep.audit() if r["decision"] == "deny"]
        assert {(r["op"], r["destination"]) for r in denials} == {("compute", "emulated:1")}

    def test_raw_reads_of_tagged_data_are_checked(self, ep: StorageContext, tmp_path: Path) -> None:
        ep.fs(tags={"classification": "personal"}).pipe_file(ep.path("p.bin"), b"personal")
        assert ep.fs().cat_file(ep.path("p.bin")) == b"personal"  # the host is in the EU
        ep.configure(site={"country": "US", "jurisdiction": "US", "provider": "hyperscaler"})
        with pytest.raises(ResidencyError, match="gdpr-personal"):
            ep.fs().cat_file(ep.path("p.bin"))
        with pytest.raises(ResidencyError):
            ep.fs().get_file(ep.path("p.bin"), str(tmp_path / "out.bin"))
        assert not (tmp_path / "out.bin").exists()

    def test_credentials_never_in_reprs(self, ep: StorageContext) -> None:
        fs = ep.fs()
        secrets = [s for s in fs._s.secrets if s]
        for text in (repr(fs), repr(fs.endpoint), fs.endpoint.describe()):
            for s in secrets:
                assert s not in text
