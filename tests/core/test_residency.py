"""Residency: the expression grammar, policy files, decisions, tags and enforcement on movement."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpcai as xp
from hpcai import audit, residency
from hpcai.errors import (
    AuditError,
    ConfigError,
    DTypeError,
    InvalidArgumentError,
    PolicySyntaxError,
    ResidencyError,
)
from hpcai.residency import And, Compare, Const, Not, Or, parse_expression
from hpcai.testing import ATTACK_POLICY

# The attack suite's policy (also sets jax:cpu:1 to US/hyperscaler attributes).
POLICY = ATTACK_POLICY


@pytest.fixture(autouse=True)
def _audit_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records made without an [audit] path go to a per-test file, never the user's state dir."""
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "env-audit.jsonl"))


@pytest.fixture
def policy(config, tmp_path: Path) -> Path:
    """The policy of the issue (plus an export rule) applied; returns the audit log path."""
    config(POLICY)
    return tmp_path / "audit.jsonl"


def _decisions(log: Path) -> list[dict[str, object]]:
    """The decision records of a log (without the policy records a configure writes)."""
    return [r for r in audit.read(log) if r["operation"] != "policy"]


def _personal(values=(1.0, 2.0, 3.0, 4.0)) -> xp.Array:
    return xp.tag(xp.asarray(list(values)), classification="personal")


# ============================================================================================
# the expression grammar
# ============================================================================================
def test_precedence_not_and_or() -> None:
    e = parse_expression("a=1 | b=2 & !c=3")
    assert e == Or((Compare("a", "1"), And((Compare("b", "2"), Not(Compare("c", "3"))))))
    assert parse_expression("(a=1 | b=2) & c=3") == And((Or((Compare("a", "1"), Compare("b", "2"))), Compare("c", "3")))
    assert parse_expression("!(a=1 & b=2)") == Not(And((Compare("a", "1"), Compare("b", "2"))))
    # chains flatten, so printing and re-parsing gives the same tree
    assert parse_expression("a=1 & (b=2 & c=3)") == And((Compare("a", "1"), Compare("b", "2"), Compare("c", "3")))


def test_evaluation_semantics() -> None:
    groups = {"eu": ["DE", "FR"]}
    e = parse_expression("country=@eu & provider!=hyperscaler")
    assert e.evaluate({"country": "DE", "provider": "onprem"}, groups)
    assert not e.evaluate({"country": "US", "provider": "onprem"}, groups)
    assert not e.evaluate({"country": "FR", "provider": "hyperscaler"}, groups)
    # a missing key satisfies neither = nor != (fail closed); !(k=v) is "absent or different"
    assert not e.evaluate({"country": "DE"}, groups)
    assert parse_expression("!(provider=hyperscaler)").evaluate({"country": "DE"})
    # multi-valued tags: = means "one of the values", != means "none of the values"
    tags = {"origin": frozenset({"DE", "US"})}
    assert parse_expression("origin=US").evaluate(tags)
    assert not parse_expression("origin!=US").evaluate(tags)
    assert parse_expression("origin!=@eu").evaluate({"origin": "US"}, groups)
    assert not parse_expression("origin!=@eu").evaluate(tags, groups)
    assert parse_expression("true").evaluate({}) and not parse_expression("false").evaluate({})
    assert parse_expression("a=1 | b=2 & c=3").evaluate({"a": "1"})  # & binds tighter than |
    assert not parse_expression("(a=1 | b=2) & c=3").evaluate({"a": "1"})
    assert parse_expression("name=\"a b\" & path='x\"y'").evaluate({"name": "a b", "path": 'x"y'})


def test_unknown_group_in_evaluate() -> None:
    with pytest.raises(ConfigError, match="unknown group @eu"):
        parse_expression("country=@eu").evaluate({"country": "DE"}, {})


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty expression"),
        ("   ", 1, "empty expression"),
        ("country", 8, "expected '=' or '!=' after the key 'country'"),
        ("country=", 9, "expected a value or @group after '='"),
        ("country=@", 10, "expected a group name after '@'"),
        ("country=@9x", 10, "expected a group name after '@'"),
        ("a=1 &", 6, "ends early"),
        ("a=1 & | b=2", 7, "unexpected '|'"),
        ("(a=1", 5, "expected ')' to close the '(' at column 1"),
        ("a=1)", 4, "unexpected ')'"),
        ("a=1 b=2", 5, "unexpected 'b'"),
        ("a==1", 3, "expected a value or @group after '='"),
        ("a=1 && b=2", 6, "unexpected '&'"),
        ("a='x", 3, "unterminated string"),
        ("a=\"\"", 3, "empty value"),
        ("a=1 # comment", 5, "unexpected character '#'"),
        ("9a=1", 1, "invalid key '9a'"),
        ("()", 2, "empty parentheses"),
        ("a=é", 3, "unexpected character 'é'"),
        ("!", 2, "ends early"),
        ("(" * 150 + "a=1" + ")" * 150, 101, "nested deeper than 100"),
        ("!" * 500 + "a=1", 101, "nested deeper than 100"),
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        parse_expression(text)
    err = info.value
    assert err.column == column
    assert err.text == text
    assert f"column {column}: " in str(err)
    assert fragment in str(err)
    # the caret line points at the column
    lines = str(err).splitlines()
    assert lines[-1].index("^") - 4 == column - 1


