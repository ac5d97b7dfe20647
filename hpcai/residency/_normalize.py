"""Tag normalisation: the one place where two spellings of a tag or attribute become one.

:func:`normalize_tags` checks and normalises tags when they are given (stored form: NFKC,
whitespace trimmed, case kept); :func:`fold` is the form the engine compares in (also
case-folded), applied to tags, rules, groups and location attributes alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from .._tags import TagSet
from ..errors import InvalidArgumentError

#: What predicates see: the (key, value) pairs of the data's tags or of a destination's
#: attributes.
_Pairs = frozenset[tuple[str, str]]
_NO_PAIRS: _Pairs = frozenset()
#: Tag keys, attribute keys and group names: what rules can name.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


# ============================================================================================
# tag and attribute normalisation: the one place where two spellings become one
# ============================================================================================
_FOLDED: dict[str, str] = {}
_CANONICAL: set[tuple[str, str]] = set()  # pairs that fold to themselves (the usual case)
_FOLDED_PAIR: dict[tuple[str, str], tuple[str, str]] = {}  # the others, folded
_FOLDED_SETS: dict[frozenset[tuple[str, str]], frozenset[tuple[str, str]]] = {}  # sets that change
_FOLD_LIMIT = 1 << 16
_INVISIBLE = frozenset(("Cc", "Cf"))  # control and format characters (U+200B zero width space, ...)


def _fold_once(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)
    if not t.isprintable():
        t = "".join(c for c in t if c.isspace() or unicodedata.category(c) not in _INVISIBLE)
    t = " ".join(t.split()).casefold()
    return t if t.isascii() else unicodedata.normalize("NFKC", t)


def _fold_new(text: str) -> str:
    if text.isascii() and text.isprintable():  # NFKC changes nothing, nothing invisible
        t = (" ".join(text.split()) if " " in text else text).lower()
        return text if t == text else t
    t = _fold_once(text)
    for _ in range(3):  # casefold and NFKC can undo each other's work on rare letters: to a fixed point
        if t.isascii():
            break
        u = _fold_once(t)
        if u == t:
            break
        t = u
    return text if t == text else t


def fold(text: str) -> str:
    """The form in which the policy engine compares tag and attribute keys and values.

    Unicode NFKC, control and format characters dropped, whitespace trimmed and runs of it
    made one space, then case-folded: ``"Personal"``, ``" personal "``, ``"PERSONAL"``,
    ``"ｐｅｒｓｏｎａｌ"`` (full width) and ``"person\u200bal"`` all fold to ``"personal"``.
    Rules, groups, tags and location attributes are all compared in this form.

    >>> fold("  Personal ") == fold("PERSONAL") == "personal"
    True
    """
    f = _FOLDED.get(text)
    if f is None:
        f = _fold_new(text)
        if len(_FOLDED) >= _FOLD_LIMIT:
            _FOLDED.clear()
        _FOLDED[text] = f
    return f


def _fold_pairs(pairs: _Pairs) -> _Pairs:
    """*pairs* with keys and values folded; *pairs* itself when every pair is already folded.

    The usual tag set or attribute set is already in folded form: one set lookup per pair,
    no allocation. Sets that do change (``origin=DE``) are remembered whole.
    """
    canonical = _CANONICAL
    if pairs <= canonical:  # a subset test in C: the usual case costs next to nothing
        return pairs
    known = _FOLDED_SETS.get(pairs)
    if known is not None:
        return known
    mapped: dict[tuple[str, str], tuple[str, str]] = {}
    for p in pairs.difference(canonical):
        f = _FOLDED_PAIR.get(p)
        if f is None:
            f = (fold(p[0]), fold(p[1]))
            if f == p:
                if len(canonical) >= _FOLD_LIMIT:
                    canonical.clear()
                canonical.add(p)
                continue
            if len(_FOLDED_PAIR) >= _FOLD_LIMIT:
                _FOLDED_PAIR.clear()
            _FOLDED_PAIR[p] = f
        mapped[p] = f
    if not mapped:
        return pairs
    out = frozenset([mapped.get(p, p) for p in pairs])
    if len(_FOLDED_SETS) >= _FOLD_LIMIT // 16:
        _FOLDED_SETS.clear()
    _FOLDED_SETS[pairs] = out
    return out


def _normalize_key(fname: str, key: object) -> str:
    k = unicodedata.normalize("NFKC", key).strip() if isinstance(key, str) else None
    if not k or not _IDENT.fullmatch(k):
        raise InvalidArgumentError(
            f"{fname}: tag key {key!r} is not usable in policy expressions; use letters, digits, "
            "'_', '.', '-', starting with a letter or '_'"
        )
    return k


def _normalize_value(fname: str, key: str, value: object, given: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{fname}: the value of tag {key!r} must be a non-empty string (or strings), got {given!r}"
        )
    v = unicodedata.normalize("NFKC", value)
    bad = next((c for c in v if not c.isspace() and unicodedata.category(c) in _INVISIBLE), None)
    if bad is not None:
        raise InvalidArgumentError(
            f"{fname}: the value {value!r} of tag {key!r} contains the invisible character "
            f"U+{ord(bad):04X}; tag values are printable text"
        )
    v = " ".join(v.split())
    if not v:
        raise InvalidArgumentError(
            f"{fname}: the value of tag {key!r} must be a non-empty string (or strings), got {given!r}"
        )
    return v


def normalize_tags(tags: Mapping[str, Any] | None, *, fname: str = "tags") -> TagSet | None:
    """The one tag normaliser: ``{key: value}`` / ``{key: [values]}`` as a checked tag set.

    Keys: strings that, after NFKC and trimming, are usable in rules (letters, digits,
    ``_ . -``, starting with a letter or ``_``). Values: non-empty strings, NFKC-normalised
    with surrounding whitespace trimmed and inner runs of whitespace made one space; control
    and format characters are refused. Case is kept (``x.tags`` shows what was written);
    the policy engine compares case-insensitively (see :func:`fold`).

    >>> sorted(normalize_tags({"classification": " Personal ", "origin": ["DE", "FR"]}))
    [('classification', 'Personal'), ('origin', 'DE'), ('origin', 'FR')]
    """
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise InvalidArgumentError(
            f"{fname}: tags must be a mapping such as {{'classification': 'personal'}}, got {type(tags).__name__}"
        )
    pairs: set[tuple[str, str]] = set()
    for key, value in tags.items():
        k = _normalize_key(fname, key)
        if isinstance(value, str):
            values: tuple[Any, ...] = (value,)
        elif isinstance(value, (list, tuple, set, frozenset)) and value:
            values = tuple(value)
        else:
            values = (None,)
        pairs.update((k, _normalize_value(fname, k, v, value)) for v in values)
    return frozenset(pairs) or None


def _as_tagset(fname: str, tags: Any) -> TagSet | None:
    if tags is None:
        return None
    if isinstance(tags, frozenset):
        for pair in tags:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise InvalidArgumentError(f"{fname}: a tag frozenset holds (key, value) string pairs, got {pair!r}")
        return tags or None
    if isinstance(tags, Mapping):
        return normalize_tags(tags, fname=fname)
    raise InvalidArgumentError(
        f"{fname}: tags must be a mapping such as {{'classification': 'personal'}}, a frozenset of "
        f"(key, value) pairs or None; got {type(tags).__name__}"
    )
