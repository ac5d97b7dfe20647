"""Attacks on the residency configuration: a policy must never be silently absent.

Each test is an attack that succeeds if the defence it names is removed:

* the site layer ($HPCAI_SITE_CONFIG, standing in for /etc/hpcai/hpcai.toml) applies with no
  project configuration, and survives ``xp.configure(data={})`` / ``xp.configure(path)``;
* user / project configuration cannot replace a site rule, a site group, the site's
  location attributes or the site's audit path;
* tag values are compared folded (case, surrounding / repeated whitespace, NFKC, invisible
  characters), so spelling variants of a covered value stay covered;
* every change of the effective policy leaves an audit record carrying its hash;
* a broken site file is an error naming the file, never a permissive default.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpcai as xp
from hpcai import _config, audit, residency
from hpcai.errors import ConfigError, InvalidArgumentError, PolicySyntaxError, ResidencyError

SITE = """
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

[audit]
path = "site-audit.jsonl"
"""

DENIED = "emulated:1"


class Site:
    """Paths of one test's site configuration, its audit log and an empty working directory."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "etc-hpcai"
        self.dir.mkdir()
        self.file = self.dir / "hpcai.toml"
        self.file.write_text(SITE)
        self.log = self.dir / "site-audit.jsonl"
        self.work = root / "work"  # no hpcai.toml, no pyproject.toml
        self.work.mkdir()

    def records(self, operation: str | None = None) -> list[dict[str, object]]:
        return [r for r in audit.read(self.log) if operation is None or r["operation"] == operation]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    s = Site(tmp_path)
    for var in ("HPCAI_CONFIG", "HPCAI_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "env-audit.jsonl"))
    monkeypatch.setenv("HPCAI_SITE_CONFIG", str(s.file))
    monkeypatch.chdir(s.work)
    xp.configure()  # discovery: the site file, and no project file in this directory
    yield s
    monkeypatch.delenv("HPCAI_SITE_CONFIG")
    xp.configure(data={})


def _personal(value: str = "personal") -> xp.Array:
    return xp.asarray([1.0, 2.0, 3.0], tags={"classification": value})


def _refused(x: xp.Array) -> ResidencyError:
    with pytest.raises(ResidencyError) as info:
        x.to_device(DENIED)
    return info.value


def _user_file(site: Site, text: str) -> Path:
    path = site.work / "hpcai.toml"
    path.write_text(text)
    return path


# ============================================================================================
# the site layer cannot be left out
# ============================================================================================
def test_fresh_process_without_project_config_still_refuses(site: Site) -> None:
    """Defence: the site layer is loaded by discovery (not only by an explicit configure)."""
    code = (
        "import hpcai as xp\n"
        "x = xp.asarray([1.0, 2.0], tags={'classification': 'personal'})\n"
        "try:\n"
        "    x.to_device('emulated:1')\n"
        "except xp.errors.ResidencyError as e:\n"
        "    print('REFUSED', e.decision.rule)\n"
        "else:\n"
        "    print('MOVED')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HPCAI_CONFIG", "HPCAI_DEVICE")}
    out = subprocess.run([sys.executable, "-c", code], cwd=site.work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["REFUSED", "gdpr-personal"]
    # the first audited event of that process was preceded by the record of its policy
    recs = site.records()
    loads = [r for r in recs if r["operation"] == "policy" and r["op"] == "load"]
    assert loads and loads[-1]["site_config"] == str(site.file)
    deny = recs[-1]
    assert deny["decision"] == "deny" and deny["policy_hash"] == loads[-1]["policy_hash"]
    assert recs.index(loads[-1]) < recs.index(deny)


def test_in_process_discovery_without_project_config_refuses(site: Site) -> None:
    cfg = xp.get_config()
    assert cfg.site == str(site.file) and cfg.sources == (str(site.file),)
    err = _refused(_personal())
    assert err.decision.rule == "gdpr-personal"  # type: ignore[attr-defined]


def test_configure_data_empty_keeps_the_site_policy(site: Site) -> None:
    """Defence: configure(data=...) replaces the user layer only."""
    xp.configure(data={})
    _refused(_personal())
    xp.configure(data={"policy": {"rules": []}, "default_device": "numpy:cpu"})
    _refused(_personal())
    assert [r.name for r in residency.current_policy().rules] == ["gdpr-personal"]


def test_configure_path_keeps_the_site_policy(site: Site, tmp_path: Path) -> None:
    other = tmp_path / "permissive.toml"
    other.write_text('default_device = "numpy:cpu"\n')
    xp.configure(other)
    _refused(_personal())
    assert xp.get_config().sources == (str(site.file), str(other))


# ============================================================================================
# user / project configuration cannot weaken the site's
# ============================================================================================
def test_user_rule_with_the_site_rule_name_cannot_replace_it(site: Site) -> None:
    """Defence: a user rule named like a site rule is ignored (not merged over it)."""
    path = _user_file(
        site,
        '[[policy.rules]]\nname = "gdpr-personal"\nmatch = "classification=personal"\ncompute = "true"\n'
        '[[policy.rules]]\nname = "extra"\nmatch = "owner=acme"\nexport = "false"\n',
    )
    with pytest.warns(_config.ConfigWarning, match=r'"gdpr-personal".*site rule has this name'):
        cfg = xp.configure()
    assert cfg.sources == (str(site.file), str(path))
    assert [r.name for r in residency.current_policy().rules] == ["gdpr-personal", "extra"]
    assert residency.current_policy().rules[0].compute == residency.parse_expression("country=@eu")
    _refused(_personal())
    # the same through configure(data=...)
    with pytest.warns(_config.ConfigWarning):
        xp.configure(data={"policy": {"rules": [{"name": "gdpr-personal", "match": "false"}]}})
    _refused(_personal())


def test_user_attributes_cannot_move_a_device_into_the_eu(site: Site) -> None:
    """Defence: location attributes come from the site layer only."""
    _user_file(
        site,
        '[site]\ncountry = "DE"\n'
        '[devices."emulated:1"]\nattributes = { country = "DE", jurisdiction = "EU", provider = "onprem" }\n'
        'memory = "2 GiB"\n',
    )
    with pytest.warns(_config.ConfigWarning) as caught:
        cfg = xp.configure()
    notes = [str(w.message) for w in caught]
    assert any('[devices."emulated:1"].attributes ignored' in n for n in notes)
    assert any("[site] ignored" in n for n in notes) and list(cfg.ignored) == notes
    dev = xp.resolve_device(DENIED)
    assert dict(dev.attributes) == {"country": "US", "jurisdiction": "US", "provider": "hyperscaler"}
    assert cfg.data["devices"]["emulated:1"]["memory"] == "2 GiB"  # non-residency keys still apply
    _refused(_personal())


def test_user_attributes_cannot_describe_a_device_the_site_left_out(site: Site) -> None:
    """A device the site does not name gets the site's [site] attributes, not the user's."""
    with pytest.warns(_config.ConfigWarning):
        xp.configure(data={"devices": {"emulated:2": {"attributes": {"tier": "trusted"}}}})
    assert "tier" not in xp.resolve_device("emulated:2").attributes


def test_user_endpoints_carry_no_attributes_and_site_endpoints_stay(site: Site, tmp_path: Path) -> None:
    storage = pytest.importorskip("hpcai.storage")
    site.file.write_text(
        SITE + f'\n[endpoints.vault]\nurl = "file://{tmp_path}/vault"\nattributes = {{ country = "DE", provider = "onprem" }}\n'
    )
    with pytest.warns(_config.ConfigWarning) as caught:
        cfg = xp.configure(
            data={
                "endpoints": {
                    "vault": {"url": f"file://{tmp_path}/elsewhere"},
                    "mine": {"url": f"file://{tmp_path}/mine", "attributes": {"country": "DE", "provider": "onprem"}},
                }
            }
        )
    notes = " ".join(str(w.message) for w in caught)
    assert "[endpoints.vault] ignored" in notes and "[endpoints.mine].attributes ignored" in notes
    assert cfg.data["endpoints"]["vault"]["url"].endswith("/vault")
    assert "attributes" not in cfg.data["endpoints"]["mine"]
    mine, vault = storage.get_endpoint("mine"), storage.get_endpoint("vault")
    assert dict(mine.attributes) == {} and dict(vault.attributes) == {"country": "DE", "provider": "onprem"}
    d = residency.decide("store", {"classification": "personal"}, mine.attributes, destination="mine")
    assert not d.allowed and d.rule == "gdpr-personal"  # no attributes: fails closed
    assert residency.decide("store", {"classification": "personal"}, vault.attributes, destination="vault").allowed


def test_user_group_cannot_widen_a_site_group(site: Site) -> None:
    """Defence: site rules read the site's groups; a same-named user group is ignored."""
    with pytest.warns(_config.ConfigWarning, match=r"\[groups\] eu ignored"):
        xp.configure(data={"groups": {"eu": ["US", "DE"], "mine": ["x"]}})
    assert residency.current_policy().groups["eu"] == frozenset({"AT", "BE", "DE", "FR", "NL"})
    assert "mine" in residency.current_policy().groups
    _refused(_personal())


def test_user_cannot_move_the_site_audit_trail(site: Site, tmp_path: Path) -> None:
    with pytest.warns(_config.ConfigWarning, match=r"\[audit\] ignored"):
        xp.configure(data={"audit": {"path": str(tmp_path / "elsewhere.jsonl")}})
    assert audit.log_path() == site.log
    _refused(_personal())
    assert site.records("to_device")[-1]["decision"] == "deny"
    assert not (tmp_path / "elsewhere.jsonl").exists()


def test_user_rules_are_added_and_can_only_restrict(site: Site) -> None:
    xp.configure(data={"policy": {"rules": [{"name": "no-export", "match": "classification=personal", "export": "false"}]}})
    assert [r.name for r in residency.current_policy().rules] == ["gdpr-personal", "no-export"]
    assert not residency.decide("export", {"classification": "personal"}, {}, destination="numpy:cpu").allowed


# ============================================================================================
# tag values: one spelling per value
# ============================================================================================
VARIANTS = ["Personal", " personal ", "PERSONAL", "personal\n", "ｐｅｒｓｏｎａｌ", "perso\u200bnal", "pErSoNaL\t"]


@pytest.mark.parametrize("value", VARIANTS)
def test_spelling_variants_of_a_covered_value_are_covered(site: Site, value: str) -> None:
    """Defence: the engine compares folded keys and values (residency.fold)."""
    if "\u200b" in value:  # the one tag normaliser refuses invisible characters outright
        with pytest.raises(InvalidArgumentError, match="U\\+200B"):
            _personal(value)  # xp.asarray(tags=...)
    else:
        err = _refused(_personal(value))  # xp.asarray(tags=...)
        assert err.decision.rule == "gdpr-personal"  # type: ignore[attr-defined]
    # tags that arrive as a tag set (storage, pickles) bypass every normaliser: still covered
    d = residency.decide("compute", frozenset({("classification", value)}), {"country": "US"}, destination="x")
    assert not d.allowed
    d = residency.decide("compute", frozenset({("Classification", value)}), {"country": "US"}, destination="x")
    assert not d.allowed


@pytest.mark.parametrize("value", [v for v in VARIANTS if "\u200b" not in v])
def test_xp_tag_normalises_and_stays_covered(site: Site, value: str) -> None:
    u = xp.asarray([1.0], device=DENIED)
    with pytest.raises(ResidencyError):
        xp.tag(u, classification=value)
    x = xp.tag(xp.asarray([1.0]), classification=value)
    assert x.tags["classification"] == {" ".join(value.split()).replace("ｐｅｒｓｏｎａｌ", "personal")}
    _refused(x)


def test_xp_tag_refuses_invisible_characters(site: Site) -> None:
    with pytest.raises(InvalidArgumentError, match="U\\+200B"):
        xp.tag(xp.asarray([1.0]), classification="perso\u200bnal")
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        xp.tag(xp.asarray([1.0]), classification="   ")


def test_rules_and_attributes_are_compared_folded_too(site: Site) -> None:
    xp.configure(
        data={
            "policy": {
                "rules": [
                    {"name": "acme", "match": "Owner=ACME", "compute": "provider!=hyperscaler"},
                ]
            }
        }
    )
    # a rule written in capitals covers lower-case tags ...
    d = residency.decide("compute", {"owner": "acme"}, {"provider": "onprem"}, destination="d")
    assert d.covered and d.allowed and d.rule == "acme"
    # ... and an attribute spelt differently does not slip past a != test (fail closed)
    d = residency.decide("compute", {"owner": "acme"}, {"provider": "HyperScaler"}, destination="d")
    assert not d.allowed and d.rule == "acme"


# ============================================================================================
# policy changes are recorded, with the policy's hash
# ============================================================================================
def test_every_policy_change_is_recorded_with_its_hash(site: Site, tmp_path: Path) -> None:
    """Defence: xp.configure writes a policy record before the change applies."""
    base = residency.policy_hash()
    assert base == residency.policy_hash(xp.get_config())
    n = len(site.records("policy"))
    xp.configure(data={"policy": {"rules": [{"name": "extra", "match": "owner=acme", "export": "false"}]}})
    added = residency.policy_hash()
    recs = site.records("policy")
    assert len(recs) == n + 1
    rec = recs[-1]
    assert rec["policy_hash"] == added != base and rec["previous_policy_hash"] == base
    assert rec["via"] == "xp.configure(data=...)" and rec["rules"] == ["gdpr-personal", "extra"]
    assert rec["site_config"] == str(site.file) and rec["sources"][0] == str(site.file)
    assert rec["user"] and rec["host"] and rec["pid"] == os.getpid()
    # the same configuration again is no change: no record
    xp.configure(data={"policy": {"rules": [{"name": "extra", "match": "owner=acme", "export": "false"}]}})
    assert len(site.records("policy")) == n + 1
    # back to the site's policy alone: recorded, naming the rule that stopped applying
    xp.configure(data={})
    rec = site.records("policy")[-1]
    assert rec["policy_hash"] == base and rec["previous_policy_hash"] == added and rec["dropped"] == ["extra"]
    # decisions name the policy that made them
    _refused(_personal())
    assert site.records("to_device")[-1]["policy_hash"] == base
    assert audit.verify(site.log).ok


def test_policy_hash_is_canonical() -> None:
    rule = {"name": "r", "match": "classification=personal", "compute": "country=@eu"}
    groups = {"eu": ["DE", "FR"]}
    a = residency.policy_hash(xp.configure(data={"groups": groups, "policy": {"rules": [rule]}}))
    spaced = {**rule, "compute": "  (country = @eu) ", "description": "words do not decide"}
    b = residency.policy_hash(xp.configure(data={"groups": {"eu": ["FR", "DE", "DE"]}, "policy": {"rules": [spaced]}}))
    assert a == b
    c = residency.policy_hash(xp.configure(data={"groups": groups, "policy": {"rules": [{**rule, "compute": "true"}]}}))
    d = residency.policy_hash(
        xp.configure(data={"groups": groups, "policy": {"rules": [rule]}, "site": {"country": "US"}})
    )
    assert len({a, c, d}) == 3  # a rule or an attribute changes it
    assert len(a) == 64 and int(a, 16) >= 0


def test_dropping_every_rule_without_a_site_is_recorded_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a site layer, configure(data={}) may drop the rules, but never silently."""
    monkeypatch.delenv("HPCAI_SITE_CONFIG", raising=False)
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "env-audit.jsonl"))
    project = tmp_path / "hpcai.toml"
    project.write_text(SITE)
    xp.configure(project)
    with caplog.at_level(logging.WARNING, logger="hpcai.residency"):
        xp.configure(data={})
    assert "no longer in force: gdpr-personal" in caplog.text
    recs = [r for r in audit.read(tmp_path / "site-audit.jsonl") if r["operation"] == "policy"]
    assert [r["op"] for r in recs] == ["configure", "configure"]
    assert recs[-1]["dropped"] == ["gdpr-personal"] and recs[-1]["rules"] == []
    assert recs[-1]["previous_policy_hash"] == recs[0]["policy_hash"]


# ============================================================================================
# a broken site file is an error naming it
# ============================================================================================
def test_site_file_with_a_syntax_error_is_an_error_naming_it(site: Site) -> None:
    before = residency.policy_hash()
    site.file.write_text(SITE.replace('compute = "country=@eu"', 'compute = "country=@eu'))
    for attempt in (lambda: xp.configure(data={}), lambda: xp.configure()):
        with pytest.raises(ConfigError, match=rf"{site.file}: invalid TOML"):
            attempt()
    assert residency.policy_hash() == before  # not applied: the site policy is still in force
    _refused(_personal())
    site.file.write_text(SITE.replace('compute = "country=@eu"', 'compute = "country=@eu &"'))
    with pytest.raises(PolicySyntaxError, match=rf"{site.file}: .*\"gdpr-personal\": compute"):
        xp.configure(data={})
    # and a fresh process refuses to start deciding rather than run without the site policy
    code = "import hpcai as xp; xp.asarray([1.0]).to_device('emulated:1')"
    out = subprocess.run([sys.executable, "-c", code], cwd=site.work, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and str(site.file) in out.stderr


def test_named_site_file_that_does_not_exist_is_an_error(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCAI_SITE_CONFIG", str(site.dir / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml: site configuration file not found"):
        xp.configure(data={})
    monkeypatch.setenv("HPCAI_SITE_CONFIG", str(site.file))


def test_policy_check_shows_the_layers(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    from hpcai.cli import main

    with pytest.warns(_config.ConfigWarning):
        xp.configure(data={"site": {"country": "FR"}})
    assert main(["policy", "check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["site_config"] == str(site.file)
    assert data["policy_hash"] == residency.policy_hash()
    assert any("[site] ignored" in note for note in data["ignored"])
