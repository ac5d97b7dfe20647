"""Issue 11, class 9: confinement and secrets.

Attacks: reading tagged data through file names that used to skip the host check; swapping
a directory of a POSIX endpoint for a symbolic link (at leisure, and racing); endpoint URLs
and option tables carrying passwords; and a public method that skipped the store decision.
Each observes what was read, what landed where (outside the root, on the cloud), and the
audit log.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hpcai.storage import Endpoint, endpoints, filesystem, save

import hpcai as xp
from hpcai import residency
from hpcai.errors import ConfigError, InvalidArgumentError, PathEscapeError, ResidencyError

PERSONAL = {"classification": "personal"}
US_SITE = {"country": "US", "jurisdiction": "US", "provider": "hyperscaler"}
PASSWORD = "S3cr3t-Passw0rd-7f1d"
#: The GDPR rule, with personal data computed on only in the EU (the host is a compute place).
RULES = [{"name": "gdpr-personal", "match": "classification=personal",
          "store": "country=@eu & provider!=hyperscaler", "compute": "country=@eu"}]


# -- every read is checked, whatever the file's name ---------------------------------------------
@pytest.mark.parametrize("name", ["zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata", "data.bin"])
def test_reads_are_checked_whatever_the_name(world: Any, name: str, tmp_path: Path) -> None:
    w = world
    w.configure(rules=RULES)
    body = (b'{"zarr_format": 3, "node_type": "group", "attributes": {"subject": "Jane Doe, 1970-01-01"}}'
            if name == "zarr.json" else b'{"subject": "Jane Doe, 1970-01-01"}')
    filesystem("onprem", tags=PERSONAL).pipe_file(w.path(f"m/{name}"), body)
    assert filesystem("onprem").cat_file(w.path(f"m/{name}")) == body  # the host is in the EU
    w.configure(rules=RULES, site=US_SITE)  # now it is not
    got: list[bytes] = []
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        got.append(filesystem("onprem").cat_file(w.path(f"m/{name}")))
    with pytest.raises(ResidencyError):
        with fsspec.open(w.url("onprem", f"m/{name}"), "rb") as f:
            got.append(f.read())
    with pytest.raises(ResidencyError):
        filesystem("onprem").get_file(w.path(f"m/{name}"), str(tmp_path / "out"))
    assert got == [] and not (tmp_path / "out").exists()
    denied = w.denials()
    assert len(denied) == 3 and {(r["op"], r["source"]) for r in denied} == {("compute", "onprem")}


def test_zarr_metadata_of_a_tagged_array_is_checked(world: Any) -> None:
    import zarr

    w = world
    w.configure(rules=RULES)
    save(xp.tag(xp.arange(6.0), **PERSONAL), w.url("onprem", "p.zarr"))
    w.configure(rules=RULES, site=US_SITE)
    with pytest.raises(ResidencyError):
        zarr.open_group(w.url("onprem", "p.zarr"), mode="r")
    assert w.denials() and all(r["op"] == "compute" for r in w.denials())


# -- POSIX confinement: no time-of-check/time-of-use window --------------------------------------
def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_bytes(b"OUTSIDE SECRET")
    return out


def test_directory_swapped_for_a_symlink_after_use(posix_world: Any, tmp_path: Path) -> None:
    """The swap happens right after hpcai used the directory (well within the old 2 s check cache)."""
    w = posix_world
    outside = _outside(tmp_path)
    fs = filesystem("onprem")
    fs.pipe_file(w.path("d/a.txt"), b"inside")
    assert fs.cat_file(w.path("d/a.txt")) == b"inside"
    d = w.root("onprem") / w.prefix / "d"
    shutil.rmtree(d)
    d.symlink_to(outside)
    read: list[bytes] = []
    with pytest.raises(PathEscapeError, match="outside the root"):
        read.append(fs.cat_file(w.path("d/secret.txt")))
    with pytest.raises(PathEscapeError):
        with fs.open(w.path("d/secret.txt"), "rb") as f:
            read.append(f.read())
    with pytest.raises(PathEscapeError):
        fs.pipe_file(w.path("d/new.txt"), b"escaped")
    with pytest.raises(PathEscapeError):
        with fs.open(w.path("d/new2.txt"), "wb") as f:
            f.write(b"escaped")
    with pytest.raises(PathEscapeError):
        fs.ls(w.path("d"))
    with pytest.raises(PathEscapeError):
        save(xp.ones(3), w.url("onprem", "d/x.zarr"))
    fs.rm(w.path("d"), recursive=True)  # removes the link, never what it points at
    assert read == []
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"OUTSIDE SECRET"


def test_racing_swaps_never_escape(posix_world: Any, tmp_path: Path) -> None:
    """A second thread flips the directory between a real one and a link to outside while hpcai
    reads and writes through it: every read returns inside data or fails, no write lands outside."""
    w = posix_world
    outside = _outside(tmp_path)
    (outside / "x.txt").write_bytes(b"OUTSIDE")
    fs = filesystem("onprem")
    fs.pipe_file(w.path("d/x.txt"), b"inside")
    base = w.root("onprem") / w.prefix
    d, parked = base / "d", base / "parked"
    stop = time.monotonic() + 1.5
    flips = [0]

    def swapper() -> None:
        while time.monotonic() < stop:
            try:
                os.rename(d, parked)
                os.symlink(outside, d)
                os.unlink(d)
                os.rename(parked, d)
                flips[0] += 1
            except OSError:
                try:  # a write re-created d as a directory meanwhile: drop it, restore the parked one
                    if d.is_symlink():
                        d.unlink()
                    elif d.exists() and parked.exists():
                        shutil.rmtree(d)
                    if parked.exists() and not d.exists():
                        os.rename(parked, d)
                except OSError:
                    pass

    t = threading.Thread(target=swapper)
    t.start()
    reads, writes, i = [], 0, 0
    try:
        while time.monotonic() < stop:
            i += 1
            try:
                reads.append(fs.cat_file(w.path("d/x.txt")))
            except (PathEscapeError, FileNotFoundError, NotADirectoryError, OSError):
                pass
            try:
                fs.pipe_file(w.path(f"d/w{i}.txt"), b"w")
                writes += 1
            except (PathEscapeError, FileNotFoundError, NotADirectoryError, OSError):
                pass
    finally:
        t.join()
    assert flips[0] > 5 and i > 5
    assert b"OUTSIDE" not in reads
    assert sorted(os.listdir(outside)) == ["secret.txt", "x.txt"]


# -- secrets in configuration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "table",
    [
        {"url": f"ftp://svc:{PASSWORD}@ftp.example.org/data"},
        {"url": f"sftp://svc:{PASSWORD}@hpc.example.org/project"},
        {"url": "s3://research-eu", "options": {"endpoint_url": f"http://svc:{PASSWORD}@minio:9000"}},
        {"url": "s3://research-eu", "options": {"client_kwargs": {"aws_secret_access_key": PASSWORD}}},
        {"url": "s3://research-eu", "options": {"client_kwargs": {"aws_session_token": PASSWORD}}},
        {"url": "s3://research-eu", "options": {"config_kwargs": {"proxies_config": {"proxy_password": PASSWORD}}}},
        {"url": "s3://research-eu", "options": {"client_kwargs": {"extra": [{"password": PASSWORD}]}}},
        {"url": f"https://data.example.org/share?sig={PASSWORD}"},
    ],
)
def test_secrets_in_endpoint_tables_are_refused(table: dict[str, Any], config: Any) -> None:
    with pytest.raises(ConfigError) as info:
        xp.configure(data={"endpoints": {"e": table}})
    msg = str(info.value)
    assert PASSWORD not in msg and PASSWORD not in repr(info.value)
    assert "_env" in msg and "credentials" in msg  # names the fix: a reference to an environment variable
    assert "e" not in endpoints()
    with pytest.raises(ConfigError) as info2:  # built directly, too
        Endpoint.from_table("e", table)
    assert PASSWORD not in str(info2.value)
    # and from a configuration file: the error names the file, never the password
    import json

    toml = "[endpoints.e]\n" + "\n".join(f"{k} = {json.dumps(v) if isinstance(v, str) else _inline(v)}" for k, v in table.items())
    with pytest.raises(ConfigError, match=r"hpcai\.toml") as info3:
        config(toml)
        endpoints()
    assert PASSWORD not in str(info3.value)


def _inline(v: Any) -> str:
    import json

    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return json.dumps(v)


def test_references_stay_accepted(config: Any) -> None:
    xp.configure(data={"endpoints": {"e": {
        "url": "s3://research-eu",
        "options": {"endpoint_url": "http://minio:9000", "client_kwargs": {"region_name": "eu-central-1"},
                    "config_kwargs": {"retries": {"max_attempts": 2}}},
        "credentials": {"key_env": "ONPREM_KEY", "secret_env": "ONPREM_SECRET"},
    }}})
    ep = endpoints()["e"]
    assert "minio:9000" in ep.describe() and "ONPREM" not in repr(ep)


# -- no public way around the decision -----------------------------------------------------------
def test_no_public_method_skips_the_store_decision(world: Any) -> None:
    w = world
    fs = filesystem("cloud")
    assert not hasattr(fs, "granted")
    assert [n for n in dir(fs) if "grant" in n.lower() and not n.startswith("_")] == []
    personal = frozenset({("classification", "personal")})
    with pytest.raises(InvalidArgumentError, match="Decision"):
        fs._granted(w.path(), personal, write=True, decision=None)
    refused = residency.decide("store", personal, fs.endpoint.attributes, destination="cloud")
    assert not refused.allowed
    with pytest.raises(InvalidArgumentError):
        fs._granted(w.path(), personal, write=True, decision=refused)
    untagged_ok = residency.enforce("store", None, fs.endpoint.attributes, destination="cloud")
    with pytest.raises(InvalidArgumentError, match="did not cover"):
        fs._granted(w.path(), personal, write=True, decision=untagged_ok)
    # a grant for untagged data does not let tagged data through: the write is decided again
    g = fs._granted(w.path(), None, write=True, decision=untagged_ok)
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        g.pipe_file(w.path("p.bin"), b"personal", tags=PERSONAL)
    assert w.raw_list("cloud") == []
    assert [(r["op"], r["destination"]) for r in w.denials()] == [("store", "cloud")]
