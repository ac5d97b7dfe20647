"""Rules, decisions and policies; the ``[groups]``, ``[[policy.rules]]`` and ``[audit]`` sections; the policy hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .. import _config, _tags
from .._tags import TagSet
from ..errors import ConfigError, InvalidArgumentError, PolicySyntaxError
from ._expressions import (
    Const,
    Expr,
    _caret,
    _pairs_of,
    _Parser,
    _Problem,
    parse_expression,
)
from ._normalize import _IDENT, _NO_PAIRS, _Pairs
from ._program import _Program

if TYPE_CHECKING:
    from .._device import Device

#: The operations a rule can restrict.
OPERATIONS: tuple[str, ...] = ("compute", "store", "export")


# ============================================================================================
# rules and policies
# ============================================================================================
@dataclass(frozen=True)
class Rule:
    """One ``[[policy.rules]]`` entry."""

    name: str
    match: Expr
    compute: Expr | None = None
    store: Expr | None = None
    export: Expr | None = None
    effect: str = "deny"  # "deny" | "audit"
    description: str = ""

    def expression(self, op: str) -> Expr | None:
        """The rule's expression for *op* (``None``: the rule does not restrict *op*)."""
        if op == "compute":
            return self.compute
        if op == "store":
            return self.store
        if op == "export":
            return self.export
        raise InvalidArgumentError(f"Rule.expression: op must be one of {', '.join(OPERATIONS)}, got {op!r}")


@dataclass(frozen=True)
class Decision:
    """The outcome of one residency check.

    ``effect`` is ``None`` when no rule restricts the operation for these tags (uncovered,
    allowed, not audited), ``"allow"`` when every covering rule allows, ``"deny"`` when a
    deny rule refuses (``rule`` names the first), ``"audit"`` when only audit rules would
    refuse (allowed, recorded).
    """

    allowed: bool
    op: str
    rule: str | None
    effect: str | None
    tags: Mapping[str, frozenset[str]]
    destination: str
    reason: str
    source_file: str
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The SHA-256 of the policy that decided (see :func:`policy_hash`).
    policy_hash: str | None = None

    @property
    def covered(self) -> bool:
        """Whether some rule restricts this operation for these tags (then it is audited)."""
        return self.effect is not None


@dataclass(frozen=True)
class RuleTrace:
    """How one rule took part in a decision (for ``hpcai policy explain``)."""

    rule: Rule
    covers: bool
    restricts: bool
    allows: bool | None


def _fmt_tags(tags: TagSet | None) -> str:
    if not tags:
        return "(untagged)"
    return _tags.to_text(tags)


def _fmt_attrs(attributes: Mapping[str, str]) -> str:
    if not attributes:
        return "no location attributes"
    return ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))


_CACHE_LIMIT = 4096


class _TagView(Mapping[str, frozenset[str]]):
    """A read-only ``key -> frozenset(values)`` view of a tag set, built on first use."""

    __slots__ = ("_map", "_pairs")

    def __init__(self, tags: TagSet | None) -> None:
        self._pairs = tags
        self._map: Mapping[str, frozenset[str]] | None = None

    def _mapping(self) -> Mapping[str, frozenset[str]]:
        m = self._map
        if m is None:
            m = self._map = _tags.as_mapping(self._pairs)
        return m

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return repr(dict(self._mapping()))