def test_not_a_string() -> None:
    with pytest.raises(PolicySyntaxError, match="must be a string"):
        parse_expression(3)  # type: ignore[arg-type]


_ALPHABET = "ab_=!@&|() \t\"'.:*-09xyz#é\n"


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(alphabet=_ALPHABET, max_size=40), st.text(max_size=30)))
def test_fuzzed_expressions_only_raise_policy_syntax_error(text: str) -> None:
    try:
        e = parse_expression(text)
    except PolicySyntaxError as err:
        assert err.column is not None and 1 <= err.column <= len(text) + 1
        assert f"column {err.column}" in str(err)
        return
    # whatever parses prints back to an equivalent expression
    assert parse_expression(str(e)) == e


_keys = st.sampled_from(["country", "provider", "tier", "a.b", "x-y"])
_values = st.sampled_from(["DE", "US", "onprem", "a b", "emulated:1", "x'y", "true"])


def _exprs() -> st.SearchStrategy[residency.Expr]:
    leaf = st.one_of(
        st.builds(Compare, _keys, _values, st.booleans()),
        st.builds(lambda k, neg: Compare(k, "eu", neg, True), _keys, st.booleans()),
        st.builds(Const, st.booleans()),
    )

    def extend(children: st.SearchStrategy[residency.Expr]) -> st.SearchStrategy[residency.Expr]:
        return st.one_of(
            st.builds(Not, children),
            st.builds(lambda xs: And(tuple(xs)), st.lists(children, min_size=2, max_size=3)),
            st.builds(lambda xs: Or(tuple(xs)), st.lists(children, min_size=2, max_size=3)),
        )

    return st.recursive(leaf, extend, max_leaves=12)


def _reference(e: residency.Expr, env: dict[str, frozenset[str]], groups: dict[str, frozenset[str]]) -> bool:
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Compare):
        targets = groups[e.value] if e.group else {e.value}
        vals = env.get(e.key)
        if vals is None:
            return False
        return vals.isdisjoint(targets) if e.negated else not vals.isdisjoint(targets)
    if isinstance(e, Not):
        return not _reference(e.operand, env, groups)
    if isinstance(e, And):
        return all(_reference(o, env, groups) for o in e.operands)
    assert isinstance(e, Or)
    return any(_reference(o, env, groups) for o in e.operands)


def _normal(e: residency.Expr) -> residency.Expr:
    """Flatten nested And/Or the way the parser does."""
    if isinstance(e, Not):
        return Not(_normal(e.operand))
    if isinstance(e, (And, Or)):
        flat: list[residency.Expr] = []
        for o in e.operands:
            n = _normal(o)
            flat.extend(n.operands if type(n) is type(e) else (n,))  # type: ignore[attr-defined]
        return type(e)(tuple(flat))
    return e


@settings(max_examples=400, deadline=None)
@given(_exprs(), st.dictionaries(_keys, st.frozensets(_values, min_size=1, max_size=2), max_size=4))
def test_generated_expressions_round_trip_and_evaluate(e: residency.Expr, env: dict[str, frozenset[str]]) -> None:
    groups = {"eu": frozenset({"DE", "onprem", "a b"})}
    parsed = parse_expression(str(e))
    assert parsed == _normal(e)
    assert parsed.evaluate(env, groups) == _reference(e, env, groups)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_exprs(), min_size=1, max_size=6),
    st.lists(st.dictionaries(_keys, st.frozensets(_values, min_size=1, max_size=2), max_size=4), min_size=1, max_size=4),
)
def test_policy_programs_agree_with_the_reference(exprs: list[residency.Expr], envs: list[dict[str, frozenset[str]]]) -> None:
    """Rules are evaluated together as bit-mask DNF programs; they must mean what the grammar says."""
    groups = {"eu": frozenset({"DE", "onprem", "a b"})}
    prog = residency._Program(exprs, groups)
    for env in envs:
        pairs = frozenset((k, v) for k, vs in env.items() for v in vs)
        expected = [i for i, e in enumerate(exprs) if _reference(e, env, groups)]
        assert prog.matching(pairs) == expected
        mask = prog.mask(pairs)
        assert [prog.holds(i, mask, pairs) for i in range(len(exprs))] == [i in expected for i in range(len(exprs))]


def test_large_normal_forms_fall_back_to_closures() -> None:
    # (a1 | b1!=1) & (a2 | b2!=1) & ... has 2**8 terms in DNF: too many, closures take over
    e = parse_expression(" & ".join(f"(a{i}=1 | b{i}!=1)" for i in range(8)))
    prog = residency._Program([e, parse_expression("c=1"), parse_expression("a0=1 | a1=1 | x=@g")], {"g": frozenset({"q"})})
    assert not isinstance(prog._terms[0], tuple)
    assert prog._terms[2] == ((prog._atoms[("pairs", frozenset({("a0", "1"), ("a1", "1"), ("x", "q")}))], 0),)
    env = {f"a{i}": "1" for i in range(8)}
    pairs = frozenset(env.items())
    assert prog.matching(pairs) == [0, 2]
    assert prog.matching(pairs - {("a3", "1")}) == [2]
    assert prog.matching(frozenset({("c", "1"), ("x", "q")} | {(f"b{i}", "2") for i in range(8)})) == [0, 1, 2]


