"""Residency: tags on data, policies over location attributes, and their enforcement.

One small engine decides, for data with some tags, whether an operation may happen at a
destination with some location attributes:

* ``compute`` — data may be moved onto (and computed on) a device;
* ``store`` — data may be written to a storage endpoint;
* ``export`` — data may be handed to a foreign library (``__array__``, ``__dlpack__``).

Rules come from the ``[[policy.rules]]`` tables of the configuration::

    [groups]
    eu = ["AT", "BE", "DE", "FR", "NL"]

    [[policy.rules]]
    name = "gdpr-personal"
    match = "classification=personal"        # over the data's tags
    compute = "country=@eu"                  # over the destination's attributes
    store = "country=@eu & provider!=hyperscaler"
    effect = "deny"                          # or "audit": allow but record

Expressions have ``key=value``, ``key!=value``, ``key=@group``, ``true``, ``false``,
``!``, ``&``, ``|`` and parentheses, with precedence ``!`` > ``&`` > ``|``, parsed by a
hand-written recursive-descent parser (never ``eval``). Data that some rule's ``match``
covers may go only where every covering rule that restricts the operation allows
(default-deny); a rule without ``compute``/``store``/``export`` does not restrict that
operation; data no rule covers is unaffected. Every decision on covered data is written to
the audit log (:mod:`hpcai.audit`). Device moves and exports are checked by guards this
module installs into :mod:`hpcai._transfer`; computing on data costs nothing.

>>> import hpcai as xp
>>> x = xp.tag(xp.asarray([1.0, 2.0]), classification="personal")
>>> sorted(x.tags["classification"])
['personal']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import _config, _tags, _transfer, audit
from ._array import Array, _wrap
from ._tags import TagSet
from .errors import (
    AuditError,
    ConfigError,
    DTypeError,
    InvalidArgumentError,
    PolicySyntaxError,
    ResidencyError,
)

if TYPE_CHECKING:
    from ._device import Device, DeviceLike

__all__ = [
    "OPERATIONS",
    "And",
    "Compare",
    "Const",
    "Decision",
    "Expr",
    "Not",
    "Or",
    "Policy",
    "Rule",
    "RuleTrace",
    "check_placement",
    "current_policy",
    "decide",
    "enforce",
    "parse_expression",
    "policy_from_config",
    "tag",
    "untag",
]

#: The operations a rule can restrict.
OPERATIONS: tuple[str, ...] = ("compute", "store", "export")

#: What predicates see: the (key, value) pairs of the data's tags or of a destination's
#: attributes, and the set of keys present.
_Pairs = frozenset[tuple[str, str]]
_Pred = Callable[[_Pairs, frozenset[str]], bool]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+*-")
_SPACE = frozenset(" \t\r\n")
_MAX_DEPTH = 100
_NO_PAIRS: _Pairs = frozenset()


# ============================================================================================
# expressions
# ============================================================================================
def _quote(value: str) -> str:
    if value and all(c in _WORD_CHARS for c in value):
        return value
    return f"'{value}'" if '"' in value else f'"{value}"'


def _pairs_of(values: Mapping[str, Any]) -> tuple[_Pairs, frozenset[str]]:
    """``key -> value`` (or ``key -> values``) as the pair set and key set predicates read."""
    pairs: set[tuple[str, str]] = set()
    for k, v in values.items():
        if isinstance(v, str):
            pairs.add((k, v))
        else:
            pairs.update((k, str(e)) for e in v)
    return frozenset(pairs), frozenset(k for k, _ in pairs)


def _true(pairs: _Pairs, keys: frozenset[str]) -> bool:
    return True


def _false(pairs: _Pairs, keys: frozenset[str]) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed policy expression; build one with :func:`parse_expression`."""

    def evaluate(self, values: Mapping[str, Any], groups: Mapping[str, Iterable[str]] | None = None) -> bool:
        """Evaluate over ``key -> value`` (or ``key -> values``) with optional value *groups*.

        >>> parse_expression("country=@eu & provider!=hyperscaler").evaluate(
        ...     {"country": "DE", "provider": "onprem"}, {"eu": ["DE", "FR"]})
        True
        """
        gs = {name: frozenset(members) for name, members in (groups or {}).items()}
        return self.compile(gs)(*_pairs_of(values))

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        """A fast predicate ``f(pairs, keys)``; *groups* must define every ``@group``.

        ``pairs`` is the frozenset of ``(key, value)`` pairs (a tag set is one already),
        ``keys`` the keys present. Conjunctions and disjunctions of plain comparisons
        become single set operations, so a rule costs a call or two.
        """
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        """The sub-expressions."""
        return ()

    def walk(self) -> Iterator[Expr]:
        """This expression and every sub-expression, depth first."""
        stack: list[Expr] = [self]
        while stack:
            e = stack.pop()
            yield e
            stack.extend(reversed(e.children()))

    def keys(self) -> frozenset[str]:
        """The attribute or tag keys the expression reads."""
        return frozenset(e.key for e in self.walk() if isinstance(e, Compare))

    def group_refs(self) -> tuple[Compare, ...]:
        """The comparisons that name a group (``key=@group``)."""
        return tuple(e for e in self.walk() if isinstance(e, Compare) and e.group)


