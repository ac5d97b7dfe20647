"""The tag model: residency tags carried by arrays and propagated to derived data.

Tags are stored on an array as ``None`` (untagged, the common case) or a ``frozenset`` of
``(key, value)`` pairs. Propagation is set union, so a result derived from data tagged
``origin=DE`` and data tagged ``origin=FR`` carries both values. ``Array.tags`` shows them
as a read-only mapping ``key -> frozenset of values``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

__all__ = ["EMPTY", "TagSet", "as_mapping", "make_tags", "to_json", "to_text", "union"]

TagSet = frozenset[tuple[str, str]]

EMPTY: MappingProxyType[str, frozenset[str]] = MappingProxyType({})


def union(a: TagSet | None, b: TagSet | None) -> TagSet | None:
    """The union of two tag sets; ``None`` stands for no tags (and is returned for none)."""
    if b is None or b is a:
        return a
    if a is None:
        return b
    return a | b


def union_all(tag_sets: Iterable[TagSet | None]) -> TagSet | None:
    """The union of many tag sets."""
    out: TagSet | None = None
    for t in tag_sets:
        out = union(out, t)
    return out


def make_tags(mapping: Mapping[str, object] | None, *, fname: str = "tags") -> TagSet | None:
    """Build a tag set from ``{key: value}`` or ``{key: [values]}`` through the one tag
    normaliser, :func:`hpcai.residency.normalize_tags` (NFKC, trimmed, keys usable in
    rules, values non-empty strings)."""
    if not mapping:
        return None
    from .residency import normalize_tags  # lazy: hpcai.residency imports this module

    return normalize_tags(mapping, fname=fname)


def to_json(tags: TagSet | Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """Tags (a tag set or a ``key -> values`` mapping) as JSON: ``{key: sorted values}``."""
    m = as_mapping(tags) if isinstance(tags, frozenset) or tags is None else tags
    return {k: sorted(v) for k, v in m.items()}


def to_text(tags: TagSet | Mapping[str, Iterable[str]] | None) -> str:
    """Tags as message text: ``key=v1|v2, key2=v`` (values sorted; ``""`` when untagged)."""
    m = as_mapping(tags) if isinstance(tags, frozenset) or tags is None else tags
    return ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in m.items())


def as_mapping(tags: TagSet | None) -> MappingProxyType[str, frozenset[str]]:
    """A read-only ``key -> frozenset(values)`` view of a tag set."""
    if not tags:
        return EMPTY
    out: dict[str, set[str]] = {}
    for k, v in tags:
        out.setdefault(k, set()).add(v)
    return MappingProxyType({k: frozenset(v) for k, v in sorted(out.items())})