# ============================================================================================
# policy files
# ============================================================================================
def _rules(body: str) -> str:
    return '[groups]\neu = ["DE", "FR"]\n' + body


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (
            '[[policy.rules]]\nname = "r1"\nmatch = "classification=personal"\ncompute = "country=@eu & (provider!=x"\n',
            r"hpcai\.toml: \[\[policy\.rules\]\] \"r1\": compute = .*column 27: expected '\)' to close",
        ),
        (
            '[[policy.rules]]\nname = "r1"\nmatch = "classification personal"\n',
            r"\"r1\": match = .*column 16: expected '=' or '!='",
        ),
        (
            '[[policy.rules]]\nname = "r1"\nmatch = "a=1"\nstore = "country=@us"\n',
            r"\"r1\": store = 'country=@us': column 1: unknown group @us \(defined groups: eu\)",
        ),
        ('[[policy.rules]]\nmatch = "a=1"\n', r"#1: every rule needs a name"),
        ('[[policy.rules]]\nname = "r"\n', r"\"r\": missing match"),
        ('[[policy.rules]]\nname = "r"\nmatch = "a=1"\neffect = "allow"\n', r"effect must be \"deny\" or \"audit\""),
        ('[[policy.rules]]\nname = "r"\nmatch = "a=1"\ncomptue = "a=1"\n', r"\"r\": unknown key 'comptue'"),
        ('[[policy.rules]]\nname = "r"\nmatch = 3\n', r"\"r\": match must be an expression string"),
        (
            '[[policy.rules]]\nname = "r"\nmatch = "a=1"\n[[policy.rules]]\nname = "r"\nmatch = "b=1"\n',
            r"duplicate rule name 'r'",
        ),
        ('[policy]\nrule = []\n', r"unknown key policy\.rule"),
        ('[audit]\nfile = "x"\n', r"unknown key audit\.file"),
    ],
)
def test_invalid_policy_files_name_file_rule_and_column(config, body: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        config(_rules(body))


@pytest.mark.parametrize(
    ("groups", "pattern"),
    [
        ('eu = "DE"', r"groups\.eu must be a non-empty list of strings"),
        ("eu = []", r"groups\.eu must be a non-empty list"),
        ('"e u" = ["DE"]', r"groups\.e u: a group name must be"),
    ],
)
def test_invalid_groups(config, groups: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        config(f"[groups]\n{groups}\n")


def test_invalid_configuration_is_not_applied(policy: Path) -> None:
    before = residency.current_policy()
    with pytest.raises(PolicySyntaxError):
        xp.configure(data={"policy": {"rules": [{"name": "r", "match": "a=(1"}]}})
    assert xp.get_config().source.endswith("hpcai.toml")
    assert [r.name for r in residency.current_policy().rules] == [r.name for r in before.rules]


def test_audit_path_is_relative_to_the_config_file(policy: Path, tmp_path: Path, monkeypatch) -> None:
    assert audit.log_path() == tmp_path / "audit.jsonl"
    monkeypatch.chdir("/")
    assert audit.log_path() == tmp_path / "audit.jsonl"  # resolved when loaded, not at use


def test_audit_path_env_and_default(monkeypatch, tmp_path: Path, config) -> None:
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "from-env.jsonl"))
    assert audit.log_path() == tmp_path / "from-env.jsonl"
    config('[audit]\npath = "sub/configured.jsonl"\n')
    assert audit.log_path() == tmp_path / "sub" / "configured.jsonl"  # the configuration wins
    xp.configure(data={})
    monkeypatch.delenv("HPCAI_AUDIT_LOG")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert audit.log_path() == tmp_path / "state" / "hpcai" / "audit.jsonl"


def test_location_attributes_site_and_device_override(policy: Path) -> None:
    assert dict(xp.resolve_device("numpy:cpu").attributes) == {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}
    assert dict(xp.resolve_device("emulated:1").attributes)["provider"] == "hyperscaler"


# ============================================================================================
# decisions
# ============================================================================================
def test_decide_allow_deny_uncovered(policy: Path) -> None:
    us = {"country": "US", "provider": "hyperscaler"}
    de = {"country": "DE", "provider": "onprem"}
    d = residency.decide("compute", {"classification": "personal"}, us, destination="emulated:1")
    assert not d.allowed and d.rule == "gdpr-personal" and d.effect == "deny" and d.covered
    assert d.tags == {"classification": frozenset({"personal"})}
    assert d.destination == "emulated:1" and d.source_file.endswith("hpcai.toml")
    assert "country=@eu" in d.reason and "country=US" in d.reason
    d = residency.decide("compute", {"classification": "personal"}, de, destination="x")
    assert d.allowed and d.effect == "allow" and d.rule == "gdpr-personal"
    d = residency.decide("store", frozenset({("classification", "personal")}), {"country": "DE", "provider": "hyperscaler"}, destination="s3")
    assert not d.allowed and "provider!=hyperscaler" in d.reason
    # uncovered data and untagged data are unaffected
    for tags in ({"classification": "public"}, None, {}):
        d = residency.decide("compute", tags, us, destination="emulated:1")
        assert d.allowed and d.effect is None and d.rule is None and not d.covered
    # a covering rule without an `export` expression does not restrict export
    d = residency.decide("export", {"classification": "personal"}, us, destination="numpy:cpu")
    assert d.allowed and d.effect is None
    # `export = "false"`: never handed to foreign libraries
    d = residency.decide("export", {"handling": "internal"}, de, destination="numpy:cpu")
    assert not d.allowed and d.rule == "internal-only"


