"""Covered data carries the rules that cover it: a process without hpcai configuration
(no rules, no [site]) must not accept it, whether unpickled or deserialized by Dask."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import hpcai as xp
from hpcai.residency._carried import carried_rules

RULES = {
    "groups": {"eu": ["DE", "FR"]},
    "policy": {"rules": [{"name": "gdpr-personal", "match": "classification=personal", "compute": "country=@eu"}]},
}


@pytest.fixture(autouse=True)
def eu(tmp_path: Path) -> None:
    xp.configure(data={"site": {"country": "DE"}, **RULES, "audit": {"path": str(tmp_path / "audit.jsonl")}})


def _unpickle_elsewhere(blob: bytes, config: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCAI_")}
    env["HPCAI_STATE_DIR"] = str(tmp_path / "state")
    if config is not None:
        (tmp_path / "c.toml").write_text(config)
        env["HPCAI_CONFIG"] = str(tmp_path / "c.toml")
    (tmp_path / "blob.pkl").write_bytes(blob)
    code = (
        "import pickle, sys\n"
        "try:\n"
        f"    x = pickle.load(open({str(tmp_path / 'blob.pkl')!r}, 'rb'))\n"
        "    print('accepted', dict(x.tags))\n"
        "except Exception as e:\n"
        "    print('refused', type(e).__name__, e)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)  # (from the repository root, the source tree's hpcai/ would be imported)


def test_the_covering_rules_travel_with_the_data() -> None:
    c = carried_rules(xp.tag(xp.ones(2), classification="personal")._tags)
    assert c is not None
    assert c["rules"] == [{"name": "gdpr-personal", "effect": "deny", "match": "classification=personal",
                           "compute": "country=@eu"}]
    assert c["groups"] == {"eu": ["DE", "FR"]} and len(c["from"]) == 64
    assert carried_rules(xp.ones(2)._tags) is None
    assert carried_rules(xp.tag(xp.ones(2), origin="x")._tags) is None


@pytest.mark.parametrize(("config", "verdict"), [
    (None, "refused"),                                                        # no configuration at all
    ('[site]\ncountry = "US"\n', "refused"),                                  # a site, but no rules
    ('[site]\ncountry = "FR"\n', "accepted"),                                 # the carried rules hold
    ('[site]\ncountry = "FR"\n[[policy.rules]]\nname = "local"\nmatch = "classification=personal"\ncompute = "false"\n',
     "refused"),                                                              # its own rules refuse
])
def test_an_unpickled_array_is_checked_against_the_carried_rules(tmp_path: Path, config: str | None, verdict: str) -> None:
    blob = pickle.dumps(xp.tag(xp.arange(3.0), classification="personal"))
    out = _unpickle_elsewhere(blob, config, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == verdict, out.stdout
    if verdict == "refused":
        assert "ResidencyError" in out.stdout and ("gdpr-personal" in out.stdout or "local" in out.stdout)


def test_untagged_data_pickles_as_before(tmp_path: Path) -> None:
    out = _unpickle_elsewhere(pickle.dumps(xp.arange(3.0)), None, tmp_path)
    assert out.stdout.startswith("accepted")