@dataclass(frozen=True, slots=True)
class Const(Expr):
    """``true`` or ``false``."""

    value: bool

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        return _true if self.value else _false

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    """``key=value``, ``key!=value``, ``key=@group`` or ``key!=@group``.

    ``key=v`` holds when the key is present and one of its values is ``v`` (or, for a
    group, is in the group). ``key!=v`` holds when the key is present and none of its
    values is ``v``: a missing key satisfies neither (use ``!(key=v)`` for "absent or
    different").
    """

    key: str
    value: str
    negated: bool = False
    group: bool = False
    column: int = field(default=0, compare=False)

    def candidates(self, groups: Mapping[str, frozenset[str]]) -> _Pairs:
        """The ``(key, value)`` pairs any of which makes ``key=value`` / ``key=@group`` true."""
        if not self.group:
            return frozenset(((self.key, self.value),))
        if self.value not in groups:
            raise ConfigError(f"unknown group @{self.value}; defined groups: {', '.join(sorted(groups)) or '(none)'}")
        return frozenset((self.key, g) for g in groups[self.value])

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        key = self.key
        cands = self.candidates(groups)
        if self.negated:

            def ne(pairs: _Pairs, keys: frozenset[str]) -> bool:
                return key in keys and cands.isdisjoint(pairs)

            return ne

        def eq(pairs: _Pairs, keys: frozenset[str]) -> bool:
            return not cands.isdisjoint(pairs)

        return eq

    def __str__(self) -> str:
        op = "!=" if self.negated else "="
        return f"{self.key}{op}@{self.value}" if self.group else f"{self.key}{op}{_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Not(Expr):
    """``!operand``."""

    operand: Expr

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        o = self.operand
        if isinstance(o, Compare) and not o.negated:
            cands = o.candidates(groups)

            def absent(pairs: _Pairs, keys: frozenset[str]) -> bool:
                return cands.isdisjoint(pairs)

            return absent
        f = o.compile(groups)

        def pred(pairs: _Pairs, keys: frozenset[str]) -> bool:
            return not f(pairs, keys)

        return pred

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def __str__(self) -> str:
        o = self.operand
        inner = str(o) if isinstance(o, (Compare, Const, Not)) else f"({o})"
        return "!" + inner