def test_every_covering_rule_must_allow_and_audit_effect(config) -> None:
    config(
        """
[[policy.rules]]
name = "eu-only"
match = "origin=DE"
compute = "jurisdiction=EU"

[[policy.rules]]
name = "onprem-only"
match = "owner=partner"
compute = "provider=onprem"

[[policy.rules]]
name = "watch-hyperscalers"
match = "origin=DE"
compute = "provider!=hyperscaler"
effect = "audit"
"""
    )
    both = {"origin": "DE", "owner": "partner"}
    eu_cloud = {"jurisdiction": "EU", "provider": "hyperscaler"}
    eu_onprem = {"jurisdiction": "EU", "provider": "onprem"}
    us_onprem = {"jurisdiction": "US", "provider": "onprem"}
    d = residency.decide("compute", both, eu_cloud, destination="d")
    assert not d.allowed and d.rule == "onprem-only"
    d = residency.decide("compute", both, us_onprem, destination="d")
    assert not d.allowed and d.rule == "eu-only"
    assert residency.decide("compute", both, eu_onprem, destination="d").allowed
    d = residency.decide("compute", {"origin": "DE"}, eu_cloud, destination="d")
    assert d.allowed and d.effect == "audit" and d.rule == "watch-hyperscalers"
    with pytest.raises(InvalidArgumentError, match="op must be one of compute, store, export"):
        residency.decide("move", both, eu_cloud, destination="d")
    with pytest.raises(InvalidArgumentError, match="tags must be a mapping"):
        residency.decide("compute", ["origin=DE"], eu_cloud, destination="d")


def test_enforce_audits_covered_decisions_and_raises(policy: Path) -> None:
    us = {"country": "US", "provider": "hyperscaler"}
    with pytest.raises(ResidencyError) as info:
        residency.enforce(
            "store", {"classification": "personal"}, us, destination="s3://us-bucket", source="numpy:cpu",
            nbytes=123, dataset="cohort.zarr", operation="save",
        )
    msg = str(info.value)
    for part in ("save", "classification=personal", "s3://us-bucket", "gdpr-personal", "hpcai.toml", str(policy)):
        assert part in msg
    assert info.value.decision.rule == "gdpr-personal"  # type: ignore[attr-defined]
    d = residency.enforce("store", {"classification": "personal"}, {"country": "FR", "provider": "onprem"}, destination="s3://fr")
    assert d.allowed
    residency.enforce("store", {"classification": "public"}, us, destination="s3://us-bucket")  # uncovered: not audited
    recs = _decisions(policy)
    assert [(r["decision"], r["destination"]) for r in recs] == [("deny", "s3://us-bucket"), ("allow", "s3://fr")]
    assert recs[0]["dataset"] == "cohort.zarr" and recs[0]["bytes"] == 123 and recs[0]["operation"] == "save"
    assert recs[0]["rule"] == "gdpr-personal" and recs[0]["tags"] == {"classification": ["personal"]}
    assert audit.verify(policy).ok


def test_policy_is_rebuilt_on_configure(config, tmp_path: Path) -> None:
    x = _personal()
    x.to_device("emulated:1")  # no policy: allowed
    config(POLICY)
    with pytest.raises(ResidencyError):
        x.to_device("emulated:1")
    config(POLICY.replace('compute = "country=@eu"', 'compute = "true"'))
    assert x.to_device("emulated:1").tags == x.tags