class Policy:
    """A validated set of rules with its value groups.

    Deciding is cheap and cached at three levels: which rules cover a tag set, what each
    rule's expression says about a destination, and whole decisions.
    """

    __slots__ = (
        "_allow",
        "_cache",
        "_cover",
        "_match",
        "_ops",
        "groups",
        "policy_hash",
        "rules",
        "source",
        "untagged_covered",
    )

    def __init__(
        self,
        rules: Iterable[Rule],
        groups: Mapping[str, Iterable[str]],
        source: str,
        *,
        policy_hash: str | None = None,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.groups: Mapping[str, frozenset[str]] = MappingProxyType({k: frozenset(v) for k, v in groups.items()})
        self.source = source
        #: SHA-256 over the canonical form of the rules, groups and location attributes.
        self.policy_hash: str = policy_hash or _digest(
            _canonical_rules(self.rules), dict(self.groups), _canonical_attributes({})
        )
        g = dict(self.groups)
        self._match = _Program((r.match for r in self.rules), g)
        self._ops = {op: _Program((r.expression(op) for r in self.rules), g) for op in OPERATIONS}
        #: Whether some rule covers data with no tags at all (then every move is checked).
        self.untagged_covered = bool(self._match.matching(_NO_PAIRS))
        self._cover: dict[TagSet | None, tuple[Mapping[str, frozenset[str]], tuple[int, ...]]] = {}
        self._allow: dict[tuple[str, _Pairs], dict[int, Any]] = {}  # per destination: mask (at -1), verdicts
        self._cache: dict[tuple[Any, ...], Decision] = {}

    def __repr__(self) -> str:
        return f"<Policy: {len(self.rules)} rules from {self.source}, hash {self.policy_hash[:12]}>"

    def _covering(self, tags: TagSet | None) -> tuple[Mapping[str, frozenset[str]], tuple[int, ...]]:
        """The tags as a mapping, and the indices of the rules whose ``match`` holds (cached)."""
        c = self._cover.get(tags)
        if c is None:
            c = (_TagView(tags), tuple(self._match.matching(tags or _NO_PAIRS)))
            if len(self._cover) >= _CACHE_LIMIT:
                self._cover.clear()
            self._cover[tags] = c
        return c

    def covering(self, tags: TagSet | None) -> tuple[Rule, ...]:
        """The rules whose ``match`` holds for *tags*."""
        return tuple(self.rules[i] for i in self._covering(tags)[1])

    def trace(self, op: str, tags: TagSet | None, attributes: Mapping[str, str]) -> list[RuleTrace]:
        """Every rule with whether it covers *tags*, restricts *op* and allows the destination."""
        _check_op("Policy.trace", op)
        covering = set(self._covering(tags)[1])
        prog = self._ops[op]
        pairs = _pairs_of(attributes)[0]
        mask = prog.mask(pairs)
        out = []
        for i, r in enumerate(self.rules):
            covers = i in covering
            restricts = covers and prog.present(i)
            allows = prog.holds(i, mask, pairs) if restricts else None
            out.append(RuleTrace(r, covers, restricts, allows))
        return out

    def decide(self, op: str, tags: TagSet | None, attributes: Mapping[str, str], destination: str) -> Decision:
        """The decision for *op* of data with *tags* at a destination with *attributes*."""
        attr_pairs = frozenset(attributes.items())
        key = (op, tags, destination, attr_pairs)
        d = self._cache.get(key)
        if d is None:
            d = self._decide(op, tags, attributes, attr_pairs, destination)
            self._remember(key, d)
        return d

    def decide_device(self, op: str, tags: TagSet | None, device: Device) -> Decision:
        """:meth:`decide` for a device, with its attributes from the active configuration.

        The attributes used are those the device has in the active configuration (a
        device that is no longer configured keeps those it had).
        """
        name = device.spec.name
        key = (op, tags, name)
        d = self._cache.get(key)
        if d is None:
            attrs = _current_attributes(device)
            d = self._decide(op, tags, attrs, frozenset(attrs.items()), name)
            self._remember(key, d)
        return d

    def _remember(self, key: tuple[Any, ...], d: Decision) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = d

    def _decide(
        self, op: str, tags: TagSet | None, attributes: Mapping[str, str], attr_pairs: _Pairs, destination: str
    ) -> Decision:
        prog = self._ops.get(op)
        if prog is None:
            raise _bad_op("decide", op)
        tag_map, covering = self._covering(tags)
        restricting = [i for i in covering if prog.present(i)] if covering else covering
        attrs_view = MappingProxyType(dict(attributes))
        if not restricting:
            what = "untagged data" if not tags else f"data tagged {_fmt_tags(tags)}"
            return Decision(
                True, op, None, None, tag_map, destination, f"no rule restricts {op} of {what}", self.source, attrs_view,
                self.policy_hash,
            )
        known = self._allow.get((op, attr_pairs))
        if known is None:
            if len(self._allow) >= _CACHE_LIMIT:
                self._allow.clear()
            known = self._allow[(op, attr_pairs)] = {-1: prog.mask(attr_pairs)}
        unknown = [i for i in restricting if i not in known]
        if unknown:
            known.update(prog.verdicts(unknown, known[-1], attr_pairs))
        failing = [self.rules[i] for i in restricting if not known[i]]
        deny = next((r for r in failing if r.effect == "deny"), None)
        if deny is not None:
            expr = deny.expression(op)
            if expr == Const(False):
                reason = f"rule '{deny.name}' (match {deny.match}) forbids {op} everywhere ({op} = \"false\")"
            else:
                reason = (
                    f"rule '{deny.name}' (match {deny.match}) allows {op} only where {expr}, "
                    f"and {destination} has {_fmt_attrs(attributes)}"
                )
            return Decision(
                False, op, deny.name, "deny", tag_map, destination, reason, self.source, attrs_view, self.policy_hash
            )
        if failing:
            r = failing[0]
            reason = (
                f"rule '{r.name}' (effect audit) allows {op} only where {r.expression(op)}, "
                f"and {destination} has {_fmt_attrs(attributes)}: allowed and recorded"
            )
            return Decision(
                True, op, r.name, "audit", tag_map, destination, reason, self.source, attrs_view, self.policy_hash
            )
        first = self.rules[restricting[0]]
        names = ", ".join([f"'{self.rules[i].name}'" for i in restricting])
        reason = f"{destination} satisfies every covering rule ({names})"
        return Decision(
            True, op, first.name, "allow", tag_map, destination, reason, self.source, attrs_view, self.policy_hash
        )


def _current_attributes(device: Device) -> Mapping[str, str]:
    """The location attributes *device* has in the active configuration."""
    from .._device import resolve_device
    from ..errors import UnknownDeviceError

    try:
        return resolve_device(device.spec.name).spec.attributes
    except UnknownDeviceError:  # no longer configured: what it had when the array was made
        return device.spec.attributes


def _bad_op(fname: str, op: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"{fname}: op must be one of {', '.join(OPERATIONS)}, got {op!r}")


def _check_op(fname: str, op: str) -> None:
    if op not in OPERATIONS:
        raise _bad_op(fname, op)


# -- configuration sections ------------------------------------------------------------------
_RULE_KEYS = {
    "name": "a unique name (string)",
    "match": "an expression over the data's tags, e.g. \"classification=personal\"",
    "compute": "an expression over device attributes, e.g. \"country=@eu\"",
    "store": "an expression over storage endpoint attributes",
    "export": "an expression over the attributes of the device handing data to a foreign library",
    "effect": "\"deny\" (default) or \"audit\"",
    "description": "free text",
}


def _config_dir(source: str) -> Path:
    """The directory a configuration came from (the cwd for in-memory configurations)."""
    if source.startswith("<"):
        return Path.cwd()
    path = source.split(" [", 1)[0]
    return Path(path).absolute().parent


def _absolute_source(source: str) -> str:
    """The configuration source with its file path made absolute (for messages and audit records)."""
    if " + " in source:  # site configuration + user / project configuration
        return " + ".join(_absolute_source(part) for part in source.split(" + "))
    if source.startswith("<"):
        return source
    path, sep, rest = source.partition(" [")
    return str(Path(path).absolute()) + sep + rest


def _validate_groups(value: Any, where: str, key: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [groups] must be a table of name = [values], got {type(value).__name__}")
    out: dict[str, list[str]] = {}
    for name, members in value.items():
        if not _IDENT.fullmatch(name):
            raise ConfigError(
                f"{where}: groups.{name}: a group name must be letters, digits, '_', '.', '-' "
                "starting with a letter or '_' (it is written @name in expressions)"
            )
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise ConfigError(
                f"{where}: groups.{name} must be a non-empty list of strings such as [\"DE\", \"FR\"], got {members!r}"
            )
        out[name] = list(members)
    return out


_AUDIT_KEYS = {
    "path": "the audit log file",
    "key_file": "the file holding the audit log's key",
}


def _validate_audit(value: Any, where: str, key: str) -> dict[str, str]:
    """``[audit]``: ``path`` and ``key_file``, file paths made absolute (relative to the file)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [audit] must be a table such as {{ path = \"audit.jsonl\" }}, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if k not in _AUDIT_KEYS:
            expected = "; ".join(f"{n} ({d})" for n, d in _AUDIT_KEYS.items())
            raise ConfigError(f"{where}: unknown key audit.{k}; expected: {expected}")
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}: audit.{k} must be a non-empty string (a file path), got {v!r}")
        p = Path(v).expanduser()
        out[k] = str(p if p.is_absolute() else _config_dir(where) / p)
    return out


def _rule_label(i: int, rule: Mapping[str, Any]) -> str:
    name = rule.get("name")
    return f'[[policy.rules]] "{name}"' if isinstance(name, str) and name else f"[[policy.rules]] #{i + 1}"


def _parse_in_rule(text: Any, where: str, label: str, key: str) -> Expr:
    if not isinstance(text, str):
        raise ConfigError(f"{where}: {label}: {key} must be an expression string ({_RULE_KEYS[key]}), got {text!r}")
    try:
        return _Parser(text).parse()
    except _Problem as p:
        raise PolicySyntaxError(
            f"{where}: {label}: {key} = {text!r}: column {p.column}: {p.detail}{_caret(text, p.column)}",
            column=p.column,
            text=text,
        ) from None


def _validate_policy(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [policy] must be a table holding [[policy.rules]], got {type(value).__name__}")
    for k in value:
        if k != "rules":
            raise ConfigError(f"{where}: unknown key policy.{k}; expected: rules (written [[policy.rules]])")
    rules = value.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{where}: policy.rules must be an array of tables, written [[policy.rules]]; got {rules!r}")
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: [[policy.rules]] #{i + 1} must be a table, got {rule!r}")
        label = _rule_label(i, rule)
        for k in rule:
            if k not in _RULE_KEYS:
                expected = "; ".join(f"{n}: {d}" for n, d in _RULE_KEYS.items())
                raise ConfigError(f"{where}: {label}: unknown key {k!r}; expected {expected}")
        name = rule.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: {label}: every rule needs a name = \"...\" (errors and the audit log cite it)")
        if name in seen:
            raise ConfigError(f"{where}: {label}: duplicate rule name {name!r}; rule names must be unique")
        seen.add(name)
        if "match" not in rule:
            raise ConfigError(f"{where}: {label}: missing match = \"...\" ({_RULE_KEYS['match']})")
        for k in ("match", *OPERATIONS):
            if k in rule:
                _parse_in_rule(rule[k], where, label, k)
        effect = rule.get("effect", "deny")
        if effect not in ("deny", "audit"):
            raise ConfigError(f"{where}: {label}: effect must be \"deny\" or \"audit\", got {effect!r}")
        if "description" in rule and not isinstance(rule["description"], str):
            raise ConfigError(f"{where}: {label}: description must be a string, got {rule['description']!r}")
    return {"rules": [dict(r) for r in rules]}


def policy_from_config(data: Mapping[str, Any], source: str) -> Policy:
    """Build the :class:`Policy` of a validated configuration mapping (``Config.data``)."""
    groups: Mapping[str, list[str]] = data.get("groups", {}) or {}
    frozen = {k: frozenset(v) for k, v in groups.items()}
    rules = []
    for i, raw in enumerate((data.get("policy", {}) or {}).get("rules", [])):
        label = _rule_label(i, raw)
        exprs: dict[str, Expr | None] = {}
        for k in ("match", *OPERATIONS):
            exprs[k] = _parse_in_rule(raw[k], source, label, k) if k in raw else None
            e = exprs[k]
            if e is None:
                continue
            for ref in e.group_refs():
                if ref.value not in frozen:
                    defined = ", ".join(sorted(frozen)) or "none; add a [groups] table"
                    raise ConfigError(
                        f"{source}: {label}: {k} = {raw[k]!r}: column {ref.column}: unknown group "
                        f"@{ref.value} (defined groups: {defined})"
                    )
        match = exprs["match"]
        assert match is not None
        rules.append(
            Rule(
                name=raw["name"],
                match=match,
                compute=exprs["compute"],
                store=exprs["store"],
                export=exprs["export"],
                effect=raw.get("effect", "deny"),
                description=raw.get("description", ""),
            )
        )
    digest = _digest(_canonical_rules(rules), groups, _canonical_attributes(data))
    return Policy(rules, frozen, _absolute_source(source), policy_hash=digest)


def _check_config(data: Mapping[str, Any], source: str) -> None:
    policy_from_config(data, source)


# -- the policy hash ---------------------------------------------------------------------------
#: Names the canonical form and the matching semantics: a change of either changes every hash.
_HASH_SCHEMA = "hpcai-policy/1; values compared folded (NFKC, invisibles dropped, whitespace collapsed, casefold)"


def _canonical_rules(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """Rules as the engine reads them: name, effect and each expression printed canonically."""
    out = []
    for r in rules:
        entry: dict[str, Any] = {"name": r.name, "effect": r.effect, "match": str(r.match)}
        for op in OPERATIONS:
            e = r.expression(op)
            entry[op] = None if e is None else str(e)
        out.append(entry)
    return out


def _canonical_attributes(data: Mapping[str, Any]) -> dict[str, Any]:
    """The location attributes a configuration declares: [site], devices', endpoints'."""
    devices = data.get("devices") or {}
    endpoints = data.get("endpoints") or {}
    return {
        "site": dict(data.get("site") or {}),
        "devices": {n: dict(t["attributes"]) for n, t in devices.items() if isinstance(t, dict) and t.get("attributes")},
        "endpoints": {
            n: dict(t["attributes"]) for n, t in endpoints.items() if isinstance(t, dict) and t.get("attributes")
        },
    }


def _digest(rules: list[dict[str, Any]], groups: Mapping[str, Iterable[str]], attributes: Mapping[str, Any]) -> str:
    doc = {
        "schema": _HASH_SCHEMA,
        "rules": rules,
        "groups": {name: sorted(set(members)) for name, members in groups.items()},
        "attributes": attributes,
    }
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_hash_memo: list[tuple[Mapping[str, Any], str]] = []


def _data_hash(data: Mapping[str, Any]) -> str:
    """:func:`policy_hash` of a validated configuration mapping (memoised for the last few)."""
    for d, h in _hash_memo:
        if d is data:
            return h
    rules = []
    for raw in (data.get("policy") or {}).get("rules", []):
        exprs = {k: (parse_expression(raw[k]) if k in raw else None) for k in ("match", *OPERATIONS)}
        match = exprs["match"]
        assert match is not None
        rules.append(Rule(raw["name"], match, exprs["compute"], exprs["store"], exprs["export"], raw.get("effect", "deny")))
    h = _digest(_canonical_rules(rules), data.get("groups") or {}, _canonical_attributes(data))
    _hash_memo.insert(0, (data, h))
    del _hash_memo[4:]
    return h


def policy_hash(config: _config.Config | Mapping[str, Any] | None = None) -> str:
    """The SHA-256 (hex) of a residency policy: of the active configuration, or of *config*.

    It is taken over a canonical form of what decides: every rule's name, effect and
    expressions (printed canonically, so spacing and redundant parentheses do not count;
    rule order does, as it decides which rule an error cites), the value groups (as sets),
    and the location attributes the configuration declares (``[site]``, each device's and
    each endpoint's ``attributes``), as sorted-key JSON, plus a schema string naming the
    matching semantics. Descriptions, the audit path and other settings do not count. Two
    configurations with the same hash decide alike; every policy record in the audit log and
    every decision carries it.

    >>> len(policy_hash({}))
    64
    """
    if config is None:
        from ._guards import current_policy  # the active policy lives with the guards

        return current_policy().policy_hash
    data = config.data if isinstance(config, _config.Config) else config
    return _data_hash(data)


_config.register_section("groups", _validate_groups)
_config.register_section("policy", _validate_policy)
_config.register_section("audit", _validate_audit)
_config.register_check(_check_config)