@dataclass(frozen=True, slots=True)
class And(Expr):
    """``a & b & ...``."""

    operands: tuple[Expr, ...]

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        required: set[tuple[str, str]] = set()  # plain key=value: all must be present
        forbidden: set[tuple[str, str]] = set()  # !(key=value), !(key=@g): none may be present
        rest: list[_Pred] = []
        for o in self.operands:
            if isinstance(o, Compare) and not o.negated and not o.group:
                required.add((o.key, o.value))
            elif isinstance(o, Not) and isinstance(o.operand, Compare) and not o.operand.negated:
                forbidden.update(o.operand.candidates(groups))
            else:
                rest.append(o.compile(groups))
        req, forb, fs = frozenset(required), frozenset(forbidden), tuple(rest)

        def pred(pairs: _Pairs, keys: frozenset[str]) -> bool:
            if not (req <= pairs and forb.isdisjoint(pairs)):
                return False
            for f in fs:
                if not f(pairs, keys):
                    return False
            return True

        return pred

    def children(self) -> tuple[Expr, ...]:
        return self.operands

    def __str__(self) -> str:
        return " & ".join(f"({o})" if isinstance(o, Or) else str(o) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Or(Expr):
    """``a | b | ...``."""

    operands: tuple[Expr, ...]

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        anyof: set[tuple[str, str]] = set()  # key=value, key=@g: any one present suffices
        rest: list[_Pred] = []
        for o in self.operands:
            if isinstance(o, Compare) and not o.negated:
                anyof.update(o.candidates(groups))
            else:
                rest.append(o.compile(groups))
        some, fs = frozenset(anyof), tuple(rest)

        def pred(pairs: _Pairs, keys: frozenset[str]) -> bool:
            if not some.isdisjoint(pairs):
                return True
            for f in fs:
                if f(pairs, keys):
                    return True
            return False

        return pred

    def children(self) -> tuple[Expr, ...]:
        return self.operands

    def __str__(self) -> str:
        return " | ".join(str(o) for o in self.operands)


class _Problem(Exception):
    """A syntax problem at a column (internal; surfaces as PolicySyntaxError)."""

    def __init__(self, column: int, detail: str) -> None:
        super().__init__(detail)
        self.column = column
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ( ) & | ! != = @ word str end
    text: str
    col: int

    def show(self) -> str:
        if self.kind == "end":
            return "the end of the expression"
        if self.kind == "str":
            return f"the quoted string {_quote(self.text)!s}"
        return f"'{self.text}'"


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c in _SPACE:
            i += 1
        elif c in "()&|@=":
            toks.append(_Tok(c, c, col))
            i += 1
        elif c == "!":
            if i + 1 < n and text[i + 1] == "=":
                toks.append(_Tok("!=", "!=", col))
                i += 2
            else:
                toks.append(_Tok("!", "!", col))
                i += 1
        elif c in "\"'":
            j = text.find(c, i + 1)
            if j < 0:
                raise _Problem(col, f"unterminated string: the {c} opened here is never closed")
            toks.append(_Tok("str", text[i + 1 : j], col))
            i = j + 1
        elif c in _WORD_CHARS:
            j = i
            while j < n and text[j] in _WORD_CHARS:
                j += 1
            toks.append(_Tok("word", text[i:j], col))
            i = j
        else:
            raise _Problem(
                col,
                f"unexpected character {c!r}; expressions use key=value, key!=value, key=@group, "
                "&, |, !, parentheses and quoted values",
            )
    toks.append(_Tok("end", "", n + 1))
    return toks


class _Parser:
    """Recursive descent: or := and ('|' and)* ; and := unary ('&' unary)* ; unary := '!' unary | atom."""

    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        t = self.toks[self.pos]
        self.pos += 1
        return t

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise _Problem(1, "empty expression; write e.g. country=DE, or true / false")
        e = self.or_()
        t = self.peek()
        if t.kind != "end":
            raise _Problem(t.col, f"unexpected {t.show()}; expected '&', '|' or the end of the expression")
        return e

    def enter(self, col: int) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Problem(col, f"expression nested deeper than {_MAX_DEPTH} levels")

    def or_(self) -> Expr:
        parts = [self.and_()]
        while self.peek().kind == "|":
            self.take()
            parts.append(self.and_())
        if len(parts) == 1:
            return parts[0]
        flat: list[Expr] = []
        for p in parts:
            flat.extend(p.operands if isinstance(p, Or) else (p,))
        return Or(tuple(flat))

    def and_(self) -> Expr:
        parts = [self.unary()]
        while self.peek().kind == "&":
            self.take()
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        flat: list[Expr] = []
        for p in parts:
            flat.extend(p.operands if isinstance(p, And) else (p,))
        return And(tuple(flat))

    def unary(self) -> Expr:
        t = self.peek()
        if t.kind == "!":
            self.take()
            self.enter(t.col)
            negation = Not(self.unary())
            self.depth -= 1
            return negation
        if t.kind == "(":
            self.take()
            self.enter(t.col)
            if self.peek().kind == ")":
                raise _Problem(self.peek().col, "empty parentheses; expected an expression inside '(' ')'")
            e = self.or_()
            close = self.peek()
            if close.kind != ")":
                raise _Problem(close.col, f"expected ')' to close the '(' at column {t.col}, found {close.show()}")
            self.take()
            self.depth -= 1
            return e
        if t.kind == "word":
            return self.atom()
        if t.kind == "end":
            raise _Problem(t.col, "the expression ends early; expected key=value, '!' or '('")
        raise _Problem(t.col, f"unexpected {t.show()}; expected key=value, key!=value, '!' or '('")

    def atom(self) -> Expr:
        key = self.take()
        op = self.peek()
        if op.kind not in ("=", "!="):
            if key.text in ("true", "false"):
                return Const(key.text == "true")
            raise _Problem(op.col, f"expected '=' or '!=' after the key '{key.text}', found {op.show()}")
        if not _IDENT.fullmatch(key.text):
            raise _Problem(
                key.col,
                f"invalid key '{key.text}'; keys are letters, digits, '_', '.', '-', starting with a letter or '_'",
            )
        self.take()
        negated = op.kind == "!="
        v = self.peek()
        if v.kind == "@":
            self.take()
            name = self.peek()
            if name.kind != "word" or not _IDENT.fullmatch(name.text):
                raise _Problem(name.col, f"expected a group name after '@', found {name.show()}")
            self.take()
            return Compare(key.text, name.text, negated, True, key.col)
        if v.kind in ("word", "str"):
            self.take()
            if not v.text:
                raise _Problem(v.col, "empty value; write a value such as DE or \"a b\"")
            return Compare(key.text, v.text, negated, False, key.col)
        raise _Problem(v.col, f"expected a value or @group after '{op.text}', found {v.show()}")


def _caret(text: str, column: int) -> str:
    shown = "".join(" " if c in _SPACE else c for c in text)
    return f"\n    {shown}\n    {' ' * (column - 1)}^"


def parse_expression(text: str) -> Expr:
    """Parse a policy expression; a syntax error raises :class:`PolicySyntaxError` with its column.

    >>> str(parse_expression("country=@eu & (provider!=hyperscaler | tier=hpc)"))
    'country=@eu & (provider!=hyperscaler | tier=hpc)'
    """
    if not isinstance(text, str):
        raise PolicySyntaxError(
            f"policy expression must be a string such as \"country=DE\", got {type(text).__name__} {text!r}",
            column=None,
            text=None,
        )
    try:
        return _Parser(text).parse()
    except _Problem as p:
        raise PolicySyntaxError(f"column {p.column}: {p.detail}{_caret(text, p.column)}", column=p.column, text=text) from None


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
    return ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in _tags.as_mapping(tags).items())


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


