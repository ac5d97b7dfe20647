"""Endpoint configuration, how tags are physically stored, path escapes and secret hygiene."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from hpcai.storage import S3Server, endpoints, filesystem, load, save, tags
from hpcai.storage.testing import KEY_ENV, POLICY, SECRET_ENV

import hpcai as xp
from hpcai.errors import ConfigError, CredentialsError, PathEscapeError, ResidencyError


# -- configuration ----------------------------------------------------------------------------
def test_endpoints_from_a_toml_file(config: Any, tmp_path: Path) -> None:
    d = tmp_path / "scratch"
    d.mkdir()
    config(
        f"""
[endpoints.onprem]
url = "s3://research-eu"
options = {{ endpoint_url = "http://s3.example.internal:9000" }}
credentials = {{ key_env = "ONPREM_KEY", secret_env = "ONPREM_SECRET" }}
attributes = {{ country = "DE", jurisdiction = "EU", provider = "onprem" }}

[endpoints.scratch]
url = "file://{d}"
attributes = {{ country = "DE", provider = "onprem" }}
"""
    )
    eps = endpoints()
    assert sorted(eps) == ["onprem", "scratch"]
    on = eps["onprem"]
    assert (on.protocol, on.root, dict(on.attributes)) == ("s3", "research-eu", {"country": "DE", "jurisdiction": "EU", "provider": "onprem"})
    assert dict(on.credentials) == {"key_env": "ONPREM_KEY", "secret_env": "ONPREM_SECRET"}
    assert eps["scratch"].root == str(d) and eps["scratch"].is_local


@pytest.mark.parametrize(
    "table, message",
    [
        ({"url": "s3://b", "colour": "red"}, r"unknown key endpoints.e.colour"),
        ({"attributes": {}}, r"endpoints.e.url must be"),
        ({"url": "nosuch://x"}, r"unknown protocol 'nosuch'"),
        ({"url": "relative/dir"}, r"expected a URL such as"),
        ({"url": "s3://"}, r"name the bucket"),
        ({"url": "s3://b", "options": {"secret": "abc"}}, r"looks like a secret.*secret_env"),
        ({"url": "s3://b", "credentials": {"key": "AKIA123"}}, r"references only"),
        ({"url": "s3://b", "credentials": {"key_env": "not a var"}}, r"must name an environment variable"),
        ({"url": "s3://b", "attributes": {"country": 49}}, r"attributes must be"),
        ({"url": "s3://b", "tag_store": "magic"}, r"tag_store must be"),
        ({"url": "s3://b", "retry": {"attempts": 0}}, r"retry.attempts must be an integer >= 1"),
        ({"url": "hpcai://other/x"}, r"cannot point at another hpcai"),
    ],
)
def test_bad_endpoint_tables_are_rejected(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        xp.configure(data={"endpoints": {"e": table}})
    assert "<configure(data=...)>" in str(info.value)
    assert "AKIA123" not in str(info.value) and "abc" not in str(info.value).replace("abc\"", "")


def test_bad_endpoint_in_a_file_names_the_file(config: Any) -> None:
    with pytest.raises(ConfigError, match=r"hpcai.toml.*endpoints.bad.url"):
        config("[endpoints.bad]\nurl = 42\n")


def test_missing_credentials_name_the_variable_not_a_value(onprem_table: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    xp.configure(data={"endpoints": {"onprem": onprem_table}})
    monkeypatch.delenv("HPCAI_TEST_S3_SECRET")
    with pytest.raises(CredentialsError, match=r"'onprem'.*HPCAI_TEST_S3_SECRET.*not set") as info:
        filesystem("onprem")
    assert "AKIAHPCAITESTKEY0001" not in str(info.value)
    with pytest.raises(CredentialsError, match="HPCAI_TEST_S3_SECRET"):
        load("hpcai://onprem/x.zarr")


# -- tags as stored ---------------------------------------------------------------------------
def _s3(server: S3Server) -> Any:
    """A plain boto3 client for *server*, with the credentials the endpoint tables use (RGW checks them)."""
    return boto3.client("s3", endpoint_url=server.url, region_name=getattr(server, "region", "us-east-1"),
                        aws_access_key_id=os.environ[KEY_ENV], aws_secret_access_key=os.environ[SECRET_ENV])


def test_s3_object_tags_and_metadata(onprem_table: dict[str, Any], s3_eu: S3Server) -> None:
    xp.configure(data={"endpoints": {"onprem": onprem_table, "meta": {**onprem_table, "tag_store": "metadata"}}})
    t = {"origin": ["DE", "FR"], "note": "a,b;c", "project": "climate model/v2"}
    filesystem("onprem", tags=t).pipe_file("phys/a.bin", b"1")
    tagset = {t["Key"]: t["Value"] for t in _s3(s3_eu).get_object_tagging(Bucket="research-eu", Key="phys/a.bin")["TagSet"]}
    assert tagset["hpcai.origin"] == "DE+FR" and tagset["hpcai.note"].startswith("b64:")
    assert tagset["hpcai.project"] == "climate model/v2"  # percent-encoded on the wire: RGW does not decode '+'
    meta = _s3(s3_eu).head_object(Bucket="research-eu", Key="phys/a.bin")["Metadata"]
    assert json.loads(meta["hpcai-tags"]) == {"note": ["a,b;c"], "origin": ["DE", "FR"], "project": ["climate model/v2"]}
    filesystem("meta", tags={"origin": "DE"}).pipe_file("phys/b.bin", b"2")
    assert _s3(s3_eu).get_object_tagging(Bucket="research-eu", Key="phys/b.bin")["TagSet"] == []
    assert dict(tags("hpcai://meta/phys/b.bin")) == {"origin": frozenset({"DE"})}
    # more keys than S3 allows object tags for: metadata carries them
    many = {f"k{i}": str(i) for i in range(12)}
    filesystem("onprem", tags=many).pipe_file("phys/many.bin", b"3")
    assert dict(tags("hpcai://onprem/phys/many.bin")) == {k: frozenset({v}) for k, v in many.items()}


@pytest.mark.endpoint("posix")
def test_posix_xattrs_and_sidecars(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    xp.configure(data={"endpoints": {"x": {"url": f"file://{a}", "tag_store": "xattr"}, "s": {"url": f"file://{b}", "tag_store": "sidecar"}}})
    filesystem("x", tags={"origin": "DE"}).pipe_file("f.bin", b"1")
    assert os.getxattr(a / "f.bin", "user.hpcai.origin") == b"DE"
    assert sorted(os.listdir(a)) == ["f.bin"]
    filesystem("s", tags={"origin": "DE"}).pipe_file("f.bin", b"1")
    assert sorted(os.listdir(b)) == [".hpcai-tags.f.bin.json", "f.bin"]
    assert json.loads((b / ".hpcai-tags.f.bin.json").read_text()) == {"origin": ["DE"]}
    assert filesystem("s").ls("", detail=False) == ["f.bin"]
    filesystem("s").rm_file("f.bin")
    assert os.listdir(b) == []


@pytest.mark.endpoint("posix")
def test_tags_are_in_zarr_attributes(tmp_path: Path) -> None:
    xp.configure(data={"endpoints": {"x": {"url": f"file://{tmp_path}"}}})
    v = save(xp.tag(xp.ones(3), origin="DE"), "hpcai://x/a.zarr")
    pointer = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert pointer["attributes"]["hpcai"]["tags"] == {"origin": ["DE"]} and pointer["attributes"]["hpcai"]["head"] == v
    array = json.loads((tmp_path / "a.zarr" / v / "zarr.json").read_text())
    assert array["attributes"]["hpcai"]["tags"] == {"origin": ["DE"]}
    assert [c["name"] for c in array["codecs"]] == ["bytes", "zstd", "crc32c"]


@pytest.mark.endpoint("posix")
def test_posix_saves_replace_old_versions(tmp_path: Path) -> None:
    xp.configure(data={"endpoints": {"x": {"url": f"file://{tmp_path}"}}})
    versions = [save(xp.asarray([float(i)] * 4), "hpcai://x/a.zarr") for i in range(4)]
    assert len(set(versions)) == 4
    on_disk = {p.name for p in (tmp_path / "a.zarr").iterdir() if p.is_dir()}
    assert versions[-1] in on_disk and versions[0] not in on_disk  # old versions are collected
    np.testing.assert_array_equal(np.asarray(load("hpcai://x/a.zarr")), [3.0] * 4)


# -- escaping the root ------------------------------------------------------------------------
@pytest.mark.endpoint("posix")
def test_symlinks_cannot_leave_a_posix_endpoint(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("outside")
    (root / "link").symlink_to(outside)
    (root / "inside").mkdir()
    (root / "ok").symlink_to(root / "inside")
    xp.configure(data={"endpoints": {"x": {"url": f"file://{root}"}}})
    fs = filesystem("x")
    with pytest.raises(PathEscapeError, match="outside the root"):
        fs.cat_file("link/secret.txt")
    with pytest.raises(PathEscapeError):
        fs.pipe_file("link/new.txt", b"x")
    with pytest.raises(PathEscapeError):
        save(xp.ones(2), "hpcai://x/link/a.zarr")
    with pytest.raises(PathEscapeError):
        save(xp.ones(2), "hpcai://x/link/deep/a.zarr")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    fs.pipe_file("ok/fine.txt", b"inside")  # a link that stays inside is fine
    assert (root / "inside" / "fine.txt").read_bytes() == b"inside"


# -- secrets ----------------------------------------------------------------------------------
def test_secrets_never_leak(onprem_table: dict[str, Any], credentials: tuple[str, str], tmp_path: Path,
                            caplog: pytest.LogCaptureFixture, s3_eu: S3Server) -> None:
    key, secret = credentials
    audit = tmp_path / "audit.jsonl"
    bad = {**onprem_table, "url": "s3://no-such-bucket", "retry": {"attempts": 1}}
    xp.configure(data={**POLICY, "endpoints": {"onprem": onprem_table, "bad": bad}, "audit": {"path": str(audit)}})
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        fs = filesystem("onprem", tags={"classification": "personal"})
        fs.pipe_file("leak/a.bin", b"x")
        save(xp.tag(xp.ones(4), classification="personal"), "hpcai://onprem/leak/x.zarr")
        load("hpcai://onprem/leak/x.zarr")
        for call in (lambda: save(xp.tag(xp.ones(2), classification="secret"), "hpcai://onprem/leak/s.zarr"),
                     lambda: filesystem("bad").cat_file("x"),
                     lambda: filesystem("bad").pipe_file("x", b"1"),
                     lambda: load("hpcai://onprem/leak/none.zarr")):
            with pytest.raises((ResidencyError, OSError)) as info:
                call()
            texts.append(str(info.value))
            texts.append(repr(info.value))
    texts += [repr(fs), repr(fs.endpoint), str(fs.to_json()), pickle.dumps(fs).decode("latin-1"), audit.read_text()]
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    assert "no-such-bucket" in blob and "secret-nowhere" in blob  # the errors did happen
    assert key not in blob and secret not in blob
    # a pickled filesystem is rebuilt from the endpoint name, not from stored secrets
    fs2 = pickle.loads(pickle.dumps(fs))
    assert fs2.cat_file("leak/a.bin") == b"x"
