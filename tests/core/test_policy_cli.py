"""``hpcai policy check|explain`` and ``hpcai audit show|verify``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hpcai as xp
from hpcai import audit
from hpcai.cli import main

POLICY = """
[site]
country = "DE"
jurisdiction = "EU"
provider = "onprem"

[devices."emulated:1"]
attributes = { country = "US", jurisdiction = "US", provider = "hyperscaler" }

[groups]
eu = ["AT", "BE", "DE", "FR", "NL"]

[[policy.rules]]
name = "gdpr-personal"
match = "classification=personal"
compute = "country=@eu"
store = "country=@eu & provider!=hyperscaler"
description = "personal data stays in the EU"

[[policy.rules]]
name = "watch-us"
match = "origin=DE"
compute = "jurisdiction!=US"
effect = "audit"

[audit]
path = "audit.jsonl"
"""


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "env-audit.jsonl"))
    path = tmp_path / "site.toml"
    path.write_text(POLICY)
    return path


def test_policy_check_summarises(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(policy_file)]) == 0
    out = capsys.readouterr().out
    assert f"policy OK: {policy_file}" in out
    assert "@eu = AT, BE, DE, FR, NL" in out
    assert "gdpr-personal [deny]  match: classification=personal" in out
    assert "personal data stays in the EU" in out
    line = next(ln for ln in out.splitlines() if "compute:" in ln and "country=@eu" in ln)
    assert "denied: emulated:1" in line and "emulated:0" in line.split("denied:")[0]
    assert "export:   (not restricted by this rule)" in out
    assert "watch-us [audit]" in out
    assert f"audit log: {policy_file.parent / 'audit.jsonl'}" in out


def test_policy_check_json(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(policy_file), "policy", "check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == str(policy_file)
    rule = data["rules"][0]
    assert rule["name"] == "gdpr-personal" and rule["export"] is None
    assert "emulated:1" in rule["compute"]["devices_denied"]
    assert rule["store"] == {"expression": "country=@eu & provider!=hyperscaler"}
    assert data["devices"]["emulated:1"]["country"] == "US"
    assert data["covers_untagged_data"] is False


def test_policy_check_reports_errors_with_file_rule_column(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file.write_text(POLICY.replace('compute = "country=@eu"', 'compute = "country=@eu &"'))
    assert main(["policy", "check", str(policy_file)]) == 1
    err = capsys.readouterr().err
    assert str(policy_file) in err and '"gdpr-personal"' in err and "column 14" in err and "^" in err


def test_policy_check_without_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check"]) == 0
    assert "rules: none" in capsys.readouterr().out


def test_policy_explain_deny(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--config", str(policy_file), "policy", "explain", "--tags", "classification=personal", "--to", "emulated:1", "--op", "compute"])
    assert rc == 3
    out = capsys.readouterr().out
    assert out.startswith("decision: DENY")
    assert "deciding rule: gdpr-personal" in out
    assert "country=US" in out and str(policy_file) in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("  gdpr-personal") or ln.startswith("  watch-us")]
    assert rows[0][:3] == ["gdpr-personal", "deny", "yes"] and rows[0][-1] == "refuses"
    assert rows[1][:3] == ["watch-us", "audit", "no"] and rows[1][-1] == "-"
    # explaining decides nothing: the log holds only the record of the policy being applied
    recs = audit.read(policy_file.parent / "audit.jsonl")
    assert [r["operation"] for r in recs] == ["policy"] and recs[0]["rules"] == ["gdpr-personal", "watch-us"]


def test_policy_explain_allow_audit_and_json(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(policy_file), "policy", "explain"]
    assert main([*args, "--tags", "classification=personal", "--to", "emulated:0"]) == 0
    assert capsys.readouterr().out.startswith("decision: ALLOW")
    assert main([*args, "--tags", "origin=DE", "--to", "emulated:1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision: ALLOW (recorded: audit rule)") and "deciding rule: watch-us" in out
    assert main([*args, "--tags", "classification=personal,origin=DE", "--attr", "country=FR", "--op", "store", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["allowed"] is False and data["rule"] == "gdpr-personal" and data["op"] == "store"
    assert data["tags"] == {"classification": ["personal"], "origin": ["DE"]}
    assert main([*args, "--tags", "classification=public", "--to", "emulated:1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["allowed"] is True and data["rule"] is None and data["effect"] is None


def test_policy_explain_bad_input(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(policy_file), "policy", "explain", "--tags", "classification"]) == 1
    assert "key=value" in capsys.readouterr().err
    assert main(["--config", str(policy_file), "policy", "explain", "--tags", "a=b"]) == 1
    assert "--to DEVICE, --endpoint NAME or --attr" in capsys.readouterr().err
    assert main(["--config", str(policy_file), "policy", "explain", "--tags", "a=b", "--to", "emulated:9"]) == 1
    assert "unknown device 'emulated:9'" in capsys.readouterr().err


def _make_log(policy_file: Path) -> Path:
    xp.configure(policy_file)
    x = xp.tag(xp.asarray([1.0, 2.0]), classification="personal")
    x.to_device("emulated:0")
    with pytest.raises(xp.errors.ResidencyError):
        x.to_device("emulated:1")
    xp.untag(x, "classification", reason="aggregated")
    return policy_file.parent / "audit.jsonl"


def test_audit_show_and_verify(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _make_log(policy_file)
    assert main(["--config", str(policy_file), "audit", "show"]) == 0
    out = capsys.readouterr().out
    assert f"audit log {log}: 5 record(s)" in out
    rows = out.splitlines()[2:]
    assert "policy" in rows[0] and "in-force" in rows[0]  # xp.configure recorded the policy first
    assert "tag" in rows[1] and "numpy:cpu -> emulated:0" in rows[2] and "allow" in rows[2]
    assert "emulated:0 -> emulated:1" not in out and "numpy:cpu -> emulated:1" in rows[3] and "deny" in rows[3]
    assert "untag" in rows[4] and "reason: aggregated" in rows[4]
    assert main(["audit", "show", "--log", str(log), "--json", "--tail", "1"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["operation"] == "untag" and rec["seq"] == 4
    assert main(["audit", "verify", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "OK, 5 record(s)" in out and f"head: {audit.verify(log).head_hash}" in out


def test_audit_verify_names_the_first_bad_record(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _make_log(policy_file)
    lines = log.read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"decision":"deny"', b'"decision":"allow"')
    log.write_bytes(b"".join(ln + b"\n" for ln in lines))
    assert main(["audit", "verify", "--log", str(log)]) == 4
    err = capsys.readouterr().err
    assert "FAILED at record 3 (line 4)" in err and "altered" in err
    assert main(["audit", "verify", "--log", str(log), "--json"]) == 4
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["first_bad_index"] == 3


def test_console_script_exit_codes(policy_file: Path, tmp_path: Path) -> None:
    """The installed ``hpcai`` script: exit 0 on an intact log, non-zero naming the record after truncation."""
    exe = shutil.which("hpcai", path=os.path.dirname(sys.executable)) or shutil.which("hpcai")
    if exe is None:
        pytest.skip("the hpcai console script is not installed")
    log = _make_log(policy_file)
    env = {**os.environ, "HPCAI_CONFIG": str(policy_file)}
    ok = subprocess.run([exe, "audit", "verify"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    intact = log.read_bytes()
    lines = intact.splitlines()
    log.write_bytes(b"".join(ln + b"\n" for ln in lines[:3]))
    bad = subprocess.run([exe, "audit", "verify"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 4
    assert "record 3 (line 4)" in bad.stderr and "removed" in bad.stderr
    deny = subprocess.run(
        [exe, "policy", "explain", "--tags", "classification=personal", "--to", "emulated:1", "--op", "compute"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert deny.returncode == 3 and "gdpr-personal" in deny.stdout
    # a truncated log refuses everything recorded in it, dropping its policy included
    with pytest.raises(xp.errors.AuditError, match="not changed"):
        xp.configure(data={})
    log.write_bytes(intact)