_MAX_TERMS = 64


class _TooComplex(Exception):
    """An expression whose disjunctive normal form would be too large (closures take over)."""


class _Program:
    """Many expressions compiled together into DNF over shared atoms, evaluated with bit masks.

    An atom is "one of these (key, value) pairs is present" or "this key is present"
    (for ``!=``). Evaluating starts by OR-ing, for each pair of the data's tags (or the
    destination's attributes), the bits of the atoms it makes true: a few dict lookups
    whatever the number of rules. Each expression is then a short list of terms
    ``(have, have_not)``: it holds when some term has all its ``have`` bits and none of
    its ``have_not`` bits. Expressions whose normal form would exceed ``_MAX_TERMS`` terms
    fall back to their closure predicate.
    """

    __slots__ = ("_atoms", "_key_bits", "_pair_bits", "_terms")

    def __init__(self, exprs: Iterable[Expr | None], groups: Mapping[str, frozenset[str]]) -> None:
        self._atoms: dict[tuple[str, Any], int] = {}
        self._pair_bits: dict[tuple[str, str], int] = {}
        self._key_bits: dict[str, int] = {}
        terms: list[tuple[tuple[int, int], ...] | _Pred | None] = []
        for e in exprs:
            if e is None:
                terms.append(None)
                continue
            try:
                terms.append(tuple(self._dnf(e, False, groups)))
            except _TooComplex:
                terms.append(e.compile(groups))
        self._terms = tuple(terms)

    def _atom(self, kind: str, payload: Any) -> int:
        bit = self._atoms.get((kind, payload))
        if bit is None:
            bit = self._atoms[(kind, payload)] = 1 << len(self._atoms)
            if kind == "pairs":
                for pair in payload:
                    self._pair_bits[pair] = self._pair_bits.get(pair, 0) | bit
            else:
                self._key_bits[payload] = self._key_bits.get(payload, 0) | bit
        return bit

    def _dnf(self, e: Expr, neg: bool, groups: Mapping[str, frozenset[str]]) -> list[tuple[int, int]]:
        if isinstance(e, Const):
            return [(0, 0)] if e.value != neg else []
        if isinstance(e, Compare):
            a = self._atom("pairs", e.candidates(groups))
            if not e.negated:
                return [(0, a)] if neg else [(a, 0)]
            k = self._atom("key", e.key)  # key!=v: the key is present and no value matches
            return [(0, k), (a, 0)] if neg else [(k, a)]
        if isinstance(e, Not):
            return self._dnf(e.operand, not neg, groups)
        assert isinstance(e, (And, Or))
        parts: list[list[tuple[int, int]]] = []
        operands: Iterable[Expr] = e.operands
        if isinstance(e, Or) and not neg:
            # key=v | key2=@g | ...: "one of these pairs is present" is a single atom
            plain = [o for o in e.operands if isinstance(o, Compare) and not o.negated]
            if len(plain) > 1:
                merged: frozenset[tuple[str, str]] = frozenset().union(*(o.candidates(groups) for o in plain))
                parts.append([(self._atom("pairs", merged), 0)])
                operands = [o for o in e.operands if not (isinstance(o, Compare) and not o.negated)]
        parts.extend(self._dnf(o, neg, groups) for o in operands)
        if isinstance(e, Or) != neg:  # a disjunction: the union of the terms
            out = list(dict.fromkeys(t for p in parts for t in p))
        else:  # a conjunction: all combinations, contradictions dropped
            out = [(0, 0)]
            for p in parts:
                out = list(dict.fromkeys((h1 | h2, n1 | n2) for h1, n1 in out for h2, n2 in p if not (h1 | h2) & (n1 | n2)))
                if len(out) > _MAX_TERMS:
                    raise _TooComplex
        if len(out) > _MAX_TERMS:
            raise _TooComplex
        return out

    def mask(self, pairs: _Pairs) -> int:
        """The bits of the atoms that *pairs* make true."""
        m = 0
        pb = self._pair_bits
        for pair in pairs:
            m |= pb.get(pair, 0)
        kb = self._key_bits
        if kb:
            for k, _ in pairs:
                m |= kb.get(k, 0)
        return m

    def holds(self, i: int, mask: int, pairs: _Pairs) -> bool:
        """Whether expression *i* (not ``None``) holds for the data described by *mask* / *pairs*."""
        t = self._terms[i]
        if t.__class__ is tuple:
            for h, n in t:  # type: ignore[union-attr]
                if mask & h == h and not mask & n:
                    return True
            return False
        return t(pairs, frozenset([k for k, _ in pairs]))  # type: ignore[operator,misc]

    def present(self, i: int) -> bool:
        """Whether expression *i* exists (a rule without ``export`` has none)."""
        return self._terms[i] is not None

    def verdicts(self, indices: Iterable[int], mask: int, pairs: _Pairs) -> dict[int, bool]:
        """``{i: holds}`` for the expressions *indices* (one call for many rules)."""
        out: dict[int, bool] = {}
        terms = self._terms
        for i in indices:
            t = terms[i]
            if t.__class__ is tuple:
                ok = False
                for h, n in t:  # type: ignore[union-attr]
                    if mask & h == h and not mask & n:
                        ok = True
                        break
                out[i] = ok
            else:
                out[i] = self.holds(i, mask, pairs)
        return out

    def matching(self, pairs: _Pairs) -> list[int]:
        """The indices of the expressions that hold for *pairs*."""
        mask = self.mask(pairs)
        out = []
        for i, t in enumerate(self._terms):
            if t is None:
                continue
            if t.__class__ is tuple:
                for h, n in t:  # type: ignore[union-attr]
                    if mask & h == h and not mask & n:
                        out.append(i)
                        break
            elif self.holds(i, mask, pairs):
                out.append(i)
        return out


