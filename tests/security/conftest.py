"""A small world for storage attacks: endpoints onprem and archive (EU, on-prem) and cloud (US,
hyperscaler), all POSIX or all S3 (moto), the GDPR rule, and views of what is *really* stored.

Every test observes the storage itself, outside hpcai: the bytes on the backing directory or
bucket, the tags as the backend holds them (xattrs, sidecars, S3 object tags and metadata),
and the audit log.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hpcai.storage import S3Server, start_s3_server
from hpcai.storage.testing import EU, KEY, KEY_ENV, SECRET, SECRET_ENV, US, s3_table

import hpcai as xp

#: [site] DE/EU/onprem; personal data may be stored only where country=@eu & provider!=hyperscaler.
GDPR = {
    "name": "gdpr-personal",
    "match": "classification=personal",
    "store": "country=@eu & provider!=hyperscaler",
}
BASE: dict[str, Any] = {
    "site": {"country": "DE", "jurisdiction": "EU", "provider": "onprem"},
    "groups": {"eu": ["AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "NL", "PL", "SE"]},
}
BUCKETS = {"onprem": "sec-onprem", "archive": "sec-archive", "cloud": "sec-cloud"}
ATTRS = {"onprem": EU, "archive": EU, "cloud": US}


@pytest.fixture(scope="session")
def sec_s3_eu() -> Iterator[S3Server]:
    srv = start_s3_server([BUCKETS["onprem"], BUCKETS["archive"]])
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sec_s3_us() -> Iterator[S3Server]:
    srv = start_s3_server([BUCKETS["cloud"]])
    yield srv
    srv.stop()


class World:
    """One test's endpoints, its unique prefix, and raw (non-hpcai) access to what is stored."""

    def __init__(self, kind: str, tables: dict[str, Any], tmp: Path, servers: dict[str, S3Server] | None) -> None:
        self.kind = kind
        self.tables = tables
        self.tmp = tmp
        self.servers = servers or {}
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.audit_path = tmp / "audit.jsonl"

    # -- configuration ------------------------------------------------------------------------
    def configure(self, *, rules: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        xp.configure(data={
            **BASE,
            "endpoints": self.tables,
            "policy": {"rules": rules if rules is not None else [GDPR]},
            "audit": {"path": str(self.audit_path)},
            **extra,
        })

    def path(self, p: str = "") -> str:
        return f"{self.prefix}/{p}" if p else self.prefix

    def url(self, ep: str, p: str = "") -> str:
        return f"hpcai://{ep}/{self.path(p)}"

    def audit(self) -> list[dict[str, Any]]:
        return list(xp.audit.read(self.audit_path)) if self.audit_path.exists() else []

    def denials(self, destination: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.audit() if r.get("decision") == "deny"
                and (destination is None or r.get("destination") == destination)]

    # -- the storage as it is, outside hpcai ----------------------------------------------------
    def _client(self, ep: str) -> Any:
        srv = self.servers[ep]
        return boto3.client("s3", endpoint_url=srv.url, region_name="us-east-1",
                            aws_access_key_id=KEY, aws_secret_access_key=SECRET)

    def root(self, ep: str) -> Path:
        return Path(self.tables[ep]["url"][len("file://"):])

    def raw_list(self, ep: str) -> list[str]:
        """Every object or file under the test's prefix, hidden ones included."""
        if self.kind == "posix":
            base = self.root(ep) / self.prefix
            if not base.exists():
                return []
            return sorted(str(p.relative_to(self.root(ep))) for p in base.rglob("*") if not p.is_dir())
        c = self._client(ep)
        out = c.list_objects_v2(Bucket=BUCKETS[ep], Prefix=self.prefix + "/")
        return sorted(o["Key"] for o in out.get("Contents", []))

    def raw_get(self, ep: str, p: str) -> bytes:
        if self.kind == "posix":
            return (self.root(ep) / self.path(p)).read_bytes()
        return self._client(ep).get_object(Bucket=BUCKETS[ep], Key=self.path(p))["Body"].read()

    def raw_put(self, ep: str, p: str, data: bytes) -> None:
        """Write bytes behind hpcai's back (as anyone with direct access to the endpoint can)."""
        if self.kind == "posix":
            f = self.root(ep) / self.path(p)
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, f)  # a new inode: no xattrs
            side = f.with_name(f".hpcai-tags.{f.name}.json")
            if side.exists():
                side.unlink()
            return
        self._client(ep).put_object(Bucket=BUCKETS[ep], Key=self.path(p), Body=data)

    def raw_tags(self, ep: str, p: str) -> dict[str, list[str]]:
        """The tags the backend holds for one object: xattrs + sidecar, or object tags + metadata."""
        out: dict[str, set[str]] = {}
        if self.kind == "posix":
            f = self.root(ep) / self.path(p)
            for n in os.listxattr(f):
                if n.startswith("user.hpcai."):
                    out.setdefault(n[len("user.hpcai."):], set()).update(os.getxattr(f, n).decode().split("+"))
            side = f.with_name(f".hpcai-tags.{f.name}.json")
            if side.exists():
                for k, vs in json.loads(side.read_text()).items():
                    out.setdefault(k, set()).update(vs)
        else:
            c = self._client(ep)
            for t in c.get_object_tagging(Bucket=BUCKETS[ep], Key=self.path(p))["TagSet"]:
                if t["Key"].startswith("hpcai."):
                    out.setdefault(t["Key"][len("hpcai."):], set()).update(t["Value"].split("+"))
            meta = c.head_object(Bucket=BUCKETS[ep], Key=self.path(p))["Metadata"].get("hpcai-tags")
            if meta:
                for k, vs in json.loads(meta).items():
                    out.setdefault(k, set()).update(vs)
        return {k: sorted(v) for k, v in sorted(out.items())}


def _posix_tables(tmp: Path) -> dict[str, Any]:
    tables = {}
    for ep in ("onprem", "archive", "cloud"):
        d = tmp / "endpoints" / ep
        d.mkdir(parents=True)
        tables[ep] = {"url": f"file://{d}", "attributes": ATTRS[ep]}
    return tables


@pytest.fixture
def posix_world(tmp_path: Path) -> World:
    w = World("posix", _posix_tables(tmp_path), tmp_path, None)
    w.configure()
    return w


@pytest.fixture(params=["posix", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """The same three endpoints on POSIX directories or on two moto S3 servers (EU, US)."""
    if request.param == "posix":
        w = World("posix", _posix_tables(tmp_path), tmp_path, None)
    else:
        monkeypatch.setenv(KEY_ENV, KEY)
        monkeypatch.setenv(SECRET_ENV, SECRET)
        eu: S3Server = request.getfixturevalue("sec_s3_eu")
        us: S3Server = request.getfixturevalue("sec_s3_us")
        servers = {"onprem": eu, "archive": eu, "cloud": us}
        tables = {ep: s3_table(servers[ep], BUCKETS[ep], ATTRS[ep]) for ep in BUCKETS}
        w = World("s3", tables, tmp_path, servers)
    w.configure()
    return w
