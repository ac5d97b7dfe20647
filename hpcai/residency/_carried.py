"""Rules that travel with covered data to other processes.

A process that receives covered data (an unpickled Array, a Dask chunk from another worker)
decides under its own policy; but a process with no hpcai configuration has no rules and
would accept everything. So covered data carries the rules that cover it (canonical text,
with the value groups they use, the sender's policy hash), and the receiving process must
satisfy them too, on its own location attributes. A receiver with no ``[site]`` has no
attributes, so rules that require some (``jurisdiction=EU``) refuse: it fails closed.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from .._tags import TagSet
from ..errors import ResidencyError
from ._guards import _settle, current_policy
from ._policy import _canonical_rules, policy_from_config

__all__ = ["carried_rules", "check_arrival"]

_lock = threading.Lock()
_policies: dict[str, Any] = {}  # canonical JSON of carried rules -> Policy (bounded)


def carried_rules(tags: TagSet | None) -> dict[str, Any] | None:
    """The rules of the active policy that cover *tags*, in a form that travels (``None``: none do)."""
    pol = current_policy()
    if not pol.rules or (tags is None and not pol.untagged_covered):
        return None
    rules = pol.covering(tags)
    if not rules:
        return None
    canon = []
    used: set[str] = set()
    for r, c in zip(rules, _canonical_rules(rules)):
        canon.append({k: v for k, v in c.items() if v is not None})
        for e in (r.match, r.compute, r.store, r.export):
            if e is not None:
                used.update(ref.value for ref in e.group_refs())
    return {
        "rules": canon,
        "groups": {g: sorted(pol.groups[g]) for g in sorted(used) if g in pol.groups},
        "from": pol.policy_hash,
    }


def _carried_policy(carried: dict[str, Any]) -> Any:
    key = json.dumps(carried, sort_keys=True)
    with _lock:
        p = _policies.get(key)
    if p is None:
        if not isinstance(carried, dict) or not isinstance(carried.get("rules"), (list, tuple)):
            raise ResidencyError(f"covered data arrived with malformed rules ({str(carried)[:200]}); refused")
        groups = {str(k): list(v) for k, v in dict(carried.get("groups") or {}).items()}
        data = {"policy": {"rules": [dict(r) for r in carried["rules"]]}, "groups": groups}
        p = policy_from_config(data, f"rules carried with the data (sender's policy {str(carried.get('from'))[:12]})")
        with _lock:
            if len(_policies) > 256:
                _policies.clear()
            _policies[key] = p
    return p


def check_arrival(tags: TagSet | None, device: Any, carried: dict[str, Any] | None, *, operation: str,
                  nbytes: int = 0) -> None:
    """Covered data arrives on *device* in this process: this process's policy decides, and the
    rules carried with the data must hold for the device's attributes here too. Audited when
    covered; raises :class:`~hpcai.errors.ResidencyError` before anything is built."""
    from ._tagging import check_placement

    check_placement(tags, device, operation=operation, nbytes=nbytes)
    if not carried:
        return
    pol = _carried_policy(carried)
    d = pol.decide_device("compute", tags, device) if hasattr(device, "spec") else None
    if d is None:
        raise ResidencyError(f"{operation}: cannot check the carried rules on {device!r}")
    if d.effect is not None:
        _settle(d, operation=operation, source=device.spec.name, nbytes=nbytes, dataset=None)


