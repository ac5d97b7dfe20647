"""What the Ceph RGW pass rests on, checked without a server: the tag header encoding, the
env file ``ci/rgw.sh start`` writes, the per-endpoint summary line, the docs' TOML."""

from __future__ import annotations

import importlib.util
import re
import tomllib
import urllib.parse
from pathlib import Path

import pytest
from hpcai.storage import endpoints
from hpcai.storage._tags_io import _s3_tagging, decode_value, encode_value
from hpcai.storage.testing import RGW_ENV, RGWServer, rgw_from_env

import hpcai as xp
from hpcai.errors import InvalidArgumentError

ROOT = Path(__file__).resolve().parents[2]


def _rgw_decode(header: str) -> dict[str, str]:
    """How Ceph RGW reads ``x-amz-tagging``: split on '&' and '=', percent-decode, '+' stays '+'."""
    return dict((urllib.parse.unquote(k), urllib.parse.unquote(v)) for k, v in (p.split("=", 1) for p in header.split("&")))


@pytest.mark.parametrize("values", [["climate model/v2"], ["DE", "FR"], ["a=b:c@d"], ["x y", "DE"], ["a+b"],
                                    ["Zürich, CH"], ["b64:not-really"], ["100%"]])
def test_tag_header_reads_back_the_same_without_plus_decoding(values: list[str]) -> None:
    header = _s3_tagging(frozenset(("k", v) for v in values))
    assert header is not None and "+" not in header  # a space is %20, a '+' %2B
    got = _rgw_decode(header)
    assert sorted(decode_value(got["hpcai.k"])) == sorted(values)
    assert urllib.parse.parse_qs(header) == {"hpcai.k": [encode_value(values)]}  # and as AWS/moto read it


def test_plus_joins_values_and_is_never_inside_a_plain_one() -> None:
    assert encode_value(["FR", "DE"]) == "DE+FR"
    assert encode_value(["a+b"]).startswith("b64:") and decode_value(encode_value(["a+b"])) == ["a+b"]
    assert encode_value(["a+b", "DE"]).startswith("b64:")


def test_rgw_env_file(tmp_path: Path) -> None:
    (tmp_path / "env").write_text(
        "# Ceph RGW started by ci/rgw.sh\n"
        f"export HPCAI_RGW_DIR='{tmp_path}'\n"
        "export HPCAI_RGW_ENDPOINT='http://127.0.0.1:40597'\n"
        "export HPCAI_RGW_REGION='eu-central-1'\n"
        "export HPCAI_RGW_ACCESS_KEY='AKIA0123'\n"
        "export HPCAI_RGW_SECRET_KEY='s3cr3t/with+chars'\n"
        "export HPCAI_RGW_PIDS='1 2 3'\n"
    )
    srv = RGWServer.from_env_file(tmp_path)
    assert (srv.url, srv.region, srv.key, srv.secret, srv.directory) == (
        "http://127.0.0.1:40597", "eu-central-1", "AKIA0123", "s3cr3t/with+chars", str(tmp_path))
    assert "s3cr3t" not in repr(srv) and "AKIA0123" not in repr(srv)
    assert RGWServer.from_env_file(tmp_path / "env") == srv
    assert rgw_from_env({RGW_ENV: str(tmp_path)}) == srv
    assert rgw_from_env({}) is None and rgw_from_env({RGW_ENV: " "}) is None
    (tmp_path / "env").write_text("export HPCAI_RGW_ENDPOINT='http://127.0.0.1:1'\n")
    with pytest.raises(InvalidArgumentError, match="does not set HPCAI_RGW_ACCESS_KEY, HPCAI_RGW_SECRET_KEY"):
        RGWServer.from_env_file(tmp_path)
    with pytest.raises(InvalidArgumentError, match="cannot read .*nowhere.*ci/rgw.sh start"):
        RGWServer.from_env_file(tmp_path / "nowhere")


def test_endpoint_summary_line() -> None:
    spec = importlib.util.spec_from_file_location("endpoint_counts", ROOT / "ci" / "endpoint_counts.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    main = {"moto": {"passed": 170, "skipped": 2}, "POSIX": {"passed": 100}, "Ceph RGW": {"skipped": 66}}
    assert mod.summary(main, {"Ceph RGW": {"passed": 78}}) == (
        "== storage tests per endpoint: moto 170 passed (2 skipped); POSIX 100 passed; Ceph RGW 78 passed")
    assert mod.summary(main, {}, "not root").endswith("Ceph RGW not run (not root)")


def test_toml_blocks_in_the_rgw_docs_are_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / "rgw.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        data = tomllib.loads(block)
        xp.configure(data=data)
        assert sorted(endpoints()) == sorted(data["endpoints"])


def test_rgw_script_is_there_and_documented() -> None:
    script = (ROOT / "ci" / "rgw.sh").read_text()
    for cmd in ("install)", "start)", "stop)"):
        assert cmd in script
    for setting in ("ms mon client mode = crc", "paxos propose interval = 0.05", "tcp_nodelay=1",
                    "mon allow pool size one = true", "osd crush chooseleaf type = 0", "api_name"):
        assert setting in script
    assert "ci/rgw.sh" in (ROOT / "ci" / "test.sh").read_text()
