"""The read-taint ledger: tagged bytes read raw into this process taint its later writes.

hpcai's loaders (``load``, ``open``) return tagged arrays, and ``copy`` moves stored
bytes with their tags. Everything else that reads stored data through ``hpcai://`` —
plain zarr, dask, xarray, pandas, ``fs.cat_file``, ``fsspec.open`` — gets bytes, which
carry no tags. So every such *raw read* of tagged data records the data's tags here,
and every later write of this process through ``hpcai://`` (raw writes, ``save``,
uploads of local files) carries the union of the recorded tags on top of its own: the
write is decided (``store``) and stored with them. Data read raw is thus either tracked
to where it is written through ``hpcai://`` — with its tags — or refused there.

The ledger is per process and only grows. :func:`untaint` empties it with a reason that
is recorded in the audit log (the only way, like ``untag`` for arrays); a new
configuration (``hpcai.configure``) starts a new ledger, since code that can change the
configuration can change the policy too. Reads of untagged data, reads made by hpcai's
own loaders and copies, and listings or ``info`` do not taint.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType

from hpcai import _config
from hpcai._tags import TagSet, as_mapping, to_text, union
from hpcai._tags import to_json as tags_to_json
from hpcai.errors import InvalidArgumentError

__all__ = ["clear", "current", "describe", "record", "taint", "untaint"]

#: Source URLs remembered per tag set (for messages); the tags themselves are never dropped.
_MAX_SOURCES = 4

_lock = threading.Lock()
_tags: TagSet | None = None
_sources: dict[TagSet, list[str]] = {}


def record(tags: TagSet | None, url: str) -> None:
    """Remember that this process read data tagged *tags* from *url* raw."""
    global _tags
    if not tags:
        return
    with _lock:
        _tags = union(_tags, tags)
        srcs = _sources.setdefault(tags, [])
        if url not in srcs and len(srcs) < _MAX_SOURCES:
            srcs.append(url)


def current() -> TagSet | None:
    """The union of the tags of everything read raw so far (``None``: nothing tagged was read)."""
    return _tags


def describe(extra: TagSet | None) -> str:
    """A sentence naming where the tags in *extra* were read (for refusals)."""
    with _lock:
        urls: list[str] = []
        for t, srcs in _sources.items():
            if extra and t & extra:
                urls.extend(u for u in srcs if u not in urls)
    shown = ", ".join(urls[:_MAX_SOURCES]) or "stored data"
    more = "" if len(urls) <= _MAX_SOURCES else f" and {len(urls) - _MAX_SOURCES} more"
    tags = to_text(extra)
    return (
        f"This process read data tagged {{{tags}}} raw (without hpcai's loaders) from {shown}{more}, so its "
        "writes through hpcai:// carry those tags (the read-taint ledger, see docs/storage.md). Read it "
        "with hpcai.storage.load/open to keep the tags on the arrays instead, or, if what is written is not "
        "derived from that data, clear the ledger with hpcai.storage.untaint(reason=...) (audited)"
    )


def taint() -> MappingProxyType[str, frozenset[str]]:
    """The tags this process's writes through ``hpcai://`` currently carry from raw reads.

    >>> import hpcai.storage as st
    >>> dict(st.taint())
    {}
    """
    return as_mapping(_tags)


def sources() -> Mapping[str, tuple[str, ...]]:
    """Where the recorded tags were read: ``{"k=v, ...": (url, ...)}`` (a few URLs per tag set)."""
    with _lock:
        return {
            to_text(t): tuple(s)
            for t, s in _sources.items()
        }


def untaint(*, reason: str) -> MappingProxyType[str, frozenset[str]]:
    """Empty the read-taint ledger; *reason* is recorded in the audit log first. Returns the tags dropped.

    For a process that read tagged data raw and now writes data that is not derived
    from it. If the audit record cannot be written, nothing is cleared.
    """
    global _tags
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgumentError(
            "hpcai.storage.untaint: a reason is required and is recorded in the audit log, e.g. "
            "untaint(reason=\"the files written next are synthetic test data\")"
        )
    with _lock:
        before = _tags
        srcs = [u for s in _sources.values() for u in s]
    if not before:
        return as_mapping(None)
    from hpcai import audit, residency

    audit.append(
        {
            "operation": "untaint",
            "op": "untag",
            "tags": tags_to_json(before),
            "removed": {k: sorted(v) for k, v in as_mapping(before).items()},
            "bytes": 0,
            "source": ", ".join(srcs) or None,
            "destination": "this process (read-taint ledger)",
            "dataset": None,
            "decision": "allow",
            "effect": None,
            "rule": None,
            "reason": reason,
            "policy": residency.current_policy().source,
        }
    )
    with _lock:
        _tags = None
        _sources.clear()
    return as_mapping(before)


def clear() -> None:
    """Start a new ledger (on ``configure``)."""
    global _tags
    with _lock:
        _tags = None
        _sources.clear()


_config.on_reconfigure(clear)