def test_a_builder_left_from_a_replaced_configuration_describes_devices_as_configured_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The interned Devices are shared: a resolution that read the configuration before it was
    replaced (a read left running in zarr's IO thread after its caller was refused resolves
    the host device later) must not describe them from the old one. Seen as a refused read
    ("numpy:cpu has no location attributes") under a configuration whose [site] gave them."""
    import threading

    import hpcai.backends

    xp.configure(data={})  # no [site]: numpy:cpu has no attributes
    started, go = threading.Event(), threading.Event()
    real = hpcai.backends.backend_infos
    late: list[xp.Device] = []

    def paused_infos():  # the late thread stops here, after it read the old configuration
        if threading.current_thread().name == "late":
            started.set()
            go.wait(10)
        return real()

    monkeypatch.setattr(hpcai.backends, "backend_infos", paused_infos)
    t = threading.Thread(target=lambda: late.append(xp.resolve_device("numpy:cpu")), name="late")
    t.start()
    assert started.wait(10)
    xp.configure(data={"site": {"country": "DE", "jurisdiction": "EU"}})
    cpu = xp.resolve_device("numpy:cpu")
    assert dict(cpu.attributes) == {"country": "DE", "jurisdiction": "EU"}
    go.set()
    t.join(10)
    assert late == [cpu]
    assert dict(cpu.attributes) == {"country": "DE", "jurisdiction": "EU"}  # not the old, empty ones
    xp.configure(data={})
    assert dict(xp.resolve_device("numpy:cpu").attributes) == {}


def test_sequence_of_tagged_elements_keeps_tags_and_cannot_reach_a_denied_device(policy: Path) -> None:
    """xp.asarray([x[0], x[1], ...], device=denied) is a movement like x.to_device(denied)."""
    x = _personal()
    with pytest.raises(ResidencyError):
        xp.asarray([x[0], x[1], x[2]], device="emulated:1")
    with pytest.raises(ResidencyError):
        xp.asarray([[x[0], 1.0], [2.0, x[3]]], device="emulated:1")
    y = xp.asarray([x[0], x[1]])  # stays where x is, still covered
    assert y.tags == x.tags and y.device == x.device
    with pytest.raises(ResidencyError):
        y.to_device("emulated:1")
    assert xp.resolve_device("emulated:1")._backend.memory_used(xp.resolve_device("emulated:1")) == 0


def test_guard_is_free_without_rules_and_for_uncovered_data(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    u = xp.asarray([1.0, 2.0])
    u.to_device("emulated:1")
    xp.tag(u, classification="public").to_device("emulated:1")
    assert _decisions(policy) == []  # nothing covered, nothing recorded (but the policy itself)
    # the one movement path calls the residency decision explicitly, every time
    calls: list[str] = []
    real = residency._guards.settle_move
    monkeypatch.setattr(residency._guards, "settle_move", lambda *a: (calls.append(a[3]), real(*a)))
    u.to_device("emulated:1")
    xp.configure(data={})
    u.to_device("emulated:1")  # no rules: decided in the fast path, nothing recorded
    assert calls == ["to_device", "to_device"] and _decisions(policy) == []


def test_rule_covering_untagged_data_checks_every_move(config, tmp_path: Path) -> None:
    config(
        """