class Policy:
    """A validated set of rules with its value groups.

    Deciding is cheap and cached at three levels: which rules cover a tag set, what each
    rule's expression says about a destination, and whole decisions.
    """

    __slots__ = ("_allow", "_cache", "_cover", "_match", "_ops", "groups", "rules", "source", "untagged_covered")

    def __init__(self, rules: Iterable[Rule], groups: Mapping[str, Iterable[str]], source: str) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.groups: Mapping[str, frozenset[str]] = MappingProxyType({k: frozenset(v) for k, v in groups.items()})
        self.source = source
        g = dict(self.groups)
        self._match = _Program((r.match for r in self.rules), g)
        self._ops = {op: _Program((r.expression(op) for r in self.rules), g) for op in OPERATIONS}
        #: Whether some rule covers data with no tags at all (then every move is checked).
        self.untagged_covered = bool(self._match.matching(_NO_PAIRS))
        self._cover: dict[TagSet | None, tuple[Mapping[str, frozenset[str]], tuple[int, ...]]] = {}
        self._allow: dict[tuple[str, _Pairs], dict[int, Any]] = {}  # per destination: mask (at -1), verdicts
        self._cache: dict[tuple[Any, ...], Decision] = {}

    def __repr__(self) -> str:
        return f"<Policy: {len(self.rules)} rules from {self.source}>"

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
                True, op, None, None, tag_map, destination, f"no rule restricts {op} of {what}", self.source, attrs_view
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
            return Decision(False, op, deny.name, "deny", tag_map, destination, reason, self.source, attrs_view)
        if failing:
            r = failing[0]
            reason = (
                f"rule '{r.name}' (effect audit) allows {op} only where {r.expression(op)}, "
                f"and {destination} has {_fmt_attrs(attributes)}: allowed and recorded"
            )
            return Decision(True, op, r.name, "audit", tag_map, destination, reason, self.source, attrs_view)
        first = self.rules[restricting[0]]
        names = ", ".join([f"'{self.rules[i].name}'" for i in restricting])
        reason = f"{destination} satisfies every covering rule ({names})"
        return Decision(True, op, first.name, "allow", tag_map, destination, reason, self.source, attrs_view)


