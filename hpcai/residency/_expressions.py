"""The policy expression language: ``key=value``, ``key!=value``, ``key=@group``, ``!``, ``&``, ``|``.

Parsed by a hand-written recursive-descent parser (never ``eval``) into small immutable
:class:`Expr` trees, which compile to predicates over folded ``(key, value)`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, PolicySyntaxError
from ._normalize import _IDENT, _fold_pairs, _Pairs, fold

#: A compiled expression: ``f(folded pairs, folded keys present) -> bool``.
_Pred = Callable[[_Pairs, frozenset[str]], bool]

_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+*-")
_SPACE = frozenset(" \t\r\n")
_MAX_DEPTH = 100


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
        pairs = _fold_pairs(_pairs_of(values)[0])
        return self.compile(gs)(pairs, frozenset(k for k, _ in pairs))

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        """A fast predicate ``f(pairs, keys)``; *groups* must define every ``@group``.

        ``pairs`` is the frozenset of ``(key, value)`` pairs *in folded form* (see
        :func:`fold`; ``_fold_pairs`` makes it), ``keys`` the folded keys present.
        Conjunctions and disjunctions of plain comparisons become single set operations,
        so a rule costs a call or two.
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
        """The folded ``(key, value)`` pairs any of which makes ``key=value`` / ``key=@group`` true."""
        key = fold(self.key)
        if not self.group:
            return frozenset(((key, fold(self.value)),))
        if self.value not in groups:
            raise ConfigError(f"unknown group @{self.value}; defined groups: {', '.join(sorted(groups)) or '(none)'}")
        return frozenset((key, fold(g)) for g in groups[self.value])

    def compile(self, groups: Mapping[str, frozenset[str]]) -> _Pred:
        key = fold(self.key)
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
                required.update(o.candidates(groups))
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
