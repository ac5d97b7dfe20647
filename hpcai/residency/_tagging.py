"""The tag API: ``xp.tag``, ``xp.untag`` and placement checks for data that arrives without a move."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import _tags, _transfer, audit
from .._array import Array, _wrap
from .._tags import to_json as tags_to_json
from ..errors import DTypeError, InvalidArgumentError
from ._guards import _note_policy, _settle, current_policy
from ._normalize import _as_tagset, normalize_tags
from ._policy import Decision

if TYPE_CHECKING:
    from .._device import DeviceLike


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
    from .._device import resolve_device

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
    new = _tags.union(a._tags, normalize_tags(tags, fname="xp.tag"))
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
    pol = current_policy()
    if pol.rules:
        _note_policy(pol.policy_hash)
    audit.append(
        {
            "operation": "untag",
            "op": "untag",
            "tags": tags_to_json(before),
            "removed": {key: sorted(before[key])},
            "bytes": _transfer._nbytes(a._data),
            "source": a._device.spec.name,
            "destination": a._device.spec.name,
            "dataset": None,
            "decision": "allow",
            "effect": None,
            "rule": None,
            "reason": reason,
            "policy": pol.source,
            "policy_hash": pol.policy_hash,
        }
    )
    return _wrap(a._data, a._device, remaining)