def _current_attributes(device: Device) -> Mapping[str, str]:
    """The location attributes *device* has in the active configuration."""
    from ._device import resolve_device
    from .errors import UnknownDeviceError

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


def _validate_audit(value: Any, where: str, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [audit] must be a table such as {{ path = \"audit.jsonl\" }}, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if k != "path":
            raise ConfigError(f"{where}: unknown key audit.{k}; expected: path (the audit log file)")
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}: audit.path must be a non-empty string (a file path), got {v!r}")
        p = Path(v).expanduser()
        out["path"] = str(p if p.is_absolute() else _config_dir(where) / p)
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
    return Policy(rules, frozen, _absolute_source(source))


def _check_config(data: Mapping[str, Any], source: str) -> None:
    policy_from_config(data, source)


_config.register_section("groups", _validate_groups)
_config.register_section("policy", _validate_policy)
_config.register_section("audit", _validate_audit)
_config.register_check(_check_config)


# ============================================================================================
# the active policy and its enforcement
# ============================================================================================
def _build_policy() -> Policy:
    cfg = _config.get_config()
    built = policy_from_config(cfg.data, cfg.source)
    if built.rules:
        _install()
    else:  # nothing can be covered: movement pays nothing
        _transfer.move_guard = None
        _transfer.export_guard = None
    return built


# After a configure the guards are installed again: they build the new policy lazily on
# their first call (see _install below).
_policy: _config.Derived[Policy] = _config.Derived(_build_policy, on_reset=lambda: _install())


def current_policy() -> Policy:
    """The policy of the active configuration (built on first use, rebuilt on ``configure``)."""
    return _policy.get()


def _as_tagset(fname: str, tags: Any) -> TagSet | None:
    if tags is None:
        return None
    if isinstance(tags, frozenset):
        for pair in tags:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise InvalidArgumentError(f"{fname}: a tag frozenset holds (key, value) string pairs, got {pair!r}")
        return tags or None
    if isinstance(tags, Mapping):
        try:
            return _tags.make_tags(tags)
        except TypeError as exc:
            raise InvalidArgumentError(f"{fname}: {exc}") from None
    raise InvalidArgumentError(
        f"{fname}: tags must be a mapping such as {{'classification': 'personal'}}, a frozenset of "
        f"(key, value) pairs or None; got {type(tags).__name__}"
    )


def decide(op: str, tags: Any, attributes: Mapping[str, str], *, destination: str) -> Decision:
    """Decide whether *op* of data with *tags* may happen at a destination with *attributes*.

    Pure: nothing is recorded. *tags* is a mapping ``key -> value(s)``, a frozenset of
    ``(key, value)`` pairs, or ``None``.

    >>> import hpcai as xp
    >>> xp.residency.decide("compute", {"classification": "personal"}, {"country": "US"},
    ...                     destination="emulated:1").allowed
    True
    """
    _check_op("decide", op)
    return current_policy().decide(op, _as_tagset("decide", tags), attributes, destination)


def _record(d: Decision, *, operation: str, source: str | None, nbytes: int, dataset: str | None) -> None:
    audit.append(
        {
            "operation": operation,
            "op": d.op,
            "tags": {k: sorted(v) for k, v in d.tags.items()},
            "bytes": int(nbytes),
            "source": source,
            "destination": d.destination,
            "dataset": dataset,
            "decision": "allow" if d.allowed else "deny",
            "effect": d.effect,
            "rule": d.rule,
            "reason": d.reason,
            "policy": d.source_file,
        }
    )


_DONE = {"compute": "moved", "store": "stored", "export": "exported"}


def _refusal(d: Decision, operation: str, audit_note: str) -> ResidencyError:
    tags = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in d.tags.items()) or "(untagged)"
    return ResidencyError(
        f"{operation}: residency policy forbids {d.op} of data tagged {{{tags}}} on {d.destination}: "
        f"{d.reason} (policy file {d.source_file}). Nothing was {_DONE[d.op]}; {audit_note}. "
        f"Fix: choose a destination that satisfies rule '{d.rule}', change the policy, or, if the "
        "data is no longer covered, drop the tag with xp.untag(x, key, reason=...)",
        decision=d,
    )


def _settle(d: Decision, *, operation: str, source: str | None, nbytes: int, dataset: str | None) -> None:
    """Audit a covered decision and raise if it denies."""
    if d.allowed:
        _record(d, operation=operation, source=source, nbytes=nbytes, dataset=dataset)
        return
    try:
        _record(d, operation=operation, source=source, nbytes=nbytes, dataset=dataset)
        note = f"the attempt is recorded in the audit log {audit.log_path()}"
    except AuditError as exc:
        note = f"recording the attempt in the audit log failed too: {exc}"
    raise _refusal(d, operation, note)


def enforce(
    op: str,
    tags: Any,
    attributes: Mapping[str, str],
    *,
    destination: str,
    source: str | None = None,
    nbytes: int = 0,
    dataset: str | None = None,
    operation: str | None = None,
) -> Decision:
    """Decide, record covered decisions in the audit log, and raise ResidencyError on denial.

    The enforcement point for storage writes, copies, loads and worker placement: call it
    before any byte moves. An audit-log failure on an allowed decision raises
    :class:`~hpcai.errors.AuditError` (the operation must not go ahead unrecorded).

    >>> import hpcai as xp
    >>> xp.residency.enforce("store", None, {"country": "DE"}, destination="s3://bucket").allowed
    True
    """
    _check_op("enforce", op)
    d = current_policy().decide(op, _as_tagset("enforce", tags), attributes, destination)
    if d.effect is not None:
        _settle(d, operation=operation or op, source=source, nbytes=nbytes, dataset=dataset)
    return d


def _move_guard(x: Array, src: Device, dst: Device, op: str) -> None:
    """Installed as ``hpcai._transfer.move_guard``: a compute decision on the destination device."""
    t = x._tags
    pol = _policy.get()
    if t is None and not pol.untagged_covered:
        return
    d = pol.decide_device("compute", t, dst)
    if d.effect is not None:
        _settle(d, operation=op, source=src.spec.name, nbytes=_transfer._nbytes(x._data), dataset=None)


def _export_guard(x: Array, op: str, dl_device: Any) -> None:
    """Installed as ``hpcai._transfer.export_guard``: an export decision before ``__array__``/``__dlpack__``."""
    t = x._tags
    pol = _policy.get()
    if t is None and not pol.untagged_covered:
        return
    dev = x._device
    target = dev
    if dl_device is not None and tuple(dl_device) == (1, 0) and not dev.is_host:
        from ._device import resolve_device

        target = resolve_device("numpy:cpu")
    d = pol.decide_device("export", t, target)
    if d.effect is not None:
        _settle(d, operation=op, source=dev.spec.name, nbytes=_transfer._nbytes(x._data), dataset=None)


def _install() -> None:
    _transfer.move_guard = _move_guard
    _transfer.export_guard = _export_guard


_install()


# ============================================================================================
# tags
# ============================================================================================
def check_placement(tags: Any, device: DeviceLike, *, operation: str, nbytes: int = 0) -> Decision:
    """Check that data with *tags* may be on *device*, for data that gets there without a move.

    Tagging (``xp.tag``), creation with ``tags=`` and loads from storage call it: a
    ``compute`` decision on the device's attributes, audited when covered, raising
    :class:`~hpcai.errors.ResidencyError` on denial.

    >>> import hpcai as xp
    >>> xp.residency.check_placement({"origin": "DE"}, "emulated:0", operation="example").allowed
    True
    """
    from ._device import resolve_device

    dev = resolve_device(device)
    t = _as_tagset(operation, tags)
    d = current_policy().decide_device("compute", t, dev)
    if d.effect is not None:
        _settle(d, operation=operation, source=dev.spec.name, nbytes=nbytes, dataset=None)
    return d


def _array_arg(fname: str, x: Any) -> Array:
    if x.__class__ is not Array:
        raise DTypeError(f"xp.{fname}: expected an hpcai Array, got {type(x).__name__}; convert it with xp.asarray first")
    return x  # type: ignore[no-any-return]


def tag(x: Array, /, **tags: str | Iterable[str]) -> Array:
    """An array sharing *x*'s data with *tags* added (values are unioned per key).

    Tagging is a residency decision too: if the policy does not allow data with the new
    tags on *x*'s device, :class:`~hpcai.errors.ResidencyError` is raised.

    >>> import hpcai as xp
    >>> y = xp.tag(xp.ones(3), classification="personal", origin="DE")
    >>> dict(y.tags)
    {'classification': frozenset({'personal'}), 'origin': frozenset({'DE'})}
    """
    a = _array_arg("tag", x)
    if not tags:
        raise InvalidArgumentError("xp.tag: give at least one tag, e.g. xp.tag(x, classification=\"personal\")")
    pairs: set[tuple[str, str]] = set()
    for key, value in tags.items():
        if not _IDENT.fullmatch(key):
            raise InvalidArgumentError(
                f"xp.tag: tag key {key!r} is not usable in policy expressions; use letters, digits, "
                "'_', '.', '-', starting with a letter or '_'"
            )
        if isinstance(value, str):
            values: tuple[Any, ...] = (value,)
        elif isinstance(value, (list, tuple, set, frozenset)):
            values = tuple(value)
        else:
            values = ()
        if not values or not all(isinstance(v, str) and v for v in values):
            raise InvalidArgumentError(
                f"xp.tag: the value of tag {key!r} must be a non-empty string (or strings), got {value!r}"
            )
        pairs.update((key, v) for v in values)
    new = _tags.union(a._tags, frozenset(pairs))
    if new != a._tags:
        check_placement(new, a._device, operation="tag", nbytes=_transfer._nbytes(a._data))
    return _wrap(a._data, a._device, new)


def untag(x: Array, key: str, *, reason: str) -> Array:
    """An array sharing *x*'s data without the tag *key*; the *reason* is recorded in the audit log.

    The only way to drop a tag. The audit record holds who, when, the tags before, the
    removed values and the reason; if it cannot be written, nothing is untagged.

    >>> import hpcai as xp
    >>> x = xp.tag(xp.ones(3), classification="personal")
    >>> y = xp.untag(x, "classification", reason="anonymised (ticket 42)")  # doctest: +SKIP
    """
    a = _array_arg("untag", x)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgumentError(
            "xp.untag: a reason is required and is recorded in the audit log, e.g. "
            "xp.untag(x, \"classification\", reason=\"anonymised by k-anonymity job 42\")"
        )
    before = _tags.as_mapping(a._tags)
    if not isinstance(key, str) or key not in before:
        have = ", ".join(before) or "none"
        raise InvalidArgumentError(f"xp.untag: the array has no tag {key!r} (its tag keys: {have})")
    remaining = frozenset(p for p in a._tags or () if p[0] != key) or None
    audit.append(
        {
            "operation": "untag",
            "op": "untag",
            "tags": {k: sorted(v) for k, v in before.items()},
            "removed": {key: sorted(before[key])},
            "bytes": _transfer._nbytes(a._data),
            "source": a._device.spec.name,
            "destination": a._device.spec.name,
            "dataset": None,
            "decision": "allow",
            "effect": None,
            "rule": None,
            "reason": reason,
            "policy": current_policy().source,
        }
    )
    return _wrap(a._data, a._device, remaining)
