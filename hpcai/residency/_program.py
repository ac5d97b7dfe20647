"""Many expressions compiled together: disjunctive normal forms over shared atoms, as bit masks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._expressions import And, Compare, Const, Expr, Not, Or, _Pred
from ._normalize import _fold_pairs, _Pairs, fold

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
            k = self._atom("key", fold(e.key))  # key!=v: the key is present and no value matches
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
        """The bits of the atoms that *pairs* make true (compared in folded form)."""
        return self._mask(_fold_pairs(pairs))

    def _mask(self, pairs: _Pairs) -> int:
        """:meth:`mask` of pairs already folded."""
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
        return self._holds(i, mask, _fold_pairs(pairs))

    def _holds(self, i: int, mask: int, pairs: _Pairs) -> bool:
        """:meth:`holds` with *pairs* already folded."""
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
        folded: _Pairs | None = None
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
                if folded is None:
                    folded = _fold_pairs(pairs)
                out[i] = self._holds(i, mask, folded)
        return out

    def matching(self, pairs: _Pairs) -> list[int]:
        """The indices of the expressions that hold for *pairs*."""
        pairs = _fold_pairs(pairs)
        mask = self._mask(pairs)
        out = []
        for i, t in enumerate(self._terms):
            if t is None:
                continue
            if t.__class__ is tuple:
                for h, n in t:  # type: ignore[union-attr]
                    if mask & h == h and not mask & n:
                        out.append(i)
                        break
            elif self._holds(i, mask, pairs):
                out.append(i)
        return out