[devices."emulated:1"]
attributes = { provider = "hyperscaler" }
[[policy.rules]]
name = "only-public-leaves"
match = "!(classification=public)"
compute = "provider!=hyperscaler"
[audit]
path = "a.jsonl"
"""
    )
    assert residency.current_policy().untagged_covered
    with pytest.raises(ResidencyError, match=r"\(untagged\)"):
        xp.asarray([1.0]).to_device("emulated:1")
    xp.tag(xp.asarray([1.0]), classification="public").to_device("emulated:1")
    assert [r["decision"] for r in _decisions(tmp_path / "a.jsonl")] == ["deny"]


# ============================================================================================
# tags
# ============================================================================================
def test_tag_shares_data_and_unions() -> None:
    x = xp.asarray([1.0, 2.0, 3.0])
    y = xp.tag(x, classification="personal", origin="DE")
    assert dict(y.tags) == {"classification": frozenset({"personal"}), "origin": frozenset({"DE"})}
    assert x.tags == {}
    assert np.shares_memory(np.asarray(x), np.asarray(y))
    z = xp.tag(y, origin=["FR", "NL"])
    assert z.tags["origin"] == {"DE", "FR", "NL"}
    with pytest.raises(TypeError):
        y.tags["origin"] = frozenset()  # type: ignore[index]
    for bad, pattern in (({}, "at least one tag"), ({"origin": ""}, "non-empty string"), ({"origin": 3}, "non-empty string")):
        with pytest.raises(InvalidArgumentError, match=pattern):
            xp.tag(x, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="not usable in policy expressions"):
        xp.tag(x, **{"bad key": "v"})
    with pytest.raises(DTypeError, match="expected an hpcai Array"):
        xp.tag(np.ones(3), a="b")  # type: ignore[arg-type]
    assert dict(xp.tag(x, x="1").tags) == {"x": frozenset({"1"})}  # a tag may be called x


def test_asarray_tags_keyword() -> None:
    x = xp.asarray([1, 2], tags={"origin": ["DE", "FR"], "classification": "personal"})
    assert dict(x.tags) == {"classification": frozenset({"personal"}), "origin": frozenset({"DE", "FR"})}


def test_untag_needs_a_reason_and_is_audited(tmp_path: Path) -> None:
    x = xp.tag(xp.asarray([1.0, 2.0]), classification="personal", origin="DE")
    for reason in ("", "   "):
        with pytest.raises(InvalidArgumentError, match="a reason is required"):
            xp.untag(x, "classification", reason=reason)
    with pytest.raises(TypeError):
        xp.untag(x, "classification")  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match="has no tag 'owner'.*classification, origin"):
        xp.untag(x, "owner", reason="r")
    assert not (tmp_path / "env-audit.jsonl").exists()
    y = xp.untag(x, "classification", reason="anonymised, ticket 42")
    assert dict(y.tags) == {"origin": frozenset({"DE"})}
    assert np.shares_memory(np.asarray(x), np.asarray(y))
    (rec,) = audit.read(tmp_path / "env-audit.jsonl")
    assert rec["operation"] == "untag" and rec["reason"] == "anonymised, ticket 42"
    assert rec["removed"] == {"classification": ["personal"]}
    assert rec["tags"] == {"classification": ["personal"], "origin": ["DE"]}
    assert rec["bytes"] == 16 and rec["source"] == "numpy:cpu"


def test_untag_refused_when_the_audit_log_cannot_be_written(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(blocker / "audit.jsonl"))  # parent is a file
    x = xp.tag(xp.asarray([1.0]), classification="personal")
    with pytest.raises(AuditError, match="cannot open"):
        xp.untag(x, "classification", reason="r")


def test_tagging_on_a_denied_device_is_refused(policy: Path) -> None:
    u = xp.asarray([1.0, 2.0], device="emulated:1")
    with pytest.raises(ResidencyError, match="tag: .*emulated:1"):
        xp.tag(u, classification="personal")
    assert audit.read(policy)[-1]["operation"] == "tag"


# ============================================================================================
# propagation
# ============================================================================================
T = {"classification": frozenset({"personal"})}


#: name -> (derivation from tagged x and tagged u, whether u's tags must be there too)
_DERIVATIONS: dict[str, tuple[Callable[[xp.Array, xp.Array], object], bool]] = {
    "elementwise": (lambda x, u: xp.exp(x) + u, True),
    "operator-scalar": (lambda x, u: 2 * x, False),
    "reflected": (lambda x, u: u - x, True),
    "inplace": (lambda x, u: _iadd(u, x), True),
    "comparison": (lambda x, u: x > u, True),
    "sum": (lambda x, u: xp.sum(x), False),
    "mean-axis": (lambda x, u: xp.mean(x, axis=0), False),
    "max": (lambda x, u: xp.max(x), False),
    "cumulative_sum": (lambda x, u: xp.cumulative_sum(x, axis=1), False),
    "argmax": (lambda x, u: xp.argmax(x), False),
    "slice": (lambda x, u: x[1:, :1], False),
    "int-index": (lambda x, u: x[0, 1], False),
    "tagged-index": (lambda x, u: u[xp.argsort(x[0])], True),
    "bool-mask": (lambda x, u: u[x > 2], True),
    "setitem-value": (lambda x, u: _setitem(u, x), True),
    "iter": (lambda x, u: next(iter(x)), False),
    "matmul": (lambda x, u: u @ x, True),
    "tensordot": (lambda x, u: xp.tensordot(u, x, axes=1), True),
    "vecdot": (lambda x, u: xp.vecdot(u, x), True),
    "linalg.inv": (lambda x, u: xp.linalg.inv(x), False),
    "linalg.solve": (lambda x, u: xp.linalg.solve(u, x), True),
    "linalg.svd": (lambda x, u: xp.linalg.svd(x).S, False),
    "reshape": (lambda x, u: xp.reshape(x, (4,)), False),
    "permute_dims": (lambda x, u: xp.permute_dims(x, (1, 0)), False),
    "T": (lambda x, u: x.T, False),
    "flip": (lambda x, u: xp.flip(x), False),
    "concat": (lambda x, u: xp.concat([u, x]), True),
    "stack": (lambda x, u: xp.stack([u, x]), True),
    "broadcast_arrays": (lambda x, u: xp.broadcast_arrays(x, u)[1], True),
    "where-cond": (lambda x, u: xp.where(x > 2, u, u), True),
    "where-branch": (lambda x, u: xp.where(u > 0, x, u), True),
    "sort": (lambda x, u: xp.sort(x, axis=1), False),
    "unique_values": (lambda x, u: xp.unique_values(x), False),
    "nonzero": (lambda x, u: xp.nonzero(x)[0], False),
    "astype": (lambda x, u: xp.astype(x, xp.float32), False),
    "copy": (lambda x, u: xp.asarray(x, copy=True), False),
    "pickle": (lambda x, u: pickle.loads(pickle.dumps(x)), False),
    "from_dlpack": (lambda x, u: xp.from_dlpack(x), False),
    "to_device-roundtrip": (lambda x, u: x.to_device("emulated:0").to_device("numpy:cpu"), False),
    "fft": (lambda x, u: xp.fft.fft(x), False),
}


def _iadd(u: xp.Array, x: xp.Array) -> xp.Array:
    u += x
    return u


def _setitem(u: xp.Array, x: xp.Array) -> xp.Array:
    u[0, :] = x[1, :]
    return u


@pytest.mark.parametrize("name", sorted(_DERIVATIONS))
def test_results_carry_the_union_of_their_inputs_tags(name: str) -> None:
    x = xp.tag(xp.asarray([[1.0, 2.0], [3.0, 4.0]]), classification="personal")
    u = xp.tag(xp.asarray([[1.0, 0.0], [0.0, 1.0]]), origin="DE")
    derive, with_u = _DERIVATIONS[name]
    out = derive(x, u)
    assert isinstance(out, xp.Array)
    expected = {"classification": frozenset({"personal"})}
    if with_u:
        expected["origin"] = frozenset({"DE"})
    assert dict(out.tags) == expected


def test_untagged_results_stay_untagged() -> None:
    u = xp.asarray([[1.0, 0.0], [0.0, 1.0]])
    assert (u + 1).tags == {} and xp.sum(u).tags == {} and pickle.loads(pickle.dumps(u)).tags == {}
    assert u._tags is None and (u @ u)._tags is None


# ============================================================================================
# enforcement: every public path that moves or exports data
# ============================================================================================
def _moves() -> dict[str, Callable[[xp.Array, str], object]]:
    return {
        "to_device": lambda a, d: a.to_device(d),
        "asarray(device=)": lambda a, d: xp.asarray(a, device=d),
        "asarray(device=, copy=True)": lambda a, d: xp.asarray(a, device=d, copy=True),
        "asarray(device=, dtype=)": lambda a, d: xp.asarray(a, device=d, dtype=xp.float32),
        "from_dlpack(device=)": lambda a, d: xp.from_dlpack(a, device=d),
        "astype(device=)": lambda a, d: xp.astype(a, a.dtype, device=d),
        "astype(float32, device=)": lambda a, d: xp.astype(a, xp.float32, device=d),
    }


def _derived() -> dict[str, Callable[[xp.Array, xp.Array], xp.Array]]:
    """Covered data in every disguise; x is tagged personal (host), u untagged (host)."""
    return {
        "original": lambda x, u: x,
        "x * 2": lambda x, u: x * 2,
        "sum": lambda x, u: xp.sum(x),
        "mean": lambda x, u: xp.mean(x, axis=0),
        "slice": lambda x, u: x[1:],
        "stack": lambda x, u: xp.stack([u, x]),
        "concat": lambda x, u: xp.concat([u, x]),
        "where": lambda x, u: xp.where(x > 2, u, u),
        "mixed with untagged": lambda x, u: u + x,
        "setitem into untagged": lambda x, u: _setitem(xp.asarray(u, copy=True), x),
        "indexed by tagged": lambda x, u: u[xp.argsort(x[0])],
        "matmul": lambda x, u: u @ x,
        "pickled copy": lambda x, u: pickle.loads(pickle.dumps(x)),
        "astype": lambda x, u: xp.astype(x, xp.float32),
        "reshape": lambda x, u: xp.reshape(x, (-1,)),
        "from_dlpack on host": lambda x, u: xp.from_dlpack(x),
        "via allowed intermediate": lambda x, u: x.to_device("emulated:0"),
        "derived on intermediate": lambda x, u: xp.sum(x.to_device("emulated:0") * 3, axis=0),
    }


def _emulated_used(name: str) -> int:
    dev = xp.resolve_device(name)
    return int(dev._backend.memory_used(dev))  # type: ignore[attr-defined]


@pytest.mark.parametrize("derive", sorted(_derived()))
@pytest.mark.parametrize("path", sorted(_moves()))
def test_every_move_path_refuses_covered_data_for_a_denied_device(policy: Path, path: str, derive: str) -> None:
    x = xp.tag(xp.asarray([[1.0, 2.0], [3.0, 4.0]]), classification="personal")
    u = xp.asarray([[1.0, 0.0], [0.0, 1.0]])
    data = _derived()[derive](x, u)
    assert data.tags == T
    n_before = len(_decisions(policy))
    used = _emulated_used("emulated:1")
    with xp.transfers() as log:
        with pytest.raises(ResidencyError) as info:
            _moves()[path](data, "emulated:1")
    # nothing moved, nothing allocated on the denied device
    assert [t.destination for t in log] == []
    assert _emulated_used("emulated:1") == used
    msg = str(info.value)
    for part in ("classification=personal", "emulated:1", "gdpr-personal", str(policy.parent / "hpcai.toml")):
        assert part in msg, (part, msg)
    recs = _decisions(policy)
    assert len(recs) == n_before + 1
    last = recs[-1]
    assert (last["decision"], last["destination"], last["rule"]) == ("deny", "emulated:1", "gdpr-personal")
    assert last["tags"] == {"classification": ["personal"]}
    assert last["bytes"] in (data.nbytes, data.size * 4)  # the paths with a cast may cast first
    # the same data may go to an allowed device
    moved = _moves()[path](data, "emulated:0")
    assert isinstance(moved, xp.Array) and moved.device == "emulated:0" and moved.tags == T
    assert audit.verify(policy).ok


def test_asarray_with_tags_onto_a_denied_device_is_refused(policy: Path) -> None:
    used = _emulated_used("emulated:1")
    for obj in (np.ones(3), [1.0, 2.0], xp.asarray([1.0, 2.0])):
        with pytest.raises(ResidencyError, match="emulated:1"):
            xp.asarray(obj, device="emulated:1", tags={"classification": "personal"})
    assert _emulated_used("emulated:1") == used
    assert xp.asarray([1.0], device="emulated:0", tags={"classification": "personal"}).tags == T


def _exports() -> dict[str, Callable[[xp.Array], object]]:
    return {
        "np.asarray": lambda a: np.asarray(a),
        "np.array": lambda a: np.array(a),
        "__array__": lambda a: a.__array__(),
        "__dlpack__": lambda a: a.__dlpack__(),
        "np.from_dlpack": lambda a: np.from_dlpack(a),
        "__dlpack__ to host from device": lambda a: a.to_device("emulated:0").__dlpack__(dl_device=(1, 0)),
    }


@pytest.mark.parametrize("derive", ["original", "x * 2", "sum", "slice", "stack", "where", "mixed with untagged", "pickled copy"])
@pytest.mark.parametrize("path", sorted(_exports()))
def test_every_export_path_refuses_covered_data(policy: Path, path: str, derive: str) -> None:
    x = xp.tag(xp.asarray([[1.0, 2.0], [3.0, 4.0]]), handling="internal")
    u = xp.asarray([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ResidencyError) as info:
        if derive == "pickled copy":  # pickled bytes leave hpcai too: pickling is the export refused
            _derived()[derive](x, u)
        else:
            _exports()[path](_derived()[derive](x, u))
    assert "internal-only" in str(info.value) and "handling=internal" in str(info.value)
    last = audit.read(policy)[-1]
    assert last["op"] == "export" and last["decision"] == "deny" and last["rule"] == "internal-only"
    # untagged data exports freely
    assert np.array_equal(np.asarray(u), [[1.0, 0.0], [0.0, 1.0]])


def test_moves_through_jax_devices_are_checked(config, tmp_path: Path) -> None:
    names = {str(d) for d in xp.all_devices()}
    if not {"jax:cpu:0", "jax:cpu:1"} <= names:
        pytest.skip("needs two JAX CPU devices")
    config(POLICY)  # jax:cpu:1 carries US attributes in the policy
    x = _personal()
    y = x.to_device("jax:cpu:0")
    with pytest.raises(ResidencyError, match="jax:cpu:1"):
        (y * 2).to_device("jax:cpu:1")
    with pytest.raises(ResidencyError, match="jax:cpu:1"):
        xp.asarray(y, device="jax:cpu:1")


def test_allowed_moves_of_covered_data_are_recorded(policy: Path) -> None:
    x = _personal()
    y = x.to_device("emulated:0")
    recs = _decisions(policy)
    assert [(r["operation"], r["source"], r["destination"], r["decision"]) for r in recs] == [
        ("tag", "numpy:cpu", "numpy:cpu", "allow"),
        ("to_device", "numpy:cpu", "emulated:0", "allow"),
    ]
    assert recs[1]["bytes"] == y.nbytes == 32
    assert json.loads(json.dumps(recs[1]))["policy"].endswith("hpcai.toml")
    u = xp.asarray([1.0]).to_device("emulated:1")  # untagged: neither checked nor recorded
    assert u.tags == {} and len(_decisions(policy)) == 2


def test_a_broken_audit_log_refuses_covered_moves(policy: Path) -> None:
    x = _personal()
    intact = policy.read_bytes()
    with open(policy, "ab") as f:
        f.write(b'{"seq": 1, "partial')  # an interrupted write
    with pytest.raises(AuditError, match="incomplete"):
        x.to_device("emulated:0")
    xp.asarray([1.0]).to_device("emulated:0")  # uncovered data is unaffected
    # dropping the policy must be recorded in its log too: refused while the log is broken
    with pytest.raises(AuditError, match="not changed.*incomplete"):
        xp.configure(data={})
    assert [r.name for r in residency.current_policy().rules] == ["gdpr-personal", "internal-only"]
    policy.write_bytes(intact)  # repaired: the change goes ahead (and is recorded)
    xp.configure(data={})
    assert audit.read(policy)[-1]["dropped"] == ["gdpr-personal", "internal-only"]


def test_error_message_is_actionable(policy: Path) -> None:
    with pytest.raises(ResidencyError) as info:
        _personal().to_device("emulated:1")
    msg = str(info.value)
    assert re.search(r"^to_device: residency policy forbids compute of data tagged \{classification=personal\} on emulated:1", msg)
    assert "country=US" in msg and "Nothing was moved" in msg and "xp.untag" in msg and str(policy) in msg


# ============================================================================================
# the policy reference: its TOML blocks are valid and its worked examples behave as stated
# ============================================================================================
_DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def _toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", _DOC.read_text(), flags=re.S)


@pytest.mark.skipif(not _DOC.exists(), reason="docs/policy.md is not next to the tests")
def test_every_toml_block_in_the_policy_reference_is_valid(config) -> None:
    blocks = _toml_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        config(block)


@pytest.mark.skipif(not _DOC.exists(), reason="docs/policy.md is not next to the tests")
def test_worked_examples_behave_as_documented(config, tmp_path: Path) -> None:
    eu, one_site, partner = _toml_blocks()[-3:]
    config(eu)
    x = xp.asarray([1.0, 2.0, 3.0], tags={"classification": "personal", "origin": "DE"})
    y = x.to_device("emulated:0")
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        xp.mean(y).to_device("emulated:1")
    assert np.array_equal(np.asarray(x), [1.0, 2.0, 3.0])
    assert [r["decision"] for r in _decisions(tmp_path / "audit.jsonl")] == ["allow", "allow", "deny"]

    config(one_site)
    x = xp.tag(xp.asarray([1.0]), export_control="ITAR")
    with pytest.raises(ResidencyError, match="site=jsc"):
        x.to_device("emulated:1")
    store = residency.decide("store", x.tags, {"site": "hlrs", "provider": "cloud"}, destination="s3://b")
    assert not store.allowed and store.rule == "export-control-one-site"
    assert residency.decide("store", x.tags, {"site": "hlrs", "provider": "onprem"}, destination="posix").allowed

    config(partner)
    x = xp.tag(xp.asarray([1.0, 2.0]), owner="acme")
    with pytest.raises(ResidencyError, match="forbids export everywhere"):
        np.asarray(x * 2)
    with pytest.raises(ResidencyError, match="acme-stays-onprem"):
        x.to_device("emulated:1")
    xp.asarray([3.0]).to_device("emulated:1")
    last = audit.read(tmp_path / "audit.jsonl")[-1]
    assert (last["decision"], last["effect"], last["rule"]) == ("allow", "audit", "watch-cloud")
